"""Tests of jaxdl.analysis.implicit against closed forms (least squares, a quadratic's flow), hand-written
minibatch loops and finite differences, in float64."""
from __future__ import annotations

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.linalg

from jaxdl import train
from jaxdl.analysis import implicit
from jaxdl.train import losses
from jaxdl.data import Dataset
from jaxdl.models import get_model

RNG = np.random.default_rng(0)
X_NxD = RNG.normal(size=(12, 3))
Y_N = RNG.normal(size=12)
THETA_D = RNG.normal(size=3)


def _least_squares(theta, batch):
    x, y = batch
    return 0.5 * jnp.mean(jnp.square(x @ theta - y))


def _gradient_by_hand(theta, x, y):
    """grad of 0.5 mean (x theta - y)^2: x^T (x theta - y) / n."""
    return x.T @ (x @ theta - y) / len(y)


@pytest.mark.parametrize("num_batches", [1, 3, 4])
def test_modified_losses_equal_the_formulas_written_out(num_batches):
    eps = 0.3
    with jax.enable_x64(True):
        batch = (jnp.asarray(X_NxD), jnp.asarray(Y_N))
        theta = jnp.asarray(THETA_D)
        loss = 0.5 * np.mean((X_NxD @ THETA_D - Y_N) ** 2)
        g = _gradient_by_hand(THETA_D, X_NxD, Y_N)
        size = 12 // num_batches  # contiguous minibatches, as documented
        g_k = [_gradient_by_hand(THETA_D, X_NxD[i * size:(i + 1) * size], Y_N[i * size:(i + 1) * size])
               for i in range(num_batches)]
        gd = implicit.modified_loss_gd(_least_squares, eps)(theta, batch)
        sgd = implicit.modified_loss_sgd(_least_squares, eps, num_batches)(theta, batch)
        extra = implicit.sgd_extra_regularizer(_least_squares, eps, num_batches)(theta, batch)
    np.testing.assert_allclose(gd, loss + eps / 4 * g @ g, rtol=1e-12)
    np.testing.assert_allclose(sgd, loss + eps / (4 * num_batches) * sum(v @ v for v in g_k), rtol=1e-12)
    np.testing.assert_allclose(extra, eps / (4 * num_batches) * sum((v - g) @ (v - g) for v in g_k), atol=1e-14)
    # The decomposition C_SGD = C_GD + (eps / 4m) sum_k ||grad C_k - grad C||^2, as an identity.
    assert abs(float(sgd) - float(gd) - float(extra)) <= 1e-10 * abs(float(sgd))


def test_gradients_of_the_modified_losses_equal_finite_differences():
    model = get_model("mlp", widths=(5,), activation="tanh", num_outputs=2)
    with jax.enable_x64(True):
        x = jnp.asarray(RNG.normal(size=(8, 3)))
        batch = (x, jnp.asarray(np.arange(8) % 2))
        params = jax.tree.map(lambda p: jnp.asarray(p, jnp.float64), model.init(jax.random.key(0), x[:1])["params"])
        loss_fn = losses.make_loss_fn(train.make_apply_fn(model), "cross_entropy")
        for loss in (implicit.modified_loss_gd(loss_fn, 0.2), implicit.modified_loss_sgd(loss_fn, 0.2, 4)):
            modified = jax.jit(loss)
            grads = jax.jit(jax.grad(loss))(params, batch)
            flat, unravel = jax.flatten_util.ravel_pytree(params)
            direction = jnp.asarray(RNG.normal(size=flat.shape))
            h = 1e-5
            numeric = (modified(unravel(flat + h * direction), batch)
                       - modified(unravel(flat - h * direction), batch)) / (2 * h)
            analytic = jax.flatten_util.ravel_pytree(grads)[0] @ direction
            np.testing.assert_allclose(analytic, numeric, rtol=1e-7)


def test_gradient_flow_matches_the_closed_form_flow_of_a_quadratic():
    a = RNG.normal(size=(4, 4))
    a = a @ a.T + 0.5 * np.eye(4)
    theta0 = RNG.normal(size=4)
    exact = scipy.linalg.expm(-0.7 * a) @ theta0
    quadratic = lambda t, matrix: 0.5 * t @ matrix @ t
    with jax.enable_x64(True):
        errors = [np.linalg.norm(implicit.gradient_flow(quadratic, jnp.asarray(theta0), 0.7, args=(jnp.asarray(a),),
                                                        num_steps=n) - exact) for n in (100, 200, 2000)]
    assert errors[2] <= 1e-10 * np.linalg.norm(exact)
    assert 12 < errors[0] / errors[1] < 20  # fourth order: halving the step divides the error by 16
    with pytest.raises(ValueError, match="num_steps"):
        implicit.gradient_flow(lambda t: t @ t, jnp.ones(2), 1.0, num_steps=0)


def test_gd_is_closer_to_the_flow_of_the_modified_loss():
    # Barrett & Dherin: one GD step of size h is the modified flow's point to O(h^3) but the
    # plain flow's only to O(h^2).
    h = 0.05
    with jax.enable_x64(True):
        batch = (jnp.asarray(X_NxD), jnp.asarray(Y_N))
        theta = jnp.asarray(THETA_D)
        step = theta - h * jax.grad(_least_squares)(theta, batch)
        plain = implicit.gradient_flow(lambda t: _least_squares(t, batch), theta, h, num_steps=50)
        modified_loss = implicit.modified_loss_gd(_least_squares, h)
        modified = implicit.gradient_flow(lambda t: modified_loss(t, batch), theta, h, num_steps=50)
    assert np.linalg.norm(step - modified) < 0.05 * np.linalg.norm(step - plain)


def test_sgd_regularizer_in_fit_is_descent_on_the_modified_loss():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(16, 3)).astype(np.float32), (np.arange(16) % 2).astype(np.int32)
    data = Dataset(x, y, x[:4], y[:4], 2, "tiny")
    model = get_model("mlp", widths=(4,), num_outputs=2)
    regularizer = implicit.SGDRegularizer(strength=0.5, num_batches=4)
    result = train.fit(model, data, optax.sgd(0.1), epochs=1, batch_size=None, regularizer=regularizer,
                       progress=False)
    loss_fn = losses.make_loss_fn(train.make_apply_fn(model))
    modified = implicit.modified_loss_sgd(loss_fn, 0.5, 4)
    params0 = result.initial_state.params
    by_hand = jax.tree.map(lambda p, g: p - 0.1 * g, params0, jax.jit(jax.grad(modified))(params0, (x, y)))
    for a, b in zip(jax.tree.leaves(result.state.params), jax.tree.leaves(by_hand)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(result.history["batch_loss"][0], loss_fn(params0, (x, y)), rtol=1e-5)


def test_minibatch_gradient_probe_is_the_mean_squared_minibatch_gradient():
    with jax.enable_x64(True):
        batch = (jnp.asarray(X_NxD), jnp.asarray(Y_N))
        _, value = implicit.MinibatchGradientProbe(3).measure((), _least_squares, jnp.asarray(THETA_D), batch)
    g_k = [_gradient_by_hand(THETA_D, X_NxD[i * 4:(i + 1) * 4], Y_N[i * 4:(i + 1) * 4]) for i in range(3)]
    np.testing.assert_allclose(value, np.mean([v @ v for v in g_k]), rtol=1e-12)


def test_bad_inputs_raise_naming_the_field():
    batch = (jnp.asarray(X_NxD, jnp.float32), jnp.asarray(Y_N, jnp.float32))
    theta = jnp.asarray(THETA_D, jnp.float32)
    for bad in (0.0, -0.1):
        with pytest.raises(ValueError, match="learning_rate must be a positive number"):
            implicit.modified_loss_gd(_least_squares, bad)
    with pytest.raises(ValueError, match="num_batches must be a divisor of the 12 examples"):
        implicit.modified_loss_sgd(_least_squares, 0.1, 5)(theta, batch)
    with pytest.raises(ValueError, match="loss_fn must be a callable loss_fn"):
        implicit.modified_loss_sgd(lambda theta: jnp.sum(theta), 0.1, 2)
    with pytest.raises(ValueError, match="num_batches"):
        implicit.SGDRegularizer(strength=0.1, num_batches=0)
