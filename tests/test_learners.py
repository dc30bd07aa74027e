"""Weight-space learners: data loading, features, splits, invariance, and a learner that actually learns.

A tiny zoo (48 one-hidden-layer MLPs on digits, 4 checkpoints) is trained once per module
with the real pipeline (``zoo.jobs.train`` / ``zoo.jobs.weights``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import kendalltau

from zoo.config import expand_zoo
from zoo.learners.augment import permute_hidden
from zoo.learners.dataset import WeightDataset
from zoo.learners.features import STATNN_STATS, statnn_features
from zoo.learners.harness import run
from zoo.learners.nets import FlatMLP, NeuronSetNet, Padder
from zoo.learners.splits import split_rows
from zoo.models import init_params
from zoo.store import load_checkpoints, read_table

torch.set_num_threads(1)

TINY = {
    "dataset": "digits",
    "model": {"arch": "mlp", "depth": 1, "activation": "relu"},
    "grid": {"width": [4, 8], "lr": {"logspace": [-3, 0.5, 8]}},
    "seeds": [0, 1, 2],
    "epochs": 4,
    "checkpoints": [0, 1, 2, 4],
    "optimizer": {"name": "sgd", "momentum": 0.9},
}


@pytest.fixture(scope="module")
def zoo_dir(tmp_path_factory):
    from zoo.jobs import train_into_layout, weights, write_zoo_documents

    zoo = expand_zoo("tiny", TINY)
    lay = write_zoo_documents(zoo, {}, tmp_path_factory.mktemp("data"))
    for pop in zoo.populations:
        train_into_layout(lay, pop)
        weights(lay.checkpoint(pop), lay.table("weights", pop))
    return Path(lay.dir)


@pytest.fixture(scope="module")
def data(zoo_dir):
    return WeightDataset.from_zoo(zoo_dir)


def test_weight_dataset_holds_the_checkpoint_tensors(zoo_dir, data):
    assert len(data) == 48 * 4
    ckpt_file = next((zoo_dir / "checkpoints").glob("*.safetensors"))
    ckpts, ids, _ = load_checkpoints(ckpt_file)
    row = data.meta.index[(data.meta.model_id == ids[3]) & (data.meta.epoch == 2)][0]
    sample = data[row]
    assert list(sample) == ["layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias"]
    for name, t in sample.items():
        assert torch.equal(t, ckpts[2][name][3])
    assert data.meta.loc[row, "test_acc"] >= 0 and "lr" in data.meta.columns


def test_statnn_features_are_the_seven_statistics(data):
    X, cols = statnn_features(data.params[:5])
    assert cols[:7] == [f"layers.0.weight.{s}" for s in STATNN_STATS]
    w = data.params[4]["layers.1.weight"].numpy().astype(np.float64).ravel()
    ref = [w.mean(), w.std(), w.min(), np.percentile(w, 25), np.median(w), np.percentile(w, 75), w.max()]
    np.testing.assert_allclose(X[4, 14:21], ref, rtol=1e-12, atol=1e-12)


def test_statnn_ranks_test_accuracy(data):
    """Pooled protocol: every checkpoint of 20 % of the models is a test sample."""
    assert data.meta.test_acc.std() > 0.1  # the zoo's accuracy varies
    _, pred = run(data, "tiny", "test_acc", "statnn-gbm", "none", [0], protocol="pooled")
    test = pred[pred.side == "test"]
    assert len(test) >= 32
    tau = kendalltau(test.y_pred, test.y_true).statistic
    assert tau > 0.5, f"statnn Kendall tau {tau:.3f}"


def test_statnn_ranks_final_test_accuracy_under_the_nfn_protocol(data):
    """NFN protocol (the default): final checkpoints, half of the 48 models held out."""
    res, pred = run(data, "tiny", "test_acc", "statnn-gbm", "none", [0])
    test = pred[pred.side == "test"]
    assert len(test) == 24 and set(test.epoch) == {4}
    tau = kendalltau(test.y_pred, test.y_true).statistic
    assert tau > 0.5, f"statnn Kendall tau {tau:.3f}"
    assert res.kendall_tau[0] == pytest.approx(tau)
    assert res.tau_ci_low[0] <= tau <= res.tau_ci_high[0]


@pytest.mark.parametrize("split", ["model", "region:lr:high", "region:width:low", "phase:II"])
def test_no_model_in_both_train_and_test(data, split):
    meta = data.meta.copy()
    meta["phase"] = np.where(meta.lr > 0.1, "II", "I")
    for seed in range(5):
        sides = pd.Series(split_rows(meta, split, seed), index=meta.index)
        per_model = sides.groupby(meta.model_id).nunique()
        assert (per_model == 1).all()
        assert set(sides) == {"train", "val", "test"}


def test_region_split_tests_on_the_held_out_grid_region(data):
    sides = split_rows(data.meta, "region:lr:high", 0)
    lrs = np.sort(data.meta.lr.unique())
    assert set(data.meta.lr[sides == "test"]) == set(lrs[-3:])  # top third of 8 values, rounded up
    assert data.meta.lr[sides != "test"].max() < lrs[-3]


def test_model_split_is_seeded_and_reproducible(data):
    a, b, c = (split_rows(data.meta, "model", s) for s in (0, 0, 1))
    assert (a == b).all() and not (a == c).all()


def _mixed_nets(arch_spec, widths, shape):
    key = "width" if arch_spec["arch"] == "mlp" else "channels"
    return [init_params({**arch_spec, key: w, "seed": i}, shape, 10) for i, w in enumerate(widths)]


@pytest.mark.parametrize("arch", ["mlp", "cnn"])
def test_equivariant_net_is_permutation_invariant_and_flat_mlp_is_not(arch):
    if arch == "mlp":
        spec, shape = {"arch": "mlp", "depth": 3, "activation": "relu"}, (64,)
    else:
        spec, shape = {"arch": "cnn", "depth": 3, "kernel": 3, "stride": 1, "activation": "relu"}, (1, 8, 8)
    nets = _mixed_nets(spec, [5, 9, 9, 12], shape)
    rng = np.random.default_rng(0)
    permuted = [permute_hidden(n, rng) for n in nets]
    torch.manual_seed(0)
    for net_cls, pad, invariant in ((NeuronSetNet, False, True), (FlatMLP, True, False)):
        padder = Padder(nets, pad=pad)
        model = net_cls(padder, 1).eval()
        with torch.no_grad():
            for a, b in zip(nets, permuted):
                ya = model(torch.utils.data.default_collate([padder(a)]))
                yb = model(torch.utils.data.default_collate([padder(b)]))
                if invariant:
                    torch.testing.assert_close(ya, yb, atol=1e-5, rtol=1e-5)
                else:
                    assert float((ya - yb).abs().max()) > 1e-4


def test_equivariant_net_ignores_zero_padding():
    """A padded batch of mixed widths gives the same outputs as each network alone."""
    spec = {"arch": "mlp", "depth": 2, "activation": "relu"}
    nets = _mixed_nets(spec, [3, 7], (64,))
    padder = Padder(nets, pad=True)
    torch.manual_seed(0)
    model = NeuronSetNet(padder, 1).eval()
    with torch.no_grad():
        both = model(torch.utils.data.default_collate([padder(n) for n in nets]))
        alone = torch.cat([model(torch.utils.data.default_collate([Padder(nets, pad=False)(n)])) for n in nets])
    torch.testing.assert_close(both, alone, atol=1e-5, rtol=1e-5)


def test_spectral_learner_is_skipped_without_spectral_table(data, zoo_dir):
    res, pred = run(data, "tiny", "test_acc", "spectral-gbm", "none", [0, 1], zoo_dir=zoo_dir)
    assert list(res.status) == ["skipped", "skipped"] and "spectral" in res.note[0]
    assert len(pred) == 0


def test_cli_learn_writes_results_and_predictions(zoo_dir, tmp_path):
    from zoo.cli import main

    out = tmp_path / "learners" / "tiny" / "log_lr" / "statnn-ridge" / "none"
    assert main(["learn", str(zoo_dir), "--task", "log_lr", "--learner", "statnn-ridge", "--seeds", "0", "1",
                 "--epochs", "4", "--outdir", str(out)]) == 0
    res = read_table(out / "results.parquet", "results").to_pandas()
    pred = read_table(out / "predictions.parquet", "predictions").to_pandas()
    assert list(res.seed) == [0, 1] and (res.status == "ok").all()
    assert {"kendall_tau", "r2", "mae", "n_train", "n_test", "wall_s"} <= set(res.columns)
    assert len(pred) == 2 * 48 and set(pred.epoch) == {4}
    first = pred[(pred.seed == 0) & (pred.side == "test")]
    np.testing.assert_allclose(first.y_true, np.log10(first.merge(
        pd.concat([read_table(f).to_pandas() for f in (zoo_dir / "models").glob("*.parquet")]),
        on="model_id").lr), rtol=1e-12)
    assert res.n_test[0] == len(first)


def test_cli_learn_rejects_unknown_learner(zoo_dir, tmp_path, capsys):
    from zoo.cli import main

    assert main(["learn", str(zoo_dir), "--task", "test_acc", "--learner", "magic", "--outdir", str(tmp_path)]) == 1
    assert "unknown learner" in capsys.readouterr().err


def test_neural_learner_is_deterministic_and_runs_with_matching_mixup(data):
    from zoo.learners.neural import NeuralLearner

    sub = data.subset(np.flatnonzero(data.meta.epoch.to_numpy() == 4))
    y = sub.meta.test_acc.to_numpy()
    preds = []
    for _ in range(2):
        est = NeuralLearner("equivariant", augment="mixup-match+permutation", seed=3, max_epochs=2, batch_size=16)
        est.fit(sub.subset(range(40)), y[:40], sub.subset(range(40, 48)), y[40:])
        preds.append(est.predict(sub))
    assert np.isfinite(preds[0]).all()
    np.testing.assert_array_equal(preds[0], preds[1])


def test_spectral_features_follow_the_spectral_table(data, zoo_dir, tmp_path):
    """A spectral table (here: Frobenius norms from NumPy) becomes one column per layer × metric, row-aligned."""
    rows = []
    for (mid, ep), p in zip(data.meta[["model_id", "epoch"]].itertuples(index=False), data.params):
        for name in ("layers.0.weight", "layers.1.weight"):
            rows.append({"model_id": mid, "epoch": ep, "layer": name[:-7],
                         "fro_norm": float(np.linalg.norm(p[name].numpy().astype(np.float64)))})
    spectral = pd.DataFrame(rows)
    from zoo.learners.features import spectral_features

    X, cols = spectral_features(data.meta, spectral)
    assert cols == ["layers.0.fro_norm", "layers.1.fro_norm"]
    i = 17
    np.testing.assert_allclose(X[i, 1], np.linalg.norm(data.params[i]["layers.1.weight"].numpy().astype(np.float64)))
    from zoo.learners.tabular import TabularLearner

    est = TabularLearner("spectral", "ridge", spectral=spectral).fit(data, data.meta.epoch.to_numpy())
    assert est.n_features_in_ == 2


def test_phase_task_is_classification_and_drops_unlabelled(data):
    d = data.subset(np.arange(len(data)))
    d.meta["phase"] = np.where(d.meta.lr > 0.1, "II", np.where(d.meta.lr < 0.003, "unlabelled", "I"))
    res, pred = run(d, "tiny", "phase", "statnn-gbm", "none", [0])
    assert res.status[0] == "ok" and res.kendall_tau.isna()[0]
    assert set(pred.y_true) == {"I", "II"}
    test = pred[pred.side == "test"]
    assert res.accuracy[0] == pytest.approx(float(np.mean(test.y_pred == test.y_true)))


def test_mixup_match_aligns_each_training_network_once(data, monkeypatch):
    """One weight matching per network (not per sampled pair per epoch); the old way is kept to measure it."""
    import zoo.learners.augment as augment
    from zoo.learners.neural import NeuralLearner

    calls = []
    real = augment.weight_matching
    monkeypatch.setattr(augment, "weight_matching", lambda *a, **k: calls.append(1) or real(*a, **k))
    sub = data.subset(np.flatnonzero(data.meta.epoch.to_numpy() == 4))
    y = sub.meta.test_acc.to_numpy()
    train, groups = sub.subset(range(40)), {tuple(p["layers.0.weight"].shape) for p in sub.params[:40]}
    NeuralLearner("equivariant", augment="mixup-match", max_epochs=3, patience=100).fit(
        train, y[:40], sub.subset(range(40, 48)), y[40:])
    assert len(calls) == 40 - len(groups)  # every network but each shape's reference, once
    calls.clear()
    NeuralLearner("equivariant", augment="mixup-match", max_epochs=3, patience=100, align_once=False).fit(
        train, y[:40], sub.subset(range(40, 48)), y[40:])
    assert len(calls) == 3 * 40  # one per sample per epoch


def test_alignment_to_a_reference_keeps_every_network_function(data):
    from zoo.data import load_dataset
    from zoo.learners.augment import align_to_reference
    from zoo.models import build_module

    sub = data.subset(np.flatnonzero(data.meta.epoch.to_numpy() == 4)[:12])
    groups: dict = {}
    for i, p in enumerate(sub.params):
        groups.setdefault(tuple(p["layers.0.weight"].shape), []).append(i)
    aligned = align_to_reference(sub.params, groups)
    ds = load_dataset("digits")
    x = torch.from_numpy(ds.x_test[:64])
    moved = 0
    for i, (a, b) in enumerate(zip(sub.params, aligned)):
        moved += any(not torch.equal(a[k], b[k]) for k in a)
        with torch.no_grad():
            la = build_module(sub.spec(i), ds.input_shape, ds.n_classes, a)(x)
            lb = build_module(sub.spec(i), ds.input_shape, ds.n_classes, b)(x)
        torch.testing.assert_close(la, lb, atol=1e-5, rtol=0)
    assert moved > 0


def test_mixup_match_must_come_before_a_symmetry_step():
    from zoo.errors import SpecError
    from zoo.learners.augment import Augmenter

    with pytest.raises(SpecError, match="mixup-match before permutation"):
        Augmenter("permutation+mixup-match")
    assert Augmenter("mixup-match+permutation").matches
