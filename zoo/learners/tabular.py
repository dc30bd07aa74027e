"""``statnn-*``, ``spectral-*`` and ``hparams-gbm`` learners: fixed feature vectors → scikit-learn GBM or ridge.

``hparams-gbm`` is the control every benchmark table carries: it sees only the model
spec's hyperparameters (the ``models`` columns of the grid axes that vary in the zoo, plus
the checkpoint epoch under the pooled protocol), never a weight, so a weight-space learner
that does not beat it has learned nothing the spec did not already say.

Estimators follow scikit-learn's shape: hyperparameters stored unchanged in ``__init__``,
learned state ends with ``_``, ``fit(data, y) / predict(data) / score(data, y)`` where
``data`` is a :class:`~zoo.learners.dataset.WeightDataset`. Augmentations are applied
offline: ``n_augment`` augmented copies of every training network are added.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from zoo.enums import GRID_AXES
from zoo.learners.augment import Augmenter
from zoo.learners.dataset import WeightDataset, shape_key
from zoo.learners.features import SkipLearner, features_for
from zoo.learners.tasks import is_numeric

#: Spec columns that are identifiers or bookkeeping, not hyperparameters.
NOT_HYPERPARAMETERS = ("seed",)


def _signed_log(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.log1p(np.abs(x))


def gbm_min_leaf(n_samples: int) -> int:
    """Smallest leaf of the GBMs: scikit-learn's 20, fewer for tiny training sets (≥ 2, n/10).

    With the default 20, a GBM fit on 24 networks cannot split at all and predicts a constant.
    """
    return int(min(20, max(2, n_samples // 10)))


def make_regressor(model: str, task_kind: str, seed: int, n_samples: int = 10_000) -> Any:
    """The scikit-learn estimator: ``gbm`` (histogram gradient boosting) or ``ridge`` (CV over α)."""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import RidgeClassifierCV, RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    if model == "gbm":
        cls = HistGradientBoostingRegressor if task_kind == "regression" else HistGradientBoostingClassifier
        return cls(max_iter=300, learning_rate=0.05, early_stopping=False, random_state=seed,
                   min_samples_leaf=gbm_min_leaf(n_samples))
    alphas = np.logspace(-3, 3, 13)
    head = RidgeCV(alphas=alphas) if task_kind == "regression" else RidgeClassifierCV(alphas=alphas)
    return make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True),
                         FunctionTransformer(_signed_log), StandardScaler(), head)


class TabularLearner:
    """StatNN or spectral features → GBM / ridge. ``score`` is Kendall τ (regression) or accuracy."""

    def __init__(self, features: str = "statnn", model: str = "gbm", task_kind: str = "regression",
                 augment: str = "none", n_augment: int = 2, seed: int = 0, activation: str = "relu",
                 zoo_dir: Any = None, spectral: Any = None):
        self.features = features
        self.model = model
        self.task_kind = task_kind
        self.augment = augment
        self.n_augment = n_augment
        self.seed = seed
        self.activation = activation
        self.zoo_dir = zoo_dir
        self.spectral = spectral

    def _X(self, data: WeightDataset) -> np.ndarray:
        return features_for(f"{self.features}-{self.model}", data, self.zoo_dir, self.spectral)[0]

    def _augmented(self, data: WeightDataset, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Features and targets of the originals plus ``n_augment`` augmented copies of each."""
        from zoo.learners.features import statnn_vector

        aug = Augmenter(self.augment, self.activation, seed=self.seed)
        classes = getattr(self, "classes_", None)
        targets = (np.eye(len(classes))[np.searchsorted(classes, y)] if self.task_kind == "classification"
                   else np.asarray(y, dtype=np.float64)[:, None])
        groups: dict[Any, list[int]] = {}
        for i, p in enumerate(data.params):
            groups.setdefault(shape_key(p), []).append(i)
        rows, ys = [], []
        for _ in range(self.n_augment):
            for i, p in enumerate(data.params):
                group = groups[shape_key(p)]

                def partner(rng: np.random.Generator, group=group) -> tuple[dict, torch.Tensor]:
                    j = group[rng.integers(len(group))]
                    return data.params[j], torch.from_numpy(targets[j])

                q, t = aug(p, torch.from_numpy(targets[i]), partner)
                rows.append(statnn_vector(q))
                ys.append(t.numpy())
        ys_arr = np.stack(ys)
        y_aug = classes[ys_arr.argmax(1)] if self.task_kind == "classification" else ys_arr[:, 0]
        return np.stack(rows), y_aug

    def fit(self, data: WeightDataset, y: np.ndarray) -> TabularLearner:
        y = np.asarray(y)
        if self.task_kind == "classification":
            self.classes_ = np.unique(y)
        X = self._X(data)
        if self.augment != "none":
            if self.features != "statnn":
                raise SkipLearner(f"{self.features}-{self.model}: features come from a precomputed table, "
                                  f"so augmentation {self.augment!r} does not apply (skipped)")
            Xa, ya = self._augmented(data, y)
            X, y = np.concatenate([X, Xa]), np.concatenate([y, ya])
        self.estimator_ = make_regressor(self.model, self.task_kind, self.seed, len(X)).fit(X, y)
        self.n_features_in_ = X.shape[1]
        return self

    def predict(self, data: WeightDataset) -> np.ndarray:
        return self.estimator_.predict(self._X(data))

    def score(self, data: WeightDataset, y: np.ndarray) -> float:
        from scipy.stats import kendalltau

        pred = self.predict(data)
        if self.task_kind == "classification":
            return float(np.mean(pred == np.asarray(y)))
        return float(kendalltau(pred, y).statistic)


def hparam_columns(meta: Any, task: str, with_epoch: bool) -> list[str]:
    """The ``models`` columns ``hparams-gbm`` reads: grid axes that vary in ``meta``, minus the task's own."""
    cols = [c for c in GRID_AXES if c in meta.columns and c not in NOT_HYPERPARAMETERS
            and meta[c].nunique(dropna=False) > 1]
    if task.startswith("log_"):
        cols = [c for c in cols if c != task[4:]]
    if with_epoch and task != "epoch" and meta["epoch"].nunique() > 1:
        cols.append("epoch")
    return cols


class HparamsLearner:
    """``hparams-gbm``: gradient boosting on the spec's hyperparameters only (never the weights).

    Categorical axes (activation, optimizer, init) become ordinal codes of their sorted
    values, declared categorical to the GBM; missing values (``init_std`` of schemes that
    have none) stay NaN, which the GBM routes on its own.
    """

    def __init__(self, task: str = "test_acc", task_kind: str = "regression", augment: str = "none", seed: int = 0,
                 with_epoch: bool = True):
        self.task = task
        self.task_kind = task_kind
        self.augment = augment
        self.seed = seed
        self.with_epoch = with_epoch

    def _X(self, meta: Any) -> np.ndarray:
        cols = []
        for c in self.columns_:
            values = meta[c]
            if c in self.categories_:
                codes = {v: i for i, v in enumerate(self.categories_[c])}
                cols.append(np.array([codes.get(v, np.nan) for v in values], dtype=np.float64))
            else:
                cols.append(values.to_numpy(dtype=np.float64))
        return np.stack(cols, axis=1) if cols else np.zeros((len(meta), 0))

    def fit(self, data: WeightDataset, y: np.ndarray) -> HparamsLearner:
        from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

        if self.augment != "none":
            raise SkipLearner(f"hparams-gbm reads no weights, so augmentation {self.augment!r} does not apply (skipped)")
        meta = data.meta
        self.columns_ = hparam_columns(meta, self.task, self.with_epoch)
        if not self.columns_:
            raise SkipLearner("hparams-gbm: no hyperparameter varies across this zoo's training models (skipped)")
        self.categories_ = {c: sorted(meta[c].dropna().unique().tolist()) for c in self.columns_
                            if not is_numeric(meta[c])}
        cat = [c in self.categories_ for c in self.columns_]
        cls = HistGradientBoostingRegressor if self.task_kind == "regression" else HistGradientBoostingClassifier
        self.estimator_ = cls(max_iter=300, learning_rate=0.05, early_stopping=False, random_state=self.seed,
                              min_samples_leaf=gbm_min_leaf(len(meta)), categorical_features=cat if any(cat) else None)
        self.estimator_.fit(self._X(meta), np.asarray(y))
        self.n_features_in_ = len(self.columns_)
        return self

    def predict(self, data: WeightDataset) -> np.ndarray:
        return self.estimator_.predict(self._X(data.meta))

    def score(self, data: WeightDataset, y: np.ndarray) -> float:
        from scipy.stats import kendalltau

        pred = self.predict(data)
        if self.task_kind == "classification":
            return float(np.mean(pred == np.asarray(y)))
        return float(kendalltau(pred, y).statistic)
