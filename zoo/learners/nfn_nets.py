"""``nfn-np`` / ``nfn-hnp``: the NFN paper's predictor on the official ``nfn`` layers.

Zhou et al. 2023, "Permutation Equivariant Neural Functionals" (NeurIPS), predicting a
CNN's generalisation from its weights (their ``experiments/predict_gen.py`` with
``nfnet=hnp_inv`` / ``np_inv``): a stack of equivariant layers with ReLU, then the
invariant ``HNPPool`` (means over the permutable dimensions; the input columns of the first
layer and the output rows of the last are kept, since those units are not permutable),
flattened, then an MLP head of two hidden layers. Layers:

- ``nfn-hnp`` — ``nfn.layers.HNPLinear`` (hidden-neuron permutations only, the paper's HNP);
- ``nfn-np`` — ``nfn.layers.NPLinear(io_embed=True)`` (the paper's ``NP-PosEmb``: NP layers,
  whose input/output symmetry is broken by learned position embeddings), same pool and head.

Our networks reach these layers in the NFN layout (per layer ``[B, 1, n_out, n_in]``, or
``[B, 1, n_out, n_in, kh, kw]`` for convolutions, biases ``[B, 1, n_out]``; see
:meth:`zoo.learners.dataset.WeightDataset.to_stacked`), each entry transformed by
``asinh(x / rms)`` with one RMS per tensor name (as the other neural learners; it keeps
every symmetry). What we changed, to fit a CPU time budget (sizes in the constructor and
``docs/learners.md``): fewer channels and a narrower head than the paper's ``[16, 16, 5]`` /
1000, MSE on standardised targets instead of BCE on a sigmoid (so ``ggap`` works too),
AdamW with early stopping on the validation models (the paper keeps the best-τ epoch).
Only the layer classes come from ``nfn``; this module is ours.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from zoo.learners.nets import Padder, _mlp

NFN_MODES = ("np", "hnp")


def network_spec_of(padder: Padder) -> object:
    """The ``nfn.common.NetworkSpec`` of networks shaped like ``padder``'s (hidden sizes symmetric)."""
    from nfn.common import WeightSpaceFeatures, network_spec_from_wsfeat

    ws = [torch.zeros((1, 1, *padder.shapes[w])) for w, _ in padder.pairs]
    bs = [torch.zeros((1, 1, *padder.shapes[b])) for _, b in padder.pairs]
    return network_spec_from_wsfeat(WeightSpaceFeatures(ws, bs))


class NFNPredictor(nn.Module):
    """Invariant NFN: ``len(channels)`` NP/HNP layers + ReLU → HNPPool → MLP(hidden, hidden) → ``out_dim``."""

    def __init__(self, padder: Padder, out_dim: int = 1, mode: str = "hnp", channels: Sequence[int] = (16, 16, 4),
                 hidden: int = 256, dropout: float = 0.0):
        super().__init__()
        from nfn.layers import HNPLinear, HNPPool, NPLinear, TupleOp

        if mode not in NFN_MODES:
            raise ValueError(f"mode {mode!r}: one of {NFN_MODES}")
        spec = network_spec_of(padder)
        self.kernels = [tuple(padder.shapes[w][2:]) for w, _ in padder.pairs]
        self.L = padder.n_layers
        layers: list[nn.Module] = []
        prev = 1
        for c in channels:
            layer = (HNPLinear(spec, prev, c) if mode == "hnp"
                     else NPLinear(spec, prev, c, io_embed=True))
            layers += [layer, TupleOp(nn.ReLU())]
            prev = c
        self.features = nn.Sequential(*layers)
        self.pool = HNPPool(spec)
        self.head = _mlp([prev * HNPPool.get_num_outs(spec), hidden, hidden, out_dim], dropout)

    def wsfeat(self, batch: Mapping[str, Tensor]) -> object:
        """A :class:`~zoo.learners.nets.Padder` batch (``w{l}`` ``[B, n_out, n_in, e]``) → ``WeightSpaceFeatures``."""
        from nfn.common import WeightSpaceFeatures

        ws, bs = [], []
        for li in range(self.L):
            w = batch[f"w{li}"]
            ws.append(w.reshape(w.shape[0], 1, w.shape[1], w.shape[2], *self.kernels[li]))
            bs.append(batch[f"b{li}"].unsqueeze(1))
        return WeightSpaceFeatures(ws, bs)

    def forward(self, batch: Mapping[str, Tensor]) -> Tensor:
        pooled = self.pool(self.features(self.wsfeat(batch)))  # [B, C, n_pool]
        return self.head(pooled.flatten(1))
