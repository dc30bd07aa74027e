"""Weight-space learner table: many (task, learner, augment) runs of the harness in one process.

Usage: python benchmarks/learners_table.py data/zoos/<zoo> OUT.parquet --tasks test_acc
       --learners hparams-gbm statnn-gbm equivariant --augments none noise --seeds 0 1 2
       [--protocol nfn|pooled] [--split-seed 0] [--split model] [--max-epochs 20]

Writes the concatenated ``results`` rows to OUT.parquet and prints a Markdown table
(mean ± std over learner seeds of Kendall τ, the bootstrap 95 % interval over test models,
R², wall seconds per fit). The workflow's ``rule learn`` runs the same harness one
combination per job; ``benchmarks/bench_learners.py`` runs the benchmark zoos.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd
import torch

from zoo.learners.dataset import WeightDataset
from zoo.learners.harness import LEARNER_KINDS, run, write_outputs
from zoo.learners.scores import seed_summary


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("zoo_dir")
    p.add_argument("out")
    p.add_argument("--tasks", nargs="+", default=["test_acc"])
    p.add_argument("--learners", nargs="+", default=["statnn-gbm", "equivariant"])
    p.add_argument("--augments", nargs="+", default=["none"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--split", default="model")
    p.add_argument("--protocol", default="nfn", choices=["nfn", "pooled"])
    p.add_argument("--split-seed", type=int, default=0)
    p.add_argument("--max-epochs", type=int, default=20)
    p.add_argument("--epochs", nargs="+", type=int, default=None)
    p.add_argument("--save-dir", default=None, help="also write each run under SAVE_DIR/<zoo>/<task>/<learner>/<augment>/")
    a = p.parse_args()
    torch.set_num_threads(1)
    zoo_dir = Path(a.zoo_dir)
    epochs = a.epochs if a.epochs is not None else ("final" if a.protocol == "nfn" else None)
    data = WeightDataset.from_zoo(zoo_dir, epochs)
    rows, preds = [], []
    for task in a.tasks:
        for learner in a.learners:
            for aug in a.augments:
                neural = LEARNER_KINDS.get(learner) == "neural"
                if aug != "none" and learner.startswith(("statnn", "spectral")) and "mixup-match" in aug:
                    continue
                opts = {"max_epochs": a.max_epochs} if neural else {}
                res, pred = run(data, zoo_dir.name, task, learner, aug, a.seeds, a.split, zoo_dir, opts, log=sys.stderr,
                                protocol=a.protocol, split_seed=a.split_seed)
                rows.append(res)
                preds.append(pred[pred.side == "test"])
                if a.save_dir:
                    out = Path(a.save_dir) / zoo_dir.name / task / learner / aug
                    write_outputs(res, pred, out / "results.parquet", out / "predictions.parquet", task)
                pd.concat(rows).to_parquet(a.out)
    df = pd.concat(rows)
    table = seed_summary(df, pd.concat(preds) if preds else None)
    cols = ["task", "learner", "augment", "protocol", "split", "tau_mean", "tau_std", "tau_ci_low", "tau_ci_high",
            "r2_mean", "n_seeds", "n_train_models", "n_test_models", "wall_s"]
    print(table[cols].round(3).to_string(index=False))


if __name__ == "__main__":
    main()
