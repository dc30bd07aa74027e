"""`zoo query` and `zoo.frame` run exactly one read-only statement and touch no file."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

import zoo
from zoo.catalog import build_catalog, connect, run_query
from zoo.cli import main
from zoo.errors import QueryError
from zoo.hashing import file_sha256
from zoo.store import write_table


@pytest.fixture
def root(tmp_path, monkeypatch) -> Path:
    """A tiny catalog under ``root/data`` (no training), an outside file, and the cwd at ``root``."""
    data = tmp_path / "data"
    files = [data / "zoos/z/models/p.parquet", data / "zoos/z/metrics/p.parquet"]
    write_table(pa.table({"model_id": ["a", "b"], "zoo": ["z", "z"], "width": [4, 8], "name": ["NaNa", "x"]}),
                files[0], "models")
    write_table(pa.table({"model_id": ["a", "b"], "epoch": [1, 1], "test_acc": [float("nan"), 0.75],
                          "ggap": [float("inf"), 0.0]}), files[1], "metrics")
    build_catalog(data, files=files)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.csv").write_text("x\n42\n")
    monkeypatch.chdir(tmp_path)  # relative paths in the SQL below land in tmp_path
    return tmp_path


def snapshot(root: Path) -> dict[str, str]:
    """SHA-256 of every file under ``root`` (data/, the outside folder, the cwd)."""
    return {p.relative_to(root).as_posix(): file_sha256(p) for p in sorted(root.rglob("*")) if p.is_file()}


DB = "data/zoo.duckdb"

REFUSED = {
    "copy to a table file": "COPY models TO 'data/zoos/z/models/evil.parquet' (FORMAT parquet)",
    "copy a query": "COPY (SELECT 1) TO 'evil.csv'",
    "attach read-write": "ATTACH 'data/evil.duckdb' AS evil (READ_WRITE)",
    "attach the catalog itself": "ATTACH 'data/zoo.duckdb' AS again",
    "install": "INSTALL httpfs",
    "load": "LOAD httpfs",
    "load a file": "LOAD 'data/evil.duckdb_extension'",
    "hidden second statement": "SELECT 1; COPY models TO 'data/evil.csv'",
    "two selects": "SELECT 1; SELECT 2",
    "export": "EXPORT DATABASE 'data/export'",
    "set": "SET enable_external_access = true",
    "set threads": "SET threads = 1",
    "reset": "RESET enable_external_access",
    "pragma": "PRAGMA enable_profiling",
    "set variable": "SET VARIABLE x = 1",
    "use": "USE memory",
    "create": "CREATE TABLE evil AS SELECT 1",
    "create temp": "CREATE TEMP TABLE evil AS SELECT 1",
    "create secret": "CREATE SECRET (TYPE s3, KEY_ID 'x', SECRET 'y')",
    "insert": "INSERT INTO models (model_id) VALUES ('evil')",
    "drop": "DROP TABLE models",
    "detach": "DETACH zoo",
    "call": "CALL pragma_version()",
    "checkpoint": "CHECKPOINT",
    "explain analyze copy": "EXPLAIN ANALYZE COPY models TO 'data/evil.csv'",
    "pivot without in": "PIVOT models ON width USING count(*)",
    "update extensions": "UPDATE EXTENSIONS",
    "empty": "  ;  ",
}

SANDBOXED = {  # SELECTs that would read files: refused by DuckDB itself, nothing runs
    "read_csv outside": "SELECT * FROM read_csv('outside/secret.csv')",
    "read_csv /etc": "SELECT * FROM read_csv('/etc/passwd')",
    "read_parquet of a catalog input": "SELECT * FROM read_parquet('data/zoos/z/models/p.parquet')",
    "glob": "SELECT * FROM glob('data/*')",
    "read_text": "SELECT * FROM read_text('outside/secret.csv')",
}


@pytest.mark.parametrize("sql", REFUSED.values(), ids=REFUSED.keys())
def test_statement_other_than_one_select_is_refused_before_it_runs(root, sql, capsys):
    before = snapshot(root)
    assert main(["query", sql, "--db", DB]) == 1
    err = capsys.readouterr().err
    assert err.startswith("zoo query: error: SQL refused: ") and err.count("\n") == 1
    assert snapshot(root) == before
    with pytest.raises(QueryError, match="SQL refused"):
        zoo.frame(sql, "data")
    assert snapshot(root) == before


@pytest.mark.parametrize("sql", SANDBOXED.values(), ids=SANDBOXED.keys())
def test_select_cannot_read_files(root, sql, capsys):
    before = snapshot(root)
    assert main(["query", sql, "--db", DB]) == 1
    err = capsys.readouterr().err
    assert "file system operations are disabled" in err and err.count("\n") == 1
    with pytest.raises(QueryError, match="Permission Error"):
        zoo.frame(sql, "data")
    assert snapshot(root) == before


def test_the_connection_itself_refuses_file_access_and_config_changes(root):
    """The second line of defence, without the statement check: what zoo.open hands out."""
    before = snapshot(root)
    con = zoo.open("data")
    try:
        for sql in ["COPY models TO 'evil.csv'", "ATTACH 'evil.duckdb' (READ_WRITE)", "INSTALL httpfs",
                    "LOAD httpfs", "SELECT * FROM read_csv('outside/secret.csv')", "EXPORT DATABASE 'exp'"]:
            with pytest.raises(duckdb.Error, match="disabled"):
                con.execute(sql)
        for sql in ["SET enable_external_access = true", "RESET enable_external_access", "SET lock_configuration = false",
                    "PRAGMA threads = 1", "SET allowed_directories = ['/']"]:
            with pytest.raises(duckdb.Error, match="locked"):
                con.execute(sql)
        with pytest.raises(duckdb.Error, match="read-only"):
            con.execute("CREATE TABLE scratch AS SELECT 1")
        assert con.execute("SELECT count(*) FROM models").fetchone()[0] == 2
    finally:
        con.close()
    assert snapshot(root) == before


@pytest.mark.parametrize("sql,rows", [
    ("SELECT model_id FROM models ORDER BY 1", 2),
    ("  -- a comment\n WITH m AS (SELECT * FROM models) SELECT * FROM m;", 2),
    ("FROM models", 2),
    ("VALUES (1), (2), (3)", 3),
    ("DESCRIBE models", 4),
    ("SHOW TABLES", 3),
    ("SUMMARIZE metrics", 4),
    ("EXPLAIN SELECT * FROM models", 1),
    ("EXPLAIN ANALYZE SELECT count(*) FROM metrics", 1),
    ("PIVOT models ON width IN (4, 8) USING count(*) GROUP BY zoo", 1),
    ("SELECT table_name, rows FROM catalog_files", 2),
])
def test_read_only_statements_run(root, sql, rows):
    before = snapshot(root)
    assert run_query(sql, DB).num_rows == rows
    assert len(zoo.frame(sql, "data")) == rows
    assert snapshot(root) == before


def test_allow_read_opens_one_folder_for_reading_only(root, capsys):
    before = snapshot(root)
    sql = "SELECT x FROM read_csv('outside/secret.csv')"
    assert main(["query", sql, "--db", DB, "--allow-read", "outside", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"x": 42}]
    assert zoo.frame(sql, "data", allow_read=["outside"])["x"].tolist() == [42]
    assert main(["query", "SELECT * FROM read_parquet('data/zoos/z/models/p.parquet')", "--db", DB,
                 "--allow-read", "outside"]) == 1
    assert "file system operations are disabled" in capsys.readouterr().err
    assert main(["query", "COPY models TO 'outside/evil.csv'", "--db", DB, "--allow-read", "outside"]) == 1
    assert "SQL refused" in capsys.readouterr().err
    assert snapshot(root) == before
    assert main(["query", "SELECT 1", "--db", DB, "--allow-read", "nowhere"]) == 1
    assert "--allow-read needs an existing folder" in capsys.readouterr().err


def test_open_never_clashes_with_other_connections_to_the_catalog(root):
    plain = duckdb.connect(DB, read_only=True)  # a user's own connection in the same process
    try:
        with zoo.open("data") as con:
            assert con.execute("SELECT count(*) FROM models").fetchone()[0] == 2
        assert zoo.frame("SELECT count(*) AS n FROM models", "data", allow_read=["outside"])["n"][0] == 2
        assert plain.execute("SELECT current_setting('enable_external_access')").fetchone()[0] is True
    finally:
        plain.close()


def test_json_nulls_only_non_finite_numbers_and_keeps_strings(root, capsys):
    sql = "SELECT m.name, f.test_acc, f.ggap, [f.test_acc, 1.0] AS l FROM models m JOIN metrics f USING (model_id) ORDER BY m.model_id"
    assert main(["query", sql, "--db", DB, "--format", "json"]) == 0
    out = capsys.readouterr().out
    assert json.loads(out) == [{"name": "NaNa", "test_acc": None, "ggap": None, "l": [None, 1.0]},
                               {"name": "x", "test_acc": 0.75, "ggap": 0.0, "l": [0.75, 1.0]}]
    assert "NaN" not in out.replace("NaNa", "") and "Infinity" not in out


def test_sql_error_keeps_duckdbs_hint_on_a_second_line(root, capsys):
    assert main(["query", "SELECT * FROM modles", "--db", DB]) == 1
    first, second = capsys.readouterr().err.splitlines()
    assert first.startswith("zoo query: error: SQL error: Catalog Error: Table with name modles does not exist")
    assert second == 'Did you mean "models"?'
    with pytest.raises(QueryError, match="Did you mean") as exc:
        zoo.frame("SELECT lenght(name) FROM models", "data")
    assert str(exc.value).count("\n") == 1


def test_connect_refuses_a_missing_or_broken_catalog_in_one_line(tmp_path):
    from zoo.errors import DataError

    with pytest.raises(DataError, match="no catalog"):
        connect(tmp_path / "none.duckdb")
    broken = tmp_path / "broken.duckdb"
    for content in (b"", b"not a database at all" * 100):
        broken.write_bytes(content)
        with pytest.raises(DataError, match="cannot open the catalog") as exc:
            connect(broken)
        assert "\n" not in str(exc.value)


def test_summary_pivots_the_grid_under_the_read_only_rules(tmp_path, capsys):
    """`zoo summary` runs only SELECTs (its grid pivot is done in Python, not by a multi-statement PIVOT)."""
    from zoo.tables import METRICS_SCHEMA, MODELS_SCHEMA

    data = tmp_path / "data"
    grid = [(w, lr) for w in (4, 8) for lr in (0.1, 0.01)]
    n = len(grid)
    models = {c: pa.nulls(n, MODELS_SCHEMA.field(c).type) for c in MODELS_SCHEMA.names}
    models.update(model_id=pa.array([f"m{i}" for i in range(n)]), zoo=pa.array(["g"] * n),
                  population=pa.array(["p"] * n), width=pa.array([w for w, _ in grid]),
                  lr=pa.array([lr for _, lr in grid]), epochs=pa.array([1] * n), n_params=pa.array([10] * n))
    metrics = {c: pa.nulls(n, METRICS_SCHEMA.field(c).type) for c in METRICS_SCHEMA.names}
    metrics.update(model_id=models["model_id"], zoo=models["zoo"], epoch=pa.array([1] * n),
                   test_acc=pa.array([0.1, 0.2, 0.3, 0.4]), diverged=pa.array([False] * n))
    files = [data / "zoos/g/models/p.parquet", data / "zoos/g/metrics/p.parquet"]
    write_table(pa.table(models, schema=MODELS_SCHEMA), files[0], "models")
    write_table(pa.table(metrics, schema=METRICS_SCHEMA), files[1], "metrics")
    build_catalog(data, files=files)
    assert main(["summary", "--db", str(data / "zoo.duckdb")]) == 0
    out = capsys.readouterr().out
    assert "width (rows) × lr (columns)" in out
    header, _, row4, row8 = out.split("(1 rows)")[1].strip().splitlines()[1:5]
    assert header.split() == ["width", "0.01", "0.1"]
    assert row4.split() == ["4", "0.2", "0.1"] and row8.split() == ["8", "0.4", "0.3"]
