"""Population training: many small models of one shape trained as one batched computation.

Every model has its own init (seeded by its seed), data order (its own permutation
stream), learning rate, momentum and weight decay. The batched update is elementwise
and the batched matmuls compute each model's product separately, so a model's weights
depend only on its spec and seed, not on which other models share its population
(``tests/test_train.py`` proves it).

Divergence is data: a model whose training loss becomes NaN/inf or exceeds ``max_loss``,
or whose next parameters would be non-finite, is frozen at its last finite weights and
flagged ``diverged`` from that epoch on, while the rest of the population trains on.

:func:`train_population` reads as four steps: :func:`_setup_run` fixes the data, subsets,
labels, optimizer and random streams (:class:`TrainingRun`); a :class:`TrainingState`
starts fresh or is loaded from ``state_path``; :func:`_train_epoch` runs each epoch;
:func:`_record` checkpoints and evaluates. A saved state is resumed only under the same
:func:`resume_fingerprint` (specs, ids, checkpoints, data, versions, code), so a killed
job re-run with changed hyperparameters starts over instead of mixing the two.

Speed (``benchmarks/train_throughput.py``): MLPs take a hand-written forward and backward
(:mod:`zoo.manual_mlp`; other architectures autograd through :func:`forward_population`);
parameters, gradients and optimizer state live in one flat, model-major buffer
(:class:`zoo.optim.FlatLayout`) whose per-model slices are 64-byte aligned and padded, and
batches are gathered with ``index_select`` into reused buffers; denormals are flushed
(:func:`flush_denormals`). Alignment and padding are what keep the bits population-independent:
MKL's batched GEMM and the scalar tails of elementwise kernels otherwise round differently
for a model depending on where it sits (``tests/test_fast_paths.py``).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib
import json
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

import zoo
from zoo.config import ZOO_DEFAULTS
from zoo.data import Dataset, load_dataset
from zoo.errors import DataError
from zoo.hashing import derive_seed
from zoo.manual_mlp import ManualMLP
from zoo.manual_mlp import supports as has_manual_backward
from zoo.models import PopulationDropout, forward_population, init_population, param_shapes
from zoo.optim import BatchedOptimizer, FlatLayout

EVAL_CHUNK = 1024
#: Models evaluated together (per-model results do not depend on it; it bounds temporaries).
EVAL_MODELS = 64


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
    manual = ManualMLP.of(spec, {k: v.shape[1:] for k, v in params.items()}) if has_manual_backward(spec) else None
    # Models in groups of EVAL_MODELS (bounds the temporaries; each model's numbers are its own).
    for g0 in range(0, P, EVAL_MODELS):
        g1 = min(P, g0 + EVAL_MODELS)
        sub = {k: v[g0:g1] for k, v in params.items()}
        for start in range(0, len(x), EVAL_CHUNK):
            xb, yb = x[start : start + EVAL_CHUNK], y[g0:g1, start : start + EVAL_CHUNK]
            n = len(xb)
            if manual is not None:  # padded rows (copies of the first), shared by the models
                xp = torch.cat([xb, xb[:1].expand(manual.padded(n) - n, *xb.shape[1:])])
                logits_t = manual.logits_t(sub, xp.unsqueeze(0).expand(g1 - g0, *xp.shape))[:, :, :n]
            else:
                logits_t = forward_population(spec, sub, xb.unsqueeze(0).expand(g1 - g0, *xb.shape))
                logits_t = logits_t.transpose(1, 2).contiguous()
            losses, hits = _cross_entropy_and_hits(logits_t, yb)
            w = mask[g0:g1, start : start + EVAL_CHUNK].double() if mask is not None else torch.ones_like(hits)
            loss_sum[g0:g1] += torch.where(w > 0, losses.double() * w, 0.0).sum(1)
            correct[g0:g1] += (hits * w).sum(1)
    n = mask.double().sum(1) if mask is not None else torch.full((P,), float(len(x)), dtype=torch.float64)
    return loss_sum / n, correct / n


def _cross_entropy_and_hits(logits_t: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """Cross-entropy (nats) and hits (argmax = label, first maximum on ties) ``[P, n]`` of
    class-major logits ``[P, C, n]``: reducing over C with n contiguous is ~15× faster than
    ``F.cross_entropy`` on ``[P·n, C]`` rows."""
    top, pred = logits_t.max(1, keepdim=True)
    shifted = logits_t - top
    lse = shifted.clamp_min(-87.0).exp_().sum(1).log_()  # exp(-87) is float32's smallest normal
    return lse - shifted.gather(1, y.unsqueeze(1)).squeeze(1), (pred.squeeze(1) == y).double()


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


@dataclass
class TrainingRun:
    """What one call fixes before the first step: data, per-model subsets and labels, and
    the live optimizer and random streams, which the epoch loop advances in place."""

    specs: list[Mapping[str, Any]]
    model_ids: list[str]
    wanted: list[int]  # checkpoint epochs, sorted and unique (0 = initialisation)
    epochs: int
    batch_size: int
    max_loss: float
    dataset: Dataset
    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    y_fit: Tensor | None  # [P, N] per-model (noisy) training labels; None: every model fits y_train
    subsets: list[np.ndarray]  # each model's sorted training indices, all of one length
    train_mask: Tensor  # [P, N] the subsets as a mask, for evaluation on each model's own examples
    optimizer: BatchedOptimizer
    streams: list[np.random.Generator]  # data order, one per model
    dropout: PopulationDropout | None  # None when no model uses dropout
    layout: FlatLayout  # where each tensor sits in the flat parameter, gradient and optimizer buffers
    buffers: tuple[Tensor, Tensor, Tensor]  # flat parameters, proposals, gradients (reused every epoch)
    manual: ManualMLP | None  # the hand-written MLP forward/backward; None: autograd through forward_population

    @property
    def base(self) -> Mapping[str, Any]:
        """The spec every model shares the population keys of."""
        return self.specs[0]

    @property
    def task(self) -> str:
        return self.dataset.task


def _setup_run(specs: Sequence[Mapping[str, Any]], model_ids: Sequence[str], checkpoints: Sequence[int],
               dataset: Dataset | None) -> TrainingRun:
    """Check that ``specs`` form one population; load the data and build the per-model pieces."""
    base = specs[0]
    for s in specs[1:]:
        for key in ("dataset", "arch", "batch_size", "optimizer", "epochs", "train_fraction"):
            if s[key] != base[key]:
                raise ValueError(f"models of one population must share {key}: {s[key]} != {base[key]}")
    ds = dataset or load_dataset(base["dataset"], base.get("dataset_options"))
    subsets = [train_subset(s, len(ds.x_train)) for s in specs]
    train_mask = torch.zeros(len(specs), len(ds.x_train), dtype=torch.bool)
    train_mask.scatter_(1, torch.from_numpy(np.stack(subsets)), True)
    # Optional per-model hooks; absent (None) for specs without them, so those train as before.
    y_fit = None
    if any(float(s.get("label_noise", 0.0)) > 0 for s in specs):
        if ds.task != "classification":
            raise DataError(f"dataset {base['dataset']!r} is a {ds.task} task; label_noise applies to classification only")
        y_fit = torch.from_numpy(np.stack([noisy_labels(s, ds.y_train, subsets[i], ds.n_classes)
                                           for i, s in enumerate(specs)]))
    rates = [float(s.get("dropout", 0.0)) for s in specs]
    dropout = PopulationDropout(rates, [derive_seed(s["seed"], "dropout") for s in specs]) if any(rates) else None
    layout = FlatLayout(param_shapes(base, ds.input_shape, ds.n_classes), len(specs))
    optimizer = BatchedOptimizer(
        base["optimizer"],
        lr=torch.tensor([float(s["lr"]) for s in specs]),
        momentum=torch.tensor([float(s["momentum"]) for s in specs]),
        weight_decay=torch.tensor([float(s["weight_decay"]) for s in specs]),
    )
    return TrainingRun(
        specs=list(specs), model_ids=list(model_ids), wanted=sorted(set(int(c) for c in checkpoints)),
        epochs=int(base["epochs"]), batch_size=int(base["batch_size"]), max_loss=_max_loss(base), dataset=ds,
        x_train=torch.from_numpy(ds.x_train), y_train=torch.from_numpy(ds.y_train),
        x_test=torch.from_numpy(ds.x_test), y_test=torch.from_numpy(ds.y_test), y_fit=y_fit,
        subsets=subsets, train_mask=train_mask, optimizer=optimizer, streams=data_order_streams(specs),
        dropout=dropout,
        layout=layout, buffers=(layout.empty(), layout.empty(), layout.empty()),
        manual=ManualMLP.of(base, layout.shapes, ds.task) if has_manual_backward(base) else None,
    )


def _max_loss(spec: Mapping[str, Any]) -> float:
    return float(spec.get("max_loss", ZOO_DEFAULTS["max_loss"]))


#: Bump when the meaning of a :class:`TrainingState` field changes; older state files are then ignored.
STATE_FORMAT = 2

#: Modules whose code computes the trained bits (the dataset's bits are hashed from the arrays).
_TRAINING_CODE = ("zoo.train", "zoo.optim", "zoo.models", "zoo.manual_mlp", "zoo.transformer", "zoo.hashing")


@functools.cache
def _code_digest() -> str:
    """SHA-256 over the source of :data:`_TRAINING_CODE` (an edit there changes the bits)."""
    h = hashlib.sha256()
    for name in _TRAINING_CODE:
        h.update(Path(importlib.import_module(name).__file__).read_bytes())
    return h.hexdigest()


def _array_digest(ds: Dataset) -> str:
    """SHA-256 over dtype, shape and bytes of the four split arrays (~0.1 s for 190 MB)."""
    h = hashlib.sha256()
    for a in (ds.x_train, ds.y_train, ds.x_test, ds.y_test):
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a)
    return h.hexdigest()


def resume_fingerprint(specs: Sequence[Mapping[str, Any]], model_ids: Sequence[str], checkpoints: Sequence[int],
                       dataset: Dataset) -> str:
    """Hex SHA-256 of everything a population's trained bits depend on.

    That is: the full per-model specs exactly as passed in (seed, lr, momentum, weight decay,
    max_loss, dataset and its options, batch size, train fraction, label noise, dropout,
    init, epochs, …) plus the effective ``max_loss``, the model ids, the checkpoint epochs,
    the dataset's identity (name, task, classes, ``meta`` and a content hash of its
    arrays), the zoo, torch and NumPy versions, the source of the training code and
    :data:`STATE_FORMAT`. A saved state with another fingerprint is never resumed from.
    """
    payload = {
        "format": STATE_FORMAT,
        "specs": [dict(s) for s in specs],
        "max_loss": _max_loss(specs[0]),
        "model_ids": list(model_ids),
        "checkpoints": sorted(set(int(c) for c in checkpoints)),
        "dataset": {"name": dataset.name, "task": dataset.task, "n_classes": dataset.n_classes,
                    "meta": dataset.meta, "arrays": _array_digest(dataset)},
        "versions": {"zoo": zoo.__version__, "torch": torch.__version__, "numpy": np.__version__},
        "code": _code_digest(),
    }
    # repr for anything JSON lacks (NumPy scalars, tuples in meta): only equality matters here
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=repr)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class TrainingState:
    """Everything training changes, as of the end of ``epoch``: saved after every checkpoint
    epoch, resumed from by a later call.

    The epoch loop replaces ``params`` (by views of its flat buffer) and ``active``, and
    updates ``diverged_epoch``, ``checkpoints`` and ``metrics`` in place. ``optimizer``,
    ``streams`` and ``dropout`` snapshot the run's live optimizer and generators (which the
    loop advances without copying), and ``elapsed`` the training time so far; :meth:`capture`
    brings them up to date, :meth:`restore` puts them back.
    """

    epoch: int
    params: dict[str, Tensor]  # [P, …] per tensor name
    active: Tensor  # [P] bool: not (yet) diverged
    diverged_epoch: list[int | None]
    checkpoints: dict[int, dict[str, Tensor]]
    metrics: list[dict[str, Any]]
    optimizer: dict[str, Tensor]  # BatchedOptimizer.state_dict()
    streams: list[dict[str, Any]]  # data-order generators' bit_generator.state
    dropout: list[Tensor] | None  # dropout generators' get_state(); None without dropout
    elapsed: float  # seconds of training before this state was captured

    @classmethod
    def start(cls, run: TrainingRun) -> TrainingState:
        """The state before the first step: initial weights, every model active."""
        P = len(run.specs)
        state = cls(epoch=0, params=init_population(run.specs, run.dataset.input_shape, run.dataset.n_classes),
                    active=torch.ones(P, dtype=torch.bool), diverged_epoch=[None] * P, checkpoints={}, metrics=[],
                    optimizer={}, streams=[], dropout=None, elapsed=0.0)
        state.capture(run, 0.0)
        return state

    def capture(self, run: TrainingRun, elapsed: float) -> None:
        """Snapshot the run's optimizer state and random-stream positions into this state."""
        self.optimizer = run.optimizer.state_dict()
        self.streams = [g.bit_generator.state for g in run.streams]
        self.dropout = [g.get_state() for g in run.dropout.generators] if run.dropout is not None else None
        self.elapsed = elapsed

    def restore(self, run: TrainingRun) -> None:
        """Put the saved optimizer state and random-stream positions back into ``run``."""
        run.optimizer.load_state_dict(self.optimizer)
        for g, st in zip(run.streams, self.streams, strict=True):
            g.bit_generator.state = st
        if run.dropout is not None:
            for g, st in zip(run.dropout.generators, self.dropout, strict=True):
                g.set_state(st)

    def save(self, path: str | Path, fingerprint: str) -> None:
        """Write this state and ``fingerprint`` to ``path`` atomically."""
        from zoo.store import atomic_path

        with atomic_path(path) as tmp:
            torch.save({"fingerprint": fingerprint, **{f.name: getattr(self, f.name) for f in fields(self)}}, tmp)

    @classmethod
    def load(cls, path: str | Path, fingerprint: str) -> TrainingState | None:
        """The state saved at ``path`` under ``fingerprint``; None if there is none, it is
        unreadable, foreign, or was saved for other specs, data or code (training restarts)."""
        path = Path(path)
        if not path.is_file():
            return None
        try:  # a bad resume file only costs recomputation; weights_only: loading runs no pickled code
            saved = torch.load(path, weights_only=True)
            if saved.get("fingerprint") != fingerprint:
                return None
            return cls(**{f.name: saved[f.name] for f in fields(cls)})
        except Exception:
            return None


def _train_epoch(run: TrainingRun, state: TrainingState, epoch: int) -> None:
    """One pass over every model's training subset in its own order, one batched step per batch.

    A model whose batch loss is non-finite or above ``max_loss``, or whose proposed
    parameters are non-finite, is frozen at its last finite weights (``diverged_epoch``).
    Parameters, gradients and optimizer state live in flat buffers of ``run.layout`` for the
    epoch (two parameter buffers: the current one and the proposal, swapped on acceptance).
    """
    layout, opt, bs = run.layout, run.optimizer, run.batch_size
    x_train, y_train, y_fit = run.x_train, run.y_train, run.y_fit
    x_rows, x_batch = x_train.reshape(len(x_train), -1), {}
    flat, spare, grad = run.buffers
    if state.params[layout.names[0]].data_ptr() == spare.data_ptr():
        flat, spare = spare, flat  # the state holds views of the second buffer: no copy needed
    layout.pack(state.params, out=flat)
    grad_views = layout.views(grad)
    active, diverged_epoch = state.active, state.diverged_epoch
    P, n_sub = len(run.specs), len(run.subsets[0])
    order = torch.from_numpy(np.stack([sub[g.permutation(n_sub)] for sub, g in zip(run.subsets, run.streams)]))
    for start in range(0, n_sub, bs):
        idx = order[:, start : start + bs]
        flat_idx = idx.reshape(-1)
        rows = run.manual.padded(idx.shape[1]) if run.manual is not None else idx.shape[1]
        xb = _gather_rows(x_rows, idx, rows, x_batch).view(P, rows, *x_train.shape[1:])
        yb = y_train.index_select(0, flat_idx).view(P, idx.shape[1], *y_train.shape[1:])
        if y_fit is not None:
            yb = y_fit.gather(1, idx)
        params = layout.views(flat)
        if run.manual is not None:
            losses = run.manual.loss(params, xb, yb, run.dropout)
        else:
            leaves = {k: v.detach().requires_grad_(True) for k, v in params.items()}
            losses = _batch_losses(run, leaves, xb, yb)
        training = active & torch.isfinite(losses) & (losses <= run.max_loss)
        if run.manual is not None:
            run.manual.backward(training.to(losses.dtype), grad_views)
        else:
            total = torch.where(training, losses, torch.zeros_like(losses)).sum()
            grads = torch.autograd.grad(total, [leaves[k] for k in layout.names])
            for k, g in zip(layout.names, grads):
                grad_views[k].copy_(g)
        flat, spare, active = opt.guarded_step(layout, flat, grad, spare, active, training, diverged_epoch, epoch)
    state.params = layout.views(flat)
    state.active, state.epoch = active, epoch


def _gather_rows(x_rows: Tensor, idx: Tensor, rows: int, buffers: dict[int, Tensor]) -> Tensor:
    """``x_rows[idx]`` as a contiguous ``[P, rows, features]`` in a reused buffer; rows past
    ``idx.shape[1]`` repeat each model's first example (padding, see :class:`zoo.manual_mlp.ManualMLP`).

    ``index_select`` on 2-D rows is ~20× faster than indexing image-shaped (4-D) tensors.
    """
    P, b = idx.shape
    if rows != b:
        idx = torch.cat([idx, idx[:, :1].expand(P, rows - b)], 1)
    flat_idx = idx.reshape(-1)
    out = buffers.get(len(flat_idx))
    out = buffers[len(flat_idx)] = torch.index_select(x_rows, 0, flat_idx, out=out) if out is not None \
        else x_rows.index_select(0, flat_idx)
    return out.view(P, rows, x_rows.shape[1])


def _batch_losses(run: TrainingRun, leaves: Mapping[str, Tensor], xb: Tensor, yb: Tensor) -> Tensor:
    """Per-model loss ``[P]`` of one batch through autograd (architectures without a hand-written backward)."""
    P = xb.shape[0]
    logits = forward_population(run.base, leaves, xb, run.dropout)
    if run.task == "regression":
        return ((logits - yb) ** 2).reshape(P, -1).mean(1)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), yb.reshape(-1), reduction="none").view(P, -1).mean(1)


def _record(run: TrainingRun, state: TrainingState, started: float) -> None:
    """Checkpoint the weights of ``state.epoch`` and append one metrics row per model."""
    epoch, params, task = state.epoch, state.params, run.task
    state.checkpoints[epoch] = {k: v.detach().clone() for k, v in params.items()}
    y_fit = run.y_train if run.y_fit is None else run.y_fit
    tr_loss, tr_acc = evaluate(run.base, params, run.x_train, y_fit, run.train_mask, task=task)
    te_loss, te_acc = evaluate(run.base, params, run.x_test, run.y_test, task=task)
    wall, P = time.perf_counter() - started, len(run.specs)
    for i in range(P):
        d = state.diverged_epoch[i]
        state.metrics.append({
            "model_id": run.model_ids[i], "epoch": epoch,
            "train_loss": float(tr_loss[i]), "train_acc": float(tr_acc[i]),
            "test_loss": float(te_loss[i]), "test_acc": float(te_acc[i]),
            "ggap": float(tr_acc[i] - te_acc[i]),
            "diverged": d is not None and d <= epoch,
            "wall_s": wall / P,
        })


@contextlib.contextmanager
def flush_denormals() -> Any:
    """Treat float32 denormals (|x| < 1.2e-38) as zero inside the block (x86 FTZ/DAZ).

    Small gradients, Adam's squared-gradient averages and confident softmax tails fall into
    the denormal range, where every matmul and ``sqrt`` that touches them runs several
    times slower (measured: a population's backward matmuls 3×). Flushing them changes
    values only below 1.2e-38, identically for every model and population size, so the
    bit-identity guarantees hold (the setting is per thread; zoo trains on one thread).
    """
    probe = torch.tensor([1e-39])
    was_on = bool((probe * 1.0)[0] == 0)
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(was_on)


def _progress_bar(label: str, epochs: int, initial: int) -> Any:
    from tqdm import tqdm

    from zoo.progress import progress_stream

    out = progress_stream(sys.stderr)  # a log file gets one line per update, not \r redraws
    return tqdm(total=epochs, initial=initial, desc=label, unit="epoch", file=out,
                mininterval=1.0 if out is sys.stderr else 2.0, ascii=out is not sys.stderr)


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

    ``state_path``: after every checkpoint epoch the full :class:`TrainingState` (weights,
    optimizer state, random streams, metrics so far) is saved there atomically, and a
    later call resumes from it, giving exactly the result of an uninterrupted run. A state
    saved for anything else (see :func:`resume_fingerprint`) is ignored.
    ``stop_after_epoch`` stops early after saving that epoch (to test resumption).
    """
    with flush_denormals():
        return _train(specs, model_ids, checkpoints, dataset, progress, label, state_path, stop_after_epoch)


def _train(specs: Sequence[Mapping[str, Any]], model_ids: Sequence[str], checkpoints: Sequence[int],
           dataset: Dataset | None, progress: bool, label: str, state_path: str | Path | None,
           stop_after_epoch: int | None) -> PopulationResult:
    """:func:`train_population`'s body: setup → (resume) → epochs with records → result."""
    run = _setup_run(specs, model_ids, checkpoints, dataset)
    fingerprint = resume_fingerprint(specs, model_ids, checkpoints, run.dataset) if state_path is not None else ""
    state = TrainingState.load(state_path, fingerprint) if state_path is not None else None
    if state is None:
        state = TrainingState.start(run)
    else:
        state.restore(run)
    # from here on the weights live in the run's aligned flat buffer (see zoo.optim.ALIGN)
    state.params = run.layout.views(run.layout.pack(state.params, out=run.buffers[0]))
    started = time.perf_counter() - state.elapsed
    if state.epoch == 0 and 0 in run.wanted:
        _record(run, state, started)

    bar = _progress_bar(label, run.epochs, state.epoch) if progress else None
    for epoch in range(state.epoch + 1, run.epochs + 1):
        _train_epoch(run, state, epoch)
        if epoch in run.wanted:
            _record(run, state, started)
            if state_path is not None and epoch < run.epochs:
                state.capture(run, time.perf_counter() - started)
                state.save(state_path, fingerprint)
            if stop_after_epoch is not None and epoch >= stop_after_epoch:
                break
        if bar is not None:
            bar.set_postfix(models=len(specs), diverged=sum(d is not None for d in state.diverged_epoch), refresh=False)
            bar.update(1)
    if bar is not None:
        bar.close()
    ds = run.dataset
    return PopulationResult(run.model_ids, state.checkpoints, state.metrics, state.diverged_epoch,
                            time.perf_counter() - started,
                            meta={"input_shape": list(ds.input_shape), "n_classes": ds.n_classes, "task": ds.task,
                                  "dataset_meta": ds.meta})
