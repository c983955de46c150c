"""Tests of the spectrum readers of jaxdl.analysis.curvature (SLQ on H and G, spectral mass and
index, outliers, H - G in a subspace) against independent truth: the dense Hessian from
``jax.hessian``, the dense Gauss-Newton matrix J^T H_out J from ``jax.jacfwd``, their
``numpy.linalg.eigh``, and hand-made spectra.

One small tanh network (5-24-4, P = 244) on 40 examples, in float64 inside
``jax.enable_x64(True)``. Softmax ignores a shift of all logits, so H and G share a null space
of dimension 25 (b2 and the rows of w2 along the all-ones vector); G has rank 120 (40 examples
times 3). Thresholds are put in gaps of the dense spectrum, where quadrature with S = P is exact.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdl import train
from jaxdl.analysis import curvature
from jaxdl.core import linalg, tree
from jaxdl.models import get_model
from jaxdl.train import losses
from helpers import count_compiles, flat

DIMS = (5, 24, 4)
NUM_EXAMPLES = 40


def apply_fn(params, x):
    return jnp.tanh(x @ params["w1"] + params["b1"]) @ params["w2"] + params["b2"]


def linear_apply_fn(params, x):
    return x @ params["w"] + params["b"]


def output_loss(logits_BxC, labels_B):
    log_probs = jax.nn.log_softmax(logits_BxC)
    return -jnp.mean(jnp.take_along_axis(log_probs, labels_B[:, None], axis=1))


def loss(params, batch):
    return output_loss(apply_fn(params, batch[0]), batch[1])


@functools.lru_cache(maxsize=None)
def _numpy_problem():
    """Float64 NumPy parameters (tanh net and linear model) and data."""
    rng = np.random.default_rng(0)
    params = {"w1": rng.normal(size=DIMS[:2]) / np.sqrt(DIMS[0]), "b1": 0.1 * rng.normal(size=DIMS[1]),
              "w2": 2 * rng.normal(size=DIMS[1:]) / np.sqrt(DIMS[1]), "b2": 0.1 * rng.normal(size=DIMS[2])}
    linear = {"w": rng.normal(size=(DIMS[0], DIMS[2])), "b": 0.1 * rng.normal(size=DIMS[2])}
    x = rng.normal(size=(NUM_EXAMPLES, DIMS[0]))
    y = rng.integers(0, DIMS[2], NUM_EXAMPLES).astype(np.int32)
    return params, linear, (x, y)


def _problem(which="tanh"):
    """(params, data) as float64 JAX arrays (call inside ``jax.enable_x64(True)``)."""
    params, linear, (x, y) = _numpy_problem()
    chosen = params if which == "tanh" else linear
    return jax.tree.map(jnp.asarray, chosen), (jnp.asarray(x), jnp.asarray(y))


@functools.lru_cache(maxsize=None)
def _dense(which="tanh"):
    """The dense H (``jax.hessian``) and G = J^T H_out J (``jax.jacfwd``) of the mean loss."""
    model = apply_fn if which == "tanh" else linear_apply_fn
    with jax.enable_x64(True):
        params, (x, y) = _problem(which)
        theta_P, unflatten = tree.flatten(params)
        hessian = jax.jit(jax.hessian(lambda t: output_loss(model(unflatten(t), x), y)))(theta_P)
        jacobian = jax.jit(jax.jacfwd(lambda t: model(unflatten(t), x)))(theta_P).reshape(-1, theta_P.size)
        logits = model(params, x)
        output_hessian = jax.jit(jax.hessian(lambda o: output_loss(o, y)))(logits).reshape(logits.size, logits.size)
    jacobian = np.asarray(jacobian)
    return np.asarray(hessian), jacobian.T @ np.asarray(output_hessian) @ jacobian


def _starts(key, num_runs, num_parameters):
    """The unit start vectors of SLQ's runs: Gaussians from ``jax.random.split(key, num_runs)``."""
    starts_RxP = np.stack([np.asarray(jax.random.normal(k, (num_parameters,), jnp.float64))
                           for k in jax.random.split(key, num_runs)])
    return starts_RxP / np.linalg.norm(starts_RxP, axis=1, keepdims=True)


def _density(matrix_name, **options):
    params, data = _problem()
    if matrix_name == "hessian":
        return curvature.hessian_spectral_density(loss, params, data, **options)
    return curvature.gauss_newton_spectral_density(apply_fn, output_loss, params, data, **options)


# ----------------------------------------------------------------------------- SLQ on H and G


@pytest.mark.parametrize("matrix_name", ["hessian", "gauss_newton"])
def test_slq_moments_are_the_start_vectors_quadratic_forms_and_estimate_the_traces(matrix_name):
    matrix = _dense()[0 if matrix_name == "hessian" else 1]
    num_parameters, num_runs, key = matrix.shape[0], 12, jax.random.key(3)
    with jax.enable_x64(True):
        density = _density(matrix_name, num_steps=12, num_runs=num_runs, key=key)
        starts_RxP = _starts(key, num_runs, num_parameters)
    nodes, weights = np.asarray(density.nodes), np.asarray(density.weights)
    np.testing.assert_allclose(weights.sum(axis=1), 1, atol=1e-12)
    # Gauss quadrature with S nodes is exact up to degree 2S - 1: per run, the moments are v^T A^j v.
    for power in (1, 2):
        per_run = np.sum(weights * nodes ** power, axis=1)
        expected = np.einsum("rp,pq,rq->r", starts_RxP, np.linalg.matrix_power(matrix, power), starts_RxP)
        np.testing.assert_allclose(per_run, expected, rtol=1e-9)
        # ... whose mean over Gaussian starts is tr(A^j) / P.
        standard_error = per_run.std(ddof=1) / np.sqrt(num_runs)
        truth = np.trace(np.linalg.matrix_power(matrix, power)) / num_parameters
        assert abs(per_run.mean() - truth) < 4 * standard_error, (power, per_run.mean(), truth, standard_error)


def test_hessian_spectral_density_runs_lanczos_on_the_hessian_from_the_split_keys():
    # The refactored SLQ keeps the numbers: the nodes are the Ritz values of Lanczos on the dense
    # Hessian from the same starts.
    hessian, _ = _dense()
    key = jax.random.key(5)
    with jax.enable_x64(True):
        density = _density("hessian", num_steps=12, num_runs=12, key=key)  # the program of the test above
        starts_RxP = jnp.asarray(_starts(key, 12, hessian.shape[0])[:3])
        ritz_values = jax.jit(jax.vmap(lambda start_P: jnp.linalg.eigvalsh(linalg.tridiagonal(
            *linalg.lanczos(lambda v: jnp.asarray(hessian) @ v, start_P, 12)[:2]))))
        np.testing.assert_allclose(np.asarray(density.nodes[:3]), np.asarray(ritz_values(starts_RxP)), rtol=1e-8,
                                   atol=1e-10)


# ----------------------------------------------------------------------------- mass and index


def _gap_thresholds(eigenvalues):
    """Thresholds in gaps of the spectrum: around the null cluster and at three quantiles."""
    nonzero = np.sort(eigenvalues[np.abs(eigenvalues) > 1e-10])
    smallest = np.min(np.abs(nonzero))
    thresholds = [-smallest / 2, smallest / 2]
    for q in (0.2, 0.5, 0.8):
        i = int(q * nonzero.size)
        assert nonzero[i + 1] - nonzero[i] > 1e-6
        thresholds.append((nonzero[i] + nonzero[i + 1]) / 2)
    return sorted(set(thresholds))


@pytest.mark.parametrize("matrix_name", ["hessian", "gauss_newton"])
def test_spectral_mass_with_full_lanczos_is_the_start_weighted_dense_mass(matrix_name):
    matrix = _dense()[0 if matrix_name == "hessian" else 1]
    eigenvalues, eigenvectors = np.linalg.eigh(matrix)
    num_parameters, num_runs, key = matrix.shape[0], 4, jax.random.key(7)
    with jax.enable_x64(True):
        density = _density(matrix_name, num_steps=num_parameters, num_runs=num_runs, key=key)
        starts_RxP = _starts(key, num_runs, num_parameters)
        _check_masses(density, starts_RxP, eigenvalues, eigenvectors, matrix_name)


def _check_masses(density, starts_RxP, eigenvalues, eigenvectors, matrix_name):
    num_runs = starts_RxP.shape[0]
    squared_RxP = (starts_RxP @ eigenvectors) ** 2  # each run's weight on each eigenvector
    thresholds = _gap_thresholds(eigenvalues)
    for low, high in zip(thresholds[:-1], thresholds[1:]):
        cases = {"below": (dict(below=high), eigenvalues < high), "above": (dict(above=low), eigenvalues > low),
                 "between": (dict(below=high, above=low), (eigenvalues > low) & (eigenvalues < high))}
        for name, (bounds, inside_P) in cases.items():
            mass = curvature.spectral_mass(density, **bounds)
            expected_R = squared_RxP[:, inside_P].sum(axis=1)
            np.testing.assert_allclose(np.asarray(mass.per_run), expected_R, atol=1e-9, err_msg=f"{name} {bounds}")
            np.testing.assert_allclose(float(mass.estimate), expected_R.mean(), atol=1e-9)
            np.testing.assert_allclose(float(mass.standard_error), expected_R.std(ddof=1) / np.sqrt(num_runs),
                                       atol=1e-9)
            # ... an estimate of the unweighted fraction, within the runs' spread.
            fraction = inside_P.mean()
            assert abs(float(mass.estimate) - fraction) <= 5 * float(mass.standard_error) + 1e-9, (name, fraction)
    # The index past the null cluster: the fraction of clearly negative eigenvalues (none for G).
    index = curvature.spectral_index(density, thresholds[0] if matrix_name == "hessian" else -1e-8)
    negative_P = eigenvalues < (thresholds[0] if matrix_name == "hessian" else -1e-8)
    np.testing.assert_allclose(np.asarray(index.per_run), squared_RxP[:, negative_P].sum(axis=1), atol=1e-9)
    assert (matrix_name == "hessian") == (float(index.estimate) > 0.1)


def test_spectral_mass_sums_the_weights_of_the_nodes_past_the_thresholds():
    nodes = np.array([[-2.0, -1.0, 0.5, 3.0], [-0.5, 0.0, 1.0, 2.0], [-3.0, 0.25, 0.75, 4.0]])
    weights = np.array([[0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1], [0.25, 0.25, 0.25, 0.25]])
    density = curvature.SpectralDensity(np.zeros(2), np.zeros(2), jnp.asarray(nodes), jnp.asarray(weights))
    expected = {"below": np.array([0.3, 0.4, 0.25]), "above": np.array([0.7, 0.3, 0.75]),
                "between": np.array([0.3, 0.2, 0.5])}  # strictly: a node at a threshold counts on neither side
    got = {"below": curvature.spectral_mass(density, below=0.0), "above": curvature.spectral_mass(density, above=0.0),
           "between": curvature.spectral_mass(density, above=0.0, below=2.0)}
    for name, mass in got.items():
        np.testing.assert_allclose(np.asarray(mass.per_run), expected[name], atol=1e-7, err_msg=name)
        np.testing.assert_allclose(float(mass.estimate), expected[name].mean(), atol=1e-7)
        np.testing.assert_allclose(float(mass.standard_error), expected[name].std(ddof=1) / np.sqrt(3), atol=1e-7)
    np.testing.assert_allclose(np.asarray(curvature.spectral_index(density).per_run), expected["below"], atol=1e-7)
    one_run = curvature.SpectralDensity(np.zeros(2), np.zeros(2), jnp.asarray(nodes[:1]), jnp.asarray(weights[:1]))
    single = curvature.spectral_index(one_run, -1.5)
    assert float(single.estimate) == pytest.approx(0.1) and np.isnan(float(single.standard_error))


# ----------------------------------------------------------------------------- outliers


def test_outlier_count_on_hand_made_spectra():
    cases = [  # (eigenvalues, count, ratios)
        ([100.0, 80.0, 60.0, 2.0, 1.9, 1.8], 3, [1.25, 80 / 60, 30.0, 2 / 1.9, 1.9 / 1.8]),
        ([8.0, 4.0, 2.0, 1.0], 1, [2.0, 2.0, 2.0]),  # no gap: equal ratios, the first wins
        ([5.0, 4.0, 3.0, 0.0, -1.0], 3, [1.25, 4 / 3, np.inf, np.nan]),  # the count stops at 0
        ([50.0, 45.0, 40.0, 1.0, -1e-3], 4, [50 / 45, 45 / 40, 40.0, np.inf]),  # whatever the gaps above
        ([50.0, 40.0, 30.0, 1e-14, -1e-14], 3, [1.25, 4 / 3, np.inf, np.nan]),  # rounding-level: zero
        ([2.0, -1.0, -2.0], 1, [np.inf, np.nan]),
        ([-1.0, -2.0, -3.0], 0, [np.nan, np.nan]),
        ([1.8, 100.0, 2.0, 60.0, 1.9, 80.0], 3, [1.25, 80 / 60, 30.0, 2 / 1.9, 1.9 / 1.8]),  # sorted first
    ]
    for eigenvalues, count, ratios in cases:
        for x64 in (False, True):
            with jax.enable_x64(x64):
                for given in (np.asarray(eigenvalues), jnp.asarray(eigenvalues)):
                    got_count, got_ratios = curvature.outlier_count(given)
                    assert int(got_count) == count, (eigenvalues, x64)
                    np.testing.assert_allclose(np.asarray(got_ratios), ratios, rtol=1e-6, err_msg=str(eigenvalues))
    jitted_count, _ = jax.jit(curvature.outlier_count)(jnp.asarray([9.0, 8.0, 1.0]))
    assert int(jitted_count) == 2
    assert int(curvature.outlier_count(np.array([9, 8, 1]))[0]) == 2  # integers are eigenvalues too


@pytest.mark.parametrize("matrix_name", ["hessian", "gauss_newton"])
def test_outliers_are_the_dense_top_eigenvalues_and_their_largest_ratio(matrix_name):
    matrix = _dense()[0 if matrix_name == "hessian" else 1]
    top_Q = np.linalg.eigvalsh(matrix)[::-1][:6]
    # H to a tolerance within 40 steps; G for the default number of steps, 3 Q + 20.
    options = dict(num_steps=40, tol=1e-9) if matrix_name == "hessian" else dict(tol=None)
    with jax.enable_x64(True):
        params, data = _problem()
        found = (curvature.hessian_outliers(loss, params, data, max_outliers=5, **options) if matrix_name == "hessian"
                 else curvature.gauss_newton_outliers(apply_fn, output_loss, params, data, max_outliers=5, **options))
    np.testing.assert_allclose(np.asarray(found.eigenvalues), top_Q, rtol=1e-7)
    count, ratios = curvature.outlier_count(top_Q)
    assert int(found.count) == int(count) and 1 <= int(count) <= 5
    np.testing.assert_allclose(np.asarray(found.ratios), top_Q[:-1] / top_Q[1:], rtol=1e-6)
    assert float(found.bulk_edge) == pytest.approx(top_Q[int(count)], rel=1e-7)
    if matrix_name == "hessian":
        assert 6 <= int(found.steps) <= 40
    else:
        assert int(found.steps) == 3 * 6 + 20


def test_gauss_newton_top_eigenvalues_match_the_dense_gauss_newton_matrix():
    _, gauss_newton = _dense()
    eigenvalues, eigenvectors = np.linalg.eigh(gauss_newton)
    with jax.enable_x64(True):
        params, data = _problem()
        top = curvature.gauss_newton_top_eigenvalues(apply_fn, output_loss, params, data, k=3, num_steps=40,
                                                     tol=None)
        vectors_QxP = np.stack([flat(jax.tree.map(lambda a, i=i: a[i], top.eigenvectors)) for i in range(3)])
    np.testing.assert_allclose(np.asarray(top.eigenvalues), eigenvalues[::-1][:3], rtol=1e-8)
    overlaps = np.abs(vectors_QxP @ eigenvectors[:, ::-1][:, :3])
    np.testing.assert_allclose(np.diag(overlaps), 1, atol=1e-6)
    assert int(top.steps) == 40


# ----------------------------------------------------------------------------- H - G in a subspace


def _gram_schmidt(vectors_QxP):
    basis = []
    for v in vectors_QxP:
        for u in basis:
            v = v - (u @ v) * u
        basis.append(v / np.linalg.norm(v))
    return np.stack(basis)


def _random_vectors(params, num_vectors, seed):
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda a: jnp.asarray(rng.normal(size=(num_vectors, *a.shape))), params)


def test_residual_is_the_dense_hessian_minus_gauss_newton_in_the_subspace():
    hessian, gauss_newton = _dense()
    with jax.enable_x64(True):
        params, data = _problem()
        vectors = _random_vectors(params, 4, seed=1)
        got = curvature.hessian_gauss_newton_residual(apply_fn, output_loss, params, data, vectors, chunk_size=16)
        vectors_QxP = np.stack([flat(jax.tree.map(lambda a, i=i: a[i], vectors)) for i in range(4)])
    basis_QxP = _gram_schmidt(vectors_QxP)
    expected = {"hessian": basis_QxP @ hessian @ basis_QxP.T, "gauss_newton": basis_QxP @ gauss_newton @ basis_QxP.T}
    expected["residual"] = expected["hessian"] - expected["gauss_newton"]
    for name, matrix in expected.items():
        np.testing.assert_allclose(np.asarray(getattr(got, name)), matrix, atol=1e-10, err_msg=name)
    relative = np.linalg.norm(expected["residual"], 2) / np.linalg.norm(expected["hessian"], 2)
    assert float(got.relative) == pytest.approx(relative, rel=1e-8)
    assert relative > 0.05  # a tanh net is far from linear here: the test below can tell


def test_residual_vanishes_for_a_model_linear_in_its_parameters():
    hessian, gauss_newton = _dense("linear")
    np.testing.assert_allclose(hessian, gauss_newton, atol=1e-12)  # the reference itself
    with jax.enable_x64(True):
        params, data = _problem("linear")
        vectors = _random_vectors(params, 3, seed=2)
        got = curvature.hessian_gauss_newton_residual(linear_apply_fn, output_loss, params, data, vectors)
        basis_QxP = _gram_schmidt(np.stack([flat(jax.tree.map(lambda a, i=i: a[i], vectors)) for i in range(3)]))
    np.testing.assert_allclose(np.asarray(got.gauss_newton), basis_QxP @ gauss_newton @ basis_QxP.T, atol=1e-12)
    assert float(got.relative) < 1e-10 and np.abs(np.asarray(got.hessian)).max() > 1e-3


# ----------------------------------------------------------------------------- bad inputs


def _bad_calls():
    """{test id: (what the error must name, the call)}."""
    params, _, (x, y) = _numpy_problem()
    params = jax.tree.map(lambda a: np.asarray(a, np.float32), params)
    data = (np.asarray(x, np.float32), y)
    num_parameters = tree.count(params)
    density = curvature.SpectralDensity(np.zeros(2), np.zeros(2), np.zeros((2, 3)), np.ones((2, 3)) / 3)
    vectors = jax.tree.map(lambda a: np.stack([a, a]), params)
    residual = lambda v: curvature.hessian_gauss_newton_residual(apply_fn, output_loss, params, data, v)
    return {
        "no_outliers": ("max_outliers", lambda: curvature.hessian_outliers(loss, params, data, max_outliers=0)),
        "q_above_p": ("max_outliers", lambda: curvature.gauss_newton_outliers(apply_fn, output_loss, params, data,
                                                                               max_outliers=num_parameters)),
        "steps_below_q": ("num_steps", lambda: curvature.hessian_outliers(loss, params, data, max_outliers=5,
                                                                           num_steps=4)),
        "negative_tol": ("tol", lambda: curvature.gauss_newton_outliers(apply_fn, output_loss, params, data,
                                                                         tol=-1.0)),
        "no_threshold": ("below, above", lambda: curvature.spectral_mass(density)),
        "empty_interval": ("above must be less than below",
                           lambda: curvature.spectral_mass(density, below=0.0, above=1.0)),
        "not_a_density": ("density", lambda: curvature.spectral_mass((np.zeros(3), np.zeros(3)), below=0.0)),
        "nan_threshold": ("threshold", lambda: curvature.spectral_index(density, float("nan"))),
        "one_eigenvalue": ("eigenvalues_Q", lambda: curvature.outlier_count(np.array([1.0]))),
        "no_leading_axis": ("vectors", lambda: residual(params)),
        "wrong_structure": ("vectors", lambda: residual({"w1": vectors["w1"]})),
        "two_leading_axes": ("vectors' leaves must share",
                             lambda: residual({**vectors, "b2": np.zeros((3, DIMS[2]), np.float32)})),
        "k_zero": ("k", lambda: curvature.gauss_newton_top_eigenvalues(apply_fn, output_loss, params, data, k=0)),
        "steps_above_p": ("num_steps", lambda: curvature.gauss_newton_spectral_density(
            apply_fn, output_loss, params, data, num_steps=num_parameters + 1)),
    }


@pytest.mark.parametrize("case", list(_bad_calls()))
def test_a_bad_input_raises_naming_it(case):
    field, call = _bad_calls()[case]
    with pytest.raises(ValueError, match=field):
        call()


# ----------------------------------------------------------------------------- compile once


@functools.lru_cache(maxsize=None)
def _flax_problem():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(30, 5)).astype(np.float32)
    y = rng.integers(0, 3, 30).astype(np.int32)
    model = get_model("mlp", widths=(7,), num_outputs=3)
    return model, model.init(jax.random.key(0), x[:1])["params"], (x, y)


def _flax_calls():
    """One call per way a tool keys its model: a loss_fn or an apply_fn inside the operator (as
    every Lanczos and SLQ tool here does), or an apply_fn itself (tol=None: the
    Lanczos-to-tolerance program is slow to compile, and keyed the same way)."""
    model, params, data = _flax_problem()
    apply = lambda: train.make_apply_fn(model)  # wrapped afresh on every call, as a user would
    vectors = jax.tree.map(lambda a: jnp.stack([a, -a + 1]), params)
    return {
        "gauss_newton_spectral_density": lambda: curvature.gauss_newton_spectral_density(
            apply(), losses.cross_entropy, params, data, num_steps=6, num_runs=2),
        "hessian_outliers": lambda: curvature.hessian_outliers(losses.make_loss_fn(apply()), params, data,
                                                               max_outliers=2, tol=None),
        "hessian_gauss_newton_residual": lambda: curvature.hessian_gauss_newton_residual(
            apply(), losses.cross_entropy, params, data, vectors),
    }


@pytest.mark.parametrize("name", list(_flax_calls()))
def test_a_second_call_on_the_model_wrapped_again_compiles_nothing(name):
    calls = _flax_calls()
    with count_compiles() as first:
        result = jax.block_until_ready(calls[name]())
    with count_compiles() as second:
        jax.block_until_ready(calls[name]())
    assert first.count > 0, "the first call compiled nothing: the counter is not counting"
    assert second.count == 0, f"{name} compiled {second.count} programs again"
    if name.endswith("density"):
        with count_compiles() as mass:
            curvature.spectral_mass(result, below=0.1)
            curvature.spectral_mass(result, below=0.2)
        assert mass.count <= 1
