"""WeightWatcher's Marchenko–Pastur soft rank (``mp_softrank``), reproduced with one KDE per layer.

WeightWatcher 0.7.7 (``analyze(mp_fit=True)`` → ``mp_fit`` → ``RMT_Util.fit_density_with_range``):

1. rescale the ESD so its mean is 1: ``x = λ · n / Σλ``;
2. estimate the density of ``x`` (of ``√x`` when ``Q = N/M = 1``) with a linear-kernel KDE
   (bandwidth 0.1) on 1,000 points of ``[0, max + 0.5]``; keep the points where it exceeds 0.01;
3. find the MP scale ``σ`` minimising the squared residual between the MP density (quarter-circle
   law when ``Q = 1``) and the KDE: brute force over ``σ ∈ [0.05 s, 2 s)`` in steps of ``0.01 s``
   with ``s = √(x_max) / (1 + 1/√Q)``, polished by Nelder–Mead (``scipy.optimize.fmin``);
   a candidate whose MP edge misses the KDE peak gets residual 1000 per point;
4. ``mp_softrank = λ₊ / x_max`` with the bulk edge ``λ₊ = (σ (1 + 1/√Q))²``.

WeightWatcher re-fits the KDE for every ``σ`` it tries; it does not depend on ``σ``, so we fit it
once and evaluate the brute-force grid in one array operation. The fit is discontinuous in the
last bits of its input (exact ties in the KDE maximum decide the MP edge test; a 1e-15 change
of the eigenvalues moved one demo layer's value from 0.79 to 1.05), so this path recomputes the
eigenvalues with WeightWatcher's own steps (scipy SVD, its dtype handling) and calls the same
scikit-learn KDE, with the residual summed in the same order — same numbers, far less work.
"""

from __future__ import annotations

import numpy as np

KDE_BANDWIDTH, KDE_POINTS, KDE_FLOOR, EDGE_PENALTY = 0.1, 1000, 0.01, 1000.0


def ww_evals(W: np.ndarray) -> np.ndarray:
    """The ESD exactly as WeightWatcher computes it (same dtype steps, scipy SVD), ascending.

    ``W``: one dense matrix ``[out, in]`` or conv kernel ``[out, in, kh, kw]`` in its stored dtype.
    The MP fit below is discontinuous in the last bits of its input (ties in the KDE's maximum
    decide the MP edge test), so it is fed bit-identical eigenvalues.
    """
    import scipy.linalg

    W = np.asarray(W)
    if W.ndim == 2:
        mats = [W]
    else:
        mats = []
        for i in range(W.shape[2]):
            for j in range(W.shape[3]):
                w = W[:, :, i, j]
                mats.append((w.T if w.shape[0] < w.shape[1] else w) * np.sqrt(1 / 2.0))
    evals = np.array([])
    for w in mats:
        sv = np.sort(scipy.linalg.svd(w.astype(float), compute_uv=False).flatten())
        evals = np.concatenate((evals, sv * sv))
    return np.sort(evals)


def _kde(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's linear-kernel KDE on WeightWatcher's 1,000-point grid (its exact calls)."""
    from sklearn.neighbors import KernelDensity

    kde = KernelDensity(kernel="linear", bandwidth=KDE_BANDWIDTH).fit(values.reshape(-1, 1))
    grid = np.linspace(0, np.max(values) + 0.5, KDE_POINTS)
    return grid, np.exp(kde.score_samples(grid[:, np.newaxis]))


def _residuals(sigmas: np.ndarray, xde: np.ndarray, yde: np.ndarray, n_low: int, Q: float) -> np.ndarray:
    """``RMT_Util.resid_mp(..., allresid=False)`` for each candidate sigma, same arithmetic order.

    ``xde``, ``yde``: the KDE points above the floor; ``n_low``: how many lie below it (they enter
    WeightWatcher's sum as zeros appended after the residuals, which we keep for identical rounding).
    """
    s = np.asarray(sigmas, dtype=np.float64).reshape(-1)
    pad = np.zeros((len(s), n_low))
    if Q == 1:
        with np.errstate(all="ignore"):
            ymp = np.nan_to_num((1 / (np.pi * s[:, None] * s[:, None])) * np.sqrt(4 - xde[None, :] ** 2))
        return (np.concatenate((ymp - yde[None, :], pad), axis=1) ** 2).sum(axis=1)
    y = 1 / Q
    b = np.power(s * (1 + np.sqrt(1 / Q)), 2)
    a = np.power(s * (1 - np.sqrt(1 / Q)), 2)
    peak = xde[np.where(yde == yde.max())][0]  # WeightWatcher: first point of maximal density
    bad = (b < peak) | (b > xde.max()) | (a > peak)
    resid = np.full((len(s), len(xde)), EDGE_PENALTY)
    ok = np.flatnonzero(~bad)
    if len(ok):
        so, bo, ao = s[ok, None], b[ok, None], a[ok, None]
        with np.errstate(all="ignore"):
            val = np.nan_to_num((1 / (2 * np.pi * so * so * xde[None, :] * y)) * np.sqrt((bo - xde[None, :]) * (xde[None, :] - ao)))
        resid[ok] = val - yde[None, :]
    return (np.concatenate((resid, pad), axis=1) ** 2).sum(axis=1)


def mp_softrank(evals: np.ndarray, Q: float) -> float:
    """WeightWatcher's ``mp_softrank`` of one ESD (ascending, as from :func:`ww_evals`), aspect ratio ``Q = N/M``."""
    from scipy import optimize

    evals = np.asarray(evals, dtype=np.float64)
    if len(evals) == 0 or not np.isfinite(evals).all() or np.sum(evals) <= 0:
        return float("nan")
    Wscale = np.sqrt(evals.shape[0]) / np.sqrt(np.sum(evals))
    x = (Wscale * Wscale) * evals
    xmax = np.max(x)
    scale = np.sqrt(xmax / np.square(1 + 1.0 / np.sqrt(Q)))
    grid = np.mgrid[slice(0.05 * scale, 2.0 * scale, 0.01 * scale)]
    xde, yde = _kde(np.sqrt(x) if Q == 1 else x)
    keep, low = yde > KDE_FLOOR, yde < KDE_FLOOR
    xde, yde, n_low = xde[keep], yde[keep], int(low.sum())
    if len(xde) == 0:
        return float("nan")
    start = grid[np.argmin(_residuals(grid, xde, yde, n_low, Q))]
    sigma = optimize.fmin(lambda p: _residuals(p, xde, yde, n_low, Q)[0], start, full_output=1, disp=0)[0][0]
    bulk_max = (sigma * (1 + 1 / np.sqrt(Q))) ** 2
    return float(bulk_max / xmax)


def mp_softrank_batch(weights: np.ndarray, Q: float) -> np.ndarray:
    """:func:`mp_softrank` of each layer of a stack ``[B, out, in]`` / ``[B, out, in, kh, kw]`` (stored dtype)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):  # scipy's SVD would otherwise start a BLAS thread pool per process
        return np.array([mp_softrank(ww_evals(W), Q) for W in np.asarray(weights)])
