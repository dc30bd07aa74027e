"""``zoo.api.load_models`` and ``zoo.api.load_weights``: many models / stacked tensors at once.

References: ``zoo.load_model`` one id at a time (itself checked against two independent
forward passes in tests/test_api.py), the population checkpoints read with
``zoo.store.load_checkpoints``, and the ``weights`` Parquet files read with pyarrow.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from tiny_zoo import make_tiny_zoo

TINY = {
    "zoos": {
        "tiny": {
            "dataset": "digits",
            "model": {"arch": "mlp", "depth": 1, "activation": "relu"},
            "grid": {"width": [4, 8], "lr": [0.05, 50.0]},
            "seeds": [0, 1, 2],
            "epochs": 2,
            "checkpoints": [0, 1, 2],
            "batch_size": 64,
            "optimizer": {"name": "sgd", "momentum": 0.9},
        }
    }
}


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_tiny_zoo(tmp_path_factory.mktemp("load") / "data", TINY)


def models_table(data: Path) -> pa.Table:
    return pa.concat_tables([pq.read_table(f) for f in sorted((data / "zoos").glob("*/models/*.parquet"))])


def sampled(data: Path, n: int = 7, seed: int = 0) -> list[str]:
    ids = sorted(models_table(data)["model_id"].to_pylist())
    return [ids[i] for i in np.random.default_rng(seed).choice(len(ids), size=n, replace=False)]


def test_load_models_equals_load_model_for_sampled_ids(data):
    import torch

    import zoo
    from zoo.api import load_models

    x = torch.randn(5, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    for epoch in (0, 1, 2):
        ids = sampled(data, seed=epoch)
        nets = load_models(ids, epoch, data_dir=data)
        assert [n.model_id for n in nets] == ids
        for mid, net in zip(ids, nets):
            ref = zoo.load_model(mid, epoch, data_dir=data)
            assert (net.epoch, net.zoo, net.population, net.spec) == (ref.epoch, ref.zoo, ref.population, ref.spec)
            assert type(net) is type(ref) and not net.training
            a, b = net.state_dict(), ref.state_dict()
            assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
            with torch.no_grad():
                assert torch.equal(net(x), ref(x))


def test_load_models_takes_one_epoch_per_id_and_keeps_order_and_duplicates(data):
    import torch

    import zoo
    from zoo.api import load_models

    ids = sampled(data, n=4)
    pairs = [(ids[0], 2), (ids[1], 0), (ids[0], 0), (ids[2], 1), (ids[0], 2)]
    nets = load_models([m for m, _ in pairs], [e for _, e in pairs], data_dir=data)
    assert [(n.model_id, n.epoch) for n in nets] == pairs
    assert nets[0] is not nets[4]  # one module per request, each owning its parameters
    for (mid, e), net in zip(pairs, nets):
        ref = zoo.load_model(mid, e, data_dir=data)
        assert all(torch.equal(p, q) for p, q in zip(net.parameters(), ref.parameters()))
    with torch.no_grad():
        next(nets[0].parameters()).add_(1.0)
    assert not torch.equal(next(nets[0].parameters()), next(nets[4].parameters()))


def test_load_models_opens_each_population_checkpoint_once(data, monkeypatch):
    import safetensors

    from zoo.api import load_models

    opened = []
    real = safetensors.safe_open

    def counting(path, *a, **k):
        opened.append(Path(path).name)
        return real(path, *a, **k)

    monkeypatch.setattr(safetensors, "safe_open", counting)
    ids = sorted(models_table(data)["model_id"].to_pylist())
    nets = load_models(ids * 3, [0] * len(ids) + [1] * len(ids) + [2] * len(ids), data_dir=data)
    assert len(nets) == 3 * len(ids)
    populations = set(models_table(data)["population"].to_pylist())
    assert sorted(opened) == sorted(f"{p}.safetensors" for p in populations)


def test_load_models_errors_name_the_id_and_the_fix(data):
    from zoo.api import load_models, load_weights
    from zoo.errors import DataError

    ids = sampled(data, n=2)
    with pytest.raises(DataError, match="no model 'ffffffffffff'"):
        load_models([ids[0], "ffffffffffff"], 2, data_dir=data)
    with pytest.raises(DataError, match="available epochs: 0, 1, 2"):
        load_models(ids, 5, data_dir=data)
    with pytest.raises(DataError, match="2 model ids but 3 epochs"):
        load_models(ids, [0, 1, 2], data_dir=data)
    with pytest.raises(DataError, match="source="):
        load_weights(ids, 2, data_dir=data, source="nope")


def test_load_weights_stacks_each_models_checkpoint_tensors(data):
    import torch

    from zoo.api import load_weights
    from zoo.store import load_checkpoints

    models = models_table(data).to_pandas()
    ids = sorted(models.loc[models["width"] == 8, "model_id"])[::-1]  # any order, across populations
    for epoch in (0, 2):
        stacked = load_weights(ids, epoch, data_dir=data, source="checkpoint")
        assert set(stacked) == {"layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias"}
        assert stacked["layers.0.weight"].shape == (len(ids), 8, 64)
        for i, mid in enumerate(ids):
            pop = models.loc[models["model_id"] == mid, "population"].iloc[0]
            ckpts, order, _ = load_checkpoints(data / "zoos" / "tiny" / "checkpoints" / f"{pop}.safetensors")
            for name, t in stacked.items():
                assert torch.equal(t[i], ckpts[epoch][name][order.index(mid)]), (mid, name)


def test_load_weights_from_the_weights_table_equals_the_checkpoints(data):
    import torch

    from zoo.api import load_weights

    models = models_table(data).to_pandas()
    ids = sorted(models.loc[models["width"] == 4, "model_id"])
    epochs = [i % 3 for i in range(len(ids))]
    a = load_weights(ids, epochs, data_dir=data, source="checkpoint")
    b = load_weights(ids, epochs, data_dir=data, source="table")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # and the table path reads the Parquet values (flat, row-major) reshaped by `shape`
    w = pa.concat_tables([pq.read_table(f) for f in sorted((data / "zoos").glob("*/weights/*.parquet"))]).to_pylist()
    row = next(r for r in w if r["model_id"] == ids[1] and r["epoch"] == epochs[1] and r["tensor"] == "layers.0.weight")
    np.testing.assert_array_equal(b["layers.0.weight"][1].numpy(), np.asarray(row["values"], np.float32).reshape(row["shape"]))


def test_load_weights_refuses_models_of_different_shapes(data):
    from zoo.api import load_weights
    from zoo.errors import DataError

    models = models_table(data).to_pandas()
    ids = [models.loc[models["width"] == 4, "model_id"].iloc[0], models.loc[models["width"] == 8, "model_id"].iloc[0]]
    with pytest.raises(DataError, match="differ in tensor 'layers.0.bias'.*one architecture"):
        load_weights(ids, 2, data_dir=data)


def test_load_weights_falls_back_to_the_table_without_checkpoints(data, tmp_path):
    import shutil

    import torch

    from zoo.api import load_weights

    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    shutil.rmtree(copy / "zoos" / "tiny" / "checkpoints")
    models = models_table(data).to_pandas()
    ids = sorted(models.loc[models["width"] == 8, "model_id"])
    a, b = load_weights(ids, 2, data_dir=data), load_weights(ids, 2, data_dir=copy)
    assert all(torch.equal(a[k], b[k]) for k in a)
