"""Tests for jaxdl.course.features against float64 NumPy references, the kernel random features estimate,
and gradient descent with jaxdl.train.optim's L2 option."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import count_compiles
from jaxdl import data
from jaxdl.course import features
from jaxdl.train import losses, optim


@pytest.fixture(scope="module")
def poly():
    return data.load("poly", standardize=False)


def _float64(*arrays):
    return [np.asarray(a, np.float64) for a in arrays]


def test_polynomial_features_are_increasing_powers():
    x = np.array([-0.5, 0.0, 0.3, 1.0], np.float32)
    np.testing.assert_allclose(features.polynomial_features(x[:, None], 4), np.vander(x, 5, increasing=True),
                               rtol=1e-6)
    with pytest.raises(ValueError, match="degree"):
        features.polynomial_features(x, -1)
    with pytest.raises(ValueError, match="shape"):
        features.polynomial_features(np.zeros((4, 2)), 3)


def test_least_squares_polynomial_matches_numpy_polyfit(poly):
    degree = 9  # 10 coefficients on 15 points: ill-conditioned enough to catch a normal-equations solve
    x, y, x_test = _float64(poly.x_train[:, 0], poly.y_train[:, 0], poly.x_test[:, 0])
    theta = features.least_squares(features.polynomial_features(poly.x_train, degree), poly.y_train)
    predictions = features.polynomial_features(poly.x_test, degree) @ theta
    reference = np.polyval(np.polyfit(x, y, degree), x_test)
    np.testing.assert_allclose(predictions[:, 0], reference, atol=1e-4 * np.abs(reference).max())


def test_ridge_solves_the_penalised_normal_equations_for_a_traced_penalty(poly):
    x, y = _float64(poly.x_train[:, 0], poly.y_train[:, 0])
    phi = np.vander(x, 10, increasing=True)
    grid = np.array([1e-6, 1e-3, 1e-1], np.float32)
    # One program for the whole grid of penalties (a traced l2, as under vmap).
    thetas = jax.jit(jax.vmap(lambda g: features.least_squares(features.polynomial_features(poly.x_train, 9),
                                                                 poly.y_train[:, 0], g)))(grid)
    for gamma, theta in zip(grid.astype(np.float64), thetas):
        # argmin (1/N) ||phi theta - y||^2 + gamma ||theta||^2
        reference = np.linalg.solve(phi.T @ phi + len(x) * gamma * np.eye(10), phi.T @ y)
        np.testing.assert_allclose(phi @ np.asarray(theta, np.float64), phi @ reference, atol=2e-4)


def test_ridge_is_where_gradient_descent_with_optim_l2_converges(poly):
    # The penalty convention is optim.get_optimizer's l2: the mean squared error plus gamma ||theta||^2.
    gamma, degree = 1e-2, 3
    phi = features.polynomial_features(poly.x_train, degree)
    tx = optim.get_optimizer("gd", 0.3, l2=gamma)
    loss_fn = lambda theta: losses.mse(phi @ theta, poly.y_train)

    def step(carry, _):
        theta, state = carry
        updates, state = tx.update(jax.grad(loss_fn)(theta), state, theta)
        return (theta + updates, state), None

    theta0 = jnp.zeros((degree + 1, 1))
    (theta, _), _ = jax.lax.scan(step, (theta0, tx.init(theta0)), None, length=5000)
    np.testing.assert_allclose(theta, features.least_squares(phi, poly.y_train, gamma), atol=2e-4)


def _min_norm_predictions(phi, y, phi_test, count):
    phi, y, phi_test = _float64(phi, y, phi_test)
    theta = np.linalg.lstsq(phi[:, :count], y, rcond=None)[0]
    return phi_test[:, :count] @ theta, np.linalg.norm(theta)


BANDWIDTH = 2.0
COUNTS = [3, 10, 20, 30, 40, 50, 80, 160, 2000]  # 40 training points: the threshold is at 40


@pytest.fixture(scope="module")
def random_features_problem():
    """40 training and 30 test points in 5-D, 3 targets, 2000 random features (one draw for both)."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(70, 5)).astype(np.float32)
    phi = features.random_fourier_features(jax.random.key(2), x, 2000, BANDWIDTH)
    return x[:40], phi[:40], rng.normal(size=(40, 3)).astype(np.float32), phi[40:]


def test_random_fourier_features_estimate_the_gaussian_kernel(random_features_problem):
    x, phi, _, _ = random_features_problem
    kernel = np.exp(-np.sum((x[:, None] - x[None]) ** 2, -1) / (2 * BANDWIDTH**2))
    error = np.abs(np.asarray(phi @ phi.T, np.float64) - kernel)
    assert error.mean() < 0.03 and error.max() < 0.15  # Monte Carlo error about 1 / sqrt(2000)
    with pytest.raises(ValueError, match="bandwidth"):
        features.random_fourier_features(jax.random.key(2), x, 10, 0.0)


def test_feature_count_sweep_matches_numpy_min_norm_fits(random_features_problem):
    _, phi, y, phi_test = random_features_problem
    counts = COUNTS
    train_predictions, test_predictions, norms = features.fit_feature_counts(phi, y, phi_test, counts)
    assert test_predictions.shape == (len(counts), 30, 3) and train_predictions.shape == (len(counts), 40, 3)
    for g, count in enumerate(counts):
        if count == 40:  # at the interpolation threshold float32 cannot match float64
            continue
        reference, norm = _min_norm_predictions(phi, y, phi_test, count)
        np.testing.assert_allclose(test_predictions[g], reference, atol=2e-3 * np.abs(reference).max())
        np.testing.assert_allclose(norms[g], norm, rtol=2e-3)
        if count >= 80:  # beyond the threshold the min-norm fit interpolates
            np.testing.assert_allclose(train_predictions[g], y, atol=1e-3)
    # The min-norm solution's norm peaks at the threshold: the double-descent mechanism.
    threshold = counts.index(40)
    assert norms[threshold] > 3 * max(norms[threshold - 1], norms[threshold + 1])


def test_feature_count_sweep_with_a_penalty_matches_numpy(random_features_problem, poly):
    _, phi, y, phi_test = random_features_problem
    counts, gamma = [10, 40, 41, 2000], 1e-3
    _, test_predictions, _ = features.fit_feature_counts(phi, y, phi_test, counts, gamma)
    phi64, y64, phi_test64 = _float64(phi, y, phi_test)
    for g, count in enumerate(counts):
        a = phi64[:, :count]
        theta = np.linalg.solve(a.T @ a + 40 * gamma * np.eye(count), a.T @ y64)
        np.testing.assert_allclose(test_predictions[g], phi_test64[:, :count] @ theta, atol=1e-4)
    # P <= N (polynomials): the primal solve, per count and penalty.
    phi_poly = features.polynomial_features(poly.x_train, 9)
    _, predictions, _ = features.fit_feature_counts(phi_poly, poly.y_train, phi_poly, [2, 3, 10, 10], [0, 0, 0, 1e-3])
    x, y_poly = _float64(poly.x_train[:, 0], poly.y_train[:, 0])
    for g, degree in enumerate((1, 2, 9)):
        np.testing.assert_allclose(predictions[g, :, 0], np.polyval(np.polyfit(x, y_poly, degree), x), atol=1e-4)


def test_feature_count_sweep_compiles_once_and_checks_its_inputs(random_features_problem):
    _, phi, y, phi_test = random_features_problem
    features.fit_feature_counts(phi, y, phi_test, COUNTS)
    scaled = phi * 2.0
    with count_compiles() as compiles:
        features.fit_feature_counts(scaled, y, phi_test, [c - 1 for c in COUNTS])
    assert compiles.count == 0
    with pytest.raises(ValueError, match="counts"):
        features.fit_feature_counts(phi, y, phi_test, [0, 5])
    with pytest.raises(ValueError, match="counts"):
        features.fit_feature_counts(phi, y, phi_test, [5, 2001])
    with pytest.raises(ValueError, match="l2"):
        features.fit_feature_counts(phi, y, phi_test, [5], -1.0)
    with pytest.raises(ValueError, match="phi_test"):
        features.fit_feature_counts(phi, y, phi_test[:, :10], [5])
