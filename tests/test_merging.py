"""Merging per grid point: self-averages, constructed cases of known sign, agreement with the
metrics table and with an average rebuilt from the stored permutations, and the documented SQL."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from zoo.learners.augment import apply_permutation, random_permutations
from zoo.merging import merge_groups, merging_rows

torch.set_num_threads(1)

MLP = {"arch": "mlp", "depth": 1, "width": 8, "activation": "relu"}


def _task(n=400, d=4, c=3, seed=0):
    """Linearly separable data and an exact 1-hidden-layer ReLU net for it: h = relu([x; −x]), logits = x·Wᵀ."""
    g = torch.Generator().manual_seed(seed)
    W = torch.randn((c, d), generator=g)
    x = torch.randn((n, d), generator=g)
    y = (x @ W.T).argmax(1)
    net = {"layers.0.weight": torch.cat([torch.eye(d), -torch.eye(d)]), "layers.0.bias": torch.zeros(2 * d),
           "layers.1.weight": torch.cat([W, -W], 1), "layers.1.bias": torch.zeros(c)}
    return net, x, y


def _stack(*nets):
    return {k: torch.stack([n[k] for n in nets]) for k in nets[0]}


def test_averaging_a_model_with_itself_gives_gain_zero():
    net, x, y = _task()
    noisy = {k: v + 0.3 * torch.randn(v.shape, generator=torch.Generator().manual_seed(1)) for k, v in net.items()}
    params = _stack(noisy, noisy)
    rows = merging_rows(MLP, params, {"g": [0, 1]}, x, y, aligned={(0, 1): noisy})
    (row,) = rows
    assert 0 < row["test_acc_mean"] < 1
    assert row["gain_naive"] == 0.0 and row["gain_aligned"] == 0.0
    assert row["loss_gain_naive"] == 0.0 and row["loss_gain_aligned"] == 0.0
    assert row["test_acc_naive"] == row["test_acc_mean"] == row["test_acc_best"]


def test_averaging_two_opposite_perturbations_helps():
    net, x, y = _task()
    eps = {k: 0.8 * torch.randn(v.shape, generator=torch.Generator().manual_seed(2)) for k, v in net.items()}
    plus, minus = ({k: net[k] + s * eps[k] for k in net} for s in (1, -1))
    (row,) = merging_rows(MLP, _stack(plus, minus), {"g": [0, 1]}, x, y)
    assert row["test_acc_naive"] == 1.0  # the average is the exact net
    assert row["gain_naive"] > 0 and row["loss_gain_naive"] > 0
    assert np.isnan(row["gain_aligned"])  # no aligned peers given


def test_averaging_a_permuted_copy_hurts_naively_and_not_after_alignment():
    net, x, y = _task()
    perms = random_permutations(net, np.random.default_rng(0))
    while all((p == np.arange(len(p))).all() for p in perms):
        perms = random_permutations(net, np.random.default_rng(1))
    other = apply_permutation(net, perms)
    back = apply_permutation(other, [np.argsort(p) for p in perms])  # what weight matching recovers
    (row,) = merging_rows(MLP, _stack(net, other), {"g": [0, 1]}, x, y, aligned={(0, 1): back})
    assert row["test_acc_mean"] == 1.0
    assert row["gain_naive"] < 0 and row["loss_gain_naive"] < 0
    assert row["gain_aligned"] == 0.0


def test_groups_of_different_sizes_average_their_own_members():
    g = torch.Generator().manual_seed(0)
    params = {"w": torch.randn((5, 3), generator=g)}
    naive, aligned = merge_groups(params, [[0, 1, 2], [3, 4, 1]])
    assert torch.allclose(naive["w"][0], params["w"][:3].mean(0)) and aligned is None
    assert torch.allclose(naive["w"][1], params["w"][[3, 4, 1]].mean(0))


# ---------------------------------------------------------------- the job on a trained tiny zoo

SPEC = {"dataset": "digits", "model": {"arch": "mlp", "depth": 2}, "grid": {"width": [8], "lr": [0.05, 0.3]},
        "seeds": [0, 1, 2], "epochs": 4, "checkpoints": [0, 4], "batch_size": 64}


@pytest.fixture(scope="module")
def zoo_dir(tmp_path_factory):
    from tiny_zoo import make_tiny_zoo

    from zoo.cli import main
    from zoo.config import load_zoos
    from zoo.layout import ZooLayout

    data = tmp_path_factory.mktemp("merging")
    cfg = {"zoos": {"a": SPEC}}
    make_tiny_zoo(data, cfg)
    zoo, lay = load_zoos(cfg)["a"], ZooLayout(str(data), "a")
    for pop in zoo.populations:
        assert main(["lmc-merging", lay.checkpoint(pop), "--population", lay.population_doc(pop), "--models",
                     lay.table("models", pop), "--lmc", lay.table("lmc", pop), "--merging", lay.table("merging", pop)]) == 0
    return zoo, lay


def test_endpoint_accuracy_is_the_metrics_tables(zoo_dir):
    from zoo.store import read_table

    zoo, lay = zoo_dir
    (pop,) = zoo.populations
    merging = read_table(lay.table("merging", pop), "merging").to_pandas()
    metrics = read_table(lay.table("metrics", pop), "metrics").to_pandas().set_index(["model_id", "epoch"])
    assert len(merging) == 2 and (merging["n_models"] == 3).all()
    for row in merging.itertuples():
        accs = [metrics.loc[(m, 4), "test_acc"] for m in row.model_ids]
        assert row.test_acc_mean == pytest.approx(np.mean(accs), abs=1e-12)
        assert row.test_acc_best == pytest.approx(max(accs), abs=1e-12)
        assert row.model_id == row.model_ids[0]
        assert row.gain_aligned == pytest.approx(row.test_acc_aligned - row.test_acc_mean, abs=1e-12)


def test_aligned_average_rebuilds_from_the_stored_permutations(zoo_dir):
    from zoo.data import load_dataset
    from zoo.models import build_module
    from zoo.store import load_checkpoints, read_table

    zoo, lay = zoo_dir
    (pop,) = zoo.populations
    merging = read_table(lay.table("merging", pop), "merging").to_pandas()
    lmc = read_table(lay.table("lmc", pop), "lmc").to_pandas().set_index(["model_id", "peer_id"])
    ckpts, ids, _ = load_checkpoints(lay.checkpoint(pop))
    net = {m: {k: v[i] for k, v in ckpts[4].items()} for i, m in enumerate(ids)}
    ds = load_dataset("digits")
    spec = zoo.populations[pop][0].spec
    for row in merging.itertuples():
        ref, *peers = row.model_ids
        moved = [net[ref]] + [apply_permutation(net[p], [np.array(q) for q in lmc.loc[(ref, p), "perm"]]) for p in peers]
        avg = {k: torch.stack([m[k] for m in moved]).sum(0) / len(moved) for k in net[ref]}
        module = build_module(spec, ds.input_shape, ds.n_classes, avg)
        with torch.no_grad():
            acc = float((module(torch.from_numpy(ds.x_test)).argmax(1) == torch.from_numpy(ds.y_test)).double().mean())
        assert row.test_acc_aligned == pytest.approx(acc, abs=1.5 / len(ds.y_test))


def test_documented_query_counts_each_zoo_once(zoo_dir, tmp_path):
    """README / docs/analysis.md: merging JOIN phases USING (zoo, model_id), with the same models in two zoos."""
    from zoo.catalog import build_catalog, run_query
    from zoo.store import read_table, write_table

    zoo, lay = zoo_dir
    (pop,) = zoo.populations
    merging = read_table(lay.table("merging", pop), "merging")
    files = []
    for name in ("a", "b"):  # the second zoo: the same models under another zoo name
        m = merging.set_column(merging.schema.get_field_index("zoo"), "zoo", pa.array([name] * merging.num_rows))
        ids = m.column("model_id").to_pylist()
        phases = pa.table({"model_id": ids, "zoo": [name] * len(ids), "phase": ["IV-B"] * len(ids)})
        for table, t in (("merging", m), ("phases", phases)):
            files.append(tmp_path / name / f"{table}.parquet")
            write_table(t, files[-1], table)
    build_catalog(tmp_path, files=files)
    sql = ("SELECT p.phase, count(*) AS n, avg(m.gain_aligned) AS gain FROM merging m "
           "JOIN phases p USING (zoo, model_id) GROUP BY ALL")
    out = run_query(sql, tmp_path / "zoo.duckdb").to_pandas()
    assert out["n"].tolist() == [2 * merging.num_rows]
    assert out["gain"][0] == pytest.approx(float(np.mean(merging.column("gain_aligned").to_numpy())))


def test_merging_figure_is_drawn_and_says_why_when_skipped(zoo_dir, tmp_path):
    from zoo.cli import main
    from zoo.store import write_table

    zoo, lay = zoo_dir
    (pop,) = zoo.populations
    ids = pq.read_table(lay.table("models", pop)).column("model_id").to_pylist()
    phases = tmp_path / "phases.parquet"
    write_table(pa.table({"model_id": ids, "zoo": ["a"] * len(ids), "phase": ["IV-B", "I"] * (len(ids) // 2)}),
                phases, "phases")
    out = tmp_path / "merging.png"
    assert main(["merging-figure", "--merging", lay.table("merging", pop), "--lmc", lay.table("lmc", pop),
                 "--phases", str(phases), "--out", str(out)]) == 0
    assert out.stat().st_size > 10_000
    # a zoo the analysis does not apply to: empty tables with a note still give a figure
    from zoo.cli_analysis import LMC_COLUMNS, MERGING_COLUMNS, _table

    empty = []
    for name, cols in (("merging", MERGING_COLUMNS), ("lmc", LMC_COLUMNS)):
        empty.append(tmp_path / f"empty-{name}.parquet")
        write_table(_table([], cols), empty[-1], name, {"note": "no grid point has two usable seeds"})
    skipped = tmp_path / "skipped.png"
    assert main(["merging-figure", "--merging", str(empty[0]), "--lmc", str(empty[1]), "--phases", str(phases),
                 "--out", str(skipped)]) == 0
    assert skipped.stat().st_size > 1_000
