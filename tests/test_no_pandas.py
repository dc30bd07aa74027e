"""zoo.no_pandas: the per-population jobs run without importing pandas, and pyarrow's writes
and reads give the same files and values with pandas refused as with it."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pyarrow.parquet as pq

#: Written by a fresh interpreter, with or without the refusal: every kind of column the zoo's
#: tables hold (nulls, NaN, strings, nested lists, int64 with nulls, bools) and zstd like write_table.
_WRITE = textwrap.dedent("""
    import json, sys
    if sys.argv[2] == "forbid":
        from zoo.no_pandas import forbid_pandas
        assert forbid_pandas()
    import numpy as np, pyarrow as pa
    from zoo.store import read_table, write_table
    rows = [{"model_id": "a", "x": 1.5, "nan": float("nan"), "n": None, "flag": True, "shape": [3, 4],
             "perm": [[0, 1], [1, 0]]},
            {"model_id": "b", "x": None, "nan": 2.0, "n": 7, "flag": False, "shape": [], "perm": None}]
    schema = pa.schema([("model_id", pa.string()), ("x", pa.float64()), ("nan", pa.float64()), ("n", pa.int64()),
                        ("flag", pa.bool_()), ("shape", pa.list_(pa.int64())), ("perm", pa.list_(pa.list_(pa.int32())))])
    t = pa.Table.from_pylist(rows, schema=schema)
    t = t.append_column("w", pa.array(np.linspace(0, 1, 2, dtype=np.float32)))
    write_table(t, sys.argv[1], "demo", {"note": "x"})
    back = read_table(sys.argv[1], "demo").to_pylist()
    print(json.dumps({"pandas": "pandas" in sys.modules, "rows": repr(back)}))
""")


def _write(path, mode):
    out = subprocess.run([sys.executable, "-c", _WRITE, str(path), mode], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_tables_written_with_pandas_refused_are_the_same(tmp_path):
    allowed, refused = _write(tmp_path / "a.parquet", "allow"), _write(tmp_path / "b.parquet", "forbid")
    assert refused["pandas"] is False  # the point: pyarrow did not import it
    assert refused["rows"] == allowed["rows"] and "nan" in refused["rows"]
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()  # byte for byte


def test_code_that_asks_for_pandas_gets_an_error_naming_the_refusal():
    code = textwrap.dedent("""
        from zoo.no_pandas import forbid_pandas
        assert forbid_pandas() and forbid_pandas()  # idempotent
        import sys
        from zoo.no_pandas import PandasForbidden
        assert sum(isinstance(f, PandasForbidden) for f in sys.meta_path) == 1
        import pyarrow as pa
        try:
            pa.table({"a": [1]}).to_pandas()
        except ModuleNotFoundError as exc:
            print(exc)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "zoo.no_pandas" in out and "'pandas'" in out


def test_refusal_is_not_installed_when_pandas_is_already_loaded():
    import pandas  # noqa: F401  (this test process has it)

    from zoo.no_pandas import PandasForbidden, forbid_pandas

    assert forbid_pandas() is False
    assert not any(isinstance(f, PandasForbidden) for f in sys.meta_path)


def test_weights_job_runs_without_pandas(tmp_path):
    """A real job command (``zoo weights`` on a trained tiny zoo) imports no pandas."""
    from tiny_zoo import make_tiny_zoo

    from zoo.config import load_zoos
    from zoo.layout import ZooLayout

    cfg = {"zoos": {"t": {"dataset": "digits", "model": {"arch": "mlp", "depth": 1}, "grid": {"width": [4]},
                          "seeds": 2, "epochs": 1, "checkpoints": [1], "batch_size": 128}}}
    make_tiny_zoo(tmp_path, cfg)
    (pop,) = load_zoos(cfg)["t"].populations
    lay = ZooLayout(str(tmp_path), "t")
    out = tmp_path / "w.parquet"
    code = ("import sys; from zoo.cli import main; rc = main(['weights', sys.argv[1], '--out', sys.argv[2]]); "
            "print(rc, 'pandas' in sys.modules)")
    res = subprocess.run([sys.executable, "-c", code, lay.checkpoint(pop), str(out)], capture_output=True, text=True)
    assert res.stdout.split() == ["0", "False"], res.stderr
    assert pq.read_table(out).num_rows > 0


def test_the_per_population_job_commands_are_the_ones_run_without_pandas():
    from zoo.cli import COMMANDS, build_parser

    build_parser()  # registers every command module
    marked = {name for name, cmd in COMMANDS.items() if cmd.without_pandas}
    assert marked == {"train", "weights", "landscape", "lmc-merging"}
