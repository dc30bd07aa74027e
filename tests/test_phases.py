"""Phase labels follow the documented decision rule; thresholds and margins are stored;
the `zoo landscape` → `zoo phases` path works end to end on a tiny trained zoo."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from zoo.errors import SpecError
from zoo.phases import PhaseThresholds, label_phases, phase_counts

THR = PhaseThresholds(train_loss=0.1, log10_trace=1.0, mc_poor=0.0, mc_eps=0.05, cka=0.5)


def _rows(*rows):
    cols = ["train_loss", "hessian_trace", "mc", "cka_mean", "diverged"]
    return pd.DataFrame([dict(zip(cols, r)) for r in rows])


def test_each_branch_of_the_decision_rule():
    df = _rows(
        (1.0, 100.0, -0.2, 0.9, False),   # high loss, sharp, barrier        → I
        (1.0, 100.0, 0.3, 0.9, False),    # high loss, sharp, mc > 0         → II
        (1.0, 2.0, 0.3, np.nan, False),   # high loss, flat (trace < 10)     → collapsed
        (0.01, 5.0, -0.1, 0.9, False),    # low loss, mc < −0.05             → III
        (0.01, 5.0, -0.01, 0.3, False),   # low loss, connected, low CKA     → IV-A
        (0.01, 5.0, 0.02, 0.8, False),    # low loss, connected, high CKA    → IV-B
        (5e3, np.nan, np.nan, np.nan, True),  # diverged                     → diverged
        (0.01, 5.0, np.nan, 0.8, False),  # no peer seed: mc missing         → unlabelled
    )
    out = label_phases(df, THR)
    assert out["phase"].tolist() == ["I", "II", "collapsed", "III", "IV-A", "IV-B", "diverged", "unlabelled"]


def test_margins_are_distances_to_the_thresholds_on_the_decision_path():
    df = _rows((1.0, 100.0, -0.2, 0.9, False), (0.01, 5.0, -0.01, 0.3, False))
    out = label_phases(df, THR)
    # model 0: loss 1 decade above 0.1, trace 1 decade above 10, mc 0.2 below 0 → nearest: mc
    assert out.loc[0, "margin_train_loss"] == pytest.approx(1.0)
    assert out.loc[0, "margin_log10_trace"] == pytest.approx(1.0)
    assert out.loc[0, "margin_mc"] == pytest.approx(-0.2)
    assert (out.loc[0, "margin"], out.loc[0, "margin_to"]) == (pytest.approx(0.2), "mc")
    # model 1: loss 1 decade below, mc 0.04 above −0.05, CKA 0.2 below 0.5 → nearest: mc
    assert out.loc[1, "margin_train_loss"] == pytest.approx(-1.0)
    assert out.loc[1, "margin_mc"] == pytest.approx(0.04)
    assert out.loc[1, "margin_cka"] == pytest.approx(-0.2)
    assert (out.loc[1, "margin"], out.loc[1, "margin_to"]) == (pytest.approx(0.04), "mc")


def test_thresholds_are_stored_with_every_label():
    out = label_phases(_rows((1.0, 100.0, -0.2, 0.9, False)), THR)
    assert out.loc[0, ["thr_train_loss", "thr_log10_trace", "thr_mc_poor", "thr_mc_eps", "thr_cka"]].tolist() == [0.1, 1.0, 0.0, 0.05, 0.5]


def test_moving_a_threshold_moves_the_label():
    df = _rows((0.01, 5.0, -0.04, 0.9, False))
    assert label_phases(df, THR)["phase"][0] == "IV-B"
    assert label_phases(df, PhaseThresholds(**{**THR.__dict__, "mc_eps": 0.03}))["phase"][0] == "III"


def test_thresholds_from_spec_override_defaults_and_reject_unknown_keys():
    thr = PhaseThresholds.from_spec({"cka": 0.8, "x": "lr"})
    assert thr.cka == 0.8 and thr.train_loss == PhaseThresholds().train_loss
    with pytest.raises(SpecError, match="phases.cak"):
        PhaseThresholds.from_spec({"cak": 0.8})


def test_phase_counts_list_every_label():
    counts = phase_counts(pd.DataFrame({"phase": ["I", "IV-B", "IV-B", "collapsed"]}))
    assert list(counts.index[:5]) == ["I", "II", "III", "IV-A", "IV-B"]
    assert counts["IV-B"] == 2 and counts["II"] == 0 and counts["collapsed"] == 1


TINY_ZOO = """
zoos:
  tiny-phases:
    dataset: digits
    model: {arch: mlp, depth: 1, activation: relu}
    grid:
      width: [2, 16]
      lr: [0.001, 0.1]
    seeds: [0, 1]
    batch_size: 64
    epochs: 2
    checkpoints: [2]
    optimizer: {name: sgd, momentum: 0.9}
    phases: {cka: 0.6}
"""


def test_landscape_and_phases_commands_end_to_end(tmp_path):
    import pyarrow.parquet as pq

    from zoo.cli import main
    from zoo.config import load_config, load_zoos
    from zoo.jobs import train_into_layout, write_zoo_documents

    cfg_path = tmp_path / "zoo.yaml"
    cfg_path.write_text(TINY_ZOO)
    cfg = load_config(cfg_path)
    zoo = load_zoos(cfg)["tiny-phases"]
    lay = write_zoo_documents(zoo, {}, tmp_path)
    d = tmp_path / "zoos" / "tiny-phases"
    for pop in zoo.populations:
        train_into_layout(lay, pop)
        assert main(["landscape", lay.checkpoint(pop), "--population", lay.population_doc(pop),
                     "--models", str(d / "models" / f"{pop}.parquet"), "--out", str(d / "landscape" / f"{pop}.parquet"),
                     "--power-iters", "5", "--probes", "4", "--curve-steps", "10", "--n-eval", "64", "--n-mix", "64"]) == 0
    assert main(["phases", lay.spec, "--landscape", *lay.population_tables(zoo.populations, ("landscape",)),
                 "--metrics", *lay.population_tables(zoo.populations, ("metrics",)),
                 "--models", *lay.population_tables(zoo.populations, ("models",)), "--out", str(d / "phases.parquet"),
                 "--figure", str(d / "figures" / "phase_diagram.png")]) == 0
    land = pq.read_table(d / "landscape" / f"{pop}.parquet").to_pandas()
    assert {"hessian_top_eig", "hessian_trace", "hessian_trace_se", "cka_mean", "mc", "l2_to_peers", "epoch"} <= set(land)
    assert (land["epoch"] == 2).all()
    phases = pq.read_table(d / "phases.parquet")
    assert phases.schema.metadata[b"zoo.table"] == b"phases"
    df = phases.to_pandas()
    assert sorted(df["model_id"]) == sorted(m.model_id for m in zoo.models)
    assert set(df["phase"]) <= {"I", "II", "III", "IV-A", "IV-B", "collapsed", "diverged", "unlabelled"}
    assert (df["thr_cka"] == 0.6).all()  # the zoo's `phases:` override is used and stored
    assert all(math.isfinite(m) for m in df["margin"].dropna())
    assert (d / "figures" / "phase_diagram.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_landscape_rejects_fewer_than_five_curve_points(tmp_path, capsys):
    from zoo.cli import main

    code = main(["landscape", str(tmp_path / "x.safetensors"), "--population", "s", "--models", "m", "--out", "o",
                 "--curve-points", "3"])
    assert code == 1
    assert "at least 5" in capsys.readouterr().err
