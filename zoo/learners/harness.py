"""The benchmark harness: (zoo, task, learner, augmentation) × learner seeds → ``results`` and ``predictions``.

Tasks: :mod:`zoo.learners.tasks`. Protocols and splits: :mod:`zoo.learners.splits` —
by default the NFN paper's (final checkpoint, 50 % test models, the rest 80/20 train/val);
``pooled`` uses every checkpoint. Order of work, so that no learner choice can move the
test set:

1. the split: every model id of the dataset, before anything is dropped, is assigned a
   side from the **split seed** alone;
2. the samples: the protocol's checkpoints, minus samples whose target or weights are not
   finite (the same samples for every learner, so their scores compare);
3. per **learner seed**: fit on train (neural learners stop early on val; scikit-learn
   learners fit on train + val), predict every sample, score the test models — Kendall τ,
   R², MAE (accuracy for ``phase``) and a bootstrap 95 % interval of τ over test models.

``results`` rows carry DESIGN §4's columns plus ``protocol``, ``split_seed``, the model
counts per side, the interval and the learner's parameter count; ``predictions`` has
every sample with its ``side``, so the split is stored with the predictions. A learner,
task or split that cannot run on this zoo gives one ``status='skipped'`` row per seed with
the reason in ``note`` and no predictions; a config error (unknown name) raises
:class:`~zoo.errors.SpecError` before any work.
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
from zoo.learners.augment import HOMOGENEOUS, ODD, parse_augment
from zoo.learners.dataset import WeightDataset
from zoo.learners.features import SkipLearner
from zoo.learners.scores import N_BOOT, bootstrap_tau, regression_scores
from zoo.learners.splits import DEFAULT_PROTOCOL, assign_models, final_rows
from zoo.learners.splits import protocol as get_protocol
from zoo.learners.tasks import TASKS_FIXED, check_target_varies, task_kind, task_target

__all__ = ["LEARNER_KINDS", "RESULT_COLUMNS", "TASKS_FIXED", "make_learner", "predictions_schema", "results_schema",
           "run", "task_kind", "task_target", "write_outputs"]

#: Every learner the harness can build, by family: ``tabular`` (fixed features → scikit-learn),
#: ``hparams`` (the spec's hyperparameters only), ``neural`` (Lightning). The names are
#: :data:`zoo.enums.LEARNERS` (tests check the two agree).
LEARNER_KINDS: dict[str, str] = {
    "hparams-gbm": "hparams",
    "statnn-gbm": "tabular", "statnn-ridge": "tabular", "spectral-gbm": "tabular", "spectral-ridge": "tabular",
    "flat-mlp": "neural", "equivariant": "neural", "nfn-np": "neural", "nfn-hnp": "neural",
}

RESULT_COLUMNS = ["zoo", "task", "learner", "augment", "split", "seed", "kendall_tau", "r2", "mae", "accuracy",
                  "n_train", "n_val", "n_test", "wall_s", "status", "note", "options",
                  "protocol", "split_seed", "n_train_models", "n_val_models", "n_test_models",
                  "tau_ci_low", "tau_ci_high", "learner_params", "epochs_run"]
PREDICTION_COLUMNS = ["model_id", "epoch", "zoo", "task", "learner", "augment", "split", "seed", "side", "y_true",
                      "y_pred", "protocol", "split_seed"]


def check_learner(name: str) -> str:
    """The family of learner ``name``; one-line :class:`SpecError` naming the choices otherwise."""
    if name not in LEARNER_KINDS:
        raise SpecError(f"learn.learners: unknown learner {name!r}; known: {', '.join(LEARNER_KINDS)}")
    return LEARNER_KINDS[name]


def make_learner(name: str, kind: str, augment: str, seed: int, activation: str, zoo_dir: Any = None,
                 options: dict[str, Any] | None = None, task: str = "test_acc", with_epoch: bool = True) -> Any:
    """A fresh learner by name (see :data:`LEARNER_KINDS`); ``options`` go to neural learners."""
    family = check_learner(name)
    if family == "neural":
        from zoo.learners.neural import NeuralLearner

        return NeuralLearner(name, kind, augment, seed, activation=activation, **(options or {}))
    if family == "hparams":
        from zoo.learners.tabular import HparamsLearner

        return HparamsLearner(task, kind, augment, seed, with_epoch=with_epoch)
    from zoo.learners.tabular import TabularLearner

    features, model = name.split("-")
    return TabularLearner(features, model, kind, augment, seed=seed, activation=activation, zoo_dir=zoo_dir)


def _activation(meta: Any, augment: str) -> str:
    """The zoo's activation (for ``rescale``); a zoo mixing activations takes no ``rescale``."""
    acts = sorted(meta["activation"].dropna().unique()) if "activation" in meta.columns else ["relu"]
    if "rescale" in parse_augment(augment) and (len(acts) != 1 or acts[0] not in HOMOGENEOUS):
        raise SkipLearner(f"augmentation 'rescale' is a symmetry only for {'/'.join(HOMOGENEOUS)} networks; "
                          f"this zoo has {', '.join(map(str, acts))} (skipped)")
    if "signflip" in parse_augment(augment) and (len(acts) != 1 or acts[0] not in ODD):
        raise SkipLearner(f"augmentation 'signflip' is a symmetry only for {'/'.join(ODD)} networks; "
                          f"this zoo has {', '.join(map(str, acts))} (skipped)")
    return str(acts[0]) if acts else "relu"


def check_layout(data: WeightDataset, learner: str) -> None:
    """:class:`SkipLearner` when a neural learner cannot take this zoo's networks."""
    from zoo.learners.dataset import layer_pairs

    if LEARNER_KINDS[learner] != "neural" or not len(data):
        return
    try:
        depths = {len(layer_pairs(p)) for p in data.params}
    except SpecError as exc:
        arch = sorted(data.meta["arch"].dropna().unique()) if "arch" in data.meta.columns else ["?"]
        raise SkipLearner(f"{learner}: takes plain mlp/cnn networks (layers.* / convs.* + head), not this zoo's "
                          f"{'/'.join(arch)} ({exc.args[0].split(':')[0]}); use statnn-gbm or hparams-gbm here "
                          "(skipped)") from None
    if learner.startswith("nfn") and len(depths) > 1:
        raise SkipLearner(f"{learner}: an NFN is built for one NetworkSpec (one depth); this zoo mixes "
                          f"{len(depths)} depths — learn one depth at a time (skipped)")
    if learner.startswith("nfn"):
        import importlib.util

        if importlib.util.find_spec("nfn") is None:
            raise SkipLearner(f"{learner}: needs the nfn package (pip install nfn==0.1.2; it is in requirements.txt)")


def _finite(params: dict[str, Any]) -> bool:
    return all(bool(np.isfinite(t.numpy()).all()) for t in params.values())


def run(data: WeightDataset, zoo: str, task: str, learner: str, augment: str, seeds: Sequence[int],
        split: str = "model", zoo_dir: Any = None, options: dict[str, Any] | None = None, log: Any = None,
        protocol: str = DEFAULT_PROTOCOL, split_seed: int = 0, n_boot: int = N_BOOT) -> tuple[Any, Any]:
    """Run one (task, learner, augment) on ``data`` for every learner seed → ``(results, predictions)``.

    ``protocol`` (``nfn`` default, or ``pooled``) picks the samples and fractions;
    ``split_seed`` fixes the split (separate from ``seeds``, which seed the learners).
    """
    import pandas as pd

    proto = get_protocol(protocol)
    parse_augment(augment)
    check_learner(learner)
    kind = task_kind(task)
    base = {"zoo": zoo, "task": task, "learner": learner, "augment": augment, "split": split}
    extra = {"protocol": proto.name, "split_seed": int(split_seed)}
    opts = json.dumps(options or {}, sort_keys=True)
    results, preds = [], []
    try:
        # 1. the split, on every model id before anything is dropped
        sides_by_model = assign_models(data.meta, split, split_seed, proto.test_frac, proto.val_frac)
        # 2. the samples: the protocol's checkpoints with finite targets and weights
        y_all = task_target(data.meta, task)
        ok = final_rows(data.meta) if proto.final_only else np.ones(len(data), dtype=bool)
        ok &= np.array([v is not None and not (isinstance(v, float) and math.isnan(v)) for v in y_all], dtype=bool)
        ok &= np.array([_finite(p) for p in data.params], dtype=bool)
        data, y_all = data.subset(np.flatnonzero(ok)), y_all[ok]
        sides = np.array([sides_by_model[m] for m in data.meta["model_id"]], dtype=object)
        idx = {s: np.flatnonzero(sides == s) for s in ("train", "val", "test")}
        if len(idx["test"]) == 0:
            raise SpecError(f"learn.split {split!r} leaves no test models")
        check_target_varies(task, y_all[np.concatenate([idx["train"], idx["val"]])])
        check_layout(data, learner)
        activation = _activation(data.meta, augment)
        counts = {f"n_{s}_models": int(data.meta["model_id"].iloc[idx[s]].nunique()) for s in ("train", "val", "test")}
        neural = LEARNER_KINDS[learner] == "neural"
        for seed in seeds:
            est = make_learner(learner, kind, augment, seed, activation, zoo_dir, options, task,
                               with_epoch=not proto.final_only)
            t0 = time.perf_counter()
            if neural:
                est.fit(data.subset(idx["train"]), y_all[idx["train"]], data.subset(idx["val"]), y_all[idx["val"]])
                n_fit, n_val = len(idx["train"]), len(idx["val"])
            else:
                fit_idx = np.concatenate([idx["train"], idx["val"]])
                est.fit(data.subset(fit_idx), y_all[fit_idx])
                n_fit, n_val = len(fit_idx), 0
            pred = est.predict(data)
            wall = time.perf_counter() - t0
            yt, pt = y_all[idx["test"]], pred[idx["test"]]
            if kind == "classification":
                m = {"kendall_tau": None, "r2": None, "mae": None, "accuracy": float(np.mean(pt == yt))}
                lo = hi = None
            else:
                m = regression_scores(yt.astype(np.float64), pt.astype(np.float64))
                lo, hi = bootstrap_tau(yt, [pt], data.meta["model_id"].to_numpy()[idx["test"]], n_boot=n_boot)
            results.append({**base, "seed": int(seed), **m, "n_train": n_fit, "n_val": n_val,
                            "n_test": len(idx["test"]), "wall_s": wall, "status": "ok", "note": None, "options": opts,
                            **extra, **counts, "tau_ci_low": lo, "tau_ci_high": hi,
                            "learner_params": getattr(est, "n_params_", None),
                            "epochs_run": getattr(est, "epochs_run_", None)})
            if log:
                score = m["kendall_tau"] if kind == "regression" else m["accuracy"]
                print(f"{zoo}/{task}/{learner}/{augment} [{proto.name}, split seed {split_seed}] seed {seed}: "
                      f"{'tau' if kind == 'regression' else 'acc'}={score if score is None else round(score, 4)} "
                      f"n_train={n_fit} n_test={len(idx['test'])} {wall:.1f}s", file=log)
            frame = data.meta[["model_id", "epoch"]].copy()
            for k, v in base.items():
                frame[k] = v
            frame["seed"] = int(seed)
            frame["side"] = sides
            frame["y_true"] = y_all.astype(str) if kind == "classification" else y_all.astype(np.float64)
            frame["y_pred"] = pred.astype(str) if kind == "classification" else pred.astype(np.float64)
            for k, v in extra.items():
                frame[k] = v
            preds.append(frame)
    except SkipLearner as exc:
        if log:
            print(f"{zoo}/{task}/{learner}/{augment}: skipped: {exc}", file=log)
        results = [{**base, "seed": int(s), "kendall_tau": None, "r2": None, "mae": None, "accuracy": None,
                    "n_train": 0, "n_val": 0, "n_test": 0, "wall_s": 0.0, "status": "skipped", "note": str(exc),
                    "options": opts, **extra} for s in seeds]
        preds = []
    res = pd.DataFrame(results, columns=RESULT_COLUMNS)
    pr = pd.concat(preds, ignore_index=True) if preds else pd.DataFrame(columns=PREDICTION_COLUMNS)
    return res, pr[PREDICTION_COLUMNS]


def results_schema() -> Any:
    """Arrow schema of the ``results`` table (DESIGN §4; later columns appended, none renamed)."""
    import pyarrow as pa

    f64, i64, s = pa.float64(), pa.int64(), pa.string()
    return pa.schema([("zoo", s), ("task", s), ("learner", s), ("augment", s), ("split", s), ("seed", i64),
                      ("kendall_tau", f64), ("r2", f64), ("mae", f64), ("accuracy", f64), ("n_train", i64),
                      ("n_val", i64), ("n_test", i64), ("wall_s", f64), ("status", s), ("note", s), ("options", s),
                      ("protocol", s), ("split_seed", i64), ("n_train_models", i64), ("n_val_models", i64),
                      ("n_test_models", i64), ("tau_ci_low", f64), ("tau_ci_high", f64), ("learner_params", i64),
                      ("epochs_run", i64)])


def predictions_schema(classification: bool) -> Any:
    """Arrow schema of ``predictions`` (``y_true``/``y_pred`` strings for classification tasks)."""
    import pyarrow as pa

    yt = pa.string() if classification else pa.float64()
    s = pa.string()
    return pa.schema([("model_id", s), ("epoch", pa.int64()), ("zoo", s), ("task", s), ("learner", s), ("augment", s),
                      ("split", s), ("seed", pa.int64()), ("side", s), ("y_true", yt), ("y_pred", yt),
                      ("protocol", s), ("split_seed", pa.int64())])


def write_outputs(results: Any, predictions: Any, results_path: str | Path, predictions_path: str | Path,
                  task: str) -> None:
    """Write the ``results`` and ``predictions`` tables atomically."""
    import pyarrow as pa

    from zoo.store import write_table

    classification = task_kind(task) == "classification"
    res = pa.Table.from_pandas(results, schema=results_schema(), preserve_index=False)
    pred = pa.Table.from_pandas(predictions, schema=predictions_schema(classification), preserve_index=False)
    write_table(res, results_path, "results")
    write_table(pred, predictions_path, "predictions")
