"""Tabular classification sets bundled with scikit-learn: wine and breast cancer."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from zoo.data import SPLIT_SEED, Dataset, check_fraction, register, stratified_split


def standardise_features(x_train: np.ndarray, x_test: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict[str, list[float]]]:
    """Scale each feature by the training split's mean and std (features have different units)."""
    mean, std = x_train.mean(0), x_train.std(0)
    std = np.where(std > 0, std, 1.0)
    norm = {"mean": mean.tolist(), "std": std.tolist(), "statistics": "training split, per feature"}
    return ((x_train - mean) / std).astype(np.float32), ((x_test - mean) / std).astype(np.float32), norm


def _tabular(name: str, fetch: Callable, source: str) -> Callable[..., Dataset]:
    def load(test_fraction: float = 0.2) -> Dataset:
        test_fraction = check_fraction(name, "test_fraction", test_fraction)
        bunch = fetch()
        x, y = np.asarray(bunch.data, np.float64), np.asarray(bunch.target, np.int64)
        tr, te = stratified_split(y, test_fraction)
        x_tr, x_te, norm = standardise_features(x[tr], x[te])
        meta = {"source": source, "split_seed": SPLIT_SEED, "test_fraction": test_fraction,
                "split": "stratified", "normalisation": norm}
        return Dataset(name, x_tr, y[tr], x_te, y[te], int(y.max()) + 1, meta)

    load.__doc__ = (f"scikit-learn's bundled {name} data, inputs ``[N, n_features]``.\n\n"
                    "Split: stratified, seed 0, ``test_fraction`` held out. Normalisation: each feature\n"
                    "standardised by the train split's mean and std.")
    return load


def _wine():
    from sklearn.datasets import load_wine

    return load_wine()


def _breast_cancer():
    from sklearn.datasets import load_breast_cancer

    return load_breast_cancer()


register("wine")(_tabular("wine", _wine, "sklearn.datasets.load_wine"))
register("breast_cancer")(_tabular("breast_cancer", _breast_cancer, "sklearn.datasets.load_breast_cancer"))
