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
    """scikit-learn's linear-kernel KDE on WeightWatcher's 1,000-point grid.

    The calls ``KernelDensity(kernel="linear", bandwidth=0.1).fit(x).score_samples(grid)``
    make, without their validation layers (a third of the time): the same ``KDTree``
    (``leaf_size=40``, what ``algorithm="auto"`` picks), the same ``kernel_density`` query
    (``atol=0``, ``rtol=0``, breadth first, in log space) and the same ``− log N`` (tested
    bit for bit against ``KernelDensity``).
    """
    from sklearn.neighbors import KDTree

    X = np.ascontiguousarray(np.asarray(values, dtype=np.float64).reshape(-1, 1))
    tree = KDTree(X, leaf_size=40)
    grid = np.linspace(0, np.max(values) + 0.5, KDE_POINTS)
    log_density = tree.kernel_density(grid[:, np.newaxis], h=KDE_BANDWIDTH, kernel="linear", atol=0.0, rtol=0,
                                      breadth_first=True, return_log=True)
    log_density -= np.log(X.shape[0])
    return grid, np.exp(log_density)


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


def _nan_to_num(v: np.ndarray) -> np.ndarray:
    """``np.nan_to_num(v)`` (same values), skipping its four passes when ``v`` is all finite."""
    return v if np.isfinite(v).all() else np.nan_to_num(v)


class _Residual:
    """:func:`_residuals` of one sigma at a time (what Nelder–Mead calls ~30 times per layer),
    with the per-layer constants hoisted and the same arithmetic in the same order, so the
    values are bit-identical to :func:`_residuals` (``tests/test_fast_paths.py``)."""

    def __init__(self, xde: np.ndarray, yde: np.ndarray, n_low: int, Q: float):
        self.xde, self.yde, self.Q = xde, yde, Q
        self.pad = np.zeros(n_low)
        if Q != 1:
            self.y = 1 / Q
            self.root = np.sqrt(1 / Q)
            self.peak = xde[np.where(yde == yde.max())][0]
            self.xmax = xde.max()
            self.penalty = (np.concatenate((np.full(len(xde), EDGE_PENALTY), self.pad)) ** 2).sum()
            self.four = None
        else:
            self.four = 4 - xde**2

    def __call__(self, p: np.ndarray) -> float:
        s = float(np.asarray(p, dtype=np.float64).reshape(-1)[0])
        xde = self.xde
        if self.Q == 1:
            with np.errstate(all="ignore"):
                ymp = _nan_to_num((1 / (np.pi * s * s)) * np.sqrt(self.four))
            return (np.concatenate((ymp - self.yde, self.pad)) ** 2).sum()
        b = np.power(s * (1 + self.root), 2)
        a = np.power(s * (1 - self.root), 2)
        if (b < self.peak) or (b > self.xmax) or (a > self.peak):
            return self.penalty
        with np.errstate(all="ignore"):
            val = _nan_to_num((1 / (2 * np.pi * s * s * xde * self.y)) * np.sqrt((b - xde) * (xde - a)))
        return (np.concatenate((val - self.yde, self.pad)) ** 2).sum()


def _fmin_1d(func: _Residual, x0: float, xtol: float = 1e-4, ftol: float = 1e-4, maxfun: int = 200) -> float | None:
    """``scipy.optimize.fmin(func, x0)[0]`` for one variable: the same Nelder–Mead steps (its
    coefficients 1, 2, ½, ½, initial step 5 %, stopping rule and tie order) in Python floats,
    without scipy's per-iteration array bookkeeping. None if it would need more than
    ``maxfun`` evaluations (the caller then runs scipy itself, which stops mid-iteration)."""
    calls = 0

    def f(x: float) -> float:
        nonlocal calls
        calls += 1
        return float(func(np.array([x])))

    x1 = (1 + 0.05) * x0 if x0 != 0 else 0.00025
    sim, fsim = [x0, x1], [f(x0), f(x1)]
    if fsim[1] < fsim[0]:  # np.argsort of two values keeps ties in order
        sim.reverse()
        fsim.reverse()
    for _ in range(199):  # iterations < maxiter (200) with iterations starting at 1
        if calls >= maxfun - 2:
            return None
        if abs(sim[1] - sim[0]) <= xtol and abs(fsim[0] - fsim[1]) <= ftol:
            break
        xbar = sim[0] / 1
        xr = 2 * xbar - sim[1]
        fxr = f(xr)
        if fxr < fsim[0]:
            xe = 3 * xbar - 2 * sim[1]
            fxe = f(xe)
            sim[1], fsim[1] = (xe, fxe) if fxe < fxr else (xr, fxr)
        elif fxr < fsim[0]:  # fsim[-2] is fsim[0] for one variable
            sim[1], fsim[1] = xr, fxr
        else:
            if fxr < fsim[1]:
                xc = 1.5 * xbar - 0.5 * sim[1]
                fxc = f(xc)
                shrink = not fxc <= fxr
                if not shrink:
                    sim[1], fsim[1] = xc, fxc
            else:
                xcc = 0.5 * xbar + 0.5 * sim[1]
                fxcc = f(xcc)
                shrink = not fxcc < fsim[1]
                if not shrink:
                    sim[1], fsim[1] = xcc, fxcc
            if shrink:
                sim[1] = sim[0] + 0.5 * (sim[1] - sim[0])
                fsim[1] = f(sim[1])
        if fsim[1] < fsim[0]:
            sim.reverse()
            fsim.reverse()
    return sim[0]


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
    residual = _Residual(xde, yde, n_low, Q)
    sigma = _fmin_1d(residual, float(start))
    if sigma is None:
        sigma = optimize.fmin(residual, start, full_output=1, disp=0)[0][0]
    bulk_max = (sigma * (1 + 1 / np.sqrt(Q))) ** 2
    return float(bulk_max / xmax)


def mp_softrank_batch(weights: np.ndarray, Q: float) -> np.ndarray:
    """:func:`mp_softrank` of each layer of a stack ``[B, out, in]`` / ``[B, out, in, kh, kw]`` (stored dtype)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):  # scipy's SVD would otherwise start a BLAS thread pool per process
        return np.array([mp_softrank(ww_evals(W), Q) for W in np.asarray(weights)])
