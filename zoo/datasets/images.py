"""Shared steps for image datasets: seeded stratified subsampling, grayscale, resizing, normalisation.

Order: subsample (indices) → scale uint8 pixels to [0, 1] → grayscale → resize →
standardise with statistics of the (subsampled) training split only.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from zoo.data import SPLIT_SEED, Dataset
from zoo.errors import DataError

#: ITU-R BT.601 luma weights, as ``tf.image.rgb_to_grayscale`` (CIFAR-10-GS of the Small CNN Zoo).
LUMA = (0.299, 0.587, 0.114)


def stratified_subset(y: np.ndarray, n: int | None, seed: int = SPLIT_SEED) -> np.ndarray:
    """Sorted indices of ``n`` examples drawn per class in proportion to the class sizes.

    Per-class quotas are ``floor(n · share)`` plus one for the classes with the largest
    remainders, so the total is exactly ``n``. ``None`` (or ``n ≥ len(y)``) keeps all.
    """
    if n is None or n >= len(y):
        return np.arange(len(y))
    if n < 1:
        raise DataError(f"subsample size {n} must be >= 1; set n_train/n_test to a positive integer")
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(y, return_counts=True)
    exact = n * counts / len(y)
    quota = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - quota), kind="stable")[: n - quota.sum()]:
        quota[i] += 1
    picks = [rng.permutation(np.flatnonzero(y == c))[:q] for c, q in zip(classes, quota)]
    return np.sort(np.concatenate(picks))


def to_grayscale(x: np.ndarray) -> np.ndarray:
    """``[N, 3, H, W]`` → ``[N, 1, H, W]`` by BT.601 luma; 1-channel input passes through."""
    if x.shape[1] == 1:
        return x
    w = np.asarray(LUMA, dtype=x.dtype).reshape(1, 3, 1, 1)
    return (x * w).sum(axis=1, keepdims=True)


def resize(x: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize (antialiased when shrinking) of ``[N, C, H, W]`` to ``size × size``."""
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    import torch
    import torch.nn.functional as F

    out = F.interpolate(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), size=(size, size),
                        mode="bilinear", align_corners=False, antialias=size < max(x.shape[-2:]))
    return out.numpy()


def image_dataset(name: str, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
                  n_classes: int, meta: dict[str, Any], *, n_train: int | None = None, n_test: int | None = None,
                  grayscale: bool = False, image_size: int | None = None, per_channel: bool = False,
                  flatten: bool = False) -> Dataset:
    """Build a :class:`Dataset` from uint8 images ``[N, C, H, W]`` and int labels.

    Normalisation: pixels / 255, then minus mean, divided by std of the training split
    (one scalar, or one per channel with ``per_channel``). Both are recorded in ``meta``.
    """
    if image_size is not None and (not isinstance(image_size, int) or image_size < 1):
        raise DataError(f"dataset {name!r}: dataset_options.image_size={image_size!r} must be a positive integer")
    tr, te = stratified_subset(y_train, n_train), stratified_subset(y_test, n_test)
    xs = []
    for x, idx in ((x_train, tr), (x_test, te)):
        v = x[idx].astype(np.float32) / 255.0
        if grayscale:
            v = to_grayscale(v)
        if image_size is not None:
            v = resize(v, image_size)
        xs.append(v)
    axes = (0, 2, 3) if per_channel else None
    mean = xs[0].mean(axis=axes, dtype=np.float64, keepdims=per_channel)
    std = xs[0].std(axis=axes, dtype=np.float64, keepdims=per_channel)
    std = np.where(std > 0, std, 1.0)
    x_tr, x_te = (((v - mean) / std).astype(np.float32) for v in xs)
    if flatten:
        x_tr, x_te = x_tr.reshape(len(x_tr), -1), x_te.reshape(len(x_te), -1)
    norm = {"pixels": "uint8 / 255", "mean": np.ravel(mean).tolist(), "std": np.ravel(std).tolist(),
            "statistics": "training split, " + ("per channel" if per_channel else "all pixels")}
    meta = {**meta, "split": "official train/test files", "subsample_seed": SPLIT_SEED,
            "n_train": len(tr), "n_test": len(te), "grayscale": grayscale, "image_size": image_size,
            "normalisation": norm}
    return Dataset(name, x_tr, y_train[tr].astype(np.int64), x_te, y_test[te].astype(np.int64), n_classes, meta)
