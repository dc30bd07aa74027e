"""Bad input gets one clear line and a non-zero exit, and leaves existing outputs alone."""

from __future__ import annotations

import pytest

from zoo.cli import main


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_corrupt_checkpoint_is_reported_and_no_output_is_written(tmp_path, capsys):
    ckpt = tmp_path / "p.safetensors"
    ckpt.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not a header")
    out = tmp_path / "weights.parquet"
    assert main(["weights", str(ckpt), "--out", str(out)]) == 1
    assert "corrupt or truncated checkpoint" in one_line_error(capsys)
    assert not out.exists() and list(tmp_path.iterdir()) == [ckpt]


def test_existing_output_survives_a_failed_rewrite(tmp_path, capsys):
    ckpt = tmp_path / "p.safetensors"
    ckpt.write_bytes(b"garbage")
    out = tmp_path / "weights.parquet"
    out.write_bytes(b"previous result")
    assert main(["weights", str(ckpt), "--out", str(out)]) == 1
    one_line_error(capsys)
    assert out.read_bytes() == b"previous result"


def _train_args(doc, tmp_path):
    return ["train", str(doc), "--checkpoint", str(tmp_path / "c.safetensors"), "--models", str(tmp_path / "m.parquet"),
            "--metrics", str(tmp_path / "f.parquet")]


def test_corrupt_population_document_names_the_file(tmp_path, capsys):
    doc = tmp_path / "mlp-0000000000.json"
    doc.write_text("{ truncated")
    assert main(_train_args(doc, tmp_path)) == 1
    err = one_line_error(capsys)
    assert str(doc) in err and "corrupt population document" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == [doc.name]


def test_malformed_population_document_names_the_file(tmp_path, capsys):
    doc = tmp_path / "mlp-ffffffffff.json"
    doc.write_text('{"zoo": "z", "population": "mlp-ffffffffff", "checkpoints": [1]}')
    assert main(_train_args(doc, tmp_path)) == 1
    err = one_line_error(capsys)
    assert str(doc) in err and "malformed population document" in err


@pytest.mark.parametrize("text", ["zoos: [1, 2", "just a string", "zoos: {z: {dataset: digits}}"])
def test_validate_rejects_bad_yaml_in_one_line(tmp_path, capsys, text):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    assert main(["validate", str(cfg)]) == 1
    assert str(cfg) in one_line_error(capsys)
