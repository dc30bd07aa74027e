"""Weight-space learners: predict a network's properties from its weights (DESIGN §6).

Modules, one job each:

- :mod:`zoo.learners.dataset`  — ``WeightDataset`` (public as ``zoo.WeightDataset``): the ``weights``
  Parquet → per-layer torch tensors, joined with ``models``/``metrics`` (and ``phases``) as targets;
  the NFN layout per shape group (``to_stacked``) and a collate for mixed widths.
- :mod:`zoo.learners.tasks`    — task names → targets; tasks a zoo cannot provide.
- :mod:`zoo.learners.features` — StatNN statistics and spectral-table features.
- :mod:`zoo.learners.augment`  — weight-space augmentations (symmetries, noise, MixUp, Git Re-Basin matching).
- :mod:`zoo.learners.splits`   — the protocols (``nfn``, ``pooled``) and by-model splits from a split seed.
- :mod:`zoo.learners.tabular`  — ``hparams-gbm`` (the control), ``statnn-*`` / ``spectral-*`` (scikit-learn).
- :mod:`zoo.learners.nets`     — the flat MLP and the neuron-permutation-invariant network (plain torch).
- :mod:`zoo.learners.nfn_nets` — ``nfn-np`` / ``nfn-hnp``: the NFN paper's predictor on the official ``nfn`` layers.
- :mod:`zoo.learners.neural`   — Lightning training of the nets (``flat-mlp``, ``equivariant``, ``nfn-*``).
- :mod:`zoo.learners.scores`   — Kendall τ, R², bootstrap intervals over test models, the seed summary.
- :mod:`zoo.learners.harness`  — task × learner × augmentation × learner seed → ``results`` / ``predictions``.
- :mod:`zoo.learners.workflow` — target lists and job inputs for ``workflow/rules/learn.smk``.
"""

from __future__ import annotations

# Learner names accepted by the harness and the config (``learn.learners``), and single
# augmentations (chain several with ``+``; ``none`` = no augmentation): one source, zoo.enums.
from zoo.enums import AUGMENTS, LEARNERS

__all__ = ["AUGMENTS", "LEARNERS"]
