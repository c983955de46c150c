"""The fit loop: whole epochs as one ``lax.scan``, seeds as one ``vmap``, compiled once.

- :func:`fit` -- epochs of shuffled minibatches, each epoch one compiled ``lax.scan`` over a
  permutation of the training set kept on the device, batches sharded over the devices (of
  every process in a distributed run; one device is the same code path), progress bar,
  metrics log, Orbax checkpoints and resume,
  and a loud stop on a non-finite loss;
- :func:`fit_seeds` -- the same program ``vmap``ped over seeds (init and data order differ),
  the seeds spread over a ``'seeds'`` mesh axis;
- :func:`build_epoch_programs`, :func:`epoch_order` and :func:`make_plan` (an :class:`EpochPlan`) -- the
  pieces, for callers that drive epochs themselves.

The epoch and evaluation programs are module-level functions compiled by :func:`jaxdl.core.compiled.jit`
with the model, the Optax transformation and the options as static values: a second ``fit`` of
the same model with the same transformation object (``jaxdl.train.optim.get_optimizer`` returns the
same object for the same arguments), shapes and options compiles nothing.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Mapping, NamedTuple, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
from tqdm.auto import tqdm

from jaxdl.core import checks, compiled, meshes
from jaxdl.train import losses
from jaxdl.train.evaluation import evaluate
from jaxdl.train.probes import PREFIX, check_probes, init_probes, measure_probes
from jaxdl.train.state import (TrainState, init_state, init_states, make_apply_fn, make_train_step, seed_streams,
                               takes_train_flag)

__all__ = ["EpochPlan", "make_plan", "FitResult", "epoch_order", "build_block_programs", "build_epoch_programs", "fit",
           "fit_seeds"]

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


class FitResult(NamedTuple):
    """What :func:`fit` returns. For :func:`fit_seeds` every leaf has a leading seed axis K.

    ``history`` maps ``train_loss, test_loss[, train_accuracy, test_accuracy]`` to arrays of
    shape (epochs,) (after each epoch) and ``batch_loss`` to shape (epochs * steps_per_epoch,).
    ``initial_state`` is the state training started from (drawn from the seed's ``init``
    stream), e.g. the theta_0 of an initialisation-to-solution line.
    """

    state: TrainState
    history: dict
    initial_state: TrainState


def _check_data(model, data, loss_name):
    losses.check_loss_name(loss_name)
    if losses.is_classification(loss_name) and data.num_classes is None:
        raise ValueError(f"loss_name {loss_name!r} needs class labels but data set {data.name!r} is a regression set")
    if not losses.is_classification(loss_name) and data.num_classes is not None:
        raise ValueError(f"loss_name {loss_name!r} is a regression loss but data set {data.name!r} has class labels")
    two = jax.ShapeDtypeStruct((2,) + tuple(data.x_train.shape[1:]), data.x_train.dtype)
    mode = {"train": False} if takes_train_flag(model) else {}  # TypeError naming a module it cannot drive
    out = jax.eval_shape(lambda x: model.init_with_output(jax.random.key(0), x, **mode)[0], two)
    if losses.is_classification(loss_name):
        if out.ndim != 2 or out.shape[-1] != data.num_classes:
            raise ValueError(
                f"model outputs have shape {out.shape[1:]} per example but data set {data.name!r} "
                f"has {data.num_classes} classes: set the model's num_outputs={data.num_classes}")
    elif out.shape[1:] != data.y_train.shape[1:]:
        raise ValueError(f"model outputs have shape {out.shape[1:]} per example but y_train has "
                         f"{data.y_train.shape[1:]}")


def epoch_order(data_key, epoch: int, plan: EpochPlan) -> np.ndarray:
    """Example indices ``index_SxB`` for one epoch: a fresh permutation (the remainder that does
    not fill a batch is dropped), or data order for full-batch training.

    Drawn on the host with NumPy, seeded by the ``data`` key's words and the epoch, so it is a
    pure function of (seed, epoch): a resumed run sees the same order. A permutation on the
    host costs microseconds; the same with ``jax.random.permutation`` on a CPU costs more than
    the steps of a small model's epoch.
    """
    if plan.full_batch:
        return np.arange(plan.num_train, dtype=np.int32)[None]
    words = [int(w) for w in np.asarray(jax.random.key_data(data_key)).ravel()]
    perm = np.random.default_rng(words + [int(epoch)]).permutation(plan.num_train).astype(np.int32)
    return perm[: plan.steps_per_epoch * plan.batch_size].reshape(plan.steps_per_epoch, plan.batch_size)


def _block(state, probe_states, x, y, index_SxB, steps_S, probe_batch, model, tx, loss_name, sharding, probes,
           probe_every, regularizer):
    """S training steps as one ``lax.scan`` (one or several epochs), with the probes measured
    before every step whose number in ``steps_S`` is a multiple of ``probe_every``."""
    train_step = make_train_step(model, tx, loss_name, regularizer)
    if index_SxB.size <= x.shape[0]:
        # At most an epoch's worth of examples: one gather for the whole block, then a scan
        # over ready batches, cheaper than a gather inside every step.
        batches = (x[index_SxB], y[index_SxB])
        if sharding is not None:
            batches = jax.lax.with_sharding_constraint(batches, sharding)
        get_batch = lambda batch: batch
    else:
        # Several epochs (full-batch descent: many steps on the same examples): one batch at a
        # time, so memory stays that of one batch, not of S batches.
        batches = index_SxB

        def get_batch(index_B):
            batch = (x[index_B], y[index_B])
            if sharding is not None:
                batch = jax.lax.with_sharding_constraint(batch, NamedSharding(sharding.mesh, P("data")))
            return batch

    if not probes:
        state, metrics = jax.lax.scan(lambda state, batch: train_step(state, get_batch(batch)), state, batches)
        return state, probe_states, metrics

    def step(carry, inputs):
        state, probe_states = carry
        batch, step_number = inputs
        batch = get_batch(batch)
        # The step numbers come from the host, unbatched, so that under vmap over seeds the
        # condition stays a branch (a batched one would run every probe at every step).
        probe_states, values = measure_probes(probes, probe_states, model, loss_name, state, probe_batch,
                                              step_number % probe_every == 0)
        state, metrics = train_step(state, batch)
        return (state, probe_states), {**metrics, **values}

    (state, probe_states), metrics = jax.lax.scan(step, (state, probe_states), (batches, steps_S))
    return state, probe_states, metrics


@functools.partial(compiled.jit, donate_argnames=("state", "probe_states"))
def _train_block(state, probe_states, x, y, index_SxB, steps_S, probe_batch, *, model, tx, loss_name, sharding,
                 probes, probe_every, regularizer):
    return _block(state, probe_states, x, y, index_SxB, steps_S, probe_batch, model, tx, loss_name, sharding, probes,
                  probe_every, regularizer)


@functools.partial(compiled.jit, donate_argnames=("state", "probe_states"))
def _train_block_seeds(state, probe_states, x, y, index_KxSxB, steps_S, probe_batch, *, model, tx, loss_name, sharding,
                       probes, probe_every, regularizer):
    # The seed axis is the mesh's 'seeds' axis (spmd_axis_name): each seed's batches, constrained
    # to P(None, 'data') inside, land on its own row of devices.
    spmd_axis = "seeds" if sharding is not None and "seeds" in sharding.mesh.axis_names else None
    return jax.vmap(lambda s, p, i: _block(s, p, x, y, i, steps_S, probe_batch, model, tx, loss_name, sharding, probes,
                                           probe_every, regularizer),
                    spmd_axis_name=spmd_axis)(state, probe_states, index_KxSxB)


def _metrics_of_splits(state, x_train, y_train, x_test, y_test, model, loss_name, chunk_size):
    apply_fn = make_apply_fn(model, state.model_state)
    metrics = {}
    for split, batch in {"train": (x_train, y_train), "test": (x_test, y_test)}.items():
        for name, value in evaluate(apply_fn, state.params, batch, loss_name=loss_name, chunk_size=chunk_size).items():
            metrics[f"{split}_{name}"] = value
    return metrics


@compiled.jit
def _evaluate_splits(state, x_train, y_train, x_test, y_test, *, model, loss_name, chunk_size):
    return _metrics_of_splits(state, x_train, y_train, x_test, y_test, model, loss_name, chunk_size)


@compiled.jit
def _evaluate_splits_seeds(state, x_train, y_train, x_test, y_test, *, model, loss_name, chunk_size):
    return jax.vmap(lambda s: _metrics_of_splits(s, x_train, y_train, x_test, y_test, model, loss_name,
                                                 chunk_size))(state)


def build_block_programs(model, tx, loss_name, plan: EpochPlan, chunk_size: int = 2048, vmapped: bool = False,
                         probes: Mapping[str, Any] | None = None, probe_every: int = 1, regularizer=None):
    """The two compiled phases of :func:`fit`, for callers that drive training themselves.

    Returns ``train_block(state, probe_states, x, y, index_SxB, steps_S, probe_batch) -> (state,
    probe_states, step_metrics)`` -- S steps on the minibatches ``x[index_SxB]`` (rows from
    :func:`epoch_order`, one or several epochs), the probes measured before each step whose
    number in ``steps_S`` is a multiple of ``probe_every``; ``state`` and ``probe_states`` are
    donated -- and ``eval_both(state, x_train, y_train, x_test, y_test) -> metrics`` (data-set
    means in chunks of ``chunk_size`` examples). With ``vmapped`` both map over a leading seed
    axis of ``state``, ``probe_states`` and ``index_SxB``. Both are module-level compiled
    programs: building them again for the same model, transformation and options compiles nothing.
    ``regularizer`` is added to the training loss (see :func:`make_train_step`).
    """
    losses.check_loss_name(loss_name)
    checks.integer("chunk_size", chunk_size)
    probes = check_probes(probes)
    probe_every = checks.integer("probe_every", probe_every)
    if regularizer is not None and not callable(regularizer):
        checks.fail("regularizer", regularizer, "None or a callable regularizer(loss_fn, params, batch)")
    options = dict(model=model, tx=tx, loss_name=loss_name, probes=probes, probe_every=probe_every,
                   regularizer=regularizer)
    evaluation = dict(model=model, loss_name=loss_name, chunk_size=int(chunk_size))
    # Steps on axis 0, the batch split over the mesh's 'data' axis (under vmap over seeds, the
    # seed axis goes on 'seeds' first).
    sharding = NamedSharding(plan.mesh, P(None, "data"))
    if vmapped:
        return (functools.partial(_train_block_seeds, sharding=sharding, **options),
                functools.partial(_evaluate_splits_seeds, **evaluation))
    return (functools.partial(_train_block, sharding=sharding, **options),
            functools.partial(_evaluate_splits, **evaluation))


def build_epoch_programs(model, tx, loss_name, plan: EpochPlan, chunk_size: int = 2048, vmapped: bool = False):
    """:func:`build_block_programs` without probes, the training program as
    ``train_epoch(state, x, y, index_SxB) -> (state, step_metrics)``."""
    train_block, eval_both = build_block_programs(model, tx, loss_name, plan, chunk_size, vmapped)

    def train_epoch(state, x, y, index_SxB):
        steps_S = np.arange(index_SxB.shape[-2], dtype=np.int32)
        state, _, metrics = train_block(state, {}, x, y, index_SxB, steps_S, None)
        return state, metrics

    return train_epoch, eval_both


def _host(tree):
    """NumPy copies of a pytree of arrays; arrays spread over the devices of several processes
    (seeds over a 'seeds' axis that spans hosts) are gathered from every process first."""
    def fetch(array):
        if getattr(array, "is_fully_addressable", True):
            return np.asarray(array)
        return np.asarray(multihost_utils.process_allgather(array, tiled=True))

    return jax.tree.map(fetch, tree)


def _resume(checkpoint_dir, epochs, carried, history, placement):
    """``(checkpointer, carried, history, start_epoch)``: the latest checkpoint in
    ``checkpoint_dir`` restored into ``carried`` (the train and probe states) and ``history``
    (epoch 0 if there is none)."""
    from jaxdl.core.checkpoint import Checkpointer

    checkpointer = Checkpointer(checkpoint_dir)
    latest = checkpointer.latest_step()
    if latest is None:
        return checkpointer, carried, history, 0
    if latest > epochs:
        raise ValueError(f"checkpoint_dir {checkpoint_dir} holds epoch {latest}, past the requested "
                         f"epochs={epochs}; use a new checkpoint_dir or more epochs")
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


def _fit(model, data, tx, *, seeds, vmapped, epochs, batch_size, loss_name, chunk_size, eval_every, epochs_per_call,
         probes, probe_every, probe_batch, regularizer, progress, logger, checkpoint_dir, mesh, desc):
    _check_data(model, data, loss_name)
    plan = make_plan(data, batch_size, epochs, mesh)
    epochs_per_call = _check_blocks(epochs, eval_every, epochs_per_call)
    train_block, eval_both = build_block_programs(model, tx, loss_name, plan, chunk_size, vmapped, probes, probe_every,
                                                  regularizer)
    probes = check_probes(probes)
    replicated = NamedSharding(plan.mesh, P())
    x_train, y_train, x_test, y_test = meshes.place_data(data, plan.mesh)
    probe_batch = (x_train, y_train) if probe_batch is None else jax.device_put(probe_batch, replicated)

    init_keys, data_keys = seed_streams(np.asarray(seeds, np.uint32))
    example = x_train[:1]
    initial = init_states(model, tx, example, init_keys) if vmapped else init_state(model, tx, example, init_keys[0])
    init_fn = jax.vmap(lambda p: init_probes(probes, p)) if vmapped else lambda p: init_probes(probes, p)
    # Committed to the mesh up front (seeds over 'seeds', when vmapped), so the first call
    # compiles the same program as the rest; a copy, because the training program donates
    # (overwrites) the state it is given.
    placement = NamedSharding(plan.mesh, P("seeds")) if vmapped and "seeds" in plan.mesh.axis_names else replicated
    order_sharding = NamedSharding(plan.mesh, P("seeds", None, "data") if vmapped else P(None, "data"))
    carried = jax.device_put((jax.tree.map(jnp.array, initial), init_fn(initial.params)), placement)

    lead, total_steps = ((len(seeds),) if vmapped else ()), epochs * plan.steps_per_epoch
    metric_names = [f"{split}_{name}" for name in losses.metric_names(loss_name) for split in ("train", "test")]
    history = {name: np.full(lead + (epochs,), np.nan, np.float32) for name in metric_names}
    for name in ["batch_loss"] + [PREFIX + name for name in probes]:
        history[name] = np.full(lead + (total_steps,), np.nan, np.float32)
    checkpointer, start_epoch = None, 0
    if checkpoint_dir is not None:
        checkpointer, carried, history, start_epoch = _resume(checkpoint_dir, epochs, carried, history, placement)
        if start_epoch % epochs_per_call:
            raise ValueError(f"checkpoint_dir {checkpoint_dir} holds epoch {start_epoch}, not a multiple of "
                             f"epochs_per_call={epochs_per_call}")

    bar = tqdm(total=epochs, initial=start_epoch, desc=desc, disable=not progress, leave=False, unit="epoch")
    for first_epoch in range(start_epoch, epochs, epochs_per_call):
        block = range(first_epoch, first_epoch + epochs_per_call)
        order = np.stack([np.concatenate([epoch_order(k, e, plan) for e in block]) for k in data_keys])
        first_step, last_epoch = first_epoch * plan.steps_per_epoch, block[-1]
        steps_S = np.arange(first_step, first_step + order.shape[1], dtype=np.int32)
        state, probe_states = carried
        order = jax.device_put(order if vmapped else order[0], order_sharding)
        state, probe_states, step_metrics = train_block(state, probe_states, x_train, y_train, order, steps_S,
                                                        probe_batch)
        carried = (state, probe_states)
        step_metrics = _host(step_metrics)
        batch_loss = step_metrics["loss"]
        checks.raise_if_not_finite(batch_loss, what="training loss", first_step=first_step, epoch=first_epoch,
                                   seeds=seeds if vmapped else None,
                                   hint="lower the learning rate or enable gradient clipping")
        for name in ["batch_loss"] + [PREFIX + name for name in probes]:
            history[name][..., steps_S] = step_metrics["loss" if name == "batch_loss" else name]
        if (last_epoch + 1) % eval_every == 0 or last_epoch + 1 == epochs:
            eval_metrics = _host(eval_both(state, x_train, y_train, x_test, y_test))
            for name in metric_names:
                history[name][..., last_epoch] = eval_metrics[name]
            latest = {name: float(np.mean(history[name][..., last_epoch])) for name in metric_names}
            bar.set_postfix({k: f"{v:.4g}" for k, v in latest.items()}, refresh=False)
            if logger is not None:
                logger.log(int((last_epoch + 1) * plan.steps_per_epoch), epoch=last_epoch + 1, **latest)
        if checkpointer is not None:
            checkpointer.save(last_epoch + 1, {"carried": carried, "history": history})
        bar.update(epochs_per_call)
    bar.close()
    if checkpointer is not None:
        checkpointer.close()
    final, initial = meshes.on_every_device((carried[0], initial), plan.mesh)
    return FitResult(final, history, initial)


_FIT_DOC = """Train ``model`` on ``data`` (a :class:`jaxdl.data.Dataset`) with the Optax ``tx``.

    Each epoch is a ``lax.scan`` over ``num_train // batch_size`` minibatches of a fresh
    permutation (the remainder is dropped); ``batch_size=None`` is full-batch gradient descent
    in data order. One compiled call runs ``epochs_per_call`` epochs (for full-batch descent,
    that many steps). Batches are sharded over ``mesh`` (default: a ``'data'`` axis over the
    devices of every process, as many as divide ``batch_size`` evenly -- all of them for a
    multiple of their count; an explicit ``mesh`` must divide it). ``data`` may be spread over the
    processes of a distributed run (:func:`jaxdl.data.spread_over_processes`: each process holds its
    rows); the batch must then split over every device. Train and test metrics are evaluated on
    the device in chunks of ``chunk_size`` examples every ``eval_every`` epochs and after the
    last (the history holds NaN for the epochs in between) and logged (``logger.log(step, **metrics)``). With
    ``checkpoint_dir`` every call is checkpointed; a later call with the same arguments resumes
    there and produces the same numbers as an uninterrupted run. A second call with the same
    model, transformation object, data shapes and options compiles nothing.

    ``probes`` (``{name: probe}``, see :mod:`jaxdl.train.probes`) are measured inside the
    compiled program before every step whose number is a multiple of ``probe_every``, on
    ``probe_batch`` (default the whole training set ``(x_train, y_train)``); their values are
    ``history['probe/<name>']``, one entry per step, NaN where not measured. ``regularizer``
    (e.g. :class:`jaxdl.analysis.implicit.SGDRegularizer`) is added to the training loss of every step;
    ``history['batch_loss']`` stays the data loss.

    Raises ``FloatingPointError`` naming the step when the loss becomes non-finite.
    """


def fit(model: nn.Module, data, tx: optax.GradientTransformation, *, epochs: int, batch_size: int | None = None,
        loss_name: str = "cross_entropy", seed: int = 0, chunk_size: int = 2048, eval_every: int = 1,
        epochs_per_call: int = 1, probes: Mapping[str, Any] | None = None, probe_every: int = 1, probe_batch=None,
        regularizer=None, progress: bool = True, logger=None, checkpoint_dir=None, mesh=None) -> FitResult:
    return _fit(model, data, tx, seeds=[seed], vmapped=False, epochs=epochs, batch_size=batch_size,
                loss_name=loss_name, chunk_size=chunk_size, eval_every=eval_every, epochs_per_call=epochs_per_call,
                probes=probes, probe_every=probe_every, probe_batch=probe_batch, regularizer=regularizer,
                progress=progress, logger=logger, checkpoint_dir=checkpoint_dir, mesh=mesh,
                desc=f"fit {type(model).__name__}")


fit.__doc__ = _FIT_DOC


def fit_seeds(model: nn.Module, data, tx: optax.GradientTransformation, *, seeds: Sequence[int], epochs: int,
              batch_size: int | None = None, loss_name: str = "cross_entropy", chunk_size: int = 2048,
              eval_every: int = 1, epochs_per_call: int = 1, probes: Mapping[str, Any] | None = None,
              probe_every: int = 1, probe_batch=None, regularizer=None, progress: bool = True, logger=None,
              checkpoint_dir=None) -> FitResult:
    """:func:`fit` for several seeds as ONE ``vmap``ped program; every leaf of the result (and
    of the history) has a leading axis of ``len(seeds)``. Seed ``s`` gives the same numbers as
    ``fit(..., seed=s)`` up to floating-point reassociation.

    Over several devices the seed axis is sharded over a ``'seeds'`` mesh axis and each seed's
    batch over ``'data'`` (:func:`jaxdl.core.meshes.seeds_mesh`: K seeds on K devices side by side, the rest of
    the devices splitting batches); the numbers are those of one device up to reassociation.
    """
    seeds = list(seeds)
    if not seeds:
        raise ValueError("seeds must name at least one seed, got []")
    mesh = meshes.seeds_mesh(len(seeds), int(data.x_train.shape[0]) if batch_size is None else batch_size)
    return _fit(model, data, tx, seeds=seeds, vmapped=True, epochs=epochs, batch_size=batch_size,
                loss_name=loss_name, chunk_size=chunk_size, eval_every=eval_every, epochs_per_call=epochs_per_call,
                probes=probes, probe_every=probe_every, probe_batch=probe_batch, regularizer=regularizer,
                progress=progress, logger=logger, checkpoint_dir=checkpoint_dir, mesh=mesh,
                desc=f"fit {type(model).__name__} x{len(seeds)} seeds")
