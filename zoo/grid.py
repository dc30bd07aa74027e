"""Grid axes of a zoo spec: closed-form spacings, sampled distributions, and the check of every value.

An axis is a list, ``{logspace: [a, b, n]}`` (10**a … 10**b), ``{linspace: [a, b, n]}``, or
a distribution (``uniform`` / ``loguniform`` / ``randint`` / ``choice``) drawn ``sample``
times. Values are rounded to 12 significant digits so model ids are stable across platforms.
How many models a grid makes is counted without building it (:func:`zoo.spec_checks.count_models`).
"""

from __future__ import annotations

import math
from typing import Any

from zoo import enums
from zoo.enums import INIT_SCHEMES
from zoo.errors import SpecError
from zoo.spec_checks import looks_numeric, numeric_string_hint

#: Integer architecture and batch sizes: the upper bounds the schema also states. Whether a
#: value within them fits in memory is checked per population (zoo.resources).
INT_LIMITS: dict[str, int] = {"width": 2**24, "channels": 2**24, "depth": 1000, "kernel": 1024,
                              "stride": 1024, "heads": 4096, "batch_size": 2**24}


def grid_values(spec: Any) -> list[Any]:
    """Expand one grid axis: a list, ``{logspace: [a, b, n]}`` (10**a … 10**b) or ``{linspace: …}``."""
    if isinstance(spec, list):
        return list(spec)
    kind, (a, b, n) = next(iter(spec.items()))
    steps = [a + (b - a) * i / (n - 1) if n > 1 else a for i in range(n)]
    try:
        values = [10.0**s for s in steps] if kind == "logspace" else steps
    except OverflowError:
        raise SpecError(f"{kind} [{a}, {b}, {n}]: 10**{max(a, b)} overflows a float; give exponents within ±300") from None
    # 12 significant digits: stable across platforms, so model ids are too.
    return [float(f"{v:.12g}") for v in values]


def check_value(zoo: str, key: str, value: Any) -> Any:
    """One grid value of axis ``key`` of zoo ``zoo``, checked (and ints/floats normalised); else SpecError."""
    where = f"zoo '{zoo}': field 'grid.{key}'"
    if key in INT_LIMITS:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if looks_numeric(value):
            raise SpecError(f"{where}: {numeric_string_hint(value)}")
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise SpecError(f"{where}: {value!r} must be a positive integer")
        if value > INT_LIMITS[key]:
            raise SpecError(f"{where}: {value:,} is above the limit {INT_LIMITS[key]:,}; use a smaller {key}")
    elif key in ("activation", "optimizer", "init"):
        allowed = {"activation": enums.ACTIVATIONS, "optimizer": enums.OPTIMIZERS, "init": INIT_SCHEMES}[key]
        if value not in allowed:
            raise SpecError(f"{where}: {value!r} is not allowed; choose one of {', '.join(allowed)}")
    else:
        if looks_numeric(value):
            raise SpecError(f"{where}: {numeric_string_hint(value)}")
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            raise SpecError(f"{where}: {value!r} must be a finite number")
        value = float(value)
        if key == "lr" and value <= 0:
            raise SpecError(f"{where}: learning rate {value} must be > 0")
        if key in ("momentum",) and not 0 <= value <= 1:
            raise SpecError(f"{where}: momentum {value} must lie in [0, 1]")
        if key == "weight_decay" and value < 0:
            raise SpecError(f"{where}: weight decay {value} must be >= 0")
        if key == "train_fraction" and not 0 < value <= 1:
            raise SpecError(f"{where}: train fraction {value} must lie in (0, 1]")
        if key in ("label_noise", "dropout") and not 0 <= value < 1:
            raise SpecError(f"{where}: {key} {value} must lie in [0, 1)")
        if key == "init_std" and value <= 0:
            raise SpecError(f"{where}: init_std {value} must be > 0")
    return value


def sample_draws(zoo: str, sample: Any, dists: dict[str, Any]) -> list[dict[str, Any]]:
    """``n`` random hyperparameter combinations from the distribution axes (Small CNN Zoo style).

    ``sample`` is ``n`` or ``{n, seed}`` (seed 0 by default). Axes are drawn in sorted key
    order from one generator seeded by the sample seed, so the draws depend only on the
    spec. ``uniform: [a, b]`` / ``loguniform: [a, b]`` (log-uniform between the values a
    and b > 0) / ``randint: [a, b]`` (inclusive) / ``choice: [v, …]`` (equal chances).
    Floats are rounded to 12 significant digits, as grid values are.
    """
    import numpy as np

    from zoo.hashing import derive_seed

    if sample is None:
        if dists:
            key = next(iter(dists))
            raise SpecError(f"zoo '{zoo}': field 'grid.{key}' is a distribution; add 'sample: N' to draw N values")
        return [{}]
    if not dists:
        raise SpecError(f"zoo '{zoo}': field 'sample' needs at least one distribution axis in grid "
                        "(e.g. lr: {loguniform: [1.0e-4, 1.0e-1]})")
    n, seed = (sample, 0) if isinstance(sample, int) else (sample["n"], sample.get("seed", 0))
    for key, dist in dists.items():
        kind, args = next(iter(dist.items()))
        if kind == "choice":
            for v in args:
                check_value(zoo, key, v)
            continue
        a, b = args
        if a > b:
            raise SpecError(f"zoo '{zoo}': field 'grid.{key}.{kind}': lower bound {a} > upper bound {b}; swap them")
        if kind == "loguniform" and a <= 0:
            raise SpecError(f"zoo '{zoo}': field 'grid.{key}.loguniform': bounds must be > 0, got {a}")
        check_value(zoo, key, a)
        check_value(zoo, key, b)
    rng = np.random.default_rng(derive_seed("sample", int(seed)))
    draws = []
    for _ in range(n):
        draw: dict[str, Any] = {}
        for key in sorted(dists):
            kind, args = next(iter(dists[key].items()))
            if kind == "choice":
                value = args[int(rng.integers(len(args)))]
            elif kind == "randint":
                value = int(rng.integers(int(args[0]), int(args[1]) + 1))
            elif kind == "uniform":
                value = float(f"{rng.uniform(args[0], args[1]):.12g}")
            else:
                value = float(f"{math.exp(rng.uniform(math.log(args[0]), math.log(args[1]))):.12g}")
            draw[key] = check_value(zoo, key, value)
        draws.append(draw)
    return draws


__all__ = ["INT_LIMITS", "check_value", "grid_values", "sample_draws"]
