"""Checks of a zoo config that JSON schema cannot express, each bounded in time and memory.

Run on the parsed config *before* anything walks it deeply or expands it:

- :func:`check_tree`: the document is a tree of plain JSON values (no shared nodes, as a
  YAML alias would make; bounded size and depth), every float is finite (JSON-schema
  ``minimum`` lets NaN through) and every integer fits the int64 columns it lands in;
- :func:`numeric_string_hint`: the fix for ``'1e-3'`` arriving as a string;
- :func:`check_learn`: the ``learn:`` block names zoos, phase labels and augment chains that exist;
- :func:`check_dataset_options`: the options a dataset's loader accepts, with ranges;
- :func:`count_models`: a zoo's model count by arithmetic, before any list is built.

Errors are one-line :class:`~zoo.errors.SpecError` naming the file or zoo, the field and the fix.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping
from typing import Any

from zoo.enums import DISTRIBUTIONS, LOCATION_OPTIONS, PHASE_LABELS, SPACINGS
from zoo.errors import SpecError

#: Most values (containers and leaves) a config may hold; a spec has hundreds.
MAX_NODES = 1_000_000
#: Deepest nesting a config may have.
MAX_DEPTH = 32
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
#: logspace exponents beyond this overflow (10**309) or underflow a float64.
MAX_LOG10 = 300


def _dotted(path: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in path) or "(top level)"


def looks_numeric(value: Any) -> bool:
    """Whether a string would be a number if it were not quoted (``'1e-3'``, ``'0.5'``, ``'10'``)."""
    if not isinstance(value, str):
        return False
    try:
        float(value.replace("_", ""))
    except ValueError:
        return False
    return value.strip().lower() not in ("nan", "inf", "+inf", "-inf", "infinity", "-infinity", "+infinity")


def numeric_string_hint(value: Any) -> str:
    """The fix for a string that reached a numeric field."""
    plain = value.strip()
    mantissa, _, exponent = plain.lower().partition("e")
    suggestion = f"{mantissa if '.' in mantissa else mantissa + '.0'}e{exponent}" if exponent else plain
    return f"{value!r} is a string; write {suggestion} without quotes (a plain number)"


def check_tree(config: Any, source: str = "config") -> None:
    """Refuse non-JSON values, NaN/inf and integers beyond int64.

    Iterative and bounded: at most :data:`MAX_NODES` values and :data:`MAX_DEPTH` levels are
    visited, so a hostile document costs at most that much time, whatever its shape. A node
    shared by several parents (a YAML alias that got past the loader, or a Python dict used
    twice) counts once per appearance, so an alias bomb meets the bound at once while an
    honest shared value passes.
    """
    stack: list[tuple[tuple[Any, ...], Any]] = [((), config)]
    visited = 0
    while stack:
        path, value = stack.pop()
        visited += 1
        if visited > MAX_NODES:
            raise SpecError(f"{source}: more than {MAX_NODES:,} values; a zoo spec is far smaller, "
                            "describe large grids with logspace/linspace or seeds: N")
        where = f"{source}: field '{_dotted(path)}'"
        if isinstance(value, (dict, list)):
            if len(path) >= MAX_DEPTH:
                raise SpecError(f"{where}: nested more than {MAX_DEPTH} levels deep; flatten it")
            if isinstance(value, dict):
                for key, item in value.items():
                    if not isinstance(key, str):
                        raise SpecError(f"{where}: key {key!r} is a {type(key).__name__}; keys must be strings, quote it")
                    stack.append(((*path, key), item))
            else:
                stack.extend(((*path, i), item) for i, item in enumerate(value))
        elif isinstance(value, bool) or value is None or isinstance(value, str):
            continue
        elif isinstance(value, int):
            if not INT64_MIN <= value <= INT64_MAX:
                raise SpecError(f"{where}: {value} does not fit a 64-bit integer (tables store int64); "
                                f"use a value in 0..{INT64_MAX}")
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise SpecError(f"{where}: {value} is not a finite number; write a finite value")
        else:
            raise SpecError(f"{where}: {type(value).__name__} values are not allowed (only strings, numbers, "
                            "booleans, lists and mappings); quote it to make it a string")


def check_learn(config: Mapping[str, Any], source: str = "config") -> None:
    """Cross-field checks of ``learn:``: known zoos, one MixUp per chain, real phase labels."""
    learn = config.get("learn") or {}
    zoos = sorted(config.get("zoos") or {})
    for name in learn.get("zoos", []):
        if name not in zoos:
            raise SpecError(f"{source}: field 'learn.zoos': unknown zoo {name!r}; known zoos: {', '.join(zoos)}")
    for chain in learn.get("augments", []):
        parts = chain.split("+")
        if sum(p.startswith("mixup") for p in parts) > 1:
            raise SpecError(f"{source}: field 'learn.augments': {chain!r} has more than one MixUp variant; keep one")
        if len(set(parts)) != len(parts):
            raise SpecError(f"{source}: field 'learn.augments': {chain!r} repeats an augmentation; list each once")
    split = str(learn.get("split", "model"))
    if split.startswith("phase:") and split[6:] not in PHASE_LABELS:
        raise SpecError(f"{source}: field 'learn.split': {split[6:]!r} is no phase label; "
                        f"choose one of {', '.join(PHASE_LABELS)}")


# ---------------------------------------------------------------------------- dataset options
def _fraction_open(v: Any) -> str | None:
    return None if _is_number(v) and 0 < v < 1 else "must lie strictly between 0 and 1 (both splits need examples)"


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _int_in(lo: int, hi: int) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        ok = isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi
        return None if ok else f"must be an integer in {lo:,}..{hi:,}"

    return check


def _bool(v: Any) -> str | None:
    return None if isinstance(v, bool) else "must be true or false"


def _str(v: Any) -> str | None:
    return None if isinstance(v, str) and v else "must be a non-empty path"


def _non_negative(v: Any) -> str | None:
    return None if _is_number(v) and v >= 0 else "must be a number >= 0"


#: Checks of dataset options by name (the loaders' keyword arguments). An option a loader
#: does not take is refused separately, naming the ones it does take.
OPTION_CHECKS: dict[str, Callable[[Any], str | None]] = {
    "test_fraction": _fraction_open,
    "n_train": _int_in(1, 10_000_000),
    "n_test": _int_in(1, 10_000_000),
    "image_size": _int_in(1, 1024),
    "grayscale": _bool,
    "flatten": _bool,
    "data_root": _str,
    "num_samples": _int_in(20, 10_000_000),
    "seed": _int_in(0, INT64_MAX),
    "dim": _int_in(1, 1_000_000),
    "hidden": _int_in(1, 1_000_000),
    "noise": _non_negative,
}


def check_dataset_options(zoo: str, dataset: str, options: Mapping[str, Any], loader: Callable[..., Any]) -> None:
    """Options the dataset's loader takes, each within its range (see :data:`OPTION_CHECKS`).

    Location options (``data_root``) are accepted for every dataset; those without files ignore them.
    """
    params = inspect.signature(loader).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    accepted = [n for n, p in params.items() if p.kind is not inspect.Parameter.VAR_KEYWORD]
    for key, value in options.items():
        where = f"zoo '{zoo}': field 'dataset_options.{key}'"
        if key not in params and not takes_any and key not in LOCATION_OPTIONS:
            raise SpecError(f"{where}: dataset {dataset!r} takes no option {key!r}; "
                            f"its options: {', '.join(accepted) or '(none)'}")
        check = OPTION_CHECKS.get(key)
        problem = check(value) if check else None
        if problem:
            detail = numeric_string_hint(value) if looks_numeric(value) else f"{value!r} {problem}"
            raise SpecError(f"{where}: {detail}")


# ---------------------------------------------------------------------------- model count
def axis_length(zoo: str, key: str, values: Any) -> int:
    """Number of values of one non-sampled grid axis, without building it."""
    if isinstance(values, list):
        return len(values)
    kind, args = next(iter(values.items()))
    if kind not in SPACINGS:  # pragma: no cover - distributions are counted by sample
        raise ValueError(kind)
    a, b, n = args
    if kind == "logspace" and max(abs(a), abs(b)) > MAX_LOG10:
        raise SpecError(f"zoo '{zoo}': field 'grid.{key}.logspace': exponent {max(a, b, key=abs)} is beyond "
                        f"±{MAX_LOG10} (10**{max(a, b, key=abs)} overflows a float); give exponents, e.g. [-4, 0, {n}]")
    return int(n)


def is_distribution(values: Any) -> bool:
    """Whether a grid axis is a distribution to sample from (``{uniform: [a, b]}`` etc.)."""
    return isinstance(values, dict) and next(iter(values), None) in DISTRIBUTIONS


def count_models(zoo: str, raw: Mapping[str, Any]) -> int:
    """Models a zoo expands to at most: ∏ axis lengths × sample draws × seeds (duplicates not removed).

    Pure arithmetic on a schema-valid spec: no list is built, so a ``seeds: 10**9`` or a
    logspace of 10**8 values costs nothing to refuse.
    """
    n_axes = 1
    for key, values in raw["grid"].items():
        if not is_distribution(values):
            n_axes *= axis_length(zoo, key, values)
    sample = raw.get("sample")
    draws = 1 if sample is None else (sample if isinstance(sample, int) else sample["n"])
    seeds = raw["seeds"] if isinstance(raw["seeds"], int) else len(raw["seeds"])
    return n_axes * draws * seeds


__all__ = [
    "OPTION_CHECKS",
    "axis_length",
    "check_dataset_options",
    "check_learn",
    "check_tree",
    "count_models",
    "is_distribution",
    "looks_numeric",
    "numeric_string_hint",
]
