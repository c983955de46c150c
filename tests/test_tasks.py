"""Tests for jaxdl.data.tasks: permuted and class-split task sequences, and their bad inputs."""

import numpy as np
import pytest

from jaxdl.data import Dataset
from jaxdl.data.tasks import TASK_SPLITS, class_split_tasks, make_tasks, permuted_tasks


def _toy(input_shape=(3, 4, 1), num_train=40, num_test=20, num_classes=6, seed=0) -> Dataset:
    """Continuous random inputs (no two features equal, so a permutation is recoverable) and
    labels cycling through the classes in a shuffled order."""
    rng = np.random.default_rng(seed)
    x_train = rng.standard_normal((num_train, *input_shape)).astype(np.float32)
    x_test = rng.standard_normal((num_test, *input_shape)).astype(np.float32)
    y_train = rng.permutation(np.arange(num_train) % num_classes).astype(np.int32)
    y_test = rng.permutation(np.arange(num_test) % num_classes).astype(np.int32)
    return Dataset(x_train, y_train, x_test, y_test, num_classes, "toy")


def _recover_permutation(x_NxD, permuted_NxD) -> np.ndarray:
    """Brute force: for each column k of ``permuted``, the column j of ``x`` equal to it."""
    matches = (permuted_NxD[:, :, None] == x_NxD[:, None, :]).all(axis=0)  # [k, j]
    assert (matches.sum(axis=1) == 1).all(), "every permuted feature must equal exactly one original feature"
    return matches.argmax(axis=1)


def test_permuted_tasks_permute_the_features_of_train_and_test_alike():
    data = _toy()
    tasks = permuted_tasks(data, num_tasks=4, seed=3)
    assert len(tasks) == 4
    flat = lambda x: x.reshape(len(x), -1)
    orders = []
    for t, task in enumerate(tasks):
        assert task.input_shape == data.input_shape and task.num_classes == data.num_classes
        assert task.x_train.dtype == np.float32
        np.testing.assert_array_equal(task.y_train, data.y_train)
        np.testing.assert_array_equal(task.y_test, data.y_test)
        order = _recover_permutation(flat(data.x_train), flat(task.x_train))
        np.testing.assert_array_equal(np.sort(order), np.arange(12))  # a bijection of the 12 features
        np.testing.assert_array_equal(flat(task.x_test), flat(data.x_test)[:, order])  # the same one on test
        orders.append(tuple(order))
    assert orders[0] == tuple(range(12))  # task 0 is the data set itself
    np.testing.assert_array_equal(tasks[0].x_train, data.x_train)
    assert len(set(orders)) == 4, "every task has its own permutation"


def test_permuted_tasks_are_deterministic_and_a_shorter_sequence_is_a_prefix():
    data = _toy(input_shape=(10,))
    first, again = permuted_tasks(data, 5, seed=1), permuted_tasks(data, 5, seed=1)
    shorter, other = permuted_tasks(data, 3, seed=1), permuted_tasks(data, 5, seed=2)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a.x_train, b.x_train)
    for a, b in zip(first, shorter):
        np.testing.assert_array_equal(a.x_test, b.x_test)
    assert not np.array_equal(first[1].x_train, other[1].x_train)


def test_class_split_tasks_hold_exactly_their_classes_in_order():
    data = _toy(num_classes=6)
    tasks = class_split_tasks(data, classes_per_task=2)
    assert [t.name for t in tasks] == ["toy/classes0-1", "toy/classes2-3", "toy/classes4-5"]
    for t, task in enumerate(tasks):
        for split in ("train", "test"):
            x, y = getattr(data, f"x_{split}"), getattr(data, f"y_{split}")
            keep = np.isin(y, [2 * t, 2 * t + 1])
            np.testing.assert_array_equal(getattr(task, f"x_{split}"), x[keep])
            np.testing.assert_array_equal(getattr(task, f"y_{split}"), y[keep])
        assert task.num_classes == 6
    assert sum(t.num_train for t in tasks) == data.num_train and sum(t.num_test for t in tasks) == data.num_test

    relabelled = class_split_tasks(data, classes_per_task=3, relabel=True)
    assert len(relabelled) == 2 and all(t.num_classes == 3 for t in relabelled)
    np.testing.assert_array_equal(relabelled[1].y_train, data.y_train[data.y_train >= 3] - 3)
    assert relabelled[1].y_train.dtype == np.int32


def test_make_tasks_dispatches_by_name():
    data = _toy()
    np.testing.assert_array_equal(make_tasks(data, "permuted", num_tasks=2, seed=0)[1].x_train,
                                  permuted_tasks(data, 2, seed=0)[1].x_train)
    assert len(make_tasks(data, "class_split", classes_per_task=3)) == 2
    assert sorted(TASK_SPLITS) == ["class_split", "permuted"]


@pytest.mark.parametrize("call, error, match", [
    (lambda d: make_tasks(d, "rotated"), ValueError, r"split must be one of \['class_split', 'permuted'\]"),
    (lambda d: make_tasks(d, "permuted", num_task=2), TypeError, "num_task"),
    (lambda d: permuted_tasks(d, 0), ValueError, "num_tasks must be a positive integer"),
    (lambda d: permuted_tasks(d, 2.5), ValueError, "num_tasks"),
    (lambda d: class_split_tasks(d, 4), ValueError, "classes_per_task must be a divisor of the 6 classes"),
    (lambda d: class_split_tasks(d, 0), ValueError, "classes_per_task must be a positive integer"),
    (lambda d: class_split_tasks(d, 7), ValueError, "classes_per_task=7 exceeds the number of classes"),
])
def test_bad_splits_raise_naming_the_argument(call, error, match):
    with pytest.raises(error, match=match):
        call(_toy())


def test_class_split_of_a_regression_set_or_a_missing_class_raises():
    toy = _toy()
    regression = Dataset(toy.x_train, toy.x_train[:, 0, 0], toy.x_test, toy.x_test[:, 0, 0], None, "reg")
    with pytest.raises(ValueError, match="data must be a classification data set"):
        class_split_tasks(regression, 2)
    missing = Dataset(toy.x_train, np.minimum(toy.y_train, 3), toy.x_test, toy.y_test, 6, "missing")
    with pytest.raises(ValueError, match="classes 4-5"):
        class_split_tasks(missing, 2)


def test_experiment_rejects_an_unknown_task_split():
    from experiments import continual
    from experiments import framework as fw

    config = fw.config_for(continual, "quick")
    config.task_sequences = ("digits/rotated",)
    with pytest.raises(ValueError, match=r"config.task_sequences must be .*class_split.*'digits/rotated'"):
        fw.validate(continual, config)
    config = fw.config_for(continual, "quick")
    config.shrink = 1.5
    with pytest.raises(ValueError, match="config.shrink"):
        fw.validate(continual, config)
