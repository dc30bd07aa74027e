"""The spec of an INR zoo (``model: {arch: siren, …}`` + ``signals:``): checks and per-model keys.

What :func:`zoo.config.check_zoo` and :func:`zoo.config.expand_zoo` call for ``arch: siren``:

- the dataset must be a signal set (:data:`zoo.enums.SIGNAL_DATASETS`) and ``signals`` given;
- keys that mean nothing for a full-batch fit of one signal (``batch_size``,
  ``train_fraction``, ``label_noise``, ``dropout``, ``init``, ``init_std``; grid axes of the
  same names) are refused, as is ``signals`` on any other arch;
- the model count is ``grid × draws × seeds × signals``, bounded by arithmetic
  (``per_class × classes × splits``) before the dataset is read;
- ``per_class`` larger than a class has is refused once the labels are read.

Every model spec of an INR zoo carries ``signal_split``, ``signal_index`` and
``signal_class`` (per-model keys: the signals of one shape share a population).
``epochs`` counts full-batch steps (one step = every coordinate once = one epoch).
``signals.init: shared`` adds ``signal_init: shared`` to every model spec: the INRs of one
seed then start from the same weights (:func:`zoo.siren.init_siren`), as the classifiers of
one architecture do; the default (``per_signal``) gives every INR its own draw.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from zoo.enums import SIGNAL_DATASETS
from zoo.errors import SpecError

#: Classes of every signal set (all three have ten): bounds the model count before any data is read.
SIGNAL_CLASSES = {name: 10 for name in SIGNAL_DATASETS}
#: Zoo keys (and grid axes) that do not apply to a full-batch SIREN fit.
NOT_FOR_SIREN = ("batch_size", "train_fraction", "label_noise", "dropout", "init", "init_std")
#: The optimizer of an INR zoo unless its spec says otherwise (Adam, as Sitzmann et al.).
INR_OPTIMIZER_DEFAULTS: dict[str, Any] = {"name": "adam", "lr": 1e-4, "momentum": 0.0, "weight_decay": 0.0}
#: Per-model keys of an INR model spec (which signal it fits).
SIGNAL_KEYS = ("signal_split", "signal_index", "signal_class")


def is_inr(raw: Mapping[str, Any]) -> bool:
    """Whether a zoo spec (raw or a model spec) is an INR zoo (``arch: siren``)."""
    model = raw.get("model")
    arch = model.get("arch") if isinstance(model, Mapping) else raw.get("arch")
    return arch == "siren"


def check_inr_keys(name: str, raw: Mapping[str, Any]) -> None:
    """Refuse ``signals`` on a non-siren zoo and classifier-only keys on a siren zoo (one line each)."""
    if not is_inr(raw):
        if "signals" in raw:
            raise SpecError(f"zoo '{name}': field 'signals' applies to arch siren only (an INR zoo); drop it")
        return
    for key in NOT_FOR_SIREN:
        if key in raw:
            raise SpecError(f"zoo '{name}': field '{key}' does not apply to arch siren (full-batch fit of one "
                            "signal per model); drop it")
        if key in raw["grid"]:
            raise SpecError(f"zoo '{name}': field 'grid.{key}' does not apply to arch siren; drop the axis")
    if raw["dataset"] not in SIGNAL_DATASETS:
        raise SpecError(f"zoo '{name}': field 'dataset': {raw['dataset']!r} is not a signal set, so arch siren "
                        f"cannot fit it; choose one of {', '.join(SIGNAL_DATASETS)}")
    if "signals" not in raw:
        raise SpecError(f"zoo '{name}': field 'signals' is required for arch siren; e.g. "
                        "signals: {per_class: 10, split: both}")


def max_signals(raw: Mapping[str, Any]) -> int:
    """Upper bound on an INR zoo's signal count by arithmetic (1 for other zoos)."""
    if not is_inr(raw):
        return 1
    sig = raw["signals"]
    return int(sig["per_class"]) * SIGNAL_CLASSES[raw["dataset"]] * (2 if sig.get("split", "train") == "both" else 1)


def chosen_signals(name: str, raw: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The per-model signal keys of every signal the zoo fits (reads the dataset's labels)."""
    from zoo.datasets.signals import load_signal_set, select_signals

    sig = raw["signals"]
    signals = load_signal_set(raw["dataset"], raw.get("dataset_options"))
    picked = select_signals(signals.labels, int(sig["per_class"]), sig.get("split", "train"),
                            int(sig.get("seed", 0)), name)
    return [dict(zip(SIGNAL_KEYS, p)) for p in picked]


def inr_base(raw: Mapping[str, Any], arch_keys: tuple[str, ...], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """The keys every model of an INR zoo shares (before grid values, signal and seed)."""
    base: dict[str, Any] = {"dataset": raw["dataset"], "arch": "siren"}
    if raw.get("dataset_options"):
        base["dataset_options"] = raw["dataset_options"]
    for key in arch_keys:
        value = raw["model"].get(key, defaults[key])
        base[key] = float(value) if key in ("omega_0", "hidden_omega") else value
    if raw["signals"].get("init", "per_signal") == "shared":  # absent by default: per-signal ids unchanged
        base["signal_init"] = "shared"
    opt = {**INR_OPTIMIZER_DEFAULTS, **raw.get("optimizer", {})}
    base.update(optimizer=opt["name"], lr=float(opt["lr"]), momentum=float(opt["momentum"]),
                weight_decay=float(opt["weight_decay"]), epochs=raw["epochs"])
    return base
