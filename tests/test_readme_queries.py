"""The SQL the README shows is right when two zoos share models.

The same model in two zoos is the same ``model_id`` (a hash of its spec, not of the zoo),
so a join on ``model_id`` alone pairs each row of one zoo with the rows of the other. Two
zoos with identical specs must therefore give exactly twice the counts of one zoo and the
same averages; a wrong join gives four times the counts.
"""

from __future__ import annotations

import copy
import re
import shlex
from pathlib import Path

import pyarrow as pa
import pytest
from tiny_zoo import make_tiny_zoo

from zoo.catalog import build_catalog, run_query
from zoo.store import write_table

ROOT = Path(__file__).resolve().parent.parent
# epochs 20 as in the demo zoo, whose final epoch the README queries filter on
SPEC = {"dataset": "digits", "model": {"arch": "mlp", "depth": 1}, "grid": {"width": [4, 8], "lr": [0.1]},
        "seeds": [0, 1], "epochs": 20, "checkpoints": [0, 20], "batch_size": 256}


def readme_queries() -> list[str]:
    """The SQL of every ``zoo query "…"`` line in the README."""
    text = (ROOT / "README.md").read_text()
    return [shlex.split(line)[2] for line in re.findall(r"^zoo query .*$", text, flags=re.M)]


def add_derived_tables(data: Path, zoos: list[str]) -> list[Path]:
    """Small phases / spectral / results tables for every zoo (their real producers are tested elsewhere)."""
    files = []
    for zoo in zoos:
        models = run_query(f"SELECT model_id FROM models WHERE zoo = '{zoo}' ORDER BY model_id", data / "zoo.duckdb")
        ids = models.column("model_id").to_pylist()
        phases = pa.table({"model_id": ids, "zoo": [zoo] * len(ids), "phase": ["IV-B", "I"] * (len(ids) // 2)})
        spectral = pa.table({"model_id": ids * 2, "zoo": [zoo] * 2 * len(ids), "epoch": [20] * 2 * len(ids),
                             "layer": ["layers.0"] * len(ids) + ["head"] * len(ids),
                             "alpha": [float(i) for i in range(2 * len(ids))]})
        results = pa.table({"zoo": [zoo], "task": ["test_acc"], "learner": ["statnn-gbm"], "augment": ["none"],
                            "split": ["model"], "seed": [0], "kendall_tau": [0.5]})
        for name, table in (("phases", phases), ("spectral", spectral), ("results", results)):
            path = data / "extra" / zoo / f"{name}.parquet"
            write_table(table, path, name)
            files.append(path)
    return files


@pytest.fixture(scope="module")
def catalogs(tmp_path_factory) -> tuple[Path, Path]:
    one = make_tiny_zoo(tmp_path_factory.mktemp("one"), {"zoos": {"a": SPEC}})
    two = make_tiny_zoo(tmp_path_factory.mktemp("two"), {"zoos": {"a": SPEC, "b": copy.deepcopy(SPEC)}})
    for data, zoos in ((one, ["a"]), (two, ["a", "b"])):
        base = list((data / "zoos").rglob("*.parquet"))
        build_catalog(data, files=base + add_derived_tables(data, zoos))
    return one, two


def test_readme_has_queries():
    assert len(readme_queries()) >= 5


@pytest.mark.parametrize("sql", readme_queries())
def test_readme_query_counts_each_zoo_once(catalogs, sql):
    one, two = catalogs
    a = run_query(sql, one / "zoo.duckdb").to_pandas()
    b = run_query(sql, two / "zoo.duckdb").to_pandas()
    counts = [c for c in a.columns if c.startswith("count")]
    keys = [c for c in a.columns if a[c].dtype == object or c in ("width", "lr", "layer", "phase")]
    if counts or not keys:  # grouped counts double; plain row lists double too
        assert len(b) in (len(a), 2 * len(a)), sql
        for c in counts:
            assert b[c].sum() == 2 * a[c].sum(), f"{sql}: {c} is {b[c].sum()} with two zoos, {a[c].sum()} with one"
    else:
        assert len(b) == len(a), sql
    for c in a.columns:
        if c.startswith(("avg", "corr")):
            merged = a.merge(b, on=keys, suffixes=("_1", "_2")) if keys else None
            if merged is not None:
                assert (merged[f"{c}_1"] - merged[f"{c}_2"]).abs().max() < 1e-9, sql
