"""What each Snakemake rule runs: file paths in, files out, logic delegated to the package."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from zoo.config import ZOO_DEFAULTS, ZooSpec, zoo_document, zoo_from_document
from zoo.errors import DataError
from zoo.store import load_checkpoints, save_checkpoints, write_table, write_text


def write_spec(zoo: ZooSpec, settings: dict[str, Any], out: str | Path) -> None:
    """Write ``data/zoos/<zoo>/spec.json`` (the resolved zoo spec, re-expandable)."""
    write_text(out, json.dumps(zoo_document(zoo, settings), indent=2, sort_keys=True) + "\n")


def read_spec(path: str | Path) -> ZooSpec:
    """Re-expand a zoo from its ``spec.json``."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"{path}: missing zoo spec; run the workflow's spec rule (snakemake) first") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: corrupt spec JSON ({exc.msg}); delete it and re-run the workflow") from None
    return zoo_from_document(doc)


def train(spec_path: str | Path, population: str, outdir: str | Path, progress: bool = True) -> None:
    """Train one population; write its checkpoint, ``models`` and ``metrics`` tables."""
    import torch

    from zoo.models import n_params
    from zoo.tables import metrics_table, models_table
    from zoo.train import train_population

    torch.set_num_threads(1)
    zoo = read_spec(spec_path)
    if population not in zoo.populations:
        raise DataError(f"{spec_path}: zoo {zoo.name!r} has no population {population!r}; known: {', '.join(zoo.populations)}")
    members = zoo.populations[population]
    specs = [{**m.spec, "max_loss": zoo.raw.get("max_loss", ZOO_DEFAULTS["max_loss"])} for m in members]
    ids = [m.model_id for m in members]
    outdir = Path(outdir)
    # Saved after every checkpoint epoch; a killed job resumes from it (deleted when done).
    state_path = outdir / "resume" / f"{population}.pt"
    result = train_population(specs, ids, zoo.checkpoints, progress=progress, label=f"{zoo.name}/{population}",
                              state_path=state_path)
    meta = {"zoo": zoo.name, "population": population, "zoo_spec_hash": zoo.spec_hash, **result.meta}
    save_checkpoints(outdir / "checkpoints" / f"{population}.safetensors", result.checkpoints, ids, meta)
    shape, n_classes = tuple(result.meta["input_shape"]), result.meta["n_classes"]
    models = models_table(zoo.name, population, members, n_params(members[0].spec, shape, n_classes),
                          result.diverged_epoch, zoo.spec_hash)
    write_table(models, outdir / "models" / f"{population}.parquet", "models", {"zoo_spec_hash": zoo.spec_hash})
    write_table(metrics_table(zoo.name, population, result.metrics), outdir / "metrics" / f"{population}.parquet",
                "metrics", {"zoo_spec_hash": zoo.spec_hash})
    state_path.unlink(missing_ok=True)
    n_div = sum(d is not None for d in result.diverged_epoch)
    print(f"{zoo.name}/{population}: trained {len(ids)} models ({n_div} diverged) in {result.wall_s:.1f} s "
          f"= {60 * len(ids) / max(result.wall_s, 1e-9):.0f} models/min", file=sys.stderr)


def weights(checkpoint: str | Path, out: str | Path) -> None:
    """Flatten one population checkpoint into the ``weights`` table."""
    from zoo.tables import weights_table

    ckpts, ids, meta = load_checkpoints(checkpoint)
    table = weights_table(meta.get("zoo", ""), meta.get("population", Path(checkpoint).stem), ckpts, ids)
    write_table(table, out, "weights", {"zoo_spec_hash": meta.get("zoo_spec_hash", "")})
