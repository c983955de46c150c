"""Tests for jaxdl.data.corruption: exact fractions, determinism, the two replacement rules, bad inputs."""
import numpy as np
import pytest

from jaxdl import data


def _dataset(num_train=97, num_test=31, num_classes=10, seed=0):
    rng = np.random.default_rng(seed)
    return data.Dataset(rng.normal(size=(num_train, 3)).astype(np.float32),
                        rng.integers(0, num_classes, num_train).astype(np.int32),
                        rng.normal(size=(num_test, 3)).astype(np.float32),
                        rng.integers(0, num_classes, num_test).astype(np.int32), num_classes, "toy")


@pytest.mark.parametrize("fraction", [0.0, 0.01, 0.1, 0.25, 1 / 3, 0.5, 0.9, 1.0])
@pytest.mark.parametrize("replacement", ["uniform", "different"])
def test_exactly_round_fraction_times_n_labels_are_replaced(fraction, replacement):
    labels = _dataset().y_train
    new, replaced = data.replace_labels(labels, 10, fraction, seed=3, replacement=replacement)
    assert replaced.dtype == bool and replaced.sum() == round(fraction * len(labels))
    np.testing.assert_array_equal(new[~replaced], labels[~replaced])
    assert new.dtype == labels.dtype and new.min() >= 0 and new.max() < 10
    if replacement == "different":  # every replaced label changes, so exactly that many differ
        assert np.sum(new != labels) == replaced.sum()


def test_corrupt_labels_leaves_inputs_and_test_set_alone():
    dataset = _dataset()
    corrupted = data.corrupt_labels(dataset, 0.4, seed=1)
    for field in ("x_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(corrupted, field), getattr(dataset, field))
    assert corrupted.num_classes == 10 and corrupted.name == "toy"
    changed = np.sum(corrupted.y_train != dataset.y_train)
    assert 0 < changed <= round(0.4 * dataset.num_train)
    assert dataset.y_train is not corrupted.y_train  # the input data set is not modified in place


def test_same_seed_same_labels_other_seed_other_labels():
    dataset = _dataset()
    a, b = data.corrupt_labels(dataset, 0.5, seed=7), data.corrupt_labels(dataset, 0.5, seed=7)
    np.testing.assert_array_equal(a.y_train, b.y_train)
    assert np.any(data.corrupt_labels(dataset, 0.5, seed=8).y_train != a.y_train)


def test_corruptions_are_nested_across_fractions():
    labels = _dataset().y_train
    small, small_mask = data.replace_labels(labels, 10, 0.2, seed=5)
    large, large_mask = data.replace_labels(labels, 10, 0.6, seed=5)
    assert np.all(large_mask[small_mask])
    np.testing.assert_array_equal(small[small_mask], large[small_mask])


def test_uniform_labels_are_uniform_and_independent_of_the_true_class():
    # Zhang et al.'s random labels: a replaced label equals the old one with probability 1/C.
    num, num_classes = 20000, 10
    labels = np.random.default_rng(0).integers(0, num_classes, num).astype(np.int32)
    new, _ = data.replace_labels(labels, num_classes, 1.0, seed=2, replacement="uniform")
    kept = np.mean(new == labels)
    assert abs(kept - 1 / num_classes) < 4 * np.sqrt(0.1 * 0.9 / num)
    counts = np.bincount(new, minlength=num_classes)
    np.testing.assert_allclose(counts / num, 1 / num_classes, atol=4 * np.sqrt(0.1 * 0.9 / num))
    different, _ = data.replace_labels(labels, num_classes, 1.0, seed=2, replacement="different")
    assert not np.any(different == labels)
    np.testing.assert_allclose(np.bincount(different, minlength=num_classes) / num, 1 / num_classes, atol=0.01)


@pytest.mark.parametrize("fraction", [-0.1, 1.5, float("nan"), "0.5", True, None])
def test_a_fraction_outside_zero_one_names_fraction(fraction):
    with pytest.raises(ValueError, match="fraction"):
        data.corrupt_labels(_dataset(), fraction)


def test_other_bad_inputs_name_their_argument():
    dataset = _dataset()
    with pytest.raises(ValueError, match="replacement"):
        data.corrupt_labels(dataset, 0.5, replacement="shuffle")
    with pytest.raises(ValueError, match="seed"):
        data.corrupt_labels(dataset, 0.5, seed=-1)
    with pytest.raises(ValueError, match="data"):
        data.corrupt_labels(data.load("poly"), 0.5)
    with pytest.raises(ValueError, match="labels"):
        data.replace_labels(np.array([0, 3, 12]), 10, 0.5)
    with pytest.raises(ValueError, match="labels"):
        data.replace_labels(np.zeros((4, 2), np.int32), 10, 0.5)
