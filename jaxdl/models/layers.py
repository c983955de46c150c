"""Small layers shared by the model families.

- :class:`Dropout`: inverted dropout (Srivastava et al. 2014), ``x_... -> x_...``.
"""
from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp


class Dropout(nn.Module):
    """Inverted dropout: each entry is zeroed with probability ``rate`` and the rest are scaled
    by ``1 / (1 - rate)``, from the ``'dropout'`` rng stream; the identity when ``deterministic``.

    The same mask as ``flax.linen.Dropout`` for the same rng, drawn as a flat vector and
    reshaped. Why: on CPU, XLA compiles the (partitionable) threefry draw of a rank-4 mask
    (attention weights) several times slower than the same draw of a vector.
    """

    rate: float
    deterministic: bool = False

    @nn.compact
    def __call__(self, x):
        if self.deterministic or self.rate == 0.0:
            return x
        if self.rate == 1.0:
            return jnp.zeros_like(x)
        keep = 1.0 - self.rate
        mask = jax.random.bernoulli(self.make_rng("dropout"), keep, (math.prod(x.shape),)).reshape(x.shape)
        return jnp.where(mask, x / keep, jnp.zeros_like(x))
