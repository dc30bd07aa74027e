"""Dataset loaders, one module per source. Importing this package registers them all.

``zoo.data`` is the registry front (``Dataset``, ``register``, ``load_dataset``); it
imports this package at its end so every loader below is known to the spec validator.
"""

from zoo.datasets import cifar, idx, mnist1d, regression, svhn, tabular  # noqa: F401
