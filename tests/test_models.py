"""Tests of jaxdl.models: registry, shapes, forward passes against NumPy, initialiser statistics."""
from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdl import train
from jaxdl.train import losses
from jaxdl.models import MLP, MODELS, Graph, Linear, get_model, pack_graph
from helpers import flat

NUMPY_ACTIVATIONS = {
    "relu": lambda z: np.maximum(z, 0.0),
    "tanh": np.tanh,
    "sigmoid": lambda z: 1.0 / (1.0 + np.exp(-z)),
    "identity": lambda z: z,
}


def _numpy_params(model, x, seed=0):
    """Parameters with the model's structure (from eval_shape, no compile) drawn in NumPy.

    Biases are non-zero too, so that a forward pass that drops them fails.
    """
    shapes = jax.eval_shape(model.init, jax.random.key(0), x)["params"]
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda v: jnp.asarray(rng.normal(size=v.shape) / np.sqrt(v.shape[0]), v.dtype), shapes)


def _numpy_forward(params, x, activation, num_hidden):
    """h = W_L f(... f(x W_1 + b_1) ...) + b_L in float64, with x flattened to (B, D)."""
    h = np.asarray(x, np.float64).reshape(x.shape[0], -1)
    act = NUMPY_ACTIVATIONS[activation]
    for i in range(num_hidden):
        layer = params[f"hidden_{i}"]
        h = act(h @ np.asarray(layer["kernel"], np.float64) + np.asarray(layer["bias"], np.float64))
    out = params["output"]
    return h @ np.asarray(out["kernel"], np.float64) + np.asarray(out["bias"], np.float64)


# ----------------------------------------------------------------------------- registry


def test_registry_builds_the_requested_module():
    mlp = get_model("mlp", widths=(3,), num_outputs=2, activation="tanh")
    assert isinstance(mlp, MLP) and mlp.widths == (3,) and mlp.activation == "tanh"
    linear = get_model("linear", num_outputs=4)
    assert isinstance(linear, Linear) and linear.num_outputs == 4


def test_unknown_model_name_raises_naming_it():
    with pytest.raises(ValueError, match="vgg16") as error:
        get_model("vgg16")
    assert all(repr(name) in str(error.value) for name in MODELS)  # and lists the choices


def test_unknown_hyper_parameter_is_a_type_error_naming_it():
    # As Python's own error for an unexpected keyword argument (jaxdl.core.checks.known_options).
    with pytest.raises(TypeError, match="model 'mlp' has no option 'depth'; it accepts .*'widths'"):
        get_model("mlp", depth=3)
    with pytest.raises(TypeError, match="widths"):  # linear has no hidden layers
        get_model("linear", widths=(3,))


def test_unknown_activation_and_initializer_raise_naming_them():
    x = jnp.zeros((1, 5))
    with pytest.raises(ValueError, match="swish"):
        get_model("mlp", widths=(3,), activation="swish").init(jax.random.key(0), x)
    with pytest.raises(ValueError, match="xavier"):
        get_model("mlp", widths=(3,), initializer="xavier").init(jax.random.key(0), x)


# ----------------------------------------------------------------------------- shapes


@pytest.mark.parametrize("name, hparams", [("linear", {}), ("mlp", {"widths": (7, 6)})])
@pytest.mark.parametrize("input_shape", [(4, 5), (4, 8, 8, 1)])
def test_output_shapes(name, hparams, input_shape):
    model = get_model(name, num_outputs=3, **hparams)
    x = jnp.zeros(input_shape)
    variables = jax.eval_shape(model.init, jax.random.key(0), x)
    chex.assert_shape(jax.eval_shape(model.apply, variables, x), (4, 3))
    # The first kernel sees the flattened input.
    first = "output" if name == "linear" else "hidden_0"
    chex.assert_shape(variables["params"][first]["kernel"], (int(np.prod(input_shape[1:])), 7 if name == "mlp" else 3))


# ----------------------------------------------------------------------------- forward passes


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid"])
def test_mlp_forward_matches_numpy(activation):
    model = get_model("mlp", widths=(7, 6), num_outputs=3, activation=activation)
    x = np.random.default_rng(0).normal(size=(4, 5)).astype(np.float32)
    params = _numpy_params(model, x)
    out = jax.jit(model.apply)({"params": params}, x)
    np.testing.assert_allclose(out, _numpy_forward(params, x, activation, 2), rtol=1e-5, atol=1e-5)


def test_residual_mlp_adds_each_equal_width_hidden_layer_to_its_input():
    # widths (6, 6, 4): layer 1 is residual (6 -> 6); layers 0 (5 -> 6) and 2 (6 -> 4) are not.
    model = get_model("mlp", widths=(6, 6, 4), num_outputs=3, residual=True)
    x = np.random.default_rng(1).normal(size=(4, 5))
    params = _numpy_params(model, x.astype(np.float32))
    relu = lambda z: np.maximum(z, 0.0)
    dense = lambda name, h: h @ np.asarray(params[name]["kernel"], np.float64) + np.asarray(params[name]["bias"])
    h = relu(dense("hidden_0", x))
    h = h + relu(dense("hidden_1", h))
    h = relu(dense("hidden_2", h))
    expected = dense("output", h)
    out = jax.jit(model.apply)({"params": params}, x.astype(np.float32))
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    plain = jax.jit(get_model("mlp", widths=(6, 6, 4), num_outputs=3).apply)({"params": params}, x.astype(np.float32))
    assert not np.allclose(plain, out, atol=1e-3)


def test_mlp_flattens_image_inputs():
    model = get_model("mlp", widths=(7,), num_outputs=3, activation="tanh")
    x = np.random.default_rng(1).normal(size=(2, 8, 8, 1)).astype(np.float32)
    params = _numpy_params(model, x)
    out = jax.jit(model.apply)({"params": params}, x)
    np.testing.assert_allclose(out, _numpy_forward(params, x, "tanh", 1), rtol=1e-5, atol=1e-5)


def test_identity_mlp_is_exactly_a_linear_map():
    model = get_model("mlp", widths=(6, 4), num_outputs=3, activation="identity")
    x = np.random.default_rng(2).normal(size=(5, 5)).astype(np.float32)
    p = {k: {n: np.asarray(v, np.float64) for n, v in layer.items()}
         for k, layer in _numpy_params(model, x).items()}
    out = jax.jit(model.apply)({"params": jax.tree.map(jnp.float32, p)}, x)
    # Compose: x W1 W2 W3 + (b1 W2 W3 + b2 W3 + b3).
    w1, w2, w3 = p["hidden_0"]["kernel"], p["hidden_1"]["kernel"], p["output"]["kernel"]
    b1, b2, b3 = p["hidden_0"]["bias"], p["hidden_1"]["bias"], p["output"]["bias"]
    matrix = w1 @ w2 @ w3
    offset = b1 @ w2 @ w3 + b2 @ w3 + b3
    np.testing.assert_allclose(out, x @ matrix + offset, rtol=1e-5, atol=1e-5)


def test_linear_model_forward_matches_numpy():
    model = get_model("linear", num_outputs=3)
    x = np.random.default_rng(3).normal(size=(2, 8, 8, 1)).astype(np.float32)
    params = _numpy_params(model, x)
    assert set(params) == {"output"}
    out = jax.jit(model.apply)({"params": params}, x)
    expected = x.reshape(2, -1) @ np.asarray(params["output"]["kernel"]) + np.asarray(params["output"]["bias"])
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_use_bias_false_removes_biases():
    x = jnp.zeros((1, 5))
    with_bias = jax.eval_shape(get_model("mlp", widths=(4, 4), num_outputs=2).init, jax.random.key(0), x)
    assert all(set(layer) == {"kernel", "bias"} for layer in with_bias["params"].values())
    for name, hparams in [("mlp", {"widths": (4, 4)}), ("linear", {})]:
        model = get_model(name, num_outputs=2, use_bias=False, **hparams)
        variables = jax.eval_shape(model.init, jax.random.key(0), x)
        assert all(set(layer) == {"kernel"} for layer in variables["params"].values())


# ----------------------------------------------------------------------------- initialisers

FAN_IN, FAN_OUT, NUM_OUTPUTS = 400, 600, 20
WIDE = {  # name: (initializer, gain)
    "glorot": ("glorot", 1.0),
    "he": ("he", 1.0),
    "lecun": ("lecun", 1.0),
    "normal": ("normal", 2.0),
}
ORTHOGONAL_GAIN, ORTHOGONAL_WIDTH = 2.0, 16


@pytest.fixture(scope="module")
def initialised():
    """Params of every initialiser's model, drawn in one compiled program (compiles dominate)."""
    wide = {
        name: get_model("mlp", widths=(FAN_OUT,), num_outputs=NUM_OUTPUTS, initializer=init, gain=gain)
        for name, (init, gain) in WIDE.items()
    }
    orthogonal = get_model("mlp", widths=(ORTHOGONAL_WIDTH,), num_outputs=3, initializer="orthogonal",
                           gain=ORTHOGONAL_GAIN)

    @jax.jit
    def init_all(key):
        keys = jax.random.split(key, len(wide) + 1)
        params = {name: model.init(k, jnp.zeros((1, FAN_IN)))["params"] for (name, model), k in zip(wide.items(), keys)}
        params["orthogonal"] = orthogonal.init(keys[-1], jnp.zeros((1, ORTHOGONAL_WIDTH)))["params"]
        return params

    return jax.tree.map(lambda v: np.asarray(v, np.float64), init_all(jax.random.key(4)))


@pytest.mark.parametrize(
    "name, variance",
    [
        ("glorot", 2.0 / (FAN_IN + FAN_OUT)),  # Glorot & Bengio 2010
        ("he", 2.0 / FAN_IN),  # He et al. 2015
        ("lecun", 1.0 / FAN_IN),
        ("normal", 4.0 / FAN_IN),  # gain^2 / fan_in with gain 2
    ],
)
def test_initialiser_variance_of_a_wide_layer(initialised, name, variance):
    kernel = initialised[name]["hidden_0"]["kernel"]
    assert kernel.shape == (FAN_IN, FAN_OUT)
    # 240000 samples: the variance estimate has relative standard error about 0.3%.
    assert abs(kernel.var() / variance - 1.0) < 0.03
    assert abs(kernel.mean()) < 5 * np.sqrt(variance / kernel.size)
    if name == "glorot":  # uniform on [-sqrt(6 / (fan_in + fan_out)), +sqrt(...)]
        assert np.abs(kernel).max() <= np.sqrt(6.0 / (FAN_IN + FAN_OUT)) * (1 + 1e-6)
    assert not np.any(initialised[name]["hidden_0"]["bias"])


def test_he_readout_uses_lecun_variance(initialised):
    # Documented in mlp.py: the linear read-out of a He-initialised MLP gets 1 / fan_in.
    readout = initialised["he"]["output"]["kernel"]
    assert readout.shape == (FAN_OUT, NUM_OUTPUTS)
    assert abs(readout.var() * FAN_OUT - 1.0) < 0.1  # 12000 samples: standard error 1.3%


def test_orthogonal_initialiser_gives_orthonormal_columns(initialised):
    params, gain2 = initialised["orthogonal"], ORTHOGONAL_GAIN**2
    square = params["hidden_0"]["kernel"]
    np.testing.assert_allclose(square.T @ square, gain2 * np.eye(ORTHOGONAL_WIDTH), atol=1e-5)
    np.testing.assert_allclose(square @ square.T, gain2 * np.eye(ORTHOGONAL_WIDTH), atol=1e-5)
    tall = params["output"]["kernel"]  # (16, 3): orthonormal columns
    np.testing.assert_allclose(tall.T @ tall, gain2 * np.eye(3), atol=1e-5)


def test_flat_drawn_initialisers_equal_jax_variance_scaling():
    # jaxdl draws kernels as vectors (faster to compile); the numbers must be jax's own.
    from jaxdl.models.initializers import variance_scaling

    key = jax.random.key(8)
    for args in [(2.0, "fan_in", "normal"), (1.0, "fan_avg", "uniform")]:
        for shape in [(5, 7), (2, 3, 5)]:
            np.testing.assert_array_equal(variance_scaling(*args)(key, shape),
                                          jax.nn.initializers.variance_scaling(*args)(key, shape))


# ----------------------------------------------------------------------------- gradients


def test_gradients_are_finite_under_jit_and_match_a_finite_difference():
    model = get_model("mlp", widths=(8, 8), num_outputs=2, activation="tanh")
    rng = np.random.default_rng(5)
    x = rng.normal(size=(6, 4, 4, 1)).astype(np.float32)
    y = rng.normal(size=(6, 2)).astype(np.float32)
    params = _numpy_params(model, x)

    def loss(p):
        return losses.half_mse(model.apply({"params": p}, x), y)

    loss_and_grad = jax.jit(jax.value_and_grad(loss))
    _, grads = loss_and_grad(params)
    chex.assert_tree_all_finite(grads)
    chex.assert_trees_all_equal_shapes_and_dtypes(grads, params)
    assert any(np.any(g) for g in jax.tree.leaves(grads))
    # Central difference along a random direction d: (L(p + h d) - L(p - h d)) / 2h = <grad, d>.
    direction = jax.tree.map(lambda v: jnp.asarray(rng.normal(size=v.shape), v.dtype), params)
    h = 1e-2
    plus, _ = loss_and_grad(jax.tree.map(lambda p, d: p + h * d, params, direction))
    minus, _ = loss_and_grad(jax.tree.map(lambda p, d: p - h * d, params, direction))
    directional = float(flat(grads) @ flat(direction))
    np.testing.assert_allclose((float(plus) - float(minus)) / (2 * h), directional, rtol=2e-3)


# ----------------------------------------------------------------------------- every registered model


def _packed_graph(rng):
    adjacency = (rng.uniform(size=(2, 5, 5)) < 0.5).astype(np.float32)
    mask = np.array([[True] * 5, [True] * 3 + [False] * 2])
    return np.asarray(pack_graph(Graph(rng.normal(size=(2, 5, 3)).astype(np.float32), adjacency, mask)))


SMALL_MODELS = {  # name: (small hyper-parameters, input shape or input maker)
    "linear": ({}, (2, 5)),
    "mlp": ({"widths": (4,)}, (2, 5)),
    "cnn1d": ({"channels": (3, 3), "dense_widths": (4,)}, (2, 12)),
    "cnn2d": ({"channels": (3,), "dense_widths": (4,)}, (2, 6, 6, 2)),
    "resnet": ({"depth": 8, "width_multiplier": 0.25}, (2, 8, 8, 3)),
    "resnet1d": ({"depth": 8, "width_multiplier": 0.25, "shortcut": "none"}, (2, 16)),
    "rnn": ({"hidden_size": 4, "num_layers": 2}, (2, 6)),
    "lstm": ({"hidden_size": 4}, (2, 6, 2)),
    "gru": ({"hidden_size": 4}, (2, 6)),
    "transformer": ({"num_layers": 1, "model_dim": 8, "num_heads": 2, "mlp_dim": 8, "dropout_rate": 0.1}, (2, 6)),
    "graph_network": ({"hidden_dim": 4, "num_layers": 1}, _packed_graph),
    "gat": ({"hidden_dim": 3, "num_heads": 2, "dropout_rate": 0.1}, _packed_graph),
}


def test_every_registered_model_has_a_small_configuration_below():
    assert set(SMALL_MODELS) == set(MODELS)


@pytest.mark.parametrize("name", sorted(SMALL_MODELS))
def test_every_model_under_jit_has_the_output_shape_and_finite_gradients(name):
    hparams, make_input = SMALL_MODELS[name]
    model = get_model(name, num_outputs=3, **hparams)
    rng = np.random.default_rng(6)
    x = make_input(rng) if callable(make_input) else rng.normal(size=make_input).astype(np.float32)
    y = rng.integers(0, 3, x.shape[0]).astype(np.int32)

    @jax.jit
    def run(key):
        variables = model.init(key, x)
        params = variables["params"]
        model_state = {k: v for k, v in variables.items() if k != "params"}

        def loss(params):  # the training path of jaxdl.train: mutable state, dropout rng
            outputs, _ = train.apply_model(model, params, model_state, x, train=True, rng=jax.random.key(1))
            return losses.per_example_metrics("cross_entropy", outputs, y)["loss"].mean()

        return train.apply_model(model, params, model_state, x), jax.grad(loss)(params)

    outputs, grads = run(jax.random.key(0))
    chex.assert_shape(outputs, (x.shape[0], 3))
    chex.assert_tree_all_finite((outputs, grads))
    assert np.all(np.isfinite(np.asarray(outputs)))
    assert sum(float(np.abs(g).sum()) for g in jax.tree.leaves(grads)) > 0
