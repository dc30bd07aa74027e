"""``zoo status``: training progress of every zoo, read from the train jobs' logs (run it beside the workflow).

The logic lives in :mod:`zoo.progress`; see its docstring for what is read and why.
"""

from __future__ import annotations

import argparse

from zoo.cli import command


def _status_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default="data", help="data folder the workflow writes (default: data)")
    p.add_argument("--zoo", nargs="*", default=None, help="only these zoos (default: every zoo with a spec.json)")
    p.add_argument("--watch", nargs="?", type=float, const=2.0, default=None, metavar="SECONDS",
                   help="keep refreshing every SECONDS (default 2) until every population is trained: in place on "
                        "a terminal, one line per zoo per change otherwise")
    p.add_argument("--all", action="store_true", help="list every population, not only those training")
    p.add_argument("--json", action="store_true", help="print the status record as JSON (once)")


@command("status", "training progress of every zoo: populations trained / training / waiting, models, diverged, ETA",
         _status_args)
def _status(args: argparse.Namespace) -> None:
    import json

    from zoo.progress import watch, zoo_status

    if args.json:
        print(json.dumps([s.as_dict() for s in zoo_status(args.data, args.zoo)], indent=2))
        return
    watch(args.data, args.zoo, interval=args.watch, show_all=args.all)
