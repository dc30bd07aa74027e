"""Figures of one zoo for the Snakemake report: learning curves, accuracy over the grid, provenance.

Everything reads the zoo's Parquet tables from its folder (``data/zoos/<zoo>``), so the
figures need no catalog. Plots use matplotlib's Agg backend and are written atomically
as PNG; the provenance page is a small self-contained HTML file.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from zoo.errors import DataError
from zoo.store import atomic_path, read_table

#: Columns that never count as grid axes of a plot.
NOT_AXES = ("seed", "dataset", "arch", "epochs", "optimizer")
MAX_FACETS = 6


def read_zoo(zoo_dir: str | Path, table: str) -> Any:
    """All ``<zoo_dir>/<table>/*.parquet`` files of one table, concatenated, as a pandas DataFrame."""
    import pyarrow as pa

    files = sorted(Path(zoo_dir).glob(f"{table}/*.parquet"))
    if not files:
        raise DataError(f"{zoo_dir}/{table}/: no Parquet files; run the workflow (snakemake) to train the zoo first")
    return pa.concat_tables([read_table(f, table) for f in files], promote_options="default").to_pandas()


def zoo_name(zoo_dir: str | Path) -> str:
    """The zoo's name (its folder name)."""
    return Path(zoo_dir).resolve().name


def grid_axes(models: Any) -> list[str]:
    """Hyperparameters that vary across the zoo's models, in ``HYPERPARAMETER_COLUMNS`` order.

    That order puts architecture (load-like: depth, width, channels) before optimizer
    (temperature-like: lr, momentum, weight decay, batch size), as ``zoo summary`` does;
    the first two are the heatmap's rows and columns.
    """
    from zoo.tables import HYPERPARAMETER_COLUMNS

    return [c for c in HYPERPARAMETER_COLUMNS
            if c in models and c not in NOT_AXES and models[c].nunique(dropna=True) > 1]


def final_metrics(models: Any, metrics: Any) -> Any:
    """One row per model: its metrics at its last checkpoint, joined with its hyperparameters."""
    last = metrics.loc[metrics.groupby("model_id")["epoch"].idxmax()]
    return models.merge(last.drop(columns=["zoo", "population"], errors="ignore"), on="model_id")


def _fmt(v: Any) -> str:
    if isinstance(v, (float, np.floating)):
        return f"{v:.3g}"
    return str(v)


def _save(fig: Any, out: str | Path) -> None:
    import matplotlib.pyplot as plt

    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def sample_models(models: Any, n: int, axes: Sequence[str]) -> list[str]:
    """``n`` model ids spread evenly over the grid (sorted by the axes, then seed, then id)."""
    keys = [a for a in axes if a in models] + [c for c in ("seed", "model_id") if c in models]
    ordered = models.sort_values(keys)["model_id"].tolist()
    if len(ordered) <= n:
        return ordered
    idx = np.unique(np.linspace(0, len(ordered) - 1, n).round().astype(int))
    return [ordered[i] for i in idx]


def learning_curves(zoo_dir: str | Path, out: str | Path, n_models: int = 12) -> list[str]:
    """Train loss and test accuracy over epochs of ``n_models`` models spread over the grid.

    Loss is mean cross-entropy (nats), accuracy a fraction; a cross marks the epoch at
    which a model diverged. Returns the model ids drawn.
    """
    plt = _pyplot()
    models, metrics = read_zoo(zoo_dir, "models"), read_zoo(zoo_dir, "metrics")
    axes = grid_axes(models)
    chosen = sample_models(models, n_models, axes)
    info = models.set_index("model_id")
    cmap = plt.get_cmap("viridis")
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4.2))
    for k, mid in enumerate(chosen):
        m = metrics[metrics["model_id"] == mid].sort_values("epoch")
        label = " ".join(f"{a}={_fmt(info.at[mid, a])}" for a in axes) + f" s={info.at[mid, 'seed']}"
        color = cmap(k / max(len(chosen) - 1, 1))
        loss = m["train_loss"].where(np.isfinite(m["train_loss"]))
        ax_loss.plot(m["epoch"], loss, marker="o", ms=3, color=color, label=label)
        ax_acc.plot(m["epoch"], m["test_acc"], marker="o", ms=3, color=color)
        div = info.at[mid, "diverged_epoch"]
        if div is not None and not (isinstance(div, float) and np.isnan(div)):
            ax_acc.plot([div], [m["test_acc"].iloc[-1]], marker="x", ms=9, color="crimson")
    ax_loss.set(xlabel="epoch", ylabel="train loss (cross-entropy, nats)", yscale="log", title="training loss")
    ax_acc.set(xlabel="epoch", ylabel="test accuracy", ylim=(0, 1), title="test accuracy (× = diverged)")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
    fig.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=7, frameon=False)
    fig.suptitle(f"{zoo_name(zoo_dir)}: learning curves of {len(chosen)} of {len(models)} models")
    fig.tight_layout()
    _save(fig, out)
    return chosen


def grid_matrices(zoo_dir: str | Path, metric: str = "test_acc") -> tuple[list[str], dict[str, Any], dict[str, Any]]:
    """Mean final ``metric`` over seeds on the two main grid axes, one matrix per facet.

    Facets are the values of the further varying axes (at most ``MAX_FACETS`` panels;
    with more, the further axes are averaged too). Returns ``(axes, {facet: DataFrame
    rows=axes[0] × cols=axes[1]}, {facet: DataFrame of the fraction of diverged models})``.
    """
    models, metrics = read_zoo(zoo_dir, "models"), read_zoo(zoo_dir, "metrics")
    if metric not in metrics:
        raise DataError(f"{zoo_dir}: the metrics table has no column {metric!r}; choose one of {', '.join(metrics.columns)}")
    axes = grid_axes(models)
    final = final_metrics(models, metrics)
    if not axes:
        final["_"], axes = "all", ["_"]
    if len(axes) == 1:
        final["__"], axes = "", axes + ["__"]
    row, col, rest = axes[0], axes[1], axes[2:]
    n_facets = len(final.groupby(rest)) if rest else 1
    facets = final.groupby(rest) if rest and n_facets <= MAX_FACETS else [((), final)]
    values, diverged = {}, {}
    for key, part in facets:
        key = key if isinstance(key, tuple) else (key,)
        name = ", ".join(f"{a}={_fmt(v)}" for a, v in zip(rest, key)) if key else "all models"
        values[name] = part.pivot_table(index=row, columns=col, values=metric, aggfunc="mean")
        diverged[name] = part.assign(d=part["diverged"].astype(float)).pivot_table(index=row, columns=col, values="d", aggfunc="mean")
    return axes[:2], values, diverged


def grid_heatmap(zoo_dir: str | Path, out: str | Path, metric: str = "test_acc") -> dict[str, Any]:
    """Heatmap of the mean final ``metric`` over the two main grid axes; returns the matrices drawn.

    A dagger marks cells where at least one seed diverged.
    """
    plt = _pyplot()
    (row, col), values, diverged = grid_matrices(zoo_dir, metric)
    n = len(values)
    first = next(iter(values.values()))
    w = 1.2 + 0.75 * first.shape[1]
    fig, axs = plt.subplots(1, n, figsize=(w * n + 1.2, 0.6 * first.shape[0] + 1.8), squeeze=False)
    bounded = metric.endswith("acc")
    all_vals = np.concatenate([v.to_numpy(dtype=float).ravel() for v in values.values()])
    vmin, vmax = (0.0, 1.0) if bounded else (np.nanmin(all_vals), np.nanmax(all_vals))
    im = None
    for ax, (name, mat) in zip(axs[0], values.items()):
        arr = mat.to_numpy(dtype=float)
        im = ax.imshow(arr, cmap="viridis", vmin=vmin, vmax=vmax, aspect="auto", origin="lower")
        ax.set_xticks(range(arr.shape[1]), [_fmt(c) for c in mat.columns], rotation=45)
        ax.set_yticks(range(arr.shape[0]), [_fmt(r) for r in mat.index])
        ax.set(xlabel=col, ylabel=row, title=name)
        div = diverged[name].reindex(index=mat.index, columns=mat.columns).to_numpy(dtype=float)
        for i in range(arr.shape[0]):
            for j in range(arr.shape[1]):
                if np.isnan(arr[i, j]):
                    continue
                mark = "†" if div[i, j] > 0 else ""
                ax.text(j, i, f"{arr[i, j]:.2f}{mark}", ha="center", va="center", fontsize=8,
                        color="white" if (arr[i, j] - vmin) < 0.55 * (vmax - vmin) else "black")
    fig.colorbar(im, ax=axs[0].tolist(), label=f"final {metric} (mean over seeds)")
    fig.suptitle(f"{zoo_name(zoo_dir)}: final {metric} over {row} × {col}  († = a seed diverged)")
    _save(fig, out)
    return values


def _benchmarks(zoo_dir: Path) -> dict[str, dict[str, float]]:
    """Snakemake ``benchmark:`` records of the train rule, per population (s, max_rss MB)."""
    out = {}
    for f in sorted(zoo_dir.glob("benchmarks/train/*.tsv")):
        lines = f.read_text().strip().splitlines()
        if len(lines) >= 2:
            rec = dict(zip(lines[0].split("\t"), lines[1].split("\t")))
            out[f.stem] = {k: float(rec[k]) for k in ("s", "max_rss") if rec.get(k) not in (None, "", "-", "NA")}
    return out


def provenance(zoo_dir: str | Path) -> dict[str, Any]:
    """What produced this zoo: spec and its hash, package versions, git commit, per-population jobs."""
    zoo_dir = Path(zoo_dir)
    models, metrics = read_zoo(zoo_dir, "models"), read_zoo(zoo_dir, "metrics")
    spec = json.loads((zoo_dir / "spec.json").read_text()) if (zoo_dir / "spec.json").is_file() else {}
    bench = _benchmarks(zoo_dir)
    final = final_metrics(models, metrics)
    pops = []
    for pop, part in models.groupby("population", sort=True):
        b = bench.get(pop, {})
        wall = float(metrics.loc[metrics["population"] == pop, "wall_s"].groupby(metrics["model_id"]).max().sum())
        pops.append({"population": pop, "models": len(part), "diverged": int(part["diverged_epoch"].notna().sum()),
                     "n_params": int(part["n_params"].iloc[0]),
                     "mean_final_test_acc": float(final.loc[final["population"] == pop, "test_acc"].mean()),
                     "train_s": wall, "job_s": b.get("s"), "max_rss_mb": b.get("max_rss")})
    versions = {c: sorted({str(v) for v in models[c].dropna()}) for c in
                ("zoo_version", "torch_version", "python_version", "git_commit", "zoo_spec_hash") if c in models}
    return {"zoo": zoo_name(zoo_dir), "spec": spec.get("spec", {}), "settings": spec.get("settings", {}),
            "spec_hash": spec.get("spec_hash"), "versions": versions, "populations": pops,
            "models": len(models), "diverged": int(models["diverged_epoch"].notna().sum())}


def provenance_html(zoo_dir: str | Path, out: str | Path) -> dict[str, Any]:
    """Write the provenance record as a small self-contained HTML page; return the record."""
    rec = provenance(zoo_dir)
    esc = html.escape
    rows = "".join(
        "<tr>" + "".join(f"<td>{esc(_cell(p[k]))}</td>" for k in p) + "</tr>" for p in rec["populations"])
    head = "".join(f"<th>{esc(k)}</th>" for k in (rec["populations"][0] if rec["populations"] else {}))
    vers = "".join(f"<tr><th>{esc(k)}</th><td>{esc(', '.join(v) or '—')}</td></tr>" for k, v in rec["versions"].items())
    jobs_s = sum(p["job_s"] or 0.0 for p in rec["populations"])
    text = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>provenance of {esc(rec['zoo'])}</title>
<style>body{{font-family:sans-serif;font-size:14px;margin:1em}} table{{border-collapse:collapse;margin:.5em 0}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:left}} th{{background:#f3f3f3}}
pre{{background:#f7f7f7;padding:.6em;font-size:12px}}</style></head><body>
<h2>Provenance of zoo <code>{esc(rec['zoo'])}</code></h2>
<p>{rec['models']} models in {len(rec['populations'])} populations, {rec['diverged']} diverged;
training jobs took {jobs_s:.1f} s in total (Snakemake benchmark records).</p>
<table><tr><th>spec hash</th><td>{esc(str(rec['spec_hash']))}</td></tr>{vers}</table>
<h3>Populations (one training job each)</h3>
<table><tr>{head}</tr>{rows}</table>
<p><small>train_s: training time measured inside the job; job_s and max_rss_mb: the job's wall time and peak memory
(MB) from Snakemake's <code>benchmark:</code> file, empty when absent.</small></p>
<h3>Zoo spec</h3><pre>{esc(_yaml(rec['spec']))}</pre>
<h3>Settings</h3><pre>{esc(_yaml(rec['settings']) if rec['settings'] else '(defaults)')}</pre>
</body></html>
"""
    with atomic_path(out) as tmp:
        tmp.write_text(text)
    return rec


def _yaml(obj: Any) -> str:
    import yaml

    return yaml.safe_dump(obj, sort_keys=False, default_flow_style=None, width=100)


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return "" if np.isnan(v) else f"{v:.4g}"
    return str(v)


__all__ = ["grid_axes", "grid_heatmap", "grid_matrices", "learning_curves", "provenance", "provenance_html",
           "read_zoo", "sample_models"]
