"""Infinite-width kernels of fully connected networks: the NNGP kernel and the NTK in closed form.

The network (as neural-tangents' ``stax.serial(Dense, activation, ..., Dense)``) has ``depth``
hidden layers and a linear read-out; each layer computes, in the NTK parameterisation,
z = (weight_std / sqrt(fan_in)) W a + bias_std b with W and b standard normal (Jacot et al. 2018;
:class:`jaxdl.models.layers.NTKDense`). With Sigma the covariance of a layer's inputs (averaged
over fan-in; x . x' / d for the network's inputs) and Theta_in the tangent kernel reaching it,

    K     = weight_std^2 Sigma + bias_std^2                 (the NNGP kernel after the layer)
    Theta = K + weight_std^2 Theta_in                      (the NTK after the layer)

and an activation phi maps (K, Theta) to Sigma' = E[phi(u) phi(v)], Theta_in' = Theta
E[phi'(u) phi'(v)], (u, v) ~ N(0, K) (Lee et al. 2018; Arora et al. 2019). In the standard
parameterisation (Sohl-Dickstein, Novak, Schoenholz & Lee 2020) the weights are drawn with
variance weight_std^2 / fan_in and the NTK becomes Theta = fan_in Sigma + weight_std^2 Theta_in + 1,
so the hidden ``widths`` enter it. Closed-form expectations: ``relu`` (the arc-cosine kernels of
Cho & Saul 2009), ``erf`` (Williams 1997) and ``identity``.
"""
from __future__ import annotations

from typing import Sequence

import jax.numpy as jnp

from jaxdl.core import checks

__all__ = ["ACTIVATIONS", "PARAMETERIZATIONS", "mlp_kernels"]

ACTIVATIONS = ("relu", "erf", "identity")
PARAMETERIZATIONS = ("ntk", "standard")


def _expectations(activation, k11, k22, k12):
    """E[phi(u) phi(v)] and E[phi'(u) phi'(v)] for (u, v) ~ N(0, [[k11, k12], [k12, k22]]), and the
    diagonals E[phi(u)^2] for k11 and k22."""
    if activation == "identity":
        return k12, jnp.ones_like(k12), k11, k22
    if activation == "relu":
        norms = jnp.sqrt(jnp.outer(k11, k22))
        cosine = jnp.clip(k12 / jnp.where(norms > 0, norms, 1.0), -1.0, 1.0)
        angle = jnp.arccos(cosine)
        value = norms / (2 * jnp.pi) * (jnp.sin(angle) + (jnp.pi - angle) * cosine)
        return value, (jnp.pi - angle) / (2 * jnp.pi), k11 / 2, k22 / 2
    scale = jnp.sqrt(jnp.outer(1 + 2 * k11, 1 + 2 * k22))
    value = 2 / jnp.pi * jnp.arcsin(jnp.clip(2 * k12 / scale, -1.0, 1.0))
    derivative = 4 / jnp.pi / jnp.sqrt(scale ** 2 - 4 * k12 ** 2)
    diagonal = lambda k: 2 / jnp.pi * jnp.arcsin(2 * k / (1 + 2 * k))
    return value, derivative, diagonal(k11), diagonal(k22)


def mlp_kernels(x1, x2=None, *, depth: int, activation: str = "relu", weight_std: float = 1.0,
                bias_std: float = 0.0, parameterization: str = "ntk", widths: Sequence[int] | None = None) -> dict:
    """The NNGP kernel and the NTK of an infinitely wide fully connected network.

    Args:
      x1: inputs ``(N1, D)`` (trailing axes flattened); x2: ``(N2, D)``, default ``x1``.
      depth: hidden layers (>= 0; 0 is a linear model).
      activation: ``'relu'``, ``'erf'`` or ``'identity'``.
      weight_std, bias_std: the layers' scales (see the module docstring).
      parameterization: ``'ntk'`` or ``'standard'``; the latter needs the hidden ``widths``.

    Returns:
      ``{'nngp': (N1, N2), 'ntk': (N1, N2)}`` for one output unit (the kernel of every output
      unit, independent of the others).
    """
    depth = checks.integer("depth", depth, minimum=0)
    checks.one_of("activation", activation, ACTIVATIONS)
    checks.one_of("parameterization", parameterization, PARAMETERIZATIONS)
    weight_std = checks.number("weight_std", weight_std)
    bias_std = checks.number("bias_std", bias_std, inclusive=True)
    x1 = jnp.asarray(x1).reshape(len(x1), -1)
    x2 = x1 if x2 is None else jnp.asarray(x2).reshape(len(x2), -1)
    if x1.shape[1] != x2.shape[1]:
        checks.fail("x2", f"inputs with {x2.shape[1]} features", f"the {x1.shape[1]} features of x1")
    if parameterization == "standard":
        if widths is None or len(widths) != depth or not all(checks.is_integer(w) and w > 0 for w in widths):
            checks.fail("widths", widths, f"{depth} positive hidden widths for the standard parameterisation")
    fan_ins = [x1.shape[1]] + list(widths or [])
    dim = x1.shape[1]
    sigma, sigma11, sigma22 = x1 @ x2.T / dim, jnp.sum(x1 ** 2, 1) / dim, jnp.sum(x2 ** 2, 1) / dim
    theta_in = jnp.zeros_like(sigma)
    for layer in range(depth + 1):
        affine = lambda s: weight_std ** 2 * s + bias_std ** 2
        k, k11, k22 = affine(sigma), affine(sigma11), affine(sigma22)
        if parameterization == "ntk":
            theta = k + weight_std ** 2 * theta_in
        else:
            theta = fan_ins[layer] * sigma + weight_std ** 2 * theta_in + 1.0
        if layer == depth:
            return {"nngp": k, "ntk": theta}
        sigma, derivative, sigma11, sigma22 = _expectations(activation, k11, k22, k)
        theta_in = theta * derivative
    raise AssertionError("unreachable")
