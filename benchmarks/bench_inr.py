"""INR classification benchmark (docs/inr.md): learners × augmentations on an INR zoo, and what augmentation is worth in data.

    python benchmarks/bench_learners.py build config/inr-fashion-mnist.yaml   # fit the INRs + weights (resumable)
    python benchmarks/bench_inr.py run data/zoos/inr-fashion-mnist benchmarks/out/inr-fashion-mnist.parquet
    python benchmarks/bench_inr.py table benchmarks/out/inr-fashion-mnist.parquet --markdown benchmarks/out/inr_bench.md

Protocol (the NFN/DWS one, DESIGN §11): task ``class`` (the fitted image's class), split
``signal`` — every INR of a dataset *test* image is a test INR, so no test image is fitted
by a training INR; each INR's final checkpoint; validation INRs (20 %) drawn from the
training-image INRs by the split seed (0), separate from the learner seeds (0, 1, 2).

Training sets are nested: the first ``k`` training-image INRs of each class in model-id
order, for ``k`` in the plan's sizes; the test set is always every test-image INR. At the
base size every row runs (each learner with and without each augmentation family); at 2×
and 5× the base, the learners run without augmentation — the data-equivalence of
Shamsian et al.: does the best augmentation at the base size match 2× or 5× more INRs?
Results (one Parquet row per learner seed, with ``train_per_class``) are appended after
every row, so a killed run keeps what it finished and a re-run skips it.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_learners import predictions_path, save_rows  # noqa: E402

#: (train INRs per class, rows). Rows: (learner, augment).
AUGMENTS_FLAT = ["none", "permutation", "signflip", "permutation+signflip", "noise", "dropout", "sparsify", "mixup",
                 "mixup-match"]
PLAN: list[tuple[int, list[tuple[str, str]]]] = [
    (100, [("statnn-gbm", "none"), *[("flat-mlp", a) for a in AUGMENTS_FLAT],
           ("equivariant", "none"), ("equivariant", "signflip"), ("equivariant", "noise"), ("nfn-hnp", "none")]),
    (200, [("statnn-gbm", "none"), ("flat-mlp", "none"), ("equivariant", "none")]),
    (500, [("statnn-gbm", "none"), ("flat-mlp", "none"), ("equivariant", "none")]),
]
OPTIONS = {"flat-mlp": {"max_epochs": 120, "patience": 20}, "equivariant": {"max_epochs": 120, "patience": 20},
           "nfn-hnp": {"max_epochs": 20, "channels": [8, 8, 4], "hidden": 256}}  # as in bench_learners.py
SEEDS = [0, 1, 2]
#: The published Fashion-MNIST INR accuracies (on THEIR INR sets, other SIRENs and scripts).
PUBLISHED = [("DWSNets (Navon et al. 2023)", "67.06 %"), ("NFN (Zhou et al. 2023)", "75.6 %"),
             ("ScaleGMN-B (Kalogeropoulos et al. 2024)", "80.78 %")]


def nested_subset(meta, per_class: int):
    """Rows of ``meta`` kept at ``per_class``: every test-image INR + the first ``per_class`` training-image INRs per class."""
    import numpy as np

    train = meta[meta.signal_split == "train"].sort_values("model_id")
    keep = set(train.groupby("signal_class", sort=True).head(per_class).model_id) | set(
        meta.model_id[meta.signal_split == "test"])
    return np.flatnonzero(meta.model_id.isin(keep).to_numpy())


def run(zoo_dir: str, out: str, split_seed: int = 0) -> None:
    import pandas as pd
    import torch

    from zoo.learners.dataset import WeightDataset
    from zoo.learners.harness import run as run_one

    torch.set_num_threads(1)
    zoo_path = Path(zoo_dir)
    pred_out = predictions_path(out)
    done = pd.read_parquet(out) if Path(out).is_file() else None
    frames = [] if done is None else [done]
    pred_frames = [pd.read_parquet(pred_out)] if done is not None and pred_out.is_file() else []
    t0 = time.perf_counter()
    data = WeightDataset.from_zoo(zoo_path, "final")
    print(f"{zoo_path.name}: {len(data)} INRs loaded in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    for per_class, rows in PLAN:
        sub = data.subset(nested_subset(data.meta, per_class))
        for learner, aug in rows:
            if done is not None and ((done.train_per_class == per_class) & (done.learner == learner)
                                     & (done.augment == aug)).any():
                continue
            res, pred = run_one(sub, zoo_path.name, "class", learner, aug, SEEDS, "signal", zoo_dir=zoo_path,
                                options=OPTIONS.get(learner, {}), log=sys.stderr, split_seed=split_seed)
            res["train_per_class"], pred["train_per_class"] = per_class, per_class
            save_rows(res, pred, frames, pred_frames, out)
    print(f"{zoo_path.name}: all rows in {time.perf_counter() - t0:.0f} s", file=sys.stderr)


def summary(results_file: str):
    """One row per (train_per_class, learner, augment): accuracy mean ± std over seeds and a bootstrap 95 % CI."""
    import numpy as np
    import pandas as pd

    from zoo.learners.scores import bootstrap_accuracy

    res = pd.read_parquet(results_file)
    pred_file = predictions_path(results_file)
    pred = pd.read_parquet(pred_file) if pred_file.is_file() else None
    rows = []
    for (k, learner, aug), g in res.groupby(["train_per_class", "learner", "augment"], sort=False):
        ok = g[g.status == "ok"]
        row = {"train_per_class": int(k), "learner": learner, "augment": aug, "status": g.status.iloc[0],
               "note": g.note.iloc[0], "n_seeds": len(ok)}
        if len(ok):
            acc = ok.accuracy.to_numpy(dtype=np.float64)
            row.update(acc_mean=float(acc.mean()), acc_std=float(acc.std(ddof=1)) if len(acc) > 1 else 0.0,
                       n_train=int(ok.n_train.iloc[0]), n_val=int(ok.n_val.iloc[0]), n_test=int(ok.n_test.iloc[0]),
                       wall_s=float(ok.wall_s.mean()),
                       params=int(ok.learner_params.iloc[0]) if ok.learner_params.notna().any() else None)
            if pred is not None:
                sel = pred[(pred.train_per_class == k) & (pred.learner == learner) & (pred.augment == aug)]
                by_seed = [t.sort_values("model_id") for _, t in sel.groupby("seed", sort=True)]
                if by_seed:
                    lo, hi = bootstrap_accuracy(by_seed[0].y_true.to_numpy(), [t.y_pred.to_numpy() for t in by_seed],
                                                by_seed[0].model_id.to_numpy())
                    row.update(ci_low=lo, ci_high=hi)
        rows.append(row)
    return pd.DataFrame(rows)


def markdown(results_file: str) -> str:
    s = summary(results_file)

    def pct(x) -> str:
        return "–" if x is None or x != x else f"{100 * x:.1f}"

    import pandas as pd

    base = int(s.train_per_class.min())
    zoo_name = pd.read_parquet(results_file, columns=["zoo"]).zoo.iloc[0]
    lines = [f"**{zoo_name}**. Test: {int(s.n_test.dropna().iloc[0]):,} INRs of test images; task `class`, split `signal`, "
             f"protocol `nfn` (final checkpoint), split seed 0, learner seeds {', '.join(map(str, SEEDS))}; "
             "accuracy in % (mean ± std over seeds; 95 % bootstrap CI over test INRs). Chance: 10 %.", "",
             "| train INRs / class | learner | augment | accuracy | 95 % CI | train / val INRs | learner params | s / fit |",
             "|---|---|---|---|---|---|---|---|"]
    for r in s.sort_values(["train_per_class", "learner", "acc_mean"], ascending=[True, True, False]).itertuples():
        if r.status != "ok":
            lines.append(f"| {r.train_per_class} | {r.learner} | {r.augment} | skipped: {r.note} | | | | |")
            continue
        lines.append(f"| {r.train_per_class} | {r.learner} | {r.augment} | {pct(r.acc_mean)} ± {pct(r.acc_std)} | "
                     f"[{pct(r.ci_low)}, {pct(r.ci_high)}] | {r.n_train:,} / {r.n_val:,} | "
                     f"{'' if r.params is None or r.params != r.params else f'{int(r.params):,}'} | {r.wall_s:.0f} |")
    verdicts = []
    for learner in ("flat-mlp", "equivariant"):
        at_base = s[(s.train_per_class == base) & (s.learner == learner) & (s.status == "ok")]
        none = at_base[at_base.augment == "none"]
        aug = at_base[at_base.augment != "none"].sort_values("acc_mean", ascending=False)
        if not len(none) or not len(aug):
            continue
        b, n0 = aug.iloc[0], none.iloc[0]
        more = s[(s.learner == learner) & (s.augment == "none") & (s.train_per_class > base) & (s.status == "ok")]
        eq = "; ".join(f"without augmentation on {int(r.train_per_class / base)}× the INRs: {pct(r.acc_mean)} %"
                       for r in more.sort_values("train_per_class").itertuples())
        verdicts.append(f"- `{learner}` at {base} INRs / class: best augmentation `{b.augment}` {pct(b.acc_mean)} % vs "
                        f"{pct(n0.acc_mean)} % without (gain {100 * (b.acc_mean - n0.acc_mean):+.1f} points; the best "
                        f"augmentation is picked on the test INRs, so the gain is optimistic); {eq}.")
    lines += ["", "Augmentation gain and data-equivalence:", "", *verdicts, "",
              "Published Fashion-MNIST INR accuracies, for context — **their INRs, not ours** (other SIREN variants, "
              "other generation scripts):", "", "| method | accuracy (their INRs) |", "|---|---|",
              *[f"| {m} | {a} |" for m, a in PUBLISHED]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="every row of the plan on one INR zoo (resumable)")
    r.add_argument("zoo_dir")
    r.add_argument("out")
    r.add_argument("--split-seed", type=int, default=0)
    t = sub.add_parser("table", help="the Markdown table of a results file")
    t.add_argument("results")
    t.add_argument("--markdown", default=None, help="also write the table to this file")
    a = p.parse_args(argv)
    if a.cmd == "run":
        run(a.zoo_dir, a.out, a.split_seed)
    else:
        text = markdown(a.results)
        print(text)
        if a.markdown:
            Path(a.markdown).write_text(text)


if __name__ == "__main__":
    main()
