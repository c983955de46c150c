"""Filter-normalised sharpness: how much the loss rises along filter-normalised random directions.

Li, Xu, Taylor, Studer & Goldstein 2018 ("Visualizing the loss landscape of neural nets",
section 6) read the sharpness of a minimum off 1-D plots L(theta + a d) along directions d
normalised filter by filter (:func:`jaxdl.analysis.landscape.random_direction`). Because each filter of
d has the norm of the same filter of theta, the picture does not change when a filter is scaled
and the scale undone downstream -- unlike the top Hessian eigenvalue, the trace or Keskar's
epsilon-sharpness, which Dinh et al. 2017's rescaling moves at will. :func:`filter_normalized_sharpness`
turns the plots into one number: the largest rise over ``|a| <= radius``, averaged over
directions.
"""
from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxdl.core import checks, tree
from jaxdl.analysis.landscape.directions import random_direction
from jaxdl.analysis.landscape.evaluate import BatchStats, _check_evaluation, _evaluate_points, coordinate_dtype

__all__ = ["filter_normalized_sharpness"]

PyTree = Any


def _direction_point(anchors, coord_D):
    params, directions_R = anchors
    direction = jax.tree.map(lambda d: d[coord_D[0].astype(jnp.int32)], directions_R)
    return tree.axpy(coord_D[1].astype(coordinate_dtype(params)), direction, params)


def filter_normalized_sharpness(apply_fn: Callable | None, params: PyTree, batch, key: jax.Array, *,
                                radius: float = 0.25, num_directions: int = 4, num_points: int = 11,
                                loss_name: str = "cross_entropy", chunk_size: int | None = None,
                                batch_stats: BatchStats | None = None, ignore_biasbn: bool = True) -> dict:
    """The mean over ``num_directions`` filter-normalised random directions d_r of
    ``max_{|a| <= radius} L(theta + a d_r) - L(theta)`` (Li et al. 2018).

    The directions are drawn from ``key`` (direction r from ``jax.random.fold_in(key, r)``) by
    :func:`jaxdl.analysis.landscape.random_direction` with filter normalisation; the loss is evaluated
    at ``num_points`` values of a in ``[-radius, radius]`` (an odd number, so that a = 0 is on
    the grid) on every direction in one compiled call.

    Args:
      apply_fn, batch, loss_name, chunk_size, batch_stats: as in :func:`jaxdl.analysis.landscape.evaluate_params`.
      params: pytree theta.
      key: PRNG key of the directions.
      radius: the largest |a| (> 0); a = 1 moves every filter by its own norm.
      num_directions: R >= 1.
      num_points: odd G >= 3.
      ignore_biasbn: zero the directions' 1-D leaves (biases, normalisation parameters).

    Returns:
      ``{'value': the mean rise, 'rises': (R,), 'loss': L(theta), 'alphas': (G,), 'losses': (R, G)}``
      as NumPy values.
    """
    radius = checks.number("radius", radius)
    num_directions = checks.integer("num_directions", num_directions)
    num_points = checks.integer("num_points", num_points, minimum=3)
    if num_points % 2 == 0:
        checks.fail("num_points", num_points, "an odd integer (so that a = 0 is a grid point)")
    _check_evaluation(apply_fn, batch, loss_name, chunk_size, batch_stats)
    directions = [random_direction(jax.random.fold_in(key, r), params, ignore_biasbn=ignore_biasbn)
                  for r in range(num_directions)]
    directions_R = jax.tree.map(lambda *leaves: jnp.stack(leaves), *directions)
    alphas = np.linspace(-radius, radius, num_points)
    index_R, alpha_G = np.meshgrid(np.arange(num_directions), alphas, indexing="ij")
    coords = jnp.asarray(np.stack([index_R.ravel(), alpha_G.ravel()], axis=-1), coordinate_dtype(params))
    values = _evaluate_points(apply_fn, _direction_point, (params, directions_R), coords, batch, batch_stats,
                              loss_name=loss_name, chunk_size=chunk_size)
    losses_RxG = np.asarray(values["loss"], np.float64).reshape(num_directions, num_points)
    base = losses_RxG[:, num_points // 2].mean()
    rises = losses_RxG.max(axis=1) - losses_RxG[:, num_points // 2]
    return {"value": float(rises.mean()), "rises": rises, "loss": float(base), "alphas": alphas, "losses": losses_RxG}
