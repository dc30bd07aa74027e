"""Scores of a learner on the test models, and their uncertainty.

- Kendall τ-b (``scipy.stats.kendalltau``), R², MAE for regression tasks; accuracy for ``phase``.
- :func:`bootstrap_tau` — the 95 % percentile interval of τ over **test models**: the test
  models are resampled with replacement (every checkpoint of a drawn model comes along, a
  cluster bootstrap, so the pooled protocol's correlated samples are not counted as
  independent), τ is recomputed on each resample.
- :func:`seed_summary` — per (zoo, task, learner, augment, protocol): τ mean ± std over
  the learner seeds, and the bootstrap interval of the *seed-mean* τ, resampling the same
  test models for every seed (the split is shared, so the seeds' τ are paired).

Two rows are "separated" when their ±2σ ranges over seeds do not overlap.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

N_BOOT = 1000
BOOT_SEED = 12345


def kendall_tau(pred: np.ndarray, y: np.ndarray) -> float | None:
    """Kendall τ-b; ``None`` when undefined (a constant side)."""
    from scipy.stats import kendalltau

    if len(y) < 2:
        return None
    tau = kendalltau(pred, y).statistic
    return None if tau is None or math.isnan(tau) else float(tau)


def regression_scores(y: np.ndarray, pred: np.ndarray) -> dict[str, float | None]:
    """``kendall_tau``, ``r2``, ``mae`` (and ``accuracy`` = None)."""
    from sklearn.metrics import mean_absolute_error, r2_score

    return {"kendall_tau": kendall_tau(pred, y), "r2": float(r2_score(y, pred)) if len(y) > 1 else None,
            "mae": float(mean_absolute_error(y, pred)), "accuracy": None}


def _cluster_draws(groups: np.ndarray, n_boot: int, seed: int) -> list[np.ndarray]:
    """``n_boot`` resamples of row indices, drawing whole groups (models) with replacement."""
    uniq, inverse = np.unique(groups, return_inverse=True)
    members = [np.flatnonzero(inverse == g) for g in range(len(uniq))]
    one_per_group = all(len(m) == 1 for m in members)
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(n_boot):
        pick = rng.integers(0, len(uniq), len(uniq))
        draws.append(np.array([members[g][0] for g in pick]) if one_per_group else np.concatenate([members[g] for g in pick]))
    return draws


def bootstrap_tau(y: np.ndarray, preds: Sequence[np.ndarray], groups: np.ndarray, n_boot: int = N_BOOT,
                  seed: int = BOOT_SEED, level: float = 0.95) -> tuple[float | None, float | None]:
    """Percentile interval of the mean τ over ``preds`` (one array per seed), resampling models.

    ``y`` and every ``preds[k]`` are row-aligned; ``groups`` is each row's model id.
    """
    from scipy.stats import kendalltau

    y = np.asarray(y, dtype=np.float64)
    if len(np.unique(groups)) < 3:
        return None, None
    stats = []
    for idx in _cluster_draws(np.asarray(groups), n_boot, seed):
        taus = [kendalltau(np.asarray(p)[idx], y[idx]).statistic for p in preds]
        taus = [t for t in taus if t is not None and not math.isnan(t)]
        if taus:
            stats.append(float(np.mean(taus)))
    if not stats:
        return None, None
    a = (1 - level) / 2
    return float(np.quantile(stats, a)), float(np.quantile(stats, 1 - a))


def bootstrap_accuracy(y: np.ndarray, preds: Sequence[np.ndarray], groups: np.ndarray, n_boot: int = N_BOOT,
                       seed: int = BOOT_SEED, level: float = 0.95) -> tuple[float | None, float | None]:
    """Percentile interval of the mean accuracy over ``preds`` (one label array per seed), resampling models."""
    y = np.asarray(y, dtype=object)
    hits = np.stack([np.asarray(p, dtype=object) == y for p in preds]).astype(np.float64)  # [seeds, rows]
    if len(np.unique(groups)) < 3:
        return None, None
    stats = [float(hits[:, idx].mean()) for idx in _cluster_draws(np.asarray(groups), n_boot, seed)]
    a = (1 - level) / 2
    return float(np.quantile(stats, a)), float(np.quantile(stats, 1 - a))


def bootstrap_delta(y: np.ndarray, preds_a: Sequence[np.ndarray], preds_b: Sequence[np.ndarray], groups: np.ndarray,
                    n_boot: int = N_BOOT, seed: int = BOOT_SEED, level: float = 0.95) -> tuple[float, float]:
    """Paired percentile interval of mean-τ(a) − mean-τ(b): both scored on the same resampled test models.

    Learners of one split share their test models, so the difference is far better
    determined than either τ alone (their intervals may overlap while this one excludes 0).
    """
    from scipy.stats import kendalltau

    y = np.asarray(y, dtype=np.float64)
    stats = []
    for idx in _cluster_draws(np.asarray(groups), n_boot, seed):
        ta = np.mean([kendalltau(np.asarray(p)[idx], y[idx]).statistic for p in preds_a])
        tb = np.mean([kendalltau(np.asarray(p)[idx], y[idx]).statistic for p in preds_b])
        stats.append(float(ta - tb))
    a = (1 - level) / 2
    return float(np.nanquantile(stats, a)), float(np.nanquantile(stats, 1 - a))


KEYS = ["zoo", "task", "learner", "augment", "protocol", "split"]


def seed_summary(results: Any, predictions: Any | None = None, n_boot: int = N_BOOT) -> Any:
    """One row per (zoo, task, learner, augment, protocol, split) of ``results`` (status ok).

    Columns: ``tau_mean``, ``tau_std`` (over seeds, ddof 1), ``r2_mean``, ``n_seeds``,
    ``seeds``, ``split_seed``, ``n_test_models``, ``wall_s`` (mean per fit), ``learner_params``,
    and ``tau_ci_low`` / ``tau_ci_high``: from ``predictions`` (the bootstrap of the seed-mean
    τ) when given, else the mean of the per-seed intervals stored in ``results``.
    """
    import pandas as pd

    ok = results[results.status == "ok"]
    rows = []
    for key, g in ok.groupby(KEYS, sort=False, dropna=False):
        row = dict(zip(KEYS, key))
        taus = g.kendall_tau.dropna().to_numpy(dtype=np.float64)
        row.update(tau_mean=float(taus.mean()) if len(taus) else None,
                   tau_std=float(taus.std(ddof=1)) if len(taus) > 1 else (0.0 if len(taus) else None),
                   r2_mean=float(g.r2.mean()) if g.r2.notna().any() else None,
                   accuracy_mean=float(g.accuracy.mean()) if g.accuracy.notna().any() else None,
                   n_seeds=len(g), seeds=",".join(str(int(s)) for s in g.seed),
                   split_seed=",".join(sorted({str(int(s)) for s in g.split_seed})),
                   n_test_models=int(g.n_test_models.iloc[0]) if "n_test_models" in g else None,
                   n_train_models=int(g.n_train_models.iloc[0]) if "n_train_models" in g else None,
                   n_val_models=int(g.n_val_models.iloc[0]) if "n_val_models" in g else None,
                   wall_s=float(g.wall_s.mean()),
                   learner_params=(int(g.learner_params.iloc[0]) if "learner_params" in g
                                   and g.learner_params.notna().any() else None),
                   tau_ci_low=float(g.tau_ci_low.mean()) if g.tau_ci_low.notna().any() else None,
                   tau_ci_high=float(g.tau_ci_high.mean()) if g.tau_ci_high.notna().any() else None)
        if predictions is not None and row["tau_mean"] is not None:
            sel = predictions
            for k in KEYS:
                if k in sel.columns:
                    sel = sel[sel[k] == row[k]]
            test = sel[sel.side == "test"]
            by_seed = [t.sort_values(["model_id", "epoch"]) for _, t in test.groupby("seed", sort=True)]
            if by_seed:
                ref = by_seed[0]
                lo, hi = bootstrap_tau(ref.y_true.to_numpy(dtype=np.float64),
                                       [t.y_pred.to_numpy(dtype=np.float64) for t in by_seed],
                                       ref.model_id.to_numpy(), n_boot=n_boot)
                row.update(tau_ci_low=lo, tau_ci_high=hi)
        rows.append(row)
    return pd.DataFrame(rows)


def separated(a_mean: float, a_std: float, b_mean: float, b_std: float) -> bool:
    """Whether ``a``'s ±2σ range lies wholly above ``b``'s."""
    return a_mean - 2 * a_std > b_mean + 2 * b_std
