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

__all__ = ["gp_predictions", "gradient_descent_mse_predictions", "Linearized", "linearize"]

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


GETS = ("ntk", "nngp")


def gp_predictions(k_train_train: dict, k_test_train: dict, k_test_test: dict, y_train, t=None, *, get: str = "ntk",
                   learning_rate: float = 1.0, diag_reg: float = 0.0) -> tuple[jax.Array, jax.Array]:
    """The mean and covariance of the infinite ensemble's test outputs after gradient descent on
    the MSE for time ``t`` (None: to convergence), neural-tangents' ``gradient_descent_mse_ensemble``.

    With the NTK Theta and NNGP kernel K (train-train, test-train ``*``, test-test ``**``) and
    T(t) = Theta^-1 (I - exp(-eta t Theta / n)), n = y_train.size, ``get='ntk'`` (every layer
    trained; Lee et al. 2019, equation 16) is

        mean = Theta_* T y,    cov = K_** + Theta_* T K T Theta_*^T - (Theta_* T K_*^T + h.c.);

    ``get='nngp'`` (only the read-out trained: the NNGP posterior as t -> infinity) is
    mean = K_* S y, cov = K_** - K_* K^-1 (I - exp(-2 eta t K / n)) K_*^T with
    S = K^-1 (I - exp(-eta t K / n)).

    Args:
      k_train_train, k_test_train, k_test_test: kernel dicts ``{'nngp': ..., 'ntk': ...}`` as
        :meth:`jaxdl.analysis.ntk.Network.kernels` returns, (N, N), (N_test, N), (N_test, N_test).
      y_train: targets ``(N, O)`` (or ``(N,)``).
      t: None or a time >= 0.
      get: ``'ntk'`` or ``'nngp'``.
      learning_rate: eta.
      diag_reg: the train-train kernels gain diag_reg x mean(diag) on the diagonal (>= 0).

    Returns:
      ``(mean (N_test, O), cov (N_test, N_test))``, the covariance shared by every output unit.
    """
    checks.one_of("get", get, GETS)
    learning_rate = checks.number("learning_rate", learning_rate)
    diag_reg = checks.number("diag_reg", diag_reg, inclusive=True)
    if t is not None and not (np.ndim(t) == 0 and float(t) >= 0):
        checks.fail("t", t, "None or one time >= 0")
    kernels = {}
    for field, value in (("k_train_train", k_train_train), ("k_test_train", k_test_train),
                         ("k_test_test", k_test_test)):
        if not isinstance(value, dict) or not {"nngp", "ntk"} <= set(value):
            checks.fail(field, type(value).__name__, "a dict with 'nngp' and 'ntk' kernels, as Network.kernels returns")
        kernels[field] = {key: jnp.asarray(value[key]) for key in ("nngp", "ntk")}
    y_train = jnp.asarray(y_train)
    train, cross, test = kernels["k_train_train"], kernels["k_test_train"], kernels["k_test_test"]
    n, m = train["nngp"].shape[0], cross["nngp"].shape[0]
    if (train["nngp"].shape != (n, n) or cross["nngp"].shape != (m, n) or test["nngp"].shape != (m, m)
            or y_train.shape[0] != n):
        checks.fail("k_test_train", f"shapes {train['nngp'].shape}, {cross['nngp'].shape}, {test['nngp'].shape}, y "
                    f"{y_train.shape}", "(N, N), (N_test, N), (N_test, N_test) and y_train (N, ...)")
    regularised = lambda k: k + diag_reg * jnp.mean(jnp.diag(k)) * jnp.eye(n, dtype=k.dtype)
    rate = learning_rate / y_train.size

    def solver(k, scale):
        """v -> k^-1 (I - exp(-scale rate t k)) v (k^-1 v at t = None), by one eigendecomposition."""
        values, vectors = jnp.linalg.eigh(k)
        if t is None:
            factors = 1 / values
        else:
            positive = values > 0
            factors = jnp.where(positive, -jnp.expm1(-scale * rate * t * values) / jnp.where(positive, values, 1.0),
                                scale * rate * t)
        return lambda v: vectors @ (factors[:, None] * (vectors.T @ v))

    y = y_train.reshape(n, -1)
    if get == "nngp":
        k = regularised(train["nngp"])
        mean = cross["nngp"] @ solver(k, 1.0)(y)
        cov = test["nngp"] - cross["nngp"] @ solver(k, 2.0)(cross["nngp"].T)
    else:
        apply_t = solver(regularised(train["ntk"]), 1.0)
        mean = cross["ntk"] @ apply_t(y)
        transfer = apply_t(cross["ntk"].T)  # T Theta_*^T, (N, N_test)
        mixed = cross["nngp"] @ transfer
        cov = test["nngp"] + transfer.T @ train["nngp"] @ transfer - mixed - mixed.T
    return mean.reshape((m,) + y_train.shape[1:]), cov


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
