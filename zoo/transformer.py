"""A tiny pre-LayerNorm transformer encoder for sequences, batched over a population.

Tokens: a 1-D input ``[L]`` is ``L`` tokens of one feature (MNIST-1D); an input
``[..., H, W]`` is ``H`` tokens (rows) of ``∏ other dims`` features (an image read row by
row). Network (nanoGPT-style, no causal mask): linear token embedding + learned position
embedding; ``depth`` blocks of ``x + attn(ln1(x))`` and ``x + mlp(ln2(x))`` (``heads``
heads, MLP ``width → 2·width → width`` with the spec's activation); final LayerNorm, mean
over tokens, linear head.

Tensor names (both forms): ``embed.{weight,bias}``, ``pos.weight`` ``[L, width]``,
``blocks.{i}.ln1|ln2.{weight,bias}``, ``blocks.{i}.attn.qkv|proj.{weight,bias}``,
``blocks.{i}.mlp.fc|proj.{weight,bias}``, ``ln_f.{weight,bias}``, ``head.{weight,bias}``.
Every product is a batched matmul with the model axis as a batch dimension, so each
model's numbers are computed on their own (bit-identical whatever the population).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LN_EPS = 1e-5


def tokens_of(input_shape: tuple[int, ...]) -> tuple[int, int]:
    """``(sequence length, features per token)`` of an input shape."""
    if len(input_shape) == 1:
        return input_shape[0], 1
    return input_shape[-2], math.prod(input_shape[:-2]) * input_shape[-1]


def is_norm(name: str) -> bool:
    """Whether a tensor belongs to a LayerNorm (initialised to weight 1, bias 0)."""
    layer = name.rsplit(".", 1)[0]
    return layer.rsplit(".", 1)[-1] in ("ln1", "ln2", "ln_f")


def transformer_shapes(spec: Mapping[str, Any], input_shape: tuple[int, ...], n_classes: int) -> dict[str, tuple[int, ...]]:
    """Ordered tensor names and shapes of one transformer."""
    from zoo.errors import SpecError

    d, heads = spec["width"], spec["heads"]
    if d % heads:
        raise SpecError(f"arch transformer: width {d} is not divisible by heads {heads}; pick width = heads × head size")
    L, f = tokens_of(input_shape)
    shapes: dict[str, tuple[int, ...]] = {"embed.weight": (d, f), "embed.bias": (d,), "pos.weight": (L, d)}
    for i in range(spec["depth"]):
        p = f"blocks.{i}."
        shapes.update({
            p + "ln1.weight": (d,), p + "ln1.bias": (d,),
            p + "attn.qkv.weight": (3 * d, d), p + "attn.qkv.bias": (3 * d,),
            p + "attn.proj.weight": (d, d), p + "attn.proj.bias": (d,),
            p + "ln2.weight": (d,), p + "ln2.bias": (d,),
            p + "mlp.fc.weight": (2 * d, d), p + "mlp.fc.bias": (2 * d,),
            p + "mlp.proj.weight": (d, 2 * d), p + "mlp.proj.bias": (d,),
        })
    shapes.update({"ln_f.weight": (d,), "ln_f.bias": (d,), "head.weight": (n_classes, d), "head.bias": (n_classes,)})
    return shapes


def _linear(h: Tensor, w: Tensor, b: Tensor) -> Tensor:
    """``h`` ``[P, …, in]`` → ``[P, …, out]`` with per-model ``w`` ``[P, out, in]``, ``b`` ``[P, out]``."""
    flat = h.reshape(h.shape[0], -1, h.shape[-1])
    out = torch.baddbmm(b.unsqueeze(1), flat, w.transpose(1, 2))
    return out.view(*h.shape[:-1], w.shape[1])


def _layer_norm(h: Tensor, w: Tensor, b: Tensor) -> Tensor:
    """LayerNorm over the last axis with per-model affine ``w``, ``b`` ``[P, d]``."""
    shape = (h.shape[0],) + (1,) * (h.dim() - 2) + (h.shape[-1],)
    return F.layer_norm(h, h.shape[-1:], eps=LN_EPS) * w.view(shape) + b.view(shape)


def _attention(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """Softmax attention over the token axis: ``[…, L, dh]`` each."""
    att = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
    return torch.matmul(att.softmax(-1), v)


def transformer_forward(spec: Mapping[str, Any], params: Mapping[str, Tensor], x: Tensor,
                        act: Callable[[Tensor], Tensor], dropout: Callable[[Tensor, int], Tensor] | None = None) -> Tensor:
    """Logits ``[P, B, C]``; ``x`` is ``[P, B, *input_shape]``. Dropout acts on the MLP hidden layer."""
    P, B = x.shape[:2]
    L, f = tokens_of(tuple(x.shape[2:]))
    d, heads = spec["width"], spec["heads"]
    tok = x.reshape(P, B, L, f) if x.dim() > 3 else x.reshape(P, B, L, 1)
    h = _linear(tok, params["embed.weight"], params["embed.bias"]) + params["pos.weight"].unsqueeze(1)
    for i in range(spec["depth"]):
        p = f"blocks.{i}."
        a = _layer_norm(h, params[p + "ln1.weight"], params[p + "ln1.bias"])
        qkv = _linear(a, params[p + "attn.qkv.weight"], params[p + "attn.qkv.bias"])
        q, k, v = (t.reshape(P, B, L, heads, d // heads).transpose(2, 3) for t in qkv.split(d, dim=-1))
        y = _attention(q, k, v).transpose(2, 3).reshape(P, B, L, d)
        h = h + _linear(y, params[p + "attn.proj.weight"], params[p + "attn.proj.bias"])
        m = act(_linear(_layer_norm(h, params[p + "ln2.weight"], params[p + "ln2.bias"]),
                        params[p + "mlp.fc.weight"], params[p + "mlp.fc.bias"]))
        if dropout is not None:
            m = dropout(m, 0)
        h = h + _linear(m, params[p + "mlp.proj.weight"], params[p + "mlp.proj.bias"])
    h = _layer_norm(h, params["ln_f.weight"], params["ln_f.bias"]).mean(dim=2)
    return torch.baddbmm(params["head.bias"].unsqueeze(1), h, params["head.weight"].transpose(1, 2))


class _Attention(nn.Module):
    def __init__(self, d: int, heads: int):
        super().__init__()
        self.qkv, self.proj, self.heads = nn.Linear(d, 3 * d), nn.Linear(d, d), heads

    def forward(self, x: Tensor) -> Tensor:
        B, L, d = x.shape
        q, k, v = (t.reshape(B, L, self.heads, d // self.heads).transpose(1, 2) for t in self.qkv(x).split(d, dim=-1))
        return self.proj(_attention(q, k, v).transpose(1, 2).reshape(B, L, d))


class _MLP(nn.Module):
    def __init__(self, d: int):
        super().__init__()
        self.fc, self.proj = nn.Linear(d, 2 * d), nn.Linear(2 * d, d)


class _Block(nn.Module):
    def __init__(self, d: int, heads: int):
        super().__init__()
        self.ln1, self.attn = nn.LayerNorm(d, eps=LN_EPS), _Attention(d, heads)
        self.ln2, self.mlp = nn.LayerNorm(d, eps=LN_EPS), _MLP(d)


class Transformer(nn.Module):
    """Plain single-model form of :func:`transformer_forward` (same tensor names)."""

    def __init__(self, input_shape: tuple[int, ...], width: int, depth: int, heads: int, n_classes: int,
                 activation: str = "gelu", dropout: float = 0.0):
        super().__init__()
        L, f = tokens_of(input_shape)
        self.seq_len, self.features = L, f
        self.embed = nn.Linear(f, width)
        self.pos = nn.Embedding(L, width)
        self.blocks = nn.ModuleList(_Block(width, heads) for _ in range(depth))
        self.ln_f = nn.LayerNorm(width, eps=LN_EPS)
        self.head = nn.Linear(width, n_classes)
        self.activation, self.dropout = activation, dropout

    def forward(self, x: Tensor) -> Tensor:
        from zoo.models import ACTIVATIONS

        act = ACTIVATIONS[self.activation]
        h = self.embed(x.reshape(len(x), self.seq_len, self.features)) + self.pos.weight
        for blk in self.blocks:
            h = h + blk.attn(blk.ln1(h))
            m = F.dropout(act(blk.mlp.fc(blk.ln2(h))), self.dropout, self.training)
            h = h + blk.mlp.proj(m)
        return self.head(self.ln_f(h).mean(dim=1))
