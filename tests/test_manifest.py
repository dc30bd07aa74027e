"""`zoo verify`: manifests catch missing and changed files; table digests ignore timings."""

from __future__ import annotations

import pyarrow as pa

from zoo.cli import main
from zoo.manifest import table_digest, verify, write_manifest
from zoo.store import write_table


def make_zoo(tmp_path):
    zoo = tmp_path / "data/zoos/z"
    files = []
    for i in range(3):
        f = zoo / "metrics" / f"p{i}.parquet"
        write_table(pa.table({"model_id": [f"m{i}"], "test_acc": [0.5 + i / 10]}), f, "metrics")
        files.append(f)
    write_manifest(zoo, files)
    return zoo, files


def test_intact_zoo_verifies(tmp_path, capsys):
    make_zoo(tmp_path)
    assert verify(tmp_path / "data").ok
    assert main(["verify", str(tmp_path / "data")]) == 0
    assert "OK: 3 files" in capsys.readouterr().out


def test_flipped_byte_and_missing_file_are_reported(tmp_path, capsys):
    _, files = make_zoo(tmp_path)
    raw = bytearray(files[0].read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    files[0].write_bytes(bytes(raw))
    files[1].unlink()
    report = verify(tmp_path / "data")
    assert report.corrupt == [str(files[0])] and report.missing == [str(files[1])]
    assert main(["verify", str(tmp_path / "data")]) == 1
    out = capsys.readouterr().out
    assert "missing" in out and "changed or corrupt" in out


def test_folder_without_manifest_fails_clearly(tmp_path, capsys):
    assert main(["verify", str(tmp_path)]) == 1
    assert "no manifest.json" in capsys.readouterr().err


def test_table_digest_ignores_wall_clock_but_not_values(tmp_path):
    a, b, c = (tmp_path / n for n in ("a.parquet", "b.parquet", "c.parquet"))
    write_table(pa.table({"model_id": ["x", "y"], "test_acc": [0.1, 0.2], "wall_s": [1.0, 2.0]}), a, "metrics")
    write_table(pa.table({"model_id": ["y", "x"], "test_acc": [0.2, 0.1], "wall_s": [9.0, 8.0]}), b, "metrics")
    write_table(pa.table({"model_id": ["x", "y"], "test_acc": [0.1, 0.3], "wall_s": [1.0, 2.0]}), c, "metrics")
    assert table_digest(a) == table_digest(b)
    assert table_digest(a) != table_digest(c)
