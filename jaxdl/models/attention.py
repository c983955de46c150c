"""Transformer encoder with multi-head self-attention written out (Vaswani et al. 2017,
"Attention is all you need"), for sequence classification or per-token outputs.

Input ``x_BxL`` (one feature added) or ``x_BxLxD``; with ``patch_size = p > 1`` every p
consecutive positions form one token of ``p D`` features (non-overlapping patches, as the
Vision Transformer of Dosovitskiy et al. 2021), so the encoder sees ``L / p`` tokens. Each
token's features are embedded by a dense layer to ``model_dim``, an optional positional encoding is added, ``num_layers`` encoder
blocks follow, and the read-out is a dense layer on the mean of the tokens (``'mean'``, output
``outputs_BxO``), on a learned CLS token prepended to the sequence (``'cls'``, ``outputs_BxO``;
Devlin et al. 2019), or on every token (``'none'``, ``outputs_BxLxO``).

A block is pre-LN by default, ``x + MHSA(LN(x))`` then ``x + MLP(LN(x))`` with a final LN
(Xiong et al. 2020: trains without warm-up), or post-LN as in the original paper,
``LN(x + MHSA(x))`` then ``LN(x + MLP(x))``. Without a positional encoding every block is
permutation-equivariant, so the mean read-out is permutation-invariant: the sequence is a set.

The attention weights of every layer, ``weights_BxHxLxL``, are sown in the ``'intermediates'``
collection (``apply(..., mutable=['intermediates'])``).
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxdl.core import checks
from jaxdl.models.initializers import get_initializer
from jaxdl.models.layers import Dropout

__all__ = ["POSITIONALS", "READOUTS", "NORM_POSITIONS", "dot_product_attention", "sinusoidal_encoding",
           "MultiHeadSelfAttention", "EncoderBlock", "Transformer"]

POSITIONALS = ("none", "sinusoidal", "learned")
READOUTS = ("mean", "cls", "none")
NORM_POSITIONS = ("pre", "post")


def dot_product_attention(q_BxHxLxD, k_BxHxLxD, v_BxHxLxD, mask_BxL=None):
    """``softmax(q k^T / sqrt(D)) v`` per head; returns ``(out_BxHxLxD, weights_BxHxLxL)``.

    Written for self-attention (queries and keys at the L positions of one sequence); keys and
    values of another length work the same way. ``mask_BxL`` (True for real tokens) removes
    padded keys: their weights are exactly zero.
    """
    logits = jnp.einsum("bhld,bhmd->bhlm", q_BxHxLxD, k_BxHxLxD) / np.sqrt(q_BxHxLxD.shape[-1])
    if mask_BxL is not None:
        logits = jnp.where(mask_BxL[:, None, None, :], logits, jnp.finfo(logits.dtype).min)
    weights = jax.nn.softmax(logits, axis=-1)
    return jnp.einsum("bhlm,bhmd->bhld", weights, v_BxHxLxD), weights


def sinusoidal_encoding(length: int, dim: int) -> np.ndarray:
    """``PE[p, 2i] = sin(p / 10000^(2i/D))``, ``PE[p, 2i+1] = cos(p / 10000^(2i/D))``; shape (L, D)."""
    positions = np.arange(length)[:, None]
    frequencies = 1.0 / 10000.0 ** (np.arange(0, dim, 2) / dim)
    table = np.zeros((length, dim), np.float32)
    table[:, 0::2] = np.sin(positions * frequencies)
    table[:, 1::2] = np.cos(positions * frequencies[: dim // 2])
    return table


class MultiHeadSelfAttention(nn.Module):
    """``x_BxLxD -> y_BxLxD``: per head ``h``, ``softmax(Q_h K_h^T / sqrt(D/H)) V_h`` with
    ``Q = x W_q + b_q`` (likewise K, V), heads concatenated and projected by ``W_o``.

    Attributes: ``num_heads`` (must divide D), ``dropout_rate`` on the attention weights.
    """

    num_heads: int = 4
    dropout_rate: float = 0.0

    @nn.compact
    def __call__(self, x_BxLxD, mask_BxL=None, train: bool = False):
        batch, length, dim = x_BxLxD.shape
        if dim % self.num_heads:
            raise ValueError(f"model_dim={dim} is not divisible by num_heads={self.num_heads}")
        head_dim = dim // self.num_heads
        kernel_init = get_initializer("glorot")

        def heads(name):
            y = nn.Dense(dim, kernel_init=kernel_init, name=name)(x_BxLxD)
            return y.reshape(batch, length, self.num_heads, head_dim).transpose(0, 2, 1, 3)

        value = heads("value")
        out, weights = dot_product_attention(heads("query"), heads("key"), value, mask_BxL)
        self.sow("intermediates", "attention_weights", weights)
        if self.dropout_rate > 0.0:
            # Dropout on the weights, after the sow: the recorded rows still sum to one.
            weights = Dropout(self.dropout_rate, deterministic=not train)(weights)
            out = jnp.einsum("bhlm,bhmd->bhld", weights, value)
        out = out.transpose(0, 2, 1, 3).reshape(batch, length, dim)
        return nn.Dense(dim, kernel_init=kernel_init, name="output")(out)


class EncoderBlock(nn.Module):
    """Self-attention then a two-layer GELU MLP, each residual; ``x_BxLxD -> x_BxLxD``."""

    num_heads: int = 4
    mlp_dim: int = 128
    dropout_rate: float = 0.0
    norm_position: str = "pre"

    @nn.compact
    def __call__(self, x, mask=None, train: bool = False):
        attention = MultiHeadSelfAttention(self.num_heads, self.dropout_rate, name="attention")
        dim = x.shape[-1]

        def mlp(y):
            y = nn.gelu(nn.Dense(self.mlp_dim, kernel_init=get_initializer("glorot"), name="mlp_hidden")(y))
            return nn.Dense(dim, kernel_init=get_initializer("glorot"), name="mlp_output")(y)

        drop = Dropout(self.dropout_rate, deterministic=not train)
        norm_0, norm_1 = nn.LayerNorm(name="norm_0"), nn.LayerNorm(name="norm_1")
        if self.norm_position == "pre":
            x = x + drop(attention(norm_0(x), mask, train))
            return x + drop(mlp(norm_1(x)))
        x = norm_0(x + drop(attention(x, mask, train)))
        return norm_1(x + drop(mlp(x)))


class Transformer(nn.Module):
    """Transformer encoder classifier; input ``x_BxL`` or ``x_BxLxD`` and optional ``mask_BxL``
    (True for real tokens; padded tokens are neither attended to nor pooled); output
    ``outputs_BxO`` (readout ``'mean'``, ``'cls'``) or ``outputs_BxLxO`` (``'none'``).

    Attributes:
      num_layers, model_dim, num_heads, mlp_dim: encoder depth, width D, heads, MLP width.
      num_outputs: O.
      positional: ``'none'``, ``'sinusoidal'`` (fixed) or ``'learned'`` (one vector per position
        of the length seen at init).
      readout: ``'mean'``, ``'cls'`` or ``'none'``.
      norm_position: ``'pre'`` or ``'post'`` LayerNorm.
      dropout_rate: on attention weights and residual branches, active when ``train=True``
        (needs the ``'dropout'`` rng).
      patch_size: positions per token (must divide L; 1: one token per position).
    """

    num_layers: int = 2
    model_dim: int = 64
    num_heads: int = 4
    mlp_dim: int = 128
    num_outputs: int = 10
    positional: str = "sinusoidal"
    readout: str = "mean"
    norm_position: str = "pre"
    dropout_rate: float = 0.0
    patch_size: int = 1

    @nn.compact
    def __call__(self, x, train: bool = False, mask=None):
        for field, value, choices in [("positional", self.positional, POSITIONALS), ("readout", self.readout, READOUTS),
                                      ("norm_position", self.norm_position, NORM_POSITIONS)]:
            checks.one_of(field, value, choices)
        if x.ndim == 2:
            x = x[..., None]
        if x.ndim != 3:
            raise ValueError(f"Transformer expects sequences (B, L) or (B, L, D), got shape {x.shape}")
        if self.patch_size < 1 or x.shape[1] % self.patch_size:
            raise ValueError(f"patch_size={self.patch_size!r} must be a positive divisor of the sequence length {x.shape[1]}")
        if self.patch_size > 1:
            if mask is not None:
                raise ValueError("a mask of padded positions needs patch_size=1")
            x = x.reshape(x.shape[0], x.shape[1] // self.patch_size, -1)
        batch, length, _ = x.shape
        if mask is not None:
            mask = jnp.asarray(mask, bool)
        x = nn.Dense(self.model_dim, kernel_init=get_initializer("glorot"), name="embed")(x)
        if self.positional == "sinusoidal":
            x = x + sinusoidal_encoding(length, self.model_dim)
        elif self.positional == "learned":
            x = x + self.param("position_embedding", nn.initializers.normal(0.02), (length, self.model_dim))
        if self.readout == "cls":
            cls = self.param("cls_token", nn.initializers.normal(0.02), (self.model_dim,))
            x = jnp.concatenate([jnp.broadcast_to(cls, (batch, 1, self.model_dim)), x], axis=1)
            if mask is not None:
                mask = jnp.concatenate([jnp.ones((batch, 1), bool), mask], axis=1)
        for layer in range(self.num_layers):
            x = EncoderBlock(self.num_heads, self.mlp_dim, self.dropout_rate, self.norm_position,
                             name=f"block_{layer}")(x, mask, train)
        if self.norm_position == "pre":
            x = nn.LayerNorm(name="final_norm")(x)

        tokens = x
        if self.readout == "cls":
            tokens = tokens[:, 0]
        elif self.readout == "mean":
            if mask is None:
                tokens = tokens.mean(axis=1)
            else:
                weights = mask[..., None].astype(tokens.dtype)
                tokens = (tokens * weights).sum(axis=1) / jnp.maximum(weights.sum(axis=1), 1.0)
        return nn.Dense(self.num_outputs, kernel_init=get_initializer("lecun"), name="output")(tokens)
