"""Report figures of one zoo beyond training: the learner benchmark and the weight spectra (ESDs).

- :func:`learner_figure`: Kendall τ (or accuracy, for classification tasks such as
  ``phase``) of every learner × augmentation of the ``results`` table, mean ± standard
  deviation over learner seeds, one panel per task × split. Controls — learners that see no
  weights (names starting ``hparams``, e.g. ``hparams-gbm``: only the spec's
  hyperparameters) and the augmentation ``none`` — are drawn too, hatched / first.
- :func:`esd_figure`: WeightWatcher's picture of a layer, for a few models spread over test
  accuracy at their last checkpoint: the ESD (eigenvalues λ of WᵀW, no 1/N, conv kernels
  sliced and scaled by ½ as WeightWatcher does, see :mod:`zoo.spectral`) as a log-log
  density, the fitted power law ``p(λ) ∝ λ^−α`` from ``xmin`` on, and ``xmin`` marked. The
  fit (α, xmin, D) is read from the ``spectral`` table, so the picture shows exactly the
  stored numbers; the eigenvalues are recomputed from the checkpoint.

Both read exactly the files they are given (the rules in ``workflow/rules/figures.smk``
pass the current spec's files) and write PNG atomically (:func:`zoo.plots._save`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from zoo.errors import DataError
from zoo.plots import CATEGORICAL, _fmt, _pyplot, _save, add_caption, grid_axes

#: Learners that see no weights: the baseline every weight-space learner must beat.
CONTROL_PREFIXES = ("hparams",)
#: Fit rules of a real power-law fit (not the whole-spectrum fallback; as the alpha figure counts them).
FITTED_RULES = ("ww_standard", "ww_small_n")
#: The augmentation that is the no-augmentation control.
NO_AUGMENT = "none"


def _read(files: Sequence[str | Path], table: str) -> Any:
    import pyarrow as pa

    from zoo.store import read_table

    if not files:
        raise DataError(f"no {table} files given; run the workflow (snakemake) to build the {table} table first")
    return pa.concat_tables([read_table(f, table) for f in files], promote_options="default").to_pandas()


def is_control(learner: str) -> bool:
    """Whether ``learner`` is a control that sees no weights (e.g. ``hparams-gbm``)."""
    return str(learner).startswith(CONTROL_PREFIXES)


def learner_summary(results: Sequence[str | Path]) -> Any:
    """One row per zoo × task × split × learner × augment: the score drawn, its mean, std and n over seeds.

    The score is ``accuracy`` where the task is a classification (accuracy is finite), else
    ``kendall_tau``. Rows whose status is not ``ok`` count in ``n_failed`` with their notes.
    """
    import pandas as pd

    df = _read(results, "results")
    out = []
    for key, g in df.groupby(["zoo", "task", "split", "learner", "augment"], sort=False):
        ok = g[g["status"].fillna("ok") == "ok"] if "status" in g else g
        metric = "accuracy" if "accuracy" in ok and np.isfinite(ok["accuracy"].astype(float)).any() else "kendall_tau"
        vals = ok[metric].astype(float).to_numpy() if len(ok) else np.array([])
        vals = vals[np.isfinite(vals)]
        notes = sorted({str(n) for n in g.get("note", pd.Series(dtype=str)).dropna() if str(n)})
        out.append(dict(zip(["zoo", "task", "split", "learner", "augment"], key), metric=metric, n=len(vals),
                        mean=float(vals.mean()) if len(vals) else np.nan,
                        std=float(vals.std(ddof=1)) if len(vals) > 1 else np.nan,
                        n_failed=int(len(g) - len(ok)), note="; ".join(notes)))
    return pd.DataFrame(out)


def _learner_order(learners: Sequence[str]) -> list[str]:
    """Weight-space learners first (alphabetical), controls last."""
    return sorted(set(learners), key=lambda s: (is_control(s), s))


def _augment_order(augments: Sequence[str]) -> list[str]:
    return sorted(set(augments), key=lambda a: (a != NO_AUGMENT, a))


def learner_figure(results: Sequence[str | Path], out: str | Path) -> Any:
    """τ / accuracy per learner × augmentation, mean ± std over seeds; returns the summary drawn."""
    from matplotlib.patches import Patch

    plt = _pyplot()
    summary = learner_summary(results)
    panels = list(summary.groupby(["task", "split"], sort=True))
    learners = _learner_order(summary["learner"])
    augments = _augment_order(summary["augment"])
    colours = {a: ("#9e9e9e" if a == NO_AUGMENT else CATEGORICAL[k % len(CATEGORICAL)])
               for k, a in enumerate(augments)}
    bar_h = 0.8 / len(augments)
    height = 1.4 + 0.34 * len(learners) * len(augments)
    fig, axes = plt.subplots(1, len(panels), figsize=(max(6.5, 5.6 * len(panels)), height + 1.0), squeeze=False)
    for ax, ((task, split), part) in zip(axes[0], panels):
        metric = part["metric"].iloc[0]
        label_x = []
        for i, learner in enumerate(learners):
            for k, augment in enumerate(augments):
                row = part[(part["learner"] == learner) & (part["augment"] == augment)]
                y = i + (k - (len(augments) - 1) / 2) * bar_h
                if row.empty:
                    continue
                r = row.iloc[0]
                if r["n"] == 0:
                    ax.text(0.0, y, f"  no result ({r['note'] or 'failed'})", va="center", fontsize=8, color="#b00020")
                    continue
                err = r["std"] if np.isfinite(r["std"]) else None
                ax.barh(y, r["mean"], height=bar_h * 0.9, color=colours[augment], xerr=err, capsize=3,
                        hatch="//" if is_control(learner) else None, edgecolor="#333333", linewidth=0.6)
                spread = f" ± {r['std']:.3f}" if err is not None else ""
                ax.text(max(r["mean"], 0) + (err or 0) + 0.01, y, f"{r['mean']:.3f}{spread} (n={r['n']})",
                        va="center", fontsize=8)
                label_x.append(r["mean"] + (err or 0))
        ax.set_yticks(range(len(learners)), [f"{lr}\n(control)" if is_control(lr) else lr for lr in learners],
                      fontsize=10)
        ax.invert_yaxis()
        top = max([1.0 if metric == "accuracy" else 0.0, *label_x]) + 0.25
        lo = min([0.0, *(part["mean"] - part["std"].fillna(0)).dropna()])
        ax.set_xlim(lo - 0.02 if lo < 0 else 0, top)
        ax.axvline(0, color="#333333", lw=0.8)
        name = "accuracy" if metric == "accuracy" else "Kendall τ"
        ax.set_xlabel(f"{name} on held-out models (mean ± std over seeds)", fontsize=10)
        ax.set_title(f"task {task}, split {split}", fontsize=11)
        ax.tick_params(axis="x", labelsize=9)
        ax.grid(axis="x", alpha=0.3)
    top = 1 - 0.4 / fig.get_figheight()
    fig.tight_layout(rect=(0, 0, 1, top))
    fig.legend(handles=[Patch(fc=colours[a], ec="#333333", label=f"augment {a}") for a in augments],
               loc="lower center", ncol=len(augments), fontsize=10, frameon=False, bbox_to_anchor=(0.5, top))
    zoo_name = str(summary["zoo"].iloc[0]) if len(summary) else "zoo"
    fig.suptitle(f"{zoo_name}: weight-space learners", fontsize=12, y=top + 0.45 / fig.get_figheight())
    add_caption(fig, "Each bar: one learner × augmentation, its score on the held-out models averaged over learner "
                "seeds (n = seeds; the error bar is their standard deviation, absent for one seed). Kendall τ ranks "
                "predicted against true values (1 = perfect order, 0 = none). Grey = no augmentation; hatched rows "
                "are controls that never see the weights.")
    _save(fig, out)
    return summary


# ------------------------------------------------------------------------------------ ESD

def esd(weights: Any) -> np.ndarray:
    """Eigenvalues (ascending) of one layer's ESD as WeightWatcher 0.7.7 forms it: λ = σ² of W,
    conv kernels ``[out, in, kh, kw]`` cut into ``kh·kw`` slices scaled by √½ and pooled."""
    from zoo.spectral import _as_stack, _to_numpy, singular_values

    mats, scale = _as_stack(_to_numpy(weights)[None])
    sv = singular_values(mats).reshape(-1)
    return np.sort(sv * sv * scale)


def pick_esd_models(models: Any, metrics: Any, spectral: Any, n: int = 3) -> list[str]:
    """``n`` non-diverged models at their last checkpoint spread over test accuracy (best, …, worst)
    whose every layer WeightWatcher would analyse and fits with one of its rules (:data:`FITTED_RULES`) —
    so each panel shows a real fit, not the whole-spectrum fallback of a 2-unit layer."""
    last = metrics.loc[metrics.groupby("model_id")["epoch"].idxmax()]
    last = last[~last["diverged"].astype(bool)]
    s = spectral.merge(last[["model_id", "epoch"]], on=["model_id", "epoch"])
    s = s.assign(real_fit=s["fit_rule"].isin(FITTED_RULES) & s["ww_analyzed"].astype(bool))
    good = s.groupby("model_id")["real_fit"].all()
    cand = last[last["model_id"].isin(good[good].index)].sort_values(["test_acc", "model_id"], ascending=[False, True])
    if cand.empty:  # tiny layers only: fall back to any fit
        cand = last.sort_values(["test_acc", "model_id"], ascending=[False, True])
    if cand.empty:
        raise DataError("every model diverged; the ESD figure needs one with finite weights")
    idx = np.unique(np.linspace(0, len(cand) - 1, min(n, len(cand))).round().astype(int))
    return cand["model_id"].iloc[idx].tolist()


def esd_figure(checkpoints: Sequence[str | Path], spectral: Sequence[str | Path], metrics: Sequence[str | Path],
               models: Sequence[str | Path], out: str | Path, n_models: int = 3) -> list[str]:
    """ESD per layer with the fitted power law and xmin, for ``n_models`` models; returns their ids.

    ``checkpoints`` are the population checkpoint files; a model's is the one named after its
    population (``<population>.safetensors``), as the rule declares them.
    """
    from zoo.store import load_checkpoints

    plt = _pyplot()
    mod, met, spec = _read(models, "models"), _read(metrics, "metrics"), _read(spectral, "spectral")
    zoo_name = str(mod["zoo"].iloc[0]) if len(mod) else "zoo"
    try:
        chosen = pick_esd_models(mod, met, spec, n_models)
    except DataError as exc:  # a stage that cannot apply draws its note; it never fails the workflow
        note_figure(out, f"{zoo_name}: ESD figure skipped", str(exc))
        return []
    by_pop = {Path(c).name.removesuffix(".safetensors"): Path(c) for c in checkpoints}
    info = mod.drop_duplicates("model_id").set_index("model_id")
    axes_cols = grid_axes(mod)
    layers = sorted(spec["layer"].unique(), key=_natural)
    fig, grid = plt.subplots(len(chosen), len(layers), figsize=(3.9 * len(layers) + 0.4, 3.3 * len(chosen) + 0.9),
                             squeeze=False)
    loaded: dict[str, tuple[dict, list[str]]] = {}
    for r, mid in enumerate(chosen):
        pop = info.at[mid, "population"]
        if pop not in by_pop:
            raise DataError(f"no checkpoint of population {pop} given (model {mid}); pass every population's checkpoint")
        if pop not in loaded:
            ckpts, ids, _ = load_checkpoints(by_pop[pop])
            loaded[pop] = (ckpts, ids)
        ckpts, ids = loaded[pop]
        epoch = int(met.loc[met["model_id"] == mid, "epoch"].max())
        acc = float(met.loc[(met["model_id"] == mid) & (met["epoch"] == epoch), "test_acc"].iloc[0])
        hp = ", ".join(f"{a}={_fmt(info.at[mid, a])}" for a in axes_cols) + f", seed {info.at[mid, 'seed']}"
        for c, layer in enumerate(layers):
            ax = grid[r][c]
            row = spec[(spec["model_id"] == mid) & (spec["epoch"] == epoch) & (spec["layer"] == layer)]
            if row.empty:
                ax.set_axis_off()
                continue
            row = row.iloc[0]
            lam = esd(ckpts[epoch][row["tensor"]][ids.index(mid)])
            _draw_esd(ax, lam, row)
            ax.set_title(f"{layer}  {row['rows']}×{row['cols']}: α = {row['alpha']:.2f}, D = {row['ks_distance']:.3f}",
                         fontsize=10)
            if c == 0:
                ax.set_ylabel(f"model {mid[:8]}\n{hp}\ntest acc {acc:.3f} (epoch {epoch})\n\ndensity", fontsize=9)
    handles, labels = grid[0][0].get_legend_handles_labels()
    top = 1 - 0.4 / fig.get_figheight()
    fig.tight_layout(rect=(0, 0, 1, top))
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=10, frameon=False,
               bbox_to_anchor=(0.5, top))
    fig.suptitle(f"{zoo_name}: empirical spectral densities (ESD) with WeightWatcher power-law fits", fontsize=12,
                 y=top + 0.45 / fig.get_figheight())
    add_caption(fig, "Rows: models at their last checkpoint, best to worst test accuracy among those that did not "
                "diverge; columns: layers. Grey: density of all eigenvalues λ of WᵀW (log-spaced bins); blue: the tail "
                "λ ≥ xmin that the power law was fitted to; red dashed: the fitted density (n_tail/n)·(α−1)/xmin·"
                "(λ/xmin)^−α; red line: xmin. α, xmin and the KS distance D are the spectral table's (WeightWatcher's "
                "alpha, xmin, D). Smaller α = heavier tail.")
    _save(fig, out)
    return chosen


def note_figure(out: str | Path, title: str, note: str) -> None:
    """A small figure that says why a figure is not drawn (the report keeps its place)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 1.6))
    ax.set_axis_off()
    ax.text(0.0, 0.5, f"{title}\n{note}", fontsize=11, va="center", transform=ax.transAxes)
    _save(fig, out)


def _natural(name: str) -> tuple:
    """``layers.10`` after ``layers.2``."""
    import re

    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name))


def _draw_esd(ax: Any, lam: np.ndarray, row: Any) -> None:
    """Log-log density of ``lam`` (all, and the tail from xmin) and the fitted power law."""
    pos = lam[lam > 1e-12]
    if len(pos) < 2:
        ax.text(0.5, 0.5, "ESD has < 2 positive eigenvalues", ha="center", transform=ax.transAxes)
        return
    bins = np.logspace(np.log10(pos.min()), np.log10(pos.max()), max(8, min(40, len(pos) // 2)) + 1)
    ax.hist(pos, bins=bins, density=True, color="#bdbdbd", label="ESD (all λ)")
    xmin, alpha = float(row["xmin"]), float(row["alpha"])
    if np.isfinite(xmin) and np.isfinite(alpha) and alpha > 1:
        tail = pos[pos >= xmin]
        if len(tail):
            weights = np.full(len(tail), 1.0 / len(pos))
            widths = np.diff(bins)
            counts, _ = np.histogram(tail, bins=bins, weights=weights)
            ax.step(bins[:-1], counts / widths, where="post", color="#1f77b4", lw=1.6, label="tail λ ≥ xmin")
        x = np.logspace(np.log10(xmin), np.log10(pos.max()), 50)
        frac = len(tail) / len(pos)
        ax.plot(x, frac * (alpha - 1) / xmin * (x / xmin) ** (-alpha), "--", color="#d62728", lw=2,
                label="power-law fit")
        ax.axvline(xmin, color="#d62728", lw=1.2, label="xmin")
    from matplotlib.ticker import NullFormatter

    ax.set_xscale("log")
    ax.set_yscale("log")
    for axis in (ax.xaxis, ax.yaxis):  # minor labels (3×10⁻¹, 4×10⁻¹, …) overlap on short ranges
        axis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("eigenvalue λ of WᵀW", fontsize=9)
    ax.tick_params(labelsize=8)
    ax.grid(alpha=0.3, which="major")


__all__ = ["esd", "esd_figure", "is_control", "learner_figure", "learner_summary", "pick_esd_models"]
