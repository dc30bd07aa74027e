"""Spec validation and phase-grid expansion (DESIGN §3)."""

from __future__ import annotations

import copy

import pytest

from zoo.config import expand_zoo, grid_values, load_config, load_zoos, validate
from zoo.errors import SpecError
from zoo.spec_checks import count_models

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
    assert sorted(spec)[:3] == ["28b46a3634ad", "3065be387110", "4f1deca83a71"]
    assert sorted(a.populations) == ["mlp-7e09325068", "mlp-b93bb1d1da"]


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
        ({"grid": [1, 2]}, "grid"),  # an empty grid {} is a zoo of seeds only (valid)
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


# ---------------------------------------------------------------------------- YAML and values
def write(tmp_path, text: str):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


SPEC_YAML = """zoos:
  z:
    dataset: digits
    model: {arch: mlp, depth: 1}
    grid: {width: [4], lr: [1e-3, 1E-2, 5.0e-2, 1.e-1]}
    seeds: 2
    epochs: 3
    checkpoints: [0, 3]
    optimizer: {name: sgd, weight_decay: 5e-4}
"""


def test_yaml_12_floats_are_floats(tmp_path):
    config = load_config(write(tmp_path, SPEC_YAML))
    zoo = config["zoos"]["z"]
    assert zoo["grid"]["lr"] == [0.001, 0.01, 0.05, 0.1]
    assert zoo["optimizer"]["weight_decay"] == 0.0005
    assert len(load_zoos(config)["z"].models) == 8


def test_duplicate_key_names_the_key_and_both_lines(tmp_path):
    path = write(tmp_path, SPEC_YAML + "    epochs: 30\n")
    with pytest.raises(SpecError) as exc:
        load_config(path)
    assert str(exc.value) == (f"{path}: line 10, column 5: duplicate key 'epochs' (first at line 7, column 5); "
                              "YAML keeps only the last one, so remove or rename one of them")


def test_anchors_and_aliases_are_refused_with_the_line(tmp_path):
    path = write(tmp_path, SPEC_YAML.replace("seeds: 2", "seeds: &s [0, 1]\n    checkpoints_copy: *s"))
    with pytest.raises(SpecError, match=r"line 6, column 12: YAML anchor '&s' is not allowed"):
        load_config(path)


@pytest.mark.parametrize(("changes", "message"), [
    ({"optimizer": {"lr": "1e-3"}}, "field 'zoos.z.optimizer.lr': '1e-3' is a string; write 1.0e-3 without quotes"),
    ({"grid": {"lr": ["0.5"]}}, "field 'grid.lr': '0.5' is a string; write 0.5 without quotes"),
    ({"epochs": 3.0}, "field 'zoos.z.epochs': 3.0 is not an integer; write 3"),
    ({"seeds": 3.0}, "field 'zoos.z.seeds': 3.0 is not an integer; write 3"),
    ({"optimizer": {"momentum": float("nan")}}, "field 'zoos.z.optimizer.momentum': nan is not a finite number"),
    ({"dataset_options": {"test_fraction": float("inf")}}, "field 'zoos.z.dataset_options.test_fraction': inf"),
    ({"phases": {"cka": float("nan")}}, "field 'zoos.z.phases.cka': nan"),
    ({"seeds": [2**63]}, "field 'zoos.z.seeds.0': 9223372036854775808 does not fit a 64-bit integer"),
    ({"dataset_options": {"test_fraction": 1.0}}, "field 'dataset_options.test_fraction': 1.0 must lie strictly between 0 and 1"),
    ({"dataset_options": {"n_train": 10}}, "dataset 'digits' takes no option 'n_train'; its options: test_fraction, flatten"),
    ({"grid": {"depth": [5000]}}, "field 'grid.depth': 5,000 is above the limit 1,000"),
    ({"model": {"arch": "mlp", "width": 10**9}}, "field 'zoos.z.model.width': 1000000000 is above the limit 16777216"),
])
def test_bad_values_get_one_line_naming_the_field_and_fix(changes, message):
    cfg = config(**changes)
    with pytest.raises(SpecError) as exc:
        validate(cfg)
        load_zoos(cfg)
    assert message in str(exc.value) and "\n" not in str(exc.value)


def test_learn_names_only_zoos_of_the_config():
    cfg = config()
    cfg["learn"] = {"zoos": ["z", "nonexistent"]}
    with pytest.raises(SpecError, match=r"field 'learn.zoos': unknown zoo 'nonexistent'; known zoos: z$"):
        validate(cfg)
    cfg["learn"] = {"zoos": ["z"], "augments": ["mixup+mixup-match"]}
    with pytest.raises(SpecError, match="more than one MixUp"):
        validate(cfg)
    cfg["learn"] = {"zoos": ["z"], "augments": ["noise+permutation"], "split": "phase:IV-A"}
    validate(cfg)


# ---------------------------------------------------------------------------- model count before expansion
@pytest.mark.parametrize("changes", [
    {}, {"seeds": 5}, {"grid": {"width": {"linspace": [4, 16, 4]}, "lr": [0.1]}},
    {"grid": {"lr": {"loguniform": [1.0e-3, 1.0]}, "width": [4, 8]}, "sample": {"n": 7, "seed": 1}},
])
def test_model_count_by_arithmetic_equals_the_expansion(changes):
    zoo = config(**changes)["zoos"]["z"]
    assert count_models("z", zoo) == len(expand_zoo("z", zoo).models)


def test_model_count_is_refused_before_any_grid_list_is_built(monkeypatch):
    import zoo.config as zc

    def no_lists(*_args):
        raise AssertionError("grid_values ran before the model count was checked")

    monkeypatch.setattr(zc, "grid_values", no_lists)
    monkeypatch.setattr(zc, "sample_draws", no_lists)
    cfg = config(grid={"lr": {"logspace": [-4, 0, 100000]}, "width": {"linspace": [1, 100, 100000]}}, seeds=1000000)
    validate(cfg)
    with pytest.raises(SpecError, match="models"):
        load_zoos(cfg)


def test_logspace_exponents_that_overflow_a_float_are_refused():
    with pytest.raises(SpecError, match="overflows a float"):
        load_zoos(config(grid={"lr": {"logspace": [-3, 400, 3]}}))
    with pytest.raises(SpecError, match="overflows a float"):
        grid_values({"logspace": [300, 400, 3]})


def test_one_entry_point_for_the_workflow_and_the_cli_reads_the_same(tmp_path):
    import yaml

    from zoo.config import load_workflow_config

    path = write(tmp_path, SPEC_YAML)
    from_cli = load_zoos(load_config(path))["z"]
    snakemake_config = yaml.safe_load(path.read_text())
    from_workflow = load_workflow_config(snakemake_config, [str(path)])["z"]
    assert [m.model_id for m in from_workflow.models] == [m.model_id for m in from_cli.models]
    assert snakemake_config == load_config(path)
