"""zoo: reproducible model-zoo datasets for weight-space learning and deep-learning theory."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["WeightDataset", "__version__", "frame", "load_model", "load_models", "load_weights", "open"]

_API = {"open", "frame", "load_model", "load_models", "load_weights"}


def __getattr__(name: str):
    """``zoo.open`` / ``frame`` / ``load_model`` / ``load_models`` / ``load_weights`` / ``WeightDataset``, imported on first use
    so ``import zoo`` stays light."""
    if name in _API:
        from zoo import api

        return getattr(api, name)
    if name == "WeightDataset":
        from zoo.learners.dataset import WeightDataset

        return WeightDataset
    raise AttributeError(f"module 'zoo' has no attribute {name!r}")
