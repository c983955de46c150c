"""Metrics of the full data set at points of parameter space, and BatchNorm statistics there.

Every landscape tool evaluates :func:`jaxdl.train.evaluate` -- the data-set means of the loss
``loss_name`` and, for classification, the accuracy -- at many points theta. Two BatchNorm modes:

- frozen (``batch_stats=None``): ``apply_fn(params, x)`` closes over whatever model state the
  user baked in (e.g. :func:`jaxdl.train.make_apply_fn` with the trained running statistics);
  the statistics do not follow the point;
- recomputed (``batch_stats=BatchStats(...)``): at each point the running statistics are
  recomputed from the training inputs (:func:`recompute_batch_stats`, as Garipov et al. 2018
  do along their curves) and the model is evaluated in eval mode with them.

The private :func:`_evaluate_points` is the one compiled program behind interpolation,
surfaces and curves: points in chunks (:func:`jaxdl.core.batching.map_in_chunks`: ``lax.map`` over
chunks, ``vmap`` within one), and the data accumulated in chunks of ``chunk_size`` examples
(:func:`jaxdl.core.batching.dataset_mean`) inside. Programs are compiled by
:func:`jaxdl.core.compiled.jit`: a second call on the same model and shapes compiles nothing.
"""
from __future__ import annotations

from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jaxdl.core import batching, checks, compiled, tree
from jaxdl.train import losses
from jaxdl.train import apply_model, evaluate, make_apply_fn

__all__ = ["BatchStats", "recompute_batch_stats", "evaluate_params", "coordinate_dtype", "interpolation_alphas",
           "interpolate", "interpolate_direction"]

PyTree = Any


class BatchStats(struct.PyTreeNode):
    """Recompute BatchNorm statistics at every evaluated point (Garipov et al. 2018).

    A pytree (``model`` and ``batch_size`` are static), so it passes through ``jit``.

    Attributes:
      model: the Flax module (called ``model.apply(variables, x, train=bool)``).
      model_state: a template of the non-parameter collections, e.g. ``{'batch_stats': ...}``;
        its ``'batch_stats'`` values are replaced, the other collections are kept.
      x: the training inputs ``x_Nx...`` the statistics are computed on.
      batch_size: examples per BatchNorm batch of the recomputation (:func:`recompute_batch_stats`):
        the training batch size, not a chunk size.
    """

    model: nn.Module = struct.field(pytree_node=False)
    model_state: PyTree
    x: jax.Array
    # A training batch size, not a chunk_size: see recompute_batch_stats.
    batch_size: int = struct.field(pytree_node=False)


def _check_batch_stats(batch_stats) -> None:
    if batch_stats is None:
        return
    if not isinstance(batch_stats, BatchStats):
        checks.fail("batch_stats", type(batch_stats).__name__, "None or a BatchStats")
    if "batch_stats" not in batch_stats.model_state:
        raise ValueError(f"batch_stats.model_state has no 'batch_stats' collection (it has "
                         f"{sorted(batch_stats.model_state)}); use batch_stats=None for a model without BatchNorm")
    checks.integer("batch_stats.batch_size", batch_stats.batch_size)


def recompute_batch_stats(model: nn.Module, params: PyTree, model_state: PyTree, x: jax.Array, *,
                          batch_size: int) -> PyTree:
    """BatchNorm running statistics recomputed at ``params`` as the exact mean of the batch
    statistics over the batches of ``x``.

    Garipov et al. 2018 ("Loss surfaces, mode connectivity, and fast ensembling of DNNs",
    ``utils.bn_update``) reset the statistics and run the training set through the network in
    train mode with cumulative averaging, so that each running mean and (biased, as Flax stores
    it) variance is the size-weighted mean over batches of the batch statistics. This does the
    same whatever the module's ``momentum`` m: Flax updates ``s' = m s + (1 - m) b`` with b the
    batch statistic, so one train-mode pass from ``s = 0`` gives ``(1 - m) b``, and the same
    batch from ``s = 1`` gives ``m + (1 - m) b``, so their difference is m; the batch means of
    ``(1 - m) b`` are divided by ``1 - m`` once at the end. Every leaf of ``'batch_stats'`` is
    assumed to be such an average with ``m < 1`` (true of ``flax.linen.BatchNorm``).

    ``x`` is cut into ``N // batch_size`` batches and a remainder of ``N % batch_size``
    examples (weighted by its size, as in Garipov et al.); ``batch_size >= N`` is one batch.
    ``batch_size`` is a training batch size, not a ``chunk_size``: each BatchNorm layer
    normalises by the statistics of its batch, so the size changes the result (a mean of
    within-batch variances is ``(B - 1) / B`` of the data-set variance, and every later layer
    sees inputs normalised by its batch); use the batch size the model was trained with.
    Batches are ``lax.map``ped (:func:`jaxdl.core.batching.dataset_mean`); later BatchNorm layers
    see the earlier ones normalised by the batch, as in training. Train mode gets a fixed
    dropout key. Jit-able.

    Args:
      model: Flax module; params: its parameters.
      model_state: ``{'batch_stats': ...[, other collections]}``, a template (values unused).
      x: inputs ``x_Nx...``.
      batch_size: examples per BatchNorm batch (the training batch size).

    Returns:
      ``model_state`` with ``'batch_stats'`` replaced by the recomputed statistics.
    """
    # batch_size, not chunk_size: the BatchNorm statistics are those of training-size batches.
    checks.integer("batch_size", batch_size)
    zeros = tree.zeros_like(model_state["batch_stats"])
    rng = jax.random.key(0)

    def updated(stats, x_B):
        _, new_state = apply_model(model, params, {**model_state, "batch_stats": stats}, x_B, train=True, rng=rng)
        return new_state["batch_stats"]

    # The update is affine in s, so one batch from s = 1 and from s = 0 gives m as their difference
    # (autodiff would not do: NNX's BatchNorm stops the gradient through its running statistics).
    head = x[:batch_size]
    momentum = tree.subtract(updated(tree.ones_like(zeros), head), updated(zeros, head))
    scaled_mean = batching.dataset_mean(lambda x_B: updated(zeros, x_B), x, batch_size)
    stats = jax.tree.map(lambda u, m: u / (1 - m), scaled_mean, momentum)
    return {**model_state, "batch_stats": stats}


def _metrics_at(apply_fn, params, batch, batch_stats, loss_name, chunk_size) -> dict:
    """Data-set means of the metrics at ``params`` (un-jitted body)."""
    if batch_stats is not None:
        state = recompute_batch_stats(batch_stats.model, params, batch_stats.model_state, batch_stats.x,
                                      batch_size=batch_stats.batch_size)
        apply_fn = make_apply_fn(batch_stats.model, state)
    return evaluate(apply_fn, params, batch, loss_name=loss_name, chunk_size=chunk_size)


def _check_evaluation(apply_fn, batch, loss_name, chunk_size, batch_stats) -> None:
    losses.check_loss_name(loss_name)
    checks.integer("chunk_size", chunk_size, allow_none=True)
    _check_batch_stats(batch_stats)
    if apply_fn is None and batch_stats is None:
        raise ValueError("apply_fn is None: it is needed unless batch_stats recomputes the statistics")
    if not isinstance(batch, (tuple, list)) or len(batch) != 2:
        checks.fail("batch", type(batch).__name__, "a pair (x_Nx..., y_N...)")
    batching.num_examples(batch)


@compiled.jit(static_argnames=("loss_name", "chunk_size"))
def _evaluate(apply_fn, params, batch, batch_stats, *, loss_name, chunk_size):
    return _metrics_at(apply_fn, params, batch, batch_stats, loss_name, chunk_size)


def evaluate_params(apply_fn: Callable | None, params: PyTree, batch, *, loss_name: str = "cross_entropy",
                    chunk_size: int | None = None, batch_stats: BatchStats | None = None) -> dict:
    """:func:`jaxdl.train.evaluate` at ``params`` as one compiled program, with BatchNorm
    statistics frozen or recomputed there.

    Args:
      apply_fn: ``apply_fn(params, x_Bx...) -> outputs_Bx...``; unused (may be None) with
        ``batch_stats``.
      params: pytree theta.
      batch: ``(x_Nx..., y_N...)``.
      loss_name: a key of :data:`jaxdl.train.losses.PER_EXAMPLE_LOSSES`.
      chunk_size: examples per chunk of the accumulation, or None for one pass.
      batch_stats: None (frozen: whatever ``apply_fn`` closes over) or a :class:`BatchStats`
        (statistics recomputed at ``params``, then eval mode).

    Returns:
      ``{'loss': scalar[, 'accuracy': scalar]}``.
    """
    _check_evaluation(apply_fn, batch, loss_name, chunk_size, batch_stats)
    return _evaluate(apply_fn, params, batch, batch_stats, loss_name=loss_name, chunk_size=chunk_size)


@compiled.jit(static_argnames=("point_fn", "loss_name", "chunk_size", "points_per_chunk", "chunk_sharding"))
def _evaluate_points(apply_fn, point_fn, anchors, coords_GxD, batch, batch_stats, *, loss_name, chunk_size,
                     points_per_chunk=1, chunk_sharding=None):
    """Metrics at ``point_fn(anchors, coord_D)`` for every row of ``coords_GxD``, in chunks of
    ``points_per_chunk`` points (each spread by ``chunk_sharding`` when given). Returns
    ``{name: values_G}``."""
    def at(coord_D):
        return _metrics_at(apply_fn, point_fn(anchors, coord_D), batch, batch_stats, loss_name, chunk_size)

    return batching.map_in_chunks(at, coords_GxD, points_per_chunk, chunk_sharding=chunk_sharding)


def coordinate_dtype(params: PyTree):
    """Floating dtype of the coordinates multiplying directions (that of ``params``)."""
    dtype = jnp.result_type(*jax.tree.leaves(params))
    return dtype if jnp.issubdtype(dtype, jnp.floating) else jnp.float32


def _check_coordinates(name: str, values) -> np.ndarray:
    values = np.asarray(values, np.float64)
    if values.ndim != 1 or values.size == 0 or not np.all(np.isfinite(values)):
        checks.fail(name, f"an array of shape {values.shape}", "a non-empty 1-D array of finite numbers")
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
    num = checks.integer("num", num, minimum=2)
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


def _interpolate(apply_fn, point_fn, anchors, batch, alphas, loss_name, chunk_size, batch_stats):
    _check_evaluation(apply_fn, batch, loss_name, chunk_size, batch_stats)
    alphas = _check_coordinates("alphas", alphas)
    coords = jnp.asarray(alphas[:, None], coordinate_dtype(anchors[0]))
    return _evaluate_points(apply_fn, point_fn, anchors, coords, batch, batch_stats, loss_name=loss_name,
                            chunk_size=chunk_size)


def interpolate(apply_fn: Callable | None, params0: PyTree, params1: PyTree, batch, alphas, *,
                loss_name: str = "cross_entropy", chunk_size: int | None = None,
                batch_stats: BatchStats | None = None) -> dict:
    """Metrics along the line theta(a) = (1 - a) theta0 + a theta1 (Goodfellow, Vinyals & Saxe
    2015, "Qualitatively characterizing neural network optimization problems").

    One jitted call: ``lax.map`` over the alphas, the data accumulated in chunks inside.
    ``a = 0`` and ``a = 1`` give ``params0`` and ``params1`` exactly (:func:`jaxdl.core.tree.lerp`).

    Args:
      apply_fn, batch, loss_name, chunk_size, batch_stats: as in :func:`evaluate_params`.
      params0, params1: the endpoints (pytrees of one structure).
      alphas: ``(G,)`` coefficients, e.g. :func:`interpolation_alphas`.

    Returns:
      ``{'loss': (G,)[, 'accuracy': (G,)]}``.
    """
    checks.same_structure("params1", params1, params0, "params0")
    return _interpolate(apply_fn, _line_point, (params0, params1), batch, alphas, loss_name, chunk_size, batch_stats)


def interpolate_direction(apply_fn: Callable | None, params: PyTree, direction: PyTree, batch, alphas, *,
                          loss_name: str = "cross_entropy", chunk_size: int | None = None,
                          batch_stats: BatchStats | None = None) -> dict:
    """Metrics along the ray theta + a d, e.g. with a filter-normalised d
    (:func:`jaxdl.analysis.landscape.random_direction`) for Li et al. 2018's 1-D plots. Same compiled
    machinery and arguments as :func:`interpolate`; returns ``{name: (G,)}``."""
    checks.same_structure("direction", direction, params)
    return _interpolate(apply_fn, _ray_point, (params, direction), batch, alphas, loss_name, chunk_size, batch_stats)
