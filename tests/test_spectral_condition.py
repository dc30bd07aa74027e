"""The spectral-condition columns of the ``spectral`` table against torch.linalg on the checkpoints."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from zoo.spectral_condition import CONDITION_COLUMNS, condition_metrics, fans

torch.set_num_threads(1)
EPOCHS = (0, 2, 5)


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    from zoo.cli import main
    from zoo.store import read_table, save_checkpoints

    tmp = tmp_path_factory.mktemp("spectral-condition")
    g = torch.Generator().manual_seed(0)
    ckpts = {e: {"layers.0.weight": torch.randn(3, 24, 16, generator=g), "layers.0.bias": torch.randn(3, 24, generator=g),
                 "convs.0.weight": torch.randn(3, 6, 4, 3, 3, generator=g)} for e in EPOCHS}
    path = tmp / "checkpoints" / "mlp-0123456789.safetensors"
    save_checkpoints(path, ckpts, ["m0", "m1", "m2"], {"zoo": "z", "population": "mlp-0123456789"})
    out = tmp / "spectral" / "mlp-0123456789.parquet"
    assert main(["spectral", str(path), "--out", str(out), "--no-farms", "--no-mp"]) == 0
    return read_table(out, "spectral").to_pandas(), ckpts


def _matrix(w):
    return w.double().reshape(w.shape[0], -1)


def test_delta_norm_from_the_table_equals_matrix_norm_of_the_checkpoint_difference(table):
    df, ckpts = table
    for row in df.itertuples():
        i = int(row.model_id[1:])
        if row.epoch == EPOCHS[0]:
            assert math.isnan(row.delta_spectral_norm) and math.isnan(row.delta_spectral_norm_scaled)
            continue
        prev = EPOCHS[EPOCHS.index(row.epoch) - 1]  # the previous checkpoint in the file, not epoch - 1
        W_t, W_s = ckpts[row.epoch][row.tensor][i], ckpts[prev][row.tensor][i]
        ref = float(torch.linalg.matrix_norm(_matrix(W_t) - _matrix(W_s), 2))
        assert row.delta_spectral_norm == pytest.approx(ref, rel=1e-10)
        assert row.delta_spectral_norm_scaled == pytest.approx(ref / math.sqrt(row.fan_out / row.fan_in), rel=1e-10)


def test_scaled_spectral_norm_divides_by_root_fan_out_over_fan_in(table):
    df, ckpts = table
    assert set(CONDITION_COLUMNS) <= set(df.columns)
    dense = df[df.tensor == "layers.0.weight"]
    conv = df[df.tensor == "convs.0.weight"]
    assert (dense.fan_in == 16).all() and (dense.fan_out == 24).all()
    assert (conv.fan_in == 4 * 3 * 3).all() and (conv.fan_out == 6).all()  # conv: the out × in·kh·kw matrix
    # dense: the existing spectral_norm column over √(out/in)
    assert np.allclose(dense.spectral_norm_scaled, dense.spectral_norm / math.sqrt(24 / 16), rtol=1e-10)
    for row in conv.itertuples():
        W = ckpts[row.epoch][row.tensor][int(row.model_id[1:])]
        ref = float(torch.linalg.matrix_norm(_matrix(W), 2)) / math.sqrt(6 / 36)
        assert row.spectral_norm_scaled == pytest.approx(ref, rel=1e-10)


def test_scaled_norm_of_a_scaled_orthogonal_matrix_is_known():
    q, _ = torch.linalg.qr(torch.randn(32, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64))
    W = 3.0 * q  # [32, 8], every singular value 3
    res = condition_metrics(W[None, None])
    assert res["spectral_norm_scaled"][0, 0] == pytest.approx(3.0 / math.sqrt(32 / 8), rel=1e-12)
    assert fans((32, 8)) == (8, 32) and fans((6, 4, 3, 3)) == (36, 6)
    two = condition_metrics(torch.stack([W, 2 * W])[:, None])  # epochs 0, 1
    assert math.isnan(two["delta_spectral_norm"][0, 0])
    assert two["delta_spectral_norm"][1, 0] == pytest.approx(3.0, rel=1e-12)


def test_nonfinite_weights_give_nan_not_an_error():
    W = torch.ones(2, 1, 4, 4)
    W[1, 0, 0, 0] = float("nan")
    res = condition_metrics(W)
    assert np.isfinite(res["spectral_norm_scaled"][0, 0]) and np.isnan(res["spectral_norm_scaled"][1, 0])
    assert np.isnan(res["delta_spectral_norm"][1, 0])


def test_condition_figure_plots_width_and_says_why_without_a_width_axis(tmp_path):
    import pyarrow as pa

    from zoo.cli import main
    from zoo.store import write_table

    rows = []
    for w in (4, 16, 64):
        for lr in (0.01, 0.1):
            mid = f"w{w}-{lr}"
            for e in (0, 5):
                rows.append({"model_id": mid, "epoch": e, "tensor": "layers.0.weight", "layer": "layers.0",
                             "spectral_norm_scaled": 1.0 + w / 100, "delta_spectral_norm_scaled": 0.1 if e else float("nan")})
    spectral = tmp_path / "spectral.parquet"
    write_table(pa.Table.from_pylist(rows), spectral, "spectral")
    for name, widths in (("wide", (4, 16, 64)), ("one", (8, 8, 8))):
        models = tmp_path / f"models-{name}.parquet"
        write_table(pa.Table.from_pylist([{"model_id": f"w{w}-{lr}", "zoo": "z", "width": v, "lr": lr, "diverged_epoch": None}
                                          for w, v in zip((4, 16, 64), widths) for lr in (0.01, 0.1)],
                                         schema=pa.schema([("model_id", pa.string()), ("zoo", pa.string()),
                                                           ("width", pa.int64()), ("lr", pa.float64()),
                                                           ("diverged_epoch", pa.int64())])), models, "models")
        out = tmp_path / f"{name}.png"
        assert main(["spectral-condition-figure", "--spectral", str(spectral), "--models", str(models),
                     "--out", str(out)]) == 0
        assert out.stat().st_size > 1_000


def test_spectral_job_never_imports_torch_and_matches_torch_linalg(tmp_path):
    """``zoo spectral`` runs on NumPy/LAPACK alone (torch's import is ~1.1 CPU-s of every job's
    start-up); its singular values must still agree with torch.linalg.svdvals on the checkpoint."""
    import subprocess
    import sys

    from zoo.store import read_table, save_checkpoints

    g = torch.Generator().manual_seed(1)
    ckpts = {e: {"layers.0.weight": torch.randn(4, 40, 30, generator=g), "layers.0.bias": torch.randn(4, 40, generator=g),
                 "convs.0.weight": torch.randn(4, 6, 5, 3, 3, generator=g)} for e in (0, 3)}
    path = tmp_path / "p.safetensors"
    save_checkpoints(path, ckpts, ["a", "b", "c", "d"], {"zoo": "z", "population": "p"})
    out = tmp_path / "s.parquet"
    code = ("import sys; from zoo.cli import main; "
            f"main(['spectral', {str(path)!r}, '--out', {str(out)!r}]); "
            "sys.exit(3 if 'torch' in sys.modules else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr  # 3: the job imported torch
    df = read_table(out, "spectral").to_pandas()
    dense = df[df.tensor == "layers.0.weight"].set_index(["epoch", "model_id"])
    for e in (0, 3):
        sv = torch.linalg.svdvals(ckpts[e]["layers.0.weight"].double())
        for i, m in enumerate("abcd"):
            row = dense.loc[(e, m)]
            assert row.spectral_norm == pytest.approx(float(sv[i, 0]), rel=1e-12)
            assert row.fro_norm == pytest.approx(float(sv[i].square().sum().sqrt()), rel=1e-12)
            assert row.stable_rank == pytest.approx(float(sv[i].square().sum() / sv[i, 0] ** 2), rel=1e-12)
    assert df.farms_alpha.notna().all() and df.mp_softrank.notna().any()
