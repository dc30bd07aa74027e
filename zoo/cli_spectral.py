"""``zoo spectral`` (the spectral table of one population) and ``zoo spectral-figures`` (alpha plots).

Columns are documented in ``docs/spectral.md``; the maths lives in :mod:`zoo.spectral`.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from zoo.cli import command

#: Fits that count for a model's mean alpha in the figures (the fallback rule is a placeholder).
FIGURE_RULES = ("ww_standard", "ww_small_n")


def spectral_schema():
    """Arrow schema of the ``spectral`` table (column names are API; add, never rename)."""
    import pyarrow as pa

    from zoo.spectral import FLOAT_COLUMNS

    ints = ("rows", "cols", "rf", "n_evals", "n_fit", "n_tail")
    return pa.schema(
        [("model_id", pa.string()), ("zoo", pa.string()), ("population", pa.string()), ("epoch", pa.int64()),
         ("layer", pa.string()), ("tensor", pa.string())]
        + [(c, pa.int64()) for c in ints]
        + [(c, pa.float64()) for c in FLOAT_COLUMNS]
        + [("fit_rule", pa.string()), ("farms_fit_rule", pa.string()), ("ww_analyzed", pa.bool_()), ("finite", pa.bool_())]
    )


def spectral_table(zoo_name: str, population: str, checkpoints: Mapping[int, Mapping[str, Any]],
                   model_ids: Sequence[str], farms: bool = True, mp: bool = True):
    """One row per model × epoch × weight matrix; all epochs of one tensor go through one batched call."""
    import numpy as np
    import pyarrow as pa

    from zoo.spectral import spectral_metrics
    from zoo.tables import tensor_layer_kind

    schema = spectral_schema()
    epochs = sorted(checkpoints)
    # Weight matrices ([P, out, in]) and conv kernels ([P, out, in, kh, kw]); 1-D weights (norms) are skipped.
    names = [n for n, t in checkpoints[epochs[0]].items()
             if tensor_layer_kind(n)[1] == "weight" and t.ndim in (3, 5)] if epochs else []
    parts: list[pa.Table] = []
    P = len(model_ids)
    for name in names:
        stacked = np.concatenate([np.asarray(checkpoints[e][name]) for e in epochs], axis=0)  # [E·P, …]
        res = spectral_metrics(stacked, farms=farms, mp=mp)
        n = len(epochs) * P
        cols: dict[str, Any] = {
            "model_id": list(model_ids) * len(epochs), "zoo": [zoo_name] * n, "population": [population] * n,
            "epoch": np.repeat(np.asarray(epochs, np.int64), P), "layer": [tensor_layer_kind(name)[0]] * n,
            "tensor": [name] * n,
        }
        cols.update({f.name: res[f.name] for f in schema if f.name not in cols})
        parts.append(pa.table({f.name: pa.array(cols[f.name], f.type) for f in schema}, schema=schema))
    table = pa.concat_tables(parts) if parts else schema.empty_table()
    return table.sort_by([("epoch", "ascending"), ("layer", "ascending"), ("model_id", "ascending")])


def run_spectral(checkpoint: str | Path, out: str | Path, farms: bool = True, mp: bool = True) -> int:
    """Compute and write the spectral table of one population checkpoint; returns the row count.

    NumPy only (checkpoints read as NumPy arrays, LAPACK on one thread): the job never imports torch."""
    from zoo.spectral_condition import add_condition_columns
    from zoo.store import load_checkpoints, write_table

    t0 = time.perf_counter()
    ckpts, ids, meta = load_checkpoints(checkpoint, framework="numpy")
    table = spectral_table(meta.get("zoo", ""), meta.get("population", Path(checkpoint).stem), ckpts, ids, farms, mp)
    # spectral-condition columns (fan_in/out, scaled ‖W‖₂ and ‖ΔW‖₂ between checkpoints): zoo.spectral_condition
    table = add_condition_columns(table, ckpts, ids)
    write_table(table, out, "spectral", {"population_hash": meta.get("population_hash", ""), "weightwatcher_conventions": "0.7.7"})
    dt = time.perf_counter() - t0
    print(f"spectral: {table.num_rows} layers from {checkpoint} in {dt:.2f} s ({table.num_rows / max(dt, 1e-9):.0f} layers/s)",
          file=sys.stderr)
    return table.num_rows


def _spectral_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="data/zoos/<zoo>/checkpoints/<population>.safetensors")
    p.add_argument("--out", required=True, help="spectral Parquet file to write (data/zoos/<zoo>/spectral/<population>.parquet)")
    p.add_argument("--no-farms", action="store_true", help="skip farms_alpha (left NaN)")
    p.add_argument("--no-mp", action="store_true", help="skip mp_softrank (left NaN)")


@command("spectral", "spectral features (WeightWatcher conventions) of every layer of every checkpoint of a population",
         _spectral_args)
def _spectral(args: argparse.Namespace) -> None:
    run_spectral(args.checkpoint, args.out, farms=not args.no_farms, mp=not args.no_mp)


def model_alpha_frame(spectral: Sequence[str | Path], metrics: Sequence[str | Path], models: Sequence[str | Path]):
    """Per model at its last checkpoint: mean alpha over layers with a real fit, joined to metrics and models.

    Reads exactly the given files (one per population of the current spec, as the rule passes them).
    """
    import duckdb
    import pyarrow as pa

    from zoo.errors import DataError
    from zoo.store import read_table

    tables = {}
    for name, files in (("spectral", spectral), ("metrics", metrics), ("models", models)):
        if not files:
            raise DataError(f"no {name} files given; run the workflow (snakemake) to build the {name} tables first")
        tables[name] = pa.concat_tables([read_table(f, name) for f in files], promote_options="default")
    rules = ", ".join(f"'{r}'" for r in FIGURE_RULES)
    sql = f"""
        WITH last AS (SELECT model_id, max(epoch) AS epoch FROM spectral GROUP BY model_id),
        a AS (SELECT s.model_id, s.epoch, avg(s.alpha) AS alpha
              FROM spectral s JOIN last USING (model_id, epoch)
              WHERE s.fit_rule IN ({rules}) AND isfinite(s.alpha) GROUP BY s.model_id, s.epoch)
        SELECT a.*, m.test_acc, m.ggap, m.diverged, md.* EXCLUDE (model_id)
        FROM a JOIN metrics m USING (model_id, epoch)
        JOIN models md USING (model_id)
        ORDER BY a.model_id
    """
    con = duckdb.connect()
    for name, table in tables.items():
        con.register(name, table)
    return con.execute(sql).df()


def alpha_figure(spec: str | Path, spectral: Sequence[str | Path], metrics: Sequence[str | Path],
                 models: Sequence[str | Path], out: str | Path, axes: Sequence[str] | None = None) -> None:
    """Alpha vs test accuracy and vs generalisation gap, one column per grid axis used as colour (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from zoo.jobs import read_spec
    from zoo.plots import colour_by
    from zoo.store import atomic_path

    zoo = read_spec(spec)
    df = model_alpha_frame(spectral, metrics, models)
    if axes is None:
        axes = [a for a in zoo.raw.get("grid", {}) if a in df.columns] or ["seed"]
    df = df[~df["diverged"].astype(bool)]
    fig, grid = plt.subplots(2, len(axes), figsize=(4.2 * len(axes), 7), squeeze=False)
    for j, axis in enumerate(axes):
        for i, (col, label) in enumerate((("test_acc", "test accuracy"), ("ggap", "generalisation gap (train − test acc)"))):
            ax = grid[i][j]
            # few-valued or text axes (batch size, activation) get a categorical palette and a legend
            colour_by(ax, df["alpha"], df[col], df[axis].to_numpy(), axis, s=14, alpha=0.85)
            ax.set_xlabel("mean layer alpha (last checkpoint)")
            ax.set_ylabel(label)
    fig.suptitle(f"{zoo.name}: WeightWatcher alpha vs generalisation ({len(df)} non-diverged models)")
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def _figure_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("zoo_dir", nargs="?", default=None,
                   help="the zoo's folder, data/zoos/<zoo> (its current spec's tables); or pass the files:")
    p.add_argument("--spec", default=None, help="data/zoos/<zoo>/spec.json")
    for table in ("spectral", "metrics", "models"):
        p.add_argument(f"--{table}", nargs="+", default=None, help=f"every population's {table} Parquet file")
    p.add_argument("--out", required=True, help="PNG to write (data/zoos/<zoo>/figures/spectral_alpha.png)")
    p.add_argument("--axes", nargs="*", default=None, help="grid axes to colour by (default: every grid axis of the spec)")


@command("spectral-figures", "plot mean layer alpha vs test accuracy and generalisation gap, coloured by grid axis", _figure_args)
def _figures(args: argparse.Namespace) -> None:
    from zoo.errors import DataError
    from zoo.layout import current_table_files, zoo_dir_layout

    if args.zoo_dir is not None:
        files = {t: current_table_files(args.zoo_dir, t) for t in ("spectral", "metrics", "models")}
        spec = zoo_dir_layout(args.zoo_dir).spec
    elif args.spec and args.spectral and args.metrics and args.models:
        files = {"spectral": args.spectral, "metrics": args.metrics, "models": args.models}
        spec = args.spec
    else:
        raise DataError("zoo spectral-figures: give ZOO_DIR, or --spec with --spectral, --metrics and --models")
    alpha_figure(spec, files["spectral"], files["metrics"], files["models"], args.out, args.axes)
