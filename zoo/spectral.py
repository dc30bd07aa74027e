"""Spectral features of weight matrices, batched, agreeing with WeightWatcher 0.7.7's defaults.

The ESD (empirical spectral density) of a layer is the list of eigenvalues ``λ = σ²`` of
``WᵀW`` — the squared singular values of ``W``, in float64, with no ``1/N`` normalisation
(WeightWatcher's default since 0.6.5).

**Conv kernels** ``[out, in, kh, kw]`` are treated as WeightWatcher does with its defaults
(``pool=True``, ``conv2d_norm=True``, PyTorch channel layout): the kernel is cut into its
``kh·kw`` slices ``W[:, :, i, j]`` (one ``out × in`` matrix per kernel position), every slice is
scaled by ``√(1/2)`` (``conv2d_norm`` with ``conv2d_count = 1`` when pooling), and the
eigenvalues of all slices are pooled into one ESD of ``kh·kw·min(out, in)`` values. So for a
conv layer ``Σλ = ‖W‖_F² / 2``. Dense matrices are one slice, unscaled.

Columns from the ESD follow WeightWatcher (``log_norm = log10 Σλ``, ``log_spectral_norm =
log10 λ_max``, ``stable_rank = Σλ / λ_max``, ``alpha_weighted = α·log10 λ_max``, ``entropy`` =
its ``matrix_entropy``, ``alpha``/``xmin``/``ks_distance`` from :mod:`zoo.powerlaw_fit`,
``mp_softrank`` from :mod:`zoo.mp_fit`). ``fro_norm`` and ``spectral_norm`` are the plain
norms ``‖W‖_F`` and ``σ_max`` of the unscaled tensor (WeightWatcher's own ``norm`` and
``spectral_norm`` columns are ``Σλ`` and ``λ_max = σ_max²``, with the conv scaling).
Rank metrics: ``hard_rank = (Σλ)² / Σλ²`` (participation ratio), ``soft_rank = exp H(λ/Σλ)``,
``effective_rank = exp H(σ/Σσ)`` (Roy & Vetterli 2007), ``condition_number = σ_max / σ_min``.

**FARMS** (Hu et al. 2025): fixed-aspect-ratio windows (aspect ratio 2, up to 100 × 200, up to
10 overlapping positions per dimension, evenly spaced and clamped to the matrix) of every slice;
their eigenvalues are pooled into one ESD, fitted once with the same rule. Windows are clamped
for small layers: with the matrix oriented short side ``a`` × long side ``b``, the window is
``h × 2h`` with ``h = max(1, min(100, a, ⌊b/2⌋))`` (width capped at ``b``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from zoo.errors import DataError
from zoo.powerlaw_fit import fit_powerlaw_batch

#: WeightWatcher's conv2d_norm with pooling multiplies each slice by √(1/2): eigenvalues × 1/2.
CONV_EVAL_SCALE = 0.5
#: WeightWatcher's matrix_entropy offset (``EPSILON``, float64 mode).
WW_EPSILON = 1e-10
#: WeightWatcher skips layers with fewer pooled eigenvalues (``min_evals``) or more (``max_evals``).
WW_MIN_EVALS, WW_MAX_EVALS, WW_MAX_N = 8, 15000, 50000
#: FARMS window: rows (short side), aspect ratio, positions per dimension.
FARMS_ROWS, FARMS_Q, FARMS_STEPS = 100, 2, 10
#: FARMS windows are cut and decomposed for this many float64 entries at a time (64 MB).
FARMS_CHUNK_ELEMENTS = 8_000_000

FLOAT_COLUMNS = ("fro_norm", "spectral_norm", "stable_rank", "effective_rank", "hard_rank", "soft_rank",
                 "condition_number", "alpha", "alpha_weighted", "xmin", "ks_distance", "alpha_sigma",
                 "farms_alpha", "mp_softrank", "log_norm", "log_spectral_norm", "entropy")


def _to_numpy(weights: Any) -> np.ndarray:
    """A NumPy view of ``weights`` (NumPy array, or a torch tensor without importing torch here)."""
    if hasattr(weights, "detach"):  # torch.Tensor
        weights = weights.detach().cpu().numpy()
    return np.asarray(weights)


def _as_stack(weights: Any) -> tuple[np.ndarray, float]:
    """``[B, out, in]`` or ``[B, out, in, kh, kw]`` → float64 ``[B, rf, out, in]`` and ESD scale."""
    W = _to_numpy(weights).astype(np.float64, copy=False)
    if W.ndim == 3:
        return W[:, None], 1.0
    if W.ndim == 5:
        B, o, i, kh, kw = W.shape
        return np.ascontiguousarray(W.transpose(0, 3, 4, 1, 2)).reshape(B, kh * kw, o, i), CONV_EVAL_SCALE
    raise DataError(f"weights of shape {tuple(W.shape)}: expected [B, out, in] matrices or [B, out, in, kh, kw] conv kernels")


def singular_values(mats: np.ndarray) -> np.ndarray:
    """Singular values of every matrix of a stack ``[…, r, c]`` (LAPACK ``gesdd``, one thread), ``[…, min(r, c)]``."""
    from threadpoolctl import threadpool_limits

    if mats.size == 0:
        return np.zeros(mats.shape[:-2] + (min(mats.shape[-2:]),))
    with threadpool_limits(1):
        return np.linalg.svd(mats, compute_uv=False)


def _ww_dims(rows: int, cols: int, rf: int, conv: bool) -> tuple[int, int]:
    """WeightWatcher's (N, M) of a layer; for conv it swaps them once per slice when out < in."""
    if not conv:
        return max(rows, cols), min(rows, cols)
    N, M = rows, cols
    if rows < cols and rf % 2 == 1:
        N, M = M, N
    return N, M


def _entropy(x: np.ndarray) -> np.ndarray:
    """Shannon entropy (nats) of each row of non-negative weights, normalised to sum 1."""
    p = x / x.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)
    return -t.sum(axis=1)


def _farms_windows(mats: Any) -> Any:
    """Fixed-aspect-ratio windows of every slice: ``[B, rf, r, c]`` → ``[B, n_windows, h, w]``."""
    if mats.shape[-2] > mats.shape[-1]:
        mats = np.swapaxes(mats, -1, -2)
    a, b = mats.shape[-2:]
    h = max(1, min(FARMS_ROWS, a, b // FARMS_Q))
    w = min(FARMS_Q * h, b)

    def starts(size: int, win: int) -> list[int]:
        step = max(1, (size - win) // (FARMS_STEPS - 1))
        count = min(FARMS_STEPS, max(1, (size - win) // step + 1))
        return sorted({min(k * step, size - win) for k in range(count)})

    wins = [mats[..., r:r + h, c:c + w] for r in starts(a, h) for c in starts(b, w)]
    stacked = np.stack(wins, axis=2)  # [B, rf, nw, h, w]
    return stacked.reshape(mats.shape[0], -1, h, w)


def spectral_metrics(weights: Any, farms: bool = True, mp: bool = True) -> dict[str, np.ndarray]:
    """Spectral features of a stack of layers of one shape.

    ``weights``: ``[B, out, in]`` matrices or ``[B, out, in, kh, kw]`` conv kernels (NumPy or
    torch, any float dtype). Returns ``{column: array [B]}`` (see the module docstring and
    ``docs/spectral.md``); rows whose weights are not all finite get NaN and rule ``"nonfinite"``.
    Pure NumPy/SciPy: a ``zoo spectral`` job never imports torch.
    """
    raw = _to_numpy(weights)
    mats, scale = _as_stack(raw)
    B, rf, rows, cols = mats.shape
    conv = scale != 1.0
    finite = np.isfinite(mats).reshape(B, -1).all(axis=1)
    if not finite.all():
        mats = np.where(np.isfinite(mats), mats, 0.0)
    sv = singular_values(mats).reshape(B, -1)  # unscaled singular values, pooled
    sv = np.sort(sv, axis=1)
    s_esd = sv * np.sqrt(scale) if scale != 1.0 else sv
    lam = s_esd * s_esd  # the ESD, ascending
    total, lmax = lam.sum(axis=1), lam[:, -1]
    N_ww, M_ww = _ww_dims(rows, cols, rf, conv)
    with np.errstate(divide="ignore", invalid="ignore"):
        fits = fit_powerlaw_batch(lam)
        root = np.sqrt(lam)  # WeightWatcher passes sqrt(evals) to matrix_entropy
        tol = root.max(axis=1) * N_ww * np.finfo(np.float64).eps
        rank = (root > tol[:, None]).sum(axis=1) + WW_EPSILON
        p = (root * root) / (root * root).sum(axis=1, keepdims=True) + WW_EPSILON
        out: dict[str, np.ndarray] = {
            "rows": np.full(B, rows, np.int64), "cols": np.full(B, cols, np.int64), "rf": np.full(B, rf, np.int64),
            "n_evals": np.full(B, lam.shape[1], np.int64),
            "fro_norm": np.sqrt((sv * sv).sum(axis=1)), "spectral_norm": sv[:, -1],
            "stable_rank": total / lmax,
            "effective_rank": np.exp(_entropy(sv)),
            "hard_rank": total**2 / (lam * lam).sum(axis=1),
            "soft_rank": np.exp(_entropy(lam)),
            "condition_number": sv[:, -1] / sv[:, 0],
            "alpha": fits.alpha, "alpha_weighted": fits.alpha * np.log10(lmax),
            "xmin": fits.xmin, "ks_distance": fits.ks_distance, "alpha_sigma": fits.sigma,
            "n_fit": fits.n_evals, "n_tail": fits.n_tail, "fit_rule": fits.rule.astype(object),
            "log_norm": np.log10(total), "log_spectral_norm": np.log10(lmax),
            "entropy": -(p * np.log(p)).sum(axis=1) / np.log(rank),
        }
    out["ww_analyzed"] = np.full(B, WW_MIN_EVALS <= M_ww * rf <= WW_MAX_EVALS and N_ww <= WW_MAX_N)
    out["farms_alpha"] = np.full(B, np.nan)
    out["farms_fit_rule"] = np.full(B, "not_computed", dtype=object)
    if farms:  # in chunks of layers: the windows of a big stack would take GBs (values do not depend on it)
        per_layer = max(1, _farms_windows(mats[:1]).size)
        step = max(1, FARMS_CHUNK_ELEMENTS // per_layer)
        alphas, rules = [], []
        for c0 in range(0, B, step):
            wins = _farms_windows(mats[c0 : c0 + step])
            fl = singular_values(wins).reshape(len(wins), -1) ** 2 * scale
            ff = fit_powerlaw_batch(fl)
            alphas.append(ff.alpha)
            rules.append(ff.rule.astype(object))
        out["farms_alpha"], out["farms_fit_rule"] = np.concatenate(alphas), np.concatenate(rules)
    out["mp_softrank"] = np.full(B, np.nan)
    if mp:
        from zoo.mp_fit import mp_softrank_batch

        out["mp_softrank"] = mp_softrank_batch(np.where(finite.reshape((-1,) + (1,) * (raw.ndim - 1)), raw, 0), N_ww / M_ww)
    if not finite.all():
        for k in FLOAT_COLUMNS:
            out[k] = np.where(finite, out[k], np.nan)
        for k in ("fit_rule", "farms_fit_rule"):
            out[k] = np.where(finite, out[k], "nonfinite").astype(object)
    out["finite"] = finite
    return out


def layer_metrics(W: Any, farms: bool = True, mp: bool = True) -> dict[str, Any]:
    """Spectral features of one layer: a 2-D matrix ``[out, in]`` (or one conv kernel ``[out, in, kh, kw]``).

    NumPy array or torch tensor; returns ``{column: Python scalar}`` as :func:`spectral_metrics`.
    """
    arr = _to_numpy(W)
    if arr.ndim not in (2, 4):
        raise DataError(f"layer_metrics: got an array of shape {arr.shape}; pass a 2-D matrix [out, in] or a conv kernel [out, in, kh, kw]")
    res = spectral_metrics(arr[None], farms=farms, mp=mp)
    return {k: (v[0].item() if hasattr(v[0], "item") else v[0]) for k, v in res.items()}
