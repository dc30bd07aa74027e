"""Training speed of this checkout against an earlier commit, on the same host in the same run.

Hosts differ from session to session (this project's machines have been AVX-512 and AVX2
hosts, with single-thread GEMM peaks from 69 to 172 GFLOP/s), so a speed-up between builds
is only meaningful when both are timed side by side. This checks ``--against`` out into a
temporary git worktree, then times ``zoo.train.train_population`` on the same population of
the training benchmark (64-32-10 MLPs on digits, Adam, batch 32, 20 epochs; see
``train_throughput.py``) in fresh processes, alternating the two builds ``--repeats`` times;
the best CPU time of each counts (each process trains the population twice, so allocator warm-up
is not counted). Also checks that both builds train bit-identical weights.

    python benchmarks/compare_builds.py [--against c94bb83] [--models 256] [--repeats 3]

Writes benchmarks/out/compare_builds.md and prints it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = Path(__file__).resolve().parent / "out"

_SNIPPET = """
import hashlib, json, sys, time, torch
torch.set_num_threads(1)
sys.path.insert(0, sys.argv[1])  # this checkout's benchmarks/, for the benchmark's specs
from train_throughput import specs
import zoo
from zoo.data import load_dataset
from zoo.train import train_population
ds = load_dataset("digits")
warm = specs(4, 1)
train_population([m.spec for m in warm], [m.model_id for m in warm], [1], dataset=ds)
ms = specs(int(sys.argv[2]), 20)
cpu = float("inf")
for _ in range(2):  # the second run has the allocator warm, as the training benchmark's repeats do
    t = time.process_time()
    res = train_population([m.spec for m in ms], [m.model_id for m in ms], [20], dataset=ds)
    cpu = min(cpu, time.process_time() - t)
h = hashlib.sha256()
for k in sorted(res.checkpoints[20]):
    h.update(res.checkpoints[20][k].numpy().tobytes())
print(json.dumps({"cpu_s": cpu, "weights_sha256": h.hexdigest(), "zoo": zoo.__file__}))
"""


def time_build(src: Path, models: int) -> dict:
    """One fresh process importing ``zoo`` from ``src``."""
    env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", _SNIPPET, str(ROOT / "benchmarks"), str(models)], env=env,
                         check=True, capture_output=True, text=True, cwd=src)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    if not Path(res["zoo"]).is_relative_to(src):
        raise RuntimeError(f"imported zoo from {res['zoo']}, not from {src}")
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--against", default="c94bb83", help="the earlier commit")
    ap.add_argument("--models", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "old"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", str(old), args.against], check=True)
        try:
            builds = {f"{args.against} (earlier)": old, "this checkout": ROOT}
            runs: dict[str, list[dict]] = {name: [] for name in builds}
            for _ in range(args.repeats):
                for name, src in builds.items():
                    runs[name].append(time_build(src, args.models))
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(old)], check=True)
    best = {name: min(r["cpu_s"] for r in rs) for name, rs in runs.items()}
    hashes = {r["weights_sha256"] for rs in runs.values() for r in rs}
    base = best[f"{args.against} (earlier)"]
    lines = [f"Training one population of {args.models} MLPs (64-32-10, digits, Adam, batch 32, 20 epochs), "
             f"best of {args.repeats} alternating fresh processes per build, CPU seconds; load average "
             f"{os.getloadavg()[0]:.2f} at the end.", "",
             "| build | CPU s / model | × earlier |", "|---|---:|---:|"]
    lines += [f"| {name} | {s / args.models:.4f} | {base / s:.2f}× |" for name, s in best.items()]
    lines += ["", f"Final weights of both builds bit-identical: {'yes' if len(hashes) == 1 else 'NO'}."]
    text = "\n".join(lines) + "\n"
    OUT.mkdir(exist_ok=True)
    (OUT / "compare_builds.md").write_text(text)
    print(text)
    if len(hashes) != 1:
        sys.exit(1)


if __name__ == "__main__":
    main()
