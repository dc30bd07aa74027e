"""Memory estimates from the spec alone: parameter counts and dataset shapes match the real thing."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from zoo.config import expand_zoo, load_zoos
from zoo.errors import SpecError
from zoo.resources import dataset_shape, memory_bytes, model_footprint, population_memory_bytes

ARCH_SPECS = [
    {"arch": "mlp", "depth": 3, "width": 17},
    {"arch": "cnn", "depth": 3, "channels": 5, "kernel": 3, "stride": 2},
    {"arch": "cnn", "depth": 2, "channels": 4, "kernel": 5, "stride": 1},
    {"arch": "resnet", "depth": 3, "width": 4},
    {"arch": "resnet", "depth": 1, "width": 3},
    {"arch": "transformer", "depth": 2, "width": 12, "heads": 3},
]


@pytest.mark.parametrize("arch_spec", ARCH_SPECS, ids=lambda s: f"{s['arch']}-{s['depth']}")
@pytest.mark.parametrize(("dataset", "options"), [("digits", {}), ("mnist", {"image_size": 14}), ("cifar10", {}),
                                                  ("mnist1d", {})])
def test_parameter_count_equals_the_models_module(arch_spec, dataset, options):
    from zoo.models import n_params

    shape = dataset_shape(dataset, options)
    spec = {**arch_spec, "dataset": dataset, "activation": "relu"}
    if arch_spec["arch"] in ("cnn", "resnet") and len(shape.input_shape) != 3:
        with pytest.raises(SpecError, match="needs image inputs"):
            model_footprint(spec, shape)
        return
    assert model_footprint(spec, shape).params == n_params(spec, shape.input_shape, shape.n_outputs)


@pytest.mark.parametrize(("dataset", "options"), [
    ("digits", {}), ("digits", {"flatten": True, "test_fraction": 0.5}), ("wine", {}), ("breast_cancer", {"test_fraction": 0.3}),
    ("teacher-student", {"dim": 5, "n_train": 30, "n_test": 20}),
])
def test_static_dataset_shapes_match_the_loaders(dataset, options):
    from zoo.data import load_dataset

    ds = load_dataset(dataset, options)
    shape = dataset_shape(dataset, options)
    assert shape.input_shape == ds.input_shape
    assert shape.n_outputs == (ds.y_train.shape[1] if ds.task == "regression" else ds.n_classes)
    assert (shape.n_train, shape.n_test) == (len(ds.x_train), len(ds.x_test))


@pytest.mark.parametrize("options", [{}, {"image_size": 14, "flatten": True}, {"grayscale": True, "image_size": 16}])
def test_static_image_shapes_match_the_file_loaders(tmp_path, options):
    import pickle

    from zoo.data import load_dataset

    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]:
        with open(folder / name, "wb") as fh:
            pickle.dump({b"labels": [0, 1], b"data": np.zeros((2, 3072), np.uint8)}, fh, protocol=2)
    ds = load_dataset("cifar10", {"data_root": str(tmp_path), **options})
    assert dataset_shape("cifar10", options).input_shape == ds.input_shape


BASE = {"dataset": "digits", "model": {"arch": "mlp", "depth": 2}, "grid": {"width": [8, 64], "lr": [0.1, 0.01]},
        "seeds": 4, "epochs": 2, "checkpoints": [0, 1, 2]}


def test_memory_grows_with_width_population_checkpoints_and_batch():
    zoo = expand_zoo("z", copy.deepcopy(BASE))
    by_width = {m["width"]: m.spec for m in zoo.models}
    assert memory_bytes(by_width[64], 8, 3) > memory_bytes(by_width[8], 8, 3)
    assert memory_bytes(by_width[8], 16, 3) > memory_bytes(by_width[8], 8, 3)
    assert memory_bytes(by_width[8], 8, 30) > memory_bytes(by_width[8], 8, 3)
    assert memory_bytes({**by_width[8], "batch_size": 512}, 8, 3) > memory_bytes(by_width[8], 8, 3)


def test_population_memory_bytes_reads_the_population_and_refuses_unknown_ids():
    zoo = expand_zoo("z", copy.deepcopy(BASE))
    pid = next(iter(zoo.populations))
    members = zoo.populations[pid]
    assert population_memory_bytes(zoo, pid) == memory_bytes(members[0].spec, len(members), len(zoo.checkpoints))
    with pytest.raises(SpecError, match="no population 'mlp-nope'"):
        population_memory_bytes(zoo, "mlp-nope")


def test_max_memory_gb_refuses_a_population_that_needs_more_and_names_the_fix():
    config = {"zoos": {"z": copy.deepcopy(BASE)}, "settings": {"max_memory_gb": 0.5}}
    with pytest.raises(SpecError) as exc:
        load_zoos(config)
    message = str(exc.value)
    assert "settings.max_memory_gb" in message and "settings.population_size" in message and "\n" not in message
    config["settings"]["max_memory_gb"] = 64
    assert len(load_zoos(config)["z"].models) == 16
