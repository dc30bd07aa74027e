"""Zoo specs: load YAML, validate against the JSON schema, expand phase grids into models.

A *model spec* is a flat dict of everything that determines one trained network
(dataset, architecture, optimizer hyperparameters, batch size, seed, epochs). Its
``model_id`` is a short hash of that dict, so it does not depend on the zoo that lists it
or on the order of the grid. Models that share everything except per-model values
(``PER_MODEL_KEYS``: seed, lr, momentum, weight decay, label noise, dropout, init) form a
*population* and are trained together.

Reading a config runs bounded checks in this order, so no hostile spec is expanded before
it is refused (each failure is one :class:`SpecError` line naming the file or zoo, the
field and the fix; ``zoo validate`` and the Snakefile's :func:`load_workflow_config` share
every step):

1. :func:`zoo.yaml_io.load_yaml` — size cap, no anchors/aliases, no duplicate keys, YAML 1.2 floats;
2. :func:`validate` — plain finite values everywhere (:func:`zoo.spec_checks.check_tree`),
   the JSON schema, the ``learn:`` block;
3. :func:`check_zoo` — dataset and its options, arch keys, and the model count by arithmetic;
4. :func:`expand_zoo` — the models and populations;
5. :func:`load_zoos` — the largest population must fit in memory (:mod:`zoo.resources`).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from zoo.enums import DISTRIBUTIONS, INIT_SCHEMES, LOCATION_OPTIONS, STD_INIT_SCHEMES
from zoo.errors import SpecError
from zoo.grid import INT_LIMITS, check_value, grid_values, sample_draws
from zoo.hashing import canonical_json, short_hash
from zoo.spec_checks import (
    axis_length,
    check_dataset_options,
    check_learn,
    check_tree,
    count_models,
    is_distribution,
    looks_numeric,
    numeric_string_hint,
)
from zoo.yaml_io import load_yaml

SCHEMA_PATH = Path(__file__).resolve().parent / "schemas" / "config.schema.yaml"

#: Hyperparameters that may differ between the models of one population (vectorised).
#: INR zoos add the signal a model fits (``zoo.inr_spec.SIGNAL_KEYS``): one population fits many signals.
PER_MODEL_KEYS = ("seed", "lr", "momentum", "weight_decay", "label_noise", "dropout", "init", "init_std",
                  "signal_split", "signal_index", "signal_class")

#: Axes added after the first release. A model spec carries them only when they differ
#: from these defaults, so adding them renamed no existing model (model_id hashes the spec).
OPTIONAL_DEFAULTS: dict[str, Any] = {"label_noise": 0.0, "dropout": 0.0, "init": "default"}
DEFAULT_INIT_STD = 0.05

DEFAULT_MAX_MODELS = 20_000
#: No zoo expands beyond this, even with ``allow_large``: the expansion alone holds about
#: 1 kB per model spec, and Snakemake needs one DAG node per population.
HARD_MAX_MODELS = 250_000
DEFAULT_POPULATION_SIZE = 256

ARCH_DEFAULTS: dict[str, dict[str, Any]] = {
    "mlp": {"depth": 2, "width": 32, "activation": "relu"},
    "cnn": {"depth": 3, "channels": 16, "kernel": 3, "stride": 2, "activation": "relu"},
    "resnet": {"depth": 3, "width": 8, "activation": "relu"},
    "transformer": {"depth": 1, "width": 16, "heads": 2, "activation": "gelu"},
    "siren": {"depth": 2, "width": 32, "omega_0": 30.0, "hidden_omega": 30.0},
}
ARCH_KEYS: dict[str, tuple[str, ...]] = {
    "mlp": ("depth", "width", "activation"),
    "cnn": ("depth", "channels", "kernel", "stride", "activation"),
    "resnet": ("depth", "width", "activation"),
    "transformer": ("depth", "width", "heads", "activation"),
    "siren": ("depth", "width", "omega_0", "hidden_omega"),
}
OPTIMIZER_DEFAULTS: dict[str, Any] = {"name": "sgd", "lr": 0.01, "momentum": 0.0, "weight_decay": 0.0}
ZOO_DEFAULTS: dict[str, Any] = {"batch_size": 32, "train_fraction": 1.0, "max_loss": 1e3}


@dataclass(frozen=True)
class ModelSpec:
    """One model of a zoo: its canonical flat spec and the id derived from it."""

    spec: dict[str, Any] = field(hash=False)
    model_id: str

    def __getitem__(self, key: str) -> Any:
        return self.spec[key]


@dataclass(frozen=True)
class ZooSpec:
    """A validated zoo: its raw spec, expanded models and populations."""

    name: str
    raw: dict[str, Any] = field(hash=False)
    models: tuple[ModelSpec, ...]
    checkpoints: tuple[int, ...]
    populations: dict[str, tuple[ModelSpec, ...]] = field(hash=False)

    @property
    def grid_keys(self) -> list[str]:
        return list(self.raw["grid"])

    @property
    def spec_hash(self) -> str:
        return short_hash(self.raw)


@cache
def _validator() -> Any:
    """The JSON-schema validator, with ``integer`` meaning a Python int (jsonschema also accepts 3.0)."""
    import jsonschema
    import yaml

    with open(SCHEMA_PATH) as fh:
        schema = yaml.safe_load(fh)
    base = jsonschema.Draft202012Validator
    checker = base.TYPE_CHECKER.redefine(
        "integer", lambda _checker, v: isinstance(v, int) and not isinstance(v, bool))
    return jsonschema.validators.extend(base, type_checker=checker)(schema)


def _path_of(error: Any) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "(top level)"


def _type_mismatch(err: Any) -> int:
    """0: not a type error; 1: a type error with a fix to suggest ('3' or 3.0 for 3); 2: plain type mismatch."""
    if err.validator != "type":
        return 0
    value, wanted = err.instance, err.validator_value
    if looks_numeric(value) and wanted in ("number", "integer"):
        return 1
    return 1 if wanted == "integer" and isinstance(value, float) and value.is_integer() else 2


def _schema_message(err: Any) -> str:
    """One readable sentence (with the fix) for one JSON-schema error."""
    value = err.instance
    if err.validator == "additionalProperties" and err.validator_value is False:
        allowed = sorted(err.schema.get("properties", {}))
        return f"{err.message}; allowed keys: {', '.join(allowed)}"
    if err.validator == "propertyNames" or (err.validator == "enum" and "propertyNames" in err.relative_schema_path):
        return f"{err.message}"
    if err.validator == "enum":
        return f"{value!r} is not allowed; choose one of {', '.join(map(str, err.validator_value))}"
    if err.validator == "type" and looks_numeric(value):
        return numeric_string_hint(value)
    if err.validator == "type" and err.validator_value == "integer" and isinstance(value, float) and value.is_integer():
        return f"{value!r} is not an integer; write {int(value)}"
    if err.validator in ("maximum", "exclusiveMaximum"):
        return f"{value!r} is above the limit {err.validator_value}; use a smaller value"
    if err.validator == "maxItems":
        return (f"{len(value):,} entries are more than the {err.validator_value:,} allowed; shorten the list "
                "(a grid axis can be {logspace: [a, b, n]}, seeds can be a count)")
    if err.validator == "maxLength":
        return f"{len(value):,} characters are more than the {err.validator_value:,} allowed; shorten it"
    return err.message


def validate(config: dict[str, Any], source: str = "config") -> None:
    """Validate ``config``: plain finite values, the JSON schema shipped in ``zoo/schemas/``, ``learn:``.

    Bounded checks first (:func:`zoo.spec_checks.check_tree`: no shared nodes, NaN/inf or
    out-of-int64 numbers anywhere), so no hostile document is walked further.
    Raises :class:`SpecError` with one line naming the file, the field and the fix.
    """
    check_tree(config, source)
    validator = _validator()
    errors = sorted(validator.iter_errors(config), key=lambda e: (len(list(e.absolute_path)), str(e.absolute_path)))
    if errors:
        err = errors[0]
        # oneOf failures are unreadable; descend to the most specific sub-error, preferring
        # the branch whose type matched (seeds: 10**9 is "above the limit", not "not an array").
        while err.context:
            err = sorted(err.context, key=lambda e: (-len(list(e.absolute_path)), _type_mismatch(e)))[0]
        raise SpecError(f"{source}: field '{_path_of(err)}': {_schema_message(err)}")
    check_learn(config, source)


def load_config(path: str | Path) -> dict[str, Any]:
    """Read (:func:`zoo.yaml_io.load_yaml`: no aliases, no duplicate keys) and validate a config file."""
    config = read_config_files([path])
    validate(config, source=str(path))
    return config


def _deep_update(base: dict[str, Any], new: Mapping[str, Any]) -> None:
    """Merge ``new`` into ``base`` as Snakemake merges config files (mappings recursively)."""
    for key, value in new.items():
        if isinstance(value, Mapping):
            if not isinstance(base.get(key), dict):
                base[key] = {}
            _deep_update(base[key], value)
        else:
            base[key] = value


def read_config_files(paths: Sequence[str | Path], overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Read config files with the safe loader and merge them in order, then ``overrides`` (``--config``)."""
    merged: dict[str, Any] = {}
    for path in paths:
        doc = load_yaml(path)
        if not isinstance(doc, dict):
            raise SpecError(f"{path}: expected a mapping with a 'zoos' key, got {type(doc).__name__}")
        _deep_update(merged, doc)
    if overrides:
        plain: dict[str, Any] = {}
        _deep_update(plain, overrides)  # Snakemake may hand over immutable mappings
        check_tree(plain, "--config")
        _deep_update(merged, plain)
    return merged


def load_workflow_config(config: dict[str, Any], configfiles: Sequence[str | Path],
                         overrides: Mapping[str, Any] | None = None) -> dict[str, ZooSpec]:
    """The Snakefile's entry point: re-read, validate and expand the workflow config.

    Snakemake parses ``--configfile`` itself with PyYAML (aliases expand, duplicate keys
    collapse, ``1e-3`` is a string), so ``configfiles`` (``workflow.configfiles``) are read
    again with :func:`zoo.yaml_io.load_yaml`, merged in order, and ``overrides``
    (``workflow.config_settings.config``, the ``--config`` values) applied on top. The
    result is validated exactly as ``zoo validate`` does, expanded, checked for memory,
    and written back into ``config`` in place, so every rule reads the same values.
    Without config files, ``config`` itself is validated.
    """
    files = [str(f) for f in configfiles]
    source = ", ".join(files) or "config"
    strict = read_config_files(files, overrides) if files else config
    validate(strict, source=source)
    zoos = load_zoos(strict)
    if strict is not config:
        config.clear()
        config.update(strict)
    return zoos


def normalise_optional(spec: dict[str, Any]) -> dict[str, Any]:
    """Drop optional axes at their default; keep ``init_std`` only for schemes that use it."""
    for key, default in OPTIONAL_DEFAULTS.items():
        if key in spec and spec[key] == default:
            del spec[key]
    if spec.get("init") in STD_INIT_SCHEMES:
        spec.setdefault("init_std", DEFAULT_INIT_STD)
    else:
        spec.pop("init_std", None)
    return spec


def model_identity(spec: dict[str, Any]) -> dict[str, Any]:
    """The part of a model spec its ``model_id`` hashes: all of it but where data files live."""
    options = spec.get("dataset_options")
    if not options or not any(k in options for k in LOCATION_OPTIONS):
        return spec
    kept = {k: v for k, v in options.items() if k not in LOCATION_OPTIONS}
    out = {k: v for k, v in spec.items() if k != "dataset_options"}
    if kept:
        out["dataset_options"] = kept
    return out


def _seeds(raw: Any) -> list[int]:
    return list(range(raw)) if isinstance(raw, int) else list(raw)


def check_zoo(name: str, raw: Mapping[str, Any], settings: Mapping[str, Any] | None = None) -> int:
    """Checks of one schema-valid zoo spec that need no expansion; returns its model count.

    Dataset and its options, arch-specific keys, checkpoints within epochs, and the model
    count by arithmetic (:func:`zoo.spec_checks.count_models`) against
    ``settings.max_models`` and :data:`HARD_MAX_MODELS`, so nothing huge is ever built.
    """
    from zoo.data import dataset_loader, known_datasets
    from zoo.inr_spec import check_inr_keys, chosen_signals, is_inr, max_signals

    settings = settings or {}
    if raw["dataset"] not in known_datasets():
        raise SpecError(
            f"zoo '{name}': field 'dataset': unknown dataset {raw['dataset']!r}; "
            f"choose one of {', '.join(sorted(known_datasets()))}"
        )
    check_dataset_options(name, raw["dataset"], raw.get("dataset_options") or {}, dataset_loader(raw["dataset"]))
    check_inr_keys(name, raw)
    arch = raw["model"]["arch"]
    allowed_model = set(ARCH_KEYS[arch]) | {"arch"}
    for key in raw["model"]:
        if key not in allowed_model:
            raise SpecError(f"zoo '{name}': field 'model.{key}' does not apply to arch {arch}; allowed: {', '.join(sorted(allowed_model))}")
    for key in raw["grid"]:
        if key in ("width", "depth", "channels", "kernel", "stride", "activation", "heads") and key not in ARCH_KEYS[arch]:
            raise SpecError(f"zoo '{name}': field 'grid.{key}' does not apply to arch {arch}; allowed arch axes: {', '.join(ARCH_KEYS[arch])}")
    checkpoints = raw["checkpoints"]
    if max(checkpoints) > raw["epochs"]:
        raise SpecError(f"zoo '{name}': field 'checkpoints': epoch {max(checkpoints)} > epochs {raw['epochs']}; drop it or raise epochs")
    n_models = count_models(name, raw) * max_signals(raw)
    limit = settings.get("max_models", DEFAULT_MAX_MODELS)
    if n_models > HARD_MAX_MODELS:
        raise SpecError(
            f"zoo '{name}': the grid expands to {n_models:,} models (axes × sample × seeds"
            f"{' × signals.per_class × classes × splits' if is_inr(raw) else ''}), more than the "
            f"{HARD_MAX_MODELS:,} any zoo may have; use fewer grid values, draws or seeds, or split it into zoos"
        )
    if n_models > limit and not settings.get("allow_large", False):
        raise SpecError(
            f"zoo '{name}': the grid expands to {n_models:,} models, more than settings.max_models={limit}; "
            "raise settings.max_models or set settings.allow_large: true"
        )
    if is_inr(raw):  # per_class against the class sizes: only now that the count is known to be sane
        n_models = count_models(name, raw) * len(chosen_signals(name, raw))
    return n_models


def expand_zoo(name: str, raw: dict[str, Any], settings: dict[str, Any] | None = None) -> ZooSpec:
    """Expand one validated zoo spec into model specs and populations (after :func:`check_zoo`)."""
    settings = settings or {}
    check_zoo(name, raw, settings)
    if raw["model"]["arch"] == "siren":
        return _expand_inr_zoo(name, raw, settings)
    arch = raw["model"]["arch"]
    base: dict[str, Any] = {"dataset": raw["dataset"], "arch": arch}
    options = raw.get("dataset_options") or {}
    if options:
        base["dataset_options"] = options
    for key in ARCH_KEYS[arch]:
        base[key] = raw["model"].get(key, ARCH_DEFAULTS[arch][key])
    opt = {**OPTIMIZER_DEFAULTS, **raw.get("optimizer", {})}
    base["optimizer"] = opt["name"]
    base["lr"] = float(opt["lr"])
    base["momentum"] = float(opt["momentum"])
    base["weight_decay"] = float(opt["weight_decay"])
    base["batch_size"] = raw.get("batch_size", ZOO_DEFAULTS["batch_size"])
    base["train_fraction"] = float(raw.get("train_fraction", ZOO_DEFAULTS["train_fraction"]))
    base["epochs"] = raw["epochs"]
    for key in (*OPTIONAL_DEFAULTS, "init_std"):
        if key in raw:
            base[key] = check_value(name, key, raw[key])

    return _expand_models(name, raw, settings, base, [{}])


def _expand_inr_zoo(name: str, raw: dict[str, Any], settings: dict[str, Any]) -> ZooSpec:
    """An INR zoo (:mod:`zoo.inr_spec`): grid × draws × signals × seeds, one signal per model."""
    from zoo.inr_spec import chosen_signals, inr_base

    base = inr_base(raw, ARCH_KEYS["siren"], ARCH_DEFAULTS["siren"])
    return _expand_models(name, raw, settings, base, chosen_signals(name, raw))


def _expand_models(name: str, raw: dict[str, Any], settings: dict[str, Any], base: dict[str, Any],
                   signals: list[dict[str, Any]]) -> ZooSpec:
    """Models of ``base`` × grid values × sampled draws × ``signals`` × seeds, grouped into populations."""
    axes, dists = {}, {}
    for key, values in raw["grid"].items():
        if is_distribution(values):
            dists[key] = values
            continue
        axis_length(name, key, values)  # refuses logspace exponents that overflow
        expanded = grid_values(values)
        if not expanded:
            raise SpecError(f"zoo '{name}': field 'grid.{key}' is empty; give at least one value")
        axes[key] = [check_value(name, key, v) for v in expanded]
    draws = sample_draws(name, raw.get("sample"), dists)
    seeds = _seeds(raw["seeds"])
    if len(set(seeds)) != len(seeds):
        raise SpecError(f"zoo '{name}': field 'seeds' has duplicates; list each seed once")
    checkpoints = sorted(set(raw["checkpoints"]))

    models: list[ModelSpec] = []
    seen: set[str] = set()
    for combo, draw, signal, seed in itertools.product(itertools.product(*axes.values()), draws, signals, seeds):
        spec = normalise_optional({**base, **dict(zip(axes, combo)), **draw, **signal, "seed": int(seed)})
        model_id = short_hash(model_identity(spec))
        if model_id in seen:
            continue
        seen.add(model_id)
        models.append(ModelSpec(spec=spec, model_id=model_id))

    pops = group_populations(models, settings.get("population_size", DEFAULT_POPULATION_SIZE))
    return ZooSpec(name=name, raw=raw, models=tuple(models), checkpoints=tuple(checkpoints), populations=pops)


def population_key(spec: dict[str, Any]) -> dict[str, Any]:
    """The part of a model spec that must be shared to train models as one batch."""
    return {k: v for k, v in spec.items() if k not in PER_MODEL_KEYS}


def group_populations(models: list[ModelSpec], size: int) -> dict[str, tuple[ModelSpec, ...]]:
    """Group models into populations of at most ``size``; ids are stable hashes."""
    groups: dict[str, list[ModelSpec]] = {}
    for m in models:
        key = population_key(model_identity(m.spec))
        groups.setdefault(f"{m.spec['arch']}-{short_hash(key, 10)}", []).append(m)
    pops: dict[str, tuple[ModelSpec, ...]] = {}
    for pid, members in sorted(groups.items()):
        members.sort(key=lambda m: m.model_id)
        chunks = [members[i : i + size] for i in range(0, len(members), size)]
        for j, chunk in enumerate(chunks):
            pops[pid if len(chunks) == 1 else f"{pid}-{j}"] = tuple(chunk)
    return pops


def load_zoos(config: dict[str, Any]) -> dict[str, ZooSpec]:
    """Expand every zoo of a validated config; refuse one whose largest population cannot fit in memory.

    The memory limit is ``settings.max_memory_gb`` or this machine's memory
    (:func:`zoo.resources.check_population_memory`). Training jobs re-expand their zoo with
    :func:`zoo_from_document`, which skips that check (a job's own limit is its ``mem_mb``).
    """
    from zoo.resources import check_population_memory

    settings = config.get("settings", {})
    total = sum(check_zoo(name, raw, settings) for name, raw in config["zoos"].items())
    if total > HARD_MAX_MODELS:
        raise SpecError(f"config: its {len(config['zoos'])} zoos expand to {total:,} models together, more than the "
                        f"{HARD_MAX_MODELS:,} one workflow may hold; move some zoos to another config file")
    zoos = {}
    for name, raw in config["zoos"].items():
        zoos[name] = expand_zoo(name, raw, settings)
        check_population_memory(zoos[name], settings)
    return zoos


def zoo_document(zoo: ZooSpec, settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON written to ``data/zoos/<zoo>/spec.json``: enough to re-expand the zoo."""
    return {"name": zoo.name, "spec": zoo.raw, "settings": settings or {}, "spec_hash": zoo.spec_hash}


def zoo_from_document(doc: dict[str, Any]) -> ZooSpec:
    """Re-expand a zoo from its ``spec.json`` document."""
    validate({"zoos": {doc["name"]: doc["spec"]}, "settings": doc.get("settings", {})}, source="spec.json")
    return expand_zoo(doc["name"], doc["spec"], doc.get("settings", {}))


__all__ = [
    "DISTRIBUTIONS",
    "INIT_SCHEMES",
    "INT_LIMITS",
    "LOCATION_OPTIONS",
    "STD_INIT_SCHEMES",
    "ModelSpec",
    "ZooSpec",
    "canonical_json",
    "check_zoo",
    "expand_zoo",
    "grid_values",
    "is_distribution",
    "load_config",
    "load_workflow_config",
    "load_zoos",
    "read_config_files",
    "sample_draws",
    "validate",
]
