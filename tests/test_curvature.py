"""Tests of jaxdl.analysis.curvature against independent truth: the dense Hessian from ``jax.hessian`` and
its ``numpy.linalg.eigh``, dense Jacobians, closed forms of quadratics, and the variance formula
of Hutchinson's estimator.

One small tanh network (10-32-3, P = 451) on 40 examples serves every network test; float64
tests run inside ``jax.enable_x64(True)`` so x64 never leaks into other modules.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdl import plot
from jaxdl.analysis import curvature
from jaxdl.core import linalg, tree
from helpers import flat

DIMS = (10, 32, 3)
NUM_EXAMPLES = 40


def apply_fn(params, x):
    hidden = jnp.tanh(x @ params["w1"] + params["b1"])
    return hidden @ params["w2"] + params["b2"]


def output_loss(logits_BxC, labels_B):
    log_probs = jax.nn.log_softmax(logits_BxC)
    return -jnp.mean(jnp.take_along_axis(log_probs, labels_B[:, None], axis=1))


def loss(params, batch):
    x, y = batch
    return output_loss(apply_fn(params, x), y)


@functools.lru_cache(maxsize=None)
def _numpy_problem():
    """Float64 NumPy parameters and data, the dense Hessian and its eigendecomposition."""
    rng = np.random.default_rng(0)
    params = {}
    for i, (fan_in, fan_out) in enumerate(zip(DIMS[:-1], DIMS[1:]), 1):
        params[f"w{i}"] = rng.normal(size=(fan_in, fan_out)) / np.sqrt(fan_in)
        params[f"b{i}"] = 0.1 * rng.normal(size=fan_out)
    x = rng.normal(size=(NUM_EXAMPLES, DIMS[0]))
    y = rng.integers(0, DIMS[-1], NUM_EXAMPLES).astype(np.int32)
    with jax.enable_x64(True):
        flat_params, unflatten = tree.flatten(jax.tree.map(jnp.asarray, params))
        hessian = np.asarray(jax.jit(jax.hessian(lambda theta: loss(unflatten(theta), (x, y))))(flat_params))
    eigenvalues, eigenvectors = np.linalg.eigh(hessian)
    return params, (x, y), hessian, eigenvalues, eigenvectors


def _problem(dtype):
    """(params, data) as JAX arrays of ``dtype`` (call inside the matching x64 setting)."""
    params, (x, y), *_ = _numpy_problem()
    return jax.tree.map(lambda a: jnp.asarray(a, dtype), params), (jnp.asarray(x, dtype), jnp.asarray(y))


def _random_direction(params, seed):
    """A Gaussian pytree like ``params`` (NumPy draws: no random program to compile)."""
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda a: jnp.asarray(rng.normal(size=a.shape), a.dtype), params)


# ----------------------------------------------------------------------------- products


def test_hvp_equals_dense_hessian_times_v_float64():
    _, _, hessian, _, _ = _numpy_problem()
    with jax.enable_x64(True):
        params, data = _problem(jnp.float64)
        v = _random_direction(params, 1)
        expected = hessian @ flat(v)
        scale = np.abs(expected).max()
        whole = jax.jit(lambda p, d, v: curvature.hvp(loss, p, d, v))(params, data, v)
        # 40 = 5 chunks of 7 + a remainder of 5: the size-weighted mean must be exact.
        chunked = jax.jit(lambda p, d, v: curvature.hvp(loss, p, d, v, chunk_size=7))(params, data, v)
        flat_operator = jax.jit(lambda p, d, v: curvature.hessian_matvec(loss, p, d)(v))(params, data, flat(v))
        for got in (flat(whole), flat(chunked), np.asarray(flat_operator)):
            np.testing.assert_allclose(got, expected, rtol=0, atol=1e-10 * scale)


def test_hessian_quadratic_form_equals_v_dense_hessian_v_float64():
    _, _, hessian, _, _ = _numpy_problem()
    with jax.enable_x64(True):
        params, data = _problem(jnp.float64)
        v = _random_direction(params, 3)
        expected = flat(v) @ hessian @ flat(v)
        for chunk_size in (None, 7):  # 5 chunks of 7 and a remainder of 5
            got = jax.jit(lambda p, d, v, c=chunk_size: curvature.hessian_quadratic_form(loss, p, d, v, chunk_size=c))(
                params, data, v)
            np.testing.assert_allclose(float(got), expected, rtol=1e-10)


def test_gauss_newton_vp_equals_dense_jacobian_product_float64():
    with jax.enable_x64(True):
        params, (x, y) = _problem(jnp.float64)
        flat_params, unflatten = tree.flatten(params)
        jacobian_NxCxP = np.asarray(jax.jit(jax.jacobian(lambda theta: apply_fn(unflatten(theta), x)))(flat_params))
        logits = apply_fn(params, x)
        output_hessian = np.asarray(jax.jit(jax.hessian(lambda o: output_loss(o, y)))(logits))  # (N, C, N, C)
        n, c, p = jacobian_NxCxP.shape
        jacobian = jacobian_NxCxP.reshape(n * c, p)
        gauss_newton = jacobian.T @ output_hessian.reshape(n * c, n * c) @ jacobian
        v = _random_direction(params, 2)
        got = jax.jit(lambda p, d, v: curvature.gauss_newton_vp(apply_fn, output_loss, p, d, v, chunk_size=16))(
            params, (x, y), v)
        expected = gauss_newton @ flat(v)
        np.testing.assert_allclose(flat(got), expected, rtol=0, atol=1e-10 * np.abs(expected).max())
        # G is positive semi-definite (cross-entropy is convex in the logits), unlike H here.
        assert np.linalg.eigvalsh(gauss_newton).min() > -1e-10


def test_batch_with_mismatched_leading_axes_names_batch():
    with pytest.raises(ValueError, match="batch"):
        curvature.hessian_trace(lambda p, b: jnp.sum(p * b[0].mean()), jnp.ones(2), (jnp.ones((4, 2)), jnp.ones(5)),
                                chunk_size=2)


# ----------------------------------------------------------------------------- eigenpairs


def test_lanczos_top_and_bottom_eigenpairs_match_eigvalsh_float64():
    _, _, hessian, eigenvalues, eigenvectors = _numpy_problem()
    norm = np.abs(eigenvalues).max()
    with jax.enable_x64(True):
        params, data = _problem(jnp.float64)
        top = curvature.hessian_top_eigenvalues(loss, params, data, k=3, num_steps=30, tol=None)
        bottom = curvature.hessian_bottom_eigenvalues(loss, params, data, k=3, num_steps=30, tol=None)
        vectors_KxP = np.asarray(jax.vmap(lambda t: tree.flatten(t)[0])(top.eigenvectors))
        top, bottom = jax.tree.map(np.asarray, (top, bottom))
        np.testing.assert_allclose(top.eigenvalues[0], eigenvalues[-1], rtol=1e-8)
    np.testing.assert_allclose(top.eigenvalues, eigenvalues[::-1][:3], rtol=0, atol=1e-6 * norm)
    # The bottom of this spectrum is clustered, so it converges more slowly; Ritz values
    # interlace, so the smallest can only lie above the true minimum.
    assert eigenvalues[0] - 1e-10 <= bottom.eigenvalues[0] < eigenvalues[0] + 1e-3 * norm
    assert np.all(np.diff(top.eigenvalues) <= 0) and np.all(np.diff(bottom.eigenvalues) >= 0)
    # Eigenvectors come back as pytrees with a leading k axis, unit norm, and are eigenvectors.
    assert jax.tree.structure(top.eigenvectors) == jax.tree.structure(params)
    np.testing.assert_allclose(np.linalg.norm(vectors_KxP, axis=1), 1.0, atol=1e-10)
    assert abs(vectors_KxP[0] @ eigenvectors[:, -1]) > 1 - 1e-8
    residual = hessian @ vectors_KxP[0] - top.eigenvalues[0] * vectors_KxP[0]
    assert np.linalg.norm(residual) < 1e-6 * norm


def test_lanczos_top_eigenvalue_float32_with_chunks():
    _, _, _, eigenvalues, _ = _numpy_problem()
    params, data = _problem(jnp.float32)
    # 40 examples in chunks of 16: two full chunks and a remainder of 8.
    top = curvature.hessian_top_eigenvalues(loss, params, data, num_steps=30, chunk_size=16)
    assert top.eigenvalues.dtype == jnp.float32
    np.testing.assert_allclose(float(top.eigenvalues[0]), eigenvalues[-1], rtol=1e-4)


def test_lanczos_on_a_matrix_with_repeated_eigenvalues_restarts_cleanly():
    # Rank 3 operator: the Krylov space is exhausted after 3 steps; a restart must keep T exact.
    diagonal = np.zeros(20)
    diagonal[:3] = (5.0, 2.0, -1.0)
    matvec = jax.jit(lambda v: jnp.asarray(diagonal, jnp.float32) * v)
    start = jax.random.normal(jax.random.key(0), (20,))
    theta, vectors = jax.jit(lambda s: linalg.ritz_pairs(linalg.lanczos(matvec, s, 8)))(start)
    np.testing.assert_allclose(np.sort(np.asarray(theta)), [-1, 0, 0, 0, 0, 0, 2, 5], atol=1e-5)
    np.testing.assert_allclose(np.asarray(vectors @ vectors.T), np.eye(8), atol=1e-5)


@pytest.mark.parametrize("tol", [1e-3, 1e-6])
def test_lanczos_to_a_tolerance_stops_early_within_it_float64(tol):
    _, _, hessian, eigenvalues, _ = _numpy_problem()
    descending = eigenvalues[::-1]
    with jax.enable_x64(True):
        params, data = _problem(jnp.float64)
        top = curvature.hessian_top_eigenvalues(loss, params, data, k=3, num_steps=100, tol=tol, extra_steps=0)
        vectors_KxP = np.asarray(jax.vmap(lambda t: tree.flatten(t)[0])(top.eigenvectors))
        top = jax.tree.map(np.asarray, top)
        matvec = lambda v: jnp.asarray(hessian) @ v
        start = jax.random.normal(jax.random.key(0), (hessian.shape[0],), jnp.float64)
        run = jax.jit(lambda s: linalg.lanczos_to_tolerance(matvec, s, 100, k=3, tol=tol, on="residual"))
        result, residual_steps = run(start)
        theta, ritz_vectors = linalg.ritz_pairs(result, residual_steps)
    steps = int(top.steps)
    assert 3 <= steps < 100
    # The default stop is on the eigenvalues: each within tol of the true one (dense eigh), and
    # each true error within the Kato-Temple bound r^2 / gap of its Ritz residual r.
    gaps = [np.min(np.abs(np.delete(eigenvalues, np.argmin(np.abs(eigenvalues - v))) - v)) for v in top.eigenvalues]
    for value, vector, expected, gap in zip(top.eigenvalues, vectors_KxP, descending, gaps):
        assert abs(value - expected) <= tol * abs(value)
        residual = np.linalg.norm(hessian @ vector - value * vector)
        assert abs(value - expected) <= residual ** 2 / gap * (1 + 1e-6) + 1e-12
    # The residual stop: each wanted Ritz pair's residual ||H y - theta y|| (measured on the dense
    # Hessian) within tol * |theta|, later than the eigenvalue stop, and an eigenvalue within it.
    assert steps <= int(residual_steps) < 100
    for value, vector in zip(np.asarray(theta)[::-1][:3], np.asarray(ritz_vectors)[::-1][:3]):
        residual = np.linalg.norm(hessian @ vector - value * vector)
        assert residual <= tol * abs(value) * (1 + 1e-6)
        assert np.min(np.abs(eigenvalues - value)) <= residual + 1e-12
    # The fixed-step run reports its steps too.
    assert int(curvature.hessian_top_eigenvalues(loss, *_problem(jnp.float32), num_steps=30, tol=None).steps) == 30


def test_lanczos_to_a_tolerance_on_a_known_spectrum_top_and_bottom():
    rng = np.random.default_rng(3)
    basis, _ = np.linalg.qr(rng.normal(size=(120, 120)))
    spectrum = np.concatenate([[12.0, 9.0, 8.0], rng.uniform(1.0, 4.0, 114), [-6.0, -7.0, -9.0]])
    matrix = jnp.asarray((basis * spectrum) @ basis.T, jnp.float32)
    quadratic_loss = lambda p, _: 0.5 * p @ matrix @ p
    params, batch = jnp.zeros(120), jnp.zeros((1,))
    top = curvature.hessian_top_eigenvalues(quadratic_loss, params, batch, k=2, num_steps=60, tol=1e-4)
    bottom = curvature.hessian_bottom_eigenvalues(quadratic_loss, params, batch, k=2, num_steps=60, tol=1e-4)
    np.testing.assert_allclose(top.eigenvalues, [12.0, 9.0], rtol=1e-4)
    np.testing.assert_allclose(bottom.eigenvalues, [-9.0, -7.0], rtol=1e-4)
    assert int(top.steps) < 60 and int(bottom.steps) < 60


def test_which_on_hessian_top_eigenvalues_is_deprecated_and_still_gives_the_same_numbers():
    rng = np.random.default_rng(3)
    basis, _ = np.linalg.qr(rng.normal(size=(40, 40)))
    matrix = jnp.asarray((basis * np.linspace(-3.0, 5.0, 40)) @ basis.T, jnp.float32)
    quadratic_loss = lambda p, _: 0.5 * p @ matrix @ p
    params, batch = jnp.zeros(40), jnp.zeros((1,))
    options = dict(k=2, num_steps=30, tol=None)
    with pytest.warns(DeprecationWarning, match="hessian_bottom_eigenvalues"):
        old_bottom = curvature.hessian_top_eigenvalues(quadratic_loss, params, batch, which="bottom", **options)
    with pytest.warns(DeprecationWarning, match="hessian_bottom_eigenvalues"):
        old_top = curvature.hessian_top_eigenvalues(quadratic_loss, params, batch, which="top", **options)
    bottom = curvature.hessian_bottom_eigenvalues(quadratic_loss, params, batch, **options)
    top = curvature.hessian_top_eigenvalues(quadratic_loss, params, batch, **options)
    np.testing.assert_array_equal(old_bottom.eigenvalues, bottom.eigenvalues)
    np.testing.assert_array_equal(old_top.eigenvalues, top.eigenvalues)
    assert bottom.eigenvalues[0] < bottom.eigenvalues[1] < 0 < top.eigenvalues[1] < top.eigenvalues[0]
    with pytest.raises(ValueError, match="which"):
        curvature.hessian_top_eigenvalues(quadratic_loss, params, batch, which="middle")


def _quadratic_problem(offset_along_top: float):
    """0.5 (p - c)^T A (p - c) with a known spectrum, at p = c + offset * u_1 (u_1 A's top
    eigenvector): the gradient there is offset * 12 * u_1, zero for offset 0."""
    rng = np.random.default_rng(5)
    basis, _ = np.linalg.qr(rng.normal(size=(120, 120)))
    spectrum = np.concatenate([[12.0, 11.0], rng.uniform(0.0, 10.0, 118)])
    matrix = jnp.asarray((basis * spectrum) @ basis.T, jnp.float32)
    centre = jnp.asarray(rng.normal(size=120), jnp.float32)
    quadratic_loss = lambda p, _: 0.5 * (p - centre) @ matrix @ (p - centre)
    return quadratic_loss, centre + offset_along_top * jnp.asarray(basis[:, 0], jnp.float32), jnp.zeros((1,))


def test_a_start_along_the_gradient_finds_the_same_top_eigenvalue_in_fewer_steps():
    # The gradient points along the top eigenvector: Gaussian plus gradient starts converge in
    # fewer products than Gaussian starts from the same keys, to the same eigenvalue.
    quadratic_loss, params, batch = _quadratic_problem(1.0)
    for seed in range(5):
        runs = {start: curvature.hessian_top_eigenvalues(quadratic_loss, params, batch, num_steps=60, tol=1e-5,
                                                         key=jax.random.key(seed), start=start)
                for start in ("auto", "gradient", "random")}
        for run in runs.values():
            np.testing.assert_allclose(float(run.eigenvalues[0]), 12.0, rtol=1e-4)
        assert int(runs["auto"].steps) == int(runs["gradient"].steps) < int(runs["random"].steps)
    # For k > 1 'auto' keeps the Gaussian start.
    auto, random = (curvature.hessian_top_eigenvalues(quadratic_loss, params, batch, k=2, num_steps=60, start=start)
                    for start in ("auto", "random"))
    np.testing.assert_array_equal(np.asarray(auto.eigenvalues), np.asarray(random.eigenvalues))
    np.testing.assert_allclose(np.asarray(auto.eigenvalues), [12.0, 11.0], rtol=1e-3)


def test_a_zero_gradient_leaves_the_gaussian_start():
    quadratic_loss, params, batch = _quadratic_problem(0.0)
    key = jax.random.key(1)
    start_P = curvature.start_vector(key, jnp.zeros(120))
    np.testing.assert_allclose(float(jnp.linalg.norm(start_P)), 1.0, rtol=1e-6)
    gradient, random = (curvature.hessian_top_eigenvalues(quadratic_loss, params, batch, num_steps=60, key=key,
                                                          start=start) for start in ("gradient", "random"))
    assert int(gradient.steps) == int(random.steps)
    np.testing.assert_array_equal(np.asarray(gradient.eigenvalues), np.asarray(random.eigenvalues))
    np.testing.assert_allclose(float(gradient.eigenvalues[0]), 12.0, rtol=1e-3)


@pytest.mark.parametrize("chunk_size", [None, 16])
def test_gradient_and_hessian_matvec_match_jax_grad_and_the_dense_hessian_float64(chunk_size):
    _, _, hessian, _, _ = _numpy_problem()
    with jax.enable_x64(True):
        params, data = _problem(jnp.float64)
        v_P = jnp.asarray(np.random.default_rng(2).normal(size=hessian.shape[0]))

        @jax.jit
        def gradient_and_product(p, v):
            gradient, matvec = curvature.gradient_and_hessian_matvec(loss, p, data, chunk_size=chunk_size)
            return gradient, matvec(v)

        gradient_P, product_P = gradient_and_product(params, v_P)
        expected_gradient = tree.flatten(jax.grad(loss)(params, data))[0]
        np.testing.assert_allclose(np.asarray(gradient_P), np.asarray(expected_gradient), rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(np.asarray(product_P), hessian @ np.asarray(v_P), rtol=1e-9, atol=1e-12)


def test_power_iteration_with_deflation_finds_the_two_largest():
    _, _, _, eigenvalues, _ = _numpy_problem()
    by_magnitude = eigenvalues[np.argsort(-np.abs(eigenvalues))]
    with jax.enable_x64(True):
        params, data = _problem(jnp.float64)
        result = curvature.hessian_power_iteration(loss, params, data, k=2, max_steps=1000, tol=1e-12)
    np.testing.assert_allclose(result.eigenvalues, by_magnitude[:2], rtol=1e-6)
    assert np.all(np.asarray(result.steps) < 1000)


@pytest.mark.parametrize("call, field", [
    (lambda p, d: curvature.hessian_top_eigenvalues(loss, p, d, k=31, num_steps=30), "k"),
    (lambda p, d: curvature.hessian_top_eigenvalues(loss, p, d, k=0), "k"),
    (lambda p, d: curvature.hessian_bottom_eigenvalues(loss, p, d, k=0), "k"),
    (lambda p, d: curvature.hessian_top_eigenvalues(loss, p, d, num_steps=452), "num_steps"),
    (lambda p, d: curvature.hessian_top_eigenvalues(loss, p, d, which="middle"), "which"),
    (lambda p, d: curvature.hessian_top_eigenvalues(loss, p, d, chunk_size=0), "chunk_size"),
    (lambda p, d: curvature.hessian_top_eigenvalues(loss, p, d, tol=0.0), "tol"),
    (lambda p, d: curvature.hessian_top_eigenvalues(loss, p, d, start="gaussian"), "start"),
    (lambda p, d: curvature.hessian_trace(loss, p, d, probes_per_chunk="all"), "probes_per_chunk"),
    (lambda p, d: curvature.hessian_spectral_density(loss, p, d, runs_per_chunk=0), "runs_per_chunk"),
    (lambda p, d: curvature.hessian_power_iteration(loss, p, d, tol=0.0), "tol"),
    (lambda p, d: curvature.hessian_trace(loss, p, d, num_probes=1), "num_probes"),
    (lambda p, d: curvature.hessian_spectral_density(loss, p, d, bandwidth=-1.0), "bandwidth"),
    (lambda p, d: curvature.epsilon_sharpness(loss, p, d, epsilon=0.0), "epsilon"),
    (lambda p, d: curvature.epsilon_sharpness(loss, p, d, method="adam"), "method"),
    (lambda p, d: curvature.epsilon_sharpness(loss, p, d, subspace=1000), "subspace"),
    (lambda p, d: curvature.ball_sharpness(loss, p, d, radius=-1.0), "radius"),
])
def test_bad_inputs_raise_naming_the_argument(call, field):
    params, data = _problem(jnp.float32)
    with pytest.raises(ValueError, match=field):
        call(params, data)


# ----------------------------------------------------------------------------- trace and density


def test_hutchinson_error_matches_its_predicted_standard_error():
    _, _, hessian, _, _ = _numpy_problem()
    num_probes, repeats = 30, 64
    # Variance of one Rademacher sample z^T H z: 2 (||H||_F^2 - sum_i H_ii^2).
    predicted = np.sqrt(2 * (np.sum(hessian**2) - np.sum(np.diag(hessian) ** 2)) / num_probes)
    with jax.enable_x64(True):
        params, data = _problem(jnp.float64)
        runs = [curvature.hessian_trace(loss, params, data, num_probes=num_probes, key=jax.random.key(seed))
                for seed in range(repeats)]
        grouped = curvature.hessian_trace(loss, params, data, num_probes=num_probes, key=jax.random.key(0),
                                          probes_per_chunk=8)
        together = curvature.hessian_trace(loss, params, data, num_probes=num_probes, key=jax.random.key(0),
                                           probes_per_chunk=None)
    estimates = np.array([float(r.estimate) for r in runs])
    errors = estimates - np.trace(hessian)
    rms_error = np.sqrt(np.mean(errors**2))
    reported = np.mean([float(r.standard_error) for r in runs])
    assert 1 / 1.5 < rms_error / predicted < 1.5, (rms_error, predicted)
    assert 1 / 1.5 < reported / predicted < 1.5, (reported, predicted)
    assert abs(errors.mean()) < 4 * predicted / np.sqrt(repeats)
    # Probes in vmapped groups of 8, or all at once, are the same probes; 'auto' (the default)
    # is the backend's measured choice.
    np.testing.assert_allclose(float(grouped.estimate), estimates[0], rtol=1e-10)
    np.testing.assert_allclose(float(together.estimate), estimates[0], rtol=1e-10)
    assert curvature.default_probes_per_chunk("cpu") == 1 and curvature.default_probes_per_chunk("tpu") is None


def test_spectral_density_integrates_to_one_and_covers_the_spectrum(tmp_path):
    _, _, hessian, eigenvalues, _ = _numpy_problem()
    with jax.enable_x64(True):
        params, data = _problem(jnp.float64)
        result = jax.tree.map(np.asarray, curvature.hessian_spectral_density(loss, params, data, num_steps=30,
                                                                             num_runs=4))
    grid, density = result.grid, result.density
    assert np.all(density >= 0)
    np.testing.assert_allclose(np.trapezoid(density, grid), 1.0, atol=1e-6)
    np.testing.assert_allclose(np.asarray(result.weights).sum(axis=1), 1.0, atol=1e-10)
    assert grid[0] < eigenvalues[0] and grid[-1] > eigenvalues[-1]
    # Gauss quadrature finds the extreme eigenvalues (the clustered bottom more slowly); Ritz
    # values interlace, so they lie inside the spectrum.
    span = eigenvalues[-1] - eigenvalues[0]
    assert eigenvalues[0] - 1e-10 <= np.min(result.nodes) < eigenvalues[0] + 1e-4 * span
    assert eigenvalues[-1] + 1e-10 >= np.max(result.nodes) > eigenvalues[-1] - 1e-8 * span
    # The density's mean is (1/R) sum_r v_r^T H v_r for unit v_r uniform on the sphere: unbiased
    # for tr(H) / P with variance 2 (P tr(H^2) - tr(H)^2) / (P^2 (P + 2)) per run.
    p = hessian.shape[0]
    std = np.sqrt(2 * (p * np.sum(eigenvalues**2) - np.sum(eigenvalues) ** 2) / (p**2 * (p + 2)) / 4)
    assert abs(np.trapezoid(grid * density, grid) - np.trace(hessian) / p) < 4 * std
    figure = plot.spectral_density(grid, density, eigenvalues=eigenvalues, path=tmp_path / "density.png")
    assert figure is not None
    assert (tmp_path / "density.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ----------------------------------------------------------------------------- sharpness

A_DIAGONAL = np.array([3.0, 1.0, 0.5, -2.0, -0.5, 2.0])


def quadratic(theta, batch):
    """0.5 theta^T diag(A) theta; ``batch`` is unused."""
    return 0.5 * jnp.sum(jnp.asarray(A_DIAGONAL, theta.dtype) * theta**2)


@pytest.mark.parametrize("method, rtol", [("lbfgsb", 1e-10), ("ascent", 1e-3)])
def test_epsilon_sharpness_of_a_quadratic_at_zero_matches_closed_form(method, rtol):
    epsilon = 0.1
    # At x = 0 the box is |y_i| <= eps; positive curvatures go to a corner, negative stay at 0.
    expected = 100 * 0.5 * epsilon**2 * np.sum(np.maximum(A_DIAGONAL, 0))
    with jax.enable_x64(True):
        result = curvature.epsilon_sharpness(quadratic, jnp.zeros(6), None, epsilon, method=method,
                                             max_steps=30)
    np.testing.assert_allclose(float(result.value), expected, rtol=rtol)
    assert np.all(np.abs(np.asarray(result.perturbation)) <= epsilon * (1 + 1e-12))


def test_epsilon_sharpness_box_scales_with_the_parameters():
    epsilon = 0.1
    x = np.array([0.5, -1.0, 2.0, 0.8, -1.5, 1.2])
    bounds = epsilon * (np.abs(x) + 1)
    # |x_i| > bound_i: every coordinate moves to the end of its interval that increases f.
    moved = np.where(A_DIAGONAL > 0, np.abs(x) + bounds, np.abs(x) - bounds)
    f_x = 0.5 * np.sum(A_DIAGONAL * x**2)
    expected = 100 * (0.5 * np.sum(A_DIAGONAL * moved**2) - f_x) / (1 + f_x)
    with jax.enable_x64(True):
        result = curvature.epsilon_sharpness(quadratic, jnp.asarray(x), None, epsilon)
    np.testing.assert_allclose(float(result.value), expected, rtol=1e-10)
    np.testing.assert_allclose(float(result.loss), f_x, rtol=1e-12)


def test_epsilon_sharpness_in_a_subspace_matches_closed_form():
    epsilon = 0.05
    rng = np.random.default_rng(3)
    direction = rng.normal(size=6)
    matrix_PxQ = rng.normal(size=(6, 2))
    x = 3.0 * direction / np.linalg.norm(direction)

    def rank_one(theta, batch):
        return 0.5 * jnp.dot(jnp.asarray(direction, theta.dtype), theta) ** 2

    # f(x + A z) = 0.5 (c + b.z)^2 with c = a.x, b = A^T a; |c| > sum |b_i| r_i, so the sign of
    # c + b.z is fixed on the box and the maximum is 0.5 (|c| + sum |b_i| r_i)^2.
    c, b = direction @ x, matrix_PxQ.T @ direction
    r = epsilon * (np.abs(np.linalg.pinv(matrix_PxQ) @ x) + 1)
    assert abs(c) > np.abs(b) @ r
    expected = 100 * (0.5 * (abs(c) + np.abs(b) @ r) ** 2 - 0.5 * c**2) / (1 + 0.5 * c**2)
    with jax.enable_x64(True):
        result = curvature.epsilon_sharpness(rank_one, jnp.asarray(x), None, epsilon, subspace=matrix_PxQ)
        random_subspace = curvature.epsilon_sharpness(rank_one, jnp.asarray(x), None, epsilon, subspace=2)
    np.testing.assert_allclose(float(result.value), expected, rtol=1e-10)
    # y = A z with z in the box: y lies in the column space of A.
    y = np.asarray(result.perturbation)
    np.testing.assert_allclose(matrix_PxQ @ np.linalg.lstsq(matrix_PxQ, y, rcond=None)[0], y, atol=1e-12)
    assert 0 < float(random_subspace.value) < 100


def test_ball_sharpness_of_a_quadratic_is_half_radius_squared_times_top_eigenvalue():
    rng = np.random.default_rng(4)
    basis, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    spectrum = np.array([4.0, 2.0, 1.0, 0.0, -1.0, -3.0])
    matrix = basis @ np.diag(spectrum) @ basis.T
    radius = 0.2

    def full_quadratic(theta, batch):
        return 0.5 * theta @ jnp.asarray(matrix, theta.dtype) @ theta

    with jax.enable_x64(True):
        result = curvature.ball_sharpness(full_quadratic, jnp.zeros(6), None, radius, num_steps=60)
    np.testing.assert_allclose(float(result.value), 0.5 * radius**2 * spectrum[0], rtol=1e-8)
    assert np.linalg.norm(np.asarray(result.perturbation)) <= radius * (1 + 1e-12)


def test_sharpness_of_a_network_in_chunks_reports_a_feasible_perturbation():
    params, data = _problem(jnp.float32)
    epsilon = 1e-2
    result = curvature.epsilon_sharpness(loss, params, data, epsilon, max_steps=5, chunk_size=16)
    y, x = flat(result.perturbation), flat(params)
    assert np.all(np.abs(y) <= epsilon * (np.abs(x) + 1) * (1 + 1e-6))
    direct = float(loss(tree.add(params, result.perturbation), data))
    np.testing.assert_allclose(float(result.perturbed_loss), direct, rtol=1e-5)
    np.testing.assert_allclose(float(result.loss), float(loss(params, data)), rtol=1e-5)
    expected = 100 * (direct - float(result.loss)) / (1 + float(result.loss))
    np.testing.assert_allclose(float(result.value), expected, rtol=1e-3)
    assert float(result.value) > 0
