"""Kill -9 a running workflow, run the same command again: the outputs equal an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from test_workflow import env, project_copy

from zoo.hashing import file_sha256
from zoo.manifest import table_digest

pytestmark = pytest.mark.slow

SPEC = """zoos:
  resume:
    dataset: digits
    model: {arch: mlp, depth: 2}
    grid:
      width: [16, 48, 96]
      lr: [0.01, 0.1]
    seeds: [0, 1]
    epochs: 40
    checkpoints: [0, 5, 10, 20, 30, 40]
    batch_size: 16
    optimizer: {name: sgd, momentum: 0.9}
"""

COMPARED = ("checkpoints", "models", "metrics", "weights")


def targets() -> list[str]:
    """The training stage's outputs (later stages are not what this test is about)."""
    import yaml

    from zoo.config import load_zoos

    zoo = load_zoos(yaml.safe_load(SPEC))["resume"]
    return [f"data/zoos/resume/{kind}/{p}.parquet" for p in zoo.populations for kind in ("models", "metrics", "weights")]


def start(workdir: Path) -> subprocess.Popen:
    """The same command every time: `snakemake TARGETS --cores 2 --configfile resume.yaml`."""
    return subprocess.Popen(["snakemake", *targets(), "--cores", "2", "--configfile", "resume.yaml"],
                            cwd=workdir, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


def outputs(workdir: Path) -> dict[str, str]:
    """Content digests of the zoo's training outputs (Parquet without timing columns)."""
    zoo = workdir / "data/zoos/resume"
    digests = {}
    for kind in COMPARED:
        for f in sorted((zoo / kind).glob("*")):
            digests[f"{kind}/{f.name}"] = table_digest(f) if f.suffix == ".parquet" else file_sha256(f)
    return digests


def prepare(workdir: Path) -> Path:
    workdir.mkdir(parents=True)
    project_copy(workdir)
    # only the resume zoo: replace the default config instead of merging with it
    (workdir / "config/config.yaml").write_text(SPEC)
    (workdir / "resume.yaml").write_text(SPEC)
    return workdir


def test_sigkill_then_same_command_gives_uninterrupted_outputs(tmp_path):
    killed = prepare(tmp_path / "killed")
    proc = start(killed)
    resume_dir = killed / "data/zoos/resume/resume"
    deadline = time.time() + 300
    # wait until a population job has saved mid-training state, then kill everything
    while time.time() < deadline and not any(resume_dir.glob("*.pt")):
        time.sleep(0.2)
    time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert any(resume_dir.glob("*.pt")), "the run was killed before any state was saved"
    assert len(list((killed / "data/zoos/resume/weights").glob("*.parquet"))) < 3, "the run finished before it was killed"

    rerun = start(killed)
    assert rerun.wait(timeout=600) == 0
    assert not any(resume_dir.glob("*.pt")), "resume states are removed once a population is done"

    clean = prepare(tmp_path / "clean")
    assert start(clean).wait(timeout=600) == 0
    assert outputs(killed) == outputs(clean)
    assert len(outputs(clean)) == 4 * 3
    again = subprocess.run(["snakemake", *targets(), "--cores", "2", "--dry-run", "--configfile", "resume.yaml"],
                           cwd=killed, env=env(), capture_output=True, text=True)
    assert "Nothing to be done" in again.stdout + again.stderr
