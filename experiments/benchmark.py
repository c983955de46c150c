"""Benchmarks: each tool's time beside its FLOP floor and beside the naive loop, in one run.

The floor is the tool's matrix-multiply FLOPs divided by this machine's matmul rate, which
is measured at the start of the same run, so the ratios compare like with like on any
device. Rows:

- train step: one jitted step of an MLP 784-512-512-10 at batch 128 against its floor
  (3x the forward matmul FLOPs: forward, backward to activations, backward to weights);
- scanned epoch: an epoch as one ``lax.scan`` against a Python loop of jitted steps, for a
  tiny (overhead-bound), a small (MNIST-1D) and the large MLP: the scan removes the per-step
  dispatch, so its gain shrinks as the step's own compute grows;
- seeds: 16 seeds in one ``fit_seeds`` call against 16 ``fit`` calls (end to end, each call
  compiling its own programs), and the warm vmapped epoch against the warm single-seed epoch
  run once per seed.

Targets (2 CPU cores): step <= 2x floor; scan >= 1.5x faster per step (tiny MLP); seeds >= 4x
throughput.
"""
from __future__ import annotations

import os
import sys
import time
import types

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from experiments import common
from jaxdl import optim, train
from jaxdl.models import get_model

NAME = "benchmark"
DESCRIPTION = "train-step, scanned-epoch and vmapped-seed timings against FLOP floors and naive loops"


def get_config(size: str = "default") -> ml_collections.ConfigDict:
    common.check_size(size)
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.repeats = 5
    c.matmul_size = 1024
    c.step_widths = (512, 512)
    c.step_input_dim = 784
    c.step_batch_size = 128
    c.epoch_steps = 50
    c.tiny_widths = (32, 32)
    c.tiny_input_dim = 2
    c.tiny_batch_size = 32
    c.seeds = 16
    c.seed_widths = (100, 100)
    c.seed_input_dim = 40
    c.seed_batch_size = 100
    c.seed_steps = 40
    c.seed_epochs = 5
    if size == "quick":
        c.repeats = 2
        c.matmul_size = 256
        c.step_widths = (64, 64)
        c.step_input_dim = 64
        c.step_batch_size = 32
        c.epoch_steps = 5
        c.seeds = 2
        c.seed_widths = (16,)
        c.tiny_widths = (8,)
        c.seed_steps = 5
        c.seed_epochs = 1
    elif size == "full":
        c.repeats = 20
        c.matmul_size = 4096
        c.epoch_steps = 200
    return c


def _validate(config):
    for field in ("repeats", "matmul_size", "step_batch_size", "tiny_batch_size", "epoch_steps", "seeds", "seed_batch_size", "seed_steps",
                  "seed_epochs"):
        common.require(int(config[field]) > 0, field, "a positive integer", config[field])


def time_call(fn, *args, repeats: int = 5) -> float:
    """Median wall time of ``fn(*args)`` in seconds, after one warm-up call (compilation)."""
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def measure_matmul_rate(size: int, repeats: int = 5) -> float:
    """FLOP/s of a float32 ``size x size`` matrix product on the default device."""
    a = jax.random.normal(jax.random.key(0), (size, size), jnp.float32)
    b = jax.random.normal(jax.random.key(1), (size, size), jnp.float32)
    seconds = time_call(jax.jit(jnp.matmul), a, b, repeats=repeats)
    return 2.0 * size**3 / seconds


def mlp_forward_flops(input_dim: int, widths, num_outputs: int, batch: int) -> float:
    """Matmul FLOPs of one forward pass (2 per multiply-add; biases and activations ignored)."""
    dims = [input_dim, *widths, num_outputs]
    return float(sum(2 * batch * a * b for a, b in zip(dims[:-1], dims[1:])))


def _synthetic(num: int, input_dim: int, num_classes: int, seed: int):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(num, input_dim)).astype(np.float32)
    y = rng.integers(0, num_classes, size=num).astype(np.int32)
    return types.SimpleNamespace(x_train=x, y_train=y, x_test=x[:256], y_test=y[:256],
                                 num_classes=num_classes, name="synthetic")


def bench_step(config, rate):
    """One jitted train step against its FLOP floor."""
    model = get_model("mlp", widths=tuple(config.step_widths), num_outputs=10)
    tx = optim.get_optimizer("sgd", 0.01)
    data = _synthetic(config.step_batch_size, config.step_input_dim, 10, config.seed)
    state = train.init_state(model, tx, data.x_train[:1], jax.random.key(config.seed))
    step = jax.jit(train.make_train_step(model, tx))
    batch = (jnp.asarray(data.x_train), jnp.asarray(data.y_train))
    seconds = time_call(lambda s: step(s, batch)[0].params, state, repeats=config.repeats * 20)
    floor = 3 * mlp_forward_flops(config.step_input_dim, config.step_widths, 10, config.step_batch_size) / rate
    return seconds, floor


def bench_epoch(config, widths, input_dim, batch_size):
    """Per-step time: one scanned epoch versus a Python loop of jitted steps."""
    model = get_model("mlp", widths=tuple(widths), num_outputs=10)
    tx = optim.get_optimizer("sgd", 0.01)
    num = config.epoch_steps * batch_size
    data = _synthetic(num, input_dim, 10, config.seed)
    plan = train.make_plan(data, batch_size, 1)
    train_epoch, _ = train.build_epoch_programs(model, tx, "cross_entropy", plan)
    key = jax.random.key(config.seed)
    x, y = jnp.asarray(data.x_train), jnp.asarray(data.y_train)
    # The epoch program donates its input state, so each timed call starts from a fresh copy.
    state = train.init_state(model, tx, data.x_train[:1], key)
    copy = jax.jit(lambda tree: jax.tree.map(jnp.copy, tree))

    def scanned(_):
        return train_epoch(copy(state), x, y, train.epoch_order(key, 0, plan))[0].params

    step = jax.jit(train.make_train_step(model, tx))

    def loop(_):
        # What a user writes first: slice each batch on the host and call the jitted step.
        current = copy(state)
        for index in train.epoch_order(key, 0, plan):
            current, _ = step(current, (data.x_train[index], data.y_train[index]))
        return current.params

    return (time_call(scanned, None, repeats=config.repeats) / config.epoch_steps,
            time_call(loop, None, repeats=config.repeats) / config.epoch_steps)


def _seed_setup(config):
    model = get_model("mlp", widths=tuple(config.seed_widths), num_outputs=10)
    tx = optim.get_optimizer("adam", 1e-3)
    data = _synthetic(config.seed_steps * config.seed_batch_size, config.seed_input_dim, 10, config.seed)
    return model, tx, data


def bench_seed_fits(config):
    """Seconds, end to end as a user sees them: one ``fit_seeds`` call for all seeds versus one
    ``fit`` call per seed (each call compiles its programs, then trains and evaluates)."""
    model, tx, data = _seed_setup(config)
    seeds = list(range(config.seeds))
    kwargs = dict(epochs=config.seed_epochs, batch_size=config.seed_batch_size, progress=False)
    start = time.perf_counter()
    jax.block_until_ready(train.fit_seeds(model, data, tx, seeds=seeds, **kwargs).state.params)
    vmapped = time.perf_counter() - start
    start = time.perf_counter()
    for s in seeds:
        jax.block_until_ready(train.fit(model, data, tx, seed=s, **kwargs).state.params)
    return vmapped, time.perf_counter() - start


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


def run(config, workdir: str) -> dict:
    _validate(config)
    os.makedirs(workdir, exist_ok=True)
    device = jax.devices()[0]
    rate = measure_matmul_rate(config.matmul_size, config.repeats)
    step_seconds, step_floor = bench_step(config, rate)
    tiny_scan, tiny_loop = bench_epoch(config, config.tiny_widths, config.tiny_input_dim, config.tiny_batch_size)
    small_scan, small_loop = bench_epoch(config, config.seed_widths, config.seed_input_dim, config.seed_batch_size)
    large_scan, large_loop = bench_epoch(config, config.step_widths, config.step_input_dim, config.step_batch_size)
    fits_vmapped, fits_sequential = bench_seed_fits(config)
    programs_vmapped, programs_sequential = bench_seed_programs(config)
    tiny = "-".join(map(str, (config.tiny_input_dim, *config.tiny_widths, 10)))
    small = "-".join(map(str, (config.seed_input_dim, *config.seed_widths, 10)))
    large = "-".join(map(str, (config.step_input_dim, *config.step_widths, 10)))
    rows = [
        [f"train step, MLP {large}, batch {config.step_batch_size}", step_seconds * 1e3, "FLOP floor",
         step_floor * 1e3, step_seconds / step_floor, "<= 2x floor"],
        [f"scanned epoch per step, MLP {tiny}, batch {config.tiny_batch_size}", tiny_scan * 1e3,
         "Python loop", tiny_loop * 1e3, tiny_loop / tiny_scan, ">= 1.5x faster"],
        [f"scanned epoch per step, MLP {small}, batch {config.seed_batch_size}", small_scan * 1e3,
         "Python loop", small_loop * 1e3, small_loop / small_scan, ""],
        [f"scanned epoch per step, MLP {large}, batch {config.step_batch_size}", large_scan * 1e3,
         "Python loop", large_loop * 1e3, large_loop / large_scan, "(compute-bound)"],
        [f"{config.seeds} seeds, one fit_seeds vs {config.seeds} fit calls ({config.seed_epochs} epochs)",
         fits_vmapped * 1e3, "sequential fits", fits_sequential * 1e3, fits_sequential / fits_vmapped,
         ">= 4x throughput"],
        [f"{config.seeds} seeds, warm epoch programs", programs_vmapped * 1e3, "sequential programs",
         programs_sequential * 1e3, programs_sequential / programs_vmapped, "(no compile)"],
    ]
    table = common.format_table(["row", "ms", "reference", "reference ms", "ratio", "target"], rows,
                                float_format="{:.3g}")
    header = (f"device: {device.platform} ({device.device_kind}), {jax.device_count()} device(s); "
              f"matmul rate {rate / 1e9:.1f} GFLOP/s at {config.matmul_size}^3 float32")
    print(header)
    return {
        "tables": {"benchmark": header + "\n\n" + table},
        "figures": [],
        "matmul_gflops": rate / 1e9,
        "step_over_floor": step_seconds / step_floor,
        "scan_speedup": tiny_loop / tiny_scan,
        "scan_speedup_small": small_loop / small_scan,
        "scan_speedup_large": large_loop / large_scan,
        "vmap_fit_speedup": fits_sequential / fits_vmapped,
        "vmap_program_speedup": programs_sequential / programs_vmapped,
        "seeds": int(config.seeds),
    }


def claims(result: dict) -> list:
    return [
        common.Claim.at_most("design target", "an MLP train step runs within 2x of its FLOP floor",
                             result["step_over_floor"], 2.0, "{:.2f}x"),
        common.Claim.at_least("design target", "a scanned epoch of an overhead-bound (tiny) MLP is >= 1.5x "
                              "faster per step than a Python loop of jitted steps", result["scan_speedup"], 1.5, "{:.2f}x"),
        common.Claim.at_least("design target", f"{result['seeds']} seeds in one vmapped fit give >= 4x the "
                              "throughput of sequential fits", result["vmap_fit_speedup"], 4.0, "{:.2f}x"),
    ]


def main(argv=None):
    return common.experiment_main(sys.modules[__name__], argv)


if __name__ == "__main__":
    main()
