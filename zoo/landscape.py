"""Loss-landscape metrics of trained populations: Hessian, mode connectivity, CKA, distances.

Every function works on a *stacked population* (tensors ``[P, …]``, the layout of
:func:`zoo.models.forward_population`). The models of a population are independent, so
the Hessian of the summed per-model losses is block-diagonal: one Hessian-vector product
of the sum gives every model's own HVP at once, and power iteration / Hutchinson run for
all models in one loop. Results for one model do not depend on which other models share
its population (same evaluation batch rule, same probe vectors, per-model normalisation
and stopping, random streams of each seed pair seeded by the pair's model ids).

Definitions (DESIGN §5):

- **Loss** = mean cross-entropy (nats) on a fixed evaluation batch of the model's own
  training examples, without weight decay.
- ``hessian_top_eig``: eigenvalue of largest magnitude of that loss's Hessian w.r.t. all
  parameters, by power iteration on HVPs with Rayleigh quotients (as PyHessian).
- ``hessian_trace``: Hutchinson estimate mean_k(vₖᵀHvₖ) over fixed Rademacher probes vₖ;
  ``hessian_trace_se`` = sample std / √probes.
- ``mc``: mode connectivity of Yang et al. (2021): a quadratic Bezier curve
  γ(t) = (1−t)²θ₁ + 2t(1−t)θc + t²θ₂ between two seeds of one grid point, θc trained to
  minimise E_t~U(0,1) loss(γ(t)); with train *error* e(t) on ``curve_points`` values of t,
  mc = ½(e(0)+e(1)) − e(t*), t* = the interior t of largest |½(e(0)+e(1)) − e(t)|.
  mc < 0: a barrier; ≈ 0: connected; > 0: the endpoints are not converged.
  ``mc_linear``: the same on the straight line (θc = midpoint, untrained);
  ``linear_barrier``: max_t e(t) − ((1−t)e(0) + t e(1)) on the straight line (Frankle et al.).
- ``cka_mean``: linear CKA (Kornblith et al. 2019) between the softmax outputs of two seeds
  on mixup inputs x = λxᵢ + (1−λ)xⱼ, λ ~ Beta(16, 16), averaged over the model's peers
  (peers whose output is constant, hence CKA undefined, are skipped).
- ``l2_to_peers``: mean Euclidean distance of the flattened parameters to the peers.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from zoo.hashing import derive_seed
from zoo.manual_mlp import ManualMLP
from zoo.manual_mlp import supports as has_manual_backward
from zoo.models import forward_population

Params = dict[str, Tensor]


@dataclass(frozen=True)
class LandscapeSettings:
    """Budgets of the landscape metrics (defaults sized for the 2-core demo)."""

    n_eval: int = 256          # examples in the fixed evaluation batch (Hessian, curve error)
    power_iters: int = 20      # max power-iteration steps
    power_tol: float = 1e-3    # stop when the eigenvalue changes less than this, relatively
    probes: int = 16           # Rademacher probes of the Hutchinson trace
    curve_steps: int = 150     # Adam steps training the Bezier control point
    curve_batch: int = 64      # examples per curve step
    curve_lr: float = 0.02     # Adam step of the control point, relative to the RMS of θ₁ − θ₂
    curve_points: int = 9      # values of t (endpoints included) where the curve error is read
    n_mix: int = 256           # mixup inputs of the CKA
    seed: int = 0              # root of every random stream here (probes, batches, mixup)


# ---------------------------------------------------------------- helpers on stacked params

def pdot(a: Mapping[str, Tensor], b: Mapping[str, Tensor]) -> Tensor:
    """Per-model inner product ``[P]`` of two stacked parameter dicts."""
    return sum((a[k] * b[k]).flatten(1).sum(1) for k in a)


def pnorm(a: Mapping[str, Tensor]) -> Tensor:
    """Per-model Euclidean norm ``[P]``."""
    return pdot(a, a).clamp_min(0).sqrt()


def _scale(a: Mapping[str, Tensor], s: Tensor) -> Params:
    return {k: v * s.view(-1, *([1] * (v.dim() - 1))) for k, v in a.items()}


def _shared_vectors(params: Mapping[str, Tensor], kind: str, gen: torch.Generator) -> Params:
    """One random vector per parameter tensor, identical for every model (broadcast to ``[P, …]``)."""
    out = {}
    for k, v in params.items():
        shape = v.shape[1:]
        if kind == "rademacher":
            r = torch.randint(0, 2, shape, generator=gen).to(v.dtype) * 2 - 1
        else:
            r = torch.randn(shape, generator=gen, dtype=torch.float64).to(v.dtype)
        out[k] = r.unsqueeze(0).expand_as(v).clone()
    return out


def per_model_loss(spec: Mapping[str, Any], params: Mapping[str, Tensor], x: Tensor, y: Tensor) -> Tensor:
    """Mean cross-entropy ``[P]`` (nats); ``x`` ``[P, B, *shape]``, ``y`` ``[P, B]``."""
    logits = forward_population(spec, params, x)
    P = logits.shape[0]
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="none").view(P, -1).mean(1)


# ---------------------------------------------------------------- Hessian

class HessianOperator:
    """Hessian-vector products of every model's loss at once (gradient graph built once)."""

    def __init__(self, loss_fn: Callable[[Params], Tensor], params: Mapping[str, Tensor]):
        self.names = list(params)
        self.leaves = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
        self.loss = loss_fn(self.leaves)  # [P]
        grads = torch.autograd.grad(self.loss.sum(), [self.leaves[k] for k in self.names], create_graph=True)
        self.grads = list(grads)

    def matvec(self, v: Mapping[str, Tensor]) -> Params:
        """``H v`` for every model (``v`` stacked ``[P, …]``)."""
        hv = torch.autograd.grad(self.grads, [self.leaves[k] for k in self.names],
                                 grad_outputs=[v[k] for k in self.names], retain_graph=True)
        return {k: h.detach() for k, h in zip(self.names, hv)}


#: Power iteration drops converged models once at most this share of the operator's models still iterate.
COMPACT_AT = 0.75


def hessian_operator(spec: Mapping[str, Any], params: Mapping[str, Tensor], x: Tensor, y: Tensor,
                     manual: bool = True) -> Any:
    """The Hessian operator of every model's mean cross-entropy on ``x`` ``[P, B, …]``, ``y`` ``[P, B]``:
    the hand-written one for MLPs (:class:`zoo.manual_hvp.MLPHessianOperator`, equal to float
    rounding), autograd's double backward otherwise or with ``manual=False``."""
    from zoo.manual_hvp import MLPHessianOperator
    from zoo.manual_hvp import supports as has_manual_hvp

    if manual and has_manual_hvp(spec):
        return MLPHessianOperator(spec, params, x, y)
    return HessianOperator(lambda p: per_model_loss(spec, p, x, y), params)


def top_eigenvalue(op: HessianOperator, iters: int = 100, tol: float = 1e-6, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Largest-magnitude Hessian eigenvalue ``[P]`` by power iteration; also steps used ``[P]``.

    A model stops updating once its Rayleigh quotient changes by less than ``tol`` relatively.
    An operator with a ``subset`` method (the hand-written MLP one) is shrunk to the models
    still iterating once at most :data:`COMPACT_AT` of those it covers are, so converged
    models stop costing HVPs (each model's iterates are its own either way).
    """
    gen = torch.Generator().manual_seed(derive_seed(seed, "power-iteration"))
    v = _shared_vectors(op.leaves, "normal", gen)
    v = _scale(v, 1 / pnorm(v))
    P = op.loss.shape[0]
    eig = torch.full((P,), float("nan"), dtype=op.loss.dtype)
    done = torch.zeros(P, dtype=torch.bool)
    steps = torch.zeros(P, dtype=torch.int64)
    active = torch.arange(P)  # the models the current operator covers
    for _ in range(iters):
        hv = op.matvec(v)
        new = pdot(v, hv).detach()
        old, was_done = eig[active], done[active]
        conv = (new - old).abs() <= tol * new.abs().clamp_min(1e-12)
        eig[active] = torch.where(was_done, old, new)
        steps[active] += (~was_done).long()
        now_done = was_done | conv
        done[active] = now_done
        norm = pnorm(hv)
        ok = (norm > 0) & ~now_done
        v = {k: torch.where(ok.view(-1, *([1] * (v[k].dim() - 1))), hv[k] / norm.clamp_min(1e-30).view(-1, *([1] * (v[k].dim() - 1))), v[k])
             for k in v}
        if bool(done.all()):
            break
        running = (~now_done).nonzero().squeeze(1)
        if hasattr(op, "subset") and len(running) <= COMPACT_AT * len(active):
            op, active = op.subset(running), active[running]
            v = {k: t.index_select(0, running) for k, t in v.items()}
    return eig, steps


def hutchinson_trace(op: HessianOperator, probes: int = 16, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Hutchinson trace estimate ``[P]`` and its standard error ``[P]`` (fixed Rademacher probes)."""
    gen = torch.Generator().manual_seed(derive_seed(seed, "hutchinson"))
    samples = []
    for _ in range(probes):
        v = _shared_vectors(op.leaves, "rademacher", gen)
        samples.append(pdot(v, op.matvec(v)))
    s = torch.stack(samples, 1).double()
    se = s.std(1, unbiased=True) / math.sqrt(probes) if probes > 1 else torch.full_like(s[:, 0], float("nan"))
    return s.mean(1), se


# ---------------------------------------------------------------- CKA and distances

def linear_cka(x: Tensor, y: Tensor) -> Tensor:
    """Linear CKA of representations ``x`` ``[..., n, p]`` and ``y`` ``[..., n, q]`` (float64).

    CKA = ‖YᵀX‖²_F / (‖XᵀX‖_F ‖YᵀY‖_F) after centring each column; in [0, 1]; NaN when
    either representation is constant over the ``n`` inputs.
    """
    x0, y0 = x.double(), y.double()
    x, y = x0 - x0.mean(-2, keepdim=True), y0 - y0.mean(-2, keepdim=True)
    xy = (y.transpose(-1, -2) @ x).square().sum((-1, -2))
    xx = (x.transpose(-1, -2) @ x).square().sum((-1, -2)).sqrt()
    yy = (y.transpose(-1, -2) @ y).square().sum((-1, -2)).sqrt()
    # A constant representation (e.g. a collapsed net; float32 softmax noise ~1e-7) has no
    # CKA: NaN rather than a ratio of rounding errors.
    def varies(c: Tensor, raw: Tensor) -> Tensor:
        return c.square().sum((-1, -2)) > 1e-10 * raw.square().sum((-1, -2))
    return torch.where(varies(x, x0) & varies(y, y0), xy / (xx * yy), torch.nan)


def mixup_inputs(x: Tensor, n: int, seed: int = 0, alpha: float = 16.0) -> Tensor:
    """``n`` mixup inputs λxᵢ + (1−λ)xⱼ, random pairs (i, j), λ ~ Beta(alpha, alpha); fixed seed."""
    rng = np.random.default_rng(derive_seed(seed, "mixup"))
    i, j = rng.integers(0, len(x), n), rng.integers(0, len(x), n)
    lam = torch.from_numpy(rng.beta(alpha, alpha, n)).to(x.dtype).view(-1, *([1] * (x.dim() - 1)))
    return lam * x[i] + (1 - lam) * x[j]


def flat(params: Mapping[str, Tensor]) -> Tensor:
    """Parameters flattened per model ``[P, n_params]``."""
    return torch.cat([v.flatten(1) for v in params.values()], 1)


# ---------------------------------------------------------------- mode connectivity

def bezier(a: Mapping[str, Tensor], c: Mapping[str, Tensor], b: Mapping[str, Tensor], t: Tensor) -> Params:
    """Quadratic Bezier point (1−t)²a + 2t(1−t)c + t²b for every pair; ``t`` ``[Q]``."""
    out = {}
    for k in a:
        tt = t.to(a[k].dtype).view(-1, *([1] * (a[k].dim() - 1)))
        out[k] = (1 - tt) ** 2 * a[k] + 2 * tt * (1 - tt) * c[k] + tt**2 * b[k]
    return out


@torch.no_grad()
def curve_errors(spec: Mapping[str, Any], a: Params, c: Params, b: Params, x: Tensor, y: Tensor,
                 ts: Tensor) -> tuple[Tensor, Tensor]:
    """Error and loss ``[Q, T]`` of every pair's curve at each ``t`` of ``ts``; ``x`` ``[Q, B, …]``."""
    Q, T = next(iter(a.values())).shape[0], len(ts)
    t = ts.repeat_interleave(Q)  # [T*Q], t-major
    rep = {k: v.repeat(T, *([1] * (v.dim() - 1))) for k, v in a.items()}
    pts = bezier(rep, {k: v.repeat(T, *([1] * (v.dim() - 1))) for k, v in c.items()},
                 {k: v.repeat(T, *([1] * (v.dim() - 1))) for k, v in b.items()}, t)
    logits = forward_population(spec, pts, x.repeat(T, *([1] * (x.dim() - 1))))
    yy = y.repeat(T, 1)
    err = (logits.argmax(-1) != yy).double().mean(1).view(T, Q).T
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), yy.reshape(-1), reduction="none").view(T * Q, -1).mean(1)
    return err, loss.double().view(T, Q).T


def yang_mc(values: Tensor) -> Tensor:
    """mc = ½(v(0)+v(1)) − v(t*) at the interior t* of largest deviation; ``values`` ``[Q, T]``."""
    ends = 0.5 * (values[:, 0] + values[:, -1])
    dev = ends.unsqueeze(1) - values[:, 1:-1]
    idx = dev.abs().argmax(1, keepdim=True)
    return dev.gather(1, idx).squeeze(1)


def _pair_streams(settings: LandscapeSettings, purpose: str, keys: Sequence[str]) -> list[np.random.Generator]:
    """One random stream per pair, seeded by the pair's key only (not by its population)."""
    return [np.random.default_rng(derive_seed(settings.seed, purpose, key)) for key in keys]


def train_curve(spec: Mapping[str, Any], a: Params, b: Params, x_train: Tensor, y_train: Tensor,
                pools: Sequence[np.ndarray], settings: LandscapeSettings, keys: Sequence[str] | None = None) -> Params:
    """Train the control points θc ``[Q, …]`` (Adam, t ~ U(0,1) per pair and step), endpoints fixed.

    The Adam step is ``curve_lr`` × the RMS of θ₁ − θ₂ over all parameters of the pair.
    ``pools[q]``: indices of the training examples of pair ``q``; ``keys[q]``: its name
    (e.g. the two model ids), which seeds its batches and values of t.
    """
    if has_manual_backward(spec) and settings.curve_steps > 0:
        return _train_curve_manual(spec, a, b, x_train, y_train, pools, settings, keys)
    c = {k: (0.5 * (a[k] + b[k])).detach().clone().requires_grad_(True) for k in a}
    m = {k: torch.zeros_like(v) for k, v in c.items()}
    s = {k: torch.zeros_like(v) for k, v in c.items()}
    # Step size relative to the pair's endpoint separation (RMS over all parameters of θ₁ − θ₂),
    # so one setting suits narrow and wide nets alike (an Adam step is ~lr in every coordinate).
    sep = (flat(a) - flat(b)).square().mean(1).sqrt()
    lr = {k: settings.curve_lr * sep.view(-1, *([1] * (a[k].dim() - 1))) for k in a}
    rngs = _pair_streams(settings, "curve", keys or [str(q) for q in range(len(pools))])
    b1, b2, eps = 0.9, 0.999, 1e-8
    for step in range(1, settings.curve_steps + 1):
        idx = torch.from_numpy(np.stack([p[r.integers(0, len(p), settings.curve_batch)] for p, r in zip(pools, rngs)]))
        t = torch.tensor([r.random() for r in rngs], dtype=torch.float64)
        loss = per_model_loss(spec, bezier(a, c, b, t), x_train[idx], y_train[idx])
        grads = torch.autograd.grad(loss.sum(), list(c.values()))
        with torch.no_grad():
            for (k, v), g in zip(c.items(), grads):
                g = torch.nan_to_num(g)
                m[k].mul_(b1).add_(g, alpha=1 - b1)
                s[k].mul_(b2).addcmul_(g, g, value=1 - b2)
                v -= lr[k] * (m[k] / (1 - b1**step)) / ((s[k] / (1 - b2**step)).sqrt() + eps)
    return {k: v.detach() for k, v in c.items()}


def _train_curve_manual(spec: Mapping[str, Any], a: Params, b: Params, x_train: Tensor, y_train: Tensor,
                        pools: Sequence[np.ndarray], settings: LandscapeSettings, keys: Sequence[str] | None) -> Params:
    """:func:`train_curve` for MLPs with the hand-written gradient (:mod:`zoo.manual_mlp`).

    The same batches, values of t, Bezier points and Adam steps, on flat per-pair buffers:
    dL/dθc = 2t(1−t)·∇θL(γ(t)), with ∇θL from :class:`ManualMLP` instead of autograd
    (equal to float32 rounding; bit-identical whatever the other pairs).
    """
    from zoo.optim import FlatLayout
    from zoo.train import _gather_rows

    layout = FlatLayout.of(a)
    Q = layout.P
    A, B = layout.pack(a), layout.pack(b)
    C = layout.pack({k: 0.5 * (a[k] + b[k]) for k in a})
    M, S, theta, grad = (layout.empty(A.dtype) for _ in range(4))
    rows = layout.rows
    theta_views, grad_views = layout.views(theta), layout.views(grad)
    step_fn = ManualMLP.of(spec, layout.shapes)
    sep = (flat(a) - flat(b)).square().mean(1).sqrt()
    lr = (settings.curve_lr * sep).view(Q, 1)
    rngs = _pair_streams(settings, "curve", keys or [str(q) for q in range(len(pools))])
    x_rows, gathered = x_train.reshape(len(x_train), -1).to(A.dtype), {}
    n_rows = step_fn.padded(settings.curve_batch)
    ones = torch.ones(Q, dtype=A.dtype)
    b1, b2, eps = 0.9, 0.999, 1e-8
    for step in range(1, settings.curve_steps + 1):
        idx = torch.from_numpy(np.stack([p[r.integers(0, len(p), settings.curve_batch)] for p, r in zip(pools, rngs)]))
        t = torch.tensor([r.random() for r in rngs], dtype=torch.float64).to(A.dtype).view(Q, 1)
        w_a, w_c, w_b = (1 - t) ** 2, 2 * t * (1 - t), t**2  # as bezier() computes them
        torch.mul(rows(A), w_a, out=rows(theta)).addcmul_(rows(C), w_c).addcmul_(rows(B), w_b)
        xb = _gather_rows(x_rows, idx, n_rows, gathered).view(Q, n_rows, *x_train.shape[1:])
        step_fn.loss(theta_views, xb, y_train.index_select(0, idx.reshape(-1)).view(Q, -1))
        step_fn.backward(ones, grad_views)
        g = torch.nan_to_num_(rows(grad).mul_(w_c))
        rows(M).mul_(b1).add_(g, alpha=1 - b1)
        rows(S).mul_(b2).addcmul_(g, g, value=1 - b2)
        rows(C).sub_(lr * (rows(M) / (1 - b1**step)) / ((rows(S) / (1 - b2**step)).sqrt() + eps))
    return {k: v.clone() for k, v in layout.views(C).items()}


def mode_connectivity(spec: Mapping[str, Any], a: Params, b: Params, x_train: Tensor, y_train: Tensor,
                      pools: Sequence[np.ndarray], settings: LandscapeSettings,
                      keys: Sequence[str] | None = None) -> dict[str, Tensor]:
    """Yang et al. mc (error and loss), linear-path mc and linear barrier for each pair ``[Q]``.

    ``keys[q]`` names pair ``q`` and seeds its random streams, so a pair's result does not
    depend on the other pairs computed with it.
    """
    keys = keys or [str(q) for q in range(len(pools))]
    rngs = _pair_streams(settings, "curve-eval", keys)
    eval_idx = torch.from_numpy(np.stack([r.permutation(p)[: settings.n_eval] if len(p) >= settings.n_eval
                                          else p[r.integers(0, len(p), settings.n_eval)] for p, r in zip(pools, rngs)]))
    xe, ye = x_train[eval_idx], y_train[eval_idx]
    ts = torch.linspace(0, 1, settings.curve_points, dtype=torch.float64)
    mid = {k: 0.5 * (a[k] + b[k]) for k in a}
    lin_err, _ = curve_errors(spec, a, mid, b, xe, ye, ts)
    chord = (1 - ts) * lin_err[:, :1] + ts * lin_err[:, -1:]
    c = train_curve(spec, a, b, x_train, y_train, pools, settings, keys) if settings.curve_steps > 0 else mid
    err, loss = curve_errors(spec, a, c, b, xe, ye, ts)
    return {"mc": yang_mc(err), "mc_loss": yang_mc(loss), "mc_linear": yang_mc(lin_err),
            "linear_barrier": (lin_err - chord).max(1).values, "curve_max_err": err.max(1).values}


# ---------------------------------------------------------------- one population

def eval_indices(subset: np.ndarray, n_train: int, n_eval: int, seed: int = 0) -> np.ndarray:
    """The fixed evaluation batch: the first ``n_eval`` of the model's training examples in a
    seeded order of the whole training set (the same batch for models with the same subset)."""
    order = np.random.default_rng(derive_seed(seed, "landscape-eval")).permutation(n_train)
    keep = order[np.isin(order, subset)]
    return keep[:n_eval] if len(keep) >= n_eval else np.resize(keep, n_eval)


def grid_point_groups(specs: Sequence[Mapping[str, Any]]) -> dict[str, list[int]]:
    """Indices of the models of each grid point (specs equal except ``seed``), seed order."""
    from zoo.hashing import short_hash

    groups: dict[str, list[int]] = {}
    for i, s in enumerate(specs):
        groups.setdefault(short_hash({k: v for k, v in s.items() if k != "seed"}), []).append(i)
    return {g: sorted(ix, key=lambda i: specs[i]["seed"]) for g, ix in groups.items()}


def seed_pairs(members: Sequence[int]) -> list[tuple[int, int]]:
    """Pairs for mc: one pair for 2 seeds, a ring (each model in 2 pairs) for ≥ 3."""
    k = len(members)
    if k < 2:
        return []
    if k == 2:
        return [(members[0], members[1])]
    return [(members[i], members[(i + 1) % k]) for i in range(k)]


def population_landscape(specs: Sequence[Mapping[str, Any]], model_ids: Sequence[str], params: Mapping[str, Tensor],
                         x_train: Tensor, y_train: Tensor, subsets: Sequence[np.ndarray], diverged: Sequence[bool],
                         settings: LandscapeSettings = LandscapeSettings(),
                         y_fit: Tensor | None = None, manual_hessian: bool = True) -> list[dict[str, Any]]:
    """Landscape rows (one per model) of one population at one checkpoint.

    ``params`` stacked ``[P, …]``; ``subsets[i]`` the training indices of model ``i``;
    diverged models get NaN metrics and are nobody's peer. ``y_fit`` ``[P, N]``: each model's
    own training labels where they differ from ``y_train`` (label noise); the Hessian is
    taken of the loss on them (the loss the model minimised), while the curves between
    seeds are trained and scored on the dataset's labels ``y_train``, common to both ends.
    """
    base, P = specs[0], len(specs)
    ok = [i for i in range(P) if not diverged[i] and all(bool(torch.isfinite(v[i]).all()) for v in params.values())]
    nan = float("nan")
    rows = [{"model_id": model_ids[i], "hessian_top_eig": nan, "hessian_power_steps": 0, "hessian_trace": nan,
             "hessian_trace_se": nan, "eval_loss": nan, "mc": nan, "mc_loss": nan, "mc_linear": nan,
             "linear_barrier": nan, "cka_mean": nan, "l2_to_peers": nan, "n_peers": 0, "n_pairs": 0,
             "landscape_diverged": i not in ok, "wall_s": nan} for i in range(P)]
    if not ok:
        return rows
    t0 = time.perf_counter()
    sub = {k: v[ok] for k, v in params.items()}
    idx = torch.from_numpy(np.stack([eval_indices(subsets[i], len(x_train), settings.n_eval, settings.seed) for i in ok]))
    xe = x_train[idx].to(next(iter(sub.values())).dtype)
    ye = torch.gather(y_fit[ok], 1, idx) if y_fit is not None else y_train[idx]
    op = hessian_operator(base, sub, xe, ye, manual=manual_hessian)
    eig, steps = top_eigenvalue(op, settings.power_iters, settings.power_tol, settings.seed)
    tr, se = hutchinson_trace(op, settings.probes, settings.seed)
    for j, i in enumerate(ok):
        rows[i].update(hessian_top_eig=float(eig[j]), hessian_power_steps=int(steps[j]), hessian_trace=float(tr[j]),
                       hessian_trace_se=float(se[j]), eval_loss=float(op.loss[j].detach()))
    del op

    # Peers: the other non-diverged seeds of the same grid point.
    pos = {i: j for j, i in enumerate(ok)}
    groups = [[i for i in g if i in pos] for g in grid_point_groups(specs).values()]
    with torch.no_grad():
        xm = mixup_inputs(x_train, settings.n_mix, settings.seed)
        probs = torch.softmax(forward_population(base, sub, xm.unsqueeze(0).expand(len(ok), *xm.shape)), -1)
        fl = flat(sub).double()
    for g in groups:
        for i in g:
            peers = [pos[p] for p in g if p != i]
            if not peers:
                continue
            rows[i]["n_peers"] = len(peers)
            rows[i]["cka_mean"] = float(linear_cka(probs[pos[i]].unsqueeze(0), probs[peers]).nanmean())
            rows[i]["l2_to_peers"] = float((fl[peers] - fl[pos[i]]).norm(dim=1).mean())
    pairs = [pr for g in groups for pr in seed_pairs(g)]
    if pairs:
        ia, ib = [pos[a] for a, _ in pairs], [pos[b] for _, b in pairs]
        pools = [np.union1d(subsets[a], subsets[b]) for a, b in pairs]
        res = mode_connectivity(base, {k: v[ia] for k, v in sub.items()}, {k: v[ib] for k, v in sub.items()},
                                x_train, y_train, pools, settings, [f"{model_ids[a]}|{model_ids[b]}" for a, b in pairs])
        acc: dict[int, dict[str, list[float]]] = {}
        for q, (a, b) in enumerate(pairs):
            for i in (a, b):
                d = acc.setdefault(i, {})
                for key in ("mc", "mc_loss", "mc_linear", "linear_barrier"):
                    d.setdefault(key, []).append(float(res[key][q]))
        for i, d in acc.items():
            rows[i].update({key: float(np.mean(v)) for key, v in d.items()}, n_pairs=len(d["mc"]))
    t2 = time.perf_counter()
    for i in ok:
        rows[i]["wall_s"] = (t2 - t0) / len(ok)
    return rows


def settings_dict(settings: LandscapeSettings) -> dict[str, Any]:
    """The settings as a plain dict (stored in the Parquet metadata)."""
    return asdict(settings)
