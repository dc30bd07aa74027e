"""Catalog at scale: typical queries over a synthetic catalog of 100,000 models.

Writes models (100k rows), metrics (100k × 10 checkpoints = 1M rows) and spectral
(100k × 10 × 5 layers = 5M rows) in the real schemas with random values, split into
population files like a real zoo (1,000 models per file), builds the DuckDB catalog from
exactly those files (timed: the tables are loaded into the database) and times each query (best of 3, after one warm-up) with DuckDB's default threads on this
machine. Also times the Snakemake DAG build (dry run) of a 10,000-model spec.

    python benchmarks/catalog_scale.py [--models 100000] [--out /tmp/zoo-catalog-bench]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parent.parent
OUT = Path(__file__).resolve().parent / "out"

QUERIES = {
    "filter by hyperparameters": "SELECT model_id, lr, width FROM models WHERE width = 64 AND lr BETWEEN 0.01 AND 0.1 AND seed < 3",
    "join metrics × models, final epoch, group by 2 grid axes": (
        "SELECT m.width, m.lr, avg(f.test_acc) AS acc, count(*) AS n FROM metrics f JOIN models m USING (model_id) "
        "WHERE f.epoch = 90 GROUP BY ALL ORDER BY ALL"),
    "join metrics × spectral (alpha vs accuracy per layer)": (
        "SELECT s.layer, corr(s.alpha, f.test_acc) AS r, count(*) AS n FROM spectral s "
        "JOIN metrics f USING (model_id, epoch) WHERE s.epoch = 90 GROUP BY s.layer ORDER BY s.layer"),
    "group by grid axes with filter on spectral": (
        "SELECT m.width, avg(s.stable_rank) AS sr FROM spectral s JOIN models m USING (model_id) "
        "WHERE s.layer = 'layers.0' AND s.alpha < 4 GROUP BY m.width ORDER BY m.width"),
    "top-k models by test accuracy": (
        "SELECT model_id, test_acc FROM metrics WHERE epoch = 90 AND NOT diverged ORDER BY test_acc DESC LIMIT 10"),
    "count diverged per lr": "SELECT lr, count(*) FILTER (WHERE diverged_epoch IS NOT NULL) AS d FROM models GROUP BY lr",
}


def write_synthetic(data: Path, n_models: int, per_file: int = 1000) -> list[Path]:
    """Write the synthetic tables under ``data``; return every file written (the catalog's inputs)."""
    from zoo.store import write_table
    from zoo.tables import METRICS_SCHEMA, MODELS_SCHEMA

    rng = np.random.default_rng(0)
    epochs = np.array([0, 1, 2, 5, 10, 20, 30, 50, 70, 90])
    layers = [f"layers.{i}" for i in range(5)]
    widths, lrs = np.array([4, 8, 16, 32, 64, 128, 256, 512]), np.logspace(-4, 0, 13)
    files: list[Path] = []
    for start in range(0, n_models, per_file):
        n = min(per_file, n_models - start)
        ids = np.array([f"{i:012x}" for i in range(start, start + n)])
        pop = f"mlp-{start // per_file:010x}"
        models = {c: pa.nulls(n, MODELS_SCHEMA.field(c).type) for c in MODELS_SCHEMA.names}
        models.update(model_id=pa.array(ids), zoo=pa.array(["scale"] * n), population=pa.array([pop] * n),
                      dataset=pa.array(["digits"] * n), arch=pa.array(["mlp"] * n),
                      width=pa.array(rng.choice(widths, n)), depth=pa.array(np.full(n, 4)),
                      lr=pa.array(rng.choice(lrs, n)), batch_size=pa.array(rng.choice([16, 64, 256], n)),
                      seed=pa.array(rng.integers(0, 10, n)), epochs=pa.array(np.full(n, 90)),
                      n_params=pa.array(rng.integers(1000, 100000, n)),
                      diverged_epoch=pa.array(np.where(rng.random(n) < 0.1, 5, 0), mask=rng.random(n) >= 0.1))
        files += [data / f"zoos/scale/{t}/{pop}.parquet" for t in ("models", "metrics", "spectral")]
        write_table(pa.table(models, schema=MODELS_SCHEMA), data / f"zoos/scale/models/{pop}.parquet", "models")
        rid = np.repeat(ids, len(epochs))
        m = len(rid)
        metrics = pa.table({"model_id": rid, "zoo": ["scale"] * m, "population": [pop] * m,
                            "epoch": np.tile(epochs, n), "train_loss": rng.random(m), "train_acc": rng.random(m),
                            "test_loss": rng.random(m), "test_acc": rng.random(m), "ggap": rng.random(m) - 0.5,
                            "diverged": rng.random(m) < 0.05, "wall_s": rng.random(m)}, schema=METRICS_SCHEMA)
        write_table(metrics, data / f"zoos/scale/metrics/{pop}.parquet", "metrics")
        sid = np.repeat(ids, len(epochs) * len(layers))
        k = len(sid)
        cols = {"model_id": sid, "zoo": ["scale"] * k, "population": [pop] * k,
                "epoch": np.tile(np.repeat(epochs, len(layers)), n), "layer": np.tile(layers, n * len(epochs))}
        for c in ("fro_norm", "spectral_norm", "stable_rank", "effective_rank", "hard_rank", "soft_rank",
                  "condition_number", "alpha", "alpha_weighted", "xmin", "ks_distance", "farms_alpha",
                  "mp_softrank", "log_norm", "log_spectral_norm", "entropy"):
            cols[c] = rng.random(k) * 6
        write_table(pa.table(cols), data / f"zoos/scale/spectral/{pop}.parquet", "spectral")
    return files


def time_queries(db: Path) -> list[dict]:
    from zoo.catalog import connect

    con = connect(db)
    rows = []
    for name, sql in QUERIES.items():
        con.sql(sql).fetchall()
        best = float("inf")
        for _ in range(3):
            t = time.perf_counter()
            n = len(con.sql(sql).fetchall())
            best = min(best, time.perf_counter() - t)
        rows.append({"query": name, "seconds": best, "rows": n})
    con.close()
    return rows


def dag_build_seconds(n_models: int = 10_000) -> tuple[float, int]:
    """Dry-run time of a spec with ``n_models`` models, and the number of jobs it plans."""
    spec = OUT / "dag-10k.yaml"
    widths = list(range(8, 8 + 25 * 8, 8))  # 25 widths × 40 lr × 10 seeds = 10,000
    spec.write_text(
        "zoos:\n  scale-10k:\n    dataset: digits\n    model: {arch: mlp, depth: 2}\n"
        f"    grid:\n      width: {widths}\n      lr: {{logspace: [-4, 0, 40]}}\n"
        "    seeds: 10\n    epochs: 10\n    checkpoints: [0, 10]\n"
    )
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    t = time.perf_counter()
    proc = subprocess.run(["snakemake", "-n", "--configfile", str(spec), "-q", "rules"],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t
    jobs = sum(int(line.split()[-1]) for line in proc.stdout.splitlines()
               if line.strip() and line.split()[0] == "total")
    return seconds, jobs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=100_000)
    parser.add_argument("--out", type=Path, default=Path("/tmp/zoo-catalog-bench"))
    parser.add_argument("--skip-dag", action="store_true")
    args = parser.parse_args()
    from zoo.catalog import build_catalog

    data = args.out / "data"
    shutil.rmtree(data, ignore_errors=True)
    t = time.perf_counter()
    files = write_synthetic(data, args.models)
    write_s = time.perf_counter() - t
    t = time.perf_counter()
    build_catalog(data, files=files)
    build_s = time.perf_counter() - t
    db = data / "zoo.duckdb"
    rows = time_queries(db)
    OUT.mkdir(exist_ok=True)
    lines = [f"Synthetic catalog: {args.models:,} models × 10 checkpoints × 5 layers "
             f"({args.models * 10:,} metrics rows, {args.models * 50:,} spectral rows; written in {write_s:.0f} s; "
             f"catalog of {len(files):,} files built and checked in {build_s:.1f} s, {db.stat().st_size / 2**20:.0f} MiB). "
             "Best of 3 after a warm-up, DuckDB default threads, 2 cores.", "",
             "| query | seconds | rows |", "|---|---|---|"]
    lines += [f"| {r['query']} | {r['seconds']:.3f} | {r['rows']} |" for r in rows]
    if not args.skip_dag:
        seconds, jobs = dag_build_seconds()
        lines += ["", f"Snakemake dry run of a 10,000-model spec: {seconds:.1f} s, {jobs} jobs planned."]
    text = "\n".join(lines) + "\n"
    (OUT / "catalog_scale.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
