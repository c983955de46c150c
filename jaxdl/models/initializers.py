"""Weight initialisers by name, as Flax/JAX initialiser functions ``init(key, shape, dtype)``.

- ``glorot``: Glorot & Bengio 2010, uniform with Var(W) = 2 / (fan_in + fan_out);
- ``he``: He et al. 2015, Gaussian with Var(W) = 2 / fan_in (for ReLU);
- ``lecun``: LeCun et al. 1998, Gaussian with Var(W) = 1 / fan_in;
- ``orthogonal``: Saxe et al. 2014, a (scaled) orthogonal matrix;
- ``normal``: N(0, gain^2 / fan_in), the NTK-style standard parametrisation with a chosen gain.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from jaxdl.core import checks

__all__ = ["INITIALIZERS", "get_initializer", "variance_scaling"]

INITIALIZERS = ("glorot", "he", "lecun", "orthogonal", "normal")


def get_initializer(name: str, gain: float = 1.0):
    """Initialiser for a kernel of shape (..., fan_in, fan_out); ``gain`` scales the std."""
    checks.one_of("initializer", name, INITIALIZERS)
    variance = gain**2
    if name == "glorot":
        return variance_scaling(variance, "fan_avg", "uniform")
    if name == "he":
        return variance_scaling(2.0 * variance, "fan_in", "normal")
    if name == "lecun":
        return variance_scaling(variance, "fan_in", "normal")
    if name == "orthogonal":
        return jax.nn.initializers.orthogonal(scale=gain)
    return variance_scaling(variance, "fan_in", "normal")


def variance_scaling(scale: float, mode: str, distribution: str):
    """``jax.nn.initializers.variance_scaling`` (default axes, ``fan_in``/``fan_avg``,
    ``normal``/``uniform``), with the same numbers, drawn as a flat vector and reshaped.

    Why: on CPU, XLA compiles the (partitionable) threefry draw of a rank-4 conv kernel about
    ten times slower than the same draw of a vector, and a model's init is mostly such draws.
    The counter of each element is its flat index either way, so the values are identical.
    """
    def init(key, shape, dtype=jnp.float32):
        shape = tuple(shape)
        receptive_field = math.prod(shape[:-2])
        fan_in, fan_out = shape[-2] * receptive_field, shape[-1] * receptive_field
        denominator = fan_in if mode == "fan_in" else (fan_in + fan_out) / 2
        variance = jnp.array(scale / denominator, dtype=dtype)
        size = (math.prod(shape),)
        if distribution == "normal":
            return (jax.random.normal(key, size, dtype) * jnp.sqrt(variance)).reshape(shape)
        return (jax.random.uniform(key, size, dtype, -1) * jnp.sqrt(3 * variance)).reshape(shape)

    return init
