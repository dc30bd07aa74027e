"""Hostile or mistaken specs and dataset files fail fast: one line, exit 1, no traceback, bounded cost.

Every spec case runs ``zoo validate FILE`` in a fresh process under a 2 GiB address-space
limit and a 10 s timeout, so a spec that expands before it is checked (an alias bomb, a
10**9-model grid, a 256 GB population) fails the test by crashing or timing out instead
of passing by accident.
"""

from __future__ import annotations

import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from zoo.errors import DataError, SpecError

LIMIT_BYTES = 2 * 2**30
TIMEOUT_S = 10

BASE = """\
zoos:
  z:
    dataset: digits
    model: {arch: mlp, depth: 1}
    grid: {width: [4, 8], lr: [0.1]}
    seeds: [0, 1]
    epochs: 3
    checkpoints: [0, 3]
"""


def laughs(levels: int = 9, fan: int = 9) -> str:
    """Billion laughs: ``fan ** levels`` strings from a few hundred bytes of anchors and aliases."""
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * fan) + "]")
    return "\n".join(lines) + "\n"


def mapping_laughs(levels: int = 30) -> str:
    """The same with mappings (2**levels leaves)."""
    lines = ["m0: &m0 {x: 1, y: 2}"] + [f"m{i}: &m{i} {{p: *m{i - 1}, q: *m{i - 1}}}" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


def spec(*replacements: tuple[str, str], extra: str = "", prefix: str = "") -> str:
    text = BASE
    for old, new in replacements:
        assert old in text, old
        text = text.replace(old, new)
    return prefix + text + extra


# (case id, spec text, a substring the one-line message must contain)
CASES = [
    ("alias-bomb-in-description", laughs() + spec(("dataset: digits", "description: *a9\n    dataset: digits")),
     "anchor '&a0' is not allowed"),
    ("alias-bomb-in-dataset-options", laughs() + spec(("dataset: digits", "dataset: digits\n    dataset_options: {x: *a9}")),
     "not allowed"),
    ("mapping-alias-bomb", mapping_laughs() + spec(("dataset: digits", "dataset: digits\n    dataset_options: {x: *m30}")),
     "not allowed"),
    ("alias-without-anchor-text", spec(("seeds: [0, 1]", "seeds: *nowhere")), "alias"),
    ("duplicate-key", spec(("epochs: 3", "epochs: 3\n    epochs: 30")), "duplicate key 'epochs'"),
    ("duplicate-zoo", BASE + BASE.replace("zoos:\n", ""), "duplicate key 'z'"),
    ("quoted-number-in-grid", spec(("lr: [0.1]", "lr: ['1e-3']")), "'1e-3' is a string; write 1.0e-3"),
    ("quoted-number-in-optimizer", spec(extra="    optimizer: {lr: '1e-3'}\n"), "'1e-3' is a string"),
    ("seeds-1e9", spec(("seeds: [0, 1]", "seeds: 1000000000")), "seeds"),
    ("seeds-over-hard-cap-with-consent", spec(("seeds: [0, 1]", "seeds: 1000000"), extra="settings: {allow_large: true}\n"),
     "2,000,000 models"),
    ("linspace-of-1e8", spec(("lr: [0.1]", "lr: {linspace: [0.01, 1, 100000000]}")), "grid.lr.linspace"),
    ("grid-product-beyond-hard-cap", spec(("grid: {width: [4, 8], lr: [0.1]}",
                                           "grid: {width: {linspace: [1, 64, 1000]}, lr: {logspace: [-4, 0, 1000]}}")),
     "2,000,000 models"),
    ("grid-product-beyond-max-models", spec(("grid: {width: [4, 8], lr: [0.1]}",
                                             "grid: {width: {linspace: [1, 64, 200]}, lr: {logspace: [-4, 0, 100]}}")),
     "40,000 models, more than settings.max_models=20000"),
    ("logspace-overflow", spec(("lr: [0.1]", "lr: {logspace: [-3, 400, 5]}")), "overflows"),
    ("huge-sample", spec(("lr: [0.1]", "lr: {loguniform: [1.0e-3, 1]}"), extra="    sample: 1000000000\n"), "sample"),
    ("huge-checkpoint-list", spec(("checkpoints: [0, 3]", "checkpoints: [" + ", ".join(["1"] * 20000) + "]")),
     "checkpoints"),
    ("nan-momentum", spec(extra="    optimizer: {momentum: .nan}\n"), "optimizer.momentum': nan is not a finite"),
    ("inf-weight-decay", spec(extra="    optimizer: {weight_decay: .inf}\n"), "optimizer.weight_decay': inf"),
    ("nan-train-fraction", spec(extra="    train_fraction: .nan\n"), "train_fraction': nan"),
    ("nan-max-loss", spec(extra="    max_loss: .nan\n"), "max_loss': nan"),
    ("nan-phase-threshold", spec(extra="    phases: {mc_eps: .nan}\n"), "phases.mc_eps': nan"),
    ("nan-in-grid", spec(("lr: [0.1]", "lr: [0.1, .nan]")), "grid.lr.1': nan"),
    ("nan-dataset-option", spec(("dataset: digits", "dataset: digits\n    dataset_options: {test_fraction: .nan}")),
     "dataset_options.test_fraction': nan"),
    ("test-fraction-2", spec(("dataset: digits", "dataset: digits\n    dataset_options: {test_fraction: 2}")),
     "strictly between 0 and 1"),
    ("unknown-dataset-option", spec(("dataset: digits", "dataset: digits\n    dataset_options: {test_fractoin: 0.3}")),
     "takes no option 'test_fractoin'"),
    ("train-fraction-above-1", spec(extra="    train_fraction: 1.5\n"), "train_fraction"),
    ("seed-beyond-int64", spec(("seeds: [0, 1]", "seeds: [100000000000000000000000]")), "64-bit"),
    ("width-1e9", spec(("width: [4, 8]", "width: [1000000000]")), "above the limit"),
    ("population-beyond-memory", spec(("width: [4, 8]", "width: [100000]"), ("depth: 1", "depth: 3")),
     "GiB"),
    ("population-beyond-max-memory-gb", spec(("width: [4, 8]", "width: [4096]"), ("depth: 1", "depth: 3"),
                                             extra="settings: {max_memory_gb: 2}\n"), "settings.max_memory_gb"),
    ("learn-unknown-zoo", spec(extra="learn: {zoos: [nonexistent]}\n"), "unknown zoo 'nonexistent'; known zoos: z"),
    ("learn-unknown-phase", spec(extra="learn: {split: 'phase:V'}\n"), "no phase label"),
    ("float-epochs", spec(("epochs: 3", "epochs: 3.0")), "not an integer; write 3"),
    ("deep-nesting", spec(extra="    dataset_options: " + "{a: " * 40 + "1" + "}" * 40 + "\n"), "nested"),
    ("date-value", spec(("dataset: digits", "dataset: digits\n    dataset_options: {seed: 2024-01-01}")), "date"),
    ("python-tag", spec(("dataset: digits", "dataset: !!python/object/apply:os.system [echo hi]")), "malformed YAML"),
    ("randint-beyond-int64", spec(("lr: [0.1]", "batch_size: {randint: [1, 100000000000000000000]}"),
                                  extra="    sample: 2\n"), "64-bit"),
    ("transformer-heads-not-dividing-width",
     spec(("model: {arch: mlp, depth: 1}", "model: {arch: transformer, heads: 3}"), ("width: [4, 8]", "width: [16]")),
     "not divisible by heads"),
    ("cnn-on-tabular-data", spec(("dataset: digits", "dataset: wine"), ("model: {arch: mlp, depth: 1}", "model: {arch: cnn}"),
                                 ("width: [4, 8]", "channels: [4]")), "needs image inputs"),
    ("many-zoos-beyond-the-hard-cap", "settings: {allow_large: true, max_models: 250000}\nzoos:\n" + "".join(
        f"  z{i}:\n    dataset: digits\n    model: {{arch: mlp}}\n    grid: {{lr: [0.1]}}\n    seeds: 200000\n"
        "    epochs: 1\n    checkpoints: [1]\n" for i in range(50)), "10,000,000 models together"),
    ("file-too-large", "description: '" + "x" * (2 * 2**20) + "'\n", "larger than"),
]


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (LIMIT_BYTES, LIMIT_BYTES))


def run_validate(path: Path) -> subprocess.CompletedProcess:
    """``zoo validate path`` in a fresh process with 2 GiB of address space and 10 s."""
    return subprocess.run([sys.executable, "-m", "zoo.cli", "validate", str(path)], preexec_fn=_limit_memory,
                          capture_output=True, text=True, timeout=TIMEOUT_S)


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_hostile_spec_fails_in_one_line_within_bounded_time_and_memory(tmp_path, text, expected):
    path = tmp_path / "hostile.yaml"
    path.write_text(text)
    proc = run_validate(path)
    assert proc.returncode == 1, (proc.returncode, proc.stdout[-500:], proc.stderr[-2000:])
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert expected in proc.stderr, proc.stderr


def test_the_same_spec_without_hostility_validates_under_the_same_limits(tmp_path):
    path = tmp_path / "fine.yaml"
    path.write_text(spec(("lr: [0.1]", "lr: [1e-3, 1E-2, 5.0e-2]")))
    proc = run_validate(path)
    assert proc.returncode == 0, proc.stderr
    assert "z: 12 models in 2 populations" in proc.stdout


# ---------------------------------------------------------------------------- the Snakefile's entry point
def test_workflow_config_rereads_files_and_refuses_what_snakemake_let_through(tmp_path):
    from zoo.config import load_workflow_config

    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(laughs() + spec(("dataset: digits", "description: *a9\n    dataset: digits")))
    as_snakemake_reads_it = yaml.load(bomb.read_text(), Loader=yaml.FullLoader)  # shared lists, not yet expanded
    with pytest.raises(SpecError, match="not allowed"):
        load_workflow_config(as_snakemake_reads_it, [str(bomb)])
    dup = tmp_path / "dup.yaml"
    dup.write_text(spec(("epochs: 3", "epochs: 3\n    epochs: 30")))
    with pytest.raises(SpecError, match=r"duplicate key 'epochs'.*line 7"):
        load_workflow_config(yaml.safe_load(dup.read_text()), [str(dup)])


def test_workflow_config_bounds_an_alias_bomb_that_arrives_as_shared_objects():
    """A config built in Python (or by a loader that kept aliases) may share nodes: an honest
    shared value passes, a bomb meets the node bound without being expanded."""
    from zoo.config import load_workflow_config

    shared = [0.1]
    config = yaml.safe_load(BASE)
    config["zoos"]["z"]["grid"] = {"lr": shared, "momentum": shared}
    assert "z" in load_workflow_config(config, [])
    bomb: list = ["lol"]
    for _ in range(8):  # 100**8 leaves once expanded, 8 levels deep
        bomb = [bomb] * 100
    config = yaml.safe_load(BASE)
    config["zoos"]["z"]["description"] = bomb
    t0 = time.perf_counter()
    with pytest.raises(SpecError, match="more than 1,000,000 values"):
        load_workflow_config(config, [])
    assert time.perf_counter() - t0 < 10


def test_workflow_config_writes_the_strict_values_back_and_applies_overrides(tmp_path):
    from zoo.config import load_workflow_config

    path = tmp_path / "c.yaml"
    path.write_text(spec(("lr: [0.1]", "lr: [1e-3]"), extra="learn: {zoos: [z]}\n"))
    config = yaml.safe_load(path.read_text())  # YAML 1.1: lr is the string '1e-3'
    assert config["zoos"]["z"]["grid"]["lr"] == ["1e-3"]
    zoos = load_workflow_config(config, [str(path)], overrides={"settings": {"population_size": 1}})
    assert config["zoos"]["z"]["grid"]["lr"] == [0.001]
    assert config["settings"] == {"population_size": 1}
    assert len(zoos["z"].models) == 4 and len(zoos["z"].populations) == 4


# ---------------------------------------------------------------------------- hostile dataset files
def _write_idx(path: Path, array: np.ndarray, type_code: int = 0x08) -> None:
    import struct

    dtype = {0x08: np.uint8, 0x09: np.int8}[type_code]
    header = struct.pack(">BBBB", 0, 0, type_code, array.ndim) + struct.pack(f">{array.ndim}i", *array.shape)
    path.write_bytes(header + np.ascontiguousarray(array, dtype=dtype).tobytes())


def _mnist_folder(root: Path, train_labels: np.ndarray, type_code: int = 0x08) -> Path:
    folder = root / "mnist"
    folder.mkdir(parents=True)
    n = len(train_labels)
    _write_idx(folder / "train-images-idx3-ubyte", np.zeros((n, 28, 28), np.uint8))
    _write_idx(folder / "train-labels-idx1-ubyte", train_labels, type_code)
    _write_idx(folder / "t10k-images-idx3-ubyte", np.zeros((4, 28, 28), np.uint8))
    _write_idx(folder / "t10k-labels-idx1-ubyte", np.arange(4, dtype=np.uint8))
    return folder


@pytest.mark.parametrize(("labels", "type_code", "shown"), [
    (np.array([0, 1, 12, 3, 4, 5], np.uint8), 0x08, "12"),
    (np.array([0, 1, -1, 3, 4, 5], np.int8), 0x09, "-1"),
])
def test_idx_labels_outside_the_classes_name_the_file(tmp_path, labels, type_code, shown):
    from zoo.data import load_dataset

    folder = _mnist_folder(tmp_path, labels, type_code)
    with pytest.raises(DataError) as exc:
        load_dataset("mnist", {"data_root": str(tmp_path)})
    message = str(exc.value)
    assert "\n" not in message and str(folder / "train-labels-idx1-ubyte") in message
    assert "outside 0..9" in message and f"e.g. {shown}" in message


def test_cifar_label_10_names_the_batch(tmp_path):
    import pickle

    from zoo.data import load_dataset

    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]:
        labels = [10 if name == "data_batch_3" else 1, 2]
        with open(folder / name, "wb") as fh:
            pickle.dump({b"labels": labels, b"data": np.zeros((2, 3072), np.uint8)}, fh, protocol=2)
    with pytest.raises(DataError, match=r"data_batch_3: 1 of 2 labels lie outside 0\.\.9"):
        load_dataset("cifar10", {"data_root": str(tmp_path)})


@pytest.mark.parametrize(("bad", "match"), [(0, r"outside 1\.\.10 \(e\.g\. 0"), (11, r"outside 1\.\.10"),
                                            (2.5, "not integer")])
def test_svhn_labels_outside_1_to_10_name_the_file(tmp_path, bad, match):
    from scipy.io import savemat

    from zoo.data import load_dataset

    folder = tmp_path / "svhn"
    folder.mkdir()
    for split in ("train", "test"):
        y = np.array([[1.0], [10.0], [bad if split == "train" else 3.0]])
        savemat(folder / f"{split}_32x32.mat", {"X": np.zeros((32, 32, 3, 3), np.uint8), "y": y})
    with pytest.raises(DataError, match=match) as exc:
        load_dataset("svhn", {"data_root": str(tmp_path)})
    assert "train_32x32.mat" in str(exc.value) and "\n" not in str(exc.value)


@pytest.mark.parametrize("dataset", ["digits", "wine", "breast_cancer"])
@pytest.mark.parametrize("fraction", [0.0, 1.0, 2.0])
def test_test_fraction_outside_0_1_is_refused_at_load_time(dataset, fraction):
    from zoo.data import load_dataset

    with pytest.raises(DataError, match="strictly between 0 and 1"):
        load_dataset(dataset, {"test_fraction": fraction})
