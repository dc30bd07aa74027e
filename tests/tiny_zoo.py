"""Build a tiny zoo in a test folder with the same functions the workflow's rules call."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def make_tiny_zoo(data: Path, config: dict[str, Any]) -> Path:
    """Train every population of ``config``, extract weights, build the catalog under ``data``."""
    import torch

    from zoo.catalog import build_catalog
    from zoo.config import load_zoos, validate
    from zoo.jobs import train, weights, write_spec

    torch.set_num_threads(1)
    validate(config)
    for name, z in load_zoos(config).items():
        zdir = data / "zoos" / name
        write_spec(z, {}, zdir / "spec.json")
        for pop in z.populations:
            train(zdir / "spec.json", pop, zdir, progress=False)
            weights(zdir / "checkpoints" / f"{pop}.safetensors", zdir / "weights" / f"{pop}.parquet")
    build_catalog(data)
    return data
