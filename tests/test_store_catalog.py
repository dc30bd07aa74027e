"""Atomic Parquet/checkpoint storage, the DuckDB catalog and `zoo query`."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest
import torch

from zoo.catalog import build_catalog, run_query
from zoo.cli import main
from zoo.errors import DataError, QueryError
from zoo.store import atomic_path, load_checkpoints, read_table, save_checkpoints, write_table
from zoo.tables import weights_from_table, weights_table


def test_atomic_path_leaves_old_file_when_writer_fails(tmp_path):
    target = tmp_path / "t.parquet"
    write_table(pa.table({"x": [1]}), target, "models")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("killed")
    assert read_table(target, "models")["x"].to_pylist() == [1]
    assert [p.name for p in tmp_path.iterdir()] == ["t.parquet"]


def test_read_table_rejects_wrong_version_and_corruption(tmp_path):
    import pyarrow.parquet as pq

    foreign = tmp_path / "foreign.parquet"
    pq.write_table(pa.table({"x": [1]}), foreign)
    with pytest.raises(DataError, match="schema version"):
        read_table(foreign)
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 not really")
    with pytest.raises(DataError, match="not a readable Parquet"):
        read_table(broken)


def test_checkpoint_roundtrip_and_truncation(tmp_path):
    ckpts = {0: {"layers.0.weight": torch.randn(3, 4, 5)}, 2: {"layers.0.weight": torch.randn(3, 4, 5)}}
    path = tmp_path / "p.safetensors"
    save_checkpoints(path, ckpts, ["a", "b", "c"], {"zoo": "z"})
    back, ids, meta = load_checkpoints(path)
    assert ids == ["a", "b", "c"] and meta["zoo"] == "z"
    assert torch.equal(back[2]["layers.0.weight"], ckpts[2]["layers.0.weight"])
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(DataError, match="corrupt or truncated"):
        load_checkpoints(path)


def test_weights_table_roundtrips_every_tensor():
    ckpts = {1: {"layers.0.weight": torch.randn(2, 3, 4), "layers.0.bias": torch.randn(2, 3)}}
    table = weights_table("z", "p", ckpts, ["m0", "m1"])
    assert table.num_rows == 4
    got = weights_from_table(table, "m1", 1)
    assert torch.equal(torch.from_numpy(got["layers.0.weight"]), ckpts[1]["layers.0.weight"][1])
    assert set(table["kind"].to_pylist()) == {"weight", "bias"}


@pytest.fixture
def catalog(tmp_path):
    data = tmp_path / "data"
    files = [data / "zoos/z/models/p.parquet", data / "zoos/z/metrics/p.parquet"]
    write_table(pa.table({"model_id": ["a", "b"], "zoo": ["z", "z"], "width": [4, 8]}), files[0], "models")
    write_table(pa.table({"model_id": ["a", "b"], "epoch": [1, 1], "test_acc": [0.5, 0.75]}), files[1], "metrics")
    assert build_catalog(data, files=files) == {"metrics": 2, "models": 2}
    return data / "zoo.duckdb"


def test_query_joins_tables_loaded_from_parquet(catalog):
    out = run_query("SELECT width, avg(test_acc) AS acc FROM metrics JOIN models USING (model_id) GROUP BY ALL ORDER BY width", catalog)
    assert out.to_pylist() == [{"width": 4, "acc": 0.5}, {"width": 8, "acc": 0.75}]


def test_query_is_read_only_and_sql_errors_are_one_line(catalog, capsys):
    with pytest.raises(QueryError, match="read-only"):
        run_query("CREATE TABLE t (x INT)", catalog)
    assert main(["query", "SELEC 1", "--db", str(catalog)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "SQL error" in err


@pytest.mark.parametrize("fmt", ["csv", "json", "parquet"])
def test_query_formats_and_out_file(catalog, tmp_path, fmt):
    out = tmp_path / f"r.{fmt}"
    assert main(["query", "SELECT * FROM models ORDER BY model_id", "--db", str(catalog), "--format", fmt, "--out", str(out)]) == 0
    if fmt == "csv":
        assert out.read_text().splitlines()[1].startswith('"a"')
    elif fmt == "json":
        assert [r["width"] for r in json.loads(out.read_text())] == [4, 8]
    else:
        import pyarrow.parquet as pq

        assert pq.read_table(out)["width"].to_pylist() == [4, 8]


def test_query_without_catalog_is_a_clear_error(tmp_path, capsys):
    assert main(["query", "SELECT 1", "--db", str(tmp_path / "none.duckdb")]) == 1
    assert "run the workflow first" in capsys.readouterr().err


def test_weights_job_reads_checkpoints_without_torch_and_writes_the_same_table(tmp_path):
    import subprocess
    import sys

    ckpts = {0: {"layers.0.weight": torch.randn(3, 4, 5), "layers.0.bias": torch.randn(3, 4)},
             2: {"layers.0.weight": torch.randn(3, 4, 5), "layers.0.bias": torch.randn(3, 4)}}
    path = tmp_path / "p.safetensors"
    save_checkpoints(path, ckpts, ["a", "b", "c"], {"zoo": "z", "population": "p", "population_hash": "h"})
    out = tmp_path / "w.parquet"
    code = ("import sys; from zoo.cli import main; "
            f"main(['weights', {str(path)!r}, '--out', {str(out)!r}]); "
            "sys.exit(3 if 'torch' in sys.modules else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr  # 3: the job imported torch (~1.5 CPU-s of start-up)
    via_torch = weights_table("z", "p", load_checkpoints(path)[0], ["a", "b", "c"])
    assert read_table(out, "weights").equals(via_torch)
