"""Embedded data sets: no network, deterministic given ``seed``.

``digits`` (scikit-learn's 8x8 handwritten digits), ``mnist1d`` (generated, Greydanus 2020),
``moons``, ``spirals``, ``teacher`` (teacher-student regression) and ``poly`` (1-D noisy
polynomial regression). Each loader is registered in :data:`jaxdl.data.LOADERS`.
"""
from __future__ import annotations

import functools
import random
from collections.abc import Callable, Sequence

import numpy as np

from jaxdl.core import checks
from jaxdl.data.dataset import Dataset, classification, streams

__all__ = ["poly_true_function"]


def _load_digits(test_fraction: float = 0.2, seed: int = 0) -> Dataset:
    """scikit-learn's 8x8 handwritten digits (1797 images, 10 classes), split by class.

    x: (N, 8, 8, 1) float32 in [0, 1] (pixel counts 0..16 divided by 16); y: (N,) int32. The
    split is stratified (sklearn `train_test_split`), `test_fraction` of the images are test.
    """
    from sklearn import datasets, model_selection  # import late: keeps `import jaxdl` fast

    checks.number("test_fraction", test_fraction)
    if test_fraction >= 1:
        checks.fail("test_fraction", test_fraction, "a number in (0, 1)")
    digits = datasets.load_digits()
    x = (digits.images / 16.0)[..., None]
    x_train, x_test, y_train, y_test = model_selection.train_test_split(
        x, digits.target, test_size=test_fraction, random_state=seed, stratify=digits.target
    )
    return classification("digits", x_train, y_train, x_test, y_test, 10)


def _load_mnist1d(num_samples: int = 5000, seed: int = 42, shuffle: bool = False) -> Dataset:
    """MNIST-1D (Greydanus 2020, "Scaling down deep learning", arXiv:2011.14439).

    Ten 1-D digit templates, randomly padded, translated, scaled, sheared and noised, resampled
    to length 40, then globally centred and scaled to unit std by the generator. x: (N, 40)
    float32; y: (N,) int32; the first 80% of the `num_samples` signals train, the rest test
    (4000/1000 by default). `shuffle=True` is the paper's shuffled variant: one fixed random
    permutation of the 40 positions, the same samples otherwise.
    """
    checks.integer("num_samples", num_samples, minimum=10)
    if num_samples % 10:
        raise ValueError(f"num_samples must be a multiple of 10 (classes), got {num_samples}")
    raw = _generate_mnist1d(int(num_samples), int(seed), bool(shuffle))
    return classification("mnist1d", *(np.array(a) for a in raw), 10)


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

    checks.integer("num_train", num_train)
    checks.integer("num_test", num_test)
    checks.number("noise", noise, inclusive=True)
    x, y = datasets.make_moons(n_samples=num_train + num_test, noise=noise, random_state=seed)
    return classification("moons", x[:num_train], y[:num_train], x[num_train:], y[num_train:], 2)


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
    checks.integer("num_classes", num_classes, minimum=2)
    checks.integer("num_train", num_train)
    checks.integer("num_test", num_test)
    checks.number("noise", noise, inclusive=True)
    train_rng, test_rng = streams(seed, 2)
    x_train, y_train = _spiral_points(train_rng, num_train, num_classes, noise)
    x_test, y_test = _spiral_points(test_rng, num_test, num_classes, noise)
    return classification("spirals", x_train, y_train, x_test, y_test, num_classes)


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
    checks.one_of("activation", activation, sorted(activations))
    hidden = tuple(hidden)
    for name, value in [("input_dim", input_dim), ("output_dim", output_dim),
                        ("num_train", num_train), ("num_test", num_test)]:
        checks.integer(name, value)
    for width in hidden:
        checks.integer("hidden width", width)
    checks.number("noise", noise, inclusive=True)
    weight_rng, train_rng, test_rng = streams(seed, 3)
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
    checks.integer("num_train", num_train)
    checks.integer("num_test", num_test)
    checks.number("noise", noise, inclusive=True)

    def sample(rng, count):
        x = rng.uniform(-1.0, 1.0, (count, 1))
        y = poly_true_function(x) + noise * rng.standard_normal((count, 1))
        return x.astype(np.float32), y.astype(np.float32)

    train_rng, test_rng = streams(seed, 2)
    x_train, y_train = sample(train_rng, num_train)
    x_test, y_test = sample(test_rng, num_test)
    return Dataset(x_train, y_train, x_test, y_test, None, "poly")
