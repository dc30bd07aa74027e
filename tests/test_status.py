"""``zoo status``: training progress read back from the train jobs' files and logs.

References: real tqdm bars drawn with the same arguments as ``zoo.train._progress_bar``
through :class:`zoo.progress.LineStream` into a log file (what a Snakemake job writes), file
times set with ``os.utime``, and the counts written into the fixtures by hand.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest

from zoo.cli import main

CONFIG = {
    "zoos": {
        "tiny": {
            "dataset": "digits",
            "model": {"arch": "mlp", "depth": 1, "activation": "relu"},
            "grid": {"width": [4, 8, 16, 32], "lr": [0.05, 0.5]},
            "seeds": [0, 1],
            "epochs": 20,
            "checkpoints": [0, 20],
            "batch_size": 64,
        }
    }
}


def tqdm_log(path: Path, label: str, total: int, steps: int, diverged: int, models: int) -> None:
    """A train log as zoo.train writes it: a tqdm bar through LineStream, one line per update."""
    from tqdm import tqdm

    from zoo.progress import LineStream

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as fh:
        bar = tqdm(total=total, desc=label, unit="epoch", file=LineStream(fh), mininterval=0, ascii=True)
        for _ in range(steps):
            bar.set_postfix(models=models, diverged=diverged, refresh=False)
            bar.update(1)
        bar.refresh()  # what the job's last redraw leaves; not closed: still running


@pytest.fixture()
def zoo_dir(tmp_path):
    """A zoo laid out as the workflow does, with its four populations in four states."""
    import pyarrow as pa

    from zoo.config import load_zoos, validate
    from zoo.jobs import write_zoo_documents
    from zoo.store import write_table

    validate(CONFIG)
    zoo = load_zoos(CONFIG)["tiny"]
    lay = write_zoo_documents(zoo, {}, tmp_path / "data")
    pops = list(zoo.populations)
    old = 1_000_000_000.0
    for p in pops:
        os.utime(lay.population_doc(p), (old, old))
    trained, training, failed, _waiting = pops
    # trained: outputs newer than the document; its log ends with the done line
    for f in (lay.checkpoint(trained), lay.table("metrics", trained)):
        Path(f).parent.mkdir(parents=True, exist_ok=True)
        Path(f).write_bytes(b"x")
    n = len(zoo.populations[trained])
    write_table(pa.table({"model_id": ["a"] * n, "diverged_epoch": pa.array([3] + [None] * (n - 1), pa.int64())}),
                lay.table("models", trained), "models")
    log = Path(lay.log(f"train/{trained}"))
    tqdm_log(log, f"tiny/{trained}", 20, 20, 1, n)
    with log.open("a") as fh:
        fh.write(f"tiny/{trained}: trained {n} models (1 diverged) in 12.0 s = 40 models/min\n")
    # training: 13 of 20 epochs, 2 diverged
    tqdm_log(Path(lay.log(f"train/{training}")), f"tiny/{training}", 20, 13, 2, len(zoo.populations[training]))
    # failed: the CLI's one-line error after some progress
    flog = Path(lay.log(f"train/{failed}"))
    tqdm_log(flog, f"tiny/{failed}", 20, 4, 0, len(zoo.populations[failed]))
    with flog.open("a") as fh:
        fh.write("zoo train: error: data/x: cannot write it, disk full\n")
    return tmp_path / "data", zoo, pops


def test_progress_lines_of_a_real_tqdm_bar_parse(tmp_path):
    from zoo.progress import read_train_log

    log = tmp_path / "t.log"
    tqdm_log(log, "z/mlp-0123456789", 20, 13, 2, 15)
    state = read_train_log(log)
    assert (state.epoch, state.epochs, state.diverged) == (13, 20, 2)
    assert state.remaining_s is not None and state.elapsed_s is not None and state.error is None


def test_each_population_gets_its_state(zoo_dir):
    from zoo.progress import zoo_status

    data, zoo, (trained, training, failed, waiting) = zoo_dir
    (status,) = zoo_status(data)
    by = {p.population: p for p in status.populations}
    assert by[trained].state == "trained" and by[trained].diverged == 1 and by[trained].duration_s == 12.0
    assert by[training].state == "training" and (by[training].epoch, by[training].diverged) == (13, 2)
    assert by[failed].state == "failed" and "disk full" in by[failed].note
    assert by[waiting].state == "waiting" and by[waiting].epoch is None
    assert status.models == len(zoo.models)
    assert status.models_trained == len(zoo.populations[trained])
    assert status.diverged == 1 + 2
    assert not status.finished


def test_outputs_older_than_the_population_document_mean_it_must_train_again(zoo_dir):
    from zoo.layout import ZooLayout
    from zoo.progress import zoo_status

    data, _, (trained, *_rest) = zoo_dir
    doc = Path(ZooLayout(str(data), "tiny").population_doc(trained))
    os.utime(doc, None)  # the spec changed after it trained; its old log is older too
    (status,) = zoo_status(data)
    assert next(p for p in status.populations if p.population == trained).state == "waiting"


def test_table_counts_diverged_when_the_log_is_gone(zoo_dir):
    from zoo.layout import ZooLayout
    from zoo.progress import zoo_status

    data, _, (trained, *_rest) = zoo_dir
    Path(ZooLayout(str(data), "tiny").log(f"train/{trained}")).unlink()
    (status,) = zoo_status(data)
    p = next(p for p in status.populations if p.population == trained)
    assert p.state == "trained" and p.diverged == 1  # from the models table's diverged_epoch


def test_summary_and_population_lines(zoo_dir):
    from zoo.progress import render, zoo_status

    data, zoo, (trained, training, failed, waiting) = zoo_dir
    lines = render(zoo_status(data))
    assert lines[0].startswith("tiny: 1/4 populations trained, 1 training, 1 waiting, 1 failed")
    assert f"{len(zoo.populations[trained])}/{len(zoo.models)} models trained, 3 diverged" in lines[0]
    assert any(training in ln and "13/20 epochs" in ln and "ETA" in ln for ln in lines[1:])
    assert any(failed in ln and "failed" in ln and "disk full" in ln for ln in lines[1:])
    assert not any(waiting in ln for ln in lines[1:])  # only with --all
    assert len(render(zoo_status(data), show_all=True)) == 5


def test_watch_redraws_in_place_on_a_tty_and_prints_lines_otherwise(zoo_dir):
    from zoo.progress import watch

    data, *_ = zoo_dir

    class Tty(io.StringIO):
        def isatty(self):
            return True

    tty = Tty()
    watch(data, interval=0.01, stream=tty, max_rounds=2)
    assert tty.getvalue().count("\x1b[J") == 1  # the second round moved the cursor up and cleared
    plain = io.StringIO()
    watch(data, interval=0.01, stream=plain, max_rounds=3)
    assert "\x1b[" not in plain.getvalue()
    assert plain.getvalue().count("tiny: ") == 1  # unchanged status: printed once, not every round


def test_zoo_status_command_json_and_errors(zoo_dir, tmp_path, capsys):
    data, zoo, _ = zoo_dir
    assert main(["status", "--data", str(data), "--json"]) == 0
    (rec,) = json.loads(capsys.readouterr().out)
    assert rec["zoo"] == "tiny" and rec["models"] == len(zoo.models) and len(rec["populations"]) == 4
    assert main(["status", "--data", str(data), "--all"]) == 0
    assert "tiny: 1/4 populations trained" in capsys.readouterr().out
    assert main(["status", "--data", str(tmp_path / "nothing")]) == 1
    err = capsys.readouterr().err
    assert "no zoo has a spec.json yet" in err and err.count("\n") == 1


def test_status_is_registered_with_the_cli():
    from zoo.cli import EXTENSIONS

    assert "zoo.cli_status" in EXTENSIONS and "zoo.cli_figures" in EXTENSIONS
