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


def test_corrupt_spec_json_names_the_file(tmp_path, capsys):
    spec = tmp_path / "spec.json"
    spec.write_text("{ truncated")
    assert main(["train", str(spec), "--population", "mlp-0000000000", "--outdir", str(tmp_path)]) == 1
    err = one_line_error(capsys)
    assert str(spec) in err and "corrupt spec JSON" in err


def test_unknown_population_lists_the_known_ones(tmp_path, capsys):
    import json

    from zoo.config import expand_zoo, zoo_document

    raw = {"dataset": "digits", "model": {"arch": "mlp", "depth": 1, "width": 4}, "grid": {"lr": [0.1]},
           "seeds": [0], "epochs": 1, "checkpoints": [1]}
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(zoo_document(expand_zoo("z", raw))))
    assert main(["train", str(spec), "--population", "mlp-ffffffffff", "--outdir", str(tmp_path)]) == 1
    assert "no population 'mlp-ffffffffff'" in one_line_error(capsys)


@pytest.mark.parametrize("text", ["zoos: [1, 2", "just a string", "zoos: {z: {dataset: digits}}"])
def test_validate_rejects_bad_yaml_in_one_line(tmp_path, capsys, text):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    assert main(["validate", str(cfg)]) == 1
    assert str(cfg) in one_line_error(capsys)
