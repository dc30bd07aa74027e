"""Render check of the Snakemake report: its contents, and screenshots in headless Chromium.

Used by ``tests/report/check_report.sh`` (documented check), ``tests/test_cli_info.py`` and
``tests/test_figures.py`` (slow tests). Chromium (Debian package ``chromium``) renders the
self-contained ``report.html``; a small script appended to a copy of the page drives the
report's React app (its global ``app``) to one result, so the screenshot shows the figure
as a reader sees it, and measures how much the page shrinks the figure to fit.

It fails when

- a zoo lacks its category or an expected figure (by default: learning curves, grid
  heatmap, provenance, ESD, phase diagram, alpha figure, and the learner figure where the
  config runs learners on the zoo), or an item has no caption;
- a file in ``data/zoos/<zoo>/figures/`` is not in the report (a stage drew a figure but did
  not wrap its output in ``report()``);
- a screenshot is blank (almost no non-white pixels);
- a PNG figure is shown at less than :data:`MIN_SCALE` of its pixel width in a window
  :data:`WINDOW` wide: its 9-pt labels (drawn at 110 dpi, ~14 px) would fall below ~8 px.

    python tests/report/check_report.py REPORT OUTDIR ZOO… [--expect FIGURE…] [--config config/config.yaml]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars", "--virtual-time-budget=5000",
]
#: Figures every zoo has in the report (workflow/rules/report.smk); the default check adds
#: the stage figures below.
EXPECTED = ("learning_curves.png", "grid_test_acc.png", "provenance.html")
#: Figures of the full workflow's stages (spectral.smk, landscape.smk, figures.smk).
STAGE_FIGURES = ("esd.png", "spectral_alpha.png", "phase_diagram.png")
#: Drawn for a zoo the config's ``learn:`` section runs learners on (figures.smk).
LEARNER_FIGURE = "learner_results.png"
WINDOW = (1400, 2000)
MIN_SCALE = 0.6
_MEASURE_ID = "zoo-report-check-measure"


def chromium() -> str | None:
    """Path of the Chromium binary, or None if it is not installed."""
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def _json_after(text: str, name: str) -> dict:
    m = re.search(rf"\b{name} = (\{{)", text)
    if not m:
        raise AssertionError(f"report has no `{name} = {{…}}` data block")
    obj, _ = json.JSONDecoder().raw_decode(text, m.start(1))
    return obj


def report_contents(report: str | Path) -> tuple[dict, dict]:
    """``(categories, results)`` embedded in a Snakemake report: category → subcategory → paths, path → record."""
    text = Path(report).read_text(errors="replace")
    return _json_after(text, "categories"), _json_after(text, "results")


def default_expected(config: Mapping, zoos: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """The figures a full run of the workflow puts in the report, per zoo of ``config``."""
    learn = config.get("learn") or {}
    learned = set(learn.get("zoos", list(config.get("zoos", {})))) if learn else set()
    return {z: EXPECTED + STAGE_FIGURES + ((LEARNER_FIGURE,) if z in learned else ()) for z in zoos}


def check_contents(report: str | Path, zoos: list[str], data: str | Path | None = None,
                   expected: Mapping[str, Iterable[str]] | Iterable[str] | None = None) -> list[str]:
    """Problems with the report's contents (empty = every zoo has its category, figures and captions).

    ``expected``: figure file names per zoo (or one list for every zoo); default :data:`EXPECTED`.
    With ``data`` (the data folder), every file in ``data/zoos/<zoo>/figures/`` must be in
    the report too: a stage that draws a figure without wrapping it in ``report()`` fails.
    """
    categories, results = report_contents(report)
    if expected is None:
        expected = EXPECTED
    per_zoo = expected if isinstance(expected, Mapping) else {z: tuple(expected) for z in zoos}
    problems = [f"{path}: no caption" for path, rec in results.items() if not rec.get("caption")]
    if data is not None:
        for zoo in zoos:
            for f in sorted((Path(data) / "zoos" / zoo / "figures").glob("*")):
                if f.is_file() and not f.name.startswith(".") and not any(p.endswith(f"/{zoo}/figures/{f.name}") for p in results):
                    problems.append(f"{zoo}: figures/{f.name} exists but is not in the report (wrap the rule's output in report())")
    for zoo in zoos:
        if zoo not in categories:
            problems.append(f"no category {zoo!r} (have: {', '.join(categories)})")
            continue
        paths = [p for sub in categories[zoo].values() for p in sub]
        for name in per_zoo.get(zoo, ()):
            hits = [p for p in paths if p.endswith(f"/{zoo}/figures/{name}")]
            if not hits:
                problems.append(f"{zoo}: figure {name} missing from the report")
            elif not results[hits[0]].get("caption"):
                problems.append(f"{zoo}: figure {name} has no caption")
    return problems


def driver_page(report: str | Path, out: str | Path, result_path: str | None) -> Path:
    """A copy of the report that opens ``result_path`` (a key of ``results``) once loaded, then
    writes ``naturalWidth clientWidth`` of the shown figure into a ``div`` (read by :func:`render`)."""
    text = Path(report).read_text(errors="replace")
    if result_path is not None:
        categories, results = report_contents(report)
        cat, sub = next((c, s) for c, subs in categories.items() for s, ps in subs.items() if result_path in ps)
        kind = "html" if result_path.endswith(".html") else "img"
        view = {"navbarMode": "subcategory", "category": cat, "subcategory": sub, "content": kind,
                "resultPath": result_path}
        measure = ("var best = null; document.querySelectorAll('img').forEach(function (i) {"
                   " if (!best || i.naturalWidth > best.naturalWidth) { best = i; } });"
                   f"var d = document.createElement('div'); d.id = '{_MEASURE_ID}';"
                   "d.textContent = best ? best.naturalWidth + ' ' + best.clientWidth : 'none';"
                   "document.body.appendChild(d);")
        script = ("<script>window.addEventListener('load', function () { setTimeout(function () {"
                  f"var v = {json.dumps(view)}; v.contentPath = results[v.resultPath].data_uri; app.setView(v);"
                  f"setTimeout(function () {{ {measure} }}, 700);"
                  "}, 300); });</script>")
        head, sep, tail = text.rpartition("</body>")  # the last one: the page's scripts contain the string too
        text = head + script + sep + tail if sep else text + script
    out = Path(out)
    out.write_text(text)
    return out


def render(page: str | Path, png: str | Path, size: tuple[int, int] = WINDOW, timeout: float = 120) -> tuple[Path, float | None]:
    """Headless Chromium screenshot of a local page; returns it and the shown figure's scale
    (clientWidth / naturalWidth, None when the page has no measured image)."""
    binary = chromium()
    if binary is None:
        raise RuntimeError("chromium not installed (apt-get install -y chromium)")
    png = Path(png).resolve()
    with tempfile.TemporaryDirectory() as profile:
        res = subprocess.run([binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--screenshot={png}",
                              "--dump-dom", f"--window-size={size[0]},{size[1]}", Path(page).resolve().as_uri()],
                             check=True, capture_output=True, text=True, timeout=timeout)
    m = re.search(rf'<div id="{_MEASURE_ID}">(\d+) (\d+)</div>', res.stdout)
    scale = int(m.group(2)) / int(m.group(1)) if m and int(m.group(1)) else None
    return png, scale


def screenshot(page: str | Path, png: str | Path, size: str = "1400,1000", timeout: float = 90) -> Path:
    """Headless Chromium screenshot of a local HTML page (``size``: ``"W,H"``)."""
    w, h = (int(v) for v in size.split(","))
    return render(page, png, (w, h), timeout)[0]


def ink(png: str | Path) -> float:
    """Fraction of pixels that are not near-white: ~0 for a blank page."""
    import matplotlib.image as mpimg

    img = mpimg.imread(str(png))[..., :3]
    return float((img.mean(axis=-1) < 0.9).mean())


def check_screenshots(report: str | Path, outdir: str | Path, zoos: list[str]) -> dict[str, tuple[float, float | None]]:
    """Screenshots of the landing page and of every figure of each zoo; ``{name: (ink, scale)}``."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    _, results = report_contents(report)
    views: dict[str, str | None] = {"home": None}
    for zoo in zoos:
        for path in sorted(p for p in results if f"/{zoo}/" in p and p.endswith((".png", ".svg", ".html"))):
            views[f"{zoo}-{Path(path).stem}"] = path
    out = {}
    for name, path in views.items():
        page = driver_page(report, outdir / f"{name}.html", path)
        png, scale = render(page, outdir / f"{name}.png")
        out[name] = (ink(png), scale if path is not None and path.endswith(".png") else None)
        page.unlink()
    return out


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description="Check a Snakemake report's contents and its look in Chromium.")
    ap.add_argument("report")
    ap.add_argument("outdir")
    ap.add_argument("zoos", nargs="+")
    ap.add_argument("--expect", nargs="*", default=None,
                    help="figure file names every zoo must have (default: the full workflow's, from --config)")
    ap.add_argument("--config", default=None, help="the workflow's config (default: config/config.yaml beside the report)")
    args = ap.parse_args(argv)
    report = Path(args.report)
    if args.expect is not None:
        expected: Mapping[str, Iterable[str]] | Iterable[str] = args.expect
    else:
        import yaml

        config = Path(args.config) if args.config else report.resolve().parent / "config" / "config.yaml"
        expected = default_expected(yaml.safe_load(config.read_text()) or {}, args.zoos)
    problems = check_contents(report, args.zoos, report.resolve().parent / "data", expected)
    for p in problems:
        print(f"report: {p}", file=sys.stderr)
    shots = check_screenshots(report, args.outdir, args.zoos)
    for name, (v, scale) in shots.items():
        shown = f", figure shown at {100 * scale:.0f}% of its width" if scale is not None else ""
        print(f"{args.outdir}/{name}.png: {100 * v:.1f}% ink{shown}")
        if v < 0.02:
            problems.append(f"{name}.png looks blank")
        if scale is not None and scale < MIN_SCALE:
            problems.append(f"{name}.png: the figure is shrunk to {100 * scale:.0f}% of its width at a "
                            f"{WINDOW[0]}-px window (< {100 * MIN_SCALE:.0f}%: labels unreadable); draw it narrower")
    print("report check: " + ("OK" if not problems else f"{len(problems)} problem(s)"))
    for p in problems:
        print(f"  {p}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
