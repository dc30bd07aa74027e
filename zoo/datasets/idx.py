"""The MNIST family in IDX format: MNIST, Fashion-MNIST, KMNIST (original files, NumPy only).

Each folder holds ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte`` (optionally ``.gz``), as
published. The official 60,000/10,000 split is kept; ``n_train``/``n_test`` take seeded
stratified subsamples so zoos stay small.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from zoo.data import Dataset, check_labels, register
from zoo.datasets.files import candidate_dirs, locate, read_idx
from zoo.datasets.images import image_dataset
from zoo.errors import DataError
from zoo.hashing import file_sha256

N_CLASSES = 10

FILES = {
    "train_images": "train-images-idx3-ubyte", "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte", "test_labels": "t10k-labels-idx1-ubyte",
}

SOURCES = {
    "mnist": {"subdirs": ("mnist", "MNIST/raw", "mnist/raw"), "system": (),
              "how_to": "download the four IDX .gz files from https://yann.lecun.com/exdb/mnist/ (or a mirror) "
                        "into data/raw/mnist/ or point dataset_options.data_root at them"},
    "fashion-mnist": {"subdirs": ("fashion-mnist", "FashionMNIST/raw", "fashion-mnist/raw"),
                      "system": ("/usr/share/datasets/fashion-mnist",),
                      "how_to": "run 'apt-get install dataset-fashion-mnist' (Debian/Ubuntu, installs "
                                "/usr/share/datasets/fashion-mnist/) or put the four IDX .gz files from "
                                "https://github.com/zalandoresearch/fashion-mnist into data/raw/fashion-mnist/ "
                                "or dataset_options.data_root"},
    "kmnist": {"subdirs": ("kmnist", "KMNIST/raw", "kmnist/raw"), "system": (),
               "how_to": "download the four KMNIST IDX .gz files from https://github.com/rois-codh/kmnist "
                         "into data/raw/kmnist/ or point dataset_options.data_root at them"},
}


def read_idx_split(dataset: str, data_root: str | Path | None = None) -> tuple[np.ndarray, ...]:
    """``(x_train [N,1,28,28] uint8, y_train, x_test, y_test, paths)`` of one MNIST-family dataset."""
    src = SOURCES[dataset]
    names = {k: (f"{v}.gz", v) for k, v in FILES.items()}
    paths = locate(dataset, names, candidate_dirs(dataset, data_root, src["subdirs"], src["system"]), src["how_to"])
    arrays = {k: read_idx(p) for k, p in paths.items()}
    for split in ("train", "test"):
        xi, yl = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if xi.ndim != 3 or yl.ndim != 1 or len(xi) != len(yl):
            raise DataError(f"{paths[f'{split}_images']}: images {xi.shape} and labels {yl.shape} do not match; "
                            "check that the files belong together")
        arrays[f"{split}_labels"] = check_labels(paths[f"{split}_labels"], yl, N_CLASSES, src["how_to"])
    return (arrays["train_images"][:, None], arrays["train_labels"],
            arrays["test_images"][:, None], arrays["test_labels"], paths)


def _loader(dataset: str):
    def load(data_root: str | None = None, n_train: int | None = None, n_test: int | None = None,
             image_size: int | None = None, grayscale: bool = False, flatten: bool = False) -> Dataset:
        x_tr, y_tr, x_te, y_te, paths = read_idx_split(dataset, data_root)
        meta = {"source": f"{dataset} IDX files", "files": {k: file_sha256(p) for k, p in paths.items()}}
        return image_dataset(dataset, x_tr, y_tr, x_te, y_te, N_CLASSES, meta, n_train=n_train, n_test=n_test,
                             grayscale=grayscale, image_size=image_size, flatten=flatten)

    load.__doc__ = (f"{dataset} (28×28 grayscale, 10 classes) from the original IDX files.\n\n"
                    "Split: the official train/test files; ``n_train``/``n_test`` subsample them (stratified,\n"
                    "seed 0). Normalisation: pixels/255 standardised by the train split's mean and std.\n"
                    "Inputs are ``[N, 1, S, S]`` with ``S = image_size or 28``.")
    return load


for _name in SOURCES:
    register(_name)(_loader(_name))
