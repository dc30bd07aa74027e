"""Cancelling a job (SIGTERM: scancel, Snakemake stopping) ends it promptly, also inside Lightning."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tiny_zoo import make_tiny_zoo

TINY = {"zoos": {"sig": {"dataset": "digits", "model": {"arch": "mlp", "depth": 1, "width": 4},
                         "grid": {"lr": [0.05, 0.1, 0.2, 0.5]}, "seeds": [0, 1, 2], "epochs": 1,
                         "checkpoints": [0, 1]}}}


@pytest.mark.slow
def test_sigterm_stops_a_lightning_learner_and_writes_nothing(tmp_path):
    data = make_tiny_zoo(tmp_path / "data", TINY)
    out = tmp_path / "out"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.Popen(["zoo", "learn", str(data / "zoos" / "sig"), "--task", "test_acc", "--learner", "equivariant",
                             "--seeds", *map(str, range(200)), "--outdir", str(out)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    # the first seed's line: imports are done and the learner fits seed after seed (Trainer.fit)
    seen, t0 = [], time.monotonic()
    while time.monotonic() - t0 < 300:
        line = proc.stderr.readline()
        seen.append(line)
        if "seed 0:" in line or not line:
            break
    assert proc.poll() is None, "".join(seen)[-2000:]
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("zoo learn ignored SIGTERM for 30 s")
    assert proc.returncode == 143, err[-2000:]
    assert "terminated (SIGTERM)" in err.strip().splitlines()[-1]
    assert not out.exists() or not any(out.iterdir())
