"""``zoo deploy DEST``: a Snakemake module deployment of this checkout (the logic is :mod:`zoo.deploy`)."""

from __future__ import annotations

import argparse

from zoo.cli import command


def _deploy_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("dest", help="folder to deploy into (config/, profiles/, LICENSE, workflow/Snakefile)")
    p.add_argument("--source", default=None, help="the zoo checkout to deploy (default: the one zoo runs from)")
    p.add_argument("--force", action="store_true", help="overwrite an earlier deployment in DEST")


@command("deploy", "deploy the workflow from a local checkout as a Snakemake module (snakedeploy for local paths)",
         _deploy_args)
def _deploy(args: argparse.Namespace) -> None:
    from zoo.deploy import deploy_local

    target = deploy_local(args.source, args.dest, force=args.force)
    dest = target.parent.parent
    print(f"deployed {target}: edit {dest / 'config'}, then run `snakemake --cores N` in {dest}")
