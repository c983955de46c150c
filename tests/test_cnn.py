"""Tests of jaxdl.models.cnn against independent references: a circulant matrix built by hand
(the course's "can an MLP reproduce a ConvNet?"), a NumPy cross-correlation, circular shifts."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdl.models import get_model
from helpers import random_params


def _circulant(kernel_K, length):
    """C with (x @ C)[i] = sum_k w[k] x[(i + k - (K - 1) // 2) mod L]: Flax's circular
    cross-correlation, which pads (K - 1) // 2 on the left and K // 2 on the right."""
    size = len(kernel_K)
    matrix = np.zeros((length, length))
    for i in range(length):
        for k in range(size):
            matrix[(i + k - (size - 1) // 2) % length, i] += kernel_K[k]
    return matrix


@pytest.mark.parametrize("kernel_size", [3, 4])
def test_circular_convolution_is_an_mlp_layer_with_a_circulant_matrix(kernel_size):
    length = 9
    conv = get_model("cnn1d", channels=(1,), kernel_size=kernel_size, padding="CIRCULAR", pool="none",
                     activation="identity", use_bias=False, dense_widths=(), num_outputs=length)
    x = np.random.default_rng(1).normal(size=(3, length)).astype(np.float32)
    params = random_params(conv, x)
    # An identity read-out exposes the conv layer's output: (B, L, 1) flattened to (B, L).
    params["output"]["kernel"] = np.eye(length, dtype=np.float32)
    circulant = _circulant(np.asarray(params["conv_0"]["kernel"])[:, 0, 0], length)
    # Circulant: shifting both indices by one leaves it unchanged.
    np.testing.assert_array_equal(np.roll(circulant, (1, 1), axis=(0, 1)), circulant)

    conv_out = jax.jit(conv.apply)({"params": params}, x)
    np.testing.assert_allclose(conv_out, x @ circulant, rtol=1e-5, atol=1e-5)
    mlp = get_model("linear", num_outputs=length, use_bias=False)
    mlp_out = jax.jit(mlp.apply)({"params": {"output": {"kernel": circulant.astype(np.float32)}}}, x)
    np.testing.assert_allclose(mlp_out, conv_out, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name, shape", [("cnn1d", (3, 23, 2)), ("cnn2d", (2, 13, 14, 2))])
@pytest.mark.parametrize("padding", ["SAME", "VALID", "CIRCULAR"])
@pytest.mark.parametrize("kernel_size, strides", [(3, 1), (4, 2), (5, 2)])
def test_patch_convolution_equals_xla_convolution(name, shape, padding, kernel_size, strides):
    # Same parameters, two implementations: lax.conv and the im2col matmul of PatchConv.
    hparams = dict(channels=(3, 4), kernel_size=kernel_size, strides=strides, padding=padding, pool="none",
                   dense_widths=(), num_outputs=5)
    x = np.random.default_rng(5).normal(size=shape).astype(np.float32)
    xla = get_model(name, conv_implementation="xla", **hparams)
    patches = get_model(name, conv_implementation="patches", **hparams)
    params = random_params(xla, x)
    assert jax.tree.structure(params) == jax.tree.structure(random_params(patches, x))
    expected = jax.jit(xla.apply)({"params": params}, x)
    np.testing.assert_allclose(jax.jit(patches.apply)({"params": params}, x), expected, rtol=1e-5, atol=1e-5)
    # The default, 'auto', is PatchConv on a CPU (the backend's measured best), flax's Conv elsewhere.
    auto = get_model(name, **hparams)
    expected_auto = patches if jax.default_backend() == "cpu" else xla
    np.testing.assert_array_equal(jax.jit(auto.apply)({"params": params}, x),
                                  jax.jit(expected_auto.apply)({"params": params}, x))


def test_circular_convnet_with_mean_readout_is_invariant_to_circular_shifts():
    hparams = dict(channels=(4, 4), kernel_size=3, padding="CIRCULAR", pool="none", dense_widths=(5,), num_outputs=3)
    x = np.random.default_rng(2).normal(size=(2, 10)).astype(np.float32)
    shifted = np.roll(x, 3, axis=1)
    mean_model = get_model("cnn1d", readout="mean", **hparams)
    flat_model = get_model("cnn1d", readout="flatten", **hparams)
    mean_params, flat_params = random_params(mean_model, x), random_params(flat_model, x)

    @jax.jit
    def outputs(xs):
        return mean_model.apply({"params": mean_params}, xs), flat_model.apply({"params": flat_params}, xs)

    (mean_x, flat_x), (mean_shifted, flat_shifted) = outputs(x), outputs(shifted)
    np.testing.assert_allclose(mean_shifted, mean_x, rtol=1e-5, atol=1e-5)
    # Flattening keeps positions: the same shift changes the outputs.
    assert np.abs(np.asarray(flat_shifted) - np.asarray(flat_x)).max() > 1e-2


def _numpy_conv2d_valid(x_BxHxWxC, kernel_KxKxCxF, bias_F):
    size = kernel_KxKxCxF.shape[0]
    height, width = x_BxHxWxC.shape[1] - size + 1, x_BxHxWxC.shape[2] - size + 1
    out = np.zeros((x_BxHxWxC.shape[0], height, width, kernel_KxKxCxF.shape[-1]))
    for i in range(height):
        for j in range(width):
            patch = x_BxHxWxC[:, i:i + size, j:j + size, :]
            out[:, i, j] = np.einsum("bhwc,hwcf->bf", patch, kernel_KxKxCxF)
    return out + bias_F


def test_cnn2d_forward_matches_numpy():
    model = get_model("cnn2d", channels=(3,), kernel_size=3, padding="VALID", pool="max", pool_size=2,
                      dense_widths=(4,), num_outputs=2, activation="tanh")
    x = np.random.default_rng(3).normal(size=(2, 7, 7, 2)).astype(np.float32)
    p = random_params(model, x)
    out = jax.jit(model.apply)({"params": p}, x)

    h = np.tanh(_numpy_conv2d_valid(x.astype(np.float64), p["conv_0"]["kernel"], p["conv_0"]["bias"]))  # 5x5
    # 'SAME' max pooling of 5 positions in windows of 2: (0, 1), (2, 3), (4,).
    pooled = np.stack([np.stack([h[:, i:i + 2, j:j + 2].max(axis=(1, 2)) for j in (0, 2, 4)], 1) for i in (0, 2, 4)], 1)
    h = np.tanh(pooled.reshape(2, -1) @ p["dense_0"]["kernel"] + p["dense_0"]["bias"])
    expected = h @ p["output"]["kernel"] + p["output"]["bias"]
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name, shape", [("cnn1d", (2, 12)), ("cnn2d", (2, 6, 6))])
def test_a_missing_channel_axis_means_one_channel(name, shape):
    model = get_model(name, channels=(3,), dense_widths=(), num_outputs=2)
    x = np.random.default_rng(4).normal(size=shape).astype(np.float32)
    params = random_params(model, x)
    with_axis = model.apply({"params": params}, x[..., None])
    np.testing.assert_array_equal(model.apply({"params": params}, x), with_axis)


def test_bad_options_raise_naming_the_field():
    x = jnp.zeros((1, 8))
    for field, value in [("padding", "REFLECT"), ("pool", "median"), ("readout", "sum"),
                         ("conv_implementation", "fft"), ("norm", "layer")]:
        with pytest.raises(ValueError, match=field):
            jax.eval_shape(get_model("cnn1d", **{field: value}).init, jax.random.key(0), x)
    with pytest.raises(ValueError, match="conv_1 leaves spatial shape"):
        jax.eval_shape(get_model("cnn1d", channels=(2, 2), kernel_size=5, strides=2, padding="VALID", pool="none").init,
                       jax.random.key(0), jnp.zeros((1, 11)))
    with pytest.raises(ValueError, match="rank"):
        jax.eval_shape(get_model("cnn1d").init, jax.random.key(0), jnp.zeros((1, 8, 8, 1)))


def test_batchnorm_normalises_each_conv_by_the_batch_in_training_and_by_running_averages_in_evaluation():
    model = get_model("cnn1d", channels=(3,), kernel_size=3, pool="none", dense_widths=(), num_outputs=2,
                      activation="identity", norm="batch", momentum=0.5)
    x = np.random.default_rng(5).normal(size=(6, 10)).astype(np.float32)
    variables = model.init(jax.random.key(0), x)
    plain = get_model("cnn1d", channels=(3,), kernel_size=3, pool="none", dense_widths=(), num_outputs=2,
                      activation="identity")
    # The conv loses its bias to the norm's offset: equal parameter counts otherwise.
    assert "bias" not in variables["params"]["conv_0"]
    count = lambda tree: sum(a.size for a in jax.tree.leaves(tree))
    assert count(variables["params"]) == count(plain.init(jax.random.key(0), x)["params"]) - 3 + 2 * 3
    kernel = np.asarray(variables["params"]["conv_0"]["kernel"], np.float64)
    # The conv by hand (SAME, kernel 3), then per-channel statistics over batch and length.
    padded = np.pad(x.astype(np.float64), ((0, 0), (1, 1)))
    conv = np.stack([sum(padded[:, i + k, None] * kernel[k, 0] for k in range(3)) for i in range(10)], 1)
    mean, var = conv.mean(axis=(0, 1)), conv.var(axis=(0, 1))
    normalised = (conv - mean) / np.sqrt(var + 1e-5)  # scale 1, offset 0 at init
    head = variables["params"]["output"]
    expected = normalised.reshape(6, -1) @ np.asarray(head["kernel"]) + np.asarray(head["bias"])
    out, updated = model.apply(variables, x, train=True, mutable=["batch_stats"])
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)
    # Running averages move by (1 - momentum) towards the batch's; evaluation uses them.
    stats = updated["batch_stats"]["norm_0"]
    np.testing.assert_allclose(stats["mean"], 0.5 * mean, rtol=1e-4, atol=1e-5)
    evaluated = model.apply({**variables, "batch_stats": updated["batch_stats"]}, x)
    by_running = (conv - 0.5 * mean) / np.sqrt(np.asarray(stats["var"], np.float64) + 1e-5)
    np.testing.assert_allclose(evaluated, by_running.reshape(6, -1) @ np.asarray(head["kernel"]) + np.asarray(head["bias"]),
                               rtol=1e-4, atol=1e-4)
