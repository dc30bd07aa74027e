"""SVHN cropped digits in their standard Matlab layout (``train_32x32.mat``, ``test_32x32.mat``).

Each file holds ``X`` (uint8 ``[32, 32, 3, N]``) and ``y`` (``[N, 1]``, digits 1–9 and
10 for the digit 0, which we map to label 0). Read with ``scipy.io.loadmat``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from zoo.data import Dataset, check_labels, register
from zoo.datasets.files import candidate_dirs, locate
from zoo.datasets.images import image_dataset
from zoo.errors import DataError
from zoo.hashing import file_sha256

HOW_TO = ("download train_32x32.mat and test_32x32.mat from http://ufldl.stanford.edu/housenumbers/ into "
          "data/raw/svhn/ or point dataset_options.data_root at them")


def read_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(images [N, 3, 32, 32] uint8, labels [N] int64 in 0..9)`` of one SVHN .mat file."""
    from scipy.io import loadmat

    try:
        d = loadmat(path)
        x, y = np.asarray(d["X"]), np.asarray(d["y"]).reshape(-1)
    except (ValueError, KeyError, OSError, TypeError) as exc:
        raise DataError(f"{path}: not an SVHN .mat file ({type(exc).__name__}: {exc}); {HOW_TO}") from None
    if x.ndim != 4 or x.shape[2] != 3 or x.shape[3] != len(y):
        raise DataError(f"{path}: X {x.shape} / y {y.shape} are not SVHN's [32, 32, 3, N] / [N, 1]; {HOW_TO}")
    if x.dtype != np.uint8:
        raise DataError(f"{path}: X holds {x.dtype} values, not SVHN's uint8 pixels; {HOW_TO}")
    # SVHN writes the digit 0 as label 10, so its labels are 1..10 (a 0 means a foreign file).
    y = check_labels(path, y, 10, HOW_TO, first=1)
    return np.ascontiguousarray(x.transpose(3, 2, 0, 1)), np.where(y == 10, 0, y)


@register("svhn")
def load_svhn(data_root: str | None = None, n_train: int | None = None, n_test: int | None = None,
              grayscale: bool = False, image_size: int | None = None, flatten: bool = False) -> Dataset:
    """SVHN (32×32 RGB house-number digits, 73,257 / 26,032 official split, 10 classes).

    Options and normalisation as :func:`zoo.datasets.cifar.load_cifar10` (per-channel).
    """
    names = {"train": ("train_32x32.mat",), "test": ("test_32x32.mat",)}
    paths = locate("svhn", names, candidate_dirs("svhn", data_root, ("svhn", "SVHN")), HOW_TO)
    x_tr, y_tr = read_mat(paths["train"])
    x_te, y_te = read_mat(paths["test"])
    meta = {"source": "SVHN cropped digits .mat", "label_map": "10 -> 0",
            "files": {k: file_sha256(p) for k, p in paths.items()}}
    return image_dataset("svhn", x_tr, y_tr, x_te, y_te, 10, meta, n_train=n_train, n_test=n_test,
                         grayscale=grayscale, image_size=image_size, per_channel=True, flatten=flatten)
