"""Weight-space augmentations on one network's ``{tensor: Tensor}`` (usable on the fly).

Symmetries (the function, i.e. the logits, is unchanged — tests check it to 1e-5):

- :func:`permute_hidden` — permute the hidden neurons (MLP) / channels (CNN) of every hidden layer;
- :func:`relu_rescale` — scale a hidden unit's incoming weights and bias by ``c > 0`` and its
  outgoing weights by ``1/c`` (exact for positively homogeneous activations: ReLU, identity);
- :func:`sign_flip` — negate a hidden unit's incoming weights and bias together with its
  outgoing weights (exact for odd activations: sine — SIRENs, since sin(−x) = −sin(x) —, tanh, identity);
- :func:`weight_matching` + :func:`apply_permutation` — Git Re-Basin weight matching
  (Ainsworth et al. 2023, Alg. 1): align network B to A by a Hungarian assignment per hidden
  layer (coordinate ascent on Σ_l ⟨W_l^A, P_l W_l^B P_{l-1}ᵀ⟩).

Perturbations: :func:`gaussian_noise`, :func:`weight_dropout`, :func:`quantile_sparsify`.
MixUp of weights and targets: :func:`mixup` (plain, after a random permutation, or after
weight matching). :class:`Augmenter` chains them by name, e.g. ``"permutation+noise"``.

``mixup-match`` aligns each training network **once** to a reference network of its shape
(:func:`align_to_reference`; the first training network of that shape) before training,
instead of matching every sampled pair anew every epoch: two networks aligned to one
reference are aligned to each other, the alignment is a symmetry (the logits do not
change), and the learners train on the aligned copies. One Hungarian sweep per network
instead of one per sample per epoch (speed-up in docs/learners.md).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from zoo.errors import SpecError
from zoo.learners import AUGMENTS
from zoo.learners.dataset import layer_pairs

Params = dict[str, Tensor]
#: Activations f with f(c·x) = c·f(x) for c > 0, for which :func:`relu_rescale` is a symmetry.
HOMOGENEOUS = ("relu", "identity")
#: Odd activations f(−x) = −f(x), for which :func:`sign_flip` is a symmetry (``sine``: SIRENs).
ODD = ("sine", "tanh", "identity")


def hidden_sizes(params: Mapping[str, Tensor]) -> list[int]:
    """Number of units in each hidden layer (rows of every weight but the classifier's)."""
    return [params[w].shape[0] for w, _ in layer_pairs(params)[:-1]]


def apply_permutation(params: Mapping[str, Tensor], perms: Sequence[Tensor | np.ndarray]) -> Params:
    """Unit ``j`` of hidden layer ``l`` becomes old unit ``perms[l][j]`` (rows of W_l, b_l; columns of W_{l+1})."""
    out = dict(params)
    pairs = layer_pairs(params)
    for li, p in enumerate(perms):
        p = torch.as_tensor(np.asarray(p), dtype=torch.long)
        w, b = pairs[li]
        w_next = pairs[li + 1][0]
        out[w] = out[w][p]
        out[b] = out[b][p]
        out[w_next] = out[w_next][:, p]
    return {k: out[k] for k in params}


def random_permutations(params: Mapping[str, Tensor], rng: np.random.Generator) -> list[np.ndarray]:
    """One uniformly random permutation per hidden layer."""
    return [rng.permutation(n) for n in hidden_sizes(params)]


def permute_hidden(params: Mapping[str, Tensor], rng: np.random.Generator) -> Params:
    """Randomly permute every hidden layer's units (a symmetry: logits unchanged)."""
    return apply_permutation(params, random_permutations(params, rng))


def relu_rescale(params: Mapping[str, Tensor], rng: np.random.Generator, log_range: float = 1.0,
                 activation: str = "relu") -> Params:
    """Multiply each hidden unit's in-weights and bias by ``c = exp(U(-log_range, log_range))``
    and its out-weights by ``1/c`` (a symmetry of ReLU networks: logits unchanged)."""
    if activation not in HOMOGENEOUS:
        raise SpecError(f"learn.augments: 'rescale' is a symmetry only for {'/'.join(HOMOGENEOUS)} networks, "
                        f"not {activation!r}; drop it for this zoo")
    return scale_hidden_units(params, lambda n: np.exp(rng.uniform(-log_range, log_range, n)))


def scale_hidden_units(params: Mapping[str, Tensor], factors: Callable[[int], np.ndarray]) -> Params:
    """Each hidden unit's in-weights and bias × ``c``, its out-weights ÷ ``c``; ``factors(n)`` draws a layer's ``c``."""
    out = dict(params)
    pairs = layer_pairs(params)
    for li, n in enumerate(hidden_sizes(params)):
        c = torch.from_numpy(factors(n)).to(out[pairs[li][0]].dtype)
        w, b = pairs[li]
        w_next = pairs[li + 1][0]
        out[w] = out[w] * c.view(-1, *[1] * (out[w].dim() - 1))
        out[b] = out[b] * c
        out[w_next] = out[w_next] / c.view(1, -1, *[1] * (out[w_next].dim() - 2))
    return {k: out[k] for k in params}


def sign_flip(params: Mapping[str, Tensor], rng: np.random.Generator, activation: str = "sine") -> Params:
    """Negate each hidden unit's in-weights and bias, and its out-weights, with probability 1/2 per unit.

    A symmetry of networks with an odd activation (:data:`ODD`): the unit's output changes
    sign and the next layer's weights change it back, so the function is unchanged.
    """
    if activation not in ODD:
        raise SpecError(f"learn.augments: 'signflip' is a symmetry only for {'/'.join(ODD)} networks, "
                        f"not {activation!r}; drop it for this zoo")
    # dividing by ±1 is exact, so the flip shares the rescaling loop
    return scale_hidden_units(params, lambda n: np.where(rng.random(n) < 0.5, -1.0, 1.0))


def gaussian_noise(params: Mapping[str, Tensor], rng: np.random.Generator, sigma: float = 0.05) -> Params:
    """Add N(0, (σ·std(tensor))²) to every entry (σ relative to each tensor's spread)."""
    out = {}
    for k, t in params.items():
        scale = float(t.std()) if t.numel() > 1 else float(t.abs().mean())
        noise = torch.from_numpy(rng.standard_normal(tuple(t.shape))).to(t.dtype)
        out[k] = t + sigma * scale * noise
    return out


def weight_dropout(params: Mapping[str, Tensor], rng: np.random.Generator, p: float = 0.05) -> Params:
    """Zero each weight entry with probability ``p`` (biases untouched; no rescaling)."""
    return {k: (t * torch.from_numpy(rng.random(tuple(t.shape)) >= p).to(t.dtype)) if k.endswith("weight") else t
            for k, t in params.items()}


def quantile_sparsify(params: Mapping[str, Tensor], rng: np.random.Generator, max_quantile: float = 0.2) -> Params:
    """Zero the weights with |w| below the q-quantile of the tensor's |w|, q ~ U(0, max_quantile)."""
    out = {}
    for k, t in params.items():
        if not k.endswith("weight"):
            out[k] = t
            continue
        q = rng.uniform(0.0, max_quantile)
        thresh = torch.quantile(t.abs().flatten().double(), q).to(t.dtype)
        out[k] = torch.where(t.abs() < thresh, torch.zeros_like(t), t)
    return out


def weight_matching(a: Mapping[str, Tensor], b: Mapping[str, Tensor], max_iter: int = 100,
                    rng: np.random.Generator | None = None) -> list[np.ndarray]:
    """Permutations aligning ``b`` to ``a``: ``apply_permutation(b, perms)`` ≈ ``a`` unit by unit.

    Coordinate ascent over hidden layers (random order per sweep), each step a linear
    assignment (Hungarian, ``scipy.optimize.linear_sum_assignment``) maximising
    ⟨W_l^A, W_l^B[p_l][:, p_{l-1}]⟩ + ⟨b_l^A, b_l^B[p_l]⟩ + ⟨W_{l+1}^A, W_{l+1}^B[p_{l+1}][:, p_l]⟩,
    until no permutation changes.
    """
    rng = rng or np.random.default_rng(0)
    pairs = layer_pairs(a)
    sizes = hidden_sizes(a)
    if sizes != hidden_sizes(b):
        raise ValueError("weight matching needs two networks of the same architecture")
    A = {k: v.detach().double().numpy() for k, v in a.items()}
    B = {k: v.detach().double().numpy() for k, v in b.items()}
    perms = [np.arange(n) for n in sizes]
    L = len(sizes)
    for _ in range(max_iter):
        changed = False
        for li in rng.permutation(L):
            w, bias = pairs[li]
            w_next = pairs[li + 1][0]
            wa, wb = A[w], B[w]
            if li > 0:
                wb = wb[:, perms[li - 1]]
            cost = wa.reshape(wa.shape[0], -1) @ wb.reshape(wb.shape[0], -1).T
            cost += np.outer(A[bias], B[bias])
            na, nb = A[w_next], B[w_next]
            if li + 1 < L:
                nb = nb[perms[li + 1]]
            na = np.moveaxis(na, 1, 0).reshape(na.shape[1], -1)
            nb = np.moveaxis(nb, 1, 0).reshape(nb.shape[1], -1)
            cost += na @ nb.T
            _, cols = linear_sum_assignment(cost, maximize=True)
            if not np.array_equal(cols, perms[li]):
                # Accept only strict improvements so the ascent cannot cycle on ties.
                old = cost[np.arange(len(cols)), perms[li]].sum()
                if cost[np.arange(len(cols)), cols].sum() > old + 1e-12:
                    perms[li] = cols
                    changed = True
        if not changed:
            break
    return perms


def align_to_reference(samples: Sequence[Mapping[str, Tensor]], groups: Mapping[object, Sequence[int]],
                       rng: np.random.Generator | None = None) -> list[Params]:
    """Every sample aligned (weight matching) to the first sample of its group, once.

    ``groups`` maps a shape key to the indices of the samples of that shape. The
    reference itself is returned unchanged. Deterministic given ``rng`` (default seed 0).
    """
    rng = rng or np.random.default_rng(0)
    out: list[Params] = [dict(s) for s in samples]
    for idx in groups.values():
        ref = samples[idx[0]]
        for i in idx[1:]:
            out[i] = apply_permutation(samples[i], weight_matching(ref, samples[i], rng=rng))
    return out


def mixup(a: Mapping[str, Tensor], b: Mapping[str, Tensor], lam: float) -> Params:
    """``λ·a + (1−λ)·b`` tensor by tensor (same architecture)."""
    return {k: lam * a[k] + (1 - lam) * b[k] for k in a}


def parse_augment(name: str) -> list[str]:
    """``"permutation+noise"`` → ``["permutation", "noise"]``; ``"none"`` → ``[]``; unknown → SpecError."""
    parts = [p for p in name.split("+") if p]
    for p in parts:
        if p not in AUGMENTS:
            raise SpecError(f"learn.augments: unknown augmentation {p!r} in {name!r}; known: {', '.join(AUGMENTS)} (join with '+')")
    mixes = [p for p in parts if p.startswith("mixup")]
    if len(mixes) > 1:
        raise SpecError(f"learn.augments: {name!r} has more than one MixUp variant; keep one")
    return [p for p in parts if p != "none"]


class Augmenter:
    """Applies a chain of augmentations to one sample; MixUp draws a partner of the same shape.

    ``partner(rng)`` must return ``(params, target)`` of another training sample with the
    same architecture. Targets are float tensors (scalar, or one-hot for classification).
    ``prealigned``: the samples and partners were aligned to a common reference with
    :func:`align_to_reference`, so ``mixup-match`` mixes them directly; otherwise it
    matches the partner to the sample on every call (slow: one Hungarian sweep per call).
    """

    def __init__(self, name: str, activation: str = "relu", seed: int = 0, alpha: float = 0.4,
                 sigma: float = 0.05, drop_p: float = 0.05, max_quantile: float = 0.2, log_range: float = 1.0):
        self.steps = parse_augment(name)
        self.activation = activation
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.alpha, self.sigma, self.drop_p = alpha, sigma, drop_p
        self.max_quantile, self.log_range = max_quantile, log_range
        self.prealigned = False
        if "mixup-match" in self.steps and any(s in ("permutation", "rescale", "signflip") for s in
                                               self.steps[: self.steps.index("mixup-match")]):
            raise SpecError(f"learn.augments {name!r}: put mixup-match before permutation/rescale "
                            "(it mixes networks aligned to one reference; a symmetry step before it would undo that)")
        if "rescale" in self.steps and activation not in HOMOGENEOUS:
            relu_rescale({}, self.rng, activation=activation)  # raises the SpecError
        if "signflip" in self.steps and activation not in ODD:
            sign_flip({}, self.rng, activation=activation)  # raises the SpecError

    @property
    def needs_partner(self) -> bool:
        return any(s.startswith("mixup") for s in self.steps)

    @property
    def matches(self) -> bool:
        """Whether the chain has ``mixup-match`` (the learner should pre-align its samples)."""
        return "mixup-match" in self.steps

    def __call__(self, params: Params, target: Tensor,
                 partner: Callable[[np.random.Generator], tuple[Params, Tensor]] | None = None) -> tuple[Params, Tensor]:
        rng = self.rng
        for step in self.steps:
            if step == "permutation":
                params = permute_hidden(params, rng)
            elif step == "rescale":
                params = relu_rescale(params, rng, self.log_range, self.activation)
            elif step == "signflip":
                params = sign_flip(params, rng, self.activation)
            elif step == "noise":
                params = gaussian_noise(params, rng, self.sigma)
            elif step == "dropout":
                params = weight_dropout(params, rng, self.drop_p)
            elif step == "sparsify":
                params = quantile_sparsify(params, rng, self.max_quantile)
            elif step.startswith("mixup"):
                if partner is None:
                    raise ValueError("MixUp needs a partner sampler")
                other, other_y = partner(rng)
                if step == "mixup-perm":
                    other = permute_hidden(other, rng)
                elif step == "mixup-match" and not self.prealigned:
                    other = apply_permutation(other, weight_matching(params, other, rng=rng))
                lam = float(rng.beta(self.alpha, self.alpha))
                params = mixup(params, other, lam)
                target = lam * target + (1 - lam) * other_y
        return params, target
