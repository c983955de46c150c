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
Cho & Saul 2009), ``erf`` (Williams 1997) and ``identity``. The recursion is the layer algebra's
(:mod:`jaxdl.analysis.ntk.infinite`) for ``serial(Dense, activation, ..., Dense(1))``.
"""
from __future__ import annotations

from typing import Sequence

import jax.numpy as jnp

from jaxdl.analysis.ntk import infinite
from jaxdl.core import checks

__all__ = ["ACTIVATIONS", "PARAMETERIZATIONS", "mlp_kernels"]

ACTIVATIONS = ("relu", "erf", "identity")
PARAMETERIZATIONS = ("ntk", "standard")


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
    as_float = lambda x: jnp.asarray(x).reshape(len(x), -1).astype(jnp.result_type(jnp.asarray(x).dtype, jnp.float32))
    x1 = as_float(x1)
    x2 = x1 if x2 is None else as_float(x2)
    if x1.shape[1] != x2.shape[1]:
        checks.fail("x2", f"inputs with {x2.shape[1]} features", f"the {x1.shape[1]} features of x1")
    if parameterization == "standard":
        if widths is None or len(widths) != depth or not all(checks.is_integer(w) and w > 0 for w in widths):
            checks.fail("widths", widths, f"{depth} positive hidden widths for the standard parameterisation")
    activation_layer = {"relu": infinite.Relu, "erf": infinite.Erf, "identity": infinite.Identity}[activation]
    dense = lambda width: infinite.Dense(width, weight_std=weight_std, bias_std=bias_std,
                                         parameterization=parameterization)
    layers = []
    for width in widths if parameterization == "standard" else (1,) * depth:
        layers += [dense(width), activation_layer()]
    return infinite.serial(*layers, dense(1)).kernels(x1, x2)
