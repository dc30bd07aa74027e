"""``zoo info / show / export / plot`` (and ``zoo verify`` on an export) on a tiny zoo trained in the test, and the report.

References: the Parquet files read with pyarrow, hashlib over the exported bytes, sizes
from os.stat, accuracies averaged here in plain Python.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from collections import defaultdict
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from tiny_zoo import make_tiny_zoo as build_tiny_zoo

from zoo.cli import main

REPO = Path(__file__).resolve().parent.parent
TINY = {
    "zoos": {
        "tiny": {
            "dataset": "digits",
            "model": {"arch": "mlp", "depth": 1, "activation": "relu"},
            "grid": {"width": [4, 8], "lr": [0.05, 50.0], "batch_size": [32, 64]},
            "seeds": [0, 1],
            "epochs": 2,
            "checkpoints": [0, 1, 2],
            "optimizer": {"name": "sgd", "momentum": 0.9},
        }
    }
}


def make_tiny_zoo(data: Path) -> Path:
    """The tiny zoo of this module, trained as the workflow would."""
    return build_tiny_zoo(data, TINY)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_tiny_zoo(tmp_path_factory.mktemp("cli") / "data")


def rows(data: Path, table: str) -> list[dict]:
    files = sorted((data / "zoos").glob(f"*/{table}/*.parquet"))
    return pa.concat_tables([pq.read_table(f) for f in files]).to_pylist()


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("cmd", ["info", "show", "export", "plot"])
def test_every_command_has_help(cmd, capsys):
    with pytest.raises(SystemExit) as exc:
        main([cmd, "--help"])
    assert exc.value.code == 0
    assert f"usage: zoo {cmd}" in capsys.readouterr().out


def test_info_counts_equal_the_tables(data, capsys):
    models, metrics = rows(data, "models"), rows(data, "metrics")
    diverged = {r["model_id"] for r in metrics if r["diverged"]}
    disk = sum(os.stat(Path(d) / f).st_size for d, _, fs in os.walk(data / "zoos" / "tiny") for f in fs)
    code, out, _ = run(capsys, "info", "--data", data, "--json")
    assert code == 0
    (z,) = json.loads(out)["zoos"]
    assert (z["zoo"], z["models"], z["diverged"]) == ("tiny", len(models), len(diverged))
    assert z["populations"] == len({r["population"] for r in models}) == 4
    assert z["checkpoints"] == [0, 1, 2]
    assert z["total_params"] == sum(r["n_params"] for r in models)
    assert z["disk_bytes"] == disk
    assert z["phases"] is None
    code, out, _ = run(capsys, "info", "--data", data)
    assert code == 0 and "tiny" in out and f"{len(models)} in 4 populations, {len(diverged)} diverged" in out


def test_info_shows_phase_counts_when_the_phases_table_exists(data, tmp_path, capsys):
    from zoo.catalog import build_catalog
    from zoo.store import write_table

    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    ids = sorted(r["model_id"] for r in rows(data, "models"))
    labels = ["I"] * 5 + ["IV-A"] * (len(ids) - 5)
    write_table(pa.table({"model_id": ids, "zoo": ["tiny"] * len(ids), "phase": labels}),
                copy / "zoos" / "tiny" / "phases.parquet", "phases")
    build_catalog(copy)
    code, out, _ = run(capsys, "info", "--data", copy, "--json")
    assert json.loads(out)["zoos"][0]["phases"] == {"I": 5, "IV-A": len(ids) - 5}
    code, out, _ = run(capsys, "show", ids[0][:6], "--data", copy)
    assert code == 0 and "phase: I" in out


def test_show_prints_spec_metrics_and_checkpoint(data, capsys):
    model = rows(data, "models")[0]
    mid = model["model_id"]
    code, out, _ = run(capsys, "show", mid[:5], "--data", data, "--json")
    assert code == 0
    rec = json.loads(out)
    assert rec["model_id"] == mid and rec["spec"] == json.loads(model["spec_json"])
    ref = sorted((r for r in rows(data, "metrics") if r["model_id"] == mid), key=lambda r: r["epoch"])
    assert [m["epoch"] for m in rec["metrics"]] == [r["epoch"] for r in ref] == [0, 1, 2]
    assert [m["test_acc"] for m in rec["metrics"]] == [r["test_acc"] for r in ref]
    assert Path(rec["checkpoint"]) == data / "zoos" / "tiny" / "checkpoints" / f"{model['population']}.safetensors"
    assert rec["checkpoint_epochs"] == [0, 1, 2]
    assert rec["rows_in_other_tables"] == {"weights": 3 * 4}  # 3 epochs × (2 weights + 2 biases)
    code, out, _ = run(capsys, "show", mid, "--data", data)
    assert code == 0 and f"model {mid}" in out and "checkpoint:" in out
    assert re.search(rf"^  width +{model['width']}$", out, re.M)


def test_show_rejects_unknown_short_or_ambiguous_ids_in_one_line(data, capsys):
    code, _, err = run(capsys, "show", "zzzzzz", "--data", data)
    assert code == 1 and "no model id starts with 'zzzzzz'" in err and err.count("\n") == 1
    code, _, err = run(capsys, "show", "ab", "--data", data)
    assert code == 1 and "at least 4 characters" in err


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_export_folder_holds_tables_checkpoints_spec_and_true_hashes(data, tmp_path, capsys):
    out = tmp_path / "shared"
    code, _, _ = run(capsys, "export", "tiny", "--out", out, "--data", data)
    assert code == 0
    manifest = json.loads((out / "manifest.json").read_text())
    src = data / "zoos" / "tiny"
    expected = {f.relative_to(data).as_posix() for f in
                [src / "spec.json", *src.glob("*/*.parquet"), *src.glob("checkpoints/*.safetensors")]}
    assert set(manifest["files"]) == expected
    for path, f in manifest["files"].items():
        assert f["sha256"] == sha256(out / path) == sha256(data / path)
        assert f["bytes"] == (data / path).stat().st_size
    n_models = sum(f["rows"] for f in manifest["files"].values() if f.get("table") == "models")
    assert n_models == len(rows(data, "models"))
    code, stdout, _ = run(capsys, "verify", out)
    assert code == 0 and f"OK: {len(expected)} files checked" in stdout
    # a flipped byte is caught by `zoo verify`
    victim = out / next(p for p in manifest["files"] if p.endswith(".safetensors"))
    blob = bytearray(victim.read_bytes())
    blob[-1] ^= 1
    victim.write_bytes(bytes(blob))
    code, stdout, _ = run(capsys, "verify", out)
    assert code == 1 and f"changed or corrupt: {victim}" in stdout


def test_export_tarball_is_reproducible_and_unpacks_to_a_usable_data_folder(data, tmp_path, capsys):
    import torch

    import zoo

    a, b = tmp_path / "a.tar.gz", tmp_path / "b.tar.gz"
    assert run(capsys, "export", "tiny", "--out", a, "--data", data)[0] == 0
    assert run(capsys, "export", "tiny", "--out", b, "--data", data)[0] == 0
    assert a.read_bytes() == b.read_bytes()
    with tarfile.open(a) as tar:
        tar.extractall(tmp_path / "x", filter="data")
    root = tmp_path / "x" / "tiny"
    manifest = json.loads((root / "manifest.json").read_text())
    assert all(sha256(root / path) == f["sha256"] for path, f in manifest["files"].items())
    assert run(capsys, "catalog", root)[0] == 0
    mid = rows(data, "models")[0]["model_id"]
    x = torch.randn(5, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(zoo.load_model(mid, 2, data_dir=root)(x), zoo.load_model(mid, 2, data_dir=data)(x))


def test_export_is_atomic(data, tmp_path, monkeypatch, capsys):
    import zoo.cli_info as ci

    out = tmp_path / "dest"
    out.mkdir()
    code, _, err = run(capsys, "export", "tiny", "--out", out, "--data", data)
    assert code == 1 and "already exists" in err
    out.rmdir()
    calls = {"n": 0}
    real = shutil.copyfile

    def failing_copy(src, dst, *a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk full")
        return real(src, dst, *a, **k)

    monkeypatch.setattr(ci.shutil, "copyfile", failing_copy)
    with pytest.raises(OSError, match="disk full"):
        ci.export_zoo("tiny", out, data)
    assert list(tmp_path.iterdir()) == []  # neither the folder nor a temporary one is left
    code, _, err = run(capsys, "export", "nosuchzoo", "--out", out, "--data", data)
    assert code == 1 and "known zoos: tiny" in err


def test_grid_heatmap_draws_mean_final_accuracy_over_width_and_lr(data, tmp_path):
    import matplotlib.image as mpimg

    from zoo import plots

    metrics, models = rows(data, "metrics"), {r["model_id"]: r for r in rows(data, "models")}
    cells = defaultdict(list)
    for r in metrics:
        m = models[r["model_id"]]
        if r["epoch"] == m["epochs"]:
            cells[(m["batch_size"], m["width"], m["lr"])].append(r["test_acc"])
    drawn = plots.grid_heatmap(data / "zoos" / "tiny", tmp_path / "grid.png")
    assert set(drawn) == {"batch_size=32", "batch_size=64"}
    for (bs, width, lr), accs in cells.items():
        assert drawn[f"batch_size={bs}"].loc[width, lr] == pytest.approx(sum(accs) / len(accs), abs=1e-12)
    img = mpimg.imread(str(tmp_path / "grid.png"))
    assert img.ndim == 3 and img.shape[0] > 200 and img[..., :3].std() > 0.05


def test_learning_curves_sample_spreads_over_the_grid(data, tmp_path, capsys):
    code, _, _ = run(capsys, "plot", "curves", data / "zoos" / "tiny", "--n-models", 4, "--out", tmp_path / "c.png")
    assert code == 0 and (tmp_path / "c.png").stat().st_size > 10_000
    from zoo import plots

    chosen = plots.learning_curves(data / "zoos" / "tiny", tmp_path / "c2.png", n_models=4)
    models = {r["model_id"]: r for r in rows(data, "models")}
    assert len(chosen) == 4 and set(chosen) <= set(models)
    assert {models[m]["width"] for m in chosen} == {4, 8}


def test_provenance_page_lists_versions_and_every_population(data, tmp_path, capsys):
    code, _, _ = run(capsys, "plot", "provenance", data / "zoos" / "tiny", "--out", tmp_path / "p.html")
    assert code == 0
    page = (tmp_path / "p.html").read_text()
    models = rows(data, "models")
    for pop in {r["population"] for r in models}:
        assert f"<td>{pop}</td>" in page
    assert f"{len(models)} models in 4 populations" in page
    assert models[0]["torch_version"] in page and json.loads((data / "zoos" / "tiny" / "spec.json").read_text())["spec_hash"] in page


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium not installed (apt-get install -y chromium)")
def test_report_renders_in_chromium(tmp_path):
    """The workflow on a tiny zoo, `snakemake --report`, then tests/report/check_report.sh (screenshots)."""
    import yaml

    work = tmp_path / "wf"
    work.mkdir()
    shutil.copy(REPO / "Snakefile", work)
    shutil.copytree(REPO / "workflow", work / "workflow")
    shutil.copy(REPO / "environment.yml", work)
    (work / "config").mkdir()
    small = json.loads(json.dumps(TINY))
    small["zoos"]["tiny"]["grid"] = {"width": [4, 8], "lr": [0.05, 0.5]}
    (work / "config" / "config.yaml").write_text(yaml.safe_dump(small))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    figures = [f"data/zoos/tiny/figures/{f}" for f in ("learning_curves.png", "grid_test_acc.png", "provenance.html")]
    res = subprocess.run(["snakemake", "--cores", "2", *figures], cwd=work, env=env, capture_output=True,
                         text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    shots = tmp_path / "shots"
    res = subprocess.run([REPO / "tests" / "report" / "check_report.sh", work, shots, *figures], env=env,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "report check: OK" in res.stdout
    assert {p.name for p in shots.glob("*.png")} >= {"home.png", "tiny-grid_test_acc.png", "tiny-learning_curves.png"}
