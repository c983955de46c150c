"""Convolutional networks: a stack of convolutions with pooling, then a dense head (Flax Linen).

LeCun et al. 1998 ("Gradient-based learning applied to document recognition") for the
conv-pool-dense pattern; the 1-D variant is the CNN baseline of MNIST-1D (Greydanus 2020).

- :class:`CNN1D` takes sequences ``x_BxL`` (one channel is added) or ``x_BxLxD``;
- :class:`CNN2D` takes images ``(B, height, width)`` (one channel is added) or
  ``(B, height, width, channels)`` (NHWC).

Both return ``outputs_BxO``. ``padding='CIRCULAR'`` with ``pool='none'`` makes every conv layer
a circulant matrix (the course's "can an MLP reproduce a ConvNet?"), and with ``readout='mean'``
the whole network is invariant to circular shifts of the input.
"""
from __future__ import annotations

from typing import ClassVar, Sequence

import flax.linen as nn
import jax.numpy as jnp

from jaxdl.core import checks
from jaxdl.models.initializers import get_initializer
from jaxdl.models.layers import conv_layer
from jaxdl.models.activations import get_activation

__all__ = ["NORMS", "PADDINGS", "POOLS", "READOUTS", "CNN1D", "CNN2D"]

PADDINGS = ("SAME", "VALID", "CIRCULAR")
POOLS = ("max", "avg", "none")
READOUTS = ("flatten", "mean")
NORMS = ("none", "batch")


class _ConvNet(nn.Module):
    """Shared body of :class:`CNN1D` and :class:`CNN2D`; see their docstrings."""

    spatial_dims: ClassVar[int] = 1

    channels: Sequence[int] = (32, 32)
    kernel_size: int = 3
    strides: int = 1
    padding: str = "SAME"
    pool: str = "max"
    pool_size: int = 2
    readout: str = "flatten"
    dense_widths: Sequence[int] = (64,)
    num_outputs: int = 10
    activation: str = "relu"
    initializer: str = "he"
    use_bias: bool = True
    conv_implementation: str = "auto"
    norm: str = "none"
    momentum: float = 0.9

    @nn.compact
    def __call__(self, x, train: bool = False):
        checks.one_of("padding", self.padding, PADDINGS)
        checks.one_of("pool", self.pool, POOLS)
        checks.one_of("readout", self.readout, READOUTS)
        checks.one_of("norm", self.norm, NORMS)
        if x.ndim == self.spatial_dims + 1:  # no channel axis: one channel
            x = x[..., None]
        if x.ndim != self.spatial_dims + 2:
            raise ValueError(
                f"{type(self).__name__} expects inputs of rank {self.spatial_dims + 1} or "
                f"{self.spatial_dims + 2} (batch, {self.spatial_dims} spatial axes[, channels]), got shape {x.shape}")
        act = get_activation(self.activation)
        kernel_init = get_initializer(self.initializer)
        window = (self.pool_size,) * self.spatial_dims
        conv = conv_layer(self.conv_implementation)
        for i, features in enumerate(self.channels):
            x = conv(features, (self.kernel_size,) * self.spatial_dims, strides=self.strides,
                     padding=self.padding, use_bias=self.use_bias and self.norm == "none", kernel_init=kernel_init,
                     name=f"conv_{i}")(x)
            if 0 in x.shape[1:-1]:
                raise ValueError(f"conv_{i} leaves spatial shape {x.shape[1:-1]}: the input is too small for "
                                 f"{len(self.channels)} layers of kernel_size={self.kernel_size}, "
                                 f"strides={self.strides} with padding={self.padding!r}")
            if self.norm == "batch":  # its offset is the conv's bias
                x = nn.BatchNorm(use_running_average=not train, momentum=self.momentum, epsilon=1e-5,
                                 name=f"norm_{i}")(x)
            x = act(x)
            # 'SAME' pooling keeps odd lengths (and lengths below the window) from raising.
            if self.pool == "max":
                x = nn.max_pool(x, window, strides=window, padding="SAME")
            elif self.pool == "avg":
                x = nn.avg_pool(x, window, strides=window, padding="SAME", count_include_pad=False)
        if self.readout == "mean":  # global average pooling: no dependence on position
            x = jnp.mean(x, axis=tuple(range(1, 1 + self.spatial_dims)))
        else:
            x = x.reshape(x.shape[0], -1)
        for i, width in enumerate(self.dense_widths):
            x = act(nn.Dense(width, use_bias=self.use_bias, kernel_init=kernel_init, name=f"dense_{i}")(x))
        return nn.Dense(self.num_outputs, use_bias=self.use_bias, kernel_init=get_initializer("lecun"),
                        name="output")(x)


class CNN1D(_ConvNet):
    """1-D ConvNet: [conv -> (BatchNorm) -> activation -> pool] x len(channels) -> flatten or mean ->
    dense head.

    Input ``x_BxL`` or ``x_BxLxD``; output ``outputs_BxO``.

    Attributes:
      channels: output channels of each conv layer.
      kernel_size, strides: of every conv layer (same along each spatial axis).
      padding: ``'SAME'``, ``'VALID'`` or ``'CIRCULAR'`` (wrap-around; the layer is a circulant).
      pool: ``'max'``, ``'avg'`` or ``'none'``, with window and stride ``pool_size``.
      readout: ``'flatten'`` (keeps positions) or ``'mean'`` (global average pooling).
      dense_widths: hidden widths of the dense head before the ``num_outputs`` read-out.
      activation, initializer, use_bias: as in :class:`jaxdl.models.MLP`.
      conv_implementation: ``'auto'`` (default: the backend's measured best,
        :func:`jaxdl.models.layers.conv_layer`: ``'patches'`` on a CPU, else ``'xla'``),
        ``'xla'`` (``flax.linen.Conv``) or ``'patches'`` (:class:`jaxdl.models.layers.PatchConv`:
        the same function and parameters as one matmul, which a CPU runs faster than XLA's
        small convolutions, above all inside a scanned epoch).
      norm: ``'none'`` (default) or ``'batch'``: BatchNorm (Ioffe & Szegedy 2015) after each conv,
        whose bias it replaces; ``train=True`` normalises by the batch and updates the running
        averages (``'batch_stats'``, with ``momentum``), ``train=False`` uses them.
    """

    spatial_dims: ClassVar[int] = 1
    channels: Sequence[int] = (32, 32, 32)
    kernel_size: int = 5


class CNN2D(_ConvNet):
    """2-D ConvNet on NHWC images, the same stack as :class:`CNN1D` with square kernels.

    Input ``(B, height, width)`` or ``(B, height, width, channels)`` images; output ``outputs_BxO``.
    Attributes as :class:`CNN1D`.
    """

    spatial_dims: ClassVar[int] = 2
    channels: Sequence[int] = (16, 32)
    kernel_size: int = 3
