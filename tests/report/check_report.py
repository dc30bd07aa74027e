"""Render check of the Snakemake report: its contents, and screenshots in headless Chromium.

Used by ``tests/report/check_report.sh`` (documented check) and ``tests/test_cli_info.py``
(slow test). Chromium (Debian package ``chromium``) renders the self-contained
``report.html``; a small script appended to a copy of the page drives the report's React
app (its global ``app``) to a zoo's result so the screenshot shows a figure, not only
the landing page.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars", "--virtual-time-budget=5000",
]
#: Figures every zoo must have in the report (workflow/rules/report.smk).
EXPECTED = ("learning_curves.png", "grid_test_acc.png", "provenance.html")


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


def check_contents(report: str | Path, zoos: list[str], data: str | Path | None = None) -> list[str]:
    """Problems with the report's contents (empty = every zoo has its category, figures and captions).

    With ``data`` (the data folder), every file in ``data/zoos/<zoo>/figures/`` must be in
    the report too: a stage that draws a figure without wrapping it in ``report()`` fails.
    """
    categories, results = report_contents(report)
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
        for name in EXPECTED:
            hits = [p for p in paths if p.endswith(f"/{zoo}/figures/{name}")]
            if not hits:
                problems.append(f"{zoo}: figure {name} missing from the report")
            elif not results[hits[0]].get("caption"):
                problems.append(f"{zoo}: figure {name} has no caption")
    return problems


def driver_page(report: str | Path, out: str | Path, result_path: str | None) -> Path:
    """A copy of the report that opens ``result_path`` (a key of ``results``) once loaded."""
    text = Path(report).read_text(errors="replace")
    if result_path is not None:
        categories, results = report_contents(report)
        cat, sub = next((c, s) for c, subs in categories.items() for s, ps in subs.items() if result_path in ps)
        kind = "html" if result_path.endswith(".html") else "img"
        view = {"navbarMode": "subcategory", "category": cat, "subcategory": sub, "content": kind,
                "resultPath": result_path}
        script = ("<script>window.addEventListener('load', function () { setTimeout(function () {"
                  f"var v = {json.dumps(view)}; v.contentPath = results[v.resultPath].data_uri; app.setView(v);"
                  "}, 300); });</script>")
        head, sep, tail = text.rpartition("</body>")  # the last one: the page's scripts contain the string too
        text = head + script + sep + tail if sep else text + script
    out = Path(out)
    out.write_text(text)
    return out


def screenshot(page: str | Path, png: str | Path, size: str = "1400,1000", timeout: float = 90) -> Path:
    """Headless Chromium screenshot of a local HTML page."""
    binary = chromium()
    if binary is None:
        raise RuntimeError("chromium not installed (apt-get install -y chromium)")
    png = Path(png).resolve()
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--screenshot={png}",
                        f"--window-size={size}", Path(page).resolve().as_uri()],
                       check=True, capture_output=True, timeout=timeout)
    return png


def ink(png: str | Path) -> float:
    """Fraction of pixels that are not near-white: ~0 for a blank page."""
    import matplotlib.image as mpimg

    img = mpimg.imread(str(png))[..., :3]
    return float((img.mean(axis=-1) < 0.9).mean())


def check_screenshots(report: str | Path, outdir: str | Path, zoos: list[str]) -> dict[str, float]:
    """Screenshots of the landing page and of each zoo's grid figure; returns ink per screenshot."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    _, results = report_contents(report)
    views: dict[str, str | None] = {"home": None}
    for zoo in zoos:
        for path in sorted(p for p in results if f"/{zoo}/" in p and p.endswith((".png", ".svg", ".html"))):
            views[f"{zoo}-{Path(path).stem}"] = path
    inks = {}
    for name, path in views.items():
        page = driver_page(report, outdir / f"{name}.html", path)
        inks[name] = ink(screenshot(page, outdir / f"{name}.png"))
        page.unlink()
    return inks


def main(argv: list[str]) -> int:
    report, outdir, zoos = argv[0], argv[1], argv[2:]
    problems = check_contents(report, zoos, Path(report).resolve().parent / "data")
    for p in problems:
        print(f"report: {p}", file=sys.stderr)
    inks = check_screenshots(report, outdir, zoos)
    for name, v in inks.items():
        print(f"{outdir}/{name}.png: {100 * v:.1f}% ink")
        if v < 0.02:
            problems.append(f"{name}.png looks blank")
    print("report check: " + ("OK" if not problems else f"{len(problems)} problem(s)"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
