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

- curvature: one full-data Hessian-vector product against one full-data gradient of the same
  MLP (about 100k parameters, 5000 examples); the top Hessian eigenvalue by 30 Lanczos steps as
  one compiled program against a Python loop of jitted HVPs with the Lanczos bookkeeping in
  NumPy, and against the HVP floor (steps x one HVP's time).

Targets (2 CPU cores): step <= 2x floor; scan >= 1.5x faster per step (tiny MLP); seeds >= 4x
throughput; HVP <= 3x gradient; Lanczos >= 1.5x faster than the loop.
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
from jaxdl import curvature, losses, optim, train, tree
from jaxdl.models import get_model

NAME = "benchmark"
DESCRIPTION = ("train-step, scanned-epoch, vmapped-seed and curvature (HVP, Lanczos) timings against FLOP "
               "floors and naive loops")


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
    c.curvature_widths = (320, 256)  # 40-320-256-10: 97,866 parameters
    c.curvature_input_dim = 40
    c.curvature_examples = 5000
    c.lanczos_steps = 30
    c.curvature_repeats = 3
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
        c.curvature_widths = (16,)
        c.curvature_input_dim = 8
        c.curvature_examples = 64
        c.lanczos_steps = 5
        c.curvature_repeats = 2
    elif size == "full":
        c.repeats = 20
        c.matmul_size = 4096
        c.epoch_steps = 200
    return c


def _validate(config):
    for field in ("repeats", "matmul_size", "step_batch_size", "tiny_batch_size", "epoch_steps", "seeds", "seed_batch_size", "seed_steps",
                  "seed_epochs", "curvature_input_dim", "curvature_examples", "lanczos_steps", "curvature_repeats"):
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


def time_interleaved(calls, repeats: int = 5) -> list[float]:
    """Median wall times of several ``(fn, args)`` calls, each warmed up once, then timed in
    alternation so that every call sees the same machine load (fair ratios on a shared host)."""
    for fn, args in calls:
        jax.block_until_ready(fn(*args))
    times = [[] for _ in calls]
    for _ in range(repeats):
        for (fn, args), record in zip(calls, times):
            start = time.perf_counter()
            jax.block_until_ready(fn(*args))
            record.append(time.perf_counter() - start)
    return [float(np.median(record)) for record in times]


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


def _curvature_setup(config):
    """The MLP's params, full data, and ``loss(params, batch)`` (mean cross-entropy)."""
    model = get_model("mlp", widths=tuple(config.curvature_widths), num_outputs=10)
    data = _synthetic(config.curvature_examples, config.curvature_input_dim, 10, config.seed)
    # A generic point, not a trained one: Gaussian kernels with variance 1 / fan-in and zero
    # biases, drawn on the host from the parameter shapes (no initialiser to compile).
    shapes = jax.eval_shape(model.init, jax.random.key(config.seed), data.x_train[:1])["params"]
    rng = np.random.default_rng(config.seed)
    params = jax.tree.map(
        lambda leaf: jnp.asarray(rng.normal(size=leaf.shape) / np.sqrt(leaf.shape[0]) if leaf.ndim > 1
                                 else np.zeros(leaf.shape), jnp.float32), shapes)
    apply_fn = train.make_apply_fn(model)

    def loss(p, batch):
        return losses.cross_entropy(apply_fn(p, batch[0]), batch[1])

    return params, (jnp.asarray(data.x_train), jnp.asarray(data.y_train)), loss


def bench_curvature(config):
    """Seconds for one full-data HVP and one full-data gradient (each jitted), and for the top
    eigenvalue by Lanczos: the compiled program versus a Python loop of the jitted HVP with full
    reorthogonalisation in NumPy (what a user would write first).

    Returns a dict of the times, both eigenvalues and the parameter count P.
    """
    params, data, loss = _curvature_setup(config)
    steps = config.lanczos_steps
    params_P, unflatten = tree.flatten(params)
    start = np.random.default_rng(config.seed).normal(size=params_P.shape).astype(np.float32)
    flat_hvp = jax.jit(lambda p, d, v: tree.flatten(curvature.hvp(loss, p, d, unflatten(v)))[0])
    gradient = jax.jit(jax.grad(loss))
    eigenvalues = {}

    def compiled(_):
        eigenvalues["compiled"] = curvature.hessian_top_eigenvalues(loss, params, data, num_steps=steps).eigenvalues[0]
        return eigenvalues["compiled"]

    def loop(_):
        basis = np.zeros((steps + 1, start.size), np.float32)
        alphas, betas = np.zeros(steps), np.zeros(steps)
        basis[0] = start / np.linalg.norm(start)
        for i in range(steps):
            w = np.array(flat_hvp(params, data, basis[i]))
            alphas[i] = w @ basis[i]
            for _ in range(2):
                w -= basis[: i + 1].T @ (basis[: i + 1] @ w)
            betas[i] = np.linalg.norm(w)
            basis[i + 1] = w / betas[i]
        tridiagonal = np.diag(alphas) + np.diag(betas[:-1], 1) + np.diag(betas[:-1], -1)
        eigenvalues["loop"] = np.linalg.eigvalsh(tridiagonal)[-1]
        return eigenvalues["loop"]

    hvp_seconds, gradient_seconds = time_interleaved([(flat_hvp, (params, data, start)), (gradient, (params, data))],
                                                     repeats=config.repeats)
    lanczos_seconds, loop_seconds = time_interleaved([(compiled, (None,)), (loop, (None,))],
                                                     repeats=config.curvature_repeats)
    return {
        "hvp": hvp_seconds,
        "gradient": gradient_seconds,
        "lanczos": lanczos_seconds,
        "lanczos_loop": loop_seconds,
        "eigenvalue": float(eigenvalues["compiled"]),
        "loop_eigenvalue": float(eigenvalues["loop"]),
        "num_params": int(params_P.size),
    }


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
    times = bench_curvature(config)
    hvp_seconds, gradient_seconds = times["hvp"], times["gradient"]
    lanczos_seconds, lanczos_loop = times["lanczos"], times["lanczos_loop"]
    hvp_floor = config.lanczos_steps * hvp_seconds
    curvature_net = "-".join(map(str, (config.curvature_input_dim, *config.curvature_widths, 10)))
    curvature_size = f"MLP {curvature_net} ({times['num_params']} params), {config.curvature_examples} examples"
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
        [f"HVP, {curvature_size}", hvp_seconds * 1e3, "gradient", gradient_seconds * 1e3,
         hvp_seconds / gradient_seconds, "<= 3x gradient"],
        [f"Lanczos top eigenvalue, {config.lanczos_steps} steps, {curvature_size}", lanczos_seconds * 1e3,
         "Python loop of jitted HVPs", lanczos_loop * 1e3, lanczos_loop / lanczos_seconds, ">= 1.5x faster"],
        [f"Lanczos top eigenvalue, {config.lanczos_steps} steps, {curvature_size}", lanczos_seconds * 1e3,
         f"HVP floor ({config.lanczos_steps} x HVP)", hvp_floor * 1e3, lanczos_seconds / hvp_floor,
         "(ratio to floor)"],
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
        "hvp_over_gradient": hvp_seconds / gradient_seconds,
        "lanczos_speedup": lanczos_loop / lanczos_seconds,
        "lanczos_over_hvp_floor": lanczos_seconds / hvp_floor,
        "lanczos_eigenvalue": times["eigenvalue"],
        "lanczos_loop_eigenvalue": times["loop_eigenvalue"],
    }


def claims(result: dict) -> list:
    return [
        common.Claim.at_most("design target", "an MLP train step runs within 2x of its FLOP floor",
                             result["step_over_floor"], 2.0, "{:.2f}x"),
        common.Claim.at_least("design target", "a scanned epoch of an overhead-bound (tiny) MLP is >= 1.5x "
                              "faster per step than a Python loop of jitted steps", result["scan_speedup"], 1.5, "{:.2f}x"),
        common.Claim.at_least("design target", f"{result['seeds']} seeds in one vmapped fit give >= 4x the "
                              "throughput of sequential fits", result["vmap_fit_speedup"], 4.0, "{:.2f}x"),
        common.Claim.at_most("design target", "a full-data Hessian-vector product (forward-over-reverse) costs "
                             "<= 3x a full-data gradient", result["hvp_over_gradient"], 3.0, "{:.2f}x"),
        common.Claim.at_least("design target", "Lanczos as one compiled program is >= 1.5x faster than a Python "
                              "loop of jitted HVPs", result["lanczos_speedup"], 1.5, "{:.2f}x"),
    ]


def main(argv=None):
    return common.experiment_main(sys.modules[__name__], argv)


if __name__ == "__main__":
    main()
