"""`zoo manifest` / `zoo verify`: a zoo's manifest lists exactly the files the workflow made,
and verify flags any file that is missing, changed, or there without being listed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

from zoo.cli import main
from zoo.errors import DataError
from zoo.manifest import table_digest, verify, write_manifest
from zoo.store import write_table, write_text

# a valid 1×1 PNG: the figure fixture is a real image, but no plotting is needed
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")


def write_bytes(path: Path, blob: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(blob)


def make_data(tmp_path: Path) -> tuple[Path, list[Path]]:
    """A data folder with one zoo's outputs of every kind, its logs and benchmarks, and its manifest."""
    data = tmp_path / "data"
    zoo, learners = data / "zoos" / "z", data / "learners" / "z"
    files = [zoo / "spec.json", zoo / "populations" / "p1.json", zoo / "checkpoints" / "p1.safetensors",
             zoo / "figures" / "grid.png", zoo / "figures" / "provenance.html"]
    write_text(files[0], '{"name": "z"}\n')
    write_text(files[1], '{"population": "p1"}\n')
    write_bytes(files[2], b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    write_bytes(files[3], PNG)
    write_text(files[4], "<html></html>\n")
    for table in ("models", "metrics", "weights", "spectral"):
        f = zoo / table / "p1.parquet"
        write_table(pa.table({"model_id": ["m1", "m2"], "x": [0.1, 0.2]}), f, table)
        files.append(f)
    files.append(zoo / "phases.parquet")
    write_table(pa.table({"model_id": ["m1"], "phase": ["I"]}), files[-1], "phases")
    for kind in ("results", "predictions"):
        f = learners / "test_acc" / "gbm" / "none" / f"{kind}.parquet"
        write_table(pa.table({"zoo": ["z"], "kendall_tau": [0.5]}), f, kind)
        files.append(f)
    # bookkeeping the manifest never lists
    write_text(zoo / "logs" / "train" / "p1.log", "trained\n")
    write_text(zoo / "benchmarks" / "train" / "p1.tsv", "s\n1.0\n")
    write_text(learners / "logs" / "test_acc-gbm-none.log", "ok\n")
    write_text(learners / "benchmarks" / "test_acc-gbm-none.tsv", "s\n1.0\n")
    assert main(["manifest", "--data", str(data), "--out", str(zoo / "manifest.json"), *map(str, files)]) == 0
    return data, files


def run_verify(capsys, path: Path) -> tuple[int, list[str]]:
    code = main(["verify", str(path)])
    return code, capsys.readouterr().out.splitlines()


def flip_byte(path: Path) -> None:
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    path.write_bytes(bytes(raw))


def test_manifest_lists_exactly_the_given_files_relative_to_the_data_folder(tmp_path):
    data, files = make_data(tmp_path)
    doc = json.loads((data / "zoos/z/manifest.json").read_text())
    assert set(doc["files"]) == {f.relative_to(data).as_posix() for f in files}
    assert "learners/z/test_acc/gbm/none/results.parquet" in doc["files"]
    assert doc["root"] == "../.." and doc["zoo"] == "z"


def test_untouched_set_verifies_with_logs_benchmarks_and_live_temporaries_around(tmp_path, capsys):
    data, files = make_data(tmp_path)
    # a write in flight by this (live) process is not a finding
    (data / "zoos/z/models" / f".p2.parquet.{os.getpid()}@x.abcdefgh.tmp").write_bytes(b"half")
    from zoo.atomic import HOST
    (data / "zoos/z/models" / f".p3.parquet.{os.getpid()}@{HOST}.abcdefgh.tmp").write_bytes(b"half")
    code, lines = run_verify(capsys, data)
    assert code == 0, lines
    assert lines == [f"OK: {len(files)} files checked in 1 manifest(s), 0 missing, 0 changed, "
                     "0 not in manifest, 0 other problem(s)"]
    assert verify(data / "zoos" / "z").ok  # a zoo folder verifies too


def test_flipped_byte_in_a_figure_is_reported(tmp_path, capsys):
    data, _ = make_data(tmp_path)
    flip_byte(data / "zoos/z/figures/grid.png")
    code, lines = run_verify(capsys, data)
    assert code == 1
    assert lines[0].startswith(f"changed or corrupt: {data}/zoos/z/figures/grid.png (zoo z: SHA-256 differs")
    assert len(lines) == 2 and lines[-1].startswith("FAILED: ")


def test_rewritten_learner_results_are_reported(tmp_path, capsys):
    data, _ = make_data(tmp_path)
    results = data / "learners/z/test_acc/gbm/none/results.parquet"
    write_table(pa.table({"zoo": ["z"], "kendall_tau": [0.9]}), results, "results")  # valid file, other content
    code, lines = run_verify(capsys, data)
    assert code == 1 and lines[0].startswith(f"changed or corrupt: {results} ")
    assert "1 changed" in lines[-1]


def test_added_parquet_file_in_models_is_reported(tmp_path, capsys):
    data, _ = make_data(tmp_path)
    extra = data / "zoos/z/models/p-old.parquet"
    write_table(pa.table({"model_id": ["m9"]}), extra, "models")
    also = data / "learners/z/test_acc/ridge/none/results.parquet"
    write_table(pa.table({"zoo": ["z"]}), also, "results")
    code, lines = run_verify(capsys, data)
    assert code == 1
    fix = f"{data}/zoos/z/manifest.json does not list it; delete it, or rebuild the manifest (snakemake --forcerun manifest)"
    assert lines[:2] == [f"not in manifest: {extra} (zoo z: {fix})", f"not in manifest: {also} (zoo z: {fix})"]
    assert "2 not in manifest" in lines[-1]


def test_missing_file_is_reported(tmp_path, capsys):
    data, _ = make_data(tmp_path)
    gone = data / "zoos/z/checkpoints/p1.safetensors"
    gone.unlink()
    code, lines = run_verify(capsys, data)
    assert code == 1 and lines[0].startswith(f"missing: {gone} (zoo z: listed in ")
    assert report_kinds(data) == ["missing"]


def report_kinds(data: Path) -> list[str]:
    return [f.kind for f in verify(data).findings]


def test_every_finding_is_one_line_then_a_summary(tmp_path, capsys):
    data, _ = make_data(tmp_path)
    flip_byte(data / "zoos/z/spec.json")
    (data / "zoos/z/phases.parquet").unlink()
    write_text(data / "zoos/z/notes.txt", "mine\n")
    write_text(data / "zoos/other/spec.json", "{}\n")  # a zoo folder no manifest covers
    code, lines = run_verify(capsys, data)
    assert code == 1 and len(lines) == 5
    assert sorted(line.split(":")[0] for line in lines[:-1]) == [
        "changed or corrupt", "missing", "no manifest", "not in manifest"]
    assert lines[-1].startswith("FAILED: ")


def test_stale_temporary_of_a_killed_writer_is_a_finding(tmp_path, capsys):
    from zoo.atomic import HOST

    data, _ = make_data(tmp_path)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = data / "zoos/z/weights" / f".p1.parquet.{int(dead.stdout)}@{HOST}.abcdefgh.tmp"
    stale.write_bytes(b"half")
    code, lines = run_verify(capsys, data)
    assert code == 1 and lines[0].startswith(f"stale temporary: {stale} ") and f"zoo clean-tmp {data}" in lines[0]


def test_catalog_problems_are_reported(tmp_path, capsys, monkeypatch):
    import zoo.catalog

    data, _ = make_data(tmp_path)
    (data / "zoo.duckdb").write_bytes(b"db")
    seen = []

    def check_catalog(db_path):
        seen.append(Path(db_path))
        return [f"{db_path}: table models has 3 rows, its files 2; rebuild it with `zoo catalog`"]

    monkeypatch.setattr(zoo.catalog, "check_catalog", check_catalog, raising=False)
    code, lines = run_verify(capsys, data)
    assert seen == [data / "zoo.duckdb"]
    assert code == 1 and lines[0] == f"catalog: {data}/zoo.duckdb: table models has 3 rows, its files 2; rebuild it with `zoo catalog`"


def test_catalog_check_is_skipped_with_a_note_when_unavailable(tmp_path, capsys, monkeypatch):
    import zoo.catalog

    data, _ = make_data(tmp_path)
    (data / "zoo.duckdb").write_bytes(b"db")
    monkeypatch.delattr(zoo.catalog, "check_catalog", raising=False)
    assert main(["verify", str(data)]) == 0
    assert "note: " in capsys.readouterr().err


def test_first_version_manifest_still_verifies_its_listed_files(tmp_path, capsys):
    zoo_dir = tmp_path / "data/zoos/z"
    f = zoo_dir / "metrics/p.parquet"
    write_table(pa.table({"model_id": ["m"]}), f, "metrics")
    entry = {"sha256": __import__("zoo.hashing").hashing.file_sha256(f), "bytes": f.stat().st_size}
    write_text(zoo_dir / "manifest.json", json.dumps({"files": {"metrics/p.parquet": entry}}))
    assert main(["verify", str(tmp_path / "data")]) == 0
    flip_byte(f)
    assert main(["verify", str(tmp_path / "data")]) == 1
    assert f"changed or corrupt: {f} " in capsys.readouterr().out


def test_old_positional_form_of_zoo_manifest_still_works(tmp_path):
    data, files = make_data(tmp_path)
    zoo_files = [f for f in files if "zoos" in f.parts]
    assert main(["manifest", str(data / "zoos/z"), *map(str, zoo_files)]) == 0
    assert set(json.loads((data / "zoos/z/manifest.json").read_text())["files"]) == {
        f.relative_to(data).as_posix() for f in zoo_files}


@pytest.mark.parametrize("case", ["outside", "missing", "wrong-out"])
def test_manifest_refuses_bad_lists_in_one_line(tmp_path, capsys, case):
    data, files = make_data(tmp_path)
    out = data / "zoos/z/manifest.json"
    outside = tmp_path / "elsewhere.json"
    outside.write_text("{}")
    args = {"outside": [str(out), str(outside)], "missing": [str(out), str(data / "zoos/z/nope.png")],
            "wrong-out": [str(data / "z-manifest.json"), str(files[0])]}[case]
    before = out.read_bytes()
    capsys.readouterr()
    assert main(["manifest", "--data", str(data), "--out", *args]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("zoo manifest: error: ") and "Traceback" not in err
    assert out.read_bytes() == before
    with pytest.raises(DataError):
        write_manifest(args[0], args[1:], data)


def test_folder_without_manifest_fails_clearly(tmp_path, capsys):
    assert main(["verify", str(tmp_path)]) == 1
    assert "no readable manifest.json" in capsys.readouterr().err


def test_table_digest_ignores_wall_clock_but_not_values(tmp_path):
    a, b, c = (tmp_path / n for n in ("a.parquet", "b.parquet", "c.parquet"))
    write_table(pa.table({"model_id": ["x", "y"], "test_acc": [0.1, 0.2], "wall_s": [1.0, 2.0]}), a, "metrics")
    write_table(pa.table({"model_id": ["y", "x"], "test_acc": [0.2, 0.1], "wall_s": [9.0, 8.0]}), b, "metrics")
    write_table(pa.table({"model_id": ["x", "y"], "test_acc": [0.1, 0.3], "wall_s": [1.0, 2.0]}), c, "metrics")
    assert table_digest(a) == table_digest(b)
    assert table_digest(a) != table_digest(c)
