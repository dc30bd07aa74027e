"""The DuckDB catalog: one table per name, loaded from an explicit list of Parquet files.

``data/zoo.duckdb`` is a self-contained database: every table (``models``, ``metrics``,
``weights``, …) is a real DuckDB table loaded from exactly the files it was given (the
workflow passes the current spec's files; ``zoo catalog DATA`` asks
:func:`zoo.layout.catalog_files`). So the catalog never sees Parquet files an older spec
left on disk, and plain ``duckdb.connect("data/zoo.duckdb", read_only=True)`` opens it
from any directory (DuckDB resolves relative paths against the process's working
directory, never the database's folder, so views over files could not do that).

The table name of a file is its key-value metadata ``zoo.table`` (written by
:func:`zoo.store.write_table`). The table ``catalog_files(table_name, path, sha256, rows)``
records every source file, its path relative to the catalog's folder, its SHA-256 and
row count; :func:`check_catalog` compares the catalog with it.

Where the catalog has a ``spectral`` table, the build also creates the view ``ww``: the
same numbers under the column names (and units) of WeightWatcher 0.7.7's ``analyze()``
details, one row per layer that ``analyze()`` with its defaults would report
(``ww_analyzed``), so helpers written for WeightWatcher's DataFrame run on it unchanged
(:data:`WW_VIEW_SQL` lists the mapping; docs/report-and-cli.md explains it).

The build is atomic and checked: tables are loaded into a temporary database in the
target folder, ``CHECKPOINT``-ed and closed; the write-ahead log must then be gone (a
DuckDB that cannot write, e.g. on a full disk, may leave the data in ``.wal`` and report
nothing), the file is reopened read-only and every table must answer with the expected
row count. Only then is it renamed over the old catalog. Any failure raises
:class:`~zoo.errors.DataError` and leaves the previous catalog untouched.

Queries: what ``zoo query``, ``zoo.frame`` and :func:`run_query` guarantee
----------------------------------------------------------------------------
1. Exactly one read-only statement runs. DuckDB's own parser splits the text
   (``extract_statements``) and the statement's type must be SELECT (which covers WITH,
   FROM-first, VALUES, DESCRIBE, SHOW, SUMMARIZE and PIVOT with an ``IN`` list) or EXPLAIN
   [ANALYZE] of one SELECT. COPY, ATTACH/DETACH, INSTALL/LOAD, SET/RESET/USE, PRAGMA, CALL,
   EXPORT/IMPORT, CREATE/INSERT/UPDATE/DELETE/DROP, PIVOT without ``IN`` (DuckDB runs it as
   several statements) and any second statement are refused in one line before anything
   runs.
2. The statement runs on a private in-memory DuckDB that attaches the catalog
   ``READ_ONLY`` and then sets ``enable_external_access = false`` (no file, network,
   ATTACH or extension access: ``read_csv('/etc/passwd')``, ``COPY … TO``, ``glob()``
   fail), turns off extension autoinstall/autoload, and sets ``lock_configuration =
   true`` (no later SET can undo it). The tables are materialised in the catalog, so
   queries need no file access at all.
3. Opt-in ``allow_read`` / ``--allow-read DIR`` sets DuckDB's ``allowed_directories`` so
   files under DIR can be read. DuckDB lets that setting *write* there too (COPY …
   TO); rule 1 is what keeps queries read-only, so :func:`connect` itself (zoo.open) does
   not offer it.

Limits: a query may still use CPU and memory without bound (DuckDB's default
``memory_limit``, 80 % of RAM; spill files go to a private folder under the system temp
directory, never beside the data); DuckDB bugs are out of our hands. :func:`connect`
(``zoo.open``) hands out the locked-down connection itself: rule 2 holds there, rule 1 is
the caller's business (it can create tables in the in-memory database, which vanish on
close).
"""

from __future__ import annotations

import itertools
import os
import re
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.errors import DataError, QueryError

if TYPE_CHECKING:  # pragma: no cover
    import duckdb
    import pyarrow as pa

CATALOG_NAME = "zoo.duckdb"
#: The bookkeeping table: one row per source file.
FILES_TABLE = "catalog_files"
#: The name under which :func:`connect` attaches the catalog (``zoo.models`` also works).
ATTACH_AS = "zoo"
#: The WeightWatcher-compatible view over ``spectral`` (created when that table has :data:`WW_SOURCE_COLUMNS`).
WW_VIEW = "ww"
#: ``ww``: our spectral columns under WeightWatcher 0.7.7's ``analyze()`` names and units.
#: ESD quantities (``norm``, ``spectral_norm``, ``lambda_max``, ``sv_max``) are its: eigenvalues
#: of WᵀW, halved for conv kernels (its ``conv2d_norm``); ``name`` is the module's last name
#: component and ``longname`` the full one, as in its DataFrame. WeightWatcher's (N, M) of a conv
#: kernel with an even number of slices keep out × in (it swaps only for odd ``rf``). Conv
#: layers are told from dense ones by that ½ (Σλ = ‖W‖_F²/2, stored as ``log_norm``), which also
#: covers 1×1 kernels (``rf = 1``). Not derivable from the table and left out: ``layer_id``
#: (WeightWatcher counts the torch model's modules, containers included), ``sv_min`` (its
#: max over slices of each slice's smallest σ), ``log_alpha_norm``, ``matrix_rank``,
#: ``rank_loss``, ``weak_rank_loss``. ``warning`` follows its thresholds (alpha < 2
#: over-trained, > 6 under-trained); a failed fit is NaN here (WeightWatcher reports −1).
WW_VIEW_SQL = f"""
CREATE VIEW {WW_VIEW} AS
SELECT model_id, zoo, population, epoch,
       regexp_extract(layer, '[^.]+$') AS name,
       layer AS longname,
       CASE WHEN rf > 1 OR round(fro_norm * fro_norm / pow(10, log_norm)) = 2
            THEN 'conv2d' ELSE 'dense' END AS layer_type,
       CASE WHEN rf % 2 = 1 THEN greatest("rows", cols) ELSE "rows" END AS N,
       CASE WHEN rf % 2 = 1 THEN least("rows", cols) ELSE cols END AS M,
       CAST(N AS DOUBLE) / M AS Q,
       rf,
       n_evals AS num_evals,
       true AS has_esd,
       alpha, alpha_weighted,
       ks_distance AS D,
       alpha_sigma AS sigma,
       xmin,
       pow(10, log_spectral_norm) AS xmax,
       n_tail AS num_pl_spikes,
       log_norm,
       pow(10, log_norm) AS norm,
       log_spectral_norm,
       pow(10, log_spectral_norm) AS spectral_norm,
       pow(10, log_spectral_norm) AS lambda_max,
       sqrt(pow(10, log_spectral_norm)) AS sv_max,
       stable_rank, entropy, mp_softrank,
       CASE WHEN isfinite(alpha) THEN 'success' ELSE 'failed' END AS status,
       CASE WHEN alpha < 2.0 THEN 'over-trained' WHEN alpha > 6.0 THEN 'under-trained' ELSE '' END AS warning,
       fit_rule, ww_analyzed
FROM spectral
WHERE ww_analyzed
"""
#: The spectral columns the view reads (the workflow's spectral table has them all).
WW_SOURCE_COLUMNS = frozenset({
    "model_id", "zoo", "population", "epoch", "layer", "rows", "cols", "rf", "n_evals", "fro_norm", "alpha",
    "alpha_weighted", "ks_distance", "alpha_sigma", "xmin", "n_tail", "log_norm", "log_spectral_norm",
    "stable_rank", "entropy", "mp_softrank", "fit_rule", "ww_analyzed"})
_TABLE_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_GLOB_CHARS = re.compile(r"[*?\[]")
_SPILL_DIRS = itertools.count()


@dataclass(frozen=True)
class SourceFile:
    """One Parquet file of the catalog: absolute ``path``, its ``table`` name, ``rows`` and ``sha256``."""

    path: Path
    table: str
    rows: int
    sha256: str


def describe_file(path: str | Path) -> SourceFile:
    """Read a Parquet file's footer (not its data) and hash it; one-line :class:`DataError` if unfit.

    Unfit: missing, zero bytes, not Parquet, no or wrong ``zoo.schema_version``, no valid
    ``zoo.table`` name, or a name with glob characters (DuckDB would expand it).
    """
    import pyarrow.parquet as pq

    from zoo.hashing import file_sha256
    from zoo.store import SCHEMA_VERSION

    path = Path(path)
    fix = "delete it and re-run the workflow (snakemake) to regenerate it"
    if not path.is_file():
        raise DataError(f"{path}: catalog input missing; run the workflow (snakemake) to create it")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: zero-byte file, not Parquet; {fix}")
    if _GLOB_CHARS.search(str(path.resolve())):
        raise DataError(f"{path}: path contains a glob character (* ? [), which DuckDB would expand; rename it")
    try:
        meta = pq.read_metadata(path)
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise DataError(f"{path}: not a readable Parquet file ({type(exc).__name__}); {fix}") from None
    kv = meta.metadata or {}
    version = kv.get(b"zoo.schema_version", b"").decode(errors="replace")
    if version != SCHEMA_VERSION:
        raise DataError(f"{path}: schema version {version or 'missing'} but this zoo reads version "
                        f"{SCHEMA_VERSION}; {fix}")
    table = kv.get(b"zoo.table", b"").decode(errors="replace")
    if not _TABLE_NAME.fullmatch(table) or table in (FILES_TABLE, WW_VIEW):
        raise DataError(f"{path}: metadata zoo.table is {table or 'missing'!r}, not a table name "
                        "(lower-case letters, digits, _); write it with zoo.store.write_table")
    return SourceFile(path.resolve(), table, int(meta.num_rows), file_sha256(path))


def build_catalog(data_dir: str | Path = "data", db_path: str | Path | None = None,
                  files: Iterable[str | Path] | None = None) -> dict[str, int]:
    """(Re)build the catalog from ``files`` atomically; return ``{table: rows}`` in name order.

    ``db_path`` defaults to ``<data_dir>/zoo.duckdb``; ``files`` defaults to
    :func:`zoo.layout.catalog_files` of ``data_dir`` (the current specs' files). Paths are
    recorded relative to the database's folder. A file given twice is loaded once.
    """
    db_path = Path(db_path) if db_path is not None else Path(data_dir) / CATALOG_NAME
    if files is None:
        from zoo.layout import catalog_files

        files = catalog_files(data_dir)
    unique = list(dict.fromkeys(Path(f).resolve() for f in files))
    tables: dict[str, list[SourceFile]] = {}
    for f in unique:
        src = describe_file(f)
        tables.setdefault(src.table, []).append(src)
    tables = dict(sorted(tables.items()))
    _write_checked(db_path, tables)
    return {name: sum(s.rows for s in srcs) for name, srcs in tables.items()}


def _write_checked(db_path: Path, tables: dict[str, list[SourceFile]]) -> None:
    """Load ``tables`` into a temporary database next to ``db_path``, check it, rename it into place."""
    import duckdb

    from zoo.store import atomic_path

    base = db_path.parent.resolve()
    expected = {name: sum(s.rows for s in srcs) for name, srcs in tables.items()}
    with atomic_path(db_path) as tmp:  # on failure it also removes DuckDB's .wal and spill folder
        wal = Path(f"{tmp}.wal")
        tmp.unlink()  # DuckDB refuses to open an empty file as a database
        try:
            _load(tmp, tables, base)
        except duckdb.Error as exc:
            raise DataError(f"{db_path}: cannot build the catalog ({_first_line(exc)}); the previous catalog "
                            "is unchanged; fix the cause (disk space? a corrupt input?) and re-run") from None
        if wal.exists() and wal.stat().st_size > 0:
            raise DataError(f"{db_path}: DuckDB left {wal.stat().st_size} bytes in its write-ahead log instead of "
                            "the database file (disk full?); the previous catalog is unchanged; free space and re-run")
        problems = _table_problems(tmp, expected)
        if problems:
            raise DataError(f"{db_path}: the new catalog failed its check ({problems[0]}); the previous "
                            "catalog is unchanged; free disk space and re-run")
        wal.unlink(missing_ok=True)  # an empty log
        # a log left beside the *old* catalog would be replayed onto the new one
        Path(f"{db_path}.wal").unlink(missing_ok=True)


def _load(tmp: Path, tables: dict[str, list[SourceFile]], base: Path) -> None:
    import duckdb

    con = duckdb.connect(str(tmp), config={"autoinstall_known_extensions": False,
                                           "autoload_known_extensions": False})
    try:
        con.execute(f"CREATE TABLE {FILES_TABLE} (table_name VARCHAR, path VARCHAR, sha256 VARCHAR, rows BIGINT)")
        for name, srcs in tables.items():
            con.execute(f'CREATE TABLE "{name}" AS SELECT * FROM read_parquet(?, union_by_name = true)',
                        [[str(s.path) for s in srcs]])
            con.executemany(f"INSERT INTO {FILES_TABLE} VALUES (?, ?, ?, ?)",
                            [[name, Path(os.path.relpath(s.path, base)).as_posix(), s.sha256, s.rows] for s in srcs])
        if "spectral" in tables:
            have = {r[0] for r in con.execute('DESCRIBE "spectral"').fetchall()}
            if WW_SOURCE_COLUMNS <= have:  # a hand-made spectral table with fewer columns gets no view
                con.execute(WW_VIEW_SQL)
                con.execute(f"SELECT count(*) FROM {WW_VIEW}").fetchone()  # binds every column now, not at query time
        con.execute("CHECKPOINT")
    finally:
        con.close()


def _table_problems(db: Path, expected: dict[str, int]) -> list[str]:
    """Problems of ``db`` (opened read-only): an expected table missing or with another row count."""
    try:
        con = connect(db)
    except DataError as exc:
        return [str(exc)]
    try:
        problems = _count_problems(con, expected)
        if FILES_TABLE not in table_names(con, include_files=True):
            problems.append(f"table {FILES_TABLE} missing")
        return problems
    finally:
        con.close()


def check_catalog(db_path: str | Path, files: Iterable[str | Path] | None = None) -> list[str]:
    """Human-readable problems of a built catalog; ``[]`` when it is sound.

    Checked: every listed source file exists and has its recorded SHA-256; every recorded
    table exists with the recorded row count; no table is unrecorded. With ``files`` (the
    files the current spec expects), also that the catalog lists exactly those files.
    """
    import duckdb

    from zoo.hashing import file_sha256

    db_path = Path(db_path)
    try:
        con = connect(db_path)
    except DataError as exc:
        return [str(exc)]
    try:
        if FILES_TABLE not in table_names(con, include_files=True):
            return [f"{db_path}: no {FILES_TABLE} table (an old catalog of views?); rebuild it with `zoo catalog`"]
        listed = con.execute(f"SELECT table_name, path, sha256, rows FROM {FILES_TABLE} ORDER BY ALL").fetchall()
        expected: dict[str, int] = {}
        for name, _, _, rows in listed:
            expected[name] = expected.get(name, 0) + rows
        problems = [f"{db_path}: {p}; rebuild it with `zoo catalog`" for p in _count_problems(con, expected)]
        problems += [f"{db_path}: table {t} is not recorded in {FILES_TABLE}; rebuild it with `zoo catalog`"
                     for t in sorted(set(table_names(con)) - set(expected))]
    except duckdb.Error as exc:
        return [f"{db_path}: cannot read the catalog ({_first_line(exc)}); rebuild it with `zoo catalog`"]
    finally:
        con.close()
    base = db_path.parent.resolve()
    for name, rel, sha, _ in listed:
        src = base / rel
        if not src.is_file():
            problems.append(f"{src}: listed in {db_path} (table {name}) but missing; re-run the workflow")
        elif file_sha256(src) != sha:
            problems.append(f"{src}: changed since {db_path} was built (sha256 differs); rebuild it with `zoo catalog`")
    if files is not None:
        want = {Path(f).resolve() for f in files}
        have = {(base / rel).resolve() for _, rel, _, _ in listed}
        problems += [f"{f}: expected but not in {db_path}; rebuild it with `zoo catalog`" for f in sorted(want - have)]
        problems += [f"{f}: in {db_path} but not expected (left by an older spec?); rebuild it with `zoo catalog`"
                     for f in sorted(have - want)]
    return problems


def _count_problems(con: duckdb.DuckDBPyConnection, expected: dict[str, int]) -> list[str]:
    import duckdb

    present = set(table_names(con))
    problems = []
    for name, rows in sorted(expected.items()):
        if name not in present:
            problems.append(f"table {name} missing")
            continue
        try:
            got = con.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0]
        except duckdb.Error as exc:
            problems.append(f"table {name} unreadable ({_first_line(exc)})")
            continue
        if got != rows:
            problems.append(f"table {name} has {got} rows, its files {rows}")
    return problems


def table_names(con: duckdb.DuckDBPyConnection, include_files: bool = False) -> list[str]:
    """The catalog's tables on a :func:`connect` connection (without ``catalog_files`` unless asked)."""
    names = [r[0] for r in con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
        "AND schema_name = 'main' AND NOT internal AND NOT temporary ORDER BY 1").fetchall()]
    return [n for n in names if include_files or n != FILES_TABLE]


# ------------------------------------------------------------------------------ queries

#: Statement types a query may be (DESCRIBE, SHOW, SUMMARIZE, FROM …, VALUES parse as SELECT).
_READ_ONLY_TYPES = ("SELECT",)
_EXPLAIN = re.compile(r"^\s*EXPLAIN(?:\s+ANALYZE)?(?:\s*\([^()]*\))?\s+(?P<inner>\S.*)$", re.I | re.S)
_ALLOWED = "SELECT, WITH, FROM, VALUES, DESCRIBE, SHOW, SUMMARIZE, EXPLAIN [ANALYZE] SELECT"


def read_only_statement(con: duckdb.DuckDBPyConnection, sql: str) -> Any:
    """The single read-only statement of ``sql`` (a ``duckdb.Statement``); :class:`QueryError` otherwise.

    Parsed by DuckDB itself (``extract_statements``), so what is checked is what runs.
    Allowed: exactly one SELECT-type statement (SELECT, WITH, FROM, VALUES, DESCRIBE, SHOW,
    SUMMARIZE, PIVOT with an ``IN`` list), or ``EXPLAIN [ANALYZE]`` of one. Everything else
    (COPY, ATTACH, INSTALL/LOAD, SET/RESET/PRAGMA, EXPORT, CALL, CREATE/INSERT/…, a second
    statement, PIVOT without ``IN`` which DuckDB runs as several statements) is refused
    before anything runs.
    """
    statements = _extract(con, sql)
    if not statements:
        raise QueryError(f"SQL refused: no statement given; give exactly one read-only statement ({_ALLOWED})")
    if len(statements) != 1:
        kinds = "; ".join(_kind(s) for s in statements) or "none"
        raise QueryError(f"SQL refused: {len(statements)} statements ({kinds}); give exactly one read-only "
                         f"statement ({_ALLOWED})")
    stmt = statements[0]
    kind = _kind(stmt)
    if kind == "EXPLAIN":
        m = _EXPLAIN.match(stmt.query)
        inner = _extract(con, m.group("inner")) if m else []
        if len(inner) != 1 or _kind(inner[0]) not in _READ_ONLY_TYPES:
            raise QueryError(f"SQL refused: EXPLAIN of something other than one SELECT; only read-only "
                             f"statements run ({_ALLOWED})")
    elif kind not in _READ_ONLY_TYPES:
        hint = "; give PIVOT an explicit list: PIVOT … ON col IN (v1, v2) USING …" if kind == "MULTI" else ""
        raise QueryError(f"SQL refused: {kind} statement; only read-only statements run ({_ALLOWED}){hint}")
    return stmt


def _extract(con: duckdb.DuckDBPyConnection, sql: str) -> list[Any]:
    import duckdb

    try:
        return con.extract_statements(sql)
    except duckdb.Error as exc:
        raise QueryError(sql_error_message(exc)) from None


def _kind(stmt: Any) -> str:
    try:
        return stmt.type.name
    except ValueError:  # a statement type the Python client has no name for (e.g. UPDATE EXTENSIONS)
        return "UNKNOWN"


def sql_error_message(exc: Exception) -> str:
    """DuckDB's error as ``SQL error: <first line>``, plus DuckDB's ``Did you mean …`` hint as a second line."""
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    first = lines[0] if lines else type(exc).__name__
    msg = f"SQL error: {first}"
    if "read-only" in first:
        msg += " (the catalog is read-only)"
    elif "file system operations are disabled" in first:
        msg += " (queries read only the catalog's tables; zoo query --allow-read DIR permits files under DIR)"
    hint = next((ln for ln in lines[1:] if ln.startswith("Did you mean")), None)
    return msg + (f"\n{hint}" if hint else "")


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def connect(db_path: str | Path = "data/zoo.duckdb", allow_read: Sequence[str | Path] = ()) -> duckdb.DuckDBPyConnection:
    """A connection that sees the catalog read-only and nothing else.

    A private in-memory DuckDB attaches the catalog ``READ_ONLY`` as ``zoo`` (the default
    database), then sets ``enable_external_access = false`` (no file, network, ATTACH or
    extension access), with extension autoinstall/autoload off, and ``lock_configuration
    = true`` so no statement can undo it. ``allow_read`` lists folders whose files may be
    read (DuckDB's ``allowed_directories``; note DuckDB also lets COPY write there, which
    is why only :func:`run_query`-style callers, which admit SELECT only, offer it).
    Being its own instance, it never clashes with other connections to the same file.
    """
    import duckdb

    db_path = Path(db_path)
    if not db_path.is_file():
        raise DataError(f"{db_path}: no catalog; run the workflow first (make demo, or snakemake --cores 2)")
    dirs = []
    for d in allow_read:
        if not Path(d).is_dir():
            raise DataError(f"{d}: --allow-read needs an existing folder")
        dirs.append(str(Path(d).resolve()) + os.sep)
    spill = Path(tempfile.gettempdir()) / f"zoo-duckdb-{os.getpid()}-{next(_SPILL_DIRS)}"
    con = duckdb.connect(":memory:", config={"autoinstall_known_extensions": False,
                                             "autoload_known_extensions": False,
                                             "temp_directory": str(spill)})
    try:
        quoted = str(db_path.resolve()).replace("'", "''")
        con.execute(f"ATTACH '{quoted}' AS {ATTACH_AS} (READ_ONLY)")
        con.execute(f"USE {ATTACH_AS}")
    except duckdb.Error as exc:
        con.close()
        raise DataError(f"{db_path}: cannot open the catalog ({_first_line(exc)}); rebuild it with `zoo catalog`") from None
    if dirs:
        con.execute("SET allowed_directories = ?", [dirs])
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
    return con


def execute_read_only(con: duckdb.DuckDBPyConnection, sql: str,
                      params: Sequence[Any] | None = None) -> duckdb.DuckDBPyRelation:
    """Check ``sql`` with :func:`read_only_statement`, then hand DuckDB exactly that statement.

    Returns the relation (fetch it with ``.to_arrow_table()`` or ``.df()``); DuckDB errors
    while binding become :class:`QueryError`, errors while fetching stay ``duckdb.Error``.
    """
    import duckdb

    stmt = read_only_statement(con, sql)
    try:
        return con.sql(stmt, params=list(params) if params else None)
    except duckdb.Error as exc:
        raise QueryError(sql_error_message(exc)) from None


def run_query(sql: str, db_path: str | Path = "data/zoo.duckdb", params: Sequence[Any] | None = None,
              allow_read: Sequence[str | Path] = ()) -> pa.Table:
    """Run one read-only statement over the catalog; return a pyarrow Table.

    Refused statements and SQL errors raise :class:`QueryError`; see :func:`read_only_statement`
    and :func:`connect` for what is allowed.
    """
    import duckdb

    con = connect(db_path, allow_read)
    try:
        result = execute_read_only(con, sql, params)
        try:
            return result.to_arrow_table()
        except duckdb.Error as exc:
            raise QueryError(sql_error_message(exc)) from None
    finally:
        con.close()
