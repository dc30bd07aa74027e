"""Architectures, twice: a batched functional form for populations and a plain nn.Module.

Both forms use the same tensor names (the nn.Module's ``state_dict`` keys), so a
population checkpoint slice loads straight into :func:`build_module`.

Batched form: every parameter carries a leading model axis ``P``; inputs are
``[P, B, *input_shape]`` (each model sees its own batch) and logits ``[P, B, n_classes]``.
MLP layers are batched matmuls; CNN and ResNet convolutions are im2col + one batched
matmul per layer (bit-identical whatever the population size).

Architectures (``spec["arch"]``):

- ``mlp``: ``depth`` hidden layers of ``width`` units.
- ``cnn``: ``depth`` convolutions of ``channels`` channels (``kernel``, ``stride``,
  'same'-style padding), global average pooling, linear head. Its defaults (3 × 16
  channels, 3×3, stride 2) are the Small CNN Zoo net: 4,970 parameters on 28×28×1 inputs.
- ``resnet``: a tiny pre-classifier ResNet without normalisation layers: a 3×3 stem,
  ``depth`` basic blocks (two 3×3 convolutions + identity or 1×1 shortcut), block ``s``
  with ``width · 2**s`` channels and stride 2 from the second block on, global average
  pooling, linear head. ``width`` is the width multiplier ``k`` of the ResNet18-``k``
  family (channels ``k, 2k, 4k, …``), the load-like axis of the phase zoos.
- ``transformer``: a tiny pre-LayerNorm encoder over tokens (``depth`` blocks, model
  dimension ``width``, ``heads`` heads), see :mod:`zoo.transformer`.

Initialisation (``spec["init"]``, per model): ``default`` (PyTorch's layer default),
``kaiming_normal``/``kaiming_uniform`` (gain √2, fan-in), ``xavier_normal``/
``xavier_uniform``, ``normal``/``uniform`` with standard deviation ``init_std``; all
but ``default`` start biases at zero.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.config import DEFAULT_INIT_STD, INIT_SCHEMES
from zoo.hashing import derive_seed
from zoo.transformer import Transformer, is_norm, transformer_forward, transformer_shapes

ACTIVATIONS = {
    "relu": F.relu,
    "tanh": torch.tanh,
    "gelu": F.gelu,
    "sigmoid": torch.sigmoid,
    "identity": lambda x: x,
}


#: ``dropout(h, model_axis)``: applied to hidden activations during training only.
DropoutFn = Callable[[Tensor, int], Tensor]


def resnet_blocks(spec: Mapping[str, Any]) -> list[tuple[int, int, int]]:
    """``(in_channels, out_channels, stride)`` of each basic block of a ``resnet`` spec."""
    k, blocks, cin = spec["width"], [], spec["width"]
    for s in range(spec["depth"]):
        cout = k * 2**s
        blocks.append((cin, cout, 1 if s == 0 else 2))
        cin = cout
    return blocks


def _check_image_input(spec: Mapping[str, Any], input_shape: tuple[int, ...]) -> None:
    if len(input_shape) != 3:
        from zoo.errors import SpecError

        raise SpecError(f"arch {spec['arch']!r} needs image inputs [channels, height, width], but dataset "
                        f"{spec.get('dataset')!r} gives {list(input_shape)}; use arch mlp for this dataset")


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
        _check_image_input(spec, input_shape)
        cin = input_shape[0]
        k, ch = spec["kernel"], spec["channels"]
        for i in range(spec["depth"]):
            shapes[f"convs.{i}.weight"] = (ch, cin, k, k)
            shapes[f"convs.{i}.bias"] = (ch,)
            cin = ch
        shapes["head.weight"] = (n_classes, cin)
        shapes["head.bias"] = (n_classes,)
    elif spec["arch"] == "resnet":
        _check_image_input(spec, input_shape)
        k = spec["width"]
        shapes["stem.weight"] = (k, input_shape[0], 3, 3)
        shapes["stem.bias"] = (k,)
        for i, (cin, cout, stride) in enumerate(resnet_blocks(spec)):
            shapes[f"blocks.{i}.conv1.weight"] = (cout, cin, 3, 3)
            shapes[f"blocks.{i}.conv1.bias"] = (cout,)
            shapes[f"blocks.{i}.conv2.weight"] = (cout, cout, 3, 3)
            shapes[f"blocks.{i}.conv2.bias"] = (cout,)
            if cin != cout or stride != 1:
                shapes[f"blocks.{i}.shortcut.weight"] = (cout, cin, 1, 1)
                shapes[f"blocks.{i}.shortcut.bias"] = (cout,)
        shapes["head.weight"] = (n_classes, resnet_blocks(spec)[-1][1])
        shapes["head.bias"] = (n_classes,)
    elif spec["arch"] == "transformer":
        shapes = transformer_shapes(spec, input_shape, n_classes)
    elif spec["arch"] == "siren":  # coordinates in, signal values out (n_classes is not used)
        from zoo.siren import signal_dims, siren_shapes

        shapes = siren_shapes(spec, *signal_dims(input_shape))
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
    if spec["arch"] == "siren":
        from zoo.siren import init_siren, signal_dims

        return init_siren(spec, *signal_dims(input_shape))
    gen = torch.Generator().manual_seed(derive_seed(spec["seed"], "init"))
    params: dict[str, Tensor] = {}
    shapes = param_shapes(spec, input_shape, n_classes)
    scheme = spec.get("init", "default")
    if scheme != "default":
        return _init_scheme(scheme, float(spec.get("init_std", DEFAULT_INIT_STD)), shapes, gen)
    for name, shape in shapes.items():
        if is_norm(name):  # LayerNorm: identity at start, as nn.LayerNorm
            params[name] = torch.ones(shape) if name.endswith(".weight") else torch.zeros(shape)
            continue
        weight_shape = shapes[name.rsplit(".", 1)[0] + ".weight"]
        fan_in = math.prod(weight_shape[1:])
        bound = 1.0 / math.sqrt(fan_in)
        params[name] = (torch.rand(shape, generator=gen, dtype=torch.float32) * 2 - 1) * bound
    return params


def init_std_of(scheme: str, weight_shape: Sequence[int], init_std: float = DEFAULT_INIT_STD) -> float:
    """Standard deviation of the initial weights of a ``weight_shape`` tensor under ``scheme``.

    fan_in = ∏ shape[1:], fan_out = shape[0] · ∏ shape[2:] (as ``torch.nn.init``);
    kaiming: √(2 / fan_in); xavier: √(2 / (fan_in + fan_out)); normal/uniform: ``init_std``.
    """
    fan_in = math.prod(weight_shape[1:])
    fan_out = weight_shape[0] * math.prod(weight_shape[2:])
    if scheme.startswith("kaiming"):
        return math.sqrt(2.0 / fan_in)
    if scheme.startswith("xavier"):
        return math.sqrt(2.0 / (fan_in + fan_out))
    if scheme in ("normal", "uniform"):
        return init_std
    raise ValueError(f"unknown init scheme {scheme!r}; choose one of {', '.join(INIT_SCHEMES)}")


def _init_scheme(scheme: str, init_std: float, shapes: Mapping[str, tuple[int, ...]], gen: torch.Generator) -> dict[str, Tensor]:
    """Weights ~ N(0, σ²) or U(±σ√3) with σ from :func:`init_std_of`; biases zero."""
    params: dict[str, Tensor] = {}
    for name, shape in shapes.items():
        if is_norm(name) and name.endswith(".weight"):
            params[name] = torch.ones(shape, dtype=torch.float32)
            continue
        if name.endswith(".bias"):
            params[name] = torch.zeros(shape, dtype=torch.float32)
            continue
        std = init_std_of(scheme, shape, init_std)
        if scheme.endswith("uniform"):
            params[name] = (torch.rand(shape, generator=gen, dtype=torch.float32) * 2 - 1) * (std * math.sqrt(3.0))
        else:
            params[name] = torch.randn(shape, generator=gen, dtype=torch.float32) * std
    return params


def init_population(specs: list[Mapping[str, Any]], input_shape: tuple[int, ...], n_classes: int) -> dict[str, Tensor]:
    """Stacked initial parameters ``[P, …]`` of models that share one architecture shape."""
    per_model = [init_params(s, input_shape, n_classes) for s in specs]
    return {name: torch.stack([p[name] for p in per_model]) for name in per_model[0]}


def forward_population(spec: Mapping[str, Any], params: Mapping[str, Tensor], x: Tensor,
                       dropout: DropoutFn | None = None) -> Tensor:
    """Logits ``[P, B, C]`` of all models; ``x`` is ``[P, B, *input_shape]``.

    ``dropout`` (training only) is applied to every hidden activation: after each hidden
    layer (mlp), each convolution (cnn), the stem and each block (resnet). It receives
    the activation and the index of its model axis.
    """
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
                if dropout is not None:
                    h = dropout(h, 0)
        return h
    if spec["arch"] == "transformer":
        return transformer_forward(spec, params, x, act, dropout)

    def drop(h: Tensor) -> Tensor:
        if dropout is None:
            return h
        return dropout(h.view(P, B, *h.shape[1:]), 0).view(h.shape)

    # CNN: im2col + one batched matmul per layer. Unlike a grouped convolution (whose
    # kernel choice depends on the number of groups), bmm computes each model's product
    # on its own, so results are bit-identical whatever the population size.
    h = x.reshape(P * B, *x.shape[2:])
    if spec["arch"] == "cnn":
        k, s = spec["kernel"], spec["stride"]
        for i in range(spec["depth"]):
            w, b = params[f"convs.{i}.weight"], params[f"convs.{i}.bias"]
            h = batched_conv2d(h, w, b, stride=s, padding=k // 2)
            h = act(h)
            h = drop(h)
    else:  # resnet
        h = drop(act(batched_conv2d(h, params["stem.weight"], params["stem.bias"], stride=1, padding=1)))
        for i, (_cin, _cout, stride) in enumerate(resnet_blocks(spec)):
            pre = f"blocks.{i}."
            out = act(batched_conv2d(h, params[pre + "conv1.weight"], params[pre + "conv1.bias"], stride, 1))
            out = batched_conv2d(out, params[pre + "conv2.weight"], params[pre + "conv2.bias"], 1, 1)
            if pre + "shortcut.weight" in params:
                h = batched_conv2d(h, params[pre + "shortcut.weight"], params[pre + "shortcut.bias"], stride, 0)
            h = drop(act(out + h))
    h = h.mean(dim=(2, 3)).reshape(P, B, -1)
    return torch.baddbmm(params["head.bias"].unsqueeze(1), h, params["head.weight"].transpose(1, 2))


def batched_conv2d(x: Tensor, w: Tensor, b: Tensor, stride: int, padding: int) -> Tensor:
    """Per-model 2-D convolution: ``x`` ``[P·B, C, H, W]``, ``w`` ``[P, O, C, k, k]``, ``b`` ``[P, O]``."""
    P, n_out, C, k, _ = w.shape
    PB, _, H, W = x.shape
    B = PB // P
    cols = F.unfold(x, k, padding=padding, stride=stride)  # [P·B, C·k·k, L]
    L = cols.shape[-1]
    cols = cols.view(P, B, C * k * k, L).transpose(2, 3).reshape(P, B * L, C * k * k)
    out = torch.baddbmm(b.unsqueeze(1), cols, w.reshape(P, n_out, -1).transpose(1, 2))  # [P, B·L, O]
    Ho = (H + 2 * padding - k) // stride + 1
    Wo = (W + 2 * padding - k) // stride + 1
    return out.view(P, B, Ho, Wo, n_out).permute(0, 1, 4, 2, 3).reshape(PB, n_out, Ho, Wo)


class PopulationDropout:
    """Inverted dropout with one rate and one random stream per model.

    Model ``i``'s keep-mask is drawn from its own generator with the shape of its own
    activation, so it depends only on that model's seed — never on the population.
    """

    def __init__(self, rates: Sequence[float], seeds: Sequence[int]):
        self.rates = torch.tensor([float(r) for r in rates], dtype=torch.float32)
        self.generators = [torch.Generator().manual_seed(s) for s in seeds]

    def __call__(self, h: Tensor, model_axis: int) -> Tensor:
        return h * self.multiplier(h.shape, model_axis, h.dtype)

    def multiplier(self, shape: Sequence[int], model_axis: int, dtype: torch.dtype = torch.float32) -> Tensor:
        """The factor ``keep / (1 − rate)`` (0 or 1/(1 − rate)) for an activation of ``shape``;
        draws the next mask of every model's stream (what :meth:`__call__` multiplies by)."""
        shape = tuple(shape)
        per_model = shape[:model_axis] + shape[model_axis + 1:]
        u = torch.stack([torch.rand(per_model, generator=g) for g in self.generators], dim=model_axis)
        view = [1] * len(shape)
        view[model_axis] = -1
        rate = self.rates.view(view)
        return (u >= rate).to(dtype) / (1 - rate)


class MLP(nn.Module):
    """Plain MLP: ``depth`` hidden layers of ``width`` units, activation between layers."""

    def __init__(self, in_features: int, width: int, depth: int, n_classes: int, activation: str = "relu",
                 dropout: float = 0.0):
        super().__init__()
        dims = [in_features] + [width] * depth + [n_classes]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.activation, self.dropout = activation, dropout

    def forward(self, x: Tensor) -> Tensor:
        h = x.flatten(1)
        for i, layer in enumerate(self.layers):
            h = layer(h)
            if i < len(self.layers) - 1:
                h = F.dropout(ACTIVATIONS[self.activation](h), self.dropout, self.training)
        return h


class CNN(nn.Module):
    """Plain CNN: ``depth`` conv layers (stride, 'same'-style padding), global average pool, linear head."""

    def __init__(self, in_channels: int, channels: int, depth: int, kernel: int, stride: int, n_classes: int,
                 activation: str = "relu", dropout: float = 0.0):
        super().__init__()
        chans = [in_channels] + [channels] * depth
        self.convs = nn.ModuleList(
            nn.Conv2d(a, b, kernel, stride=stride, padding=kernel // 2) for a, b in zip(chans[:-1], chans[1:])
        )
        self.head = nn.Linear(channels, n_classes)
        self.activation, self.dropout = activation, dropout

    def forward(self, x: Tensor) -> Tensor:
        h = x
        for conv in self.convs:
            h = F.dropout(ACTIVATIONS[self.activation](conv(h)), self.dropout, self.training)
        return self.head(h.mean(dim=(2, 3)))


class BasicBlock(nn.Module):
    """Two 3×3 convolutions plus a shortcut (identity, or 1×1 conv when shape changes); no normalisation."""

    def __init__(self, cin: int, cout: int, stride: int, activation: str):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.shortcut = nn.Conv2d(cin, cout, 1, stride=stride) if cin != cout or stride != 1 else None
        self.activation = activation

    def forward(self, x: Tensor) -> Tensor:
        act = ACTIVATIONS[self.activation]
        out = self.conv2(act(self.conv1(x)))
        return act(out + (x if self.shortcut is None else self.shortcut(x)))


class ResNet(nn.Module):
    """Tiny ResNet: 3×3 stem, basic blocks of ``width · 2**s`` channels, global average pool, linear head."""

    def __init__(self, in_channels: int, width: int, depth: int, n_classes: int, activation: str = "relu",
                 dropout: float = 0.0):
        super().__init__()
        plan = resnet_blocks({"width": width, "depth": depth})
        self.stem = nn.Conv2d(in_channels, width, 3, padding=1)
        self.blocks = nn.ModuleList(BasicBlock(a, b, s, activation) for a, b, s in plan)
        self.head = nn.Linear(plan[-1][1], n_classes)
        self.activation, self.dropout = activation, dropout

    def forward(self, x: Tensor) -> Tensor:
        h = F.dropout(ACTIVATIONS[self.activation](self.stem(x)), self.dropout, self.training)
        for block in self.blocks:
            h = F.dropout(block(h), self.dropout, self.training)
        return self.head(h.mean(dim=(2, 3)))


def build_module(spec: Mapping[str, Any], input_shape: tuple[int, ...], n_classes: int, params: Mapping[str, Tensor] | None = None) -> nn.Module:
    """An ``nn.Module`` of ``spec``; loads ``params`` (one model's tensors) if given."""
    p = float(spec.get("dropout", 0.0))
    if spec["arch"] == "siren":  # input_shape: the dataset's ([C, H, W] or [L]), as param_shapes
        from zoo.siren import build_siren, signal_dims

        return build_siren(spec, *signal_dims(input_shape), params)
    if spec["arch"] == "mlp":
        module: nn.Module = MLP(math.prod(input_shape), spec["width"], spec["depth"], n_classes, spec["activation"], p)
    elif spec["arch"] == "cnn":
        _check_image_input(spec, input_shape)
        module = CNN(input_shape[0], spec["channels"], spec["depth"], spec["kernel"], spec["stride"], n_classes,
                     spec["activation"], p)
    elif spec["arch"] == "transformer":
        module = Transformer(tuple(input_shape), spec["width"], spec["depth"], spec["heads"], n_classes,
                             spec["activation"], p)
    else:
        _check_image_input(spec, input_shape)
        module = ResNet(input_shape[0], spec["width"], spec["depth"], n_classes, spec["activation"], p)
    if params is not None:
        module.load_state_dict({k: torch.as_tensor(v) for k, v in params.items()})
    return module
