"""Builds the one C extension, zoo._fused (one-pass SGD/Adam kernels); everything else is in pyproject.toml.

The extension is optional: without a C compiler the install still succeeds and
zoo.optim uses its torch passes, which give the same bits (tests/test_fast_paths.py).
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension(
    "zoo._fused", ["zoo/_fused.c"],
    # no fused multiply-adds beyond the explicit fmaf calls: the kernels must round as torch does
    extra_compile_args=["-O3", "-ffp-contract=off", "-fno-math-errno", "-std=c11"],
    optional=True,
)])
