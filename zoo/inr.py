"""Fit one INR population: P SIRENs of one shape on P signals, full batch, batched Adam (DESIGN §11).

Setup → loop → record, like :func:`zoo.train.train_population`:

- *setup*: each model's signal (``signal_split``, ``signal_index`` of its spec) from
  :func:`zoo.datasets.signals.load_signal_set`; Sitzmann initialisation from each model's
  seed (:func:`zoo.siren.init_siren`); parameters, gradients and Adam state in one flat
  buffer (:class:`zoo.optim.FlatLayout`), per-model learning rates;
- *loop*: one step = one epoch = every coordinate once (full batch); a model whose loss
  is non-finite or above ``max_loss``, or whose proposed weights are not finite, is frozen
  at its last finite weights and flagged diverged, as for classifiers;
- *record* at each checkpoint epoch (0 = initialisation): the weights, and one metrics row
  per model with ``recon_mse`` (mean squared error over coordinates and channels, values
  in [-1, 1]), ``psnr_db`` = 10·log10(2² / recon_mse), and ``train_loss`` = ``recon_mse``
  (the fitting loss). An INR has no held-out data: ``train_acc``, ``test_loss``,
  ``test_acc`` and ``ggap`` are null (never overloaded).

Nothing couples two models (no cross-model reduction, per-model generators), so a SIREN's
weights are bit-identical whether it is fitted alone or in any population.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from zoo.datasets.signals import VALUE_RANGE, load_signal_set
from zoo.optim import BatchedOptimizer, FlatLayout
from zoo.siren import SirenPopulation, init_siren, psnr_db, siren_shapes
from zoo.train import PopulationResult, flush_denormals

DEFAULT_MAX_LOSS = 1e3


def population_signals(specs: Sequence[Mapping[str, Any]]) -> tuple[Any, torch.Tensor, torch.Tensor]:
    """``(signal set, coords [N, d], targets [P, N, C])`` of the models' signals."""
    signals = load_signal_set(specs[0]["dataset"], specs[0].get("dataset_options"))
    targets = np.stack([signals.signal(s["signal_split"], int(s["signal_index"])) for s in specs])
    return signals, torch.from_numpy(signals.coords), torch.from_numpy(targets)


def fit_population(specs: Sequence[Mapping[str, Any]], model_ids: Sequence[str], checkpoints: Sequence[int],
                   label: str = "population") -> PopulationResult:
    """Fit every SIREN of ``specs`` (one population: shared shape, dataset, epochs, optimizer)."""
    with flush_denormals():
        return _fit(specs, model_ids, checkpoints)


def _fit(specs: Sequence[Mapping[str, Any]], model_ids: Sequence[str], checkpoints: Sequence[int]) -> PopulationResult:
    base = specs[0]
    signals, coords, targets = population_signals(specs)
    P = len(specs)
    pop = SirenPopulation(base, coords, targets)
    per_model = [init_siren(s, signals.in_features, signals.out_features) for s in specs]
    names = list(siren_shapes(base, signals.in_features, signals.out_features))
    layout = FlatLayout({k: tuple(per_model[0][k].shape) for k in names}, P)
    flat, spare, grad = layout.empty(), layout.empty(), layout.empty()
    layout.pack({k: torch.stack([p[k] for p in per_model]) for k in names}, out=flat)
    opt = BatchedOptimizer(base["optimizer"], torch.tensor([float(s["lr"]) for s in specs]),
                           torch.tensor([float(s.get("momentum", 0.0)) for s in specs]),
                           torch.tensor([float(s.get("weight_decay", 0.0)) for s in specs]))
    max_loss = float(base.get("max_loss", DEFAULT_MAX_LOSS))
    wanted, epochs = set(int(c) for c in checkpoints), int(base["epochs"])
    active = torch.ones(P, dtype=torch.bool)
    diverged: list[int | None] = [None] * P
    ckpts: dict[int, dict[str, torch.Tensor]] = {}
    metrics: list[dict[str, Any]] = []
    started = time.perf_counter()

    def record(epoch: int) -> None:
        params = layout.views(flat)
        ckpts[epoch] = {k: v.detach().clone() for k, v in params.items()}
        mse = pop.squared_error(pop.outputs(params)).double()
        psnr = psnr_db(mse, VALUE_RANGE)
        wall = time.perf_counter() - started
        for i in range(P):
            d = diverged[i]
            metrics.append({"model_id": model_ids[i], "epoch": epoch, "train_loss": float(mse[i]),
                            "train_acc": None, "test_loss": None, "test_acc": None, "ggap": None,
                            "diverged": d is not None and d <= epoch, "wall_s": wall / P,
                            "recon_mse": float(mse[i]), "psnr_db": float(psnr[i])})

    if 0 in wanted:
        record(0)
    grad_views = layout.views(grad)
    for epoch in range(1, epochs + 1):
        losses = pop.loss(layout.views(flat))
        training = active & torch.isfinite(losses) & (losses <= max_loss)
        pop.backward(training.to(losses.dtype), grad_views)
        flat, spare, active = opt.guarded_step(layout, flat, grad, spare, active, training, diverged, epoch)
        if epoch in wanted:
            record(epoch)
    meta = {"input_shape": list(signals.input_shape), "n_classes": signals.out_features, "task": "inr",
            "signals": {"dataset": signals.name, "n_coords": signals.n_coords, "value_map": signals.value_map,
                        "value_range": VALUE_RANGE}}
    return PopulationResult(list(model_ids), ckpts, metrics, diverged, time.perf_counter() - started, meta=meta)
