"""Figures of the weight-matrix analyses: merging gain by phase (+ barriers before/after matching)
and the spectral condition (scaled ‖W‖₂ and ‖ΔW‖₂ against width, per layer).

Both read exactly the files the rule passes; a zoo the analysis does not apply to gets a
figure that says why (the ``note`` of its tables), never a failed workflow.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

Files = Sequence[str | Path]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, out: str | Path) -> None:
    """PNG written atomically, without a Software tag (equal figures are equal bytes)."""
    from zoo.atomic import atomic_path

    try:
        with atomic_path(out) as tmp:
            fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    finally:
        _pyplot().close(fig)


def _frame(files: Files, table: str) -> tuple[Any, list[str]]:
    """Concatenated rows of ``files`` as pandas, and each distinct ``note`` of their metadata with its count."""
    import pyarrow as pa

    from zoo.errors import DataError
    from zoo.store import read_table

    if not files:
        raise DataError(f"no {table} files given; the rule passes one per population")
    from collections import Counter

    tables = [read_table(f, table) for f in files]
    counts = Counter((t.schema.metadata or {}).get(b"zoo.note", b"").decode() for t in tables)
    notes = [f"{n} of {len(tables)} populations: {note}" for note, n in sorted(counts.items()) if note]
    return pa.concat_tables(tables, promote_options="default").to_pandas(), notes


def _note_figure(out: str | Path, title: str, lines: Sequence[str]) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 2.2))
    ax.axis("off")
    ax.text(0.5, 0.5, "\n".join(lines) or "nothing to plot", ha="center", va="center", fontsize=9, wrap=True)
    ax.set_title(title, fontsize=9)
    _save(fig, out)


def phase_order(labels: Sequence[str]) -> list[str]:
    """The phase labels present, in the order of :data:`zoo.phases.PHASE_COLOURS`, others after."""
    from zoo.phases import PHASE_COLOURS

    present = list(dict.fromkeys(labels))
    return [p for p in PHASE_COLOURS if p in present] + sorted(p for p in present if p not in PHASE_COLOURS)


def aligned_not_worse(lmc: Any) -> tuple[int, int]:
    """(pairs with barrier_aligned ≤ barrier_naive, pairs with both barriers defined)."""
    both = lmc.dropna(subset=["barrier_naive", "barrier_aligned"])
    return int((both["barrier_aligned"] <= both["barrier_naive"] + 1e-12).sum()), len(both)


def merging_figure(merging: Files, lmc: Files, phases: str | Path, out: str | Path) -> dict[str, Any]:
    """Merging gain (naive, aligned) by the phase of each grid point's reference model, and each
    pair's error barrier after vs before weight matching, coloured by phase. Returns the counts shown."""
    from zoo.phases import PHASE_COLOURS
    from zoo.store import read_table

    merge, notes = _frame(merging, "merging")
    pairs, lmc_notes = _frame(lmc, "lmc")
    ph = read_table(phases, "phases").to_pandas()[["model_id", "phase"]]
    zoo = str(merge["zoo"].iloc[0]) if len(merge) else Path(phases).parent.name
    if merge.empty and pairs.empty:
        _note_figure(out, f"{zoo}: merging and linear mode connectivity", sorted(set(notes) | set(lmc_notes)))
        return {"grid_points": 0, "pairs": 0}
    merge = merge.merge(ph, on="model_id", how="left").fillna({"phase": "unlabelled"})
    pairs = pairs.merge(ph, on="model_id", how="left").fillna({"phase": "unlabelled"})
    plt = _pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    order = phase_order(merge["phase"].tolist())
    for j, (col, colour, dx) in enumerate((("gain_naive", "#9e9e9e", -0.18), ("gain_aligned", "#1f77b4", 0.18))):
        data = [merge.loc[merge["phase"] == p, col].dropna().to_numpy() for p in order]
        keep = [i for i, d in enumerate(data) if len(d)]
        if keep:
            ax1.boxplot([data[i] for i in keep], positions=[i + dx for i in keep], widths=0.3, patch_artist=True,
                        boxprops={"facecolor": colour, "alpha": 0.5}, medianprops={"color": "black"}, showfliers=False)
        rng = np.random.default_rng(j)
        for i in keep:
            ax1.scatter(i + dx + rng.uniform(-0.08, 0.08, len(data[i])), data[i], s=8, color=colour, zorder=3,
                        label=col if i == keep[0] else None)
    ax1.axhline(0, color="black", lw=0.6)
    ax1.set_xticks(range(len(order)), order)
    ax1.set_xlabel("phase of the grid point (its reference seed)")
    ax1.set_ylabel("test acc of the average − mean of its seeds")
    ax1.set_title(f"merging gain per grid point ({len(merge)} grid points)", fontsize=9)
    ax1.legend(fontsize=7)
    ok, n = aligned_not_worse(pairs)
    lim = float(np.nanmax(pairs[["barrier_naive", "barrier_aligned"]].to_numpy(float), initial=0.0)) * 1.05 + 1e-3
    for p in phase_order(pairs["phase"].tolist()):
        g = pairs[pairs["phase"] == p]
        ax2.scatter(g["barrier_naive"], g["barrier_aligned"], s=10, color=PHASE_COLOURS.get(p, "#999999"),
                    edgecolors="black", linewidths=0.2, label=p)
    ax2.plot([0, lim], [0, lim], color="black", lw=0.6)
    ax2.set_xlim(-0.01, lim)
    ax2.set_ylim(-0.01, lim)
    ax2.set_xlabel("error barrier, naive (train batch)")
    ax2.set_ylabel("error barrier after weight matching")
    frac = f"{ok}/{n} = {100 * ok / n:.0f} %" if n else "no matched pairs"
    ax2.set_title(f"aligned ≤ naive: {frac} of seed pairs", fontsize=9)
    ax2.legend(fontsize=7, title="phase", title_fontsize=7)
    extra = sorted(set(notes) | set(lmc_notes))
    fig.suptitle(f"{zoo}: model merging and linear mode connectivity" + ("\n" + "; ".join(extra) if extra else ""),
                 fontsize=9)
    fig.tight_layout()
    _save(fig, out)
    return {"grid_points": len(merge), "pairs": n, "aligned_not_worse": ok}


def network_order(name: str) -> tuple[Any, ...]:
    """Sort key of tensor names in network order: numbered parts numerically (``layers.2`` before
    ``layers.10``), the stem first and the classifier ``head`` last. No torch import (figures stay light)."""
    import re

    rank = 2 if name.startswith("head") else 0 if name.startswith("stem") else 1
    return (rank, [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"\.", name)])


def width_axis(models: Any) -> str | None:
    """The load-like width axis that varies in ``models``: ``width``, else ``channels``, else None."""
    for col in ("width", "channels"):
        if col in models and models[col].nunique(dropna=True) > 1:
            return col
    return None


def spectral_condition_figure(spectral: Files, models: Files, out: str | Path) -> dict[str, Any]:
    """Median scaled ‖W‖₂ (last checkpoint) and scaled ‖ΔW‖₂ (first interval) against width, one
    column per layer, one line per learning rate; non-diverged models only. Flat lines = the
    spectral condition's scaling holds across widths."""
    spec_df, _ = _frame(spectral, "spectral")
    mod, _ = _frame(models, "models")
    zoo = str(mod["zoo"].iloc[0]) if len(mod) else "zoo"
    axis = width_axis(mod)
    if axis is None or spec_df.empty or "spectral_norm_scaled" not in spec_df:
        why = "the grid varies neither width nor channels" if axis is None else "no spectral-condition columns"
        _note_figure(out, f"{zoo}: spectral condition", [f"spectral-condition figure skipped: {why}"])
        return {"layers": 0, "axis": axis}
    epochs = sorted(spec_df["epoch"].unique())
    last, first_delta = epochs[-1], (epochs[1] if len(epochs) > 1 else None)
    colour_by = "lr" if "lr" in mod and mod["lr"].nunique() > 1 else None
    keep = mod[mod["diverged_epoch"].isna()][["model_id", axis] + ([colour_by] if colour_by else [])]
    df = spec_df.merge(keep, on="model_id")
    if df.empty:
        _note_figure(out, f"{zoo}: spectral condition", ["spectral-condition figure skipped: every model diverged"])
        return {"layers": 0, "axis": axis}
    layers = sorted(df["tensor"].unique(), key=network_order)
    plt = _pyplot()
    fig, axes = plt.subplots(2, len(layers), figsize=(3.0 * len(layers) + 0.6, 5.6), squeeze=False)
    panels = ((0, "spectral_norm_scaled", last, f"‖W‖₂ / √(fan_out/fan_in), epoch {last}"),
              (1, "delta_spectral_norm_scaled", first_delta,
               f"‖ΔW‖₂ / √(fan_out/fan_in), epochs {epochs[0]}→{first_delta}"))
    cmap = plt.get_cmap("viridis")
    levels = sorted(df[colour_by].unique()) if colour_by else [None]
    for c, tensor in enumerate(layers):
        for r, col, epoch, label in panels:
            ax = axes[r, c]
            sub = df[(df["tensor"] == tensor) & (df["epoch"] == epoch)] if epoch is not None else df.iloc[:0]
            for k, level in enumerate(levels):
                g = sub if level is None else sub[sub[colour_by] == level]
                med = g.groupby(axis)[col].median().dropna()
                med = med[med > 0]
                if len(med):
                    ax.plot(med.index, med.to_numpy(), marker="o", ms=3, lw=1,
                            color=cmap(k / max(len(levels) - 1, 1)),
                            label=None if level is None else f"{colour_by}={level:.3g}")
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xlabel(axis, fontsize=7)
            ax.tick_params(labelsize=6)
            ax.set_title(f"{tensor.rsplit('.', 1)[0]}\n{label}" if r == 0 else label, fontsize=7)
    if colour_by:
        axes[0, -1].legend(fontsize=6, loc="best")
    fig.suptitle(f"{zoo}: spectral condition (flat lines = norms scale as √(fan_out/fan_in)); medians over seeds",
                 fontsize=9)
    fig.tight_layout()
    _save(fig, out)
    return {"layers": len(layers), "axis": axis}

