"""The ``zoo`` command line. Every error of ours becomes one line on stderr and exit code 1.

Commands register themselves with :func:`command`; modules listed in ``EXTENSIONS``
add further commands (each stage owns its own CLI module).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from zoo.errors import ZooError


@dataclass
class Command:
    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int | None]


COMMANDS: dict[str, Command] = {}

#: Modules that register more commands when imported (keep their top-level imports light).
EXTENSIONS: list[str] = ["zoo.cli_query", "zoo.cli_learn", "zoo.cli_spectral", "zoo.cli_verify", "zoo.cli_info", "zoo.cli_landscape"]


def command(name: str, help: str, add_arguments: Callable[[argparse.ArgumentParser], None]):
    """Decorator registering ``run(args)`` as ``zoo NAME``."""

    def deco(run: Callable[[argparse.Namespace], int | None]):
        COMMANDS[name] = Command(name, help, add_arguments, run)
        return run

    return deco


def _validate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="zoo spec YAML (e.g. config/config.yaml)")


@command("validate", "check a zoo spec and print how many models and populations it expands to", _validate_args)
def _validate(args: argparse.Namespace) -> None:
    from zoo.config import load_config, load_zoos

    zoos = load_zoos(load_config(args.config))
    for name, z in zoos.items():
        print(f"{name}: {len(z.models)} models in {len(z.populations)} populations, checkpoints {list(z.checkpoints)}")


def _write_spec_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", required=True, help="the zoo document (name, spec, settings) as JSON")
    p.add_argument("--out", required=True, help="data/zoos/<zoo>/spec.json")


@command("write-spec", "validate a zoo document and write it as spec.json (used by the workflow)", _write_spec_args)
def _write_spec(args: argparse.Namespace) -> None:
    import json

    from zoo.config import zoo_from_document
    from zoo.jobs import write_spec

    doc = json.loads(args.json)
    write_spec(zoo_from_document(doc), doc.get("settings", {}), args.out)


def _train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", help="data/zoos/<zoo>/spec.json")
    p.add_argument("--population", required=True, help="population id (see the spec's expansion)")
    p.add_argument("--outdir", required=True, help="the zoo's data folder, data/zoos/<zoo>")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


@command("train", "train one population of a zoo (used by the workflow)", _train_args)
def _train(args: argparse.Namespace) -> None:
    from zoo.jobs import train

    train(args.spec, args.population, args.outdir, progress=not args.no_progress)


def _weights_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="data/zoos/<zoo>/checkpoints/<population>.safetensors")
    p.add_argument("--out", required=True, help="weights Parquet file to write")


@command("weights", "extract the weights table from a population checkpoint", _weights_args)
def _weights(args: argparse.Namespace) -> None:
    from zoo.jobs import weights

    weights(args.checkpoint, args.out)


def _catalog_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", nargs="?", default="data", help="data folder (default: data)")
    p.add_argument("--db", default=None, help="database file (default: DATA/zoo.duckdb)")


@command("catalog", "(re)build the DuckDB catalog of views over every Parquet table", _catalog_args)
def _catalog(args: argparse.Namespace) -> None:
    from zoo.catalog import build_catalog

    made = build_catalog(args.data, args.db)
    print(f"catalog: views {', '.join(made) or '(none: no tables yet)'}")


def build_parser() -> argparse.ArgumentParser:
    for module in EXTENSIONS:
        importlib.import_module(module)
    parser = argparse.ArgumentParser(prog="zoo", description="Model-zoo datasets: train, extract, query.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for cmd in COMMANDS.values():
        p = sub.add_parser(cmd.name, help=cmd.help, description=cmd.help)
        cmd.add_arguments(p)
        p.set_defaults(_run=cmd.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``zoo`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = args._run(args)
    except ZooError as exc:
        print(f"zoo {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # e.g. `zoo show … | head`: the reader left; not an error of ours
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print(f"zoo {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(code or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
