"""``zoo export``: share a zoo as a folder or tarball that is itself a data folder, or as a
Hugging Face dataset.

An export holds the zoo's ``spec.json``, the files of every catalog table of its current
spec (models, metrics, weights, spectral, landscape, phases, learner results and
predictions), its checkpoints (unless ``--no-checkpoints``) and ``manifest.json`` (bytes,
SHA-256, table and rows per file; the same ``files`` layout as the workflow's per-zoo
manifests, so ``zoo verify DIR`` checks an unpacked export). Paths inside it mirror the data
folder (``zoos/<zoo>/…``, ``learners/<zoo>/…``), so ``zoo catalog DIR`` makes it queryable.

``--format hf`` adds what Hugging Face users look for (tested with ``datasets``):

- ``README.md``, a dataset card: YAML header with one ``configs:`` entry per table (its
  exact files), license, task categories, size category, tags; body: a datasheet
  (Gebru et al. 2021: motivation, composition, collection process with the exact spec and
  command, preprocessing, uses, distribution, maintenance), how to regenerate it bit for
  bit, how to load it, and how to cite it;
- ``config/<zoo>.yaml``: the zoo spec as a config file ``snakemake --configfile`` takes.

Then ``datasets.load_dataset(DIR, "models")`` (or ``"weights"``, ``"spectral"``, …) loads a
table. ``weights.values`` is the row-major flattened tensor: reshape it by ``shape``.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from zoo.errors import DataError

EXPORT_FORMAT = "zoo-export-v1"
MANIFEST = "manifest.json"
FORMATS = ("zoo", "hf")
CARD = "README.md"

def export_files(zoo: str, data_dir: str | Path = "data", checkpoints: bool = True) -> list[tuple[Path, str]]:
    """``(source file, path inside the export)`` for a zoo: spec, its files of every catalog table
    (:func:`zoo.layout.catalog_files`: models, metrics, weights, spectral, …, learner results), checkpoints.

    Exactly the current spec's files (not resume state, scratch or an older spec's files).
    """
    from zoo.layout import ZooLayout, catalog_files, current_populations

    data_dir = Path(data_dir)
    layout = ZooLayout(str(data_dir), zoo)
    zdir = Path(layout.dir)
    if not Path(layout.spec).is_file():
        known = sorted(p.parent.name for p in (data_dir / "zoos").glob("*/spec.json"))
        raise DataError(f"{zdir}: no trained zoo {zoo!r}; known zoos: {', '.join(known) or 'none (run the workflow first)'}")
    mine = (zdir, Path(layout.learners_dir))
    files = [Path(layout.spec)] + [f for f in catalog_files(data_dir) if any(f.is_relative_to(d) for d in mine)]
    if checkpoints:
        files += [c for c in (Path(layout.checkpoint(p)) for p in current_populations(zdir)) if c.is_file()]
    files = sorted(set(files), key=lambda f: f.relative_to(data_dir).as_posix())
    return [(f, f.relative_to(data_dir).as_posix()) for f in files]


def _describe(path: Path) -> dict[str, Any]:
    if path.suffix != ".parquet":
        return {}
    import pyarrow.parquet as pq

    try:
        md = pq.read_metadata(path)
    except Exception as exc:  # zero-byte or corrupt: pyarrow raises several types
        raise DataError(f"{path}: not a readable Parquet file ({type(exc).__name__}); "
                        "delete it and re-run the workflow") from None
    meta = md.metadata or {}
    return {"table": meta.get(b"zoo.table", b"").decode() or None, "rows": md.num_rows}


def build_manifest(zoo: str, entries: list[tuple[Path, str]], generated: Mapping[str, bytes] | None = None) -> dict[str, Any]:
    """The export's manifest: per file (path inside the export) its size in bytes, SHA-256, and
    for Parquet its table name and row count; ``generated`` files (the dataset card) too.
    No timestamp: the same zoo gives the same manifest."""
    import hashlib

    import zoo as zoo_pkg
    from zoo.hashing import file_sha256

    files = {arc: {"bytes": src.stat().st_size, "sha256": file_sha256(src), **_describe(src)} for src, arc in entries}
    for arc, blob in (generated or {}).items():
        files[arc] = {"bytes": len(blob), "sha256": hashlib.sha256(blob).hexdigest()}
    files = dict(sorted(files.items()))
    spec = next((src for src, arc in entries if arc.endswith("/spec.json")), None)
    spec_hash = json.loads(spec.read_text()).get("spec_hash") if spec is not None else None
    return {"format": EXPORT_FORMAT, "zoo": zoo, "spec_hash": spec_hash, "zoo_version": zoo_pkg.__version__,
            "how_to_use": "an unpacked export is a data folder: `zoo verify DIR` checks it, `zoo catalog DIR` "
                          "indexes it, then `zoo info --data DIR`, zoo.open(DIR), zoo.load_model(id, epoch, data_dir=DIR)",
            "files": files}


def export_zoo(zoo: str, out: str | Path, data_dir: str | Path = "data", checkpoints: bool = True,
               force: bool = False, format: str = "zoo") -> dict[str, Any]:
    """Write a zoo's spec, Parquet tables and checkpoints plus ``manifest.json`` to a folder or ``.tar.gz``.

    ``format="hf"`` adds the dataset card ``README.md`` and ``config/<zoo>.yaml`` (module
    docstring). Atomic: the folder is assembled under a temporary name and renamed into
    place; the tarball is written through :func:`zoo.atomic.atomic_path`. The tarball is
    reproducible (sorted members, zero timestamps and owners), so the same zoo exports to
    byte-identical files. Returns the manifest.
    """
    if format not in FORMATS:
        raise DataError(f"--format {format!r}: choose one of {', '.join(FORMATS)}")
    out = Path(out)
    if out.exists() and not force:
        raise DataError(f"{out}: already exists; remove it, pass --force, or choose another --out")
    entries = export_files(zoo, data_dir, checkpoints)
    generated: dict[str, bytes] = {}
    if format == "hf":
        from zoo.dataset_card import config_yaml, dataset_card

        generated[f"config/{zoo}.yaml"] = config_yaml(zoo, entries).encode()
        manifest_wo_card = build_manifest(zoo, entries, generated)
        generated[CARD] = dataset_card(zoo, entries, manifest_wo_card, checkpoints).encode()
    manifest = build_manifest(zoo, entries, generated)
    generated[MANIFEST] = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
    if out.name.endswith((".tar.gz", ".tgz")):
        _write_tarball(out, zoo, entries, generated)
    else:
        _write_folder(out, entries, generated, force)
    return manifest


def _write_tarball(out: Path, zoo: str, entries: list[tuple[Path, str]], generated: Mapping[str, bytes]) -> None:
    import gzip
    import io
    import tarfile

    from zoo.atomic import atomic_path

    def info(name: str, size: int) -> tarfile.TarInfo:
        ti = tarfile.TarInfo(f"{zoo}/{name}")
        ti.size, ti.mtime, ti.mode, ti.uid, ti.gid, ti.uname, ti.gname = size, 0, 0o644, 0, 0, "", ""
        return ti

    with atomic_path(out) as tmp, tmp.open("wb") as raw, \
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(info(MANIFEST, len(generated[MANIFEST])), io.BytesIO(generated[MANIFEST]))
        for arc, blob in sorted(generated.items()):
            if arc != MANIFEST:
                tar.addfile(info(arc, len(blob)), io.BytesIO(blob))
        for src, arc in entries:
            with src.open("rb") as fh:
                tar.addfile(info(arc, src.stat().st_size), fh)


def _write_folder(out: Path, entries: list[tuple[Path, str]], generated: Mapping[str, bytes], force: bool) -> None:
    """Assemble the export in a temporary sibling folder, then rename it into place (a folder
    cannot be written through one temporary file; the rename is the atomic step)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        for src, arc in entries:
            (tmp / arc).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, tmp / arc)
        for arc, blob in generated.items():
            (tmp / arc).parent.mkdir(parents=True, exist_ok=True)
            (tmp / arc).write_bytes(blob)
        if out.exists() and force:
            old = out.parent / f".{out.name}.old-{os.getpid()}"
            os.rename(out, old)
            os.rename(tmp, out)
            shutil.rmtree(old) if old.is_dir() else old.unlink()
        else:
            os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


__all__ = ["CARD", "EXPORT_FORMAT", "FORMATS", "MANIFEST", "build_manifest", "export_files", "export_zoo"]
