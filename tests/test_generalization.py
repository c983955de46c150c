"""Tests for experiments/generalization.py beyond its quick run (tests/test_experiments.py): the
epochs-to-fit count, the peak finder, and config errors that name the field."""
import numpy as np
import pytest

from experiments import generalization
from jaxdl import io

from helpers import assert_config_error_names_field


def test_epochs_to_fit_is_the_first_epoch_at_the_threshold():
    accuracy = np.array([[0.5, 0.99, 0.98, 1.0],   # reached at epoch 2 (a later dip does not matter)
                         [0.5, 0.7, 0.9, 0.995],   # at the last epoch
                         [0.5, 0.7, 0.9, 0.98]])   # never: E + 1, a lower bound
    np.testing.assert_array_equal(generalization.epochs_to_fit(accuracy, 0.99), [2, 4, 5])


def test_peak_is_the_largest_error_and_the_drop_is_measured_at_the_largest_model():
    sizes, errors = np.array([10, 20, 40, 80]), np.array([1.0, 4.0, 2.0, 1.0])
    assert generalization._peak(sizes, errors) == (20.0, 0.25)


@pytest.mark.parametrize("field, value", [
    ("random_labels.fractions", (0.0, 1.5)),
    ("random_labels.fractions", (0.5, 1.0)),  # the curve must start at the true labels
    ("double_descent.label_noise", (-0.1,)),
    ("double_descent.mlp_widths", (8,)),
    ("double_descent.rf_max_features", 10),
    ("double_descent.mlp_evaluations", 7),
    ("poly.l2", 0.0),
    ("random_labels.datasets", ("cifar10",)),
])
def test_bad_config_values_name_the_field(field, value, tmp_path):
    assert_config_error_names_field(generalization, "quick", field, value, io.RunDir(tmp_path))
