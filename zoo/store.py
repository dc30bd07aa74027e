"""Atomic, versioned storage: Parquet tables and population checkpoints.

Every file is written to a temporary name in the target folder, fsynced and renamed into
place (:func:`zoo.atomic.atomic_path`, re-exported here), so a killed job never leaves a
half-written file that looks complete, and a full disk is one error line, not a traceback.

Parquet files carry key-value metadata ``zoo.schema_version`` and ``zoo.table``; readers
check both. Population checkpoints are safetensors files holding, for each checkpoint
epoch, each tensor stacked over the population's models: key ``e{epoch}/{tensor}``,
shape ``[P, …]``; the model order is in the metadata (``model_ids``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from zoo.atomic import atomic_path
from zoo.errors import DataError

SCHEMA_VERSION = "1"
CHECKPOINT_FORMAT = "zoo-population-v1"


def write_text(path: str | Path, text: str) -> None:
    """Write a text file atomically (one-line :class:`DataError` on a full or read-only disk)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_table(table: pa.Table, path: str | Path, name: str, extra: Mapping[str, Any] | None = None) -> None:
    """Write ``table`` as Parquet atomically, tagging table name and schema version.

    A full or read-only disk raises a one-line :class:`DataError`; the previous file is kept.
    """
    meta = dict(table.schema.metadata or {})
    meta[b"zoo.table"] = name.encode()
    meta[b"zoo.schema_version"] = SCHEMA_VERSION.encode()
    for k, v in (extra or {}).items():
        meta[f"zoo.{k}".encode()] = (v if isinstance(v, str) else json.dumps(v, sort_keys=True)).encode()
    table = table.replace_schema_metadata(meta)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")


def read_table(path: str | Path, name: str | None = None) -> pa.Table:
    """Read a Parquet file written by :func:`write_table`, checking name and version."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: missing; re-run the workflow (snakemake) to create it")
    try:
        with pq.ParquetFile(path) as parquet:  # not pq.read_table: its pyarrow.dataset import is ~0.1 s per job
            table = parquet.read()
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise DataError(f"{path}: not a readable Parquet file ({type(exc).__name__}); delete it and re-run the workflow") from None
    meta = table.schema.metadata or {}
    version = meta.get(b"zoo.schema_version", b"").decode()
    if version != SCHEMA_VERSION:
        raise DataError(f"{path}: schema version {version or 'missing'} but this zoo reads version {SCHEMA_VERSION}; regenerate it with the workflow")
    if name is not None and meta.get(b"zoo.table", b"").decode() != name:
        raise DataError(f"{path}: holds table {meta.get(b'zoo.table', b'?').decode()!r}, expected {name!r}")
    return table


def save_checkpoints(path: str | Path, checkpoints: Mapping[int, Mapping[str, Any]], model_ids: list[str],
                     meta: Mapping[str, Any] | None = None) -> None:
    """Save ``{epoch: {tensor: [P, …]}}`` atomically as one safetensors file."""
    from safetensors.torch import save_file

    tensors = {f"e{epoch}/{name}": t.contiguous() for epoch, ts in checkpoints.items() for name, t in ts.items()}
    # One metadata key: safetensors stores metadata as a hash map whose key order varies
    # between processes, so several keys would make identical checkpoints differ in bytes.
    doc = {"format": CHECKPOINT_FORMAT, "model_ids": list(model_ids), "epochs": sorted(checkpoints), **(meta or {})}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"zoo": json.dumps(doc, sort_keys=True)})


def load_checkpoints(path: str | Path, framework: str = "pt") -> tuple[dict[int, dict[str, Any]], list[str], dict[str, Any]]:
    """Inverse of :func:`save_checkpoints`: ``(checkpoints, model_ids, meta)``.

    ``framework="numpy"`` returns NumPy arrays and never imports torch (the ``weights`` job
    needs no torch: importing it is ~1.5 CPU-s of the job's start-up).
    """
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: checkpoint missing; re-run the workflow to train its population")
    try:
        with safe_open(str(path), framework=framework) as fh:
            raw_meta = fh.metadata() or {}
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    except Exception as exc:
        raise DataError(f"{path}: corrupt or truncated checkpoint ({type(exc).__name__}: {str(exc)[:80]}); delete it and re-run the workflow") from None
    doc = _checkpoint_document(raw_meta, path)
    model_ids = doc.pop("model_ids")
    meta = {k: v for k, v in doc.items() if k != "format"}
    ckpts: dict[int, dict[str, Any]] = {}
    for key, t in tensors.items():
        epoch, name = key.split("/", 1)
        ckpts.setdefault(int(epoch[1:]), {})[name] = t
    return dict(sorted(ckpts.items())), model_ids, meta


def _checkpoint_document(raw_meta: Mapping[str, str], path: str | Path) -> dict[str, Any]:
    """The JSON document stored under the single metadata key ``zoo``, format-checked."""
    try:
        doc = json.loads(raw_meta.get("zoo", "{}"))
    except json.JSONDecodeError:
        doc = None
    if not isinstance(doc, dict) or doc.get("format") != CHECKPOINT_FORMAT:
        found = doc.get("format") if isinstance(doc, dict) else None
        raise DataError(f"{path}: not a zoo population checkpoint (format {found!r}); regenerate it")
    return doc


def checkpoint_meta(path: str | Path) -> dict[str, Any]:
    """A checkpoint's metadata (model_ids, epochs, zoo, population, …) without loading tensors."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as fh:  # header only: no torch import
            raw_meta = fh.metadata() or {}
    except Exception as exc:
        raise DataError(f"{path}: corrupt or truncated checkpoint ({type(exc).__name__}); delete it and re-run the workflow") from None
    return _checkpoint_document(raw_meta, path)
