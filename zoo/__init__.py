"""zoo: reproducible model-zoo datasets for weight-space learning and deep-learning theory."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
