"""Spec axes beyond the first release: new grid keys, random sampling (``sample: N``), mixed
architectures and datasets in one config, stable model ids, and the example configs."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from zoo.config import expand_zoo, load_config, load_zoos, population_key, validate
from zoo.data import known_datasets
from zoo.errors import SpecError
from zoo.hashing import short_hash

CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"
EXAMPLES = ["small-cnn-zoo.yaml", "model-zoos.yaml", "phase-resnet.yaml", "beyond-images.yaml"]


def base(**extra):
    return {"dataset": "digits", "model": {"arch": "mlp"}, "grid": {"lr": [0.1]}, "seeds": [0], "epochs": 2,
            "checkpoints": [0, 2], **extra}


def test_mixed_architectures_and_datasets_expand_into_the_right_populations():
    config = {"zoos": {
        "a-mlp": base(dataset="wine", grid={"width": [4, 8], "lr": [0.01, 0.1], "dropout": [0.0, 0.5]}, seeds=2),
        "b-cnn": base(model={"arch": "cnn"}, grid={"activation": ["relu", "tanh"], "init": ["default", "xavier_normal"]}),
        "c-resnet": base(dataset="fashion-mnist", dataset_options={"n_train": 100},
                         model={"arch": "resnet", "depth": 2}, grid={"width": [2, 4], "batch_size": [16, 64]}, seeds=3),
    }}
    validate(config)
    zoos = load_zoos(config)
    a, b, c = zoos["a-mlp"], zoos["b-cnn"], zoos["c-resnet"]
    # a: width is shape → 2 populations; lr, dropout, seed are per model → 8 models each.
    assert len(a.models) == 16 and sorted(len(p) for p in a.populations.values()) == [8, 8]
    assert all(pid.startswith("mlp-") for pid in a.populations)
    # b: activation is shape, init per model → 2 populations of 2.
    assert len(b.models) == 4 and sorted(len(p) for p in b.populations.values()) == [2, 2]
    # c: width × batch size → 4 populations of 3 seeds.
    assert len(c.models) == 12 and len(c.populations) == 4 and all(pid.startswith("resnet-") for pid in c.populations)
    for zoo in zoos.values():
        for members in zoo.populations.values():
            keys = {short_hash(population_key(m.spec)) for m in members}
            assert len(keys) == 1
    assert {m.spec["dataset"] for m in c.models} == {"fashion-mnist"}
    assert all(m.spec["dataset_options"] == {"n_train": 100} for m in c.models)


def test_new_axes_at_their_defaults_do_not_rename_existing_models():
    plain = expand_zoo("t", base())
    explicit = expand_zoo("t", base(dropout=0.0, label_noise=0.0, init="default", init_std=0.3))
    assert [m.model_id for m in plain.models] == [m.model_id for m in explicit.models]
    assert plain.models[0].spec == explicit.models[0].spec
    # The digits demo's first model keeps the id it had before these axes existed.
    demo = load_zoos(load_config(CONFIG_DIR / "config.yaml"))["digits-mlp"]
    assert demo.models[0].model_id == "2e1935999b2e"


def test_init_std_is_kept_only_for_schemes_that_use_it():
    zoo = expand_zoo("t", base(grid={"init": ["kaiming_normal", "normal"], "init_std": [0.01, 0.1]}))
    # kaiming ignores init_std: its two grid values collapse into one model.
    assert sorted((m.spec["init"], m.spec.get("init_std")) for m in zoo.models) == [
        ("kaiming_normal", None), ("normal", 0.01), ("normal", 0.1)]
    assert expand_zoo("t", base(init="uniform")).models[0].spec["init_std"] == 0.05


def test_data_root_is_not_part_of_the_model_id():
    a = expand_zoo("t", base(dataset_options={"data_root": "/a"}))
    b = expand_zoo("t", base(dataset_options={"data_root": "/b"}))
    assert a.models[0].model_id == b.models[0].model_id == expand_zoo("t", base()).models[0].model_id
    assert a.models[0].spec["dataset_options"] == {"data_root": "/a"}  # the job still finds the files


def test_sample_draws_n_combinations_within_their_distributions():
    raw = base(grid={"lr": {"loguniform": [1e-4, 1e-1]}, "dropout": {"uniform": [0.1, 0.6]},
                     "init": {"choice": ["xavier_normal", "kaiming_normal"]}, "width": {"randint": [4, 9]},
                     "batch_size": [16, 64]},
               sample=200, seeds=[0, 1])
    zoo = expand_zoo("t", raw)
    assert len(zoo.models) == 2 * 200 * 2
    specs = [m.spec for m in zoo.models]
    assert all(1e-4 <= s["lr"] <= 1e-1 and 0.1 <= s["dropout"] <= 0.6 and 4 <= s["width"] <= 9 for s in specs)
    assert {s["width"] for s in specs} == set(range(4, 10)) and {s["init"] for s in specs} == {"xavier_normal", "kaiming_normal"}
    # Log-uniform: about half of the draws lie below the geometric mean 10**-2.5 (binomial, 5 sigma).
    lrs = [s["lr"] for s in specs[:400:2]]  # batch size 16, seed 0: each draw once
    below = sum(lr < 10**-2.5 for lr in lrs)
    assert abs(below - 100) <= 5 * math.sqrt(50)
    # Deterministic per sample seed, different for another seed.
    again = expand_zoo("t", raw)
    assert [m.model_id for m in again.models] == [m.model_id for m in zoo.models]
    other = expand_zoo("t", {**raw, "sample": {"n": 200, "seed": 1}})
    assert {m.model_id for m in other.models} != {m.model_id for m in zoo.models}


def test_sample_needs_a_distribution_and_a_distribution_needs_sample():
    with pytest.raises(SpecError, match="add 'sample: N'"):
        expand_zoo("t", base(grid={"lr": {"uniform": [0.1, 0.2]}}))
    with pytest.raises(SpecError, match="at least one distribution"):
        expand_zoo("t", base(sample=3))
    with pytest.raises(SpecError, match=r"dropout 1.5 must lie in \[0, 1\)"):
        expand_zoo("t", base(grid={"dropout": {"uniform": [0.0, 1.5]}}, sample=3))
    with pytest.raises(SpecError, match="lower bound"):
        expand_zoo("t", base(grid={"lr": {"loguniform": [0.1, 0.01]}}, sample=3))


@pytest.mark.parametrize(("key", "value", "message"), [
    ("label_noise", 1.0, "must lie in"), ("init", "orthogonal", "choose one of"), ("init_std", 0.0, "must be > 0"),
])
def test_bad_new_axis_values_are_spec_errors(key, value, message):
    with pytest.raises(SpecError, match=message) as err:
        expand_zoo("t", base(grid={"lr": [0.1], key: [value]}))
    assert f"grid.{key}" in str(err.value)


def test_schema_knows_the_new_keys():
    validate({"zoos": {"t": base(model={"arch": "transformer", "width": 8, "heads": 4}, grid={"heads": [1, 2]})}})
    validate({"zoos": {"z": base(model={"arch": "resnet", "width": 4}, dropout=0.1, label_noise=0.2,
                                 init="normal", init_std=0.1, sample={"n": 2, "seed": 3},
                                 grid={"lr": {"loguniform": [0.01, 0.1]}})}})
    with pytest.raises(SpecError):
        validate({"zoos": {"z": base(model={"arch": "vit"})}})


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_configs_validate_and_expand(name):
    zoos = load_zoos(load_config(CONFIG_DIR / name))
    text = (CONFIG_DIR / name).read_text()
    assert "Imitates" in text and "What differs" in text
    for zoo in zoos.values():
        assert zoo.raw["dataset"] in known_datasets()
        assert 4 <= len(zoo.models) <= 200


def test_models_table_has_typed_columns_for_the_new_axes():
    from zoo.tables import models_table

    zoo = expand_zoo("t", base(grid={"dropout": [0.0, 0.25], "init": ["default", "normal"]}))
    table = models_table("t", "p", list(zoo.models), 10, [None] * len(zoo.models), "h")
    rows = sorted(table.select(["dropout", "init", "init_std", "label_noise"]).to_pylist(),
                  key=lambda r: (r["dropout"], r["init"]))
    assert rows == [
        {"dropout": 0.0, "init": "default", "init_std": None, "label_noise": 0.0},
        {"dropout": 0.0, "init": "normal", "init_std": 0.05, "label_noise": 0.0},
        {"dropout": 0.25, "init": "default", "init_std": None, "label_noise": 0.0},
        {"dropout": 0.25, "init": "normal", "init_std": 0.05, "label_noise": 0.0},
    ]
