"""MNIST-1D (Greydanus 2020), generated locally by the ``mnist1d`` package.

Only ``make_dataset(get_dataset_args())`` is used: ``get_dataset`` tries the network
first. ``make_dataset`` reseeds NumPy's and Python's global RNGs; we save and restore
both so loading this dataset never changes anyone else's random stream.
"""

from __future__ import annotations

import random

import numpy as np

from zoo.data import Dataset, register, standardise


def generate(num_samples: int = 5000, seed: int = 42) -> dict[str, np.ndarray]:
    """The package's dataset dict (``x``, ``y``, ``x_test``, ``y_test``), global RNGs untouched."""
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples, args.seed = int(num_samples), int(seed)
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        return make_dataset(args)
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)


@register("mnist1d")
def load_mnist1d(num_samples: int = 5000, seed: int = 42) -> Dataset:
    """MNIST-1D: 40-sample 1-D signals of 10 digit templates (4,000 / 1,000 by default).

    Split: the package's own (first 80 % train, after its seeded shuffle; ``seed`` 42 is
    its default). Normalisation: the package centres and scales all samples; we then
    standardise again by the train split's mean and std. Inputs are ``[N, 40]`` (MLPs).
    """
    d = generate(num_samples, seed)
    x_tr, x_te, norm = standardise(np.asarray(d["x"], np.float64), np.asarray(d["x_test"], np.float64))
    meta = {"source": "mnist1d.data.make_dataset(get_dataset_args())", "generator_seed": seed,
            "num_samples": num_samples, "split": "package split, train_split=0.8", "normalisation": norm}
    return Dataset("mnist1d", x_tr, np.asarray(d["y"], np.int64), x_te, np.asarray(d["y_test"], np.int64), 10, meta)
