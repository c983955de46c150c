"""2-D loss surfaces along two directions (Li et al. 2018), resumable from a partial file.

AXIS ORDER: every surface is ``values[i, j]`` at ``(x, y) = (xs[j], ys[i])``, shape
``(len(ys), len(xs))`` -- rows follow ``ys``, columns follow ``xs``, the layout of
``np.meshgrid(xs, ys)`` and of the ``Z`` of ``matplotlib.pyplot.contour(xs, ys, Z)`` and
:func:`jaxdl.plot.contour_surface`.
"""
from __future__ import annotations

import os
from typing import Any, Callable

import jax
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
from tqdm.auto import tqdm

from jaxdl.core import batching, checks, io, meshes, tree
from jaxdl.train import losses
from jaxdl.analysis.landscape.evaluate import (BatchStats, _check_coordinates, _check_evaluation, _evaluate_points,
                                      coordinate_dtype)

__all__ = ["BLOCK_CHUNKS", "POINTS_PER_BLOCK", "POINTS_PER_CHUNK", "DEFAULT_POINTS_PER_CHUNK", "surface"]

PyTree = Any
BLOCK_CHUNKS = 8
POINTS_PER_BLOCK = 64  # the fewest points per block by default
# Grid points evaluated together by ``points_per_chunk='auto'``, per backend: on a CPU one point
# at a time (a plain ``lax.map``: a vmapped chunk of points adds work without filling the cores
# better), 64 on other backends, where a vmapped chunk fills the device. The benchmark's surface
# rows compare the two.
POINTS_PER_CHUNK = {"cpu": 1}
DEFAULT_POINTS_PER_CHUNK = 64


def _plane_point(anchors, coord_D):
    params, direction_x, direction_y = anchors
    dtype = coordinate_dtype(params)
    return tree.axpy(coord_D[1].astype(dtype), direction_y, tree.axpy(coord_D[0].astype(dtype), direction_x, params))


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def _load_partial(path, xs, ys, names):
    """``(values, done)`` from a partial surface file, flattened; ``ValueError`` naming ``path``
    if it belongs to another grid or another set of metrics."""
    saved = io.load_npz(path)
    shape = (len(ys), len(xs))
    for key in ("xs", "ys"):
        expected = xs if key == "xs" else ys
        if key not in saved or not np.array_equal(np.asarray(saved[key], np.float64), expected):
            raise ValueError(f"path {os.fspath(path)!r} holds a surface on other {key}; "
                             "pass the same xs and ys to resume it, or use a new path")
    missing = [key for key in ["done", *names] if key not in saved or saved[key].shape != shape]
    if missing:
        raise ValueError(f"path {os.fspath(path)!r} has no arrays {missing} of shape {shape}; "
                         "it was written for another loss or is not a surface file")
    values = {name: np.array(saved[name], np.float32).ravel() for name in names}
    return values, np.array(saved["done"], bool).ravel()


def surface(apply_fn: Callable | None, params: PyTree, direction_x: PyTree, direction_y: PyTree, batch, xs, ys, *,
            loss_name: str = "cross_entropy", chunk_size: int | None = None, points_per_chunk: int | str = "auto",
            batch_stats: BatchStats | None = None, path: str | os.PathLike | None = None,
            points_per_block: int | None = None, progress: bool = False) -> dict:
    """Metrics on the plane ``params + x * direction_x + y * direction_y`` (Li et al. 2018,
    "Visualizing the loss landscape of neural nets", section 5).

    AXIS ORDER: ``values[name][i, j]`` is the metric at ``(x, y) = (xs[j], ys[i])``; every array
    has shape ``(len(ys), len(xs))``, rows along ``ys`` (what ``plt.contour(xs, ys, Z)`` expects).

    The len(xs) * len(ys) points, in that row-major order, are padded to a whole number of
    chunks of ``points_per_chunk`` (rounded up to a multiple of the device count, and at most
    all the points); one compiled program ``lax.map``s over the chunks of a block and ``vmap``s over the
    points of a chunk, the data accumulated in chunks of ``chunk_size`` examples inside. The
    points of a chunk are sharded over all devices (a 1-D ``'points'`` mesh; one device is the
    same code path). Peak memory grows with ``points_per_chunk * chunk_size``.

    Without ``path`` every point goes in one call. With ``path`` (an ``.npz`` file) the points
    go in blocks of ``points_per_block`` (default ``8 * points_per_chunk`` or 64, the larger, rounded up to whole
    chunks) through the same compiled program, and after each block the partial surface
    (``xs``, ``ys``, the boolean mask ``done`` and one array per metric, all but the axes of
    shape ``(len(ys), len(xs))``) is written atomically. A later call with the same ``path``,
    ``xs`` and ``ys`` loads it and computes only the blocks with points not done; a file for
    other ``xs`` or ``ys`` raises ``ValueError`` naming ``path``. Nothing else (params,
    directions, data) is checked: a path belongs to one surface.

    Args:
      apply_fn, batch, loss_name, chunk_size, batch_stats: as in :func:`jaxdl.analysis.landscape.evaluate_params`.
      params: pytree theta, the centre ``(0, 0)``.
      direction_x, direction_y: pytrees shaped like ``params`` (e.g.
        :func:`jaxdl.analysis.landscape.random_direction`).
      xs: ``(I,)`` coordinates along ``direction_x``; ys: ``(J,)`` along ``direction_y``.
      points_per_chunk: points evaluated together (``vmap``) in one step of the ``lax.map``;
        ``'auto'`` (default): the backend's measured best (:data:`POINTS_PER_CHUNK`: 1 on a CPU,
        else 64).
      path: optional ``.npz`` file for the partial surface.
      points_per_block: points per block when ``path`` is given.
      progress: a tqdm bar over blocks.

    Returns:
      ``{'loss': (J, I)[, 'accuracy': (J, I)]}`` NumPy float32 arrays.
    """
    _check_evaluation(apply_fn, batch, loss_name, chunk_size, batch_stats)
    xs, ys = _check_coordinates("xs", xs), _check_coordinates("ys", ys)
    points_per_chunk = batching.items_per_chunk("points_per_chunk", points_per_chunk, POINTS_PER_CHUNK,
                                                DEFAULT_POINTS_PER_CHUNK)
    if points_per_chunk is None:
        checks.fail("points_per_chunk", None, "a positive integer or 'auto'")
    checks.integer("points_per_block", points_per_block, allow_none=True)
    checks.same_structure("direction_x", direction_x, params)
    checks.same_structure("direction_y", direction_y, params)
    names = losses.metric_names(loss_name)
    num_points = len(xs) * len(ys)

    mesh = meshes.points_mesh()
    chunk = _round_up(min(points_per_chunk, num_points), mesh.devices.size)
    if path is None:
        block = _round_up(num_points, chunk)
    else:
        block = _round_up(min(points_per_block or max(BLOCK_CHUNKS * chunk, POINTS_PER_BLOCK), num_points), chunk)
    num_blocks = -(-num_points // block)

    grid_y, grid_x = np.meshgrid(ys, xs, indexing="ij")
    coords = np.zeros((num_blocks * block, 2), coordinate_dtype(params))  # padding: the centre
    coords[:num_points] = np.stack([grid_x.ravel(), grid_y.ravel()], axis=-1)
    coords = coords.reshape(num_blocks, block, 2)

    values = {name: np.full(num_points, np.nan, np.float32) for name in names}
    done = np.zeros(num_points, bool)
    if path is not None and os.path.exists(path):
        values, done = _load_partial(path, xs, ys, names)

    replicated = NamedSharding(mesh, P())
    anchors, batch, batch_stats = jax.device_put(((params, direction_x, direction_y), batch, batch_stats), replicated)
    block_sharding = NamedSharding(mesh, P("points"))
    todo = [b for b in range(num_blocks) if not done[b * block:(b + 1) * block].all()]
    for b in tqdm(todo, desc="surface", unit="block", disable=not progress, leave=False):
        out = _evaluate_points(apply_fn, _plane_point, anchors, jax.device_put(coords[b], block_sharding), batch,
                               batch_stats, loss_name=loss_name, chunk_size=chunk_size, points_per_chunk=chunk,
                               chunk_sharding=block_sharding)
        window = slice(b * block, min((b + 1) * block, num_points))
        missing = ~done[window]
        for name in names:
            computed = np.asarray(out[name], np.float32).ravel()[: window.stop - window.start]
            values[name][window][missing] = computed[missing]
        done[window] = True
        if path is not None:
            shape = (len(ys), len(xs))
            io.save_npz(path, xs=xs, ys=ys, done=done.reshape(shape),
                        **{name: v.reshape(shape) for name, v in values.items()})
    return {name: v.reshape(len(ys), len(xs)) for name, v in values.items()}
