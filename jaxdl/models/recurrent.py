"""Recurrent networks written out from the course's equations, run over time with ``lax.scan``.

Cells (``x`` the input, ``h`` the hidden state, ``sigma`` the logistic sigmoid, ``*`` elementwise):

- Elman (Elman 1990): ``h' = act(W x + U h + b)``;
- LSTM with peepholes (Graves 2013, "Generating sequences with recurrent neural networks", eq. 7-11):
  ``i = sigma(W_xi x + W_hi h + w_ci * c + b_i)``, ``f = sigma(W_xf x + W_hf h + w_cf * c + b_f)``,
  ``c' = f * c + i * tanh(W_xc x + W_hc h + b_c)``, ``o = sigma(W_xo x + W_ho h + w_co * c' + b_o)``,
  ``h' = o * tanh(c')``; without peepholes the ``w_c*`` terms are dropped;
- GRU (Chung et al. 2014, "Empirical evaluation of gated recurrent neural networks", eq. 5-8):
  ``z = sigma(W_z x + U_z h + b_z)``, ``r = sigma(W_r x + U_r h + b_r)``,
  ``h~ = tanh(W x + U (r * h) + b)``, ``h' = (1 - z) * h + z * h~``.

Parameters of one layer, gates concatenated along the last axis in the order above (LSTM ``i, f, c,
o``; GRU ``z, r, h~``), g gate blocks, U hidden units, D input features: ``input_kernel`` (D, g U),
``recurrent_kernel`` (U, g U), ``bias`` (g U,) and, for the LSTM with peepholes, ``peephole`` (3, U)
holding ``w_ci, w_cf, w_co``. Each (U, U) gate block of the recurrent kernel is initialised on its
own: orthogonal (Saxe et al. 2014) times ``spectral_radius``, or Gaussian rescaled so that its
spectral radius is exactly ``spectral_radius`` (Pascanu et al. 2013: below 1 gradients vanish, above
1 they can explode).

Models take ``x_BxL`` (one feature added) or ``x_BxLxD``, stack ``num_layers`` layers (each
layer's states are the next one's inputs), start from zero states and read out with a dense
layer from the top layer's last state (``'last'``, ``outputs_BxO``), from every state
(``'all'``, ``outputs_BxLxO``) or from all states flattened (``'flatten'``, ``outputs_BxO``; the
MNIST-1D baseline of Greydanus 2020). A bidirectional layer (Schuster & Paliwal 1997) runs a
second layer, with its own weights, over the reversed sequence and concatenates the two states
at each position (``2 U`` features); its ``'last'`` state is the forward layer's last state
beside the backward layer's final state (at position 0).
"""
from __future__ import annotations

from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxdl.core import checks
from jaxdl.models.initializers import get_initializer
from jaxdl.models.activations import get_activation

__all__ = ["RECURRENT_INITS", "READOUTS", "CELLS", "spectral_radius", "recurrent_initializer", "RecurrentLayer", "RNN",
           "LSTM", "GRU"]

RECURRENT_INITS = ("orthogonal", "gaussian")
READOUTS = ("last", "all", "flatten")
CELLS = {"rnn": 1, "lstm": 4, "gru": 3}  # cell: number of gate blocks


def spectral_radius(matrices: jax.Array) -> jax.Array:
    """max |eigenvalue| of each square matrix of a stack: ``matrices`` of shape ``(..., U, U)``
    gives radii of shape ``(...)``.

    Computed on the host with NumPy through ``jax.pure_callback``: eigenvalues of non-symmetric
    matrices have no kernel on every accelerator and JAX version, and this only runs at init.
    """
    def host(m):
        return np.abs(np.linalg.eigvals(np.asarray(m, np.float64))).max(axis=-1).astype(m.dtype)

    out = jax.ShapeDtypeStruct(matrices.shape[:-2], matrices.dtype)
    return jax.pure_callback(host, out, matrices, vmap_method="sequential")


def recurrent_initializer(kind: str = "orthogonal", radius: float = 1.0):
    """Initialiser for a recurrent kernel (U, g U), g gate blocks: each (U, U) block is drawn independently.

    ``'orthogonal'``: ``radius * Q`` with Q orthogonal, so every eigenvalue has modulus ``radius``;
    ``'gaussian'``: ``A * radius / rho(A)`` with ``A_ij ~ N(0, 1 / U)`` and ``rho`` the spectral radius.
    """
    checks.one_of("recurrent_init", kind, RECURRENT_INITS)
    checks.number("spectral_radius", radius)

    def init(key, shape, dtype=jnp.float32):
        hidden, total = shape
        if total % hidden:
            raise ValueError(f"recurrent kernel shape {shape} is not (U, g U)")
        blocks = total // hidden
        # One flat draw for all blocks: on CPU a draw compiles far faster as a vector.
        blocks_a = jax.random.normal(key, (blocks * hidden * hidden,), dtype).reshape(blocks, hidden, hidden)
        if kind == "orthogonal":
            q, r = jnp.linalg.qr(blocks_a)
            # Signs of diag(R) make Q Haar-distributed (Mezzadri 2007), as jax's orthogonal().
            q = q * jnp.sign(jnp.diagonal(r, axis1=-2, axis2=-1))[:, None, :]
            scaled = radius * q
        else:
            blocks_a = blocks_a / np.sqrt(hidden)
            scaled = blocks_a * (radius / spectral_radius(blocks_a))[:, None, None]
        return jnp.concatenate(list(scaled), axis=1).astype(dtype)

    return init


class RecurrentLayer(nn.Module):
    """One recurrent layer over a whole sequence: ``x_BxLxD -> h_BxLxU`` (the state at every step).

    Attributes: ``cell`` in ``rnn, lstm, gru``; see the module docstring for the rest.
    """

    cell: str
    hidden_size: int
    activation: str = "tanh"
    peepholes: bool = True
    forget_bias: float = 1.0
    recurrent_init: str = "orthogonal"
    spectral_radius: float = 1.0
    input_initializer: str = "glorot"

    @nn.compact
    def __call__(self, x_BxLxD):
        hidden, gates = self.hidden_size, CELLS[self.cell]
        w_x = self.param("input_kernel", get_initializer(self.input_initializer), (x_BxLxD.shape[-1], gates * hidden))
        w_h = self.param("recurrent_kernel", recurrent_initializer(self.recurrent_init, self.spectral_radius),
                         (hidden, gates * hidden))
        bias_init = nn.initializers.zeros
        if self.cell == "lstm" and self.forget_bias:
            # Jozefowicz et al. 2015: a positive forget-gate bias lets memory persist early in training.
            fill = jnp.zeros((gates, hidden)).at[1].set(self.forget_bias).reshape(-1)
            bias_init = lambda key, shape, dtype=jnp.float32: fill.astype(dtype)
        b = self.param("bias", bias_init, (gates * hidden,))
        peephole = None
        if self.cell == "lstm" and self.peepholes:
            # Zero at init: the cell starts as the standard LSTM and learns how much to peek.
            peephole = self.param("peephole", nn.initializers.zeros, (3, hidden))
        act = get_activation(self.activation)

        # The input projections of all steps are one matmul outside the sequential loop: (L, B, g U).
        xw_all_gates = jnp.einsum("blf,fg->lbg", x_BxLxD, w_x) + b
        batch = x_BxLxD.shape[0]
        zeros = jnp.zeros((batch, hidden), xw_all_gates.dtype)

        if self.cell == "rnn":
            def step(h, xw):
                h = act(xw + h @ w_h)
                return h, h
            carry = zeros
        elif self.cell == "gru":
            def step(h, xw):
                x_z, x_r, x_h = jnp.split(xw, 3, axis=-1)
                u_z, u_r = jnp.split(h @ w_h[:, : 2 * hidden], 2, axis=-1)
                z = nn.sigmoid(x_z + u_z)
                r = nn.sigmoid(x_r + u_r)
                candidate = jnp.tanh(x_h + (r * h) @ w_h[:, 2 * hidden:])
                h = (1.0 - z) * h + z * candidate
                return h, h
            carry = zeros
        else:
            w_ci, w_cf, w_co = (0.0, 0.0, 0.0) if peephole is None else peephole

            def step(state, xw):
                h, c = state
                a_i, a_f, a_c, a_o = jnp.split(xw + h @ w_h, 4, axis=-1)
                i = nn.sigmoid(a_i + w_ci * c)
                f = nn.sigmoid(a_f + w_cf * c)
                c = f * c + i * jnp.tanh(a_c)
                o = nn.sigmoid(a_o + w_co * c)  # the output gate peeks at the NEW cell state
                h = o * jnp.tanh(c)
                return (h, c), h
            carry = (zeros, zeros)

        _, h_LxBxU = jax.lax.scan(step, carry, xw_all_gates)
        return jnp.swapaxes(h_LxBxU, 0, 1)


class _RecurrentNet(nn.Module):
    """Stack of :class:`RecurrentLayer` plus a dense read-out; see the subclasses."""

    cell: ClassVar[str] = "rnn"

    hidden_size: int = 64
    num_layers: int = 1
    num_outputs: int = 10
    readout: str = "last"
    bidirectional: bool = False
    recurrent_init: str = "orthogonal"
    spectral_radius: float = 1.0
    input_initializer: str = "glorot"

    def _cell_options(self) -> dict:
        return {}

    @nn.compact
    def __call__(self, x, train: bool = False):
        checks.one_of("readout", self.readout, READOUTS)
        checks.integer("num_layers", self.num_layers)
        if x.ndim == 2:
            x = x[..., None]
        if x.ndim != 3:
            raise ValueError(f"{type(self).__name__} expects sequences (B, L) or (B, L, D), got shape {x.shape}")
        def layer(name):
            return RecurrentLayer(self.cell, self.hidden_size, recurrent_init=self.recurrent_init,
                                  spectral_radius=self.spectral_radius, input_initializer=self.input_initializer,
                                  name=name, **self._cell_options())

        for index in range(self.num_layers):
            forward = layer(f"layer_{index}")(x)
            if self.bidirectional:
                backward = layer(f"layer_{index}_backward")(x[:, ::-1])[:, ::-1]
                x = jnp.concatenate([forward, backward], axis=-1)
            else:
                x = forward
        if self.readout == "last":
            x = jnp.concatenate([forward[:, -1], backward[:, 0]], axis=-1) if self.bidirectional else x[:, -1]
        elif self.readout == "flatten":
            x = x.reshape(x.shape[0], -1)
        return nn.Dense(self.num_outputs, kernel_init=get_initializer("lecun"), name="output")(x)


class RNN(_RecurrentNet):
    """Elman RNN ``h' = act(W x + U h + b)``: input ``x_BxL`` or ``x_BxLxD``; output
    ``outputs_BxO`` (``readout='last'``) or ``outputs_BxLxO`` (``readout='all'``).

    Attributes:
      hidden_size, num_layers, num_outputs: U, the stack depth, O.
      activation: of the recurrence (``tanh`` by default; any name of ``jaxdl.models.ACTIVATIONS``).
      readout: ``'last'``, ``'all'`` or ``'flatten'``.
      bidirectional: add a backward layer at every depth (states of width ``2 U``).
      recurrent_init: ``'orthogonal'`` or ``'gaussian'``, scaled to ``spectral_radius``.
      input_initializer: for ``W`` (Glorot by default).
    """

    cell: ClassVar[str] = "rnn"
    activation: str = "tanh"

    def _cell_options(self) -> dict:
        return {"activation": self.activation}


class LSTM(_RecurrentNet):
    """LSTM with switchable peepholes (Graves 2013); shapes and attributes as :class:`RNN`, plus

    Attributes:
      peepholes: include the diagonal cell-to-gate weights ``w_ci, w_cf, w_co``.
      forget_bias: initial forget-gate bias ``b_f`` (the other biases start at 0).
    """

    cell: ClassVar[str] = "lstm"
    peepholes: bool = True
    forget_bias: float = 1.0

    def _cell_options(self) -> dict:
        return {"peepholes": self.peepholes, "forget_bias": self.forget_bias}


class GRU(_RecurrentNet):
    """GRU (Chung et al. 2014), reset gate applied before ``U``; shapes and attributes as :class:`RNN`."""

    cell: ClassVar[str] = "gru"
