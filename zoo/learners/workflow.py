"""What ``workflow/rules/learn.smk`` needs: target lists and per-job inputs/arguments (no heavy imports)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def learn_targets(data: str, learn: Mapping[str, Any], zoos: Iterable[str]) -> list[str]:
    """Every ``results`` / ``predictions`` file the ``learn:`` config asks for."""
    return [
        f"{data}/learners/{z}/{t}/{lr}/{a}/{kind}.parquet"
        for z in learn.get("zoos", list(zoos))
        for t in learn.get("tasks", ["test_acc"])
        for lr in learn.get("learners", ["statnn-gbm"])
        for a in learn.get("augments", ["none"])
        for kind in ("results", "predictions")
    ]


def learn_inputs(zoo_dir: str, populations: Iterable[str], task: str, learner: str, learn: Mapping[str, Any],
                 has_spectral: bool, has_phases: bool) -> list[str]:
    """The zoo tables one learn job reads; spectral / phases only where a stage makes them."""
    pops = list(populations)
    files = [f"{zoo_dir}/{table}/{p}.parquet" for table in ("weights", "models", "metrics") for p in pops]
    if learner.startswith("spectral") and has_spectral:
        files += [f"{zoo_dir}/spectral/{p}.parquet" for p in pops]
    if (task == "phase" or str(learn.get("split", "")).startswith("phase")) and has_phases:
        files.append(f"{zoo_dir}/phases.parquet")
    return files


def learn_args(learn: Mapping[str, Any]) -> str:
    """``zoo learn`` options from the ``learn:`` config (seeds, split, epochs, max_epochs)."""
    args = ["--seeds", *map(str, learn.get("seeds", [0])), "--split", str(learn.get("split", "model"))]
    if "epochs" in learn:
        args += ["--epochs", *map(str, learn["epochs"])]
    if "max_epochs" in learn:
        args += ["--max-epochs", str(learn["max_epochs"])]
    return " ".join(args)
