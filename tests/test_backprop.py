"""Tests of jaxdl.course.backprop: the delta rule against jax.grad of the zoo MLP's loss, against
central finite differences in float64, the deltas against dJ/dz^m by autodiff, the walkthrough
against hand-computed numbers and the first-order prediction, bad inputs, compile once."""
from __future__ import annotations

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdl.course import backprop
from jaxdl.train import losses
from jaxdl.models import get_model
from jaxdl.models.activations import ACTIVATIONS
from helpers import count_compiles, flat, random_params

RNG = np.random.default_rng(0)
X_BxD = RNG.normal(size=(16, 2, 3)).astype(np.float32)  # a trailing shape, flattened like the zoo's MLP
LABELS_B = RNG.integers(0, 4, 16).astype(np.int32)
TARGETS_BxO = RNG.normal(size=(16, 4)).astype(np.float32)


def _targets(loss_name):
    return LABELS_B if loss_name == "cross_entropy" else TARGETS_BxO


def _relative_error(a, b) -> float:
    a, b = flat(a), flat(b)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(a), np.linalg.norm(b), 1e-30))


@pytest.mark.parametrize("activation,widths,loss_name", [
    ("relu", (8,), "cross_entropy"),
    ("tanh", (8, 6), "mse"),
    ("sigmoid", (5, 7, 6), "cross_entropy"),
    ("gelu", (6, 6), "half_mse"),
    ("erf", (6,), "mse"),
    ("identity", (), "cross_entropy"),
    ("relu", (7, 5, 6), "mse"),
])
def test_delta_rule_equals_jax_grad_of_the_zoo_mlp(activation, widths, loss_name):
    model = get_model("mlp", widths=widths, activation=activation, num_outputs=4)
    params = random_params(model, X_BxD[:1], seed=len(widths), scale=0.7)
    y = _targets(loss_name)

    @jax.jit  # one program for both sides: an eager jax.grad would compile every operation on its own
    def both(p):
        reference = jax.value_and_grad(lambda q: losses.batch_loss(loss_name, model.apply({"params": q}, X_BxD), y))(p)
        outputs = (backprop.forward(p, X_BxD, activation).outputs, model.apply({"params": p}, X_BxD))
        return backprop.value_and_grad(p, (X_BxD, y), activation, loss_name), reference, outputs

    (loss, grads), (reference_loss, reference), (outputs, reference_outputs) = both(params)
    assert jax.tree.structure(grads) == jax.tree.structure(params)
    np.testing.assert_allclose(loss, reference_loss, rtol=1e-6)
    for layer in params:
        for name in params[layer]:
            assert _relative_error(grads[layer][name], reference[layer][name]) <= 1e-5, (layer, name)
    np.testing.assert_allclose(outputs, reference_outputs, rtol=1e-5, atol=1e-6)


def test_layers_without_bias():
    model = get_model("mlp", widths=(5, 6), activation="tanh", num_outputs=4, use_bias=False)
    params = random_params(model, X_BxD[:1])
    grads = backprop.grad(params, (X_BxD, LABELS_B), "tanh")
    reference = jax.jit(jax.grad(lambda p: losses.cross_entropy(model.apply({"params": p}, X_BxD), LABELS_B)))(params)
    assert jax.tree.structure(grads) == jax.tree.structure(params)
    assert _relative_error(grads, reference) <= 1e-5


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_closed_form_derivatives_equal_jax_grad(activation):
    assert set(backprop.DERIVATIVES) == set(ACTIVATIONS)
    z = np.concatenate([np.linspace(-4.0, 4.0, 41), [0.0, 1e-3, -1e-3]]).astype(np.float32)
    # relu: f'(0) = 0 by jax.grad too
    both = jax.jit(lambda v: (backprop.derivative(activation)(v), jax.vmap(jax.grad(ACTIVATIONS[activation]))(v)))
    np.testing.assert_allclose(*both(z), rtol=1e-5, atol=1e-6)


def test_an_activation_without_a_closed_form_is_differentiated_elementwise(monkeypatch):
    monkeypatch.setitem(ACTIVATIONS, "softplus", jax.nn.softplus)
    z = np.linspace(-3.0, 3.0, 13).astype(np.float32)
    np.testing.assert_allclose(backprop.derivative("softplus")(z), 1 / (1 + np.exp(-z)), rtol=1e-6)


@pytest.mark.parametrize("loss_name", sorted(backprop.OUTPUT_GRADIENTS))
def test_output_gradients_equal_jax_grad(loss_name):
    outputs = RNG.normal(size=(16, 4)).astype(np.float32)
    y = _targets(loss_name)
    both = jax.jit(lambda o: (backprop.output_gradient(loss_name, o, y),
                              jax.grad(lambda q: losses.batch_loss(loss_name, q, y))(o)))
    np.testing.assert_allclose(*both(outputs), rtol=1e-5, atol=1e-8)


def test_deltas_are_dloss_dz_by_autodiff():
    activation, loss_name = "sigmoid", "mse"
    model = get_model("mlp", widths=(5, 6), activation=activation, num_outputs=4)
    params = random_params(model, X_BxD[:1], seed=3)
    fwd = backprop.forward(params, X_BxD, activation)
    _, deltas = backprop.backward(params, fwd, backprop.output_gradient(loss_name, fwd.outputs, TARGETS_BxO),
                                  activation)

    def loss_with_offsets(offsets):  # dJ/dz^m is the gradient with respect to an offset added to z^m
        a = X_BxD.reshape(16, -1)
        for name, offset in zip(["hidden_0", "hidden_1", "output"], offsets):
            z = a @ params[name]["kernel"] + params[name]["bias"] + offset
            a = z if name == "output" else jax.nn.sigmoid(z)
        return losses.mse(a, TARGETS_BxO)

    reference = jax.jit(jax.grad(loss_with_offsets))([jnp.zeros((16, n)) for n in (5, 6, 4)])
    for delta, expected in zip(deltas, reference):
        assert _relative_error(delta, expected) <= 1e-5


@pytest.mark.parametrize("activation,loss_name", [("tanh", "cross_entropy"), ("gelu", "mse")])
def test_delta_rule_equals_central_finite_differences_in_float64(activation, loss_name):
    model = get_model("mlp", widths=(4, 3), activation=activation, num_outputs=4)
    step = 1e-6

    @jax.jit  # every coordinate, one program
    def both(params, x, y):
        theta_D, unravel = jax.flatten_util.ravel_pytree(params)
        loss_at = lambda t: losses.batch_loss(loss_name, model.apply({"params": unravel(t)}, x), y)
        central_D = jax.vmap(lambda e: (loss_at(theta_D + e) - loss_at(theta_D - e)) / (2 * step))(
            step * jnp.eye(theta_D.size, dtype=theta_D.dtype))
        return jax.flatten_util.ravel_pytree(backprop.grad(params, (x, y), activation, loss_name))[0], central_D

    with jax.enable_x64(True):
        params = jax.tree.map(lambda p: np.asarray(p, np.float64), random_params(model, X_BxD[:1], seed=5))
        grads_D, central_D = both(params, np.asarray(X_BxD, np.float64), _targets(loss_name))
    assert grads_D.dtype == jnp.float64
    np.testing.assert_allclose(grads_D, central_D, rtol=1e-6, atol=1e-9)


def test_walkthrough_numbers_by_hand():
    trace = backprop.walkthrough()  # the 2-2-1 sigmoid example, J = (1/2)(a^2 - y)^2
    params, x, y = backprop.walkthrough_example()
    w1, b1 = np.asarray(params["hidden_0"]["kernel"]), np.asarray(params["hidden_0"]["bias"])
    w2, b2 = np.asarray(params["output"]["kernel"]), np.asarray(params["output"]["bias"])
    z1 = np.asarray(x)[0] @ w1 + b1
    a1 = 1 / (1 + np.exp(-z1))
    z2 = a1 @ w2 + b2
    delta2 = z2 - np.asarray(y)[0]
    delta1 = a1 * (1 - a1) * (w2 @ delta2)
    np.testing.assert_allclose(z1, [0.8, 0.5], rtol=1e-6)
    np.testing.assert_allclose(trace.forward.z[0][0], z1, rtol=1e-6)
    np.testing.assert_allclose(trace.forward.outputs[0], z2, rtol=1e-6)
    np.testing.assert_allclose(trace.loss, 0.5 * np.sum(delta2**2), rtol=1e-6)
    np.testing.assert_allclose(trace.deltas[1][0], delta2, rtol=1e-6)
    np.testing.assert_allclose(trace.deltas[0][0], delta1, rtol=1e-5)
    np.testing.assert_allclose(trace.grads["hidden_0"]["kernel"], np.outer(x[0], delta1), rtol=1e-5)
    np.testing.assert_allclose(trace.params_after["output"]["kernel"], w2 - 0.1 * np.outer(a1, delta2), rtol=1e-6)
    assert trace.loss_after < trace.loss
    text = backprop.format_walkthrough(trace)
    for expected in ("[0.8000, 0.5000]", "delta^m", "4. Forward again", f"{float(trace.loss_after):.4f}"):
        assert expected in text


@pytest.mark.parametrize("learning_rate", [1e-2, 1e-3])
def test_walkthrough_loss_falls_by_the_first_order_term(learning_rate):
    model = get_model("mlp", widths=(6,), activation="tanh", num_outputs=4)
    with jax.enable_x64(True):
        params = jax.tree.map(lambda p: jnp.asarray(p, jnp.float64), random_params(model, X_BxD[:1], seed=7))
        trace = backprop.walkthrough(params, jnp.asarray(X_BxD, jnp.float64), LABELS_B, activation="tanh",
                                     loss_name="cross_entropy", learning_rate=learning_rate)
    squared_norm = float(np.sum(flat(trace.grads) ** 2))
    loss, loss_after = float(trace.loss), float(trace.loss_after)  # on the host: float64 outside enable_x64 too
    decrease = loss - loss_after
    # J(theta - lr g) = J - lr ||g||^2 + O(lr^2): the ratio tends to 1 linearly in lr.
    assert abs(decrease / (learning_rate * squared_norm) - 1) <= 5 * learning_rate
    np.testing.assert_allclose(float(trace.predicted_loss_after), loss - learning_rate * squared_norm, rtol=1e-12)


def test_bad_inputs_name_the_field():
    model = get_model("mlp", widths=(5,), num_outputs=4)
    params = random_params(model, X_BxD[:1])
    batch = (X_BxD, LABELS_B)
    with pytest.raises(ValueError, match="activation"):
        backprop.grad(params, batch, "swish")
    with pytest.raises(ValueError, match="loss_name"):
        backprop.grad(params, batch, "relu", "hinge")
    with pytest.raises(ValueError, match=r"params.*pass variables\['params'\]"):
        backprop.grad({"params": params}, batch, "relu")
    with pytest.raises(ValueError, match="params must be an MLP"):
        backprop.grad({"conv_0": params["hidden_0"], "output": params["output"]}, batch, "relu")
    with pytest.raises(ValueError, match=r"params\['hidden_0'\]\['kernel'\].shape"):
        backprop.grad({**params, "hidden_0": {"kernel": params["hidden_0"]["kernel"][..., None]}}, batch, "relu")
    with pytest.raises(ValueError, match=r"params\['output'\]\['kernel'\].shape.*fan_in 5"):
        backprop.grad({**params, "output": {"kernel": jnp.zeros((3, 4))}}, batch, "relu")
    with pytest.raises(ValueError, match=r"params\['output'\]\['bias'\].shape"):
        backprop.grad({**params, "output": {**params["output"], "bias": jnp.zeros(3)}}, batch, "relu")
    with pytest.raises(ValueError, match=r"x.shape.*6 features"):
        backprop.grad(params, (X_BxD[:, :1], LABELS_B), "relu")
    with pytest.raises(ValueError, match="y must be integer labels"):
        backprop.grad(params, (X_BxD, TARGETS_BxO), "relu", "cross_entropy")
    with pytest.raises(ValueError, match=r"y.shape"):
        backprop.grad(params, (X_BxD, TARGETS_BxO[:, :2]), "relu", "mse")
    with pytest.raises(ValueError, match="learning_rate"):
        backprop.walkthrough(learning_rate=-0.1)
    with pytest.raises(ValueError, match="params, x, y"):
        backprop.walkthrough(params)


def test_compiles_once():
    model = get_model("mlp", widths=(5, 5), activation="gelu", num_outputs=4)
    first, second = random_params(model, X_BxD[:1], seed=1), random_params(model, X_BxD[:1], seed=2)
    backprop.value_and_grad(first, (X_BxD, LABELS_B), "gelu")
    backprop.walkthrough(first, X_BxD, LABELS_B, activation="gelu", loss_name="cross_entropy", learning_rate=0.1)
    with count_compiles() as compiles:
        jax.block_until_ready(backprop.value_and_grad(second, (X_BxD + 1, LABELS_B[::-1]), "gelu"))
        backprop.walkthrough(second, X_BxD, LABELS_B, activation="gelu", loss_name="cross_entropy", learning_rate=0.3)
    assert compiles.count == 0


def test_experiment_coordinates_belong_to_their_layers():
    from experiments.backprop import layer_coordinates

    model = get_model("mlp", widths=(3, 2), num_outputs=4)
    params = random_params(model, X_BxD[:1])
    names = backprop.layer_names(params)
    # Every entry holds its layer's number; flattened in jax.tree.leaves order, as the indices are.
    layer_of_D = flat(jax.tree_util.tree_map_with_path(lambda path, leaf: np.full(leaf.shape, names.index(path[0].key)),
                                                       params))
    indices_R, layers_R = layer_coordinates(params, np.random.default_rng(0), per_layer=5)
    assert np.bincount(layers_R).tolist() == [5, 5, 5]  # layer sizes 24, 8, 12
    assert len(set(indices_R.tolist())) == 15
    np.testing.assert_array_equal(layer_of_D[indices_R], layers_R)
