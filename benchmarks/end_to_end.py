"""End to end: a zoo through every per-model stage of the workflow, with CPU seconds per model per stage.

Runs ``snakemake --cores N data/zoo.duckdb`` (train → weights, spectral, landscape → phases
→ catalog, plus whatever else the catalog reads) for one zoo in a scratch folder and times
it, reads every job's Snakemake ``benchmark:`` file for its peak RSS, then re-runs every job
(``--rerun-parallel`` at a time, default ``--cores``) for its exact CPU seconds and start-up
cost: the interpreter's plus every import the job made (Python's ``-X importtime``, lazy
imports included), added up per rule.

By default the zoo is a subset of ``config/large-10k.yaml`` (its grid and settings, fewer
seeds/batch sizes, populations of the same size), and the table extrapolates each stage's
CPU-s per model to the full zoo's model and job counts — labelled as an extrapolation. With
``--full`` it runs ``config/large-10k.yaml`` itself. The full spec's ``--dry-run`` is timed
either way.

    python benchmarks/end_to_end.py [--seeds 12] [--batch-sizes 16 128] [--cores 2] [--full]
        [--rerun-parallel N] [--work /tmp/zoo-e2e]

Writes benchmarks/out/end_to_end.{parquet,md} and prints the table.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
OUT = Path(__file__).resolve().parent / "out"
FULL = ROOT / "config" / "large-10k.yaml"
#: Python's import profiler (``-X importtime``) as an environment variable: every re-run job
#: reports what it imported and how long each import took, lazy imports included.
IMPORT_PROFILE_ENV = {"PYTHONPROFILEIMPORTTIME": "1"}
_IMPORT_LINE = re.compile(r"^import time:\s+\d+ \|\s+(\d+) \| (.*)$")


def subset_config(seeds: int, batch_sizes: list[int]) -> dict:
    """``config/large-10k.yaml`` with fewer seeds and batch sizes (same widths, lrs, epochs, settings)."""
    cfg = yaml.safe_load(FULL.read_text())
    (name, zoo), = cfg["zoos"].items()
    zoo = dict(zoo)
    zoo["seeds"] = seeds
    zoo["grid"] = {**zoo["grid"], "batch_size": batch_sizes}
    return {"settings": cfg.get("settings", {}), "zoos": {f"{name}-subset": zoo}}


def count_models(cfg: dict) -> tuple[int, int]:
    """(models, training jobs) of a config, as the workflow expands it."""
    from zoo.config import load_zoos

    zoos = load_zoos(cfg)
    return sum(len(z.models) for z in zoos.values()), sum(len(z.populations) for z in zoos.values())


def interpreter_cpu_s(repeats: int = 3) -> float:
    """Best CPU seconds (user + system) of a bare ``python -c pass`` (interpreter start and exit)."""
    best = float("inf")
    for _ in range(repeats):
        before = os.times()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        after = os.times()
        best = min(best, (after.children_user - before.children_user) + (after.children_system - before.children_system))
    return best


_GEMM = """
import time, numpy as np
a = np.random.default_rng(0).random((1024, 1024), dtype=np.float32)
a @ a
best = float("inf")
for _ in range(5):
    t = time.perf_counter()
    for _ in range(5):
        a @ a
    best = min(best, time.perf_counter() - t)
print(5 * 2 * 1024 ** 3 / best / 1e9)
"""


def machine_gemm_gflops() -> float:
    """Single-thread float32 GEMM throughput (1024², best of 5 × 5) of this machine right now: the
    yardstick for comparing runs made on different days (a busy or throttled host shows here)."""
    env = {**_env(), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    return float(subprocess.run([sys.executable, "-c", _GEMM], check=True, capture_output=True, text=True,
                                env=env).stdout)


def import_seconds(stderr_text: str) -> tuple[float, str]:
    """Seconds spent importing (sum of the top-level ``-X importtime`` entries, cumulative µs)
    and the text without those lines."""
    total, kept = 0, []
    for line in stderr_text.splitlines(keepends=True):
        m = _IMPORT_LINE.match(line.rstrip("\n"))
        if m:
            if not m.group(2).startswith(" "):
                total += int(m.group(1))
        elif not line.startswith("import time: self [us]"):
            kept.append(line)
    return total / 1e6, "".join(kept)


def read_benchmarks(data: Path) -> dict[str, dict[str, float]]:
    """Per rule: jobs, summed wall and CPU seconds, largest max_rss (MB), from every benchmark TSV."""
    stages: dict[str, dict[str, float]] = defaultdict(lambda: {"jobs": 0, "wall_s": 0.0, "cpu_s": 0.0, "max_rss_mb": 0.0})
    for tsv in data.rglob("benchmarks/**/*.tsv"):
        rule = tsv.parent.name if tsv.parent.name != "benchmarks" else tsv.stem.split("-")[0]
        with tsv.open() as fh:
            for row in csv.DictReader(fh, delimiter="\t"):
                st = stages[rule]
                st["jobs"] += 1
                st["wall_s"] += float(row["s"])
                cpu = row.get("cpu_time", "NA")
                st["cpu_s"] += float(cpu) if cpu not in ("NA", "") else float(row["s"])
                rss = row.get("max_rss", "NA")
                if rss not in ("NA", ""):
                    st["max_rss_mb"] = max(st["max_rss_mb"], float(rss))
    return dict(stages)


def _mb(value: float) -> str:
    """A table cell in MB; "—" for a rule without a ``benchmark:`` file (no peak RSS recorded)."""
    return "—" if value != value else f"{value:,.0f}"


def _env() -> dict[str, str]:
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}


def snakemake(work: Path, configfile: Path, cores: int, *extra: str, log: Path | None = None) -> float:
    """Wall seconds of one snakemake call in ``work`` (the repository's Snakefile); output to ``log``."""
    cmd = [sys.executable, "-m", "snakemake", *extra, "-s", str(ROOT / "Snakefile"), "--directory", str(work),
           "--configfile", str(configfile), "--cores", str(cores)]
    t = time.perf_counter()
    with (log.open("w") if log else open(os.devnull, "w")) as out:
        subprocess.run(cmd, check=True, env=_env(), cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    return time.perf_counter() - t


def jobs_of(log: Path) -> list[tuple[str, str, str | None]]:
    """``(rule, shell command, population)`` of every job a snakemake log shows (printshellcmds)."""
    jobs, rule, population = [], None, None
    for line in log.read_text().splitlines():
        m = re.match(r"^(?:local)?rule (\w+):", line)
        if m:
            rule, population = m.group(1), None
        elif line.strip().startswith("wildcards:") and "population=" in line:
            population = line.split("population=")[1].split(",")[0].strip()
        elif line.startswith("Shell command:") and rule:
            jobs.append((rule, line[len("Shell command:"):].strip(), population))
            rule = None
    return jobs


def _run_measured(cmd: str, work: Path) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one job command: user + system of its whole process tree,
    from ``wait4`` on its shell (which waits for, hence accounts, every child)."""
    t = time.perf_counter()
    proc = subprocess.Popen(["bash", "-c", cmd], cwd=work, env={**_env(), **IMPORT_PROFILE_ENV})
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise subprocess.CalledProcessError(proc.returncode, cmd)
    return usage.ru_utime + usage.ru_stime, time.perf_counter() - t


def measure_jobs(work: Path, jobs: list[tuple[str, str, str | None]], zoo: str,
                 parallel: int = 1) -> tuple[dict[str, dict[str, float]], list[dict]]:
    """Re-run every job's command, ``parallel`` at a time, for its exact CPU seconds (user +
    system of the whole process tree; Snakemake's benchmark ``cpu_time`` is sampled and misses
    short jobs) and its start-up: the interpreter plus every import the job made (``-X
    importtime``, read from the job's log, then removed from it). Returns per-stage totals and
    one row per job. Every output already exists and is written atomically with the same
    content, so the order of the re-runs does not matter."""
    from concurrent.futures import ThreadPoolExecutor

    from zoo.jobs import read_population

    interpreter = interpreter_cpu_s()
    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        measured = list(pool.map(lambda job: _run_measured(job[1], work), jobs))
    stages: dict[str, dict[str, float]] = defaultdict(
        lambda: {"jobs": 0, "cpu_s": 0.0, "alone_wall_s": 0.0, "models": 0, "startup_s": 0.0})
    per_job = []
    for (rule, cmd, population), (cpu, wall) in zip(jobs, measured):
        log = re.search(r"(?:2>|>) (\S+)(?: 2>&1)?\s*$", cmd)  # the job's stderr: `2> log` or `> log 2>&1`
        imports = 0.0
        if log and (work / log.group(1)).is_file():
            imports, rest = import_seconds((work / log.group(1)).read_text())
            (work / log.group(1)).write_text(rest)
        models = len(read_population(work / "data" / "zoos" / zoo / "populations" / f"{population}.json").model_ids) \
            if population else 0
        st = stages[rule]
        st["jobs"] += 1
        st["cpu_s"] += cpu
        st["alone_wall_s"] += wall
        st["models"] += models
        st["startup_s"] += interpreter + imports
        per_job.append({"stage": rule, "population": population or "", "models": models, "cpu_s": cpu,
                        "import_s": imports, "startup_s": interpreter + imports})
    return dict(stages), per_job


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=12)
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[16, 128])
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--full", action="store_true", help="run config/large-10k.yaml itself")
    ap.add_argument("--work", default="/tmp/zoo-e2e")
    ap.add_argument("--keep", action="store_true", help="keep an existing work folder (resume a run)")
    ap.add_argument("--reuse", action="store_true", help="with --keep: do not re-run snakemake, only measure its jobs")
    ap.add_argument("--rerun-parallel", type=int, default=None,
                    help="jobs re-run at a time for their CPU seconds (default: --cores; 1 = each job alone)")
    args = ap.parse_args()
    work = Path(args.work)
    if work.exists() and not args.keep:
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    full_cfg = yaml.safe_load(FULL.read_text())
    cfg = full_cfg if args.full else subset_config(args.seeds, args.batch_sizes)
    cfg_path = work / "config.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    n_models, n_pops = count_models(cfg)
    n_full, n_full_pops = count_models(full_cfg)

    gemm_before = machine_gemm_gflops()
    dry = work / "dry-run"
    dry.mkdir(exist_ok=True)
    dry_s = snakemake(dry, FULL, 1, "--dry-run")
    log = work / "snakemake.log"
    load_before = os.getloadavg()
    if args.reuse and log.exists():  # a finished run: only the per-job measurement is redone
        wall = float(json.loads((work / "run.json").read_text())["wall_s"])
    else:
        wall = snakemake(work, cfg_path, args.cores, "data/zoo.duckdb", log=log)
        (work / "run.json").write_text(json.dumps({"wall_s": wall}))
    load_after = os.getloadavg()
    gemm_after = machine_gemm_gflops()
    parallel = read_benchmarks(work / "data")
    zoo_name = next(iter(cfg["zoos"]))
    rerun_parallel = args.rerun_parallel or args.cores
    stages, per_job = measure_jobs(work, jobs_of(log), zoo_name, rerun_parallel)
    rows = []
    for rule, st in sorted(stages.items(), key=lambda kv: -kv[1]["cpu_s"]):
        start = st["startup_s"] / st["jobs"]  # mean start-up of one job of this stage
        models = st["models"] or n_models  # per-zoo rules (phases, catalog, figures) see every model
        per_model = st["cpu_s"] / models
        startup = min(1.0, start * st["jobs"] / max(st["cpu_s"], 1e-9))
        per_population = st["models"] > 0
        jobs_full = st["jobs"] * n_full_pops / max(n_pops, 1) if per_population else st["jobs"]
        work_full = (st["cpu_s"] - start * st["jobs"]) * (n_full / n_models)
        cpu_full = max(work_full, 0.0) + start * jobs_full
        rows.append({"stage": rule, "jobs": int(st["jobs"]), "cpu_s": st["cpu_s"], "alone_wall_s": st["alone_wall_s"],
                     "cpu_s_per_model": per_model, "startup_share": startup,
                     "max_rss_mb": parallel.get(rule, {}).get("max_rss_mb", float("nan")),
                     "full_jobs": jobs_full, "full_cpu_s": cpu_full, "startup_cpu_s": start})
    total_cpu = sum(r["cpu_s"] for r in rows)
    full_cpu = sum(r["full_cpu_s"] for r in rows)
    full_startup = sum(r["startup_cpu_s"] * r["full_jobs"] for r in rows) / max(full_cpu, 1e-9)
    OUT.mkdir(exist_ok=True)
    import pyarrow as pa
    import pyarrow.parquet as pq

    startup_total = sum(r["startup_cpu_s"] * r["jobs"] for r in rows)
    meta = {"models": n_models, "populations": n_pops, "wall_s": wall, "cores": args.cores,
            "startup_s_per_job": {r["stage"]: r["startup_cpu_s"] for r in rows},
            "dry_run_full_s": dry_s, "full_models": n_full, "full_populations": n_full_pops,
            "load_before": load_before[0], "load_after": load_after[0], "full": args.full,
            "rerun_parallel": rerun_parallel, "gemm_gflops_before": gemm_before, "gemm_gflops_after": gemm_after}
    table = pa.Table.from_pylist(rows).replace_schema_metadata({"run": json.dumps(meta)})
    pq.write_table(table, OUT / "end_to_end.parquet")
    pq.write_table(pa.Table.from_pylist(per_job), OUT / "end_to_end_jobs.parquet")
    what = "config/large-10k.yaml" if args.full else (
        f"a subset of config/large-10k.yaml ({args.seeds} seeds, batch sizes {args.batch_sizes}; same widths, "
        f"learning rates, epochs, checkpoints, population size)")
    lines = [f"End to end on {what}: {n_models:,} models in {n_pops} populations, `snakemake --cores {args.cores}`, "
             f"{wall:,.0f} s wall ({wall / 60:.1f} min); load average {load_before[0]:.2f} before, {load_after[0]:.2f} "
             f"after; single-thread GEMM {gemm_before:.0f} GFLOP/s before, {gemm_after:.0f} after. CPU seconds: every job re-run afterwards, {rerun_parallel} at a time "
             f"(exact user + system time of its process tree). "
             f"Start-up: the interpreter plus every import the job made, measured in that re-run (`-X importtime`). "
             f"`snakemake --dry-run` of the full {n_full:,}-model spec: {dry_s:.1f} s.", ""]
    extra = "" if args.full else f" extrapolated to {n_full:,} models: jobs | CPU s |"
    lines += ["| stage | jobs | CPU s | CPU s / model | start-up s / job | start-up share | max RSS MB |" + extra,
              "|---|---:|---:|---:|---:|---:|---:|" + ("" if args.full else "---:|---:|")]
    for r in rows:
        lines.append(f"| {r['stage']} | {r['jobs']} | {r['cpu_s']:,.1f} | {r['cpu_s_per_model']:.4f} | "
                     f"{r['startup_cpu_s']:.2f} | {100 * r['startup_share']:.1f}% | {_mb(r['max_rss_mb'])} |"
                     + ("" if args.full else f" {r['full_jobs']:.0f} | {r['full_cpu_s']:,.0f} |"))
    lines.append(f"| **all** | {sum(r['jobs'] for r in rows)} | {total_cpu:,.1f} | {total_cpu / n_models:.4f} | | "
                 f"{100 * startup_total / max(total_cpu, 1e-9):.1f}% | |"
                 + ("" if args.full else f" {sum(r['full_jobs'] for r in rows):.0f} | {full_cpu:,.0f} |"))
    if not args.full:
        lines += ["", f"Extrapolation (not a measurement): {n_full:,} models would need ≈ {full_cpu:,.0f} CPU-s, i.e. "
                  f"≈ {full_cpu / args.cores / 60:,.0f} min wall on {args.cores} dedicated cores if the jobs keep both "
                  f"busy; start-up ≈ {100 * full_startup:.0f}% of it."]
    text = "\n".join(lines) + "\n"
    (OUT / "end_to_end.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
