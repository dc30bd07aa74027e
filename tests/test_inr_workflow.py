"""A tiny INR zoo through the real workflow: train → weights → spectral → learn → catalog,
with the classifier-only stages skipped by a recorded note, not a failed run."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_workflow import project_copy, snakemake  # noqa: E402

pytestmark = pytest.mark.slow

CONFIG = """
zoos:
  inr-tiny:
    dataset: digits
    model: {arch: siren, width: 8, depth: 2, omega_0: 30.0}
    signals: {per_class: 2, split: both}
    grid: {}
    seeds: [0]
    epochs: 20
    checkpoints: [0, 20]
    optimizer: {name: adam, lr: 1.0e-3}
learn:
  tasks: [class]
  learners: [statnn-gbm]
  augments: [none]
  split: signal
  seeds: [0]
"""


def test_tiny_inr_zoo_runs_to_the_catalog_with_skipped_stages_recorded(tmp_path):
    import duckdb

    work = project_copy(tmp_path)
    (work / "inr.yaml").write_text(CONFIG)
    snakemake(work, "--configfile", "inr.yaml")
    zdir = work / "data" / "zoos" / "inr-tiny"
    note = json.loads((zdir / "skipped.json").read_text())
    assert note["status"] == "skipped" and {"landscape", "phases", "lmc_merging"} <= set(note["stages"])
    assert not (zdir / "landscape").exists() and not (zdir / "phases.parquet").exists()
    con = duckdb.connect(str(work / "data" / "zoo.duckdb"), read_only=True)
    assert con.execute("SELECT count(*) FROM models WHERE signal_split = 'test'").fetchone()[0] == 20
    assert con.execute("SELECT count(*) FROM metrics WHERE psnr_db IS NOT NULL").fetchone()[0] == 80
    assert con.execute("SELECT count(*) FROM spectral").fetchone()[0] > 0
    assert con.execute("SELECT status FROM results").fetchall() == [("ok",)]
