"""A regression task: the teacher–student problem (a random tanh network labels Gaussian inputs).

Targets are real numbers, so the dataset has ``task = "regression"`` and
``n_classes`` = number of outputs (1): training uses the mean squared error and the
``*_acc`` metrics hold the coefficient of determination R² (see docs/data.md).
"""

from __future__ import annotations

import numpy as np

from zoo.data import Dataset, register
from zoo.errors import DataError


@register("teacher-student")
def load_teacher_student(n_train: int = 1000, n_test: int = 1000, dim: int = 8, hidden: int = 16,
                         noise: float = 0.1, seed: int = 0) -> Dataset:
    """Inputs ``x ~ N(0, I_dim)``; target ``y = teacher(x) + noise · ε``, ``ε ~ N(0, 1)``.

    The teacher is ``w₂ · tanh(W₁ x)`` with ``W₁ ~ N(0, 1/dim)``, ``w₂ ~ N(0, 1/hidden)``,
    drawn from ``seed``. Train and test draws are independent (same seed stream).
    Normalisation: inputs are already standard; targets are standardised by the train
    split's mean and std. Inputs ``[N, dim]``, targets float32 ``[N, 1]``.
    """
    if min(n_train, n_test, dim, hidden) < 1 or noise < 0:
        raise DataError("dataset 'teacher-student': n_train, n_test, dim, hidden must be >= 1 and noise >= 0; "
                        "fix dataset_options")
    rng = np.random.default_rng(seed)
    w1 = rng.normal(0.0, 1.0 / np.sqrt(dim), (hidden, dim))
    w2 = rng.normal(0.0, 1.0 / np.sqrt(hidden), (1, hidden))
    x = rng.normal(size=(n_train + n_test, dim))
    y = np.tanh(x @ w1.T) @ w2.T + noise * rng.normal(size=(n_train + n_test, 1))
    mean, std = float(y[:n_train].mean()), float(y[:n_train].std()) or 1.0
    y = (y - mean) / std
    meta = {"source": "teacher-student (tanh teacher)", "task": "regression", "generator_seed": seed,
            "dim": dim, "hidden": hidden, "noise": noise, "split": "first n_train draws train, rest test",
            "normalisation": {"inputs": "N(0, 1) by construction", "target_mean": mean, "target_std": std}}
    x, y = x.astype(np.float32), y.astype(np.float32)
    return Dataset("teacher-student", x[:n_train], y[:n_train], x[n_train:], y[n_train:], 1, meta, task="regression")
