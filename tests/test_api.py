"""The Python API (zoo.open, zoo.frame, zoo.load_model) on a tiny zoo trained in the test.

References: the Parquet files read with pyarrow (not through DuckDB), the model's weights
from the ``weights`` table pushed through a NumPy forward pass written here, and the
batched functional forward used in training.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from tiny_zoo import make_tiny_zoo as build_tiny_zoo

TINY = {
    "zoos": {
        "tiny": {
            "dataset": "digits",
            "model": {"arch": "mlp", "depth": 1, "activation": "relu"},
            "grid": {"width": [4, 8], "lr": [0.05, 50.0]},
            "seeds": [0, 1],
            "epochs": 2,
            "checkpoints": [0, 2],
            "batch_size": 64,
            "optimizer": {"name": "sgd", "momentum": 0.9},
        }
    }
}


def make_tiny_zoo(data: Path) -> Path:
    """The tiny zoo of this module, trained as the workflow would."""
    return build_tiny_zoo(data, TINY)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_tiny_zoo(tmp_path_factory.mktemp("api") / "data")


def parquet(data: Path, table: str) -> pa.Table:
    files = sorted((data / "zoos").glob(f"*/{table}/*.parquet"))
    return pa.concat_tables([pq.read_table(f) for f in files], promote_options="default")


def numpy_mlp(tensors: dict[str, np.ndarray], x: np.ndarray, depth: int) -> np.ndarray:
    """Reference forward pass: x @ Wᵀ + b with ReLU between layers, in float64."""
    h = x.reshape(len(x), -1).astype(np.float64)
    for i in range(depth + 1):
        h = h @ tensors[f"layers.{i}.weight"].astype(np.float64).T + tensors[f"layers.{i}.bias"]
        if i < depth:
            h = np.maximum(h, 0.0)
    return h


def test_import_zoo_stays_light():
    code = ("import sys, zoo; heavy = [m for m in ('torch', 'duckdb', 'pandas', 'matplotlib') if m in sys.modules];"
            "print(heavy); assert callable(zoo.open) and callable(zoo.load_model)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_open_gives_read_only_tables_of_every_table(data):
    import duckdb

    import zoo

    con = zoo.open(data)
    try:
        tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables() WHERE NOT internal").fetchall()}
        assert {"models", "metrics", "weights"} <= tables
        assert con.execute("SELECT count(*) FROM models").fetchone()[0] == parquet(data, "models").num_rows == 8
        with pytest.raises(duckdb.Error, match="read-only"):
            con.execute("CREATE TABLE scratch AS SELECT 1")
    finally:
        con.close()
    assert set(zoo.api.list_tables(data)) == tables - {"catalog_files"}


def test_frame_equals_the_parquet_files(data):
    import zoo

    df = zoo.frame("SELECT * FROM metrics ORDER BY model_id, epoch", data)
    ref = parquet(data, "metrics").to_pandas().sort_values(["model_id", "epoch"]).reset_index(drop=True)
    assert list(df["model_id"]) == list(ref["model_id"])
    np.testing.assert_array_equal(df["epoch"].to_numpy(), ref["epoch"].to_numpy())
    np.testing.assert_array_equal(df["test_acc"].to_numpy(), ref["test_acc"].to_numpy())
    assert zoo.frame("SELECT count(*) AS n FROM models WHERE width = ?", data, [4])["n"].iloc[0] == 4


def test_frame_sql_error_is_one_line_query_error(data):
    import zoo
    from zoo.errors import QueryError

    with pytest.raises(QueryError, match="SQL error") as exc:
        zoo.frame("SELECT nope FROM models", data)
    assert "\n" not in str(exc.value)


def test_load_model_logits_equal_independent_forward_passes(data):
    import torch

    import zoo
    from zoo.data import load_dataset
    from zoo.models import forward_population
    from zoo.store import load_checkpoints
    from zoo.tables import weights_from_table

    ds = load_dataset("digits")
    x = torch.from_numpy(ds.x_test)
    models = parquet(data, "models").to_pandas()
    wtable = parquet(data, "weights")
    for rec in models.itertuples():
        ckpts, ids, _ = load_checkpoints(data / "zoos" / rec.zoo / "checkpoints" / f"{rec.population}.safetensors")
        i = ids.index(rec.model_id)
        for epoch in (0, 2):
            net = zoo.load_model(rec.model_id, epoch, data_dir=data)
            with torch.no_grad():
                logits = net(x)
            # 1) the batched functional forward of training, on the population's stacked tensors
            spec = {"arch": "mlp", "depth": int(rec.depth), "activation": "relu"}
            batched = forward_population(spec, ckpts[epoch], x.unsqueeze(0).expand(len(ids), *x.shape))[i]
            torch.testing.assert_close(logits, batched)
            # 2) NumPy on the tensors of the weights table (another file, another code path)
            ref = numpy_mlp(weights_from_table(wtable, rec.model_id, epoch), ds.x_test, int(rec.depth))
            np.testing.assert_allclose(logits.numpy(), ref, rtol=1e-4, atol=1e-4 * max(1.0, np.abs(ref).max()))


def test_load_model_test_accuracy_equals_metrics_table(data):
    import torch

    import zoo
    from zoo.data import load_dataset

    ds = load_dataset("digits")
    metrics = parquet(data, "metrics").to_pandas()
    for row in metrics.itertuples():
        net = zoo.load_model(row.model_id, int(row.epoch), data_dir=data)
        with torch.no_grad():
            acc = (net(torch.from_numpy(ds.x_test)).argmax(1).numpy() == ds.y_test).mean()
        assert acc == pytest.approx(row.test_acc, abs=1e-12), (row.model_id, row.epoch)


def test_load_model_is_ready_to_use(data):
    import torch

    import zoo

    mid = parquet(data, "models").column("model_id")[0].as_py()
    net = zoo.load_model(mid, 2, data_dir=data)
    assert isinstance(net, torch.nn.Module) and not net.training
    assert (net.model_id, net.epoch, net.zoo) == (mid, 2, "tiny")
    assert net.spec["width"] in (4, 8)
    assert all(p.dtype == torch.float32 for p in net.parameters())
    assert net(torch.zeros(3, 1, 8, 8)).shape == (3, 10)


def test_load_model_errors_name_the_fix(data, tmp_path):
    import zoo
    from zoo.errors import DataError

    mid = parquet(data, "models").column("model_id")[0].as_py()
    with pytest.raises(DataError, match="no model 'ffffffffffff'"):
        zoo.load_model("ffffffffffff", 2, data_dir=data)
    with pytest.raises(DataError, match="available epochs: 0, 2"):
        zoo.load_model(mid, 1, data_dir=data)
    with pytest.raises(DataError, match="no catalog"):
        zoo.open(tmp_path)
