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
    #: a per-population job that never uses pandas: it runs with ``import pandas`` refused
    #: (:func:`zoo.no_pandas.forbid_pandas`, ~0.4 s less start-up per job)
    without_pandas: bool = False


COMMANDS: dict[str, Command] = {}

#: Modules that register more commands when imported (keep their top-level imports light).
EXTENSIONS: list[str] = ["zoo.cli_query", "zoo.cli_learn", "zoo.cli_spectral", "zoo.cli_verify", "zoo.cli_info", "zoo.cli_landscape", "zoo.cli_analysis", "zoo.cli_figures", "zoo.cli_status", "zoo.cli_deploy"]


def command(name: str, help: str, add_arguments: Callable[[argparse.ArgumentParser], None], *,
            without_pandas: bool = False):
    """Decorator registering ``run(args)`` as ``zoo NAME`` (``without_pandas``: see :class:`Command`)."""

    def deco(run: Callable[[argparse.Namespace], int | None]):
        COMMANDS[name] = Command(name, help, add_arguments, run, without_pandas)
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


def _train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("population", help="the population document, data/zoos/<zoo>/populations/<pop>.json")
    p.add_argument("--checkpoint", required=True, help="checkpoint file to write (.safetensors)")
    p.add_argument("--models", required=True, help="models Parquet file to write")
    p.add_argument("--metrics", required=True, help="metrics Parquet file to write")
    p.add_argument("--resume", default=None, help="training-state file: saved at checkpoint epochs, resumed from")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


@command("train", "train one population of a zoo (used by the workflow)", _train_args, without_pandas=True)
def _train(args: argparse.Namespace) -> None:
    from zoo.jobs import train

    train(args.population, args.checkpoint, args.models, args.metrics, args.resume, progress=not args.no_progress)


def _prune_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default="data", help="data folder (default: data)")
    p.add_argument("--zoo", required=True, help="zoo name")
    p.add_argument("--keep", nargs="*", default=[], help="every current output of the zoo (all else is removed)")


@command("prune", "remove files of a zoo that no output of its current spec names (used by the workflow)",
         _prune_args)
def _prune(args: argparse.Namespace) -> None:
    from zoo.jobs import prune

    removed = prune(args.data, args.zoo, args.keep)
    print(f"{args.zoo}: pruned {len(removed)} stale files")


def _weights_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="data/zoos/<zoo>/checkpoints/<population>.safetensors")
    p.add_argument("--out", required=True, help="weights Parquet file to write")


@command("weights", "extract the weights table from a population checkpoint", _weights_args, without_pandas=True)
def _weights(args: argparse.Namespace) -> None:
    from zoo.jobs import weights

    weights(args.checkpoint, args.out)


def _catalog_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="*", metavar="FILE|DATA",
                   help="the Parquet files to load (written by zoo.store.write_table; table name from their "
                        "zoo.table metadata), or one data folder whose current specs' files are loaded (default: data)")
    p.add_argument("--db", default=None,
                   help="database file (default: DATA/zoo.duckdb, or data/zoo.duckdb when FILEs are given); "
                        "file paths are recorded relative to its folder")


@command("catalog", "(re)build the DuckDB catalog: one table per name, loaded from exactly the given Parquet files",
         _catalog_args)
def _catalog(args: argparse.Namespace) -> None:
    from pathlib import Path

    from zoo.catalog import build_catalog
    from zoo.errors import DataError

    # no FILE: the data folder is the one of --db, else data/
    paths = [Path(p) for p in args.paths] or [Path(args.db).parent if args.db else Path("data")]
    if len(paths) == 1 and not paths[0].exists() and paths[0].suffix != ".parquet":
        raise DataError(f"{paths[0]}: no such data folder; run the workflow first, or give the Parquet files")
    if len(paths) == 1 and paths[0].is_dir():
        data = paths[0]
        db = Path(args.db) if args.db else data / "zoo.duckdb"
        made = build_catalog(data, db)
    else:
        folders = [p for p in paths if p.is_dir()]
        if folders:
            raise DataError(f"{folders[0]}: a folder among FILEs; give either Parquet files or one data folder")
        db = Path(args.db or "data/zoo.duckdb")
        made = build_catalog(db.parent, db, files=paths)
    tables = ", ".join(f"{name} ({rows:,} rows)" for name, rows in made.items())
    print(f"catalog {db}: {tables or 'no tables (no Parquet files to load)'}")


def build_parser() -> argparse.ArgumentParser:
    for module in EXTENSIONS:
        importlib.import_module(module)
    parser = argparse.ArgumentParser(prog="zoo", description="Model-zoo datasets: train, extract, query.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for cmd in COMMANDS.values():
        p = sub.add_parser(cmd.name, help=cmd.help, description=cmd.help)
        cmd.add_arguments(p)
        p.set_defaults(_run=cmd.run, _without_pandas=cmd.without_pandas)
    return parser


class Terminated(BaseException):
    """Raised in the main thread on SIGTERM (``scancel``, Snakemake cancelling a job).

    A BaseException so that nothing on the way out swallows it (Lightning composes its own
    SIGTERM handler with ours and otherwise keeps training); writers' temporaries are removed
    as the stack unwinds.
    """


def _terminate(signum: int, frame: object) -> None:
    raise Terminated()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``zoo`` console script."""
    import signal
    import threading

    parser = build_parser()
    args = parser.parse_args(argv)
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if in_main else None
    try:
        if args._without_pandas:
            from zoo.no_pandas import forbid_pandas

            forbid_pandas()
        code = args._run(args)
    except Terminated:
        print(f"zoo {args.command}: terminated (SIGTERM); outputs left as they were", file=sys.stderr)
        return 143
    except ZooError as exc:
        print(f"zoo {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # e.g. `zoo show … | head`: the reader left; not an error of ours
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print(f"zoo {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)
    return int(code or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
