"""``zoo manifest``, ``zoo verify`` and ``zoo clean-tmp``: content hashes written at creation,
checked later, and the temporaries of killed writers removed."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from zoo.cli import command
from zoo.errors import DataError


def _manifest_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default=None, help="the data folder the paths are relative to (default: the folder above zoos/)")
    p.add_argument("--out", default=None, help="DATA/zoos/<zoo>/manifest.json to write")
    p.add_argument("files", nargs="+", metavar="FILE",
                   help="every output of the zoo, under DATA (without --out: the zoo folder first, then the files)")


@command("manifest", "write DATA/zoos/<zoo>/manifest.json listing exactly the given files with SHA-256 (used by the workflow)",
         _manifest_args)
def _manifest(args: argparse.Namespace) -> None:
    from zoo.manifest import MANIFEST, write_manifest

    files = list(args.files)
    out = args.out
    if out is None:  # the first form: zoo manifest ZOO_DIR FILE...
        zoo_dir = Path(files.pop(0))
        if not zoo_dir.is_dir() or not files:
            raise DataError(f"{zoo_dir}: not a zoo folder; pass --out DATA/zoos/<zoo>/{MANIFEST} and the files")
        out = zoo_dir / MANIFEST
    doc = write_manifest(out, files, args.data)
    print(f"manifest: {len(doc['files'])} files in {out}", file=sys.stderr)


def _verify_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", nargs="?", default="data", help="data folder, zoo folder or exported zoo (default: data)")


@command("verify", "check every zoo against its manifest (missing, changed, unlisted files) and the catalog; "
         "exit 1 on any finding", _verify_args)
def _verify(args: argparse.Namespace) -> int:
    from zoo.manifest import verify

    report = verify(args.path)
    for note in report.notes:
        print(f"note: {note}", file=sys.stderr)
    for finding in report.findings:
        print(finding.line())
    if not report.manifests:
        print(f"zoo verify: error: no readable manifest.json under {args.path}; run the workflow (it writes one per zoo)",
              file=sys.stderr)
        return 1
    print(report.summary())
    return 0 if report.ok else 1


def _clean_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", nargs="?", default="data", help="folder to clean (default: data); missing is fine")
    p.add_argument("--max-age", type=float, default=1.0, metavar="HOURS",
                   help="age after which a temporary whose writer cannot be checked (other host, old name) is stale (default: 1)")


@command("clean-tmp", "delete temporaries that killed writers left under DATA (never those of running processes)",
         _clean_args)
def _clean_tmp(args: argparse.Namespace) -> None:
    from zoo.atomic import remove_stale_temporaries

    removed = remove_stale_temporaries(args.data, max_age_s=args.max_age * 3600)
    for f in removed:
        print(f"removed: {f}")
    print(f"clean-tmp: {len(removed)} stale temporaries removed under {args.data}", file=sys.stderr)
