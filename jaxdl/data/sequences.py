"""Generated sequence tasks: the adding problem (Hochreiter & Schmidhuber 1997), deterministic given ``seed``.

Each example is a sequence ``x_LxD`` of L steps with D = 2 channels: channel 0 holds values
``u_t ~ U[0, 1]``, channel 1 a marker that is 1 at exactly two positions and 0 elsewhere; the
target is the sum of the two marked values. Where the markers fall sets the memory the task
needs, and ``lag`` says how much:

- the FIRST marker is always at position ``L - 1 - lag``, exactly ``lag`` steps before the last
  step, where a net with ``readout='last'`` answers: its value must be carried ``lag`` steps;
- the SECOND marker is uniform over the ``lag`` positions after it (``L - lag .. L - 1``);
- the ``L - 1 - lag`` steps before the first marker are distractors.

Predicting the mean (1) scores the target's variance, ``Var(u_1 + u_2) = 2 / 12 = 1/6``
(:data:`ADDING_MEAN_PREDICTION_MSE`); a net that remembers only the second value scores
``Var(u_1) = 1/12``.
"""
from __future__ import annotations

import numpy as np

from jaxdl.core import checks
from jaxdl.data.dataset import Dataset, streams

__all__ = ["ADDING_MEAN_PREDICTION_MSE", "adding_problem"]

ADDING_MEAN_PREDICTION_MSE = 2.0 / 12.0  # the variance of a sum of two independent U[0, 1] values


def adding_problem(rng: np.random.Generator, num: int, length: int, lag: int) -> tuple[np.ndarray, np.ndarray]:
    """``num`` adding-problem examples drawn from ``rng``: ``x_NxLx2`` float32 (values, marker) and
    ``y_Nx1`` float32 (the sum of the two marked values); markers placed as the module docstring says.
    Arguments are assumed valid (:func:`_load_adding` checks them)."""
    # One draw per example (its L values and the second marker's position), so the first n
    # examples do not depend on num.
    draws = rng.uniform(0.0, 1.0, (num, length + 1))  # (N, L + 1)
    values_NxL = draws[:, :length]
    rows = np.arange(num)
    first = np.full(num, length - 1 - lag)
    second = length - lag + np.minimum((draws[:, length] * lag).astype(np.int64), lag - 1)
    marker_NxL = np.zeros((num, length))
    marker_NxL[rows, first] = 1.0
    marker_NxL[rows, second] = 1.0
    x_NxLx2 = np.stack([values_NxL, marker_NxL], axis=-1).astype(np.float32)
    y_Nx1 = (x_NxLx2[rows, first, 0] + x_NxLx2[rows, second, 0])[:, None]
    return x_NxLx2, y_Nx1.astype(np.float32)


def _load_adding(length: int = 50, lag: int = 40, num_train: int = 5000, num_test: int = 1000,
                 seed: int = 0) -> Dataset:
    """The adding problem as a regression set: x ``(N, length, 2)`` float32, y ``(N, 1)`` float32,
    ``num_classes=None``. ``lag`` (``1 <= lag < length``) is the number of steps the first marked
    value must be remembered (see :mod:`jaxdl.data.sequences`). Train and test sets come from
    independent streams of ``seed``, so changing ``num_train`` leaves the test set as it is.
    :func:`jaxdl.data.load` keeps the values in [0, 1] and the markers 0/1 unless given
    ``standardize=True``, which standardises every step on its own and so turns the first marker
    (always at the same step) into a constant 0."""
    length = checks.integer("length", length, minimum=2)
    lag = checks.integer("lag", lag)
    if lag >= length:
        checks.fail("lag", lag, f"an integer below length={length} (the first marker sits at length - 1 - lag)")
    num_train = checks.integer("num_train", num_train)
    num_test = checks.integer("num_test", num_test)
    train_rng, test_rng = streams(seed, 2)
    x_train, y_train = adding_problem(train_rng, num_train, length, lag)
    x_test, y_test = adding_problem(test_rng, num_test, length, lag)
    return Dataset(x_train, y_train, x_test, y_test, None, "adding")
