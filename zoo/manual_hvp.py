"""Hand-written Hessian-vector products of a population of MLPs (Pearlmutter's R-operator).

:class:`zoo.landscape.HessianOperator` gets ``H v`` by differentiating autograd's gradient
graph a second time: about six batched matmuls per layer plus the bookkeeping of a graph
that is walked 36 times per population (20 power steps, 16 Hutchinson probes).
:class:`MLPHessianOperator` computes the same product directly. With activations kept
feature-major (``[P, features, B]``, as :mod:`zoo.manual_mlp`), per layer ``z = W h + b``,
``h' = f(z)``, loss the mean cross-entropy over the model's ``B`` rows, and ``R(·)`` the
directional derivative along ``v = (V, c)``:

- forward:  ``R(z) = V h + W R(h) + c``,  ``R(h') = f'(z) ⊙ R(z)``;
- output:   ``g = (p − onehot)/B``,  ``R(g) = p ⊙ (R(z) − Σ_c p ⊙ R(z)) / B``;
- backward: ``Hv_W = R(g) hᵀ + g R(h)ᵀ``,  ``Hv_b = Σ_b R(g)``,
  ``R(g_h) = Vᵀ g + Wᵀ R(g)``,  ``R(g_z) = f'(z) ⊙ R(g_h) + f''(z) ⊙ R(z) ⊙ g_h``.

Everything that does not depend on ``v`` (activations, ``f'``, ``f''``, the gradient) is
computed once. The models are independent, so each model's block of ``H`` is applied on
its own (block-diagonal, as the autograd operator). The product equals autograd's to
floating-point rounding (``tests/test_manual_hvp.py``: ≤ 1e-6 relative in float32, 1e-12
in float64, for every supported activation). ReLU's second derivative is zero almost
everywhere (autograd's too: ``threshold_backward`` has no second-order term), and its
derivative at 0 is 0, as autograd takes it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

#: Activations with a hand-written first and second derivative.
SUPPORTED_ACTIVATIONS = ("relu", "tanh", "sigmoid", "gelu", "identity")


def supports(spec: Mapping[str, Any]) -> bool:
    """Whether :class:`MLPHessianOperator` covers ``spec`` (an MLP with a supported activation)."""
    return spec.get("arch") == "mlp" and spec.get("activation") in SUPPORTED_ACTIVATIONS


def _derivatives(activation: str, z: Tensor) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """``(f(z), f'(z), f''(z))``; ``None`` for a derivative that is constant 1 or 0."""
    if activation == "relu":
        return torch.clamp_min(z, 0), (z > 0).to(z.dtype), None
    if activation == "tanh":
        a = torch.tanh(z)
        d1 = 1 - a * a
        return a, d1, -2 * a * d1
    if activation == "sigmoid":
        a = torch.sigmoid(z)
        d1 = a * (1 - a)
        return a, d1, d1 * (1 - 2 * a)
    if activation == "gelu":  # exact (erf) GELU, as F.gelu's default
        pdf = torch.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
        cdf = 0.5 * (1 + torch.erf(z / math.sqrt(2)))
        return F.gelu(z), cdf + z * pdf, pdf * (2 - z * z)
    if activation == "identity":
        return z, None, None
    raise ValueError(f"no hand-written Hessian for activation {activation!r}; use zoo.landscape.HessianOperator")


class MLPHessianOperator:
    """``H v`` of every model's mean cross-entropy at once, without autograd.

    Same interface as :class:`zoo.landscape.HessianOperator` (``names``, ``leaves``,
    ``loss`` ``[P]``, :meth:`matvec`). ``params`` stacked ``[P, …]``; ``x`` ``[P, B, *input]``
    (each model's own evaluation batch), ``y`` ``[P, B]`` class labels.
    """

    def __init__(self, spec: Mapping[str, Any], params: Mapping[str, Tensor], x: Tensor, y: Tensor):
        if not supports(spec):
            raise ValueError(f"no hand-written Hessian for arch {spec.get('arch')!r} / activation {spec.get('activation')!r}; "
                             "use zoo.landscape.HessianOperator")
        self.names = list(params)
        self.leaves = {k: v.detach() for k, v in params.items()}
        self.n_layers = int(spec["depth"]) + 1
        P, B = x.shape[:2]
        self.B = B
        dtype = self.leaves["layers.0.weight"].dtype
        h = x.reshape(P, B, -1).to(dtype).transpose(1, 2).contiguous()  # [P, in, B]
        self.inputs: list[Tensor] = []  # each layer's input h
        self.d1: list[Tensor | None] = []  # f'(z) of each hidden layer
        self.d2: list[Tensor | None] = []  # f''(z) of each hidden layer
        for i in range(self.n_layers):
            self.inputs.append(h)
            z = torch.baddbmm(self.leaves[f"layers.{i}.bias"].unsqueeze(2), self.leaves[f"layers.{i}.weight"], h)
            if i == self.n_layers - 1:
                break
            h, d1, d2 = _derivatives(spec["activation"], z)
            self.d1.append(d1)
            self.d2.append(d2)
        log_p = torch.log_softmax(z, dim=1)  # [P, C, B]
        target = y.reshape(P, 1, B).to(torch.int64)
        self.loss = -log_p.gather(1, target)[:, 0].mean(1)  # [P]
        self.probs = log_p.exp()
        # Gradient w.r.t. each layer's pre-activation (g) and, before f', w.r.t. its output (g_h).
        g = self.probs.scatter_add(1, target, torch.full((P, 1, B), -1.0, dtype=dtype)) / B
        self.g: list[Tensor] = [g]  # g of layer n-1, n-2, …, 0 (reversed below)
        self.g_h: list[Tensor] = []
        for i in range(self.n_layers - 1, 0, -1):
            gh = torch.bmm(self.leaves[f"layers.{i}.weight"].transpose(1, 2), g)
            self.g_h.append(gh)
            g = gh * self.d1[i - 1] if self.d1[i - 1] is not None else gh
            self.g.append(g)
        self.g.reverse()
        self.g_h.reverse()  # g_h[i]: gradient w.r.t. hidden output i (input of layer i + 1)

    def subset(self, keep: Tensor) -> MLPHessianOperator:
        """The operator of models ``keep`` only (indices into the population), sharing nothing
        mutable with this one; what power iteration shrinks to as models converge."""
        sub = object.__new__(MLPHessianOperator)
        sub.names, sub.n_layers, sub.B = self.names, self.n_layers, self.B
        sub.leaves = {k: v.index_select(0, keep) for k, v in self.leaves.items()}

        def pick(ts: list[Tensor | None]) -> list[Tensor | None]:
            return [t.index_select(0, keep) if t is not None else None for t in ts]

        sub.inputs, sub.d1, sub.d2, sub.g, sub.g_h = (pick(t) for t in (self.inputs, self.d1, self.d2, self.g, self.g_h))
        sub.loss, sub.probs = self.loss.index_select(0, keep), self.probs.index_select(0, keep)
        return sub

    def matvec(self, v: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """``H v`` for every model (``v`` stacked ``[P, …]`` like the parameters)."""
        n, W = self.n_layers, self.leaves
        Rz: list[Tensor] = []
        Rh: list[Tensor | None] = [None]  # R(input of layer i); the data is fixed
        for i in range(n):
            z = torch.baddbmm(v[f"layers.{i}.bias"].unsqueeze(2), v[f"layers.{i}.weight"], self.inputs[i])
            if Rh[i] is not None:
                z = z.baddbmm_(W[f"layers.{i}.weight"], Rh[i])
            Rz.append(z)
            if i < n - 1:
                Rh.append(z * self.d1[i] if self.d1[i] is not None else z)
        p = self.probs
        out = Rz[-1]
        r = p * (out - (p * out).sum(1, keepdim=True)) / self.B
        hv: dict[str, Tensor] = {}
        for i in range(n - 1, -1, -1):
            hw = torch.bmm(r, self.inputs[i].transpose(1, 2))
            if Rh[i] is not None:
                hw = hw.baddbmm_(self.g[i], Rh[i].transpose(1, 2))
            hv[f"layers.{i}.weight"], hv[f"layers.{i}.bias"] = hw, r.sum(2)
            if i == 0:
                break
            rgh = torch.bmm(v[f"layers.{i}.weight"].transpose(1, 2), self.g[i]).baddbmm_(W[f"layers.{i}.weight"].transpose(1, 2), r)
            d1, d2 = self.d1[i - 1], self.d2[i - 1]
            r = rgh * d1 if d1 is not None else rgh
            if d2 is not None:
                r = r.addcmul_(d2 * Rz[i - 1], self.g_h[i - 1])
        return {k: hv[k] for k in self.names}
