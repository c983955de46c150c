"""Hessian- and Gauss-Newton-vector products over a whole data set.

Conventions shared by the curvature tools (those of the whole library, see :mod:`jaxdl`):

- ``loss_fn(params, batch) -> scalar`` is the MEAN loss over the examples of ``batch``
  (e.g. :func:`jaxdl.train.losses.make_loss_fn`);
- ``batch`` is a pytree whose leaves share a leading example axis of size N, normally
  ``(x_Nx..., y_N...)``: the whole data set the curvature is measured on;
- full-data quantities are size-weighted means over chunks of ``chunk_size`` examples
  (:func:`jaxdl.core.batching.dataset_mean`), so a data set that does not fit in memory at once
  gives the same number as one that does (``chunk_size=None``: one pass).

Products are forward-over-reverse (``jax.jvp`` of ``jax.grad``; Pearlmutter 1994, "Fast exact
multiplication by the Hessian"). The flat operators (:func:`hessian_matvec`,
:func:`gauss_newton_matvec`) act on vectors in R^P; iterative methods such as Lanczos apply them
many times at the same ``params``.
"""
from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

from jaxdl.core import batching, checks, tree

__all__ = ["default_key", "hvp", "hessian_quadratic_form", "gauss_newton_vp", "gradient_and_hessian_matvec",
           "hessian_matvec", "gauss_newton_matvec"]

PyTree = Any


def default_key(key: jax.Array | None) -> jax.Array:
    """``key``, or ``jax.random.key(0)`` when it is None (the tools' default seed)."""
    return jax.random.key(0) if key is None else key


def hvp(loss_fn: Callable, params: PyTree, batch: PyTree, v: PyTree, *, chunk_size: int | None = None) -> PyTree:
    """Hessian-vector product H v of the data-set mean loss, forward-over-reverse.

    H = d^2/dtheta^2 (1/N) sum_n loss_n(theta) at ``params``; computed as
    ``jvp(grad(loss_fn), params, v)`` per chunk (Pearlmutter 1994) and combined as a size-weighted
    mean (:func:`jaxdl.core.batching.dataset_mean`). Jit-able.

    Args:
      loss_fn: ``loss_fn(params, batch) -> scalar`` mean over the batch.
      params: pytree theta (P numbers in all).
      batch: pytree with leading example axis N.
      v: pytree shaped like ``params``.
      chunk_size: examples per chunk, or None for one pass.

    Returns:
      H v, a pytree shaped like ``params``.
    """
    def chunk_hvp(chunk):
        return jax.jvp(jax.grad(lambda p: loss_fn(p, chunk)), (params,), (v,))[1]

    return batching.dataset_mean(chunk_hvp, batch, chunk_size)


def hessian_quadratic_form(loss_fn: Callable, params: PyTree, batch: PyTree, v: PyTree, *,
                           chunk_size: int | None = None) -> jax.Array:
    """v^T H v of the data-set mean loss, as the second derivative of t -> loss(params + t v) at 0.

    Forward-over-forward (``jax.jvp`` of ``jax.jvp`` in the scalar t): no backward pass and no
    P-vector H v, about four forward passes against an HVP's five or six, so Hutchinson's
    estimator (which needs only z^T H z) is cheaper through it than through :func:`hvp`. The
    same number as ``vdot(v, hvp(...))`` up to rounding; size-weighted over chunks. Jit-able.

    Args:
      loss_fn, params, batch, chunk_size: as for :func:`hvp`.
      v: pytree shaped like ``params``.

    Returns:
      The scalar v^T H v.
    """
    def chunk_form(chunk):
        along = lambda t: loss_fn(tree.axpy(t, v, params), chunk)
        slope = lambda t: jax.jvp(along, (t,), (jnp.ones_like(t),))[1]
        zero = jnp.zeros((), jnp.result_type(*jax.tree.leaves(params)))
        return jax.jvp(slope, (zero,), (jnp.ones_like(zero),))[1]

    return batching.dataset_mean(chunk_form, batch, chunk_size)


def gauss_newton_vp(apply_fn: Callable, output_loss_fn: Callable, params: PyTree, batch: PyTree, v: PyTree, *,
                    chunk_size: int | None = None) -> PyTree:
    """Generalised Gauss-Newton product G v = J^T H_out J v of the data-set mean loss.

    J is the Jacobian of the outputs ``apply_fn(params, x)`` with respect to ``params`` and
    H_out the Hessian of ``output_loss_fn`` with respect to the outputs (Schraudolph 2002,
    "Fast curvature matrix-vector products"). G is positive semi-definite for a convex
    ``output_loss_fn`` and equals the Hessian when the model is linear in ``params``. One forward
    pass per chunk (``jax.linearize``), then J v, H_out (J v) and J^T (.).

    Args:
      apply_fn: ``apply_fn(params, x_Bx...) -> outputs_Bx...``.
      output_loss_fn: ``output_loss_fn(outputs_Bx..., y_B...) -> scalar`` mean over the batch, e.g.
        :func:`jaxdl.train.losses.cross_entropy`.
      params, v: pytrees of the same structure.
      batch: ``(x_Nx..., y_N...)``.
      chunk_size: examples per chunk, or None.

    Returns:
      G v, a pytree shaped like ``params``.
    """
    def chunk_gnvp(chunk):
        x, y = chunk
        outputs, jacobian_vp = jax.linearize(lambda p: apply_fn(p, x), params)
        jv = jacobian_vp(v)
        hjv = jax.jvp(jax.grad(lambda o: output_loss_fn(o, y)), (outputs,), (jv,))[1]
        return jax.linear_transpose(jacobian_vp, params)(hjv)[0]

    return batching.dataset_mean(chunk_gnvp, batch, chunk_size)


def _one_pass(batch, chunk_size) -> bool:
    return chunk_size is None or chunk_size >= batching.num_examples(batch)


def gradient_and_hessian_matvec(loss_fn: Callable, params: PyTree, batch: PyTree, *,
                                chunk_size: int | None = None) -> tuple[jax.Array, Callable[[jax.Array], jax.Array]]:
    """The flat gradient ``g_P`` of the data-set mean loss at ``params`` and the Hessian there as
    a linear operator on flat vectors, ``v_P -> (H v)_P`` (:func:`jaxdl.core.tree.flatten` order).

    With ``chunk_size=None`` the gradient is linearised once (``jax.linearize``): the gradient is
    its primal output, and the primal forward and backward passes are shared by every later
    product, each of which then costs only the tangent passes -- what makes a Lanczos or
    Hutchinson loop cheaper than repeated :func:`hvp` calls. With chunks, the gradient is one
    more pass over the chunks and each product recomputes the primal passes per chunk (memory
    bounded by one chunk). Call inside ``jit``.
    """
    checks.integer("chunk_size", chunk_size, allow_none=True)
    params_P, unflatten = tree.flatten(params)
    if _one_pass(batch, chunk_size):
        return jax.linearize(lambda theta_P: tree.flatten(jax.grad(loss_fn)(unflatten(theta_P), batch))[0], params_P)
    gradient = batching.dataset_mean(lambda chunk: jax.grad(loss_fn)(params, chunk), batch, chunk_size)
    return tree.flatten(gradient)[0], hessian_matvec(loss_fn, params, batch, chunk_size=chunk_size)


def hessian_matvec(loss_fn: Callable, params: PyTree, batch: PyTree, *,
                   chunk_size: int | None = None) -> Callable[[jax.Array], jax.Array]:
    """The Hessian at ``params`` as a linear operator on flat vectors: ``v_P -> (H v)_P``, the
    operator of :func:`gradient_and_hessian_matvec` (the gradient linearised once without
    chunks; with chunks each product recomputes it per chunk, and no gradient pass is spent).
    Call inside ``jit``."""
    checks.integer("chunk_size", chunk_size, allow_none=True)
    if _one_pass(batch, chunk_size):
        return gradient_and_hessian_matvec(loss_fn, params, batch, chunk_size=chunk_size)[1]
    unflatten = tree.flatten(params)[1]
    return lambda v_P: tree.flatten(hvp(loss_fn, params, batch, unflatten(v_P), chunk_size=chunk_size))[0]


def gauss_newton_matvec(apply_fn: Callable, output_loss_fn: Callable, params: PyTree, batch: PyTree, *,
                        chunk_size: int | None = None) -> Callable[[jax.Array], jax.Array]:
    """The Gauss-Newton matrix at ``params`` as a linear operator ``v_P -> (G v)_P`` on flat
    vectors (see :func:`gauss_newton_vp`); pass it to :func:`jaxdl.core.linalg.lanczos`."""
    checks.integer("chunk_size", chunk_size, allow_none=True)
    unflatten = tree.flatten(params)[1]
    return lambda v_P: tree.flatten(
        gauss_newton_vp(apply_fn, output_loss_fn, params, batch, unflatten(v_P), chunk_size=chunk_size))[0]
