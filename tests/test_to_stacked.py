"""``zoo.WeightDataset`` for weight-space learners: NFN layout per shape group, a round trip back
into ``zoo.models.build_module`` that reproduces the metrics table, the official ``nfn`` layers
taking it, targets per task and a collate for mixed widths.

Two tiny zoos are trained once per module with the real pipeline: MLPs of two widths and
CNNs of two channel counts on digits.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import zoo
from zoo.config import expand_zoo
from zoo.data import load_dataset
from zoo.learners.dataset import WeightDataset, collate
from zoo.models import build_module

torch.set_num_threads(1)

MLPS = {"dataset": "digits", "model": {"arch": "mlp", "depth": 2, "activation": "relu"},
        "grid": {"width": [5, 9], "lr": [0.01, 0.1]}, "seeds": [0], "epochs": 3, "checkpoints": [0, 1, 3],
        "optimizer": {"name": "sgd", "momentum": 0.9}}
CNNS = {"dataset": "digits", "model": {"arch": "cnn", "depth": 2, "kernel": 3, "stride": 2, "activation": "tanh"},
        "grid": {"channels": [3, 4], "lr": [0.05]}, "seeds": [0], "epochs": 2, "checkpoints": [0, 2],
        "optimizer": {"name": "sgd", "momentum": 0.9}}


def _train(tmp_path_factory, name: str, spec: dict) -> Path:
    from zoo.jobs import train_into_layout, weights, write_zoo_documents

    z = expand_zoo(name, spec)
    lay = write_zoo_documents(z, {}, tmp_path_factory.mktemp("data"))
    for pop in z.populations:
        train_into_layout(lay, pop)
        weights(lay.checkpoint(pop), lay.table("weights", pop))
    return Path(lay.dir)


@pytest.fixture(scope="module")
def mlp_dir(tmp_path_factory):
    return _train(tmp_path_factory, "mlps", MLPS)


@pytest.fixture(scope="module")
def mlps(mlp_dir):
    return WeightDataset.from_zoo(mlp_dir)


@pytest.fixture(scope="module")
def cnns(tmp_path_factory):
    return WeightDataset.from_zoo(_train(tmp_path_factory, "cnns", CNNS))


def test_weight_dataset_is_public():
    assert zoo.WeightDataset is WeightDataset
    assert "WeightDataset" in zoo.__all__


def test_to_stacked_gives_the_nfn_layout_per_shape_group(mlps):
    groups = mlps.to_stacked(group_by="shape")
    assert len(groups) == 2  # widths 5 and 9
    assert sorted(len(g) for g in groups) == [6, 6]  # 2 models x 3 checkpoints each
    for g in groups:
        w = int(g.weights[0].shape[2])
        assert [tuple(t.shape) for t in g.weights] == [(6, 1, w, 64), (6, 1, w, w), (6, 1, 10, w)]
        assert [tuple(t.shape) for t in g.biases] == [(6, 1, w), (6, 1, w), (6, 1, 10)]
        assert g.layers == [("layers.0.weight", "layers.0.bias"), ("layers.1.weight", "layers.1.bias"),
                            ("layers.2.weight", "layers.2.bias")]
        for b, row in enumerate(g.index):  # exactly the dataset's tensors, in layer order
            for name, t in g.state_dict(b).items():
                assert torch.equal(t, mlps[int(row)][name])
    with pytest.raises(Exception, match="different shapes"):
        mlps.to_stacked(group_by=None)


def test_to_stacked_keeps_conv_kernels_as_trailing_dims(cnns):
    (g,) = cnns.to_stacked(index=np.flatnonzero(cnns.meta.channels.to_numpy() == 4))
    assert [tuple(t.shape) for t in g.weights] == [(2, 1, 4, 1, 3, 3), (2, 1, 4, 4, 3, 3), (2, 1, 10, 4)]
    assert [tuple(t.shape) for t in g.biases] == [(2, 1, 4), (2, 1, 4), (2, 1, 10)]


def _accuracy(spec: dict, params: dict[str, torch.Tensor]) -> float:
    ds = load_dataset(spec["dataset"], spec.get("dataset_options"))
    net = build_module(spec, ds.input_shape, ds.n_classes, params).eval()
    with torch.no_grad():
        pred = net(torch.from_numpy(ds.x_test)).argmax(1).numpy()
    return float(np.mean(pred == ds.y_test))


@pytest.mark.parametrize("which", ["mlps", "cnns"])
def test_stacked_tensors_round_trip_to_the_metrics_test_accuracy(which, request):
    data: WeightDataset = request.getfixturevalue(which)
    n_test = len(load_dataset("digits").y_test)
    checked = 0
    for g in data.to_stacked():
        for b in range(len(g)):  # every sampled model × checkpoint
            row = int(g.index[b])
            acc = _accuracy(data.spec(row), g.state_dict(b))
            assert abs(acc - data.meta.test_acc.iat[row]) <= 0.5 / n_test, (which, row)
            checked += 1
    assert checked == len(data)


def test_official_nfn_layers_take_a_stacked_group(mlps, cnns):
    from nfn.layers import HNPLinear, HNPPool, NPLinear

    for data in (mlps, cnns):
        g = data.to_stacked()[0]
        spec = g.network_spec()
        out = HNPLinear(spec, in_channels=1, out_channels=4)(g.wsfeat())
        assert [tuple(w.shape[:2]) for w in out.weights] == [(len(g), 4)] * len(g.weights)
        assert NPLinear(spec, 1, 2, io_embed=True)(g.wsfeat()).biases[-1].shape == (len(g), 2, 10)
        assert HNPPool(spec)(out).shape[:2] == (len(g), 4)


def test_final_epochs_targets_and_task_view(mlps, mlp_dir):
    final = WeightDataset.from_zoo(mlp_dir, epochs="final")
    assert set(final.meta.epoch) == {3} and len(final) == 4
    y = mlps.targets("test_acc")
    np.testing.assert_array_equal(y, mlps.meta.test_acc.to_numpy())
    np.testing.assert_allclose(mlps.targets("log_lr"), np.log10(mlps.meta.lr.to_numpy()))
    params, target = mlps.with_task("ggap")[2]
    assert target == pytest.approx(mlps.meta.ggap.iat[2]) and list(params) == list(mlps[2])
    sides = mlps.split(split_seed=0)
    assert set(sides) <= {"train", "val", "test"} and len(sides) == len(mlps)
    assert (mlps.meta.assign(side=sides).groupby("model_id").side.nunique() == 1).all()


def test_collate_pads_mixed_widths_without_changing_any_logit(mlps):
    pairs = [(mlps[i], float(mlps.meta.test_acc.iat[i])) for i in range(len(mlps))]
    batch = collate(pairs)
    widths = mlps.meta.width.to_numpy()
    assert batch["params"]["layers.1.weight"].shape == (len(mlps), 9, 9)
    assert batch["mask"][0].sum(1).tolist() == widths.astype(float).tolist()
    assert batch["target"].shape == (len(mlps),)
    ds = load_dataset("digits")
    x = torch.from_numpy(ds.x_test[:50])
    for i in range(len(mlps)):
        spec = mlps.spec(i)
        padded = {k: v[i] for k, v in batch["params"].items()}
        with torch.no_grad():
            a = build_module(spec, ds.input_shape, ds.n_classes, mlps[i])(x)
            b = build_module({**spec, "width": 9}, ds.input_shape, ds.n_classes, padded)(x)
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
