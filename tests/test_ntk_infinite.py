"""Tests of jaxdl.analysis.ntk's infinite-width kernels (NNGP and NTK of a fully connected net) against
independent references: numerical integration (scipy) of the layer recursion, the exact kernel of a
linear model, and Monte Carlo means over random finite networks (standard and NTK
parameterisation)."""
from __future__ import annotations

import flax.linen as nn
import jax
import numpy as np
import pytest
import scipy.integrate
import scipy.special

from jaxdl import train
from jaxdl.analysis import ntk
from jaxdl.models import get_model

RNG = np.random.default_rng(1)


_FUNCTIONS = {
    "relu": (lambda u: max(u, 0.0), lambda u: float(u > 0)),
    "erf": (scipy.special.erf, lambda u: 2 / np.sqrt(np.pi) * np.exp(-u ** 2)),
    "identity": (lambda u: u, lambda u: 1.0),
}


def _gaussian_expectation(f, g, k11, k22, k12):
    """E[f(u) g(v)], (u, v) ~ N(0, [[k11, k12], [k12, k22]]), with u = sqrt(k11) z1 and
    v = sqrt(k22) (rho z1 + sqrt(1 - rho^2) z2) by nested adaptive quadrature over z1 and z2
    (the inner one told where v crosses 0, where relu's derivative jumps)."""
    rho = float(np.clip(k12 / np.sqrt(k11 * k22), -1, 1))
    s = np.sqrt(1 - rho ** 2)
    density = lambda z: np.exp(-z ** 2 / 2) / np.sqrt(2 * np.pi)

    def inner(z1):
        if s < 1e-12:
            return g(np.sqrt(k22) * rho * z1)
        crossing = -rho * z1 / s
        points = [crossing] if abs(crossing) < 10 else None
        value = lambda z2: g(np.sqrt(k22) * (rho * z1 + s * z2)) * density(z2)
        return scipy.integrate.quad(value, -10, 10, points=points, epsabs=1e-12, epsrel=1e-10, limit=200)[0]

    outer = lambda z1: f(np.sqrt(k11) * z1) * density(z1) * inner(z1)
    return scipy.integrate.quad(outer, -10, 10, points=[0.0], epsabs=1e-12, epsrel=1e-10, limit=200)[0]


def _quadrature_kernels(x1, x2, depth, activation, weight_std, bias_std):
    """The NNGP / NTK recursion pair by pair, every expectation by quadrature."""
    phi, dphi = _FUNCTIONS[activation]
    d = x1.shape[1]
    nngp, theta = np.zeros((len(x1), len(x2))), np.zeros((len(x1), len(x2)))
    for a in range(len(x1)):
        for b in range(len(x2)):
            s11, s22, s12 = x1[a] @ x1[a] / d, x2[b] @ x2[b] / d, x1[a] @ x2[b] / d
            t12 = 0.0
            for layer in range(depth + 1):
                k11, k22, k12 = (weight_std ** 2 * s + bias_std ** 2 for s in (s11, s22, s12))
                t12 = k12 + weight_std ** 2 * t12
                if layer < depth:
                    s12 = _gaussian_expectation(phi, phi, k11, k22, k12)
                    s11 = _gaussian_expectation(phi, phi, k11, k11, k11)
                    s22 = _gaussian_expectation(phi, phi, k22, k22, k22)
                    t12 = t12 * _gaussian_expectation(dphi, dphi, k11, k22, k12)
            nngp[a, b], theta[a, b] = k12, t12
    return nngp, theta


@pytest.mark.parametrize("activation, rtol", [("relu", 1e-7), ("erf", 1e-7), ("identity", 1e-9)])
@pytest.mark.parametrize("depth", [1, 3])
def test_closed_forms_equal_quadrature(activation, rtol, depth):
    x1, x2 = RNG.normal(size=(3, 3)), RNG.normal(size=(2, 3))
    x2[0] = x1[1]  # a repeated input: angle 0, where the arc-cosine kernels have their kink
    with jax.enable_x64(True):
        got = ntk.mlp_kernels(x1, x2, depth=depth, activation=activation, weight_std=1.3, bias_std=0.4)
    nngp, theta = _quadrature_kernels(x1, x2, depth, activation, 1.3, 0.4)
    np.testing.assert_allclose(got["nngp"], nngp, rtol=rtol, atol=rtol * np.abs(nngp).max())
    np.testing.assert_allclose(got["ntk"], theta, rtol=rtol, atol=rtol * np.abs(theta).max())


def test_linear_model_kernel_is_exact_at_any_width():
    model = get_model("mlp", widths=(), num_outputs=2, parameterization="ntk", weight_std=1.7, bias_std=0.3)
    x = RNG.normal(size=(5, 4)).astype(np.float32)
    params = model.init(jax.random.key(1), x)["params"]
    got = ntk.empirical_ntk(train.make_apply_fn(model), params, x)
    np.testing.assert_allclose(got, 1.7 ** 2 * x @ x.T / 4 + 0.3 ** 2, rtol=1e-5)
    np.testing.assert_allclose(ntk.mlp_kernels(x, depth=0, weight_std=1.7, bias_std=0.3)["ntk"], got, rtol=1e-5)


@pytest.mark.parametrize("activation", ["relu", "erf"])
def test_analytic_kernels_are_the_mean_over_random_networks(activation):
    """One hidden layer: the empirical NTK's mean over initialisations and the outputs'
    covariance equal the analytic kernels at any width, so only sampling error remains."""
    model = get_model("mlp", widths=(256,), num_outputs=64, activation=activation, parameterization="ntk",
                      weight_std=1.2, bias_std=0.5)
    apply_fn = train.make_apply_fn(model)
    x = RNG.normal(size=(4, 6)).astype(np.float32)
    x[3] = 2 * x[0]
    expected = ntk.mlp_kernels(x, depth=1, activation=activation, weight_std=1.2, bias_std=0.5)
    kernels, outputs = [], []
    for seed in range(20):
        params = model.init(jax.random.key(seed), x)["params"]
        kernels.append(ntk.empirical_ntk(apply_fn, params, x))
        outputs.append(apply_fn(params, x))
    outputs = np.concatenate([np.asarray(o).T for o in outputs])  # (samples, N)
    mean_kernel = np.mean(kernels, axis=0)
    scale = np.abs(expected["ntk"]).max()
    np.testing.assert_allclose(mean_kernel, expected["ntk"], atol=0.03 * scale)
    np.testing.assert_allclose(outputs.T @ outputs / len(outputs), expected["nngp"],
                               atol=0.08 * np.abs(expected["nngp"]).max())


def test_wide_networks_converge_to_the_analytic_ntk():
    x = RNG.normal(size=(6, 5)).astype(np.float32)
    expected = ntk.mlp_kernels(x, depth=2, weight_std=2 ** 0.5, bias_std=0.1)["ntk"]
    errors = []
    for width in (64, 2048):
        model = get_model("mlp", widths=(width, width), num_outputs=1, parameterization="ntk",
                          weight_std=2 ** 0.5, bias_std=0.1)
        params = model.init(jax.random.key(0), x)["params"]
        got = ntk.empirical_ntk(train.make_apply_fn(model), params, x)
        errors.append(np.linalg.norm(got - expected) / np.linalg.norm(expected))
    assert errors[1] < 0.1 and errors[1] < errors[0] / 2, errors


class _StandardMLP(nn.Module):
    width: int
    weight_std: float
    bias_std: float

    @nn.compact
    def __call__(self, x, train: bool = False):
        for features in (self.width, 1):
            if features == 1:
                x = jax.nn.relu(x)
            fan_in = x.shape[-1]
            x = nn.Dense(features, kernel_init=nn.initializers.normal(self.weight_std / fan_in ** 0.5),
                         bias_init=nn.initializers.normal(self.bias_std))(x)
        return x


def _apply_with_layer(model, params, name, layer_params, x):
    return model.apply({"params": {**params, name: layer_params}}, x)


def test_standard_parameterization_kernel_is_the_mean_over_random_networks():
    """One hidden layer of width n, weights N(0, w^2 / fan_in), biases N(0, b^2): the read-out
    layer's share of the NTK averages to n E[relu(u) relu(v)] + 1 and the hidden layer's to
    w^2 (x . x' + 1) E[relu'(u) relu'(v)], (u, v) ~ N(0, w^2 x . x' / d + b^2), expectations
    by quadrature; their sum is the analytic kernel."""
    x = RNG.normal(size=(4, 3)).astype(np.float64)
    width, w, b = 2048, 1.4, 0.6
    model = _StandardMLP(width=width, weight_std=w, bias_std=b)
    shares = {"Dense_0": [], "Dense_1": []}
    for seed in range(20):
        params = model.init(jax.random.key(seed), x.astype(np.float32))["params"]
        for name in shares:
            # A Partial over arrays is keyed by value in the compiled kernel: one program per layer.
            share_fn = jax.tree_util.Partial(_apply_with_layer, model, params, name)
            shares[name].append(ntk.empirical_ntk(share_fn, params[name], x.astype(np.float32)))
    k = w ** 2 * x @ x.T / 3 + b ** 2
    relu, step = _FUNCTIONS["relu"]
    expectation = lambda f, i, j: _gaussian_expectation(f, f, k[i, i], k[j, j], k[i, j])
    readout = np.array([[width * expectation(relu, i, j) + 1 for j in range(4)] for i in range(4)])
    hidden = np.array([[w ** 2 * (x[i] @ x[j] + 1) * expectation(step, i, j) for j in range(4)] for i in range(4)])
    # Within 4 standard errors of the mean over the 20 networks, entry by entry (a sampling
    # tolerance, not a fixed fraction that one draw of x can exceed).
    for name, expected in (("Dense_1", readout), ("Dense_0", hidden)):
        samples = np.asarray(shares[name], np.float64)
        standard_error = samples.std(axis=0, ddof=1) / np.sqrt(len(samples))
        assert np.all(np.abs(samples.mean(axis=0) - expected) <= 4 * standard_error + 1e-3 * np.abs(expected).max())
        assert np.all(standard_error <= 0.02 * np.abs(expected).max())  # 20 networks pin the mean down
    with jax.enable_x64(True):
        analytic = ntk.mlp_kernels(x, depth=1, weight_std=w, bias_std=b, parameterization="standard", widths=(width,))
    np.testing.assert_allclose(analytic["ntk"], readout + hidden, rtol=1e-7)
