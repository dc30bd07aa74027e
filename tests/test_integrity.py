"""Atomic writes: fsynced before the rename, temporaries that name their writer, stale ones
cleaned without touching live ones, and a full or read-only disk as one error line with the
previous file intact."""

from __future__ import annotations

import errno
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pytest
from conftest import mount_small_tmpfs

from zoo import atomic
from zoo.atomic import HOST, atomic_path, is_stale_temporary, remove_stale_temporaries
from zoo.cli import main
from zoo.errors import DataError
from zoo.store import read_table, write_table, write_text


def dead_pid() -> int:
    """The pid of a process that has exited."""
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


def temp_of(folder: Path, target: str, pid: int, host: str = HOST, suffix: str = "") -> Path:
    f = folder / f".{target}.{pid}@{host}.abcdefgh.tmp{suffix}"
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_bytes(b"x" * 1000)
    return f


def age(path: Path, seconds: float) -> None:
    t = time.time() - seconds
    os.utime(path, (t, t))


# ------------------------------------------------------------------------------ atomic_path

def test_temporary_name_carries_pid_and_host(tmp_path):
    with atomic_path(tmp_path / "a.parquet") as tmp:
        assert re.fullmatch(rf"\.a\.parquet\.{os.getpid()}@{re.escape(HOST)}\.[a-z0-9_]+\.tmp", tmp.name)
        tmp.write_text("x")
        assert not is_stale_temporary(tmp)  # its writer (this process) is alive
    assert os.listdir(tmp_path) == ["a.parquet"]


def test_file_is_fsynced_before_the_rename_and_its_folder_after(tmp_path, monkeypatch):
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append("fsync-dir" if os.path.isdir(f"/proc/self/fd/{fd}") else "fsync-file")
        real_fsync(fd)

    def replace(a, b):
        events.append("replace")
        real_replace(a, b)

    monkeypatch.setattr(atomic.os, "fsync", fsync)
    monkeypatch.setattr(atomic.os, "replace", replace)
    write_text(tmp_path / "spec.json", "{}\n")
    assert events == ["fsync-file", "replace", "fsync-dir"]
    events.clear()
    write_table(pa.table({"a": [1]}), tmp_path / "t.parquet", "models")
    assert events == ["fsync-file", "replace", "fsync-dir"]


def test_failed_write_leaves_no_temporary_and_the_previous_file(tmp_path):
    target = tmp_path / "t.parquet"
    write_table(pa.table({"a": [1]}), target, "models")
    before = target.read_bytes()
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        Path(f"{tmp}.wal").write_bytes(b"log")  # as DuckDB leaves beside a database
        raise RuntimeError("killed")
    assert os.listdir(tmp_path) == ["t.parquet"] and target.read_bytes() == before


def test_disk_errors_become_one_line_other_errors_pass_through(tmp_path):
    target = tmp_path / "fig.png"
    target.write_bytes(b"old")
    for code, words in [(errno.ENOSPC, "free disk space"), (errno.EDQUOT, "quota"), (errno.EROFS, "read-only"),
                        (errno.EACCES, "writable")]:
        with pytest.raises(DataError) as err, atomic_path(target):
            raise OSError(code, os.strerror(code))
        msg = str(err.value)
        assert msg.startswith(f"{target}: cannot write it") and words in msg and "\n" not in msg
        assert "previous file is unchanged" in msg
    with pytest.raises(DataError, match="no space left"), atomic_path(target):  # pyarrow: errno in the text only
        raise OSError("Error writing bytes to file. Detail: [errno 28] No space left on device")
    with pytest.raises(PermissionError), atomic_path(target):  # reading someone else's file: not ours to reword
        raise PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "source.bin"))
    assert os.listdir(tmp_path) == ["fig.png"] and target.read_bytes() == b"old"


# ------------------------------------------------------------------------------ clean-tmp

def test_clean_tmp_removes_dead_writers_temporaries_and_keeps_live_ones(tmp_path, capsys):
    data = tmp_path / "data"
    models = data / "zoos/z/models"
    dead = temp_of(models, "p1.parquet", dead_pid())
    dead_wal = temp_of(data, "zoo.duckdb", dead_pid(), suffix=".wal")
    dead_spill = data / f".zoo.duckdb.{dead_pid()}@{HOST}.abcdefgh.tmp.tmp"
    (dead_spill / "x").mkdir(parents=True)
    mine = temp_of(models, "p2.parquet", os.getpid())
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        other = temp_of(models, "p3.parquet", live.pid)
        other_host_young = temp_of(models, "p4.parquet", dead_pid(), host="elsewhere")
        other_host_old = temp_of(models, "p5.parquet", dead_pid(), host="elsewhere")
        age(other_host_old, 7200)
        legacy_old, legacy_young = models / ".p6.parquet.k2j4h6g8.tmp", models / ".p7.parquet.a1b2c3d4.tmp"
        legacy_old.write_bytes(b"x")
        legacy_young.write_bytes(b"x")
        age(legacy_old, 7200)
        hidden = models / ".keep.tmp"  # not our naming: never touched
        hidden.write_bytes(b"x")
        age(hidden, 7200)
        assert main(["clean-tmp", str(data)]) == 0
        out = capsys.readouterr().out
        gone = {dead, dead_wal, dead_spill, other_host_old, legacy_old}
        assert [f for f in gone if f.exists()] == []
        assert all(not f.exists() for f in gone)
        assert all(f.exists() for f in (mine, other, other_host_young, legacy_young, hidden))
        assert sorted(out.splitlines()) == sorted(f"removed: {f}" for f in gone)
    finally:
        live.kill()
        live.wait()


def test_a_reused_pid_does_not_keep_a_stale_temporary(tmp_path, monkeypatch):
    # pid namespaces restart in every container: the pid may now be another, younger process
    f = temp_of(tmp_path, "p.parquet", 1)
    assert not is_stale_temporary(f)  # pid 1 started long before the temporary
    monkeypatch.setattr(atomic, "_process_start_time", lambda pid: time.time() + 3600)
    assert is_stale_temporary(f)
    assert remove_stale_temporaries(tmp_path) == [f]


def test_clean_tmp_of_a_missing_folder_does_nothing(tmp_path, capsys):
    assert main(["clean-tmp", str(tmp_path / "nothing")]) == 0
    assert capsys.readouterr().out == ""


# ------------------------------------------------------------------------------ full disk

@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB tmpfs (root only)."""
    yield from mount_small_tmpfs(tmp_path / "disk", "1m")


def fill(folder: Path) -> None:
    """Write to ``folder`` until its file system is full."""
    fd = os.open(folder / "filler", os.O_CREAT | os.O_WRONLY)
    try:
        while True:
            os.write(fd, b"\0" * 65536)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    try:  # the last blocks
        while True:
            os.write(fd, b"\0")
    except OSError:
        pass
    finally:
        os.close(fd)


def entries(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


def write_figure(path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from zoo.plots import _save

    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot(range(100), [i * i for i in range(100)])
    _save(fig, path)


WRITERS = {
    "figure": ("figures/grid.png", write_figure),
    "parquet": ("models/p1.parquet",
                lambda p: write_table(pa.table({"model_id": [f"m{i}" for i in range(3000)]}), p, "models")),
    "text": ("spec.json", lambda p: write_text(p, "x" * 20000)),
}


@pytest.mark.parametrize("kind", sorted(WRITERS))
def test_full_disk_write_is_one_line_and_keeps_the_previous_file(small_disk, kind):
    rel, writer = WRITERS[kind]
    target = small_disk / rel
    writer(target)
    before = target.read_bytes()
    fill(small_disk)
    listing = entries(small_disk)
    with pytest.raises(DataError) as err:
        writer(target)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"{target}: cannot write it, no space left on device")
    assert "free disk space" in msg and "previous file is unchanged" in msg
    assert target.read_bytes() == before
    assert entries(small_disk) == listing  # no temporary left
    if kind == "parquet":
        assert read_table(target, "models").num_rows == 3000


def test_full_disk_through_the_cli_is_one_line_without_traceback(small_disk, capsys):
    data = small_disk / "data"
    spec = data / "zoos/z/spec.json"
    write_text(spec, "{}\n")
    out = data / "zoos/z/manifest.json"
    assert main(["manifest", "--data", str(data), "--out", str(out), str(spec)]) == 0
    before = out.read_bytes()
    fill(small_disk)
    capsys.readouterr()
    assert main(["manifest", "--data", str(data), "--out", str(out), str(spec)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"zoo manifest: error: {out}: cannot write it, no space left on device")
    assert out.read_bytes() == before and not [p for p in out.parent.iterdir() if p.name.startswith(".")]


def test_read_only_disk_is_one_line(small_disk):
    target = small_disk / "t.parquet"
    write_table(pa.table({"a": [1]}), target, "models")
    before = target.read_bytes()
    if subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], capture_output=True).returncode != 0:
        pytest.skip("cannot remount the tmpfs read-only")
    with pytest.raises(DataError, match=r"read-only file system .*remount"):
        write_table(pa.table({"a": [2]}), target, "models")
    assert target.read_bytes() == before
