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

    def proposal(self, name: str, p: Tensor, grad: Tensor, active: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """New value of parameter ``name`` and new optimizer state, for every model."""
        wd, lr = _per_model(self.weight_decay, p), _per_model(self.lr, p)
        g = grad + wd * p
        st = self.state.get(name, {})
        if self.name == "sgd":
            mom = _per_model(self.momentum, p)
            buf = st.get("buf")
            buf = g.clone() if buf is None else mom * buf + g
            return p - lr * buf, {"buf": buf}
        b1, b2 = self.betas
        t = _per_model(self.step_count + 1, p)
        m = torch.lerp(st.get("m", torch.zeros_like(p)), g, 1 - b1)
        v = st.get("v", torch.zeros_like(p)) * b2 + (1 - b2) * g * g
        step_size = (_per_model(self.lr.double(), p) / (1 - b1**t)).float()
        bc2_sqrt = torch.sqrt(1 - b2**t).float()
        denom = v.sqrt() / bc2_sqrt + self.eps
        return p - step_size * m / denom, {"m": m, "v": v}

    def commit(self, name: str, new_state: dict[str, Tensor], accept: Tensor) -> None:
        """Keep the new state for accepted models, the old one for frozen models."""
        old = self.state.get(name)
        if old is None:
            self.state[name] = {k: torch.where(_per_model(accept, v), v, torch.zeros_like(v)) for k, v in new_state.items()}
        else:
            self.state[name] = {k: torch.where(_per_model(accept, v), v, old[k]) for k, v in new_state.items()}

    def advance(self, accept: Tensor) -> None:
        self.step_count = self.step_count + accept.to(self.step_count.dtype)

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

