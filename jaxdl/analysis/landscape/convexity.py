"""Convexity maps: the extreme Hessian eigenvalues at every point of a surface grid (Li et al.
2018, section 6).

A loss surface drawn along two directions can look convex while the loss is not: the plot
shows two directions of P. Li, Xu, Taylor, Studer & Goldstein 2018 ("Visualizing the loss
landscape of neural nets", Fig. 7) therefore map |lambda_min / lambda_max| of the full Hessian
at every point of the plane: near 0 the point is nearly convex (no large negative curvature),
large values show strong non-convexity that the 2-D plot hides.

:func:`convexity_map` runs one Lanczos recurrence (full reorthogonalisation,
:func:`jaxdl.core.linalg.lanczos`) per point, from the same Gaussian start, and reads both
extreme Ritz values from it; the points go through one compiled program, vmapped within chunks
of ``points_per_chunk`` and ``lax.map``ped across chunks. :func:`convexity_fraction` counts the
points whose ratio exceeds a threshold, optionally within a central region.
"""
from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxdl.analysis.curvature.hvp import default_key, hessian_matvec
from jaxdl.analysis.landscape.evaluate import _check_coordinates, coordinate_dtype
from jaxdl.analysis.landscape.surfaces import DEFAULT_POINTS_PER_CHUNK, POINTS_PER_CHUNK
from jaxdl.core import batching, checks, compiled, tree
from jaxdl.core.linalg import lanczos, tridiagonal
from jaxdl.train import losses

__all__ = ["convexity_map", "convexity_fraction"]

PyTree = Any


@compiled.jit(static_argnames=("loss_name", "num_steps", "chunk_size", "points_per_chunk"))
def _extremes(apply_fn, params, direction_x, direction_y, batch, coords_Mx2, key, *, loss_name, num_steps, chunk_size,
              points_per_chunk):
    loss_fn = losses.make_loss_fn(apply_fn, loss_name)
    dtype = coordinate_dtype(params)
    start_P = jax.random.normal(key, (tree.count(params),), dtype)

    def at(coord_2):
        point = tree.axpy(coord_2[1].astype(dtype), direction_y, tree.axpy(coord_2[0].astype(dtype), direction_x,
                                                                             params))
        result = lanczos(hessian_matvec(loss_fn, point, batch, chunk_size=chunk_size), start_P, num_steps)
        theta_S = jnp.linalg.eigvalsh(tridiagonal(result.alphas, result.betas))
        return theta_S[-1], theta_S[0]

    return batching.map_in_chunks(at, coords_Mx2, points_per_chunk)


def convexity_map(apply_fn: Callable, params: PyTree, direction_x: PyTree, direction_y: PyTree, batch, xs, ys, *,
                  loss_name: str = "cross_entropy", num_steps: int = 20, chunk_size: int | None = None,
                  points_per_chunk: int | str = "auto", key: jax.Array | None = None) -> dict:
    """The largest and smallest Hessian eigenvalues at every point of the plane
    ``params + x * direction_x + y * direction_y``, and |lambda_min / lambda_max| (Li et al.
    2018, section 6 and Fig. 7).

    AXIS ORDER as :func:`jaxdl.analysis.landscape.surface`: ``values[name][i, j]`` is at
    ``(x, y) = (xs[j], ys[i])``, every array of shape ``(len(ys), len(xs))``.

    Each point runs ``num_steps`` Lanczos steps with full reorthogonalisation from one Gaussian
    start (drawn from ``key``, the same at every point) on the data-set Hessian of
    ``loss_name`` (:func:`jaxdl.analysis.curvature.hessian_matvec`) and takes the extreme Ritz
    values: both ends of the spectrum converge first, the largest faster; with
    ``num_steps = P`` they are exact. Ritz values lie inside the spectrum, so a short run can
    only understate either end.

    Args:
      apply_fn, batch, loss_name, chunk_size: as for :func:`jaxdl.analysis.landscape.surface`
        (``batch = (x_Nx..., y_N...)``, the data set).
      params, direction_x, direction_y: the centre and two directions (pytrees alike).
      xs: ``(I,)`` coordinates along ``direction_x``; ys: ``(J,)`` along ``direction_y``.
      num_steps: Lanczos steps per point, ``<= P``.
      points_per_chunk: points vmapped together; ``'auto'`` as for ``surface`` (1 on a CPU).
      key: PRNG key of the start (default ``jax.random.key(0)``).

    Returns:
      ``{'top': (J, I), 'bottom': (J, I), 'ratio': (J, I)}`` NumPy float64 arrays; ``ratio`` is
      |bottom / top| where top > 0, else inf.
    """
    losses.check_loss_name(loss_name)
    checks.integer("chunk_size", chunk_size, allow_none=True)
    if not isinstance(batch, (tuple, list)) or len(batch) != 2:
        checks.fail("batch", type(batch).__name__, "a pair (x_Nx..., y_N...)")
    xs, ys = _check_coordinates("xs", xs), _check_coordinates("ys", ys)
    num_steps = checks.integer("num_steps", num_steps, maximum=tree.count(params),
                               maximum_name="the number of parameters P")
    points_per_chunk = batching.items_per_chunk("points_per_chunk", points_per_chunk, POINTS_PER_CHUNK,
                                                DEFAULT_POINTS_PER_CHUNK)
    checks.same_structure("direction_x", direction_x, params)
    checks.same_structure("direction_y", direction_y, params)
    grid_x, grid_y = np.meshgrid(xs, ys)
    coords_Mx2 = np.stack([grid_x.ravel(), grid_y.ravel()], axis=1)
    top_M, bottom_M = _extremes(apply_fn, params, direction_x, direction_y, tuple(batch), coords_Mx2,
                                default_key(key), loss_name=loss_name, num_steps=num_steps, chunk_size=chunk_size,
                                points_per_chunk=points_per_chunk)
    shape = (len(ys), len(xs))
    top, bottom = (np.asarray(v, np.float64).reshape(shape) for v in (top_M, bottom_M))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(top > 0, np.abs(bottom) / np.where(top > 0, top, 1.0), np.inf)
    return {"top": top, "bottom": bottom, "ratio": ratio}


def convexity_fraction(values: dict, xs, ys, threshold: float, radius: float | None = None) -> float:
    """The fraction of the points of a :func:`convexity_map` whose |lambda_min / lambda_max|
    exceeds ``threshold``, among those with ``max(|x|, |y|) <= radius`` (all with None): Li et
    al.'s reading of their maps, where the central region of a well-behaved net is convex."""
    xs, ys = _check_coordinates("xs", xs), _check_coordinates("ys", ys)
    ratio = np.asarray(values["ratio"], np.float64)
    if ratio.shape != (len(ys), len(xs)):
        checks.fail("values['ratio']", ratio.shape, f"shape (len(ys), len(xs)) = {(len(ys), len(xs))}")
    threshold = checks.number("threshold", threshold)
    inside = np.ones_like(ratio, bool)
    if radius is not None:
        radius = checks.number("radius", radius)
        grid_x, grid_y = np.meshgrid(xs, ys)
        inside = np.maximum(np.abs(grid_x), np.abs(grid_y)) <= radius
    if not inside.any():
        checks.fail("radius", radius, "a radius that keeps at least one grid point")
    return float(np.mean(ratio[inside] > threshold))
