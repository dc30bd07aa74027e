"""INR zoos (issue 13, DESIGN §11): SIREN populations fit signals bit-reproducibly, tables hold
reconstruction quality, symmetries are exact, and the learner split follows the signals' split."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from zoo.cli import main
from zoo.config import load_zoos, validate
from zoo.errors import SpecError

sys.path.insert(0, str(Path(__file__).parent))
from tiny_zoo import make_tiny_zoo  # noqa: E402

FASHION = Path("/usr/share/datasets/fashion-mnist")


def inr_spec(**over) -> dict:
    zoo = {"dataset": "digits", "model": {"arch": "siren", "width": 8, "depth": 2, "omega_0": 30.0},
           "signals": {"per_class": 2, "split": "both"}, "grid": {}, "seeds": [0], "epochs": 30,
           "checkpoints": [0, 10, 30], "optimizer": {"name": "adam", "lr": 1e-3}}
    zoo.update(over)
    return {"zoos": {"inr": zoo}}


@pytest.fixture(scope="module")
def tiny_inr(tmp_path_factory) -> Path:
    data = tmp_path_factory.mktemp("inr") / "data"
    return make_tiny_zoo(data, inr_spec())


def fit(specs, ids, checkpoints=(0, 5, 20)):
    from zoo.inr import fit_population

    return fit_population(specs, ids, list(checkpoints))


def test_siren_weights_independent_of_population_size_and_order():
    torch.set_num_threads(1)
    zoo = load_zoos(inr_spec(epochs=20, checkpoints=[0, 5, 20]))["inr"]
    members = list(next(iter(zoo.populations.values())))[:7]
    specs = [{**m.spec, "max_loss": 1e3} for m in members]
    ids = [m.model_id for m in members]
    big = fit(specs, ids)
    alone = fit([specs[3]], [ids[3]])
    other = fit(specs[1:5][::-1], ids[1:5][::-1])  # another size and order: model 3 sits at index 1
    for epoch in (0, 5, 20):
        for name, stacked in big.checkpoints[epoch].items():
            assert torch.equal(stacked[3], alone.checkpoints[epoch][name][0]), (epoch, name)
            assert torch.equal(stacked[3], other.checkpoints[epoch][name][1]), (epoch, name)
    assert not torch.equal(big.checkpoints[0]["layers.0.weight"][0], big.checkpoints[0]["layers.0.weight"][1]), \
        "each INR starts from its own draw"


def test_shared_init_starts_every_signal_of_a_seed_from_the_same_weights():
    per_signal = load_zoos(inr_spec())["inr"]
    shared = load_zoos(inr_spec(signals={"per_class": 2, "split": "both", "init": "shared"}, seeds=[0, 1]))["inr"]
    assert {m.model_id for m in per_signal.models}.isdisjoint({m.model_id for m in shared.models})
    from zoo.siren import init_siren

    by_seed: dict[int, list] = {}
    for m in shared.models:
        by_seed.setdefault(m.spec["seed"], []).append(init_siren(m.spec, 2, 1)["layers.1.weight"])
    for weights in by_seed.values():
        assert len(weights) == 40 and all(torch.equal(w, weights[0]) for w in weights)
    assert not torch.equal(by_seed[0][0], by_seed[1][0])  # another seed, another draw
    firsts = [init_siren(m.spec, 2, 1)["layers.1.weight"] for m in per_signal.models[:2]]
    assert not torch.equal(*firsts)


def _reconstruction(spec, params, signals, split, index):
    from zoo.models import build_module

    net = build_module(spec, signals.input_shape, signals.out_features, params)
    with torch.no_grad():
        out = net(torch.from_numpy(signals.coords)).double()
    target = torch.from_numpy(signals.signal(split, index)).double()
    return out, float(((out - target) ** 2).mean())


def test_psnr_recomputed_from_checkpoint_with_plain_module_equals_metrics_row(tiny_inr):
    from zoo.datasets.signals import load_signal_set
    from zoo.store import load_checkpoints, read_table

    zdir = tiny_inr / "zoos" / "inr"
    ckpt = next((zdir / "checkpoints").glob("*.safetensors"))
    ckpts, ids, _meta = load_checkpoints(ckpt)
    models = read_table(zdir / "models" / f"{ckpt.stem}.parquet", "models").to_pandas().set_index("model_id")
    metrics = read_table(zdir / "metrics" / f"{ckpt.stem}.parquet", "metrics").to_pandas()
    assert metrics["test_acc"].isna().all() and metrics["train_acc"].isna().all()  # nothing overloaded
    signals = load_signal_set("digits")
    checked = 0
    for i in (0, 5, len(ids) - 1):
        mid = ids[i]
        row = models.loc[mid]
        spec = {"arch": "siren", "width": 8, "depth": 2, "omega_0": row["omega_0"], "hidden_omega": row["hidden_omega"]}
        for epoch in (0, 30):
            params = {k: v[i] for k, v in ckpts[epoch].items()}
            _, mse = _reconstruction(spec, params, signals, row["signal_split"], int(row["signal_index"]))
            m = metrics[(metrics["model_id"] == mid) & (metrics["epoch"] == epoch)].iloc[0]
            assert m["recon_mse"] == pytest.approx(mse, rel=1e-4)
            assert m["psnr_db"] == pytest.approx(10 * math.log10(4.0 / mse), abs=1e-3)
            assert m["train_loss"] == m["recon_mse"]
            checked += 1
    assert checked == 6
    assert metrics.loc[metrics["epoch"] == 30, "psnr_db"].median() > metrics.loc[metrics["epoch"] == 0, "psnr_db"].median()


def test_siren_symmetries_preserve_the_reconstruction(tiny_inr):
    from zoo.datasets.signals import load_signal_set
    from zoo.learners.augment import permute_hidden, relu_rescale, sign_flip
    from zoo.store import load_checkpoints

    ckpt = next((tiny_inr / "zoos" / "inr" / "checkpoints").glob("*.safetensors"))
    ckpts, _ids, _ = load_checkpoints(ckpt)
    signals = load_signal_set("digits")
    spec = {"arch": "siren", "width": 8, "depth": 2, "omega_0": 30.0, "hidden_omega": 30.0}
    params = {k: v[2] for k, v in ckpts[30].items()}
    ref, _ = _reconstruction(spec, params, signals, "train", 0)
    rng = np.random.default_rng(0)
    for name, sym in (("permutation", lambda p: permute_hidden(p, rng)),
                      ("signflip", lambda p: sign_flip(p, rng, "sine")),
                      ("both", lambda p: sign_flip(permute_hidden(p, rng), rng, "sine"))):
        moved = sym(params)
        assert any(not torch.equal(moved[k], params[k]) for k in params), name
        out, _ = _reconstruction(spec, moved, signals, "train", 0)
        assert torch.allclose(out, ref, atol=1e-5, rtol=0), (name, float((out - ref).abs().max()))
    with pytest.raises(SpecError, match="rescale"):
        relu_rescale(params, rng, activation="sine")  # not a symmetry of sine networks
    with pytest.raises(SpecError, match="signflip"):
        sign_flip(params, rng, activation="relu")


def test_train_test_sides_follow_the_signals_split(tiny_inr):
    from zoo.learners.dataset import WeightDataset
    from zoo.learners.harness import run
    from zoo.learners.splits import assign_models

    data = WeightDataset.from_zoo(tiny_inr / "zoos" / "inr", epochs="final")
    meta = data.meta.drop_duplicates("model_id").set_index("model_id")
    sides = assign_models(data.meta, "signal", split_seed=0)
    assert {m for m, s in sides.items() if s == "test"} == set(meta.index[meta["signal_split"] == "test"])
    fitted = {(meta.loc[m, "signal_split"], meta.loc[m, "signal_index"]) for m, s in sides.items() if s != "test"}
    assert all(split == "train" for split, _ in fitted), "no test signal is fitted in a train or val INR"
    res, pred = run(data, "inr", "class", "statnn-gbm", "none", [0], split="signal")
    assert res["status"].tolist() == ["ok"] and res["n_test"].iloc[0] == 20
    assert 0.0 <= res["accuracy"].iloc[0] <= 1.0
    test_ids = set(pred.loc[pred["side"] == "test", "model_id"])
    assert test_ids == set(meta.index[meta["signal_split"] == "test"])


def test_models_table_carries_the_signal(tiny_inr):
    import duckdb

    con = duckdb.connect(str(tiny_inr / "zoo.duckdb"), read_only=True)
    rows = con.execute("SELECT signal_split, count(*), count(DISTINCT signal_class), count(DISTINCT signal_index) "
                       "FROM models GROUP BY ALL ORDER BY 1").fetchall()
    assert rows == [("test", 20, 10, 20), ("train", 20, 10, 20)]


@pytest.mark.parametrize(("over", "field"), [
    ({"dataset": "wine"}, "dataset"),
    ({"signals": {"per_class": 50, "split": "test"}}, "signals.per_class"),
    ({"signals": {"per_class": 100000, "split": "test"}}, "signals.per_class"),
    ({"model": {"arch": "siren", "width": 8, "depth": 2, "omega_0": 0}}, "omega_0"),
    ({"model": {"arch": "siren", "width": 8, "depth": 2, "omega_0": -3.0}}, "omega_0"),
    ({"batch_size": 32}, "batch_size"),
    ({"signals": None}, "signals"),
])
def test_bad_inr_spec_is_one_line_naming_zoo_and_field(tmp_path, monkeypatch, capsys, over, field):
    monkeypatch.chdir(tmp_path)
    cfg = inr_spec(**over)
    if over.get("signals", 1) is None:
        del cfg["zoos"]["inr"]["signals"]
    import yaml

    path = tmp_path / "inr.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["validate", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert "inr" in err and field in err, err
    assert not (tmp_path / "data").exists()


def test_signals_on_a_classifier_zoo_is_refused():
    cfg = {"zoos": {"c": {"dataset": "digits", "model": {"arch": "mlp"}, "grid": {}, "seeds": 1, "epochs": 1,
                          "checkpoints": [1], "signals": {"per_class": 1}}}}
    validate(cfg)
    with pytest.raises(SpecError, match="zoo 'c': field 'signals' applies to arch siren only"):
        load_zoos(cfg)


def test_mnist1d_signals_are_one_dimensional():
    from zoo.datasets.signals import load_signal_set

    s = load_signal_set("mnist1d")
    assert s.coords.shape == (40, 1) and s.values["train"].shape[1:] == (40, 1)
    assert s.values["train"].min() == pytest.approx(-1.0) and s.values["train"].max() == pytest.approx(1.0)


@pytest.mark.skipif(not FASHION.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")
def test_fashion_mnist_signals_are_28_by_28_images_in_minus_one_to_one():
    from zoo.datasets.signals import load_signal_set

    s = load_signal_set("fashion-mnist")
    assert s.coords.shape == (784, 2) and s.values["test"].shape == (10_000, 784, 1)
    assert float(s.values["train"].min()) == pytest.approx(-1.0) and float(s.values["train"].max()) == pytest.approx(1.0)
