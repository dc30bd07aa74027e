"""The Python API: open a zoo's catalog, get pandas frames, load a trained model.

    import zoo
    con = zoo.open("data")                         # read-only DuckDB connection, tables models, metrics, …
    df = zoo.frame("SELECT * FROM metrics WHERE epoch = 20", "data")   # pandas DataFrame
    net = zoo.load_model("3f2a9c0d1e4b", epoch=20)  # torch.nn.Module, eval mode, ready to call
    nets = zoo.load_models(ids, epoch=20)           # many at once: each population checkpoint read once
    w = zoo.load_weights(ids, epoch=20)             # {"layers.0.weight": tensor [len(ids), out, in], …}

Everything reads the catalog ``<data_dir>/zoo.duckdb`` (tables loaded from the zoo's Parquet
files by the workflow's ``catalog`` rule or ``zoo catalog DATA``); nothing is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.errors import DataError, QueryError

if TYPE_CHECKING:  # pragma: no cover
    import duckdb
    import pandas as pd
    from torch import nn

CATALOG_NAME = "zoo.duckdb"


def catalog_path(data_dir: str | Path = "data") -> Path:
    """The catalog database of a data folder: ``<data_dir>/zoo.duckdb``."""
    return Path(data_dir) / CATALOG_NAME


def open(data_dir: str | Path = "data") -> duckdb.DuckDBPyConnection:
    """A read-only DuckDB connection to the catalog of ``data_dir`` (tables: models, metrics, …).

    The connection sees the catalog's tables and nothing else: no file, network or
    extension access, configuration locked (see :func:`zoo.catalog.connect`). Close it
    when done (``con.close()``) or use it as a context manager (``with zoo.open() as con``).
    """
    from zoo.catalog import connect

    return connect(catalog_path(data_dir))


def list_tables(data_dir: str | Path = "data") -> list[str]:
    """Names of the tables the catalog of ``data_dir`` holds (e.g. ``['metrics', 'models', 'weights']``).

    The bookkeeping table ``catalog_files`` (source file, SHA-256, rows) is not listed.
    """
    from zoo.catalog import table_names

    con = open(data_dir)
    try:
        return table_names(con)
    finally:
        con.close()


#: Old name of :func:`list_tables` (the catalog held views before it held tables).
list_views = list_tables


def frame(sql: str, data_dir: str | Path = "data", params: list[Any] | None = None,
          allow_read: Sequence[str | Path] = ()) -> pd.DataFrame:
    """Run one read-only statement over the catalog of ``data_dir``; return a pandas DataFrame.

    ``params`` fill ``?`` placeholders (DuckDB prepared-statement syntax). Only one
    SELECT-like statement runs, with no file access except under the folders in
    ``allow_read`` (see :mod:`zoo.catalog`); refused statements and SQL errors raise
    :class:`~zoo.errors.QueryError`.
    """
    import duckdb

    from zoo.catalog import connect, execute_read_only, sql_error_message

    con = connect(catalog_path(data_dir), allow_read)
    try:
        return execute_read_only(con, sql, params).df()
    except duckdb.Error as exc:  # raised while fetching
        raise QueryError(sql_error_message(exc)) from None
    finally:
        con.close()


def model_record(model_id: str, data_dir: str | Path = "data") -> dict[str, Any]:
    """The ``models`` row of ``model_id`` as a dict (``spec`` added: the parsed ``spec_json``).

    The same model may sit in several zoos (its id does not depend on the zoo); its
    weights are identical there, so the first zoo in alphabetical order is used.
    """
    import json

    rows = frame("SELECT * FROM models WHERE model_id = ? ORDER BY zoo, population", data_dir, [model_id])
    if rows.empty:
        raise DataError(f"{catalog_path(data_dir)}: no model {model_id!r} in the models table; "
                        "list ids with: zoo query \"SELECT model_id FROM models LIMIT 10\"")
    rec = rows.iloc[0].to_dict()
    rec["spec"] = json.loads(rec["spec_json"])
    return rec


def checkpoint_path(zoo_name: str, population: str, data_dir: str | Path = "data") -> Path:
    """Where a population's checkpoints live: ``<data_dir>/zoos/<zoo>/checkpoints/<population>.safetensors``."""
    return Path(data_dir) / "zoos" / zoo_name / "checkpoints" / f"{population}.safetensors"


def load_model(model_id: str, epoch: int, data_dir: str | Path = "data") -> nn.Module:
    """The trained network ``model_id`` at checkpoint ``epoch`` as a ready ``torch.nn.Module``.

    The module is in eval mode, holds float32 parameters, and maps inputs shaped like the
    dataset's (e.g. ``[B, 1, 8, 8]`` for digits) to logits ``[B, n_classes]``. Attributes
    ``model_id``, ``epoch``, ``zoo``, ``population`` and ``spec`` say what it is.
    """
    from zoo.models import build_module
    from zoo.store import load_checkpoints

    rec = model_record(model_id, data_dir)
    path = checkpoint_path(rec["zoo"], rec["population"], data_dir)
    ckpts, ids, meta = load_checkpoints(path)
    if model_id not in ids:
        raise DataError(f"{path}: checkpoint lacks model {model_id!r}; re-run the workflow to retrain population {rec['population']}")
    if int(epoch) not in ckpts:
        raise DataError(f"{path}: no checkpoint at epoch {epoch} for model {model_id}; "
                        f"available epochs: {', '.join(map(str, ckpts))}")
    i = ids.index(model_id)
    params = {name: t[i].clone() for name, t in ckpts[int(epoch)].items()}
    module = build_module(rec["spec"], tuple(meta["input_shape"]), int(meta["n_classes"]), params)
    module.eval()
    module.model_id, module.epoch = model_id, int(epoch)
    module.zoo, module.population, module.spec = rec["zoo"], rec["population"], rec["spec"]
    return module


def model_records(model_ids: Sequence[str], data_dir: str | Path = "data") -> dict[str, dict[str, Any]]:
    """The ``models`` rows of ``model_ids`` in one query: ``{model_id: row}`` (``spec`` added, as in
    :func:`model_record`; a model in several zoos comes from the first zoo in alphabetical order).

    An id that is not in the catalog raises :class:`~zoo.errors.DataError` naming it.
    """
    import json

    wanted = list(dict.fromkeys(str(m) for m in model_ids))
    rows = frame("SELECT * FROM models WHERE list_contains(?, model_id) ORDER BY model_id, zoo, population",
                 data_dir, [wanted])
    records: dict[str, dict[str, Any]] = {}
    for rec in rows.to_dict("records"):
        if rec["model_id"] not in records:
            rec["spec"] = json.loads(rec["spec_json"])
            records[rec["model_id"]] = rec
    missing = [m for m in wanted if m not in records]
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise DataError(f"{catalog_path(data_dir)}: no model {', '.join(map(repr, missing[:3]))}{more} in the models "
                        "table; list ids with: zoo query \"SELECT model_id FROM models LIMIT 10\"")
    return records


def _epochs_of(model_ids: Sequence[str], epoch: int | Sequence[int]) -> list[int]:
    """One epoch per id: ``epoch`` itself, or the sequence (same length as ``model_ids``)."""
    if hasattr(epoch, "__index__"):  # an int, or a NumPy integer
        return [int(epoch)] * len(model_ids)
    epochs = [int(e) for e in epoch]
    if len(epochs) != len(model_ids):
        raise DataError(f"load_models: {len(model_ids)} model ids but {len(epochs)} epochs; "
                        "give one epoch for all, or one per id")
    return epochs


def _population_tensors(path: Path, epochs: set[int]) -> tuple[dict[int, dict[str, Any]], list[str], dict[str, Any]]:
    """The stacked tensors of ``epochs`` from one population checkpoint (other epochs are not read)."""
    from safetensors import safe_open

    from zoo.store import _checkpoint_document

    if not path.is_file():
        raise DataError(f"{path}: checkpoint missing; re-run the workflow to train its population "
                        "(or load from the weights table: load_weights(..., source='table'))")
    try:
        with safe_open(str(path), framework="pt") as fh:
            doc = _checkpoint_document(fh.metadata() or {}, path)
            stored = [int(e) for e in doc.get("epochs", [])]
            absent = sorted(epochs - set(stored))
            if absent:
                raise DataError(f"{path}: no checkpoint at epoch {absent[0]}; available epochs: {', '.join(map(str, stored))}")
            tensors: dict[int, dict[str, Any]] = {e: {} for e in epochs}
            for key in fh.keys():
                e, name = key.split("/", 1)
                if int(e[1:]) in tensors:
                    tensors[int(e[1:])][name] = fh.get_tensor(key)
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"{path}: corrupt or truncated checkpoint ({type(exc).__name__}: {str(exc)[:80]}); "
                        "delete it and re-run the workflow") from None
    ids = list(doc.pop("model_ids"))
    return tensors, ids, {k: v for k, v in doc.items() if k != "format"}


def _gather(model_ids: Sequence[str], epochs: Sequence[int], data_dir: str | Path):
    """Yield ``(position, model_id, epoch, record, {tensor: tensor of that model}, checkpoint meta)``,
    reading each population checkpoint once (only the epochs asked for)."""
    records = model_records(model_ids, data_dir)
    by_population: dict[tuple[str, str], list[int]] = {}
    for i, mid in enumerate(model_ids):
        rec = records[mid]
        by_population.setdefault((rec["zoo"], rec["population"]), []).append(i)
    for (zoo_name, population), positions in by_population.items():
        path = checkpoint_path(zoo_name, population, data_dir)
        tensors, ids, meta = _population_tensors(path, {epochs[i] for i in positions})
        index = {m: k for k, m in enumerate(ids)}
        for i in positions:
            mid = model_ids[i]
            if mid not in index:
                raise DataError(f"{path}: checkpoint lacks model {mid!r}; re-run the workflow to retrain population {population}")
            k = index[mid]
            yield i, mid, epochs[i], records[mid], {n: t[k] for n, t in tensors[epochs[i]].items()}, meta


def load_models(model_ids: Sequence[str], epoch: int | Sequence[int], data_dir: str | Path = "data") -> list[nn.Module]:
    """Many trained networks at once: ``[load_model(id, epoch) for id in model_ids]``, but fast.

    ``epoch`` is one checkpoint epoch for all, or one per id (e.g. every model × epoch of a
    zoo in one call). One catalog query finds every model's population; each population
    checkpoint is opened once and only the epochs asked for are read. Returns the modules in
    the order of ``model_ids`` (eval mode, float32, with the attributes of :func:`load_model`);
    each owns its parameters (no memory shared with another module).
    """
    from zoo.models import build_module

    ids = [str(m) for m in model_ids]
    out: list[Any] = [None] * len(ids)
    for i, mid, e, rec, params, meta in _gather(ids, _epochs_of(ids, epoch), data_dir):
        module = build_module(rec["spec"], tuple(meta["input_shape"]), int(meta["n_classes"]),
                              params)  # load_state_dict copies: no memory shared with the checkpoint
        module.eval()
        module.model_id, module.epoch = mid, e
        module.zoo, module.population, module.spec = rec["zoo"], rec["population"], rec["spec"]
        out[i] = module
    return out


def load_weights(model_ids: Sequence[str], epoch: int | Sequence[int], data_dir: str | Path = "data",
                 source: str = "auto") -> dict[str, Any]:
    """The tensors of ``model_ids`` at ``epoch``, shaped and stacked: ``{tensor name: [len(ids), *shape]}``.

    Row ``i`` of every tensor belongs to ``model_ids[i]`` (float32 ``torch.Tensor``; ``.numpy()``
    for NumPy). The models must share an architecture (the same tensor names and shapes,
    e.g. one population, or one width of a zoo); otherwise :class:`~zoo.errors.DataError`
    names the first difference. ``source``: ``"checkpoint"`` (the population checkpoints,
    each read once), ``"table"`` (the catalog's ``weights`` table, for an export made with
    ``--no-checkpoints``), or ``"auto"`` (checkpoints where they exist, else the table).
    Both give the same values.
    """
    import torch

    ids = [str(m) for m in model_ids]
    epochs = _epochs_of(ids, epoch)
    if source not in ("auto", "checkpoint", "table"):
        raise DataError(f"load_weights: source={source!r}; choose 'auto', 'checkpoint' or 'table'")
    if source == "auto":
        records = model_records(ids, data_dir)
        have = all(checkpoint_path(r["zoo"], r["population"], data_dir).is_file() for r in records.values())
        source = "checkpoint" if have else "table"
    per_model: list[dict[str, Any]] = [{} for _ in ids]
    if source == "checkpoint":
        for i, _, _, _, params, _ in _gather(ids, epochs, data_dir):
            per_model[i] = params
    else:
        per_model = _weights_from_table(ids, epochs, data_dir)
    first = per_model[0] if per_model else {}
    for mid, tensors in zip(ids, per_model):
        if {n: tuple(t.shape) for n, t in tensors.items()} != {n: tuple(t.shape) for n, t in first.items()}:
            diff = sorted(set(tensors) ^ set(first)) or [n for n in first if tuple(tensors[n].shape) != tuple(first[n].shape)]
            raise DataError(f"load_weights: model {mid} and {ids[0]} differ in tensor {diff[0]!r} (name or shape); "
                            "stack models of one architecture, e.g. one population or one width")
    return {name: torch.stack([m[name] for m in per_model]) for name in first}


def _weights_from_table(ids: list[str], epochs: list[int], data_dir: str | Path) -> list[dict[str, Any]]:
    """Per id, ``{tensor: torch tensor}`` read from the catalog's ``weights`` table."""
    import numpy as np
    import torch

    model_records(ids, data_dir)  # one-line error for an unknown id
    pairs = sorted(set(zip(ids, epochs)))
    con = open(data_dir)
    try:
        table = con.sql(
            "SELECT w.model_id, w.epoch, w.tensor, w.shape, w.values FROM weights w "
            "JOIN (SELECT unnest(?) AS model_id, unnest(?) AS epoch) q USING (model_id, epoch) "
            "ORDER BY w.model_id, w.epoch, w.tensor",
            params=[[m for m, _ in pairs], [e for _, e in pairs]]).to_arrow_table()
    finally:
        con.close()
    found: dict[tuple[str, int], dict[str, Any]] = {}
    flat = table["values"].combine_chunks()
    offsets, values = flat.offsets.to_numpy(), flat.values.to_numpy(zero_copy_only=False)
    for r, (mid, e, name, shape) in enumerate(zip(table["model_id"].to_pylist(), table["epoch"].to_pylist(),
                                                   table["tensor"].to_pylist(), table["shape"].to_pylist())):
        arr = np.asarray(values[offsets[r]:offsets[r + 1]], dtype=np.float32).reshape(shape)
        found.setdefault((mid, int(e)), {})[name] = torch.from_numpy(arr.copy())
    missing = [p for p in pairs if p not in found]
    if missing:
        raise DataError(f"{catalog_path(data_dir)}: the weights table has no rows for model {missing[0][0]} at epoch "
                        f"{missing[0][1]}; check the epoch with zoo show {missing[0][0]}")
    return [found[(m, e)] for m, e in zip(ids, epochs)]


__all__ = ["catalog_path", "checkpoint_path", "frame", "load_model", "load_models", "load_weights", "list_tables",
           "list_views", "model_record", "model_records", "open"]
