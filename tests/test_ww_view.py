"""The catalog's ``ww`` view: our spectral table under WeightWatcher's names, equal to its numbers.

Reference: ``weightwatcher`` 0.7.7 itself — ``WeightWatcher(model).analyze(mp_fit=True)`` with
its defaults on the very modules ``zoo.load_model`` returns (MLP and CNN zoos, 3×3 and 1×1
kernels), compared column by column with the view's rows of the same model, epoch and layer.
"""

from __future__ import annotations

import contextlib
import io
import logging
from pathlib import Path

import numpy as np
import pytest
from tiny_zoo import make_tiny_zoo

CONFIG = {
    "zoos": {
        "tiny-mlp": {
            "dataset": "digits",
            "model": {"arch": "mlp", "depth": 2, "activation": "relu"},
            "grid": {"width": [4, 32], "lr": [0.05]},  # width 4: layers WeightWatcher skips (< 8 eigenvalues)
            "seeds": [0, 1],
            "epochs": 2,
            "checkpoints": [0, 2],
            "batch_size": 64,
            "optimizer": {"name": "sgd", "momentum": 0.9},
        },
        "tiny-cnn": {
            "dataset": "digits",
            "model": {"arch": "cnn", "depth": 2, "channels": 16, "stride": 1, "activation": "relu"},
            "grid": {"kernel": [1, 3]},
            "seeds": [0],
            "epochs": 1,
            "checkpoints": [1],
            "batch_size": 64,
            "optimizer": {"name": "sgd", "momentum": 0.9},
        },
    }
}
#: Columns compared with WeightWatcher's details (numbers to 1e-9 relative, text exactly).
NUMERIC = ("N", "M", "Q", "rf", "num_evals", "alpha", "alpha_weighted", "D", "sigma", "xmin", "xmax",
           "num_pl_spikes", "log_norm", "norm", "log_spectral_norm", "spectral_norm", "lambda_max", "sv_max",
           "stable_rank", "entropy", "mp_softrank")
TEXT = ("name", "longname", "layer_type", "status", "warning", "has_esd")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    from zoo.catalog import build_catalog
    from zoo.cli_spectral import run_spectral
    from zoo.layout import catalog_files

    data = make_tiny_zoo(tmp_path_factory.mktemp("ww") / "data", CONFIG)
    for ckpt in sorted(data.glob("zoos/*/checkpoints/*.safetensors")):
        run_spectral(ckpt, ckpt.parent.parent / "spectral" / f"{ckpt.stem}.parquet")
    build_catalog(data, files=catalog_files(data))
    return data


def ww_details(module):
    import weightwatcher as ww

    logging.getLogger("weightwatcher").setLevel(logging.ERROR)
    with contextlib.redirect_stdout(io.StringIO()):
        return ww.WeightWatcher(model=module).analyze(mp_fit=True)


def test_ww_view_equals_weightwatcher_on_the_same_layers(data):
    import zoo

    view = zoo.frame("SELECT * FROM ww ORDER BY zoo, model_id, epoch, longname", data)
    spectral = zoo.frame("SELECT model_id, epoch, layer, ww_analyzed FROM spectral", data)
    pairs = zoo.frame("SELECT DISTINCT model_id, epoch FROM spectral ORDER BY ALL", data)
    compared = set()
    for mid, epoch in pairs.itertuples(index=False):
        ref = ww_details(zoo.load_model(mid, int(epoch), data_dir=data))
        ours = view[(view["model_id"] == mid) & (view["epoch"] == epoch)]
        # the view has exactly the layers analyze() reports with its defaults (none for a 4-unit MLP)
        assert sorted(ours["longname"]) == sorted(ref["longname"] if len(ref) else []), (mid, epoch)
        for _, r in ref.iterrows():
            o = ours[ours["longname"] == r["longname"]].iloc[0]
            for col in NUMERIC:
                assert float(o[col]) == pytest.approx(float(r[col]), rel=1e-9, abs=1e-12), (mid, epoch, r["longname"], col)
            for col in TEXT:
                assert o[col] == r[col], (mid, epoch, r["longname"], col, o[col], r[col])
            compared.add((o["zoo"], o["layer_type"], int(o["rf"])))
        skipped = spectral[(spectral["model_id"] == mid) & (spectral["epoch"] == epoch) & ~spectral["ww_analyzed"]]
        assert not set(skipped["layer"]) & set(ours["longname"])
    # dense layers, 3×3 conv kernels and 1×1 kernels (rf = 1, told from dense by the conv ½) were all compared
    assert {("tiny-mlp", "dense", 1), ("tiny-cnn", "conv2d", 9), ("tiny-cnn", "conv2d", 1)} <= compared
    assert len(spectral[~spectral["ww_analyzed"]]) > 0


def test_ww_view_keeps_our_keys_and_fit_rule_and_has_no_rows_of_skipped_layers(data):
    import zoo

    n_view = zoo.frame("SELECT count(*) AS n FROM ww", data)["n"].iloc[0]
    n_spec = zoo.frame("SELECT count(*) AS n FROM spectral WHERE ww_analyzed", data)["n"].iloc[0]
    assert n_view == n_spec > 0
    cols = zoo.frame("SELECT * FROM ww LIMIT 1", data).columns
    assert {"model_id", "zoo", "population", "epoch", "fit_rule", "ww_analyzed"} <= set(cols)
    # WeightWatcher's summary metrics are computable on the view as its get_summary() does on details
    summary = zoo.frame("SELECT avg(log_norm) AS log_norm, avg(alpha) AS alpha, avg(alpha_weighted) AS alpha_weighted,"
                        " avg(log_spectral_norm) AS lsn, avg(stable_rank) AS sr FROM ww", data)
    assert np.isfinite(summary.to_numpy(float)).all()


def test_ww_is_a_view_not_a_table_and_catalog_checks_still_pass(data):
    import zoo
    from zoo.catalog import check_catalog

    con = zoo.open(data)
    try:
        views = {r[0] for r in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()}
        assert "ww" in views
        assert "ww" not in zoo.api.list_tables(data)
    finally:
        con.close()
    assert check_catalog(data / "zoo.duckdb") == []


def test_a_catalog_without_spectral_has_no_ww_view(tmp_path):
    import pyarrow as pa

    import zoo
    from zoo.catalog import build_catalog
    from zoo.errors import QueryError
    from zoo.store import write_table

    write_table(pa.table({"model_id": ["a"], "zoo": ["z"]}), tmp_path / "models.parquet", "models")
    build_catalog(tmp_path, files=[tmp_path / "models.parquet"])
    with pytest.raises(QueryError, match="ww"):
        zoo.frame("SELECT * FROM ww", tmp_path)


def test_a_table_named_ww_is_refused(tmp_path):
    import pyarrow as pa

    from zoo.catalog import build_catalog
    from zoo.errors import DataError
    from zoo.store import write_table

    write_table(pa.table({"x": [1]}), tmp_path / "x.parquet", "ww")
    with pytest.raises(DataError, match="zoo.table is 'ww'"):
        build_catalog(tmp_path, files=[tmp_path / "x.parquet"])


def test_a_spectral_table_without_the_views_columns_still_catalogs_without_ww(tmp_path):
    import pyarrow as pa

    import zoo
    from zoo.catalog import build_catalog
    from zoo.errors import QueryError
    from zoo.store import write_table

    write_table(pa.table({"model_id": ["a"], "epoch": [0], "layer": ["l"], "alpha": [2.0]}),
                tmp_path / "s.parquet", "spectral")
    assert build_catalog(tmp_path, files=[tmp_path / "s.parquet"]) == {"spectral": 1}
    with pytest.raises(QueryError, match="ww"):
        zoo.frame("SELECT * FROM ww", tmp_path)
