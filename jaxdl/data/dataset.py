"""The ``Dataset`` record, standardisation, and the helpers every loader shares.

Conventions: x is float32; classification y is int32 of shape (N,) with ``num_classes`` set;
regression y is float32 of shape (N, d_out) with ``num_classes=None``. Images are NHWC.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from jaxdl.core import checks

__all__ = ["Dataset", "standardize", "validation_split", "streams", "classification"]


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


def validation_split(dataset: Dataset, num_validation: int, *, num_train: int | None = None) -> Dataset:
    """The training set cut in two, for choosing hyper-parameters without looking at the test set:
    the last ``num_validation`` training examples become the returned set's test split and the
    first ``num_train`` (default: all the others) its training split. The real test set is not
    in the result. Its name gains ``/validation``.

    Raises:
      ValueError: naming ``num_validation`` or ``num_train`` when they are not positive or do
        not fit in the training set together.
    """
    num_validation = checks.integer("num_validation", num_validation, maximum=dataset.num_train - 1,
                                    maximum_name="the training examples less one")
    rest = dataset.num_train - num_validation
    num_train = checks.integer("num_train", rest if num_train is None else num_train, maximum=rest,
                               maximum_name="the training examples less num_validation")
    return dataclasses.replace(dataset, x_train=dataset.x_train[:num_train], y_train=dataset.y_train[:num_train],
                               x_test=dataset.x_train[rest:], y_test=dataset.y_train[rest:],
                               name=f"{dataset.name}/validation")


def streams(seed: int, count: int) -> list[np.random.Generator]:
    """``count`` independent NumPy generators from one seed, one per purpose, so that e.g.
    changing ``num_train`` leaves the test set and the teacher unchanged."""
    return [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(count)]


def classification(name, x_train, y_train, x_test, y_test, num_classes) -> Dataset:
    """A classification :class:`Dataset` with x cast to float32 and y to int32."""
    return Dataset(
        np.asarray(x_train, np.float32), np.asarray(y_train, np.int32),
        np.asarray(x_test, np.float32), np.asarray(y_test, np.int32), num_classes, name,
    )
