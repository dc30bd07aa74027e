"""The DuckDB catalog: one view per table over the Parquet files of every zoo.

Nothing is copied: ``data/zoo.duckdb`` holds only view definitions whose globs are
relative to the data folder, and every connection sets DuckDB's ``file_search_path`` to
that folder, so the catalog moves with its data. Queries open it read-only.
"""

from __future__ import annotations

from pathlib import Path

from zoo.errors import DataError, QueryError
from zoo.store import atomic_path

#: table name → Parquet glob, relative to the data folder.
TABLE_GLOBS: dict[str, str] = {
    "models": "zoos/*/models/*.parquet",
    "metrics": "zoos/*/metrics/*.parquet",
    "weights": "zoos/*/weights/*.parquet",
    "spectral": "zoos/*/spectral/*.parquet",
    "landscape": "zoos/*/landscape/*.parquet",
    "phases": "zoos/*/phases.parquet",
    "results": "learners/*/*/*/*/results.parquet",
    "predictions": "learners/*/*/*/*/predictions.parquet",
}


def register_table(name: str, glob: str) -> None:
    """Let a later stage add a table to the catalog (its glob relative to the data folder)."""
    TABLE_GLOBS[name] = glob


def build_catalog(data_dir: str | Path, db_path: str | Path | None = None) -> list[str]:
    """(Re)create the catalog database atomically; return the names of the views made.

    A table whose glob matches no file yet gets no view (DuckDB cannot bind it).
    """
    import duckdb

    data_dir = Path(data_dir).resolve()
    db_path = Path(db_path) if db_path else data_dir / "zoo.duckdb"
    made = []
    with atomic_path(db_path) as tmp:
        tmp.unlink()  # DuckDB refuses to open an empty file as a database
        con = duckdb.connect(str(tmp))
        try:
            con.execute(f"SET file_search_path = '{data_dir}'")
            for name, glob in TABLE_GLOBS.items():
                if not any(data_dir.glob(glob)):
                    continue
                con.execute(
                    f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{glob}', union_by_name = true)"
                )
                made.append(name)
        finally:
            con.close()
        Path(str(tmp) + ".wal").unlink(missing_ok=True)
    return made


def connect(db_path: str | Path = "data/zoo.duckdb", read_only: bool = True):
    """A DuckDB connection to the catalog (read-only by default) with paths resolved."""
    import duckdb

    db_path = Path(db_path)
    if not db_path.is_file():
        raise DataError(f"{db_path}: no catalog; run the workflow first (make demo, or snakemake --cores 2)")
    try:
        con = duckdb.connect(str(db_path), read_only=read_only)
    except duckdb.Error as exc:
        raise DataError(f"{db_path}: cannot open the catalog ({str(exc).splitlines()[0]}); rebuild it with `zoo catalog`") from None
    con.execute(f"SET file_search_path = '{db_path.resolve().parent}'")
    return con


def run_query(sql: str, db_path: str | Path = "data/zoo.duckdb"):
    """Run ``sql`` read-only; return a pyarrow Table. SQL errors become :class:`QueryError`."""
    import duckdb

    con = connect(db_path)
    try:
        rel = con.sql(sql)
        return rel.to_arrow_table() if rel is not None else None
    except duckdb.Error as exc:
        first = str(exc).strip().splitlines()[0]
        hint = " (the catalog is read-only)" if "read-only" in first else ""
        raise QueryError(f"SQL error: {first}{hint}") from None
    finally:
        con.close()
