"""Weight-space learner table: many (task, learner, augment) runs of the harness in one process.

Usage: python benchmarks/learners_table.py data/zoos/<zoo> OUT.parquet --tasks test_acc
       --learners statnn-gbm equivariant --augments none noise --seeds 0 1 2 [--split model] [--max-epochs 20]

Writes the concatenated ``results`` rows to OUT.parquet and prints a Markdown table
(mean ± std over seeds of Kendall τ and R², wall seconds per fit). The workflow's
``rule learn`` runs the same harness one combination per job.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd
import torch

from zoo.learners.dataset import WeightDataset
from zoo.learners.harness import run, write_outputs


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("zoo_dir")
    p.add_argument("out")
    p.add_argument("--tasks", nargs="+", default=["test_acc"])
    p.add_argument("--learners", nargs="+", default=["statnn-gbm", "equivariant"])
    p.add_argument("--augments", nargs="+", default=["none"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--split", default="model")
    p.add_argument("--max-epochs", type=int, default=20)
    p.add_argument("--epochs", nargs="+", type=int, default=None)
    p.add_argument("--save-dir", default=None, help="also write each run under SAVE_DIR/<zoo>/<task>/<learner>/<augment>/")
    a = p.parse_args()
    torch.set_num_threads(1)
    zoo_dir = Path(a.zoo_dir)
    data = WeightDataset.from_zoo(zoo_dir, a.epochs)
    rows = []
    for task in a.tasks:
        for learner in a.learners:
            for aug in a.augments:
                neural = learner in ("flat-mlp", "equivariant")
                if aug != "none" and learner.startswith(("statnn", "spectral")) and "mixup-match" in aug:
                    continue
                opts = {"max_epochs": a.max_epochs} if neural else {}
                res, pred = run(data, zoo_dir.name, task, learner, aug, a.seeds, a.split, zoo_dir, opts, log=sys.stderr)
                rows.append(res)
                if a.save_dir:
                    write_outputs(res, pred, Path(a.save_dir) / zoo_dir.name / task / learner / aug, task)
                pd.concat(rows).to_parquet(a.out)
    df = pd.concat(rows)
    ok = df[df.status == "ok"]
    table = ok.groupby(["task", "learner", "augment", "split"], sort=False).agg(
        tau=("kendall_tau", "mean"), tau_sd=("kendall_tau", "std"), r2=("r2", "mean"), r2_sd=("r2", "std"),
        seeds=("seed", "count"), n_train=("n_train", "first"), n_test=("n_test", "mean"), wall_s=("wall_s", "mean"))
    print(table.round(3).to_markdown() if hasattr(table, "to_markdown") else table.round(3).to_string())


if __name__ == "__main__":
    main()
