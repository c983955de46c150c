"""Mode connectivity: low-loss curves between two minima (Garipov, Izmailov, Podoprikhin, Vetrov
& Wilson 2018, "Loss surfaces, mode connectivity, and fast ensembling of DNNs").

A curve joins two trained endpoints w1 = ``endpoint0`` and w2 = ``endpoint1`` through one
trainable bend theta, ``w(t) = c0(t) w1 + c1(t) theta + c2(t) w2`` for t in [0, 1]:

- ``'bezier'``: the quadratic Bezier curve, ``c(t) = ((1 - t)^2, 2 t (1 - t), t^2)``;
- ``'polychain'``: the polygonal chain w1 -> theta -> w2, ``(1 - 2t, 2t, 0)`` on [0, 1/2] and
  ``(0, 2 - 2t, 2t - 1)`` on [1/2, 1] (theta at t = 1/2).

:func:`fit_curve` trains theta with the endpoints fixed by minimising the expectation over
t ~ U(0, 1) of the loss at w(t); :func:`curve_metrics` measures the loss along the curve, and
:func:`barrier` and :func:`largest_rise` summarise a path's loss in one number.
"""
from __future__ import annotations

from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jaxdl import train
from jaxdl.core import checks, compiled, meshes, tree
from jaxdl.train import losses
from jaxdl.analysis.landscape.evaluate import BatchStats, _check_evaluation, _evaluate_points, coordinate_dtype

__all__ = ["bezier_coefficients", "polychain_coefficients", "CURVES", "curve_coefficients", "curve_point", "init_bend",
           "fit_curve", "curve_metrics", "line_metrics", "barrier", "largest_rise"]

PyTree = Any


def bezier_coefficients(t) -> jax.Array:
    """``((1 - t)^2, 2 t (1 - t), t^2)``, shape ``(3,)``: weights of (w1, theta, w2)."""
    t = jnp.asarray(t)
    return jnp.stack([(1 - t) ** 2, 2 * t * (1 - t), t ** 2])


def polychain_coefficients(t) -> jax.Array:
    """Weights ``(3,)`` of (w1, theta, w2) on the chain w1 -> theta -> w2: ``(1 - 2t, 2t, 0)``
    for t <= 1/2, ``(0, 2 - 2t, 2t - 1)`` for t > 1/2 (both give theta at t = 1/2)."""
    t = jnp.asarray(t)
    first, second = jnp.stack([1 - 2 * t, 2 * t, 0 * t]), jnp.stack([0 * t, 2 - 2 * t, 2 * t - 1])
    return jnp.where(t <= 0.5, first, second)


CURVES = {"bezier": bezier_coefficients, "polychain": polychain_coefficients}


def curve_coefficients(kind: str, t) -> jax.Array:
    """The ``(3,)`` weights of (w1, theta, w2) at t for a ``'bezier'`` or ``'polychain'``
    curve; non-negative, summing to 1, ``(1, 0, 0)`` at t = 0 and ``(0, 0, 1)`` at t = 1.
    Jit- and vmap-able in t."""
    checks.one_of("kind", kind, sorted(CURVES))
    return CURVES[kind](t)


def curve_point(kind: str, endpoint0: PyTree, bend: PyTree, endpoint1: PyTree, t) -> PyTree:
    """``w(t) = c0 w1 + c1 theta + c2 w2`` with ``c = curve_coefficients(kind, t)``; t = 0 and
    t = 1 give the endpoints exactly."""
    c = curve_coefficients(kind, t)
    return jax.tree.map(lambda a, b, e: (c[0] * a + c[1] * b + c[2] * e).astype(a.dtype), endpoint0, bend, endpoint1)


def init_bend(endpoint0: PyTree, endpoint1: PyTree) -> PyTree:
    """The midpoint (w1 + w2) / 2. With it both curves ARE the straight segment (the Bezier
    curve even at uniform speed: w(t) = (1 - t) w1 + t w2), the usual start of training."""
    return tree.lerp(endpoint0, endpoint1, 0.5)


def _bezier_point(anchors, coord_D):
    return curve_point("bezier", *anchors, coord_D[0])


def _polychain_point(anchors, coord_D):
    return curve_point("polychain", *anchors, coord_D[0])


_POINT_FNS = {"bezier": _bezier_point, "polychain": _polychain_point}


@compiled.jit(static_argnames=("model", "tx", "kind", "loss_name", "batch_sharding"), donate_argnames=("carry",))
def _curve_epoch(carry, endpoints, model_state, x, y, index_SxB, steps_S, t_key, dropout_key, weight_decay, *,
                 model, tx, kind, loss_name, batch_sharding):
    """One epoch of :func:`fit_curve`: a ``lax.scan`` of Optax steps on the bend over the
    minibatches ``index_SxB``, each at its own t ~ U(0, 1)."""
    def step(carry, inputs):
        bend, opt_state = carry
        index_B, step_number = inputs
        # The batch split over the mesh's 'data' axis (the index arrives sharded that way).
        x_B, y_B = jax.lax.with_sharding_constraint((x[index_B], y[index_B]), batch_sharding)
        t = jax.random.uniform(jax.random.fold_in(t_key, step_number), dtype=coordinate_dtype(bend))
        rng = jax.random.fold_in(dropout_key, step_number)

        def objective(bend):
            w_t = curve_point(kind, endpoints[0], bend, endpoints[1], t)
            # Train mode: BatchNorm normalises by the batch; its updated statistics are dropped.
            outputs, _ = train.apply_model(model, w_t, model_state, x_B, train=True, rng=rng)
            data_loss = losses.batch_loss(loss_name, outputs, y_B)
            return data_loss + 0.5 * weight_decay * tree.dot(w_t, w_t), data_loss

        (_, data_loss), grads = jax.value_and_grad(objective, has_aux=True)(bend)
        updates, opt_state = tx.update(grads, opt_state, bend)
        return (optax.apply_updates(bend, updates), opt_state), (data_loss, t)

    return jax.lax.scan(step, carry, (index_SxB, steps_S))


def fit_curve(model: nn.Module, model_state: PyTree, endpoint0: PyTree, endpoint1: PyTree, data,
              tx: optax.GradientTransformation, *, kind: str = "bezier", epochs: int, batch_size: int | None,
              weight_decay: float = 0.0, key: jax.Array, loss_name: str = "cross_entropy",
              bend: PyTree | None = None, epochs_per_call: int = 1, progress: bool = True,
              checkpoint_dir=None) -> tuple[PyTree, dict]:
    """Train the bend theta of a curve between fixed endpoints (Garipov et al. 2018, eq. 3).

    Each minibatch draws one t ~ U(0, 1) and takes an Optax step on theta for

        mean_{(x, y) in batch} loss(h(w(t), x), y) + weight_decay / 2 * ||w(t)||^2,

    the weight decay on the whole point w(t) (every leaf, biases included), as in the authors'
    code. The forward pass is ``train.apply_model(model, w(t), model_state, x, train=True)``:
    BatchNorm normalises by the batch and the updated statistics are discarded (recompute
    them along the curve with :class:`BatchStats`). Each epoch is one compiled ``lax.scan`` over
    the minibatches of a permutation of the training set, run by the library's one block runner
    (:func:`jaxdl.train.run_blocks`: the order from :func:`jaxdl.train.epoch_order`;
    the remainder that does not fill a batch is dropped, ``batch_size=None`` is full batch),
    each batch split over the devices that divide it (a ``'data'`` mesh axis, as in
    :func:`jaxdl.train.fit`), and a second curve of the same model, transformation object and
    shapes compiles nothing.

    Args:
      model: the Flax module; model_state: its non-parameter collections (``{}`` if none).
      endpoint0, endpoint1: the fixed endpoints w1, w2 (parameter pytrees of one structure).
      data: a :class:`jaxdl.data.Dataset`-like object with NumPy ``x_train``, ``y_train``.
      tx: the Optax transformation for theta.
      kind: ``'bezier'`` or ``'polychain'``.
      epochs, batch_size: as in :func:`jaxdl.train.fit`.
      weight_decay: the coefficient above (>= 0).
      key: PRNG key, split into the data-order, t and dropout streams.
      loss_name: a key of :data:`jaxdl.train.losses.PER_EXAMPLE_LOSSES`.
      bend: the starting theta (default :func:`init_bend`, the midpoint).
      epochs_per_call: epochs per compiled call (it must divide ``epochs``).
      progress: a tqdm bar over epochs.
      checkpoint_dir: save the bend, its optimizer state and the history after every call, and
        resume from the latest save to the same numbers.

    Returns:
      ``(bend, history)``: the trained theta and ``{'loss': (steps,), 't': (steps,)}`` NumPy
      arrays, the minibatch data loss (without weight decay) and t of each step.

    Raises:
      FloatingPointError naming the step when the loss becomes non-finite.
    """
    checks.one_of("kind", kind, sorted(CURVES))
    losses.check_loss_name(loss_name)
    weight_decay = checks.number("weight_decay", weight_decay, inclusive=True)
    checks.same_structure("endpoint1", endpoint1, endpoint0, "endpoint0")
    bend = init_bend(endpoint0, endpoint1) if bend is None else bend
    checks.same_structure("bend", bend, endpoint0, "endpoint0")
    plan = train.make_plan(data, batch_size, epochs)  # the devices dividing the batch, on a 'data' axis
    replicated = NamedSharding(plan.mesh, P())
    batch_sharding = NamedSharding(plan.mesh, P("data"))

    data_key, t_key, dropout_key = jax.random.split(key, 3)
    carry = jax.device_put((jax.tree.map(jnp.array, bend), tx.init(bend)), replicated)  # copies: donated
    x, y = jax.device_put((data.x_train, data.y_train), replicated)
    endpoints, model_state = jax.device_put(((endpoint0, endpoint1), model_state), replicated)

    def block(carry, index_SxB, steps_S):
        carry, (loss_S, t_S) = _curve_epoch(carry, endpoints, model_state, x, y, index_SxB, steps_S, t_key,
                                            dropout_key, weight_decay, model=model, tx=tx, kind=kind,
                                            loss_name=loss_name, batch_sharding=batch_sharding)
        return carry, {"loss": loss_S, "t": t_S}

    carry, history = train.run_blocks(block, carry, plan, [data_key], epochs=epochs, vmapped=False,
                                      step_series={"loss": "loss", "t": "t"}, epochs_per_call=epochs_per_call,
                                      progress=progress, desc=f"fit {kind} curve", checkpoint_dir=checkpoint_dir,
                                      what="curve loss", hint="lower the learning rate")
    return meshes.on_every_device(carry[0], plan.mesh), history


def _check_ts(ts) -> np.ndarray:
    ts = np.linspace(0.0, 1.0, 61) if ts is None else np.asarray(ts, np.float64)
    if ts.ndim != 1 or ts.size < 2 or not np.all(np.isfinite(ts)) or np.any(np.diff(ts) <= 0):
        checks.fail("ts", ts, "a strictly increasing 1-D array of at least 2 finite values")
    return ts


def _segment_lengths(point_fn, anchors, ts_T):
    """``||w(ts[i + 1]) - w(ts[i])||`` for i < T - 1, one point pair per ``lax.map`` step."""
    def length(pair):
        return tree.norm(tree.subtract(point_fn(anchors, pair[1:]), point_fn(anchors, pair[:1])))

    return jax.lax.map(length, jnp.stack([ts_T[:-1], ts_T[1:]], axis=1))


_segment_lengths_jit = jax.jit(_segment_lengths, static_argnums=0)


def curve_metrics(apply_fn: Callable | None, kind: str, endpoint0: PyTree, bend: PyTree, endpoint1: PyTree, batch, *,
                  ts=None, loss_name: str = "cross_entropy", chunk_size: int | None = None,
                  batch_stats: BatchStats | None = None) -> dict:
    """Metrics along a curve w(t), with their minimum, maximum, mean and length-weighted mean.

    The metrics at the T values ``ts`` (default ``np.linspace(0, 1, 61)``, strictly increasing)
    come from one jitted call (``lax.map`` over t, data in chunks inside). The curve is
    approximated by the polygon through the w(t_i), with segment lengths
    ``s_i = ||w(t_{i+1}) - w(t_i)||`` (in parameter space). Point i carries the arc length
    ``ell_i = (s_{i-1} + s_i) / 2`` (trapezoid rule, ``s_{-1} = s_{T-1} = 0``), and the
    length-weighted integral of a metric L is ``sum_i ell_i L_i / sum_i ell_i``, the mean of L
    over the curve by arc length (the plain mean when the curve has length 0).

    With ``batch_stats`` the statistics are recomputed at every t (Garipov et al. 2018), so t = 0
    and t = 1 reproduce the endpoints evaluated with their own recomputed statistics.

    Args:
      apply_fn, batch, loss_name, chunk_size, batch_stats: as in :func:`jaxdl.analysis.landscape.evaluate_params`.
      kind: ``'bezier'`` or ``'polychain'``; endpoint0, bend, endpoint1: w1, theta, w2.
      ts: the t values.

    Returns:
      NumPy values: ``{name: (T,)}`` per metric, ``'ts'`` (T,), ``'segment_lengths'`` (T - 1,),
      ``'arc_weights'`` (T,) (the ell_i), ``'length'`` (the polygon's length), and floats
      ``'<name>_min'``, ``'<name>_max'``, ``'<name>_mean'``, ``'<name>_integral'``.
    """
    checks.one_of("kind", kind, sorted(CURVES))
    _check_evaluation(apply_fn, batch, loss_name, chunk_size, batch_stats)
    checks.same_structure("bend", bend, endpoint0, "endpoint0")
    checks.same_structure("endpoint1", endpoint1, endpoint0, "endpoint0")
    ts = _check_ts(ts)
    anchors = (endpoint0, bend, endpoint1)
    ts_T = jnp.asarray(ts, coordinate_dtype(endpoint0))
    values = _evaluate_points(apply_fn, _POINT_FNS[kind], anchors, ts_T[:, None], batch, batch_stats,
                              loss_name=loss_name, chunk_size=chunk_size)
    segments = np.asarray(_segment_lengths_jit(_POINT_FNS[kind], anchors, ts_T), np.float64)
    weights = (np.concatenate([[0.0], segments]) + np.concatenate([segments, [0.0]])) / 2
    if weights.sum() <= 0:
        weights = np.ones_like(weights)
    result = {"ts": ts, "segment_lengths": segments, "arc_weights": weights, "length": float(segments.sum())}
    for name in losses.metric_names(loss_name):
        curve = np.asarray(values[name])
        result[name] = curve
        result.update({f"{name}_min": float(curve.min()), f"{name}_max": float(curve.max()),
                       f"{name}_mean": float(curve.mean()),
                       f"{name}_integral": float(np.sum(weights * curve) / np.sum(weights))})
    return result


def line_metrics(apply_fn: Callable | None, endpoint0: PyTree, endpoint1: PyTree, batch, *, ts=None,
                 loss_name: str = "cross_entropy", chunk_size: int | None = None,
                 batch_stats: BatchStats | None = None) -> dict:
    """:func:`curve_metrics` of the straight segment from ``endpoint0`` to ``endpoint1`` (the
    Bezier curve with the midpoint bend), the baseline a trained curve is compared against."""
    return curve_metrics(apply_fn, "bezier", endpoint0, init_bend(endpoint0, endpoint1), endpoint1, batch, ts=ts,
                         loss_name=loss_name, chunk_size=chunk_size, batch_stats=batch_stats)


def barrier(values_T) -> float:
    """The height of a path's loss barrier: the peak of ``values_T`` (the loss at T points from
    one end of the path to the other) above the higher of its two endpoints, ``max_t L(t) -
    max(L(0), L(1))`` (Garipov et al. 2018; Frankle et al. 2020). Negative when the path dips
    below both ends everywhere; 0 for a monotone path."""
    values_T = np.asarray(values_T, np.float64)
    if values_T.ndim != 1 or values_T.size < 2:
        checks.fail("values_T", values_T, "a 1-D array of at least 2 values")
    return float(values_T.max() - max(values_T[0], values_T[-1]))


def largest_rise(values_T) -> float:
    """``max_j (L_j - min_{i <= j} L_i)``: the largest increase of the loss along a path, 0 when
    it never rises (the "no bump on the straight path" of Goodfellow, Vinyals & Saxe 2015)."""
    values_T = np.asarray(values_T, np.float64)
    if values_T.ndim != 1 or values_T.size < 1:
        checks.fail("values_T", values_T, "a non-empty 1-D array")
    return float(np.max(values_T - np.minimum.accumulate(values_T)))
