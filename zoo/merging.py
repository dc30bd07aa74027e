"""Model merging per grid point: the uniform average of a grid point's seeds, naive and aligned.

For a grid point with usable seeds θ_1 … θ_k (k ≥ 2; θ_1 the reference = lowest seed):

- ``naive``: θ̄ = (1/k) Σ_i θ_i, tensor by tensor;
- ``aligned``: θ̄ = (1/k) (θ_1 + Σ_{i>1} π_i(θ_i)), with π_i the weight-matching permutation
  of θ_i onto the reference (:func:`zoo.lmc.match_peers`; every model aligned to one
  reference, as the reference pairs of :func:`zoo.lmc.analysis_pairs` give it);
- both evaluated on the dataset's test split with :func:`zoo.train.evaluate` — the same
  function that wrote ``metrics.test_acc`` / ``test_loss`` — beside the endpoints' own
  test accuracy and loss (mean and best over the k seeds).

**Gain** = merged − mean endpoint test accuracy (``gain_naive``, ``gain_aligned``), and
``loss_gain_*`` = mean endpoint test loss − merged test loss: both > 0 when merging helps.
Averaging a model with itself gives gain 0 exactly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

Params = dict[str, Tensor]


def uniform_average(stacks: Sequence[Mapping[str, Tensor]]) -> Params:
    """``(1/k) Σ_i stacks[i]`` tensor by tensor: every stack ``[G, …]`` holds member ``i`` of each of G groups."""
    k = len(stacks)
    return {name: torch.stack([s[name] for s in stacks]).sum(0) / k for name in stacks[0]}


def merge_groups(params: Mapping[str, Tensor], groups: Sequence[Sequence[int]],
                 aligned: Mapping[tuple[int, int], Mapping[str, Tensor]] | None = None) -> tuple[Params, Params | None]:
    """Naive and aligned averages ``[G, …]`` of each group of model indices (all groups of one size).

    ``aligned[(ref, i)]``: model ``i`` permuted onto ``ref = group[0]`` (one network, no model axis).
    """
    k = len(groups[0])
    members = [{n: v[[g[j] for g in groups]] for n, v in params.items()} for j in range(k)]
    naive = uniform_average(members)
    if aligned is None:
        return naive, None
    moved = [members[0]] + [{n: torch.stack([aligned[(g[0], g[j])][n] for g in groups]) for n in params}
                            for j in range(1, k)]
    return naive, uniform_average(moved)


def merging_rows(spec: Mapping[str, Any], params: Mapping[str, Tensor], groups: Mapping[str, Sequence[int]],
                 x_test: Tensor, y_test: Tensor,
                 aligned: Mapping[tuple[int, int], Mapping[str, Tensor]] | None = None) -> list[dict[str, Any]]:
    """One row per grid point with ≥ 2 members: endpoint, naive and aligned test accuracy and loss, gains.

    ``groups``: grid point → usable model indices (reference first); ``aligned`` as in
    :func:`merge_groups` (None: aligned columns are NaN).
    """
    from zoo.train import evaluate

    used = sorted({i for g in groups.values() if len(g) >= 2 for i in g})
    if not used:
        return []
    end_loss, end_acc = evaluate(spec, {k: v[used] for k, v in params.items()}, x_test, y_test)
    pos = {i: j for j, i in enumerate(used)}
    rows: list[dict[str, Any]] = []
    by_size: dict[int, list[str]] = {}
    for g, members in groups.items():
        if len(members) >= 2:
            by_size.setdefault(len(members), []).append(g)
    nan = float("nan")
    for size, names in sorted(by_size.items()):
        member_lists = [list(groups[g]) for g in names]
        naive, merged = merge_groups(params, member_lists, aligned)
        n_loss, n_acc = evaluate(spec, naive, x_test, y_test)
        a_loss, a_acc = evaluate(spec, merged, x_test, y_test) if merged is not None else (None, None)
        for j, (g, members) in enumerate(zip(names, member_lists)):
            accs = torch.stack([end_acc[pos[i]] for i in members])
            losses = torch.stack([end_loss[pos[i]] for i in members])
            acc_mean, loss_mean = float(accs.mean()), float(losses.mean())
            row = {"grid_point": g, "members": members, "n_models": size,
                   "test_acc_mean": acc_mean, "test_acc_best": float(accs.max()), "test_loss_mean": loss_mean,
                   "test_acc_naive": float(n_acc[j]), "test_loss_naive": float(n_loss[j]),
                   "gain_naive": float(n_acc[j]) - acc_mean, "loss_gain_naive": loss_mean - float(n_loss[j]),
                   "test_acc_aligned": nan, "test_loss_aligned": nan, "gain_aligned": nan, "loss_gain_aligned": nan}
            if a_acc is not None:
                row.update(test_acc_aligned=float(a_acc[j]), test_loss_aligned=float(a_loss[j]),
                           gain_aligned=float(a_acc[j]) - acc_mean, loss_gain_aligned=loss_mean - float(a_loss[j]))
            rows.append(row)
    return rows
