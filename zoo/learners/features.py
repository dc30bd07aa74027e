"""Fixed-length feature vectors of networks, for the scikit-learn learners.

- :func:`statnn_features` — StatNN (Unterthiner et al. 2020): for every weight and bias
  tensor the mean, standard deviation and the 0/25/50/75/100 % quantiles of its entries.
- :func:`spectral_features` — the numeric columns of the ``spectral`` table
  (``data/zoos/<zoo>/spectral/<population>.parquet``, one row per model × epoch × layer),
  one column per layer × metric.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from zoo.errors import DataError
from zoo.learners.dataset import WeightDataset
from zoo.learners.tasks import SkipLearner, is_numeric
from zoo.store import read_table

STATNN_STATS: tuple[str, ...] = ("mean", "std", "q0", "q25", "q50", "q75", "q100")
_QUANTILES = np.array([0.0, 0.25, 0.5, 0.75, 1.0])
_SPECTRAL_KEYS = {"model_id", "zoo", "population", "epoch", "layer", "tensor", "kind"}

__all__ = ["STATNN_STATS", "SkipLearner", "features_for", "load_spectral", "spectral_features", "statnn_features",
           "statnn_vector"]


def statnn_vector(params: dict[str, Any]) -> np.ndarray:
    """The 7 statistics of each tensor, in tensor order (float64; ±inf → NaN)."""
    out = []
    for t in params.values():
        x = np.asarray(t, dtype=np.float64).reshape(-1)
        out.append([x.mean(), x.std(), *np.quantile(x, _QUANTILES)])
    v = np.asarray(out, dtype=np.float64).reshape(-1)
    v[~np.isfinite(v)] = np.nan
    return v


def statnn_features(samples: Sequence[dict[str, Any]]) -> tuple[np.ndarray, list[str]]:
    """``(X [n, 7·n_tensors], column names)``; every sample must have the same tensor names."""
    names = list(samples[0])
    for s in samples:
        if list(s) != names:
            raise DataError(f"statnn: samples mix architectures with different tensors ({list(s)} vs {names}); "
                            "learn one depth at a time")
    cols = [f"{n}.{s}" for n in names for s in STATNN_STATS]
    return np.stack([statnn_vector(s) for s in samples]), cols


def load_spectral(source: str | Path | Sequence[str | Path] | None) -> Any:
    """The zoo's ``spectral`` rows as a pandas frame; :class:`SkipLearner` if the table does not exist.

    ``source``: the spectral Parquet files (as the workflow passes them), or a zoo folder
    (its current spec's files).
    """
    import pandas as pd

    if source is None:
        files = []
    elif isinstance(source, (str, Path)):
        from zoo.layout import current_table_files

        files = current_table_files(source, "spectral") if (Path(source) / "spec.json").is_file() else []
    else:
        files = [Path(f) for f in source]
    if not files:
        raise SkipLearner(f"{source or 'spectral'}: no spectral table; run the spectral stage first "
                          "(the spectral-* learners are skipped)")
    return pd.concat([read_table(f).to_pandas() for f in files], ignore_index=True)


def spectral_features(meta: Any, spectral: Any) -> tuple[np.ndarray, list[str]]:
    """One row per sample of ``meta`` (model_id, epoch): every numeric spectral metric × layer (NaN if absent)."""
    num = [c for c in spectral.columns if c not in _SPECTRAL_KEYS and is_numeric(spectral[c])]
    if not num:
        raise SkipLearner("spectral table has no numeric metric columns; the spectral-* learners are skipped")
    wide = spectral.pivot_table(index=["model_id", "epoch"], columns="layer", values=num, aggfunc="first")
    wide.columns = [f"{layer}.{metric}" for metric, layer in wide.columns]
    wide = wide.reset_index()
    joined = meta[["model_id", "epoch"]].merge(wide, on=["model_id", "epoch"], how="left")
    cols = [c for c in joined.columns if c not in ("model_id", "epoch")]
    X = np.array(joined[cols].to_numpy(dtype=np.float64), copy=True)
    X[~np.isfinite(X)] = np.nan
    if np.isnan(X).all(axis=1).mean() > 0.5:
        raise SkipLearner("spectral table covers fewer than half of the samples (model_id, epoch); "
                          "re-run the spectral stage for this zoo")
    return X, cols


def features_for(learner: str, dataset: WeightDataset, zoo_dir: str | Path | None = None,
                 spectral: Any = None) -> tuple[np.ndarray, list[str]]:
    """Features of ``dataset`` for a ``statnn-*`` or ``spectral-*`` learner."""
    if learner.startswith("statnn"):
        return statnn_features(dataset.params)
    if spectral is None:
        spectral = load_spectral(zoo_dir)
    return spectral_features(dataset.meta, spectral)
