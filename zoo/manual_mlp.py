"""Hand-written forward and backward pass of a population of MLPs (the fast training path).

Autograd through :func:`zoo.models.forward_population` spends most of an MLP population's
step outside the matmuls: cross-entropy over a last axis of 10 classes (``log_softmax``
on ``[P·B, 10]`` runs ~15× slower than over the model-major layout), autograd's graph
bookkeeping, and temporaries. :class:`ManualMLP` computes the same loss and gradient with
the activations kept *feature-major* (``[P, features, B]``), so

- every layer is one batched matmul ``W @ h`` (model axis = batch axis, each model's
  product computed on its own, hence bit-identical whatever the population),
- the softmax reduces over the class axis with the batch contiguous (vectorised),
- the backward is written out: ``dz_L = w/B · (softmax − onehot)`` (``w`` the per-model
  weight of the loss: 1 active, 0 frozen), then per layer ``dW = dz hᵀ``, ``db = Σ_b dz``,
  ``dh = Wᵀ dz`` and the activation's own autograd kernel (``threshold_backward``,
  ``tanh_backward``, …), writing gradients straight into the optimizer's flat buffer.

The gradient equals autograd's to float32 rounding (``tests/test_fast_paths.py``: ≤ 1e-6
relative), and like the rest of population training it is bit-identical whatever the
population size and order. Dropout uses :class:`zoo.models.PopulationDropout`'s masks
(same draws as the autograd path). One approximation, documented: softmax terms below
e^-87 (float32's smallest normal number, ≈ 1.6e-38) are rounded up to it, because
``exp`` of a more negative argument takes a slow path that would cost a confident
population ~1 ms per step; it moves no gradient entry by more than 1e-37.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from zoo.optim import ALIGN, bmm_into, is_aligned

#: exp() arguments are clamped here (exp(-87) ≈ 1.6e-38 is still a normal float32).
EXP_FLOOR = -87.0

_BACKWARD = {  # activation → (its derivative kernel, whether that reads the output instead of the input)
    "relu": (lambda g, z: torch.ops.aten.threshold_backward.grad_input(g, z, 0, grad_input=g), False),
    "tanh": (lambda g, a: torch.ops.aten.tanh_backward.grad_input(g, a, grad_input=g), True),
    "sigmoid": (lambda g, a: torch.ops.aten.sigmoid_backward.grad_input(g, a, grad_input=g), True),
    "gelu": (lambda g, z: torch.ops.aten.gelu_backward.grad_input(g, z, grad_input=g), False),
    "identity": (None, False),
}
_FORWARD = {  # activation(z, out): the same kernels as zoo.models.ACTIVATIONS, written into out
    "relu": lambda z, out: torch.clamp_min(z, 0, out=out),  # what F.relu computes
    "tanh": lambda z, out: torch.tanh(z, out=out),
    "sigmoid": lambda z, out: torch.sigmoid(z, out=out),
    "gelu": lambda z, out: torch.ops.aten.gelu.out(z, out=out),
    "identity": lambda z, out: z,
}


def supports(spec: Mapping[str, Any]) -> bool:
    """Whether :class:`ManualMLP` covers ``spec`` (an MLP with one of the known activations)."""
    return spec.get("arch") == "mlp" and spec.get("activation") in _BACKWARD


def batch_multiple(features: Sequence[int]) -> int:
    """The smallest ``L`` such that ``f · L`` is a multiple of :data:`zoo.optim.ALIGN` for every ``f``.

    A batch padded to a multiple of ``L`` makes every ``[P, f, B]`` activation a contiguous
    tensor whose per-model slices are ALIGN-multiples: aligned matmul operands, and
    elementwise passes that run whole vectors only (no scalar tail, whose rounding differs).
    """
    twos = min(((f & -f).bit_length() - 1 for f in features), default=0)  # 2-adic valuation
    return max(1, ALIGN >> min(twos, ALIGN.bit_length() - 1))


def padded_batch(b: int, multiple: int) -> int:
    return -(-b // multiple) * multiple


class ManualMLP:
    """Loss of every model of an MLP population and its gradient, without autograd.

    :meth:`loss` runs the forward pass and keeps what the backward needs; :meth:`backward`
    then writes the gradient of ``Σ_p weight_p · loss_p`` into ``grads``. The loss is the
    mean cross-entropy (classification) or the mean squared error per output (regression)
    over the model's batch, as in :func:`zoo.train._train_epoch`'s autograd path.

    Inputs come padded to :meth:`padded` rows (the caller repeats real rows there); padded
    columns are computed like any other and then carry no loss and no gradient. Activations
    live in buffers reused from step to step (no allocation per step).
    """

    def __init__(self, spec: Mapping[str, Any], task: str, widths: Sequence[int]):
        if not supports(spec):
            raise ValueError(f"no hand-written backward for arch {spec.get('arch')!r} / activation {spec.get('activation')!r}")
        self.n_layers = int(spec["depth"]) + 1
        self.activation = spec["activation"]
        self.task = task
        self.multiple = batch_multiple(widths)  # widths: input features, hidden widths, outputs
        self._saved: dict[str, Any] = {}
        self._buffers: dict[tuple[str, tuple[int, ...]], Tensor] = {}

    @classmethod
    def of(cls, spec: Mapping[str, Any], shapes: Mapping[str, Sequence[int]], task: str = "classification") -> ManualMLP:
        """The step for MLPs whose tensors have the per-model ``shapes`` (``zoo.models.param_shapes``)."""
        n = int(spec["depth"]) + 1
        widths = [shapes["layers.0.weight"][1]] + [shapes[f"layers.{i}.weight"][0] for i in range(n)]
        return cls(spec, task, widths)

    def padded(self, b: int) -> int:
        """Rows a batch of ``b`` examples is padded to."""
        return padded_batch(b, self.multiple)

    def buffer(self, name: str, shape: tuple[int, ...], dtype: torch.dtype = torch.float32) -> Tensor:
        """A reusable contiguous work tensor (one per name and shape: a shorter last batch gets its own)."""
        key = (name, tuple(shape))
        buf = self._buffers.get(key)
        if buf is None or buf.dtype != dtype:
            buf = self._buffers[key] = torch.zeros(shape, dtype=dtype)
        return buf

    def _input(self, x: Tensor) -> Tensor:
        """``x`` ``[P, Bp, *input_shape]`` as an aligned ``[P, in, Bp]`` operand (a transposed view)."""
        P, Bp = x.shape[:2]
        x = x.reshape(P, Bp, -1)
        if Bp % self.multiple or not is_aligned(x):
            raise ValueError(f"inputs of {Bp} rows at stride {x.stride(0)}: pad the batch to a multiple of {self.multiple} "
                             "rows in a contiguous buffer (ManualMLP.padded)")
        return x.transpose(1, 2)

    def logits_t(self, params: Mapping[str, Tensor], x: Tensor) -> Tensor:
        """Class-major logits ``[P, C, Bp]`` of padded inputs (no dropout, nothing kept; for evaluation).

        ``x`` may share one batch across models (a stride-0 model axis).
        """
        P, Bp = x.shape[:2]
        act = _FORWARD[self.activation]
        x = x.reshape(P, Bp, -1)
        h = x.transpose(1, 2) if x.stride(0) == 0 else self._input(x)
        for i in range(self.n_layers):
            w = params[f"layers.{i}.weight"]
            h = torch.baddbmm(params[f"layers.{i}.bias"].unsqueeze(2), w, h, out=torch.empty(P, w.shape[1], Bp))
            if i < self.n_layers - 1:
                h = act(h, h)
        return h

    def loss(self, params: Mapping[str, Tensor], x: Tensor, y: Tensor, dropout: Any = None) -> Tensor:
        """Per-model loss ``[P]`` of the first ``B`` rows of padded inputs ``x`` ``[P, Bp, *input_shape]``;
        ``y`` ``[P, B]`` (classes) or ``[P, B, d]`` (regression)."""
        P, Bp = x.shape[:2]
        B = y.shape[1]
        act = _FORWARD[self.activation]
        reads_output = _BACKWARD[self.activation][1]
        h = self._input(x)  # [P, in, Bp]
        inputs, saved, masks = [], [], []
        for i in range(self.n_layers):
            w, b = params[f"layers.{i}.weight"], params[f"layers.{i}.bias"]
            inputs.append(h)
            z = torch.baddbmm(b.unsqueeze(2), w, h, out=self.buffer(f"z{i}", (P, w.shape[1], Bp), w.dtype))
            if i == self.n_layers - 1:
                break
            a = act(z, self.buffer(f"a{i}", z.shape, z.dtype))
            saved.append(a if reads_output else z)
            if dropout is not None:  # the masks of the B real rows, drawn as the autograd path draws them
                mult = self.buffer(f"mask{i}", z.shape, z.dtype)
                mult[:, :, :B] = dropout.multiplier((P, B, z.shape[1]), 0, z.dtype).transpose(1, 2)
                masks.append(mult)
                a = torch.mul(a, mult, out=self.buffer(f"dropped{i}", a.shape, a.dtype))
            h = a
        # per-model weight of each column: 1 for the B real rows, 0 for padding (scaled in backward)
        self._saved = {"inputs": inputs, "saved": saved, "masks": masks, "params": params, "B": B, "Bp": Bp}
        if self.task == "regression":
            target = self.buffer("target", z.shape, z.dtype)
            target[:, :, :B] = y.reshape(P, B, -1).transpose(1, 2)
            diff = torch.sub(z, target, out=self.buffer("diff", z.shape, z.dtype))  # [P, d, Bp]
            self._saved["dz"] = diff
            return (diff[:, :, :B] ** 2).transpose(1, 2).reshape(P, -1).mean(1)  # batch-major, as autograd's path
        m = z.amax(1, keepdim=True)  # [P, 1, Bp]
        shifted = torch.sub(z, m, out=self.buffer("shifted", z.shape, z.dtype))
        e = torch.clamp_min(shifted, EXP_FLOOR, out=self.buffer("probs", z.shape, z.dtype)).exp_()
        s = e.sum(1, keepdim=True)
        target = self.buffer("labels", (P, 1, Bp), torch.int64)
        target[:, 0, :B] = y
        per_example = s.log() - shifted.gather(1, target)  # -log softmax[y], [P, 1, Bp]
        self._saved["probs"], self._saved["target"] = e.div_(s), target
        return per_example[:, 0, :B].mean(1)

    def backward(self, weight: Tensor, grads: Mapping[str, Tensor]) -> None:
        """Write d(Σ_p weight_p · loss_p)/dθ into ``grads`` (tensors shaped like the parameters)."""
        sv = self._saved
        P, B, Bp = weight.shape[0], sv["B"], sv["Bp"]
        g = sv["dz"] if self.task == "regression" else sv["probs"]
        columns = self.buffer("columns", (P, 1, Bp), g.dtype).zero_()  # d loss_p / d per-example term, 0 on padding
        if self.task == "regression":
            columns[:, :, :B] = (weight * (2.0 / (B * g.shape[1]))).view(P, 1, 1)
        else:
            g.scatter_add_(1, sv["target"], self.buffer("minus_one", (P, 1, Bp), g.dtype).fill_(-1.0))
            columns[:, :, :B] = (weight / B).view(P, 1, 1)
        g.mul_(columns)
        params, inputs = sv["params"], sv["inputs"]
        kernel = _BACKWARD[self.activation][0]
        for i in range(self.n_layers - 1, -1, -1):
            dw = grads[f"layers.{i}.weight"]
            bmm_into(g, inputs[i].transpose(1, 2), dw, self.buffer(f"dW{i}", tuple(dw.shape), g.dtype))
            torch.sum(g, 2, out=grads[f"layers.{i}.bias"])
            if i == 0:
                break
            w = params[f"layers.{i}.weight"]
            g = torch.bmm(w.transpose(1, 2), g, out=self.buffer(f"dh{i - 1}", (P, w.shape[2], Bp), g.dtype))
            if sv["masks"]:
                g.mul_(sv["masks"][i - 1])
            if kernel is not None:
                g = kernel(g, sv["saved"][i - 1])
        self._saved = {}
