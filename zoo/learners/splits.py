"""Splits by model: every checkpoint of a model lies on one side (train, val or test).

Two protocols (the ``protocol`` column of ``results``; DESIGN §10):

- ``nfn`` (default) — the NFN paper's (Zhou et al. 2023, Small CNN Zoo benchmark): each
  model's **final checkpoint** only; **50 %** of the models are held out for test, the rest
  split **80 / 20** into train / validation.
- ``pooled`` — every checkpoint epoch of a model is a sample (the models still split as
  a whole): 20 % test, the rest 87.5 / 12.5 train / validation (70 / 10 / 20 overall).

Split kinds (the ``split`` column): ``model`` (the random partition above);
``region:<axis>:<low|high>`` — out-of-region: the models whose value on ``<axis>`` (a
``models`` column such as ``lr``) is among the highest (lowest) third of that axis's distinct
values are the test set; ``phase:<label>`` — the models labelled ``<label>`` in
``phases.parquet`` are the test set; ``signal`` (INR zoos, the NFN/DWS protocol) — the INRs
of the dataset's **test signals** (``models.signal_split == 'test'``) are the test set, so no
test signal is fitted by a train or validation INR. Validation models are drawn from the
non-test ones.

The split is a function of the **split seed and the model ids only** (never of a learner
seed): each id gets the rank key ``blake2b(split_seed, model_id)``, the ids are ordered by
that key, and the first ``test_frac`` of them are the test models. The harness computes it
on every model id of the zoo *before* dropping any sample (non-finite weights or
targets), so dropping a model moves no other model between sides; and because an id's key
does not depend on the other ids, even a zoo that lacks some models orders the rest the
same way. The side of every row is stored in ``predictions.parquet`` with the split seed.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from zoo.enums import REGION_SIDES
from zoo.errors import SpecError

SIDES = ("train", "val", "test")


@dataclass(frozen=True)
class Protocol:
    """Which checkpoints are samples and how the models split (fractions of the models)."""

    name: str
    final_only: bool
    test_frac: float
    val_frac: float  # of the non-test models


PROTOCOLS: dict[str, Protocol] = {
    "nfn": Protocol("nfn", final_only=True, test_frac=0.5, val_frac=0.2),
    "pooled": Protocol("pooled", final_only=False, test_frac=0.2, val_frac=0.125),
}
DEFAULT_PROTOCOL = "nfn"


def protocol(name: str) -> Protocol:
    """The protocol called ``name`` (one-line error naming the choices otherwise)."""
    if name not in PROTOCOLS:
        raise SpecError(f"learn.protocol {name!r}: use one of {', '.join(PROTOCOLS)} "
                        "(nfn = final checkpoint, 50 % test; pooled = every checkpoint, 20 % test)")
    return PROTOCOLS[name]


def rank_key(model_id: str, split_seed: int) -> bytes:
    """The key that orders ``model_id`` under ``split_seed`` (independent of every other id)."""
    return hashlib.blake2b(f"{int(split_seed)}\x00{model_id}".encode(), digest_size=16).digest()


def seeded_order(ids: Iterable[str], split_seed: int) -> list[str]:
    """The distinct ids ordered by :func:`rank_key` (removing an id keeps the others' order)."""
    return sorted(set(ids), key=lambda m: rank_key(m, split_seed))


def assign_models(meta: Any, split: str, split_seed: int, test_frac: float = 0.5,
                  val_frac: float = 0.2) -> dict[str, str]:
    """``{model_id: side}`` for the split named ``split`` (see module doc).

    ``meta`` needs a ``model_id`` column (and the axis or ``phase`` column for region /
    phase splits). ``val_frac`` is the fraction of the *non-test* models that validate.
    """
    order = seeded_order(meta["model_id"].tolist(), split_seed)
    n = len(order)
    parts = split.split(":")
    if parts[0] == "model" and len(parts) == 1:
        test = set(order[: max(1, round(test_frac * n))])
    elif parts[0] == "signal" and len(parts) == 1:
        if "signal_split" not in meta.columns:
            raise SpecError(f"learn.split {split!r}: needs an INR zoo (models.signal_split); use split 'model' here")
        per_model = meta.drop_duplicates("model_id").set_index("model_id")["signal_split"]
        test = {m for m, v in per_model.items() if v == "test"}
    elif parts[0] == "region" and len(parts) == 3 and parts[2] in REGION_SIDES:
        axis = parts[1]
        if axis not in meta.columns:
            raise SpecError(f"learn.split {split!r}: no grid axis {axis!r} in the models table; use a models column such as lr")
        per_model = meta.drop_duplicates("model_id").set_index("model_id")[axis]
        values = sorted(per_model.dropna().unique())
        if len(values) < 2:
            raise SpecError(f"learn.split {split!r}: axis {axis!r} has one value only; pick an axis the grid varies")
        k = max(1, math.ceil(len(values) / 3))
        chosen = set(values[-k:] if parts[2] == "high" else values[:k])
        test = {m for m, v in per_model.items() if v in chosen}
    elif parts[0] == "phase" and len(parts) == 2:
        if "phase" not in meta.columns:
            from zoo.learners.features import SkipLearner

            raise SkipLearner(f"split {split!r} needs phases.parquet; run the phases stage first (skipped)")
        label = parts[1]
        per_model = meta.drop_duplicates("model_id").set_index("model_id")["phase"]
        test = {m for m, v in per_model.items() if v == label}
        if not test:
            raise SpecError(f"learn.split {split!r}: no model has phase {label!r}; labels: {sorted(per_model.dropna().unique())}")
    else:
        raise SpecError(f"learn.split {split!r}: use 'model', 'signal', 'region:<axis>:<low|high>' or 'phase:<label>'")
    rest = [m for m in order if m not in test]
    n_val = max(1, round(val_frac * len(rest))) if len(rest) > 2 else 0
    val = set(rest[:n_val])
    if len(rest) - n_val < 1:
        raise SpecError(f"learn.split {split!r}: leaves no training models; choose another split")
    return {m: ("test" if m in test else "val" if m in val else "train") for m in order}


def split_rows(meta: Any, split: str, split_seed: int, test_frac: float = 0.5, val_frac: float = 0.2) -> np.ndarray:
    """The side (``train``/``val``/``test``) of every row of ``meta``, by model."""
    sides = assign_models(meta, split, split_seed, test_frac, val_frac)
    return np.array([sides[m] for m in meta["model_id"]], dtype=object)


def protocol_rows(meta: Any, split: str, split_seed: int, protocol_name: str = DEFAULT_PROTOCOL) -> np.ndarray:
    """:func:`split_rows` with the fractions of ``protocol_name``."""
    p = protocol(protocol_name)
    return split_rows(meta, split, split_seed, p.test_frac, p.val_frac)


def final_rows(meta: Any) -> np.ndarray:
    """Boolean mask of each model's last checkpoint among the rows of ``meta``."""
    last = meta.groupby("model_id")["epoch"].transform("max")
    return np.array(meta["epoch"] == last, dtype=bool)
