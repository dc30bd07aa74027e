"""Landscape throughput and accuracy: vectorised populations vs one model at a time vs PyHessian.

On a zoo built by the workflow (default: the demo zoo ``data/zoos/digits-mlp``), last
checkpoint, one thread, default :class:`zoo.landscape.LandscapeSettings`:

- **vectorised**: :func:`zoo.landscape.population_landscape` per population (Hessian top
  eigenvalue + Hutchinson trace for all models at once, CKA, l2, Bezier curves of all seed
  pairs at once);
- **one by one**: the same Hessian computations with a population of 1 for every model, and
  one Bezier curve per seed pair (CKA and l2 are negligible and left out);
- **PyHessian 0.1** (``pip install pyhessian==0.1``) on one model (``--model-width``, default 8
  units = 682 parameters, lr 0.1, seed 0, batch 16): its ``eigenvalues()`` and ``trace()`` with
  their defaults (maxIter=100, tol=1e-3) on the same evaluation batch, against our defaults
  and the exact Hessian (torch.autograd.functional.hessian, float64).

    python benchmarks/landscape_throughput.py [--zoo data/zoos/digits-mlp] [--model-width 8]

Writes benchmarks/out/landscape_throughput.{parquet,md} and prints the tables.
"""

from __future__ import annotations

import argparse
import math
import os
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

OUT = Path(__file__).resolve().parent / "out"


def load_population(zoo_dir: Path, pop: str, zoo):
    import pandas as pd

    from zoo.store import load_checkpoints

    ckpts, ids, _ = load_checkpoints(zoo_dir / "checkpoints" / f"{pop}.safetensors")
    by_id = {m.model_id: m.spec for m in zoo.populations[pop]}
    models = pd.read_parquet(zoo_dir / "models" / f"{pop}.parquet").set_index("model_id")
    diverged = [not pd.isna(models.loc[i, "diverged_epoch"]) for i in ids]
    return [by_id[i] for i in ids], ids, ckpts[max(ckpts)], diverged


def one_by_one(specs, params, x, y, subsets, diverged, settings) -> float:
    """Seconds for the Hessian metrics of every model alone and one curve per seed pair."""
    from zoo.landscape import (
        eval_indices,
        grid_point_groups,
        hessian_operator,
        hutchinson_trace,
        mode_connectivity,
        seed_pairs,
        top_eigenvalue,
    )

    t0 = time.perf_counter()
    ok = [i for i in range(len(specs)) if not diverged[i]]
    for i in ok:
        one = {k: v[i : i + 1] for k, v in params.items()}
        idx = torch.from_numpy(eval_indices(subsets[i], len(x), settings.n_eval, settings.seed))[None]
        op = hessian_operator(specs[i], one, x[idx], y[idx])
        top_eigenvalue(op, settings.power_iters, settings.power_tol, settings.seed)
        hutchinson_trace(op, settings.probes, settings.seed)
    for g in grid_point_groups(specs).values():
        for a, b in seed_pairs([i for i in g if i in ok]):
            mode_connectivity(specs[a], {k: v[a : a + 1] for k, v in params.items()}, {k: v[b : b + 1] for k, v in params.items()},
                              x, y, [np.union1d(subsets[a], subsets[b])], settings)
    return time.perf_counter() - t0


def hessian_differences(new: list[dict], old: list[dict]) -> list[dict]:
    """Per model: relative differences of the Hessian columns between the hand-written and the
    autograd HVP (same power iteration, probes and evaluation batch), and the trace's SE."""
    out = []
    for a, b in zip(new, old):
        if not math.isfinite(a["hessian_top_eig"]):
            continue
        out.append({"eig_rel": abs(a["hessian_top_eig"] - b["hessian_top_eig"]) / max(abs(b["hessian_top_eig"]), 1e-12),
                    "trace_abs": abs(a["hessian_trace"] - b["hessian_trace"]), "trace_se": b["hessian_trace_se"],
                    "steps_equal": a["hessian_power_steps"] == b["hessian_power_steps"],
                    "others_equal": all(a[k] == b[k] or (a[k] != a[k] and b[k] != b[k])
                                        for k in ("mc", "mc_linear", "linear_barrier", "cka_mean"))})
    return out


def pyhessian_comparison(zoo, zoo_dir: Path, width: int, x, y, settings) -> list[dict]:
    """Exact vs ours vs PyHessian on one model's evaluation batch."""
    from zoo.landscape import (
        eval_indices,
        hessian_operator,
        hutchinson_trace,
        per_model_loss,
        top_eigenvalue,
    )
    from zoo.models import build_module
    from zoo.train import train_subset

    pick = [(pop, m) for pop, ms in zoo.populations.items() for m in ms
            if m.spec.get("width") == width and m.spec["lr"] == 0.1 and m.spec["seed"] == 0 and m.spec["batch_size"] == 16]
    if not pick:
        return []
    pop, m = pick[0]
    specs, ids, params, _ = load_population(zoo_dir, pop, zoo)
    i = ids.index(m.model_id)
    one = {k: v[i : i + 1].double() for k, v in params.items()}
    idx = eval_indices(train_subset(m.spec, len(x)), len(x), settings.n_eval, settings.seed)
    xe, ye = x[idx].double(), y[idx]
    shapes = {k: v.shape[1:] for k, v in one.items()}
    sizes = [math.prod(s) for s in shapes.values()]
    module = build_module(m.spec, tuple(x.shape[1:]), 10, {k: v[0] for k, v in one.items()}).double()

    def loss_of(flat):
        p = {k: t.reshape(1, *s) for (k, s), t in zip(shapes.items(), torch.split(flat, sizes))}
        return per_model_loss(m.spec, p, xe[None], ye[None])[0]

    t0 = time.perf_counter()
    H = torch.autograd.functional.hessian(loss_of, torch.cat([v.reshape(-1) for v in one.values()]))
    t_exact = time.perf_counter() - t0
    ev = torch.linalg.eigvalsh(H)
    exact_eig, exact_trace = float(ev[ev.abs().argmax()]), float(torch.trace(H))

    t0 = time.perf_counter()
    op = hessian_operator(m.spec, one, xe[None], ye[None])
    eig, _ = top_eigenvalue(op, settings.power_iters, settings.power_tol, settings.seed)
    tr, se = hutchinson_trace(op, settings.probes, settings.seed)
    t_ours = time.perf_counter() - t0
    rows = [{"method": "exact (autograd.functional.hessian)", "top_eig": exact_eig, "trace": exact_trace,
             "trace_se": 0.0, "wall_s": t_exact},
            {"method": f"ours ({settings.power_iters} power steps, {settings.probes} probes)", "top_eig": float(eig[0]),
             "trace": float(tr[0]), "trace_se": float(se[0]), "wall_s": t_ours}]
    try:
        from pyhessian import hessian
    except ImportError:
        return rows
    torch.manual_seed(0)
    t0 = time.perf_counter()
    hc = hessian(module, torch.nn.CrossEntropyLoss(), data=(xe.flatten(1) if m.spec["arch"] == "mlp" else xe, ye), cuda=False)
    top, _ = hc.eigenvalues()
    trace_samples = hc.trace()
    t_py = time.perf_counter() - t0
    rows.append({"method": f"pyhessian 0.1 defaults ({len(trace_samples)} trace probes)", "top_eig": float(top[0]),
                 "trace": float(np.mean(trace_samples)),
                 "trace_se": float(np.std(trace_samples, ddof=1) / math.sqrt(len(trace_samples))) if len(trace_samples) > 1 else float("nan"),
                 "wall_s": t_py})
    for r in rows:
        r["model"] = f"{m.model_id} (width {width}, {sum(sizes)} params)"
        r["eig_rel_err"] = abs(r["top_eig"] - exact_eig) / abs(exact_eig)
        r["trace_rel_err"] = abs(r["trace"] - exact_trace) / abs(exact_trace)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--zoo", default="data/zoos/digits-mlp")
    ap.add_argument("--model-width", type=int, default=8)
    args = ap.parse_args()
    torch.set_num_threads(1)
    import pyarrow.parquet as pq

    from zoo.data import load_dataset
    from zoo.jobs import read_spec
    from zoo.landscape import LandscapeSettings, population_landscape
    from zoo.train import train_subset

    load_before = os.getloadavg()
    zoo_dir = Path(args.zoo)
    zoo = read_spec(zoo_dir / "spec.json")
    settings = LandscapeSettings()
    ds = load_dataset(zoo.models[0].spec["dataset"], zoo.models[0].spec.get("dataset_options"))
    x, y = torch.from_numpy(ds.x_train), torch.from_numpy(ds.y_train)
    # warm-up (first autograd call pays one-off costs)
    specs, ids, params, div = load_population(zoo_dir, next(iter(zoo.populations)), zoo)
    population_landscape(specs[:2], ids[:2], {k: v[:2] for k, v in params.items()}, x, y,
                         [train_subset(s, len(x)) for s in specs[:2]], div[:2], settings)
    rows, diffs = [], []
    for pop in zoo.populations:
        specs, ids, params, div = load_population(zoo_dir, pop, zoo)
        subsets = [train_subset(s, len(x)) for s in specs]
        n_ok = len(specs) - sum(div)
        t0, c0 = time.perf_counter(), time.process_time()
        new = population_landscape(specs, ids, params, x, y, subsets, div, settings)
        t_vec, c_vec = time.perf_counter() - t0, time.process_time() - c0
        c0 = time.process_time()
        old = population_landscape(specs, ids, params, x, y, subsets, div, settings, manual_hessian=False)
        c_auto = time.process_time() - c0
        diffs.extend(hessian_differences(new, old))
        c0 = time.process_time()
        t_one = one_by_one(specs, params, x, y, subsets, div, settings)
        c_one = time.process_time() - c0
        width = specs[0].get("width", specs[0].get("channels"))
        rows.append({"population": pop, "width": width, "batch_size": specs[0]["batch_size"], "models": n_ok,
                     "vectorised_s": t_vec, "one_by_one_s": t_one,
                     "vectorised_cpu_s": c_vec, "one_by_one_cpu_s": c_one, "vectorised_autograd_cpu_s": c_auto})
        print(f"{pop}: {n_ok} models, vectorised {t_vec:.2f} s, one by one {t_one:.2f} s", flush=True)
    acc = pyhessian_comparison(zoo, zoo_dir, args.model_width, x, y, settings)
    OUT.mkdir(exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), OUT / "landscape_throughput.parquet")
    if acc:
        pq.write_table(pa.Table.from_pylist(acc), OUT / "landscape_accuracy.parquet")
    n = sum(r["models"] for r in rows)
    tv, to = sum(r["vectorised_s"] for r in rows), sum(r["one_by_one_s"] for r in rows)
    cv, co = sum(r["vectorised_cpu_s"] for r in rows), sum(r["one_by_one_cpu_s"] for r in rows)
    ca = sum(r["vectorised_autograd_cpu_s"] for r in rows)
    load_after = os.getloadavg()
    lines = [f"Landscape metrics on `{args.zoo}` (last checkpoint, {n} non-diverged models, 1 thread; "
             f"settings: {settings}). Wall and CPU (process) seconds per model; CPU time is the "
             f"robust figure on a shared machine (load average {load_before[0]:.2f} before, {load_after[0]:.2f} "
             "after, 2 cores).", "",
             "| population | width | batch | models | vectorised s/model (CPU) | one-by-one s/model (CPU) | speed-up (CPU) |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        m = max(r["models"], 1)
        lines.append(f"| {r['population']} | {r['width']} | {r['batch_size']} | {r['models']} | "
                     f"{r['vectorised_s'] / m:.4f} ({r['vectorised_cpu_s'] / m:.4f}) | "
                     f"{r['one_by_one_s'] / m:.4f} ({r['one_by_one_cpu_s'] / m:.4f}) | "
                     f"{r['one_by_one_cpu_s'] / max(r['vectorised_cpu_s'], 1e-9):.1f}× |")
    lines.append(f"| **all** | | | {n} | {tv / n:.4f} ({cv / n:.4f}) | {to / n:.4f} ({co / n:.4f}) | {co / cv:.1f}× |")
    if diffs:
        eig = max(d["eig_rel"] for d in diffs)
        within = sum(d["trace_abs"] <= d["trace_se"] for d in diffs)
        lines += ["", f"Hand-written vs autograd Hessian-vector products (both vectorised, same run): "
                  f"{ca / n:.4f} vs {cv / n:.4f} CPU-s per model ({ca / cv:.2f}×). Over {len(diffs)} models: top "
                  f"eigenvalue max relative difference {eig:.1e}; trace difference within one Hutchinson SE for "
                  f"{within}/{len(diffs)} (max {max(d['trace_abs'] for d in diffs):.1e}); power steps equal for "
                  f"{sum(d['steps_equal'] for d in diffs)}/{len(diffs)}; mc, mc_linear, barrier and CKA identical for "
                  f"{sum(d['others_equal'] for d in diffs)}/{len(diffs)}."]
    if acc:
        lines += ["", f"Hessian of one model, {acc[0]['model']}, evaluation batch of {settings.n_eval}:", "",
                  "| method | top eigenvalue | rel. err | trace (± SE) | rel. err | wall s |", "|---|---|---|---|---|---|"]
        for r in acc:
            lines.append(f"| {r['method']} | {r['top_eig']:.4f} | {r['eig_rel_err']:.2%} | {r['trace']:.3f} ± {r['trace_se']:.3f} | "
                         f"{r['trace_rel_err']:.2%} | {r['wall_s']:.3f} |")
    text = "\n".join(lines) + "\n"
    (OUT / "landscape_throughput.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
