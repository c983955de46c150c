"""Training in the kernel regime: closed-form predictions of infinitely wide networks trained by
gradient flow on the MSE, and the linearised network.

With the NTK K of the training inputs, gradient flow on L = ||f - y||^2 / (2 n), n = y.size,
moves the training outputs by df/dt = -(eta / n) K (f - y), so from outputs f_0

    f_t(x) = f_0(x) + K(x, X) K^-1 (I - exp(-eta t K / n)) (y - f_0(X))

(Jacot et al. 2018; Lee et al. 2019, equations 9-10); f_0 = 0 gives the mean prediction of
the infinite ensemble, the network's own initial outputs its own trajectory in the kernel
regime. :func:`linearize` is f_lin(theta) = f(theta_0) + J(theta_0) (theta - theta_0), which
follows exactly this kernel (its empirical NTK at theta_0) under gradient flow.
"""
from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jaxdl.core import checks

__all__ = ["gradient_descent_mse_predictions", "Linearized", "linearize"]

PyTree = Any


def gradient_descent_mse_predictions(k_train_train, k_test_train, y_train, t=None, *, learning_rate: float = 1.0,
                                     diag_reg: float = 0.0, initial_train=None, initial_test=None) -> jax.Array:
    """Test predictions after gradient flow for time ``t`` on (1 / (2 y_train.size)) ||f - y||^2.

    Args:
      k_train_train: the kernel ``(N, N)`` of the training inputs (e.g. the NTK).
      k_test_train: ``(N_test, N)``.
      y_train: targets ``(N, ...)``.
      t: None (t = infinity, a Cholesky solve), a time, or an array of times ``(T,)`` (one
        eigendecomposition for all).
      learning_rate: eta.
      diag_reg: K is regularised as K + diag_reg * mean(diag K) * I (>= 0).
      initial_train, initial_test: the outputs at t = 0 (default zeros: the ensemble mean).

    Returns:
      ``(N_test, ...)``, or ``(T, N_test, ...)`` for an array of times.
    """
    k_train_train, k_test_train = jnp.asarray(k_train_train), jnp.asarray(k_test_train)
    y_train = jnp.asarray(y_train)
    n = k_train_train.shape[0]
    if k_train_train.shape != (n, n) or k_test_train.ndim != 2 or k_test_train.shape[1] != n or y_train.shape[0] != n:
        checks.fail("k_test_train", f"shapes {k_train_train.shape}, {k_test_train.shape}, y {y_train.shape}",
                    "k_train_train (N, N), k_test_train (N_test, N) and y_train (N, ...)")
    learning_rate = checks.number("learning_rate", learning_rate)
    diag_reg = checks.number("diag_reg", diag_reg, inclusive=True)
    initial_train = jnp.zeros_like(y_train) if initial_train is None else jnp.asarray(initial_train)
    initial_test = (jnp.zeros((k_test_train.shape[0],) + y_train.shape[1:], y_train.dtype) if initial_test is None
                    else jnp.asarray(initial_test))
    k = k_train_train + diag_reg * jnp.mean(jnp.diag(k_train_train)) * jnp.eye(n, dtype=k_train_train.dtype)
    residual = (y_train - initial_train).reshape(n, -1)
    if t is None:
        solved = jax.scipy.linalg.cho_solve(jax.scipy.linalg.cho_factor(k), residual)
        return initial_test + (k_test_train @ solved).reshape(initial_test.shape)
    times = np.asarray(t, np.float64)
    if not np.all(times >= 0):
        checks.fail("t", t, "None or times >= 0")
    values, vectors = jnp.linalg.eigh(k)
    rate = learning_rate / y_train.size
    # (1 - exp(-rate t lambda)) / lambda, with its limit rate t where lambda is 0.
    factors = jnp.where(values[None] > 0, -jnp.expm1(-rate * times.reshape(-1, 1) * values[None])
                        / jnp.where(values[None] > 0, values[None], 1.0), rate * times.reshape(-1, 1))
    projected = vectors.T @ residual
    out = jnp.einsum("mn,nk,tk,kc->tmc", k_test_train, vectors, factors, projected)
    out = initial_test[None] + out.reshape((times.size,) + initial_test.shape)
    return out if times.ndim else out[0]


class Linearized(struct.PyTreeNode):
    """f_lin(params, x) = f(params_0, x) + J(params_0) (params - params_0), by ``jax.jvp``; see
    :func:`linearize`. A pytree (``apply_fn`` and ``params_0`` its children), so compiled tools
    key on it by value."""

    apply_fn: Any
    params_0: Any

    __eq__ = object.__eq__  # arrays inside: compared by identity, as a function is
    __hash__ = object.__hash__

    def __call__(self, params, x):
        delta = jax.tree.map(jnp.subtract, params, self.params_0)
        outputs, tangent = jax.jvp(lambda p: self.apply_fn(p, x), (self.params_0,), (delta,))
        return outputs + tangent


def linearize(apply_fn: Callable, params_0: PyTree) -> Linearized:
    """The first-order Taylor expansion of ``apply_fn`` around ``params_0``: an ``apply_fn`` of
    its own, trainable with any Optax transformation, whose NTK is constant (Lee et al. 2019)."""
    if not callable(apply_fn):
        checks.fail("apply_fn", apply_fn, "a callable apply_fn(params, x)")
    return Linearized(apply_fn, params_0)
