"""The neural learners' networks (plain torch; Lightning training lives in :mod:`zoo.learners.neural`).

Input: a network's tensors as a dict from :class:`Padder` — for the flat MLP zero-padded to
the largest shape in the zoo (a zero hidden unit changes nothing), for the invariant net
unpadded (batches hold networks of one shape), with a mask of the real hidden units. Every layer
is viewed as ``W [n_out, n_in, e]`` (``e`` = kernel positions for convolutions, 1 for linear).

- :class:`FlatMLP` — all entries flattened into one vector → MLP (not permutation invariant).
- :class:`NeuronSetNet` — DeepSets over the neurons of each hidden layer, one round of
  NFN-style message passing: a hidden neuron's embedding combines its incoming and
  outgoing weights and its bias; edges to other *hidden* layers are embedded one by one
  and averaged over the (permutable) other end, edges to the fixed input/output units are
  read positionally. An edge is embedded by a learned ReLU basis φ(w) = ReLU(A·w + c) (8
  functions), averaged over the other end, then mapped linearly. Neuron embeddings are pooled (mean, max, log count) per layer, so the
  output is invariant to every hidden-neuron (channel) permutation, and the network takes
  zoos of mixed widths.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from zoo.learners.dataset import layer_pairs


def as_3d(t: Tensor) -> Tensor:
    """``[out, in, *kernel]`` → ``[out, in, e]``."""
    return t.reshape(t.shape[0], t.shape[1], -1)


class Padder:
    """Pads one network's tensors to the zoo's largest shapes; returns a dict for batching.

    Keys: ``w{l}`` ``[n_out, n_in, e]``, ``b{l}`` ``[n_out]`` for every layer ``l`` and
    ``m{h}`` ``[n_h]`` (1 = real unit) for every hidden layer ``h``; with ``stats``, also
    ``s`` ``[7 · 2L]``: mean, std and the 0/25/50/75/100 % quantiles of every (transformed,
    unpadded) tensor — StatNN's statistics, invariant to every permutation. Entries are
    ``asinh(x / scale)`` with one scale per tensor name (the training zoo's RMS), which
    keeps diverged networks' huge weights from dominating while staying elementwise.
    """

    def __init__(self, samples: Sequence[Mapping[str, Tensor]], pad: bool = True, stats: bool = False):
        self.pad = pad
        self.stats = stats
        self.pairs = layer_pairs(samples[0])
        names = [n for pair in self.pairs for n in pair]
        self.shapes = {n: tuple(max(s[n].shape[d] for s in samples) for d in range(samples[0][n].dim())) for n in names}
        self.scales = {}
        for n in names:
            sq = torch.stack([s[n].double().pow(2).mean() for s in samples])
            sq = sq[torch.isfinite(sq)]
            self.scales[n] = float(sq.median().sqrt()) if len(sq) and float(sq.median()) > 0 else 1.0

    @property
    def n_layers(self) -> int:
        return len(self.pairs)

    def dims(self) -> dict[str, list[int]]:
        """Padded sizes: ``units`` per layer output, ``n_in`` of layer 0, ``e`` per layer."""
        ws = [as_3d(torch.zeros(self.shapes[w])) for w, _ in self.pairs]
        return {"units": [w.shape[0] for w in ws], "n_in": [ws[0].shape[1]], "e": [w.shape[2] for w in ws]}

    def __call__(self, params: Mapping[str, Tensor]) -> dict[str, Tensor]:
        out: dict[str, Tensor] = {}
        stats: list[Tensor] = []
        hidden = [params[w].shape[0] for w, _ in self.pairs[:-1]]
        for li, (w, b) in enumerate(self.pairs):
            tw = torch.asinh(as_3d(params[w].float()) / self.scales[w])
            tw = torch.nan_to_num(tw)
            tb = torch.nan_to_num(torch.asinh(params[b].float() / self.scales[b]))
            if self.stats:
                stats.append(_tensor_stats(tw))
                stats.append(_tensor_stats(tb))
            if self.pad:
                target = as_3d(torch.zeros(self.shapes[w])).shape
                tw = nn.functional.pad(tw, (0, 0, 0, target[1] - tw.shape[1], 0, target[0] - tw.shape[0]))
                tb = nn.functional.pad(tb, (0, self.shapes[b][0] - tb.shape[0]))
            out[f"w{li}"], out[f"b{li}"] = tw, tb
        for h, n in enumerate(hidden):
            m = torch.zeros(self.shapes[self.pairs[h][1]][0] if self.pad else n)
            m[:n] = 1.0
            out[f"m{h}"] = m
        if self.stats:
            out["s"] = torch.cat(stats)
        return out

    @property
    def n_stats(self) -> int:
        return 14 * self.n_layers if self.stats else 0


_QUANTILES = torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0])


def _tensor_stats(t: Tensor) -> Tensor:
    """Mean, std and five quantiles of every entry of ``t`` (7 numbers; std 0 for one entry)."""
    x = t.reshape(-1)
    std = x.std() if x.numel() > 1 else torch.zeros(())
    return torch.cat([x.mean().view(1), std.view(1), torch.quantile(x, _QUANTILES)])


def _mlp(sizes: Sequence[int], dropout: float = 0.0) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
            if dropout:
                layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


class FlatMLP(nn.Module):
    """Every padded weight and bias entry concatenated → MLP → ``out_dim``."""

    def __init__(self, padder: Padder, out_dim: int = 1, hidden: int = 128, dropout: float = 0.1):
        super().__init__()
        self.n_layers = padder.n_layers
        sample = padder({n: torch.zeros(padder.shapes[n]) for pair in padder.pairs for n in pair})
        n_in = sum(sample[f"{k}{li}"].numel() for li in range(self.n_layers) for k in "wb")
        self.net = _mlp([n_in, hidden, hidden, out_dim], dropout)

    def forward(self, batch: Mapping[str, Tensor]) -> Tensor:
        x = torch.cat([batch[f"{k}{li}"].flatten(1) for li in range(self.n_layers) for k in "wb"], dim=1)
        return self.net(x)


def _masked_mean(x: Tensor, mask: Tensor, dim: int) -> Tensor:
    return (x * mask).sum(dim) / mask.sum(dim).clamp(min=1.0)


class _EdgePool(nn.Module):
    """DeepSets over the edges of one hidden→hidden weight tensor, seen from both ends.

    r = ReLU(A·w + c) per edge (computed once); its masked mean over the source units gives
    each target unit's incoming summary, over the target units each source unit's outgoing
    summary; each is then mapped linearly to ``d``.
    """

    def __init__(self, e: int, k: int, d: int):
        super().__init__()
        self.basis = nn.Linear(e, k)
        self.to_in = nn.Linear(k, d)
        self.to_out = nn.Linear(k, d)

    def forward(self, w: Tensor, mask_src: Tensor, mask_dst: Tensor) -> tuple[Tensor, Tensor]:
        """``w`` [B, n_dst, n_src, e] → (incoming [B, n_dst, d], outgoing [B, n_src, d])."""
        r = torch.relu(self.basis(w))
        if bool((mask_src.min() > 0) & (mask_dst.min() > 0)):  # one-shape batch: plain means
            return self.to_in(r.mean(2)), self.to_out(r.mean(1))
        inc = _masked_mean(r, mask_src[:, None, :, None], dim=2)
        out = _masked_mean(r, mask_dst[:, :, None, None], dim=1)
        return self.to_in(inc), self.to_out(out)


class NeuronSetNet(nn.Module):
    """Invariant to permutations of every hidden layer's neurons/channels (see module doc)."""

    def __init__(self, padder: Padder, out_dim: int = 1, d: int = 32, d_edge: int = 8, hidden: int = 128,
                 dropout: float = 0.1, stats: bool = False):
        super().__init__()
        if stats and not padder.stats:
            raise ValueError("stats=True needs a Padder built with stats=True")
        self.n_stats = padder.n_stats if stats else 0
        dims = padder.dims()
        units, e = dims["units"], dims["e"]
        self.L = padder.n_layers
        H = self.L - 1
        if H < 1:
            raise ValueError("equivariant learner needs networks with at least one hidden layer")
        self.first_in = nn.Linear(dims["n_in"][0] * e[0], d)
        self.last_out = nn.Linear(units[-1] * e[-1], d)
        # Edge embeddings of hidden→hidden weight tensors W_l (l = 1 … L-2), seen from both ends.
        self.edges = nn.ModuleDict({str(li): _EdgePool(e[li], d_edge, d) for li in range(1, self.L - 1)})
        self.rho = nn.ModuleList(_mlp([2 * d + 1, d, d]) for _ in range(H))
        self.head = _mlp([H * (2 * d + 1) + units[-1] + self.n_stats, hidden, hidden, out_dim], dropout)

    def forward(self, batch: Mapping[str, Tensor]) -> Tensor:
        L = self.L
        W = [batch[f"w{li}"] for li in range(L)]
        b = [batch[f"b{li}"] for li in range(L)]
        m = [batch[f"m{h}"] for h in range(L - 1)]
        # edge[l] = (incoming summary of layer l's units, outgoing summary of layer l-1's units)
        edge = {li: self.edges[str(li)](W[li], m[li - 1], m[li]) for li in range(1, L - 1)}
        pooled = []
        for h in range(L - 1):
            # input pixels/channels and classes are fixed units: read those weights positionally
            inc = self.first_in(W[0].flatten(2)) if h == 0 else edge[h][0]
            out = self.last_out(W[L - 1].transpose(1, 2).flatten(2)) if h == L - 2 else edge[h + 1][1]
            z = self.rho[h](torch.cat([inc, out, b[h].unsqueeze(-1)], dim=-1))  # [B, n_h, d]
            mask = m[h].unsqueeze(-1)
            count = mask.sum(1)
            pooled += [_masked_mean(z, mask, 1), z.masked_fill(mask == 0, float("-inf")).amax(1),
                       torch.log(count.clamp(min=1.0))]
        pooled.append(b[L - 1])
        if self.n_stats:
            pooled.append(batch["s"])
        return self.head(torch.cat(pooled, dim=-1))
