"""``zoo manifest`` and ``zoo verify``: content hashes written at creation, checked later."""

from __future__ import annotations

import argparse
import sys

from zoo.cli import command


def _manifest_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("zoo_dir", help="data/zoos/<zoo>")
    p.add_argument("files", nargs="+", help="the zoo's output files to list")


@command("manifest", "write data/zoos/<zoo>/manifest.json with SHA-256 of the given files (used by the workflow)", _manifest_args)
def _manifest(args: argparse.Namespace) -> None:
    from zoo.manifest import write_manifest

    doc = write_manifest(args.zoo_dir, args.files)
    print(f"manifest: {len(doc['files'])} files in {args.zoo_dir}", file=sys.stderr)


def _verify_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", nargs="?", default="data", help="data folder, zoo folder or exported zoo (default: data)")


@command("verify", "recompute content hashes against each manifest; exit 1 on missing or changed files", _verify_args)
def _verify(args: argparse.Namespace) -> int:
    from zoo.manifest import verify

    report = verify(args.path)
    for f in report.missing:
        print(f"missing: {f}")
    for f in report.corrupt:
        print(f"changed or corrupt: {f}")
    if not report.manifests:
        print(f"zoo verify: error: no manifest.json under {args.path}; run the workflow (it writes one per zoo)", file=sys.stderr)
        return 1
    status = "OK" if report.ok else "FAILED"
    print(f"{status}: {report.checked} files checked in {len(report.manifests)} manifest(s), "
          f"{len(report.missing)} missing, {len(report.corrupt)} changed")
    return 0 if report.ok else 1
