"""``zoo landscape`` (one population → landscape/<pop>.parquet, and with ``--lmc/--merging``
its lmc and merging tables in the same process) and ``zoo phases`` (one zoo →
phases.parquet + phase-diagram PNG). Heavy imports live inside the functions."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from zoo.cli import command
from zoo.errors import DataError

LANDSCAPE_COLUMNS: dict[str, str] = {
    "model_id": "string", "zoo": "string", "population": "string", "epoch": "int64",
    "hessian_top_eig": "float64", "hessian_power_steps": "int64", "hessian_trace": "float64",
    "hessian_trace_se": "float64", "eval_loss": "float64", "mc": "float64", "mc_loss": "float64",
    "mc_linear": "float64", "linear_barrier": "float64", "cka_mean": "float64", "l2_to_peers": "float64",
    "n_peers": "int64", "n_pairs": "int64", "landscape_diverged": "bool_", "wall_s": "float64",
}


def landscape_job(population_path: str | Path, checkpoint: str | Path, models_path: str | Path, out: str | Path,
                  epoch: int | None = None, overrides: dict[str, Any] | None = None,
                  lmc_out: str | Path | None = None, merging_out: str | Path | None = None) -> None:
    """Landscape metrics of one population at ``epoch`` (default: its last checkpoint).

    With ``lmc_out`` and ``merging_out`` it also writes the ``lmc`` and ``merging`` tables
    (:func:`zoo.cli_analysis.analysis_of`, default settings) from the same loaded population:
    the workflow's one job per population for both, so torch, the checkpoint and the dataset
    are loaded once (``zoo lmc-merging`` computes the same tables alone).
    """
    import torch

    from zoo.jobs import load_population

    if (lmc_out is None) != (merging_out is None):
        raise DataError("--lmc and --merging go together: pass both files or neither")
    torch.set_num_threads(1)
    data = load_population(population_path, checkpoint, models_path, epoch)
    landscape_of(data, out, overrides)
    if lmc_out is not None:
        from zoo.cli_analysis import analysis_of

        analysis_of(data, lmc_out, merging_out)


def landscape_of(data: Any, out: str | Path, overrides: dict[str, Any] | None = None) -> None:
    """:func:`landscape_job` on a population already loaded (:func:`zoo.jobs.load_population`)."""
    import dataclasses
    import time

    import numpy as np
    import pyarrow as pa
    import torch

    from zoo.landscape import LandscapeSettings, population_landscape
    from zoo.store import write_table
    from zoo.train import train_subset

    t0 = time.perf_counter()
    population, epoch, ids, specs, ds = data.population, data.epoch, data.model_ids, data.specs, data.dataset
    diverged, params = data.diverged, data.params
    task = getattr(ds, "task", "classification")
    x, y = torch.from_numpy(ds.x_train), torch.from_numpy(ds.y_train)
    settings = dataclasses.replace(LandscapeSettings(), **(overrides or {}))
    subsets = [train_subset(s, len(x)) for s in specs]
    y_fit = None
    if any(float(s.get("label_noise", 0.0)) > 0 for s in specs):
        from zoo.train import noisy_labels

        y_fit = torch.from_numpy(np.stack([noisy_labels(s, ds.y_train, sub, ds.n_classes) for s, sub in zip(specs, subsets)]))
    if task == "classification":
        rows = population_landscape(specs, ids, params, x, y, subsets, diverged, settings, y_fit=y_fit)
    else:
        # Cross-entropy Hessian, error-based mc and softmax CKA are defined for classifiers
        # only: other tasks get NaN rows (their phase is then `unlabelled`), not a failed workflow.
        print(f"{data.zoo}/{population}: {task} task, landscape metrics not defined: writing NaN rows", file=sys.stderr)
        rows = population_landscape(specs, ids, params, x, y, subsets, [True] * len(ids), settings)
        for r in rows:
            r["landscape_diverged"] = False
    for r in rows:
        r.update(zoo=data.zoo, population=population, epoch=epoch)
    schema = pa.schema([(k, getattr(pa, t)()) for k, t in LANDSCAPE_COLUMNS.items()])
    table = pa.Table.from_pylist([{k: r.get(k) for k in LANDSCAPE_COLUMNS} for r in rows], schema=schema)
    write_table(table, out, "landscape", {"population_hash": data.population_hash, "settings": dataclasses.asdict(settings),
                                          "task": task})
    print(f"{data.zoo}/{population}: landscape of {len(ids)} models ({sum(diverged)} diverged) at epoch {epoch} "
          f"in {time.perf_counter() - t0:.1f} s", file=sys.stderr)


def phases_job(spec_path: str | Path, landscape: Sequence[str | Path], metrics: Sequence[str | Path],
               models: Sequence[str | Path], out: str | Path, figure: str | Path | None) -> Any:
    """Label every model of a zoo; write ``phases.parquet`` and the phase diagram; return the counts.

    A zoo whose grid varies fewer than two hyperparameters (a seed-only or lr-only zoo)
    still gets its labels; its diagram is a figure that says why there is none, and the
    table's metadata records the note.
    """
    import dataclasses

    import pandas as pd
    import pyarrow as pa

    from zoo.errors import SpecError
    from zoo.jobs import read_spec
    from zoo.phases import (
        PhaseThresholds,
        diagram_axes,
        label_phases,
        phase_counts,
        plot_phase_diagram,
        plot_skipped_diagram,
    )
    from zoo.store import read_table, write_table

    zoo = read_spec(spec_path)
    thr = PhaseThresholds.from_spec(zoo.raw.get("phases"), source=str(spec_path))

    def frame(files: Sequence[str | Path], table: str) -> pd.DataFrame:
        if not files:
            raise DataError(f"{spec_path}: no {table} files given; the phases rule passes one per population")
        return pd.concat([read_table(f, table).to_pandas() for f in files], ignore_index=True)

    mod, land, met = frame(models, "models"), frame(landscape, "landscape"), frame(metrics, "metrics")
    met = met[["model_id", "epoch", "train_loss", "train_acc", "test_acc", "diverged"]]
    df = land.merge(met, on=["model_id", "epoch"], how="left", validate="one_to_one")
    grid_cols = [c for c in zoo.grid_keys if c in mod]
    df = df.merge(mod[["model_id", "seed", *grid_cols]], on="model_id", how="left")
    df["diverged"] = df["diverged"].fillna(False).astype(bool) | df["landscape_diverged"].astype(bool)
    labelled = label_phases(df, thr)
    keep = ["model_id", "zoo", "population", "epoch", "phase", "margin", "margin_to", "margin_train_loss",
            "margin_log10_trace", "margin_mc", "margin_cka", "train_loss", "train_acc", "test_acc",
            "log10_hessian_trace", "mc", "cka_mean", "diverged"] + [c for c in labelled if c.startswith("thr_")]
    labelled = labelled.sort_values("model_id", kind="stable")
    table = pa.Table.from_pandas(labelled[keep], preserve_index=False)
    title = f"{zoo.name}: phases at epoch {int(df['epoch'].max())}"
    note = ""
    try:
        axes = diagram_axes(zoo.raw["grid"], labelled, zoo.raw.get("phases"))
    except SpecError as exc:
        chosen = zoo.raw.get("phases") or {}
        if chosen.get("x") or chosen.get("y"):
            raise  # an explicit axis choice that does not fit is the user's error to fix
        axes, note = None, f"phase diagram skipped: {exc}"
        print(f"{zoo.name}: {note}", file=sys.stderr)
    write_table(table, out, "phases", {"zoo_spec_hash": zoo.spec_hash, "thresholds": dataclasses.asdict(thr),
                                       "note": note})
    if figure is not None:
        if axes is None:
            plot_skipped_diagram(labelled, str(figure), title, note)
        else:
            plot_phase_diagram(labelled, *axes, str(figure), title)
    return phase_counts(labelled)


def _landscape_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="data/zoos/<zoo>/checkpoints/<population>.safetensors")
    p.add_argument("--population", required=True, help="data/zoos/<zoo>/populations/<population>.json")
    p.add_argument("--models", required=True, help="data/zoos/<zoo>/models/<population>.parquet (diverged flags)")
    p.add_argument("--out", required=True, help="data/zoos/<zoo>/landscape/<population>.parquet")
    p.add_argument("--epoch", type=int, default=None, help="checkpoint epoch (default: the last)")
    p.add_argument("--lmc", default=None, help="also write data/zoos/<zoo>/lmc/<population>.parquet "
                   "(zoo lmc-merging's table, default settings) from the same loaded population; needs --merging")
    p.add_argument("--merging", default=None, help="also write data/zoos/<zoo>/merging/<population>.parquet; needs --lmc")
    for name, typ, what in (("n-eval", int, "examples in the fixed evaluation batch"),
                            ("power-iters", int, "power-iteration steps"), ("probes", int, "Hutchinson probes"),
                            ("curve-steps", int, "Bezier control-point training steps"),
                            ("curve-points", int, "values of t on the curve (>= 5)"), ("n-mix", int, "mixup inputs for CKA")):
        p.add_argument(f"--{name}", type=typ, default=None, help=what)


@command("landscape", "Hessian, mode connectivity, CKA and peer distances of one population", _landscape_args,
         without_pandas=True)
def _landscape(args: argparse.Namespace) -> None:
    overrides = {k.replace("-", "_"): getattr(args, k.replace("-", "_"))
                 for k in ("n-eval", "power-iters", "probes", "curve-steps", "curve-points", "n-mix")}
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if overrides.get("curve_points", 5) < 5:
        raise DataError("--curve-points: mc needs at least 5 values of t; pass --curve-points 5 or more")
    if overrides.get("probes", 2) < 2:
        raise DataError("--probes: the trace's standard error needs at least 2 probes; pass --probes 2 or more")
    for key, value in overrides.items():
        if key != "curve_steps" and value < 1:
            raise DataError(f"--{key.replace('_', '-')}: {value} must be >= 1")
        if key == "curve_steps" and value < 0:
            raise DataError("--curve-steps: must be >= 0 (0 = the straight line)")
    landscape_job(args.population, args.checkpoint, args.models, args.out, args.epoch, overrides, args.lmc, args.merging)


def _phases_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", help="data/zoos/<zoo>/spec.json")
    for table in ("landscape", "metrics", "models"):
        p.add_argument(f"--{table}", nargs="+", required=True, help=f"every population's {table} Parquet file")
    p.add_argument("--out", required=True, help="data/zoos/<zoo>/phases.parquet")
    p.add_argument("--figure", default=None, help="phase-diagram PNG to write")


@command("phases", "label every model of a zoo with its phase (I, II, III, IV-A, IV-B) and draw the phase diagram", _phases_args)
def _phases(args: argparse.Namespace) -> None:
    counts = phases_job(args.spec, args.landscape, args.metrics, args.models, args.out, args.figure)
    print("| phase | models |\n|---|---|")
    for k, v in counts.items():
        print(f"| {k} | {v} |")
