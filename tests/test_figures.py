"""Report figures a person can read: learner benchmark, ESD, learning curves, phase diagram, and the
report's screenshot check (headless Chromium) that fails when a figure is missing.

References: means and standard deviations recomputed here with NumPy; WeightWatcher 0.7.7's
own ESD (``get_ESD``) and ``analyze()``; the matplotlib artists of the drawn figures (their
colours, line styles, font sizes); Chromium rendering the real ``snakemake --report``.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from tiny_zoo import make_tiny_zoo

ROOT = Path(__file__).resolve().parent.parent
DPI = 110  # every figure is written at 110 dpi


def results_file(path: Path, learner: str, augment: str, taus: list[float], status: str = "ok", note=None) -> Path:
    from zoo.store import write_table

    n = len(taus)
    write_table(pa.table({
        "zoo": ["z"] * n, "task": ["test_acc"] * n, "learner": [learner] * n, "augment": [augment] * n,
        "split": ["model"] * n, "seed": pa.array(range(n), pa.int64()), "kendall_tau": taus,
        "accuracy": [float("nan")] * n, "status": [status] * n, "note": pa.array([note] * n, pa.string())}),
        path, "results")
    return path


@pytest.fixture()
def results(tmp_path) -> list[Path]:
    return [results_file(tmp_path / "a.parquet", "statnn-gbm", "none", [0.61, 0.65, 0.70]),
            results_file(tmp_path / "b.parquet", "statnn-gbm", "noise", [0.66, 0.69, 0.71]),
            results_file(tmp_path / "c.parquet", "hparams-gbm", "none", [0.40, 0.42, 0.47]),
            results_file(tmp_path / "d.parquet", "equivariant", "none", [float("nan")], "failed", "too few models")]


def capture(monkeypatch):
    """Keep the figures a plotting function saves (instead of only their PNG bytes)."""
    import zoo.plots

    figs = []
    real = zoo.plots._save

    def keep(fig, out):
        figs.append(fig)
        fig.canvas.draw()
        real(fig, out)

    monkeypatch.setattr(zoo.plots, "_save", keep)
    monkeypatch.setattr("zoo.figures._save", keep)
    return figs


def test_learner_summary_is_mean_and_std_over_seeds_with_controls_and_failures(results):
    from zoo.figures import is_control, learner_summary

    s = learner_summary(results).set_index(["learner", "augment"])
    for (learner, augment), taus in {("statnn-gbm", "none"): [0.61, 0.65, 0.70], ("statnn-gbm", "noise"): [0.66, 0.69, 0.71],
                                     ("hparams-gbm", "none"): [0.40, 0.42, 0.47]}.items():
        row = s.loc[(learner, augment)]
        assert row["mean"] == pytest.approx(np.mean(taus)) and row["std"] == pytest.approx(np.std(taus, ddof=1))
        assert row["n"] == 3 and row["metric"] == "kendall_tau"
    failed = s.loc[("equivariant", "none")]
    assert failed["n"] == 0 and failed["n_failed"] == 1 and failed["note"] == "too few models"
    assert is_control("hparams-gbm") and not is_control("statnn-gbm")


def test_learner_figure_draws_every_learner_and_augment_with_error_bars(results, tmp_path, monkeypatch):
    from zoo.figures import learner_figure

    figs = capture(monkeypatch)
    learner_figure(results, tmp_path / "l.png")
    (fig,) = figs
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == ["equivariant", "statnn-gbm", "hparams-gbm\n(control)"]  # controls last
    bars = [p for p in ax.patches if p.get_width() > 0]
    assert len(bars) == 3 and any(p.get_hatch() == "//" for p in bars)  # the control is hatched
    texts = [t.get_text() for t in ax.texts]
    assert any("0.653 ± 0.045 (n=3)" in t for t in texts) and any("too few models" in t for t in texts)
    assert len(ax.collections) >= 3  # one error bar per drawn bar
    assert (tmp_path / "l.png").stat().st_size > 10_000


def test_esd_is_weightwatchers_esd(tmp_path):
    """Dense: WeightWatcher's get_ESD. Conv: its analyze() ESD, i.e. get_ESD scaled by its conv2d_norm ½."""
    import torch
    import weightwatcher as ww

    from zoo.figures import esd

    logging.getLogger("weightwatcher").setLevel(logging.ERROR)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(20, 30), torch.nn.Conv2d(6, 12, 3), torch.nn.Conv2d(12, 16, 1))
    watcher = ww.WeightWatcher(model=model)
    with contextlib.redirect_stdout(io.StringIO()):
        details = watcher.analyze(min_evals=1)
        refs = [np.sort(watcher.get_ESD(layer=i)) for i in (1, 2, 3)]
    for i, (layer, ref) in enumerate(zip(model, refs)):
        ours = esd(layer.weight.detach())
        scale = 1.0 if isinstance(layer, torch.nn.Linear) else 0.5
        np.testing.assert_allclose(ours, ref * scale, rtol=1e-10)
        assert np.log10(ours.sum()) == pytest.approx(details.iloc[i]["log_norm"], rel=1e-12)


@pytest.fixture(scope="module")
def zoo_files(tmp_path_factory):
    from zoo.cli_spectral import run_spectral

    config = {"zoos": {"t": {"dataset": "digits", "model": {"arch": "mlp", "depth": 1, "activation": "relu"},
                              "grid": {"width": [4, 16, 32], "lr": [0.01, 0.1, 50.0]}, "seeds": [0, 1], "epochs": 3,
                              "checkpoints": [0, 3], "batch_size": 64, "optimizer": {"name": "sgd", "momentum": 0.9}}}}
    data = make_tiny_zoo(tmp_path_factory.mktemp("fig") / "data", config)
    zdir = data / "zoos" / "t"
    for ckpt in sorted(zdir.glob("checkpoints/*.safetensors")):
        run_spectral(ckpt, zdir / "spectral" / f"{ckpt.stem}.parquet", farms=False)
    return {t: sorted(zdir.glob(f"{t}/*.parquet")) for t in ("models", "metrics", "spectral")} | {
        "checkpoints": sorted(zdir.glob("checkpoints/*.safetensors")), "dir": zdir}


def test_esd_figure_marks_the_tables_xmin_and_fit_for_models_spread_over_accuracy(zoo_files, tmp_path, monkeypatch):
    from zoo.figures import esd_figure
    from zoo.store import read_table

    figs = capture(monkeypatch)
    f = zoo_files
    chosen = esd_figure(f["checkpoints"], f["spectral"], f["metrics"], f["models"], tmp_path / "esd.png")
    metrics = pa.concat_tables([read_table(p) for p in f["metrics"]]).to_pandas()
    spectral = pa.concat_tables([read_table(p) for p in f["spectral"]]).to_pandas()
    final = metrics[metrics["epoch"] == 3].set_index("model_id")
    assert len(chosen) == 3 and not final.loc[chosen, "diverged"].any()
    accs = final.loc[chosen, "test_acc"].to_numpy()
    assert list(accs) == sorted(accs, reverse=True)  # best, median, worst
    good = spectral[(spectral["epoch"] == 3) & spectral["model_id"].isin(chosen)]
    assert good["ww_analyzed"].all()  # no 4-unit model: WeightWatcher would skip its layers
    (fig,) = figs
    drawn = 0
    for ax in fig.axes:
        title = ax.get_title()
        if "α =" not in title:
            continue
        vlines = [ln.get_xdata()[0] for ln in ax.lines if len(set(ln.get_xdata())) == 1]
        layer = title.split()[0]
        row = good[good["layer"] == layer]
        assert any(np.isclose(v, row["xmin"]).any() for v in vlines), title  # xmin marked where the table says
        assert ax.get_xscale() == ax.get_yscale() == "log"
        drawn += 1
    assert drawn == 3 * 2  # 3 models × 2 layers


def test_esd_figure_of_a_zoo_where_every_model_diverged_is_a_note(zoo_files, tmp_path):
    from zoo.figures import esd_figure
    from zoo.store import read_table, write_table

    f = zoo_files
    metrics = []
    for i, p in enumerate(f["metrics"]):
        t = read_table(p, "metrics")
        t = t.set_column(t.schema.get_field_index("diverged"), "diverged", pa.array([True] * t.num_rows))
        write_table(t, tmp_path / f"m{i}.parquet", "metrics")
        metrics.append(tmp_path / f"m{i}.parquet")
    assert esd_figure(f["checkpoints"], f["spectral"], metrics, f["models"], tmp_path / "esd.png") == []
    assert (tmp_path / "esd.png").stat().st_size > 1000


def test_learning_curves_every_line_of_a_panel_is_identifiable(zoo_files, tmp_path, monkeypatch):
    from zoo import plots

    figs = capture(monkeypatch)
    chosen = plots.learning_curves(zoo_files["dir"], tmp_path / "c.png", n_models=12)
    (fig,) = figs
    panels = [ax for ax in fig.axes if ax.lines]
    assert len(panels) == 2 * 3  # loss and accuracy × one column per width
    for ax in panels:
        styles = [(ln.get_color(), ln.get_linestyle(), ln.get_marker()) for ln in ax.lines if ln.get_linestyle() != "None"]
        assert len(styles) == len(set(styles)), ax.get_title()  # no two lines look alike
    ticks = [t for ax in panels for t in ax.get_xticklabels() + ax.get_yticklabels() if t.get_visible() and t.get_text()]
    assert ticks and min(t.get_fontsize() for t in ticks) >= 9
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert {"lr = 0.01", "lr = 0.1", "lr = 50", "seed 0", "seed 1", "diverged"} <= set(legend)
    assert len(chosen) == 12


def test_phase_diagram_fits_a_browser_window_with_readable_labels(tmp_path, monkeypatch):
    import matplotlib.image as mpimg
    import pandas as pd

    from zoo.phases import PHASE_COLOURS, plot_phase_diagram

    rng = np.random.default_rng(0)
    rows = [{"lr": lr, "width": w, "batch_size": b, "seed": s, "test_acc": rng.random(), "train_loss": rng.random(),
             "log10_hessian_trace": rng.normal(), "mc": rng.normal(0, 0.1), "cka_mean": rng.random(),
             "phase": rng.choice(list(PHASE_COLOURS))}
            for lr in (0.001, 0.01, 0.1, 1, 10) for w in (2, 8, 32, 128) for b in (16, 128) for s in (0, 1, 2)]
    import matplotlib.figure

    saved = []
    real = matplotlib.figure.Figure.savefig

    def keep(self, *a, **k):
        saved.append(self)
        return real(self, *a, **k)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", keep)
    plot_phase_diagram(pd.DataFrame(rows), "lr", "width", ["batch_size"], str(tmp_path / "p.png"), "t")
    width_px = mpimg.imread(str(tmp_path / "p.png")).shape[1]
    # the report shows a figure in a ~1,020-px pane at a 1,400-px window: at most 1/0.6 of that keeps 9-pt text ≥ 8 px
    assert width_px <= 1020 / 0.6
    (fig,) = saved
    ticks = [t for ax in fig.axes if ax.get_title() for t in ax.get_xticklabels() + ax.get_yticklabels()]
    assert ticks and min(t.get_fontsize() for t in ticks) >= 9
    assert len([ax for ax in fig.axes if ax.get_title()]) == 12  # 6 panels × 2 batch sizes


def test_categorical_axes_get_categorical_colours(tmp_path):
    from zoo.plots import colour_by, is_categorical

    assert is_categorical([16, 128, 16]) and is_categorical(["relu", "tanh"])
    assert not is_categorical(np.logspace(-3, 0, 40))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    colour_by(ax, [1, 2, 3, 4], [1, 2, 3, 4], np.array([16, 128, 16, 128]), "batch_size")
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["batch_size=16", "batch_size=128"]
    assert len(fig.axes) == 1  # no colour bar
    plt.close(fig)


# ------------------------------------------------------------------- the report, in Chromium

TINY_WORKFLOW = {
    "zoos": {"tiny": {"dataset": "digits", "model": {"arch": "mlp", "depth": 1, "activation": "relu"},
                      "grid": {"width": [8, 16], "lr": [0.03, 0.1, 0.3, 1.0]}, "seeds": [0, 1], "epochs": 2,
                      "checkpoints": [0, 2], "batch_size": 64, "optimizer": {"name": "sgd", "momentum": 0.9}}},
    "learn": {"tasks": ["test_acc"], "learners": ["statnn-gbm"], "augments": ["none", "noise"], "seeds": [0, 1],
              "split": "model"},
}


def _env() -> dict[str, str]:
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium not installed (apt-get install -y chromium)")
def test_report_has_learner_and_esd_figures_and_the_check_fails_without_one(tmp_path):
    import importlib.util

    import yaml

    spec = importlib.util.spec_from_file_location("check_report", ROOT / "tests" / "report" / "check_report.py")
    check_report = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(check_report)
    EXPECTED, check_contents, report_contents = check_report.EXPECTED, check_report.check_contents, check_report.report_contents

    work = tmp_path / "wf"
    work.mkdir()
    for name in ("Snakefile", "workflow", "profiles", "environment.yml"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, work / name)
    (work / "config").mkdir()
    (work / "config" / "config.yaml").write_text(yaml.safe_dump(TINY_WORKFLOW))
    res = subprocess.run(["snakemake", "--cores", "2"], cwd=work, env=_env(), capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    shots = tmp_path / "shots"
    check = ROOT / "tests" / "report" / "check_report.sh"
    res = subprocess.run([check, work, shots], env=_env(), capture_output=True, text=True, timeout=600)
    assert res.returncode == 0 and "report check: OK" in res.stdout, res.stdout + res.stderr
    names = {p.name for p in shots.glob("*.png")}
    assert {"tiny-learner_results.png", "tiny-esd.png", "tiny-phase_diagram.png"} <= names
    _, results = report_contents(work / "report.html")
    assert {Path(p).name for p in results} >= {"learner_results.png", "esd.png", *EXPECTED}
    # a figure the check expects but the report lacks fails it …
    assert check_contents(work / "report.html", ["tiny"], expected=[*EXPECTED, "nonesuch.png"]) == [
        "tiny: figure nonesuch.png missing from the report"]
    # … and so does a stage that draws a figure without wrapping it in report()
    rules = work / "workflow" / "rules" / "figures.smk"
    text = rules.read_text()
    start = text.index("        report(\n            L.figure(\"learner_results.png\")")
    end = text.index("        ),\n", start) + len("        ),\n")
    rules.write_text(text[:start] + "        L.figure(\"learner_results.png\"),\n" + text[end:])
    res = subprocess.run([check, work, tmp_path / "shots2"], env=_env(), capture_output=True, text=True, timeout=600)
    assert res.returncode == 1, res.stdout + res.stderr
    assert "learner_results.png exists but is not in the report" in res.stdout + res.stderr
    assert "figure learner_results.png missing from the report" in res.stdout + res.stderr
