"""`zoo deploy`: a module deployment of a local checkout that Snakemake runs without hand edits."""

from __future__ import annotations

import subprocess

import pyarrow.parquet as pq
import pytest
import yaml
from test_workflow import ROOT, env, snakemake

from zoo.deploy import deploy_local
from zoo.errors import ZooError


def test_deployment_copies_config_and_points_at_the_checkout(tmp_path):
    target = deploy_local(ROOT, tmp_path / "dep")
    dest = tmp_path / "dep"
    assert target == dest / "workflow" / "Snakefile"
    assert (dest / "config" / "config.yaml").read_bytes() == (ROOT / "config" / "config.yaml").read_bytes()
    assert (dest / "profiles" / "slurm").is_dir() and (dest / "LICENSE").is_file()
    assert f'"{ROOT / "Snakefile"}"' in target.read_text()
    proc = subprocess.run(["snakemake", "--dry-run", "--cores", "1"], cwd=dest, env=env(),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "train" in proc.stdout and "catalog" in proc.stdout


def test_deploy_refuses_to_overwrite_or_deploy_a_non_checkout(tmp_path):
    deploy_local(ROOT, tmp_path / "dep")
    before = (tmp_path / "dep" / "workflow" / "Snakefile").read_bytes()
    with pytest.raises(ZooError, match="--force"):
        deploy_local(ROOT, tmp_path / "dep")
    assert (tmp_path / "dep" / "workflow" / "Snakefile").read_bytes() == before
    deploy_local(ROOT, tmp_path / "dep", force=True)
    with pytest.raises(ZooError, match="not a zoo checkout"):
        deploy_local(tmp_path, tmp_path / "other")
    with pytest.raises(ZooError, match="inside the checkout"):
        deploy_local(ROOT, ROOT / "data" / "deployed")


def test_cli_error_is_one_line(tmp_path):
    proc = subprocess.run(["zoo", "deploy", str(tmp_path / "d"), "--source", str(tmp_path)], env=env(),
                          capture_output=True, text=True)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1 and "--source" in proc.stderr


@pytest.mark.slow
def test_a_deployed_workflow_runs_a_tiny_zoo_to_the_catalog(tmp_path):
    dest = tmp_path / "dep"
    deploy_local(ROOT, dest)
    spec = {"zoos": {"deployed": {"dataset": "digits", "model": {"arch": "mlp", "depth": 1, "activation": "relu"},
                                  "grid": {"width": [4, 8], "lr": [0.1]}, "seeds": [0], "epochs": 1, "checkpoints": [0, 1],
                                  "optimizer": {"name": "sgd", "momentum": 0.9}, "batch_size": 64}},
            "learn": {"learners": ["statnn-ridge"], "tasks": ["test_acc"], "augments": ["none"], "seeds": [0]}}
    (dest / "config" / "tiny.yaml").write_text(yaml.safe_dump(spec))
    # Up to the weights tables: the rules of the checkout ran, from the module, inside dest.
    snakemake(dest, "--configfile", "config/tiny.yaml", "--until", "weights")
    zoo_dir = dest / "data" / "zoos" / "deployed"

    def ids(table: str) -> set[str]:
        return {m for f in (zoo_dir / table).glob("*.parquet")
                for m in pq.read_table(f, columns=["model_id"]).column("model_id").to_pylist()}

    assert len(list((zoo_dir / "weights").glob("*.parquet"))) == 2
    assert len(ids("models")) == 2 and ids("weights") == ids("models")
    assert not (ROOT / "data" / "zoos" / "deployed").exists()
