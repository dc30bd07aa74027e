"""The Python API: open a zoo's catalog, get pandas frames, load a trained model.

    import zoo
    con = zoo.open("data")                         # read-only DuckDB connection, views models, metrics, …
    df = zoo.frame("SELECT * FROM metrics WHERE epoch = 20", "data")   # pandas DataFrame
    net = zoo.load_model("3f2a9c0d1e4b", epoch=20)  # torch.nn.Module, eval mode, ready to call

Everything reads the Parquet files through the catalog ``<data_dir>/zoo.duckdb`` (built by
the workflow's ``catalog`` rule or ``zoo catalog DATA``); nothing is written.
"""

from __future__ import annotations

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
    """A read-only DuckDB connection to the catalog of ``data_dir`` (views: models, metrics, …).

    Close it when done (``con.close()``) or use it as a context manager (``with zoo.open() as con``).
    """
    from zoo.catalog import connect

    return connect(catalog_path(data_dir), read_only=True)


def list_views(data_dir: str | Path = "data") -> list[str]:
    """Names of the views the catalog of ``data_dir`` holds (e.g. ``['metrics', 'models', 'weights']``)."""
    con = open(data_dir)
    try:
        return sorted(r[0] for r in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall())
    finally:
        con.close()


def frame(sql: str, data_dir: str | Path = "data", params: list[Any] | None = None) -> pd.DataFrame:
    """Run read-only ``sql`` over the catalog of ``data_dir``; return a pandas DataFrame.

    ``params`` fill ``?`` placeholders (DuckDB prepared-statement syntax). SQL errors
    become :class:`~zoo.errors.QueryError`.
    """
    import duckdb

    con = open(data_dir)
    try:
        return con.execute(sql, params or []).df()
    except duckdb.Error as exc:
        raise QueryError(f"SQL error: {str(exc).strip().splitlines()[0]}") from None
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


__all__ = ["catalog_path", "checkpoint_path", "frame", "load_model", "list_views", "model_record", "open"]
