"""``zoo query`` and ``zoo summary``: SQL over the catalog, printed or saved."""

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
        rows = table.to_pylist()
        text = json.dumps(rows, default=str, allow_nan=True).replace("NaN", "null") + "\n"
    else:
        text = format_table(table) + "\n"
    if out:
        from zoo.store import write_text

        write_text(out, text)
    else:
        sys.stdout.write(text)


def _query_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("sql", help='SQL over the views models, metrics, weights, … e.g. "SELECT count(*) FROM models"')
    p.add_argument("--db", default="data/zoo.duckdb", help="catalog database (default: data/zoo.duckdb)")
    p.add_argument("--format", choices=["table", "csv", "json", "parquet"], default="table")
    p.add_argument("--out", default=None, help="write the result to FILE instead of stdout")


@command("query", "run read-only SQL over the catalog (tables: models, metrics, weights, …)", _query_args)
def _query(args: argparse.Namespace) -> None:
    from zoo.catalog import run_query

    table = run_query(args.sql, args.db)
    if table is None:
        return
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


def grid_pivot_sql(zoo: str, row_axis: str, col_axis: str) -> str:
    return f"""
    PIVOT (SELECT m.{row_axis} AS {row_axis}, m.{col_axis} AS {col_axis}, f.test_acc
           FROM models m JOIN metrics f ON f.model_id = m.model_id AND f.zoo = m.zoo AND f.epoch = m.epochs
           WHERE m.zoo = '{zoo}')
    ON {col_axis} USING round(avg(test_acc), 3) GROUP BY {row_axis} ORDER BY {row_axis}
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
            "SELECT " + ", ".join(f"count(DISTINCT {c}) AS {c}" for c in candidates) + f" FROM models WHERE zoo = '{zoo}'",
            args.db,
        ).to_pylist()[0]
        axes = [c for c in candidates if counts[c] > 1]
        if len(axes) >= 2:
            print(f"\n{zoo}: mean final test accuracy over seeds, {axes[0]} (rows) × {axes[1]} (columns)")
            print(format_table(run_query(grid_pivot_sql(zoo, axes[0], axes[1]), args.db)))


__all__ = ["format_table", "write_result"]
