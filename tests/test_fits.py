"""jaxdl.core.fits against closed forms: exact power laws and lines, and hand-made curves."""
from __future__ import annotations

import numpy as np
import pytest

from jaxdl.core import fits


def test_loglog_slope_recovers_exact_power_laws_per_leading_index():
    x = np.array([1.0, 2.0, 5.0, 11.0])
    exponents = np.array([[1.7, -0.5], [0.0, 2.25]])
    y = 3.0 * x ** exponents[..., None]  # (2, 2, 4)
    np.testing.assert_allclose(fits.loglog_slope(x, y), exponents, atol=1e-12)
    assert isinstance(fits.loglog_slope(x, 2.0 * x**0.5), float)


def test_slope_is_the_least_squares_line_through_noisy_points():
    rng = np.random.default_rng(0)
    x = np.linspace(0, 1, 20)
    y = 0.3 - 2.0 * x + 0.01 * rng.standard_normal(20)
    design = np.c_[x, np.ones_like(x)]
    assert fits.slope(x, y) == pytest.approx(np.linalg.lstsq(design, y, rcond=None)[0][0], rel=1e-10)
    with pytest.raises(ValueError, match="x_T"):
        fits.slope(x, y[:-1])


def test_first_crossing_rising_falling_at_positions_and_never():
    curves = np.array([[0.1, 0.5, 0.9, 0.95], [0.1, 0.2, 0.3, 0.4]])
    np.testing.assert_array_equal(fits.first_crossing(curves, 0.5), [1, np.inf])
    np.testing.assert_array_equal(fits.first_crossing(curves, 0.5, at_T=[10, 20, 30, 40], never=-1), [20, -1])
    # One level per curve, broadcast against the leading axis.
    np.testing.assert_array_equal(fits.first_crossing(curves, np.array([[0.92], [0.15]])), [3, 1])
    assert fits.first_crossing([1.0, 0.6, 0.4, 0.2], 0.5, rising=False) == 2
    assert fits.first_crossing([1.0, 0.6], 0.5, rising=False, never="not reached") == "not reached"
