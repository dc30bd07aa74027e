"""Population training: many small models of one shape trained as one batched computation.

Every model has its own init (seeded by its seed), data order (its own permutation
stream), learning rate, momentum and weight decay. The batched update is elementwise
and the batched matmuls compute each model's product separately, so a model's weights
depend only on its spec and seed, not on which other models share its population
(``tests/test_train.py`` proves it).

Divergence is data: a model whose training loss becomes NaN/inf or exceeds ``max_loss``,
or whose next parameters would be non-finite, is frozen at its last finite weights and
flagged ``diverged`` from that epoch on, while the rest of the population trains on.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from zoo.config import ZOO_DEFAULTS
from zoo.data import Dataset, load_dataset
from zoo.hashing import derive_seed
from zoo.models import forward_population, init_population
from zoo.optim import BatchedOptimizer

EVAL_CHUNK = 1024


@dataclass
class PopulationResult:
    """What one population job produces: checkpoints, per-epoch metrics, divergence."""

    model_ids: list[str]
    checkpoints: dict[int, dict[str, Tensor]]
    metrics: list[dict[str, Any]]
    diverged_epoch: list[int | None]
    wall_s: float
    meta: dict[str, Any] = field(default_factory=dict)


def train_subset(spec: Mapping[str, Any], n_train: int) -> np.ndarray:
    """Sorted indices of the training examples this model sees (``train_fraction``)."""
    frac = spec.get("train_fraction", 1.0)
    if frac >= 1.0:
        return np.arange(n_train)
    n = max(1, int(round(frac * n_train)))
    rng = np.random.default_rng(derive_seed(spec["seed"], "subset"))
    return np.sort(rng.permutation(n_train)[:n])


def data_order_streams(specs: Sequence[Mapping[str, Any]]) -> list[np.random.Generator]:
    """One data-order generator per model, seeded only by the model's seed."""
    return [np.random.default_rng(derive_seed(s["seed"], "data")) for s in specs]


@torch.no_grad()
def evaluate(spec: Mapping[str, Any], params: Mapping[str, Tensor], x: Tensor, y: Tensor,
             mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Mean cross-entropy and accuracy ``[P]`` of every model on ``(x, y)``.

    ``mask`` ``[P, N]`` restricts each model to its own examples (its training subset).
    """
    P = next(iter(params.values())).shape[0]
    loss_sum = torch.zeros(P, dtype=torch.float64)
    correct = torch.zeros(P, dtype=torch.float64)
    for start in range(0, len(x), EVAL_CHUNK):
        xb, yb = x[start : start + EVAL_CHUNK], y[start : start + EVAL_CHUNK]
        logits = forward_population(spec, params, xb.unsqueeze(0).expand(P, *xb.shape))
        losses = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), yb.repeat(P), reduction="none").view(P, -1)
        hits = (logits.argmax(-1) == yb.unsqueeze(0)).double()
        w = mask[:, start : start + EVAL_CHUNK].double() if mask is not None else torch.ones_like(hits)
        loss_sum += torch.where(w > 0, losses.double() * w, 0.0).sum(1)
        correct += (hits * w).sum(1)
    n = mask.double().sum(1) if mask is not None else torch.full((P,), float(len(x)), dtype=torch.float64)
    return loss_sum / n, correct / n


def train_population(
    specs: Sequence[Mapping[str, Any]],
    model_ids: Sequence[str],
    checkpoints: Sequence[int],
    *,
    dataset: Dataset | None = None,
    progress: bool = False,
    label: str = "population",
) -> PopulationResult:
    """Train models that share one population key; return checkpoints and metrics.

    ``specs`` are flat model specs (see :mod:`zoo.config`) that differ only in seed, lr,
    momentum and weight decay. ``checkpoints`` are epochs (0 = initialisation).
    """
    base = specs[0]
    for s in specs[1:]:
        for key in ("dataset", "arch", "batch_size", "optimizer", "epochs", "train_fraction"):
            if s[key] != base[key]:
                raise ValueError(f"models of one population must share {key}: {s[key]} != {base[key]}")
    ds = dataset or load_dataset(base["dataset"], base.get("dataset_options"))
    P, epochs, bs = len(specs), int(base["epochs"]), int(base["batch_size"])
    max_loss = float(base.get("max_loss", ZOO_DEFAULTS["max_loss"]))
    x_train, y_train = torch.from_numpy(ds.x_train), torch.from_numpy(ds.y_train)
    x_test, y_test = torch.from_numpy(ds.x_test), torch.from_numpy(ds.y_test)

    params = init_population(list(specs), ds.input_shape, ds.n_classes)
    opt = BatchedOptimizer(
        base["optimizer"],
        lr=torch.tensor([float(s["lr"]) for s in specs]),
        momentum=torch.tensor([float(s["momentum"]) for s in specs]),
        weight_decay=torch.tensor([float(s["weight_decay"]) for s in specs]),
    )
    subsets = [train_subset(s, len(x_train)) for s in specs]
    n_sub = len(subsets[0])
    subset_idx = torch.from_numpy(np.stack(subsets))
    train_mask = torch.zeros(P, len(x_train), dtype=torch.bool)
    train_mask.scatter_(1, subset_idx, True)
    streams = data_order_streams(specs)

    active = torch.ones(P, dtype=torch.bool)
    diverged_epoch: list[int | None] = [None] * P
    ckpts: dict[int, dict[str, Tensor]] = {}
    metrics: list[dict[str, Any]] = []
    wanted = sorted(set(int(c) for c in checkpoints))
    t0 = time.perf_counter()

    def record(epoch: int) -> None:
        ckpts[epoch] = {k: v.detach().clone() for k, v in params.items()}
        tr_loss, tr_acc = evaluate(base, params, x_train, y_train, train_mask)
        te_loss, te_acc = evaluate(base, params, x_test, y_test)
        wall = time.perf_counter() - t0
        for i in range(P):
            metrics.append({
                "model_id": model_ids[i], "epoch": epoch,
                "train_loss": float(tr_loss[i]), "train_acc": float(tr_acc[i]),
                "test_loss": float(te_loss[i]), "test_acc": float(te_acc[i]),
                "ggap": float(tr_acc[i] - te_acc[i]),
                "diverged": diverged_epoch[i] is not None and diverged_epoch[i] <= epoch,
                "wall_s": wall / P,
            })

    if 0 in wanted:
        record(0)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=epochs, desc=label, unit="epoch", file=sys.stderr, mininterval=1.0)
    names = list(params)
    for epoch in range(1, epochs + 1):
        order = torch.from_numpy(np.stack([subsets[i][g.permutation(n_sub)] for i, g in enumerate(streams)]))
        for start in range(0, n_sub, bs):
            idx = order[:, start : start + bs]
            xb, yb = x_train[idx], y_train[idx]
            leaves = {k: v.detach().requires_grad_(True) for k, v in params.items()}
            logits = forward_population(base, leaves, xb)
            losses = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), yb.reshape(-1), reduction="none").view(P, -1).mean(1)
            ok_loss = torch.isfinite(losses) & (losses <= max_loss)
            newly = active & ~ok_loss
            active = active & ok_loss
            total = torch.where(active, losses, torch.zeros_like(losses)).sum()
            grads = torch.autograd.grad(total, [leaves[k] for k in names])
            proposals, states = {}, {}
            finite = active.clone()
            for k, g in zip(names, grads):
                proposals[k], states[k] = opt.proposal(k, params[k], g.detach(), active)
                finite &= torch.isfinite(proposals[k]).flatten(1).all(1)
            newly |= active & ~finite
            accept = active & finite
            for k in names:
                mask = accept.view(-1, *([1] * (params[k].dim() - 1)))
                params[k] = torch.where(mask, proposals[k], params[k])
                opt.commit(k, states[k], accept)
            opt.advance(accept)
            active = accept
            for i in newly.nonzero().flatten().tolist():
                diverged_epoch[i] = epoch
        if epoch in wanted:
            record(epoch)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(models=P, diverged=sum(d is not None for d in diverged_epoch))
    if bar is not None:
        bar.close()
    return PopulationResult(list(model_ids), ckpts, metrics, diverged_epoch, time.perf_counter() - t0,
                            meta={"input_shape": list(ds.input_shape), "n_classes": ds.n_classes, "dataset_meta": ds.meta})
