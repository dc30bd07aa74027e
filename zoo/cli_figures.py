"""``zoo figure learners|esd``: the report's learner-benchmark and ESD figures (rules in workflow/rules/figures.smk).

Each reads exactly the files it is given; the maths and drawing live in :mod:`zoo.figures`.
"""

from __future__ import annotations

import argparse
import sys

from zoo.cli import command
from zoo.errors import DataError


def _figure_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("kind", choices=["learners", "esd"],
                   help="learners: Kendall τ / accuracy per learner × augmentation (PNG); "
                        "esd: eigenvalue densities per layer with the power-law fit (PNG)")
    p.add_argument("--results", nargs="+", default=None, help="learners: the zoo's learner results Parquet files")
    p.add_argument("--checkpoints", nargs="+", default=None, help="esd: every population checkpoint of the zoo")
    for table in ("spectral", "metrics", "models"):
        p.add_argument(f"--{table}", nargs="+", default=None, help=f"esd: every population's {table} Parquet file")
    p.add_argument("--n-models", type=int, default=3, help="esd: models to draw, spread over test accuracy (default 3)")
    p.add_argument("--out", required=True, help="PNG to write")


@command("figure", "draw a report figure from given files: learner benchmark (learners) or weight spectra (esd)",
         _figure_args)
def _figure(args: argparse.Namespace) -> None:
    from zoo import figures

    if args.kind == "learners":
        if not args.results:
            raise DataError("zoo figure learners: give the learner results files with --results")
        figures.learner_figure(args.results, args.out)
    else:
        missing = [f"--{n}" for n in ("checkpoints", "spectral", "metrics", "models") if not getattr(args, n)]
        if missing:
            raise DataError(f"zoo figure esd: give {', '.join(missing)}")
        figures.esd_figure(args.checkpoints, args.spectral, args.metrics, args.models, args.out, args.n_models)
    print(f"wrote {args.out}", file=sys.stderr)
