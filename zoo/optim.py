"""Batched SGD and Adam over stacked parameters, with per-model hyperparameters.

Each update is elementwise, so model ``i``'s trajectory never depends on the other
models of its population. The formulas follow ``torch.optim.SGD`` (momentum, dampening
0, L2 weight decay added to the gradient) and ``torch.optim.Adam`` (L2 weight decay,
bias correction as in PyTorch's single-tensor implementation).
"""

from __future__ import annotations

import torch
from torch import Tensor


def _per_model(values: Tensor, like: Tensor) -> Tensor:
    """Broadcast a ``[P]`` vector against a ``[P, …]`` parameter."""
    return values.view(-1, *([1] * (like.dim() - 1)))


class BatchedOptimizer:
    """Computes new parameter values; the caller decides which models accept them."""

    def __init__(self, name: str, lr: Tensor, momentum: Tensor, weight_decay: Tensor,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        if name not in ("sgd", "adam"):
            raise ValueError(f"unknown optimizer {name!r}")
        self.name, self.lr, self.momentum, self.weight_decay = name, lr, momentum, weight_decay
        self.betas, self.eps = betas, eps
        self.state: dict[str, dict[str, Tensor]] = {}
        # float64 so the bias corrections match torch.optim.Adam's Python-float arithmetic
        self.step_count = torch.zeros(lr.shape, dtype=torch.float64)
        self._no_weight_decay = bool((weight_decay == 0).all())
        self._coefficients: tuple[Tensor, Tensor] | None = None

    def proposal(self, name: str, p: Tensor, grad: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """New value of parameter ``name`` and new optimizer state, for every model."""
        g = grad if self._no_weight_decay else grad + _per_model(self.weight_decay, p) * p
        st = self.state.get(name, {})
        if self.name == "sgd":
            buf = st.get("buf")
            buf = g.clone() if buf is None else torch.addcmul(g, _per_model(self.momentum, p), buf)
            return p - _per_model(self.lr, p) * buf, {"buf": buf}
        b1, b2 = self.betas
        step_size, bc2_sqrt = self._adam_coefficients()
        m = torch.lerp(st["m"], g, 1 - b1) if "m" in st else g * (1 - b1)
        v = torch.addcmul(st["v"] * b2, g, g, value=1 - b2) if "v" in st else (g * g).mul_(1 - b2)
        denom = v.sqrt().div_(_per_model(bc2_sqrt, p)).add_(self.eps)
        return p - (m / denom).mul_(_per_model(step_size, p)), {"m": m, "v": v}

    def _adam_coefficients(self) -> tuple[Tensor, Tensor]:
        """Per-model lr / (1 − β₁ᵗ) and √(1 − β₂ᵗ), computed once per step in float64."""
        if self._coefficients is None:
            b1, b2 = self.betas
            t = self.step_count + 1
            self._coefficients = ((self.lr.double() / (1 - b1**t)).float(), torch.sqrt(1 - b2**t).float())
        return self._coefficients

    def commit(self, name: str, new_state: dict[str, Tensor]) -> None:
        """Adopt the new state. A frozen (diverged) model never trains again, so its
        optimizer state no longer matters and needs no masking."""
        self.state[name] = new_state

    def advance(self, accept: Tensor) -> None:
        self.step_count = self.step_count + accept.to(self.step_count.dtype)
        self._coefficients = None

    def state_dict(self) -> dict[str, Tensor]:
        """Flat tensors for checkpointing (resumable training)."""
        flat = {f"{name}/{k}": v for name, st in self.state.items() for k, v in st.items()}
        flat["step_count"] = self.step_count
        return flat

    def load_state_dict(self, flat: dict[str, Tensor]) -> None:
        self.step_count = flat["step_count"].clone()
        self.state = {}
        for key, v in flat.items():
            if key == "step_count":
                continue
            name, k = key.rsplit("/", 1)
            self.state.setdefault(name, {})[k] = v.clone()

