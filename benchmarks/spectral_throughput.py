"""Spectral throughput: our batched path vs WeightWatcher 0.7.7 on the same demo-zoo layers.

Both analyse every weight matrix of every checkpoint of the given zoo (default: the demo zoo
``data/zoos/digits-mlp``, built by ``snakemake --cores 2``), in one run, one thread:

- WeightWatcher: one ``analyze(min_evals=1)`` per model × checkpoint (``min_evals=1`` so it
  analyses the tiny layers too; its defaults otherwise), CPU, stdout silenced;
- ours: :func:`zoo.spectral.spectral_metrics` over each tensor stacked across models and
  checkpoints — first the WeightWatcher columns only (``farms=False, mp=False``, the like-for-like
  row), then the full table (FARMS and the MP soft rank as well).

The alphas of the two are compared layer by layer (layers with non-finite weights — diverged
models — are skipped by both). The full table's ``mp_softrank`` exists in WeightWatcher only
with ``analyze(mp_fit=True)`` (~30× slower than its default), so that is its like-for-like
baseline: it runs on a random sample of ``--mp-models`` model × checkpoint modules (``--mp-models 0``:
all of them), its layers/s is compared with our full table's, and ``mp_softrank`` is compared on
the sampled layers. Times are CPU seconds of this process (steady on a shared machine; one thread).

    python benchmarks/spectral_throughput.py [--zoo data/zoos/digits-mlp] [--epochs all|last] [--mp-models 24]

Writes benchmarks/out/spectral_throughput.{parquet,md} and prints the table.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

OUT = Path(__file__).resolve().parent / "out"


def load_layers(zoo: Path, epochs: str) -> list[tuple[int, str, np.ndarray]]:
    """``(population index, tensor name, stacked weights [n, …])`` per population × weight tensor."""
    from zoo.store import load_checkpoints

    groups = []
    for pop, path in enumerate(sorted((zoo / "checkpoints").glob("*.safetensors"))):
        ckpts, ids, _ = load_checkpoints(path)
        chosen = sorted(ckpts) if epochs == "all" else [max(ckpts)]
        # A model × epoch enters only if all its weights are finite (WeightWatcher's SVD raises on NaN).
        per_epoch = []
        for e in chosen:
            ok = torch.stack([torch.isfinite(t).flatten(1).all(1) for n, t in ckpts[e].items() if n.endswith("weight")]).all(0)
            per_epoch.append((e, ok))
        for name in [n for n, t in ckpts[chosen[0]].items() if n.endswith(".weight") and t.ndim in (3, 5)]:
            stack = torch.cat([ckpts[e][name][ok] for e, ok in per_epoch]).double().numpy()
            groups.append((pop, name, stack))
    return groups


def by_population(items: list[tuple[int, object]]) -> list[list[object]]:
    """Group ``(population index, x)`` pairs, keeping order."""
    pops: dict[int, list[object]] = {}
    for pop, x in items:
        pops.setdefault(pop, []).append(x)
    return list(pops.values())


def models_for_ww(groups: list[tuple[int, str, np.ndarray]]) -> list[torch.nn.ModuleList]:
    """One module per model × checkpoint holding its layers (in tensor order) as Linear/Conv2d."""
    models = []
    for stacks in by_population([(pop, stack) for pop, _, stack in groups]):
        for i in range(len(stacks[0])):
            layers = []
            for s in stacks:
                W = torch.tensor(s[i], dtype=torch.float32)
                mod = torch.nn.Linear(W.shape[1], W.shape[0]) if W.ndim == 2 else torch.nn.Conv2d(W.shape[1], W.shape[0], W.shape[2])
                with torch.no_grad():
                    mod.weight.copy_(W)
                layers.append(mod)
            models.append(torch.nn.ModuleList(layers))
    return models


def run_ww(models: list[torch.nn.ModuleList], mp: bool) -> tuple[float, list[dict]]:
    import weightwatcher as ww

    logging.getLogger("weightwatcher").setLevel(logging.ERROR)
    rows = []
    t0 = time.process_time()
    with contextlib.redirect_stdout(io.StringIO()):
        for m in models:
            d = ww.WeightWatcher(model=m).analyze(min_evals=1, mp_fit=mp)
            rows.extend(d.to_dict("records"))
    return time.process_time() - t0, rows


def run_ours(groups: list[tuple[int, str, np.ndarray]], farms: bool, mp: bool) -> tuple[float, dict[str, list]]:
    from zoo.spectral import spectral_metrics

    t0 = time.process_time()
    res = [spectral_metrics(stack, farms=farms, mp=mp) for _, _, stack in groups]
    dt = time.process_time() - t0
    # Reorder to WeightWatcher's order: population, model × checkpoint, layer.
    out: dict[str, list] = {"alpha": [], "mp_softrank": []}
    for rs in by_population([(pop, r) for (pop, _, _), r in zip(groups, res)]):
        for i in range(len(rs[0]["alpha"])):
            for r in rs:
                out["alpha"].append(r["alpha"][i])
                out["mp_softrank"].append(r["mp_softrank"][i])
    return dt, out


def agreement(ours: list[float], ref: list[float]) -> tuple[float, int]:
    a, b = np.asarray(ours, float), np.asarray(ref, float)
    b = np.where(b == -1, np.nan, b)  # WeightWatcher's "failed" marker
    both_nan = np.isnan(a) & np.isnan(b)
    rel = np.where(both_nan, 0.0, np.abs(a - b) / np.maximum(np.abs(b), 1e-300))
    rel = np.where(np.isnan(rel), np.inf, rel)
    return float(rel.max()), int((rel <= 1e-9).sum())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--zoo", default="data/zoos/digits-mlp", help="zoo data folder with checkpoints/")
    ap.add_argument("--epochs", choices=["all", "last"], default="all")
    ap.add_argument("--mp-models", type=int, default=24,
                    help="model × checkpoint modules WeightWatcher's mp_fit=True runs on (0: all; -1: skip)")
    ap.add_argument("--repeats", type=int, default=2, help="our paths are timed this often, best counts")
    args = ap.parse_args()
    torch.set_num_threads(1)
    load_before = os.getloadavg()
    groups = load_layers(Path(args.zoo), args.epochs)
    n_layers = sum(len(s) for _, _, s in groups)
    models = models_for_ww(groups)
    import weightwatcher  # noqa: F401  (import cost not timed)
    rows = []
    ww_s, ww_rows = run_ww(models, mp=False)
    ours_s, ours = min((run_ours(groups, farms=False, mp=False) for _ in range(args.repeats)), key=lambda r: r[0])
    full_s, full = min((run_ours(groups, farms=True, mp=True) for _ in range(args.repeats)), key=lambda r: r[0])
    err, same = agreement(ours["alpha"], [r["alpha"] for r in ww_rows])
    assert len(ww_rows) == n_layers, (len(ww_rows), n_layers)
    rows.append({"path": "WeightWatcher analyze() (default fit)", "layers": n_layers, "seconds": ww_s})
    rows.append({"path": "zoo batched, WeightWatcher columns", "layers": n_layers, "seconds": ours_s,
                 "speedup": ww_s / ours_s, "alpha_max_rel_err": err, "alpha_identical": same})
    rows.append({"path": "zoo batched, full table (+FARMS, +mp_softrank)", "layers": n_layers, "seconds": full_s,
                 "speedup": ww_s / full_s, "alpha_max_rel_err": agreement(full["alpha"], [r["alpha"] for r in ww_rows])[0],
                 "alpha_identical": agreement(full["alpha"], [r["alpha"] for r in ww_rows])[1]})
    if args.mp_models >= 0:
        rng = np.random.default_rng(0)
        pick = sorted(rng.choice(len(models), size=min(args.mp_models, len(models)), replace=False)) \
            if args.mp_models else list(range(len(models)))
        wwmp_s, wwmp_rows = run_ww([models[i] for i in pick], mp=True)
        offsets = np.cumsum([0] + [len(m) for m in models])
        ours_mp = [full["mp_softrank"][j] for i in pick for j in range(offsets[i], offsets[i + 1])]
        mp_err, mp_same = agreement(ours_mp, [r["mp_softrank"] for r in wwmp_rows])
        n_mp = len(wwmp_rows)
        rows.append({"path": f"WeightWatcher analyze(mp_fit=True), {len(pick)} sampled modules", "layers": n_mp,
                     "seconds": wwmp_s})
        rows.append({"path": "zoo batched, full table vs WeightWatcher mp_fit=True (per layer)", "layers": n_layers,
                     "seconds": full_s, "speedup": (wwmp_s / n_mp) / (full_s / n_layers), "alpha_max_rel_err": mp_err,
                     "alpha_identical": mp_same, "note": f"agreement column = mp_softrank on the {n_mp} sampled layers"})
    load_after = os.getloadavg()
    for r in rows:
        r["layers_per_s"] = r["layers"] / r["seconds"]
        r["load_before"], r["load_after"] = load_before[0], load_after[0]
    OUT.mkdir(exist_ok=True)
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), OUT / "spectral_throughput.parquet")
    lines = [f"Spectral throughput on {args.zoo} ({args.epochs} checkpoints, {n_layers} layers, 1 thread, CPU seconds; "
             f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after, 2 cores)", "",
             "| path | layers | layers/s | CPU s | speedup | max rel. diff vs WW | identical (≤1e-9) |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        sp = f"{r['speedup']:.1f}×" if "speedup" in r else "1×"
        diff = f"{r['alpha_max_rel_err']:.1e}" if "alpha_max_rel_err" in r else ""
        same_s = f"{r['alpha_identical']}" if "alpha_identical" in r else ""
        lines.append(f"| {r['path']} | {r['layers']} | {r['layers_per_s']:.0f} | {r['seconds']:.2f} | {sp} | {diff} | {same_s} |")
    lines += ["", "Speedups: the WeightWatcher-columns and full-table rows against `analyze()` (which has no FARMS "
              "and no `mp_softrank`); the last row per layer against `analyze(mp_fit=True)`, the only way "
              "WeightWatcher computes `mp_softrank`. The identical column counts alphas (mp_softrank in the last "
              "row) within 1e-9 relative."]
    text = "\n".join(lines) + "\n"
    (OUT / "spectral_throughput.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
