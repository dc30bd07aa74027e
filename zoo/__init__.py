"""zoo: reproducible model-zoo datasets for weight-space learning and deep-learning theory."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "frame", "load_model", "open"]

_API = {"open", "frame", "load_model"}


def __getattr__(name: str):
    """``zoo.open`` / ``zoo.frame`` / ``zoo.load_model``, imported on first use so ``import zoo`` stays light."""
    if name in _API:
        from zoo import api

        return getattr(api, name)
    raise AttributeError(f"module 'zoo' has no attribute {name!r}")
