"""``nfn-np`` / ``nfn-hnp`` (the official ``nfn`` layers + invariant pooling + MLP head) and the
``equivariant`` learner: invariant to hidden-neuron permutations through the whole learner
(input transform, net, output scaling), built from nfn's own layer classes, and learning."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from zoo.learners.augment import permute_hidden
from zoo.learners.dataset import WeightDataset
from zoo.learners.harness import run
from zoo.learners.neural import NeuralLearner
from zoo.models import init_params

torch.set_num_threads(1)

MLP = ({"arch": "mlp", "depth": 2, "activation": "relu"}, (64,), "width")
CNN = ({"arch": "cnn", "depth": 2, "kernel": 3, "stride": 2, "activation": "relu"}, (1, 8, 8), "channels")


def random_zoo(kind, n: int = 24, widths=(5, 7), seed: int = 0) -> WeightDataset:
    """Random networks (init + noise), each scaled by s ~ log-uniform(0.2, 5); target tanh(log s)."""
    spec, shape, key = kind
    rng = np.random.default_rng(seed)
    params, rows = [], []
    for i in range(n):
        p = init_params({**spec, key: widths[i % len(widths)], "seed": seed * 1000 + i}, shape, 10)
        g = torch.Generator().manual_seed(seed * 1000 + i)
        s = float(np.exp(rng.uniform(np.log(0.2), np.log(5.0))))
        p = {k: s * v + 0.1 * torch.randn(v.shape, generator=g) for k, v in p.items()}
        params.append(p)
        rows.append({"model_id": f"m{i:03d}", "epoch": 1, "test_acc": float(np.tanh(np.log(s))), "arch": spec["arch"],
                     "activation": "relu"})
    return WeightDataset(params, pd.DataFrame(rows), {})


@pytest.mark.parametrize("kind", [MLP, CNN], ids=["mlp", "cnn"])
@pytest.mark.parametrize("arch, options", [("nfn-hnp", {}), ("nfn-np", {}), ("equivariant", {}),
                                           ("equivariant", {"stats": True})],
                         ids=["nfn-hnp", "nfn-np", "equivariant", "equivariant-stats"])
def test_hidden_neuron_permutation_leaves_predictions_unchanged(kind, arch, options):
    data = random_zoo(kind)
    y = data.meta.test_acc.to_numpy()
    est = NeuralLearner(arch, seed=0, max_epochs=2, batch_size=8, channels=(4, 4), hidden=32, **options)
    est.fit(data.subset(range(16)), y[:16], data.subset(range(16, 24)), y[16:])
    rng = np.random.default_rng(1)
    permuted = WeightDataset([permute_hidden(p, rng) for p in data.params], data.meta, {})
    assert any(not torch.equal(a["layers.0.weight" if kind is MLP else "convs.0.weight"],
                               b["layers.0.weight" if kind is MLP else "convs.0.weight"])
               for a, b in zip(data.params, permuted.params))
    a, b = est.predict_raw(data), est.predict_raw(permuted)
    assert np.abs(a).max() > 1e-3  # not a trivially constant net
    np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-5)


def test_nfn_predictor_is_built_from_the_official_layers():
    import nfn.layers

    data = random_zoo(MLP, n=8)
    est = NeuralLearner("nfn-hnp", channels=(4, 4, 2), hidden=16)
    y = data.meta.test_acc.to_numpy()
    est.fit(data.subset(range(6)), y[:6], data.subset(range(6, 8)), y[6:])
    kinds = {type(m) for m in est.net_.modules()}
    assert nfn.layers.HNPLinear in kinds and nfn.layers.HNPPool in kinds
    assert sum(isinstance(m, nfn.layers.HNPLinear) for m in est.net_.modules()) == 3
    np_est = NeuralLearner("nfn-np", channels=(4,), hidden=16).fit(data.subset(range(6)), y[:6])
    assert any(isinstance(m, nfn.layers.NPLinear) and m.io_embed for m in np_est.net_.modules())
    assert est.n_params_ == sum(p.numel() for p in est.net_.parameters())


@pytest.mark.parametrize("learner, min_tau", [("nfn-hnp", 0.3), ("equivariant", 0.6)])
def test_learner_ranks_a_weight_dependent_target(learner, min_tau):
    """100 test networks: τ > 0.3 is > 4σ above chance; the NFN overfits 80 training nets sooner."""
    data = random_zoo(MLP, n=200, seed=2)  # 80 training networks under the NFN protocol
    res, _ = run(data, "rnd", "test_acc", learner, "none", [0],
                 options={"max_epochs": 60, "channels": (8, 8), "hidden": 64, "batch_size": 16})
    assert res.status[0] == "ok"
    assert res.kendall_tau[0] > min_tau, res.kendall_tau[0]
    assert res.learner_params[0] > 0
