"""Batch loading: ``zoo.load_models`` vs one ``zoo.load_model`` call per model × epoch.

On a finished workflow's data folder (default ``data``: the demo zoo, 120 models × 6
checkpoints = 720 model-epochs), in one warm process (torch imported, one warm-up call
each), one thread:

- **per call**: ``[load_model(id, e) for id, e in pairs]`` — each call queries the catalog
  and reads the model's whole population checkpoint;
- **batch**: ``load_models(ids, epochs)`` — one catalog query, each population checkpoint
  opened once, only the epochs asked for read;
- **weights**: ``load_weights(ids, epoch)`` per architecture (one width) and epoch, from the
  checkpoints and from the catalog's ``weights`` table.

Both loaders' logits are compared on a fixed input for every model (they must be equal).

    python benchmarks/load_models.py [--data data] [--repeat 3]

Writes benchmarks/out/load_models.{parquet,md} and prints the table. Best of ``--repeat``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pyarrow as pa
import torch

OUT = Path(__file__).resolve().parent / "out"


def best_of(repeat: int, fn) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def equal_logits(a_models, b_models) -> bool:
    """Whether two lists of modules give identical logits on 8 test inputs of each model's dataset."""
    from zoo.data import load_dataset

    inputs = {}
    with torch.no_grad():
        for a, b in zip(a_models, b_models):
            name = a.spec["dataset"]
            if name not in inputs:
                inputs[name] = torch.from_numpy(load_dataset(name, a.spec.get("dataset_options")).x_test[:8])
            if (a.model_id, a.epoch) != (b.model_id, b.epoch) or not torch.equal(a(inputs[name]), b(inputs[name])):
                return False
    return True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="data")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(1)
    import pyarrow.parquet as pq

    from zoo.api import frame, load_model, load_models, load_weights

    pairs = frame("SELECT model_id, epoch FROM metrics ORDER BY model_id, epoch", args.data)
    ids, epochs = pairs["model_id"].tolist(), [int(e) for e in pairs["epoch"]]
    n = len(ids)
    load_model(ids[0], epochs[0], args.data), load_models(ids[:2], epochs[:2], args.data)  # warm-up
    t_one, singles = best_of(args.repeat, lambda: [load_model(m, e, args.data) for m, e in zip(ids, epochs)])
    t_batch, batch = best_of(args.repeat, lambda: load_models(ids, epochs, args.data))
    same = equal_logits(singles, batch)
    groups = frame("SELECT list(model_id ORDER BY model_id) AS ids FROM models GROUP BY zoo, n_params, population",
                   args.data)["ids"].tolist()
    last = max(epochs)
    t_ckpt, _ = best_of(args.repeat, lambda: [load_weights(list(g), last, args.data, source="checkpoint") for g in groups])
    t_table, _ = best_of(args.repeat, lambda: [load_weights(list(g), last, args.data, source="table") for g in groups])
    n_w = sum(len(g) for g in groups)
    rows = [
        {"method": "load_model per model × epoch", "items": n, "seconds": t_one, "per_item_ms": 1e3 * t_one / n},
        {"method": "load_models (one call)", "items": n, "seconds": t_batch, "per_item_ms": 1e3 * t_batch / n},
        {"method": "load_weights from checkpoints, per population", "items": n_w, "seconds": t_ckpt,
         "per_item_ms": 1e3 * t_ckpt / n_w},
        {"method": "load_weights from the weights table, per population", "items": n_w, "seconds": t_table,
         "per_item_ms": 1e3 * t_table / n_w},
    ]
    OUT.mkdir(exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), OUT / "load_models.parquet")
    lines = [f"Loading {n} model-epochs of `{args.data}` ({len(set(ids))} models; warm process, 1 thread, best of "
             f"{args.repeat}). Logits of the two loaders equal for every model: {same}.", "",
             "| method | items | seconds | ms per item | × per-call |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['method']} | {r['items']} | {r['seconds']:.3f} | {r['per_item_ms']:.2f} | "
                     f"{1e3 * t_one / n / r['per_item_ms']:.0f}× |")
    text = "\n".join(lines) + "\n"
    (OUT / "load_models.md").write_text(text)
    print(text)
    if not same:
        raise SystemExit("load_models and load_model disagree")


if __name__ == "__main__":
    main()
