"""Arrow schemas and builders for the ``models``, ``metrics`` and ``weights`` tables.

Column names are API (DESIGN §4): add columns freely, never rename. Columns are documented
in ``docs/tables.md``.
"""

from __future__ import annotations

import platform
import subprocess
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

import zoo
from zoo.config import ModelSpec
from zoo.hashing import canonical_json

HYPERPARAMETER_COLUMNS: dict[str, pa.DataType] = {
    "dataset": pa.string(), "arch": pa.string(), "depth": pa.int64(), "width": pa.int64(),
    "channels": pa.int64(), "kernel": pa.int64(), "stride": pa.int64(), "activation": pa.string(),
    "optimizer": pa.string(), "lr": pa.float64(), "momentum": pa.float64(), "weight_decay": pa.float64(),
    "batch_size": pa.int64(), "train_fraction": pa.float64(), "seed": pa.int64(), "epochs": pa.int64(),
    "label_noise": pa.float64(), "dropout": pa.float64(), "init": pa.string(), "init_std": pa.float64(),
    "heads": pa.int64(),
}

#: Values of axes a model spec omits at their default (zoo.config.OPTIONAL_DEFAULTS), so the
#: columns read 0.0 / 'default' instead of null; init_std stays null where the scheme has none.
HYPERPARAMETER_DEFAULTS: dict[str, Any] = {"label_noise": 0.0, "dropout": 0.0, "init": "default"}

MODELS_SCHEMA = pa.schema(
    [("model_id", pa.string()), ("zoo", pa.string()), ("population", pa.string())]
    + list(HYPERPARAMETER_COLUMNS.items())
    + [("n_params", pa.int64()), ("diverged_epoch", pa.int64()), ("spec_json", pa.string()),
       ("population_hash", pa.string()), ("zoo_version", pa.string()), ("torch_version", pa.string()),
       ("python_version", pa.string()), ("git_commit", pa.string())]
)

METRICS_SCHEMA = pa.schema([
    ("model_id", pa.string()), ("zoo", pa.string()), ("population", pa.string()), ("epoch", pa.int64()),
    ("train_loss", pa.float64()), ("train_acc", pa.float64()), ("test_loss", pa.float64()),
    ("test_acc", pa.float64()), ("ggap", pa.float64()), ("diverged", pa.bool_()), ("wall_s", pa.float64()),
])

#: INR zoos (DESIGN §11): the signal each model fits and the SIREN's frequencies, appended to ``models``.
INR_MODEL_COLUMNS: dict[str, pa.DataType] = {
    "signal_index": pa.int64(), "signal_split": pa.string(), "signal_class": pa.int64(),
    "omega_0": pa.float64(), "hidden_omega": pa.float64(),
}
INR_MODELS_SCHEMA = pa.schema(list(MODELS_SCHEMA) + list(INR_MODEL_COLUMNS.items()))

#: INR zoos: reconstruction quality per checkpoint, appended to ``metrics``. ``recon_mse`` is the
#: mean squared error over coordinates and channels (signal values in [-1, 1]); ``psnr_db`` =
#: 10·log10(2² / recon_mse). ``train_loss`` equals ``recon_mse`` (the fitting loss); ``train_acc``,
#: ``test_loss``, ``test_acc`` and ``ggap`` are null (an INR has no held-out data).
INR_METRIC_COLUMNS: dict[str, pa.DataType] = {"recon_mse": pa.float64(), "psnr_db": pa.float64()}
INR_METRICS_SCHEMA = pa.schema(list(METRICS_SCHEMA) + list(INR_METRIC_COLUMNS.items()))

WEIGHTS_SCHEMA = pa.schema([
    ("model_id", pa.string()), ("zoo", pa.string()), ("population", pa.string()), ("epoch", pa.int64()),
    ("tensor", pa.string()), ("layer", pa.string()), ("kind", pa.string()),
    ("shape", pa.list_(pa.int32())), ("values", pa.list_(pa.float32())),
])


@cache
def git_commit() -> str | None:
    """The project's git commit, when it runs from a checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def versions() -> dict[str, str | None]:
    """Package versions recorded with every table (provenance)."""
    import torch

    return {"zoo_version": zoo.__version__, "torch_version": torch.__version__,
            "python_version": platform.python_version(), "git_commit": git_commit()}


def models_table(zoo_name: str, population: str, models: Sequence[ModelSpec], n_params: int,
                 diverged_epoch: Sequence[int | None], population_hash: str) -> pa.Table:
    """One row per model: every hyperparameter as a typed column, plus provenance.

    ``population_hash`` identifies the population document the model was trained from
    (:func:`zoo.layout.population_document`): it changes exactly when the trained bits may.
    """
    ver = versions()
    inr = bool(models) and models[0].spec.get("arch") == "siren"
    rows = []
    for m, d in zip(models, diverged_epoch):
        row: dict[str, Any] = {"model_id": m.model_id, "zoo": zoo_name, "population": population}
        row.update({k: m.spec.get(k, HYPERPARAMETER_DEFAULTS.get(k)) for k in HYPERPARAMETER_COLUMNS})
        if inr:
            row.update({k: m.spec.get(k) for k in INR_MODEL_COLUMNS})
            row.update(activation="sine", label_noise=None, dropout=None, init=None)  # no such axes for a SIREN fit
        row.update(n_params=n_params, diverged_epoch=d, spec_json=canonical_json(m.spec), population_hash=population_hash, **ver)
        rows.append(row)
    return pa.Table.from_pylist(rows, schema=INR_MODELS_SCHEMA if inr else MODELS_SCHEMA)


def metrics_table(zoo_name: str, population: str, rows: Sequence[Mapping[str, Any]]) -> pa.Table:
    """One row per model × checkpoint epoch (INR populations: with ``recon_mse`` and ``psnr_db``)."""
    schema = INR_METRICS_SCHEMA if rows and "psnr_db" in rows[0] else METRICS_SCHEMA
    return pa.Table.from_pylist([{**r, "zoo": zoo_name, "population": population} for r in rows], schema=schema)


def tensor_layer_kind(name: str) -> tuple[str, str]:
    """``'layers.0.weight'`` → ``('layers.0', 'weight')``."""
    layer, kind = name.rsplit(".", 1)
    return layer, kind


def weights_table(zoo_name: str, population: str, checkpoints: Mapping[int, Mapping[str, Any]],
                  model_ids: Sequence[str]) -> pa.Table:
    """One row per model × epoch × tensor; ``values`` is the row-major flattened tensor."""
    cols: dict[str, list[Any]] = {k: [] for k in ("model_id", "epoch", "tensor", "layer", "kind", "shape")}
    flat_parts: list[np.ndarray] = []
    lengths: list[int] = []
    for epoch, tensors in checkpoints.items():
        for name, stacked in tensors.items():
            arr = np.ascontiguousarray(np.asarray(stacked, dtype=np.float32))
            layer, kind = tensor_layer_kind(name)
            per = int(np.prod(arr.shape[1:]))
            flat_parts.append(arr.reshape(-1))
            for mid in model_ids:
                cols["model_id"].append(mid)
                cols["epoch"].append(int(epoch))
                cols["tensor"].append(name)
                cols["layer"].append(layer)
                cols["kind"].append(kind)
                cols["shape"].append(list(arr.shape[1:]))
                lengths.append(per)
    # Rows were appended model-major inside each (epoch, tensor) block, matching the flat order.
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    values = pa.ListArray.from_arrays(pa.array(offsets), pa.array(np.concatenate(flat_parts) if flat_parts else np.zeros(0, np.float32)))
    n = len(cols["model_id"])
    return pa.table({
        "model_id": pa.array(cols["model_id"], pa.string()), "zoo": pa.array([zoo_name] * n, pa.string()),
        "population": pa.array([population] * n, pa.string()), "epoch": pa.array(cols["epoch"], pa.int64()),
        "tensor": pa.array(cols["tensor"], pa.string()), "layer": pa.array(cols["layer"], pa.string()),
        "kind": pa.array(cols["kind"], pa.string()), "shape": pa.array(cols["shape"], pa.list_(pa.int32())),
        "values": values.cast(pa.list_(pa.float32())),
    }, schema=WEIGHTS_SCHEMA)


def weights_from_table(table: pa.Table, model_id: str, epoch: int) -> dict[str, np.ndarray]:
    """One model's tensors at ``epoch`` from a ``weights`` table, reshaped."""
    import pyarrow.compute as pc

    sel = table.filter(pc.and_(pc.equal(table["model_id"], model_id), pc.equal(table["epoch"], epoch)))
    return {name: np.asarray(vals, dtype=np.float32).reshape(shape)
            for name, shape, vals in zip(sel["tensor"].to_pylist(), sel["shape"].to_pylist(), sel["values"].to_pylist())}
