"""Zoo specs: load YAML, validate against the JSON schema, expand phase grids into models.

A *model spec* is a flat dict of everything that determines one trained network
(dataset, architecture, optimizer hyperparameters, batch size, seed, epochs). Its
``model_id`` is a short hash of that dict, so it does not depend on the zoo that lists it
or on the order of the grid. Models that share everything except per-model values
(``PER_MODEL_KEYS``: seed, lr, momentum, weight decay, label noise, dropout, init) form a
*population* and are trained together.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from zoo.errors import SpecError
from zoo.hashing import canonical_json, short_hash

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "workflow" / "schemas" / "config.schema.yaml"

#: Hyperparameters that may differ between the models of one population (vectorised).
PER_MODEL_KEYS = ("seed", "lr", "momentum", "weight_decay", "label_noise", "dropout", "init", "init_std")

#: Axes added after the first release. A model spec carries them only when they differ
#: from these defaults, so adding them renamed no existing model (model_id hashes the spec).
OPTIONAL_DEFAULTS: dict[str, Any] = {"label_noise": 0.0, "dropout": 0.0, "init": "default"}
INIT_SCHEMES = ("default", "kaiming_normal", "kaiming_uniform", "xavier_normal", "xavier_uniform", "normal", "uniform")
#: Schemes parameterised by ``init_std`` (standard deviation of the initial weights).
STD_INIT_SCHEMES = ("normal", "uniform")
DEFAULT_INIT_STD = 0.05
#: Dataset options that say where files are, not what they are: left out of model_id.
LOCATION_OPTIONS = ("data_root",)

DEFAULT_MAX_MODELS = 20_000
DEFAULT_POPULATION_SIZE = 256

ARCH_DEFAULTS: dict[str, dict[str, Any]] = {
    "mlp": {"depth": 2, "width": 32, "activation": "relu"},
    "cnn": {"depth": 3, "channels": 16, "kernel": 3, "stride": 2, "activation": "relu"},
    "resnet": {"depth": 3, "width": 8, "activation": "relu"},
    "transformer": {"depth": 1, "width": 16, "heads": 2, "activation": "gelu"},
}
ARCH_KEYS: dict[str, tuple[str, ...]] = {
    "mlp": ("depth", "width", "activation"),
    "cnn": ("depth", "channels", "kernel", "stride", "activation"),
    "resnet": ("depth", "width", "activation"),
    "transformer": ("depth", "width", "heads", "activation"),
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
def _schema() -> dict[str, Any]:
    with open(SCHEMA_PATH) as fh:
        return yaml.safe_load(fh)


def _path_of(error: Any) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "(top level)"


def validate(config: dict[str, Any], source: str = "config") -> None:
    """Validate ``config`` against ``workflow/schemas/config.schema.yaml``.

    Raises :class:`SpecError` with one line naming the file, the field and the fix.
    """
    import jsonschema

    validator = jsonschema.Draft202012Validator(_schema())
    errors = sorted(validator.iter_errors(config), key=lambda e: (len(list(e.absolute_path)), str(e.absolute_path)))
    if not errors:
        return
    err = errors[0]
    # oneOf failures are unreadable; descend to the most specific sub-error.
    while err.context:
        err = sorted(err.context, key=lambda e: -len(list(e.absolute_path)))[0]
    where = _path_of(err)
    if err.validator == "additionalProperties" and err.validator_value is False:
        allowed = sorted(err.schema.get("properties", {}))
        msg = f"{err.message}; allowed keys: {', '.join(allowed)}"
    elif err.validator == "propertyNames" or (err.validator == "enum" and "propertyNames" in err.relative_schema_path):
        msg = f"{err.message}"
    elif err.validator == "enum":
        msg = f"{err.instance!r} is not allowed; choose one of {', '.join(map(str, err.validator_value))}"
    else:
        msg = err.message
    raise SpecError(f"{source}: field '{where}': {msg}")


def load_config(path: str | Path) -> dict[str, Any]:
    """Read and validate a YAML config file; errors are one line naming the file."""
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"{path}: no such config file; pass an existing YAML file (e.g. config/config.yaml)")
    try:
        with open(path) as fh:
            config = yaml.safe_load(fh)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpecError(f"{path}:{where}: malformed YAML ({problem}); fix the syntax") from None
    if not isinstance(config, dict):
        raise SpecError(f"{path}: expected a mapping with a 'zoos' key, got {type(config).__name__}")
    validate(config, source=str(path))
    return config


def grid_values(spec: Any) -> list[Any]:
    """Expand one grid axis: a list, ``{logspace: [a, b, n]}`` (10**a … 10**b) or ``{linspace: …}``."""
    if isinstance(spec, list):
        return list(spec)
    kind, (a, b, n) = next(iter(spec.items()))
    steps = [a + (b - a) * i / (n - 1) if n > 1 else a for i in range(n)]
    values = [10.0**s for s in steps] if kind == "logspace" else steps
    # 12 significant digits: stable across platforms, so model ids are too.
    return [float(f"{v:.12g}") for v in values]


def _check_value(zoo: str, key: str, value: Any) -> Any:
    where = f"zoo '{zoo}': field 'grid.{key}'"
    int_keys = {"width", "depth", "channels", "kernel", "stride", "batch_size", "heads"}
    if key in int_keys:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise SpecError(f"{where}: {value!r} must be a positive integer")
    elif key == "activation":
        allowed = ("relu", "tanh", "gelu", "sigmoid", "identity")
        if value not in allowed:
            raise SpecError(f"{where}: {value!r} is not allowed; choose one of {', '.join(allowed)}")
    elif key == "optimizer":
        if value not in ("sgd", "adam"):
            raise SpecError(f"{where}: {value!r} is not allowed; choose one of sgd, adam")
    elif key == "init":
        if value not in INIT_SCHEMES:
            raise SpecError(f"{where}: {value!r} is not allowed; choose one of {', '.join(INIT_SCHEMES)}")
    else:
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


DISTRIBUTIONS = ("uniform", "loguniform", "randint", "choice")


def is_distribution(values: Any) -> bool:
    """Whether a grid axis is a distribution to sample from (``{uniform: [a, b]}`` etc.)."""
    return isinstance(values, dict) and next(iter(values)) in DISTRIBUTIONS


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
                _check_value(zoo, key, v)
            continue
        a, b = args
        if a > b:
            raise SpecError(f"zoo '{zoo}': field 'grid.{key}.{kind}': lower bound {a} > upper bound {b}; swap them")
        if kind == "loguniform" and a <= 0:
            raise SpecError(f"zoo '{zoo}': field 'grid.{key}.loguniform': bounds must be > 0, got {a}")
        _check_value(zoo, key, a)
        _check_value(zoo, key, b)
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
            draw[key] = _check_value(zoo, key, value)
        draws.append(draw)
    return draws


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


def expand_zoo(name: str, raw: dict[str, Any], settings: dict[str, Any] | None = None) -> ZooSpec:
    """Expand one validated zoo spec into model specs and populations."""
    from zoo.data import known_datasets

    settings = settings or {}
    if raw["dataset"] not in known_datasets():
        raise SpecError(
            f"zoo '{name}': field 'dataset': unknown dataset {raw['dataset']!r}; "
            f"choose one of {', '.join(sorted(known_datasets()))}"
        )
    arch = raw["model"]["arch"]
    allowed_model = set(ARCH_KEYS[arch]) | {"arch"}
    for key in raw["model"]:
        if key not in allowed_model:
            raise SpecError(f"zoo '{name}': field 'model.{key}' does not apply to arch {arch}; allowed: {', '.join(sorted(allowed_model))}")
    for key in raw["grid"]:
        if key in ("width", "depth", "channels", "kernel", "stride", "activation", "heads") and key not in ARCH_KEYS[arch]:
            raise SpecError(f"zoo '{name}': field 'grid.{key}' does not apply to arch {arch}; allowed arch axes: {', '.join(ARCH_KEYS[arch])}")
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
            base[key] = _check_value(name, key, raw[key])

    axes, dists = {}, {}
    for key, values in raw["grid"].items():
        if is_distribution(values):
            dists[key] = values
            continue
        expanded = grid_values(values)
        if not expanded:
            raise SpecError(f"zoo '{name}': field 'grid.{key}' is empty; give at least one value")
        axes[key] = [_check_value(name, key, v) for v in expanded]
    draws = sample_draws(name, raw.get("sample"), dists)
    seeds = _seeds(raw["seeds"])
    if len(set(seeds)) != len(seeds):
        raise SpecError(f"zoo '{name}': field 'seeds' has duplicates; list each seed once")
    checkpoints = sorted(set(raw["checkpoints"]))
    if checkpoints[-1] > raw["epochs"]:
        raise SpecError(f"zoo '{name}': field 'checkpoints': epoch {checkpoints[-1]} > epochs {raw['epochs']}; drop it or raise epochs")

    n_models = math.prod(len(v) for v in axes.values()) * len(draws) * len(seeds)
    limit = settings.get("max_models", DEFAULT_MAX_MODELS)
    if n_models > limit and not settings.get("allow_large", False):
        raise SpecError(
            f"zoo '{name}': the grid expands to {n_models} models, more than settings.max_models={limit}; "
            "raise settings.max_models or set settings.allow_large: true"
        )

    models: list[ModelSpec] = []
    seen: set[str] = set()
    for combo, draw, seed in itertools.product(itertools.product(*axes.values()), draws, seeds):
        spec = normalise_optional({**base, **dict(zip(axes, combo)), **draw, "seed": int(seed)})
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
    """Expand every zoo of a validated config."""
    settings = config.get("settings", {})
    return {name: expand_zoo(name, raw, settings) for name, raw in config["zoos"].items()}


def zoo_document(zoo: ZooSpec, settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON written to ``data/zoos/<zoo>/spec.json``: enough to re-expand the zoo."""
    return {"name": zoo.name, "spec": zoo.raw, "settings": settings or {}, "spec_hash": zoo.spec_hash}


def zoo_from_document(doc: dict[str, Any]) -> ZooSpec:
    """Re-expand a zoo from its ``spec.json`` document."""
    validate({"zoos": {doc["name"]: doc["spec"]}, "settings": doc.get("settings", {})}, source="spec.json")
    return expand_zoo(doc["name"], doc["spec"], doc.get("settings", {}))


__all__ = [
    "ModelSpec",
    "ZooSpec",
    "canonical_json",
    "expand_zoo",
    "grid_values",
    "load_config",
    "load_zoos",
    "validate",
]
