"""The benchmark harness: (zoo, task, learner, augmentation) × seeds → ``results`` and ``predictions``.

Tasks (targets per sample = model × checkpoint epoch):

- ``test_acc``, ``ggap`` (train_acc − test_acc) — from ``metrics``;
- ``epoch`` — the checkpoint epoch;
- ``log_<axis>`` — log10 of a grid axis from ``models`` (e.g. ``log_lr``, ``log_batch_size``);
- ``phase`` — the phase label from ``phases.parquet`` (classification).

Per seed: split by model (:mod:`zoo.learners.splits`), fit on train (neural learners stop
early on val; scikit-learn learners fit on train + val), score on test. ``results`` rows
carry DESIGN §4's columns; ``predictions`` has every row with its ``side``, so the split
is stored with the predictions.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from zoo.errors import SpecError
from zoo.learners import LEARNERS
from zoo.learners.augment import parse_augment
from zoo.learners.dataset import WeightDataset
from zoo.learners.features import SkipLearner
from zoo.learners.splits import split_rows

TASKS_FIXED = ("test_acc", "ggap", "epoch", "phase")

RESULT_COLUMNS = ["zoo", "task", "learner", "augment", "split", "seed", "kendall_tau", "r2", "mae", "accuracy",
                  "n_train", "n_val", "n_test", "wall_s", "status", "note", "options"]


def task_kind(task: str) -> str:
    """``'classification'`` for ``phase``, ``'regression'`` otherwise."""
    return "classification" if task == "phase" else "regression"


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
    if task.startswith("log_"):
        axis = task[4:]
        if axis not in meta.columns:
            raise SpecError(f"learn.tasks: {task!r} names no models column {axis!r}; use e.g. log_lr")
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.log10(meta[axis].to_numpy(dtype=np.float64))
    raise SpecError(f"learn.tasks: unknown task {task!r}; use {', '.join(TASKS_FIXED)} or log_<grid axis>")


def make_learner(name: str, kind: str, augment: str, seed: int, activation: str, zoo_dir: Any = None,
                 options: dict[str, Any] | None = None) -> Any:
    """A fresh learner by name (see :data:`zoo.learners.LEARNERS`)."""
    options = options or {}
    if name not in LEARNERS:
        raise SpecError(f"learn.learners: unknown learner {name!r}; known: {', '.join(LEARNERS)}")
    if name in ("flat-mlp", "equivariant"):
        from zoo.learners.neural import NeuralLearner

        return NeuralLearner(name, kind, augment, seed, activation=activation, **options)
    from zoo.learners.tabular import TabularLearner

    features, model = name.split("-")
    return TabularLearner(features, model, kind, augment, seed=seed, activation=activation, zoo_dir=zoo_dir)


def _metrics(kind: str, y: np.ndarray, pred: np.ndarray) -> dict[str, float | None]:
    if kind == "classification":
        return {"kendall_tau": None, "r2": None, "mae": None, "accuracy": float(np.mean(pred == y))}
    from scipy.stats import kendalltau
    from sklearn.metrics import mean_absolute_error, r2_score

    tau = kendalltau(pred, y).statistic
    return {"kendall_tau": None if tau is None or math.isnan(tau) else float(tau), "r2": float(r2_score(y, pred)),
            "mae": float(mean_absolute_error(y, pred)), "accuracy": None}


def run(data: WeightDataset, zoo: str, task: str, learner: str, augment: str, seeds: Sequence[int],
        split: str = "model", zoo_dir: Any = None, options: dict[str, Any] | None = None,
        log: Any = None) -> tuple[Any, Any]:
    """Run one (task, learner, augment) on ``data`` for every seed → ``(results, predictions)`` DataFrames.

    A learner or task that cannot run here (no spectral / phases table) gives one
    ``status='skipped'`` row with the reason in ``note`` and no predictions.
    """
    import pandas as pd

    parse_augment(augment)
    kind = task_kind(task)
    base = {"zoo": zoo, "task": task, "learner": learner, "augment": augment, "split": split}
    opts = json.dumps(options or {}, sort_keys=True)
    results, preds = [], []
    try:
        y_all = task_target(data.meta, task)
        ok = np.array([v is not None and not (isinstance(v, float) and math.isnan(v)) for v in y_all])
        ok &= np.array([all(bool(np.isfinite(t.numpy()).all()) for t in p.values()) for p in data.params])
        data, y_all = data.subset(np.flatnonzero(ok)), y_all[ok]
        activation = str(data.meta["activation"].iat[0]) if "activation" in data.meta.columns else "relu"
        for seed in seeds:
            sides = split_rows(data.meta, split, seed)
            idx = {s: np.flatnonzero(sides == s) for s in ("train", "val", "test")}
            if len(idx["test"]) == 0:
                raise SpecError(f"learn.split {split!r} leaves no test models")
            est = make_learner(learner, kind, augment, seed, activation, zoo_dir, options)
            t0 = time.perf_counter()
            if learner in ("flat-mlp", "equivariant"):
                est.fit(data.subset(idx["train"]), y_all[idx["train"]], data.subset(idx["val"]), y_all[idx["val"]])
                n_fit, n_val = len(idx["train"]), len(idx["val"])
            else:
                fit_idx = np.concatenate([idx["train"], idx["val"]])
                est.fit(data.subset(fit_idx), y_all[fit_idx])
                n_fit, n_val = len(fit_idx), 0
            pred = est.predict(data)
            wall = time.perf_counter() - t0
            m = _metrics(kind, y_all[idx["test"]], pred[idx["test"]])
            results.append({**base, "seed": int(seed), **m, "n_train": n_fit, "n_val": n_val,
                            "n_test": len(idx["test"]), "wall_s": wall, "status": "ok", "note": None, "options": opts})
            if log:
                tau = m["kendall_tau"] if kind == "regression" else m["accuracy"]
                print(f"{zoo}/{task}/{learner}/{augment} seed {seed}: "
                      f"{'tau' if kind == 'regression' else 'acc'}={tau if tau is None else round(tau, 4)} "
                      f"n_train={n_fit} n_test={len(idx['test'])} {wall:.1f}s", file=log)
            frame = data.meta[["model_id", "epoch"]].copy()
            for k, v in base.items():
                frame[k] = v
            frame["seed"] = int(seed)
            frame["side"] = sides
            frame["y_true"] = y_all.astype(str) if kind == "classification" else y_all
            frame["y_pred"] = pred.astype(str) if kind == "classification" else pred.astype(np.float64)
            preds.append(frame)
    except SkipLearner as exc:
        if log:
            print(f"{zoo}/{task}/{learner}/{augment}: skipped: {exc}", file=log)
        results = [{**base, "seed": int(s), "kendall_tau": None, "r2": None, "mae": None, "accuracy": None,
                    "n_train": 0, "n_val": 0, "n_test": 0, "wall_s": 0.0, "status": "skipped", "note": str(exc),
                    "options": opts} for s in seeds]
        preds = []
    res = pd.DataFrame(results, columns=RESULT_COLUMNS)
    pred_cols = ["model_id", "epoch", "zoo", "task", "learner", "augment", "split", "seed", "side", "y_true", "y_pred"]
    pr = pd.concat(preds, ignore_index=True) if preds else pd.DataFrame(columns=pred_cols)
    return res, pr


def results_schema() -> Any:
    """Arrow schema of the ``results`` table (DESIGN §4)."""
    import pyarrow as pa

    f64, i64, s = pa.float64(), pa.int64(), pa.string()
    return pa.schema([("zoo", s), ("task", s), ("learner", s), ("augment", s), ("split", s), ("seed", i64),
                      ("kendall_tau", f64), ("r2", f64), ("mae", f64), ("accuracy", f64), ("n_train", i64),
                      ("n_val", i64), ("n_test", i64), ("wall_s", f64), ("status", s), ("note", s), ("options", s)])


def predictions_schema(classification: bool) -> Any:
    """Arrow schema of ``predictions`` (``y_true``/``y_pred`` strings for classification tasks)."""
    import pyarrow as pa

    yt = pa.string() if classification else pa.float64()
    s = pa.string()
    return pa.schema([("model_id", s), ("epoch", pa.int64()), ("zoo", s), ("task", s), ("learner", s), ("augment", s),
                      ("split", s), ("seed", pa.int64()), ("side", s), ("y_true", yt), ("y_pred", yt)])


def write_outputs(results: Any, predictions: Any, outdir: str | Path, task: str) -> None:
    """Write ``results.parquet`` and ``predictions.parquet`` into ``outdir`` atomically."""
    import pyarrow as pa

    from zoo.store import write_table

    outdir = Path(outdir)
    classification = task_kind(task) == "classification"
    res = pa.Table.from_pandas(results, schema=results_schema(), preserve_index=False)
    pred = pa.Table.from_pandas(predictions, schema=predictions_schema(classification), preserve_index=False)
    write_table(res, outdir / "results.parquet", "results")
    write_table(pred, outdir / "predictions.parquet", "predictions")
