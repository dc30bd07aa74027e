"""One source for every enum (DESIGN §9): the JSON schema and the implementing modules agree with zoo.enums."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from zoo import enums
from zoo.config import SCHEMA_PATH

SCHEMA = yaml.safe_load(SCHEMA_PATH.read_text())


def walk(node: Any, path: tuple[str, ...] = ()):
    """Every (path, mapping) of the schema, depth first."""
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            yield from walk(value, (*path, str(key)))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from walk(value, (*path, str(i)))


def at(*path: str) -> Any:
    node: Any = SCHEMA
    for key in path:
        node = node[int(key)] if isinstance(node, list) else node[key]
    return node


#: Where the schema spells out each enum of zoo.enums.
SCHEMA_ENUMS = {
    ("$defs", "model", "properties", "arch"): enums.ARCHS,
    ("$defs", "model", "properties", "activation"): enums.ACTIVATIONS,
    ("$defs", "optimizer", "properties", "name"): enums.OPTIMIZERS,
    ("$defs", "zoo", "properties", "init"): enums.INIT_SCHEMES,
    ("$defs", "zoo", "properties", "dataset"): enums.DATASETS,
    ("$defs", "zoo", "properties", "grid", "propertyNames"): enums.GRID_AXES,
    ("$defs", "zoo", "properties", "signals", "properties", "split"): enums.SIGNAL_SPLITS,
    ("$defs", "zoo", "properties", "signals", "properties", "init"): enums.SIGNAL_INITS,
    ("properties", "learn", "properties", "learners", "items"): enums.LEARNERS,
    ("properties", "learn", "properties", "protocol"): enums.LEARN_PROTOCOLS,
}


@pytest.mark.parametrize("path", list(SCHEMA_ENUMS), ids=[".".join(p[-2:]) for p in SCHEMA_ENUMS])
def test_schema_enum_equals_the_python_enum(path):
    assert tuple(at(*path)["enum"]) == SCHEMA_ENUMS[path]


def test_every_enum_in_the_schema_is_one_of_ours():
    found = {path for path, node in walk(SCHEMA) if "enum" in node}
    assert found == set(SCHEMA_ENUMS), "a new enum in the schema needs its tuple in zoo.enums and a line here"


def test_schema_patterns_are_built_from_the_python_enums():
    learn = at("properties", "learn", "properties")
    assert learn["augments"]["items"]["pattern"] == enums.augments_pattern()
    assert learn["tasks"]["items"]["pattern"] == enums.tasks_pattern()
    assert learn["split"]["pattern"] == enums.split_pattern()


def test_schema_grid_forms_are_the_spacings_and_distributions():
    forms = at("$defs", "grid_values", "oneOf")
    spacings = tuple(f["required"][0] for f in forms if "required" in f)
    assert spacings == enums.SPACINGS
    distributions = tuple(f["required"][0] for f in at("$defs", "distribution", "oneOf"))
    assert distributions == enums.DISTRIBUTIONS


def test_dataset_registry_holds_exactly_the_enum():
    from zoo.data import known_datasets

    assert tuple(known_datasets()) == enums.DATASETS


def test_modules_that_act_on_a_name_know_exactly_the_enum():
    from zoo import phases
    from zoo.learners import AUGMENTS, LEARNERS
    from zoo.learners.harness import TASKS_FIXED
    from zoo.models import ACTIVATIONS

    assert tuple(ACTIVATIONS) == enums.ACTIVATIONS
    assert LEARNERS is enums.LEARNERS and AUGMENTS is enums.AUGMENTS
    assert TASKS_FIXED is enums.LEARN_TASKS
    assert phases.PHASES is enums.PHASES and phases.OTHER_LABELS is enums.OTHER_PHASE_LABELS


@pytest.mark.parametrize("name", enums.OPTIMIZERS)
def test_every_optimizer_name_builds_a_batched_optimizer(name):
    import torch

    from zoo.optim import BatchedOptimizer

    one = torch.ones(1)
    BatchedOptimizer(name, lr=one, momentum=one * 0, weight_decay=one * 0)


@pytest.mark.parametrize("scheme", enums.INIT_SCHEMES)
def test_every_init_scheme_initialises_a_model(scheme):
    from zoo.models import init_params

    spec = {"arch": "mlp", "depth": 1, "width": 3, "seed": 0, "init": scheme, "init_std": 0.1}
    assert set(init_params(spec, (4,), 2)) == {"layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias"}


def test_config_arch_tables_cover_every_arch():
    from zoo.config import ARCH_DEFAULTS, ARCH_KEYS

    assert tuple(ARCH_KEYS) == enums.ARCHS and tuple(ARCH_DEFAULTS) == enums.ARCHS


def test_schema_integer_limits_equal_the_grid_checks():
    from zoo.config import INT_LIMITS

    model = at("$defs", "model", "properties")
    for key, limit in INT_LIMITS.items():
        node = model[key] if key in model else at("$defs", "zoo", "properties", key)
        assert node["maximum"] == limit, key
