"""Spectral features agree with WeightWatcher 0.7.7, with closed forms and with known power laws.

References: ``weightwatcher`` run on CPU on the same layers (its default power-law fitter,
``pl_package='ww'``), exact formulas for matrices with known singular values, and samples
drawn from a Pareto law with a known exponent. Nothing is compared with our own code.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math

import numpy as np
import pytest
import torch

from zoo.powerlaw_fit import fit_powerlaw
from zoo.spectral import layer_metrics, spectral_metrics

torch.set_num_threads(1)
REL = 1e-6
# WeightWatcher column → ours.
WW_COLUMNS = {"alpha": "alpha", "xmin": "xmin", "D": "ks_distance", "log_norm": "log_norm",
              "log_spectral_norm": "log_spectral_norm", "stable_rank": "stable_rank", "entropy": "entropy",
              "alpha_weighted": "alpha_weighted", "sigma": "alpha_sigma", "num_pl_spikes": "n_tail",
              "mp_softrank": "mp_softrank"}


def _quiet_ww():
    import weightwatcher as ww

    logging.getLogger("weightwatcher").setLevel(logging.ERROR)
    return ww


def ww_details(layers: list[torch.nn.Module]) -> list[dict]:
    """WeightWatcher's per-layer details for ``layers`` (every layer analysed, MP fit on)."""
    ww = _quiet_ww()
    with contextlib.redirect_stdout(io.StringIO()):  # its small-N fit prints a line
        d = ww.WeightWatcher(model=torch.nn.ModuleList(layers)).analyze(mp_fit=True, min_evals=1)
    return [d[d["name"] == str(i)].iloc[0].to_dict() for i in range(len(layers))]


def heavy_tailed(shape: tuple[int, ...], seed: int, df: float = 2.5) -> torch.Tensor:
    """Student-t entries: a heavy-tailed ESD like that of well-trained layers."""
    g = np.random.default_rng(seed)
    return torch.tensor(g.standard_t(df, size=shape) / math.sqrt(shape[1]), dtype=torch.float32)


def seeded_layers() -> list[torch.nn.Module]:
    """Layers of seeded zoo MLP and CNN models (PyTorch init) plus heavy-tailed variants."""
    from zoo.models import build_module, init_params

    mlp = {"arch": "mlp", "depth": 2, "width": 32, "activation": "relu", "seed": 3}
    cnn = {"arch": "cnn", "depth": 2, "channels": 8, "kernel": 3, "stride": 1, "activation": "relu", "seed": 4}
    m = build_module(mlp, (1, 8, 8), 10, init_params(mlp, (1, 8, 8), 10))
    c = build_module(cnn, (1, 8, 8), 10, init_params(cnn, (1, 8, 8), 10))
    layers = [mod for mod in list(m.modules()) + list(c.modules()) if isinstance(mod, (torch.nn.Linear, torch.nn.Conv2d))]
    extra = []
    for i, shape in enumerate([(128, 64), (40, 96), (10, 128), (16, 16), (12, 5)]):
        lin = torch.nn.Linear(shape[1], shape[0])
        with torch.no_grad():
            lin.weight.copy_(heavy_tailed(shape, seed=i))
        extra.append(lin)
    conv = torch.nn.Conv2d(6, 16, 3)
    with torch.no_grad():
        conv.weight.copy_(heavy_tailed((16, 6 * 9), seed=9).reshape(16, 6, 3, 3))
    return layers + extra + [conv]


@pytest.fixture(scope="module")
def layers_and_ww():
    layers = seeded_layers()
    return layers, ww_details(layers)


def assert_close_to_ww(ours: dict, ref: dict, what: str) -> None:
    for ww_col, col in WW_COLUMNS.items():
        assert ours[col] == pytest.approx(ref[ww_col], rel=REL, abs=1e-12), f"{what}: {col} {ours[col]} vs WeightWatcher {ww_col} {ref[ww_col]}"


def test_layer_metrics_match_weightwatcher_on_mlp_and_cnn_layers(layers_and_ww):
    layers, ref = layers_and_ww
    assert any(isinstance(layer, torch.nn.Conv2d) for layer in layers)
    rules = set()
    for i, (layer, r) in enumerate(zip(layers, ref)):
        ours = layer_metrics(layer.weight)
        assert_close_to_ww(ours, r, f"layer {i} {tuple(layer.weight.shape)}")
        rules.add(ours["fit_rule"])
    # The seeded layers exercise the standard, small-N and whole-spectrum rules.
    assert {"ww_standard", "ww_small_n", "ww_small_n_all"} <= rules


def test_batched_path_matches_weightwatcher_for_every_matrix_of_a_stack():
    stack = torch.stack([heavy_tailed((48, 32), seed=s) for s in range(4)])
    ref = ww_details(_linears(stack))
    res = spectral_metrics(stack)
    for b in range(4):
        assert_close_to_ww({k: v[b] for k, v in res.items()}, ref[b], f"stack item {b}")


def _linears(stack: torch.Tensor) -> list[torch.nn.Module]:
    out = []
    for W in stack:
        lin = torch.nn.Linear(W.shape[1], W.shape[0])
        with torch.no_grad():
            lin.weight.copy_(W)
        out.append(lin)
    return out


def test_conv_stack_matches_weightwatcher_slicing():
    g = torch.Generator().manual_seed(5)
    stack = torch.randn(3, 8, 16, 3, 3, generator=g)  # out < in: WeightWatcher transposes each slice
    convs = []
    for W in stack:
        conv = torch.nn.Conv2d(16, 8, 3)
        with torch.no_grad():
            conv.weight.copy_(W)
        convs.append(conv)
    ref = ww_details(convs)
    res = spectral_metrics(stack)
    for b in range(3):
        assert_close_to_ww({k: v[b] for k, v in res.items()}, ref[b], f"conv {b}")
        assert res["n_evals"][b] == 9 * 8
        # Pooled slices are scaled by √(1/2): Σλ = ‖W‖_F² / 2.
        assert res["log_norm"][b] == pytest.approx(math.log10(float((stack[b].double() ** 2).sum()) / 2), rel=1e-12)


@pytest.mark.parametrize("n", [1, 3, 7, 8, 12, 19, 20, 25])
def test_small_spectra_follow_weightwatchers_fit(n):
    ww = _quiet_ww()
    g = np.random.default_rng(n)
    evals = np.sort(g.pareto(1.5, size=n) + 0.1)
    with contextlib.redirect_stdout(io.StringIO()):
        alpha, _, xmin, _, D, sigma, *_ = ww.WeightWatcher().fit_powerlaw(evals, plot=False)
    ours = fit_powerlaw(evals)
    if alpha == -1:  # WeightWatcher's fit fails: we report NaN
        assert n < 2 and math.isnan(ours["alpha"]) and ours["rule"] == "failed"
        return
    for a, b in ((ours["alpha"], alpha), (ours["xmin"], xmin), (ours["ks_distance"], D), (ours["sigma"], sigma)):
        assert a == pytest.approx(b, rel=REL)
    assert ours["rule"] == ("ww_standard" if n >= 20 else "ww_small_n" if n >= 8 else "ww_small_n_all")


def test_eigenvalues_below_threshold_are_not_fitted_like_weightwatcher():
    ww = _quiet_ww()
    evals = np.concatenate([np.full(5, 1e-7), np.random.default_rng(1).pareto(2.0, 40) + 1.0])
    with contextlib.redirect_stdout(io.StringIO()):
        alpha, _, xmin, _, D, *_ = ww.WeightWatcher().fit_powerlaw(evals, plot=False)
    ours = fit_powerlaw(evals)
    assert ours["n_evals"] == 40
    assert (ours["alpha"], ours["xmin"], ours["ks_distance"]) == pytest.approx((alpha, xmin, D), rel=REL)


def _with_singular_values(s: np.ndarray, rows: int, cols: int, seed: int = 0) -> np.ndarray:
    g = np.random.default_rng(seed)
    U, _ = np.linalg.qr(g.standard_normal((rows, rows)))
    V, _ = np.linalg.qr(g.standard_normal((cols, cols)))
    S = np.zeros((rows, cols))
    S[: len(s), : len(s)] = np.diag(s)
    return U @ S @ V.T


def test_orthogonal_matrix_has_every_rank_equal_to_n():
    n = 16
    Q, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((n, n)))
    m = layer_metrics(Q)
    for col in ("stable_rank", "hard_rank", "soft_rank", "effective_rank"):
        assert m[col] == pytest.approx(n, rel=1e-9), col
    assert m["condition_number"] == pytest.approx(1.0, rel=1e-9)
    assert m["fro_norm"] == pytest.approx(math.sqrt(n), rel=1e-12)
    assert m["spectral_norm"] == pytest.approx(1.0, rel=1e-12)
    assert m["entropy"] == pytest.approx(1.0, rel=1e-6)  # WeightWatcher: H(λ/Σλ) / ln(rank)


def test_rank_one_matrix_has_stable_and_hard_rank_one():
    g = np.random.default_rng(1)
    W = np.outer(g.standard_normal(20), g.standard_normal(12))
    m = layer_metrics(W)
    assert m["stable_rank"] == pytest.approx(1.0, rel=1e-9)
    assert m["hard_rank"] == pytest.approx(1.0, rel=1e-9)
    assert m["soft_rank"] == pytest.approx(1.0, rel=1e-6)
    assert m["spectral_norm"] == pytest.approx(m["fro_norm"], rel=1e-12)


def test_known_singular_values_give_the_formulas_values():
    s = np.array([4.0, 3.0, 2.0, 1.0])
    lam = s**2
    m = layer_metrics(_with_singular_values(s, 6, 4))
    p, q = lam / lam.sum(), s / s.sum()
    expected = {
        "fro_norm": math.sqrt(30.0), "spectral_norm": 4.0, "stable_rank": 30.0 / 16.0,
        "hard_rank": 900.0 / float((lam**2).sum()), "soft_rank": math.exp(-float((p * np.log(p)).sum())),
        "effective_rank": math.exp(-float((q * np.log(q)).sum())), "condition_number": 4.0,
        "log_norm": math.log10(30.0), "log_spectral_norm": math.log10(16.0),
        "entropy": -float(((p + 1e-10) * np.log(p + 1e-10)).sum()) / math.log(4 + 1e-10),
    }
    for col, value in expected.items():
        assert m[col] == pytest.approx(value, rel=1e-9), col
    assert m["alpha_weighted"] == pytest.approx(m["alpha"] * math.log10(16.0), rel=1e-12)


@pytest.mark.parametrize("alpha", [2.0, 2.5, 3.5])
def test_fit_recovers_pareto_exponent(alpha):
    u = np.random.default_rng(int(alpha * 10)).random(4000)
    samples = (1.0 - u) ** (-1.0 / (alpha - 1.0))  # density ∝ x^(-alpha) on [1, ∞)
    fit = fit_powerlaw(samples)
    assert fit["rule"] == "ww_standard"
    assert abs(fit["alpha"] - alpha) <= 0.1


def test_farms_pools_fixed_aspect_ratio_windows_into_one_fit():
    from weightwatcher.WW_powerlaw import WWFit

    W = heavy_tailed((30, 70), seed=11).double().numpy()
    # The documented rule for a 30 × 70 matrix: windows 30 × 60 (h = min(100, 30, 70 // 2)),
    # one row position, column starts min(k·step, 10) with step max(1, 10 // 9) = 1 → 0…9.
    evals = np.concatenate([np.linalg.svd(W[:, c:c + 60], compute_uv=False) ** 2 for c in range(10)])
    ref = WWFit(evals[evals > 1e-5])
    assert layer_metrics(W)["farms_alpha"] == pytest.approx(ref.alpha, rel=REL)


def test_nonfinite_weights_give_nan_and_a_rule_saying_so():
    stack = torch.stack([heavy_tailed((40, 30), seed=1), torch.full((40, 30), float("nan"))])
    res = spectral_metrics(stack, farms=False, mp=False)
    assert np.isfinite(res["alpha"][0]) and np.isnan(res["alpha"][1])
    assert list(res["fit_rule"]) == ["ww_standard", "nonfinite"]
    assert list(res["finite"]) == [True, False]


def test_spectral_table_of_a_population_checkpoint(tmp_path):
    from zoo.cli import main
    from zoo.store import read_table, save_checkpoints

    g = torch.Generator().manual_seed(0)
    ckpts = {e: {"layers.0.weight": torch.randn(2, 24, 16, generator=g), "layers.0.bias": torch.randn(2, 24, generator=g),
                 "convs.0.weight": torch.randn(2, 4, 3, 3, 3, generator=g)} for e in (0, 5)}
    path = tmp_path / "checkpoints" / "mlp-0123456789.safetensors"
    save_checkpoints(path, ckpts, ["m0", "m1"], {"zoo": "z", "population": "mlp-0123456789"})
    out = tmp_path / "spectral" / "mlp-0123456789.parquet"
    assert main(["spectral", str(path), "--out", str(out)]) == 0
    df = read_table(out, "spectral").to_pandas()
    assert len(df) == 2 * 2 * 2  # models × epochs × weight tensors (biases skipped)
    assert not df.duplicated(["model_id", "epoch", "layer"]).any()
    design = ["rows", "cols", "fro_norm", "spectral_norm", "stable_rank", "effective_rank", "hard_rank", "soft_rank",
              "condition_number", "alpha", "alpha_weighted", "xmin", "ks_distance", "farms_alpha", "mp_softrank",
              "log_norm", "log_spectral_norm", "entropy", "fit_rule"]
    assert set(design) <= set(df.columns)
    row = df[(df.model_id == "m1") & (df.epoch == 5) & (df.layer == "layers.0")].iloc[0]
    ref = ww_details(_linears(ckpts[5]["layers.0.weight"][1:2]))[0]
    assert row["alpha"] == pytest.approx(ref["alpha"], rel=REL)
    assert (row["rows"], row["cols"]) == (24, 16)
