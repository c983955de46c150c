"""The block runner: the one training loop of jaxdl, under every program that trains.

A training run is a sequence of *blocks* (``epochs_per_call`` epochs each), every block one call
of a compiled program. :func:`run_blocks` owns everything around those calls, so that every
trainer gets it from one place: the epoch plan and the minibatch order of each epoch
(:func:`make_plan`, :func:`epoch_order`), placement of the order and of the carried state on the
mesh, the per-step and per-epoch history, the stop on a non-finite loss, the evaluation cadence,
logging, the progress bar, and Orbax checkpoints with resume. The program itself is the caller's:
:func:`jaxdl.train.fit` and :func:`jaxdl.train.fit_seeds` run minibatch steps of a model (with
probes measured inside the program); :func:`jaxdl.course.width_sweep.fit_widths` the same over
masked widths; :func:`jaxdl.analysis.landscape.fit_curve` the steps of a curve's bend.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
from tqdm.auto import tqdm

from jaxdl.core import checks, meshes

__all__ = ["EpochPlan", "epoch_order", "make_plan", "run_blocks"]

PyTree = Any


@dataclasses.dataclass(frozen=True)
class EpochPlan:
    """Validated sizes and placement of one training run: ``num_train`` examples in
    ``steps_per_epoch`` batches of ``batch_size`` (``full_batch``: one batch of every example),
    split over the ``'data'`` axis of ``mesh``."""

    num_train: int
    batch_size: int
    steps_per_epoch: int
    full_batch: bool
    mesh: jax.sharding.Mesh


def make_plan(data, batch_size: int | None, epochs: int, mesh: jax.sharding.Mesh | None = None) -> EpochPlan:
    """``epochs`` and ``batch_size`` (None: full batch) checked against ``data`` and the mesh
    (default: the devices that divide the batch evenly, :func:`jaxdl.core.meshes.example_mesh`)."""
    num_train = int(data.x_train.shape[0])
    checks.integer("epochs", epochs)
    full_batch = batch_size is None
    batch_size = checks.integer("batch_size", num_train if full_batch else batch_size, maximum=num_train,
                                maximum_name="the number of training examples")
    # By default every local device that the batch splits over evenly (all of them when the
    # batch size is a multiple of their count).
    mesh = meshes.example_mesh(batch_size) if mesh is None else mesh
    num_devices = dict(mesh.shape).get("data", 1)
    if batch_size % num_devices:
        raise ValueError(f"batch_size={batch_size} must be divisible by the {num_devices} devices of the data mesh")
    return EpochPlan(num_train, batch_size, num_train // batch_size, full_batch, mesh)


def epoch_order(data_key, epoch: int, plan: EpochPlan) -> np.ndarray:
    """Example indices ``index_SxB`` for one epoch: a fresh permutation (the remainder that does
    not fill a batch is dropped), or data order for full-batch training.

    Drawn on the host with NumPy, seeded by the ``data`` key's words and the epoch, so it is a
    pure function of (seed, epoch): a resumed run sees the same order. A permutation on the
    host is cheap; the same with ``jax.random.permutation`` on a CPU costs more than the steps
    of a small model's epoch.
    """
    if plan.full_batch:
        return np.arange(plan.num_train, dtype=np.int32)[None]
    words = [int(w) for w in np.asarray(jax.random.key_data(data_key)).ravel()]
    perm = np.random.default_rng(words + [int(epoch)]).permutation(plan.num_train).astype(np.int32)
    return perm[: plan.steps_per_epoch * plan.batch_size].reshape(plan.steps_per_epoch, plan.batch_size)


def _host(tree):
    """NumPy copies of a pytree of arrays; arrays spread over the devices of several processes
    (seeds over a 'seeds' axis that spans hosts) are gathered from every process first."""
    def fetch(array):
        if getattr(array, "is_fully_addressable", True):
            return np.asarray(array)
        return np.asarray(multihost_utils.process_allgather(array, tiled=True))

    return jax.tree.map(fetch, tree)


def _resume(checkpoint_dir, epochs, carried, history, placement, epochs_per_call):
    """``(checkpointer, carried, history, start_epoch)``: the latest checkpoint in
    ``checkpoint_dir`` restored into ``carried`` and ``history`` (epoch 0 if there is none)."""
    from jaxdl.core.checkpoint import Checkpointer  # Orbax only for runs that checkpoint

    checkpointer = Checkpointer(checkpoint_dir)
    latest = checkpointer.latest_step()
    if latest is None:
        return checkpointer, carried, history, 0
    if latest > epochs:
        raise ValueError(f"checkpoint_dir {checkpoint_dir} holds epoch {latest}, past the requested "
                         f"epochs={epochs}; use a new checkpoint_dir or more epochs")
    if latest % epochs_per_call:
        raise ValueError(f"checkpoint_dir {checkpoint_dir} holds epoch {latest}, not a multiple of "
                         f"epochs_per_call={epochs_per_call}")
    restored = checkpointer.restore({"carried": carried, "history": history})
    # The saved history may be shorter than this run's (resuming with more epochs).
    for name, saved in restored["history"].items():
        saved = np.asarray(saved)
        kept = min(saved.shape[-1], history[name].shape[-1])
        history[name][..., :kept] = saved[..., :kept]
    return checkpointer, jax.device_put(restored["carried"], placement), history, latest


def _check_blocks(epochs, eval_every, epochs_per_call):
    checks.integer("eval_every", eval_every)
    epochs_per_call = checks.integer("epochs_per_call", epochs_per_call)
    if epochs % epochs_per_call or eval_every % epochs_per_call:
        raise ValueError(f"epochs_per_call={epochs_per_call} must divide epochs={epochs} and "
                         f"eval_every={eval_every}: programs run whole blocks of epochs")
    return epochs_per_call


def _epoch_history(metrics_shape, lead: tuple, epochs: int) -> np.ndarray:
    """NaNs of shape ``lead + (epochs,) + trailing`` for a metric of shape ``lead + trailing``."""
    trailing = tuple(metrics_shape.shape[len(lead):])
    return np.full(lead + (epochs,) + trailing, np.nan, np.float32)


def _record_epoch(array: np.ndarray, lead: tuple, epoch: int, value) -> None:
    array[(slice(None),) * len(lead) + (epoch,)] = value


def run_blocks(train_block: Callable, carried: PyTree, plan: EpochPlan, data_keys: Sequence, *, epochs: int,
               vmapped: bool, step_series: Mapping[str, str], evaluate: Callable | None = None,
               eval_every: int = 1, epochs_per_call: int = 1, first_epoch: int = 0, progress: bool = True,
               desc: str = "fit", logger=None, checkpoint_dir=None, what: str = "training loss",
               hint: str = "lower the learning rate or enable gradient clipping",
               seeds: Sequence[int] | None = None, after_evaluation: Callable | None = None) -> tuple[PyTree, dict]:
    """Run ``epochs`` epochs as blocks of ``epochs_per_call``, each one call of ``train_block``.

    Args:
      train_block: ``(carried, index, steps_S) -> (carried, step_values)``: the steps of one block
        on the minibatches ``index`` (``index_SxB`` rows of :func:`epoch_order`, or ``index_KxSxB``
        with ``vmapped``: one order per key of ``data_keys``), ``steps_S`` their global step numbers;
        ``step_values`` maps names to per-step values (shape ``(S,)``, ``(K, S)`` with ``vmapped``),
        among them ``'loss'``, checked for non-finite values after every block. It may donate
        ``carried``.
      carried: the state the program carries (already placed: seeds over the mesh's ``'seeds'``
        axis with ``vmapped``, else replicated); restored from a checkpoint when there is one.
      plan: the :class:`EpochPlan` (sizes and mesh); the orders are split over its ``'data'`` axis.
      data_keys: one PRNG key per run (K with ``vmapped``, else one) seeding its minibatch order.
      epochs, eval_every, epochs_per_call: as in :func:`jaxdl.train.fit`.
      step_series: ``{history name: step_values key}``, the per-step values kept in the history.
      evaluate: ``carried -> {name: value}`` (a compiled program), run after every block that ends
        on a multiple of ``eval_every`` epochs and after the last; values of shape ``lead +
        trailing`` fill ``history[name]`` of shape ``lead + (epochs,) + trailing`` (NaN between).
      first_epoch: the epoch number of the first epoch (it seeds the orders: a run that continues
        another one with the same keys sees fresh orders).
      progress, desc, logger: a tqdm bar over epochs; ``logger.log(step, epoch=..., **means)``
        after each evaluation.
      checkpoint_dir: with it, ``carried`` and the history are saved after every block, and a
        later run with the same arguments resumes from the latest save to the same numbers.
      what, hint, seeds: the words of the ``FloatingPointError`` raised at a non-finite loss.
      after_evaluation: ``(carried, metrics) -> (carried, done)``, called after each evaluation
        with its (host) metrics: it may change ``carried`` (e.g. freeze runs that reached a
        target) and ends the run early with ``done`` (the later epochs stay NaN in the history).

    Returns:
      ``(carried, history)``: the final carried state and the history (NumPy arrays).
    """
    epochs = checks.integer("epochs", epochs)
    epochs_per_call = _check_blocks(epochs, eval_every, epochs_per_call)
    data_keys = list(data_keys)
    lead = (len(data_keys),) if vmapped else ()
    replicated = NamedSharding(plan.mesh, P())
    placement = NamedSharding(plan.mesh, P("seeds")) if vmapped and "seeds" in plan.mesh.axis_names else replicated
    order_sharding = NamedSharding(plan.mesh, P("seeds", None, "data") if vmapped else P(None, "data"))

    total_steps = epochs * plan.steps_per_epoch
    history = {name: np.full(lead + (total_steps,), np.nan, np.float32) for name in step_series}
    metric_shapes = {} if evaluate is None else jax.eval_shape(evaluate, carried)
    history.update({name: _epoch_history(shape, lead, epochs) for name, shape in metric_shapes.items()})
    checkpointer, start_epoch = None, 0
    if checkpoint_dir is not None:
        checkpointer, carried, history, start_epoch = _resume(checkpoint_dir, epochs, carried, history, placement,
                                                              epochs_per_call)

    bar = tqdm(total=epochs, initial=start_epoch, desc=desc, disable=not progress, leave=False, unit="epoch")
    try:
        for block_start in range(start_epoch, epochs, epochs_per_call):
            block = range(block_start, block_start + epochs_per_call)
            orders = [np.concatenate([epoch_order(key, first_epoch + e, plan) for e in block]) for key in data_keys]
            order = np.stack(orders) if vmapped else orders[0]
            first_step, last_epoch = block_start * plan.steps_per_epoch, block[-1]
            steps_S = np.arange(first_step, first_step + order.shape[-2], dtype=np.int32)
            carried, step_values = train_block(carried, jax.device_put(order, order_sharding), steps_S)
            step_values = _host(step_values)
            checks.raise_if_not_finite(step_values["loss"], what=what, first_step=first_step,
                                       epoch=first_epoch + block_start, seeds=seeds if vmapped else None, hint=hint)
            for name, key in step_series.items():
                history[name][..., steps_S] = step_values[key]
            done = False
            if evaluate is not None and ((last_epoch + 1) % eval_every == 0 or last_epoch + 1 == epochs):
                metrics = _host(evaluate(carried))
                for name, value in metrics.items():
                    _record_epoch(history[name], lead, last_epoch, value)
                latest = {name: float(np.mean(value)) for name, value in metrics.items()}
                bar.set_postfix({k: f"{v:.4g}" for k, v in latest.items()}, refresh=False)
                if logger is not None:
                    logger.log(int((last_epoch + 1) * plan.steps_per_epoch), epoch=last_epoch + 1, **latest)
                if after_evaluation is not None:
                    carried, done = after_evaluation(carried, metrics)
            if checkpointer is not None:
                checkpointer.save(last_epoch + 1, {"carried": carried, "history": history})
            bar.update(epochs_per_call)
            if done:
                break
    finally:
        bar.close()
        if checkpointer is not None:
            checkpointer.close()
    return carried, history
