"""Batched SGD and Adam over stacked parameters, with per-model hyperparameters.

Each update is elementwise, so model ``i``'s trajectory never depends on the other
models of its population. The formulas follow ``torch.optim.SGD`` (momentum, dampening
0, L2 weight decay added to the gradient) and ``torch.optim.Adam`` (L2 weight decay,
bias correction as in PyTorch's single-tensor implementation).

All tensors of a population live in one flat buffer (:class:`FlatLayout`: one contiguous
``[P, *shape]`` block per tensor, in name order), so an optimizer step is a handful of
in-place passes over one buffer instead of a dozen temporaries per tensor; only the
per-model coefficients (learning rate, momentum, weight decay, bias corrections) are
applied block by block, broadcast over each model's row.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import torch
from torch import Tensor

try:  # one-pass C kernels with the torch passes' bits (zoo/_fused.c); optional at install
    from zoo import _fused
except ImportError:  # pragma: no cover - a build without a C compiler
    _fused = None

#: Each model's slice of a batched tensor starts on a boundary of ALIGN floats (128 bytes) and
#: each model's row of a flat buffer is a multiple of ALIGN long. Two reasons, both about bits:
#: MKL's batched GEMM picks its kernel path by the alignment of each matrix (a model whose
#: matrices sat at another offset, its index × an odd matrix size, got other rounding), and
#: elementwise kernels compute the last < 32 entries of a run with scalar code that rounds
#: some ops (lerp, fused multiply-adds) differently from the vector code. Aligned, padded rows
#: give every model the same code path whatever its position and population size.
ALIGN = 32


def padded(n: int) -> int:
    """``n`` rounded up to a multiple of :data:`ALIGN`."""
    return -(-n // ALIGN) * ALIGN


def aligned_empty(shape: tuple[int, ...], dtype: torch.dtype = torch.float32) -> Tensor:
    """A zeroed ``[P, *rest]`` tensor whose per-model slices start on 64-byte boundaries (torch's
    CPU allocator aligns to 64 bytes; the model stride is a multiple of :data:`ALIGN`).

    The slices are contiguous; only the model stride is padded (to :func:`padded`).
    """
    P, rest = shape[0], tuple(shape[1:])
    n = math.prod(rest)
    inner = [1] * len(rest)
    for i in range(len(rest) - 2, -1, -1):
        inner[i] = inner[i + 1] * rest[i + 1]
    return torch.zeros(max(1, P * padded(n)), dtype=dtype).as_strided((P, *rest), (padded(n), *inner))


def is_aligned(t: Tensor) -> bool:
    """Whether every model slice ``t[i]`` of ``t`` starts on a 64-byte boundary, ``ALIGN`` entries apart."""
    return t.data_ptr() % 64 == 0 and (t.shape[0] == 1 or t.stride(0) % ALIGN == 0)


def bmm_into(a: Tensor, b: Tensor, out: Tensor, scratch: Tensor) -> Tensor:
    """``out = a @ b`` (batched), where ``out`` may be a strided view such as a tensor of a flat buffer.

    ``torch.bmm(..., out=t)`` with ``t`` not contiguous (each model's matrix contiguous, the
    model stride padded) falls back to one ``addmm`` per model: 0.87 instead of 0.50 ms for a
    population of 256 32×64 gradients, 0.53 instead of 0.15 ms for 10×32 ones. One batched GEMM
    into the contiguous ``scratch`` (shaped like ``out``) and a copy is faster, with the same bits.
    """
    if out.is_contiguous():
        return torch.bmm(a, b, out=out)
    return out.copy_(torch.bmm(a, b, out=scratch))


class FlatLayout:
    """Where each named ``[P, *shape]`` tensor of a population sits in one flat buffer.

    The buffer is model-major: row ``p`` (``row`` entries, a multiple of :data:`ALIGN`)
    holds all of model ``p``'s tensors, each starting at a multiple of ALIGN (the padding
    stays zero). :meth:`views` gives ``[P, *shape]`` tensors whose per-model slices are
    contiguous and 64-byte aligned, :meth:`rows` the ``[P, row]`` matrix for per-model
    coefficients, and a pass over the whole buffer treats every model's entries alike.
    """

    def __init__(self, shapes: Mapping[str, tuple[int, ...]], n_models: int):
        self.names = list(shapes)
        self.shapes = {k: tuple(v) for k, v in shapes.items()}
        self.P = int(n_models)
        self.counts = [math.prod(self.shapes[k]) for k in self.names]
        self.offsets, col = [], 0
        for n in self.counts:
            self.offsets.append(col)
            col += padded(n)
        self.row = max(col, ALIGN)
        self.numel = self.P * self.row
        self._cache: dict[tuple[int, int, torch.dtype], dict[str, Tensor]] = {}

    @classmethod
    def of(cls, params: Mapping[str, Tensor]) -> FlatLayout:
        """The layout of stacked parameters ``{name: [P, …]}``."""
        first = next(iter(params.values()))
        return cls({k: tuple(v.shape[1:]) for k, v in params.items()}, first.shape[0])

    def empty(self, dtype: torch.dtype = torch.float32) -> Tensor:
        """A zeroed flat buffer (64-byte aligned, like every CPU tensor torch allocates)."""
        return torch.zeros(self.numel, dtype=dtype)

    def pack(self, tensors: Mapping[str, Tensor], out: Tensor | None = None) -> Tensor:
        """Copy ``{name: [P, …]}`` into a flat buffer (a new one unless ``out`` is given)."""
        out = self.empty(next(iter(tensors.values())).dtype) if out is None else out
        for k, view in self.views(out).items():
            view.copy_(tensors[k])
        return out

    def rows(self, flat: Tensor) -> Tensor:
        """``[P, row]``: every model's entries (padding included) as one row."""
        return flat.view(self.P, self.row)

    def views(self, flat: Tensor) -> dict[str, Tensor]:
        """``{name: [P, *shape]}`` views of ``flat``, cached for the few buffers a training loop
        cycles through (the cache holds views, so a cached buffer's address stays its own;
        the oldest entries are dropped past 8)."""
        key = (flat.data_ptr(), flat.numel(), flat.dtype)
        hit = self._cache.get(key)
        if hit is None:
            rows = self.rows(flat)
            hit = self._cache[key] = {k: rows[:, o : o + n].view(self.P, *self.shapes[k])
                                      for k, o, n in zip(self.names, self.offsets, self.counts)}
            while len(self._cache) > 8:
                self._cache.pop(next(iter(self._cache)))
        return dict(hit)

    def per_model_sum(self, flat: Tensor) -> Tensor:
        """Sum of every model's entries ``[P]`` (non-finite iff one of them is)."""
        return self.rows(flat).sum(1)


class BatchedOptimizer:
    """Computes new parameter values; the caller decides which models accept them.

    :meth:`step` writes the proposal into a second buffer and updates the optimizer state
    in place for every model: a model that rejects its proposal (non-finite) is frozen for
    good, so its optimizer state no longer matters. Per-model coefficients are ``[P, 1]``
    columns broadcast over the layout's rows.
    """

    def __init__(self, name: str, lr: Tensor, momentum: Tensor, weight_decay: Tensor,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        if name not in ("sgd", "adam"):
            raise ValueError(f"unknown optimizer {name!r}")
        self.name, self.lr, self.momentum, self.weight_decay = name, lr, momentum, weight_decay
        self.betas, self.eps = betas, eps
        self.layout: FlatLayout | None = None
        self.state: dict[str, Tensor] = {}  # slot → flat buffer ("buf" for SGD, "m", "v" for Adam)
        self._pending: dict[str, dict[str, Tensor]] = {}  # loaded per-tensor state, packed on first step
        # float64 so the bias corrections match torch.optim.Adam's Python-float arithmetic
        self.step_count = torch.zeros(lr.shape, dtype=torch.float64)
        self._no_weight_decay = bool((weight_decay == 0).all())
        self._wd = weight_decay.float().contiguous().view(-1, 1)
        self._mom = momentum.float().contiguous().view(-1, 1)
        self._lr = lr.float().contiguous().view(-1, 1)
        #: one pass of zoo._fused per step instead of the torch passes (same bits); False: torch only
        self.fused = _fused is not None

    def _bind(self, layout: FlatLayout) -> None:
        if self.layout is not None:
            return
        self.layout = layout
        if self._pending:
            slots = {k for st in self._pending.values() for k in st}
            self.state = {slot: layout.pack({n: self._pending[n][slot] for n in layout.names}) for slot in slots}
            self._pending = {}

    def step(self, layout: FlatLayout, params: Tensor, grad: Tensor, out: Tensor) -> Tensor:
        """Write every model's proposed parameters into ``out`` (flat buffers of ``layout``);
        return ``[P]`` bool: whether every entry of the model's proposal is finite.

        With :mod:`zoo._fused` one pass does it all (:attr:`fused`); otherwise ``grad`` is
        scratch (weight decay is added to it in place), every pass runs over the whole flat
        buffer, and per-model coefficients enter through ``addcmul`` on its rows.
        """
        self._bind(layout)
        if self.fused:
            return self._fused_step(layout, params, grad, out)
        self._torch_step(layout, params, grad, out)
        # a non-finite entry makes the per-model sum non-finite: one reduction for all models,
        # then the exact test for the few whose sum is not finite (it can overflow)
        finite = torch.isfinite(layout.per_model_sum(out))
        if not bool(finite.all()):
            suspects = (~finite).nonzero().flatten()
            finite[suspects] = torch.isfinite(layout.rows(out)[suspects]).all(1)
        return finite

    def _torch_step(self, layout: FlatLayout, params: Tensor, grad: Tensor, out: Tensor) -> None:
        """:meth:`step`'s proposal in torch passes (the reference for :mod:`zoo._fused`'s bits)."""
        p_rows, g_rows, o_rows = layout.rows(params), layout.rows(grad), layout.rows(out)
        if not self._no_weight_decay:
            g_rows.addcmul_(p_rows, self._wd)  # g + wd·p
        if self.name == "sgd":
            buf = self.state.get("buf")
            if buf is None:
                self.state["buf"] = buf = grad.clone()
            else:  # mom·buf + g, as torch.optim.SGD (dampening 0)
                torch.addcmul(g_rows, layout.rows(buf), self._mom, out=layout.rows(buf))
            torch.addcmul(p_rows, layout.rows(buf), self._lr, value=-1.0, out=o_rows)  # p − lr·buf
            return
        b1, b2 = self.betas
        if "m" not in self.state:
            self.state["m"] = grad * (1 - b1)
            self.state["v"] = (grad * grad).mul_(1 - b2)
        else:
            self.state["m"].lerp_(grad, 1 - b1)
            self.state["v"].mul_(b2).addcmul_(grad, grad, value=1 - b2)
        inv_coef, eps_over_coef = self._adam_coefficients()
        # p − lr/(1−β₁ᵗ) · m / (√v / √(1−β₂ᵗ) + ε) = p − m / d with the per-model denominator
        # d = (√v + ε√(1−β₂ᵗ)) / c, c = lr·√(1−β₂ᵗ)/(1−β₁ᵗ): three passes (sqrt, one addcmul per
        # block, addcdiv) instead of five. NumPy's sqrt is the correctly rounded hardware
        # instruction (torch's is an approximation, 1.7× slower here).
        np.sqrt(self.state["v"].numpy(), out=out.numpy())
        torch.addcmul(eps_over_coef, o_rows, inv_coef, out=o_rows)
        torch.addcdiv(params, self.state["m"], out, value=-1.0, out=out)

    def _fused_step(self, layout: FlatLayout, params: Tensor, grad: Tensor, out: Tensor) -> Tensor:
        """:meth:`step` in one pass of :mod:`zoo._fused` (the bits of :meth:`_torch_step`)."""
        for t in (params, grad, out):  # the kernel reads raw addresses: refuse anything but a flat buffer
            if t.dtype != torch.float32 or t.numel() != layout.numel or not t.is_contiguous():
                raise ValueError(f"expected flat float32 buffers of {layout.numel} entries, got {t.dtype} {tuple(t.shape)}")
        wd = 0 if self._no_weight_decay else self._wd.data_ptr()
        slot = "buf" if self.name == "sgd" else "m"
        first = slot not in self.state
        if first:
            self.state = {k: layout.empty() for k in (("buf",) if self.name == "sgd" else ("m", "v"))}
        finite = torch.empty(layout.P, dtype=torch.bool)  # the kernel writes 0/1 bytes
        ptrs = (layout.P, layout.row, params.data_ptr(), grad.data_ptr())
        if self.name == "sgd":
            _fused.sgd(*ptrs, self.state["buf"].data_ptr(), out.data_ptr(), finite.data_ptr(), wd,
                       self._mom.data_ptr(), self._lr.data_ptr(), first)
            return finite
        b1, b2 = self.betas
        inv_coef, eps_over_coef = self._adam_coefficients()
        _fused.adam(*ptrs, self.state["m"].data_ptr(), self.state["v"].data_ptr(), out.data_ptr(),
                    finite.data_ptr(), wd, inv_coef.data_ptr(), eps_over_coef.data_ptr(), first, 1 - b1, b2, 1 - b2)
        return finite

    def _adam_coefficients(self) -> tuple[Tensor, Tensor]:
        """Per-model ``1/c`` and ``ε√(1−β₂ᵗ)/c`` ``[P, 1]`` with ``c = lr·√(1−β₂ᵗ)/(1−β₁ᵗ)`` (float64, then float32).

        ``t`` is the step of the models still training: all of them have accepted every step
        so far, so they share it (frozen models' proposals are never used).
        """
        b1, b2 = self.betas
        t = float(self.step_count.max()) + 1
        bc2_sqrt = math.sqrt(1 - b2**t)
        inv = (1 - b1**t) / (self.lr.double() * bc2_sqrt)
        return inv.float().view(-1, 1), (inv * (self.eps * bc2_sqrt)).float().view(-1, 1)

    def advance(self, accept: Tensor) -> None:
        self.step_count = self.step_count + accept.to(self.step_count.dtype)

    def guarded_step(self, layout: FlatLayout, flat: Tensor, grad: Tensor, spare: Tensor, active: Tensor,
                     training: Tensor, diverged_epoch: list[int | None], epoch: int) -> tuple[Tensor, Tensor, Tensor]:
        """One step of every ``training`` model; a model whose proposed weights are not finite is frozen.

        Frozen models (not ``training``, or a non-finite proposal) keep their weights from
        ``flat``; an ``active`` model frozen now gets ``diverged_epoch[i] = epoch``. Returns
        ``(new flat, new spare, accept)``: the two buffers swap, ``accept`` is the models
        that stepped (the next step's ``active``). Shared by classifier and INR training.
        """
        accept = training & self.step(layout, flat, grad, spare)
        if not bool(accept.all()):  # frozen models keep their last finite weights
            keep = ~accept
            layout.rows(spare)[keep] = layout.rows(flat)[keep]
            for i in (active & keep).nonzero().flatten().tolist():
                diverged_epoch[i] = epoch
        self.advance(accept)
        return spare, flat, accept

    def state_dict(self) -> dict[str, Tensor]:
        """Flat tensors for checkpointing (resumable training): ``"<tensor>/<slot>"`` and ``step_count``."""
        flat: dict[str, Tensor] = {}
        if self.layout is not None:
            for slot, buf in self.state.items():
                for name, v in self.layout.views(buf).items():
                    flat[f"{name}/{slot}"] = v.clone()
        else:
            flat = {f"{name}/{k}": v.clone() for name, st in self._pending.items() for k, v in st.items()}
        flat["step_count"] = self.step_count.clone()
        return flat

    def load_state_dict(self, flat: dict[str, Tensor]) -> None:
        self.step_count = flat["step_count"].clone()
        self.state, self.layout = {}, None
        self._pending = {}
        for key, v in flat.items():
            if key == "step_count":
                continue
            name, k = key.rsplit("/", 1)
            self._pending.setdefault(name, {})[k] = v.clone()
