"""Architectures, twice: a batched functional form for populations and a plain nn.Module.

Both forms use the same tensor names (the nn.Module's ``state_dict`` keys), so a
population checkpoint slice loads straight into :func:`build_module`.

Batched form: every parameter carries a leading model axis ``P``; inputs are
``[P, B, *input_shape]`` (each model sees its own batch) and logits ``[P, B, n_classes]``.
MLP layers are batched matmuls; CNN layers are one grouped convolution with ``groups=P``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.hashing import derive_seed

ACTIVATIONS = {
    "relu": F.relu,
    "tanh": torch.tanh,
    "gelu": F.gelu,
    "sigmoid": torch.sigmoid,
    "identity": lambda x: x,
}


def param_shapes(spec: Mapping[str, Any], input_shape: tuple[int, ...], n_classes: int) -> dict[str, tuple[int, ...]]:
    """Ordered tensor names and shapes of one model of ``spec``."""
    shapes: dict[str, tuple[int, ...]] = {}
    if spec["arch"] == "mlp":
        fan_in = math.prod(input_shape)
        widths = [spec["width"]] * spec["depth"] + [n_classes]
        for i, out in enumerate(widths):
            shapes[f"layers.{i}.weight"] = (out, fan_in)
            shapes[f"layers.{i}.bias"] = (out,)
            fan_in = out
    elif spec["arch"] == "cnn":
        cin = input_shape[0]
        k, ch = spec["kernel"], spec["channels"]
        for i in range(spec["depth"]):
            shapes[f"convs.{i}.weight"] = (ch, cin, k, k)
            shapes[f"convs.{i}.bias"] = (ch,)
            cin = ch
        shapes["head.weight"] = (n_classes, cin)
        shapes["head.bias"] = (n_classes,)
    else:  # pragma: no cover - the schema rejects other archs
        raise ValueError(f"unknown arch {spec['arch']!r}")
    return shapes


def n_params(spec: Mapping[str, Any], input_shape: tuple[int, ...], n_classes: int) -> int:
    """Number of trainable scalars of one model."""
    return sum(math.prod(s) for s in param_shapes(spec, input_shape, n_classes).values())


def init_params(spec: Mapping[str, Any], input_shape: tuple[int, ...], n_classes: int) -> dict[str, Tensor]:
    """PyTorch's default init (U(±1/√fan_in) for weights and biases), from the model's seed only.

    The generator is seeded by ``derive_seed(seed, "init")``: models that share a seed and
    an architecture start from the same weights whatever their learning rate or batch
    size (common random numbers across the temperature axes of a phase grid).
    """
    gen = torch.Generator().manual_seed(derive_seed(spec["seed"], "init"))
    params: dict[str, Tensor] = {}
    shapes = param_shapes(spec, input_shape, n_classes)
    for name, shape in shapes.items():
        weight_shape = shapes[name.rsplit(".", 1)[0] + ".weight"]
        fan_in = math.prod(weight_shape[1:])
        bound = 1.0 / math.sqrt(fan_in)
        params[name] = (torch.rand(shape, generator=gen, dtype=torch.float32) * 2 - 1) * bound
    return params


def init_population(specs: list[Mapping[str, Any]], input_shape: tuple[int, ...], n_classes: int) -> dict[str, Tensor]:
    """Stacked initial parameters ``[P, …]`` of models that share one architecture shape."""
    per_model = [init_params(s, input_shape, n_classes) for s in specs]
    return {name: torch.stack([p[name] for p in per_model]) for name in per_model[0]}


def forward_population(spec: Mapping[str, Any], params: Mapping[str, Tensor], x: Tensor) -> Tensor:
    """Logits ``[P, B, C]`` of all models; ``x`` is ``[P, B, *input_shape]``."""
    act = ACTIVATIONS[spec["activation"]]
    P, B = x.shape[:2]
    if spec["arch"] == "mlp":
        h = x.reshape(P, B, -1)
        n_layers = spec["depth"] + 1
        for i in range(n_layers):
            w, b = params[f"layers.{i}.weight"], params[f"layers.{i}.bias"]
            h = torch.baddbmm(b.unsqueeze(1), h, w.transpose(1, 2))
            if i < n_layers - 1:
                h = act(h)
        return h
    # CNN: im2col + one batched matmul per layer. Unlike a grouped convolution (whose
    # kernel choice depends on the number of groups), bmm computes each model's product
    # on its own, so results are bit-identical whatever the population size.
    h = x.reshape(P * B, *x.shape[2:])
    k, s = spec["kernel"], spec["stride"]
    for i in range(spec["depth"]):
        w, b = params[f"convs.{i}.weight"], params[f"convs.{i}.bias"]
        h = batched_conv2d(h, w, b, stride=s, padding=k // 2)
        h = act(h)
    h = h.mean(dim=(2, 3)).reshape(P, B, -1)
    return torch.baddbmm(params["head.bias"].unsqueeze(1), h, params["head.weight"].transpose(1, 2))


def batched_conv2d(x: Tensor, w: Tensor, b: Tensor, stride: int, padding: int) -> Tensor:
    """Per-model 2-D convolution: ``x`` ``[P·B, C, H, W]``, ``w`` ``[P, O, C, k, k]``, ``b`` ``[P, O]``."""
    P, O, C, k, _ = w.shape
    PB, _, H, W = x.shape
    B = PB // P
    cols = F.unfold(x, k, padding=padding, stride=stride)  # [P·B, C·k·k, L]
    L = cols.shape[-1]
    cols = cols.view(P, B, C * k * k, L).transpose(2, 3).reshape(P, B * L, C * k * k)
    out = torch.baddbmm(b.unsqueeze(1), cols, w.reshape(P, O, -1).transpose(1, 2))  # [P, B·L, O]
    Ho = (H + 2 * padding - k) // stride + 1
    Wo = (W + 2 * padding - k) // stride + 1
    return out.view(P, B, Ho, Wo, O).permute(0, 1, 4, 2, 3).reshape(PB, O, Ho, Wo)


class MLP(nn.Module):
    """Plain MLP: ``depth`` hidden layers of ``width`` units, activation between layers."""

    def __init__(self, in_features: int, width: int, depth: int, n_classes: int, activation: str = "relu"):
        super().__init__()
        dims = [in_features] + [width] * depth + [n_classes]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.activation = activation

    def forward(self, x: Tensor) -> Tensor:
        h = x.flatten(1)
        for i, layer in enumerate(self.layers):
            h = layer(h)
            if i < len(self.layers) - 1:
                h = ACTIVATIONS[self.activation](h)
        return h


class CNN(nn.Module):
    """Plain CNN: ``depth`` conv layers (stride, 'same'-style padding), global average pool, linear head."""

    def __init__(self, in_channels: int, channels: int, depth: int, kernel: int, stride: int, n_classes: int, activation: str = "relu"):
        super().__init__()
        chans = [in_channels] + [channels] * depth
        self.convs = nn.ModuleList(
            nn.Conv2d(a, b, kernel, stride=stride, padding=kernel // 2) for a, b in zip(chans[:-1], chans[1:])
        )
        self.head = nn.Linear(channels, n_classes)
        self.activation = activation

    def forward(self, x: Tensor) -> Tensor:
        h = x
        for conv in self.convs:
            h = ACTIVATIONS[self.activation](conv(h))
        return self.head(h.mean(dim=(2, 3)))


def build_module(spec: Mapping[str, Any], input_shape: tuple[int, ...], n_classes: int, params: Mapping[str, Tensor] | None = None) -> nn.Module:
    """An ``nn.Module`` of ``spec``; loads ``params`` (one model's tensors) if given."""
    if spec["arch"] == "mlp":
        module: nn.Module = MLP(math.prod(input_shape), spec["width"], spec["depth"], n_classes, spec["activation"])
    else:
        module = CNN(input_shape[0], spec["channels"], spec["depth"], spec["kernel"], spec["stride"], n_classes, spec["activation"])
    if params is not None:
        module.load_state_dict({k: torch.as_tensor(v) for k, v in params.items()})
    return module
