"""``zoo learn``: one (zoo, task, learner, augmentation) of the weight-space learner benchmark.

Writes ``<outdir>/results.parquet`` (one row per learner seed) and
``<outdir>/predictions.parquet`` (every sample with its split side and the split seed);
the workflow's outdir is ``data/learners/<zoo>/<task>/<learner>/<augment>``. The learner,
augmentation and protocol names are checked before any data is read: a bad name is one
line on stderr, exit 1, and nothing is written.
"""

from __future__ import annotations

import argparse
import sys

from zoo.cli import command

LEARNER_HELP = ("hparams-gbm (control: hyperparameters only) | statnn-gbm | statnn-ridge | spectral-gbm | "
                "spectral-ridge | flat-mlp | equivariant | nfn-np | nfn-hnp")


def _learn_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("zoo_dir", nargs="?", default=None,
                   help="the zoo's data folder, data/zoos/<zoo> (its current spec's tables); or pass the files:")
    p.add_argument("--zoo", default=None, help="zoo name (with the file options; default: ZOO_DIR's name)")
    for table in ("weights", "models", "metrics", "spectral"):
        p.add_argument(f"--{table}", nargs="+", default=None, help=f"{table} Parquet files, one per population")
    p.add_argument("--phases", default=None, help="the zoo's phases.parquet (phase task and splits)")
    p.add_argument("--task", required=True, help="test_acc | ggap | epoch | log_<grid axis> (e.g. log_lr) | phase | class (INR zoos)")
    p.add_argument("--learner", required=True, help=LEARNER_HELP)
    p.add_argument("--augment", default="none",
                   help="none | permutation | rescale | noise | dropout | sparsify | mixup | mixup-perm | mixup-match; "
                        "chain with '+' (default: none)")
    p.add_argument("--protocol", default="nfn",
                   help="nfn (default: final checkpoint, 50%% of models test, rest 80/20 train/val) | "
                        "pooled (every checkpoint; 70/10/20 train/val/test models)")
    p.add_argument("--split-seed", type=int, default=0,
                   help="seed of the by-model split, separate from the learner seeds (default: 0)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="learner seeds (default: 0 1 2)")
    p.add_argument("--split", default="model", help="model | signal (INR zoos: test signals' INRs are the test set) | region:<axis>:<low|high> | phase:<label> (default: model)")
    p.add_argument("--epochs", type=int, nargs="+", default=None,
                   help="checkpoint epochs to load (default: the final one under nfn, all under pooled)")
    p.add_argument("--max-epochs", type=int, default=None, help="training epochs of the neural learners")
    p.add_argument("--outdir", default=None, help="folder for results.parquet and predictions.parquet")
    p.add_argument("--results", default=None, help="results Parquet file to write (instead of --outdir)")
    p.add_argument("--predictions", default=None, help="predictions Parquet file to write (instead of --outdir)")


@command("learn", "run one weight-space learner on one task of a zoo; write results and predictions", _learn_args)
def _learn(args: argparse.Namespace) -> None:
    from pathlib import Path

    import torch

    from zoo.errors import DataError
    from zoo.learners.augment import parse_augment
    from zoo.learners.dataset import WeightDataset
    from zoo.learners.harness import LEARNER_KINDS, check_learner, run, write_outputs
    from zoo.learners.splits import protocol
    from zoo.learners.tasks import check_task_name

    # names first: a typo costs nothing and writes nothing
    check_task_name(args.task)
    check_learner(args.learner)
    parse_augment(args.augment)
    proto = protocol(args.protocol)
    torch.set_num_threads(1)
    if args.outdir is not None:
        results_out, predictions_out = Path(args.outdir) / "results.parquet", Path(args.outdir) / "predictions.parquet"
    elif args.results and args.predictions:
        results_out, predictions_out = Path(args.results), Path(args.predictions)
    else:
        raise DataError("zoo learn: give --outdir, or both --results and --predictions")
    epochs = args.epochs if args.epochs is not None else ("final" if proto.final_only else None)
    if args.zoo_dir is not None:
        zoo_dir = Path(args.zoo_dir)
        name, spectral = args.zoo or zoo_dir.name, args.spectral or zoo_dir
        data = WeightDataset.from_zoo(zoo_dir, epochs)
    elif args.weights and args.models and args.metrics and args.zoo:
        name, spectral = args.zoo, args.spectral
        data = WeightDataset.from_files(args.weights, args.models, args.metrics, args.phases, epochs)
    else:
        raise DataError("zoo learn: give ZOO_DIR, or --zoo with --weights, --models and --metrics")
    neural = LEARNER_KINDS[args.learner] == "neural"
    options = {"max_epochs": args.max_epochs} if args.max_epochs and neural else {}
    results, predictions = run(data, name, args.task, args.learner, args.augment, args.seeds, args.split,
                               zoo_dir=spectral, options=options, log=sys.stderr, protocol=proto.name,
                               split_seed=args.split_seed)
    write_outputs(results, predictions, results_out, predictions_out, args.task)
