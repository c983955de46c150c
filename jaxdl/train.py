"""Training: a pure jitted train step, whole epochs as one ``lax.scan``, seeds as one ``vmap``.

The pieces, from small to large:

- :class:`TrainState` — a plain pytree (step, params, model state, optimizer state, rng);
- :func:`make_train_step` — ``train_step(state, (x_B, y_B)) -> (state, metrics)``, pure;
- :func:`evaluate` — data-set means of loss and accuracy, accumulated over chunks;
- :func:`fit` — epochs of shuffled minibatches, each epoch one compiled ``lax.scan`` over a
  permutation of the training set kept on the device, batches sharded over all local devices
  (one device is the same code path), progress bar, metrics log, Orbax checkpoints and resume,
  and a loud stop on a non-finite loss;
- :func:`fit_seeds` — the same program ``vmap``ped over seeds (init and data order differ).
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, NamedTuple, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
from tqdm.auto import tqdm

from jaxdl import losses, tree

PyTree = Any


class TrainState(struct.PyTreeNode):
    """Everything that changes during training, as one pytree.

    Attributes:
      step: int32 scalar, optimizer steps taken.
      params: the trainable parameters theta.
      model_state: non-trainable collections (e.g. ``{'batch_stats': ...}``); ``{}`` if none.
      opt_state: the Optax state.
      rng: raw uint32 key data (``jax.random.key_data``), folded with ``step`` in each step.
    """

    step: jax.Array
    params: PyTree
    model_state: PyTree
    opt_state: PyTree
    rng: jax.Array


def init_state(model: nn.Module, tx: optax.GradientTransformation, example_x, key) -> TrainState:
    """Initialise parameters from ``key`` on one example batch ``example_x`` (shape (B, ...))."""
    variables, dropout_key = _init_variables(model, example_x, key)
    return _assemble_state(variables, tx, dropout_key)


@functools.partial(jax.jit, static_argnums=0)
def _init_variables(model, example_x, key):
    # Jitted with the model as a static argument: Flax modules hash by value, so repeated fits
    # of the same architecture reuse one compiled initialiser (random draws compile slowly on CPU).
    init_key, dropout_key = jax.random.split(key)
    return model.init(init_key, example_x, train=False), dropout_key


@functools.partial(jax.jit, static_argnums=0)
def _init_variables_seeds(model, example_x, keys_S):
    # lax.map, not vmap: the body compiles like one seed, and each seed draws exactly what
    # a single-seed fit draws.
    return jax.lax.map(lambda key: _init_variables(model, example_x, key), keys_S)


def _assemble_state(variables, tx, dropout_key) -> TrainState:
    params = variables["params"]
    model_state = {name: value for name, value in variables.items() if name != "params"}
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        model_state=model_state,
        opt_state=tx.init(params),
        rng=jax.random.key_data(dropout_key),
    )


def init_states(model: nn.Module, tx: optax.GradientTransformation, example_x, keys_S) -> TrainState:
    """:func:`init_state` for a stack of keys: every leaf gains a leading seed axis."""
    variables, dropout_keys = _init_variables_seeds(model, example_x, keys_S)
    return jax.vmap(lambda v, k: _assemble_state(v, tx, k))(variables, dropout_keys)


def apply_model(model: nn.Module, params, model_state, x, *, train: bool = False, rng=None):
    """Run the model; in training mode also return the updated model state."""
    variables = {"params": params, **model_state}
    rngs = {"dropout": rng} if rng is not None else {}
    if train and model_state:
        return model.apply(variables, x, train=True, mutable=list(model_state), rngs=rngs)
    outputs = model.apply(variables, x, train=train, rngs=rngs)
    return (outputs, model_state) if train else outputs


def make_apply_fn(model: nn.Module, model_state: PyTree | None = None) -> Callable:
    """The pure ``apply_fn(params, x) -> outputs`` that analysis tools take.

    Model state (BatchNorm statistics) is closed over in evaluation mode, never perturbed.
    """
    model_state = {} if model_state is None else model_state
    return lambda params, x: apply_model(model, params, model_state, x, train=False)


def make_train_step(model: nn.Module, tx: optax.GradientTransformation, loss: str = "cross_entropy") -> Callable:
    """Build the pure ``train_step(state, batch) -> (state, metrics)``.

    ``batch = (x_Bx..., y_B...)``; ``metrics`` holds the batch ``loss`` (before the update),
    ``grad_norm`` and, for classification, ``accuracy``. Jit it once (``fit`` does).
    Transformations that take extra arguments get ``grad_fn(params) -> grads`` on the same batch
    (what :func:`jaxdl.sam.sam` needs).
    """
    losses.check_loss_name(loss)

    def train_step(state: TrainState, batch):
        x, y = batch
        rng = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)

        def objective(params):
            outputs, model_state = apply_model(model, params, state.model_state, x, train=True, rng=rng)
            per_example = losses.per_example_metrics(loss, outputs, y)
            return per_example["loss"].mean(), (per_example, model_state)

        (value, (per_example, model_state)), grads = jax.value_and_grad(objective, has_aux=True)(state.params)
        if isinstance(tx, optax.GradientTransformationExtraArgs):
            # The batch gradient at other params (SAM's ascent point), same batch and rng;
            # traced only if a transformation calls it.
            def grad_fn(params):
                return jax.grad(lambda p: objective(p)[0])(params)

            updates, opt_state = tx.update(grads, state.opt_state, state.params, grad_fn=grad_fn)
        else:
            updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        metrics = {name: v.mean() for name, v in per_example.items()}
        metrics["grad_norm"] = tree.norm(grads)
        new_state = state.replace(step=state.step + 1, params=params, model_state=model_state, opt_state=opt_state)
        return new_state, metrics

    return train_step


def evaluate(model: nn.Module, params, model_state, x, y, loss: str = "cross_entropy", batch_size: int = 2048) -> dict:
    """Data-set means of the loss (and accuracy) in evaluation mode.

    The data are cut into chunks of ``batch_size`` (the last one padded and masked) and
    summed with ``lax.map``, so memory is bounded by the chunk and the mean is exact.
    Jit-able; returns ``{'loss': scalar[, 'accuracy': scalar]}``.
    """
    num = x.shape[0]
    chunk = min(batch_size, num)
    num_chunks = -(-num // chunk)
    pad = num_chunks * chunk - num
    x_pad = jnp.pad(x, [(0, pad)] + [(0, 0)] * (x.ndim - 1))
    y_pad = jnp.pad(y, [(0, pad)] + [(0, 0)] * (y.ndim - 1))
    mask = (jnp.arange(num_chunks * chunk) < num).astype(jnp.float32)
    reshape = lambda a: a.reshape((num_chunks, chunk) + a.shape[1:])

    def chunk_sums(args):
        xc, yc, mc = args
        outputs = apply_model(model, params, model_state, xc, train=False)
        return {k: jnp.sum(v * mc) for k, v in losses.per_example_metrics(loss, outputs, yc).items()}

    sums = jax.lax.map(chunk_sums, (reshape(x_pad), reshape(y_pad), reshape(mask)))
    return {k: v.sum() / num for k, v in sums.items()}


class FitResult(NamedTuple):
    """What :func:`fit` returns. For :func:`fit_seeds` every leaf has a leading seed axis.

    ``history`` maps ``train_loss, test_loss[, train_accuracy, test_accuracy]`` to arrays of
    shape (epochs,) (after each epoch) and ``batch_loss`` to shape (epochs * steps_per_epoch,).
    """

    state: TrainState
    history: dict


@dataclasses.dataclass(frozen=True)
class _Plan:
    """Validated sizes and placements of one training run."""

    num_train: int
    batch_size: int
    steps_per_epoch: int
    full_batch: bool
    mesh: jax.sharding.Mesh


def make_plan(data, batch_size, epochs, mesh=None) -> _Plan:
    """Validate ``epochs``/``batch_size`` against ``data`` and the mesh (default: all devices)."""
    num_train = int(data.x_train.shape[0])
    if not isinstance(epochs, (int, np.integer)) or epochs <= 0:
        raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
    full_batch = batch_size is None
    batch_size = num_train if full_batch else batch_size
    if not isinstance(batch_size, (int, np.integer)) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive integer or None (full batch), got {batch_size!r}")
    if batch_size > num_train:
        raise ValueError(f"batch_size={batch_size} exceeds the {num_train} training examples")
    if mesh is None:
        mesh = data_mesh()
    num_devices = mesh.devices.size
    if batch_size % num_devices:
        raise ValueError(f"batch_size={batch_size} must be divisible by the {num_devices} devices of the data mesh")
    return _Plan(num_train, int(batch_size), num_train // batch_size, full_batch, mesh)


def data_mesh(devices: Sequence[jax.Device] | None = None) -> jax.sharding.Mesh:
    """A 1-D mesh with axis ``'data'`` over ``devices`` (default: all local devices)."""
    devices = jax.local_devices() if devices is None else list(devices)
    return jax.make_mesh((len(devices),), ("data",), devices=devices, axis_types=(jax.sharding.AxisType.Auto,))


def _check_data(model, data, loss):
    losses.check_loss_name(loss)
    if losses.is_classification(loss) and data.num_classes is None:
        raise ValueError(f"loss {loss!r} needs class labels but data set {data.name!r} is a regression set")
    if not losses.is_classification(loss) and data.num_classes is not None:
        raise ValueError(f"loss {loss!r} is a regression loss but data set {data.name!r} has class labels")
    out = jax.eval_shape(lambda x: model.init_with_output(jax.random.key(0), x)[0], data.x_train[:2])
    if losses.is_classification(loss):
        if out.ndim != 2 or out.shape[-1] != data.num_classes:
            raise ValueError(
                f"model outputs have shape {out.shape[1:]} per example but data set {data.name!r} "
                f"has {data.num_classes} classes: set the model's num_outputs={data.num_classes}")
    elif out.shape[1:] != data.y_train.shape[1:]:
        raise ValueError(f"model outputs have shape {out.shape[1:]} per example but y_train has {data.y_train.shape[1:]}")


def epoch_order(data_key, epoch: int, plan: _Plan) -> np.ndarray:
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


def build_epoch_programs(model, tx, loss, plan: _Plan, eval_batch_size: int = 2048, vmapped: bool = False):
    """The two compiled phases of :func:`fit`, for callers that drive epochs themselves.

    Returns jitted ``train_epoch(state, x, y, index_SxB) -> (state, step_metrics)`` (``state``
    is donated; ``index_SxB`` from :func:`epoch_order`) and
    ``eval_both(state, x_train, y_train, x_test, y_test) -> metrics``; with ``vmapped`` both map
    over a leading seed axis of ``state`` and ``index_SxB``. ``plan`` comes from :func:`make_plan`.
    """
    train_step = make_train_step(model, tx, loss)
    # Steps on axis 0, the batch split over the mesh's 'data' axis.
    epoch_sharding = NamedSharding(plan.mesh, P(None, "data"))

    def train_epoch(state, x, y, index_SxB):
        # One gather for the whole epoch, then a scan over ready batches: cheaper than a
        # gather inside every step.
        batches = (x[index_SxB], y[index_SxB])
        if not vmapped:
            batches = jax.lax.with_sharding_constraint(batches, epoch_sharding)
        return jax.lax.scan(train_step, state, batches)

    def eval_both(state, x_train, y_train, x_test, y_test):
        metrics = {}
        for split, (xs, ys) in {"train": (x_train, y_train), "test": (x_test, y_test)}.items():
            for name, value in evaluate(model, state.params, state.model_state, xs, ys, loss, eval_batch_size).items():
                metrics[f"{split}_{name}"] = value
        return metrics

    if vmapped:
        train_epoch = jax.vmap(train_epoch, in_axes=(0, None, None, 0))
        eval_both = jax.vmap(eval_both, in_axes=(0, None, None, None, None))
    return jax.jit(train_epoch, donate_argnums=0), jax.jit(eval_both)


@jax.jit
def seed_streams(seeds_S):
    """Named random streams per seed: ``(init_keys_S, data_keys_S)``, split from ``key(seed)``."""
    streams = jax.vmap(lambda s: jax.random.split(jax.random.key(s)))(seeds_S)
    return streams[:, 0], streams[:, 1]


def _fit(model, data, tx, *, seeds, vmapped, epochs, batch_size, loss, eval_batch_size, eval_every,
         progress, logger, checkpoint_dir, mesh, desc):
    _check_data(model, data, loss)
    plan = make_plan(data, batch_size, epochs, mesh)
    if not isinstance(eval_every, (int, np.integer)) or isinstance(eval_every, bool) or eval_every <= 0:
        raise ValueError(f"eval_every must be a positive integer (epochs between evaluations), got {eval_every!r}")
    replicated = NamedSharding(plan.mesh, P())
    x_train, y_train, x_test, y_test = jax.device_put(
        (data.x_train, data.y_train, data.x_test, data.y_test), replicated)

    init_keys, data_keys = seed_streams(np.asarray(seeds, np.uint32))
    example = x_train[:1]
    state = init_states(model, tx, example, init_keys) if vmapped else init_state(model, tx, example, init_keys[0])
    # Committed to the mesh up front, so the first epoch compiles the same program as the rest.
    state = jax.device_put(state, replicated)

    train_epoch, eval_both = build_epoch_programs(model, tx, loss, plan, eval_batch_size, vmapped)
    lead = (len(seeds),) if vmapped else ()
    metric_names = ["train_loss", "test_loss"] + (["train_accuracy", "test_accuracy"] if losses.is_classification(loss) else [])
    history = {name: np.full(lead + (epochs,), np.nan, np.float32) for name in metric_names}
    history["batch_loss"] = np.full(lead + (epochs * plan.steps_per_epoch,), np.nan, np.float32)

    start_epoch = 0
    checkpointer = None
    if checkpoint_dir is not None:
        from jaxdl.checkpoint import Checkpointer

        checkpointer = Checkpointer(checkpoint_dir)
        if checkpointer.latest_step() is not None and checkpointer.latest_step() > epochs:
            raise ValueError(f"checkpoint_dir {checkpoint_dir} holds epoch {checkpointer.latest_step()}, "
                             f"past the requested epochs={epochs}; use a new checkpoint_dir or more epochs")
        if checkpointer.latest_step() is not None:
            restored = checkpointer.restore({"state": state, "history": history})
            state = jax.device_put(restored["state"], replicated)
            # The saved history may be shorter than this run's (resuming with more epochs).
            for name, saved in restored["history"].items():
                saved = np.asarray(saved)
                kept = min(saved.shape[-1], history[name].shape[-1])
                history[name][..., :kept] = saved[..., :kept]
            start_epoch = checkpointer.latest_step()

    bar = tqdm(range(start_epoch, epochs), desc=desc, disable=not progress, leave=False, unit="epoch")
    for epoch in bar:
        order = np.stack([epoch_order(k, epoch, plan) for k in data_keys])
        state, step_metrics = train_epoch(state, x_train, y_train, order if vmapped else order[0])
        batch_loss = np.asarray(step_metrics["loss"])
        _raise_if_not_finite(batch_loss, epoch, plan.steps_per_epoch, seeds if vmapped else None)
        window = slice(epoch * plan.steps_per_epoch, (epoch + 1) * plan.steps_per_epoch)
        history["batch_loss"][..., window] = batch_loss
        if (epoch + 1) % eval_every == 0 or epoch + 1 == epochs:
            eval_metrics = eval_both(state, x_train, y_train, x_test, y_test)
            for name in metric_names:
                history[name][..., epoch] = np.asarray(eval_metrics[name])
            latest = {name: float(np.mean(history[name][..., epoch])) for name in metric_names}
            bar.set_postfix({k: f"{v:.4g}" for k, v in latest.items()}, refresh=False)
            if logger is not None:
                logger.log(int((epoch + 1) * plan.steps_per_epoch), epoch=epoch + 1, **latest)
        if checkpointer is not None:
            checkpointer.save(epoch + 1, {"state": state, "history": history})
    bar.close()
    if checkpointer is not None:
        checkpointer.close()
    return FitResult(state, history)


def _raise_if_not_finite(batch_loss, epoch, steps_per_epoch, seeds):
    bad = ~np.isfinite(batch_loss)
    if not bad.any():
        return
    where = np.argwhere(bad)[0]
    step = epoch * steps_per_epoch + int(where[-1])
    seed_text = f" for seed {seeds[int(where[0])]}" if seeds is not None else ""
    raise FloatingPointError(
        f"training loss became non-finite ({batch_loss[tuple(where)]}) at step {step} (epoch {epoch}){seed_text}; "
        "lower the learning rate or enable gradient clipping")


def fit(model: nn.Module, data, tx: optax.GradientTransformation, *, epochs: int, batch_size: int | None = None,
        loss: str = "cross_entropy", seed: int = 0, eval_batch_size: int = 2048, eval_every: int = 1,
        progress: bool = True, logger=None, checkpoint_dir=None, mesh=None) -> FitResult:
    """Train ``model`` on ``data`` (a :class:`jaxdl.data.Dataset`) with the Optax ``tx``.

    Each epoch is one compiled call: a ``lax.scan`` over ``num_train // batch_size``
    minibatches of a fresh permutation (the remainder is dropped); ``batch_size=None`` is
    full-batch gradient descent in data order. Batches are sharded over ``mesh`` (default
    all local devices on a ``'data'`` axis). After each epoch train and test metrics are
    evaluated on the device (every ``eval_every`` epochs and after the last; the history holds
    NaN for the epochs in between) and logged (``logger.log(step, **metrics)``); with
    ``checkpoint_dir`` every epoch is checkpointed; a later call with the same arguments resumes there and
    produces the same numbers as an uninterrupted run.

    Raises ``FloatingPointError`` naming the step when the loss becomes non-finite.
    """
    return _fit(model, data, tx, seeds=[seed], vmapped=False, epochs=epochs, batch_size=batch_size, loss=loss,
                eval_batch_size=eval_batch_size, eval_every=eval_every, progress=progress, logger=logger, checkpoint_dir=checkpoint_dir,
                mesh=mesh, desc=f"fit {type(model).__name__}")


def fit_seeds(model: nn.Module, data, tx: optax.GradientTransformation, *, seeds: Sequence[int], epochs: int,
              batch_size: int | None = None, loss: str = "cross_entropy", eval_batch_size: int = 2048,
              eval_every: int = 1, progress: bool = True, logger=None, checkpoint_dir=None) -> FitResult:
    """:func:`fit` for several seeds as ONE ``vmap``ped program; every leaf of the result has a
    leading axis of ``len(seeds)``. Seed ``s`` gives the same numbers as ``fit(..., seed=s)``
    up to floating-point reassociation."""
    seeds = list(seeds)
    if not seeds:
        raise ValueError("seeds must name at least one seed")
    single = jax.sharding.Mesh(np.asarray(jax.local_devices()[:1]), ("data",))
    return _fit(model, data, tx, seeds=seeds, vmapped=True, epochs=epochs, batch_size=batch_size, loss=loss,
                eval_batch_size=eval_batch_size, eval_every=eval_every, progress=progress, logger=logger, checkpoint_dir=checkpoint_dir,
                mesh=single, desc=f"fit {type(model).__name__} x{len(seeds)} seeds")


def unstack(tree: PyTree, index: int) -> PyTree:
    """Seed ``index`` of a stacked result from :func:`fit_seeds`."""
    return jax.tree.map(lambda leaf: leaf[index], tree)
