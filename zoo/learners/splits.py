"""Splits by model: every checkpoint of a model lies on one side (train, val or test).

Split names (the ``split`` column of ``results``):

- ``model`` — a seeded random partition of the models (default 70 / 10 / 20 % train/val/test);
- ``region:<axis>:<low|high>`` — out-of-region: the models whose grid value on ``<axis>``
  (a ``models`` column such as ``lr`` or ``width``) is among the highest (lowest) third of
  that axis's distinct values are the test set;
- ``phase:<label>`` — out-of-phase: the models labelled ``<label>`` in ``phases.parquet``
  are the test set.

The validation models are drawn at random (seeded) from the non-test models. The side of
every row is stored in ``predictions.parquet`` (column ``side``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from zoo.errors import SpecError

SIDES = ("train", "val", "test")


def _seeded_order(ids: np.ndarray, seed: int) -> np.ndarray:
    """Sorted unique ids in a seeded random order (depends only on the id set and seed)."""
    uniq = np.array(sorted(set(ids.tolist())), dtype=object)
    return uniq[np.random.default_rng(seed).permutation(len(uniq))]


def assign_models(meta: Any, split: str, seed: int, test_frac: float = 0.2, val_frac: float = 0.1) -> dict[str, str]:
    """``{model_id: side}`` for the split named ``split`` (see module doc)."""
    ids = meta["model_id"].to_numpy()
    order = _seeded_order(ids, seed)
    n = len(order)
    parts = split.split(":")
    if parts[0] == "model" and len(parts) == 1:
        n_test = max(1, round(test_frac * n))
        test = set(order[:n_test])
    elif parts[0] == "region" and len(parts) == 3 and parts[2] in ("low", "high"):
        axis = parts[1]
        if axis not in meta.columns:
            raise SpecError(f"learn.split {split!r}: no grid axis {axis!r} in the models table; use a models column such as lr")
        per_model = meta.drop_duplicates("model_id").set_index("model_id")[axis]
        values = sorted(per_model.dropna().unique())
        if len(values) < 2:
            raise SpecError(f"learn.split {split!r}: axis {axis!r} has one value only; pick an axis the grid varies")
        k = max(1, math.ceil(len(values) / 3))
        chosen = set(values[-k:] if parts[2] == "high" else values[:k])
        test = {m for m, v in per_model.items() if v in chosen}
    elif parts[0] == "phase" and len(parts) == 2:
        if "phase" not in meta.columns:
            from zoo.learners.features import SkipLearner

            raise SkipLearner(f"split {split!r} needs phases.parquet; run the phases stage first (skipped)")
        label = parts[1]
        per_model = meta.drop_duplicates("model_id").set_index("model_id")["phase"]
        test = {m for m, v in per_model.items() if v == label}
        if not test:
            raise SpecError(f"learn.split {split!r}: no model has phase {label!r}; labels: {sorted(per_model.dropna().unique())}")
    else:
        raise SpecError(f"learn.split {split!r}: use 'model', 'region:<axis>:<low|high>' or 'phase:<label>'")
    rest = [m for m in order if m not in test]
    n_val = max(1, round(val_frac * n)) if len(rest) > 2 else 0
    val = set(rest[:n_val])
    if len(rest) - n_val < 1:
        raise SpecError(f"learn.split {split!r}: leaves no training models; choose another split")
    return {m: ("test" if m in test else "val" if m in val else "train") for m in order}


def split_rows(meta: Any, split: str, seed: int, **fractions: float) -> np.ndarray:
    """The side (``train``/``val``/``test``) of every row of ``meta``, by model."""
    sides = assign_models(meta, split, seed, **fractions)
    return np.array([sides[m] for m in meta["model_id"]], dtype=object)
