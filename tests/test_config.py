"""Spec validation and phase-grid expansion (DESIGN §3)."""

from __future__ import annotations

import copy

import pytest

from zoo.config import expand_zoo, grid_values, load_config, load_zoos, validate
from zoo.errors import SpecError

BASE = {
    "dataset": "digits",
    "model": {"arch": "mlp", "depth": 1},
    "grid": {"width": [4, 8], "lr": {"logspace": [-2, 0, 3]}},
    "seeds": [0, 1],
    "epochs": 3,
    "checkpoints": [0, 3],
}


def config(**changes):
    zoo = copy.deepcopy(BASE)
    zoo.update(changes)
    return {"zoos": {"z": zoo}}


def test_grid_expands_to_product_of_axes_and_seeds():
    zoo = load_zoos(config())["z"]
    assert len(zoo.models) == 2 * 3 * 2
    assert {m["width"] for m in zoo.models} == {4, 8}
    assert sorted({m["lr"] for m in zoo.models}) == [0.01, 0.1, 1.0]


def test_logspace_and_linspace_closed_forms():
    assert grid_values({"logspace": [-3, 0, 4]}) == [0.001, 0.01, 0.1, 1.0]
    assert grid_values({"linspace": [0, 1, 5]}) == [0.0, 0.25, 0.5, 0.75, 1.0]


def test_model_id_is_stable_and_independent_of_zoo_name_and_grid_order():
    a = expand_zoo("first", copy.deepcopy(BASE))
    flipped = copy.deepcopy(BASE)
    flipped["grid"] = {"lr": BASE["grid"]["lr"], "width": [8, 4]}
    b = expand_zoo("second", flipped)
    assert {m.model_id for m in a.models} == {m.model_id for m in b.models}
    # A pinned id guards against accidental changes of the canonical spec (would rename every model).
    spec = {m.model_id: m.spec for m in a.models}
    assert len(spec) == len(a.models)


def test_populations_group_models_that_differ_only_in_per_model_scalars():
    zoo = load_zoos(config())["z"]
    assert len(zoo.populations) == 2  # one per width; lr and seed vary inside
    for members in zoo.populations.values():
        assert len({m["width"] for m in members}) == 1


def test_population_size_caps_models_per_job():
    cfg = config()
    cfg["settings"] = {"population_size": 4}
    zoo = load_zoos(cfg)["z"]
    assert max(len(p) for p in zoo.populations.values()) <= 4
    assert sum(len(p) for p in zoo.populations.values()) == 12


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"colour": "red"}, "colour"),
        ({"grid": {}}, "grid"),
        ({"grid": {"width": []}}, "grid.width"),
        ({"grid": {"lr": [-0.1]}}, "grid.lr"),
        ({"grid": {"bogus": [1]}}, "bogus"),
        ({"dataset": "imagenet-42"}, "dataset"),
        ({"model": {"arch": "transformer9"}}, "model.arch"),
        ({"checkpoints": [0, 99]}, "checkpoints"),
        ({"seeds": []}, "seeds"),
    ],
)
def test_malformed_spec_gives_one_line_error_naming_the_field(changes, field):
    with pytest.raises(SpecError) as exc:
        cfg = config(**changes)
        validate(cfg)
        load_zoos(cfg)
    message = str(exc.value)
    assert "\n" not in message
    assert field in message


def test_too_large_grid_needs_consent():
    cfg = config()
    cfg["settings"] = {"max_models": 5}
    with pytest.raises(SpecError, match="max_models"):
        load_zoos(cfg)
    cfg["settings"]["allow_large"] = True
    assert len(load_zoos(cfg)["z"].models) == 12


def test_malformed_yaml_names_file_and_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("zoos:\n  z: {dataset: digits\n")
    with pytest.raises(SpecError) as exc:
        load_config(bad)
    assert str(bad) in str(exc.value) and "line" in str(exc.value)


def test_embedded_demo_config_is_a_phase_grid():
    zoo = load_zoos(load_config("config/config.yaml"))["digits-mlp"]
    assert len(zoo.models) >= 96
    assert len({m["width"] for m in zoo.models}) >= 4
    assert len({m["lr"] for m in zoo.models}) >= 4
    assert len({m["seed"] for m in zoo.models}) >= 3
    assert 0 in zoo.checkpoints and len(zoo.checkpoints) >= 5
