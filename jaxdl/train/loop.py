"""The fit loop: whole epochs as one ``lax.scan``, seeds as one ``vmap``, compiled once.

- :func:`fit` -- epochs of shuffled minibatches, each block of epochs one compiled ``lax.scan``
  over permutations of the training set kept on the device, batches sharded over the devices
  (of every process in a distributed run; one device is the same code path), from a fresh
  initialisation or a given state;
- :func:`fit_seeds` -- the same program ``vmap``ped over seeds (init and data order differ),
  the seeds spread over a ``'seeds'`` mesh axis;
- :class:`FitOptions` -- their options, one frozen record;
- :func:`build_block_programs`, :func:`build_epoch_programs` -- the compiled programs, for
  callers that drive blocks themselves through :func:`jaxdl.train.driver.run_blocks`, which owns
  the loop around them (history, the non-finite stop, evaluation, logging, progress,
  checkpoints and resume).

The block and evaluation programs are module-level functions compiled by :func:`jaxdl.core.compiled.jit`
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
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jaxdl.core import checks, compiled, meshes
from jaxdl.models.nnx_bridge import as_linen
from jaxdl.train import losses
from jaxdl.train.driver import EpochPlan, make_plan, run_blocks
from jaxdl.train.evaluation import evaluate
from jaxdl.train.probes import PREFIX, check_probes, init_probes, measure_probes
from jaxdl.train.state import (TrainState, init_state, init_states, make_apply_fn, make_train_step, seed_streams,
                               takes_train_flag)

__all__ = ["FitOptions", "FitResult", "build_block_programs", "build_epoch_programs", "fit", "fit_seeds", "train_model"]

PyTree = Any


class FitResult(NamedTuple):
    """What :func:`fit` returns. For :func:`fit_seeds` every leaf has a leading seed axis K.

    ``history`` maps ``train_loss, test_loss[, train_accuracy, test_accuracy]`` to arrays of
    shape (epochs,) (after each epoch) and ``batch_loss`` to shape (epochs * steps_per_epoch,).
    ``initial_state`` is the state training started from (drawn from the seed's ``init``
    stream), e.g. the theta_0 of an initialisation-to-solution line. ``snapshots`` (with
    ``snapshot_every`` = k, else None) is a pytree like the parameters whose leaves have a leading
    axis T = ceil(total steps / k): row j holds the parameters before step j k (row 0 the
    initialisation; the final parameters are ``state.params``), written inside the compiled loop.
    ``steps_to_target`` (with ``target_train_loss``, else None; shape (K,) for :func:`fit_seeds`,
    () for :func:`fit`) holds the steps after which each run's train loss was first evaluated at
    or below the target, -1 for a run that never got there.
    """

    state: TrainState
    history: dict
    initial_state: TrainState
    snapshots: PyTree = None
    steps_to_target: np.ndarray | None = None


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


def _save_snapshot(snapshots, params, step_number, every):
    """``snapshots`` (leaves ``(T, ...)``) with ``params`` written at row ``step_number // every``
    when ``step_number`` is a multiple of ``every``, else unchanged (a ``lax.cond``)."""
    def write(buffers):
        return jax.tree.map(lambda buffer, leaf: jax.lax.dynamic_update_index_in_dim(
            buffer, leaf.astype(buffer.dtype), step_number // every, 0), buffers, params)

    return jax.lax.cond(step_number % every == 0, write, lambda buffers: buffers, snapshots)


def _block(state, probe_states, x, y, index_SxB, steps_S, probe_batch, model, tx, loss_name, sharding, probes,
           probe_every, regularizer, snapshots=None, snapshot_every=None, active=None):
    """S training steps as one ``lax.scan`` (one or several epochs), with the probes measured
    before every step whose number in ``steps_S`` is a multiple of ``probe_every`` and, with
    ``snapshot_every``, the parameters written into ``snapshots`` before every step whose number
    is a multiple of it. With ``active`` (a boolean scalar) False, every step keeps the state as
    it was (a run frozen at its target loss)."""
    train_step = make_train_step(model, tx, loss_name, regularizer)
    if active is not None:
        update = train_step

        def train_step(state, batch):
            new_state, metrics = update(state, batch)
            return jax.tree.map(lambda new, old: jnp.where(active, new, old), new_state, state), metrics
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

    if not probes and snapshot_every is None:
        state, metrics = jax.lax.scan(lambda state, batch: train_step(state, get_batch(batch)), state, batches)
        return state, probe_states, metrics

    def step(carry, inputs):
        state, probe_states, snapshots = carry
        batch, step_number = inputs
        batch = get_batch(batch)
        # The step numbers come from the host, unbatched, so that under vmap over seeds the
        # conditions stay branches (a batched one would run every probe at every step).
        values = {}
        if probes:
            probe_states, values = measure_probes(probes, probe_states, model, loss_name, state, probe_batch,
                                                  step_number % probe_every == 0)
        if snapshot_every is not None:
            snapshots = _save_snapshot(snapshots, state.params, step_number, snapshot_every)
        state, metrics = train_step(state, batch)
        return (state, probe_states, snapshots), {**metrics, **values}

    (state, probe_states, snapshots), metrics = jax.lax.scan(step, (state, probe_states, snapshots),
                                                             (batches, steps_S))
    if snapshot_every is None:
        return state, probe_states, metrics
    return state, probe_states, metrics, snapshots


@functools.partial(compiled.jit, donate_argnames=("state", "probe_states", "snapshots"))
def _train_block(state, probe_states, x, y, index_SxB, steps_S, probe_batch, snapshots=None, active=None, *, model, tx,
                 loss_name, sharding, probes, probe_every, regularizer, snapshot_every=None):
    return _block(state, probe_states, x, y, index_SxB, steps_S, probe_batch, model, tx, loss_name, sharding, probes,
                  probe_every, regularizer, snapshots, snapshot_every, active)


@functools.partial(compiled.jit, donate_argnames=("state", "probe_states", "snapshots"))
def _train_block_seeds(state, probe_states, x, y, index_KxSxB, steps_S, probe_batch, snapshots=None, active=None, *,
                       model, tx, loss_name, sharding, probes, probe_every, regularizer, snapshot_every=None):
    # The seed axis is the mesh's 'seeds' axis (spmd_axis_name): each seed's batches, constrained
    # to P(None, 'data') inside, land on its own row of devices.
    spmd_axis = "seeds" if sharding is not None and "seeds" in sharding.mesh.axis_names else None
    return jax.vmap(lambda s, p, i, t, a: _block(s, p, x, y, i, steps_S, probe_batch, model, tx, loss_name, sharding,
                                                 probes, probe_every, regularizer, t, snapshot_every, a),
                    spmd_axis_name=spmd_axis)(state, probe_states, index_KxSxB, snapshots, active)


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
                         probes: Mapping[str, Any] | None = None, probe_every: int = 1, regularizer=None,
                         snapshot_every: int | None = None):
    """The two compiled phases of :func:`fit`, for callers that drive training themselves.

    Returns ``train_block(state, probe_states, x, y, index_SxB, steps_S, probe_batch) -> (state,
    probe_states, step_metrics)`` -- S steps on the minibatches ``x[index_SxB]`` (rows from
    :func:`epoch_order`, one or several epochs), the probes measured before each step whose
    number in ``steps_S`` is a multiple of ``probe_every``; ``state`` and ``probe_states`` are
    donated -- and ``eval_both(state, x_train, y_train, x_test, y_test) -> metrics`` (data-set
    means in chunks of ``chunk_size`` examples). With ``vmapped`` both map over a leading seed
    axis of ``state``, ``probe_states`` and ``index_SxB``. Both are module-level compiled
    programs: building them again for the same model, transformation and options compiles nothing.
    ``regularizer`` is added to the training loss (see :func:`make_train_step`). With
    ``snapshot_every`` = k, ``train_block`` takes one more argument, ``snapshots`` (a pytree like
    the parameters with a leading axis T, donated), writes the parameters into row ``n // k``
    before every step n that is a multiple of k, and returns it fourth. ``train_block`` also takes
    ``active`` (a boolean, one per seed with ``vmapped``; keyword or after ``snapshots``): where
    False, the steps leave the state unchanged.
    """
    losses.check_loss_name(loss_name)
    model = as_linen(model)
    checks.integer("chunk_size", chunk_size)
    probes = check_probes(probes)
    probe_every = checks.integer("probe_every", probe_every)
    if regularizer is not None and not callable(regularizer):
        checks.fail("regularizer", regularizer, "None or a callable regularizer(loss_fn, params, batch)")
    if snapshot_every is not None:
        snapshot_every = checks.integer("snapshot_every", snapshot_every)
    options = dict(model=model, tx=tx, loss_name=loss_name, probes=probes, probe_every=probe_every,
                   regularizer=regularizer, snapshot_every=snapshot_every)
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


@dataclasses.dataclass(frozen=True)
class FitOptions:
    """The options of :func:`fit` and :func:`fit_seeds`, one frozen record (passed to them as
    keywords; an unknown name is a ``TypeError``).

    Attributes:
      epochs: passes over the training set (for ``batch_size=None``, full-batch steps).
      batch_size: examples per minibatch; None is full-batch gradient descent in data order.
      loss_name: ``'cross_entropy'``, ``'mse'`` or ``'half_mse'``.
      chunk_size: examples per chunk of the train and test evaluations.
      eval_every: evaluate every this many epochs, and after the last.
      epochs_per_call: epochs per compiled call (it must divide ``epochs`` and ``eval_every``).
      probes, probe_every, probe_batch: ``{name: probe}`` (:mod:`jaxdl.train.probes`) measured
        inside the program before every step whose number is a multiple of ``probe_every``, on
        ``probe_batch`` (default the training set).
      regularizer: added to the training loss of every step (e.g.
        :class:`jaxdl.analysis.implicit.SGDRegularizer`); ``history['batch_loss']`` stays the data loss.
      progress, logger: a tqdm bar over epochs; ``logger.log(step, **metrics)`` after each evaluation.
      snapshot_every: save the parameters inside the compiled loop before every step whose
        number is a multiple of it (``FitResult.snapshots``; e.g. a trajectory's iterates for
        :func:`jaxdl.analysis.landscape.trajectory_plane`); None saves none. The rows are
        carried with the state, so a run resumed from ``checkpoint_dir`` keeps them (resume with
        the same ``epochs``: the number of rows depends on it).
      checkpoint_dir: save after every call and resume from the latest save.
      mesh: the devices of the ``'data'`` axis (default: those that divide ``batch_size``);
        :func:`fit_seeds` builds a ``('seeds', 'data')`` mesh when None.
      target_train_loss: train each run until its train loss (the full training set, evaluated
        every ``eval_every`` epochs) is at or below it, then freeze it: inside the compiled
        program its later steps leave its state unchanged (the other seeds of a
        :func:`fit_seeds` train on), and training ends once every run is frozen (the later
        epochs stay NaN in the history). ``FitResult.steps_to_target`` records when each got
        there (Jiang et al. 2020 train every network to cross-entropy 0.01). None trains for
        ``epochs``.
    """

    epochs: int
    batch_size: int | None = None
    loss_name: str = "cross_entropy"
    chunk_size: int = 2048
    eval_every: int = 1
    epochs_per_call: int = 1
    probes: Mapping[str, Any] | None = None
    probe_every: int = 1
    probe_batch: Any = None
    regularizer: Any = None
    progress: bool = True
    logger: Any = None
    checkpoint_dir: Any = None
    mesh: jax.sharding.Mesh | None = None
    snapshot_every: int | None = None
    target_train_loss: float | None = None

    @classmethod
    def parse(cls, where: str, options: Mapping[str, Any]) -> "FitOptions":
        """The options given as keywords to ``where``; ``TypeError`` naming an unknown one, or a
        missing ``epochs``."""
        checks.known_options(where, options, [field.name for field in dataclasses.fields(cls)])
        if "epochs" not in options:
            raise TypeError(f"{where} needs epochs=<number of epochs>")
        checks.number("target_train_loss", options.get("target_train_loss"), allow_none=True)
        return cls(**options)


def _check_initial_state(initial_state, fresh, num_seeds: int | None) -> TrainState:
    """``initial_state`` checked against the state a fresh initialisation would give (same
    structure and, per seed, the same shapes)."""
    if not isinstance(initial_state, TrainState):
        checks.fail("initial_state", type(initial_state).__name__, "a jaxdl.train.TrainState (e.g. result.state)")
    if jax.tree.structure(initial_state) != jax.tree.structure(fresh):
        raise ValueError(f"initial_state must have the structure of the model's state: "
                         f"{jax.tree.structure(initial_state)} != {jax.tree.structure(fresh)}")
    for leaf, expected in zip(jax.tree.leaves(initial_state), jax.tree.leaves(fresh)):
        shape = tuple(expected.shape) if num_seeds is None else (num_seeds,) + tuple(expected.shape)
        if tuple(jnp.shape(leaf)) != shape:
            raise ValueError(f"initial_state has a leaf of shape {tuple(jnp.shape(leaf))} where the model's state "
                             f"has {shape}" + ("" if num_seeds is None else f" ({num_seeds} seeds first)"))
    return initial_state


def train_model(model: nn.Module, data, tx: optax.GradientTransformation, options: FitOptions, *, seeds, vmapped: bool,
                initial_state: TrainState | None = None, data_keys=None, desc: str | None = None) -> FitResult:
    """The body of :func:`fit` (one seed) and :func:`fit_seeds` (``vmapped``): the block and
    evaluation programs of ``model``, run by :func:`jaxdl.train.driver.run_blocks`.

    ``seeds`` name the runs (their init keys draw the start unless ``initial_state`` is given);
    ``data_keys`` (one per run) override the seeds' minibatch-order keys, for trainers whose runs
    share orders (a width sweep: every width of a seed sees that seed's batches).
    """
    model = as_linen(model)
    _check_data(model, data, options.loss_name)
    seeds = list(seeds)
    make = getattr(model, "make", None)  # an NNX model: named after its class
    name = type(model).__name__ if make is None else getattr(getattr(make, "func", make), "__name__", "NNXModule")
    mesh = options.mesh
    if mesh is None and vmapped:
        mesh = meshes.seeds_mesh(len(seeds), int(data.x_train.shape[0]) if options.batch_size is None
                                 else options.batch_size)
    plan = make_plan(data, options.batch_size, options.epochs, mesh)
    train_block, eval_both = build_block_programs(model, tx, options.loss_name, plan, options.chunk_size, vmapped,
                                                  options.probes, options.probe_every, options.regularizer,
                                                  options.snapshot_every)
    probes = check_probes(options.probes)
    replicated = NamedSharding(plan.mesh, P())
    x_train, y_train, x_test, y_test = meshes.place_data(data, plan.mesh)
    probe_batch = ((x_train, y_train) if options.probe_batch is None
                   else jax.device_put(options.probe_batch, replicated))

    init_keys, seed_data_keys = seed_streams(np.asarray(seeds, np.uint32))
    data_keys = seed_data_keys if data_keys is None else data_keys
    example = x_train[:1]
    draw = (lambda: init_states(model, tx, example, init_keys)) if vmapped else (
        lambda: init_state(model, tx, example, init_keys[0]))
    if initial_state is None:
        initial = draw()
    else:
        fresh = jax.eval_shape(lambda x, key: init_state(model, tx, x, key), example, init_keys[0])
        initial = _check_initial_state(initial_state, fresh, len(seeds) if vmapped else None)
    init_fn = jax.vmap(lambda p: init_probes(probes, p)) if vmapped else lambda p: init_probes(probes, p)
    # Committed to the mesh up front (seeds over 'seeds', when vmapped), so the first call
    # compiles the same program as the rest; a copy, because the training program donates
    # (overwrites) the state it is given.
    placement = NamedSharding(plan.mesh, P("seeds")) if vmapped and "seeds" in plan.mesh.axis_names else replicated
    carried = (jax.tree.map(jnp.array, initial), init_fn(initial.params))
    every = options.snapshot_every
    if every is not None:
        # One row per step that is a multiple of `every`, carried (and checkpointed) with the state.
        rows = -(-options.epochs * plan.steps_per_epoch // every)
        carried += (jax.tree.map(lambda p: jnp.zeros(p.shape[:1] + (rows,) + p.shape[1:] if vmapped
                                                     else (rows,) + p.shape, p.dtype), initial.params),)
    target = options.target_train_loss
    if target is not None:
        # Which runs still train; carried (and checkpointed) with the state.
        carried += (jnp.ones((len(seeds),) if vmapped else (), bool),)
    carried = jax.device_put(carried, placement)

    def block(carried, order, steps_S):
        snapshots = carried[2] if every else None
        active = carried[-1] if target is not None else None
        out = train_block(*carried[:2], x_train, y_train, order, steps_S, probe_batch, snapshots, active)
        return (out[0], out[1]) + tuple(out[3:]) + ((active,) if target is not None else ()), out[2]

    def freeze(carried, metrics):
        # A run whose train loss reached the target trains no more.
        active = np.asarray(carried[-1]) & ~(np.asarray(metrics["train_loss"]) <= target)
        return carried[:-1] + (jax.device_put(jnp.asarray(active), placement),), not active.any()

    carried, history = run_blocks(
        block, carried, plan, data_keys, epochs=options.epochs, vmapped=vmapped,
        step_series={"batch_loss": "loss", **{PREFIX + name: PREFIX + name for name in probes}},
        evaluate=lambda carried: eval_both(carried[0], x_train, y_train, x_test, y_test),
        eval_every=options.eval_every, epochs_per_call=options.epochs_per_call, progress=options.progress,
        desc=desc or f"fit {name}" + (f" x{len(seeds)} seeds" if vmapped else ""),
        logger=options.logger, checkpoint_dir=options.checkpoint_dir, seeds=seeds,
        after_evaluation=None if target is None else freeze)
    final, initial, snapshots = meshes.on_every_device((carried[0], initial, carried[2] if every else None),
                                                       plan.mesh)
    return FitResult(final, history, initial, snapshots,
                     None if target is None else _steps_to_target(history["train_loss"], target, plan.steps_per_epoch))


def _steps_to_target(train_loss_xE, target, steps_per_epoch) -> np.ndarray:
    """The steps after the first epoch whose evaluated train loss is at or below ``target``
    (-1 where none is), per run: ``train_loss_xE`` has the epochs last (NaN where not evaluated)."""
    reached = np.asarray(train_loss_xE) <= target
    first = np.argmax(reached, axis=-1)
    return np.where(reached.any(axis=-1), (first + 1) * steps_per_epoch, -1)


def fit(model: nn.Module, data, tx: optax.GradientTransformation, *, seed: int = 0,
        initial_state: TrainState | None = None, **options) -> FitResult:
    """Train ``model`` on ``data`` (a :class:`jaxdl.data.Dataset`) with the Optax ``tx``.

    ``options`` are the fields of :class:`FitOptions` (``epochs`` is required). Each epoch is a
    ``lax.scan`` over ``num_train // batch_size`` minibatches of a fresh permutation (the
    remainder is dropped); ``batch_size=None`` is full-batch gradient descent in data order. One
    compiled call runs ``epochs_per_call`` epochs (for full-batch descent, that many steps).
    Batches are sharded over ``mesh`` (default: a ``'data'`` axis over the devices of every
    process, as many as divide ``batch_size`` evenly -- all of them for a multiple of their
    count; an explicit ``mesh`` must divide it). ``data`` may be spread over the processes of a
    distributed run (:func:`jaxdl.data.spread_over_processes`: each process holds its rows); the
    batch must then split over every device. Train and test metrics are evaluated on the device
    in chunks of ``chunk_size`` examples every ``eval_every`` epochs and after the last (the
    history holds NaN for the epochs in between) and logged (``logger.log(step, **metrics)``).
    With ``checkpoint_dir`` every call is checkpointed; a later call with the same arguments
    resumes there and produces the same numbers as an uninterrupted run. A second call with the
    same model, transformation object, data shapes and options compiles nothing.

    Training starts from the initialisation drawn from ``seed``'s init stream, or from
    ``initial_state`` (a :class:`TrainState` of this model, e.g. ``result.state`` of an earlier
    fit, to continue it; its optimizer state and step carry on); ``seed`` still draws the
    minibatch order and the dropout stream. The model is any Flax Linen module whose
    ``__call__`` takes the inputs, with or without a ``train`` flag (:func:`takes_train_flag`),
    or a Flax NNX module (an instance or its class, through :func:`jaxdl.models.from_nnx`: each
    seed builds the module from its own ``nnx.Rngs``).

    ``probes`` (``{name: probe}``, see :mod:`jaxdl.train.probes`) are measured inside the
    compiled program before every step whose number is a multiple of ``probe_every``, on
    ``probe_batch`` (default the whole training set ``(x_train, y_train)``); their values are
    ``history['probe/<name>']``, one entry per step, NaN where not measured.

    Returns a :class:`FitResult`. Raises ``FloatingPointError`` naming the step when the loss
    becomes non-finite.
    """
    return train_model(model, data, tx, FitOptions.parse("fit", options), seeds=[seed], vmapped=False,
                       initial_state=initial_state)


def fit_seeds(model: nn.Module, data, tx: optax.GradientTransformation, *, seeds: Sequence[int],
              initial_state: TrainState | None = None, **options) -> FitResult:
    """:func:`fit` for several seeds as ONE ``vmap``ped program; every leaf of the result (and
    of the history) has a leading axis of ``len(seeds)``. Seed ``s`` gives the same numbers as
    ``fit(..., seed=s)`` up to floating-point reassociation. ``initial_state``: a stacked
    :class:`TrainState` (every leaf with a leading axis of ``len(seeds)``) to start from instead.

    Over several devices the seed axis is sharded over a ``'seeds'`` mesh axis and each seed's
    batch over ``'data'`` (:func:`jaxdl.core.meshes.seeds_mesh`: K seeds on K devices side by side,
    the rest of the devices splitting batches); the numbers are those of one device up to
    reassociation.
    """
    seeds = list(seeds)
    if not seeds:
        raise ValueError("seeds must name at least one seed, got []")
    return train_model(model, data, tx, FitOptions.parse("fit_seeds", options), seeds=seeds, vmapped=True,
                       initial_state=initial_state)
