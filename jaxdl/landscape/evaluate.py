"""Metrics of the full data set at points of parameter space, and BatchNorm statistics there.

Every landscape tool evaluates the data-set means of ``losses.per_example_metrics`` (``'loss'``
and, for classification, ``'accuracy'``) at many points theta. Two BatchNorm modes:

- frozen (``batch_stats=None``): ``apply_fn(params, x)`` closes over whatever model state the
  user baked in (e.g. :func:`jaxdl.train.make_apply_fn` with the trained running statistics);
  the statistics do not follow the point;
- recomputed (``batch_stats=BatchStats(...)``): at each point the running statistics are
  recomputed from the training inputs (:func:`recompute_batch_stats`, as Garipov et al. 2018
  do along their curves) and the model is evaluated in eval mode with them.

The private :func:`_evaluate_points` is the one compiled program behind interpolation,
surfaces and curves: ``lax.map`` over chunks of points, ``vmap`` over the points of a chunk,
and the data accumulated in chunks of ``chunk_size`` examples (:func:`chunked_mean`) inside.
"""
from __future__ import annotations

import functools
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jaxdl import losses, tree
from jaxdl.curvature.hvp import check_chunk_size, chunked_mean, num_examples
from jaxdl.train import apply_model

PyTree = Any


class BatchStats(struct.PyTreeNode):
    """Recompute BatchNorm statistics at every evaluated point (Garipov et al. 2018).

    A pytree (``model`` and ``batch_size`` are static), so it passes through ``jit``.

    Attributes:
      model: the Flax module (called ``model.apply(variables, x, train=bool)``).
      model_state: a template of the non-parameter collections, e.g. ``{'batch_stats': ...}``;
        its ``'batch_stats'`` values are replaced, the other collections are kept.
      x: the training inputs ``x_Nx...`` the statistics are computed on.
      batch_size: examples per batch of the recomputation.
    """

    model: nn.Module = struct.field(pytree_node=False)
    model_state: PyTree
    x: jax.Array
    batch_size: int = struct.field(pytree_node=False)


def _check_batch_stats(batch_stats) -> None:
    if batch_stats is None:
        return
    if not isinstance(batch_stats, BatchStats):
        raise ValueError(f"batch_stats must be None or a BatchStats, got {type(batch_stats).__name__}")
    if "batch_stats" not in batch_stats.model_state:
        raise ValueError(f"batch_stats.model_state has no 'batch_stats' collection (it has "
                         f"{sorted(batch_stats.model_state)}); use batch_stats=None for a model without BatchNorm")
    _check_recompute_batch_size(batch_stats.batch_size)


def _check_recompute_batch_size(batch_size) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")


def recompute_batch_stats(model: nn.Module, params: PyTree, model_state: PyTree, x: jax.Array, *,
                          batch_size: int) -> PyTree:
    """BatchNorm running statistics recomputed at ``params`` as the exact mean of the batch
    statistics over the batches of ``x``.

    Garipov et al. 2018 ("Loss surfaces, mode connectivity, and fast ensembling of DNNs",
    ``utils.bn_update``) reset the statistics and run the training set through the network in
    train mode with cumulative averaging, so that each running mean and (biased, as Flax stores
    it) variance is the size-weighted mean over batches of the batch statistics. This does the
    same whatever the module's ``momentum`` m: Flax updates ``s' = m s + (1 - m) b`` with b the
    batch statistic, so one train-mode pass from ``s = 0`` gives ``(1 - m) b`` and the tangent
    of ``s'`` along ``s`` (``jax.jvp``, no data needed) gives m exactly; the batch means of
    ``(1 - m) b`` are divided by ``1 - m`` once at the end. Every leaf of ``'batch_stats'`` is
    assumed to be such an average with ``m < 1`` (true of ``flax.linen.BatchNorm``).

    ``x`` is cut into ``N // batch_size`` batches and a remainder of ``N % batch_size``
    examples (weighted by its size, as in Garipov et al.); ``batch_size >= N`` is one batch.
    Batches are ``lax.map``ped (:func:`jaxdl.curvature.chunked_mean`); later BatchNorm layers
    see the earlier ones normalised by the batch, as in training. Train mode gets a fixed
    dropout key. Jit-able.

    Args:
      model: Flax module; params: its parameters.
      model_state: ``{'batch_stats': ...[, other collections]}``, a template (values unused).
      x: inputs ``x_Nx...``.
      batch_size: examples per batch.

    Returns:
      ``model_state`` with ``'batch_stats'`` replaced by the recomputed statistics.
    """
    _check_recompute_batch_size(batch_size)
    zeros = tree.zeros_like(model_state["batch_stats"])
    rng = jax.random.key(0)

    def updated(stats, x_B):
        _, new_state = apply_model(model, params, {**model_state, "batch_stats": stats}, x_B, train=True, rng=rng)
        return new_state["batch_stats"]

    _, momentum = jax.jvp(lambda s: updated(s, x[:batch_size]), (zeros,), (tree.ones_like(zeros),))
    scaled_mean = chunked_mean(lambda x_B: updated(zeros, x_B), x, batch_size)
    stats = jax.tree.map(lambda u, m: u / (1 - m), scaled_mean, momentum)
    return {**model_state, "batch_stats": stats}


def _metrics_at(apply_fn, params, data, batch_stats, loss, chunk_size) -> dict:
    """Data-set means of the per-example metrics at ``params`` (un-jitted body)."""
    if batch_stats is not None:
        state = recompute_batch_stats(batch_stats.model, params, batch_stats.model_state, batch_stats.x,
                                      batch_size=batch_stats.batch_size)
        apply_fn = lambda p, x: apply_model(batch_stats.model, p, state, x, train=False)

    def batch_means(batch):
        x, y = batch
        return {name: v.mean() for name, v in losses.per_example_metrics(loss, apply_fn(params, x), y).items()}

    return chunked_mean(batch_means, data, chunk_size)


def _check_evaluation(apply_fn, data, loss, chunk_size, batch_stats) -> None:
    losses.check_loss_name(loss)
    check_chunk_size(chunk_size)
    _check_batch_stats(batch_stats)
    if apply_fn is None and batch_stats is None:
        raise ValueError("apply_fn is None: it is needed unless batch_stats recomputes the statistics")
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise ValueError(f"data must be a pair (x_Nx..., y_N...), got {type(data).__name__}")
    num_examples(data)


@functools.partial(jax.jit, static_argnames=("apply_fn", "loss", "chunk_size"))
def _evaluate(apply_fn, params, data, batch_stats, *, loss, chunk_size):
    return _metrics_at(apply_fn, params, data, batch_stats, loss, chunk_size)


def evaluate_params(apply_fn: Callable | None, params: PyTree, data, *, loss: str = "cross_entropy",
                    chunk_size: int | None = None, batch_stats: BatchStats | None = None) -> dict:
    """Data-set means of the loss (and accuracy) at ``params``; jitted, ``params`` traced.

    Args:
      apply_fn: ``apply_fn(params, x_Bx...) -> outputs_Bx...``; unused (may be None) with
        ``batch_stats``.
      params: pytree theta.
      data: ``(x_Nx..., y_N...)``.
      loss: a name of :data:`jaxdl.losses.PER_EXAMPLE_LOSSES`.
      chunk_size: examples per chunk of the accumulation, or None for one pass.
      batch_stats: None (frozen: whatever ``apply_fn`` closes over) or a :class:`BatchStats`
        (statistics recomputed at ``params``, then eval mode).

    Returns:
      ``{'loss': scalar[, 'accuracy': scalar]}``.
    """
    _check_evaluation(apply_fn, data, loss, chunk_size, batch_stats)
    return _evaluate(apply_fn, params, data, batch_stats, loss=loss, chunk_size=chunk_size)


@functools.partial(jax.jit, static_argnames=("apply_fn", "point_fn", "loss", "chunk_size", "mesh"))
def _evaluate_points(apply_fn, point_fn, anchors, coords_CxKxD, data, batch_stats, *, loss, chunk_size,
                     mesh=None):
    """Metrics at ``point_fn(anchors, coord_D)`` for every coordinate of ``coords_CxKxD``:
    ``lax.map`` over the C chunks, ``vmap`` over the K points of a chunk (sharded over the
    ``'points'`` axis of ``mesh`` when given). Returns ``{name: values_CxK}``."""
    def at(coord_D):
        return _metrics_at(apply_fn, point_fn(anchors, coord_D), data, batch_stats, loss, chunk_size)

    if coords_CxKxD.shape[1] == 1:  # a plain lax.map: no batching of the model
        return jax.tree.map(lambda v: v[:, None], jax.lax.map(at, coords_CxKxD[:, 0]))
    if mesh is not None:
        coords_CxKxD = jax.lax.with_sharding_constraint(coords_CxKxD, NamedSharding(mesh, P(None, "points")))
    return jax.lax.map(jax.vmap(at), coords_CxKxD)


def metric_names(loss: str) -> list[str]:
    """The metrics every landscape tool returns for ``loss``: ``['loss'[, 'accuracy']]``."""
    return ["loss"] + (["accuracy"] if losses.is_classification(loss) else [])


def coordinate_dtype(params: PyTree):
    """Floating dtype of the coordinates multiplying directions (that of ``params``)."""
    dtype = jnp.result_type(*jax.tree.leaves(params))
    return dtype if jnp.issubdtype(dtype, jnp.floating) else jnp.float32


def _check_coordinates(name: str, values) -> np.ndarray:
    values = np.asarray(values, np.float64)
    if values.ndim != 1 or values.size == 0 or not np.all(np.isfinite(values)):
        raise ValueError(f"{name} must be a non-empty 1-D array of finite numbers, got shape {values.shape}")
    return values


def _line_point(anchors, coord_D):
    start, end = anchors
    return tree.lerp(start, end, coord_D[0].astype(coordinate_dtype(start)))


def _ray_point(anchors, coord_D):
    params, direction = anchors
    return tree.axpy(coord_D[0].astype(coordinate_dtype(params)), direction, params)


def interpolation_alphas(start: float = -0.5, stop: float = 1.5, num: int = 101) -> np.ndarray:
    """``np.linspace(start, stop, num)`` with the grid points nearest 0 and 1 set to exactly
    0.0 and 1.0 (Goodfellow, Vinyals & Saxe 2015 plot theta(a) on such a grid around [0, 1]).

    ``ValueError`` naming ``num`` unless 0 and 1 both lie on the grid, i.e. ``start <= 0``,
    ``stop >= 1`` and ``-start / step`` and ``(1 - start) / step`` are whole numbers for
    ``step = (stop - start) / (num - 1)`` (the default step is 0.02).
    """
    if isinstance(num, bool) or not isinstance(num, (int, np.integer)) or num < 2:
        raise ValueError(f"num must be an integer >= 2, got {num!r}")
    alphas = np.linspace(start, stop, num)
    step = (stop - start) / (num - 1)
    for target in (0.0, 1.0):
        position = (target - start) / step if step > 0 else -1.0
        index = int(round(position))
        if not (0 <= index < num and abs(position - index) < 1e-6):
            raise ValueError(f"num={num} with start={start}, stop={stop} gives a grid without {target}; "
                             "choose start <= 0 <= 1 <= stop and num so that 0 and 1 are grid points")
        alphas[index] = target
    return alphas


def _interpolate(apply_fn, point_fn, anchors, data, alphas, loss, chunk_size, batch_stats):
    _check_evaluation(apply_fn, data, loss, chunk_size, batch_stats)
    alphas = _check_coordinates("alphas", alphas)
    coords = jnp.asarray(alphas[:, None, None], coordinate_dtype(anchors[0]))
    values = _evaluate_points(apply_fn, point_fn, anchors, coords, data, batch_stats, loss=loss,
                              chunk_size=chunk_size)
    return {name: v[:, 0] for name, v in values.items()}


def interpolate(apply_fn: Callable | None, params0: PyTree, params1: PyTree, data, alphas, *,
                loss: str = "cross_entropy", chunk_size: int | None = None,
                batch_stats: BatchStats | None = None) -> dict:
    """Metrics along the line theta(a) = (1 - a) theta0 + a theta1 (Goodfellow, Vinyals & Saxe
    2015, "Qualitatively characterizing neural network optimization problems").

    One jitted call: ``lax.map`` over the alphas, the data accumulated in chunks inside.
    ``a = 0`` and ``a = 1`` give ``params0`` and ``params1`` exactly (:func:`jaxdl.tree.lerp`).

    Args:
      apply_fn, data, loss, chunk_size, batch_stats: as in :func:`evaluate_params`.
      params0, params1: the endpoints (pytrees of one structure).
      alphas: ``(A,)`` coefficients, e.g. :func:`interpolation_alphas`.

    Returns:
      ``{'loss': (A,)[, 'accuracy': (A,)]}``.
    """
    return _interpolate(apply_fn, _line_point, (params0, params1), data, alphas, loss, chunk_size, batch_stats)


def interpolate_direction(apply_fn: Callable | None, params: PyTree, direction: PyTree, data, alphas, *,
                          loss: str = "cross_entropy", chunk_size: int | None = None,
                          batch_stats: BatchStats | None = None) -> dict:
    """Metrics along the ray theta + a d, e.g. with a filter-normalised d
    (:func:`jaxdl.landscape.random_direction`) for Li et al. 2018's 1-D plots. Same compiled
    machinery and arguments as :func:`interpolate`; returns ``{name: (A,)}``."""
    return _interpolate(apply_fn, _ray_point, (params, direction), data, alphas, loss, chunk_size, batch_stats)
