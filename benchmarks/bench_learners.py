"""Learner benchmark on the benchmark zoos: build the zoos, run every learner, write the table.

    python benchmarks/bench_learners.py build config/bench-mlp-digits.yaml [...]   # train + weights only
    python benchmarks/bench_learners.py run data/zoos/bench-mlp-digits OUT.parquet [--rows learner[:augment] …]
    python benchmarks/bench_learners.py table OUT.parquet [...] --markdown OUT.md
    python benchmarks/bench_learners.py all                  # all of it (make bench-learners)
    python benchmarks/bench_learners.py mixup-speed data/zoos/digits-mlp --epochs 10

``build`` trains each zoo's populations and extracts their ``weights`` tables with exactly
the functions the workflow's ``train`` and ``weights`` rules run (``zoo.jobs``), into the
same layout (``data/zoos/<zoo>/``); a population whose weights table already belongs to
its current population document is skipped, so the command resumes. It runs no other
stage: the learners need only ``weights``, ``models`` and ``metrics`` (the full workflow,
``snakemake --configfile config/bench-….yaml``, also runs spectra, landscapes and phases).

``run`` evaluates learners under one protocol (default ``nfn``: final checkpoint, 50 % of
the models held out, the rest 80/20 train/validation, a recorded split seed separate from
the learner seeds) and appends the ``results`` rows to OUT.parquet after every learner,
so a killed run keeps what it finished (``--resume`` skips rows already there).

``table`` turns results files into the Markdown table of docs/learners.md: τ mean ± std over
learner seeds, the bootstrap 95 % interval over test models, and whether the best weight
learner beats both StatNN and the ``hparams-gbm`` control (≥ 0.02, ±2σ separated).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

# Rows of the benchmark: (learner, augment). Each neural learner runs without and with
# `noise` (the augmentation that did best for `equivariant` on the bench-mlp-digits pilot;
# docs/learners.md says what else was tried and what it cost).
DEFAULT_ROWS = [
    ("hparams-gbm", "none"), ("statnn-gbm", "none"),
    ("flat-mlp", "none"), ("flat-mlp", "noise"),
    ("nfn-np", "none"), ("nfn-np", "noise"),
    ("nfn-hnp", "none"), ("nfn-hnp", "noise"),
    ("equivariant", "none"), ("equivariant", "noise"),
]
#: Neural learner sizes and budgets, chosen to fit the time budget on 2 cores (docs/learners.md):
#: the small nets train up to 120 epochs with patience 20 (with patience 10 the noisy
#: validation loss stopped some seeds early: equivariant 0.831 ± 0.012 → 0.841 ± 0.003 on
#: bench-mlp-digits); the NFNs, 5-30× larger and slower per epoch, get 20 epochs.
DEFAULT_OPTIONS: dict[str, dict] = {
    "flat-mlp": {"max_epochs": 120, "patience": 20},
    "equivariant": {"max_epochs": 120, "patience": 20},
    "nfn-np": {"max_epochs": 20, "channels": [8, 8, 4], "hidden": 256},
    "nfn-hnp": {"max_epochs": 20, "channels": [8, 8, 4], "hidden": 256},
}
#: The benchmark: zoo config → tasks (``make bench-learners``).
PLAN = {
    "bench-mlp-digits": ["test_acc", "ggap"],
    "bench-cnn-digits": ["test_acc"],
    "bench-mlp-mnist1d": ["test_acc"],
}


def build(configs: list[str], data: str = "data") -> None:
    """Train + extract weights for every population of the zoos in ``configs`` (resumable)."""
    import pyarrow.parquet as pq
    import torch

    from zoo.config import load_zoos, read_config_files
    from zoo.jobs import read_population, train_into_layout, weights, write_zoo_documents

    torch.set_num_threads(1)
    for config_file in configs:
        config = read_config_files([config_file])
        settings = config.get("settings", {})
        for name, zoo in load_zoos(config).items():
            lay = write_zoo_documents(zoo, settings, data)
            t0 = time.perf_counter()
            n_done = 0
            for pop in zoo.populations:
                out = Path(lay.table("weights", pop))
                want = read_population(lay.population_doc(pop)).hash
                if out.is_file():
                    meta = pq.read_schema(out).metadata or {}
                    if meta.get(b"zoo.population_hash", b"").decode() == want:
                        continue
                train_into_layout(lay, pop)
                weights(lay.checkpoint(pop), out)
                n_done += 1
            print(f"{name}: {len(zoo.models)} models in {len(zoo.populations)} populations; trained {n_done} "
                  f"populations in {time.perf_counter() - t0:.0f} s", file=sys.stderr)


def run(zoo_dir: str, out: str, rows: list[tuple[str, str]], tasks: list[str], seeds: list[int], split_seed: int,
        protocol: str, options: dict, resume: bool) -> None:
    """Every (task, learner, augment) of ``rows`` on one zoo; results appended to ``out`` as they finish."""
    import pandas as pd
    import torch

    from zoo.learners.dataset import WeightDataset
    from zoo.learners.harness import run as run_one

    torch.set_num_threads(1)
    zoo_path = Path(zoo_dir)
    pred_out = predictions_path(out)
    done = pd.read_parquet(out) if resume and Path(out).is_file() else None
    done_pred = pd.read_parquet(pred_out) if done is not None and Path(pred_out).is_file() else None
    t0 = time.perf_counter()
    epochs = None if protocol == "pooled" else "final"
    data = WeightDataset.from_zoo(zoo_path, epochs)
    print(f"{zoo_path.name}: {len(data)} samples loaded in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    frames = [] if done is None else [done]
    pred_frames = [] if done_pred is None else [done_pred]
    for task in tasks:
        for learner, aug in rows:
            if done is not None and ((done.task == task) & (done.learner == learner) & (done.augment == aug)
                                     & (done.protocol == protocol)).any():
                continue
            res, pred = run_one(data, zoo_path.name, task, learner, aug, seeds, "model", zoo_dir=zoo_path,
                                options=options.get(learner, {}), log=sys.stderr, protocol=protocol,
                                split_seed=split_seed)
            save_rows(res, pred, frames, pred_frames, out)
    print(f"{zoo_path.name}: all rows in {time.perf_counter() - t0:.0f} s", file=sys.stderr)


def mixup_speed(zoo_dir: str, epochs: int) -> None:
    """Fit time of ``equivariant`` + ``mixup-match``: each network aligned once vs every pair re-matched per epoch.

    The pooled protocol's training networks (every checkpoint), split seed 0, learner seed 0,
    ``epochs`` epochs without early stopping; the two fits differ only in ``align_once``.
    Reported in CPU seconds of this process (one thread), which a shared machine's load
    does not inflate the way it inflates wall time.
    """
    import numpy as np
    import torch

    from zoo.learners.dataset import WeightDataset
    from zoo.learners.neural import NeuralLearner

    torch.set_num_threads(1)
    data = WeightDataset.from_zoo(zoo_dir)
    sides = data.split(0, "pooled")
    tr, va = np.flatnonzero(sides == "train"), np.flatnonzero(sides == "val")
    y = data.meta.test_acc.to_numpy()
    widths = sorted(int(w) for w in data.meta.width.unique()) if "width" in data.meta else []
    print(f"{len(tr)} training networks (widths {widths}), {epochs} epochs", flush=True)
    for once in (True, False):
        est = NeuralLearner("equivariant", augment="mixup-match", seed=0, max_epochs=epochs, patience=10**6,
                            align_once=once)
        t0, c0 = time.perf_counter(), time.process_time()
        est.fit(data.subset(tr), y[tr], data.subset(va), y[va])
        print(f"align_once={once}: fit {time.process_time() - c0:.1f} CPU-s, {time.perf_counter() - t0:.1f} s wall "
              f"({est.epochs_run_} epochs)", flush=True)


#: A model is "at chance" when its final test accuracy is within 0.05 of 1 / n_classes (10 classes here).
CHANCE_MARGIN = 0.05


def describe_zoo(zoo_dir: str | Path) -> str:
    """One line on a benchmark zoo: models, checkpoint epochs, share at chance, final test-accuracy quartiles."""
    import numpy as np
    import pandas as pd
    import pyarrow.parquet as pq

    from zoo.layout import current_table_files

    m = pd.concat([pq.read_table(f, columns=["model_id", "epoch", "test_acc"]).to_pandas()
                   for f in current_table_files(zoo_dir, "metrics")], ignore_index=True)
    final = m[m.epoch == m.epoch.max()].test_acc.to_numpy()
    n_classes = 10  # digits and MNIST-1D, the benchmark's datasets
    at_chance = float(np.mean(final <= 1 / n_classes + CHANCE_MARGIN))
    q1, q2, q3 = np.quantile(final, [0.25, 0.5, 0.75])
    epochs = ", ".join(str(e) for e in sorted(m.epoch.unique()))
    return (f"{m.model_id.nunique():,} models, checkpoints at epochs {epochs}; final test accuracy quartiles "
            f"{q1:.3f} / {q2:.3f} / {q3:.3f}; {at_chance:.1%} at chance (≤ {1 / n_classes + CHANCE_MARGIN:.2f})")


def save_rows(res, pred, frames: list, pred_frames: list, out: str | Path) -> None:
    """Append one row's results (and its test predictions) and rewrite both files, so a killed run keeps them."""
    import pandas as pd

    frames.append(res)
    pred_frames.append(pred[pred.side == "test"])
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    pd.concat(pred_frames, ignore_index=True).to_parquet(predictions_path(out))
    pd.concat(frames, ignore_index=True).to_parquet(out)


def predictions_path(results: str | Path) -> Path:
    """Where ``run`` keeps the test predictions beside a results file (``X.parquet`` → ``X.predictions.parquet``)."""
    p = Path(results)
    return p.with_name(p.stem + ".predictions.parquet")


WEIGHT_LEARNERS_EXCLUDED = ("hparams-gbm", "statnn-gbm", "statnn-ridge")


def fmt(x: float | None, nd: int = 3) -> str:
    return "–" if x is None or x != x else f"{x:.{nd}f}"


def markdown(results_files: list[str], data: str | Path = "data") -> str:
    """The benchmark table (one block per zoo × task) and a verdict line for each block.

    A zoo whose folder is under ``data/zoos/`` gets a line describing it (:func:`describe_zoo`).
    """
    import pandas as pd

    from zoo.learners.scores import bootstrap_delta, seed_summary, separated

    def test_preds(pred, zoo_name, task, learner, augment):
        sel = pred[(pred.zoo == zoo_name) & (pred.task == task) & (pred.learner == learner) & (pred.augment == augment)
                   & (pred.side == "test")]
        by_seed = [t.sort_values("model_id") for _, t in sel.groupby("seed", sort=True)]
        return by_seed

    blocks = []
    for f in results_files:
        res = pd.read_parquet(f)
        pp = predictions_path(f)
        pred = pd.read_parquet(pp) if pp.is_file() else None
        summary = seed_summary(res, pred)
        skipped = res[res.status != "ok"].drop_duplicates(["zoo", "task", "learner", "augment"])
        for (zoo_name, task, proto), g in summary.groupby(["zoo", "task", "protocol"], sort=False):
            first = g.iloc[0]
            zoo_dir = Path(data) / "zoos" / zoo_name
            about = [f"Zoo: {describe_zoo(zoo_dir)}.", ""] if (zoo_dir / "spec.json").is_file() else []
            lines = about + [f"**{zoo_name}**, task `{task}`, protocol `{proto}` (split seed {first.split_seed}; "
                     f"{first.n_train_models} / {first.n_val_models} / {first.n_test_models} train / val / test models — "
                     f"the GBMs fit on train + val; learner seeds {first.seeds})",
                     "", "| learner | augment | Kendall τ (mean ± std over seeds) | 95 % bootstrap CI (test models) "
                     "| R² | learner params | s / fit |", "|---|---|---|---|---|---|---|"]
            best = g[~g.learner.isin(WEIGHT_LEARNERS_EXCLUDED)].sort_values("tau_mean", ascending=False)
            for r in g.sort_values("tau_mean", ascending=False).itertuples():
                name = f"**{r.learner}**" if len(best) and r.Index == best.index[0] else r.learner
                lines.append(f"| {name} | {r.augment} | {fmt(r.tau_mean)} ± {fmt(r.tau_std)} | "
                             f"[{fmt(r.tau_ci_low)}, {fmt(r.tau_ci_high)}] | {fmt(r.r2_mean)} | "
                             f"{'' if r.learner_params is None or r.learner_params != r.learner_params else f'{int(r.learner_params):,}'} | "
                             f"{r.wall_s:.0f} |")
            for r in skipped[(skipped.zoo == zoo_name) & (skipped.task == task)].itertuples():
                lines.append(f"| {r.learner} | {r.augment} | skipped: {r.note} | | | | |")
            refs = {n: g[(g.learner == n) & (g.augment == "none")] for n in ("statnn-gbm", "hparams-gbm")}
            if len(best) and all(len(v) for v in refs.values()):
                b = best.iloc[0]
                verdicts = []
                wins = True
                for n, ref in refs.items():
                    r0 = ref.iloc[0]
                    d = b.tau_mean - r0.tau_mean
                    sep = separated(b.tau_mean, b.tau_std, r0.tau_mean, r0.tau_std)
                    wins &= d >= 0.02 and sep
                    ci = ""
                    if pred is not None:
                        pa = test_preds(pred, zoo_name, task, b.learner, b.augment)
                        pb = test_preds(pred, zoo_name, task, n, "none")
                        if pa and pb and all((x.model_id.to_numpy() == pa[0].model_id.to_numpy()).all() for x in pa + pb):
                            lo, hi = bootstrap_delta(pa[0].y_true.to_numpy(), [x.y_pred.to_numpy() for x in pa],
                                                     [x.y_pred.to_numpy() for x in pb], pa[0].model_id.to_numpy())
                            ci = f", paired bootstrap 95 % CI of the difference [{lo:+.3f}, {hi:+.3f}]"
                    verdicts.append(f"{'+' if d >= 0 else '−'}{abs(d):.3f} vs {n} "
                                    f"({'±2σ separated' if sep else 'not separated'}{ci})")
                lines += ["", f"Best weight-space learner: `{b.learner}` + `{b.augment}`: " + "; ".join(verdicts)
                          + (" — **goal met** (≥ 0.02 and separated from both)." if wins else " — goal **not** met here.")]
            blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def main(argv: list[str] | None = None) -> None:
    import json

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="train the benchmark zoos (train + weights only; resumable)")
    b.add_argument("configs", nargs="+")
    b.add_argument("--data", default="data")
    r = sub.add_parser("run", help="run learners on one zoo under one protocol")
    r.add_argument("zoo_dir")
    r.add_argument("out")
    r.add_argument("--rows", nargs="+", default=None, help="learner:augment pairs (default: the benchmark's rows)")
    r.add_argument("--tasks", nargs="+", default=["test_acc", "ggap"])
    r.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="learner seeds")
    r.add_argument("--split-seed", type=int, default=0)
    r.add_argument("--protocol", default="nfn", choices=["nfn", "pooled"])
    r.add_argument("--options", default="{}", help='JSON {learner: {option: value}}, e.g. {"nfn-hnp": {"max_epochs": 20}}')
    r.add_argument("--resume", action="store_true", help="skip (task, learner, augment) rows already in OUT")
    al = sub.add_parser("all", help="the whole benchmark: build every PLAN zoo, run every row, write the table")
    al.add_argument("--data", default="data")
    al.add_argument("--out", default="benchmarks/out")
    al.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    al.add_argument("--split-seed", type=int, default=0)
    al.add_argument("--zoos", nargs="+", default=list(PLAN), help="a subset of the plan's zoos")
    al.add_argument("--rows", nargs="+", default=None, help="learner:augment pairs (default: all rows)")
    m = sub.add_parser("mixup-speed", help="time mixup-match aligning once vs re-matching every epoch")
    m.add_argument("zoo_dir")
    m.add_argument("--epochs", type=int, default=10)
    t = sub.add_parser("table", help="Markdown table from results files")
    t.add_argument("results", nargs="+")
    t.add_argument("--markdown", default=None, help="also write the table to this file")
    t.add_argument("--data", default="data", help="data folder holding the zoos (for the line describing each)")
    a = p.parse_args(argv)
    if a.cmd == "build":
        build(a.configs, a.data)
    elif a.cmd == "mixup-speed":
        mixup_speed(a.zoo_dir, a.epochs)
    elif a.cmd == "all":
        t0 = time.perf_counter()
        rows = DEFAULT_ROWS if a.rows is None else [tuple(x.split(":", 1)) if ":" in x else (x, "none") for x in a.rows]
        build([f"config/{z}.yaml" for z in a.zoos], a.data)
        files = []
        for z in a.zoos:
            out = str(Path(a.out) / f"learners-{z}.parquet")
            run(f"{a.data}/zoos/{z}", out, rows, PLAN[z], a.seeds, a.split_seed, "nfn", DEFAULT_OPTIONS, resume=True)
            files.append(out)
        text = markdown(files, a.data)
        Path(a.out, "learners_bench.md").write_text(text)
        print(text)
        print(f"bench-learners: {time.perf_counter() - t0:.0f} s in all", file=sys.stderr)
    elif a.cmd == "run":
        rows = DEFAULT_ROWS if a.rows is None else [tuple(x.split(":", 1)) if ":" in x else (x, "none") for x in a.rows]
        options = {**DEFAULT_OPTIONS, **json.loads(a.options)}
        run(a.zoo_dir, a.out, rows, a.tasks, a.seeds, a.split_seed, a.protocol, options, a.resume)
    else:
        text = markdown(a.results, a.data)
        print(text)
        if a.markdown:
            Path(a.markdown).write_text(text)


if __name__ == "__main__":
    main()
