"""Tests of jaxdl.course.propagation: the deep-MLP statistics against a plain forward and jax.grad, exact
norm preservation of orthogonal linear nets, He's and the mean field's closed forms, the ResNet
branch/skip variances against a hand computation, deep linear training against Saxe et al.'s exact
solution, and bad inputs."""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import count_compiles

from jaxdl.course import propagation as prop
from jaxdl.models import get_model


_jitted_statistics = jax.jit(prop.layer_statistics, static_argnums=(3, 4))


@pytest.fixture(autouse=True)
def _one_lapack_thread():
    """The orthogonal draws' QRs stall with OpenBLAS's threads on a busy CPU (see the library)."""
    with prop.single_threaded_lapack():
        yield


def _forward_reference(kernels, x, act):
    """Pre-activations z_l of a_l = act(a_{l-1} W_l), one layer at a time in NumPy (float64)."""
    zs, a = [], np.asarray(x, np.float64)
    for kernel in np.asarray(kernels, np.float64):
        zs.append(a @ kernel)
        a = act(zs[-1])
    return zs


# ----------------------------------------------------------------------------- deep MLPs


def test_init_deep_mlp_scales_prefixes_stacks_and_orthogonal_nets_preserve_norms():
    key, width = jax.random.key(0), 64
    stacked = np.asarray(prop.init_deep_mlp(key, prop.SCHEMES, 6, width))
    kernels = dict(zip(prop.SCHEMES, stacked))
    assert stacked.shape == (4, 6, width, width)
    np.testing.assert_allclose(kernels["naive"].std(), 0.01, rtol=0.03)
    np.testing.assert_allclose(kernels["he"].var(), 2 / width, rtol=0.03)
    np.testing.assert_allclose(np.abs(kernels["glorot"]).max(), np.sqrt(3 / width), rtol=0.01)  # U(-b, b): b^2/3 = 1/D
    gram = np.einsum("mij,mik->mjk", kernels["orthogonal"], kernels["orthogonal"])
    np.testing.assert_allclose(gram, np.broadcast_to(2.0 * np.eye(width), gram.shape), atol=1e-5)  # ReLU's gain sqrt 2
    # Layer l draws from fold_in(key, l): a shallower net is a prefix, and one scheme alone draws the same.
    np.testing.assert_array_equal(prop.init_deep_mlp(key, "he", 3, width), kernels["he"][:3])
    # Saxe et al. 2014: a deep linear net with orthogonal (gain 1) kernels preserves norms exactly, both ways.
    x, cotangent = np.random.default_rng(1).normal(size=(2, 8, width)).astype(np.float32)
    stats = _jitted_statistics(kernels["orthogonal"] / np.sqrt(2), x, cotangent, "identity", (6,))
    np.testing.assert_allclose(stats["preactivation_second_moment"], np.mean(x**2), rtol=1e-5)
    np.testing.assert_allclose(stats["activation_gradient_second_moment"][0], np.mean(cotangent**2), rtol=1e-5)


def test_layer_statistics_match_a_plain_forward_and_jax_grad():
    rng = np.random.default_rng(0)
    depth, width, batch, depths = 5, 7, 4, (2, 5)
    with jax.enable_x64(True):
        kernels = rng.normal(size=(depth, width, width)) / np.sqrt(width) * 1.3
        x, cotangent = rng.normal(size=(2, batch, width))
        stats = _jitted_statistics(kernels, x, cotangent, "tanh", depths)
        zs = _forward_reference(kernels, x, np.tanh)
        np.testing.assert_allclose(stats["preactivation_second_moment"], [np.mean(z**2) for z in zs], rtol=1e-12)
        np.testing.assert_allclose(stats["activation_second_moment"], [np.mean(np.tanh(z) ** 2) for z in zs],
                                   rtol=1e-12)

        def objective(kernels, shifts, m):  # J_m = <cotangent, a_m>, a_l shifted by shifts[l] (zeros)
            a = x
            for layer in range(m):
                a = jnp.tanh(a @ kernels[layer]) + shifts[layer]
            return jnp.sum(cotangent * a)

        for p, m in enumerate(depths):
            by_kernel, by_activation = jax.grad(objective, argnums=(0, 1))(kernels, jnp.zeros((depth, batch, width)), m)
            expected_a = [np.mean(g**2) for g in np.asarray(by_activation)[:m]]
            expected_w = [np.mean(g**2) for g in np.asarray(by_kernel)[:m]]
            np.testing.assert_allclose(stats["activation_gradient_second_moment"][p, :m], expected_a, rtol=1e-10)
            np.testing.assert_allclose(stats["weight_gradient_second_moment"][p, :m], expected_w, rtol=1e-10)
            assert np.all(np.isnan(stats["activation_gradient_second_moment"][p, m:]))


def test_mean_field_closed_forms():
    # He et al. 2015: E[z_l^2] = (2 / n) n E[relu(z_{l-1})^2] = E[z_{l-1}^2]; Glorot's 1 / n halves it.
    theory = prop.mean_field_second_moments("relu", 2.0, 6)
    np.testing.assert_allclose(theory["preactivation_second_moment"], 2.0, rtol=1e-12)
    np.testing.assert_allclose(theory["gradient_factor"], 1.0, rtol=1e-12)
    glorot = prop.mean_field_second_moments("relu", 1.0, 4, input_second_moment=3.0)
    np.testing.assert_allclose(glorot["preactivation_second_moment"], 3.0 * 0.5 ** np.arange(4), rtol=1e-12)
    # The jax fallback (any zoo activation) agrees with the NumPy forms.
    np.testing.assert_allclose(prop.mean_field_second_moments("gelu", 1.0, 3)["preactivation_second_moment"][0], 1.0)


def test_mlp_signal_statistics_preserve_he_variance_follow_the_mean_field_and_compile_once():
    kwargs = dict(schemes=("he", "orthogonal"), activations=("relu", "tanh"), depth=3, width=256, num_inputs=16,
                  num_seeds=16, depths=(2, 3))
    stats = prop.mlp_signal_statistics(jax.random.key(2), **kwargs)
    assert stats["relu"]["weight_gradient_second_moment"].shape == (2, 16, 2, 3)
    for i in range(2):  # He, and orthogonal with ReLU's gain sqrt 2: E[z_l^2] preserved in expectation
        relu_q = stats["relu"]["preactivation_second_moment"][i].mean(axis=0)  # mean over seeds
        np.testing.assert_allclose(relu_q / relu_q[0], 1.0, atol=0.15)
    # Wide tanh nets follow the mean-field recursion (E[x^2] = 1, so q_1 = sigma_w^2 = 2).
    tanh_theory = prop.mean_field_second_moments("tanh", 2.0, 3)["preactivation_second_moment"]
    np.testing.assert_allclose(stats["tanh"]["preactivation_second_moment"][0].mean(axis=0), tanh_theory, rtol=0.06)
    # The documented composition, for seed 1: its keys, its draws, layer_statistics.
    init_key, data_key = jax.random.split(jax.random.fold_in(jax.random.key(2), 1))
    x, cotangent = jax.random.normal(data_key, (2 * 16 * 256,)).reshape(2, 16, 256)
    kernels = prop.init_deep_mlp(init_key, "orthogonal", 3, 256, activation="relu")
    for name, value in _jitted_statistics(kernels, x, cotangent, "relu", (2, 3)).items():
        np.testing.assert_allclose(stats["relu"][name][1, 1], value, rtol=2e-5)
    with count_compiles() as compiles:
        prop.mlp_signal_statistics(jax.random.key(4), **kwargs)
    assert compiles.count == 0


@pytest.mark.parametrize("call, field", [
    (lambda: prop.init_deep_mlp(jax.random.key(0), "lecun", 3, 4), "scheme"),
    (lambda: prop.init_deep_mlp(jax.random.key(0), "he", 0, 4), "depth"),
    (lambda: prop.mlp_signal_statistics(jax.random.key(0), schemes=("xavier",)), "schemes"),
    (lambda: prop.mlp_signal_statistics(jax.random.key(0), depth=4, depths=(2, 6)), "depths"),
    (lambda: prop.mlp_signal_statistics(jax.random.key(0), activations=("swish",)), "activation"),
    (lambda: prop.linear_regression_task(jax.random.key(0), (1.0, -1.0), 4), "singular_values"),
    (lambda: prop.linear_regression_task(jax.random.key(0), (1.0,), 4, num_examples=3), "num_examples"),
])
def test_bad_inputs_name_the_field(call, field):
    with pytest.raises(ValueError, match=field):
        call()


# ----------------------------------------------------------------------------- residual networks


TINY = dict(depth=8, width_multiplier=0.25, num_outputs=3, shortcut="padding")  # channels 4, 8, 16


def _conv(x, kernel, bias, stride=1):
    return jax.lax.conv_general_dilated(x, kernel, (stride, stride), "SAME",
                                        dimension_numbers=("NHWC", "HWIO", "NHWC")) + bias


def _channel_variance(value):
    return np.mean(np.var(np.asarray(value, np.float64).reshape(-1, value.shape[-1]), axis=0))


def test_residual_branch_statistics_match_a_hand_computation():
    model = get_model("resnet", norm="none", **TINY)
    x = np.random.default_rng(5).normal(size=(6, 8, 8, 3)).astype(np.float32)
    shapes = jax.eval_shape(model.init, jax.random.key(0), x)["params"]
    rng = np.random.default_rng(6)
    params = jax.tree.map(lambda s: (rng.normal(size=s.shape) * 0.4).astype(np.float32), shapes)
    measured = prop.residual_branch_statistics(model, {"params": params}, x)
    assert measured["blocks"] == ["stage_0_block_0", "stage_1_block_0", "stage_2_block_0"]

    def branch(h, block, stride):
        p = params[block]
        return _conv(jax.nn.relu(_conv(h, p["conv_0"]["kernel"], p["conv_0"]["bias"], stride)),
                     p["conv_1"]["kernel"], p["conv_1"]["bias"])

    skip0 = jax.nn.relu(_conv(x, params["stem_conv"]["kernel"], params["stem_conv"]["bias"]))
    branch0 = branch(skip0, "stage_0_block_0", 1)
    out0 = jax.nn.relu(skip0 + branch0)
    skip1 = jnp.pad(out0[:, ::2, ::2, :], [(0, 0)] * 3 + [(2, 2)])  # option A: subsample, zero channels
    branch1 = branch(out0, "stage_1_block_0", 2)
    for j, (b, s) in enumerate(((branch0, skip0), (branch1, skip1))):
        np.testing.assert_allclose(measured["branch_variance"][j], _channel_variance(b), rtol=1e-4)
        np.testing.assert_allclose(measured["skip_variance"][j], _channel_variance(s), rtol=1e-4)
    np.testing.assert_allclose(measured["ratio"], measured["branch_variance"] / measured["skip_variance"])


def test_batchnorm_branches_have_unit_variance_and_skip_init_branches_none():
    x = np.random.default_rng(7).normal(size=(2, 6, 8, 8, 3)).astype(np.float32)  # two seeds
    for norm, skip_init in (("batch", False), ("none", True)):
        model = get_model("resnet", norm=norm, skip_init=skip_init, **TINY)
        shapes = jax.eval_shape(model.init, jax.random.key(0), x[0])
        rng = np.random.default_rng(8)
        variables = jax.tree.map(lambda s: np.stack([rng.normal(size=s.shape).astype(np.float32)] * 2), shapes)
        if norm == "batch":  # BatchNorm at init: scale 1, offset 0; train mode normalises by the batch
            variables["params"] = jax.tree_util.tree_map_with_path(
                lambda path, v: (np.ones_like(v) if path[-1].key == "scale" else np.zeros_like(v))
                if "norm" in path[-2].key else v, variables["params"])
        else:  # SkipInit's learned scale starts at 0
            variables["params"] = jax.tree_util.tree_map_with_path(
                lambda path, v: np.zeros_like(v) if path[-1].key == "residual_scale" else v, variables["params"])
        measured = prop.residual_branch_statistics(model, variables, x, seed_axis=True)
        assert measured["ratio"].shape == (2, 3)
        if norm == "batch":  # var / (var + 1e-5) per channel
            np.testing.assert_allclose(measured["branch_variance"], 1.0, atol=1e-3)
        else:
            np.testing.assert_array_equal(measured["ratio"], 0.0)
            assert np.all(measured["skip_variance"] > 0)
        with count_compiles() as compiles:  # an equal model, the same shapes
            prop.residual_branch_statistics(get_model("resnet", norm=norm, skip_init=skip_init, **TINY), variables,
                                            x, seed_axis=True)
        assert compiles.count == 0


def test_order_blocks_compares_numbers_as_numbers_and_needs_blocks():
    variances = {f"stage_0_block_{b}": (np.float32(b + 1), np.float32(2.0)) for b in (10, 2, 1)}
    ordered = prop.order_blocks(variances)
    assert ordered["blocks"] == ["stage_0_block_1", "stage_0_block_2", "stage_0_block_10"]
    np.testing.assert_allclose(ordered["ratio"], [1.0, 1.5, 5.5])
    mlp = get_model("mlp", widths=(4,), num_outputs=2)
    params = jax.eval_shape(mlp.init, jax.random.key(0), jnp.zeros((1, 3)))
    params = jax.tree.map(lambda s: np.ones(s.shape, np.float32), params)
    with pytest.raises(ValueError, match="residual"):
        prop.residual_branch_statistics(mlp, params, np.ones((2, 3), np.float32))


# ----------------------------------------------------------------------------- deep linear networks


@pytest.fixture(scope="module")
def task():
    """A whitened regression task in float64: (x, y, modes_in, modes_out, singular values)."""
    s = (2.0, 1.0, 0.5)
    with jax.enable_x64(True), prop.single_threaded_lapack():
        return (*(np.asarray(a, np.float64) for a in prop.linear_regression_task(jax.random.key(10), s, 4)), s)


def test_linear_regression_task_has_the_chosen_correlation(task):
    x, y, u, v, s = task
    assert x.shape == (4, 4) and u.shape == (4, 3)
    np.testing.assert_allclose(x.T @ x / 4, np.eye(4), atol=1e-10)
    np.testing.assert_allclose(u.T @ (x.T @ y / 4) @ v, np.diag(s), atol=1e-10)
    np.testing.assert_allclose(np.linalg.svd(x.T @ y / 4, compute_uv=False), s + (0.0,), atol=1e-10)


def _basis(modes_DxQ):
    """An orthonormal basis whose first Q columns are the given orthonormal columns."""
    modes_DxQ = np.asarray(modes_DxQ)
    extended = np.concatenate([modes_DxQ, np.random.default_rng(0).normal(size=(modes_DxQ.shape[0],) * 2)], axis=1)
    basis = np.linalg.qr(extended)[0][:, : modes_DxQ.shape[0]]
    basis[:, : modes_DxQ.shape[1]] = modes_DxQ  # QR returns them up to sign
    return basis


def test_deep_linear_training_follows_saxes_exact_solution(task):
    # Decoupled, balanced one-hidden-layer net (W1 = sqrt(a0) U, W2 = sqrt(a0) V^T): each mode's strength
    # follows a(t) = s / (1 + (s / a0 - 1) exp(-2 s t)), t = learning rate * steps (Saxe et al. 2014, eq. 10).
    x, y, u, v, s = task
    a0, learning_rate = 1e-3, 1e-3
    with jax.enable_x64(True):
        kernels = np.sqrt(a0) * np.stack([_basis(u), _basis(v).T])
        out = prop.deep_linear_training(kernels, x, y, u, v, learning_rate, num_steps=6000, record_every=200)
    t = np.asarray(out["steps_T"])[:, None] * learning_rate
    exact = np.asarray(s) / (1 + (np.asarray(s) / a0 - 1) * np.exp(-2 * np.asarray(s) * t))
    np.testing.assert_allclose(out["mode_strength_TxQ"], exact, atol=5e-3)
    assert np.all(np.diff(np.asarray(out["loss_T"])) <= 1e-12)  # small steps: monotone


def test_frozen_identity_layers_make_a_shallower_network_and_steps_match_plain_gd(task):
    x, y, u, v, _ = task
    with jax.enable_x64(True):
        kernels = np.random.default_rng(12).normal(size=(2, 4, 4)) * 0.5
        padded = np.concatenate([kernels, np.broadcast_to(np.eye(4), (2, 4, 4))])
        train = functools.partial(prop.deep_linear_training, x_NxD=x, y_NxD=y, modes_in_DxQ=u, modes_out_DxQ=v,
                                  learning_rate=0.05, num_steps=4)
        shallow = train(kernels)
        deep = train(padded, trainable_M=np.array([True, True, False, False]))
        np.testing.assert_allclose(deep["mode_strength_TxQ"], shallow["mode_strength_TxQ"], rtol=1e-12)
        # Plain gradient descent written out: dL/dW1 = X^T R W2^T / N, dL/dW2 = (X W1)^T R / N.
        w1, w2 = kernels
        for _ in range(4):
            residual = x @ w1 @ w2 - y
            w1, w2 = w1 - 0.05 * x.T @ residual @ w2.T / 4, w2 - 0.05 * (x @ w1).T @ residual / 4
        np.testing.assert_allclose(shallow["mode_strength_TxQ"][-1], np.diag(u.T @ w1 @ w2 @ v), rtol=1e-10)


def test_crossing_steps():
    strength = np.array([[0.0, 0.0], [0.6, 0.1], [1.0, 0.2]])  # T x Q
    np.testing.assert_array_equal(prop.crossing_steps(strength, [0, 5, 10], [1.0, 1.0], 0.5), [5, np.inf])
