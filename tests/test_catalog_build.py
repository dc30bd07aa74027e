"""Building the catalog: exactly the files given, self-contained, atomic and checked."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import mount_small_tmpfs

from zoo import catalog
from zoo.catalog import FILES_TABLE, build_catalog, check_catalog, run_query
from zoo.cli import main
from zoo.errors import DataError
from zoo.hashing import file_sha256
from zoo.store import write_table


def models_file(data: Path, pop: str, ids: list[str], **extra) -> Path:
    path = data / "zoos" / "z" / "models" / f"{pop}.parquet"
    cols = {"model_id": ids, "zoo": ["z"] * len(ids), "width": [4 * (i + 1) for i in range(len(ids))], **extra}
    write_table(pa.table(cols), path, "models")
    return path


def metrics_file(data: Path, pop: str, ids: list[str]) -> Path:
    path = data / "zoos" / "z" / "metrics" / f"{pop}.parquet"
    write_table(pa.table({"model_id": ids, "epoch": [1] * len(ids), "test_acc": [0.5] * len(ids)}), path, "metrics")
    return path


@pytest.fixture
def data(tmp_path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def files(data) -> list[Path]:
    return [models_file(data, "p", ["a", "b"]), models_file(data, "q", ["c"], extra=[1.5]),
            metrics_file(data, "p", ["a", "b"])]


def leftovers(folder: Path) -> list[str]:
    """Names in ``folder`` other than the catalog and its inputs' folders: temporaries, logs."""
    return sorted(p.name for p in folder.iterdir() if p.name not in ("zoo.duckdb", "zoos", "filler"))


def test_catalog_holds_exactly_the_files_given(data, files):
    old_spec = models_file(data, "old", ["zz"])  # left on disk by an older spec: not passed, not seen
    made = build_catalog(data, files=files)
    assert made == {"metrics": 2, "models": 3}
    db = data / "zoo.duckdb"
    assert run_query("SELECT model_id FROM models ORDER BY 1", db)["model_id"].to_pylist() == ["a", "b", "c"]
    assert run_query("SELECT extra FROM models ORDER BY model_id", db)["extra"].to_pylist() == [None, None, 1.5]
    listed = run_query(f"SELECT * FROM {FILES_TABLE} ORDER BY path", db).to_pylist()
    assert listed == sorted(({"table_name": "models" if "models" in f.parts else "metrics",
                              "path": f.relative_to(data).as_posix(), "sha256": file_sha256(f),
                              "rows": pq.read_metadata(f).num_rows} for f in files), key=lambda r: r["path"])
    assert old_spec.relative_to(data).as_posix() not in {r["path"] for r in listed}
    assert check_catalog(db) == [] and check_catalog(db, files) == []
    assert leftovers(data) == []


def test_plain_duckdb_opens_the_catalog_from_any_directory_without_its_files(data, files, tmp_path, monkeypatch):
    build_catalog(data, files=files)
    for f in files:
        f.unlink()  # the tables are in the database itself
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    con = duckdb.connect(str(data / "zoo.duckdb"), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM models JOIN metrics USING (model_id)").fetchone()[0] == 2
    finally:
        con.close()


def test_cli_builds_from_explicit_files_and_paths_are_relative_to_the_db(data, files, capsys):
    assert main(["catalog", "--db", str(data / "zoo.duckdb"), *map(str, files)]) == 0
    assert "models (3 rows)" in capsys.readouterr().out
    paths = run_query(f"SELECT path FROM {FILES_TABLE} ORDER BY 1", data / "zoo.duckdb")["path"].to_pylist()
    assert paths == ["zoos/z/metrics/p.parquet", "zoos/z/models/p.parquet", "zoos/z/models/q.parquet"]


def test_cli_data_folder_loads_the_layouts_current_files(data, files, monkeypatch, capsys):
    import zoo.layout

    asked = []
    monkeypatch.setattr(zoo.layout, "catalog_files", lambda d: asked.append(Path(d)) or files[:1])
    assert main(["catalog", str(data)]) == 0
    assert asked == [data]
    assert run_query("SELECT count(*) AS n FROM models", data / "zoo.duckdb")["n"][0].as_py() == 2


def _corrupt(kind: str, path: Path) -> None:
    if kind == "zero-byte":
        path.write_bytes(b"")
    elif kind == "corrupt":
        path.write_bytes(b"PAR1 not really a parquet file PAR1")
    elif kind == "truncated":
        path.write_bytes(path.read_bytes()[:-30])
    elif kind == "foreign":  # Parquet, but not written by zoo.store.write_table: no schema version
        pq.write_table(pa.table({"model_id": ["x"]}), path)
    elif kind == "missing":
        path.unlink()


@pytest.mark.parametrize("kind", ["zero-byte", "corrupt", "truncated", "foreign", "missing"])
def test_unfit_input_is_one_line_naming_the_file_and_keeps_the_old_catalog(data, files, kind, capsys):
    build_catalog(data, files=files)
    db = data / "zoo.duckdb"
    before = db.read_bytes()
    bad = files[1]
    _corrupt(kind, bad)
    code = main(["catalog", "--db", str(db), *map(str, files)])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and str(bad) in err and "Traceback" not in err
    assert db.read_bytes() == before and leftovers(data) == []


def test_a_table_name_that_is_not_an_identifier_is_refused(data, files):
    evil = data / "evil.parquet"
    write_table(pa.table({"x": [1]}), evil, 'models"; DROP TABLE x; --')
    with pytest.raises(DataError, match="not a table name"):
        build_catalog(data, files=[*files, evil])


def test_data_left_in_the_wal_is_a_failure_not_a_success(data, files, monkeypatch):
    """DuckDB on a full disk may close without error and leave the data in the .wal."""
    build_catalog(data, files=files[:1])
    db = data / "zoo.duckdb"
    before = db.read_bytes()
    real_load = catalog._load

    def load_then_leave_wal(tmp, tables, base):
        real_load(tmp, tables, base)
        Path(f"{tmp}.wal").write_bytes(b"\0" * 4096)

    monkeypatch.setattr(catalog, "_load", load_then_leave_wal)
    with pytest.raises(DataError, match="write-ahead log") as exc:
        build_catalog(data, files=files)
    assert "\n" not in str(exc.value)
    assert db.read_bytes() == before and leftovers(data) == []


def test_a_catalog_that_fails_its_reopen_check_is_not_installed(data, files, monkeypatch):
    build_catalog(data, files=files[:1])
    db = data / "zoo.duckdb"
    before = db.read_bytes()
    real_load = catalog._load

    def load_short(tmp, tables, base):  # as if a table had lost rows on the way to the disk
        real_load(tmp, tables, base)
        con = duckdb.connect(str(tmp))
        con.execute("DELETE FROM models WHERE model_id = 'c'")
        con.execute("CHECKPOINT")
        con.close()

    monkeypatch.setattr(catalog, "_load", load_short)
    with pytest.raises(DataError, match="table models has 2 rows, its files 3"):
        build_catalog(data, files=files)
    assert db.read_bytes() == before and leftovers(data) == []


def test_a_stale_wal_of_the_old_catalog_is_removed(data, files):
    build_catalog(data, files=files[:1])
    Path(f"{data / 'zoo.duckdb'}.wal").write_bytes(b"old")
    build_catalog(data, files=files)
    assert not Path(f"{data / 'zoo.duckdb'}.wal").exists()
    assert run_query("SELECT count(*) AS n FROM models", data / "zoo.duckdb")["n"][0].as_py() == 3


def test_check_catalog_reports_changed_missing_and_unexpected_files(data, files):
    db = data / "zoo.duckdb"
    build_catalog(data, files=files)
    models_file(data, "p", ["a", "b", "x"])  # rewritten after the build
    files[2].unlink()
    problems = check_catalog(db, [files[0], files[1], data / "zoos/z/models/new.parquet"])
    text = "\n".join(problems)
    assert f"{files[0]}: changed since" in text
    assert f"{files[2]}: listed in" in text and "missing" in text
    assert "new.parquet: expected but not in" in text
    assert f"{files[2]}: in {db} but not expected" in text
    assert all("\n" not in p for p in problems)


def test_check_catalog_reports_tables_with_wrong_counts_or_missing(data, files):
    db = data / "zoo.duckdb"
    build_catalog(data, files=files)
    con = duckdb.connect(str(db))
    con.execute("DELETE FROM models WHERE model_id = 'a'")
    con.execute("DROP TABLE metrics")
    con.close()
    problems = check_catalog(db)
    assert any("table models has 2 rows, its files 3" in p for p in problems)
    assert any("table metrics missing" in p for p in problems)
    assert check_catalog(data / "none.duckdb")[0].endswith("(make demo, or snakemake --cores 2)")


# ------------------------------------------------------------------ a nearly full disk

@pytest.fixture
def small_fs(tmp_path):
    """A 3 MiB tmpfs (root only)."""
    yield from mount_small_tmpfs(tmp_path / "small", "3m")


def fill(folder: Path, leave: int) -> None:
    """Fill the file system of ``folder`` until ``leave`` bytes are free."""
    st = os.statvfs(folder)
    free = st.f_bavail * st.f_frsize
    with open(folder / "filler", "wb") as fh:
        fh.write(b"\0" * max(0, free - leave))


@pytest.mark.parametrize("free_kib", [0, 128, 768])
def test_full_disk_fails_the_build_and_keeps_the_previous_catalog(small_fs, tmp_path, capsys, free_kib):
    src = tmp_path / "src"
    small = src / "zoos/z/models/p.parquet"
    write_table(pa.table({"model_id": ["a"], "zoo": ["z"], "width": [4]}), small, "models")
    assert main(["catalog", "--db", str(small_fs / "zoo.duckdb"), str(small)]) == 0
    before = (small_fs / "zoo.duckdb").read_bytes()
    big = src / "zoos/z/models/q.parquet"
    rng = np.random.default_rng(0)
    n = 50_000  # a ~1 MiB database: more than the space left, less than the whole disk
    write_table(pa.table({"model_id": [f"m{i}" for i in range(n)], "zoo": ["z"] * n, "width": rng.random(n)}),
                big, "models")
    fill(small_fs, leave=free_kib * 1024)
    capsys.readouterr()
    code = main(["catalog", "--db", str(small_fs / "zoo.duckdb"), str(small), str(big)])
    err = capsys.readouterr().err
    assert code != 0
    assert err.count("\n") == 1 and "Traceback" not in err and str(small_fs / "zoo.duckdb") in err
    assert (small_fs / "zoo.duckdb").read_bytes() == before
    assert leftovers(small_fs) == []
    (small_fs / "filler").unlink()  # with room again, the same command succeeds
    assert main(["catalog", "--db", str(small_fs / "zoo.duckdb"), str(small), str(big)]) == 0
    assert run_query("SELECT count(*) AS n FROM models", small_fs / "zoo.duckdb")["n"][0].as_py() == n + 1


# ------------------------------------------------------------------ readers of a broken catalog

@pytest.mark.parametrize("kind", ["zero-byte", "garbage", "views of the old catalog", "no models table"])
def test_info_and_show_fail_in_one_line_on_a_broken_catalog(data, files, kind, capsys, monkeypatch):
    db = data / "zoo.duckdb"
    if kind == "zero-byte":
        db.parent.mkdir(parents=True, exist_ok=True)
        db.write_bytes(b"")
    elif kind == "garbage":
        db.parent.mkdir(parents=True, exist_ok=True)
        db.write_bytes(b"PAR1" * 5000)
    elif kind == "views of the old catalog":
        monkeypatch.chdir(data)  # the old catalog's globs were relative to the working directory
        con = duckdb.connect(str(db))
        con.execute("CREATE VIEW models AS SELECT * FROM read_parquet('zoos/*/models/*.parquet')")
        con.execute("CREATE VIEW metrics AS SELECT * FROM read_parquet('zoos/*/metrics/*.parquet')")
        con.close()
        monkeypatch.undo()
    else:
        build_catalog(data, files=files[2:])
    for argv in (["info", "--data", str(data)], ["show", "abcd", "--data", str(data)]):
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err and str(data) in err
