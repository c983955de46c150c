"""Sharpness of a minimum: the largest loss increase in a small neighbourhood.

- :func:`epsilon_sharpness` -- Keskar et al. 2017, "On large-batch training for deep learning:
  generalization gap and sharp minima", metric 2.1: the box C_eps = {|y_i| <= eps (|x_i| + 1)}
  in the full space, or the box on z in a random subspace y = A z (their appendix);
- :func:`ball_sharpness` -- the Euclidean-ball version of Dinh, Pascanu, Bengio & Bengio 2017,
  "Sharp minima can generalize for deep nets".

The loss is the full-data mean (chunked with ``chunk_size``). The maximisation is either
SciPy's L-BFGS-B with the box as bounds (a host loop of about ten jitted value-and-gradient
calls, as in Keskar et al.) or projected gradient ascent, one ``lax.fori_loop``.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxdl.core import batching, checks, compiled, tree
from jaxdl.analysis.curvature.hvp import default_key

__all__ = ["METHODS", "Sharpness", "epsilon_sharpness", "ball_sharpness"]

PyTree = Any
METHODS = ("lbfgsb", "ascent")


class Sharpness(NamedTuple):
    """A sharpness value and where it was attained.

    Attributes:
      value: the sharpness (see the function that returned it).
      perturbation: the maximising y, a pytree shaped like ``params`` (y = A z in a subspace).
      loss: f(x), the full-data loss at ``params``.
      perturbed_loss: f(x + y).
    """

    value: jax.Array
    perturbation: PyTree
    loss: jax.Array
    perturbed_loss: jax.Array


def _perturbed_loss(loss_fn, params, batch, subspace_PxQ, u, chunk_size):
    x_P, unflatten = tree.flatten(params)
    y_P = u if subspace_PxQ is None else jnp.matmul(subspace_PxQ, u, precision=jax.lax.Precision.HIGHEST)
    return batching.dataset_mean(lambda chunk: loss_fn(unflatten(x_P + y_P), chunk), batch, chunk_size)


@compiled.jit(static_argnames=("chunk_size",))
def _value_and_grad(loss_fn, params, batch, subspace_PxQ, u, *, chunk_size):
    return jax.value_and_grad(lambda u: _perturbed_loss(loss_fn, params, batch, subspace_PxQ, u, chunk_size))(u)


@compiled.jit(static_argnames=("num_steps", "chunk_size", "ball"))
def _projected_ascent(loss_fn, params, batch, subspace_PxQ, u0, bounds, step_size, *, num_steps, chunk_size,
                      ball):
    value_and_grad = jax.value_and_grad(lambda u: _perturbed_loss(loss_fn, params, batch, subspace_PxQ, u,
                                                                  chunk_size))

    def body(t, carry):
        u, best_u, best_value = carry
        value, g = value_and_grad(u)
        best_u, best_value = jnp.where(value > best_value, u, best_u), jnp.maximum(value, best_value)
        if ball:
            # Normalised gradient step of step_size * radius, then back into the ball.
            u = u + step_size * bounds * g / jnp.maximum(jnp.linalg.norm(g), jnp.finfo(g.dtype).tiny)
            u = u * jnp.minimum(1.0, bounds / jnp.maximum(jnp.linalg.norm(u), jnp.finfo(u.dtype).tiny))
        else:
            # Sign-gradient step (as in PGD attacks), shrinking linearly so that coordinates
            # whose maximum is inside the box settle instead of oscillating.
            step = step_size * (1.0 - t / num_steps)
            u = jnp.clip(u + step * bounds * jnp.sign(g), -bounds, bounds)
        return u, best_u, best_value

    base = _perturbed_loss(loss_fn, params, batch, subspace_PxQ, jnp.zeros_like(u0), chunk_size)
    u, best_u, best_value = jax.lax.fori_loop(0, num_steps, body, (u0, u0, jnp.full((), -jnp.inf, base.dtype)))
    final_value = _perturbed_loss(loss_fn, params, batch, subspace_PxQ, u, chunk_size)
    return _result(params, subspace_PxQ, jnp.where(final_value > best_value, u, best_u),
                   jnp.maximum(final_value, best_value), base, percent=not ball)


@compiled.jit(static_argnames=("percent",))
def _result(params, subspace_PxQ, u, value, base, *, percent):
    # y = 0 is feasible: the search never reports less than f(x).
    _, unflatten = tree.flatten(params)
    u, value = jnp.where(value > base, u, jnp.zeros_like(u)), jnp.maximum(value, base)
    y_P = u if subspace_PxQ is None else jnp.matmul(subspace_PxQ, u, precision=jax.lax.Precision.HIGHEST)
    return Sharpness((100.0 if percent else 1.0) * (value - base) / (1.0 + base), unflatten(y_P), base, value)


@compiled.jit(static_argnames=("subspace_dim", "ball"))
def _start(key, x_P, subspace_PxQ, size, *, subspace_dim, ball, offset=1.0):
    """The subspace matrix (drawn if ``subspace_dim``), the bounds (box half-widths
    size (|x_i| + offset), or the ball radius) and a random start inside."""
    subspace_key, start_key = jax.random.split(key)
    if ball:
        direction = jax.random.normal(start_key, x_P.shape, x_P.dtype)
        return None, size, size * direction / jnp.linalg.norm(direction)
    if subspace_dim:
        subspace_PxQ = jax.random.normal(subspace_key, (x_P.shape[0], subspace_dim), x_P.dtype)
    anchor = x_P if subspace_PxQ is None else jnp.linalg.lstsq(subspace_PxQ, x_P)[0]
    bounds = size * (jnp.abs(anchor) + offset)
    return subspace_PxQ, bounds, jax.random.uniform(start_key, bounds.shape, bounds.dtype, -1.0, 1.0) * bounds


def _lbfgsb(loss_fn, params, batch, subspace_PxQ, u0, bounds, max_steps, chunk_size):
    import scipy.optimize

    dtype = u0.dtype

    def negative(u):
        value, g = _value_and_grad(loss_fn, params, batch, subspace_PxQ, jnp.asarray(u, dtype), chunk_size=chunk_size)
        return -float(value), -np.asarray(g, np.float64)

    bounds = np.asarray(bounds, np.float64)
    found = scipy.optimize.minimize(negative, np.asarray(u0, np.float64), jac=True, method="L-BFGS-B",
                                    bounds=np.stack([-bounds, bounds], axis=1),
                                    options={"maxiter": max_steps})
    u = jnp.asarray(np.clip(found.x, -bounds, bounds), dtype)
    return u, _value_and_grad(loss_fn, params, batch, subspace_PxQ, u, chunk_size=chunk_size)[0]


def _check_common(size, name, steps_name, steps, chunk_size):
    checks.integer("chunk_size", chunk_size, allow_none=True)
    checks.number(name, size)
    checks.integer(steps_name, steps)


def _check_subspace(subspace, dim, dtype):
    """(matrix or None, subspace_dim or 0) from the ``subspace`` argument."""
    if subspace is None:
        return None, 0
    if checks.is_integer(subspace):
        return None, checks.integer("subspace", subspace, maximum=dim, maximum_name="the number of parameters P")
    matrix = jnp.asarray(subspace, dtype)
    if matrix.ndim != 2 or matrix.shape[0] != dim:
        raise ValueError(f"subspace must be an int, None or a (P, p) matrix with P={dim}, got shape {matrix.shape}")
    return matrix, 0


def epsilon_sharpness(loss_fn: Callable, params: PyTree, batch: PyTree, epsilon: float = 1e-3, *,
                      subspace: int | jax.Array | None = None, method: str = "lbfgsb", max_steps: int = 10,
                      step_size: float = 0.5, key: jax.Array | None = None,
                      chunk_size: int | None = None) -> Sharpness:
    """Keskar et al.'s epsilon-sharpness of the full-data loss f at x = ``params``.

        phi(x, eps) = 100 * (max_{y in C_eps} f(x + y) - f(x)) / (1 + f(x)),

    with C_eps = {y : |y_i| <= eps (|x_i| + 1)} in the full space (Keskar et al. 2017, metric
    2.1). In a random subspace, y = A z with A a (P, p) matrix and the box on z:
    |z_i| <= eps (|(A^+ x)_i| + 1), A^+ the pseudo-inverse (their appendix). The maximum is
    searched from a random point of the box; since y = 0 is feasible, phi >= 0.

    Args:
      loss_fn: ``loss_fn(params, batch) -> scalar`` mean; params: pytree x (P numbers).
      batch: pytree with leading example axis N (the data set).
      epsilon: eps > 0 (Keskar et al. use 1e-3 and 5e-4).
      subspace: None (full space), an int p (A with i.i.d. N(0, 1) entries drawn from ``key``),
        or a (P, p) matrix A.
      method: ``'lbfgsb'`` (SciPy L-BFGS-B on jitted value-and-gradient calls, at most
        ``max_steps`` iterations) or ``'ascent'`` (projected sign-gradient ascent for
        ``max_steps`` steps of ``step_size`` times the box half-width, shrinking
        linearly; one jitted ``fori_loop``).
      key: PRNG key for the start (and A); default ``jax.random.key(0)``.
      chunk_size: examples per chunk of the loss, or None.

    Returns:
      :class:`Sharpness` with ``value`` = phi (a percentage), the maximising ``perturbation``
      y, ``loss`` f(x) and ``perturbed_loss`` f(x + y).
    """
    _check_common(epsilon, "epsilon", "max_steps", max_steps, chunk_size)
    checks.one_of("method", method, METHODS)
    x_P, _ = tree.flatten(params)
    matrix, subspace_dim = _check_subspace(subspace, x_P.shape[0], x_P.dtype)
    matrix, bounds, u0 = _start(default_key(key), x_P, matrix, epsilon, subspace_dim=subspace_dim, ball=False)
    if method == "ascent":
        return _projected_ascent(loss_fn, params, batch, matrix, u0, bounds, step_size,
                                 num_steps=max_steps, chunk_size=chunk_size, ball=False)
    base = _value_and_grad(loss_fn, params, batch, matrix, jnp.zeros_like(u0), chunk_size=chunk_size)[0]
    u, value = _lbfgsb(loss_fn, params, batch, matrix, u0, bounds, max_steps, chunk_size)
    return _result(params, matrix, u, value, base, percent=True)


def ball_sharpness(loss_fn: Callable, params: PyTree, batch: PyTree, radius: float, *, num_steps: int = 20,
                   step_size: float = 0.5, key: jax.Array | None = None,
                   chunk_size: int | None = None) -> Sharpness:
    """Dinh et al.'s sharpness over a Euclidean ball:

        (max_{||y||_2 <= radius} f(x + y) - f(x)) / (1 + f(x))

    (Dinh, Pascanu, Bengio & Bengio 2017, section 3; Keskar et al.'s definition with the box
    replaced by a ball and without the factor 100). Maximised by projected gradient ascent in
    one jitted ``lax.fori_loop``: normalised steps of ``step_size * radius`` from a random
    point on the sphere, each followed by projection onto the ball; the best iterate is kept.
    For f = 0.5 y^T A y at 0 the maximum is 0.5 radius^2 lambda_max(A).

    Args:
      loss_fn, params, batch, key, chunk_size: as for :func:`epsilon_sharpness`.
      radius: > 0.
      num_steps: ascent steps.
      step_size: step length as a fraction of ``radius``.

    Returns:
      :class:`Sharpness` with the value above (not a percentage), the maximising y, f(x),
      f(x + y).
    """
    _check_common(radius, "radius", "num_steps", num_steps, chunk_size)
    x_P, _ = tree.flatten(params)
    _, bounds, u0 = _start(default_key(key), x_P, None, jnp.asarray(radius, x_P.dtype), subspace_dim=0, ball=True)
    return _projected_ascent(loss_fn, params, batch, None, u0, bounds, step_size,
                             num_steps=num_steps, chunk_size=chunk_size, ball=True)
