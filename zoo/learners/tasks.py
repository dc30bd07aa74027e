"""What a learner predicts: the target of every sample (model × checkpoint) for a task name.

- ``test_acc``, ``ggap`` (train_acc − test_acc) — from ``metrics`` (R² in regression zoos);
- ``epoch`` — the checkpoint epoch;
- ``log_<axis>`` — log10 of a ``models`` column (e.g. ``log_lr``, ``log_batch_size``);
- ``phase`` — the phase label from ``phases.parquet`` (classification);
- ``class`` — INR zoos: the class of the signal the INR fitted (``models.signal_class``;
  classification, scored by accuracy; use it with ``split: signal``, the NFN/DWS protocol).

A task the zoo cannot provide is refused here with one line: an unknown name or a
``log_<axis>`` with no such column is a :class:`~zoo.errors.SpecError` (a config error);
``phase`` without ``phases.parquet`` and a target that does not vary across the zoo are
:class:`~zoo.learners.features.SkipLearner` (the workflow records a ``skipped`` row).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from zoo.enums import LEARN_TASKS
from zoo.errors import DataError, SpecError

TASKS_FIXED = LEARN_TASKS


class SkipLearner(DataError):
    """A learner or task cannot run on this zoo (a table it needs is absent); the harness records a skip."""


def is_numeric(column: Any) -> bool:
    """Whether a pandas column holds numbers (pandas' string/categorical dtypes are not)."""
    import pandas as pd

    return bool(pd.api.types.is_numeric_dtype(column.dtype)) and not pd.api.types.is_bool_dtype(column.dtype)


def task_kind(task: str) -> str:
    """``'classification'`` for ``phase`` and ``class``, ``'regression'`` otherwise."""
    return "classification" if task in ("phase", "class") else "regression"


def task_target(meta: Any, task: str) -> np.ndarray:
    """The target of every sample; non-finite / missing targets come back as NaN / None."""
    if task in ("test_acc", "ggap", "epoch"):
        return meta[task].to_numpy(dtype=np.float64)
    if task == "phase":
        if "phase" not in meta.columns:
            raise SkipLearner("task 'phase' needs data/zoos/<zoo>/phases.parquet; run the phases stage first (skipped)")
        labels = meta["phase"].to_numpy(dtype=object)
        # 'unlabelled' (a metric the thresholds need is missing) is no class: drop those samples
        return np.array([None if v is None or v != v or v == "unlabelled" else v for v in labels], dtype=object)
    if task == "class":
        if "signal_class" not in meta.columns:
            raise SkipLearner("task 'class' is the fitted signal's class: it needs an INR zoo (arch siren, "
                              "models.signal_class) (skipped)")
        # class names as strings, like phase labels (scikit-learn refuses object arrays of ints)
        return np.array([None if v is None or v != v else str(int(v)) for v in meta["signal_class"]], dtype=object)
    if task.startswith("log_"):
        axis = task[4:]
        if axis not in meta.columns:
            raise SpecError(f"learn.tasks: {task!r} names no models column {axis!r}; use e.g. log_lr")
        values = meta[axis]
        if not is_numeric(values):
            raise SpecError(f"learn.tasks: {task!r}: column {axis!r} is not numeric; use a numeric axis such as lr")
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.log10(values.to_numpy(dtype=np.float64))
    raise SpecError(f"learn.tasks: unknown task {task!r}; use {', '.join(TASKS_FIXED)} or log_<grid axis>")


def check_task_name(task: str) -> None:
    """One-line :class:`SpecError` for a task name no zoo can provide (before any data is read)."""
    if task not in TASKS_FIXED and not (task.startswith("log_") and len(task) > 4):
        raise SpecError(f"learn.tasks: unknown task {task!r}; use {', '.join(TASKS_FIXED)} or log_<grid axis>")


def check_target_varies(task: str, y: np.ndarray) -> None:
    """:class:`SkipLearner` when every usable sample has the same target (nothing to rank)."""
    kind = task_kind(task)
    values = {v for v in y.tolist()} if kind == "classification" else set(np.unique(y).tolist())
    if len(values) < 2:
        what = "one class" if kind == "classification" else f"one value ({next(iter(values), 'none')})"
        raise SkipLearner(f"task {task!r}: every sample of this zoo has {what}; "
                          "pick a task or grid axis the zoo varies (skipped)")
