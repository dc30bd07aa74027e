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
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from zoo.config import ZOO_DEFAULTS
from zoo.data import Dataset, load_dataset
from zoo.errors import DataError
from zoo.hashing import derive_seed
from zoo.models import PopulationDropout, forward_population, init_population
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


def noisy_labels(spec: Mapping[str, Any], y: np.ndarray, subset: np.ndarray, n_classes: int) -> np.ndarray:
    """The model's training labels after label noise (a copy; ``y`` itself when there is none).

    ``round(label_noise · len(subset))`` examples of the model's training subset, drawn
    without replacement from ``derive_seed(seed, "label_noise")``, get a uniformly random
    *other* class, so exactly that fraction of its labels is wrong.
    """
    frac = float(spec.get("label_noise", 0.0))
    if frac <= 0:
        return y
    rng = np.random.default_rng(derive_seed(spec["seed"], "label_noise"))
    flip = rng.choice(subset, size=int(round(frac * len(subset))), replace=False)
    out = y.copy()
    out[flip] = (y[flip] + rng.integers(1, n_classes, size=len(flip))) % n_classes
    return out


def data_order_streams(specs: Sequence[Mapping[str, Any]]) -> list[np.random.Generator]:
    """One data-order generator per model, seeded only by the model's seed."""
    return [np.random.default_rng(derive_seed(s["seed"], "data")) for s in specs]


@torch.no_grad()
def evaluate(spec: Mapping[str, Any], params: Mapping[str, Tensor], x: Tensor, y: Tensor,
             mask: Tensor | None = None, task: str = "classification") -> tuple[Tensor, Tensor]:
    """Mean cross-entropy and accuracy ``[P]`` of every model on ``(x, y)``.

    ``mask`` ``[P, N]`` restricts each model to its own examples (its training subset).
    ``y`` is ``[N]``, or ``[P, N]`` when every model has its own (noisy) labels. For
    ``task="regression"`` the pair is the mean squared error and R² (see
    :func:`evaluate_regression`).
    """
    if task == "regression":
        return evaluate_regression(spec, params, x, y, mask)
    P = next(iter(params.values())).shape[0]
    if y.dim() == 1:
        y = y.unsqueeze(0).expand(P, -1)
    loss_sum = torch.zeros(P, dtype=torch.float64)
    correct = torch.zeros(P, dtype=torch.float64)
    for start in range(0, len(x), EVAL_CHUNK):
        xb, yb = x[start : start + EVAL_CHUNK], y[:, start : start + EVAL_CHUNK]
        logits = forward_population(spec, params, xb.unsqueeze(0).expand(P, *xb.shape))
        losses = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), yb.reshape(-1), reduction="none").view(P, -1)
        hits = (logits.argmax(-1) == yb).double()
        w = mask[:, start : start + EVAL_CHUNK].double() if mask is not None else torch.ones_like(hits)
        loss_sum += torch.where(w > 0, losses.double() * w, 0.0).sum(1)
        correct += (hits * w).sum(1)
    n = mask.double().sum(1) if mask is not None else torch.full((P,), float(len(x)), dtype=torch.float64)
    return loss_sum / n, correct / n


@torch.no_grad()
def evaluate_regression(spec: Mapping[str, Any], params: Mapping[str, Tensor], x: Tensor, y: Tensor,
                        mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Mean squared error (per output) and R² ``[P]`` on targets ``y`` ``[N, d]``.

    R² = 1 − SSE / SST, with SST the squared deviations of the evaluated targets from their
    own mean (summed over outputs): 1 is perfect, 0 is "predict the mean", < 0 worse.
    """
    P = next(iter(params.values())).shape[0]
    d = y.shape[1]
    sse = torch.zeros(P, dtype=torch.float64)
    sum_y = torch.zeros(P, d, dtype=torch.float64)
    sum_y2 = torch.zeros(P, d, dtype=torch.float64)
    for start in range(0, len(x), EVAL_CHUNK):
        xb, yb = x[start : start + EVAL_CHUNK], y[start : start + EVAL_CHUNK].double()
        pred = forward_population(spec, params, xb.unsqueeze(0).expand(P, *xb.shape)).double()
        w = mask[:, start : start + EVAL_CHUNK].double() if mask is not None else torch.ones(P, len(xb), dtype=torch.float64)
        sse += torch.where(w > 0, ((pred - yb) ** 2).sum(-1) * w, 0.0).sum(1)
        sum_y += w @ yb
        sum_y2 += w @ (yb * yb)
    n = mask.double().sum(1) if mask is not None else torch.full((P,), float(len(x)), dtype=torch.float64)
    sst = (sum_y2 - sum_y**2 / n[:, None]).sum(1)
    return sse / (n * d), 1 - sse / sst


def save_training_state(path: str | Path, state: dict[str, Any]) -> None:
    """Atomically save a population's training state (see :func:`train_population`)."""
    from zoo.store import atomic_path

    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_training_state(path: str | Path, fingerprint: dict[str, Any]) -> dict[str, Any] | None:
    """The saved state if it exists and belongs to the same models and schedule, else None.

    An unreadable or foreign state file is ignored (training restarts from scratch).
    """
    path = Path(path)
    if not path.is_file():
        return None
    try:
        state = torch.load(path, weights_only=False)
    except Exception:  # a corrupt resume file only costs recomputation
        return None
    return state if state.get("fingerprint") == fingerprint else None


def train_population(
    specs: Sequence[Mapping[str, Any]],
    model_ids: Sequence[str],
    checkpoints: Sequence[int],
    *,
    dataset: Dataset | None = None,
    progress: bool = False,
    label: str = "population",
    state_path: str | Path | None = None,
    stop_after_epoch: int | None = None,
) -> PopulationResult:
    """Train models that share one population key; return checkpoints and metrics.

    ``specs`` are flat model specs (see :mod:`zoo.config`) that differ only in per-model
    keys (seed, lr, momentum, weight decay, label noise, dropout, init). ``checkpoints`` are epochs (0 = initialisation).

    ``state_path``: after every checkpoint epoch the full training state (weights,
    optimizer state, random streams, metrics so far) is saved there atomically, and a
    later call resumes from it, giving exactly the result of an uninterrupted run.
    ``stop_after_epoch`` stops early after saving that epoch (to test resumption).
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

    task = ds.task
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
    # Optional per-model hooks; absent (None) for specs without them, so those train as before.
    y_fit = None
    if any(float(s.get("label_noise", 0.0)) > 0 for s in specs):
        if task != "classification":
            raise DataError(f"dataset {base['dataset']!r} is a {task} task; label_noise applies to classification only")
        y_fit = torch.from_numpy(np.stack([noisy_labels(s, ds.y_train, subsets[i], ds.n_classes)
                                           for i, s in enumerate(specs)]))
    rates = [float(s.get("dropout", 0.0)) for s in specs]
    dropout = PopulationDropout(rates, [derive_seed(s["seed"], "dropout") for s in specs]) if any(rates) else None

    active = torch.ones(P, dtype=torch.bool)
    diverged_epoch: list[int | None] = [None] * P
    ckpts: dict[int, dict[str, Tensor]] = {}
    metrics: list[dict[str, Any]] = []
    wanted = sorted(set(int(c) for c in checkpoints))
    t0 = time.perf_counter()
    fingerprint = {"model_ids": list(model_ids), "checkpoints": wanted, "epochs": epochs}
    start_epoch = 0
    resumed = load_training_state(state_path, fingerprint) if state_path else None
    if resumed is not None:
        start_epoch = resumed["epoch"]
        params = resumed["params"]
        opt.load_state_dict(resumed["optimizer"])
        active, diverged_epoch = resumed["active"], resumed["diverged_epoch"]
        ckpts, metrics = resumed["checkpoints"], resumed["metrics"]
        for g, st in zip(streams, resumed["streams"]):
            g.bit_generator.state = st
        if dropout is not None:
            for g, st in zip(dropout.generators, resumed["dropout"]):
                g.set_state(st)
        t0 -= resumed["elapsed"]

    def save_state(epoch: int) -> None:
        save_training_state(state_path, {
            "fingerprint": fingerprint, "epoch": epoch, "params": params, "optimizer": opt.state_dict(),
            "active": active, "diverged_epoch": diverged_epoch, "checkpoints": ckpts, "metrics": metrics,
            "streams": [g.bit_generator.state for g in streams],
            "dropout": [g.get_state() for g in dropout.generators] if dropout is not None else None,
            "elapsed": time.perf_counter() - t0,
        })

    def record(epoch: int) -> None:
        ckpts[epoch] = {k: v.detach().clone() for k, v in params.items()}
        tr_loss, tr_acc = evaluate(base, params, x_train, y_train if y_fit is None else y_fit, train_mask, task=task)
        te_loss, te_acc = evaluate(base, params, x_test, y_test, task=task)
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

    if 0 in wanted and start_epoch == 0:
        record(0)
    bar = None
    if progress:
        from tqdm import tqdm

        from zoo.progress import progress_stream

        out = progress_stream(sys.stderr)  # a log file gets one line per update, not \r redraws
        bar = tqdm(total=epochs, initial=start_epoch, desc=label, unit="epoch", file=out,
                   mininterval=1.0 if out is sys.stderr else 2.0, ascii=out is not sys.stderr)
    names = list(params)
    for epoch in range(start_epoch + 1, epochs + 1):
        order = torch.from_numpy(np.stack([subsets[i][g.permutation(n_sub)] for i, g in enumerate(streams)]))
        for start in range(0, n_sub, bs):
            idx = order[:, start : start + bs]
            xb, yb = x_train[idx], y_train[idx]
            if y_fit is not None:
                yb = y_fit.gather(1, idx)
            leaves = {k: v.detach().requires_grad_(True) for k, v in params.items()}
            logits = forward_population(base, leaves, xb, dropout)
            if task == "regression":
                losses = ((logits - yb) ** 2).reshape(P, -1).mean(1)
            else:
                losses = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), yb.reshape(-1), reduction="none").view(P, -1).mean(1)
            ok_loss = torch.isfinite(losses) & (losses <= max_loss)
            newly = active & ~ok_loss
            active = active & ok_loss
            total = torch.where(active, losses, torch.zeros_like(losses)).sum()
            grads = torch.autograd.grad(total, [leaves[k] for k in names])
            proposals, states = {}, {}
            finite = active.clone()
            for k, g in zip(names, grads):
                proposals[k], states[k] = opt.proposal(k, params[k], g.detach())
                # a non-finite entry makes the per-model sum non-finite: one reduction, not a full mask
                finite &= torch.isfinite(proposals[k].flatten(1).sum(1))
            newly |= active & ~finite
            accept = active & finite
            all_accepted = bool(accept.all())
            for k in names:
                if all_accepted:
                    params[k] = proposals[k]
                else:  # frozen models keep their last finite weights
                    params[k] = torch.where(accept.view(-1, *([1] * (params[k].dim() - 1))), proposals[k], params[k])
                opt.commit(k, states[k])
            opt.advance(accept)
            active = accept
            for i in newly.nonzero().flatten().tolist():
                diverged_epoch[i] = epoch
        if epoch in wanted:
            record(epoch)
            if state_path is not None and epoch < epochs:
                save_state(epoch)
            if stop_after_epoch is not None and epoch >= stop_after_epoch:
                break
        if bar is not None:
            bar.set_postfix(models=P, diverged=sum(d is not None for d in diverged_epoch), refresh=False)
            bar.update(1)
    if bar is not None:
        bar.close()
    return PopulationResult(list(model_ids), ckpts, metrics, diverged_epoch, time.perf_counter() - t0,
                            meta={"input_shape": list(ds.input_shape), "n_classes": ds.n_classes, "task": task,
                                  "dataset_meta": ds.meta})
