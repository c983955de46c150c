"""Tests of jaxdl.models.attention: multi-head self-attention against a NumPy version written
out head by head, attention rows as distributions, permutation equivariance without positions
(Vaswani et al. 2017), padding masks, the sinusoidal table's closed form."""
from __future__ import annotations

import jax
import numpy as np
import flax.linen as nn
import pytest

from jaxdl.models import get_model
from jaxdl.models.layers import Dropout
from jaxdl.models.attention import MultiHeadSelfAttention, sinusoidal_encoding
from helpers import random_params

BATCH, LENGTH, DIM = 2, 5, 4


def _numpy_attention(p, x_BxLxD, num_heads, mask_BxL=None):
    """softmax(Q_h K_h^T / sqrt(d)) V_h per head, concatenated, then W_o; float64."""
    p = jax.tree.map(lambda v: np.asarray(v, np.float64), p)
    project = lambda name: x_BxLxD @ p[name]["kernel"] + p[name]["bias"]
    q, k, v = project("query"), project("key"), project("value")
    head_dim = x_BxLxD.shape[-1] // num_heads
    heads = []
    for h in range(num_heads):
        cut = slice(h * head_dim, (h + 1) * head_dim)
        logits = q[..., cut] @ np.swapaxes(k[..., cut], 1, 2) / np.sqrt(head_dim)
        if mask_BxL is not None:
            logits = np.where(mask_BxL[:, None, :], logits, -np.inf)
        weights = np.exp(logits - logits.max(-1, keepdims=True))
        weights /= weights.sum(-1, keepdims=True)
        heads.append(weights @ v[..., cut])
    return np.concatenate(heads, -1) @ p["output"]["kernel"] + p["output"]["bias"]


@pytest.mark.parametrize("num_heads", [1, 2])
def test_self_attention_matches_numpy(num_heads):
    attention = MultiHeadSelfAttention(num_heads=num_heads)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(BATCH, LENGTH, DIM)).astype(np.float32)
    mask = np.ones((BATCH, LENGTH), bool)
    mask[1, 3:] = False
    params = random_params(attention, x, scale=0.5)

    @jax.jit
    def run(params):
        return attention.apply({"params": params}, x), attention.apply({"params": params}, x, mask)

    out, masked = run(params)
    np.testing.assert_allclose(out, _numpy_attention(params, x.astype(np.float64), num_heads), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(masked, _numpy_attention(params, x.astype(np.float64), num_heads, mask),
                               rtol=1e-5, atol=1e-5)


def test_attention_rows_are_distributions_and_masked_keys_get_no_weight():
    model = get_model("transformer", num_layers=2, model_dim=DIM, num_heads=2, mlp_dim=8, num_outputs=3)
    x = np.random.default_rng(2).normal(size=(BATCH, LENGTH, 3)).astype(np.float32)
    mask = np.ones((BATCH, LENGTH), bool)
    mask[0, 2:] = False
    params = random_params(model, x, scale=0.5)
    _, state = jax.jit(lambda p: model.apply({"params": p}, x, mask=mask, mutable=["intermediates"]))(params)
    for layer in ("block_0", "block_1"):
        (weights,) = state["intermediates"][layer]["attention"]["attention_weights"]
        assert weights.shape == (BATCH, 2, LENGTH, LENGTH)
        assert np.all(np.asarray(weights) >= 0)
        np.testing.assert_allclose(np.asarray(weights).sum(-1), 1.0, rtol=1e-6)
        np.testing.assert_array_equal(np.asarray(weights)[0, :, :, 2:], 0.0)


@pytest.mark.parametrize("norm_position", ["pre", "post"])
def test_without_positions_self_attention_is_permutation_equivariant(norm_position):
    hparams = dict(num_layers=2, model_dim=DIM, num_heads=2, mlp_dim=8, num_outputs=3, norm_position=norm_position)
    tokens = get_model("transformer", positional="none", readout="none", **hparams)
    pooled = get_model("transformer", positional="none", readout="mean", **hparams)
    positioned = get_model("transformer", positional="sinusoidal", readout="none", **hparams)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(BATCH, LENGTH, 3)).astype(np.float32)
    perm = rng.permutation(LENGTH)
    assert np.any(perm != np.arange(LENGTH))
    params = random_params(tokens, x, scale=0.5)  # the three models share one parameter structure

    @jax.jit
    def outputs(xs):
        return (tokens.apply({"params": params}, xs), pooled.apply({"params": params}, xs),
                positioned.apply({"params": params}, xs))

    (tok, pool, pos), (tok_p, pool_p, pos_p) = outputs(x), outputs(x[:, perm])
    assert tok.shape == (BATCH, LENGTH, 3) and pool.shape == (BATCH, 3)
    np.testing.assert_allclose(tok_p, np.asarray(tok)[:, perm], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(pool_p, pool, rtol=1e-5, atol=1e-5)
    # Positions break the symmetry: the same permutation no longer just permutes the outputs.
    assert np.abs(np.asarray(pos_p) - np.asarray(pos)[:, perm]).max() > 1e-3


@pytest.mark.parametrize("readout", ["mean", "cls"])
def test_padded_tokens_do_not_change_the_pooled_output(readout):
    model = get_model("transformer", num_layers=1, model_dim=DIM, num_heads=2, mlp_dim=8, num_outputs=3,
                      positional="learned", readout=readout)
    rng = np.random.default_rng(4)
    x = rng.normal(size=(BATCH, LENGTH, 3)).astype(np.float32)
    mask = np.ones((BATCH, LENGTH), bool)
    mask[:, 3:] = False
    other = x.copy()
    other[:, 3:] = rng.normal(size=(BATCH, LENGTH - 3, 3)) * 10
    params = random_params(model, x, scale=0.5)
    run = jax.jit(lambda xs, m: model.apply({"params": params}, xs, mask=m))
    np.testing.assert_allclose(run(other, mask), run(x, mask), rtol=1e-5, atol=1e-5)
    unmasked = np.ones_like(mask)
    assert np.abs(np.asarray(run(other, unmasked)) - np.asarray(run(x, unmasked))).max() > 1e-3


def test_sinusoidal_encoding_closed_form_and_relative_positions():
    table = sinusoidal_encoding(50, 8)
    p, i = 7, 2
    np.testing.assert_allclose(table[p, 2 * i], np.sin(p / 10000 ** (2 * i / 8)), rtol=1e-6)
    np.testing.assert_allclose(table[p, 2 * i + 1], np.cos(p / 10000 ** (2 * i / 8)), rtol=1e-6)
    # Vaswani et al.: PE[p + k] is a fixed linear map (a rotation per frequency) of PE[p].
    k, omega = 5, 1.0 / 10000 ** (np.arange(0, 8, 2) / 8)
    sin_p, cos_p = table[:-k, 0::2], table[:-k, 1::2]
    np.testing.assert_allclose(table[k:, 0::2], sin_p * np.cos(k * omega) + cos_p * np.sin(k * omega), atol=1e-5)
    np.testing.assert_allclose(table[k:, 1::2], cos_p * np.cos(k * omega) - sin_p * np.sin(k * omega), atol=1e-5)


def test_sequences_get_a_feature_axis_and_bad_options_raise():
    model = get_model("transformer", num_layers=1, model_dim=DIM, num_heads=2, mlp_dim=8, num_outputs=3)
    x = np.random.default_rng(5).normal(size=(BATCH, LENGTH)).astype(np.float32)
    params = random_params(model, x, scale=0.5)
    run = jax.jit(lambda xs: model.apply({"params": params}, xs))
    np.testing.assert_array_equal(run(x), run(x[..., None]))
    for hparams, field in [({"positional": "rotary"}, "positional"), ({"readout": "max"}, "readout"),
                           ({"norm_position": "sandwich"}, "norm_position"), ({"num_heads": 3}, "num_heads")]:
        with pytest.raises(ValueError, match=field):
            jax.eval_shape(get_model("transformer", model_dim=DIM, **hparams).init, jax.random.key(0), x)


def test_patches_are_tokens_of_concatenated_positions():
    hparams = dict(num_layers=1, model_dim=DIM, num_heads=2, mlp_dim=8, num_outputs=3, positional="learned")
    x = np.random.default_rng(8).normal(size=(BATCH, 12, 2)).astype(np.float32)
    patched = get_model("transformer", patch_size=3, **hparams)
    plain = get_model("transformer", **hparams)
    # By hand: 4 tokens of 3 positions x 2 features, fed to the one-token-per-position model.
    tokens = x.reshape(BATCH, 4, 3, 2).reshape(BATCH, 4, 6)
    params = random_params(patched, x, scale=0.5)
    assert params["embed"]["kernel"].shape == (6, DIM)
    assert params["position_embedding"].shape == (4, DIM)
    np.testing.assert_allclose(jax.jit(patched.apply)({"params": params}, x),
                               jax.jit(plain.apply)({"params": params}, tokens), rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="patch_size"):
        jax.eval_shape(get_model("transformer", patch_size=5, **hparams).init, jax.random.key(0), x)


def test_dropout_draws_flax_mask_and_acts_only_in_training():
    x = np.random.default_rng(6).normal(size=(6, 7)).astype(np.float32)
    key = jax.random.key(7)
    ours = jax.jit(lambda k: Dropout(0.3).apply({}, x, rngs={"dropout": k}))(key)
    reference = jax.jit(lambda k: nn.Dropout(0.3, deterministic=False).apply({}, x, rngs={"dropout": k}))(key)
    np.testing.assert_array_equal(ours, reference)
    kept = np.asarray(ours) != 0
    assert 0 < kept.mean() < 1
    np.testing.assert_allclose(np.asarray(ours)[kept], x[kept] / 0.7, rtol=1e-6)
    np.testing.assert_array_equal(Dropout(0.3, deterministic=True).apply({}, x), x)
