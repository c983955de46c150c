"""The empirical (finite-width) neural tangent kernel of any ``apply_fn(params, x)``.

Theta(x1, x2) = J(x1) J(x2)^T summed over every parameter, J the Jacobian of the outputs
``f(x)`` of shape ``(N, *out)`` with respect to ``params`` (Jacot, Gabriel & Hongler 2018).
Three ways to compute it, which agree to rounding:

- ``'jacobian'``: both Jacobians materialised and contracted (memory N O P);
- ``'ntvp'``: NTK-vector products, ``jvp`` of ``f(x1)`` along each row ``J(x2)^T e`` (a ``vjp``),
  never more than a chunk of rows at once;
- ``'structured'``: per-layer products of layer inputs and output cotangents for Dense and Conv
  layers (Novak, Sohl-Dickstein & Schoenholz 2022; :mod:`jaxdl.analysis.ntk.structured`), for Flax Linen
  models through :func:`jaxdl.train.make_apply_fn`;
- ``'auto'``: structured when it covers most parameters, else the Jacobian contraction when it
  fits in memory, else NTK-vector products.

Output axes: ``trace_axes`` are averaged over (output i of x1 against output i of x2, the
mean over logits as neural-tangents does); ``diagonal_axes`` keep only i = j; every other
output axis appears twice. The result has shape ``(N1, N2)`` followed, for each output axis
not traced, by ``(d,)`` if diagonal else ``(d, d)``. Axes are indices of ``f(x)``'s shape
(``-1`` the last; 0, the batch axis, is not an output axis).
"""
from __future__ import annotations

import functools
import string
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxdl.core import batching, checks, compiled, meshes, tree
from jaxdl.core.linalg import lanczos, ritz_pairs
from jaxdl.analysis.ntk import structured

__all__ = ["METHODS", "JACOBIAN_BYTES", "choose_method", "empirical_ntk", "monte_carlo_kernels", "ntk_vector_product",
           "ntk_top_eigenvalues"]

PyTree = Any
METHODS = ("auto", "jacobian", "ntvp", "structured")
JACOBIAN_BYTES = 2 ** 30  # 'auto' contracts Jacobians only below this size
_HIGHEST = jax.lax.Precision.HIGHEST


def _output_axes(name, axes, out_ndim) -> tuple[int, ...]:
    """Output axes as positions among the output axes (0 .. out_ndim - 1)."""
    positions = []
    for axis in axes:
        if not checks.is_integer(axis) or not (1 <= axis <= out_ndim or -out_ndim <= axis <= -1):
            checks.fail(name, tuple(axes), f"output axes of f(x), between 1 and {out_ndim} or -{out_ndim} and -1")
        positions.append((axis - 1) if axis > 0 else out_ndim + axis)
    return tuple(sorted(set(positions)))


def _finish(theta_full, out_shape, trace, diagonal):
    """``theta_full`` (N1, N2, *out, *out) with ``trace`` averaged and ``diagonal`` kept diagonal."""
    m = len(out_shape)
    first, second = string.ascii_lowercase[:m], string.ascii_lowercase[m:2 * m]
    second = "".join(first[i] if i in trace or i in diagonal else second[i] for i in range(m))
    kept = "".join(first[i] + ("" if i in diagonal else second[i]) for i in range(m) if i not in trace)
    result = jnp.einsum(f"YZ{first}{second}->YZ{kept}", theta_full)
    size = int(np.prod([out_shape[i] for i in trace])) if trace else 1
    return result / size


def _jacobian_full(apply_fn, params, x1, x2, same):
    out_shape = jax.eval_shape(apply_fn, params, x1[:1]).shape[1:]
    num_outputs = int(np.prod(out_shape))

    def jacobian(x):
        j = jax.jacrev(lambda p: apply_fn(p, x).reshape(x.shape[0] * num_outputs))(params)
        return [leaf.reshape(x.shape[0] * num_outputs, -1) for leaf in jax.tree.leaves(j)]

    j1 = jacobian(x1)
    j2 = j1 if same else jacobian(x2)
    flat = sum(jnp.matmul(a, b.T, precision=_HIGHEST) for a, b in zip(j1, j2))
    return flat.reshape(x1.shape[0], num_outputs, x2.shape[0], num_outputs).transpose(0, 2, 1, 3)


def _ntvp_full(apply_fn, params, x1, x2, rows_per_chunk):
    out_shape = jax.eval_shape(apply_fn, params, x1[:1]).shape[1:]
    num_outputs = int(np.prod(out_shape))
    f1 = lambda p: apply_fn(p, x1).reshape(x1.shape[0], num_outputs)
    f2 = lambda p: apply_fn(p, x2).reshape(x2.shape[0] * num_outputs)
    _, vjp2 = jax.vjp(f2, params)

    def column(index):
        row = vjp2(jax.nn.one_hot(index, x2.shape[0] * num_outputs, dtype=x2.dtype))[0]  # J(x2)^T e
        return jax.jvp(f1, (params,), (row,))[1]  # J(x1) J(x2)^T e: (N1, O)

    columns = batching.map_in_chunks(column, jnp.arange(x2.shape[0] * num_outputs), rows_per_chunk)
    return columns.reshape(x2.shape[0], num_outputs, x1.shape[0], num_outputs).transpose(2, 0, 3, 1)


@compiled.jit(static_argnames=("method", "trace", "diagonal", "rows_per_chunk", "same"))
def _block(apply_fn, params, x1, x2, *, method, trace, diagonal, rows_per_chunk, same):
    out_shape = jax.eval_shape(apply_fn, params, x1[:1]).shape[1:]
    x2 = x1 if same else x2
    if method == "jacobian":
        full = _jacobian_full(apply_fn, params, x1, x2, same)
    elif method == "ntvp":
        full = _ntvp_full(apply_fn, params, x1, x2, rows_per_chunk)
    else:
        full = structured.structured_ntk_full(apply_fn, params, x1, x2)
    full = full.reshape((x1.shape[0], x2.shape[0]) + tuple(out_shape) * 2)
    return _finish(full, out_shape, trace, diagonal)


def choose_method(apply_fn, params, x1, x2=None) -> str:
    """What ``method='auto'`` picks: ``'structured'`` if it covers at least half of the
    parameters, else ``'jacobian'`` if both Jacobians take under ``JACOBIAN_BYTES``, else
    ``'ntvp'`` (about 2 N2 O passes, memory of one chunk of rows).

    By FLOPs: on the layers it covers, ``'structured'`` contracts each layer in the cheaper of
    two orders, pairs of positions first or the layer's per-example Jacobian first (the latter
    is what ``'jacobian'`` does for that layer), so it never costs more than the contraction
    beyond the shared forward and backward passes (``python -m experiments.benchmark`` times
    every method). ``'ntvp'`` trades FLOPs (a vjp and a jvp per row) for memory."""
    x2 = x1 if x2 is None else x2
    if structured.coverage(apply_fn, params, x1[:1]) >= 0.5:
        return "structured"
    out = jax.eval_shape(apply_fn, params, x1[:1])
    num_outputs = int(np.prod(out.shape[1:]))
    jacobian_bytes = (x1.shape[0] + x2.shape[0]) * num_outputs * tree.count(params) * out.dtype.itemsize
    return "jacobian" if jacobian_bytes < JACOBIAN_BYTES else "ntvp"


def _check_inputs(apply_fn, params, x1, x2):
    if not callable(apply_fn):
        checks.fail("apply_fn", apply_fn, "a callable apply_fn(params, x)")
    if x2 is not None and np.shape(x1)[1:] != np.shape(x2)[1:]:
        checks.fail("x2", f"inputs of shape {np.shape(x2)[1:]}", f"inputs shaped like x1's {np.shape(x1)[1:]}")


def empirical_ntk(apply_fn: Callable, params: PyTree, x1, x2=None, *, method: str = "auto", trace_axes=(-1,),
                  diagonal_axes=(), chunk_size: int | None = None, rows_per_chunk: int | None = 64) -> jax.Array:
    """The empirical NTK Theta(x1, x2) = J(x1) J(x2)^T (Jacot et al. 2018), see the module
    docstring for the methods and the output axes.

    Args:
      apply_fn: ``apply_fn(params, x_Nx...) -> outputs_Nx...``; ``'structured'`` needs a Flax
        Linen model (:func:`jaxdl.train.make_apply_fn`).
      params: pytree theta.
      x1: inputs ``(N1, ...)``; x2: inputs ``(N2, ...)``, default ``x1``.
      method: one of ``METHODS``.
      trace_axes: output axes averaged over (default the last: the mean over logits).
      diagonal_axes: output axes kept diagonal.
      chunk_size: examples per chunk of x1 and of x2 (memory bounded by a pair of chunks), or
        None for all at once.
      rows_per_chunk: rows J(x2)^T e computed together by ``'ntvp'`` -- not examples: x2 has one
        row per example and output, N2 O in all.

    Returns:
      ``(N1, N2, ...)`` kernel as described in the module docstring.
    """
    _check_inputs(apply_fn, params, x1, x2)
    checks.one_of("method", method, METHODS)
    checks.integer("chunk_size", chunk_size, allow_none=True)
    checks.integer("rows_per_chunk", rows_per_chunk, allow_none=True)
    out_ndim = len(jax.eval_shape(apply_fn, params, x1[:1]).shape) - 1
    trace, diagonal = _output_axes("trace_axes", trace_axes, out_ndim), _output_axes("diagonal_axes", diagonal_axes,
                                                                                  out_ndim)
    if set(trace) & set(diagonal):
        checks.fail("diagonal_axes", tuple(diagonal_axes), "axes not also in trace_axes")
    same = x2 is None
    x2 = x1 if same else x2
    if method == "auto":
        method = choose_method(apply_fn, params, x1, x2)
    elif method == "structured" and structured.coverage(apply_fn, params, x1[:1]) == 0:
        checks.fail("method", method, "'structured' only for a Flax Linen model with Dense or Conv layers "
                    "(jaxdl.train.make_apply_fn); use 'jacobian' or 'ntvp'")
    options = dict(method=method, trace=trace, diagonal=diagonal, rows_per_chunk=rows_per_chunk)
    step = chunk_size or max(len(x1), len(x2))
    rows = []
    for i in range(0, len(x1), step):
        row = []
        for j in range(0, len(x2), step):
            # The block's rows split over the devices, its columns and the parameters on each.
            rows_block, params_placed, columns_block = meshes.shard_examples(x1[i:i + step], params,
                                                                               x2[j:j + step])
            row.append(_block(apply_fn, params_placed, rows_block, columns_block,
                              same=same and i == j and len(x1) <= step, **options))
        rows.append(jnp.concatenate(row, axis=1))
    return jnp.concatenate(rows, axis=0)


def ntk_vector_product(apply_fn: Callable, params: PyTree, x, v) -> jax.Array:
    """Theta v = J (J^T v) for ``v`` shaped like the outputs ``f(x)``, matrix-free (a ``vjp``
    then a ``jvp``; no output axis traced). Jit-able."""
    _, vjp = jax.vjp(lambda p: apply_fn(p, x), params)
    return jax.jvp(lambda p: apply_fn(p, x), (params,), (vjp(v)[0],))[1]


@compiled.jit(static_argnames=("num_steps",))
def _ntk_lanczos(apply_fn, params, x, key, order_Q, *, num_steps):
    out = jax.eval_shape(apply_fn, params, x)
    matvec = lambda v: ntk_vector_product(apply_fn, params, x, v.reshape(out.shape)).reshape(-1)
    start = jax.random.normal(key, (int(np.prod(out.shape)),), out.dtype)
    theta_S, _ = ritz_pairs(lanczos(matvec, start, num_steps))
    return theta_S[order_Q]


def ntk_top_eigenvalues(apply_fn: Callable, params: PyTree, x, k: int = 1, *, num_steps: int = 30,
                        key: jax.Array | None = None) -> jax.Array:
    """The ``k`` largest eigenvalues (descending) of the full NTK on ``x`` (an (N O, N O)
    matrix) by Lanczos on :func:`ntk_vector_product`, never forming the kernel."""
    size = int(np.prod(jax.eval_shape(apply_fn, params, x).shape))
    num_steps = checks.integer("num_steps", num_steps, maximum=size, maximum_name="the kernel's size N O")
    k = checks.integer("k", k, maximum=num_steps, maximum_name="num_steps")
    key = jax.random.key(0) if key is None else key
    return _ntk_lanczos(apply_fn, params, x, key, np.arange(num_steps - 1, num_steps - 1 - k, -1),
                        num_steps=num_steps)


def monte_carlo_kernels(module: nn.Module, x1, x2=None, *, num_samples: int, key: jax.Array,
                        samples_per_chunk: int | None = 8) -> dict:
    """The NNGP kernel and the NTK of ``module`` averaged over ``num_samples`` random
    initialisations (``module.init(key_k, x1)``): E[f(x1) f(x2)^T] and E[J(x1) J(x2)^T] (:func:`empirical_ntk`),
    each the mean over the output units too, the finite-width estimate of what
    :meth:`jaxdl.analysis.ntk.Network.kernels`
    gives in the limit (neural-tangents' ``monte_carlo_kernel_fn``).

    Args:
      module: any Flax Linen module mapping ``(N, ...)`` to ``(N, O)`` (e.g. ``net.module()``).
      x1: inputs ``(N1, ...)``; x2: ``(N2, ...)``, default ``x1``.
      num_samples: random initialisations.
      key: a JAX PRNG key; sample k uses ``jax.random.split(key, num_samples)[k]``.
      samples_per_chunk: initialisations evaluated together (vmapped), ``lax.map`` across
        chunks; None is all at once.

    Returns:
      ``{'nngp': (N1, N2), 'ntk': (N1, N2), 'nngp_samples': (num_samples, N1, N2)}``: the means
      and each initialisation's NNGP estimate (its spread gives the Monte Carlo error).
    """
    if not isinstance(module, nn.Module):
        checks.fail("module", type(module).__name__, "a flax.linen.Module")
    num_samples = checks.integer("num_samples", num_samples, minimum=1)
    checks.integer("samples_per_chunk", samples_per_chunk, allow_none=True)
    x1 = jnp.asarray(x1)
    x2 = x1 if x2 is None else jnp.asarray(x2)
    return _monte_carlo(module, x1, x2, jax.random.split(key, num_samples), samples_per_chunk)


@functools.partial(jax.jit, static_argnums=(0, 4))
def _monte_carlo(module, x1, x2, keys_K, samples_per_chunk):
    def one(key):
        params = module.init(key, x1[:1])
        f1, f2 = module.apply(params, x1), module.apply(params, x2)
        outputs = f1.shape[-1]
        ntk = empirical_ntk(module.apply, params, x1, x2, method="jacobian")  # mean over the outputs
        return f1 @ f2.T / outputs, ntk

    nngp_K, ntk_K = batching.map_in_chunks(one, keys_K, samples_per_chunk)
    return {"nngp": jnp.mean(nngp_K, 0), "ntk": jnp.mean(ntk_K, 0), "nngp_samples": nngp_K}
