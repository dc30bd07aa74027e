"""SIREN (Sitzmann et al. 2020): the network, its initialisation, and a population fitted as one computation.

A SIREN of ``depth`` hidden layers of ``width`` units maps coordinates ``x ∈ [-1, 1]^d`` to
signal values::

    h_1 = sin(ω₀ · (W_0 x + b_0))          first layer, ω₀ = ``omega_0`` (default 30)
    h_{l+1} = sin(ω · (W_l h_l + b_l))     hidden layers, ω = ``hidden_omega`` (default 30)
    f(x) = W_depth h_depth + b_depth      linear output (one value per channel)

Tensor names are the MLP's (``layers.<i>.weight`` / ``.bias``), so checkpoints, the
``weights`` and ``spectral`` stages, the permutation augmentation and the neural learners
take SIRENs unchanged. Initialisation (Sitzmann et al., their reference code): the first
layer's weights ~ U(−1/in, 1/in), every later layer's ~ U(−√(6/in)/ω, √(6/in)/ω) with
the hidden ω; biases PyTorch's default U(±1/√in). The generator is seeded by
``derive_seed(seed, "init", signal_split, signal_index)``: every INR of a zoo starts from
its own draw (even with one seed), and the draw depends on the model's spec alone; with
``signals.init: shared`` (spec key ``signal_init: shared``) by ``derive_seed(seed, "init")``,
so every INR of one seed starts from the same weights.

Fitting (:class:`SirenPopulation`): ``P`` SIRENs of one shape fit ``P`` signals at once,
full batch (every coordinate every step, one step = one epoch), loss = mean squared
error over coordinates and channels. Activations are kept feature-major ``[P, features,
N]`` with the coordinate axis padded to a multiple of :data:`zoo.optim.ALIGN` (padded
columns carry no loss), every layer is one ``torch.baddbmm`` over the model axis, and the
backward is written out (``dW = g hᵀ``, ``db = Σ g``, ``g ← ω cos(ω z) ⊙ Wᵀ g``), so each
model's numbers are computed on their own: bit-identical whatever the population size or
order (``tests/test_inr.py``). Adam is :class:`zoo.optim.BatchedOptimizer`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from zoo.hashing import derive_seed
from zoo.optim import ALIGN, bmm_into

DEFAULT_OMEGA = 30.0


def omegas(spec: Mapping[str, Any]) -> tuple[float, float]:
    """``(ω₀ of the first layer, ω of the hidden layers)`` of a siren spec."""
    return float(spec.get("omega_0", DEFAULT_OMEGA)), float(spec.get("hidden_omega", DEFAULT_OMEGA))


def siren_shapes(spec: Mapping[str, Any], in_features: int, out_features: int) -> dict[str, tuple[int, ...]]:
    """Ordered tensor names and shapes of one SIREN."""
    widths = [int(spec["width"])] * int(spec["depth"]) + [int(out_features)]
    shapes: dict[str, tuple[int, ...]] = {}
    fan_in = int(in_features)
    for i, out in enumerate(widths):
        shapes[f"layers.{i}.weight"] = (out, fan_in)
        shapes[f"layers.{i}.bias"] = (out,)
        fan_in = out
    return shapes


def signal_dims(input_shape: Sequence[int]) -> tuple[int, int]:
    """``(coordinate dimensions, channels)`` of a dataset input shape: ``[C, H, W]`` → (2, C), ``[L]`` → (1, 1)."""
    return (1, 1) if len(input_shape) == 1 else (len(input_shape) - 1, int(input_shape[0]))


def init_siren(spec: Mapping[str, Any], in_features: int, out_features: int) -> dict[str, Tensor]:
    """Sitzmann et al.'s initialisation (module docstring), from the model's seed only."""
    shared = spec.get("signal_init") == "shared"  # signals.init: shared — one draw per seed for every signal
    signal = (spec["signal_split"], int(spec["signal_index"])) if "signal_index" in spec and not shared else ()
    gen = torch.Generator().manual_seed(derive_seed(spec["seed"], "init", *signal))
    _, hidden = omegas(spec)
    params: dict[str, Tensor] = {}
    for name, shape in siren_shapes(spec, in_features, out_features).items():
        layer, kind = name.rsplit(".", 1)
        fan_in = shape[1] if kind == "weight" else None
        if kind == "weight":
            bound = 1.0 / fan_in if layer == "layers.0" else math.sqrt(6.0 / fan_in) / hidden
        else:
            bound = 1.0 / math.sqrt(params[layer + ".weight"].shape[1])
        params[name] = (torch.rand(shape, generator=gen, dtype=torch.float32) * 2 - 1) * bound
    return params


class Siren(nn.Module):
    """Plain SIREN (``nn.Linear`` layers named ``layers.<i>``); ``forward(x [B, d]) → [B, channels]``."""

    def __init__(self, in_features: int, width: int, depth: int, out_features: int,
                 omega_0: float = DEFAULT_OMEGA, hidden_omega: float = DEFAULT_OMEGA):
        super().__init__()
        dims = [in_features] + [width] * depth + [out_features]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.omega_0, self.hidden_omega = float(omega_0), float(hidden_omega)

    def forward(self, x: Tensor) -> Tensor:
        h = x
        for i, layer in enumerate(self.layers):
            h = layer(h)
            if i < len(self.layers) - 1:
                h = torch.sin((self.omega_0 if i == 0 else self.hidden_omega) * h)
        return h


def build_siren(spec: Mapping[str, Any], in_features: int, out_features: int,
                params: Mapping[str, Tensor] | None = None) -> Siren:
    """A :class:`Siren` of ``spec``; loads ``params`` (one model's tensors) if given."""
    w0, w = omegas(spec)
    module = Siren(in_features, int(spec["width"]), int(spec["depth"]), out_features, w0, w)
    if params is not None:
        module.load_state_dict({k: torch.as_tensor(v) for k, v in params.items()})
    return module


def psnr_db(mse: Tensor | float, value_range: float = 2.0) -> Tensor:
    """Peak signal-to-noise ratio in dB: ``10·log10(range² / mse)`` (range 2 for values in [-1, 1])."""
    mse = torch.as_tensor(mse, dtype=torch.float64)
    return 10.0 * torch.log10(value_range**2 / mse)


def padded_coords(n: int) -> int:
    """Columns of the padded coordinate axis: ``n`` rounded up to a multiple of ALIGN."""
    return -(-n // ALIGN) * ALIGN


class SirenPopulation:
    """Loss of every SIREN of a population on its own signal, and its gradient, without autograd.

    ``coords`` ``[N, d]`` are shared; ``targets`` ``[P, N, C]`` are each model's signal.
    """

    def __init__(self, spec: Mapping[str, Any], coords: Tensor, targets: Tensor):
        self.depth = int(spec["depth"])
        self.omega_0, self.hidden_omega = omegas(spec)
        P, N, C = targets.shape
        self.P, self.N, self.C = P, N, C
        self.Np = padded_coords(N)
        x = torch.zeros(coords.shape[1], self.Np)
        x[:, :N] = coords.T
        x[:, N:] = coords[:1].T  # padding repeats the first coordinate; its columns carry no loss
        self.x = x.expand(P, -1, -1).contiguous()  # [P, d, Np]: every model's own (aligned) copy
        t = torch.zeros(P, C, self.Np)
        t[:, :, :N] = targets.transpose(1, 2)
        self.targets = t
        self.mask = torch.zeros(1, 1, self.Np)
        self.mask[:, :, :N] = 1.0
        self._saved: dict[str, Any] = {}
        self._buffers: dict[str, Tensor] = {}

    def omega(self, i: int) -> float:
        return self.omega_0 if i == 0 else self.hidden_omega

    def buffer(self, name: str, shape: tuple[int, ...]) -> Tensor:
        """A work tensor reused from step to step (allocating ~P·width·N floats per step costs page faults)."""
        buf = self._buffers.get(name)
        if buf is None or tuple(buf.shape) != tuple(shape):
            buf = self._buffers[name] = torch.empty(shape)
        return buf

    def outputs(self, params: Mapping[str, Tensor], keep: bool = False) -> Tensor:
        """Outputs ``[P, C, Np]`` at every (padded) coordinate; ``keep`` saves what :meth:`backward` needs."""
        h, inputs, cosines = self.x, [], []
        for i in range(self.depth + 1):
            w, b = params[f"layers.{i}.weight"], params[f"layers.{i}.bias"]
            inputs.append(h)
            z = torch.baddbmm(b.unsqueeze(2), w, h, out=self.buffer(f"z{i}", (self.P, w.shape[1], self.Np)))
            if i == self.depth:
                h = z
                break
            z.mul_(self.omega(i))
            if keep:
                cosines.append(torch.cos(z, out=self.buffer(f"cos{i}", z.shape)).mul_(self.omega(i)))
            h = torch.sin(z, out=self.buffer(f"sin{i}", z.shape))
        if keep:
            self._saved = {"inputs": inputs, "cosines": cosines, "params": params}
        return h

    def squared_error(self, out: Tensor) -> Tensor:
        """Per-model mean squared error ``[P]`` over the real coordinates and channels (float32)."""
        diff = torch.sub(out, self.targets, out=self.buffer("diff", out.shape)).mul_(self.mask)
        return diff.square().reshape(self.P, -1).sum(1) / (self.N * self.C)

    def loss(self, params: Mapping[str, Tensor]) -> Tensor:
        """Per-model MSE ``[P]``, keeping the forward pass for :meth:`backward`."""
        out = self.outputs(params, keep=True)
        self._saved["out"] = out
        return self.squared_error(out)

    def backward(self, weight: Tensor, grads: Mapping[str, Tensor]) -> None:
        """Write d(Σ_p weight_p · loss_p)/dθ into ``grads`` (tensors shaped like the parameters)."""
        sv = self._saved
        g = self.buffer("diff", sv["out"].shape)  # (out − target)·mask, left there by squared_error
        g.mul_((weight * (2.0 / (self.N * self.C))).view(self.P, 1, 1))
        params, inputs = sv["params"], sv["inputs"]
        for i in range(self.depth, -1, -1):
            dw = grads[f"layers.{i}.weight"]
            bmm_into(g, inputs[i].transpose(1, 2), dw, self.buffer(f"dW{i}", tuple(dw.shape)))
            torch.sum(g, 2, out=grads[f"layers.{i}.bias"])
            if i == 0:
                break
            w = params[f"layers.{i}.weight"]
            g = torch.bmm(w.transpose(1, 2), g, out=self.buffer(f"g{i}", (self.P, w.shape[2], self.Np)))
            g.mul_(sv["cosines"][i - 1])
        self._saved = {}
