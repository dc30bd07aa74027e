"""A changed spec is fully reflected by the FIRST re-run: every table, figure, catalog row and
manifest equals a clean run of the new spec (timing columns aside), and nothing an older
spec made is left where a reader, the catalog or `zoo verify` would see it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml
from test_workflow import env, project_copy, snakemake

from zoo.catalog import run_query

pytestmark = pytest.mark.slow

#: Columns that measure time or the machine, not what was trained.
TIMING = ("wall_s",)
#: Files whose bytes hold timings (their content is compared table by table instead).
TIMED_FILES = ("provenance.html", "manifest.json")

BASE = {
    "dataset": "digits",
    "model": {"arch": "mlp", "depth": 1, "activation": "relu"},
    "grid": {"width": [4, 8], "lr": [0.05, 0.5]},
    "seeds": [0, 1],
    "epochs": 2,
    "checkpoints": [0, 1, 2],
    "optimizer": {"name": "sgd", "momentum": 0.9},
    "batch_size": 64,
}


def config(**changes) -> dict:
    settings = changes.pop("settings", {})
    zoo = {**BASE, **changes}
    return {"zoos": {"change": zoo}, "settings": settings,
            "learn": {"learners": ["statnn-ridge"], "tasks": ["test_acc"], "augments": ["none"], "seeds": [0]}}


class _NoAliases(yaml.SafeDumper):
    """Write shared values out in full: zoo specs refuse YAML anchors and aliases."""

    def ignore_aliases(self, data):
        return True


def run(work: Path, cfg: dict) -> None:
    path = work / "spec.yaml"
    path.write_text(yaml.dump(cfg, Dumper=_NoAliases))
    snakemake(work, "--configfile", str(path))


def outputs(work: Path) -> dict[str, Path]:
    data = work / "data"
    return {str(p.relative_to(data)): p for p in sorted(data.rglob("*"))
            if p.is_file() and not {"logs", "benchmarks"} & set(p.relative_to(data).parts)
            and not p.name.endswith(".duckdb") and not p.name.startswith(".")}


def assert_same_outputs(rerun: Path, clean: Path) -> None:
    a, b = outputs(rerun), outputs(clean)
    assert sorted(a) == sorted(b), f"files differ: only in re-run {sorted(set(a) - set(b))}, " \
                                   f"only in clean run {sorted(set(b) - set(a))}"
    for rel, path in a.items():
        if rel.endswith(".parquet"):
            left, right = pq.read_table(path).to_pandas(), pq.read_table(b[rel]).to_pandas()
            left = left.drop(columns=[c for c in TIMING if c in left])
            right = right.drop(columns=[c for c in TIMING if c in right])
            pd.testing.assert_frame_equal(left, right, obj=rel)
        elif Path(rel).name not in TIMED_FILES:
            assert path.read_bytes() == b[rel].read_bytes(), f"{rel} differs from the clean run's"
    for table in ("models", "metrics", "weights", "spectral", "landscape", "phases", "results"):
        sql = f"SELECT count(*) AS n, count(DISTINCT model_id) AS m FROM {table}" if table != "results" else \
              "SELECT count(*) AS n, count(*) AS m FROM results"
        assert run_query(sql, rerun / "data" / "zoo.duckdb").to_pylist() == \
               run_query(sql, clean / "data" / "zoo.duckdb").to_pylist(), table
    verify = subprocess.run(["zoo", "verify", "data"], cwd=rerun, env=env(), capture_output=True, text=True)
    assert verify.returncode == 0, verify.stdout + verify.stderr


def workdir(path: Path) -> Path:
    path.mkdir(parents=True)
    return project_copy(path)


def clean_run(tmp_path: Path, name: str, cfg: dict) -> Path:
    work = workdir(tmp_path / name)
    run(work, cfg)
    return work


@pytest.fixture(scope="module")
def base_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("changes")
    work = workdir(root / "rerun")
    run(work, config())
    assert run_query("SELECT count(*) AS n FROM models", work / "data" / "zoo.duckdb").to_pylist() == [{"n": 8}]
    return work


def test_drop_a_seed_and_change_max_loss_first_rerun_equals_clean_run(base_run, tmp_path):
    new = config(seeds=[0], max_loss=2.5)
    run(base_run, new)
    n = run_query("SELECT count(DISTINCT model_id) AS n, max(seed) AS s FROM models",
                  base_run / "data" / "zoo.duckdb").to_pylist()
    assert n == [{"n": 4, "s": 0}]
    assert_same_outputs(base_run, clean_run(tmp_path, "clean", new))


def test_shift_widths_add_seed_and_resize_populations_first_rerun_equals_clean_run(base_run, tmp_path):
    new = config(grid={"width": [8, 16], "lr": [0.05, 0.5]}, seeds=[0, 1, 2], settings={"population_size": 4})
    run(base_run, new)
    rows = run_query("SELECT count(DISTINCT model_id) AS n, min(width) AS w FROM models WHERE zoo = 'change'",
                     base_run / "data" / "zoo.duckdb").to_pylist()
    assert rows == [{"n": 12, "w": 8}]
    assert_same_outputs(base_run, clean_run(tmp_path, "clean", new))
    # readers handed the zoo folder see the current spec only, never files of older specs
    from zoo.learners.dataset import WeightDataset
    from zoo.plots import read_zoo

    zoo_dir = base_run / "data" / "zoos" / "change"
    assert read_zoo(zoo_dir, "models")["model_id"].nunique() == 12
    assert len({m for m in WeightDataset.from_zoo(zoo_dir).meta["model_id"]}) == 12


def test_nothing_is_rerun_when_the_spec_is_unchanged(base_run):
    cfg = yaml.safe_load((base_run / "spec.yaml").read_text())
    path = base_run / "same.yaml"
    path.write_text(yaml.safe_dump(cfg))
    proc = snakemake(base_run, "--configfile", str(path), "--dry-run")
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_zero_one_axis_and_seed_only_zoos_run_to_a_catalog(tmp_path):
    """Grids that vary fewer than two hyperparameters get phase labels and a figure that says
    why there is no diagram, instead of failing the workflow."""
    zoos = {
        "zero-axis": {**BASE, "grid": {}, "seeds": [0]},
        "seed-only": {**BASE, "grid": {}, "seeds": [0, 1, 2]},
        "lr-only": {**BASE, "grid": {"lr": [0.05, 0.5]}, "seeds": [0, 1]},
        # every model diverges in its first step (cross-entropy at init ≈ 2.3 > max_loss)
        "all-diverged": {**BASE, "grid": {"lr": [0.05]}, "seeds": [0, 1], "max_loss": 0.5},
    }
    work = workdir(tmp_path / "axes")
    run(work, {"zoos": zoos})
    db = work / "data" / "zoo.duckdb"
    rows = run_query("SELECT zoo, count(*) AS n FROM phases GROUP BY zoo ORDER BY zoo", db).to_pylist()
    assert rows == [{"zoo": "all-diverged", "n": 2}, {"zoo": "lr-only", "n": 4}, {"zoo": "seed-only", "n": 3},
                    {"zoo": "zero-axis", "n": 1}]
    assert run_query("SELECT DISTINCT phase FROM phases WHERE zoo = 'all-diverged'", db).to_pylist() == \
        [{"phase": "diverged"}]
    for zoo in zoos:
        meta = pq.read_schema(work / "data" / "zoos" / zoo / "phases.parquet").metadata
        assert b"phase diagram skipped" in meta[b"zoo.note"]
        assert (work / "data" / "zoos" / zoo / "figures" / "phase_diagram.png").read_bytes()[:4] == b"\x89PNG"
