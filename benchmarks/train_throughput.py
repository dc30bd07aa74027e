"""Training throughput: plain per-model loop vs vectorised populations vs lightning.Trainer.

All three train the same specs (a 64-32-10 MLP on digits, 20 epochs, batch 32, Adam, one
thread), in one run, so the ratios compare like with like on this machine. Also counts
the FLOPs of one model's training and measures the machine's single-thread matmul
throughput, to say how far each setup is from the FLOP limit.

    python benchmarks/train_throughput.py [--models 256] [--plain 16] [--lightning 4]

Writes benchmarks/out/train_throughput.{parquet,md} and prints the table.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pyarrow as pa
import torch

OUT = Path(__file__).resolve().parent / "out"


def specs(n: int, epochs: int) -> list:
    from zoo.config import expand_zoo

    raw = {"dataset": "digits", "model": {"arch": "mlp", "depth": 1, "width": 32},
           "grid": {"lr": {"logspace": [-3.5, -2, 4]}}, "seeds": n // 4, "epochs": epochs,
           "checkpoints": [epochs], "batch_size": 32, "optimizer": {"name": "adam"},
           }
    return list(expand_zoo("bench", raw, {"max_models": 10**6}).models)


def training_flops(n_train: int, epochs: int, dims: list[int]) -> float:
    """Multiply-adds ×2 of forward (1×) + backward (2×) over all training samples."""
    per_sample = sum(2 * a * b for a, b in zip(dims[:-1], dims[1:]))
    return 3.0 * per_sample * n_train * epochs


def matmul_gflops() -> float:
    """Best-of-5 single-thread float32 GEMM throughput (the practical FLOP limit)."""
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * 1024**3 / best / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=256)
    parser.add_argument("--plain", type=int, default=16, help="models trained by the plain loop")
    parser.add_argument("--lightning", type=int, default=4, help="models trained by lightning.Trainer")
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(1)

    from zoo.baseline import train_lightning, train_plain
    from zoo.data import load_dataset
    from zoo.train import train_population

    ds = load_dataset("digits")
    models = specs(args.models, args.epochs)
    rows = []

    t = time.perf_counter()
    for m in models[: args.plain]:
        train_plain(m.spec, ds)
    plain_s = (time.perf_counter() - t) / args.plain
    rows.append({"setup": "plain loop (torch.optim)", "models": args.plain, "s_per_model": plain_s})

    for size in (16, 64, 256):
        if size > len(models):
            continue
        t = time.perf_counter()
        for start in range(0, len(models), size):
            chunk = models[start : start + size]
            train_population([m.spec for m in chunk], [m.model_id for m in chunk], [args.epochs], dataset=ds)
        rows.append({"setup": f"vectorised, populations of {size}", "models": len(models),
                     "s_per_model": (time.perf_counter() - t) / len(models)})

    t = time.perf_counter()
    for m in models[: args.lightning]:
        train_lightning(m.spec, ds)
    rows.append({"setup": "lightning.Trainer", "models": args.lightning,
                 "s_per_model": (time.perf_counter() - t) / args.lightning})

    flops = training_flops(len(ds.x_train), args.epochs, [64, 32, 10])
    peak = matmul_gflops()
    for r in rows:
        r["models_per_min"] = 60 / r["s_per_model"]
        r["speedup_vs_plain"] = plain_s / r["s_per_model"]
        r["gflops"] = flops / r["s_per_model"] / 1e9
        r["fraction_of_peak"] = r["gflops"] / peak
    OUT.mkdir(exist_ok=True)
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), OUT / "train_throughput.parquet")
    lines = [f"MLP 64-32-10 on digits ({len(ds.x_train)} train images), {args.epochs} epochs, batch 32, Adam, 1 thread. "
             f"Training FLOPs per model: {flops / 1e6:.0f} MFLOP; single-thread GEMM peak measured: {peak:.1f} GFLOP/s "
             f"(= {60 * peak * 1e9 / flops:,.0f} models/min at the FLOP limit).", "",
             "| setup | models timed | s/model | models/min | × plain loop | GFLOP/s | % of GEMM peak |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['setup']} | {r['models']} | {r['s_per_model']:.3f} | {r['models_per_min']:,.0f} | "
                     f"{r['speedup_vs_plain']:.1f}× | {r['gflops']:.2f} | {100 * r['fraction_of_peak']:.1f}% |")
    text = "\n".join(lines) + "\n"
    (OUT / "train_throughput.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
