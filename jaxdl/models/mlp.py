"""Linear models and multi-layer perceptrons (Flax Linen).

Both take inputs ``x_Bx...`` (any trailing shape, flattened to ``x_BxD``) and return
``outputs_BxO``. They accept ``train`` for a uniform model interface, and ignore it.
"""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn

from jaxdl.core import checks
from jaxdl.models.activations import get_activation
from jaxdl.models.initializers import get_initializer
from jaxdl.models.layers import NTKDense

__all__ = ["PARAMETERIZATIONS", "MLP", "Linear"]

PARAMETERIZATIONS = ("standard", "ntk")

class MLP(nn.Module):
    """h(theta, x) = W_L f(... f(W_1 x + b_1) ...) + b_L.

    Attributes:
      widths: hidden-layer widths, e.g. ``(128, 128)``; ``()`` gives a linear model.
      num_outputs: O, the output dimension (classes or regression targets).
      activation: one of ``relu, tanh, sigmoid, gelu, erf, identity``.
      initializer: kernel initialiser, one of ``glorot, he, lecun, orthogonal, normal``.
      gain: multiplies the initialiser's standard deviation.
      use_bias: whether each layer has a bias (initialised to zero).
      residual: hidden layers after the first whose width equals their input's add it back,
        ``h' = h + f(W h + b)`` (the residual MLP of the MNIST-1D baselines, Greydanus 2020).
      parameterization: ``'standard'`` (Flax's Dense with the initialiser above) or ``'ntk'``
        (every layer an :class:`jaxdl.models.layers.NTKDense` with ``weight_std`` and
        ``bias_std``, biases always on; ``initializer``, ``gain`` and ``use_bias`` are then unused), the
        parameterisation whose tangent kernel has an infinite-width limit
        (:func:`jaxdl.analysis.ntk.mlp_kernels`).
    """

    widths: Sequence[int] = (128,)
    num_outputs: int = 10
    activation: str = "relu"
    initializer: str = "he"
    gain: float = 1.0
    use_bias: bool = True
    residual: bool = False
    parameterization: str = "standard"
    weight_std: float = 1.0
    bias_std: float = 0.0

    @nn.compact
    def __call__(self, x, train: bool = False):
        act = get_activation(self.activation)
        checks.one_of("parameterization", self.parameterization, PARAMETERIZATIONS)
        x = x.reshape(x.shape[0], -1)
        if self.parameterization == "ntk":
            dense = lambda width, name: NTKDense(width, self.weight_std, self.bias_std, name=name)
            readout = dense
        else:
            kernel_init = get_initializer(self.initializer, self.gain)
            # The read-out is linear, so Glorot-style scaling is kept unless the user asks otherwise.
            readout_init = kernel_init if self.initializer != "he" else get_initializer("lecun", self.gain)
            dense = lambda width, name: nn.Dense(width, use_bias=self.use_bias, kernel_init=kernel_init, name=name)
            readout = lambda width, name: nn.Dense(width, use_bias=self.use_bias, kernel_init=readout_init, name=name)
        for i, width in enumerate(self.widths):
            h = act(dense(width, f"hidden_{i}")(x))
            x = x + h if self.residual and i > 0 and width == x.shape[-1] else h
        return readout(self.num_outputs, "output")(x)

class Linear(nn.Module):
    """Linear model h(theta, x) = W x + b: logistic regression with cross-entropy,
    least squares with MSE. Input ``x_Bx...`` is flattened; output ``outputs_BxO``."""

    num_outputs: int = 10
    use_bias: bool = True
    initializer: str = "lecun"

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = x.reshape(x.shape[0], -1)
        return nn.Dense(self.num_outputs, use_bias=self.use_bias, kernel_init=get_initializer(self.initializer), name="output")(x)
