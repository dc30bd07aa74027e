"""``zoo learn``: one (zoo, task, learner, augmentation) of the weight-space learner benchmark.

Writes ``<outdir>/results.parquet`` (one row per seed) and ``<outdir>/predictions.parquet``
(every sample with its split side); the workflow's outdir is
``data/learners/<zoo>/<task>/<learner>/<augment>``.
"""

from __future__ import annotations

import argparse
import sys

from zoo.cli import command


def _learn_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("zoo_dir", help="the zoo's data folder, data/zoos/<zoo>")
    p.add_argument("--task", required=True, help="test_acc | ggap | epoch | log_<grid axis> (e.g. log_lr) | phase")
    p.add_argument("--learner", required=True,
                   help="statnn-gbm | statnn-ridge | spectral-gbm | spectral-ridge | flat-mlp | equivariant")
    p.add_argument("--augment", default="none",
                   help="none | permutation | rescale | noise | dropout | sparsify | mixup | mixup-perm | mixup-match; "
                        "chain with '+' (default: none)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="split and learner seeds (default: 0)")
    p.add_argument("--split", default="model", help="model | region:<axis>:<low|high> | phase:<label> (default: model)")
    p.add_argument("--epochs", type=int, nargs="+", default=None, help="checkpoint epochs to use (default: all)")
    p.add_argument("--max-epochs", type=int, default=None, help="training epochs of the neural learners")
    p.add_argument("--outdir", required=True, help="data/learners/<zoo>/<task>/<learner>/<augment>")


@command("learn", "run one weight-space learner on one task of a zoo; write results and predictions", _learn_args)
def _learn(args: argparse.Namespace) -> None:
    from pathlib import Path

    import torch

    from zoo.learners.dataset import WeightDataset
    from zoo.learners.harness import run, write_outputs

    torch.set_num_threads(1)
    zoo_dir = Path(args.zoo_dir)
    options = {"max_epochs": args.max_epochs} if args.max_epochs and args.learner in ("flat-mlp", "equivariant") else {}
    data = WeightDataset.from_zoo(zoo_dir, args.epochs)
    results, predictions = run(data, zoo_dir.name, args.task, args.learner, args.augment, args.seeds, args.split,
                               zoo_dir=zoo_dir, options=options, log=sys.stderr)
    write_outputs(results, predictions, args.outdir, args.task)
