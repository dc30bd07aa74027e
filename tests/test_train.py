"""Population training: determinism, equivalence with a plain loop, divergence as data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from zoo.baseline import train_plain
from zoo.config import expand_zoo
from zoo.models import build_module, forward_population
from zoo.train import train_population


def small_zoo(arch="mlp", optimizer="sgd", lr=(0.01, 0.1, 0.5), seeds=(0, 1, 2, 3), epochs=2, batch_size=64):
    model = {"arch": "mlp", "depth": 2, "width": 16} if arch == "mlp" else {"arch": "cnn", "depth": 2, "channels": 4}
    raw = {"dataset": "digits", "model": model, "grid": {"lr": list(lr)}, "seeds": list(seeds),
           "epochs": epochs, "checkpoints": [0, epochs], "batch_size": batch_size,
           "optimizer": {"name": optimizer, "momentum": 0.9, "weight_decay": 1e-4}}
    return expand_zoo("t", raw)


def run(models, checkpoints):
    return train_population([m.spec for m in models], [m.model_id for m in models], checkpoints)


@pytest.mark.parametrize(("arch", "optimizer"), [("mlp", "sgd"), ("mlp", "adam"), ("cnn", "sgd"), ("cnn", "adam")])
def test_weights_independent_of_population_size_and_order(arch, optimizer):
    """Bit-identical: every batched op (bmm, im2col + bmm, elementwise optimizer) computes
    each model's numbers on their own, so neither the population size nor the order matter."""
    zoo = small_zoo(arch, optimizer, lr=(0.01, 0.1), seeds=(0, 1, 2))
    models = list(zoo.models)
    full = run(models, zoo.checkpoints)
    reversed_ = run(models[::-1], zoo.checkpoints)
    alone = run([models[4]], zoo.checkpoints)
    pair = run([models[0], models[4]], zoo.checkpoints)
    last = zoo.checkpoints[-1]
    for name, stacked in full.checkpoints[last].items():
        assert torch.equal(stacked[4], alone.checkpoints[last][name][0]), name
        assert torch.equal(stacked[4], pair.checkpoints[last][name][1]), name
        assert torch.equal(stacked[4], reversed_.checkpoints[last][name][len(models) - 5]), name


def test_population_matches_plain_torch_loop():
    """Same init and data order, torch.optim instead of our batched optimizer."""
    zoo = small_zoo(lr=(0.05,), seeds=(0, 1, 2), epochs=3)
    models = list(zoo.models)
    pop = run(models, zoo.checkpoints)
    final = {r["model_id"]: r["test_acc"] for r in pop.metrics if r["epoch"] == 3}
    for i, m in enumerate(models):
        module, acc = train_plain(m.spec)
        assert abs(final[m.model_id] - acc) <= 0.01
        for name, t in module.state_dict().items():
            np.testing.assert_allclose(pop.checkpoints[3][name][i].numpy(), t.numpy(), atol=1e-4)


def test_adam_population_matches_torch_adam():
    zoo = small_zoo(optimizer="adam", lr=(0.003,), seeds=(5,), epochs=2)
    pop = run(list(zoo.models), zoo.checkpoints)
    module, _ = train_plain(zoo.models[0].spec)
    for name, t in module.state_dict().items():
        np.testing.assert_allclose(pop.checkpoints[2][name][0].numpy(), t.numpy(), atol=1e-4)


def test_diverging_model_is_flagged_while_neighbours_train_on():
    zoo = small_zoo(lr=(0.05, 1e6), seeds=(0,), epochs=3)
    models = list(zoo.models)
    pop = run(models, zoo.checkpoints)
    by_lr = {m["lr"]: i for i, m in enumerate(models)}
    hot, ok = by_lr[1e6], by_lr[0.05]
    assert pop.diverged_epoch[hot] == 1 and pop.diverged_epoch[ok] is None
    rows = {(r["model_id"], r["epoch"]): r for r in pop.metrics}
    assert rows[(models[hot].model_id, 3)]["diverged"] and not rows[(models[hot].model_id, 0)]["diverged"]
    assert rows[(models[ok].model_id, 3)]["test_acc"] > 0.8
    for stacked in pop.checkpoints[3].values():
        assert torch.isfinite(stacked).all()  # frozen at the last finite weights


def test_metrics_agree_with_module_recomputation():
    zoo = small_zoo(lr=(0.1,), seeds=(0, 1), epochs=2)
    models = list(zoo.models)
    pop = run(models, zoo.checkpoints)
    from zoo.data import load_dataset

    ds = load_dataset("digits")
    x, y = torch.from_numpy(ds.x_test), torch.from_numpy(ds.y_test)
    for i, m in enumerate(models):
        params = {k: v[i] for k, v in pop.checkpoints[2].items()}
        module = build_module(m.spec, ds.input_shape, ds.n_classes, params)
        with torch.no_grad():
            logits = module(x)
            batched = forward_population(m.spec, {k: v[i : i + 1] for k, v in pop.checkpoints[2].items()}, x.unsqueeze(0))[0]
        torch.testing.assert_close(logits, batched, atol=1e-5, rtol=1e-5)
        acc = (logits.argmax(-1) == y).double().mean().item()
        loss = torch.nn.functional.cross_entropy(logits.double(), y).item()
        row = next(r for r in pop.metrics if r["model_id"] == m.model_id and r["epoch"] == 2)
        assert row["test_acc"] == pytest.approx(acc)
        assert row["test_loss"] == pytest.approx(loss, rel=1e-5)
        assert row["ggap"] == pytest.approx(row["train_acc"] - row["test_acc"])


def test_train_fraction_uses_a_seeded_subset():
    raw = {"dataset": "digits", "model": {"arch": "mlp", "depth": 1, "width": 8}, "grid": {"lr": [0.1]},
           "seeds": [0, 1], "epochs": 1, "checkpoints": [1], "train_fraction": 0.25}
    zoo = expand_zoo("t", raw)
    a, b = run(list(zoo.models), zoo.checkpoints), run(list(zoo.models), zoo.checkpoints)
    for name in a.checkpoints[1]:
        assert torch.equal(a.checkpoints[1][name], b.checkpoints[1][name])


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_interrupted_training_resumes_to_identical_result(tmp_path, optimizer):
    """A job killed after a checkpoint epoch resumes from its saved state, bit for bit."""
    raw = {"dataset": "digits", "model": {"arch": "mlp", "depth": 1, "width": 8}, "grid": {"lr": [0.05, 50.0]},
           "seeds": [0, 1], "epochs": 4, "checkpoints": [0, 1, 2, 4], "batch_size": 128,
           "optimizer": {"name": optimizer, "momentum": 0.9}}
    zoo = expand_zoo("t", raw)
    specs, ids = [m.spec for m in zoo.models], [m.model_id for m in zoo.models]
    straight = train_population(specs, ids, zoo.checkpoints)
    state = tmp_path / "state.pt"
    partial = train_population(specs, ids, zoo.checkpoints, state_path=state, stop_after_epoch=2)
    assert state.is_file() and max(partial.checkpoints) == 2
    resumed = train_population(specs, ids, zoo.checkpoints, state_path=state)
    assert resumed.diverged_epoch == straight.diverged_epoch
    for epoch in straight.checkpoints:
        for name, t in straight.checkpoints[epoch].items():
            assert torch.equal(t, resumed.checkpoints[epoch][name]), (epoch, name)
    strip = [{k: v for k, v in r.items() if k != "wall_s"} for r in straight.metrics]
    assert strip == [{k: v for k, v in r.items() if k != "wall_s"} for r in resumed.metrics]


def test_foreign_resume_state_is_ignored(tmp_path):
    zoo = small_zoo(lr=(0.1,), seeds=(0,), epochs=2)
    specs, ids = [m.spec for m in zoo.models], [m.model_id for m in zoo.models]
    state = tmp_path / "state.pt"
    state.write_bytes(b"garbage")
    a = train_population(specs, ids, zoo.checkpoints, state_path=state)
    b = train_population(specs, ids, zoo.checkpoints)
    for name, t in a.checkpoints[2].items():
        assert torch.equal(t, b.checkpoints[2][name])
