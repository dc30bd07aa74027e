"""Batched power-law fits of eigenvalue spectra, reproducing WeightWatcher 0.7.7's default fit.

WeightWatcher (``analyze()`` with its defaults: ``fit='PL'``, ``pl_package='ww'``, ``xmax=None``)
fits each layer's ESD as follows (``weightwatcher.fit_powerlaw`` → ``WW_powerlaw.WWFit``):

1. keep the eigenvalues ``λ > 1e-5`` (``EVALS_THRESH``), sorted ascending: ``x_0 … x_{N-1}``;
2. if ``N ≥ 20`` (rule ``"ww_standard"``): for every candidate ``xmin = x_i`` (``i < N-1``),
   the Clauset continuous MLE ``α_i = 1 + n / Σ_{j≥i} ln(x_j / x_i)`` with ``n = N - i``, and the
   KS distance ``D_i = max_j |1 - (x_j/x_i)^{1-α_i} - (j-i)/n|`` (``D_i = 1`` when ``α_i ≤ 1``);
   the fit is the candidate with the smallest ``D`` (first one on ties);
3. if ``N < 20`` (rule ``"ww_small_n"``): the bias-corrected MLE ``α_i = 1 + (n-1) / Σ ln(x_j/x_i)``,
   candidates only with a tail of ``n ≥ 8`` points, ``Σ ln > 1e-12`` and ``α_i > 1``. WeightWatcher's
   ``fit_powerlaw_smallN`` ranks them by ``J_i = D_i - 0.868/√n``, but the ``WWFit`` constructor
   then re-selects by the smallest ``D`` over all candidates (unqualified ones count as ``D = 1``),
   so the reported fit is the min-KS candidate — we reproduce what WeightWatcher reports;
4. if no small-N candidate qualifies (e.g. fewer than 8 eigenvalues; rule ``"ww_small_n_all"``), the
   whole spectrum is the tail (``xmin = x_0``), with the bias-corrected MLE; a degenerate spectrum
   (``Σ ln ≤ 1e-12``, all eigenvalues equal) gives WeightWatcher's placeholder ``α = 0, D = 1``;
5. fewer than 2 eigenvalues above the threshold: WeightWatcher's fit fails and it reports ``-1``;
   we return NaN and the rule ``"failed"``.

``sigma`` follows WeightWatcher too: ``(α - 1)/√n`` (for rule 4 its value from the candidate
loop, which is ``-1/√N`` when the loop skipped candidate 0 — a WeightWatcher quirk kept so the
numbers agree). The candidate search runs over a batch of spectra at once, one candidate at a time, in float64.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: WeightWatcher's ``EVALS_THRESH``: eigenvalues at or below it are not fitted.
EVALS_THRESH = 1e-5
#: WeightWatcher's ``SMALL_N_CUTOFF``: fewer fitted eigenvalues switch to the small-N rule.
SMALL_N_CUTOFF = 20
#: Minimum tail length of a small-N candidate (``k_min``).
SMALL_N_K_MIN = 8
#: Tail-size encouragement of the small-N objective ``J = D - 0.868/√n``.
SMALL_N_KS_BONUS = 0.868

RULES = ("ww_standard", "ww_small_n", "ww_small_n_all", "failed")

#: Elements of the ``[b, K]`` work arrays per chunk (float64; bounds memory to ~100 MB).
_CHUNK_ELEMENTS = 2_000_000


@dataclass(frozen=True)
class PowerLawFits:
    """Per-spectrum fit results; arrays of length B (float64 unless said)."""

    alpha: np.ndarray
    xmin: np.ndarray
    ks_distance: np.ndarray
    sigma: np.ndarray
    n_evals: np.ndarray  # int64: eigenvalues above EVALS_THRESH (fitted)
    n_tail: np.ndarray  # int64: eigenvalues >= xmin (WeightWatcher's num_pl_spikes)
    rule: np.ndarray  # object: one of RULES


def fit_powerlaw(evals: np.ndarray) -> dict:
    """Fit one spectrum (eigenvalues, any order); returns alpha, xmin, ks_distance, sigma, n_evals, n_tail, rule."""
    fits = fit_powerlaw_batch(np.asarray(evals, dtype=np.float64).reshape(1, -1))
    return {k: (v[0].item() if hasattr(v[0], "item") else v[0]) for k, v in fits.__dict__.items()}


def fit_powerlaw_batch(evals: np.ndarray, thresh: float = EVALS_THRESH) -> PowerLawFits:
    """Fit each row of ``evals`` ``[B, K]`` (eigenvalues, any order) the WeightWatcher way."""
    x = np.sort(np.asarray(evals, dtype=np.float64), axis=1)
    B, K = x.shape
    out = {k: np.full(B, np.nan) for k in ("alpha", "xmin", "ks_distance", "sigma")}
    n_evals = (x > thresh).sum(axis=1).astype(np.int64)
    n_tail = np.zeros(B, np.int64)
    rule = np.full(B, "failed", dtype=object)
    rows_per_chunk = max(1, _CHUNK_ELEMENTS // max(1, 8 * K))
    for start in range(0, B, rows_per_chunk):
        sl = slice(start, min(B, start + rows_per_chunk))
        _fit_chunk(x[sl], n_evals[sl], {k: v[sl] for k, v in out.items()}, rule[sl])
    ok = rule != "failed"
    n_tail[ok] = (x[ok] >= out["xmin"][ok, None]).sum(axis=1)
    return PowerLawFits(out["alpha"], out["xmin"], out["ks_distance"], out["sigma"], n_evals, n_tail, rule)


def _fit_chunk(x: np.ndarray, n_evals: np.ndarray, out: dict[str, np.ndarray], rule: np.ndarray) -> None:
    """Fill ``out``/``rule`` in place for one chunk of sorted spectra ``x`` ``[b, K]``."""
    b, K = x.shape
    if K < 2:
        _fallback(x, n_evals, np.ones(b, bool), np.zeros((b, max(K - 1, 0))), out, rule)
        return
    first = K - n_evals  # index of the first fitted eigenvalue (thresholded ones are a prefix)
    safe = np.where(x > 0, x, 1.0)
    logx = np.log(safe)
    idx = np.arange(K - 1)
    n = (K - idx).astype(np.float64)  # tail length of candidate i (relative to the padded row)
    # Σ_{j≥i} ln x_j − n ln x_i, as WeightWatcher computes it (sum of logs minus n·log xmin).
    suffix = np.cumsum(logx[:, ::-1], axis=1)[:, ::-1][:, :-1]
    s = suffix - n * logx[:, :-1]
    small = n_evals < SMALL_N_CUTOFF
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        num = np.where(small[:, None], n - 1.0, n)
        alpha = 1.0 + num / s
        D = _ks_distances(x, 1.0 - alpha, n)  # KS distance of every candidate
    valid = idx[None, :] >= first[:, None]  # candidate lies in the fitted part
    # Standard rule: D = 1 where alpha <= 1 (not computed by WeightWatcher), argmin of D.
    D_std = np.where(valid, np.where(alpha > 1, D, 1.0), np.inf)
    # Small-N rule: alpha only for tails of >= 8 points with a non-degenerate log sum, D only where
    # alpha > 1 (else 1); WWFit's constructor then picks the smallest D, like the standard rule.
    computed = valid & (n[None, :] >= SMALL_N_K_MIN) & (s > 1e-12)
    qual = computed & (alpha > 1.0)
    loop_alpha = np.where(computed, alpha, 0.0)
    D_small = np.where(valid, np.where(qual, D, 1.0), np.inf)
    has_q = qual.any(axis=1)

    std_rows = ~small & (n_evals >= 2)
    small_rows = small & has_q
    rows = np.arange(b)
    for mask, Dm, am, name in ((std_rows, D_std, alpha, "ww_standard"), (small_rows, D_small, loop_alpha, "ww_small_n")):
        if not mask.any():
            continue
        pick = np.argmin(Dm, axis=1)
        a = am[rows, pick]
        out["alpha"][mask] = a[mask]
        out["xmin"][mask] = x[rows, pick][mask]
        out["ks_distance"][mask] = Dm[rows, pick][mask]
        out["sigma"][mask] = ((a - 1.0) / np.sqrt(n[pick]))[mask]
        rule[mask] = name
    _fallback(x, n_evals, small & ~has_q, loop_alpha, out, rule)


def _ks_distances(x: np.ndarray, expo: np.ndarray, n: np.ndarray) -> np.ndarray:
    """KS distance ``D[r, i] = max_{j≥i} |1 − (x_j/x_i)^expo[r, i] − (j−i)/n_i|`` of every candidate.

    One candidate at a time over the tail ``j ≥ i`` only: the same elementwise arithmetic as
    a full ``[b, K−1, K]`` array (so the same values), half the work and ``b·K`` memory.
    """
    b, K = x.shape
    D = np.empty((b, K - 1))
    steps = np.arange(K, dtype=np.float64)
    for i in range(K - 1):
        theo = 1.0 - (x[:, i:] / x[:, i : i + 1]) ** expo[:, i : i + 1]
        D[:, i] = np.abs(theo - steps[: K - i] / n[i]).max(axis=1)
    return D


def _fallback(x: np.ndarray, n_evals: np.ndarray, mask: np.ndarray, loop_alpha: np.ndarray,
              out: dict[str, np.ndarray], rule: np.ndarray) -> None:
    """Small-N fallback: the whole fitted spectrum is the tail (WeightWatcher's ``j_best = 0``)."""
    K = x.shape[1]
    for r in np.flatnonzero(mask):
        N = int(n_evals[r])
        if N < 2:
            continue  # WeightWatcher's fit raises (no candidate xmin): stays NaN / "failed"
        data = x[r, K - N:]
        logd = np.log(data)
        s = float(np.sum(logd) - N * logd[0])
        rule[r] = "ww_small_n_all"
        out["xmin"][r] = data[0]
        if s <= 1e-12:  # degenerate: WWFit keeps its untouched first candidate (alpha 0, D 1)
            out["alpha"][r], out["sigma"][r], out["ks_distance"][r] = 0.0, -1.0 / np.sqrt(N), 1.0
            continue
        a = 1.0 + (N - 1.0) / s
        out["alpha"][r] = a
        out["ks_distance"][r] = float(np.max(np.abs(np.arange(N) / N - (1.0 - (data / data[0]) ** (1.0 - a)))))
        a0 = loop_alpha[r, K - N] if K - N < loop_alpha.shape[1] else 0.0
        out["sigma"][r] = (a0 - 1.0) / np.sqrt(N)
