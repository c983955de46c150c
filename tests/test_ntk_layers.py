"""The layer algebra of infinite-width kernels (jaxdl.analysis.ntk.infinite) against independent
truths: neural-tangents' values (float64, written by tests/data/nt_reference.py in an environment
where neural-tangents still imports), the closed-form fully connected kernels, SciPy's quadrature
for the activations, and Monte Carlo over wide random finite networks."""
from __future__ import annotations

import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate

from jaxdl.analysis import ntk

REFERENCE = json.loads((pathlib.Path(__file__).parent / "data" / "nt_reference.json").read_text())
ARGUMENTS = {"W_std": "weight_std", "b_std": "bias_std"}
POSITIONAL = {"Dense": "out_dim", "Conv": "out_chan", "AvgPool": "window_shape"}


def build(layers) -> ntk.Network:
    """A network of ours from neural-tangents' layer names and arguments."""
    out = []
    for name, arguments in layers:
        if name == "Residual":
            out.append(ntk.Residual(*build(arguments).layers))
            continue
        arguments = {ARGUMENTS.get(k, k): tuple(v) if isinstance(v, list) else v for k, v in arguments.items()}
        first = (arguments.pop(POSITIONAL[name]),) if name in POSITIONAL else ()
        out.append(getattr(ntk, name)(*first, **arguments))
    return ntk.serial(*out)


def inputs(case, dtype=np.float64):
    rng = np.random.default_rng(case["seed"])
    return (rng.standard_normal((4, *case["shape"])).astype(dtype),
            rng.standard_normal((3, *case["shape"])).astype(dtype))


def relative_error(got, want) -> float:
    want = np.asarray(want, np.float64)
    return float(np.max(np.abs(np.asarray(got, np.float64) - want)) / np.max(np.abs(want)))


@pytest.mark.parametrize("name", sorted(REFERENCE["cases"]))
def test_kernels_match_neural_tangents(name):
    case = REFERENCE["cases"][name]
    net = build(case["layers"])
    with jax.enable_x64(True):
        x1, x2 = inputs(case)
        pair, own = net.kernels(x1, x2), net.kernels(x1)
        blocks = net.kernels(x1, x2, chunk_size=2)
        assert pair["nngp"].dtype == jnp.float64
    for key in ("nngp", "ntk"):
        assert relative_error(pair[key], case[key]) < 1e-6, key
        assert relative_error(own[key], case[f"{key}_x1"]) < 1e-6, key
        np.testing.assert_allclose(blocks[key], pair[key], rtol=1e-12)


def test_the_reference_covers_the_architectures_the_issue_names():
    names = set(REFERENCE["cases"])
    flat = json.dumps(REFERENCE["cases"])
    for needed in ('"SAME"', '"VALID"', '"strides": [2', '"AvgPool"', '"GlobalAvgPool"', '"Flatten"', '"Residual"',
                   '"LayerNorm"', '"Erf"', '"standard"', '"filter_shape": [3]', '"filter_shape": [3, 3]'):
        assert needed in flat, needed
    assert len(names) >= 10


@pytest.mark.parametrize("spatial", [(1,), (1, 1)])
def test_a_convolution_at_one_position_is_a_dense_layer(spatial):
    x1, x2 = np.random.default_rng(2).standard_normal((4, 6)), np.random.default_rng(3).standard_normal((3, 6))
    window = (1,) * len(spatial)
    conv = lambda: ntk.Conv(8, window, weight_std=1.3, bias_std=0.4)
    dense = lambda: ntk.Dense(8, weight_std=1.3, bias_std=0.4)
    as_image = lambda x: x.reshape(len(x), *spatial, x.shape[-1])
    with jax.enable_x64(True):
        convolutional = ntk.serial(conv(), ntk.Relu(), conv(), ntk.Erf(), ntk.Flatten(), dense()).kernels(
            as_image(x1), as_image(x2))
        pooled = ntk.serial(conv(), ntk.Relu(), ntk.GlobalAvgPool(), dense()).kernels(as_image(x1), as_image(x2))
        fully = ntk.serial(dense(), ntk.Relu(), dense(), ntk.Erf(), dense()).kernels(x1, x2)
        fully_pooled = ntk.serial(dense(), ntk.Relu(), dense()).kernels(x1, x2)
    for key in ("nngp", "ntk"):
        np.testing.assert_allclose(convolutional[key], fully[key], rtol=1e-12)
        np.testing.assert_allclose(pooled[key], fully_pooled[key], rtol=1e-12)


def scipy_expectation(fn, k11, k22, k12):
    """E[fn(u) fn(v)] for (u, v) ~ N(0, [[k11, k12], [k12, k22]]) by SciPy's 2-D quadrature."""
    covariance = np.array([[k11, k12], [k12, k22]])
    inverse, determinant = np.linalg.inv(covariance), np.linalg.det(covariance)

    def density(v, u):
        z = np.array([u, v])
        return fn(u) * fn(v) * np.exp(-0.5 * z @ inverse @ z) / (2 * np.pi * np.sqrt(determinant))

    bound = 10 * np.sqrt(max(k11, k22))
    return integrate.dblquad(density, -bound, bound, -bound, bound, epsabs=1e-11, epsrel=1e-11)[0]


@pytest.mark.parametrize("k11, k22, k12", [(1.0, 1.0, 0.3), (0.5, 2.0, -0.6), (1.5, 0.7, 0.9)])
def test_gauss_hermite_activations_against_scipy_quadrature(k11, k22, k12):
    tanh = ntk.Elementwise(jnp.tanh, num_points=80)
    with jax.enable_x64(True):
        arrays = [jnp.asarray([v], jnp.float64) for v in (k11, k22, k12)]
        value, derivative = tanh._expectations()(*arrays)
        erf_numeric = ntk.Elementwise(jax.scipy.special.erf, num_points=40)._expectations()(*arrays)
        erf_closed = ntk.Erf()._expectations()(*arrays)
    assert abs(float(value[0]) - scipy_expectation(np.tanh, k11, k22, k12)) < 1e-8
    sech2 = lambda z: 1 / np.cosh(z) ** 2
    assert abs(float(derivative[0]) - scipy_expectation(sech2, k11, k22, k12)) < 1e-7
    np.testing.assert_allclose(erf_numeric[0], erf_closed[0], rtol=1e-9)
    np.testing.assert_allclose(erf_numeric[1], erf_closed[1], rtol=1e-9)


MONTE_CARLO = {
    "conv2d_same_gap": 128, "conv1d_valid_strided_flatten": 256, "conv2d_strided_same_avgpool": 128,
    "residual_layernorm": 128, "layernorm_channels": 256, "conv2d_standard": 128, "dense_erf_standard": 512,
}


def widened(layers, width):
    """The case's layers with every hidden width set to ``width`` and ``width`` read-out units."""
    out = []
    for name, arguments in layers:
        if name == "Residual":
            out.append([name, widened(arguments, width)])
            continue
        arguments = dict(arguments)
        for key in ("out_dim", "out_chan"):
            if key in arguments:
                arguments[key] = width
        out.append([name, arguments])
    return out


@pytest.mark.parametrize("name", sorted(MONTE_CARLO))
def test_wide_random_finite_networks_have_the_analytic_nngp(name):
    """Monte Carlo over random initialisations of the finite twin: the output covariance agrees
    with the analytic NNGP kernel within 4 Monte Carlo standard errors plus a 3% allowance for the
    finite width (every read-out unit is one more independent sample)."""
    case = REFERENCE["cases"][name]
    width = MONTE_CARLO[name]
    net = build(widened(case["layers"], width))
    x1, x2 = inputs(case, np.float32)
    analytic = np.asarray(case["nngp"])
    module = net.module()
    keys = jax.random.split(jax.random.key(0), 32)
    samples = []
    for key in keys:
        params = module.init(key, x1[:1])
        f1, f2 = module.apply(params, x1), module.apply(params, x2)
        samples.append(np.einsum("ao,bo->oab", np.asarray(f1, np.float64), np.asarray(f2, np.float64)))
    samples = np.concatenate(samples)  # (32 width, N1, N2): one sample per read-out unit and draw
    mean, error = samples.mean(0), samples.std(0, ddof=1) / np.sqrt(len(samples))
    assert np.all(np.abs(mean - analytic) <= 4 * error + 0.03 * np.abs(analytic).max()), (mean, analytic)


def test_monte_carlo_kernels_converge_to_the_analytic_ones():
    case = REFERENCE["cases"]["conv2d_same_gap"]
    layers = widened(case["layers"], 48)
    layers[-1][1]["out_dim"] = 4  # a narrow read-out keeps the Jacobians small; the kernel is per unit
    net = build(layers)
    x1, x2 = inputs(case, np.float32)
    estimate = ntk.monte_carlo_kernels(net.module(), x1, x2, num_samples=32, key=jax.random.key(1))
    assert estimate["nngp_samples"].shape == (32, 4, 3)
    for key in ("nngp", "ntk"):
        assert relative_error(estimate[key], case[key]) < 0.1, key


def test_the_empirical_ntk_approaches_the_kernel_like_one_over_root_width():
    """Relative error of one initialisation's NTK against the limit, over 8 draws per width:
    the fitted slope in log-log is -1/2 within 0.15 (Jacot et al. 2018; a 1-D CNN with pooling)."""
    x = np.random.default_rng(4).standard_normal((4, 8, 2)).astype(np.float32)
    make = lambda w: ntk.serial(ntk.Conv(w, (3,), weight_std=1.5, bias_std=0.1), ntk.Relu(),
                                ntk.Conv(w, (3,), weight_std=1.5, bias_std=0.1), ntk.Relu(), ntk.GlobalAvgPool(),
                                ntk.Dense(1, weight_std=1.5, bias_std=0.1))
    limit = np.asarray(make(1).kernels(x)["ntk"], np.float64)
    widths, errors = (32, 128, 512), []
    for width in widths:
        module = make(width).module()
        per_draw = []
        for key in jax.random.split(jax.random.key(width), 8):
            params = module.init(key, x[:1])
            jac = jax.jacrev(lambda p: module.apply(p, x))(params)
            flat = [np.asarray(j, np.float64).reshape(len(x), -1) for j in jax.tree.leaves(jac)]
            kernel = sum(j @ j.T for j in flat)
            per_draw.append(np.linalg.norm(kernel - limit) / np.linalg.norm(limit))
        errors.append(np.mean(per_draw))
    slope = np.polyfit(np.log(widths), np.log(errors), 1)[0]
    assert abs(slope + 0.5) < 0.15, (slope, errors)


def test_bad_layers_and_inputs_are_named():
    x = np.zeros((2, 4, 4, 3), np.float32)
    with pytest.raises(ValueError, match="window_shape"):
        ntk.serial(ntk.AvgPool((5, 5)), ntk.Flatten(), ntk.Dense(1)).kernels(x)
    with pytest.raises(ValueError, match="axis"):
        ntk.serial(ntk.Conv(4, (3, 3)), ntk.LayerNorm(axis=5), ntk.Flatten(), ntk.Dense(1)).kernels(x)
    with pytest.raises(ValueError, match="axis"):
        ntk.serial(ntk.Conv(4, (3, 3)), ntk.LayerNorm(axis=(1, 2)), ntk.Flatten(), ntk.Dense(1)).kernels(x)
    with pytest.raises(ValueError, match="LayerNorm"):
        ntk.serial(ntk.Conv(4, (3, 3)), ntk.Relu(), ntk.LayerNorm(), ntk.Flatten(), ntk.Dense(1)).kernels(x)
    with pytest.raises(ValueError, match="filter_shape"):
        ntk.serial(ntk.Conv(4, (3,)), ntk.Flatten(), ntk.Dense(1)).kernels(x)
    with pytest.raises(ValueError, match="filter_shape"):
        ntk.serial(ntk.Conv(4, (5, 5), padding="VALID"), ntk.Flatten(), ntk.Dense(1)).kernels(x)
    with pytest.raises(ValueError, match="layers"):
        ntk.serial(ntk.Conv(4, (3, 3)), ntk.Dense(1)).kernels(x)
    with pytest.raises(ValueError, match="Residual"):
        ntk.serial(ntk.Residual(ntk.Conv(5, (3, 3))), ntk.Flatten(), ntk.Dense(1)).kernels(x)
    with pytest.raises(ValueError, match="x2"):
        ntk.serial(ntk.Flatten(), ntk.Dense(1)).kernels(x, np.zeros((2, 4, 4, 2), np.float32))
    with pytest.raises(ValueError, match="padding"):
        ntk.Conv(4, (3, 3), padding="FULL")
    with pytest.raises(ValueError, match="layers"):
        ntk.serial(ntk.Dense(1), "relu")


def test_gp_predictions_match_neural_tangents():
    spec = REFERENCE["predictions"]
    case = REFERENCE["cases"][spec["case"]]
    rng = np.random.default_rng(spec["seed"])
    x_train = rng.standard_normal((spec["train"], *case["shape"]))
    x_test = rng.standard_normal((spec["test"], *case["shape"]))
    y_train = rng.standard_normal((spec["train"], spec["outputs"]))
    net = build(case["layers"])
    with jax.enable_x64(True):
        train, cross, test = net.kernels(x_train), net.kernels(x_test, x_train), net.kernels(x_test)
        for value in spec["values"]:
            mean, cov = ntk.gp_predictions(train, cross, test, y_train, value["t"], get=value["get"],
                                           diag_reg=spec["diag_reg"])
            assert relative_error(mean, value["mean"]) < 1e-6, (value["t"], value["get"])
            assert relative_error(cov, value["cov"]) < 1e-6, (value["t"], value["get"])


def test_gp_predictions_at_time_zero_and_against_gradient_flow():
    """At t = 0 the ensemble is the prior (mean 0, covariance K_**); its NTK mean at any time is
    gradient_descent_mse_predictions' (tested against a trained linearised network)."""
    x = np.random.default_rng(5).standard_normal((9, 6))
    y = np.random.default_rng(6).standard_normal((6, 2))
    net = ntk.serial(ntk.Dense(8, weight_std=1.5, bias_std=0.1), ntk.Relu(), ntk.Dense(1, weight_std=1.5, bias_std=0.1))
    with jax.enable_x64(True):
        train, cross, test = net.kernels(x[:6]), net.kernels(x[6:], x[:6]), net.kernels(x[6:])
        for get in ("ntk", "nngp"):
            mean, cov = ntk.gp_predictions(train, cross, test, y, 0.0, get=get)
            np.testing.assert_allclose(mean, 0.0, atol=1e-12)
            np.testing.assert_allclose(cov, test["nngp"], rtol=1e-12)
        for t in (0.7, None):
            mean, _ = ntk.gp_predictions(train, cross, test, y, t, get="ntk")
            flow = ntk.gradient_descent_mse_predictions(train["ntk"], cross["ntk"], y, t)
            np.testing.assert_allclose(mean, flow, rtol=1e-8, atol=1e-10)
    with pytest.raises(ValueError, match="get"):
        ntk.gp_predictions(train, cross, test, y, get="both")
    with pytest.raises(ValueError, match="k_test_test"):
        ntk.gp_predictions(train, cross, test["nngp"], y)
