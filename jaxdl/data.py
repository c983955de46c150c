"""Data sets as NumPy arrays: the `Dataset` record, `load(name, **options)` and its registry.

Embedded sets need no network and are deterministic given `seed`: `digits`, `mnist1d`, `moons`,
`spirals`, `teacher`, `poly`. File sets `mnist`, `fashion_mnist` and `cifar10` are read from a
local folder by `jaxdl.datafiles` and downloaded only with `download=True`.

Conventions: x is float32; classification y is int32 of shape (N,) with `num_classes` set;
regression y is float32 of shape (N, d_out) with `num_classes=None`. Images are NHWC.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import random
from collections.abc import Callable, Sequence

import numpy as np

from jaxdl import datafiles


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """A train/test split as NumPy arrays.

    x_train: (N_train, *input_shape) float32; y_train: (N_train,) int32 labels for
    classification, (N_train, d_out) float32 targets for regression; x_test, y_test likewise.
    num_classes: the number of classes, None for regression. name: the registry name.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int | None
    name: str

    def __post_init__(self):
        for x_field, y_field in (("x_train", "y_train"), ("x_test", "y_test")):
            x, y = getattr(self, x_field), getattr(self, y_field)
            if len(x) != len(y):
                raise ValueError(f"{y_field} has {len(y)} examples but {x_field} has {len(x)}")
        if self.x_train.shape[1:] != self.x_test.shape[1:]:
            raise ValueError(
                f"x_test has example shape {self.x_test.shape[1:]} but x_train has "
                f"{self.x_train.shape[1:]}"
            )

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def num_train(self) -> int:
        return len(self.x_train)

    @property
    def num_test(self) -> int:
        return len(self.x_test)

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, x_train={self.x_train.shape}, "
            f"y_train={self.y_train.shape}, x_test={self.x_test.shape}, "
            f"y_test={self.y_test.shape}, num_classes={self.num_classes})"
        )


def standardize(dataset: Dataset) -> Dataset:
    """Return `dataset` with x standardised per feature: `(x - mean) / std`.

    mean and std have shape `input_shape` and are fitted on x_train only; x_test is scaled with
    the training statistics. A feature that is constant on the training set keeps std 1 (it is
    only centred), so nothing is divided by zero. y is left alone, so regression targets keep
    their units.
    """
    x_train = dataset.x_train
    if len(x_train) == 0:
        raise ValueError("cannot standardise: x_train is empty")
    # Row chunks with float64 accumulators: a float64 copy of CIFAR-10 alone would be 1.2 GB.
    chunks = range(0, len(x_train), 4096)
    total = sum(x_train[i : i + 4096].sum(axis=0, dtype=np.float64) for i in chunks)
    mean = total / len(x_train)
    squares = sum(np.square(x_train[i : i + 4096] - mean).sum(axis=0) for i in chunks)
    std = np.sqrt(squares / len(x_train))
    # Constant features are found exactly (max == min): a float mean of identical values can
    # leave a ~1e-17 std that would blow rounding noise up to order one.
    constant = x_train.max(axis=0) == x_train.min(axis=0)
    mean = np.where(constant, x_train[0], mean).astype(np.float32)
    std = np.where(constant, 1.0, std).astype(np.float32)
    return dataclasses.replace(
        dataset,
        x_train=((x_train - mean) / std).astype(np.float32),
        x_test=((dataset.x_test - mean) / std).astype(np.float32),
    )


_standardize = standardize  # `load` takes a flag of the same name


# ----------------------------------------------------------------------------- validation

def _check_count(name: str, value, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _check_noise(value) -> None:
    if not (isinstance(value, (int, float, np.floating)) and value >= 0):
        raise ValueError(f"noise must be a number >= 0, got {value!r}")


def _streams(seed: int, count: int) -> list[np.random.Generator]:
    # Independent generators per purpose, so e.g. changing num_train leaves the test set and the
    # teacher unchanged.
    return [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(count)]


def _classification(name, x_train, y_train, x_test, y_test, num_classes) -> Dataset:
    return Dataset(
        np.asarray(x_train, np.float32), np.asarray(y_train, np.int32),
        np.asarray(x_test, np.float32), np.asarray(y_test, np.int32), num_classes, name,
    )


# ----------------------------------------------------------------------------- embedded sets

def _load_digits(test_fraction: float = 0.2, seed: int = 0) -> Dataset:
    """scikit-learn's 8x8 handwritten digits (1797 images, 10 classes), split by class.

    x: (N, 8, 8, 1) float32 in [0, 1] (pixel counts 0..16 divided by 16); y: (N,) int32. The
    split is stratified (sklearn `train_test_split`), `test_fraction` of the images are test.
    """
    from sklearn import datasets, model_selection  # import late: keeps `import jaxdl` fast

    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    digits = datasets.load_digits()
    x = (digits.images / 16.0)[..., None]
    x_train, x_test, y_train, y_test = model_selection.train_test_split(
        x, digits.target, test_size=test_fraction, random_state=seed, stratify=digits.target
    )
    return _classification("digits", x_train, y_train, x_test, y_test, 10)


def _load_mnist1d(num_samples: int = 5000, seed: int = 42, shuffle: bool = False) -> Dataset:
    """MNIST-1D (Greydanus 2020, "Scaling down deep learning", arXiv:2011.14439).

    Ten 1-D digit templates, randomly padded, translated, scaled, sheared and noised, resampled
    to length 40, then globally centred and scaled to unit std by the generator. x: (N, 40)
    float32; y: (N,) int32; the first 80% of the `num_samples` signals train, the rest test
    (4000/1000 by default). `shuffle=True` is the paper's shuffled variant: one fixed random
    permutation of the 40 positions, the same samples otherwise.
    """
    _check_count("num_samples", num_samples, minimum=10)
    if num_samples % 10:
        raise ValueError(f"num_samples must be a multiple of 10 (classes), got {num_samples}")
    raw = _generate_mnist1d(int(num_samples), int(seed), bool(shuffle))
    return _classification("mnist1d", *(np.array(a) for a in raw), 10)


@functools.lru_cache(maxsize=4)
def _generate_mnist1d(num_samples: int, seed: int, shuffle: bool):
    """The generator's (x, y, x_test, y_test), memoised: generation takes seconds and is a
    pure function of its arguments. The cached arrays are read-only; callers copy them."""
    from mnist1d import data as mnist1d_data  # import late: it pulls in matplotlib

    args = mnist1d_data.get_dataset_args()
    args.num_samples, args.seed, args.shuffle_seq = num_samples, seed, shuffle
    # The generator reseeds NumPy's and Python's global RNGs; put them back so loading data
    # never changes other code's random streams.
    numpy_state, python_state = np.random.get_state(), random.getstate()
    try:
        raw = mnist1d_data.make_dataset(args)  # never get_dataset: it downloads and unpickles
    finally:
        np.random.set_state(numpy_state)
        random.setstate(python_state)
    arrays = tuple(np.asarray(raw[k]) for k in ("x", "y", "x_test", "y_test"))
    for a in arrays:
        a.setflags(write=False)
    return arrays


def _load_moons(
    num_train: int = 1000, num_test: int = 1000, noise: float = 0.1, seed: int = 0
) -> Dataset:
    """Two interleaved half circles (scikit-learn `make_moons`). x: (N, 2); y: (N,) in {0, 1}."""
    from sklearn import datasets

    _check_count("num_train", num_train)
    _check_count("num_test", num_test)
    _check_noise(noise)
    x, y = datasets.make_moons(n_samples=num_train + num_test, noise=noise, random_state=seed)
    return _classification("moons", x[:num_train], y[:num_train], x[num_train:], y[num_train:], 2)


def _spiral_points(rng: np.random.Generator, count: int, num_classes: int, noise: float):
    per_class = [count // num_classes + (k < count % num_classes) for k in range(num_classes)]
    labels = np.repeat(np.arange(num_classes), per_class)
    radius = rng.uniform(0.0, 1.0, count)
    angle = 2 * np.pi * labels / num_classes + 4.0 * radius + noise * rng.standard_normal(count)
    x = np.stack([radius * np.sin(angle), radius * np.cos(angle)], axis=1)
    order = rng.permutation(count)
    return x[order], labels[order]


def _load_spirals(
    num_classes: int = 3,
    num_train: int = 900,
    num_test: int = 900,
    noise: float = 0.2,
    seed: int = 0,
) -> Dataset:
    """K interleaved spiral arms in the plane (the CS231n toy problem).

    A point of arm k has radius r ~ U(0, 1) and angle 2 pi k / K + 4 r + noise * N(0, 1).
    x: (N, 2); y: (N,) int32; `num_train` and `num_test` are totals over the arms, split as
    evenly as possible. A linear classifier stays near 50% test accuracy for 3 arms.
    """
    _check_count("num_classes", num_classes, minimum=2)
    _check_count("num_train", num_train)
    _check_count("num_test", num_test)
    _check_noise(noise)
    train_rng, test_rng = _streams(seed, 2)
    x_train, y_train = _spiral_points(train_rng, num_train, num_classes, noise)
    x_test, y_test = _spiral_points(test_rng, num_test, num_classes, noise)
    return _classification("spirals", x_train, y_train, x_test, y_test, num_classes)


def _load_teacher(
    input_dim: int = 10,
    hidden: Sequence[int] = (32,),
    output_dim: int = 1,
    num_train: int = 1000,
    num_test: int = 1000,
    noise: float = 0.0,
    activation: str = "relu",
    seed: int = 0,
) -> Dataset:
    """Teacher-student regression: y = teacher(x) + noise * N(0, I), x ~ N(0, I_input_dim).

    The teacher is a random MLP fixed by `seed`: hidden layers of widths `hidden` with He-scaled
    weights (variance 2 / fan_in), zero biases and `activation` ('relu' or 'tanh'), then a linear
    readout of variance 1 / fan_in so y is of order one. `hidden=()` gives a linear teacher.
    x: (N, input_dim) float32; y: (N, output_dim) float32.
    """
    activations: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        "relu": lambda h: np.maximum(h, 0.0), "tanh": np.tanh,
    }
    if activation not in activations:
        raise ValueError(f"activation must be one of {sorted(activations)}, got {activation!r}")
    hidden = tuple(hidden)
    for name, value in [("input_dim", input_dim), ("output_dim", output_dim),
                        ("num_train", num_train), ("num_test", num_test)]:
        _check_count(name, value)
    for width in hidden:
        _check_count("hidden width", width)
    _check_noise(noise)
    weight_rng, train_rng, test_rng = _streams(seed, 3)
    widths = (input_dim, *hidden, output_dim)
    gains = [2.0] * len(hidden) + [1.0]  # He for the hidden layers, 1 / fan_in for the readout
    weights = [
        weight_rng.standard_normal((fan_in, fan_out)) * np.sqrt(gain / fan_in)
        for gain, fan_in, fan_out in zip(gains, widths[:-1], widths[1:])
    ]

    def sample(rng, count):
        x = rng.standard_normal((count, input_dim))
        h = x
        for w in weights[:-1]:
            h = activations[activation](h @ w)
        y = h @ weights[-1] + noise * rng.standard_normal((count, output_dim))
        return x.astype(np.float32), y.astype(np.float32)

    x_train, y_train = sample(train_rng, num_train)
    x_test, y_test = sample(test_rng, num_test)
    return Dataset(x_train, y_train, x_test, y_test, None, "teacher")


def poly_true_function(x: np.ndarray) -> np.ndarray:
    """The noiseless target of the `poly` data set: f(x) = sin(pi x) on [-1, 1].

    One full period, i.e. Bishop's (2006) sin(2 pi x) on [0, 1] moved to [-1, 1] (up to sign):
    a line and a parabola underfit it, a degree-9 polynomial on 15 points overfits.
    """
    return np.sin(np.pi * x)


def _load_poly(
    num_train: int = 15, num_test: int = 200, noise: float = 0.2, seed: int = 0
) -> Dataset:
    """1-D noisy regression for polynomial fits: y = sin(pi x) + noise * N(0, 1), x ~ U[-1, 1].

    x: (N, 1) float32; y: (N, 1) float32. See `poly_true_function`.
    """
    _check_count("num_train", num_train)
    _check_count("num_test", num_test)
    _check_noise(noise)

    def sample(rng, count):
        x = rng.uniform(-1.0, 1.0, (count, 1))
        y = poly_true_function(x) + noise * rng.standard_normal((count, 1))
        return x.astype(np.float32), y.astype(np.float32)

    train_rng, test_rng = _streams(seed, 2)
    x_train, y_train = sample(train_rng, num_train)
    x_test, y_test = sample(test_rng, num_test)
    return Dataset(x_train, y_train, x_test, y_test, None, "poly")


# ----------------------------------------------------------------------------- file sets

def _idx_set(name: str, root, download: bool, verify: bool) -> Dataset:
    x_train, y_train, x_test, y_test = datafiles.read_idx_dataset(
        name, root, download=download, verify=verify
    )
    # A trailing channel axis makes the greyscale images NHWC like every other image set.
    x_train, x_test = x_train[..., None] / 255.0, x_test[..., None] / 255.0
    return _classification(name, x_train, y_train, x_test, y_test, 10)


def _load_mnist(
    root: datafiles.PathLike | None = None, download: bool = False, verify: bool = True
) -> Dataset:
    """MNIST (LeCun et al. 1998) from IDX files in `root` (default ~/.jaxdl/data/mnist).

    x: (N, 28, 28, 1) float32 in [0, 1]; y: (N,) int32; 60000 train, 10000 test. Files may be
    gzipped or not; gzipped files are checked against their published SHA-256 unless
    `verify=False`. `download=True` fetches missing files.
    """
    return _idx_set("mnist", root, download, verify)


def _load_fashion_mnist(
    root: datafiles.PathLike | None = None, download: bool = False, verify: bool = True
) -> Dataset:
    """Fashion-MNIST (Xiao et al. 2017): as `mnist`, ten clothing classes, default root
    ~/.jaxdl/data/fashion_mnist. x: (N, 28, 28, 1) float32 in [0, 1]; y: (N,) int32."""
    return _idx_set("fashion_mnist", root, download, verify)


def _load_cifar10(
    root: datafiles.PathLike | None = None, download: bool = False, verify: bool = True
) -> Dataset:
    """CIFAR-10 (Krizhevsky 2009), binary version, from root/cifar-10-batches-bin (default root
    ~/.jaxdl/data/cifar10). x: (N, 32, 32, 3) float32 in [0, 1], NHWC; y: (N,) int32; 50000
    train, 10000 test. `download=True` fetches and verifies the archive, then extracts it."""
    x_train, y_train, x_test, y_test = datafiles.read_cifar10(
        root, download=download, verify=verify
    )
    return _classification("cifar10", x_train / 255.0, y_train, x_test / 255.0, y_test, 10)


LOADERS: dict[str, Callable[..., Dataset]] = {
    "digits": _load_digits,
    "mnist1d": _load_mnist1d,
    "moons": _load_moons,
    "spirals": _load_spirals,
    "teacher": _load_teacher,
    "poly": _load_poly,
    "mnist": _load_mnist,
    "fashion_mnist": _load_fashion_mnist,
    "cifar10": _load_cifar10,
}


def get_loader(name: str) -> Callable[..., Dataset]:
    """The loader registered under `name`; ValueError listing the known names otherwise."""
    if name not in LOADERS:
        known = ", ".join(sorted(LOADERS))
        raise ValueError(f"unknown data set {name!r}; known data sets: {known}")
    return LOADERS[name]


def load(name: str, *, standardize: bool = True, **options) -> Dataset:
    """Load data set `name` (a key of `LOADERS`) with its `options`, as a `Dataset`.

    With `standardize=True` x is standardised per feature with training statistics (see
    `standardize`); y is never changed. The options of each set are those of its loader, e.g.
    `load('moons', noise=0.2, seed=1)`, `load('mnist', root='/data/mnist', download=True)`;
    `help(LOADERS[name])` lists them. An unknown option raises TypeError naming it.
    """
    loader = get_loader(name)
    known = inspect.signature(loader).parameters
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise TypeError(
            f"unknown option(s) {', '.join(map(repr, unknown))} for data set {name!r}; "
            f"its options are: {', '.join(known)}"
        )
    dataset = loader(**options)
    return _standardize(dataset) if standardize else dataset
