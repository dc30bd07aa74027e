"""Linear mode connectivity of seed pairs before and after weight matching (Git Re-Basin).

Every function works on a *stacked population* (tensors ``[P, …]``, the layout of
:func:`zoo.models.forward_population`); pairs of seeds of one grid point are evaluated as
one batched computation. A pair's result depends only on its two models (its evaluation
batch and its weight-matching order are seeded by the pair's model ids), never on which
population or job computed it.

Definitions (``docs/analysis.md``):

- **Pairs** of one grid point (specs equal except ``seed``; usable = not diverged, finite):
  the *reference* (lowest seed) with every other seed, plus each seed with the next one
  (:func:`analysis_pairs`; all pairs for up to 3 seeds, linear in the seed count beyond).
  Endpoint A is the model, B the peer; B is permuted onto A.
- **Weight matching**: :func:`zoo.learners.augment.weight_matching` (Ainsworth et al. 2023,
  Alg. 1, biases included), then :func:`zoo.learners.augment.apply_permutation`; the
  permuted peer computes exactly the peer's function. ``perm[l][j]`` = the peer's unit that
  sits at position ``j`` of hidden layer ``l`` after alignment.
- **Barrier** on the straight line θ(t) = (1−t)θ_A + tθ_B, t on ``points`` evenly spaced
  values including both ends: ``max_t v(t) − ((1−t)v(0) + t·v(1))`` (Frankle et al. 2020),
  for v = error (fraction misclassified) and v = mean cross-entropy (nats), on a fixed
  evaluation batch of ``n_eval`` training examples of the pair (a seeded order of the
  training set restricted to the union of the two models' training subsets). ≥ 0; 0 means
  linearly connected. ``_aligned``: the same with θ_B replaced by the permuted peer.
- **L2 distance** ‖θ_A − θ_B‖₂ over every parameter (weights and biases), before / after.
- **Alignment** (after Ito et al. 2024, who find that weight matching mainly aligns the
  singular vectors of the large singular values): for every hidden layer (the layers whose
  output units are permuted; conv kernels as their ``out × in·kh·kw`` matrix), the mean of
  ``|⟨u_i(W_A), u_i(W_B)⟩|`` over the top ``k = min(align_k, out, in·kh·kw)`` left singular
  vectors (singular values in descending order), averaged over hidden layers. In [0, 1];
  1 when the top singular vectors coincide (up to sign).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from zoo.hashing import derive_seed
from zoo.models import forward_population

Params = dict[str, Tensor]

#: Architectures whose hidden units weight matching can permute (zoo.learners.dataset.layer_pairs).
MATCHABLE_ARCHS = ("mlp", "cnn")


@dataclass(frozen=True)
class AnalysisSettings:
    """Budgets of the lmc and merging stage (defaults sized for the 2-core demo)."""

    n_eval: int = 512      # training examples in each pair's evaluation batch (barriers)
    points: int = 11       # values of t on the straight line, both endpoints included (>= 3)
    align_k: int = 5       # top left singular vectors in the alignment measure
    max_iter: int = 100    # weight-matching sweeps (coordinate ascent stops earlier when stable)
    chunk: int = 64        # networks per batched forward pass (bounds memory)
    seed: int = 0          # root of the random streams (evaluation order, matching order)


def grid_point_key(spec: Mapping[str, Any]) -> str:
    """The grid point of a model: a short hash of its spec without the seed."""
    from zoo.hashing import short_hash

    return short_hash({k: v for k, v in spec.items() if k != "seed"})


def grid_points(specs: Sequence[Mapping[str, Any]], usable: Sequence[bool]) -> dict[str, list[int]]:
    """Usable model indices of each grid point, in seed order (the first is the reference)."""
    groups: dict[str, list[int]] = {}
    for i, s in enumerate(specs):
        groups.setdefault(grid_point_key(s), [])
        if usable[i]:
            groups[grid_point_key(s)].append(i)
    return {g: sorted(ix, key=lambda i: specs[i]["seed"]) for g, ix in groups.items()}


def analysis_pairs(members: Sequence[int]) -> list[tuple[int, int]]:
    """The reference with every other member, then each member with the next; no duplicates."""
    pairs: list[tuple[int, int]] = [(members[0], m) for m in members[1:]]
    for a, b in zip(members[1:], members[2:]):
        pairs.append((a, b))
    return pairs


def matchable(spec: Mapping[str, Any], names: Sequence[str]) -> bool:
    """Whether weight matching applies: plain MLP/CNN tensor names (zoo.learners.dataset.layer_pairs)."""
    from zoo.errors import SpecError
    from zoo.learners.dataset import layer_pairs

    if spec.get("arch") not in MATCHABLE_ARCHS:
        return False
    try:
        return len(layer_pairs(names)) >= 2
    except SpecError:
        return False


def hidden_weights(names: Sequence[str]) -> list[str]:
    """Weight tensors whose output units are permuted (every layer but the classifier)."""
    from zoo.learners.dataset import layer_pairs

    return [w for w, _ in layer_pairs(names)[:-1]]


def take(params: Mapping[str, Tensor], index: Sequence[int]) -> Params:
    """Models ``index`` of a stacked population (a new stack ``[len(index), …]``)."""
    ix = torch.as_tensor(list(index), dtype=torch.long)
    return {k: v[ix] for k, v in params.items()}


def match_peers(a: Mapping[str, Tensor], b: Mapping[str, Tensor], keys: Sequence[str],
                settings: AnalysisSettings = AnalysisSettings()) -> tuple[Params, list[list[np.ndarray]]]:
    """Permute every peer ``b[q]`` onto ``a[q]`` by weight matching; returns the permuted stack and the permutations.

    ``keys[q]`` (the pair's model ids) seeds the random layer order of pair ``q``'s ascent.
    """
    from zoo.learners.augment import apply_permutation, weight_matching

    Q = next(iter(a.values())).shape[0]
    out: dict[str, list[Tensor]] = {k: [] for k in b}
    perms = []
    for q in range(Q):
        aq, bq = {k: v[q] for k, v in a.items()}, {k: v[q] for k, v in b.items()}
        rng = np.random.default_rng(derive_seed(settings.seed, "weight-matching", keys[q]))
        p = weight_matching(aq, bq, max_iter=settings.max_iter, rng=rng)
        moved = apply_permutation(bq, p)
        for k in out:
            out[k].append(moved[k])
        perms.append(p)
    return {k: torch.stack(v) for k, v in out.items()}, perms


def eval_batch(pool: np.ndarray, n_train: int, n_eval: int, seed: int = 0) -> np.ndarray:
    """The first ``n_eval`` examples of ``pool`` in a seeded order of the whole training set
    (cycled when the pool is smaller): the same batch for every pair with the same pool."""
    order = np.random.default_rng(derive_seed(seed, "lmc-eval")).permutation(n_train)
    keep = order[np.isin(order, pool)]
    return keep[:n_eval] if len(keep) >= n_eval else np.resize(keep, n_eval)


@torch.no_grad()
def linear_path(spec: Mapping[str, Any], a: Mapping[str, Tensor], b: Mapping[str, Tensor], x: Tensor, y: Tensor,
                ts: Tensor, chunk: int = 64) -> tuple[Tensor, Tensor]:
    """Error and mean cross-entropy ``[Q, T]`` of (1−t)·a[q] + t·b[q] at every ``t`` of ``ts``.

    ``x`` ``[Q, n, *input_shape]`` and ``y`` ``[Q, n]``: each pair's evaluation batch. The
    ``Q·T`` interpolated networks go through :func:`forward_population` ``chunk`` at a time.
    """
    Q, T = next(iter(a.values())).shape[0], len(ts)
    qq = torch.arange(Q).repeat_interleave(T)
    tt = ts.repeat(Q)
    err = torch.empty(Q * T, dtype=torch.float64)
    loss = torch.empty(Q * T, dtype=torch.float64)
    for s in range(0, Q * T, chunk):
        q, t = qq[s:s + chunk], tt[s:s + chunk]
        pts = {}
        for k in a:
            w = t.to(a[k].dtype).view(-1, *([1] * (a[k].dim() - 1)))
            pts[k] = (1 - w) * a[k][q] + w * b[k][q]
        logits = forward_population(spec, pts, x[q])
        yq = y[q]
        err[s:s + chunk] = (logits.argmax(-1) != yq).double().mean(1)
        loss[s:s + chunk] = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), yq.reshape(-1),
                                            reduction="none").view(len(q), -1).double().mean(1)
    return err.view(Q, T), loss.view(Q, T)


def barrier(values: Tensor, ts: Tensor) -> Tensor:
    """``max_t v(t) − ((1−t)v(0) + t·v(1))`` per row of ``values`` ``[Q, T]`` (≥ 0: the endpoints count)."""
    t = ts.to(values.dtype)
    chord = (1 - t) * values[:, :1] + t * values[:, -1:]
    return (values - chord).max(1).values


def l2_distance(a: Mapping[str, Tensor], b: Mapping[str, Tensor]) -> Tensor:
    """‖θ_a − θ_b‖₂ ``[Q]`` over every tensor (float64)."""
    return torch.cat([(a[k].double() - b[k].double()).flatten(1) for k in a], 1).norm(dim=1)


def singular_alignment(a: Mapping[str, Tensor], b: Mapping[str, Tensor], layers: Sequence[str], k: int = 5) -> Tensor:
    """Mean ``|⟨u_i(W_a), u_i(W_b)⟩|`` over the top-k left singular vectors and the ``layers`` ``[Q]``."""
    per_layer = []
    for name in layers:
        Wa, Wb = a[name].double(), b[name].double()
        Wa, Wb = Wa.reshape(Wa.shape[0], Wa.shape[1], -1), Wb.reshape(Wb.shape[0], Wb.shape[1], -1)
        kk = min(k, Wa.shape[1], Wa.shape[2])
        Ua = torch.linalg.svd(Wa, full_matrices=False).U[..., :kk]
        Ub = torch.linalg.svd(Wb, full_matrices=False).U[..., :kk]
        per_layer.append((Ua * Ub).sum(-2).abs().mean(-1))
    return torch.stack(per_layer).mean(0)


def pair_lmc(spec: Mapping[str, Any], a: Mapping[str, Tensor], b: Mapping[str, Tensor], x: Tensor, y: Tensor,
             keys: Sequence[str], settings: AnalysisSettings = AnalysisSettings(),
             match: bool = True) -> dict[str, Any]:
    """LMC of every pair ``q`` (endpoints ``a[q]``, ``b[q]``) before and, when ``match``, after weight matching.

    Returns ``{column: Tensor [Q]}`` plus ``"aligned"`` (the permuted peers, stacked) and
    ``"perm"`` (per pair, one permutation per hidden layer); aligned columns are NaN and
    ``aligned``/``perm`` None when ``match`` is false.
    """
    Q = next(iter(a.values())).shape[0]
    ts = torch.linspace(0, 1, settings.points, dtype=torch.float64)
    err, loss = linear_path(spec, a, b, x, y, ts, settings.chunk)
    nan = torch.full((Q,), float("nan"), dtype=torch.float64)
    out: dict[str, Any] = {
        "error_a": err[:, 0], "error_b": err[:, -1], "loss_a": loss[:, 0], "loss_b": loss[:, -1],
        "barrier_naive": barrier(err, ts), "loss_barrier_naive": barrier(loss, ts), "l2_naive": l2_distance(a, b),
        "barrier_aligned": nan, "loss_barrier_aligned": nan, "l2_aligned": nan,
        "alignment_naive": nan, "alignment_aligned": nan, "moved_fraction": nan, "aligned": None, "perm": None,
    }
    if not match:
        return out
    layers = hidden_weights(list(a))
    moved, perms = match_peers(a, b, keys, settings)
    err_m, loss_m = linear_path(spec, a, moved, x, y, ts, settings.chunk)
    sizes = sum(len(p) for p in perms[0]) if perms else 0
    out.update(
        barrier_aligned=barrier(err_m, ts), loss_barrier_aligned=barrier(loss_m, ts), l2_aligned=l2_distance(a, moved),
        alignment_naive=singular_alignment(a, b, layers, settings.align_k),
        alignment_aligned=singular_alignment(a, moved, layers, settings.align_k),
        moved_fraction=torch.tensor([sum(int((p != np.arange(len(p))).sum()) for p in pq) / max(sizes, 1) for pq in perms],
                                    dtype=torch.float64),
        aligned=moved, perm=perms,
    )
    return out
