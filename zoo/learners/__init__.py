"""Weight-space learners: predict a network's properties from its weights (DESIGN §6).

Modules, one job each:

- :mod:`zoo.learners.dataset`  — ``WeightDataset``: the ``weights`` Parquet → per-layer torch tensors,
  joined with ``models``/``metrics`` (and ``phases`` when present) as targets.
- :mod:`zoo.learners.features` — StatNN statistics and spectral-table features.
- :mod:`zoo.learners.augment`  — weight-space augmentations (symmetries, noise, MixUp, Git Re-Basin matching).
- :mod:`zoo.learners.splits`   — seeded by-model splits and out-of-region / out-of-phase splits.
- :mod:`zoo.learners.tabular`  — ``statnn-*`` / ``spectral-*`` learners (scikit-learn GBM and ridge).
- :mod:`zoo.learners.nets`     — the flat MLP and the neuron-permutation-invariant network (plain torch).
- :mod:`zoo.learners.neural`   — Lightning training of the nets (``flat-mlp``, ``equivariant``).
- :mod:`zoo.learners.harness`  — task × learner × augmentation × seed → ``results`` / ``predictions`` tables.
- :mod:`zoo.learners.workflow` — target lists and job inputs for ``workflow/rules/learn.smk``.
"""

from __future__ import annotations

#: Learner names accepted by the harness and the config (``learn.learners``).
LEARNERS: tuple[str, ...] = (
    "statnn-gbm", "statnn-ridge", "spectral-gbm", "spectral-ridge", "flat-mlp", "equivariant",
)

#: Single augmentations; chain several with ``+`` (e.g. ``permutation+noise``). ``none`` = no augmentation.
AUGMENTS: tuple[str, ...] = (
    "none", "permutation", "rescale", "noise", "dropout", "sparsify", "mixup", "mixup-perm", "mixup-match",
)
