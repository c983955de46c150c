"""Tests for jaxdl.data and jaxdl.data.readers. No network: downloads go through a patched fetch."""

import gzip
import hashlib
import pathlib
import random
import shutil
import tarfile

import numpy as np
import pytest

from jaxdl import data
from jaxdl.data import readers

# Small options keep the embedded sets fast; the expected (input_shape, num_classes, y shape).
EMBEDDED = {
    "digits": ({}, (8, 8, 1), 10, ()),
    "mnist1d": ({"num_samples": 100}, (40,), 10, ()),
    "moons": ({"num_train": 50, "num_test": 30}, (2,), 2, ()),
    "spirals": ({"num_train": 60, "num_test": 30}, (2,), 3, ()),
    "teacher": (
        {"num_train": 50, "num_test": 30, "output_dim": 2, "noise": 0.1}, (10,), None, (2,)
    ),
    "poly": ({}, (1,), None, (1,)),
    "adding": ({"length": 12, "lag": 5, "num_train": 50, "num_test": 30}, (12, 2), None, (1,)),
}


@pytest.fixture(scope="module")
def mnist1d_default():
    return data.load("mnist1d", standardize=False)


# ----------------------------------------------------------------------------- embedded sets

@pytest.mark.parametrize("name", sorted(EMBEDDED))
def test_embedded_set_shapes_and_dtypes(name):
    options, input_shape, num_classes, y_tail = EMBEDDED[name]
    dataset = data.load(name, **options)
    assert dataset.name == name and dataset.num_classes == num_classes
    assert dataset.input_shape == input_shape
    assert dataset.x_train.dtype == dataset.x_test.dtype == np.float32
    assert dataset.y_train.shape == (dataset.num_train, *y_tail)
    assert dataset.y_test.shape == (dataset.num_test, *y_tail)
    if num_classes is None:
        assert dataset.y_train.dtype == np.float32
    else:
        assert dataset.y_train.dtype == dataset.y_test.dtype == np.int32
        assert set(np.unique(dataset.y_train)) == set(range(num_classes))
    assert np.isfinite(dataset.x_train).all() and np.isfinite(dataset.x_test).all()


@pytest.mark.parametrize("name", sorted(EMBEDDED))
def test_embedded_set_is_deterministic_per_seed(name):
    options = EMBEDDED[name][0]
    first = data.load(name, standardize=False, seed=1, **options)
    again = data.load(name, standardize=False, seed=1, **options)
    other = data.load(name, standardize=False, seed=2, **options)
    for field in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(first, field), getattr(again, field))
    assert not np.array_equal(first.x_train, other.x_train)


def test_embedded_sizes():
    assert data.load("digits").num_train + data.load("digits").num_test == 1797
    assert data.load("digits", test_fraction=0.5).num_test == 899
    moons = data.load("moons", num_train=70, num_test=20)
    assert (moons.num_train, moons.num_test) == (70, 20)
    spirals = data.load("spirals", num_classes=4, num_train=10, num_test=6)
    assert (spirals.num_train, spirals.num_test, spirals.num_classes) == (10, 6, 4)
    assert np.bincount(spirals.y_train).tolist() == [3, 3, 2, 2]


def test_mnist1d_default_split(mnist1d_default):
    dataset = mnist1d_default
    assert (dataset.num_train, dataset.num_test, dataset.input_shape) == (4000, 1000, (40,))
    assert np.bincount(np.concatenate([dataset.y_train, dataset.y_test])).tolist() == [500] * 10
    # The generator centres and scales the whole set (train and test together) to std 1.
    everything = np.concatenate([dataset.x_train, dataset.x_test])
    assert abs(everything.mean()) < 1e-5 and abs(everything.std() - 1) < 1e-5


def test_mnist1d_shuffled_is_a_column_permutation():
    plain = data.load("mnist1d", num_samples=300, standardize=False)
    shuffled = data.load("mnist1d", num_samples=300, shuffle=True, standardize=False)
    np.testing.assert_array_equal(plain.y_train, shuffled.y_train)
    np.testing.assert_array_equal(plain.y_test, shuffled.y_test)
    # Column j of the shuffled set is column perm[j] of the plain one, for every row.
    distance = np.abs(shuffled.x_train[:, :, None] - plain.x_train[:, None, :]).max(axis=0)
    permutation = distance.argmin(axis=1)
    assert sorted(permutation) == list(range(40))
    assert not np.array_equal(permutation, np.arange(40))
    # Global normalisation is permutation invariant up to summation order, hence allclose.
    np.testing.assert_allclose(shuffled.x_train, plain.x_train[:, permutation], atol=1e-5)
    np.testing.assert_allclose(shuffled.x_test, plain.x_test[:, permutation], atol=1e-5)


def test_mnist1d_leaves_global_random_state_alone():
    np.random.seed(123)
    random.seed(123)
    numpy_before, python_before = np.random.get_state(), random.getstate()
    data.load("mnist1d", num_samples=100)
    numpy_after = np.random.get_state()
    assert random.getstate() == python_before
    np.testing.assert_array_equal(numpy_after[1], numpy_before[1])
    assert numpy_after[2:] == numpy_before[2:]


def test_spirals_are_not_linearly_separable():
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier

    spirals = data.load("spirals")
    linear = LogisticRegression().fit(spirals.x_train, spirals.y_train)
    nearest = KNeighborsClassifier(5).fit(spirals.x_train, spirals.y_train)
    assert linear.score(spirals.x_test, spirals.y_test) < 0.65
    assert nearest.score(spirals.x_test, spirals.y_test) > 0.95


def test_poly_follows_the_documented_function():
    clean = data.load("poly", noise=0.0, num_train=30, standardize=False)
    np.testing.assert_allclose(clean.y_train, data.poly_true_function(clean.x_train), atol=1e-6)
    assert clean.x_train.min() >= -1 and clean.x_train.max() <= 1
    noisy = data.load("poly", noise=0.2, num_train=30, num_test=5000, standardize=False)
    residual = noisy.y_test - data.poly_true_function(noisy.x_test)
    assert abs(residual.std() - 0.2) < 0.01


def test_teacher_is_fixed_by_seed_and_noise_adds_gaussian_noise():
    clean = data.load("teacher", num_test=4000, standardize=False)
    more_training = data.load("teacher", num_train=10, num_test=4000, standardize=False)
    np.testing.assert_array_equal(clean.x_test, more_training.x_test)
    np.testing.assert_array_equal(clean.y_test, more_training.y_test)
    assert clean.y_test.std() > 0.1
    noisy = data.load("teacher", num_test=4000, noise=0.5, standardize=False)
    np.testing.assert_array_equal(clean.x_test, noisy.x_test)
    assert abs((noisy.y_test - clean.y_test).std() - 0.5) < 0.03
    linear = data.load("teacher", hidden=(), activation="tanh", standardize=False)
    weights, *_ = np.linalg.lstsq(linear.x_train, linear.y_train, rcond=None)
    np.testing.assert_allclose(linear.x_test @ weights, linear.y_test, atol=1e-4)


# ----------------------------------------------------------------------------- standardisation

def test_standardize_uses_training_statistics():
    raw = data.load("digits", standardize=False)
    scaled = data.load("digits")
    mean = raw.x_train.astype(np.float64).mean(axis=0)
    std = raw.x_train.astype(np.float64).std(axis=0)
    std[std == 0] = 1.0
    np.testing.assert_allclose(scaled.x_train, (raw.x_train - mean) / std, atol=1e-5)
    np.testing.assert_allclose(scaled.x_test, (raw.x_test - mean) / std, atol=1e-5)
    varying = raw.x_train.std(axis=0) > 0
    np.testing.assert_allclose(scaled.x_train.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(scaled.x_train.std(axis=0)[varying], 1, atol=1e-4)
    assert (~varying).any()  # digits has always-blank corner pixels: the constant-feature case
    assert not np.allclose(scaled.x_test.mean(axis=0)[varying], 0, atol=1e-3)
    np.testing.assert_array_equal(scaled.y_train, raw.y_train)


def test_standardize_constant_feature_gives_no_nan():
    x_train = np.array([[0.1, 1.0], [0.1, 2.0], [0.1, 4.0]], np.float32)
    x_test = np.array([[0.3, 3.0]], np.float32)
    dataset = data.Dataset(x_train, np.zeros(3, np.int32), x_test, np.zeros(1, np.int32), 2, "toy")
    scaled = data.standardize(dataset)
    assert np.isfinite(scaled.x_train).all() and np.isfinite(scaled.x_test).all()
    np.testing.assert_array_equal(scaled.x_train[:, 0], 0.0)
    np.testing.assert_allclose(scaled.x_test[0, 0], 0.2, rtol=1e-5)


def test_regression_targets_are_not_standardized():
    raw = data.load("teacher", noise=0.3, standardize=False)
    scaled = data.load("teacher", noise=0.3)
    np.testing.assert_array_equal(raw.y_train, scaled.y_train)
    np.testing.assert_array_equal(raw.y_test, scaled.y_test)


# ----------------------------------------------------------------------------- API errors

def test_dataset_validates_lengths():
    x, y = np.zeros((3, 2), np.float32), np.zeros(3, np.int32)
    with pytest.raises(ValueError, match="y_test"):
        data.Dataset(x, y, x, y[:2], 2, "toy")
    with pytest.raises(ValueError, match="y_train"):
        data.Dataset(x, y[:1], x, y, 2, "toy")
    dataset = data.Dataset(x, y, x[:2], y[:2], 2, "toy")
    assert (dataset.num_train, dataset.num_test, dataset.input_shape) == (3, 2, (2,))


def test_unknown_name_and_option():
    with pytest.raises(ValueError, match="nope.*digits.*mnist1d"):
        data.load("nope")
    with pytest.raises(TypeError, match="'colour'"):
        data.load("moons", colour="red")
    with pytest.raises(ValueError, match="num_train"):
        data.load("moons", num_train=0)
    assert set(data.LOADERS) >= {"digits", "mnist1d", "moons", "spirals", "teacher", "poly",
                                 "mnist", "fashion_mnist", "cifar10"}


# ----------------------------------------------------------------------------- file sets

def _idx_bytes(array: np.ndarray) -> bytes:
    magic = (0x0800 | array.ndim).to_bytes(4, "big")
    dims = b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return magic + dims + array.astype(np.uint8).tobytes()


def _write_idx_set(folder: pathlib.Path, gzipped: bool, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (5, 28, 28)),
        "train-labels-idx1-ubyte": rng.integers(0, 10, 5),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (3, 28, 28)),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, 3),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for stem, array in arrays.items():
        raw = _idx_bytes(array)
        if gzipped:
            (folder / f"{stem}.gz").write_bytes(gzip.compress(raw))
        else:
            (folder / stem).write_bytes(raw)
    return arrays


def _scaled(pixels: np.ndarray) -> np.ndarray:
    return (pixels / 255.0).astype(np.float32)


@pytest.mark.parametrize("gzipped", [True, False])
@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_idx_round_trip(tmp_path, name, gzipped):
    arrays = _write_idx_set(tmp_path, gzipped)
    dataset = data.load(name, root=tmp_path, verify=False, standardize=False)
    assert dataset.x_train.shape == (5, 28, 28, 1) and dataset.x_train.dtype == np.float32
    train_images = arrays["train-images-idx3-ubyte"]
    np.testing.assert_array_equal(dataset.x_train[..., 0], _scaled(train_images))
    np.testing.assert_array_equal(dataset.x_test[..., 0], _scaled(arrays["t10k-images-idx3-ubyte"]))
    np.testing.assert_array_equal(dataset.y_train, arrays["train-labels-idx1-ubyte"])
    np.testing.assert_array_equal(dataset.y_test, arrays["t10k-labels-idx1-ubyte"])
    assert dataset.y_train.dtype == np.int32 and dataset.num_classes == 10


def test_idx_checksum_is_verified_on_load(tmp_path):
    _write_idx_set(tmp_path, gzipped=True)
    with pytest.raises(ValueError, match="checksum mismatch for .*-idx[13]-ubyte.gz"):
        data.load("mnist", root=tmp_path)


def test_idx_missing_file(tmp_path):
    _write_idx_set(tmp_path, gzipped=False)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte") as error:
        data.load("mnist", root=tmp_path, verify=False)
    assert str(tmp_path) in str(error.value) and "download=True" in str(error.value)


@pytest.mark.parametrize(
    "corrupt, message",
    [
        (lambda raw: raw[:-10], "size mismatch.*truncated"),
        (lambda raw: raw[:6], "truncated IDX header"),
        (lambda raw: (0x0801).to_bytes(4, "big") + raw[4:], "wrong IDX magic number 0x00000801"),
    ],
)
def test_idx_corrupt_file(tmp_path, corrupt, message):
    _write_idx_set(tmp_path, gzipped=False)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(corrupt(path.read_bytes()))
    with pytest.raises(ValueError, match=message) as error:
        data.load("mnist", root=tmp_path, verify=False)
    assert "train-images-idx3-ubyte" in str(error.value)


def test_idx_truncated_gzip(tmp_path):
    _write_idx_set(tmp_path, gzipped=True)
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-12])
    with pytest.raises(ValueError, match="train-labels-idx1-ubyte.gz.*corrupt or truncated"):
        data.load("mnist", root=tmp_path, verify=False)


def _cifar_batch(rng: np.random.Generator, count: int) -> bytes:
    labels = rng.integers(0, 10, (count, 1))
    pixels = rng.integers(0, 256, (count, 3072))
    return np.concatenate([labels, pixels], axis=1).astype(np.uint8).tobytes()


def _write_cifar_folder(root: pathlib.Path) -> pathlib.Path:
    folder = root / readers.CIFAR10_FOLDER
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in readers.CIFAR10_TRAIN_FILES:
        (folder / name).write_bytes(_cifar_batch(rng, 2))
    (folder / readers.CIFAR10_TEST_FILE).write_bytes(_cifar_batch(rng, 3))
    return folder


def test_cifar_round_trip(tmp_path):
    folder = _write_cifar_folder(tmp_path)
    dataset = data.load("cifar10", root=tmp_path, standardize=False)
    assert dataset.x_train.shape == (10, 32, 32, 3) and dataset.x_test.shape == (3, 32, 32, 3)
    records = np.frombuffer((folder / "data_batch_3.bin").read_bytes(), np.uint8).reshape(2, 3073)
    np.testing.assert_array_equal(dataset.y_train[4:6], records[:, 0])
    # Record byte 1 + c * 1024 + h * 32 + w is channel c of pixel (h, w).
    n, h, w, c = 1, 7, 19, 2
    pixel = records[n, 1 + c * 1024 + h * 32 + w]
    assert dataset.x_train[4 + n, h, w, c] == np.float32(pixel / 255.0)
    expected = records[:, 1:].reshape(2, 3, 32, 32).transpose(0, 2, 3, 1) / 255.0
    np.testing.assert_array_equal(dataset.x_train[4:6], expected.astype(np.float32))


def test_cifar_truncated_and_missing(tmp_path):
    folder = _write_cifar_folder(tmp_path)
    (folder / "test_batch.bin").write_bytes((folder / "test_batch.bin").read_bytes()[:-1])
    with pytest.raises(ValueError, match="test_batch.bin.*3073"):
        data.load("cifar10", root=tmp_path)
    (folder / "data_batch_2.bin").unlink()
    with pytest.raises(FileNotFoundError, match="data_batch_2.bin.*download=True"):
        data.load("cifar10", root=tmp_path)


# ----------------------------------------------------------------------------- download

def _serve_from(source: pathlib.Path, monkeypatch) -> list:
    fetched = []

    def fake_fetch(url, destination):
        fetched.append(url)
        shutil.copyfile(source / url.rsplit("/", 1)[1], destination)

    monkeypatch.setattr(readers, "_fetch_url", fake_fetch)
    return fetched


def test_idx_download_verifies_and_loads(tmp_path, monkeypatch):
    arrays = _write_idx_set(tmp_path / "server", gzipped=True)
    for path in (tmp_path / "server").iterdir():
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        monkeypatch.setitem(readers.CHECKSUMS["mnist"], path.name, digest)
    fetched = _serve_from(tmp_path / "server", monkeypatch)
    dataset = data.load("mnist", root=tmp_path / "mnist", download=True, standardize=False)
    assert sorted(fetched) == sorted(readers.URLS["mnist"].values())
    assert all(url.startswith("https://ossci-datasets.s3.amazonaws.com/mnist/") for url in fetched)
    np.testing.assert_array_equal(dataset.y_test, arrays["t10k-labels-idx1-ubyte"])
    data.load("mnist", root=tmp_path / "mnist", download=True)  # files present: no refetch
    assert len(fetched) == 4
    assert not list((tmp_path / "mnist").glob("*.part"))


def test_download_with_wrong_checksum_refuses(tmp_path, monkeypatch):
    _write_idx_set(tmp_path / "server", gzipped=True)
    _serve_from(tmp_path / "server", monkeypatch)
    with pytest.raises(ValueError, match="checksum mismatch for train-images-idx3-ubyte.gz"):
        data.load("fashion_mnist", root=tmp_path / "fashion", download=True)
    assert list((tmp_path / "fashion").iterdir()) == []  # nothing left under any name


def test_cifar_download_extracts_archive(tmp_path, monkeypatch):
    folder = _write_cifar_folder(tmp_path / "build")
    (tmp_path / "server").mkdir()
    archive = tmp_path / "server" / readers.CIFAR10_ARCHIVE
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname=readers.CIFAR10_FOLDER)
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    monkeypatch.setitem(readers.CHECKSUMS["cifar10"], archive.name, digest)
    _serve_from(tmp_path / "server", monkeypatch)
    dataset = data.load("cifar10", root=tmp_path / "cifar", download=True, standardize=False)
    reference = data.load("cifar10", root=tmp_path / "build", standardize=False)
    np.testing.assert_array_equal(dataset.x_train, reference.x_train)
    np.testing.assert_array_equal(dataset.y_test, reference.y_test)
    assert sorted(p.name for p in (tmp_path / "cifar").iterdir()) == [readers.CIFAR10_FOLDER]


def test_verify_sha256(tmp_path):
    path = tmp_path / "file.bin"
    path.write_bytes(b"jaxdl")
    digest = hashlib.sha256(b"jaxdl").hexdigest()
    readers.verify_sha256(path, digest)
    readers.verify_sha256(path, digest.upper())
    mismatch = f"checksum mismatch for .*file.bin: expected 0+, got {digest}"
    with pytest.raises(ValueError, match=mismatch):
        readers.verify_sha256(path, "0" * 64)
    with pytest.raises(ValueError, match=f"no known SHA-256 .* {digest}.*verify=False"):
        readers.verify_sha256(path, None)


def test_checksum_table_is_complete():
    for name, urls in readers.URLS.items():
        assert set(urls) == set(readers.CHECKSUMS[name])
        for digest in readers.CHECKSUMS[name].values():
            assert len(digest) == 64 and int(digest, 16) >= 0


def test_no_pickle_in_readers():
    modules = [pathlib.Path(readers.__file__), *pathlib.Path(data.__file__).parent.glob("*.py")]
    assert len(modules) >= 5
    for path in modules:
        source = path.read_text()
        assert "import pickle" not in source and "allow_pickle=True" not in source, path


# ----------------------------------------------------------------------------- graphs


def _max_degree(x_packed):
    num_nodes = x_packed.shape[1]
    return x_packed[..., :num_nodes].sum(-1).max(-1)


def test_degree_graphs_labels_say_whether_a_node_reaches_the_threshold():
    graphs = data.degree_graphs(num_train=300, num_test=100, max_nodes=10, seed=3)
    assert graphs.x_train.shape == (300, 10, 12) and graphs.num_classes == 2
    threshold = data.degree_threshold(graphs)
    for x, y in ((graphs.x_train, graphs.y_train), (graphs.x_test, graphs.y_test)):
        adjacency, mask = x[..., :10], x[..., 10]
        np.testing.assert_array_equal(adjacency, adjacency.transpose(0, 2, 1))  # undirected
        assert np.all(np.diagonal(adjacency, axis1=1, axis2=2) == 0)  # no self-loops
        assert np.all(adjacency * (1 - mask[:, :, None]) == 0)  # padding has no edges
        assert np.all(mask.sum(-1) >= 8)
        np.testing.assert_array_equal(y, (_max_degree(x) >= threshold).astype(np.int32))
    assert 0.3 < graphs.y_train.mean() < 0.7  # the median threshold balances the classes
    again = data.degree_graphs(num_train=300, num_test=100, max_nodes=10, seed=3)
    np.testing.assert_array_equal(again.x_test, graphs.x_test)


def test_permute_graph_nodes_relabels_every_graph_consistently():
    x = data.degree_graphs(num_train=10, num_test=5, seed=0).x_test
    permuted = data.permute_graph_nodes(x, seed=1)
    num_nodes = x.shape[1]
    for original, shuffled in zip(x, permuted):
        # Every graph keeps its number of real nodes and its multiset of degrees ...
        assert sorted(original[:, num_nodes]) == sorted(shuffled[:, num_nodes])
        assert np.array_equal(np.sort(original[:, :num_nodes].sum(0)), np.sort(shuffled[:, :num_nodes].sum(0)))
    # ... and the first graph is relabelled by the first permutation the seed draws.
    perm = np.random.default_rng(1).permutation(num_nodes)
    expected = np.concatenate([x[0][perm][:, perm], x[0][perm][:, num_nodes:]], axis=-1)
    np.testing.assert_array_equal(permuted[0], expected)
    with pytest.raises(ValueError, match="max_nodes must be an integer >= 8"):
        data.degree_graphs(max_nodes=5)


def test_validation_split_holds_out_the_end_of_the_training_set():
    ds = data.load("moons", seed=0)
    split = data.validation_split(ds, 100)
    np.testing.assert_array_equal(split.x_train, ds.x_train[:-100])
    np.testing.assert_array_equal(split.x_test, ds.x_train[-100:])
    np.testing.assert_array_equal(split.y_test, ds.y_train[-100:])
    assert split.name == "moons/validation" and split.num_classes == ds.num_classes
    subset = data.validation_split(ds, 100, num_train=50)
    np.testing.assert_array_equal(subset.x_train, ds.x_train[:50])
    np.testing.assert_array_equal(subset.x_test, ds.x_train[-100:])  # the same held-out examples
    with pytest.raises(ValueError, match="num_validation"):
        data.validation_split(ds, 0)
    with pytest.raises(ValueError, match="num_validation"):
        data.validation_split(ds, ds.num_train)
    with pytest.raises(ValueError, match="num_train"):
        data.validation_split(ds, 100, num_train=ds.num_train)
