"""``zoo lmc-merging`` (one population → ``lmc`` and ``merging`` tables) and the two figure commands.

The maths lives in :mod:`zoo.lmc` and :mod:`zoo.merging`; columns are documented in
``docs/analysis.md``. Heavy imports live inside the functions.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from zoo.cli import command
from zoo.errors import DataError

_KEYS = [("model_id", "string"), ("zoo", "string"), ("population", "string"), ("grid_point", "string"),
         ("epoch", "int64")]
#: Columns of the ``lmc`` table (one row per seed pair of a grid point): name → Arrow type.
LMC_COLUMNS: list[tuple[str, Any]] = _KEYS[:1] + [("peer_id", "string")] + _KEYS[1:] + [
    ("seed", "int64"), ("peer_seed", "int64"),
    *[(c, "float64") for c in ("error_a", "error_b", "loss_a", "loss_b", "barrier_naive", "barrier_aligned",
                               "loss_barrier_naive", "loss_barrier_aligned", "l2_naive", "l2_aligned",
                               "alignment_naive", "alignment_aligned", "moved_fraction")],
    ("matched", "bool_"), ("perm", ("list", ("list", "int32"))), ("wall_s", "float64"),
]
#: Columns of the ``merging`` table (one row per grid point with ≥ 2 usable seeds).
MERGING_COLUMNS: list[tuple[str, Any]] = _KEYS + [
    ("model_ids", ("list", "string")), ("n_models", "int64"),
    *[(c, "float64") for c in ("test_acc_mean", "test_acc_best", "test_loss_mean", "test_acc_naive", "test_loss_naive",
                               "test_acc_aligned", "test_loss_aligned", "gain_naive", "gain_aligned",
                               "loss_gain_naive", "loss_gain_aligned")],
    ("matched", "bool_"), ("wall_s", "float64"),
]


def _arrow_type(t: Any):
    import pyarrow as pa

    if isinstance(t, tuple):
        return pa.list_(_arrow_type(t[1]))
    return getattr(pa, t)()


def table_schema(columns: list[tuple[str, Any]]):
    """Arrow schema of the ``lmc`` or ``merging`` table (column names are API; add, never rename)."""
    import pyarrow as pa

    return pa.schema([(name, _arrow_type(t)) for name, t in columns])


def _table(rows: list[dict[str, Any]], columns: list[tuple[str, Any]]):
    """Rows → Arrow table; NaN floats (not computed: e.g. aligned columns of an unmatched arch) become null."""
    import pyarrow as pa

    schema = table_schema(columns)
    return pa.table({f.name: pa.array([_nan_to_null(r.get(f.name)) for r in rows], f.type) for f in schema},
                    schema=schema)


def _nan_to_null(value: Any) -> Any:
    """NaN → None (what ``from_pandas=True`` would do, without importing pandas in the job)."""
    return None if isinstance(value, float) and value != value else value


def lmc_of_pairs(data: Any, pairs: list[tuple[int, int]], references: set[int], match: bool,
                 settings: Any) -> tuple[list[dict[str, Any]], dict[tuple[int, int], dict[str, Any]]]:
    """``lmc`` rows of ``pairs`` (batched ``settings.chunk // 2`` pairs at a time) and the peers
    permuted onto their grid point's reference (for merging)."""
    import numpy as np
    import torch

    from zoo.lmc import eval_batch, pair_lmc
    from zoo.train import train_subset

    ds, ids, specs, params = data.dataset, data.model_ids, data.specs, data.params
    x, y = torch.from_numpy(ds.x_train), torch.from_numpy(ds.y_train)
    subsets = [train_subset(s, len(x)) for s in specs]
    rows: list[dict[str, Any]] = []
    aligned: dict[tuple[int, int], dict[str, Any]] = {}
    step = max(1, settings.chunk // 2)
    for s in range(0, len(pairs), step):
        chunk = pairs[s:s + step]
        ia, ib = [a for a, _ in chunk], [b for _, b in chunk]
        idx = torch.from_numpy(np.stack([eval_batch(np.union1d(subsets[a], subsets[b]), len(x), settings.n_eval,
                                                    settings.seed) for a, b in chunk]))
        res = pair_lmc(specs[0], {k: v[ia] for k, v in params.items()}, {k: v[ib] for k, v in params.items()},
                       x[idx], y[idx], [f"{ids[a]}|{ids[b]}" for a, b in chunk], settings, match)
        for q, (a, b) in enumerate(chunk):
            row = {k: float(v[q]) for k, v in res.items() if k not in ("aligned", "perm")}
            row.update(model_id=ids[a], peer_id=ids[b], seed=int(specs[a]["seed"]), peer_seed=int(specs[b]["seed"]),
                       matched=match, perm=[p.astype(np.int32).tolist() for p in res["perm"][q]] if match else None)
            rows.append(row)
            if match and a in references:
                aligned[(a, b)] = {k: v[q] for k, v in res["aligned"].items()}
    return rows, aligned


def analysis_job(population_path: str | Path, checkpoint: str | Path, models_path: str | Path,
                 lmc_out: str | Path, merging_out: str | Path, epoch: int | None = None,
                 overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """LMC of every seed pair and merging of every grid point of one population at ``epoch`` (default: last).

    A regression zoo, a zoo without two usable seeds per grid point, or an architecture
    weight matching does not support gets its tables anyway (empty, or with null aligned
    columns) and a ``note`` in their metadata, never a failed workflow. Returns counts and the note.
    """
    import torch

    from zoo.jobs import load_population

    torch.set_num_threads(1)
    data = load_population(population_path, checkpoint, models_path, epoch)
    return analysis_of(data, lmc_out, merging_out, overrides)


def analysis_of(data: Any, lmc_out: str | Path, merging_out: str | Path,
                overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """:func:`analysis_job` on a population already loaded (:func:`zoo.jobs.load_population`)."""
    import dataclasses

    import torch

    from zoo.lmc import MATCHABLE_ARCHS, AnalysisSettings, analysis_pairs, grid_points, matchable
    from zoo.merging import merging_rows
    from zoo.store import write_table

    t0 = time.perf_counter()
    settings = dataclasses.replace(AnalysisSettings(), **(overrides or {}))
    ids, base = data.model_ids, data.specs[0]
    task = getattr(data.dataset, "task", "classification")
    groups = grid_points(data.specs, data.usable)
    pairs = [pr for g in groups.values() if len(g) >= 2 for pr in analysis_pairs(g)]
    match = matchable(base, list(data.params))
    lmc_rows: list[dict[str, Any]] = []
    merge_rows: list[dict[str, Any]] = []
    note = ""
    if task != "classification":
        note = f"{task} task: barriers (error) and merging accuracy are defined for classifiers only; skipped"
    elif not pairs:
        note = "no grid point has two usable (non-diverged) seeds; lmc and merging need seed pairs: skipped"
    else:
        if not match:
            note = (f"weight matching supports arch {' and '.join(MATCHABLE_ARCHS)} only, not {base['arch']!r}: "
                    "aligned columns are null")
        lmc_rows, aligned = lmc_of_pairs(data, pairs, {g[0] for g in groups.values() if g}, match, settings)
        t1 = time.perf_counter()
        for r in lmc_rows:
            r["wall_s"] = (t1 - t0) / len(lmc_rows)
        xt, yt = torch.from_numpy(data.dataset.x_test), torch.from_numpy(data.dataset.y_test)
        merge_rows = merging_rows(base, data.params, groups, xt, yt, aligned if match else None)
        t2 = time.perf_counter()
        for r in merge_rows:
            r.update(model_id=ids[r["members"][0]], model_ids=[ids[i] for i in r["members"]], matched=match,
                     wall_s=(t2 - t1) / len(merge_rows))
    point_of = {i: g for g, members in grid_points(data.specs, [True] * len(ids)).items() for i in members}
    pos = {m: i for i, m in enumerate(ids)}
    for r in lmc_rows:
        r["grid_point"] = point_of[pos[r["model_id"]]]
    for r in [*lmc_rows, *merge_rows]:
        r.update(zoo=data.zoo, population=data.population, epoch=data.epoch)
    extra = {"population_hash": data.population_hash, "settings": dataclasses.asdict(settings), "task": task,
             "note": note}
    write_table(_table(lmc_rows, LMC_COLUMNS), lmc_out, "lmc", extra)
    write_table(_table(merge_rows, MERGING_COLUMNS), merging_out, "merging", extra)
    print(f"{data.zoo}/{data.population}: lmc of {len(lmc_rows)} seed pairs, merging of {len(merge_rows)} grid points "
          f"at epoch {data.epoch} in {time.perf_counter() - t0:.1f} s{'; ' + note if note else ''}", file=sys.stderr)
    return {"pairs": len(lmc_rows), "grid_points": len(merge_rows), "note": note}


def _job_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="data/zoos/<zoo>/checkpoints/<population>.safetensors")
    p.add_argument("--population", required=True, help="data/zoos/<zoo>/populations/<population>.json")
    p.add_argument("--models", required=True, help="data/zoos/<zoo>/models/<population>.parquet (diverged flags)")
    p.add_argument("--lmc", required=True, help="data/zoos/<zoo>/lmc/<population>.parquet to write")
    p.add_argument("--merging", required=True, help="data/zoos/<zoo>/merging/<population>.parquet to write")
    p.add_argument("--epoch", type=int, default=None, help="checkpoint epoch (default: the last)")
    for name, what in (("n-eval", "training examples in each pair's evaluation batch"),
                       ("points", "values of t on the straight line (>= 3)"),
                       ("align-k", "top singular vectors in the alignment measure"),
                       ("max-iter", "weight-matching sweeps")):
        p.add_argument(f"--{name}", type=int, default=None, help=what)


@command("lmc-merging", "linear mode connectivity of seed pairs before/after weight matching, and merging gains "
         "per grid point, of one population", _job_args, without_pandas=True)
def _lmc_merging(args: argparse.Namespace) -> None:
    overrides = {k: getattr(args, k) for k in ("n_eval", "points", "align_k", "max_iter") if getattr(args, k) is not None}
    for key, value in overrides.items():
        if value < (3 if key == "points" else 1):
            raise DataError(f"--{key.replace('_', '-')}: {value} must be >= {3 if key == 'points' else 1}")
    analysis_job(args.population, args.checkpoint, args.models, args.lmc, args.merging, args.epoch, overrides)


def _merging_figure_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--merging", nargs="+", required=True, help="every population's merging Parquet file")
    p.add_argument("--lmc", nargs="+", required=True, help="every population's lmc Parquet file")
    p.add_argument("--phases", required=True, help="data/zoos/<zoo>/phases.parquet")
    p.add_argument("--out", required=True, help="PNG to write")


@command("merging-figure", "plot merging gain by phase and the barrier before vs after weight matching",
         _merging_figure_args)
def _merging_figure(args: argparse.Namespace) -> None:
    from zoo.analysis_figures import merging_figure

    merging_figure(args.merging, args.lmc, args.phases, args.out)


def _condition_figure_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--spectral", nargs="+", required=True, help="every population's spectral Parquet file")
    p.add_argument("--models", nargs="+", required=True, help="every population's models Parquet file")
    p.add_argument("--out", required=True, help="PNG to write")


@command("spectral-condition-figure", "plot the scaled spectral norms of W and ΔW against width, per layer",
         _condition_figure_args)
def _condition_figure(args: argparse.Namespace) -> None:
    from zoo.analysis_figures import spectral_condition_figure

    spectral_condition_figure(args.spectral, args.models, args.out)
