"""Which workflow stages apply to a zoo, and the recorded note for those that do not (DESIGN §9).

An INR zoo (``arch: siren``) fits signals, not classifiers: the cross-entropy Hessian, mode
connectivity by test error, CKA of logits, phase labels (which need all three) and the
merging gain in test accuracy are not defined for it. The workflow builds none of those
outputs for an INR zoo; instead :func:`zoo.jobs.write_zoo_documents` writes
``data/zoos/<zoo>/skipped.json`` (:attr:`zoo.layout.ZooLayout.skipped`) with one reason per
stage, listed in the zoo's manifest. Training, ``weights``, ``spectral``, the learners, the
learning curves, the ESD and spectral-condition figures, provenance and the catalog run as
for any zoo; the grid figure shows ``psnr_db`` instead of ``test_acc``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: Stage (rule name; ``lmc_merging`` = the lmc and merging tables, which the landscape rule writes
#: in the same job) → why it does not apply to an INR zoo.
INR_SKIPPED: dict[str, str] = {
    "landscape": "Hessian of the cross-entropy, mode connectivity by test error and CKA of logits are defined "
                 "for classifiers; an INR zoo fits signals (MSE), so no landscape table is built",
    "phases": "phase labels need the landscape metrics and test accuracy, which an INR zoo does not have",
    "lmc_merging": "barriers by test error and merging gains in test accuracy need classifiers and seed pairs "
                   "of one grid point; an INR zoo fits one signal per model",
    "merging_figure": "needs the lmc/merging tables and phase labels, neither of which an INR zoo has",
    "spectral_figures": "plots alpha against test accuracy, which an INR has none of (see spectral/ for alpha)",
}


def is_inr_zoo(raw: Mapping[str, Any]) -> bool:
    """Whether a zoo's raw spec is an INR zoo."""
    return raw.get("model", {}).get("arch") == "siren"


def skipped_stages(raw: Mapping[str, Any]) -> dict[str, str]:
    """``{stage: reason}`` of the stages that do not apply to the zoo of ``raw`` (empty for classifier zoos)."""
    return dict(INR_SKIPPED) if is_inr_zoo(raw) else {}


def applies(raw: Mapping[str, Any], stage: str) -> bool:
    """Whether the workflow builds ``stage``'s outputs for the zoo of ``raw``."""
    return stage not in skipped_stages(raw)


def grid_metric(raw: Mapping[str, Any]) -> str:
    """The metrics column the grid figure shows: ``psnr_db`` for INR zoos, ``test_acc`` otherwise."""
    return "psnr_db" if is_inr_zoo(raw) else "test_acc"


def skipped_document(zoo: str, raw: Mapping[str, Any]) -> dict[str, Any]:
    """The content of ``skipped.json``: the zoo, its kind and the reason of each skipped stage."""
    return {"zoo": zoo, "kind": "inr" if is_inr_zoo(raw) else "classifier", "status": "skipped",
            "stages": skipped_stages(raw)}
