"""What ``workflow/rules/learn.smk`` needs: target lists and per-job tables/arguments (no heavy imports)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def learn_outputs(layout: Any, learn: Mapping[str, Any], zoos: Iterable[str]) -> list[str]:
    """Every ``results`` / ``predictions`` file the ``learn:`` config asks for one zoo (``layout``: a ZooLayout)."""
    if not learn or layout.zoo not in learn.get("zoos", list(zoos)):
        return []
    return [
        layout.learner_output(t, lr, a, kind)
        for t in learn.get("tasks", ["test_acc"])
        for lr in learn.get("learners", ["statnn-gbm"])
        for a in learn.get("augments", ["none"])
        for kind in ("results", "predictions")
    ]


def learn_tables(task: str, learner: str, learn: Mapping[str, Any]) -> tuple[str, ...]:
    """The zoo tables one learn job reads: weights, models, metrics; spectral and phases where used."""
    tables = ["weights", "models", "metrics"]
    if learner.startswith("spectral"):
        tables.append("spectral")
    if task == "phase" or str(learn.get("split", "")).startswith("phase"):
        tables.append("phases")
    return tuple(tables)


def learn_args(learn: Mapping[str, Any]) -> str:
    """``zoo learn`` options from the ``learn:`` config (protocol, split seed, learner seeds, split, epochs, max_epochs).

    ``protocol`` (``nfn`` | ``pooled``) and ``split_seed`` default to the CLI's (``nfn``, 0).
    """
    args = ["--protocol", str(learn.get("protocol", "nfn")), "--split-seed", str(learn.get("split_seed", 0)),
            "--seeds", *map(str, learn.get("seeds", [0])), "--split", str(learn.get("split", "model"))]
    if "epochs" in learn:
        args += ["--epochs", *map(str, learn["epochs"])]
    if "max_epochs" in learn:
        args += ["--max-epochs", str(learn["max_epochs"])]
    return " ".join(args)
