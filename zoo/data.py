"""Dataset registry: every dataset loads offline into tensors with a fixed, seeded split.

A loader returns a :class:`Dataset` whose inputs are float32 and already normalised with
statistics of the training split only. Loaders register themselves with
:func:`register`; ``known_datasets()`` lists them (the spec validator uses it).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from zoo.enums import LOCATION_OPTIONS
from zoo.errors import DataError

SPLIT_SEED = 0


@dataclass
class Dataset:
    """Train/test tensors of one dataset.

    ``x_*``: float32 arrays ``[N, *input_shape]``; ``y_*``: int64 class labels ``[N]``
    (``task == "classification"``) or float32 targets ``[N, n_classes]`` (``"regression"``,
    where ``n_classes`` is the number of outputs).
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int
    meta: dict[str, Any] = field(default_factory=dict)
    task: str = "classification"

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])


Loader = Callable[..., Dataset]
_REGISTRY: dict[str, Loader] = {}


def register(name: str) -> Callable[[Loader], Loader]:
    """Decorator: make ``loader(**options)`` available as dataset ``name``."""

    def deco(fn: Loader) -> Loader:
        _REGISTRY[name] = fn
        return fn

    return deco


def known_datasets() -> list[str]:
    """Names a zoo spec may use as ``dataset`` (equal to :data:`zoo.enums.DATASETS`, tested)."""
    return sorted(_REGISTRY)


def dataset_loader(name: str) -> Loader:
    """The registered loader of ``name`` (its keyword arguments are the dataset's options)."""
    if name not in _REGISTRY:
        raise DataError(f"unknown dataset {name!r}; choose one of {', '.join(known_datasets())}")
    return _REGISTRY[name]


def check_fraction(dataset: str, name: str, value: float) -> float:
    """``value`` if it lies strictly between 0 and 1 (both splits need examples), else :class:`DataError`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise DataError(f"dataset {dataset!r}: dataset_options.{name}={value!r} must lie strictly between 0 and 1 "
                        "(both splits need examples); e.g. 0.2")
    return float(value)


def check_labels(path: Any, labels: np.ndarray, n_classes: int, how_to: str, first: int = 0) -> np.ndarray:
    """``labels`` as int64 if each is an integer in ``first..first+n_classes-1``, else a one-line :class:`DataError`.

    ``path`` names the file the labels came from; ``how_to`` says how to get a good copy.
    ``first`` is the smallest label the file format uses (1 for SVHN's 1..10).
    """
    labels = np.asarray(labels)
    if labels.dtype.kind not in "iu":
        if labels.dtype.kind != "f" or not np.all(np.isfinite(labels)) or np.any(labels != np.round(labels)):
            raise DataError(f"{path}: labels are {labels.dtype} values, not integer class indices; "
                            f"fix the labels or {how_to}")
    last = first + n_classes - 1
    bad = (labels < first) | (labels > last)
    if bad.any():
        example = labels[bad].flat[0].item()
        raise DataError(f"{path}: {int(bad.sum())} of {labels.size} labels lie outside {first}..{last} "
                        f"(e.g. {example!r}), so this is not a {n_classes}-class label file or it is corrupt; "
                        f"fix the labels or {how_to}")
    return labels.astype(np.int64)


_CACHE: dict[str, Dataset] = {}


def load_dataset(name: str, options: dict[str, Any] | None = None) -> Dataset:
    """Load dataset ``name`` (cached per process)."""
    from zoo.hashing import canonical_json

    key = canonical_json([name, options or {}])
    if key not in _CACHE:
        loader = dataset_loader(name)
        takes = inspect.signature(loader).parameters
        # where files live means nothing to a dataset without files (digits, generated data)
        kwargs = {k: v for k, v in (options or {}).items() if k in takes or k not in LOCATION_OPTIONS}
        try:
            _CACHE[key] = loader(**kwargs)
        except TypeError as exc:
            raise DataError(f"dataset {name!r}: bad dataset_options {options!r} ({exc})") from None
    return _CACHE[key]


def stratified_split(y: np.ndarray, test_fraction: float, seed: int = SPLIT_SEED) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a seeded, class-stratified train/test split (sorted)."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        rng.shuffle(idx)
        n_test = int(round(len(idx) * test_fraction))
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def standardise(x_train: np.ndarray, x_test: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    """Scale both splits by the training split's global mean and std (one scalar each)."""
    mean = float(x_train.mean())
    std = float(x_train.std()) or 1.0
    return ((x_train - mean) / std).astype(np.float32), ((x_test - mean) / std).astype(np.float32), {"mean": mean, "std": std}


def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """``(images [1797, 8, 8], target [1797])`` exactly as ``sklearn.datasets.load_digits`` returns them.

    Read from the CSV scikit-learn ships (``datasets/data/digits.csv.gz``, parsed as its
    loader parses it) without importing scikit-learn, whose import costs ~1 CPU-s in every
    job that loads digits (train, landscape, merging); where the file is not found (another
    scikit-learn layout), scikit-learn's own loader runs.
    """
    import gzip
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("sklearn")
    candidates = [Path(loc) / "datasets" / "data" / "digits.csv.gz" for loc in (spec.submodule_search_locations or [])] \
        if spec else []
    csv = next((path for path in candidates if path.is_file()), None)
    if csv is None:
        from sklearn.datasets import load_digits as sk_digits

        bunch = sk_digits()
        return bunch.images, bunch.target
    with gzip.open(csv, "rt") as fh:
        data = np.loadtxt(fh, delimiter=",")
    return data[:, :-1].reshape(-1, 8, 8), data[:, -1].astype(int, copy=False)


@register("digits")
def load_digits(test_fraction: float = 0.2, flatten: bool = False) -> Dataset:
    """scikit-learn's bundled 8×8 handwritten digits (1,797 images, 10 classes).

    Split: stratified, seed 0, ``test_fraction`` held out (360 test images by default).
    Normalisation: pixel values 0–16 standardised by the train split's mean and std.
    Inputs are ``[N, 1, 8, 8]`` (MLPs flatten them).
    """
    test_fraction = check_fraction("digits", "test_fraction", test_fraction)
    images, target = digits_arrays()
    x = images.astype(np.float64)[:, None, :, :]
    y = target.astype(np.int64)
    tr, te = stratified_split(y, test_fraction)
    x_tr, x_te, norm = standardise(x[tr], x[te])
    if flatten:
        x_tr, x_te = x_tr.reshape(len(tr), -1), x_te.reshape(len(te), -1)
    meta = {"source": "sklearn.datasets.load_digits", "split_seed": SPLIT_SEED,
            "test_fraction": test_fraction, "normalisation": norm}
    return Dataset("digits", x_tr, y[tr], x_te, y[te], 10, meta)


# The other loaders live in zoo/datasets/ (one module per source) and register on import.
from zoo import datasets as _datasets  # noqa: E402,F401
