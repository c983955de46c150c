"""Weight initialisers by name, as Flax/JAX initialiser functions ``init(key, shape, dtype)``.

- ``glorot``: Glorot & Bengio 2010, uniform with Var(W) = 2 / (fan_in + fan_out);
- ``he``: He et al. 2015, Gaussian with Var(W) = 2 / fan_in (for ReLU);
- ``lecun``: LeCun et al. 1998, Gaussian with Var(W) = 1 / fan_in;
- ``orthogonal``: Saxe et al. 2014, a (scaled) orthogonal matrix;
- ``normal``: N(0, gain^2 / fan_in), the NTK-style standard parametrisation with a chosen gain.
"""
from __future__ import annotations

import jax

INITIALIZERS = ("glorot", "he", "lecun", "orthogonal", "normal")


def get_initializer(name: str, gain: float = 1.0):
    """Initialiser for a kernel of shape (..., fan_in, fan_out); ``gain`` scales the std."""
    if name not in INITIALIZERS:
        raise ValueError(f"unknown initializer {name!r}; choose one of {list(INITIALIZERS)}")
    variance = gain**2
    if name == "glorot":
        return jax.nn.initializers.variance_scaling(variance, "fan_avg", "uniform")
    if name == "he":
        return jax.nn.initializers.variance_scaling(2.0 * variance, "fan_in", "normal")
    if name == "lecun":
        return jax.nn.initializers.variance_scaling(variance, "fan_in", "normal")
    if name == "orthogonal":
        return jax.nn.initializers.orthogonal(scale=gain)
    return jax.nn.initializers.variance_scaling(variance, "fan_in", "normal")
