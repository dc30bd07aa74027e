"""Phase labels of Yang et al. (2021) from explicit thresholds, and the phase-diagram figure.

Decision rule (thresholds in :class:`PhaseThresholds`, configurable per zoo under
``phases:`` in the zoo spec; every row of ``phases.parquet`` stores the values used):

1. ``diverged``  — flagged diverged during training (loss NaN/inf/above ``max_loss``).
2. train loss ≥ ``train_loss`` (poorly trained):
   - log10(Hessian trace) ≥ ``log10_trace`` (sharp): mc < ``mc_poor`` → **I**, else **II**;
   - flatter than that → ``collapsed`` (a constant-output plateau after a too-large step
     or dead units: high loss but flat, which no phase of Yang et al. describes).
3. train loss < ``train_loss`` (well trained):
   - mc < −``mc_eps`` (a barrier between seeds) → **III**;
   - otherwise CKA < ``cka`` → **IV-A**, CKA ≥ ``cka`` → **IV-B**.
4. A model whose deciding metric is missing (no peer seed) → ``unlabelled``.

Margins: the signed distance of each deciding metric to its threshold, in that metric's
own unit (decades for train loss and trace, error fraction for mc, CKA units);
``margin`` is the smallest absolute one along the model's decision path and
``margin_to`` names it. Why the defaults are what they are: docs/phases.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import numpy as np
import pandas as pd

from zoo.enums import OTHER_PHASE_LABELS as OTHER_LABELS
from zoo.enums import PHASES
from zoo.errors import SpecError

LOAD_AXES = ("width", "channels", "depth", "train_fraction")
TEMPERATURE_AXES = ("lr", "batch_size", "momentum", "weight_decay")


@dataclass(frozen=True)
class PhaseThresholds:
    """Phase boundaries (defaults chosen on config/phases-digits.yaml; see docs/phases.md)."""

    train_loss: float = 0.3     # nats: at or above = poorly trained (I, II, collapsed)
    log10_trace: float = 0.2    # log10 of the Hessian trace: poorly trained and flatter = collapsed
    mc_poor: float = 0.0        # poorly trained: mc below = I (barrier), else II
    mc_eps: float = 0.03        # well trained: mc below −mc_eps = III, else IV
    cka: float = 0.7            # well trained and connected: CKA below = IV-A, else IV-B

    @classmethod
    def from_spec(cls, raw: Mapping[str, Any] | None, source: str = "zoo spec") -> PhaseThresholds:
        """Defaults overridden by the zoo spec's ``phases:`` object (axis keys ignored here)."""
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in (raw or {}).items() if k not in ("x", "y")}
        for k, v in values.items():
            if k not in names:
                raise SpecError(f"{source}: field 'phases.{k}' is unknown; allowed: {', '.join(sorted(names | {'x', 'y'}))}")
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
                raise SpecError(f"{source}: field 'phases.{k}': {v!r} must be a finite number")
        if values.get("train_loss", 1.0) <= 0:
            raise SpecError(f"{source}: field 'phases.train_loss' must be > 0 (nats)")
        return replace(cls(), **{k: float(v) for k, v in values.items()})


def label_phases(df: pd.DataFrame, thr: PhaseThresholds = PhaseThresholds()) -> pd.DataFrame:
    """Add ``phase``, ``margin*`` and ``thr_*`` columns to one row per model.

    ``df`` needs columns ``train_loss`` (nats), ``hessian_trace``, ``mc``, ``cka_mean`` and
    ``diverged`` (bool).
    """
    out = df.copy()
    with np.errstate(invalid="ignore", divide="ignore"):
        log_loss = np.log10(out["train_loss"].astype(float))
        log_trace = np.log10(out["hessian_trace"].astype(float).clip(lower=1e-12))
    out["log10_hessian_trace"] = np.where(out["hessian_trace"].notna(), log_trace, np.nan)
    m_loss = log_loss - math.log10(thr.train_loss)
    m_trace = out["log10_hessian_trace"] - thr.log10_trace
    mc, cka = out["mc"].astype(float), out["cka_mean"].astype(float)
    labels, margins, margin_to, m_mc_col = [], [], [], []
    for i in range(len(out)):
        path: dict[str, float] = {}
        if bool(out["diverged"].iloc[i]) or not np.isfinite(m_loss.iloc[i]):
            label = "diverged" if bool(out["diverged"].iloc[i]) else "unlabelled"
            m_mc_col.append(np.nan)
        elif m_loss.iloc[i] >= 0:
            path["train_loss"] = m_loss.iloc[i]
            path["log10_trace"] = m_trace.iloc[i]
            d_mc = mc.iloc[i] - thr.mc_poor
            m_mc_col.append(d_mc)
            if not np.isfinite(m_trace.iloc[i]):
                label = "unlabelled"
            elif m_trace.iloc[i] < 0:
                label = "collapsed"
            elif not np.isfinite(d_mc):
                label = "unlabelled"
            else:
                path["mc"] = d_mc
                label = "I" if d_mc < 0 else "II"
        else:
            path["train_loss"] = m_loss.iloc[i]
            d_mc = mc.iloc[i] + thr.mc_eps
            m_mc_col.append(d_mc)
            path["mc"] = d_mc
            if not np.isfinite(d_mc):
                label = "unlabelled"
            elif d_mc < 0:
                label = "III"
            elif not np.isfinite(cka.iloc[i]):
                label = "unlabelled"
            else:
                path["cka"] = cka.iloc[i] - thr.cka
                label = "IV-A" if path["cka"] < 0 else "IV-B"
        finite = {k: abs(v) for k, v in path.items() if np.isfinite(v)}
        key = min(finite, key=finite.get) if finite else None
        labels.append(label)
        margin_to.append(key)
        margins.append(finite[key] if key else np.nan)
    out["phase"] = labels
    out["margin"] = margins
    out["margin_to"] = margin_to
    out["margin_train_loss"] = m_loss
    out["margin_log10_trace"] = m_trace
    out["margin_mc"] = m_mc_col
    out["margin_cka"] = cka - thr.cka
    for k, v in asdict(thr).items():
        out[f"thr_{k}"] = v
    return out


def phase_counts(df: pd.DataFrame) -> pd.Series:
    """Models per label, in the order I, II, III, IV-A, IV-B, then the others."""
    order = list(PHASES) + list(OTHER_LABELS)
    counts = df["phase"].value_counts()
    return pd.Series({k: int(counts.get(k, 0)) for k in order}, name="models")


def diagram_axes(grid: Mapping[str, Any], df: pd.DataFrame, raw: Mapping[str, Any] | None = None) -> tuple[str, str, list[str]]:
    """(x = temperature-like axis, y = load-like axis, facet axes) of a zoo's phase diagram.

    ``raw`` is the zoo's ``phases:`` object; its ``x`` / ``y`` override the automatic choice.
    """
    varying = [k for k in grid if k in df and df[k].nunique() > 1]
    raw = raw or {}
    x = raw.get("x") or next((k for k in TEMPERATURE_AXES if k in varying), None) or next(iter(varying), None)
    y = raw.get("y") or next((k for k in LOAD_AXES if k in varying and k != x), None) \
        or next((k for k in varying if k != x), None)
    if x is None or y is None:
        raise SpecError("field 'phases': the zoo's grid varies fewer than two hyperparameters; a phase diagram needs two")
    for name, axis in (("x", x), ("y", y)):
        if axis not in varying:
            raise SpecError(f"field 'phases.{name}': {axis!r} is not a varying grid axis; choose one of {', '.join(varying)}")
    return x, y, [k for k in varying if k not in (x, y)]


PANELS = (("test_acc", "test accuracy", "viridis"), ("train_loss", "log10 train loss", "magma"),
          ("log10_hessian_trace", "log10 Hessian trace", "magma"), ("mc", "mode connectivity mc", "coolwarm_r"),
          ("cka_mean", "CKA", "viridis"), ("phase", "phase", None))
PHASE_COLOURS = {"I": "#d62728", "II": "#ff7f0e", "III": "#9467bd", "IV-A": "#2ca02c", "IV-B": "#1f77b4",
                 "collapsed": "#7f7f7f", "diverged": "#000000", "unlabelled": "#ffffff"}



def _tick(value: object) -> str:
    """Axis label of a grid value: numbers to 3 significant digits, text as is."""
    return f"{value:.3g}" if isinstance(value, (int, float, np.integer, np.floating)) else str(value)

def _mode(s: pd.Series) -> str:
    counts = s.value_counts()
    return str(counts.index[0]) if len(counts) else "unlabelled"


#: Labels drawn in white on their phase colour (dark backgrounds).
_DARK_PHASES = ("I", "III", "IV-B", "diverged")


def _cell_text(ax: Any, values: np.ndarray, fmt: str, cmap: Any, norm: Any) -> None:
    """Write each finite cell's value into a heatmap, black or white by the cell colour's luminance."""
    for (i, j), v in np.ndenumerate(values):
        if np.isfinite(v):
            r, g, b, _ = cmap(norm(v))
            dark = 0.299 * r + 0.587 * g + 0.114 * b < 0.5
            text = format(v, fmt)
            text = text[1:] if text.startswith("-") and not text.strip("-0.") else text  # no "-0.0"
            ax.text(j, i, text, ha="center", va="center", fontsize=9, color="white" if dark else "black")


def plot_phase_diagram(df: pd.DataFrame, x: str, y: str, facets: list[str], path: str, title: str) -> None:
    """Heatmaps over (x, y) of test acc, train loss, log trace, mc, CKA and the phase (seed median /
    majority), each cell labelled with its value. One block of 2 × 3 panels per combination of
    the facet axes, stacked, so the figure stays legible at a browser's width (~1,300 px wide
    at 110 dpi, 9–10 pt text). Written atomically as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap, Normalize
    from matplotlib.patches import Patch

    from zoo.store import atomic_path

    groups = list(df.groupby(facets, sort=True)) if facets else [((), df)]
    xs, ys = sorted(df[x].unique()), sorted(df[y].unique())
    names = list(PHASE_COLOURS)
    panel_w, panel_h = 1.15 + 0.55 * len(xs), 1.3 + 0.5 * len(ys)
    fig = plt.figure(figsize=(3 * panel_w + 0.6, len(groups) * (2 * panel_h + 0.5) + 1.2), layout="constrained")
    blocks = fig.subfigures(len(groups), 1, squeeze=False)[:, 0]
    formats = {"test_acc": ".2f", "train_loss": ".1f", "log10_hessian_trace": ".1f", "mc": ".2f", "cka_mean": ".2f"}
    for block, (key, g) in zip(blocks, groups):
        key = key if isinstance(key, tuple) else (key,)
        axes = block.subplots(2, 3).ravel()
        if facets:
            block.suptitle(", ".join(f"{f} = {_tick(v)}" for f, v in zip(facets, key)), fontsize=12, fontweight="bold")
        for ax, (col, label, cmap_name) in zip(axes, PANELS):
            if col == "phase":
                cell = g.groupby([y, x])[col].agg(_mode).unstack().reindex(index=ys, columns=xs)
                img = cell.map(lambda v: names.index(v) if isinstance(v, str) else np.nan).to_numpy(float)
                ax.imshow(img, origin="lower", aspect="auto", cmap=ListedColormap(list(PHASE_COLOURS.values())),
                          vmin=-0.5, vmax=len(names) - 0.5)
                for (i, j), v in np.ndenumerate(cell.to_numpy()):
                    if isinstance(v, str):
                        ax.text(j, i, v, ha="center", va="center", fontsize=9 if len(v) <= 4 else 7.5,
                                color="white" if v in _DARK_PHASES else "black")
            else:
                vals = g[col].astype(float)
                if col == "train_loss":
                    vals = np.log10(vals.clip(lower=1e-6))
                cell = vals.groupby([g[y], g[x]]).median().unstack().reindex(index=ys, columns=xs).to_numpy(float)
                cmap = plt.get_cmap(cmap_name)
                finite = cell[np.isfinite(cell)]
                lo, hi = (-0.25, 0.25) if col == "mc" else ((finite.min(), finite.max()) if finite.size else (0, 1))
                norm = Normalize(lo, hi if hi > lo else lo + 1e-9)
                im = ax.imshow(cell, origin="lower", aspect="auto", cmap=cmap, norm=norm)
                _cell_text(ax, cell, formats[col], cmap, norm)
                block.colorbar(im, ax=ax, fraction=0.05, pad=0.03).ax.tick_params(labelsize=9)
            ax.set_xticks(range(len(xs)), [_tick(v) for v in xs], fontsize=9)
            ax.set_yticks(range(len(ys)), [_tick(v) for v in ys], fontsize=9)
            ax.set_xlabel(x, fontsize=10)
            ax.set_ylabel(y, fontsize=10)
            ax.set_title(label, fontsize=11)
    fig.legend(handles=[Patch(fc=v, label=k, ec="#999999") for k, v in PHASE_COLOURS.items()], loc="outside upper center",
               ncol=len(PHASE_COLOURS), fontsize=10, frameon=False, title=title, title_fontsize=13)
    import textwrap

    caption = (f"Heatmaps over {y} (rows) × {x} (columns): median over seeds of each metric at the last checkpoint, "
               "the phase label by majority; each cell carries its value, white = no value (every seed diverged, or "
               "no peer seed for mc / CKA). mc < 0: a loss barrier between seeds. Thresholds: phases.parquet "
               "(thr_* columns), docs/phases.md.")
    fig.supxlabel(textwrap.fill(caption, int(fig.get_figwidth() * 72 / (0.52 * 9))), fontsize=9, color="#333333")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)


def plot_skipped_diagram(df: pd.DataFrame, path: str, title: str, note: str) -> None:
    """The figure of a zoo that has no phase diagram: the note why, and the phase counts."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from zoo.store import atomic_path

    counts = phase_counts(df)
    fig, ax = plt.subplots(figsize=(8, 3.6))
    shown = [(k, int(v)) for k, v in counts.items() if v]
    ax.barh([k for k, _ in shown], [v for _, v in shown], color=[PHASE_COLOURS.get(k, "#999999") for k, _ in shown],
            edgecolor="black")
    ax.set_xlabel("models", fontsize=10)
    ax.tick_params(labelsize=10)
    ax.set_title(f"{title}\n{note}", fontsize=11)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)
