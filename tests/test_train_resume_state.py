"""Resume state: a saved TrainingState is used only for exactly the specs, data and code it was saved for.

A state saved under other hyperparameters (e.g. an older ``max_loss``) must be ignored, so
the result equals a clean run of the new specs; under unchanged ones it must be resumed
from (not silently recomputed) and give the uninterrupted run bit for bit.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import zoo
import zoo.train as train_module
from zoo.config import expand_zoo
from zoo.data import load_dataset
from zoo.train import TrainingState, resume_fingerprint, train_population

CHECKPOINTS = [0, 1, 2, 4]


@pytest.fixture
def population():
    """Six tiny MLPs (lr 0.05, 0.5, 1.5 × two seeds); at ``max_loss`` 3.0 three of them diverge in epoch 1."""
    raw = {"dataset": "digits", "model": {"arch": "mlp", "depth": 1, "width": 8}, "grid": {"lr": [0.05, 0.5, 1.5]},
           "seeds": [0, 1], "epochs": 4, "checkpoints": CHECKPOINTS, "batch_size": 128,
           "optimizer": {"name": "sgd", "momentum": 0.9}}
    models = list(expand_zoo("t", raw).models)
    # as zoo.jobs.train passes them: the zoo's max_loss added outside the model id
    return [{**m.spec, "max_loss": 1e3} for m in models], [m.model_id for m in models]


@pytest.fixture
def epochs_trained(monkeypatch):
    """The epochs each call of train_population actually trains (appended in order)."""
    trained: list[int] = []
    inner = train_module._train_epoch

    def counting(run, state, epoch):
        trained.append(epoch)
        inner(run, state, epoch)

    monkeypatch.setattr(train_module, "_train_epoch", counting)
    return trained


def assert_same_result(a, b):
    assert a.diverged_epoch == b.diverged_epoch
    assert a.checkpoints.keys() == b.checkpoints.keys()
    for epoch, tensors in a.checkpoints.items():
        for name, t in tensors.items():
            assert torch.equal(t, b.checkpoints[epoch][name]), (epoch, name)
    strip = [{k: v for k, v in r.items() if k != "wall_s"} for r in a.metrics]
    assert strip == [{k: v for k, v in r.items() if k != "wall_s"} for r in b.metrics]


def changed_max_loss(specs):
    return [{**s, "max_loss": 3.0} for s in specs]


def changed_lr_of_one_model(specs):
    return [{**s, "lr": 0.2} if i == 1 else s for i, s in enumerate(specs)]


@pytest.mark.parametrize("change", [changed_max_loss, changed_lr_of_one_model])
def test_state_saved_under_other_specs_is_ignored(tmp_path, population, epochs_trained, change):
    """Killed mid-training, re-run with a changed spec (same model ids): a clean run of the new spec."""
    specs, ids = population
    state = tmp_path / "state.pt"
    partial = train_population(specs, ids, CHECKPOINTS, state_path=state, stop_after_epoch=2)
    assert state.is_file() and max(partial.checkpoints) == 2
    new_specs = change(specs)
    clean = train_population(new_specs, ids, CHECKPOINTS)
    del epochs_trained[:]

    rerun = train_population(new_specs, ids, CHECKPOINTS, state_path=state)

    assert epochs_trained == [1, 2, 3, 4], "trained from scratch, not from the saved epoch 2"
    assert_same_result(rerun, clean)
    # what resuming would have carried over: the old spec's epoch-2 weights
    assert any(not torch.equal(t, rerun.checkpoints[2][name]) for name, t in partial.checkpoints[2].items())


def test_changed_max_loss_flags_the_models_a_clean_run_flags(tmp_path, population):
    """The reported bug: models that a clean run marks diverged must not end as trained models."""
    specs, ids = population
    state = tmp_path / "state.pt"
    train_population(specs, ids, CHECKPOINTS, state_path=state, stop_after_epoch=2)
    rerun = train_population(changed_max_loss(specs), ids, CHECKPOINTS, state_path=state)
    assert rerun.diverged_epoch == [None, None, None, 1, 1, 1]
    final = {r["model_id"]: r for r in rerun.metrics if r["epoch"] == 4}
    assert [final[i]["diverged"] for i in ids] == [False, False, False, True, True, True]


def test_unchanged_specs_resume_from_the_saved_epoch_bit_for_bit(tmp_path, population, epochs_trained):
    specs, ids = population
    straight = train_population(specs, ids, CHECKPOINTS)
    state = tmp_path / "state.pt"
    train_population(specs, ids, CHECKPOINTS, state_path=state, stop_after_epoch=2)
    del epochs_trained[:]

    resumed = train_population([dict(s) for s in specs], list(ids), CHECKPOINTS, state_path=state)

    assert epochs_trained == [3, 4], "resumed after the saved epoch 2"
    assert_same_result(resumed, straight)


def test_fingerprint_changes_with_everything_the_trained_bits_depend_on(population, monkeypatch):
    specs, ids = population
    ds = load_dataset("digits")
    fp = resume_fingerprint(specs, ids, CHECKPOINTS, ds)
    assert resume_fingerprint([dict(s) for s in specs], list(ids), list(CHECKPOINTS), ds) == fp

    def one(i, **kw):
        return [{**s, **kw} if j == i else s for j, s in enumerate(specs)]

    altered_x = ds.x_train.copy()
    altered_x[0, 0, 0, 0] += 1
    variants = {
        "max_loss": ([{**s, "max_loss": 2.0} for s in specs], ids, CHECKPOINTS, ds),
        "lr of one model": (one(2, lr=0.3), ids, CHECKPOINTS, ds),
        "momentum": (one(0, momentum=0.5), ids, CHECKPOINTS, ds),
        "weight_decay": (one(0, weight_decay=1e-3), ids, CHECKPOINTS, ds),
        "seed": (one(0, seed=7), ids, CHECKPOINTS, ds),
        "dropout": (one(0, dropout=0.1), ids, CHECKPOINTS, ds),
        "label_noise": (one(0, label_noise=0.1), ids, CHECKPOINTS, ds),
        "init": (one(0, init="xavier_normal"), ids, CHECKPOINTS, ds),
        "batch_size": ([{**s, "batch_size": 64} for s in specs], ids, CHECKPOINTS, ds),
        "train_fraction": ([{**s, "train_fraction": 0.5} for s in specs], ids, CHECKPOINTS, ds),
        "dataset_options": ([{**s, "dataset_options": {"test_fraction": 0.3}} for s in specs], ids, CHECKPOINTS, ds),
        "model ids": (specs, ids[::-1], CHECKPOINTS, ds),
        "checkpoints": (specs, ids, [0, 1, 4], ds),
        "dataset arrays": (specs, ids, CHECKPOINTS, dataclasses.replace(ds, x_train=altered_x)),
        "dataset meta": (specs, ids, CHECKPOINTS, dataclasses.replace(ds, meta={**ds.meta, "source": "other"})),
    }
    prints = {name: resume_fingerprint(*args) for name, args in variants.items()}
    assert fp not in prints.values()
    assert len(set(prints.values())) == len(prints)

    for module, version in ((torch, "0.0.1"), (zoo, "9.9.9"), (np, "0.0.1")):
        with monkeypatch.context() as m:
            m.setattr(module, "__version__", version)
            assert resume_fingerprint(specs, ids, CHECKPOINTS, ds) != fp, module.__name__


def full_state() -> TrainingState:
    """A TrainingState whose every field holds a distinctive, non-default value."""
    gen = torch.Generator().manual_seed(3)
    gen.manual_seed(5)
    torch.rand(4, generator=gen)
    values = {
        "epoch": 7,
        "params": {"layers.0.weight": torch.randn(2, 3, 4), "layers.0.bias": torch.randn(2, 3)},
        "active": torch.tensor([True, False]),
        "diverged_epoch": [None, 5],
        "checkpoints": {0: {"layers.0.weight": torch.zeros(2, 3, 4)}, 5: {"layers.0.weight": torch.ones(2, 3, 4)}},
        "metrics": [{"model_id": "abc", "epoch": 5, "train_loss": 0.25, "diverged": True, "wall_s": 0.5}],
        "optimizer": {"layers.0.weight/buf": torch.randn(2, 3, 4), "step_count": torch.tensor([9.0, 4.0], dtype=torch.float64)},
        "streams": [np.random.default_rng(s).bit_generator.state for s in (11, 12)],
        "dropout": [gen.get_state(), torch.Generator().manual_seed(9).get_state()],
        "elapsed": 12.5,
    }
    assert values.keys() == {f.name for f in dataclasses.fields(TrainingState)}
    return TrainingState(**values)


def assert_equal_values(a, b, where="state"):
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b), where
        for k in a:
            assert_equal_values(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_equal_values(x, y, f"{where}[{i}]")
    else:
        assert type(a) is type(b) and a == b, where


def test_training_state_save_load_round_trips_every_field(tmp_path):
    state, path = full_state(), tmp_path / "resume" / "state.pt"
    state.save(path, "fingerprint-a")
    loaded = TrainingState.load(path, "fingerprint-a")
    assert loaded is not None
    for f in dataclasses.fields(TrainingState):
        assert_equal_values(getattr(state, f.name), getattr(loaded, f.name), f.name)


def test_training_state_load_ignores_missing_corrupt_foreign_and_other_fingerprints(tmp_path):
    path = tmp_path / "state.pt"
    assert TrainingState.load(path, "fp") is None
    full_state().save(path, "fp")
    assert TrainingState.load(path, "other fp") is None
    path.write_bytes(b"garbage")
    assert TrainingState.load(path, "fp") is None
    torch.save({"fingerprint": "fp", "epoch": 3}, path)  # a state of another layout
    assert TrainingState.load(path, "fp") is None
    torch.save(torch.zeros(3), path)
    assert TrainingState.load(path, "fp") is None


def test_restore_puts_optimizer_and_random_streams_back(tmp_path, population):
    """A captured state restored into a fresh run continues every stream where it stopped."""
    specs, ids = population
    specs = [{**s, "dropout": 0.2} for s in specs]
    run = train_module._setup_run(specs, ids, CHECKPOINTS, None)
    state = TrainingState.start(run)
    train_module._train_epoch(run, state, 1)
    state.capture(run, 1.0)
    fresh = train_module._setup_run(specs, ids, CHECKPOINTS, None)
    state.restore(fresh)
    assert [g.random() for g in fresh.streams] == [g.random() for g in run.streams]
    for a, b in zip(fresh.dropout.generators, run.dropout.generators):
        assert torch.equal(torch.rand(5, generator=a), torch.rand(5, generator=b))
    assert_equal_values(fresh.optimizer.state_dict(), run.optimizer.state_dict())
