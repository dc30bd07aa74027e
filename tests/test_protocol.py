"""The learner benchmark protocol: splits by split seed and model id only, the NFN protocol's
fractions, a hyperparameter-only control that never reads weights, bootstrap intervals, and
bad input that fails in one line or becomes a recorded skip.

Synthetic zoos (random MLP weights with a target that depends on them) keep these fast;
tests/test_learners.py runs the same harness on a trained zoo.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from zoo.learners.dataset import WeightDataset
from zoo.learners.harness import LEARNER_KINDS, run
from zoo.learners.scores import bootstrap_tau, seed_summary
from zoo.learners.splits import PROTOCOLS, assign_models, seeded_order

torch.set_num_threads(1)


def synthetic_zoo(n_models: int = 80, epochs: tuple[int, ...] = (0, 3), widths: tuple[int, ...] = (4, 6),
                  seed: int = 0) -> WeightDataset:
    """MLPs 8 → w → 3 whose 'accuracy' is a noisy function of their first layer's scale and of lr."""
    rng = np.random.default_rng(seed)
    params, rows, specs = [], [], {}
    for m in range(n_models):
        mid = f"m{m:04d}"
        w = int(widths[m % len(widths)])
        lr = float(10 ** rng.uniform(-3, -1))
        scale = float(rng.uniform(0.2, 2.0))
        specs[mid] = {"arch": "mlp", "depth": 1, "width": w, "activation": "relu", "lr": lr, "seed": m}
        for ep in epochs:
            g = torch.Generator().manual_seed(m * 100 + ep)
            p = {"layers.0.weight": scale * torch.randn(w, 8, generator=g), "layers.0.bias": torch.randn(w, generator=g),
                 "layers.1.weight": torch.randn(3, w, generator=g), "layers.1.bias": torch.randn(3, generator=g)}
            params.append(p)
            acc = float(np.tanh(scale) * 0.6 + 0.1 * np.log10(lr) + 0.05 * ep + 0.02 * rng.standard_normal())
            rows.append({"model_id": mid, "epoch": ep, "test_acc": acc, "train_acc": acc + 0.05, "ggap": 0.05,
                         "lr": lr, "width": w, "activation": "relu", "weight_decay": 0.0, "seed": m, "arch": "mlp",
                         "epochs": max(epochs)})
    return WeightDataset(params, pd.DataFrame(rows), specs)


def test_split_depends_only_on_split_seed_and_model_ids():
    ids = [f"m{i:03d}" for i in range(200)]
    meta = pd.DataFrame({"model_id": ids})
    a = assign_models(meta, "model", 7)
    b = assign_models(meta.sample(frac=1.0, random_state=3), "model", 7)  # row order does not matter
    assert a == b
    assert a != assign_models(meta, "model", 8)
    # an id's rank key ignores the other ids: dropping one keeps the others' order
    order = seeded_order(ids, 7)
    assert seeded_order([m for m in ids if m != order[10]], 7) == [m for m in order if m != order[10]]


def test_nfn_protocol_holds_out_half_and_splits_the_rest_80_20():
    meta = pd.DataFrame({"model_id": [f"m{i:04d}" for i in range(1000)]})
    p = PROTOCOLS["nfn"]
    sides = pd.Series(assign_models(meta, "model", 0, p.test_frac, p.val_frac))
    counts = sides.value_counts()
    assert counts["test"] == 500 and counts["val"] == 100 and counts["train"] == 400


def test_dropping_a_nonfinite_model_moves_no_other_model_between_sides():
    data = synthetic_zoo()
    _, before = run(data, "syn", "test_acc", "statnn-gbm", "none", [0], split_seed=3)
    broken = data.subset(np.arange(len(data)))
    victim = broken.meta.model_id.iat[len(broken) - 1]  # a model's final checkpoint becomes non-finite
    broken.params[len(broken) - 1] = {k: v.clone() for k, v in broken.params[-1].items()}
    broken.params[-1]["layers.0.weight"][0, 0] = float("nan")
    _, after = run(broken, "syn", "test_acc", "statnn-gbm", "none", [0], split_seed=3)
    assert victim not in set(after.model_id)
    side_before = before.set_index("model_id").side
    side_after = after.set_index("model_id").side
    assert (side_after == side_before.loc[side_after.index]).all()
    assert len(side_after) == len(side_before) - 1


def test_learner_seeds_share_one_split_and_the_split_seed_is_recorded():
    data = synthetic_zoo()
    res, pred = run(data, "syn", "test_acc", "statnn-gbm", "none", [0, 1, 2], split_seed=5)
    sides = pred.pivot_table(index="model_id", columns="seed", values="side", aggfunc="first")
    assert (sides[0] == sides[1]).all() and (sides[0] == sides[2]).all()
    assert set(res.split_seed) == {5} and set(pred.split_seed) == {5} and set(res.protocol) == {"nfn"}
    _, other = run(data, "syn", "test_acc", "statnn-gbm", "none", [0], split_seed=6)
    assert not (other.set_index("model_id").side == sides[0]).all()


def test_nfn_protocol_uses_final_checkpoints_and_pooled_uses_all():
    data = synthetic_zoo(epochs=(0, 3, 5))
    res, pred = run(data, "syn", "test_acc", "statnn-gbm", "none", [0])
    assert set(pred.epoch) == {5} and len(pred) == 80
    assert res.n_test_models[0] == 40 and res.n_val_models[0] == 8 and res.n_train_models[0] == 32
    res_p, pred_p = run(data, "syn", "test_acc", "statnn-gbm", "none", [0], protocol="pooled")
    assert set(pred_p.epoch) == {0, 3, 5} and len(pred_p) == 240
    assert res_p.n_test_models[0] == 16 and set(res_p.protocol) == {"pooled"}
    assert (pred_p.groupby("model_id").side.nunique() == 1).all()


def test_hparams_control_never_reads_weights():
    """Scrambled weights (every tensor replaced by noise) give bit-identical predictions."""
    data = synthetic_zoo()
    g = torch.Generator().manual_seed(1)
    scrambled = WeightDataset([{k: torch.randn(v.shape, generator=g) * 50 for k, v in p.items()} for p in data.params],
                              data.meta, data.specs)
    _, a = run(data, "syn", "test_acc", "hparams-gbm", "none", [0, 1, 2])
    _, b = run(scrambled, "syn", "test_acc", "hparams-gbm", "none", [0, 1, 2])
    np.testing.assert_array_equal(a.y_pred.to_numpy(), b.y_pred.to_numpy())
    # and the estimator itself works on a dataset that has no tensors at all
    from zoo.learners.tabular import HparamsLearner

    empty = WeightDataset([{} for _ in data.params], data.meta, data.specs)
    y = data.meta.test_acc.to_numpy()
    est = HparamsLearner("test_acc").fit(empty, y)
    assert est.columns_ == ["width", "lr", "epoch"]
    assert np.isfinite(est.predict(empty)).all()


def test_hparams_control_leaves_out_the_axis_it_predicts():
    from zoo.learners.tabular import hparam_columns

    meta = synthetic_zoo().meta
    assert "lr" not in hparam_columns(meta, "log_lr", with_epoch=False)
    assert "epoch" not in hparam_columns(meta, "epoch", with_epoch=True)
    assert "seed" not in hparam_columns(meta, "test_acc", with_epoch=True)


def test_bootstrap_interval_resamples_models_and_brackets_tau():
    rng = np.random.default_rng(0)
    y = rng.standard_normal(300)
    pred = y + 0.8 * rng.standard_normal(300)
    from scipy.stats import kendalltau

    tau = kendalltau(pred, y).statistic
    lo, hi = bootstrap_tau(y, [pred], np.arange(300))
    assert lo < tau < hi and hi - lo < 0.2
    assert bootstrap_tau(y, [y], np.arange(300)) == pytest.approx((1.0, 1.0))
    # groups: all rows of a model are drawn together (two copies of each model, same interval width order)
    lo2, hi2 = bootstrap_tau(np.repeat(y, 2), [np.repeat(pred, 2)], np.repeat(np.arange(300), 2))
    assert abs((hi2 - lo2) - (hi - lo)) < 0.05


def test_seed_summary_reports_mean_std_and_interval_of_the_seed_mean():
    data = synthetic_zoo()
    res, pred = run(data, "syn", "test_acc", "equivariant", "none", [0, 1, 2], options={"max_epochs": 2})
    table = seed_summary(res, pred, n_boot=200)
    row = table.iloc[0]
    assert row.n_seeds == 3 and row.seeds == "0,1,2" and row.split_seed == "0"
    assert row.tau_mean == pytest.approx(res.kendall_tau.mean())
    assert row.tau_std == pytest.approx(res.kendall_tau.std(ddof=1))
    assert row.tau_ci_low <= row.tau_mean <= row.tau_ci_high
    assert row.learner_params > 0 and row.n_test_models == 40


# -- bad input ---------------------------------------------------------------------------


@pytest.mark.parametrize("argv, message", [
    (["--learner", "magic", "--task", "test_acc"], "unknown learner 'magic'"),
    (["--learner", "statnn-gbm", "--task", "speed"], "unknown task 'speed'"),
    (["--learner", "statnn-gbm", "--task", "test_acc", "--protocol", "nfm"], "learn.protocol 'nfm'"),
    (["--learner", "statnn-gbm", "--task", "test_acc", "--augment", "rotate"], "unknown augmentation"),
])
def test_cli_refuses_bad_names_in_one_line_and_writes_nothing(tmp_path, capsys, argv, message):
    from zoo.cli import main

    out = tmp_path / "data" / "learners" / "x"
    assert main(["learn", str(tmp_path / "no-zoo-needed"), *argv, "--outdir", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "data").exists()


def test_task_a_zoo_cannot_provide_is_one_line_or_a_skip():
    from zoo.errors import SpecError

    data = synthetic_zoo()
    with pytest.raises(SpecError, match="names no models column 'momentum'"):
        run(data, "syn", "log_momentum", "statnn-gbm", "none", [0])
    res, pred = run(data, "syn", "log_weight_decay", "statnn-gbm", "none", [0, 1])  # one value: nothing to rank
    assert list(res.status) == ["skipped", "skipped"] and "one value" in res.note[0] and len(pred) == 0


def test_nfn_on_an_architecture_it_cannot_take_is_a_recorded_skip():
    data = synthetic_zoo(n_models=12)
    odd = WeightDataset([{"stem.weight": p["layers.0.weight"], "stem.bias": p["layers.0.bias"],
                          "head.weight": p["layers.1.weight"], "head.bias": p["layers.1.bias"]} for p in data.params],
                        data.meta.assign(arch="resnet"), data.specs)
    for learner in ("nfn-hnp", "nfn-np", "equivariant"):
        res, pred = run(odd, "syn", "test_acc", learner, "none", [0])
        assert res.status[0] == "skipped" and "plain mlp/cnn" in res.note[0] and "resnet" in res.note[0]
        assert len(pred) == 0
    mixed = WeightDataset(data.params[:12] + [{**p, "layers.2.weight": torch.zeros(3, 3), "layers.2.bias": torch.zeros(3)}
                                               for p in data.params[12:]], data.meta, data.specs)
    res, _ = run(mixed, "syn", "test_acc", "nfn-hnp", "none", [0])
    assert res.status[0] == "skipped" and "depth" in res.note[0]


def test_every_learner_family_is_known():
    assert set(LEARNER_KINDS.values()) == {"hparams", "tabular", "neural"}
    assert {"hparams-gbm", "nfn-np", "nfn-hnp", "equivariant", "statnn-gbm", "flat-mlp"} <= set(LEARNER_KINDS)


def test_harness_learners_are_the_config_enum():
    """zoo.enums.LEARNERS (the config schema's list) names exactly the learners the harness builds."""
    from zoo import enums

    assert set(LEARNER_KINDS) == set(enums.LEARNERS)


def test_workflow_passes_protocol_and_split_seed():
    from zoo.learners.workflow import learn_args

    args = learn_args({"seeds": [0, 1, 2], "protocol": "pooled", "split_seed": 4})
    assert "--protocol pooled" in args and "--split-seed 4" in args and "--seeds 0 1 2" in args
    assert "--protocol nfn --split-seed 0" in learn_args({})


def test_protocol_names_are_the_config_enum():
    """zoo.enums.LEARN_PROTOCOLS (the schema's learn.protocol) names exactly the protocols of zoo.learners.splits."""
    from zoo import enums

    assert tuple(PROTOCOLS) == enums.LEARN_PROTOCOLS


def test_paired_bootstrap_of_a_difference_is_tighter_than_either_interval():
    from zoo.learners.scores import bootstrap_delta

    rng = np.random.default_rng(1)
    y = rng.standard_normal(400)
    shared = rng.standard_normal(400)
    better = y + 0.6 * shared + 0.2 * rng.standard_normal(400)
    worse = y + 0.6 * shared + 0.5 * rng.standard_normal(400)
    groups = np.arange(400)
    lo, hi = bootstrap_delta(y, [better], [worse], groups, n_boot=300)
    assert 0 < lo < hi
    a_lo, a_hi = bootstrap_tau(y, [better], groups, n_boot=300)
    assert hi - lo < a_hi - a_lo
    assert bootstrap_delta(y, [better], [better], groups, n_boot=50) == (0.0, 0.0)


def test_bootstrap_accuracy_brackets_the_accuracy_and_narrows_with_more_models():
    from zoo.learners.scores import bootstrap_accuracy

    rng = np.random.default_rng(2)
    intervals = []
    for n in (100, 1600):
        y = rng.integers(0, 10, n).astype(str)
        preds = [np.where(rng.random(n) < 0.7, y, "x") for _ in range(3)]  # 70 % right, per seed
        lo, hi = bootstrap_accuracy(y, preds, np.arange(n), n_boot=300)
        acc = np.mean([np.mean(p == y) for p in preds])
        assert lo < acc < hi
        intervals.append(hi - lo)
    assert intervals[1] < intervals[0] / 2.5  # ~1/sqrt(16) = 1/4 as wide
