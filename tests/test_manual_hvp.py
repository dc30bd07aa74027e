"""The hand-written MLP Hessian-vector product against autograd's double backward and the
exact Hessian (torch.autograd.functional.hessian of an independently written forward)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from zoo.landscape import HessianOperator, hutchinson_trace, per_model_loss, top_eigenvalue
from zoo.manual_hvp import SUPPORTED_ACTIVATIONS, MLPHessianOperator, supports
from zoo.models import param_shapes

torch.set_num_threads(1)


def _case(activation: str, dtype: torch.dtype, P: int = 4, n: int = 32, width: int = 7, depth: int = 2, seed: int = 0):
    spec = {"arch": "mlp", "depth": depth, "width": width, "activation": activation}
    g = torch.Generator().manual_seed(seed)
    shapes = param_shapes(spec, (5,), 3)
    params = {k: torch.randn((P, *s), generator=g, dtype=dtype) * 0.7 for k, s in shapes.items()}
    x = torch.randn((P, n, 5), generator=g, dtype=dtype)
    y = torch.randint(0, 3, (P, n), generator=g)
    v = {k: torch.randn((P, *s), generator=g, dtype=dtype) for k, s in shapes.items()}
    return spec, shapes, params, x, y, v


@pytest.mark.parametrize("activation", SUPPORTED_ACTIVATIONS)
@pytest.mark.parametrize("dtype,rtol", [(torch.float64, 1e-12), (torch.float32, 1e-6)], ids=["f64", "f32"])
def test_hvp_matches_autograd_double_backward(activation, dtype, rtol):
    spec, _, params, x, y, v = _case(activation, dtype)
    auto = HessianOperator(lambda p: per_model_loss(spec, p, x, y), params)
    manual = MLPHessianOperator(spec, params, x, y)
    torch.testing.assert_close(manual.loss, auto.loss.detach(), rtol=rtol, atol=0)
    ha, hm = auto.matvec(v), manual.matvec(v)
    for k in params:
        scale = ha[k].abs().max()
        assert (hm[k] - ha[k]).abs().max() <= rtol * 10 * max(float(scale), 1e-30), (k, float((hm[k] - ha[k]).abs().max()))


@pytest.mark.parametrize("activation", ["tanh", "gelu"])
def test_hvp_equals_exact_hessian_times_v(activation):
    """H from torch.autograd.functional.hessian on a forward written with plain matmuls."""
    spec, shapes, params, x, y, v = _case(activation, torch.float64, P=2, width=4)
    act = {"tanh": torch.tanh, "gelu": F.gelu}[activation]
    sizes = [math.prod(s) for s in shapes.values()]
    hv = MLPHessianOperator(spec, params, x, y).matvec(v)
    for i in range(2):
        def loss(flat, i=i):
            p = {k: t.reshape(s) for (k, s), t in zip(shapes.items(), torch.split(flat, sizes))}
            h = x[i]
            for layer in range(spec["depth"] + 1):
                h = h @ p[f"layers.{layer}.weight"].T + p[f"layers.{layer}.bias"]
                if layer < spec["depth"]:
                    h = act(h)
            return F.cross_entropy(h, y[i])

        H = torch.autograd.functional.hessian(loss, torch.cat([params[k][i].reshape(-1) for k in shapes]))
        want = H @ torch.cat([v[k][i].reshape(-1) for k in shapes])
        got = torch.cat([hv[k][i].reshape(-1) for k in shapes])
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


def test_hvp_is_block_diagonal_and_population_independent():
    spec, _, params, x, y, v = _case("relu", torch.float64, P=5)
    full = MLPHessianOperator(spec, params, x, y).matvec(v)
    for i in (0, 3):
        one = MLPHessianOperator(spec, {k: t[i : i + 1] for k, t in params.items()}, x[i : i + 1], y[i : i + 1])
        alone = one.matvec({k: t[i : i + 1] for k, t in v.items()})
        for k in params:
            torch.testing.assert_close(alone[k], full[k][i : i + 1], rtol=1e-12, atol=1e-14)


def test_power_iteration_and_trace_agree_with_the_autograd_operator():
    spec, _, params, x, y, _ = _case("relu", torch.float32, P=6, width=16)
    auto = HessianOperator(lambda p: per_model_loss(spec, p, x, y), params)
    manual = MLPHessianOperator(spec, params, x, y)
    ea, _ = top_eigenvalue(auto, iters=200, tol=1e-7)
    em, _ = top_eigenvalue(manual, iters=200, tol=1e-7)
    torch.testing.assert_close(em, ea, rtol=1e-4, atol=1e-6)
    ta, _ = hutchinson_trace(auto, probes=8)
    tm, _ = hutchinson_trace(manual, probes=8)
    torch.testing.assert_close(tm, ta, rtol=1e-4, atol=1e-6)


def test_supports_only_mlps_with_known_activations():
    assert supports({"arch": "mlp", "activation": "relu"})
    assert not supports({"arch": "cnn", "activation": "relu"})
    assert not supports({"arch": "mlp", "activation": "softplus"})
    with pytest.raises(ValueError, match="HessianOperator"):
        MLPHessianOperator({"arch": "cnn", "activation": "relu", "depth": 1}, {}, torch.zeros(1, 1, 1), torch.zeros(1, 1))


def test_power_iteration_shrinking_to_running_models_changes_no_result():
    """top_eigenvalue drops converged models from the hand-written operator; a wrapper
    without ``subset`` keeps every model in every HVP. Eigenvalues and steps must agree."""
    spec, _, params, x, y, _ = _case("tanh", torch.float64, P=12, width=9, seed=3)
    op = MLPHessianOperator(spec, params, x, y)

    class Whole:  # the same products, never shrunk
        leaves, loss = op.leaves, op.loss
        matvec = staticmethod(op.matvec)

    eig_shrunk, steps_shrunk = top_eigenvalue(op, iters=60, tol=1e-4)
    eig_whole, steps_whole = top_eigenvalue(Whole(), iters=60, tol=1e-4)
    assert len(set(steps_whole.tolist())) > 3, "models should converge at different steps"
    assert torch.equal(steps_shrunk, steps_whole)
    torch.testing.assert_close(eig_shrunk, eig_whole, rtol=1e-12, atol=1e-14)
