"""Landscape metrics against independent references: exact Hessians (autograd, float64),
closed-form CKA, hand-built mode-connectivity cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from zoo.landscape import (
    HessianOperator,
    LandscapeSettings,
    hutchinson_trace,
    linear_cka,
    mode_connectivity,
    per_model_loss,
    population_landscape,
    top_eigenvalue,
    yang_mc,
)
from zoo.models import param_shapes

torch.set_num_threads(1)

MLP = {"arch": "mlp", "depth": 2, "width": 6, "activation": "tanh"}          # 4-6-6-3: 93 parameters
CNN = {"arch": "cnn", "depth": 2, "channels": 2, "kernel": 3, "stride": 1, "activation": "tanh"}  # 67


def _case(spec, input_shape, P=3, n=24, seed=0):
    """Random float64 population, inputs and labels."""
    g = torch.Generator().manual_seed(seed)
    shapes = param_shapes(spec, input_shape, 3)
    params = {k: torch.randn((P, *s), generator=g, dtype=torch.float64) * 0.8 for k, s in shapes.items()}
    x = torch.randn((n, *input_shape), generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (n,), generator=g)
    return shapes, params, x, y


def _reference_forward(spec, p, x):
    """One model's logits written directly with torch ops (independent of forward_population)."""
    act = torch.tanh
    if spec["arch"] == "mlp":
        h = x.flatten(1)
        for i in range(spec["depth"] + 1):
            h = h @ p[f"layers.{i}.weight"].T + p[f"layers.{i}.bias"]
            if i < spec["depth"]:
                h = act(h)
        return h
    h = x
    for i in range(spec["depth"]):
        h = act(F.conv2d(h, p[f"convs.{i}.weight"], p[f"convs.{i}.bias"], stride=spec["stride"], padding=spec["kernel"] // 2))
    return h.mean((2, 3)) @ p["head.weight"].T + p["head.bias"]


def _exact_hessian(spec, shapes, params, i, x, y):
    """Exact Hessian of model i's mean cross-entropy via torch.autograd.functional.hessian."""
    sizes = [math.prod(s) for s in shapes.values()]
    flat0 = torch.cat([params[k][i].reshape(-1) for k in shapes])

    def loss(flat):
        p = {k: t.reshape(s) for (k, s), t in zip(shapes.items(), torch.split(flat, sizes))}
        return F.cross_entropy(_reference_forward(spec, p, x), y)

    return torch.autograd.functional.hessian(loss, flat0)


@pytest.mark.parametrize("spec,input_shape", [(MLP, (4,)), (CNN, (1, 4, 4))], ids=["mlp", "cnn"])
def test_power_iteration_and_hutchinson_match_exact_hessian(spec, input_shape):
    shapes, params, x, y = _case(spec, input_shape)
    assert sum(math.prod(s) for s in shapes.values()) <= 300
    P = 3
    xs, ys = x.unsqueeze(0).expand(P, *x.shape), y.unsqueeze(0).expand(P, -1)
    op = HessianOperator(lambda p: per_model_loss(spec, p, xs, ys), params)
    eig, _ = top_eigenvalue(op, iters=3000, tol=1e-12)
    trace, se = hutchinson_trace(op, probes=200)
    for i in range(P):
        H = _exact_hessian(spec, shapes, params, i, x, y)
        evals = torch.linalg.eigvalsh(H)
        top = evals[evals.abs().argmax()]
        assert abs(eig[i] - top) <= 1e-4 * abs(top), (i, float(eig[i]), float(top))
        exact_trace = torch.trace(H)
        assert se[i] > 0
        assert abs(trace[i] - exact_trace) <= 3 * se[i], (i, float(trace[i]), float(exact_trace), float(se[i]))


def test_population_hessian_equals_model_alone():
    """Block-diagonal HVPs: a model's metrics do not depend on its population mates."""
    _, params, x, y = _case(MLP, (4,), P=4, seed=1)
    xs, ys = x.unsqueeze(0).expand(4, *x.shape), y.unsqueeze(0).expand(4, -1)
    op = HessianOperator(lambda p: per_model_loss(MLP, p, xs, ys), params)
    eig_all, _ = top_eigenvalue(op, iters=50, tol=0.0)
    tr_all, se_all = hutchinson_trace(op, probes=5)
    for i in range(4):
        one = {k: v[i : i + 1] for k, v in params.items()}
        op1 = HessianOperator(lambda p: per_model_loss(MLP, p, xs[:1], ys[:1]), one)
        eig1, _ = top_eigenvalue(op1, iters=50, tol=0.0)
        tr1, se1 = hutchinson_trace(op1, probes=5)
        torch.testing.assert_close(eig_all[i : i + 1], eig1, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(tr_all[i : i + 1], tr1, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(se_all[i : i + 1], se1, rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------- CKA

def test_cka_of_identical_representations_is_one():
    x = torch.randn(50, 7, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert float(linear_cka(x, x)) == pytest.approx(1.0, abs=1e-12)


def test_cka_invariant_to_orthogonal_transform_and_isotropic_scaling():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(60, 5, generator=g, dtype=torch.float64)
    y = x @ torch.randn(5, 4, generator=g, dtype=torch.float64) + 0.5 * torch.randn(60, 4, generator=g, dtype=torch.float64)
    q, _ = torch.linalg.qr(torch.randn(5, 5, generator=g, dtype=torch.float64))
    base = float(linear_cka(x, y))
    assert 0 < base < 1
    assert float(linear_cka(x @ q, y)) == pytest.approx(base, rel=1e-10)
    assert float(linear_cka(3.7 * x, y)) == pytest.approx(base, rel=1e-10)
    assert float(linear_cka(x, 0.01 * y)) == pytest.approx(base, rel=1e-10)


def test_cka_closed_form_hand_case():
    # Centred x = (-1, 0, 1), y = (-1, 1, 0): (xᵀy)² / (‖x‖² ‖y‖²) = 1 / (2 · 2) = 1/4.
    x = torch.tensor([[1.0], [2.0], [3.0]])
    y = torch.tensor([[1.0], [3.0], [2.0]])
    assert float(linear_cka(x, y)) == pytest.approx(0.25, abs=1e-12)


def test_cka_equals_kernel_hsic_form():
    """Kornblith et al. eq.: CKA = tr(KHLH) / sqrt(tr(KHKH) tr(LHLH)), K = XXᵀ, L = YYᵀ (numpy)."""
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(30, 6)), rng.normal(size=(30, 3))
    n = len(x)
    H = np.eye(n) - np.ones((n, n)) / n
    K, L = x @ x.T, y @ y.T
    ref = np.trace(K @ H @ L @ H) / np.sqrt(np.trace(K @ H @ K @ H) * np.trace(L @ H @ L @ H))
    assert float(linear_cka(torch.from_numpy(x), torch.from_numpy(y))) == pytest.approx(ref, rel=1e-10)


def test_cka_of_constant_representation_is_nan():
    x = torch.randn(20, 3, generator=torch.Generator().manual_seed(3))
    assert math.isnan(float(linear_cka(x, torch.full((20, 3), 0.1))))


# ---------------------------------------------------------------- mode connectivity

def test_yang_mc_sign_on_hand_made_error_curves():
    # endpoints 0.1, 0.1; worst interior point 0.5 → barrier: mc = 0.1 − 0.5 = −0.4
    # endpoints 0.5, 0.5; interior dips to 0.2 → unconverged endpoints: mc = +0.3
    v = torch.tensor([[0.1, 0.3, 0.5, 0.2, 0.1], [0.5, 0.2, 0.4, 0.45, 0.5], [0.0, 0.0, 0.0, 0.0, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(yang_mc(v), torch.tensor([-0.4, 0.3, 0.0], dtype=torch.float64))


TWO_UNITS = {"arch": "mlp", "depth": 1, "width": 2, "activation": "relu"}


def _two_unit_net(swapped: bool, s: float = 5.0) -> dict[str, torch.Tensor]:
    """Detects |x| > 1 with relu(x − 1) + relu(−x − 1); ``swapped`` permutes the two hidden
    units (the same function). Between the two, the hidden weights pass through 0, where
    both units are dead for every |x| ≤ 3 and the net predicts one class: a barrier."""
    w0 = torch.tensor([[1.0], [-1.0]])
    return {"layers.0.weight": (w0.flip(0) if swapped else w0)[None], "layers.0.bias": torch.tensor([[-1.0, -1.0]]),
            "layers.1.weight": torch.tensor([[[-s, -s], [s, s]]]), "layers.1.bias": torch.tensor([[0.1 * s, -0.1 * s]])}


def _abs_data():
    x = torch.linspace(-3, 3, 301).view(-1, 1)
    x = x[((x.abs().squeeze(1) - 1).abs() > 0.2)]
    return x, (x.abs().squeeze(1) > 1).long()


def test_mc_of_two_copies_is_zero():
    x, y = _abs_data()
    a = _two_unit_net(False)
    res = mode_connectivity(TWO_UNITS, a, {k: v.clone() for k, v in a.items()}, x, y, [np.arange(len(x))],
                            LandscapeSettings(n_eval=len(x), curve_steps=100, curve_points=11))
    assert abs(float(res["mc"][0])) <= 1e-12
    assert abs(float(res["mc_linear"][0])) <= 1e-12
    assert abs(float(res["linear_barrier"][0])) <= 1e-12


def test_mc_negative_across_a_constructed_barrier():
    x, y = _abs_data()
    a, b = _two_unit_net(False), _two_unit_net(True)
    res = mode_connectivity(TWO_UNITS, a, b, x, y, [np.arange(len(x))],
                            LandscapeSettings(n_eval=len(x), curve_steps=200, curve_points=11))
    # Straight line: the midpoint predicts "|x| ≤ 1" everywhere; error = share of |x| > 1.
    share = float((y == 1).double().mean())
    assert float(res["mc_linear"][0]) == pytest.approx(-share, abs=1e-9)
    assert float(res["linear_barrier"][0]) == pytest.approx(share, abs=1e-9)
    # The trained curve lowers the barrier but cannot remove it.
    assert -share - 1e-9 <= float(res["mc"][0]) < -0.2


def test_diverged_models_get_nan_and_are_nobodys_peer():
    g = torch.Generator().manual_seed(4)
    shapes = param_shapes(MLP, (4,), 3)
    params = {k: torch.randn((3, *s), generator=g) * 0.5 for k, s in shapes.items()}
    x, y = torch.randn(80, 4, generator=g), torch.randint(0, 3, (80,), generator=g)
    specs = [{**MLP, "lr": 0.1, "seed": s} for s in range(3)]
    rows = population_landscape(specs, ["a", "b", "c"], params, x, y, [np.arange(80)] * 3, [False, False, True],
                                LandscapeSettings(n_eval=40, power_iters=5, probes=4, curve_steps=5, n_mix=32))
    assert math.isnan(rows[2]["hessian_trace"]) and math.isnan(rows[2]["mc"]) and rows[2]["landscape_diverged"]
    for r in rows[:2]:
        assert math.isfinite(r["hessian_trace"]) and math.isfinite(r["mc"]) and math.isfinite(r["l2_to_peers"])
        assert r["n_peers"] == 1 and r["n_pairs"] == 1
    dist = float(torch.cat([(params[k][0] - params[k][1]).reshape(-1) for k in shapes]).norm())
    assert rows[0]["l2_to_peers"] == pytest.approx(dist, rel=1e-5)


def test_top_eigenvalue_agrees_with_pyhessian():
    pyhessian = pytest.importorskip("pyhessian")
    from zoo.models import build_module

    _, params, x, y = _case(MLP, (4,), P=1, seed=5)
    params = {k: v.float() for k, v in params.items()}
    x = x.float()
    module = build_module(MLP, (4,), 3, {k: v[0] for k, v in params.items()})
    torch.manual_seed(0)
    ref, _ = pyhessian.hessian(module, torch.nn.CrossEntropyLoss(), data=(x, y), cuda=False).eigenvalues(maxIter=2000, tol=1e-7)
    op = HessianOperator(lambda p: per_model_loss(MLP, p, x[None], y[None]), params)
    eig, _ = top_eigenvalue(op, iters=2000, tol=1e-7)
    assert float(eig[0]) == pytest.approx(ref[0], rel=1e-3)


def test_hessian_uses_each_models_own_labels_when_given():
    g = torch.Generator().manual_seed(6)
    shapes = param_shapes(MLP, (4,), 3)
    params = {k: torch.randn((2, *s), generator=g, dtype=torch.float64) for k, s in shapes.items()}
    x, y = torch.randn(50, 4, generator=g, dtype=torch.float64), torch.randint(0, 3, (50,), generator=g)
    y_fit = torch.stack([y, (y + 1) % 3])  # model 1 was trained on shifted labels
    specs = [{**MLP, "lr": 0.1, "seed": s} for s in range(2)]
    st = LandscapeSettings(n_eval=50, power_iters=3, probes=2, curve_steps=2, curve_points=5, n_mix=16)
    rows = population_landscape(specs, ["a", "b"], params, x, y, [np.arange(50)] * 2, [False, False], st, y_fit=y_fit)
    for i in range(2):
        p = {k: v[i] for k, v in params.items()}
        ref = F.cross_entropy(_reference_forward(MLP, p, x), y_fit[i])
        assert rows[i]["eval_loss"] == pytest.approx(float(ref), rel=1e-10)


def test_pair_result_independent_of_the_other_pairs():
    g = torch.Generator().manual_seed(7)
    shapes = param_shapes(MLP, (4,), 3)
    params = {k: torch.randn((3, *s), generator=g, dtype=torch.float64) for k, s in shapes.items()}
    x, y = torch.randn(60, 4, generator=g, dtype=torch.float64), torch.randint(0, 3, (60,), generator=g)
    st = LandscapeSettings(n_eval=40, curve_steps=20, curve_batch=16, curve_points=5)
    both = mode_connectivity(MLP, {k: v[[0, 1]] for k, v in params.items()}, {k: v[[1, 2]] for k, v in params.items()},
                             x, y, [np.arange(60)] * 2, st, keys=["a|b", "b|c"])
    alone = mode_connectivity(MLP, {k: v[[1]] for k, v in params.items()}, {k: v[[2]] for k, v in params.items()},
                              x, y, [np.arange(60)], st, keys=["b|c"])
    for key in ("mc", "mc_loss", "mc_linear", "linear_barrier"):
        torch.testing.assert_close(both[key][1:], alone[key], rtol=1e-9, atol=1e-12)
