"""The workflow on a real (single-node) SLURM cluster gives the same data as a local run.

The cluster is Debian's slurm-wlm + munge on this machine, started by
``tests/cluster/start-slurm.sh`` (root only; installs the packages with apt-get when
missing) and stopped by ``tests/cluster/stop-slurm.sh``. A small zoo (12 models in 3
populations) runs twice in scratch copies of the project: ``snakemake --cores 2`` and
``snakemake --profile profiles/slurm-local``, both up to the ``weights`` and ``spectral``
rules. During the SLURM run one job is killed with ``scancel`` once its ``zoo train`` has
started; the profile's ``retries`` must resubmit it and the run must still finish.

"Identical" means equal content hashes (:func:`content_hash`) of every ``models``,
``metrics`` and ``weights`` table (all rows, all columns except ``wall_s`` and
``git_commit``, which differ between runs by nature: wall-clock time and provenance) and
of every checkpoint's tensors (name, dtype, shape, bytes) with its model ids and epochs
(the rest of the checkpoint metadata is provenance and timing, so it is left out).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CLUSTER = ROOT / "tests" / "cluster"
ZOO = "slurm-test"
# Differ between two runs by nature: wall-clock time, and the commit of the checkout that
# ran (provenance; a commit may land between the two runs).
NONCONTENT_COLUMNS = {"wall_s", "git_commit"}
SMALL_SPEC = {
    "settings": {"population_size": 4},
    "zoos": {
        ZOO: {
            "dataset": "digits",
            "model": {"arch": "mlp", "depth": 1, "activation": "relu"},
            # 3 widths (one population each) × 2 lr × 2 seeds = 12 models
            "grid": {"width": [4, 8, 16], "lr": [0.01, 0.1]},
            "seeds": [0, 1],
            "epochs": 3,
            "checkpoints": [0, 1, 3],
            "optimizer": {"name": "sgd", "momentum": 0.9},
        }
    },
}
N_POPULATIONS = 3
OUTPUT_DIRS = ("checkpoints", "models", "metrics", "weights")
RUN_TIMEOUT_S = 240
# The training path (spec → train → weights) plus one more per-population stage, so a
# population job holds members that could run side by side. Later stages (landscape,
# phases, catalog, figures) are left out to keep the test short as the workflow grows.
UNTIL = ("--until", "weights", "spectral")


# --------------------------------------------------------------------------------------
# helpers


def content_hash(path: Path) -> str:
    """SHA-256 of a zoo output's content, leaving out wall-clock fields (see module doc)."""
    digest = hashlib.sha256()
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        for name in sorted(set(table.column_names) - NONCONTENT_COLUMNS):
            digest.update(name.encode())
            digest.update(json.dumps(table.column(name).to_pylist(), sort_keys=True).encode())
    elif path.suffix == ".safetensors":
        from zoo.store import load_checkpoints

        checkpoints, model_ids, _meta = load_checkpoints(path)  # _meta: provenance and timing
        digest.update(json.dumps([model_ids, sorted(checkpoints)]).encode())
        for epoch, tensors in sorted(checkpoints.items()):
            for name, tensor in sorted(tensors.items()):
                array = tensor.numpy()
                digest.update(f"{epoch}|{name}|{array.dtype}|{array.shape}".encode())
                digest.update(array.tobytes())
    else:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def output_hashes(workdir: Path) -> dict[str, str]:
    """``{relative path: content hash}`` of every population output of the test zoo."""
    base = workdir / "data" / "zoos" / ZOO
    files = sorted(p for d in OUTPUT_DIRS for p in (base / d).glob("*") if p.is_file())
    return {str(p.relative_to(base)): content_hash(p) for p in files}


def scratch_copy(dest: Path) -> Path:
    """The project without outputs/venv/state, with config/config.yaml = the small spec."""
    ignore = shutil.ignore_patterns(".venv", "data", ".snakemake", ".git", "__pycache__",
                                    ".pytest_cache", ".ruff_cache", "*.egg-info")
    shutil.copytree(ROOT, dest, ignore=ignore)
    (dest / "config" / "config.yaml").write_text(yaml.safe_dump(SMALL_SPEC, sort_keys=False))
    return dest


def squeue_jobs(workdir: Path) -> dict[str, str]:
    """``{job id: state}`` of every job (finished ones too) submitted from ``workdir``."""
    out = subprocess.run(["squeue", "-h", "-t", "all", "-o", "%i|%T|%Z"], check=True,
                         capture_output=True, text=True).stdout
    jobs = {}
    for line in out.splitlines():
        job_id, state, cwd = line.split("|", 2)
        if Path(cwd) == workdir:
            jobs[job_id] = state
    return jobs


def submitted_jobs(log: str) -> list[tuple[str, str]]:
    """``[(snakemake job id, SLURM job id)]`` from the executor's "has been submitted" lines."""
    return re.findall(r"^Job (\S+) has been submitted with SLURM jobid (\d+)", log, re.MULTILINE)


def snakemake(workdir: Path, *args: str, log: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    with open(log, "w") as fh:
        return subprocess.Popen(["snakemake", *args], cwd=workdir, stdout=fh,
                                stderr=subprocess.STDOUT, env=env)


def wait(proc: subprocess.Popen, log: Path) -> None:
    try:
        rc = proc.wait(timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        pytest.fail(f"snakemake did not finish in {RUN_TIMEOUT_S} s; log tail:\n{log.read_text()[-3000:]}")
    assert rc == 0, f"snakemake failed (rc {rc}); log tail:\n{log.read_text()[-3000:]}"


# --------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="session")
def slurm_cluster():
    """A running single-node cluster; started (and afterwards stopped) here unless it was up."""
    if os.geteuid() != 0:
        pytest.skip("the local SLURM cluster needs root (apt-get install, slurmd)")
    was_up = subprocess.run(["sinfo", "-h"], capture_output=True).returncode == 0 \
        if shutil.which("sinfo") else False
    proc = subprocess.run([str(CLUSTER / "start-slurm.sh")], capture_output=True, text=True, timeout=600)
    if proc.returncode == 2:
        pytest.skip(proc.stderr.strip().splitlines()[-1])
    assert proc.returncode == 0, f"start-slurm.sh failed:\n{proc.stderr}"
    yield
    if not was_up:
        subprocess.run([str(CLUSTER / "stop-slurm.sh")], timeout=60)


@pytest.fixture(scope="module")
def runs(slurm_cluster):
    """Run the small zoo locally and on SLURM (at the same time), killing one SLURM job."""
    # Not tmp_path_factory: pytest prunes old /tmp/pytest-of-<user>/pytest-N folders, and a
    # concurrent pytest session could delete the working copies while SLURM jobs use them.
    base = Path(tempfile.mkdtemp(prefix="zoo-slurm-test-"))
    local, cluster = scratch_copy(base / "local"), scratch_copy(base / "slurm")
    local_log, cluster_log = base / "local.log", base / "slurm.log"
    cluster_proc = snakemake(cluster, "--profile", "profiles/slurm-local", *UNTIL, log=cluster_log)
    killed = None
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while killed is None and time.monotonic() < deadline and cluster_proc.poll() is None:
        # Kill a job once its `zoo train` has started (its SLURM log shows the inner rule).
        for job_id, state in squeue_jobs(cluster).items():
            logs = list((cluster / ".snakemake" / "slurm_logs").rglob(f"{job_id}.log"))
            if state == "RUNNING" and logs and "localrule train:" in logs[0].read_text():
                killed = job_id
                subprocess.run(["scancel", killed], check=True)
                break
        time.sleep(0.2)
    # The local run starts after the kill, so both do not fight for the 2 cores at start-up.
    local_proc = snakemake(local, "--cores", "2", *UNTIL, log=local_log)
    wait(cluster_proc, cluster_log)
    wait(local_proc, local_log)
    yield {"local": local, "cluster": cluster, "killed": killed, "cluster_log": cluster_log}
    shutil.rmtree(base, ignore_errors=True)


# --------------------------------------------------------------------------------------
# tests


def _profile(name: str) -> dict:
    return yaml.safe_load((ROOT / "profiles" / name / "config.yaml").read_text())


def test_local_cluster_profile_is_the_cluster_profile_plus_local_settings():
    cluster, local = _profile("slurm"), _profile("slurm-local")
    local_only = {"slurm-status-command", "slurm-no-account", "slurm-init-seconds-before-status-checks",
                  "seconds-between-status-checks", "jobs", "latency-wait"}
    assert cluster["executor"] == local["executor"] == "slurm"
    assert set(local) - set(cluster) <= local_only
    for key in set(cluster) - {"jobs", "latency-wait"}:
        assert local.get(key) == cluster[key], f"profiles/slurm-local differs from profiles/slurm in {key!r}"
    # cpus_per_task in default-resources would override every rule's threads.
    assert "cpus_per_task" not in cluster["default-resources"]
    assert {"retries", "rerun-incomplete", "latency-wait"} <= set(cluster)
    assert cluster["retries"] >= 1


@pytest.mark.slurm
def test_killed_job_is_resubmitted_and_workflow_completes(runs):
    assert runs["killed"] is not None, "no SLURM job was ever seen RUNNING"
    states = squeue_jobs(runs["cluster"])
    submissions = submitted_jobs(runs["cluster_log"].read_text())  # [(snakemake job, SLURM id)]
    assert sorted(states) == sorted(slurm_id for _, slurm_id in submissions)
    assert states[runs["killed"]] == "CANCELLED"
    killed_job = next(job for job, slurm_id in submissions if slurm_id == runs["killed"])
    retries = [slurm_id for job, slurm_id in submissions if job == killed_job and slurm_id != runs["killed"]]
    assert len(retries) == 1 and states[retries[0]] == "COMPLETED"
    assert all(state == "COMPLETED" for slurm_id, state in states.items() if slurm_id != runs["killed"])


@pytest.mark.slurm
def test_one_cluster_job_per_population(runs):
    submissions = submitted_jobs(runs["cluster_log"].read_text())
    # Group jobs have UUIDs as Snakemake job ids; single-rule jobs have small integers.
    groups = {job for job, _ in submissions if "-" in job}
    assert len(groups) == N_POPULATIONS
    assert len({job for job, _ in submissions}) == N_POPULATIONS


@pytest.mark.slurm
def test_slurm_outputs_identical_to_local_run(runs):
    local, cluster = output_hashes(runs["local"]), output_hashes(runs["cluster"])
    assert len(local) == N_POPULATIONS * len(OUTPUT_DIRS)
    assert cluster == local
