"""Build a tiny zoo in a test folder with the same functions the workflow's rules call."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def make_tiny_zoo(data: Path, config: dict[str, Any]) -> Path:
    """Train every population of ``config``, extract weights, build the catalog under ``data``."""
    import torch

    from zoo.catalog import build_catalog
    from zoo.config import load_zoos, validate
    from zoo.jobs import train_into_layout, weights, write_zoo_documents

    torch.set_num_threads(1)
    validate(config)
    files = []
    for z in load_zoos(config).values():
        lay = write_zoo_documents(z, {}, data)
        for pop in z.populations:
            train_into_layout(lay, pop)
            weights(lay.checkpoint(pop), lay.table("weights", pop))
        files += lay.population_tables(z.populations, ("models", "metrics", "weights"))
    build_catalog(data, files=files)
    return data
