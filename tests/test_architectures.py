"""Architectures and per-model training hooks: the batched form equals the plain module,
a model trained in a population equals the same model trained alone, and dropout, label
noise, init schemes and the regression loss follow their textbook definitions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from zoo.baseline import train_plain
from zoo.config import expand_zoo
from zoo.data import load_dataset
from zoo.models import (
    PopulationDropout,
    build_module,
    forward_population,
    init_params,
    init_population,
    init_std_of,
    n_params,
)
from zoo.train import noisy_labels, train_population

ARCHS = {
    "mlp": {"arch": "mlp", "depth": 2, "width": 12, "activation": "tanh"},
    "cnn": {"arch": "cnn", "depth": 3, "channels": 6, "kernel": 3, "stride": 2, "activation": "relu"},
    "resnet": {"arch": "resnet", "depth": 2, "width": 2, "activation": "gelu"},
    "transformer": {"arch": "transformer", "depth": 2, "width": 8, "heads": 2, "activation": "gelu"},
}


def run(models, checkpoints, dataset=None):
    return train_population([m.spec for m in models], [m.model_id for m in models], checkpoints, dataset=dataset)


def test_small_cnn_zoo_net_has_4970_parameters():
    """Unterthiner et al. 2020: 3 conv layers × 16 channels, stride 2, GAP, dense → 4,970 on MNIST."""
    spec = {"arch": "cnn", "depth": 3, "channels": 16, "kernel": 3, "stride": 2, "activation": "relu"}
    assert n_params(spec, (1, 28, 28), 10) == 4970


def test_transformer_reads_sequences_and_image_rows_as_tokens():
    from zoo.transformer import tokens_of

    assert tokens_of((40,)) == (40, 1) and tokens_of((1, 8, 8)) == (8, 8) and tokens_of((3, 32, 32)) == (32, 96)
    spec = {**ARCHS["transformer"], "seed": 0}
    module = build_module(spec, (40,), 10)
    assert module.blocks[0].attn.qkv.weight.shape == (24, 8) and module.pos.weight.shape == (40, 8)
    params = init_params(spec, (40,), 10)
    assert torch.equal(params["blocks.0.ln1.weight"], torch.ones(8)) and torch.count_nonzero(params["ln_f.bias"]) == 0
    # Permuting the tokens of the input changes the output (positions are embedded).
    x = torch.randn(2, 40)
    with torch.no_grad():
        assert not torch.allclose(module(x), module(x[:, torch.randperm(40)]))


def test_transformer_heads_must_divide_width():
    from zoo.errors import SpecError

    with pytest.raises(SpecError, match="not divisible by heads"):
        n_params({**ARCHS["transformer"], "heads": 3}, (40,), 10)


def test_resnet_width_multiplier_doubles_channels_per_block():
    spec = {"arch": "resnet", "depth": 3, "width": 4, "activation": "relu", "seed": 0}
    module = build_module(spec, (3, 16, 16), 10)
    assert [b.conv2.out_channels for b in module.blocks] == [4, 8, 16]
    assert module.blocks[0].shortcut is None and module.blocks[1].shortcut.stride == (2, 2)
    assert sum(p.numel() for p in module.parameters()) == n_params(spec, (3, 16, 16), 10)


@pytest.mark.parametrize("arch", list(ARCHS))
@pytest.mark.parametrize("init", ["default", "kaiming_normal", "xavier_uniform", "normal"])
def test_forward_population_equals_plain_module(arch, init):
    shape = {"mlp": (1, 8, 8), "transformer": (40,)}.get(arch, (3, 12, 12))
    specs = [{**ARCHS[arch], "seed": s, "init": init} for s in range(4)]
    # Perturbed so that LayerNorm affines and zero biases are exercised too.
    gen = torch.Generator().manual_seed(1)
    params = {k: v + 0.1 * torch.randn(v.shape, generator=gen) for k, v in init_population(specs, shape, 5).items()}
    x = torch.randn(4, 7, *shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        batched = forward_population(specs[0], params, x)
        for i, spec in enumerate(specs):
            module = build_module(spec, shape, 5, {k: v[i] for k, v in params.items()}).eval()
            assert set(module.state_dict()) == set(params)
            # float32 rounding: ≤ 1e-6 relative to the logits' scale (≥ 1).
            scale = max(1.0, batched[i].abs().max().item())
            assert (module(x[i]) - batched[i]).abs().max().item() <= 1e-6 * scale


def zoo_of(arch, dataset="digits", **extra):
    raw = {"dataset": dataset, "model": ARCHS[arch], "grid": {"lr": [0.02, 0.2]}, "seeds": [0, 1],
           "epochs": 2, "checkpoints": [0, 2], "batch_size": 128, "optimizer": {"name": "sgd", "momentum": 0.9},
           "train_fraction": 0.3, **extra}
    return expand_zoo("t", raw)


@pytest.mark.parametrize(("arch", "extra"), [
    ("resnet", {"train_fraction": 0.1}),
    ("transformer", {"grid": {"lr": [0.05], "dropout": [0.0, 0.2]}}),
    ("mlp", {"grid": {"lr": [0.05], "dropout": [0.0, 0.3], "label_noise": [0.0, 0.25],
                      "init": ["default", "xavier_normal"]}}),
    ("cnn", {"grid": {"lr": [0.05], "dropout": [0.0, 0.2], "init": ["kaiming_uniform", "uniform"]}}),
])
def test_model_in_a_population_equals_the_model_trained_alone(arch, extra):
    zoo = zoo_of(arch, **extra)
    models = list(zoo.models)
    full = run(models, zoo.checkpoints)
    for i in (0, len(models) - 1):
        alone = run([models[i]], zoo.checkpoints)
        for name, stacked in full.checkpoints[2].items():
            assert (stacked[i] - alone.checkpoints[2][name][0]).abs().max().item() <= 1e-6, name
        rows = [r for r in full.metrics if r["model_id"] == models[i].model_id]
        assert [r["train_loss"] for r in rows] == pytest.approx([r["train_loss"] for r in alone.metrics], abs=1e-6)


@pytest.mark.parametrize("arch", ["resnet", "transformer"])
def test_population_matches_plain_torch_loop(arch):
    """Independent reference: the nn.Module trained with torch.optim.SGD, one model at a time."""
    zoo = zoo_of(arch, train_fraction=0.1)
    pop = run(list(zoo.models), zoo.checkpoints)
    for i in (0, 3):
        module, _ = train_plain(zoo.models[i].spec)
        for name, t in module.state_dict().items():
            np.testing.assert_allclose(pop.checkpoints[2][name][i].numpy(), t.numpy(), atol=1e-4)


def test_dropout_zeroes_the_rate_and_rescales_survivors():
    h = torch.ones(3, 20_000)
    rates = [0.0, 0.25, 0.6]
    out = PopulationDropout(rates, [1, 2, 3])(h, 0)
    for i, p in enumerate(rates):
        dropped = (out[i] == 0).double().mean().item()
        assert abs(dropped - p) <= 4 * math.sqrt(p * (1 - p) / 20_000) + 1e-12
        kept = out[i][out[i] != 0]
        torch.testing.assert_close(kept, torch.full_like(kept, 1 / (1 - p)))


def test_dropout_stream_is_per_model():
    a = PopulationDropout([0.5, 0.5], [7, 8])(torch.ones(2, 50), 0)
    b = PopulationDropout([0.5], [8])(torch.ones(1, 50), 0)
    assert torch.equal(a[1], b[0]) and not torch.equal(a[0], a[1])


def test_label_noise_flips_exactly_the_fraction_within_the_subset_to_other_classes():
    y = np.arange(1000) % 10
    subset = np.arange(0, 1000, 2)
    noisy = noisy_labels({"seed": 3, "label_noise": 0.2}, y, subset, 10)
    changed = np.flatnonzero(noisy != y)
    assert len(changed) == 100 and np.isin(changed, subset).all()
    assert noisy_labels({"seed": 3}, y, subset, 10) is y


def test_label_noise_training_reports_accuracy_on_the_labels_it_fits():
    """Memorisation view (Zhang et al. 2017): train accuracy is measured on the noisy labels."""
    raw = {"dataset": "digits", "model": {"arch": "mlp", "depth": 1, "width": 8}, "grid": {"lr": [0.1]},
           "seeds": [0], "epochs": 1, "checkpoints": [0], "label_noise": 0.5}
    zoo = expand_zoo("t", raw)
    res = run(list(zoo.models), zoo.checkpoints)
    ds = load_dataset("digits")
    params = {k: v[0] for k, v in res.checkpoints[0].items()}
    module = build_module(zoo.models[0].spec, ds.input_shape, ds.n_classes, params)
    y_fit = noisy_labels(zoo.models[0].spec, ds.y_train, np.arange(len(ds.y_train)), 10)
    with torch.no_grad():
        pred = module(torch.from_numpy(ds.x_train)).argmax(-1).numpy()
    assert res.metrics[0]["train_acc"] == pytest.approx(np.mean(pred == y_fit))


@pytest.mark.parametrize("scheme", ["kaiming_normal", "kaiming_uniform", "xavier_normal", "xavier_uniform", "normal", "uniform"])
def test_init_scheme_std_matches_torch_nn_init(scheme):
    """σ from torch.nn.init's own fan computation and gains; sample std of a big layer within 3 %."""
    spec = {"arch": "mlp", "depth": 1, "width": 400, "activation": "relu", "seed": 0, "init": scheme, "init_std": 0.02}
    params = init_params(spec, (300,), 10)
    w = params["layers.0.weight"]
    fan_in, fan_out = torch.nn.init._calculate_fan_in_and_fan_out(w)
    reference = {"kaiming": torch.nn.init.calculate_gain("relu") / math.sqrt(fan_in),
                 "xavier": math.sqrt(2.0 / (fan_in + fan_out)), "normal": 0.02, "uniform": 0.02}[scheme.split("_")[0]]
    assert init_std_of(scheme, tuple(w.shape), 0.02) == pytest.approx(reference)
    assert w.std().item() == pytest.approx(reference, rel=0.03)
    assert torch.count_nonzero(params["layers.0.bias"]) == 0
    if scheme.endswith("uniform"):
        assert w.abs().max().item() <= reference * math.sqrt(3) + 1e-7


def test_conv_init_fans_match_torch():
    w_shape = (16, 8, 3, 3)
    fan_in, fan_out = torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(w_shape))
    assert init_std_of("xavier_normal", w_shape) == pytest.approx(math.sqrt(2 / (fan_in + fan_out)))


def test_regression_metrics_are_mse_and_r2_as_scikit_learn_computes_them():
    from sklearn.metrics import mean_squared_error, r2_score

    raw = {"dataset": "teacher-student", "dataset_options": {"n_train": 400, "n_test": 200},
           "model": {"arch": "mlp", "depth": 1, "width": 32, "activation": "tanh"}, "grid": {"lr": [0.01]},
           "seeds": [0, 1], "epochs": 30, "checkpoints": [0, 30], "optimizer": {"name": "adam"}}
    zoo = expand_zoo("t", raw)
    res = run(list(zoo.models), zoo.checkpoints)
    ds = load_dataset("teacher-student", {"n_train": 400, "n_test": 200})
    for i, m in enumerate(zoo.models):
        module = build_module(m.spec, ds.input_shape, 1, {k: v[i] for k, v in res.checkpoints[30].items()})
        with torch.no_grad():
            pred = module(torch.from_numpy(ds.x_test)).numpy()
        row = next(r for r in res.metrics if r["model_id"] == m.model_id and r["epoch"] == 30)
        assert row["test_loss"] == pytest.approx(mean_squared_error(ds.y_test, pred), rel=1e-5)
        assert row["test_acc"] == pytest.approx(r2_score(ds.y_test, pred), abs=1e-5)
        assert row["test_acc"] > 0.8  # the teacher is learnable
        assert row["ggap"] == pytest.approx(row["train_acc"] - row["test_acc"])


def test_label_noise_on_a_regression_task_is_refused():
    from zoo.errors import DataError

    raw = {"dataset": "teacher-student", "model": {"arch": "mlp"}, "grid": {"lr": [0.01]}, "seeds": [0],
           "epochs": 1, "checkpoints": [1], "label_noise": 0.1}
    zoo = expand_zoo("t", raw)
    with pytest.raises(DataError, match="classification only"):
        run(list(zoo.models), zoo.checkpoints)


def test_conv_arch_on_vector_data_names_the_fix():
    from zoo.errors import SpecError

    with pytest.raises(SpecError, match="use arch mlp"):
        n_params({**ARCHS["resnet"], "dataset": "wine"}, (13,), 3)


@pytest.mark.parametrize("arch", ["resnet", "transformer"])
def test_landscape_stage_runs_on_every_architecture(arch, tmp_path):
    """The landscape job of the workflow (Hessian, curves, CKA) on resnet and transformer
    populations: finite metrics for every model, with peers found among the seeds."""
    import pyarrow.parquet as pq

    from zoo.cli import main
    from zoo.jobs import train_into_layout, write_zoo_documents

    zoo = zoo_of(arch, train_fraction=0.1)
    lay = write_zoo_documents(zoo, {}, tmp_path)
    for pop in zoo.populations:
        train_into_layout(lay, pop)
        out = lay.table("landscape", pop)
        assert main(["landscape", lay.checkpoint(pop), "--population", lay.population_doc(pop),
                     "--models", lay.table("models", pop), "--out", out, "--power-iters", "4", "--probes", "2",
                     "--curve-steps", "4", "--n-eval", "32", "--n-mix", "32"]) == 0
        land = pq.read_table(out).to_pandas()
        assert len(land) == len(zoo.populations[pop])
        ok = land[~land["landscape_diverged"]]
        assert len(ok) > 0
        for col in ("hessian_top_eig", "hessian_trace", "cka_mean", "mc", "l2_to_peers"):
            assert np.isfinite(ok[col]).all(), col
