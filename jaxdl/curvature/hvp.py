"""Hessian- and Gauss-Newton-vector products over a whole data set.

Conventions shared by the curvature tools:

- ``loss(params, batch) -> scalar`` is the MEAN loss over the examples of ``batch``;
- ``data`` is a pytree batch whose leaves share a leading example axis of size N, normally
  ``(x_Nx..., y_N...)``;
- full-data quantities are size-weighted means over chunks of ``chunk_size`` examples, so a
  data set that does not fit in memory at once gives the same number as one that does
  (``chunk_size=None``: one pass over all of ``data``).

Products are forward-over-reverse (``jax.jvp`` of ``jax.grad``; Pearlmutter 1994, "Fast exact
multiplication by the Hessian"). The flat operators (:func:`hessian_matvec`,
:func:`gauss_newton_matvec`) act on vectors in R^P; iterative methods such as Lanczos apply them
many times at the same ``params``.
"""
from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxdl import tree

PyTree = Any


def num_examples(data: PyTree) -> int:
    """N, the leading size shared by every leaf of ``data``; ``ValueError`` naming ``data`` if
    the leaves disagree or there are none."""
    sizes = {int(jnp.shape(leaf)[0]) if jnp.ndim(leaf) else -1 for leaf in jax.tree.leaves(data)}
    if not sizes or -1 in sizes or len(sizes) != 1:
        shapes = [jnp.shape(leaf) for leaf in jax.tree.leaves(data)]
        raise ValueError(f"data: every leaf needs the same leading example axis, got shapes {shapes}")
    return sizes.pop()


def check_chunk_size(chunk_size: int | None) -> None:
    """``ValueError`` naming ``chunk_size`` unless it is None or a positive integer."""
    valid = isinstance(chunk_size, (int, np.integer)) and not isinstance(chunk_size, bool) and chunk_size > 0
    if chunk_size is not None and not valid:
        raise ValueError(f"chunk_size must be a positive integer or None, got {chunk_size!r}")


def default_key(key: jax.Array | None) -> jax.Array:
    """``key``, or ``jax.random.key(0)`` when it is None (the tools' default seed)."""
    return jax.random.key(0) if key is None else key


def chunked_mean(fn: Callable[[PyTree], PyTree], data: PyTree, chunk_size: int | None = None) -> PyTree:
    """The data-set mean of ``fn(batch)``, where ``fn`` returns a mean over its batch.

    ``data`` is cut along axis 0 into ``N // chunk_size`` chunks of ``chunk_size`` examples,
    mapped with ``lax.map``, and a remainder of ``N % chunk_size`` examples handled by one more
    call; the chunk means are combined weighted by their sizes, so the result equals
    ``fn(data)`` up to rounding. ``chunk_size=None`` (or >= N) is ``fn(data)``.

    Args:
      fn: ``batch -> pytree`` of per-batch means (a loss, gradient, HVP, ...).
      data: pytree with leading example axis N on every leaf.
      chunk_size: examples per chunk, or None.

    Returns:
      A pytree like ``fn``'s output.
    """
    check_chunk_size(chunk_size)
    if chunk_size is None:
        return fn(data)
    num = num_examples(data)
    if chunk_size >= num:
        return fn(data)
    num_chunks, remainder = divmod(num, chunk_size)
    head = jax.tree.map(
        lambda a: a[: num_chunks * chunk_size].reshape((num_chunks, chunk_size) + a.shape[1:]), data)
    chunk_means = jax.lax.map(fn, head)
    total = jax.tree.map(lambda m: jnp.sum(m, axis=0) * chunk_size, chunk_means)
    if remainder:
        tail = fn(jax.tree.map(lambda a: a[num_chunks * chunk_size:], data))
        total = tree.axpy(remainder, tail, total)
    return tree.scale(1.0 / num, total)


def hvp(loss: Callable, params: PyTree, data: PyTree, v: PyTree, *, chunk_size: int | None = None) -> PyTree:
    """Hessian-vector product H v of the data-set mean loss, forward-over-reverse.

    H = d^2/dtheta^2 (1/N) sum_n loss_n(theta) at ``params``; computed as
    ``jvp(grad(loss), params, v)`` per chunk (Pearlmutter 1994) and combined as a size-weighted
    mean (:func:`chunked_mean`). Jit-able.

    Args:
      loss: ``loss(params, batch) -> scalar`` mean over the batch.
      params: pytree theta (P numbers in all).
      data: pytree batch with leading example axis N.
      v: pytree shaped like ``params``.
      chunk_size: examples per chunk, or None for one pass.

    Returns:
      H v, a pytree shaped like ``params``.
    """
    def batch_hvp(batch):
        return jax.jvp(jax.grad(lambda p: loss(p, batch)), (params,), (v,))[1]

    return chunked_mean(batch_hvp, data, chunk_size)


def gauss_newton_vp(apply_fn: Callable, output_loss: Callable, params: PyTree, data: PyTree, v: PyTree, *,
                    chunk_size: int | None = None) -> PyTree:
    """Generalised Gauss-Newton product G v = J^T H_out J v of the data-set mean loss.

    J is the Jacobian of the outputs ``apply_fn(params, x)`` with respect to ``params`` and
    H_out the Hessian of ``output_loss`` with respect to the outputs (Schraudolph 2002,
    "Fast curvature matrix-vector products"). G is positive semi-definite for a convex
    ``output_loss`` and equals the Hessian when the model is linear in ``params``. One forward
    pass per chunk (``jax.linearize``), then J v, H_out (J v) and J^T (.).

    Args:
      apply_fn: ``apply_fn(params, x_Bx...) -> outputs_Bx...``.
      output_loss: ``output_loss(outputs_Bx..., y_B...) -> scalar`` mean over the batch, e.g.
        :func:`jaxdl.losses.cross_entropy`.
      params, v: pytrees of the same structure.
      data: ``(x_Nx..., y_N...)``.
      chunk_size: examples per chunk, or None.

    Returns:
      G v, a pytree shaped like ``params``.
    """
    def batch_gnvp(batch):
        x, y = batch
        outputs, jacobian_vp = jax.linearize(lambda p: apply_fn(p, x), params)
        jv = jacobian_vp(v)
        hjv = jax.jvp(jax.grad(lambda o: output_loss(o, y)), (outputs,), (jv,))[1]
        return jax.linear_transpose(jacobian_vp, params)(hjv)[0]

    return chunked_mean(batch_gnvp, data, chunk_size)


def hessian_matvec(loss: Callable, params: PyTree, data: PyTree, *,
                   chunk_size: int | None = None) -> Callable[[jax.Array], jax.Array]:
    """The Hessian at ``params`` as a linear operator on flat vectors: ``v_P -> (H v)_P``.

    Flat vectors follow :func:`jaxdl.tree.flatten` order. With ``chunk_size=None`` the gradient
    is linearised once (``jax.linearize``): the primal forward and backward passes are shared by
    every later product, each of which then costs only the tangent passes -- what makes a
    Lanczos or Hutchinson loop cheaper than repeated :func:`hvp` calls. With chunks, each
    product recomputes them per chunk (memory bounded by one chunk). Call inside ``jit``.
    """
    check_chunk_size(chunk_size)
    params_P, unflatten = tree.flatten(params)
    if chunk_size is None or chunk_size >= num_examples(data):
        def flat_gradient(theta_P):
            return tree.flatten(jax.grad(loss)(unflatten(theta_P), data))[0]

        return jax.linearize(flat_gradient, params_P)[1]
    return lambda v_P: tree.flatten(hvp(loss, params, data, unflatten(v_P), chunk_size=chunk_size))[0]


def gauss_newton_matvec(apply_fn: Callable, output_loss: Callable, params: PyTree, data: PyTree, *,
                        chunk_size: int | None = None) -> Callable[[jax.Array], jax.Array]:
    """The Gauss-Newton matrix at ``params`` as a linear operator ``v_P -> (G v)_P`` on flat
    vectors (see :func:`gauss_newton_vp`); pass it to :func:`jaxdl.curvature.lanczos`."""
    check_chunk_size(chunk_size)
    unflatten = tree.flatten(params)[1]
    return lambda v_P: tree.flatten(
        gauss_newton_vp(apply_fn, output_loss, params, data, unflatten(v_P), chunk_size=chunk_size))[0]
