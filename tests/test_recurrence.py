"""jaxdl.course.recurrence and the adding problem against independent references: central finite
differences in float64, explicit products of per-step Jacobians and matrix powers, a NumPy
backward pass for Omega, the clipping formula written out, and the generator's definition."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import assert_config_error_names_field, count_compiles, random_params

from experiments import rnn_gradients
from jaxdl import data
from jaxdl.course import recurrence
from jaxdl.train import optim
from jaxdl.models import get_model


def _sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


# Jitted once here: run eagerly, every op of these scans would compile a program of its own.
_cliff_grad = jax.jit(jax.grad(recurrence.cliff_loss, argnums=(0, 1)))
_cliff_grad_b = jax.jit(jax.vmap(jax.grad(recurrence.cliff_loss, argnums=1), in_axes=(None, 0)))
_omega_grad = jax.jit(jax.grad(recurrence.omega))


def _cliff_numpy(w, b, num_steps=50, h0=0.5, target=0.7):
    h = h0
    for _ in range(num_steps):
        h = w * _sigmoid(h) + b
    return (h - target) ** 2


# ----------------------------------------------------------------------------- the cliff


@pytest.mark.parametrize("point", [(2.0, 0.5), (5.0, -2.0), (7.0, -3.5), (5.0, -2.6)])
def test_cliff_gradient_matches_central_differences_in_float64(point):
    with jax.enable_x64(True):
        w, b = (jnp.float64(v) for v in point)
        grad = np.asarray(_cliff_grad(w, b))
        step = 1e-6
        fd = [(_cliff_numpy(point[0] + step, point[1]) - _cliff_numpy(point[0] - step, point[1])) / (2 * step),
              (_cliff_numpy(point[0], point[1] + step) - _cliff_numpy(point[0], point[1] - step)) / (2 * step)]
        np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-7)
        assert float(recurrence.cliff_loss(w, b)) == pytest.approx(_cliff_numpy(*point), rel=1e-12)


def test_cliff_near_the_wall_has_a_huge_gradient():
    # w = 5: the saddle-node wall lies near b = -2.612, where h(0) = 0.5 changes basin.
    with jax.enable_x64(True):
        bs = np.concatenate([np.linspace(-2.62, -2.60, 201), [-3.5, -1.5]])
        grads = np.abs(np.asarray(_cliff_grad_b(jnp.float64(5.0), bs)))
    near, away = grads[:-2], grads[-2:]
    assert near.max() > 100 * away.max()


def test_loss_surface_layout_and_values_match_pointwise_evaluation():
    loss_fn = recurrence.CliffLoss(num_steps=20)
    ws, bs = np.linspace(-2.0, 6.0, 5), np.linspace(-3.0, 1.0, 3)
    surface = np.asarray(recurrence.loss_surface(loss_fn, ws, bs, points_per_chunk=4))
    expected = np.array([[_cliff_numpy(w, b, num_steps=20) for w in ws] for b in bs])
    np.testing.assert_allclose(surface, expected, rtol=2e-5, atol=1e-6)
    with count_compiles() as compiles:
        recurrence.loss_surface(recurrence.CliffLoss(num_steps=20), ws + 1.0, bs, points_per_chunk=4)
    assert compiles.count == 0


def test_descent_paths_follow_gradient_descent_and_the_clipping_formula():
    # loss = 0.5 theta^T A theta: gradient A theta, written out independently of JAX.
    a = np.diag([1.0, 10.0]).astype(np.float32)
    loss_fn = jax.tree_util.Partial(lambda a, theta: 0.5 * theta @ a @ theta, jnp.asarray(a))
    starts = np.array([[3.0, 1.0], [0.01, 0.02]], np.float32)  # gradient norms ~10.4 and ~0.2
    eta, threshold, steps = 0.05, 1.0, 4
    paths = recurrence.descent_paths(loss_fn, starts, optim.get_optimizer("gd", eta, clip_norm=threshold),
                                     num_steps=steps)
    plain = recurrence.descent_paths(loss_fn, starts, optim.get_optimizer("gd", eta), num_steps=steps)
    for q, start in enumerate(starts.astype(np.float64)):
        theta, theta_plain = start.copy(), start.copy()
        for s in range(steps):
            g = a @ theta
            norm = np.linalg.norm(g)
            assert paths.grad_norm_GxS[q, s] == pytest.approx(norm, rel=1e-5)
            theta = theta - eta * (g * threshold / norm if norm >= threshold else g)
            theta_plain = theta_plain - eta * (a @ theta_plain)
            np.testing.assert_allclose(paths.params_GxSxD[q, s + 1], theta, rtol=1e-5, atol=1e-7)
            np.testing.assert_allclose(plain.params_GxSxD[q, s + 1], theta_plain, rtol=1e-5, atol=1e-7)
        assert paths.loss_GxS[q, -1] == pytest.approx(0.5 * theta @ a @ theta, rel=1e-5)
    np.testing.assert_array_equal(paths.params_GxSxD[:, 0], starts)


def test_descent_paths_compile_once_for_an_equal_loss():
    tx = optim.get_optimizer("gd", 0.01, clip_norm=10.0)
    starts = np.array([[7.0, -3.5]], np.float32)
    first = recurrence.descent_paths(recurrence.CliffLoss(num_steps=10), starts, tx, num_steps=3)
    with count_compiles() as compiles:
        again = recurrence.descent_paths(recurrence.CliffLoss(num_steps=10), starts + 0.5, tx, num_steps=3)
    assert compiles.count == 0
    assert not np.allclose(first.params_GxSxD, again.params_GxSxD)


def test_cliff_loss_rejects_bad_options():
    with pytest.raises(ValueError, match="num_steps"):
        recurrence.CliffLoss(num_steps=0)
    with pytest.raises(ValueError, match="target"):
        recurrence.CliffLoss(target=float("nan"))


# ----------------------------------------------------------------------------- Jacobians


def _explicit_jacobian_norms(w, h0, inputs, activation):
    """||dh_S/dh_(S-k)||_2 from per-step Jacobians diag(f'(a_t)) W^T multiplied out in float64."""
    w, h, jacobians = np.asarray(w, np.float64), np.asarray(h0, np.float64), []
    for x in np.asarray(inputs, np.float64):
        a = h @ w + x
        h = np.tanh(a) if activation == "tanh" else a
        slope = 1.0 - h ** 2 if activation == "tanh" else np.ones_like(a)
        jacobians.append(slope[:, None] * w.T)
    norms, product = [1.0], np.eye(len(w))
    for jacobian in reversed(jacobians):
        product = product @ jacobian
        norms.append(np.linalg.norm(product, 2))
    return np.array(norms)


@pytest.mark.parametrize("activation", ["identity", "tanh"])
def test_state_jacobian_norms_match_explicit_products(activation):
    rng = np.random.default_rng(0)
    hidden, steps = 5, 7
    w = (rng.standard_normal((hidden, hidden)) / np.sqrt(hidden)).astype(np.float32)
    h0 = rng.standard_normal(hidden).astype(np.float32)
    inputs = rng.standard_normal((steps, hidden)).astype(np.float32)
    norms = np.asarray(jax.jit(recurrence.state_jacobian_norms, static_argnums=3)(w, h0, inputs, activation))
    np.testing.assert_allclose(norms, _explicit_jacobian_norms(w, h0, inputs, activation), rtol=1e-4)
    if activation == "identity":
        powers = [np.linalg.norm(np.linalg.matrix_power(w.astype(np.float64), k), 2) for k in range(steps + 1)]
        np.testing.assert_allclose(norms, powers, rtol=1e-4)
    else:  # one k against reverse-mode autodiff of the unrolled map h_(S-3) -> h_S
        def last_from(h):
            for x in inputs[-3:]:
                h = jnp.tanh(h @ w + x)
            return h

        h_start = jnp.asarray(h0)
        for x in inputs[:-3]:
            h_start = jnp.tanh(h_start @ w + x)
        assert norms[3] == pytest.approx(np.linalg.norm(np.asarray(jax.jacrev(last_from)(h_start)), 2), rel=1e-4)


def test_jacobian_norms_by_radius_are_powers_of_the_radius_for_orthogonal_matrices():
    # W = rho Q with Q orthogonal: ||(W^T)^k||_2 = rho^k exactly, for every seed.
    radii = np.array([0.5, 1.0, 1.5], np.float32)
    norms = np.asarray(recurrence.jacobian_norms_by_radius(jax.random.key(0), radii, hidden_size=6, num_steps=8,
                                                           num_seeds=2, recurrent_init="orthogonal"), np.float64)
    assert norms.shape == (3, 2, 9)
    np.testing.assert_allclose(norms, np.broadcast_to(radii[:, None, None] ** np.arange(9), (3, 2, 9)), rtol=1e-4)
    with pytest.raises(ValueError, match="activation"):
        recurrence.jacobian_norms_by_radius(jax.random.key(0), radii, hidden_size=6, num_steps=8, num_seeds=2,
                                            activation="relu")


# ----------------------------------------------------------------------------- Omega


def _tiny_rnn(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 1.0, (3, 5, 2)).astype(np.float32)
    y = rng.uniform(0.0, 2.0, (3, 1)).astype(np.float32)
    model = get_model("rnn", hidden_size=3, num_outputs=1)
    return model, random_params(model, x, seed=seed, scale=0.8), x, y


def _omega_numpy(params, x, y, frozen_errors=None):
    """Omega by hand (float64): states, dC/dh_k by the backward recursion, ratios of norms; with
    ``frozen_errors`` the incoming errors dC/dh_(k+1) are those given (held constant)."""
    p = {k: np.asarray(v, np.float64) for k, v in params["layer_0"].items()}
    kernel, bias = (np.asarray(params["output"][k], np.float64) for k in ("kernel", "bias"))
    h, states = np.zeros((x.shape[0], p["bias"].size)), []
    for t in range(x.shape[1]):
        h = np.tanh(x[:, t] @ p["input_kernel"] + h @ p["recurrent_kernel"] + p["bias"])
        states.append(h)
    errors = [None] * len(states)
    errors[-1] = 2.0 * (states[-1] @ kernel + bias - y) @ kernel.T / y.size  # d mean-squared-error / dh_L
    for k in range(len(states) - 2, -1, -1):
        errors[k] = (errors[k + 1] * (1 - states[k + 1] ** 2)) @ p["recurrent_kernel"].T
    incoming = errors if frozen_errors is None else frozen_errors
    total = 0.0
    for k in range(len(states) - 1):
        carried = (incoming[k + 1] * (1 - states[k + 1] ** 2)) @ p["recurrent_kernel"].T
        ratio = np.linalg.norm(carried, axis=-1) / np.linalg.norm(incoming[k + 1], axis=-1)
        total = total + (ratio - 1.0) ** 2
    return float(np.mean(total)), errors


def test_omega_matches_a_hand_computation_and_the_zoo_model():
    model, params, x, y = _tiny_rnn()
    expected, _ = _omega_numpy(params, x.astype(np.float64), y.astype(np.float64))

    @jax.jit  # one program for everything checked here
    def measured(params, x, y):
        h = recurrence.elman_states(params, x)
        return (recurrence.omega(params, (x, y)), recurrence.OmegaRegularizer(0.25)(None, params, (x, y)),
                h[:, -1] @ params["output"]["kernel"] + params["output"]["bias"], model.apply({"params": params}, x))

    value, regularizer, readout, outputs = measured(params, x, y)
    assert float(value) == pytest.approx(expected, rel=1e-4)
    assert float(regularizer) == pytest.approx(0.25 * expected, rel=1e-4)
    # The recomputed states are the zoo model's: their read-out of h_L is the model's output.
    np.testing.assert_allclose(readout, outputs, rtol=1e-5, atol=1e-6)


def test_omega_gradient_holds_the_incoming_error_constant():
    _, params, x, y = _tiny_rnn(seed=1)
    with jax.enable_x64(True):
        params64 = jax.tree.map(lambda v: np.asarray(v, np.float64), params)
        x64, y64 = x.astype(np.float64), y.astype(np.float64)
        grads = _omega_grad(params64, (x64, y64))
        _, frozen = _omega_numpy(params64, x64, y64)
        step = 1e-6
        for leaf, index in [("recurrent_kernel", (0, 1)), ("input_kernel", (1, 2)), ("bias", (0,))]:
            def shifted(delta, leaf=leaf, index=index):
                moved = jax.tree.map(np.copy, params64)
                moved["layer_0"][leaf][index] += delta
                return _omega_numpy(moved, x64, y64, frozen_errors=frozen)[0]

            fd = (shifted(step) - shifted(-step)) / (2 * step)
            assert float(grads["layer_0"][leaf][index]) == pytest.approx(fd, rel=1e-5, abs=1e-8)
        # The read-out reaches Omega only through dC/dh, which is held constant.
        assert np.all(np.asarray(grads["output"]["kernel"]) == 0.0)


def test_omega_rejects_other_recurrent_nets():
    x = np.zeros((2, 4, 1), np.float32)
    params = random_params(get_model("rnn", hidden_size=2, num_layers=2, num_outputs=1), x)
    with pytest.raises(ValueError, match="params"):
        recurrence.omega(params, (x, np.zeros((2, 1), np.float32)))
    with pytest.raises(ValueError, match="strength"):
        recurrence.OmegaRegularizer(-1.0)


# ----------------------------------------------------------------------------- the adding problem


def test_adding_problem_shapes_markers_and_exact_targets():
    length, lag = 12, 7
    ds = data.load("adding", length=length, lag=lag, num_train=300, num_test=50, seed=3, standardize=False)
    assert ds.x_train.shape == (300, length, 2) and ds.y_train.shape == (300, 1)
    assert ds.x_test.shape == (50, length, 2) and ds.num_classes is None and ds.x_train.dtype == np.float32
    for x, y in ((ds.x_train, ds.y_train), (ds.x_test, ds.y_test)):
        marker = x[..., 1]
        assert set(np.unique(marker)) == {0.0, 1.0} and np.all(marker.sum(axis=1) == 2)
        assert np.all(marker[:, length - 1 - lag] == 1)  # the first marker: lag steps before the end
        assert np.all(marker[:, : length - 1 - lag] == 0)
        assert np.all((x[..., 0] >= 0) & (x[..., 0] < 1))
        np.testing.assert_array_equal(y[:, 0], (x[..., 0] * marker).sum(axis=1, dtype=np.float32))
    second = np.argmax(ds.x_train[:, length - lag:, 1], axis=1)
    assert set(second) == set(range(lag))  # the second marker ranges over the last lag positions


def test_adding_problem_is_deterministic_and_its_target_variance_is_one_sixth():
    a = data.load("adding", length=20, lag=10, num_train=100, num_test=20000, seed=5, standardize=False)
    b = data.load("adding", length=20, lag=10, num_train=200, num_test=20000, seed=5, standardize=False)
    np.testing.assert_array_equal(a.x_test, b.x_test)  # the test set ignores num_train
    np.testing.assert_array_equal(a.x_train, b.x_train[:100])
    other = data.load("adding", length=20, lag=10, num_train=100, num_test=10, seed=6, standardize=False)
    assert not np.array_equal(a.x_train, other.x_train)
    assert data.ADDING_MEAN_PREDICTION_MSE == pytest.approx(1 / 6)
    # Var(u1 + u2) = 1/6 for independent U[0, 1]: standard error of the estimate ~0.0012 here.
    assert np.var(a.y_test, dtype=np.float64) == pytest.approx(1 / 6, abs=0.006)


@pytest.mark.parametrize("options, field", [
    (dict(length=10, lag=10), "lag"), (dict(length=10, lag=12), "lag"), (dict(lag=0), "lag"),
    (dict(length=1, lag=1), "length"), (dict(num_train=0), "num_train"), (dict(num_test=-5), "num_test"),
    (dict(lag=2.5), "lag"),
])
def test_adding_problem_rejects_bad_options(options, field):
    with pytest.raises(ValueError, match=field):
        data.load("adding", **options)


# ----------------------------------------------------------------------------- the experiment's config


@pytest.mark.parametrize("field, value", [
    ("adding.lags", (41,)), ("adding.models", ("elman",)), ("cliff.clip_norm", 0.0),
    ("jacobian.radii", (0.5, 0.9, 1.0, 1.1)), ("jacobian.activations", ("tanh",)), ("adding.epochs", 0),
])
def test_experiment_config_errors_name_the_field(field, value):
    assert_config_error_names_field(rnn_gradients, "default", field, value)


def test_adding_problem_is_raw_by_default_and_standardised_only_when_asked():
    raw = data.load("adding", length=12, lag=5, num_train=40, num_test=10)
    assert set(np.unique(raw.x_train[..., 1])) == {0.0, 1.0} and raw.x_train[..., 0].min() >= 0.0
    standardised = data.load("adding", length=12, lag=5, num_train=40, num_test=10, standardize=True)
    assert np.allclose(standardised.x_train.mean(0)[:, 0], 0.0, atol=1e-5)
