"""Weight-space augmentations: symmetries keep the function (logits) exactly; perturbations do what they say."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from zoo.errors import SpecError
from zoo.learners.augment import (
    Augmenter,
    apply_permutation,
    gaussian_noise,
    mixup,
    parse_augment,
    permute_hidden,
    quantile_sparsify,
    random_permutations,
    relu_rescale,
    weight_dropout,
    weight_matching,
)
from zoo.models import build_module, init_params

torch.set_num_threads(1)

MLP = {"arch": "mlp", "depth": 3, "width": 24, "activation": "relu", "seed": 0}
CNN = {"arch": "cnn", "depth": 2, "channels": 6, "kernel": 3, "stride": 1, "activation": "relu", "seed": 0}
SHAPES = {"mlp": (64,), "cnn": (1, 8, 8)}


def random_net(spec: dict, seed: int) -> dict[str, torch.Tensor]:
    """A network with random (not merely initial) weights of spec's architecture."""
    params = init_params({**spec, "seed": seed}, SHAPES[spec["arch"]], 10)
    g = torch.Generator().manual_seed(seed)
    return {k: v + 0.3 * torch.randn(v.shape, generator=g) for k, v in params.items()}


def logits(spec: dict, params: dict[str, torch.Tensor], seed: int = 123) -> torch.Tensor:
    x = torch.randn(32, *SHAPES[spec["arch"]], generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return build_module(spec, SHAPES[spec["arch"]], 10, params)(x)


@pytest.mark.parametrize("spec", [MLP, CNN], ids=["mlp", "cnn"])
def test_permutation_preserves_logits(spec):
    a = random_net(spec, 1)
    b = permute_hidden(a, np.random.default_rng(0))
    assert any(not torch.equal(a[k], b[k]) for k in a)
    torch.testing.assert_close(logits(spec, b), logits(spec, a), atol=1e-5, rtol=0)


@pytest.mark.parametrize("spec", [MLP, CNN], ids=["mlp", "cnn"])
def test_relu_rescale_preserves_logits(spec):
    a = random_net(spec, 2)
    b = relu_rescale(a, np.random.default_rng(0), log_range=1.0)
    assert max(float((a[k] - b[k]).abs().max()) for k in a) > 0.1
    torch.testing.assert_close(logits(spec, b), logits(spec, a), atol=1e-5, rtol=0)


def test_rescale_is_refused_for_tanh():
    with pytest.raises(SpecError, match="rescale"):
        relu_rescale(random_net(MLP, 0), np.random.default_rng(0), activation="tanh")


@pytest.mark.parametrize("spec", [MLP, CNN], ids=["mlp", "cnn"])
def test_alignment_preserves_logits(spec):
    a, b = random_net(spec, 3), random_net(spec, 4)
    aligned = apply_permutation(b, weight_matching(a, b))
    torch.testing.assert_close(logits(spec, aligned), logits(spec, b), atol=1e-5, rtol=0)


@pytest.mark.parametrize("spec", [MLP, CNN], ids=["mlp", "cnn"])
def test_weight_matching_recovers_known_permutation(spec):
    a = random_net(spec, 5)
    known = random_permutations(a, np.random.default_rng(7))
    b = apply_permutation(a, known)
    found = weight_matching(a, b)
    for q, p in zip(known, found):
        # b's unit j is a's unit q[j]; aligning b to a must pick, for a's unit i, b's unit q⁻¹(i).
        np.testing.assert_array_equal(p, np.argsort(q))
    for k, v in apply_permutation(b, found).items():
        assert torch.equal(v, a[k])


def test_matching_reduces_distance_to_reference():
    a, b = random_net(MLP, 8), random_net(MLP, 9)
    aligned = apply_permutation(b, weight_matching(a, b))
    dist = lambda x: sum(float((a[k] - x[k]).pow(2).sum()) for k in a)  # noqa: E731
    assert dist(aligned) < dist(b)


def test_mixup_after_matching_of_a_permuted_copy_is_the_same_network():
    a = random_net(MLP, 10)
    b = permute_hidden(a, np.random.default_rng(1))
    matched = mixup(a, apply_permutation(b, weight_matching(a, b)), 0.3)
    torch.testing.assert_close(logits(MLP, matched), logits(MLP, a), atol=1e-5, rtol=0)
    plain = mixup(a, b, 0.3)  # without alignment the average of two copies is a different function
    assert float((logits(MLP, plain) - logits(MLP, a)).abs().max()) > 1e-2


def test_mixup_mixes_targets_linearly():
    a, b = random_net(MLP, 11), random_net(MLP, 12)
    aug = Augmenter("mixup", seed=0)
    out, y = aug(a, torch.tensor([1.0]), lambda rng: (b, torch.tensor([3.0])))
    lam = (3.0 - float(y)) / 2.0  # y = λ·1 + (1-λ)·3
    for k in a:
        torch.testing.assert_close(out[k], lam * a[k] + (1 - lam) * b[k], atol=1e-6, rtol=0)


def test_dropout_zeroes_about_p_of_the_weights_and_no_bias():
    a = random_net(MLP, 13)
    b = weight_dropout(a, np.random.default_rng(0), p=0.2)
    n = sum(a[k].numel() for k in a if k.endswith("weight"))
    zeros = sum(int((b[k] == 0).sum()) for k in b if k.endswith("weight"))
    assert abs(zeros / n - 0.2) < 4 * np.sqrt(0.2 * 0.8 / n)  # binomial, 4 sigma
    assert all(torch.equal(a[k], b[k]) for k in a if k.endswith("bias"))


def test_sparsify_zeroes_exactly_the_small_magnitudes():
    a = random_net(MLP, 14)
    b = quantile_sparsify(a, np.random.default_rng(0), max_quantile=0.5)
    for k in a:
        if k.endswith("bias"):
            assert torch.equal(a[k], b[k])
            continue
        kept = b[k] != 0
        assert torch.equal(b[k][kept], a[k][kept])
        assert float(a[k][~kept].abs().max()) <= float(a[k][kept].abs().min())
        assert 0 <= (~kept).float().mean() <= 0.5 + 1e-3


def test_noise_scale_is_relative_to_each_tensor():
    a = random_net(MLP, 15)
    b = gaussian_noise(a, np.random.default_rng(0), sigma=0.1)
    w = "layers.0.weight"
    ratio = float((b[w] - a[w]).std() / a[w].std())
    assert 0.09 < ratio < 0.11


def test_unknown_augmentation_is_a_spec_error():
    assert parse_augment("none") == []
    assert parse_augment("permutation+noise") == ["permutation", "noise"]
    with pytest.raises(SpecError, match="unknown augmentation"):
        parse_augment("rotate")
