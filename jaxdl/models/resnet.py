"""CIFAR-style residual networks (He et al. 2015, "Deep residual learning for image recognition",
section 4.2) with BatchNorm (Ioffe & Szegedy 2015) and optional SkipInit (De & Smith 2020), and
their plain twins without shortcuts (``shortcut='none'``; He et al.'s "plain" nets, Li et al.
2018's "noshort" ResNets).

Input: NHWC images ``(B, height, width, channels)`` (or ``(B, height, width)``, one channel added)
for :class:`ResNet`; sequences ``(B, length, channels)`` (or ``(B, length)``) for
:class:`ResNet1D`, the same network with kernels of width 3 along one axis (MNIST-1D); output
``logits_BxC``.

The network is a 3x3 stem conv, three stages of ``n = (depth - 2) / 6`` basic blocks with
``16, 32, 64`` channels times ``width_multiplier`` (the second and third stages halve the
resolution in their first block), global average pooling and a dense read-out: ``6n + 2``
weighted layers, ResNet-20 for ``n = 3``. A basic block is the paper's post-activation one,
``relu(shortcut(x) + alpha * bn(conv(relu(bn(conv(x))))))`` with ``alpha = 1``, or a learned
scalar initialised to 0 with ``skip_init=True`` (every block then starts as the identity).
Each block sows its residual branch ``alpha * bn(conv(...))`` and its skip path ``shortcut(x)``
into the ``'intermediates'`` collection (``'residual_branch'``, ``'residual_skip'``) when that
collection is mutable (:func:`jaxdl.course.propagation.residual_branch_statistics`).

BatchNorm statistics live in the ``'batch_stats'`` collection: ``train=True`` normalises by
the batch and updates the running averages (apply with ``mutable=['batch_stats']``);
``train=False`` normalises by the running averages.
"""
from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from jaxdl.core import checks
from jaxdl.models.initializers import get_initializer
from jaxdl.models.layers import conv_layer

__all__ = ["NORMS", "SHORTCUTS", "ResidualBlock", "ResNet", "ResNet1D"]

NORMS = ("batch", "none")
SHORTCUTS = ("projection", "padding", "none")


class _BlockOptions(nn.Module):
    """The options a ResNet passes to each of its blocks (documented on :class:`ResNet`)."""

    norm: str = "batch"
    skip_init: bool = False
    shortcut: str = "projection"
    momentum: float = 0.9
    initializer: str = "he"
    conv_implementation: str = "auto"
    spatial_dims: int = 2

    def block_options(self) -> dict:
        return {name: getattr(self, name) for name in ("norm", "skip_init", "shortcut", "momentum", "initializer",
                                                       "conv_implementation", "spatial_dims")}


class ResidualBlock(_BlockOptions):
    """Basic block: two 3x3 convs (width-3 along one axis when ``spatial_dims=1``);
    ``(B, height, width, channels) -> (B, height / s, width / s, features)`` for stride ``s``.

    The shortcut is the identity when shapes match; otherwise a strided 1x1 conv (+ norm)
    (``'projection'``, the paper's option B) or subsampling with zero-padded channels
    (``'padding'``, option A, parameter-free). ``'none'`` drops the shortcut: the block is
    ``relu(bn(conv(relu(bn(conv(x))))))``, a plain block with no identity path and, against
    ``'padding'``, the same parameters.
    """

    features: int = 16
    stride: int = 1

    @nn.compact
    def __call__(self, x, train: bool = False):
        kernel_init = get_initializer(self.initializer)
        use_norm = self.norm == "batch"
        conv = conv_layer(self.conv_implementation)
        kernel, one = (3,) * self.spatial_dims, (1,) * self.spatial_dims

        def normalise(y, name):
            if not use_norm:
                return y
            return nn.BatchNorm(use_running_average=not train, momentum=self.momentum, epsilon=1e-5, name=name)(y)

        # Without BatchNorm the convs need their own bias; with it the norm's offset is the bias.
        y = conv(self.features, kernel, self.stride, padding="SAME", use_bias=not use_norm,
                 kernel_init=kernel_init, name="conv_0")(x)
        y = nn.relu(normalise(y, "norm_0"))
        y = conv(self.features, kernel, 1, padding="SAME", use_bias=not use_norm,
                 kernel_init=kernel_init, name="conv_1")(y)
        y = normalise(y, "norm_1")
        if self.skip_init:
            y = y * self.param("residual_scale", nn.initializers.zeros, ())
        # Read by jaxdl.course.propagation.residual_branch_statistics (De & Smith 2020); a no-op unless
        # 'intermediates' is mutable.
        self.sow("intermediates", "residual_branch", y)
        if self.shortcut == "none":
            return nn.relu(y)

        if self.stride != 1 or x.shape[-1] != self.features:
            if self.shortcut == "projection":
                x = conv(self.features, one, self.stride, padding="SAME", use_bias=not use_norm,
                         kernel_init=kernel_init, name="shortcut_conv")(x)
                x = normalise(x, "shortcut_norm")
            else:
                x = x[(slice(None),) + (slice(None, None, self.stride),) * self.spatial_dims]
                extra = self.features - x.shape[-1]
                x = jnp.pad(x, [(0, 0)] * (1 + self.spatial_dims) + [(extra // 2, extra - extra // 2)])
        self.sow("intermediates", "residual_skip", x)
        return nn.relu(x + y)


class ResNet(_BlockOptions):
    """CIFAR ResNet of depth ``6n + 2``; input ``(B, height, width, channels)`` images (or
    ``(B, height, width)``), output ``logits_BxC``.

    Attributes:
      depth: number of weighted layers, ``6n + 2`` (20, 32, 44, 56, 110, ...; 8 is the smallest).
      width_multiplier: stage widths are ``round(16 m), round(32 m), round(64 m)`` (at least 1).
      num_outputs: O.
      norm: ``'batch'`` (BatchNorm after every conv) or ``'none'``.
      skip_init: scale every residual branch by a learned scalar initialised to 0 (De & Smith 2020).
      shortcut: ``'projection'`` (1x1 conv where shapes change), ``'padding'`` (zero channels)
        or ``'none'``: no shortcuts, the plain network of the same depth (He et al. 2015's plain
        nets; Li et al. 2018's "noshort"), with the parameters of ``'padding'``.
      momentum: of the BatchNorm running averages, ``running = m * running + (1 - m) * batch``.
      initializer: conv kernels (He et al. 2015 by default); the read-out is LeCun-normal.
      conv_implementation: ``'auto'`` (the backend's measured best: ``'patches'`` on a CPU),
        ``'xla'`` or ``'patches'``, as for :class:`jaxdl.models.CNN2D`; the same parameters.
    """

    depth: int = 20
    width_multiplier: float = 1.0
    num_outputs: int = 10

    @nn.compact
    def __call__(self, x, train: bool = False):
        if self.depth < 8 or (self.depth - 2) % 6:
            raise ValueError(f"depth={self.depth!r} must be 6n + 2 with n >= 1 (8, 14, 20, 32, ...)")
        checks.one_of("norm", self.norm, NORMS)
        checks.one_of("shortcut", self.shortcut, SHORTCUTS)
        checks.number("width_multiplier", self.width_multiplier)
        if self.skip_init and self.shortcut == "none":
            raise ValueError("skip_init=True needs shortcuts (a zero-scaled branch with shortcut='none' outputs 0)")
        dims = self.spatial_dims
        if x.ndim == dims + 1:
            x = x[..., None]
        if x.ndim != dims + 2:
            shape = "(B, height, width[, channels]) NHWC images" if dims == 2 else "(B, length[, channels]) sequences"
            raise ValueError(f"{type(self).__name__} expects {shape}, got shape {x.shape}")
        blocks_per_stage = (self.depth - 2) // 6
        widths = [max(1, round(w * self.width_multiplier)) for w in (16, 32, 64)]

        use_norm = self.norm == "batch"
        x = conv_layer(self.conv_implementation)(widths[0], (3,) * dims, padding="SAME", use_bias=not use_norm,
                                                 kernel_init=get_initializer(self.initializer), name="stem_conv")(x)
        if use_norm:
            x = nn.BatchNorm(use_running_average=not train, momentum=self.momentum, epsilon=1e-5, name="stem_norm")(x)
        x = nn.relu(x)
        for stage, features in enumerate(widths):
            for block in range(blocks_per_stage):
                stride = 2 if stage > 0 and block == 0 else 1
                x = ResidualBlock(features=features, stride=stride, name=f"stage_{stage}_block_{block}",
                                  **self.block_options())(x, train=train)
        x = jnp.mean(x, axis=tuple(range(1, 1 + dims)))
        return nn.Dense(self.num_outputs, kernel_init=get_initializer("lecun"), name="output")(x)


class ResNet1D(ResNet):
    """:class:`ResNet` on sequences ``(B, length, channels)`` (or ``(B, length)``, one channel
    added), e.g. MNIST-1D: every kernel of width 3 (1 for projections) along the one axis,
    strides and global average pooling along it; the same depths, widths and options."""

    spatial_dims: int = 1
