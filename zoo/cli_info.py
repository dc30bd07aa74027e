"""``zoo info``, ``zoo show``, ``zoo export`` and ``zoo plot``: look at a zoo, share it.

``info`` and ``show`` read the catalog (``DATA/zoo.duckdb``); ``export`` and ``plot`` read a
zoo's folder (``DATA/zoos/<zoo>``) directly.
"""

from __future__ import annotations

import argparse
import json
import shutil  # noqa: F401  (tests patch zoo.cli_info.shutil.copyfile: the same module zoo.export copies with)
import sys
from pathlib import Path
from typing import Any

from zoo.cli import command
from zoo.errors import DataError


def human_bytes(n: float) -> str:
    """``1536`` → ``'1.5 KiB'`` (binary prefixes)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover


def disk_bytes(path: str | Path) -> int:
    """Total size in bytes of the regular files under ``path`` (0 if it does not exist)."""
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def _tables(con) -> set[str]:
    """The catalog's data tables (``models``, ``metrics``, …; not the bookkeeping ``catalog_files``)."""
    from zoo.catalog import table_names

    return set(table_names(con))


# ----------------------------------------------------------------------------------- info

def zoo_info(data_dir: str | Path = "data") -> dict[str, Any]:
    """Per zoo: models, populations, diverged models, checkpoint epochs, parameters, disk size, phases."""
    from zoo.api import open as open_catalog

    data_dir = Path(data_dir)
    con = open_catalog(data_dir)
    try:
        tables = _tables(con)
        if "models" not in tables or "metrics" not in tables:
            raise DataError(f"{data_dir}/zoo.duckdb: no models/metrics tables; train a zoo and rebuild the catalog (zoo catalog {data_dir})")
        rows = con.execute("""
            SELECT m.zoo, count(*) AS models, count(DISTINCT m.population) AS populations,
                   count(*) FILTER (WHERE m.diverged_epoch IS NOT NULL) AS diverged,
                   sum(m.n_params) AS total_params,
                   avg(f.test_acc) FILTER (WHERE m.diverged_epoch IS NULL) AS mean_final_test_acc
            FROM models m LEFT JOIN metrics f ON f.model_id = m.model_id AND f.zoo = m.zoo AND f.epoch = m.epochs
            GROUP BY m.zoo ORDER BY m.zoo""").fetchall()
        epochs = dict(con.execute(
            "SELECT zoo, list(DISTINCT epoch ORDER BY epoch) FROM metrics GROUP BY zoo").fetchall())
        phases: dict[str, dict[str, int]] = {}
        if "phases" in tables:
            for zoo, phase, n in con.execute(
                    "SELECT zoo, CAST(phase AS VARCHAR), count(*) FROM phases GROUP BY ALL ORDER BY ALL").fetchall():
                phases.setdefault(zoo, {})[phase] = n
    finally:
        con.close()
    zoos = []
    for zoo, models, pops, diverged, params, acc in rows:
        zoos.append({"zoo": zoo, "models": models, "populations": pops, "diverged": diverged,
                     "checkpoints": list(epochs.get(zoo, [])), "total_params": int(params or 0),
                     "mean_final_test_acc": acc, "phases": phases.get(zoo),
                     "disk_bytes": disk_bytes(data_dir / "zoos" / zoo) + disk_bytes(data_dir / "learners" / zoo)})
    return {"data": str(data_dir), "tables": sorted(tables), "zoos": zoos, "disk_bytes": disk_bytes(data_dir)}


def _data_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default="data", help="data folder holding zoo.duckdb and zoos/ (default: data)")


def _info_args(p: argparse.ArgumentParser) -> None:
    _data_arg(p)
    p.add_argument("--json", action="store_true", help="print the record as JSON")


@command("info", "list the zoos of a data folder: models, diverged, checkpoints, phases, disk size", _info_args)
def _info(args: argparse.Namespace) -> None:
    info = zoo_info(args.data)
    if args.json:
        print(json.dumps(info, indent=2))
        return
    print(f"{info['data']}: {len(info['zoos'])} zoo(s), {human_bytes(info['disk_bytes'])} on disk; "
          f"tables: {', '.join(info['tables'])}")
    for z in info["zoos"]:
        acc = z["mean_final_test_acc"]
        print(f"\n{z['zoo']}")
        print(f"  models        {z['models']} in {z['populations']} populations, {z['diverged']} diverged")
        print(f"  parameters    {z['total_params']:,} in total")
        print(f"  checkpoints   epochs {', '.join(map(str, z['checkpoints']))}")
        print(f"  final test    {'—' if acc is None else f'{acc:.4f}'} mean accuracy of the models that did not diverge")
        if z["phases"]:
            print("  phases        " + ", ".join(f"{k}: {v}" for k, v in z["phases"].items()))
        print(f"  disk          {human_bytes(z['disk_bytes'])}")


# ----------------------------------------------------------------------------------- show

def checkpoint_epochs(path: str | Path) -> list[int]:
    """Epochs stored in a population checkpoint, read from its header only."""
    from zoo.store import checkpoint_meta

    return [int(e) for e in checkpoint_meta(path).get("epochs", [])]


def resolve_model_id(con, prefix: str, source: str) -> str:
    """The full model id that ``prefix`` (≥ 4 characters) starts; errors if none or several."""
    if len(prefix) < 4:
        raise DataError(f"model id {prefix!r}: give at least 4 characters of the id")
    ids = [r[0] for r in con.execute(
        "SELECT DISTINCT model_id FROM models WHERE starts_with(model_id, ?) ORDER BY 1 LIMIT 6", [prefix]).fetchall()]
    if not ids:
        raise DataError(f"{source}: no model id starts with {prefix!r}; list ids with: zoo query \"SELECT model_id FROM models LIMIT 10\"")
    if len(ids) > 1:
        raise DataError(f"{source}: model id {prefix!r} is ambiguous ({', '.join(ids[:5])}…); give more characters")
    return ids[0]


def model_info(model_id: str, data_dir: str | Path = "data") -> dict[str, Any]:
    """Everything about one model: its models rows, metrics per checkpoint, checkpoint file, other tables."""
    from zoo.api import checkpoint_path
    from zoo.api import open as open_catalog

    data_dir = Path(data_dir)
    con = open_catalog(data_dir)
    try:
        if not {"models", "metrics"} <= _tables(con):
            raise DataError(f"{data_dir}/zoo.duckdb: no models/metrics tables; train a zoo and rebuild the catalog (zoo catalog {data_dir})")
        mid = resolve_model_id(con, model_id, f"{data_dir}/zoo.duckdb")
        cur = con.execute("SELECT * FROM models WHERE model_id = ? ORDER BY zoo", [mid])
        cols = [d[0] for d in cur.description]
        rows = [dict(zip(cols, r)) for r in cur.fetchall()]
        rec = rows[0]
        cur = con.execute("""SELECT epoch, train_loss, train_acc, test_loss, test_acc, ggap, diverged
                             FROM metrics WHERE model_id = ? AND zoo = ? ORDER BY epoch""", [mid, rec["zoo"]])
        mcols = [d[0] for d in cur.description]
        metrics = [dict(zip(mcols, r)) for r in cur.fetchall()]
        others = {}
        for table in sorted(_tables(con) - {"models", "metrics"}):
            has_id = con.execute("SELECT count(*) FROM duckdb_columns() WHERE database_name = current_database() "
                                 "AND table_name = ? AND column_name = 'model_id'", [table]).fetchone()[0]
            if has_id:
                others[table] = con.execute(f'SELECT count(*) FROM "{table}" WHERE model_id = ?', [mid]).fetchone()[0]
        phase = None
        if "phases" in others and others["phases"]:
            pcur = con.execute("SELECT * FROM phases WHERE model_id = ? LIMIT 1", [mid])
            phase = dict(zip([d[0] for d in pcur.description], pcur.fetchone()))
    finally:
        con.close()
    ckpt = checkpoint_path(rec["zoo"], rec["population"], data_dir)
    return {"model_id": mid, "zoos": [r["zoo"] for r in rows], "zoo": rec["zoo"], "population": rec["population"],
            "spec": json.loads(rec["spec_json"]), "n_params": rec["n_params"], "diverged_epoch": rec["diverged_epoch"],
            "versions": {k: rec.get(k) for k in ("zoo_version", "torch_version", "python_version", "git_commit", "population_hash")},
            "metrics": metrics, "checkpoint": str(ckpt),
            "checkpoint_epochs": checkpoint_epochs(ckpt) if ckpt.is_file() else [],
            "rows_in_other_tables": others, "phase": phase}


def _show_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model_id", help="a model id (or its first ≥ 4 characters), e.g. from `zoo query \"SELECT model_id FROM models\"`")
    _data_arg(p)
    p.add_argument("--json", action="store_true", help="print the record as JSON")


@command("show", "show one model: its spec, metrics at every checkpoint, checkpoint file", _show_args)
def _show(args: argparse.Namespace) -> None:
    from zoo.cli_query import format_table

    info = model_info(args.model_id, args.data)
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return
    import pyarrow as pa

    print(f"model {info['model_id']}  zoo {', '.join(info['zoos'])}  population {info['population']}")
    print(f"  {info['n_params']:,} parameters; "
          + ("did not diverge" if info["diverged_epoch"] is None else f"diverged in epoch {info['diverged_epoch']}"))
    print("spec:")
    for k, v in sorted(info["spec"].items()):
        print(f"  {k:<15} {v}")
    print(f"checkpoint: {info['checkpoint']}" + ("" if info["checkpoint_epochs"] else "  (missing)"))
    if info["checkpoint_epochs"]:
        print(f"  epochs {', '.join(map(str, info['checkpoint_epochs']))}; in Python: "
              f"zoo.load_model({info['model_id']!r}, epoch={info['checkpoint_epochs'][-1]})")
    print("metrics:")
    print(format_table(pa.Table.from_pylist(info["metrics"])) if info["metrics"] else "  (none)")
    if info["phase"]:
        ph = info["phase"]
        line = f"phase: {ph.get('phase')}"
        if ph.get("margin") is not None:
            line += f" (margin {ph['margin']:.3g}" + (f" to the {ph['margin_to']} threshold)" if ph.get("margin_to") else ")")
        thr = ", ".join(f"{k[4:]}={v}" for k, v in ph.items() if k.startswith("thr_"))
        print(line + (f"; thresholds {thr}" if thr else ""))
    if info["rows_in_other_tables"]:
        print("rows in other tables: " + ", ".join(f"{k} {v}" for k, v in info["rows_in_other_tables"].items()))
    v = info["versions"]
    print(f"made by zoo {v['zoo_version']}, torch {v['torch_version']}, python {v['python_version']}, "
          f"commit {(v['git_commit'] or '?')[:10]}, population {v['population_hash']}")


# ----------------------------------------------------------------------------------- export
# The export itself lives in zoo.export (folder / tarball / Hugging Face dataset with its card).
from zoo.export import EXPORT_FORMAT, FORMATS, MANIFEST, build_manifest, export_files, export_zoo  # noqa: E402,F401


def _export_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("zoo", help="zoo name (see `zoo info`)")
    p.add_argument("--out", required=True, help="a new folder, or a FILE.tar.gz")
    _data_arg(p)
    p.add_argument("--format", choices=FORMATS, default="zoo",
                   help="zoo: tables, checkpoints, spec, manifest (a data folder); hf: the same plus a Hugging Face "
                        "dataset card (README.md) and config/<zoo>.yaml, so datasets.load_dataset(DIR, TABLE) loads it")
    p.add_argument("--no-checkpoints", action="store_true", help="leave out the checkpoints (tables only)")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")


@command("export", "write a zoo's Parquet tables, checkpoints and spec with a SHA-256 manifest to a folder or .tar.gz "
         "(--format hf: as a Hugging Face dataset with its card)", _export_args)
def _export(args: argparse.Namespace) -> None:
    manifest = export_zoo(args.zoo, args.out, args.data, checkpoints=not args.no_checkpoints, force=args.force,
                          format=args.format)
    total = sum(f["bytes"] for f in manifest["files"].values())
    print(f"exported {args.zoo}: {len(manifest['files'])} files, {human_bytes(total)} → {args.out}")


# ----------------------------------------------------------------------------------- plot

def _plot_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("kind", choices=["curves", "grid", "provenance"],
                   help="curves: learning curves (PNG); grid: final accuracy heatmap (PNG); provenance: HTML page")
    p.add_argument("zoo_dir", nargs="?", default=None,
                   help="the zoo's folder, data/zoos/<zoo> (its current spec's tables); or pass the files:")
    p.add_argument("--models", nargs="+", default=None, help="models Parquet files (instead of ZOO_DIR)")
    p.add_argument("--metrics", nargs="+", default=None, help="metrics Parquet files (instead of ZOO_DIR)")
    p.add_argument("--spec", default=None, help="provenance: the zoo's spec.json (with --models/--metrics)")
    p.add_argument("--benchmarks", nargs="*", default=[], help="provenance: train benchmark TSVs (optional)")
    p.add_argument("--out", required=True, help="file to write (.png, or .html for provenance)")
    p.add_argument("--n-models", type=int, default=12, help="curves: how many models to draw (default 12)")
    p.add_argument("--metric", default="test_acc", help="grid: metrics column to show (default test_acc)")


@command("plot", "draw a zoo figure for the report: learning curves, accuracy over the grid, provenance", _plot_args)
def _plot(args: argparse.Namespace) -> None:
    from zoo import plots

    if (args.zoo_dir is None) == (args.models is None or args.metrics is None):
        raise DataError("zoo plot: give either ZOO_DIR or both --models and --metrics")
    source = args.zoo_dir if args.zoo_dir is not None else {
        "models": args.models, "metrics": args.metrics, "spec": [args.spec] if args.spec else [],
        "benchmarks": args.benchmarks}
    if args.kind == "curves":
        plots.learning_curves(source, args.out, args.n_models)
    elif args.kind == "grid":
        plots.grid_heatmap(source, args.out, args.metric)
    else:
        plots.provenance_html(source, args.out)
    print(f"wrote {args.out}", file=sys.stderr)


__all__ = ["disk_bytes", "export_files", "export_zoo", "human_bytes", "model_info", "zoo_info"]
