"""Content manifests: SHA-256 of every file a zoo is made of, written at creation, verified later.

``data/zoos/<zoo>/manifest.json`` lists exactly the files given to ``zoo manifest`` (the
workflow passes every output of the zoo: spec, population documents, checkpoints, every
table, figures, and the learner outputs under ``data/learners/<zoo>/``), each with its
size in bytes and SHA-256. Paths are relative to the data folder (the parent of
``zoos/``); the manifest records where that is (``root``, relative to the manifest).

:func:`verify` (``zoo verify DATA``) recomputes the hashes and reports, per zoo, files that
are missing, changed, or present under ``zoos/<zoo>/`` or ``learners/<zoo>/`` without being
listed — except the bookkeeping folders ``logs/`` and ``benchmarks/``, the manifest itself
and temporaries of writers that are still running (a temporary of a killed writer is a
finding: ``zoo clean-tmp DATA`` removes it). It also checks the catalog ``zoo.duckdb``
beside the zoos with :func:`zoo.catalog.check_catalog`.

Two older layouts verify too: the manifest of ``zoo export`` (at an export's root, paths
relative to it, naming its ``zoo``) and first-version zoo manifests (paths relative to the
zoo folder; they never list learner outputs, so those show up as not in the manifest).

:func:`table_digest` hashes a Parquet table's *content* without the columns that measure
time (``wall_s``), for comparing two runs of the same spec.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from zoo.atomic import is_stale_temporary, is_temporary
from zoo.errors import DataError
from zoo.hashing import file_sha256
from zoo.layout import BOOKKEEPING_FOLDERS, CATALOG_NAME
from zoo.store import write_text

MANIFEST = "manifest.json"
MANIFEST_FORMAT = "zoo-manifest-v2"
#: Columns that record wall-clock time: they differ between any two runs by nature.
TIMING_COLUMNS = ("wall_s",)
#: Finding kinds, in report order, with the label each line starts with.
LABELS = {
    "unreadable-manifest": "unreadable manifest",
    "no-manifest": "no manifest",
    "missing": "missing",
    "changed": "changed or corrupt",
    "unreadable": "unreadable",
    "unlisted": "not in manifest",
    "stale-temporary": "stale temporary",
    "catalog": "catalog",
}


def write_manifest(out: str | Path, files: Iterable[str | Path], data_dir: str | Path | None = None) -> dict[str, Any]:
    """Write the manifest ``out`` (``<data>/zoos/<zoo>/manifest.json``) listing exactly ``files``.

    ``data_dir`` defaults to the folder above ``zoos/``. Every file must exist and lie in
    the data folder; one-line :class:`DataError` otherwise. Returns the manifest document.
    """
    import zoo

    out = Path(out)
    data = Path(data_dir) if data_dir is not None else out.parent.parent.parent
    if out.name != MANIFEST or _abs(out.parent.parent) != _abs(data / "zoos"):
        raise DataError(f"{out}: a zoo's manifest must be {data}/zoos/<zoo>/{MANIFEST} (zoo verify looks there); "
                        "fix --out or --data")
    entries: dict[str, dict[str, Any]] = {}
    for f in map(Path, files):
        rel = os.path.relpath(_abs(f), _abs(data))
        if rel == os.pardir or rel.startswith(os.pardir + os.sep):
            raise DataError(f"{f}: outside the data folder {data}; a manifest lists only files under --data")
        if _abs(f) == _abs(out):
            raise DataError(f"{f}: a manifest cannot list itself; leave it out of the file list")
        if not f.is_file():
            raise DataError(f"{f}: missing, so it cannot be listed in {out}; build it first (snakemake) or leave it out")
        entries[Path(rel).as_posix()] = {"sha256": file_sha256(f), "bytes": f.stat().st_size}
    doc = {"format": MANIFEST_FORMAT, "zoo": out.parent.name,
           "root": Path(os.path.relpath(_abs(data), _abs(out.parent))).as_posix(),
           "zoo_version": zoo.__version__, "created": datetime.now(UTC).isoformat(timespec="seconds"),
           "files": dict(sorted(entries.items()))}
    write_text(out, json.dumps(doc, indent=1, sort_keys=True) + "\n")
    return doc


@dataclass(frozen=True)
class Finding:
    """One problem :func:`verify` found: its ``kind`` (a key of :data:`LABELS`), file, zoo and fix."""

    kind: str
    path: str
    zoo: str | None
    fix: str

    def line(self) -> str:
        """The finding as one report line: ``<label>: <path> (zoo <zoo>: <fix>)``."""
        if self.kind == "catalog":  # check_catalog's problems name the file and the fix already
            return f"{LABELS[self.kind]}: {self.fix}"
        where = f"zoo {self.zoo}: " if self.zoo else ""
        return f"{LABELS[self.kind]}: {self.path} ({where}{self.fix})"


@dataclass
class VerifyReport:
    """Outcome of :func:`verify`: the manifests read, files checked, findings and notes."""

    checked: int = 0
    manifests: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    #: Things not checked, and why (not findings).
    notes: list[str] = field(default_factory=list)

    def paths(self, kind: str) -> list[str]:
        """The paths of the findings of one kind."""
        return [f.path for f in self.findings if f.kind == kind]

    @property
    def missing(self) -> list[str]:
        return self.paths("missing")

    @property
    def corrupt(self) -> list[str]:
        return self.paths("changed")

    @property
    def unlisted(self) -> list[str]:
        return self.paths("unlisted")

    @property
    def ok(self) -> bool:
        return bool(self.manifests) and not self.findings

    def summary(self) -> str:
        """The report's last line: OK or FAILED, with counts."""
        other = len(self.findings) - len(self.missing) - len(self.corrupt) - len(self.unlisted)
        return (f"{'OK' if self.ok else 'FAILED'}: {self.checked} files checked in {len(self.manifests)} manifest(s), "
                f"{len(self.missing)} missing, {len(self.corrupt)} changed, {len(self.unlisted)} not in manifest, "
                f"{other} other problem(s)")


@dataclass(frozen=True)
class _Scope:
    """What one manifest covers: where its paths start (``base``), its zoo and that zoo's folders."""

    manifest: str
    base: str
    zoo: str
    data: str | None
    #: How to rebuild the manifest: the workflow's, or an export's.
    rebuild: str = "rebuild the manifest (snakemake --forcerun manifest)"

    @property
    def folders(self) -> list[str]:
        if self.data is None:  # a first-version manifest outside a data folder: just its own folder
            return [self.base]
        return [os.path.join(self.data, "zoos", self.zoo), os.path.join(self.data, "learners", self.zoo)]


def verify(path: str | Path) -> VerifyReport:
    """Check every ``manifest.json`` under ``path`` (a data folder, a zoo folder or an export).

    Per zoo: listed files missing or changed, unlisted files in its folders, zoo folders
    without a manifest; then the catalog of each data folder met (when it exists).
    """
    path = Path(path)
    if not path.is_dir():
        raise DataError(f"{path}: no such folder; pass a data folder, a zoo folder or an exported zoo")
    report = VerifyReport()
    scopes = []
    for manifest in sorted(path.rglob(MANIFEST)):
        scope, files = _read_manifest(manifest, report)
        if scope is not None:
            report.manifests.append(scope.manifest)
            scopes.append(scope)
            _check_listed(scope, files, report)
            _check_unlisted(scope, files, report)
    _check_uncovered(path, scopes, report)
    data_dirs = {_abs(s.data) for s in scopes if s.data is not None} | {_abs(path)}
    for data in sorted(data_dirs):
        _check_catalog(Path(data) / CATALOG_NAME, report)
    return report


def _read_manifest(manifest: Path, report: VerifyReport) -> tuple[_Scope | None, dict[str, Any]]:
    """The scope and file entries of a manifest, or a finding when it cannot be read."""
    try:
        doc = json.loads(manifest.read_text())
        files = doc["files"]
        if not isinstance(files, dict) or not all(isinstance(e, dict) and {"sha256", "bytes"} <= set(e)
                                                   for e in files.values()):
            raise ValueError("entries need sha256 and bytes")
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        reason = type(exc).__name__ if isinstance(exc, KeyError) else str(exc).splitlines()[0][:80]
        report.findings.append(Finding("unreadable-manifest", str(manifest), None,
                                       f"{reason}; delete it and re-run the workflow to rewrite it"))
        return None, {}
    folder = manifest.parent
    if "root" in doc:  # this version: paths relative to the data folder
        data = os.path.normpath(folder / doc["root"])
        return _Scope(str(manifest), data, str(doc.get("zoo") or folder.name), data), files
    if doc.get("zoo"):  # an export: its root is a data folder
        return _Scope(str(manifest), str(folder), str(doc["zoo"]), str(folder), "export the zoo again"), files
    data = str(folder.parent.parent) if folder.parent.name == "zoos" else None
    return _Scope(str(manifest), str(folder), folder.name, data), files


def _check_listed(scope: _Scope, files: dict[str, Any], report: VerifyReport) -> None:
    """Missing and changed files among those the manifest lists."""
    for rel, entry in files.items():
        f = os.path.normpath(os.path.join(scope.base, rel))
        report.checked += 1
        if not os.path.isfile(f):
            report.findings.append(Finding("missing", f, scope.zoo,
                                           f"listed in {scope.manifest}; re-run the workflow (snakemake) to rebuild it"))
            continue
        try:
            same = os.path.getsize(f) == entry["bytes"] and file_sha256(f) == entry["sha256"]
        except OSError as exc:
            report.findings.append(Finding("unreadable", f, scope.zoo, f"{exc.strerror}; fix its permissions"))
            continue
        if not same:
            report.findings.append(Finding("changed", f, scope.zoo, f"SHA-256 differs from {scope.manifest}; "
                                           "delete it and re-run the workflow (snakemake) to rebuild it"))


def _check_unlisted(scope: _Scope, files: dict[str, Any], report: VerifyReport) -> None:
    """Files in the zoo's folders that the manifest does not list (bookkeeping and live temporaries aside)."""
    listed = {_abs(os.path.join(scope.base, rel)) for rel in files} | {_abs(scope.manifest)}
    clean = f"left by a killed writer; remove it with zoo clean-tmp {scope.data or scope.base}"
    unlisted = f"{scope.manifest} does not list it; delete it, or {scope.rebuild}"
    for top in scope.folders:
        for dirpath, dirs, names in os.walk(top):
            if dirpath == top:
                dirs[:] = [d for d in dirs if d not in BOOKKEEPING_FOLDERS]
            # DuckDB's spill folder beside a temporary database is a temporary too: judged, not entered
            temporaries = sorted(n for n in [*dirs, *names] if is_temporary(n))
            dirs[:] = sorted(d for d in dirs if d not in temporaries)
            for name in temporaries:
                f = os.path.normpath(os.path.join(dirpath, name))
                if is_stale_temporary(f):
                    report.findings.append(Finding("stale-temporary", f, scope.zoo, clean))
            for name in sorted(n for n in names if n not in temporaries):
                f = os.path.normpath(os.path.join(dirpath, name))
                if _abs(f) not in listed:
                    report.findings.append(Finding("unlisted", f, scope.zoo, unlisted))


def _check_uncovered(path: Path, scopes: list[_Scope], report: VerifyReport) -> None:
    """Zoo folders of the data folder ``path`` that no manifest covers."""
    covered = {(_abs(s.data), s.zoo) for s in scopes if s.data is not None}
    for kind in ("zoos", "learners"):
        for folder in sorted((path / kind).glob("*")):
            if folder.is_dir() and (_abs(path), folder.name) not in covered:
                report.findings.append(Finding("no-manifest", str(folder), folder.name,
                                               f"no {MANIFEST} covers it; run the workflow to write one, or delete the folder"))


def _check_catalog(db: Path, report: VerifyReport) -> None:
    """The catalog's own problems (:func:`zoo.catalog.check_catalog`), when there is a catalog."""
    if not db.is_file():
        return
    try:
        from zoo.catalog import check_catalog
    except ImportError:
        report.notes.append(f"{db}: not checked (this version of zoo has no zoo.catalog.check_catalog)")
        return
    from zoo.errors import ZooError

    try:
        problems = check_catalog(db)
    except ZooError as exc:
        problems = [str(exc)]
    report.findings += [Finding("catalog", str(db), None, p) for p in problems]


def _abs(p: str | Path) -> str:
    """An absolute, normalised path (symlinks kept: a data folder may link to another disk)."""
    return os.path.abspath(p)


def table_digest(path: str | Path, exclude: Iterable[str] = TIMING_COLUMNS) -> str:
    """SHA-256 of a Parquet table's rows (sorted, canonical), ignoring timing columns."""
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    keep = [c for c in table.column_names if c not in set(exclude)]
    table = table.select(keep)
    h = hashlib.sha256(json.dumps(keep).encode())
    rows = sorted(json.dumps(r, sort_keys=True, default=str) for r in table.to_pylist())
    for r in rows:
        h.update(r.encode())
    return h.hexdigest()
