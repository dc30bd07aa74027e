"""``zoo export --format hf``: a folder Hugging Face ``datasets`` loads table by table, with a dataset card.

References: the real ``datasets`` package (test-only dependency) loading the export, the
source Parquet files read with pyarrow, the population checkpoints read with
``zoo.store.load_checkpoints``, the card's YAML parsed with PyYAML, SHA-256 by hashlib.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from tiny_zoo import make_tiny_zoo

from zoo.cli import main

TINY = {
    "zoos": {
        "tiny": {
            "description": "a tiny zoo for the export test",
            "dataset": "digits",
            "model": {"arch": "mlp", "depth": 1, "activation": "relu"},
            "grid": {"width": [4, 8], "lr": [0.05, 50.0]},
            "seeds": [0, 1],
            "epochs": 2,
            "checkpoints": [0, 1, 2],
            "batch_size": 64,
            "optimizer": {"name": "sgd", "momentum": 0.9},
        }
    }
}


def learner_tables(data: Path, models: pa.Table) -> None:
    """A learner's results and predictions files, written where and how `zoo learn` writes them."""
    from zoo.layout import ZooLayout
    from zoo.store import write_table

    lay = ZooLayout(str(data), "tiny")
    results = pa.table({
        "zoo": ["tiny"] * 2, "task": ["test_acc"] * 2, "learner": ["statnn-gbm"] * 2, "augment": ["none"] * 2,
        "split": ["model"] * 2, "seed": pa.array([0, 1], pa.int64()), "kendall_tau": [0.5, 0.6],
        "r2": [0.1, 0.2], "mae": [0.3, 0.2], "accuracy": [float("nan")] * 2, "n_train": pa.array([6, 6], pa.int64()),
        "n_val": pa.array([0, 0], pa.int64()), "n_test": pa.array([2, 2], pa.int64()), "wall_s": [0.1, 0.1],
        "status": ["ok", "ok"], "note": pa.array([None, None], pa.string()), "options": ["{}", "{}"]})
    ids = models["model_id"].to_pylist()
    preds = pa.table({"model_id": ids, "epoch": pa.array([2] * len(ids), pa.int64()), "zoo": ["tiny"] * len(ids),
                      "task": ["test_acc"] * len(ids), "y_true": np.linspace(0, 1, len(ids)),
                      "y_pred": np.linspace(0, 1, len(ids))})
    write_table(results, lay.learner_output("test_acc", "statnn-gbm", "none", "results"), "results")
    write_table(preds, lay.learner_output("test_acc", "statnn-gbm", "none", "predictions"), "predictions")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    from zoo.cli_spectral import run_spectral

    data = make_tiny_zoo(tmp_path_factory.mktemp("hf") / "data", TINY)
    for ckpt in sorted(data.glob("zoos/tiny/checkpoints/*.safetensors")):
        run_spectral(ckpt, data / "zoos" / "tiny" / "spectral" / f"{ckpt.stem}.parquet", farms=False, mp=False)
    models = pa.concat_tables([pq.read_table(f) for f in sorted(data.glob("zoos/tiny/models/*.parquet"))])
    learner_tables(data, models)
    return data


@pytest.fixture(scope="module")
def export(data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("hf-out") / "tiny-hf"
    assert main(["export", "tiny", "--out", str(out), "--data", str(data), "--format", "hf"]) == 0
    return out


def card_header(export: Path) -> dict:
    text = (export / "README.md").read_text()
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def source_files(data: Path, table: str) -> list[Path]:
    return sorted(data.glob(f"zoos/tiny/{table}/*.parquet")) + sorted(data.glob(f"learners/tiny/*/*/*/{table}.parquet"))


TABLES = ("models", "metrics", "weights", "spectral", "results", "predictions")


def load(export: Path, name: str, cache: Path):
    import datasets

    datasets.disable_progress_bars()
    return datasets.load_dataset(str(export), name, split="train", cache_dir=str(cache))


def test_load_dataset_loads_every_table_with_its_rows_and_dtypes(data, export, tmp_path):
    import datasets

    assert [c["config_name"] for c in card_header(export)["configs"]] == list(TABLES)
    for table in TABLES:
        files = source_files(data, table)
        ds = load(export, table, tmp_path / "cache")
        assert ds.num_rows == sum(pq.read_metadata(f).num_rows for f in files) > 0, table
        schema = pq.read_schema(files[0]).remove_metadata()
        assert ds.features == datasets.Features.from_arrow_schema(schema), table
        assert ds.column_names == schema.names
    metrics = load(export, "metrics", tmp_path / "cache")
    assert metrics.features["epoch"].dtype == "int64" and metrics.features["test_acc"].dtype == "float64"
    assert metrics.features["diverged"].dtype == "bool"
    weights = load(export, "weights", tmp_path / "cache")
    assert weights.features["values"].feature.dtype == "float32"
    assert weights.features["shape"].feature.dtype == "int32"
    ref = pa.concat_tables([pq.read_table(f) for f in source_files(data, "metrics")])
    assert sorted(metrics["test_acc"]) == sorted(ref["test_acc"].to_pylist())


def test_weight_tensors_taken_from_the_export_equal_the_checkpoints(data, export, tmp_path):
    from zoo.store import load_checkpoints

    weights = load(export, "weights", tmp_path / "cache").with_format("numpy")
    models = load(export, "models", tmp_path / "cache")
    checked = 0
    for mid, pop in zip(models["model_id"], models["population"]):
        ckpts, ids, _ = load_checkpoints(export / "zoos" / "tiny" / "checkpoints" / f"{pop}.safetensors")
        for epoch in (0, 2):
            rows = weights.filter(lambda r, m=mid, e=epoch: r["model_id"] == m and r["epoch"] == e)
            assert sorted(rows["tensor"]) == sorted(ckpts[epoch])
            for row in rows:
                tensor = np.asarray(row["values"], dtype=np.float32).reshape(row["shape"])
                np.testing.assert_array_equal(tensor, ckpts[epoch][row["tensor"]][ids.index(mid)].numpy())
                checked += 1
    assert checked == 8 * 2 * 4


def test_without_a_config_name_the_models_table_loads(export, tmp_path):
    import datasets

    datasets.disable_progress_bars()
    ds = datasets.load_dataset(str(export), split="train", cache_dir=str(tmp_path / "cache"))
    assert "model_id" in ds.column_names and ds.num_rows == 8


def test_card_header_has_license_tasks_size_and_exact_files(data, export):
    header = card_header(export)
    manifest = json.loads((export / "manifest.json").read_text())
    assert header["license"] == "mit"
    assert header["task_categories"] and header["size_categories"] == ["n<1K"]
    assert "model-zoo" in header["tags"]
    for config in header["configs"]:
        (split,) = config["data_files"]
        assert split["split"] == "train"
        want = sorted(p for p, f in manifest["files"].items() if f.get("table") == config["config_name"])
        assert sorted(split["path"]) == want and all((export / p).is_file() for p in want)


def test_card_body_is_a_datasheet_with_the_exact_spec_and_command(data, export):
    from zoo.config import load_zoos

    text = (export / "README.md").read_text()
    for heading in ("## Datasheet", "### Motivation", "### Composition", "### Collection process",
                    "### Preprocessing", "### Uses", "### Distribution", "### Maintenance",
                    "## Regenerate it bit for bit", "## Citation", "## Load it"):
        assert f"\n{heading}\n" in text, heading
    spec = json.loads((data / "zoos" / "tiny" / "spec.json").read_text())
    assert spec["spec_hash"] in text and "snakemake --cores 2 --configfile config/tiny.yaml" in text
    assert "a tiny zoo for the export test" in text and "CC BY 4.0" in text
    # the shipped config rebuilds the same models (same ids) and names the learner runs
    config = yaml.safe_load((export / "config" / "tiny.yaml").read_text())
    rebuilt = {m.model_id for m in load_zoos(config)["tiny"].models}
    models = pa.concat_tables([pq.read_table(f) for f in source_files(data, "models")])
    assert rebuilt == set(models["model_id"].to_pylist())
    assert config["learn"]["learners"] == ["statnn-gbm"] and config["learn"]["seeds"] == [0, 1]


def test_hf_export_is_still_a_verified_data_folder(export, capsys):
    manifest = json.loads((export / "manifest.json").read_text())
    for path in ("README.md", "config/tiny.yaml"):
        assert manifest["files"][path]["sha256"] == hashlib.sha256((export / path).read_bytes()).hexdigest()
    assert main(["verify", str(export)]) == 0
    assert "OK" in capsys.readouterr().out


def test_hf_tarball_is_reproducible_and_holds_the_card(data, tmp_path):
    a, b = tmp_path / "a.tar.gz", tmp_path / "b.tar.gz"
    for out in (a, b):
        assert main(["export", "tiny", "--out", str(out), "--data", str(data), "--format", "hf"]) == 0
    assert a.read_bytes() == b.read_bytes()
    with tarfile.open(a) as tar:
        names = tar.getnames()
    assert {"tiny/README.md", "tiny/config/tiny.yaml", "tiny/manifest.json"} <= set(names)


def test_unknown_format_is_one_line(data, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["export", "tiny", "--out", str(tmp_path / "x"), "--data", str(data), "--format", "parquet"])
    assert "invalid choice" in capsys.readouterr().err
