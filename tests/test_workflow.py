"""The demo workflow end to end: Snakemake → Parquet → DuckDB, reproducibly."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from zoo.catalog import run_query

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def env() -> dict[str, str]:
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


def project_copy(dest: Path) -> Path:
    for name in ("Snakefile", "workflow", "config", "profiles", "environment.yml"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, dest / name)
    return dest


def snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(["snakemake", "--cores", "2", *args], cwd=workdir, env=env(),
                          capture_output=True, text=True, timeout=900)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def tree_digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    work = project_copy(tmp_path_factory.mktemp("demo"))
    snakemake(work)
    return work


def test_demo_builds_catalog_with_every_model(demo):
    db = demo / "data" / "zoo.duckdb"
    counts = run_query("SELECT count(DISTINCT model_id) AS n, count(DISTINCT width) AS widths, "
                       "count(DISTINCT lr) AS lrs, count(DISTINCT seed) AS seeds FROM models", db).to_pylist()[0]
    assert counts["n"] >= 96 and counts["widths"] >= 4 and counts["lrs"] >= 4 and counts["seeds"] >= 3
    per_epoch = run_query("SELECT epoch, count(*) AS n FROM metrics GROUP BY epoch ORDER BY epoch", db).to_pylist()
    assert [r["epoch"] for r in per_epoch] == [0, 1, 2, 5, 10, 20]
    assert {r["n"] for r in per_epoch} == {counts["n"]}
    # the grid spans the phases: the hottest lr diverges, a mid lr on wide nets generalises
    hot = run_query("SELECT avg(diverged::INT) AS frac, max(test_acc) AS acc FROM metrics JOIN models USING (model_id) "
                    "WHERE lr = 10 AND epoch = 20", db).to_pylist()[0]
    assert hot["frac"] > 0.5 and hot["acc"] < 0.2
    best = run_query("SELECT max(test_acc) AS a FROM metrics JOIN models USING (model_id) WHERE width = 128 AND epoch = 20", db)
    assert best["a"][0].as_py() > 0.9
    n_weights = run_query("SELECT count(*) AS n FROM weights", db)["n"][0].as_py()
    assert n_weights == counts["n"] * 6 * 6  # models × checkpoints × tensors (3 layers × weight/bias)


def test_rerun_of_finished_workflow_does_nothing(demo):
    proc = snakemake(demo, "--dry-run")
    assert "Nothing to be done" in proc.stdout + proc.stderr


def weights_by_key(data: Path) -> dict[tuple, list[float]]:
    import pyarrow.parquet as pq

    out = {}
    for f in sorted((data / "zoos/digits-mlp/weights").glob("*.parquet")):
        t = pq.read_table(f, columns=["model_id", "epoch", "tensor", "values"]).to_pydict()
        for key, values in zip(zip(t["model_id"], t["epoch"], t["tensor"]), t["values"]):
            out[key] = values
    return out


def test_second_run_with_one_core_and_other_populations_gives_identical_weights(demo, tmp_path):
    """Same spec, `--cores 1` instead of 2, populations of 7 instead of 15: same weights, bit for bit."""
    import yaml

    from zoo.config import load_zoos

    work = project_copy(tmp_path)
    config = yaml.safe_load((work / "config/config.yaml").read_text())
    config["settings"] = {"population_size": 7}
    (work / "config/config.yaml").write_text(yaml.safe_dump(config))
    zoo = load_zoos(config)["digits-mlp"]
    assert {len(p) for p in zoo.populations.values()} != {15}
    targets = [f"data/zoos/digits-mlp/weights/{p}.parquet" for p in zoo.populations]
    proc = subprocess.run(["snakemake", *targets, "--cores", "1"], cwd=work, env=env(), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    first, second = weights_by_key(demo / "data"), weights_by_key(work / "data")
    assert len(first) == len(zoo.models) * 6 * 6
    assert first.keys() == second.keys()
    assert all(first[k] == second[k] for k in first)


def test_malformed_spec_is_one_line_and_touches_nothing(demo, tmp_path):
    before = tree_digest(demo / "data")
    bad = tmp_path / "bad.yaml"
    bad.write_text("zoos:\n  broken:\n    dataset: digits\n    model: {arch: mlp}\n    grid: {lr: [-1.0]}\n"
                   "    seeds: [0]\n    epochs: 1\n    checkpoints: [1]\n")
    proc = snakemake(demo, "--configfile", str(bad), check=False)
    assert proc.returncode != 0
    assert "zoo: error:" in proc.stderr and "grid.lr" in proc.stderr
    assert "Traceback" not in proc.stderr
    cli = subprocess.run(["zoo", "validate", str(bad)], env=env(), capture_output=True, text=True)
    assert cli.returncode == 1 and cli.stderr.count("\n") == 1 and "grid.lr" in cli.stderr
    assert tree_digest(demo / "data") == before
