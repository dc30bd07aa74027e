"""CIFAR-10 in its standard Python layout (``cifar-10-batches-py``: pickled batches).

Files: ``data_batch_1`` … ``data_batch_5`` (10,000 images each) and ``test_batch``; each
unpickles to a dict with ``data`` (uint8 ``[10000, 3072]``, channel-major 3×32×32) and
``labels``. Only open files you trust: the format is Python pickle.
``grayscale=True, image_size=32`` gives the Small CNN Zoo's CIFAR-10-GS.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np

from zoo.data import Dataset, check_labels, register
from zoo.datasets.files import candidate_dirs, locate
from zoo.datasets.images import image_dataset
from zoo.errors import DataError
from zoo.hashing import file_sha256

BATCHES = [f"data_batch_{i}" for i in range(1, 6)]
N_CLASSES = 10
HOW_TO = ("download cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html, unpack it into "
          "data/raw/ (giving data/raw/cifar-10-batches-py/) or point dataset_options.data_root at it")


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(images [N, 3, 32, 32] uint8, labels [N] int64)`` of one pickled CIFAR batch."""
    try:
        with open(path, "rb") as fh:
            d: dict[Any, Any] = pickle.load(fh, encoding="bytes")
        d = {(k.decode() if isinstance(k, bytes) else k): v for k, v in d.items()}
        data = np.asarray(d["data"])
        labels = np.asarray(d["labels"])
    except (pickle.UnpicklingError, EOFError, KeyError, AttributeError, ValueError, TypeError) as exc:
        raise DataError(f"{path}: not a CIFAR-10 python batch ({type(exc).__name__}: {exc}); {HOW_TO}") from None
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or labels.shape != (len(data),):
        raise DataError(f"{path}: data {data.dtype}{list(data.shape)} / labels {list(labels.shape)} are not a "
                        f"CIFAR-10 batch (uint8 [N, 3072] and N labels); {HOW_TO}")
    return data.reshape(-1, 3, 32, 32), check_labels(path, labels, N_CLASSES, HOW_TO)


@register("cifar10")
def load_cifar10(data_root: str | None = None, n_train: int | None = None, n_test: int | None = None,
                 grayscale: bool = False, image_size: int | None = None, flatten: bool = False) -> Dataset:
    """CIFAR-10 (32×32 RGB, 10 classes, 50,000 / 10,000 official split).

    ``n_train``/``n_test``: stratified subsamples (seed 0). ``grayscale``: BT.601 luma, one
    channel. ``image_size``: bilinear resize. Normalisation: pixels/255, then per-channel
    mean and std of the training split. Inputs are ``[N, C, S, S]``.
    """
    names = {b: (b,) for b in [*BATCHES, "test_batch"]}
    dirs = candidate_dirs("cifar10", data_root, ("cifar-10-batches-py", "cifar10", "cifar10/cifar-10-batches-py"))
    paths = locate("cifar10", names, dirs, HOW_TO)
    parts = [read_batch(paths[b]) for b in BATCHES]
    x_tr, y_tr = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    x_te, y_te = read_batch(paths["test_batch"])
    meta = {"source": "CIFAR-10 python batches", "files": {k: file_sha256(p) for k, p in paths.items()}}
    return image_dataset("cifar10", x_tr, y_tr, x_te, y_te, N_CLASSES, meta, n_train=n_train, n_test=n_test,
                         grayscale=grayscale, image_size=image_size, per_channel=True, flatten=flatten)
