"""Training benches: one jitted train step against its FLOP floor (MLP, ConvNet, ResNet), a
scanned epoch against a Python loop of jitted steps, vmapped seeds against sequential ones, and
the MNIST-1D CNN's epoch with patch convolutions against XLA's.

Every bench returns seconds (and, for the step benches, the floor in seconds).
"""
from __future__ import annotations

import functools
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from experiments.benchmark.timing import (compiled_flops, generic_point, mlp_forward_flops, synthetic_data,
                                           time_call, time_interleaved)
from jaxdl import train
from jaxdl.analysis import implicit
from jaxdl.train import optim
from jaxdl.models import get_model


def host_state(model, tx, example_x, seed: int):
    """A :class:`jaxdl.train.TrainState` of ``model`` at :func:`generic_point`, drawn on the host
    from the state's shapes: the conv nets' initialisers take seconds to compile on CPU (random
    draws), which nothing here times."""
    shapes = jax.eval_shape(lambda key: train.init_state(model, tx, example_x, key), jax.random.key(seed))
    return generic_point(shapes, seed)


def _timed_step(model, data, seed: int, repeats: int, host: bool = False) -> tuple[float, object]:
    """Median seconds of one jitted SGD train step on the whole of ``data``, and the state
    (from :func:`jaxdl.train.init_state`, or :func:`host_state` if ``host``)."""
    tx = optim.get_optimizer("sgd", 0.01)
    init = host_state if host else lambda m, t, x, s: train.init_state(m, t, x, jax.random.key(s))
    state = init(model, tx, data.x_train[:1], seed)
    step = jax.jit(train.make_train_step(model, tx))
    batch = (jnp.asarray(data.x_train), jnp.asarray(data.y_train))
    return time_call(lambda s: step(s, batch)[0].params, state, repeats=repeats), state


def bench_step(config, rate):
    """One jitted train step of the MLP against its FLOP floor (3x the forward matmul FLOPs:
    forward, backward to activations, backward to weights). Returns ``(seconds, floor)``."""
    model = get_model("mlp", widths=tuple(config.step_widths), num_outputs=10)
    data = synthetic_data(config.step_batch_size, config.step_input_dim, 10, config.seed)
    seconds, _ = _timed_step(model, data, config.seed, config.repeats * 20)
    floor = 3 * mlp_forward_flops(config.step_input_dim, config.step_widths, 10, config.step_batch_size) / rate
    return seconds, floor


class NNXMLP(nnx.Module):
    """The zoo's ReLU MLP written as an NNX module (``nnx.Linear`` layers)."""

    def __init__(self, input_dim: int, widths: tuple, num_outputs: int, *, rngs: nnx.Rngs):
        sizes = (input_dim, *widths)
        self.hidden = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in zip(sizes[:-1], sizes[1:])])
        self.out = nnx.Linear(sizes[-1], num_outputs, rngs=rngs)

    def __call__(self, x):
        x = x.reshape((x.shape[0], -1))
        for layer in self.hidden:
            x = nnx.relu(layer(x))
        return self.out(x)


def bench_nnx_step(config):
    """One jitted SGD train step of the step bench's MLP as an NNX module (through
    :func:`jaxdl.models.from_nnx`) and as the zoo's Linen MLP, timed in alternation on the same
    batch. Returns ``(nnx_seconds, linen_seconds)``."""
    data = synthetic_data(config.step_batch_size, config.step_input_dim, 10, config.seed)
    tx = optim.get_optimizer("sgd", 0.01)
    batch = (jnp.asarray(data.x_train), jnp.asarray(data.y_train))
    calls = []
    for model in (functools.partial(NNXMLP, config.step_input_dim, tuple(config.step_widths), 10),
                  get_model("mlp", widths=tuple(config.step_widths), num_outputs=10)):
        state = train.init_state(model, tx, data.x_train[:1], jax.random.key(config.seed))
        step = jax.jit(train.make_train_step(model, tx))
        calls.append((lambda s, step=step: step(s, batch)[0].params, (state,)))
    nnx_seconds, linen_seconds = time_interleaved(calls, repeats=config.repeats * 20)
    return nnx_seconds, linen_seconds


def bench_conv_step(config, model, rate):
    """One jitted SGD train step of a conv net (train mode: BatchNorm statistics updated) on a
    batch of ``config.conv_batch_size`` images of shape ``config.conv_image_shape``, against
    the floor of 3x the eval-mode forward pass's FLOPs (XLA's cost analysis, :func:`compiled_flops`).

    Returns ``(seconds, floor_seconds, forward_flops)``.
    """
    data = synthetic_data(config.conv_batch_size, tuple(config.conv_image_shape), 10, config.seed)
    seconds, state = _timed_step(model, data, config.seed, config.conv_repeats, host=True)
    forward = train.make_apply_fn(model, state.model_state)
    flops = compiled_flops(forward, state.params, jnp.asarray(data.x_train))
    return seconds, 3 * flops / rate, flops


def epoch_calls(model, data, batch_size: int, seed: int, host: bool = False, tx=None):
    """``(scanned, loop, order)``: one call each (of an ignored argument) that runs one epoch of
    ``model`` on ``data`` with ``tx`` (default SGD at 0.01) from the same initial state
    (:func:`jaxdl.train.init_state`, or :func:`host_state` if ``host``), as one scanned program
    and as a Python loop of jitted steps over batches sliced on the host; and the epoch's
    batches of example indices."""
    tx = optim.get_optimizer("sgd", 0.01) if tx is None else tx
    plan = train.make_plan(data, batch_size, 1)
    train_epoch, _ = train.build_epoch_programs(model, tx, "cross_entropy", plan)
    key = jax.random.key(seed)
    x, y = jnp.asarray(data.x_train), jnp.asarray(data.y_train)
    # The epoch program donates its input state, so each timed call starts from a fresh copy.
    if host:
        state = host_state(model, tx, data.x_train[:1], seed)
    else:
        state = train.init_state(model, tx, data.x_train[:1], key)
    copy = jax.jit(lambda tree: jax.tree.map(jnp.copy, tree))
    order = train.epoch_order(key, 0, plan)

    def scanned(_):
        return train_epoch(copy(state), x, y, order)[0].params

    step = jax.jit(train.make_train_step(model, tx))

    def loop(_):
        # What a user writes first: slice each batch on the host and call the jitted step.
        current = copy(state)
        for index in order:
            current, _ = step(current, (data.x_train[index], data.y_train[index]))
        return current.params

    return scanned, loop, np.asarray(order)


def bench_epoch(config, widths, input_dim, batch_size):
    """Per-step seconds of an MLP's epoch of ``config.epoch_steps`` steps: ``(scanned, loop)``."""
    model = get_model("mlp", widths=tuple(widths), num_outputs=10)
    data = synthetic_data(config.epoch_steps * batch_size, input_dim, 10, config.seed)
    scanned, loop, _ = epoch_calls(model, data, batch_size, config.seed)
    return (time_call(scanned, None, repeats=config.repeats) / config.epoch_steps,
            time_call(loop, None, repeats=config.repeats) / config.epoch_steps)


def bench_conv_implementations(config):
    """Seconds of one scanned epoch of the MNIST-1D CNN (Greydanus 2020: 3 conv layers of 25
    channels, kernel 5, stride 2, no pooling, linear read-out) on ``(B, 40)`` inputs, with
    ``conv_implementation='patches'`` and with ``'xla'``, timed in alternation.

    Returns ``(patches_seconds, xla_seconds)``.
    """
    data = synthetic_data(config.cnn1d_steps * config.cnn1d_batch_size, config.cnn1d_length, 10, config.seed)
    calls = []
    for implementation in ("patches", "xla"):
        model = get_model("cnn1d", channels=tuple(config.cnn1d_channels), kernel_size=5, strides=2, pool="none",
                          dense_widths=(), num_outputs=10, conv_implementation=implementation)
        calls.append((epoch_calls(model, data, config.cnn1d_batch_size, config.seed, host=True)[0], (None,)))
    patches_seconds, xla_seconds = time_interleaved(calls, repeats=config.repeats)
    return patches_seconds, xla_seconds


def _seed_setup(config):
    model = get_model("mlp", widths=tuple(config.seed_widths), num_outputs=10)
    tx = optim.get_optimizer("adam", 1e-3)
    data = synthetic_data(config.seed_steps * config.seed_batch_size, config.seed_input_dim, 10, config.seed)
    return model, tx, data


def bench_seed_fits(config):
    """Seconds, end to end as a user sees them: one ``fit_seeds`` call for all seeds versus one
    ``fit`` call per seed, twice each: the first calls compile (the vmapped programs; the
    single-seed programs once, the other seeds reuse them), the second calls compile nothing.

    Returns ``{'vmapped_first', 'sequential_first', 'vmapped_again', 'sequential_again'}``.
    """
    model, tx, data = _seed_setup(config)
    seeds = list(range(config.seeds))
    kwargs = dict(epochs=config.seed_epochs, batch_size=config.seed_batch_size, progress=False)

    def vmapped():
        jax.block_until_ready(train.fit_seeds(model, data, tx, seeds=seeds, **kwargs).state.params)

    def sequential():
        for s in seeds:
            jax.block_until_ready(train.fit(model, data, tx, seed=s, **kwargs).state.params)

    seconds = {}
    for label in ("first", "again"):
        for name, fn in (("vmapped", vmapped), ("sequential", sequential)):
            start = time.perf_counter()
            fn()
            seconds[f"{name}_{label}"] = time.perf_counter() - start
    return seconds


def bench_seed_programs(config):
    """Seconds for one epoch of every seed with warm programs: the vmapped epoch versus the
    single-seed epoch program called once per seed (compilation excluded)."""
    model, tx, data = _seed_setup(config)
    plan = train.make_plan(data, config.seed_batch_size, 1)
    x, y = jnp.asarray(data.x_train), jnp.asarray(data.y_train)
    keys = [jax.random.key(s) for s in range(config.seeds)]
    init = jax.jit(lambda k: train.init_state(model, tx, data.x_train[:1], k))
    init_many = jax.jit(jax.vmap(lambda k: train.init_state(model, tx, data.x_train[:1], k)))
    epoch_one, _ = train.build_epoch_programs(model, tx, "cross_entropy", plan)
    epoch_many, _ = train.build_epoch_programs(model, tx, "cross_entropy", plan, vmapped=True)
    orders = [train.epoch_order(k, 0, plan) for k in keys]
    stacked_keys, stacked_orders = jnp.stack(keys), np.stack(orders)

    def vmapped(_):
        return epoch_many(init_many(stacked_keys), x, y, stacked_orders)[0].params

    def sequential(_):
        return [epoch_one(init(k), x, y, o)[0].params for k, o in zip(keys, orders)]

    return time_call(vmapped, None, repeats=config.repeats), time_call(sequential, None, repeats=config.repeats)


def bench_regularized_step(config):
    """Seconds of one jitted SGD step of an MLP on a batch of ``config.regularizer_batch_size``
    with Smith et al.'s explicit regulariser (the batch cut into ``config.regularizer_num_batches``
    minibatches, their gradients ``vmap``ped, then differentiated again) and of the plain step on
    the same batch: ``(regularized, plain)``, timed in alternation."""
    model = get_model("mlp", widths=tuple(config.seed_widths), num_outputs=10)
    data = synthetic_data(config.regularizer_batch_size, config.seed_input_dim, 10, config.seed)
    tx = optim.get_optimizer("sgd", 0.1)
    state = train.init_state(model, tx, data.x_train[:1], jax.random.key(config.seed))
    batch = (jnp.asarray(data.x_train), jnp.asarray(data.y_train))
    regularizer = implicit.SGDRegularizer(0.1, int(config.regularizer_num_batches))
    steps = {name: jax.jit(train.make_train_step(model, tx, regularizer=reg))
             for name, reg in (("regularized", regularizer), ("plain", None))}
    calls = [(lambda s, fn=fn: fn(s, batch)[0].params, (state,)) for fn in steps.values()]
    regularized, plain = time_interleaved(calls, repeats=config.repeats * 10)
    return regularized, plain
