"""Tests of jaxdl.train.sam: the perturbation against its definition, the SAM gradient against a
Hessian-vector product in the small-rho limit, and SAM steps against the same steps by hand
(in NumPy on a quadratic, and through ``jaxdl.train.make_train_step`` on a linear model)."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxdl import train
from jaxdl.analysis import curvature
from jaxdl.core import tree
from jaxdl.train import optim
from jaxdl.models import get_model
from jaxdl.train.sam import sam, sam_perturbation
from helpers import flat

# Quadratic L(theta) = 0.5 theta^T A theta - c^T theta on a two-leaf pytree (leaves 'm', 'w').
MATRIX = np.array([[2.0, 0.5, 0.0, 0.1, 0.0],
                   [0.5, 1.0, 0.2, 0.0, 0.0],
                   [0.0, 0.2, 3.0, 0.0, 0.4],
                   [0.1, 0.0, 0.0, 0.5, 0.0],
                   [0.0, 0.0, 0.4, 0.0, 1.5]])
CENTRE = np.array([0.3, -1.0, 2.0, 0.5, -0.7])
THETA0 = np.array([1.0, -2.0, 0.5, 1.5, -1.0])


def _to_tree(vector, dtype=jnp.float32):
    vector = jnp.asarray(vector, dtype)
    return {"m": vector[:4].reshape(2, 2), "w": vector[4:]}


def _quadratic(params):
    theta = tree.flatten(params)[0]
    return 0.5 * theta @ jnp.asarray(MATRIX, theta.dtype) @ theta - jnp.asarray(CENTRE, theta.dtype) @ theta


def test_perturbation_has_norm_rho_along_the_gradient():
    grads = _to_tree([3.0, -4.0, 1.0, 0.5, 2.0])
    rho = 0.07
    e = flat(sam_perturbation(grads, rho))
    g = flat(grads)
    np.testing.assert_allclose(np.linalg.norm(e), rho, rtol=1e-6)
    np.testing.assert_allclose(e, rho * g / np.linalg.norm(g), rtol=1e-6)
    zero = flat(sam_perturbation(tree.zeros_like(grads), rho))
    assert np.all(zero == 0)


@pytest.mark.parametrize("base", ["sgd", "momentum"])
def test_sam_steps_on_a_quadratic_equal_the_hand_computed_steps(base):
    lr, rho, momentum, num_steps = 0.1, 0.05, 0.9, 3
    tx = optim.get_optimizer("sam", lr, base=base, rho=rho, momentum=momentum)

    @jax.jit
    def run(params):
        state = tx.init(params)
        for _ in range(num_steps):
            grads = jax.grad(_quadratic)(params)
            updates, state = tx.update(grads, state, params, grad_fn=jax.grad(_quadratic))
            params = optax.apply_updates(params, updates)
        return tree.flatten(params)[0]

    theta, trace = THETA0.copy(), np.zeros_like(THETA0)
    for _ in range(num_steps):
        g = MATRIX @ theta - CENTRE
        e = rho * g / np.linalg.norm(g)
        g_sam = MATRIX @ (theta + e) - CENTRE
        trace = g_sam + (momentum * trace if base == "momentum" else 0)
        theta = theta - lr * trace
    got = np.asarray(run(_to_tree(THETA0)))
    np.testing.assert_allclose(got, theta, rtol=1e-5, atol=1e-6)
    # The SAM step differs from the plain step by more than the tolerance above.
    plain = THETA0 - lr * (MATRIX @ THETA0 - CENTRE)
    assert np.abs(got - plain).max() > 1e-3


def _tanh_regression():
    rng = np.random.default_rng(0)
    params = {"w1": rng.normal(size=(4, 8)) / 2, "b1": 0.1 * rng.normal(size=8), "w2": rng.normal(size=(8, 2)) / 3}
    x, y = rng.normal(size=(30, 4)), rng.normal(size=(30, 2))

    def loss(p, batch):
        inputs, targets = batch
        return 0.5 * jnp.mean(jnp.sum((jnp.tanh(inputs @ p["w1"] + p["b1"]) @ p["w2"] - targets) ** 2, -1))

    return jax.tree.map(jnp.asarray, params), (jnp.asarray(x), jnp.asarray(y)), loss


def test_sam_gradient_difference_tends_to_hessian_times_normalised_gradient():
    # (g_SAM - g) / rho = H g / ||g|| + O(rho): the error must shrink in proportion to rho.
    with jax.enable_x64(True):
        params, data, loss = _tanh_regression()
        grad_fn = jax.jit(lambda p: jax.grad(loss)(p, data))
        g = grad_fn(params)
        direction = tree.scale(1.0 / tree.norm(g), g)
        expected = flat(curvature.hvp(loss, params, data, direction))

        @jax.jit
        def sam_gradient(rho):
            tx = sam(optax.identity(), rho)  # identity base: the update is g_SAM itself
            return tx.update(g, tx.init(params), params, grad_fn=grad_fn)[0]

        errors = []
        for rho in (1e-2, 1e-3, 1e-4):
            g_sam = sam_gradient(rho)
            got = flat(tree.scale(1.0 / rho, tree.subtract(g_sam, g)))
            errors.append(np.linalg.norm(got - expected) / np.linalg.norm(expected))
    assert errors[-1] < 1e-3
    assert 5 < errors[0] / errors[1] < 20 and 5 < errors[1] / errors[2] < 20, errors


def test_train_step_with_sam_equals_the_hand_step():
    model = get_model("linear", num_outputs=1)
    tx = optim.get_optimizer("sam", 0.5, base="sgd", rho=0.1)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(16, 3)).astype(np.float32)
    y = (x @ np.array([[1.0], [-2.0], [0.5]]) + 0.3).astype(np.float32)
    state = train.init_state(model, tx, x[:1], jax.random.key(0))
    new_state, metrics = jax.jit(train.make_train_step(model, tx, loss_name="half_mse"))(state, (x, y))

    kernel = np.asarray(state.params["output"]["kernel"], np.float64)
    bias = np.asarray(state.params["output"]["bias"], np.float64)

    def gradient(w, b):
        # 0.5 mean (x w + b - y)^2: d/dw = x^T r / n, d/db = mean r.
        residual = x @ w + b - y
        return x.T @ residual / len(x), residual.mean(axis=0)

    gw, gb = gradient(kernel, bias)
    scale = 0.1 / np.sqrt(np.sum(gw**2) + np.sum(gb**2))
    sw, sb = gradient(kernel + scale * gw, bias + scale * gb)
    np.testing.assert_allclose(new_state.params["output"]["kernel"], kernel - 0.5 * sw, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(new_state.params["output"]["bias"], bias - 0.5 * sb, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(metrics["grad_norm"], np.sqrt(np.sum(gw**2) + np.sum(gb**2)), rtol=1e-5)
    # The step used the perturbed gradient: plain SGD would land measurably elsewhere.
    assert np.abs(np.asarray(new_state.params["output"]["kernel"]) - (kernel - 0.5 * gw)).max() > 1e-3


def test_missing_grad_fn_or_params_raises():
    tx = sam(optax.sgd(0.1), 0.05)
    params = _to_tree(THETA0)
    state = tx.init(params)
    with pytest.raises(ValueError, match="grad_fn"):
        tx.update(params, state, params)
    with pytest.raises(ValueError, match="params"):
        tx.update(params, state, None, grad_fn=jax.grad(_quadratic))


@pytest.mark.parametrize("kwargs, field", [
    (dict(rho=0.0), "rho"),
    (dict(rho=-0.1), "rho"),
    (dict(base="sam"), "base"),
    (dict(base="lbfgs"), "base"),
])
def test_bad_sam_options_raise_naming_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        optim.get_optimizer("sam", 0.1, **kwargs)
