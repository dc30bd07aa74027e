"""The fast training paths: hand-written MLP backward, flat batched optimizer, grouped evaluation.

Each one must give autograd's / torch.optim's numbers (to float32 rounding) and, like the
rest of population training, the same bits for a model whatever population it sits in.
"""

from __future__ import annotations

import platform

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from zoo.config import expand_zoo
from zoo.manual_mlp import ManualMLP
from zoo.models import PopulationDropout, forward_population, init_population
from zoo.optim import BatchedOptimizer, FlatLayout
from zoo.train import EVAL_MODELS, evaluate, flush_denormals, train_population


def mlp_specs(n, activation="relu", depth=2, width=7, **extra):
    return [{"arch": "mlp", "depth": depth, "width": width, "activation": activation, "seed": s, **extra}
            for s in range(n)]


def autograd_grads(spec, params, x, y, task, dropout=None):
    leaves = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
    out = forward_population(spec, leaves, x, dropout)
    P = x.shape[0]
    if task == "regression":
        losses = ((out - y) ** 2).reshape(P, -1).mean(1)
    else:
        losses = F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1), reduction="none").view(P, -1).mean(1)
    weight = torch.tensor([1.0, 0.0, 1.0, 0.5])[:P]
    grads = torch.autograd.grad((losses * weight).sum(), list(leaves.values()))
    return losses.detach(), dict(zip(leaves, grads)), weight


def manual_grads(spec, params, x, y, task, weight, dropout=None):
    """The hand-written path as training runs it: aligned flat parameters, batch padded to its multiple."""
    layout = FlatLayout.of(params)
    params = layout.views(layout.pack(params))
    step = ManualMLP.of(spec, layout.shapes, task)
    P, B = x.shape[:2]
    padded = torch.zeros(P, step.padded(B), *x.shape[2:])
    padded[:, :B] = x
    padded[:, B:] = x[:, :1]
    losses = step.loss(params, padded, y, dropout)
    grads = layout.views(layout.empty())
    step.backward(weight, grads)
    return losses, grads


def batch(P, n_out, task, B=9, n_in=(1, 4, 5), seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(P, B, *n_in, generator=gen)
    y = torch.randn(P, B, n_out, generator=gen) if task == "regression" else torch.randint(0, n_out, (P, B), generator=gen)
    return x, y


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid", "gelu", "identity"])
@pytest.mark.parametrize("depth", [0, 1, 3])
@pytest.mark.parametrize("task", ["classification", "regression"])
def test_hand_written_mlp_gradient_matches_autograd(activation, depth, task):
    n_out = 3 if task == "regression" else 6
    specs = mlp_specs(4, activation, depth)
    gen = torch.Generator().manual_seed(1)
    params = {k: v + 0.3 * torch.randn(v.shape, generator=gen) for k, v in init_population(specs, (1, 4, 5), n_out).items()}
    x, y = batch(4, n_out, task)
    ref_loss, ref, weight = autograd_grads(specs[0], params, x, y, task)
    loss, got = manual_grads(specs[0], params, x, y, task, weight)
    torch.testing.assert_close(loss, ref_loss, rtol=1e-6, atol=1e-6)
    for k in ref:
        scale = max(1.0, ref[k].abs().max().item())
        assert (got[k] - ref[k]).abs().max().item() <= 1e-6 * scale, k
    assert not got["layers.0.weight"][1].any()  # weight 0: a frozen model gets no gradient


def test_hand_written_backward_with_dropout_matches_autograd():
    specs = mlp_specs(4, "relu", 2, dropout=0.3)
    params = init_population(specs, (1, 4, 5), 6)
    x, y = batch(4, 6, "classification")
    seeds = [11, 12, 13, 14]
    ref_loss, ref, weight = autograd_grads(specs[0], params, x, y, "classification", PopulationDropout([0.3] * 4, seeds))
    loss, got = manual_grads(specs[0], params, x, y, "classification", weight, PopulationDropout([0.3] * 4, seeds))
    torch.testing.assert_close(loss, ref_loss, rtol=1e-6, atol=1e-6)
    for k in ref:
        assert (got[k] - ref[k]).abs().max().item() <= 1e-6 * max(1.0, ref[k].abs().max().item()), k


def test_hand_written_backward_is_bit_stable_across_population_sizes():
    specs = mlp_specs(37, "tanh", 2, width=13)
    params = init_population(specs, (1, 4, 5), 10)
    x, y = batch(37, 10, "classification", B=11)
    weight = torch.ones(37)
    full_loss, full = manual_grads(specs[0], params, x, y, "classification", weight)
    for members in ([5], [36, 0, 5], list(range(0, 37, 3)), list(range(36, -1, -1))):
        sub = {k: v[members].contiguous() for k, v in params.items()}
        loss, got = manual_grads(specs[0], sub, x[members], y[members], "classification", weight[members])
        assert torch.equal(loss, full_loss[members])
        for k in full:
            assert torch.equal(got[k], full[k][members]), (k, members)


@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_flat_optimizer_matches_torch_optim(name):
    P, gen = 3, torch.Generator().manual_seed(0)
    shapes = {"w": (4, 5), "b": (4,)}
    params = {k: torch.randn(P, *s, generator=gen) for k, s in shapes.items()}
    lr, mom, wd = [0.1, 0.01, 0.2], [0.9, 0.9, 0.5], [1e-4, 0.0, 1e-3]
    layout = FlatLayout(shapes, P)
    opt = BatchedOptimizer(name, torch.tensor(lr), torch.tensor(mom), torch.tensor(wd))
    flat, out = layout.pack(params), layout.empty()
    refs = []
    for i in range(P):
        ps = [params[k][i].clone().requires_grad_(True) for k in shapes]
        o = (torch.optim.SGD(ps, lr=lr[i], momentum=mom[i], weight_decay=wd[i]) if name == "sgd"
             else torch.optim.Adam(ps, lr=lr[i], weight_decay=wd[i]))
        refs.append((ps, o))
    for _ in range(5):
        grads = {k: torch.randn(P, *s, generator=gen) for k, s in shapes.items()}
        opt.step(layout, flat, layout.pack(grads), out)
        flat, out = out, flat
        opt.advance(torch.ones(P, dtype=torch.bool))
        for i, (ps, o) in enumerate(refs):
            for p, k in zip(ps, shapes):
                p.grad = grads[k][i].clone()
            o.step()
    for i, (ps, _) in enumerate(refs):
        for p, k in zip(ps, shapes):
            torch.testing.assert_close(layout.views(flat)[k][i], p.detach(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_flat_optimizer_is_bit_stable_across_population_sizes(name):
    """Odd tensor sizes put a model's entries at every offset of the vectorised loops."""
    P, gen = 29, torch.Generator().manual_seed(3)
    shapes = {"w": (7, 3), "b": (7,), "c": (5,)}
    params = {k: torch.randn(P, *s, generator=gen) for k, s in shapes.items()}
    grads = [{k: torch.randn(P, *s, generator=gen) for k, s in shapes.items()} for _ in range(4)]
    hyper = [torch.rand(P, generator=gen) * 0.1, torch.rand(P, generator=gen), torch.rand(P, generator=gen) * 1e-3]

    def run(members):
        layout = FlatLayout(shapes, len(members))
        opt = BatchedOptimizer(name, *[h[members] for h in hyper])
        flat, out = layout.pack({k: v[members] for k, v in params.items()}), layout.empty()
        for g in grads:
            opt.step(layout, flat, layout.pack({k: v[members] for k, v in g.items()}), out)
            flat, out = out, flat
            opt.advance(torch.ones(len(members), dtype=torch.bool))
        return layout.views(flat)

    full = run(list(range(P)))
    for members in ([4], [28, 4], list(range(1, P, 2)), list(range(P - 1, -1, -1))):
        got = run(members)
        for k in shapes:
            assert torch.equal(got[k], full[k][members]), (k, members)


@pytest.mark.parametrize("name", ["sgd", "adam"])
@pytest.mark.parametrize("weight_decay", [0.0, 1e-3])
def test_one_pass_c_kernels_give_the_bits_of_the_torch_passes(name, weight_decay):
    """zoo._fused against BatchedOptimizer's torch passes, step by step: parameters, m, v, buf.

    Gradients span 12 decades (v's square roots, tiny steps), one model's gradient is
    non-finite (its proposal must be non-finite in both), and every model has its own
    learning rate, momentum and decay; the kernels make one pass where torch makes up to six.
    """
    P, gen = 33, torch.Generator().manual_seed(5)
    shapes = {"w": (7, 5), "b": (7,), "c": (3, 3)}
    layout = FlatLayout(shapes, P)
    hyper = (10 ** torch.empty(P).uniform_(-4, 0, generator=gen), torch.rand(P, generator=gen),
             torch.rand(P, generator=gen) * weight_decay)
    fused, plain = BatchedOptimizer(name, *hyper), BatchedOptimizer(name, *hyper)
    plain.fused = False
    assert fused.fused, "zoo._fused is not built: `pip install -e .` compiles it (needs a C compiler)"
    flat = layout.pack({k: torch.randn(P, *s, generator=gen) for k, s in shapes.items()})
    for step in range(6):
        grad = layout.pack({k: torch.randn(P, *s, generator=gen) * 10 ** torch.empty(P, *[1] * len(s)).uniform_(
            -9, 3, generator=gen) for k, s in shapes.items()})
        if step == 3:
            layout.rows(grad)[5, 2] = float("nan")
        outs, flags = [], []
        for opt in (fused, plain):
            out = layout.empty()
            flags.append(opt.step(layout, flat, grad.clone(), out))
            opt.advance(torch.ones(P, dtype=torch.bool))
            outs.append(out)
        # from step 3 on model 5's optimizer state holds the NaN: its proposals stay non-finite
        assert torch.equal(flags[0], flags[1]) and (~flags[0]).nonzero().flatten().tolist() == [5] * (step >= 3), step
        assert torch.equal(flags[0], torch.isfinite(layout.rows(outs[0])).all(1))
        same = dict(rtol=0, atol=0, equal_nan=True)  # equal values, NaN where the other has NaN
        torch.testing.assert_close(outs[0], outs[1], **same, msg=f"step {step}: parameters differ")
        for slot in plain.state:
            torch.testing.assert_close(fused.state[slot], plain.state[slot], **same, msg=f"step {step}: {slot} differs")
        if step == 3:
            assert not torch.isfinite(layout.rows(outs[0])[5]).all()
        flat = torch.nan_to_num(outs[1])


@pytest.mark.parametrize("fused", [True, False])
def test_a_proposal_is_rejected_for_a_non_finite_entry_not_for_a_sum_that_overflows(fused):
    """Model 0's entries are all finite but sum past float32's range; model 1 has one inf."""
    layout = FlatLayout({"w": (8, 8)}, 3)
    opt = BatchedOptimizer("sgd", torch.zeros(3), torch.zeros(3), torch.zeros(3))
    if fused and not opt.fused:
        pytest.skip("zoo._fused is not built")
    opt.fused = fused
    flat = layout.empty()
    layout.rows(flat)[0] = 3e38
    layout.rows(flat)[1, 7] = float("inf")
    finite = opt.step(layout, flat, layout.empty(), layout.empty())
    assert not torch.isfinite(layout.per_model_sum(flat)[0])
    assert finite.tolist() == [True, False, True]


def test_one_pass_kernels_refuse_buffers_that_are_not_the_layouts_flat_buffers():
    layout = FlatLayout({"w": (4, 4)}, 3)
    opt = BatchedOptimizer("adam", torch.full((3,), 0.1), torch.zeros(3), torch.zeros(3))
    if not opt.fused:
        pytest.skip("zoo._fused is not built")
    with pytest.raises(ValueError, match="flat float32 buffers"):
        opt.step(layout, layout.empty()[:-1], layout.empty(), layout.empty())
    with pytest.raises(ValueError, match="flat float32 buffers"):
        opt.step(layout, layout.empty(torch.float64), layout.empty(), layout.empty())


def test_mlp_training_is_bit_identical_across_population_sizes_with_every_per_model_hook():
    """The hand-written path with dropout, label noise, weight decay, Adam, odd widths."""
    raw = {"dataset": "digits", "model": {"arch": "mlp", "depth": 2, "width": 7, "activation": "gelu"},
           "grid": {"lr": [0.003, 0.03], "dropout": [0.0, 0.2], "label_noise": [0.0, 0.1]}, "seeds": [0, 1],
           "epochs": 1, "checkpoints": [1], "batch_size": 50, "train_fraction": 0.5,
           "optimizer": {"name": "adam", "weight_decay": 1e-3}}
    models = list(expand_zoo("t", raw).models)

    def run(ms):
        return train_population([m.spec for m in ms], [m.model_id for m in ms], [1])

    full = run(models)
    for members in ([5], [15, 2, 9], list(range(15, -1, -2))):
        part = run([models[i] for i in members])
        for name, t in full.checkpoints[1].items():
            assert torch.equal(part.checkpoints[1][name], t[members]), (name, members)


def test_evaluation_of_a_model_does_not_depend_on_its_population():
    """More models than one evaluation group: each model's metrics are its own, bit for bit."""
    P = EVAL_MODELS + 6
    specs = mlp_specs(P, "relu", 1, width=5)
    params = init_population(specs, (1, 8, 8), 10)
    gen = torch.Generator().manual_seed(0)
    x, y = torch.rand(300, 1, 8, 8, generator=gen), torch.randint(0, 10, (300,), generator=gen)
    loss, acc = evaluate(specs[0], params, x, y)
    for i in (0, EVAL_MODELS - 1, EVAL_MODELS, P - 1):
        one = {k: v[i : i + 1] for k, v in params.items()}
        l1, a1 = evaluate(specs[0], one, x, y)
        assert l1[0] == loss[i] and a1[0] == acc[i]
        logits = forward_population(specs[0], one, x.unsqueeze(0))[0]
        assert l1[0].item() == pytest.approx(F.cross_entropy(logits.double(), y).item(), rel=1e-6)
        assert a1[0].item() == pytest.approx((logits.argmax(-1) == y).double().mean().item())


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="FTZ/DAZ is an x86 setting")
def test_flush_denormals_is_scoped():
    tiny = torch.tensor([1e-39])
    with flush_denormals():
        flushed = bool((tiny * 1.0)[0] == 0)
    assert flushed and (tiny * 1.0)[0] != 0


# ---------------------------------------------------------------- spectral fast paths (bit for bit)

def _spectra():
    rng = np.random.default_rng(0)
    return [np.sort(rng.gamma(k, size=n)) for n, k in [(8, 2.0), (10, 0.5), (33, 1.5), (64, 3.0), (128, 1.0), (200, 0.7)]]


def test_kde_shortcut_is_bit_identical_to_scikit_learns_kernel_density():
    from sklearn.neighbors import KernelDensity

    from zoo.mp_fit import KDE_BANDWIDTH, KDE_POINTS, _kde

    for values in _spectra():
        grid, dens = _kde(values)
        ref_grid = np.linspace(0, np.max(values) + 0.5, KDE_POINTS)
        ref = np.exp(KernelDensity(kernel="linear", bandwidth=KDE_BANDWIDTH).fit(values.reshape(-1, 1))
                     .score_samples(ref_grid[:, None]))
        assert np.array_equal(grid, ref_grid) and np.array_equal(dens, ref)


@pytest.mark.parametrize("Q", [1.0, 2.0, 6.4])
def test_one_sigma_residual_and_nelder_mead_are_bit_identical_to_the_array_path_and_scipy(Q):
    from scipy import optimize

    from zoo.mp_fit import KDE_FLOOR, _fmin_1d, _kde, _Residual, _residuals

    for values in _spectra():
        x = values * len(values) / values.sum()
        xde, yde = _kde(np.sqrt(x) if Q == 1 else x)
        keep = yde > KDE_FLOOR
        n_low = int((yde < KDE_FLOOR).sum())
        xde, yde = xde[keep], yde[keep]
        residual = _Residual(xde, yde, n_low, Q)
        scale = np.sqrt(x.max() / (1 + 1 / np.sqrt(Q)) ** 2)
        sigmas = np.mgrid[slice(0.05 * scale, 2.0 * scale, 0.01 * scale)]
        grid = _residuals(sigmas, xde, yde, n_low, Q)
        assert all(residual(np.array([s])) == g for s, g in zip(sigmas, grid))
        start = float(sigmas[np.argmin(grid)])
        ref = optimize.fmin(lambda p, xde=xde, yde=yde, n_low=n_low: _residuals(p, xde, yde, n_low, Q)[0], start,
                            full_output=1, disp=0)[0][0]
        assert _fmin_1d(residual, start) == ref


# ---------------------------------------------------------------- memory of a train job

@pytest.mark.parametrize("model", [{"arch": "mlp", "depth": 1, "width": 32}, {"arch": "mlp", "depth": 2, "width": 128}])
def test_peak_rss_of_a_256_model_population_stays_within_the_memory_estimate(model):
    """A fresh process trains 256 models (6 checkpoints) as the train job does; its peak RSS
    must not exceed ``zoo.resources.memory_bytes``, the number ``mem_mb`` is to declare."""
    import json
    import subprocess
    import sys

    from zoo.resources import memory_bytes

    raw = {"dataset": "digits", "model": model, "grid": {"lr": [0.001, 0.01, 0.1, 1.0]}, "seeds": 64, "epochs": 5,
           "checkpoints": [0, 1, 2, 3, 4, 5], "batch_size": 128, "optimizer": {"name": "adam"}}
    code = f"""
import json, resource, torch
torch.set_num_threads(1)
from zoo.config import expand_zoo
from zoo.train import train_population
zoo = expand_zoo("t", {raw!r}, {{"max_models": 10**6}})
train_population([m.spec for m in zoo.models], [m.model_id for m in zoo.models], zoo.checkpoints)
print(json.dumps({{"rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "spec": zoo.models[0].spec}}))
"""
    out = json.loads(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout)
    estimate = memory_bytes(out["spec"], 256, 6)
    assert out["rss"] <= estimate, f"peak RSS {out['rss'] / 2**20:.0f} MB > estimate {estimate / 2**20:.0f} MB"


# ---------------------------------------------------------------- landscape: curves with the hand-written gradient

def test_bezier_curve_trained_with_the_hand_written_gradient_matches_autograd(monkeypatch):
    import zoo.landscape as L

    specs = mlp_specs(4, "relu", 1, width=9)
    gen = torch.Generator().manual_seed(5)
    params = {k: v + 0.2 * torch.randn(v.shape, generator=gen) for k, v in init_population(specs, (1, 8, 8), 10).items()}
    x, y = torch.rand(200, 1, 8, 8, generator=gen), torch.randint(0, 10, (200,), generator=gen)
    a, b = {k: v[:2] for k, v in params.items()}, {k: v[2:] for k, v in params.items()}
    pools = [np.arange(0, 200, 2), np.arange(1, 200, 2)]
    settings = L.LandscapeSettings(curve_steps=20, curve_batch=24)
    fast = L.train_curve(specs[0], a, b, x, y, pools, settings, ["p", "q"])
    monkeypatch.setattr(L, "has_manual_backward", lambda spec: False)
    ref = L.train_curve(specs[0], a, b, x, y, pools, settings, ["p", "q"])
    for k in ref:
        assert (fast[k] - ref[k]).abs().max().item() <= 1e-5, k
    monkeypatch.undo()
    alone = L.train_curve(specs[0], {k: v[1:] for k, v in a.items()}, {k: v[1:] for k, v in b.items()}, x, y,
                          pools[1:], settings, ["q"])
    for k in fast:  # a pair's curve is its own, bit for bit
        assert torch.equal(alone[k][0], fast[k][1]), k
