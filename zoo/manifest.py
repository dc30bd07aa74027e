"""Content manifests: SHA-256 of every file a zoo is made of, written at creation, verified later.

``data/zoos/<zoo>/manifest.json`` lists each output file (relative to the zoo folder) with
its size and SHA-256. ``zoo verify DIR`` recomputes them and reports missing or changed
files. :func:`table_digest` hashes a Parquet table's *content* without the columns that
measure time (``wall_s``), for comparing two runs of the same spec.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from zoo.errors import DataError
from zoo.hashing import file_sha256
from zoo.store import write_text

MANIFEST = "manifest.json"
#: Columns that record wall-clock time: they differ between any two runs by nature.
TIMING_COLUMNS = ("wall_s",)


def write_manifest(zoo_dir: str | Path, files: Iterable[str | Path]) -> dict[str, Any]:
    """Write ``zoo_dir/manifest.json`` for ``files`` (paths inside ``zoo_dir``)."""
    import zoo

    zoo_dir = Path(zoo_dir)
    entries = {}
    for f in sorted(Path(p) for p in files):
        rel = f.resolve().relative_to(zoo_dir.resolve()).as_posix()
        entries[rel] = {"sha256": file_sha256(f), "bytes": f.stat().st_size}
    doc = {"zoo_version": zoo.__version__, "created": datetime.now(UTC).isoformat(timespec="seconds"),
           "files": entries}
    write_text(zoo_dir / MANIFEST, json.dumps(doc, indent=1, sort_keys=True) + "\n")
    return doc


@dataclass
class VerifyReport:
    """Outcome of :func:`verify`: per manifest, what is missing or changed."""

    checked: int = 0
    missing: list[str] = field(default_factory=list)
    corrupt: list[str] = field(default_factory=list)
    manifests: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.manifests) and not self.missing and not self.corrupt


def verify(path: str | Path) -> VerifyReport:
    """Check every ``manifest.json`` under ``path`` (a data folder, a zoo folder or an export)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such folder; pass a data folder, a zoo folder or an exported zoo")
    report = VerifyReport()
    for manifest in sorted(path.rglob(MANIFEST)):
        try:
            doc = json.loads(manifest.read_text())
            files = doc["files"]
        except (json.JSONDecodeError, KeyError):
            report.corrupt.append(str(manifest))
            continue
        report.manifests.append(str(manifest))
        for rel, entry in files.items():
            f = manifest.parent / rel
            report.checked += 1
            if not f.is_file():
                report.missing.append(str(f))
            elif f.stat().st_size != entry["bytes"] or file_sha256(f) != entry["sha256"]:
                report.corrupt.append(str(f))
    return report


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
