"""Tests of jaxdl.core.checks: one behaviour for every argument check in the library."""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from jaxdl.core import checks


@pytest.mark.parametrize("value", [1, 7, np.int32(3), np.int64(5), np.uint8(2)])
def test_integers_of_python_and_numpy_are_counts(value):
    assert checks.integer("n", value) == int(value)
    assert type(checks.integer("n", value)) is int


@pytest.mark.parametrize("value", [True, False, np.bool_(True), 2.0, "3", None, 0, -1, np.float32(1)])
def test_booleans_floats_strings_and_non_positive_values_are_not_counts(value):
    with pytest.raises(ValueError, match=r"^n must be a positive integer, got "):
        checks.integer("n", value)


def test_integer_bounds_and_none():
    assert checks.integer("n", None, allow_none=True) is None
    assert checks.integer("n", 0, minimum=0) == 0
    with pytest.raises(ValueError, match=r"n must be an integer >= 2 or None, got 1"):
        checks.integer("n", 1, minimum=2, allow_none=True)
    with pytest.raises(ValueError, match=r"k=5 exceeds num_steps=4"):
        checks.integer("k", 5, maximum=4, maximum_name="num_steps")


def test_numbers():
    assert checks.number("lr", 0.5) == 0.5 and checks.number("lr", np.float32(2)) == 2.0
    assert checks.number("lr", jnp.asarray(0.25)) == 0.25  # a 0-d array is a number
    assert checks.number("decay", 0, inclusive=True) == 0.0
    assert checks.number("shift", -3.0, minimum=None) == -3.0
    for bad in (0.0, -1.0, float("nan"), float("inf"), True, "0.1", None, np.ones(2)):
        with pytest.raises(ValueError, match=r"^lr must be a positive number, got "):
            checks.number("lr", bad)
    with pytest.raises(ValueError, match=r"p must be a positive number and <= 1, got 1.5"):
        checks.number("p", 1.5, maximum=1.0)
    with pytest.raises(ValueError, match=r"wd must be a number >= 0, got -0.1"):
        checks.number("wd", -0.1, inclusive=True)


def test_one_of_names_field_value_and_choices():
    assert checks.one_of("kind", "a", ("a", "b")) == "a"
    with pytest.raises(ValueError, match=r"kind must be one of \['a', 'b'\], got 'c'"):
        checks.one_of("kind", "c", ("a", "b"))
    with pytest.raises(ValueError, match="kind must be one of"):
        checks.one_of("kind", ["unhashable"], ("a",))


def test_unknown_options_are_a_type_error_listing_the_accepted_ones():
    checks.known_options("f", {"a": 1}, ["a", "b"])
    with pytest.raises(TypeError, match=r"f has no option 'c', 'd'; it accepts \['a', 'b'\]"):
        checks.known_options("f", {"d": 1, "c": 2, "a": 3}, ["a", "b"])


def test_same_structure():
    params = {"w": jnp.zeros((2, 3)), "b": jnp.zeros(3)}
    checks.same_structure("d", {"w": np.ones((2, 3)), "b": np.ones(3)}, params)
    with pytest.raises(ValueError, match="d must have the structure of params"):
        checks.same_structure("d", {"w": jnp.zeros((2, 3))}, params)
    with pytest.raises(ValueError, match=r"d has a leaf of shape \(3, 2\) where params has \(2, 3\)"):
        checks.same_structure("d", {"w": jnp.zeros((3, 2)), "b": jnp.zeros(3)}, params)


def test_raise_if_not_finite_names_the_first_bad_step_and_seed():
    checks.raise_if_not_finite(np.ones(4), what="loss", first_step=0, epoch=0, hint="h")
    with pytest.raises(FloatingPointError, match=r"loss became non-finite \(nan\) at step 12 \(epoch 3\); h"):
        checks.raise_if_not_finite(np.array([1.0, 2.0, np.nan, np.inf]), what="loss", first_step=10, epoch=3, hint="h")
    losses_KxS = np.array([[1.0, 1.0], [1.0, np.inf]])
    with pytest.raises(FloatingPointError, match=r"at step 5 \(epoch 2\) for seed 8"):
        checks.raise_if_not_finite(losses_KxS, what="loss", first_step=4, epoch=2, seeds=[7, 8], hint="h")
