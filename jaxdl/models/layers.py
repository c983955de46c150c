"""Small layers shared by the model families.

- :class:`Dropout`: inverted dropout (Srivastava et al. 2014), ``x_... -> x_...``;
- :class:`PatchConv`: a convolution computed as one matmul over extracted patches (im2col),
  ``(B, spatial..., channels) -> (B, spatial'..., features)``, with the parameters of
  ``flax.linen.Conv``;
- :class:`NTKDense`: a dense layer in the NTK parameterisation (Jacot et al. 2018),
  ``x_BxD -> (B, features)``.
"""
from __future__ import annotations

import itertools
import math
from typing import Callable, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxdl.core import checks

__all__ = ["Dropout", "PATCH_PADDINGS", "CONV_IMPLEMENTATIONS", "CONV_IMPLEMENTATION", "conv_layer", "PatchConv",
           "NTKDense"]


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


PATCH_PADDINGS = ("SAME", "VALID", "CIRCULAR")
CONV_IMPLEMENTATIONS = ("auto", "xla", "patches")
# ``conv_implementation='auto'``, per backend: on a CPU, XLA runs convolutions inside a
# ``lax.scan`` (every scanned training epoch) much slower than outside one, so PatchConv (a
# matmul) is the default there; ``flax.linen.Conv`` on other backends. The conv rows of the
# benchmark measure both (README, "Against the peers").
CONV_IMPLEMENTATION = {"cpu": "patches"}


def conv_layer(implementation: str) -> type[nn.Module]:
    """The convolution module for ``conv_implementation``: ``flax.linen.Conv`` for ``'xla'``,
    :class:`PatchConv` for ``'patches'``; ``'auto'`` is :data:`CONV_IMPLEMENTATION` for the
    default backend (``'xla'`` where it has no entry). ``ValueError`` naming
    ``conv_implementation`` otherwise."""
    checks.one_of("conv_implementation", implementation, CONV_IMPLEMENTATIONS)
    if implementation == "auto":
        implementation = CONV_IMPLEMENTATION.get(jax.default_backend(), "xla")
    return nn.Conv if implementation == "xla" else PatchConv


class PatchConv(nn.Module):
    """Convolution as a matmul: gather the ``prod(kernel_size)`` shifted, strided views of the
    padded input into patches ``BxS'...x(K...C)`` and contract them with the kernel.

    The same function and the same parameters (``kernel`` of shape ``(*kernel_size, C, F)``,
    ``bias`` (F,)) as ``flax.linen.Conv`` with the same padding ('SAME', 'VALID' or
    'CIRCULAR') and strides, so the two are interchangeable. Why it exists: on CPU, XLA runs
    small convolutions inside a ``lax.scan`` (a whole training epoch) several times slower than
    outside one, while a matmul is fast in both places, so this layer makes the zoo's small 1-D
    and 2-D nets train faster on a CPU (the benchmark's conv rows; README, "Against the peers"). On
    GPUs and TPUs ``flax.linen.Conv`` is
    the better choice for large images; ``conv_implementation='auto'`` (:func:`conv_layer`)
    picks per backend.
    """

    # Read by jaxdl.analysis.ntk's structured derivatives: kernel_size, strides, padding and the
    # parameters mean what flax.linen.Conv's do.
    same_function_as_conv: ClassVar[bool] = True

    features: int
    kernel_size: tuple
    strides: int = 1
    padding: str = "SAME"
    use_bias: bool = True
    kernel_init: Callable = nn.initializers.lecun_normal()

    @nn.compact
    def __call__(self, x):
        checks.one_of("padding", self.padding, PATCH_PADDINGS)
        kernel_size = tuple(self.kernel_size)
        spatial = x.shape[1:-1]
        if len(spatial) != len(kernel_size):
            raise ValueError(f"PatchConv with kernel_size {kernel_size} expects inputs with {len(kernel_size)} "
                             f"spatial axes (batch, ..., channels), got shape {x.shape}")
        kernel = self.param("kernel", self.kernel_init, kernel_size + (x.shape[-1], self.features))
        stride = self.strides
        if self.padding == "CIRCULAR":  # as flax: wrap (k - 1) // 2 before and k // 2 after
            pads = [((k - 1) // 2, k // 2) for k in kernel_size]
            x = jnp.pad(x, [(0, 0)] + pads + [(0, 0)], mode="wrap")
        elif self.padding == "SAME":  # as lax: ceil(n / stride) outputs, the extra pad after
            pads = []
            for n, k in zip(spatial, kernel_size):
                total = max((-(-n // stride) - 1) * stride + k - n, 0)
                pads.append((total // 2, total - total // 2))
            x = jnp.pad(x, [(0, 0)] + pads + [(0, 0)])
        padded = x.shape[1:-1]
        out_shape = [(n - k) // stride + 1 for n, k in zip(padded, kernel_size)]
        if min(out_shape) <= 0:
            raise ValueError(f"{self.name or type(self).__name__} leaves spatial shape "
                             f"{tuple(max(m, 0) for m in out_shape)}: the input {tuple(spatial)} is too small for "
                             f"kernel_size={kernel_size}, strides={stride} with padding={self.padding!r}")
        views = []
        for offsets in itertools.product(*(range(k) for k in kernel_size)):
            index = tuple(slice(o, o + (m - 1) * stride + 1, stride) for o, m in zip(offsets, out_shape))
            views.append(x[(slice(None),) + index])
        # Patches ordered like the kernel's leading axes (offsets in row-major order, then C).
        patches = jnp.stack(views, axis=-2).reshape(x.shape[:1] + tuple(out_shape) + (-1,))
        y = patches @ kernel.reshape(-1, self.features)
        if self.use_bias:
            y = y + self.param("bias", nn.initializers.zeros, (self.features,))
        return y


class NTKDense(nn.Module):
    """``y = (weight_std / sqrt(fan_in)) x W + bias_std b`` with W and b standard normal: the NTK
    parameterisation of Jacot et al. 2018 (neural-tangents' ``stax.Dense``), under which the
    network's tangent kernel converges to a fixed kernel as the width grows.

    The product is a ``flax.linen.Dense`` named ``'dense'`` (kernel N(0, 1), no bias) applied to
    the scaled input, so tools that recognise Dense layers (the structured NTK of
    :mod:`jaxdl.analysis.ntk`) see it; the bias is the parameter ``'bias'``.
    """

    features: int
    weight_std: float = 1.0
    bias_std: float = 0.0

    @nn.compact
    def __call__(self, x):
        scale = self.weight_std / math.sqrt(x.shape[-1])
        y = nn.Dense(self.features, use_bias=False, kernel_init=nn.initializers.normal(1.0), name="dense")(scale * x)
        return y + self.bias_std * self.param("bias", nn.initializers.normal(1.0), (self.features,))
