"""Dataset loaders: real file formats (written here byte by byte), splits, normalisation, errors.

Fixture files are generated in each test with independent writers (struct / pickle /
scipy.io.savemat), in the exact layouts the datasets are published in, so the loaders
are checked against the formats, not against themselves.
"""

from __future__ import annotations

import gzip
import pickle
import random
import struct
from pathlib import Path

import numpy as np
import pytest

from zoo.data import load_dataset
from zoo.datasets.images import stratified_subset
from zoo.errors import DataError

FASHION = Path("/usr/share/datasets/fashion-mnist")


# ---------------------------------------------------------------------------- writers
def write_idx(path: Path, array: np.ndarray, compress: bool = True) -> None:
    """IDX: 0, 0, type 0x08 (uint8), ndim, big-endian int32 dims, row-major bytes."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}i", *array.shape)
    data = header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if compress else data)


def write_mnist_family(folder: Path, n_train: int = 30, n_test: int = 20, compress: bool = True, seed: int = 0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": (np.arange(n_train) % 10).astype(np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": ((np.arange(n_test) * 7) % 10).astype(np.uint8),
    }
    for name, arr in arrays.items():
        write_idx(folder / (name + (".gz" if compress else "")), arr, compress)
    return arrays


def write_cifar(folder: Path, per_batch: int = 6, n_test: int = 10, seed: int = 0):
    """cifar-10-batches-py: pickled dicts with bytes keys (as the original Python 2 pickles load)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    batches = {}
    for name, n in [*((f"data_batch_{i}", per_batch) for i in range(1, 6)), ("test_batch", n_test)]:
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, n)]
        with open(folder / name, "wb") as fh:
            pickle.dump({b"batch_label": name.encode(), b"labels": labels, b"data": data}, fh, protocol=2)
        batches[name] = (data, np.asarray(labels))
    return batches


# ---------------------------------------------------------------------------- MNIST family
def test_idx_gz_files_load_with_shapes_labels_dtypes_and_train_split_normalisation(tmp_path):
    arrays = write_mnist_family(tmp_path / "mnist")
    ds = load_dataset("mnist", {"data_root": str(tmp_path)})
    assert ds.x_train.shape == (30, 1, 28, 28) and ds.x_test.shape == (20, 1, 28, 28)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    np.testing.assert_array_equal(ds.y_train, arrays["train-labels-idx1-ubyte"])
    np.testing.assert_array_equal(ds.y_test, arrays["t10k-labels-idx1-ubyte"])
    raw = arrays["train-images-idx3-ubyte"].astype(np.float64) / 255
    expected = (raw - raw.mean()) / raw.std()
    np.testing.assert_allclose(ds.x_train[:, 0], expected, atol=1e-5)
    test_raw = arrays["t10k-images-idx3-ubyte"].astype(np.float64) / 255
    np.testing.assert_allclose(ds.x_test[:, 0], (test_raw - raw.mean()) / raw.std(), atol=1e-5)
    assert ds.n_classes == 10 and len(ds.meta["files"]) == 4


def test_uncompressed_idx_in_torchvision_layout_is_found(tmp_path):
    arrays = write_mnist_family(tmp_path / "KMNIST" / "raw", compress=False)
    ds = load_dataset("kmnist", {"data_root": str(tmp_path), "image_size": 14, "flatten": True})
    assert ds.x_train.shape == (30, 14 * 14)
    np.testing.assert_array_equal(ds.y_test, arrays["t10k-labels-idx1-ubyte"])


def test_zoo_data_root_environment_variable_is_searched(tmp_path, monkeypatch):
    arrays = write_mnist_family(tmp_path / "mnist", n_train=12, n_test=4, seed=5)
    monkeypatch.setenv("ZOO_DATA_ROOT", str(tmp_path))
    ds = load_dataset("mnist", {"n_test": 4})  # options differ from other tests: not a cached copy
    np.testing.assert_array_equal(ds.y_train, arrays["train-labels-idx1-ubyte"])


def test_subsample_is_stratified_seeded_and_exact(tmp_path):
    write_mnist_family(tmp_path / "fashion-mnist", n_train=100, n_test=50)
    a = load_dataset("fashion-mnist", {"data_root": str(tmp_path), "n_train": 40, "n_test": 10})
    assert len(a.y_train) == 40 and np.bincount(a.y_train).tolist() == [4] * 10
    assert np.bincount(a.y_test, minlength=10).tolist() == [1] * 10
    assert a.meta["n_train"] == 40 and a.meta["subsample_seed"] == 0


def test_stratified_subset_quotas_follow_largest_remainders():
    y = np.repeat([0, 1, 2], [50, 30, 20])
    idx = stratified_subset(y, 10)
    assert np.bincount(y[idx]).tolist() == [5, 3, 2]
    y = np.repeat([0, 1, 2], [5, 3, 2])
    assert np.bincount(y[stratified_subset(y, 5)]).tolist() == [3, 1, 1]  # 2.5, 1.5, 1.0 → ties by order
    assert np.array_equal(stratified_subset(y, 5), stratified_subset(y, 5))


def test_truncated_idx_file_is_a_one_line_data_error(tmp_path):
    arrays = write_mnist_family(tmp_path / "mnist")
    path = tmp_path / "mnist" / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes())[:-5]))
    with pytest.raises(DataError, match="truncated or corrupt") as err:
        load_dataset("mnist", {"data_root": str(tmp_path), "n_train": 7})
    assert "\n" not in str(err.value)
    assert arrays  # the other files were fine


@pytest.mark.parametrize(("name", "hint"), [("fashion-mnist", "apt-get install dataset-fashion-mnist"),
                                             ("mnist", "data/raw/mnist"), ("cifar10", "cifar-10-python.tar.gz"),
                                             ("svhn", "train_32x32.mat")])
def test_missing_files_say_where_we_looked_and_how_to_get_them(tmp_path, name, hint):
    with pytest.raises(DataError) as err:
        load_dataset(name, {"data_root": str(tmp_path / "nowhere")})
    msg = str(err.value)
    assert hint in msg and str(tmp_path / "nowhere") in msg and "\n" not in msg


@pytest.mark.skipif(not (FASHION / "train-images-idx3-ubyte.gz").is_file(),
                    reason="Debian package dataset-fashion-mnist not installed (apt-get install dataset-fashion-mnist)")
def test_fashion_mnist_real_files():
    """Published facts: 60,000 / 10,000 images of 28×28, 6,000 / 1,000 per class."""
    from zoo.datasets.files import read_idx

    y_train = read_idx(FASHION / "train-labels-idx1-ubyte.gz")
    y_test = read_idx(FASHION / "t10k-labels-idx1-ubyte.gz")
    assert np.bincount(y_train).tolist() == [6000] * 10 and np.bincount(y_test).tolist() == [1000] * 10
    ds = load_dataset("fashion-mnist", {"n_train": 2000, "n_test": 500})  # found in /usr/share/datasets
    assert ds.x_train.shape == (2000, 1, 28, 28) and ds.x_test.shape == (500, 1, 28, 28)
    assert np.bincount(ds.y_train).tolist() == [200] * 10 and np.bincount(ds.y_test).tolist() == [50] * 10
    assert abs(ds.x_train.mean()) < 1e-4 and abs(ds.x_train.std() - 1) < 1e-4
    # Fashion-MNIST's mean pixel is about 0.286 (the commonly quoted normalisation constant).
    assert ds.meta["normalisation"]["mean"][0] == pytest.approx(0.286, abs=0.01)


# ---------------------------------------------------------------------------- CIFAR-10, SVHN
def test_cifar_pickle_batches_load_in_order_with_per_channel_normalisation(tmp_path):
    batches = write_cifar(tmp_path / "cifar-10-batches-py")
    ds = load_dataset("cifar10", {"data_root": str(tmp_path)})
    assert ds.x_train.shape == (30, 3, 32, 32) and ds.x_test.shape == (10, 3, 32, 32)
    y_expected = np.concatenate([batches[f"data_batch_{i}"][1] for i in range(1, 6)])
    np.testing.assert_array_equal(ds.y_train, y_expected)
    raw = np.concatenate([batches[f"data_batch_{i}"][0] for i in range(1, 6)]).reshape(-1, 3, 32, 32) / 255.0
    mean, std = raw.mean(axis=(0, 2, 3), keepdims=True), raw.std(axis=(0, 2, 3), keepdims=True)
    np.testing.assert_allclose(ds.x_train, (raw - mean) / std, atol=1e-5)
    assert ds.y_train.dtype == np.int64 and ds.x_train.dtype == np.float32


def test_cifar_grayscale_is_bt601_luma_and_image_size_resizes(tmp_path):
    """CIFAR-10-GS as in the Small CNN Zoo: Y = 0.299 R + 0.587 G + 0.114 B."""
    batches = write_cifar(tmp_path / "cifar-10-batches-py")
    gs = load_dataset("cifar10", {"data_root": str(tmp_path), "grayscale": True})
    rgb = batches["test_batch"][0].reshape(-1, 3, 32, 32) / 255.0
    train = np.concatenate([batches[f"data_batch_{i}"][0] for i in range(1, 6)]).reshape(-1, 3, 32, 32) / 255.0
    luma = lambda a: 0.299 * a[:, 0] + 0.587 * a[:, 1] + 0.114 * a[:, 2]  # noqa: E731
    expected = (luma(rgb) - luma(train).mean()) / luma(train).std()
    assert gs.x_test.shape == (10, 1, 32, 32)
    np.testing.assert_allclose(gs.x_test[:, 0], expected, atol=1e-4)
    small = load_dataset("cifar10", {"data_root": str(tmp_path), "grayscale": True, "image_size": 16})
    assert small.x_train.shape == (30, 1, 16, 16)


def test_svhn_mat_files_map_label_10_to_digit_0(tmp_path):
    from scipy.io import savemat

    rng = np.random.default_rng(1)
    folder = tmp_path / "svhn"
    folder.mkdir()
    written = {}
    for split, n in (("train", 12), ("test", 5)):
        x = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
        y = rng.integers(1, 11, (n, 1)).astype(np.uint8)
        y[0, 0] = 10
        savemat(folder / f"{split}_32x32.mat", {"X": x, "y": y})
        written[split] = (x, y)
    ds = load_dataset("svhn", {"data_root": str(tmp_path)})
    assert ds.x_train.shape == (12, 3, 32, 32) and ds.y_train.dtype == np.int64
    np.testing.assert_array_equal(ds.y_train, np.where(written["train"][1][:, 0] == 10, 0, written["train"][1][:, 0]))
    assert ds.y_train[0] == 0
    # Pixel (row 3, column 5, channel 2) of image 4 stays where it was.
    norm = ds.meta["normalisation"]
    back = ds.x_train[4, 2, 3, 5] * norm["std"][2] + norm["mean"][2]
    assert back * 255 == pytest.approx(float(written["train"][0][3, 5, 2, 4]), abs=1e-3)


# ---------------------------------------------------------------------------- generated and bundled
def test_mnist1d_matches_the_package_and_leaves_global_rngs_alone():
    from mnist1d.data import get_dataset_args, make_dataset

    np.random.seed(123)
    random.seed(123)
    np_before, py_before = np.random.get_state()[1].copy(), random.getstate()
    ds = load_dataset("mnist1d", {"num_samples": 1000})
    assert np.array_equal(np.random.get_state()[1], np_before) and random.getstate() == py_before
    args = get_dataset_args()
    args.num_samples = 1000
    ref = make_dataset(args)
    assert ds.x_train.shape == (800, 40) and ds.x_test.shape == (200, 40)
    np.testing.assert_array_equal(ds.y_train, ref["y"])
    np.testing.assert_array_equal(ds.y_test, ref["y_test"])
    # Standardising again is an affine map: correlation with the package's values is 1.
    assert np.corrcoef(ds.x_train.ravel(), np.asarray(ref["x"]).ravel())[0, 1] == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize(("name", "n_rows", "n_test", "n_features", "n_classes"),
                         [("wine", 178, 36, 13, 3), ("breast_cancer", 569, 113, 30, 2)])
def test_tabular_split_sizes_and_per_feature_standardisation(name, n_rows, n_test, n_features, n_classes):
    """Stratified 20 % split: wine classes 59/71/48 → 12+14+10 test rows; cancer 212/357 → 42+71."""
    import sklearn.datasets

    bunch = getattr(sklearn.datasets, f"load_{name}")()
    ds = load_dataset(name)
    assert ds.x_train.shape == (n_rows - n_test, n_features) and ds.x_test.shape == (n_test, n_features)
    assert ds.n_classes == n_classes and ds.y_train.dtype == np.int64
    np.testing.assert_allclose(ds.x_train.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(ds.x_train.std(0), 1, atol=1e-4)
    norm = ds.meta["normalisation"]
    rows = ds.x_test * np.asarray(norm["std"]) + np.asarray(norm["mean"])
    # Every test row is a row of scikit-learn's data, with its label.
    for row, label in zip(rows[:5], ds.y_test[:5]):
        hit = np.flatnonzero(np.abs(bunch.data - row).max(1) < 1e-3 * (1 + np.abs(row).max()))
        assert len(hit) >= 1 and bunch.target[hit[0]] == label


def test_teacher_student_is_a_seeded_regression_task():
    ds = load_dataset("teacher-student", {"n_train": 200, "n_test": 100, "noise": 0.0})
    assert ds.task == "regression" and ds.n_classes == 1
    assert ds.x_train.shape == (200, 8) and ds.y_train.shape == (200, 1) and ds.y_train.dtype == np.float32
    assert abs(ds.y_train.mean()) < 1e-5 and abs(ds.y_train.std() - 1) < 1e-4
    other = load_dataset("teacher-student", {"n_train": 200, "n_test": 100, "noise": 0.0, "seed": 1})
    assert not np.allclose(ds.y_train, other.y_train)
    # Noise-free targets are a smooth function of the inputs: a degree-3 polynomial fit
    # (scikit-learn, closed-form least squares) explains most of their variance.
    from sklearn.linear_model import LinearRegression
    from sklearn.preprocessing import PolynomialFeatures

    feats = PolynomialFeatures(3).fit(ds.x_train)
    fit = LinearRegression().fit(feats.transform(ds.x_train), ds.y_train)
    assert fit.score(feats.transform(ds.x_train), ds.y_train) > 0.9


def test_digits_read_without_scikit_learn_equals_its_loader():
    """zoo reads scikit-learn's digits CSV itself (no sklearn import in the job); the arrays must be
    exactly what sklearn.datasets.load_digits returns, and scikit-learn must stay unimported."""
    import subprocess
    import sys

    from sklearn.datasets import load_digits as sk_digits

    from zoo.data import digits_arrays

    images, target = digits_arrays()
    ref = sk_digits()
    assert images.dtype == ref.images.dtype and np.array_equal(images, ref.images)
    assert target.dtype == ref.target.dtype and np.array_equal(target, ref.target)
    code = "import sys; from zoo.data import load_dataset; load_dataset('digits'); print('sklearn' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"


def test_digits_is_unchanged():
    ds = load_dataset("digits")
    assert ds.x_train.shape == (1438, 1, 8, 8) and ds.x_test.shape == (359, 1, 8, 8)
    assert ds.task == "classification" and ds.meta["source"] == "sklearn.datasets.load_digits"


def test_bad_option_is_a_data_error():
    with pytest.raises(DataError, match="bad dataset_options"):
        load_dataset("wine", {"n_train": 3})
