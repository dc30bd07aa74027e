"""Figures of one zoo for the Snakemake report: learning curves, accuracy over the grid, provenance.

Everything reads the zoo's Parquet tables from its folder (``data/zoos/<zoo>``), so the
figures need no catalog. Plots use matplotlib's Agg backend and are written atomically
as PNG; the provenance page is a small self-contained HTML file.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from zoo.errors import DataError
from zoo.store import atomic_path, read_table

#: Columns that never count as grid axes of a plot.
NOT_AXES = ("seed", "dataset", "arch", "epochs", "optimizer")
MAX_FACETS = 6


#: Where a figure's tables come from: a zoo folder (its current spec's files, from
#: ``spec.json``), or the explicit files per table that a workflow rule passes
#: (``{"models": [...], "metrics": [...], "spec": [...], "benchmarks": [...]}``).
Source = str | Path | Mapping[str, Sequence[str | Path]]


def table_files(source: Source, table: str) -> list[Path]:
    """The files of ``table`` that ``source`` names (never a glob: stale files stay unseen)."""
    if isinstance(source, Mapping):
        return [Path(f) for f in source.get(table, [])]
    from zoo.layout import current_table_files

    return current_table_files(source, table)


def read_zoo(source: Source, table: str) -> Any:
    """The ``table`` files of ``source``, concatenated, as a pandas DataFrame."""
    import pyarrow as pa

    files = table_files(source, table)
    if not files:
        where = f"{source}/{table}/" if not isinstance(source, Mapping) else f"--{table}"
        raise DataError(f"{where}: no Parquet files; run the workflow (snakemake) to train the zoo first")
    return pa.concat_tables([read_table(f, table) for f in files], promote_options="default").to_pandas()


def zoo_name(source: Source, models: Any = None) -> str:
    """The zoo's name: its folder name, or the ``zoo`` column of its models."""
    if not isinstance(source, Mapping):
        return Path(source).resolve().name
    if models is None:
        files = table_files(source, "models")
        models = read_table(files[0], "models").select(["zoo"]).to_pandas() if files else None
    return str(models["zoo"].iloc[0]) if models is not None and len(models) else "zoo"


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
    """Write ``fig`` to ``out`` as PNG atomically, then close it (also when the write fails).

    No ``Software`` tag, so equal figures are equal bytes. A full or read-only disk raises
    a one-line :class:`DataError` (from :func:`zoo.atomic.atomic_path`); the previous
    figure is kept and no temporary is left.
    """
    import matplotlib.pyplot as plt

    try:
        with atomic_path(out) as tmp:
            fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    finally:
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


#: Colours of a categorical axis (matplotlib's tab10: distinguishable, colour-blind safer than viridis steps).
CATEGORICAL = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
               "#bcbd22", "#17becf")
LINESTYLES = ("-", "--", ":", "-.")
MARKERS = ("o", "s", "^", "D", "v", "P")
#: An axis with at most this many values is drawn on a categorical colour scale (legend, not colour bar).
MAX_CATEGORIES = len(CATEGORICAL)


def is_categorical(values: Any) -> bool:
    """Whether an axis' values belong on a categorical colour scale: text, or few distinct numbers.

    A two-valued ``batch_size`` (16, 128) is two categories, not a range from 16 to 128.
    """
    vals = np.asarray(values)
    if not np.issubdtype(vals.dtype, np.number):
        return True
    return len(np.unique(vals[~np.isnan(vals.astype(float))])) <= MAX_CATEGORIES


def colour_by(ax: Any, x: Any, y: Any, values: Any, axis: str, **scatter: Any) -> None:
    """Scatter ``x`` vs ``y`` coloured by a grid axis: a categorical palette with a legend when
    :func:`is_categorical`, else a continuous colour bar (log10 for ranges wider than 20×)."""
    vals = np.asarray(values)
    if is_categorical(vals):
        cats = sorted(set(vals.tolist()), key=lambda v: (isinstance(v, str), v))
        for k, cat in enumerate(cats):
            sel = vals == cat
            ax.scatter(np.asarray(x)[sel], np.asarray(y)[sel], color=CATEGORICAL[k % len(CATEGORICAL)],
                       label=f"{axis}={_fmt(cat)}", **scatter)
        ax.legend(fontsize=8, frameon=False, title=axis, title_fontsize=8)
        return
    v = vals.astype(float)
    log = v.min() > 0 and v.max() / v.min() > 20
    sc = ax.scatter(x, y, c=np.log10(v) if log else v, cmap="viridis", **scatter)
    ax.figure.colorbar(sc, ax=ax, label=f"log10 {axis}" if log else axis)


def add_caption(fig: Any, text: str, width_in: float | None = None, fontsize: float = 9) -> None:
    """Print a figure's caption under it, wrapped to the figure's width, so the report shows it
    next to the figure (Snakemake's report keeps the .rst caption behind an icon)."""
    import textwrap

    width_in = width_in or fig.get_figwidth()
    chars = max(40, int(width_in * 72 / (0.52 * fontsize)))
    # below everything drawn so far (tick labels and axis labels may reach below the figure's edge)
    bottom = fig.get_tightbbox(fig.canvas.get_renderer()).y0 / fig.get_figheight()
    fig.text(0.01, min(0.0, bottom) - 0.01, textwrap.fill(" ".join(text.split()), chars), ha="left", va="top",
             fontsize=fontsize, color="#333333")


def _style_maps(models: Any, axes: Sequence[str]) -> dict[str, dict[Any, Any]]:
    """Colour per value of the 2nd grid axis, line style per value of the 3rd (over the whole zoo)."""
    maps: dict[str, dict[Any, Any]] = {}
    for axis, styles in zip(axes[1:3], (CATEGORICAL, LINESTYLES)):
        values = sorted(models[axis].dropna().unique().tolist(), key=lambda v: (isinstance(v, str), v))
        maps[axis] = {v: styles[k % len(styles)] for k, v in enumerate(values)}
    return maps


def learning_curves(zoo_dir: Source, out: str | Path, n_models: int = 12) -> list[str]:
    """Train loss and test accuracy over epochs of ``n_models`` models spread over the grid.

    Small multiples, so every line can be told apart: one column per value of the first grid
    axis (e.g. width), colour = the second axis (e.g. lr; a categorical palette), line style =
    the third (e.g. batch size), marker = the seed. Loss is mean cross-entropy (nats),
    accuracy a fraction; a red cross marks the epoch at which a model diverged. Returns the
    model ids drawn.
    """
    plt = _pyplot()
    models, metrics = read_zoo(zoo_dir, "models"), read_zoo(zoo_dir, "metrics")
    axes = grid_axes(models)
    chosen = sample_models(models, n_models, axes)
    info = models.set_index("model_id")
    facet = axes[0] if axes and models[axes[0]].nunique() <= MAX_FACETS else None
    columns = sorted({info.at[m, facet] for m in chosen}) if facet else [None]
    styles = _style_maps(models, axes)
    colour_axis, style_axis = (axes[1:2] or [None])[0], (axes[2:3] or [None])[0]
    seeds = sorted(models["seed"].unique().tolist())
    fig, grid = plt.subplots(2, len(columns), figsize=(2.9 * len(columns) + 0.9, 6.6), squeeze=False,
                             sharex=True, sharey="row")
    for j, value in enumerate(columns):
        ax_loss, ax_acc = grid[0][j], grid[1][j]
        for mid in (m for m in chosen if facet is None or info.at[m, facet] == value):
            m = metrics[metrics["model_id"] == mid].sort_values("epoch")
            style = {"color": styles[colour_axis][info.at[mid, colour_axis]] if colour_axis else CATEGORICAL[0],
                     "linestyle": styles[style_axis][info.at[mid, style_axis]] if style_axis else "-",
                     "marker": MARKERS[seeds.index(info.at[mid, "seed"]) % len(MARKERS)], "ms": 4, "lw": 1.6}
            loss = m["train_loss"].where(np.isfinite(m["train_loss"]))
            ax_loss.plot(m["epoch"], loss, **style)
            ax_acc.plot(m["epoch"], m["test_acc"], **style)
            div = info.at[mid, "diverged_epoch"]
            if div is not None and not (isinstance(div, float) and np.isnan(div)):
                ax_acc.plot([div], [m["test_acc"].iloc[-1]], marker="x", ms=10, mew=2, color="crimson", ls="none")
        ax_loss.set_title(f"{facet} = {_fmt(value)}" if facet else "all models", fontsize=11)
        ax_loss.set_yscale("log")
        ax_acc.set(xlabel="epoch", ylim=(0, 1))
        for ax in (ax_loss, ax_acc):
            ax.grid(alpha=0.3)
            ax.tick_params(labelsize=9)
    grid[0][0].set_ylabel("train loss (cross-entropy, nats)")
    grid[1][0].set_ylabel("test accuracy")
    handles, labels = [], []
    from matplotlib.lines import Line2D

    for axis, kind in ((colour_axis, "color"), (style_axis, "linestyle")):
        for v, s in (styles.get(axis) or {}).items():
            handles.append(Line2D([], [], lw=2, **({"color": s} if kind == "color" else {"color": "#444444", "linestyle": s})))
            labels.append(f"{axis} = {_fmt(v)}")
    for k, seed in enumerate(seeds[:len(MARKERS)]):
        handles.append(Line2D([], [], color="#444444", marker=MARKERS[k], ls="none"))
        labels.append(f"seed {seed}")
    handles.append(Line2D([], [], color="crimson", marker="x", mew=2, ls="none"))
    labels.append("diverged")
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    per_row = max(4, int(fig.get_figwidth() * 72 / 95))  # legend entries that fit one row (~95 pt each)
    fig.legend(handles, labels, loc="lower center", bbox_to_anchor=(0.5, 0.93), ncol=min(len(labels), per_row),
               fontsize=9, frameon=False)
    fig.suptitle(f"{zoo_name(zoo_dir, models)}: learning curves of {len(chosen)} of {len(models)} models",
                 y=0.93 + 0.035 * (-(-len(labels) // per_row) + 1), fontsize=12)
    add_caption(fig, f"Each column holds the sampled models of one {facet or 'zoo'} value; colour = "
                f"{colour_axis or '—'}, line style = {style_axis or '—'}, marker = seed. Top: training "
                "cross-entropy (log scale); bottom: test accuracy at each checkpoint. A red × marks the epoch in "
                "which a model diverged; its weights stay frozen from then on.")
    _save(fig, out)
    return chosen


def grid_matrices(zoo_dir: Source, metric: str = "test_acc") -> tuple[list[str], dict[str, Any], dict[str, Any]]:
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


def grid_heatmap(zoo_dir: Source, out: str | Path, metric: str = "test_acc") -> dict[str, Any]:
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
    add_caption(fig, f"Each cell: the final {metric} (last checkpoint) of the models at that {row} × {col}, "
                "mean over seeds" + ("; one panel per value of the further grid axes" if len(values) > 1 else "")
                + ". † = at least one seed diverged (it counts with its last finite weights).",
                width_in=fig.get_figwidth() + 1.0)
    _save(fig, out)
    return values


def _benchmarks(files: Sequence[str | Path]) -> dict[str, dict[str, float]]:
    """Snakemake ``benchmark:`` records of the train rule, per population (s, max_rss MB); absent files skipped."""
    out = {}
    for f in map(Path, files):
        if not f.is_file():
            continue
        lines = f.read_text().strip().splitlines()
        if len(lines) >= 2:
            rec = dict(zip(lines[0].split("\t"), lines[1].split("\t")))
            out[f.stem] = {k: float(rec[k]) for k in ("s", "max_rss") if rec.get(k) not in (None, "", "-", "NA")}
    return out


def provenance(zoo_dir: Source) -> dict[str, Any]:
    """What produced this zoo: spec and its hash, package versions, git commit, per-population jobs."""
    models, metrics = read_zoo(zoo_dir, "models"), read_zoo(zoo_dir, "metrics")
    if isinstance(zoo_dir, Mapping):
        spec_files, bench_files = list(zoo_dir.get("spec", [])), list(zoo_dir.get("benchmarks", []))
    else:
        from zoo.layout import zoo_dir_layout

        lay = zoo_dir_layout(zoo_dir)
        spec_files = [lay.spec]
        bench_files = [lay.benchmark(f"train/{p}") for p in sorted(set(models["population"]))]
    spec = json.loads(Path(spec_files[0]).read_text()) if spec_files and Path(spec_files[0]).is_file() else {}
    bench = _benchmarks(bench_files)
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
                ("zoo_version", "torch_version", "python_version", "git_commit") if c in models}
    return {"zoo": zoo_name(zoo_dir, models), "spec": spec.get("spec", {}), "settings": spec.get("settings", {}),
            "spec_hash": spec.get("spec_hash"), "versions": versions, "populations": pops,
            "models": len(models), "diverged": int(models["diverged_epoch"].notna().sum())}


def provenance_html(zoo_dir: Source, out: str | Path) -> dict[str, Any]:
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
