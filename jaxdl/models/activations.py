"""The activation registry: the one place a name becomes an elementwise function.

Every model of the zoo, the course tools and the infinite-width kernels take an activation by
name; ``"identity"`` is the name of no non-linearity everywhere.
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxdl.core import checks

__all__ = ["ACTIVATIONS", "get_activation"]

ACTIVATIONS = {
    "relu": nn.relu,
    "tanh": jnp.tanh,
    "sigmoid": nn.sigmoid,
    "gelu": nn.gelu,
    "erf": jax.scipy.special.erf,
    "identity": lambda x: x,
}


def get_activation(name: str):
    """The activation function registered as ``name``; ``ValueError`` listing the choices."""
    checks.one_of("activation", name, sorted(ACTIVATIONS))
    return ACTIVATIONS[name]
