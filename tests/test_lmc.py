"""Linear mode connectivity before/after weight matching, against independent references:
a model's own permuted copy, plain nn.Module forwards, hand-made barrier curves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
import torch.nn.functional as F

from zoo.learners.augment import apply_permutation, random_permutations
from zoo.lmc import (
    AnalysisSettings,
    analysis_pairs,
    barrier,
    grid_points,
    linear_path,
    matchable,
    pair_lmc,
)
from zoo.models import build_module, forward_population, param_shapes

torch.set_num_threads(1)

MLP = {"arch": "mlp", "depth": 2, "width": 12, "activation": "relu"}
CNN = {"arch": "cnn", "depth": 2, "channels": 6, "kernel": 3, "stride": 1, "activation": "relu"}
SHAPES = {"mlp": (16,), "cnn": (1, 6, 6)}
SETTINGS = AnalysisSettings(n_eval=64, points=7)


def _net(spec, seed, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(s, generator=g) * scale for k, s in param_shapes(spec, SHAPES[spec["arch"]], 4).items()}


def _stack(*nets):
    return {k: torch.stack([n[k] for n in nets]) for k in nets[0]}


def _batch(spec, Q, n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn((n, *SHAPES[spec["arch"]]), generator=g)
    y = torch.randint(0, 4, (n,), generator=g)
    return x.expand(Q, *x.shape).clone(), y.expand(Q, n).clone()


@pytest.mark.parametrize("spec", [MLP, CNN], ids=["mlp", "cnn"])
def test_weight_matching_recovers_a_random_permutation_of_the_model_itself(spec):
    a = _net(spec, 0)
    perms = random_permutations(a, np.random.default_rng(3))
    b = apply_permutation(a, perms)
    x, y = _batch(spec, 1)
    res = pair_lmc(spec, _stack(a), _stack(b), x, y, ["a|b"], SETTINGS)
    for found, true in zip(res["perm"][0], perms):
        assert np.array_equal(found, np.argsort(true))  # the inverse: peer unit found[j] goes to position j
    assert float(res["barrier_aligned"][0]) == 0.0
    assert abs(float(res["loss_barrier_aligned"][0])) < 1e-6
    assert float(res["l2_aligned"][0]) == 0.0
    assert float(res["alignment_aligned"][0]) == pytest.approx(1.0, abs=1e-9)
    # the naive pair is the same function yet far apart in weight space
    assert float(res["l2_naive"][0]) > 1.0 and float(res["alignment_naive"][0]) < 0.9
    assert float(res["error_a"][0]) == float(res["error_b"][0])


@pytest.mark.parametrize("spec", [MLP, CNN], ids=["mlp", "cnn"])
def test_aligned_barrier_is_computed_on_the_permuted_network_which_keeps_the_function(spec):
    a, b = _net(spec, 1), _net(spec, 2)
    x, y = _batch(spec, 1)
    res = pair_lmc(spec, _stack(a), _stack(b), x, y, ["a|b"], SETTINGS)
    moved = {k: v[0] for k, v in res["aligned"].items()}
    assert any(not torch.equal(moved[k], b[k]) for k in b)  # really permuted
    xb = x[:1]
    same = forward_population(spec, res["aligned"], xb)
    assert torch.allclose(same, forward_population(spec, _stack(b), xb), atol=1e-5, rtol=1e-5)
    # the stored permutation reproduces the permuted network from the peer
    again = apply_permutation(b, res["perm"][0])
    assert all(torch.equal(again[k], moved[k]) for k in b)
    # the aligned line is the straight line from a to the permuted peer, scored as an independent loop does
    ref = _reference_barrier(spec, a, moved, x[0], y[0], SETTINGS.points)
    assert float(res["barrier_aligned"][0]) == pytest.approx(ref[0], abs=1e-12)
    assert float(res["loss_barrier_aligned"][0]) == pytest.approx(ref[1], abs=1e-5)
    assert float(res["l2_aligned"][0]) <= float(res["l2_naive"][0]) + 1e-9


def _reference_barrier(spec, a, b, x, y, points):
    """Error and loss barrier of the straight line, one nn.Module per t (independent of forward_population)."""
    errs, losses = [], []
    ts = np.linspace(0, 1, points)
    for t in ts:
        net = build_module(spec, SHAPES[spec["arch"]], 4, {k: (1 - t) * a[k] + t * b[k] for k in a})
        with torch.no_grad():
            logits = net(x)
        errs.append(float((logits.argmax(-1) != y).double().mean()))
        losses.append(float(F.cross_entropy(logits, y)))
    out = []
    for v in (np.array(errs), np.array(losses)):
        out.append(float(np.max(v - ((1 - ts) * v[0] + ts * v[-1]))))
    return out


def test_naive_barrier_matches_an_independent_loop():
    a, b = _net(MLP, 4), _net(MLP, 5)
    x, y = _batch(MLP, 1)
    res = pair_lmc(MLP, _stack(a), _stack(b), x, y, ["a|b"], SETTINGS, match=False)
    ref = _reference_barrier(MLP, a, b, x[0], y[0], SETTINGS.points)
    assert float(res["barrier_naive"][0]) == pytest.approx(ref[0], abs=1e-12)
    assert float(res["loss_barrier_naive"][0]) == pytest.approx(ref[1], abs=1e-5)
    flat = torch.cat([(a[k].double() - b[k].double()).flatten() for k in a])
    assert float(res["l2_naive"][0]) == pytest.approx(float(flat.norm()), rel=1e-12)
    assert np.isnan(float(res["barrier_aligned"][0])) and res["perm"] is None


def test_barrier_of_hand_made_curves():
    ts = torch.linspace(0, 1, 5, dtype=torch.float64)
    v = torch.tensor([[0.0, 0.1, 0.5, 0.1, 0.0],      # a bump of 0.5 in the middle
                      [0.2, 0.25, 0.3, 0.35, 0.4],    # on the chord: no barrier
                      [0.4, 0.1, 0.1, 0.1, 0.4]],     # below the chord: 0 (the endpoints count)
                     dtype=torch.float64)
    assert barrier(v, ts).tolist() == pytest.approx([0.5, 0.0, 0.0], abs=1e-12)


def test_linear_path_ends_are_the_endpoints_exactly():
    a, b = _net(MLP, 6), _net(MLP, 7)
    x, y = _batch(MLP, 2)
    err, loss = linear_path(MLP, _stack(a, b), _stack(b, a), x, y, torch.linspace(0, 1, 3, dtype=torch.float64), chunk=2)
    logits_a = forward_population(MLP, _stack(a), x[:1])
    assert float(loss[0, 0]) == pytest.approx(float(F.cross_entropy(logits_a[0], y[0])), rel=1e-6)
    assert float(err[0, 0]) == float(err[1, -1]) and float(err[0, -1]) == float(err[1, 0])


def test_pairs_star_from_the_reference_then_the_chain():
    assert analysis_pairs([5]) == []
    assert analysis_pairs([5, 7]) == [(5, 7)]
    assert sorted(analysis_pairs([1, 2, 3])) == [(1, 2), (1, 3), (2, 3)]  # all pairs for 3 seeds
    five = analysis_pairs([0, 1, 2, 3, 4])
    assert five[:4] == [(0, 1), (0, 2), (0, 3), (0, 4)] and len(five) == len(set(five)) == 7


def test_grid_points_group_by_spec_without_seed_in_seed_order():
    specs = [{**MLP, "lr": lr, "seed": s} for lr, s in ((0.1, 2), (0.1, 0), (0.2, 0), (0.1, 1))]
    groups = grid_points(specs, [True, True, True, False])
    assert sorted(groups.values()) == [[1, 0], [2]]  # seed order; the unusable model left out


def test_pair_result_independent_of_the_other_pairs():
    nets = [_net(MLP, s) for s in range(4)]
    x, y = _batch(MLP, 2)
    both = pair_lmc(MLP, _stack(nets[0], nets[2]), _stack(nets[1], nets[3]), x, y, ["p|q", "r|s"], SETTINGS)
    alone = pair_lmc(MLP, _stack(nets[2]), _stack(nets[3]), x[1:], y[1:], ["r|s"], SETTINGS)
    for key in ("barrier_naive", "barrier_aligned", "loss_barrier_aligned", "l2_aligned", "alignment_aligned"):
        assert float(both[key][1]) == float(alone[key][0]), key


def test_only_plain_mlp_and_cnn_are_matched():
    assert matchable(MLP, list(_net(MLP, 0))) and matchable(CNN, list(_net(CNN, 0)))
    resnet = {"arch": "resnet", "depth": 1, "width": 2, "activation": "relu"}
    assert not matchable(resnet, list(param_shapes(resnet, (1, 8, 8), 4)))


# ---------------------------------------------------------------- the job on a trained tiny zoo

SPEC = {"dataset": "digits", "model": {"arch": "mlp", "depth": 2}, "grid": {"width": [8], "lr": [0.05, 0.3]},
        "seeds": [0, 1, 2], "epochs": 4, "checkpoints": [0, 4], "batch_size": 64}


def _trained(tmp_path, spec, name="t"):
    from tiny_zoo import make_tiny_zoo

    from zoo.config import load_zoos
    from zoo.layout import ZooLayout

    cfg = {"zoos": {name: spec}}
    make_tiny_zoo(tmp_path, cfg)
    return load_zoos(cfg)[name], ZooLayout(str(tmp_path), name)


def _run(lay, pop, *extra):
    from zoo.cli import main

    return main(["lmc-merging", lay.checkpoint(pop), "--population", lay.population_doc(pop), "--models",
                 lay.table("models", pop), "--lmc", lay.table("lmc", pop), "--merging", lay.table("merging", pop), *extra])


def test_lmc_table_of_a_population_reproduces_from_checkpoints(tmp_path):
    from zoo.cli_analysis import LMC_COLUMNS, table_schema
    from zoo.store import load_checkpoints, read_table

    zoo, lay = _trained(tmp_path, SPEC)
    (pop,) = zoo.populations
    assert _run(lay, pop) == 0
    table = read_table(lay.table("lmc", pop), "lmc")
    assert table.schema.remove_metadata() == table_schema(LMC_COLUMNS)
    df = table.to_pandas()
    assert len(df) == 2 * 3  # 2 grid points × all 3 pairs of 3 seeds
    assert (df["seed"] < df["peer_seed"]).all() and df["matched"].all() and (df["epoch"] == 4).all()
    assert df.groupby("grid_point").size().tolist() == [3, 3]
    ckpts, ids, _ = load_checkpoints(lay.checkpoint(pop))
    net = {m: {k: v[i] for k, v in ckpts[4].items()} for i, m in enumerate(ids)}
    for row in df.itertuples():
        a, b = net[row.model_id], net[row.peer_id]
        moved = apply_permutation(b, [np.array(p) for p in row.perm])
        dist = torch.cat([(a[k].double() - moved[k].double()).flatten() for k in a]).norm()
        assert row.l2_aligned == pytest.approx(float(dist), rel=1e-9)
    assert (df["barrier_aligned"] <= df["barrier_naive"] + 0.05).mean() >= 0.5
    meta = pq.read_schema(lay.table("lmc", pop)).metadata
    assert meta[b"zoo.note"] == b"" and b"n_eval" in meta[b"zoo.settings"]


def test_single_seed_zoo_writes_empty_tables_with_a_note(tmp_path):
    zoo, lay = _trained(tmp_path, {**SPEC, "seeds": [0], "grid": {"width": [4], "lr": [0.1]}, "epochs": 1,
                                   "checkpoints": [1]})
    (pop,) = zoo.populations
    assert _run(lay, pop) == 0
    for table in ("lmc", "merging"):
        t = pq.read_table(lay.table(table, pop))
        assert t.num_rows == 0 and b"seed pairs" in t.schema.metadata[b"zoo.note"]


def test_unmatched_arch_gets_naive_columns_and_null_aligned_ones(tmp_path):
    spec = {"dataset": "digits", "model": {"arch": "resnet", "depth": 1, "width": 2}, "grid": {"lr": [0.05]},
            "seeds": [0, 1], "epochs": 1, "checkpoints": [1], "batch_size": 128}
    zoo, lay = _trained(tmp_path, spec)
    (pop,) = zoo.populations
    assert _run(lay, pop) == 0
    lmc = pq.read_table(lay.table("lmc", pop))
    df = lmc.to_pandas()
    assert len(df) == 1 and np.isfinite(df["barrier_naive"]).all()
    assert lmc.column("barrier_aligned").null_count == 1 and lmc.column("perm").null_count == 1
    assert b"weight matching supports" in lmc.schema.metadata[b"zoo.note"]
    merging = pq.read_table(lay.table("merging", pop))
    assert merging.num_rows == 1 and merging.column("gain_aligned").null_count == 1


def test_bad_points_option_is_one_line(tmp_path, capsys):
    zoo, lay = _trained(tmp_path, {**SPEC, "grid": {"width": [4], "lr": [0.1]}, "epochs": 1, "checkpoints": [1]})
    (pop,) = zoo.populations
    assert _run(lay, pop, "--points", "2") == 1
    err = capsys.readouterr().err
    assert "--points" in err and "Traceback" not in err


@pytest.mark.slow
def test_aligned_barrier_not_above_naive_for_most_pairs_of_the_phase_grid(tmp_path):
    """config/phases-digits.yaml (294 MLPs): the seed paper predicts most pairs get more connected."""
    import pandas as pd

    from zoo.config import load_config, load_zoos
    from zoo.jobs import train_into_layout, write_zoo_documents

    cfg = load_config(Path(__file__).resolve().parent.parent / "config" / "phases-digits.yaml")
    zoo = load_zoos(cfg)["phases-digits"]
    lay = write_zoo_documents(zoo, {}, tmp_path)
    for pop in zoo.populations:
        train_into_layout(lay, pop)
        assert _run(lay, pop) == 0
    df = pd.concat([pq.read_table(lay.table("lmc", p)).to_pandas() for p in zoo.populations])
    frac = float((df["barrier_aligned"] <= df["barrier_naive"]).mean())
    print(f"phases-digits: aligned barrier <= naive for {frac:.1%} of {len(df)} pairs")
    assert frac > 0.5


def test_regression_zoo_writes_empty_tables_with_a_note(tmp_path):
    spec = {"dataset": "teacher-student", "model": {"arch": "mlp", "depth": 1, "width": 4}, "grid": {"lr": [0.01]},
            "seeds": [0, 1], "epochs": 1, "checkpoints": [1], "batch_size": 128}
    zoo, lay = _trained(tmp_path, spec)
    (pop,) = zoo.populations
    assert _run(lay, pop) == 0
    for table in ("lmc", "merging"):
        t = pq.read_table(lay.table(table, pop))
        assert t.num_rows == 0 and b"regression task" in t.schema.metadata[b"zoo.note"]


def test_landscape_job_writes_the_same_lmc_and_merging_tables_as_the_lmc_merging_command(tmp_path):
    """The workflow's one job per population (``zoo landscape --lmc --merging``) must write
    exactly what the two commands write alone: same rows, same values, same metadata."""
    from zoo.cli import main
    from zoo.store import read_table

    zoo, lay = _trained(tmp_path, SPEC)
    (pop,) = zoo.populations
    common = [lay.checkpoint(pop), "--population", lay.population_doc(pop), "--models", lay.table("models", pop)]
    alone = tmp_path / "alone"
    assert main(["landscape", *common, "--out", str(alone / "landscape.parquet")]) == 0
    assert main(["lmc-merging", *common, "--lmc", str(alone / "lmc.parquet"), "--merging", str(alone / "merging.parquet")]) == 0
    assert main(["landscape", *common, "--out", lay.table("landscape", pop), "--lmc", lay.table("lmc", pop),
                 "--merging", lay.table("merging", pop)]) == 0
    for name in ("landscape", "lmc", "merging"):
        a, b = read_table(alone / f"{name}.parquet", name), read_table(lay.table(name, pop), name)
        assert a.schema == b.schema, name  # metadata (settings, note, population hash) included
        assert a.num_rows > 0 and a.drop_columns(["wall_s"]).equals(b.drop_columns(["wall_s"])), name


def test_landscape_lmc_without_merging_is_one_line(tmp_path, capsys):
    from zoo.cli import main

    zoo, lay = _trained(tmp_path, {**SPEC, "seeds": [0], "grid": {"width": [4], "lr": [0.1]}, "epochs": 1,
                                   "checkpoints": [1]})
    (pop,) = zoo.populations
    capsys.readouterr()  # the training's own lines
    assert main(["landscape", lay.checkpoint(pop), "--population", lay.population_doc(pop), "--models",
                 lay.table("models", pop), "--out", str(tmp_path / "l.parquet"), "--lmc", str(tmp_path / "x.parquet")]) == 1
    err = capsys.readouterr().err.strip()
    assert "--lmc and --merging go together" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "l.parquet").exists()
