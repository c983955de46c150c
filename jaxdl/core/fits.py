"""Fits to measured curves: the one home of a fitted slope and of a first crossing.

Experiments fit power laws (a log-log slope: an order of convergence, a growth exponent) and read
off when a curve first reaches a level (the epoch a run fits its data, the step a mode is learnt,
the eps that halves accuracy). Both work on NumPy arrays whose last axis is the curve, any
leading axes (seeds, variants) kept.
"""
from __future__ import annotations

import numpy as np

__all__ = ["first_crossing", "loglog_slope", "slope"]


def slope(x_T, y_T) -> np.ndarray | float:
    """The least-squares slope of ``y`` against ``x`` along the last axis (``np.polyfit`` of
    degree 1): a float for a 1-D ``y``, else an array of ``y``'s leading shape."""
    x_T, y = np.asarray(x_T, np.float64), np.asarray(y_T, np.float64)
    if x_T.ndim != 1 or y.shape[-1:] != x_T.shape or x_T.size < 2:
        raise ValueError(f"x_T must be 1-D with at least 2 points and y_T's last axis as long, got shapes "
                         f"{x_T.shape} and {y.shape}")
    fitted = np.polyfit(x_T, y.reshape(-1, x_T.size).T, 1)[0]
    return float(fitted[0]) if y.ndim == 1 else fitted.reshape(y.shape[:-1])


def loglog_slope(x_T, y_T) -> np.ndarray | float:
    """The exponent ``a`` of a power law ``y ~ x^a``: :func:`slope` of ``log y`` against ``log x``."""
    return slope(np.log(np.asarray(x_T, np.float64)), np.log(np.asarray(y_T, np.float64)))


def first_crossing(values_T, level, *, at_T=None, rising: bool = True, never=np.inf) -> np.ndarray | float:
    """Where each curve (the last axis of ``values_T``) first reaches ``level``: ``values >=
    level`` when ``rising``, ``<=`` otherwise. Returns the index, or ``at_T[index]`` when ``at_T``
    (the curve's positions: steps, epochs, eps) is given, and ``never`` for a curve that does not
    get there; ``level`` broadcasts against the curves (one level per mode, per seed)."""
    values = np.asarray(values_T)
    reached = values >= level if rising else values <= level
    first = np.argmax(reached, axis=-1)
    where = first if at_T is None else np.asarray(at_T)[first]
    found = np.where(reached.any(axis=-1), where, never)
    return found.item() if found.ndim == 0 else found
