"""What each Snakemake rule runs: file paths in, files out, logic delegated to the package.

Every path comes from the rule (which takes it from :mod:`zoo.layout`); nothing here
builds a path of its own.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo.config import ModelSpec, ZooSpec, zoo_document, zoo_from_document
from zoo.errors import DataError
from zoo.hashing import short_hash
from zoo.store import load_checkpoints, save_checkpoints, write_table


def spec_text(zoo: ZooSpec, settings: dict[str, Any]) -> str:
    """The text of ``data/zoos/<zoo>/spec.json`` (the resolved zoo spec, re-expandable)."""
    from zoo.layout import document_text

    return document_text(zoo_document(zoo, settings))


def write_zoo_documents(zoo: ZooSpec, settings: dict[str, Any], data: str | Path = "data") -> Any:
    """Write the zoo's ``spec.json`` and population documents where their content changed.

    The workflow calls this when it reads the config (so a file's time moves exactly when
    its content does); tests call it to lay a zoo out as the workflow would. Returns the
    zoo's :class:`zoo.layout.ZooLayout`.
    """
    from zoo.layout import ZooLayout, document_text, population_document, write_if_changed
    from zoo.stages import skipped_document, skipped_stages

    layout = ZooLayout(str(data), zoo.name)
    write_if_changed(layout.spec, spec_text(zoo, settings))
    if skipped_stages(zoo.raw):  # the recorded note of stages that do not apply (INR zoos)
        write_if_changed(layout.skipped, document_text(skipped_document(zoo.name, zoo.raw)))
    for pop in zoo.populations:
        write_if_changed(layout.population_doc(pop), document_text(population_document(zoo, pop)))
    return layout


def train_into_layout(layout: Any, population: str, progress: bool = False) -> None:
    """Train one population into its place in ``layout`` (the files the train rule declares)."""
    train(layout.population_doc(population), layout.checkpoint(population), layout.table("models", population),
          layout.table("metrics", population), layout.resume_state(population), progress=progress)


def _read_json(path: str | Path, what: str) -> dict[str, Any]:
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"{path}: missing {what}; run the workflow (snakemake) to write it") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: corrupt {what} ({exc}); delete it and re-run the workflow") from None
    if not isinstance(doc, dict):
        raise DataError(f"{path}: not a {what} (a JSON object); delete it and re-run the workflow")
    return doc


def read_spec(path: str | Path) -> ZooSpec:
    """Re-expand a zoo from its ``spec.json``."""
    return zoo_from_document(_read_json(path, "zoo spec"))


@dataclass(frozen=True)
class PopulationDocument:
    """A population as the workflow wrote it (:func:`zoo.layout.population_document`)."""

    zoo: str
    population: str
    checkpoints: tuple[int, ...]
    members: tuple[ModelSpec, ...]
    max_loss: float
    hash: str

    @property
    def model_ids(self) -> list[str]:
        return [m.model_id for m in self.members]

    def training_specs(self) -> list[dict[str, Any]]:
        """The flat specs :func:`zoo.train.train_population` takes (``max_loss`` included)."""
        return [{**m.spec, "max_loss": self.max_loss} for m in self.members]


def read_population(path: str | Path) -> PopulationDocument:
    """Read ``data/zoos/<zoo>/populations/<pop>.json``."""
    doc = _read_json(path, "population document")
    try:
        members, max_losses = [], set()
        for entry in doc["models"]:
            spec = dict(entry["spec"])
            max_losses.add(float(spec.pop("max_loss")))
            members.append(ModelSpec(spec=spec, model_id=str(entry["model_id"])))
        if len(max_losses) != 1 or not members:
            raise ValueError("models must share one max_loss")
        return PopulationDocument(zoo=str(doc["zoo"]), population=str(doc["population"]),
                                  checkpoints=tuple(int(c) for c in doc["checkpoints"]), members=tuple(members),
                                  max_loss=max_losses.pop(), hash=short_hash(doc))
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"{path}: malformed population document ({exc}); delete it and re-run the workflow") from None


@dataclass(frozen=True)
class PopulationAtEpoch:
    """What the stage reads of one population: specs, stacked parameters at one checkpoint, data."""

    zoo: str
    population: str
    population_hash: str
    epoch: int
    model_ids: list[str]
    specs: list[dict[str, Any]]
    params: dict[str, Any]       # {tensor: Tensor [P, …]}
    diverged: list[bool]         # flagged diverged at or before ``epoch`` (models table)
    usable: list[bool]           # not diverged by ``epoch`` and finite
    dataset: Any                 # zoo.data.Dataset


def load_population(population_path: str | Path, checkpoint: str | Path, models_path: str | Path,
                    epoch: int | None = None) -> PopulationAtEpoch:
    """Read the population document, its checkpoint (checked against it), diverged flags and dataset.

    What the per-population analysis stages (landscape, lmc/merging) start from.
    """
    import torch

    from zoo.data import load_dataset
    from zoo.store import read_table

    pop = read_population(population_path)
    ckpts, ids, meta = load_checkpoints(checkpoint)
    if meta.get("population_hash") != pop.hash:
        raise DataError(f"{checkpoint}: not trained from {population_path} (another version of the population); "
                        "re-run the workflow")
    epoch = max(ckpts) if epoch is None else int(epoch)
    if epoch not in ckpts:
        raise DataError(f"{checkpoint}: no checkpoint at epoch {epoch}; choose one of {sorted(ckpts)}")
    by_id = {m.model_id: m.spec for m in pop.members}
    specs = [by_id[i] for i in ids]
    # plain Arrow → Python (no pandas: ~0.25 s of start-up in every analysis job)
    models = read_table(models_path, "models").select(["model_id", "diverged_epoch"]).to_pydict()
    diverged_epoch = dict(zip(models["model_id"], models["diverged_epoch"]))
    missing = [i for i in ids if i not in diverged_epoch]
    if missing:
        raise DataError(f"{models_path}: lacks models {missing[:3]} of {checkpoint}; re-run the train rule")
    params = ckpts[epoch]
    diverged = [d is not None and d <= epoch for d in (diverged_epoch[i] for i in ids)]  # int64, null = never
    usable = [not diverged[i] and all(bool(torch.isfinite(v[i]).all()) for v in params.values()) for i in range(len(ids))]
    ds = load_dataset(specs[0]["dataset"], specs[0].get("dataset_options"))
    return PopulationAtEpoch(pop.zoo, pop.population, pop.hash, epoch, list(ids), specs, params, diverged, usable, ds)


def train(population_path: str | Path, checkpoint: str | Path, models_out: str | Path, metrics_out: str | Path,
          resume: str | Path | None = None, progress: bool = True) -> None:
    """Train one population; write its checkpoint, ``models`` and ``metrics`` tables.

    ``resume``: training state saved after every checkpoint epoch; a killed job resumes
    from it when it belongs to exactly this population document (deleted when done).
    """
    import torch

    from zoo.models import n_params
    from zoo.tables import metrics_table, models_table
    from zoo.train import train_population

    torch.set_num_threads(1)
    pop = read_population(population_path)
    if pop.members[0].spec["arch"] == "siren":  # an INR population: full-batch fits, no resume state (seconds)
        from zoo.inr import fit_population

        result = fit_population(pop.training_specs(), pop.model_ids, pop.checkpoints)
    else:
        result = train_population(pop.training_specs(), pop.model_ids, pop.checkpoints, progress=progress,
                                  label=f"{pop.zoo}/{pop.population}", state_path=resume)
    meta = {"zoo": pop.zoo, "population": pop.population, "population_hash": pop.hash, **result.meta}
    save_checkpoints(checkpoint, result.checkpoints, pop.model_ids, meta)
    shape, n_classes = tuple(result.meta["input_shape"]), result.meta["n_classes"]
    models = models_table(pop.zoo, pop.population, pop.members, n_params(pop.members[0].spec, shape, n_classes),
                          result.diverged_epoch, pop.hash)
    write_table(models, models_out, "models", {"population_hash": pop.hash})
    write_table(metrics_table(pop.zoo, pop.population, result.metrics), metrics_out, "metrics",
                {"population_hash": pop.hash})
    if resume is not None:
        Path(resume).unlink(missing_ok=True)
    n = len(pop.members)
    n_div = sum(d is not None for d in result.diverged_epoch)
    print(f"{pop.zoo}/{pop.population}: trained {n} models ({n_div} diverged) in {result.wall_s:.1f} s "
          f"= {60 * n / max(result.wall_s, 1e-9):.0f} models/min", file=sys.stderr)


def weights(checkpoint: str | Path, out: str | Path) -> None:
    """Flatten one population checkpoint into the ``weights`` table."""
    from zoo.tables import weights_table

    ckpts, ids, meta = load_checkpoints(checkpoint, framework="numpy")
    table = weights_table(meta.get("zoo", ""), meta.get("population", Path(checkpoint).stem), ckpts, ids)
    write_table(table, out, "weights", {"population_hash": meta.get("population_hash", "")})


def prune(data: str | Path, zoo: str, keep: list[str]) -> list[Path]:
    """Delete what an older spec left in the zoo's folders: files no current output names."""
    from zoo.layout import ZooLayout, stale_files

    removed = stale_files(ZooLayout(str(data), zoo), keep)
    for f in removed:
        f.unlink(missing_ok=True)
        print(f"pruned {f} (not an output of the current spec)", file=sys.stderr)
    return removed
