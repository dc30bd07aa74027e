"""Atomic, durable file writes, and the clean-up of what killed writers leave behind.

:func:`atomic_path` hands a writer a temporary path beside its target, named
``.{name}.{pid}@{host}.{random}.tmp``. On success the temporary is fsynced, renamed over the
target (``os.replace``: a reader sees the old file or the new one, never half of one) and
the folder is fsynced, so the rename itself survives a crash or power cut. On any failure
the temporary is removed and a previous file stays as it was. A full disk, an exceeded
quota, a read-only file system or a folder we may not write becomes one
:class:`~zoo.errors.DataError` line naming the file and the fix, not a traceback.

A writer killed by ``kill -9``, the OOM killer or a lost node cannot clean up. Its
temporary names the writer's process id and host, so :func:`remove_stale_temporaries`
(``zoo clean-tmp DATA``, run by the workflow on start) deletes it once that process is
gone, and never while it runs: runs that share a data folder stay safe. A temporary whose
writer cannot be checked (another host, or the older ``.{name}.{random}.tmp`` naming) counts
as stale only after :data:`STALE_AFTER_S` without a change. What DuckDB keeps beside a
temporary database (its write-ahead log ``….tmp.wal`` and spill folder ``….tmp.tmp``, see
:func:`zoo.catalog.build_catalog`) shares the temporary's fate.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from zoo.errors import DataError

TEMP_SUFFIX = ".tmp"
#: What DuckDB appends to a database file's name for its write-ahead log.
WAL_SUFFIX = ".wal"
#: Seconds without a change after which a temporary whose writer cannot be checked is stale.
STALE_AFTER_S = 3600.0
#: Clock error tolerated when comparing a process's start with a temporary's change time.
_CLOCK_SLACK_S = 30.0

_UMASK = os.umask(0o022)
os.umask(_UMASK)
#: This host as it appears in temporary names (no dots, so names parse unambiguously).
HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname().split(".")[0])[:40] or "localhost"
_NAMED = re.compile(r"^\..+\.(?P<pid>\d+)@(?P<host>[A-Za-z0-9-]+)\.[a-z0-9_]+\.tmp(?:\.wal|\.tmp)?$")
#: ``tempfile.mkstemp`` names of earlier versions: ``.{name}.{8 random}.tmp``.
_LEGACY = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp(?:\.wal|\.tmp)?$")

#: errno → (what happened, how to fix it); ``{parent}`` is the target's folder.
_DISK_ERRORS: dict[int, tuple[str, str]] = {
    errno.ENOSPC: ("no space left on device",
                   "free disk space on the file system of {parent} (or move the data folder to a bigger disk) and re-run"),
    errno.EDQUOT: ("disk quota exceeded", "free space within your quota on {parent} (or ask for a bigger quota) and re-run"),
    errno.EROFS: ("read-only file system", "remount {parent} read-write or use a writable data folder, then re-run"),
    errno.EACCES: ("permission denied", "make {parent} writable for this user, then re-run"),
}


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; fsync it and rename it to ``path`` on success.

    Raises :class:`DataError` (one line) when the disk is full or not writable; the
    temporary is gone and a previous ``path`` is unchanged.
    """
    path = Path(path)
    tmp = _create_temporary(path)
    try:
        yield tmp
        # mkstemp makes 0600 files; give the result the permissions a plain open() would
        os.chmod(tmp, 0o666 & ~_UMASK)
        _fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException as exc:
        _discard(tmp)
        if isinstance(exc, OSError) and _concerns(exc, path, tmp):
            message = disk_error_message(path, exc)
            if message is not None:
                raise DataError(message) from None
        raise
    _fsync_dir(path)


def disk_error_message(path: str | Path, exc: OSError) -> str | None:
    """The one-line message for a failed write of ``path``, or None if ``exc`` is not a disk problem."""
    code = exc.errno
    if code is None:  # pyarrow sometimes puts the errno only in its message
        found = re.search(r"\[errno (\d+)\]", str(exc), re.IGNORECASE)
        code = int(found.group(1)) if found else None
    if code not in _DISK_ERRORS:
        return None
    path = Path(path)
    what, fix = _DISK_ERRORS[code]
    kept = " (the previous file is unchanged)" if path.exists() else ""
    return f"{path}: cannot write it, {what}{kept}; {fix.format(parent=path.parent)}"


def temp_name_owner(path: str | Path) -> tuple[int, str] | None:
    """``(pid, host)`` of the writer named in a temporary's file name, or None for other names."""
    m = _NAMED.match(Path(path).name)
    return (int(m.group("pid")), m.group("host")) if m else None


def is_temporary(path: str | Path) -> bool:
    """Whether ``path`` is named like a temporary of :func:`atomic_path` (or its DuckDB WAL)."""
    name = Path(path).name
    return bool(_NAMED.match(name) or _LEGACY.match(name))


def is_stale_temporary(path: str | Path, max_age_s: float = STALE_AFTER_S, now: float | None = None) -> bool:
    """Whether a temporary was left by a writer that is gone (False for any other file).

    On this host: its writer's pid runs no longer, or runs a process that started after
    the temporary last changed (the pid was reused). Otherwise: unchanged for ``max_age_s``.
    """
    path = Path(path)
    if not is_temporary(path):
        return False
    try:
        st = path.stat()
    except FileNotFoundError:
        return False
    owner = temp_name_owner(path)
    if owner is not None and owner[1] == HOST:
        return not _writer_alive(owner[0], st.st_ctime)
    # the last write; a writer that is alive keeps writing, or is done within seconds
    return (time.time() if now is None else now) - st.st_mtime > max_age_s


def remove_stale_temporaries(root: str | Path, max_age_s: float = STALE_AFTER_S) -> list[Path]:
    """Delete the temporaries under ``root`` that killed writers left; return them, sorted.

    Temporaries of live processes are kept (see :func:`is_stale_temporary`); a missing
    ``root`` has none.
    """
    removed: list[Path] = []
    for dirpath, dirs, names in os.walk(root):
        for name in [*dirs, *names]:  # folders: DuckDB's spill folder beside a temporary database
            f = Path(dirpath) / name
            if not is_stale_temporary(f, max_age_s):
                continue
            try:
                shutil.rmtree(f) if f.is_dir() and not f.is_symlink() else f.unlink()
            except FileNotFoundError:  # another cleaner was first
                continue
            except OSError as exc:
                raise DataError(f"{f}: cannot remove this stale temporary ({exc.strerror}); delete it by hand") from None
            removed.append(f)
        dirs[:] = [d for d in dirs if (Path(dirpath) / d).is_dir()]  # not into what was just removed
    return sorted(removed)


def _create_temporary(path: Path) -> Path:
    """An empty temporary file beside ``path`` whose name carries this process's pid and host."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # the name is cut so that the temporary (and a DuckDB .wal beside it) stays under 255 bytes
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:150]}.{os.getpid()}@{HOST}.", suffix=TEMP_SUFFIX,
                                   dir=path.parent)
    except OSError as exc:
        message = disk_error_message(path, exc)
        if message is not None:
            raise DataError(message) from None
        raise
    os.close(fd)
    return Path(tmp)


def _concerns(exc: OSError, path: Path, tmp: Path) -> bool:
    """Whether ``exc`` is about writing ``path`` (not, say, a source file the writer was reading)."""
    if exc.filename is None:
        return True
    ours = {os.path.abspath(p) for p in (tmp, str(tmp) + WAL_SUFFIX, path, path.parent)}
    return os.path.abspath(os.fsdecode(exc.filename)) in ours


def _discard(tmp: Path) -> None:
    """Remove a failed write's temporary and what DuckDB may have put beside it."""
    for f in (tmp, Path(str(tmp) + WAL_SUFFIX)):
        try:
            f.unlink(missing_ok=True)
        except OSError:  # e.g. the file system turned read-only: nothing more we can do
            pass
    shutil.rmtree(str(tmp) + TEMP_SUFFIX, ignore_errors=True)


def _fsync_file(path: Path) -> None:
    """Flush a file's data and metadata to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    """Flush the folder of ``path`` so that its new name survives a crash."""
    try:
        fd = os.open(path.parent, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:  # folders cannot be opened on every platform (Windows)
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):  # file systems without directory fsync
            raise DataError(f"{path}: written, but its folder could not be synced to disk ({exc.strerror}); "
                            "check the disk, then re-run") from None
    finally:
        os.close(fd)


def _writer_alive(pid: int, changed: float) -> bool:
    """Whether process ``pid`` of this host may still be the writer of a temporary changed at ``changed``."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OverflowError, ValueError):  # no such pid can exist
        return False
    except PermissionError:  # a process of another user: it exists
        pass
    except OSError:  # cannot tell: keep its files
        return True
    started = _process_start_time(pid)
    return started is None or started <= changed + _CLOCK_SLACK_S


def _process_start_time(pid: int) -> float | None:
    """When process ``pid`` started (seconds since the epoch; Linux ``/proc``), or None if unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        ticks = int(stat[stat.rindex(")") + 2:].split()[19])  # field 22, starttime, in clock ticks since boot
        boot = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None
