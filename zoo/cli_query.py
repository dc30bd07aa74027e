"""``zoo query`` and ``zoo summary``: SQL over the catalog, printed or saved.

``zoo query`` runs exactly one read-only statement (SELECT, WITH, FROM, VALUES, DESCRIBE,
SHOW, SUMMARIZE, EXPLAIN of a SELECT); anything else, or a second statement, is refused in
one line before anything runs. The statement sees the catalog's tables and nothing else:
no file, network or extension access, configuration locked. ``--allow-read DIR`` lets it
read files under DIR (``read_parquet``, ``read_csv``). The guarantee and its limits are
spelled out in :mod:`zoo.catalog`.

``--format json`` writes a JSON array of row objects; NaN and ±inf become ``null``
(value by value; strings are never touched).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

from zoo.cli import command
from zoo.errors import QueryError

MAX_ROWS_SHOWN = 60


def _fmt(v: Any) -> str:
    if v is None:
        return "NULL"
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        return f"{v:.4g}"
    if isinstance(v, list):
        return "[" + ", ".join(_fmt(x) for x in v[:6]) + (", …]" if len(v) > 6 else "]")
    return str(v)


def format_table(table, max_rows: int = MAX_ROWS_SHOWN) -> str:
    """A fixed-width text rendering of a pyarrow Table (first ``max_rows`` rows)."""
    names = table.column_names
    rows = [[_fmt(v) for v in row.values()] for row in table.slice(0, max_rows).to_pylist()]
    widths = [max([len(n)] + [len(r[i]) for r in rows]) for i, n in enumerate(names)]
    line = "  ".join(n.ljust(w) for n, w in zip(names, widths))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.rjust(w) if _numeric(c) else c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    if table.num_rows > max_rows:
        out.append(f"… {table.num_rows - max_rows} more rows (use --format csv --out FILE for all)")
    out.append(f"({table.num_rows} rows)")
    return "\n".join(out)


def _numeric(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def write_result(table, fmt: str, out: str | None) -> None:
    """Write a query result as table/csv/json/parquet to ``out`` (or stdout)."""
    from zoo.store import atomic_path

    if fmt == "parquet":
        if not out:
            raise QueryError("--format parquet needs --out FILE (Parquet is binary)")
        import pyarrow.parquet as pq

        with atomic_path(out) as tmp:
            pq.write_table(table, tmp)
        return
    if fmt == "csv":
        import pyarrow.csv as pacsv

        if out:
            with atomic_path(out) as tmp:
                pacsv.write_csv(table, tmp)
            return
        sink = __import__("io").BytesIO()
        pacsv.write_csv(table, sink)
        text = sink.getvalue().decode()
    elif fmt == "json":
        text = json.dumps(_json_safe(table.to_pylist()), default=_json_default, allow_nan=False) + "\n"
    else:
        text = format_table(table) + "\n"
    if out:
        from zoo.store import write_text

        write_text(out, text)
    else:
        sys.stdout.write(text)


def _json_safe(v: Any) -> Any:
    """``v`` with every non-finite float (NaN, ±inf; JSON has none) replaced by ``None``."""
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {k: _json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_safe(x) for x in v]
    return v


def _json_default(v: Any) -> Any:
    """JSON for the Arrow values json cannot write: dates/times as ISO text, decimals as numbers."""
    import decimal

    if isinstance(v, decimal.Decimal):
        return float(v) if v.is_finite() else None
    if hasattr(v, "isoformat"):
        return v.isoformat()
    if isinstance(v, bytes):
        return v.hex()
    return str(v)


def _query_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("sql", help='one read-only statement over the tables models, metrics, weights, … '
                               'e.g. "SELECT count(*) FROM models"')
    p.add_argument("--db", default="data/zoo.duckdb", help="catalog database (default: data/zoo.duckdb)")
    p.add_argument("--format", choices=["table", "csv", "json", "parquet"], default="table")
    p.add_argument("--out", default=None, help="write the result to FILE instead of stdout")
    p.add_argument("--allow-read", action="append", default=[], metavar="DIR",
                   help="let the query read files under DIR (read_parquet, read_csv, …); repeatable. "
                        "Without it the query sees only the catalog's tables")


@command("query", "run one read-only SQL statement over the catalog (tables: models, metrics, weights, …)",
         _query_args)
def _query(args: argparse.Namespace) -> None:
    from zoo.catalog import run_query

    table = run_query(args.sql, args.db, allow_read=args.allow_read)
    write_result(table, args.format, args.out)
    if args.out:
        print(f"wrote {table.num_rows} rows to {args.out}", file=sys.stderr)


SUMMARY_SQL = """
SELECT m.zoo, count(DISTINCT m.model_id) AS models, count(DISTINCT m.population) AS populations,
       count(DISTINCT m.model_id) FILTER (WHERE m.diverged_epoch IS NOT NULL) AS diverged,
       max(m.epochs) AS epochs, sum(m.n_params) AS total_params,
       round(avg(f.test_acc) FILTER (WHERE NOT f.diverged), 4) AS mean_final_test_acc,
       round(max(f.test_acc), 4) AS best_test_acc
FROM models m JOIN metrics f ON f.model_id = m.model_id AND f.zoo = m.zoo AND f.epoch = m.epochs
GROUP BY m.zoo ORDER BY m.zoo
"""


def _summary_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", default="data/zoo.duckdb", help="catalog database (default: data/zoo.duckdb)")


def grid_pivot(table) -> Any:
    """``(row, col, value)`` rows → a pyarrow Table: the row axis, then one column per column value."""
    import pyarrow as pa

    row_name, col_name, val_name = table.column_names
    rows = table.to_pylist()
    row_keys = sorted({r[row_name] for r in rows}, key=_sort_key)
    col_keys = sorted({r[col_name] for r in rows}, key=_sort_key)
    cell = {(r[row_name], r[col_name]): r[val_name] for r in rows}
    cols = {row_name: row_keys}
    for c in col_keys:
        cols[f"{c:g}" if isinstance(c, float) else str(c)] = [cell.get((k, c)) for k in row_keys]
    return pa.table(cols)


def _sort_key(v: Any) -> tuple:
    return (v is None, v if v is not None else 0)


GRID_SQL = """
SELECT m.{row} AS {row}, m.{col} AS {col}, round(avg(f.test_acc), 3) AS test_acc
FROM models m JOIN metrics f ON f.model_id = m.model_id AND f.zoo = m.zoo AND f.epoch = m.epochs
WHERE m.zoo = ? GROUP BY ALL ORDER BY ALL
"""


@command("summary", "print per-zoo counts and final test accuracy over the two main grid axes", _summary_args)
def _summary(args: argparse.Namespace) -> None:
    from zoo.catalog import run_query
    from zoo.tables import HYPERPARAMETER_COLUMNS

    table = run_query(SUMMARY_SQL, args.db)
    print(format_table(table))
    candidates = [c for c in HYPERPARAMETER_COLUMNS if c not in ("seed", "dataset", "arch", "epochs")]
    for zoo in table["zoo"].to_pylist():
        counts = run_query(
            "SELECT " + ", ".join(f"count(DISTINCT {c}) AS {c}" for c in candidates) + " FROM models WHERE zoo = ?",
            args.db, [zoo],
        ).to_pylist()[0]
        axes = [c for c in candidates if counts[c] > 1]
        if len(axes) >= 2:
            print(f"\n{zoo}: mean final test accuracy over seeds, {axes[0]} (rows) × {axes[1]} (columns)")
            grid = run_query(GRID_SQL.format(row=axes[0], col=axes[1]), args.db, [zoo])
            print(format_table(grid_pivot(grid)))


__all__ = ["format_table", "write_result"]
