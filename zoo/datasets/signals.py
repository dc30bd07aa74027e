"""Signal sets for INR zoos: the *samples* of a dataset as signals to fit (DESIGN §11).

An INR zoo fits one signal per model: an image (``digits`` 8×8, ``fashion-mnist`` 28×28)
or a 1-D signal (``mnist1d``, 40 samples). A signal is a function from coordinates to
values:

- **coordinates**: a regular grid on ``[-1, 1]`` per axis (``torch.linspace(-1, 1, n)``),
  row-major like the image (``[H·W, 2]`` as ``(row, column)``; ``[L, 1]`` for 1-D);
- **values** ``[n_coords, channels]``: the dataset's (standardised) inputs mapped linearly
  onto ``[-1, 1]`` by the **training split's** global minimum and maximum. For digits
  (pixels 0–16) and Fashion-MNIST (0–255) that is exactly ``2·pixel/max − 1``; MNIST-1D
  has no fixed range, so a few test values may fall slightly outside ``[-1, 1]``.

The dataset's own split decides a signal's split (digits: stratified 80/20, seed 0;
Fashion-MNIST: the official 60,000/10,000 files, optionally subsampled with
``dataset_options``; MNIST-1D: the package's split). A zoo chooses its signals with
``signals: {per_class: N, split: train | test | both, seed: S}``: per class and split, the
first ``N`` of that class's signals in a seeded order (``numpy.random.default_rng(S)``
permutation of the class's indices, ``S`` defaults to 0), so a larger ``N`` keeps every
signal a smaller one chose.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from zoo.enums import SIGNAL_DATASETS, SIGNAL_SPLITS
from zoo.errors import SpecError

__all__ = ["SIGNAL_DATASETS", "SIGNAL_SPLITS", "SignalSet", "grid_coords", "load_signal_set", "select_signals"]
#: Peak-to-peak range of signal values (``[-1, 1]``): PSNR = 10·log10(RANGE² / MSE).
VALUE_RANGE = 2.0


@dataclass(frozen=True)
class SignalSet:
    """Coordinates shared by every signal and the values of each split's signals.

    ``coords`` ``[n_coords, d]`` float32; ``values[split]`` ``[n, n_coords, channels]`` float32;
    ``labels[split]`` ``[n]`` int64 (the class of the sample the signal came from).
    """

    name: str
    coords: np.ndarray
    values: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]
    value_map: dict[str, float]
    input_shape: tuple[int, ...]  # the dataset's input shape ([C, H, W] or [L]; zoo.models.param_shapes takes it)

    @property
    def in_features(self) -> int:
        return int(self.coords.shape[1])

    @property
    def out_features(self) -> int:
        return int(self.values["train"].shape[2])

    @property
    def n_coords(self) -> int:
        return int(self.coords.shape[0])

    def signal(self, split: str, index: int) -> np.ndarray:
        """Values ``[n_coords, channels]`` of signal ``index`` of ``split``."""
        return self.values[split][index]


def grid_coords(shape: tuple[int, ...]) -> np.ndarray:
    """Row-major grid of ``shape`` on ``[-1, 1]^d`` as ``[prod(shape), d]`` float32."""
    import torch

    axes = [torch.linspace(-1.0, 1.0, n) for n in shape]
    mesh = torch.meshgrid(*axes, indexing="ij")
    return torch.stack([m.reshape(-1) for m in mesh], dim=1).numpy().astype(np.float32)


def _as_signals(x: np.ndarray) -> np.ndarray:
    """Dataset inputs ``[N, C, H, W]`` or ``[N, L]`` → ``[N, n_coords, C]``."""
    if x.ndim == 2:
        return x[:, :, None]
    if x.ndim == 4:
        n, c = x.shape[:2]
        return np.ascontiguousarray(x.reshape(n, c, -1).transpose(0, 2, 1))
    raise SpecError(f"inputs of shape {list(x.shape[1:])} are not images [C, H, W] or 1-D signals [L]")


def load_signal_set(name: str, options: Mapping[str, Any] | None = None) -> SignalSet:
    """The signals of dataset ``name`` (one of :data:`SIGNAL_DATASETS`), cached by :func:`zoo.data.load_dataset`."""
    from zoo.data import load_dataset

    if name not in SIGNAL_DATASETS:
        raise SpecError(f"dataset {name!r} is not a signal set; INR zoos fit {', '.join(SIGNAL_DATASETS)}")
    ds = load_dataset(name, dict(options) if options else None)
    x_tr, x_te = np.asarray(ds.x_train), np.asarray(ds.x_test)
    spatial = x_tr.shape[1:] if x_tr.ndim == 2 else x_tr.shape[2:]
    lo, hi = float(x_tr.min()), float(x_tr.max())
    scale = 2.0 / (hi - lo) if hi > lo else 1.0

    def mapped(x: np.ndarray) -> np.ndarray:
        return ((_as_signals(x).astype(np.float64) - lo) * scale - 1.0).astype(np.float32)

    return SignalSet(name, grid_coords(tuple(int(s) for s in spatial)),
                     {"train": mapped(x_tr), "test": mapped(x_te)},
                     {"train": np.asarray(ds.y_train, np.int64), "test": np.asarray(ds.y_test, np.int64)},
                     {"train_min": lo, "train_max": hi}, tuple(int(s) for s in x_tr.shape[1:]))


def splits_of(choice: str) -> tuple[str, ...]:
    """``'both'`` → ``('train', 'test')``; otherwise the split itself."""
    return ("train", "test") if choice == "both" else (choice,)


def select_signals(labels: Mapping[str, np.ndarray], per_class: int, split: str, seed: int = 0,
                   zoo: str = "?") -> list[tuple[str, int, int]]:
    """``[(split, index, class), …]``: per split and class, the first ``per_class`` indices of a seeded order.

    Raises :class:`SpecError` naming the zoo and ``signals.per_class`` when a class has fewer signals.
    """
    chosen: list[tuple[str, int, int]] = []
    for side in splits_of(split):
        y = np.asarray(labels[side])
        for c in np.unique(y):
            idx = np.flatnonzero(y == c)
            if per_class > len(idx):
                raise SpecError(f"zoo '{zoo}': field 'signals.per_class': {per_class} is more than the {len(idx)} "
                                f"{side} signals of class {int(c)}; use at most {int(min(np.bincount(y)[np.unique(y)]))}")
            order = idx[np.random.default_rng([int(seed), int(c)]).permutation(len(idx))]
            chosen += [(side, int(i), int(c)) for i in np.sort(order[:per_class])]
    return chosen

