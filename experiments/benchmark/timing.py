"""Timers, the machine's matmul rate, FLOP counts and synthetic data for the benchmarks.

A FLOP floor is a FLOP count divided by :func:`measure_matmul_rate`, measured in the same run,
so ratios to the floor compare like with like on any device.
"""
from __future__ import annotations

import time
import types

import jax
import jax.numpy as jnp
import numpy as np


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


def compiled_flops(fn, *args) -> float:
    """XLA's FLOP count of ``jax.jit(fn)(*args)``, from the compiled program's cost analysis.

    Counts every operation XLA costs (convolutions and matmuls at 2 per multiply-add, plus
    elementwise work), so for conv nets it is the floor's numerator that a by-hand count would
    get wrong. ``cost_analysis()`` returns a dict in current JAX and a one-element list of dicts
    in older versions; both are accepted. ``ValueError`` if the backend reports no ``'flops'``.
    """
    analysis = jax.jit(fn).lower(*args).compile().cost_analysis()
    if isinstance(analysis, (list, tuple)):
        analysis = analysis[0] if analysis else None
    if not analysis or "flops" not in analysis:
        keys = sorted(analysis) if analysis else []
        raise ValueError(f"XLA's cost analysis on {jax.default_backend()!r} has no 'flops' entry (it has {keys}); "
                         "cannot compute a FLOP floor for this function")
    flops = float(analysis["flops"])
    if not flops > 0:
        raise ValueError(f"XLA's cost analysis reports {flops} FLOPs; cannot compute a FLOP floor")
    return flops


def generic_point(shapes, seed: int):
    """A pytree of arrays shaped like ``shapes`` (``jax.ShapeDtypeStruct`` leaves, e.g. from
    ``jax.eval_shape``), drawn on the host: Gaussian kernels with variance 1 / fan-in (the
    product of all axes but the last), ones for every 1-D or scalar float leaf (biases,
    BatchNorm scales and statistics), zeros for integer leaves (step counts, rng words).

    A generic point for timing, not a trained one, the same in every bench.
    """
    rng = np.random.default_rng(seed)

    def draw(leaf):
        if not jnp.issubdtype(leaf.dtype, jnp.floating):
            return jnp.zeros(leaf.shape, leaf.dtype)
        if leaf.ndim < 2:
            return jnp.ones(leaf.shape, leaf.dtype)
        return jnp.asarray(rng.normal(size=leaf.shape) / np.sqrt(np.prod(leaf.shape[:-1])), leaf.dtype)

    return jax.tree.map(draw, shapes)


def synthetic_data(num: int, input_shape, num_classes: int, seed: int):
    """A data set of ``num`` standard-normal inputs of shape ``input_shape`` (an int is a
    vector length) and uniform labels, with the fields :func:`jaxdl.train.fit` reads; the test
    split is the first 256 training examples."""
    input_shape = (input_shape,) if isinstance(input_shape, (int, np.integer)) else tuple(input_shape)
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(num, *input_shape)).astype(np.float32)
    y = rng.integers(0, num_classes, size=num).astype(np.int32)
    return types.SimpleNamespace(x_train=x, y_train=y, x_test=x[:256], y_test=y[:256],
                                 num_classes=num_classes, name="synthetic")


def net_name(input_dim, widths) -> str:
    """An MLP's layer widths as a row label, ``'40-256-256-10'`` (10 outputs)."""
    return "-".join(map(str, (input_dim, *widths, 10)))
