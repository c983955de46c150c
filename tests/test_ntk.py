"""Tests of jaxdl.analysis.ntk against independent references: the kernel as an explicit contraction of
``jax.jacobian`` over the raveled parameters (NumPy, float64), the infinite-width kernels by
Gauss-Hermite quadrature and by Monte Carlo over random networks, the kernel-regime
predictions by a matrix exponential and by gradient descent on the linearised network."""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
from jax.flatten_util import ravel_pytree

from jaxdl import train
from jaxdl.analysis import ntk
from jaxdl.models import get_model
from jaxdl.models.layers import NTKDense
from jaxdl.analysis.ntk import structured

from helpers import count_compiles, random_params

RNG = np.random.default_rng(0)


def _reference_full(apply_fn, params, x1, x2):
    """Theta (N1, N2, *out, *out) = J(x1) J(x2)^T, J by ``jax.jacobian`` of the raveled
    parameters, contracted in float64."""
    vector, unravel = ravel_pytree(params)

    def jacobian(x):
        j = np.asarray(jax.jit(jax.jacobian(lambda v: apply_fn(unravel(v), x)))(vector), np.float64)
        return j.reshape(len(x), -1, vector.size), j.shape[1:-1]

    (j1, out), (j2, _) = jacobian(x1), jacobian(x2)
    theta = np.einsum("aip,bjp->abij", j1, j2)
    return theta.reshape((len(x1), len(x2)) + out + out), out


def _reference(apply_fn, params, x1, x2, subscripts=None):
    """The reference kernel with the default output axes (the mean over the last one) or any
    einsum ``subscripts`` from ``'ABij'``-style full kernels."""
    theta, out = _reference_full(apply_fn, params, x1, x2)
    if subscripts is None:
        return np.einsum({1: "abii->ab", 2: "abijkj->abik"}[len(out)], theta) / out[-1]
    return np.einsum(subscripts, theta)


class _ConvZoo(nn.Module):
    """Strided, explicitly padded, dilated and input-dilated convolutions (structured), a grouped
    convolution and a LayerNorm (Jacobian fallback), and a Dense layer called twice."""

    @nn.compact
    def __call__(self, x, train: bool = False):  # (N, 7, 6, 2) -> (N, 3, 4)
        h = nn.Conv(3, (3, 2), strides=(2, 1), padding=((1, 2), (0, 1)), kernel_dilation=(1, 2))(x)
        h = nn.Conv(4, (2, 2), padding=((0, 0), (1, 0)), input_dilation=2, use_bias=False)(jnp.tanh(h))
        h = nn.LayerNorm()(nn.Conv(4, (3, 3), padding="SAME", feature_group_count=2)(jnp.tanh(h)))
        shared = nn.Dense(4)
        h = shared(jnp.tanh(shared(h)))
        return h.reshape(h.shape[0], -1, 4)[:, :3]


def _mlp():
    model = get_model("mlp", widths=(12, 10), num_outputs=3, activation="tanh")
    x = RNG.normal(size=(6, 5)).astype(np.float32)
    return train.make_apply_fn(model), random_params(model, x, seed=1, scale=0.5), x


def _cnn(implementation):
    model = get_model("cnn2d", channels=(3, 4), kernel_size=3, num_outputs=2, conv_implementation=implementation)
    x = RNG.normal(size=(5, 6, 6, 1)).astype(np.float32)
    return train.make_apply_fn(model), random_params(model, x, seed=2, scale=0.5), x


def _cnn1d_strided():
    # The MNIST-1D CNN's pattern: strided 'SAME' convolutions, no pooling (PatchConv on a CPU).
    model = get_model("cnn1d", channels=(3, 4), kernel_size=5, strides=2, pool="none", dense_widths=(), num_outputs=2)
    x = RNG.normal(size=(5, 11)).astype(np.float32)
    return train.make_apply_fn(model), random_params(model, x, seed=5, scale=0.5), x


def _zoo():
    x = RNG.normal(size=(5, 7, 6, 2)).astype(np.float32)
    return train.make_apply_fn(_ConvZoo()), random_params(_ConvZoo(), x, seed=3, scale=0.5), x


def _resnet():
    model = get_model("resnet", depth=8, width_multiplier=0.25, num_outputs=3)
    x = RNG.normal(size=(4, 8, 8, 3)).astype(np.float32)
    variables = model.init(jax.random.key(0), x)
    stats = jax.tree.map(lambda v: jnp.asarray(RNG.uniform(0.5, 1.5, v.shape), v.dtype), variables["batch_stats"])
    apply_fn = train.make_apply_fn(model, {"batch_stats": stats})
    return apply_fn, random_params(model, x, seed=4, scale=0.3), x


MODELS = {"mlp": _mlp, "cnn2d_xla": lambda: _cnn("xla"), "cnn2d_patches": lambda: _cnn("patches"),
          "cnn1d_strided": _cnn1d_strided, "conv_zoo": _zoo}


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("method", ["jacobian", "ntvp", "structured", "auto"])
def test_every_method_equals_the_jacobian_contraction(name, method):
    apply_fn, params, x = MODELS[name]()
    x1, x2 = x[:4], x[::-1][:2] + 0.1  # blocks of 2 by 2: one program
    expected = _reference(apply_fn, params, x1, x2)
    got = ntk.empirical_ntk(apply_fn, params, x1, x2, method=method, chunk_size=2, rows_per_chunk=5)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=2e-5, atol=2e-5 * np.abs(expected).max())
    same = ntk.empirical_ntk(apply_fn, params, x1, method=method)
    np.testing.assert_allclose(same, _reference(apply_fn, params, x1, x1), rtol=2e-5,
                               atol=2e-5 * np.abs(expected).max())
    swapped = np.moveaxis(np.asarray(same), (0, 1), (1, 0))
    if same.ndim == 4:  # (N1, N2, o, o'): the kernel is symmetric under both swaps together
        swapped = swapped.transpose(0, 1, 3, 2)
    np.testing.assert_allclose(same, swapped, rtol=1e-5, atol=1e-6 * np.abs(expected).max())


def test_structured_resnet_with_batchnorm_statistics():
    """Convolutions and the read-out by structured derivatives, BatchNorm scales and biases by
    the Jacobian fallback, the statistics held fixed."""
    apply_fn, params, x = _resnet()
    assert 0.5 < structured.coverage(apply_fn, params, x) < 1.0
    expected = _reference(apply_fn, params, x, x[:2])
    np.testing.assert_allclose(ntk.empirical_ntk(apply_fn, params, x, x[:2]), expected, rtol=2e-5,
                               atol=2e-5 * np.abs(expected).max())


@pytest.mark.parametrize("method", ["jacobian", "ntvp", "structured"])
def test_float64_agrees_to_1e10(method):
    with jax.enable_x64(True):
        apply_fn, params, x = _zoo()
        params = jax.tree.map(lambda v: v.astype(np.float64), params)
        x = x.astype(np.float64)
        got = ntk.empirical_ntk(apply_fn, params, x, x[:2], method=method, trace_axes=())
        expected = _reference(apply_fn, params, x, x[:2], "abijkl->abikjl")
        assert got.dtype == np.float64
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12 * np.abs(expected).max())


@pytest.mark.parametrize("method", ["jacobian", "ntvp", "structured"])
@pytest.mark.parametrize("trace_axes, diagonal_axes, subscripts", [
    ((), (), "abijkl->abikjl"),
    ((-1,), (), "abijkj->abik"),
    ((1,), (2,), "abijij->abj"),
    ((), (1, -1), "abijij->abij"),
    ((1, 2), (), "abijij->ab"),
])
def test_output_axes_traced_and_diagonal(method, trace_axes, diagonal_axes, subscripts):
    apply_fn, params, x = _zoo()
    got = ntk.empirical_ntk(apply_fn, params, x, x[:2], method=method, trace_axes=trace_axes,
                            diagonal_axes=diagonal_axes)
    expected = _reference(apply_fn, params, x, x[:2], subscripts)
    expected = expected / np.prod([(3, 4)[a - 1 if a > 0 else 2 + a] for a in trace_axes])
    np.testing.assert_allclose(got, expected, rtol=2e-5, atol=2e-5 * np.abs(expected).max())


def test_a_plain_function_and_the_structured_coverage():
    w = RNG.normal(size=(4, 3)).astype(np.float32)
    apply_fn = lambda p, x: jnp.tanh(x @ p["w"]) * p["s"]
    params = {"w": w, "s": np.float32(1.5)}
    x = RNG.normal(size=(5, 4)).astype(np.float32)
    assert structured.coverage(apply_fn, params, x) == 0.0
    assert ntk.choose_method(apply_fn, params, x) == "jacobian"
    np.testing.assert_allclose(ntk.empirical_ntk(apply_fn, params, x), _reference(apply_fn, params, x, x),
                               rtol=1e-5)
    with pytest.raises(ValueError, match="method"):
        ntk.empirical_ntk(apply_fn, params, x, method="structured")

    mlp_fn, mlp_params, mlp_x = _mlp()
    assert structured.coverage(mlp_fn, mlp_params, mlp_x) == 1.0
    assert ntk.choose_method(mlp_fn, mlp_params, mlp_x) == "structured"
    zoo_fn, zoo_params, zoo_x = _zoo()
    counts = {"/".join(k.key for k in path): np.size(v) for path, v in jax.tree_util.tree_leaves_with_path(zoo_params)}
    fallback = sum(n for k, n in counts.items() if k.startswith(("Conv_2", "LayerNorm_0")))
    assert structured.coverage(zoo_fn, zoo_params, zoo_x) == pytest.approx(1 - fallback / sum(counts.values()))


def test_an_nnx_model_split_into_graph_and_state():
    from flax import nnx

    class Net(nnx.Module):
        def __init__(self, rngs):
            self.hidden, self.readout = nnx.Linear(5, 16, rngs=rngs), nnx.Linear(16, 3, rngs=rngs)

        def __call__(self, x):
            return self.readout(jnp.tanh(self.hidden(x)))

    graph, state = nnx.split(Net(nnx.Rngs(0)))
    apply_fn = lambda s, x: nnx.merge(graph, s)(x)
    x = RNG.normal(size=(4, 5)).astype(np.float32)
    expected = _reference(apply_fn, state, x, x[:3])
    for method in ("jacobian", "ntvp", "auto"):
        np.testing.assert_allclose(ntk.empirical_ntk(apply_fn, state, x, x[:3], method=method), expected,
                                   rtol=2e-5, atol=2e-5 * np.abs(expected).max())
    with pytest.raises(ValueError, match="method"):
        ntk.empirical_ntk(apply_fn, state, x, method="structured")


def test_vector_products_and_top_eigenvalues():
    apply_fn, params, x = _mlp()
    theta, _ = _reference_full(apply_fn, params, x, x)  # (N, N, 3, 3)
    matrix = theta.transpose(0, 2, 1, 3).reshape(18, 18)
    v = RNG.normal(size=(6, 3)).astype(np.float32)
    np.testing.assert_allclose(ntk.ntk_vector_product(apply_fn, params, x, v), (matrix @ v.ravel()).reshape(6, 3),
                               rtol=1e-4, atol=1e-5 * np.abs(matrix).max())
    top = ntk.ntk_top_eigenvalues(apply_fn, params, x, k=3, num_steps=18)
    np.testing.assert_allclose(top, np.linalg.eigvalsh(matrix)[::-1][:3], rtol=1e-4)


def test_one_compile_for_the_same_model_wrapped_twice():
    model = get_model("mlp", widths=(8,), num_outputs=2)
    x = RNG.normal(size=(4, 3)).astype(np.float32)
    params = random_params(model, x)
    ntk.empirical_ntk(train.make_apply_fn(model), params, x)
    with count_compiles() as compiles:
        ntk.empirical_ntk(train.make_apply_fn(model), random_params(model, x, seed=5), x + 1)
    assert compiles.count == 0


# ----------------------------------------------------------------------------- predictions


def _kernel_problem(n=6, m=3, outputs=2):
    a = RNG.normal(size=(n + m, 4))
    k = a @ a.T + 0.1 * np.eye(n + m)
    return k[:n, :n], k[n:, :n], RNG.normal(size=(n, outputs)), RNG.normal(size=(n, outputs)), k[n:, n:]


def test_predictions_follow_the_flow_in_closed_form():
    k_train, k_test, y, f0, _ = _kernel_problem()
    eta, n = 0.7, y.size
    with jax.enable_x64(True):
        at = lambda t, **kw: np.asarray(ntk.gradient_descent_mse_predictions(
            k_train, np.vstack([k_train, k_test]), y, t, learning_rate=eta, **kw))
        np.testing.assert_allclose(at(0.0), 0.0, atol=1e-12)
        for t in (0.3, 5.0):
            flow = scipy.linalg.expm(-eta * t * k_train / n)
            np.testing.assert_allclose(at(t)[:6], y - flow @ y, rtol=1e-9, atol=1e-12)
            got = at(t, initial_train=f0, initial_test=np.vstack([f0, np.zeros((3, 2))]))
            np.testing.assert_allclose(got[:6], y + flow @ (f0 - y), rtol=1e-9, atol=1e-12)
        times = np.array([0.0, 0.3, 5.0])
        np.testing.assert_allclose(at(times), np.stack([at(t) for t in times]), rtol=1e-10, atol=1e-12)
        solved = np.vstack([k_train, k_test]) @ np.linalg.solve(k_train, y)
        np.testing.assert_allclose(at(None), solved, rtol=1e-9)
        np.testing.assert_allclose(at(1e9), solved, rtol=1e-6)
        ridge = np.vstack([k_train, k_test]) @ np.linalg.solve(k_train + 0.1 * np.mean(np.diag(k_train)) * np.eye(6), y)
        np.testing.assert_allclose(at(None, diag_reg=0.1), ridge, rtol=1e-9)


def test_the_linearized_network_trained_by_gd_follows_its_kernel_exactly():
    """Full-batch GD on the linearised network's MSE moves its training outputs by exactly
    f <- f - (eta / n) K (f - y), K its empirical NTK at initialisation (the full matrix over
    outputs)."""
    with jax.enable_x64(True):
        model = get_model("mlp", widths=(16,), num_outputs=2, activation="tanh")
        x = RNG.normal(size=(5, 3))
        y = RNG.normal(size=(5, 2))
        params_0 = jax.tree.map(lambda v: v.astype(np.float64), random_params(model, x, scale=0.7))
        f_lin = ntk.linearize(train.make_apply_fn(model), params_0)
        k = np.asarray(ntk.empirical_ntk(f_lin, params_0, x, trace_axes=())).transpose(0, 2, 1, 3).reshape(10, 10)
        loss = lambda p: 0.5 * jnp.mean(jnp.square(f_lin(p, x) - y))
        params, eta = params_0, 0.5
        for _ in range(30):
            params = jax.tree.map(lambda p, g: p - eta * g, params, jax.grad(loss)(params))
        f0 = np.asarray(f_lin(params_0, x)).ravel()
        step = np.eye(10) - eta / y.size * k
        expected = y.ravel() + np.linalg.matrix_power(step, 30) @ (f0 - y.ravel())
        np.testing.assert_allclose(np.asarray(f_lin(params, x)).ravel(), expected, rtol=1e-10)


def test_linearize_is_the_first_order_taylor_expansion():
    with jax.enable_x64(True):
        model = get_model("mlp", widths=(8,), num_outputs=3, activation="tanh")
        x = RNG.normal(size=(4, 5))
        apply_fn = train.make_apply_fn(model)
        params_0 = jax.tree.map(lambda v: v.astype(np.float64), random_params(model, x))
        direction = jax.tree.map(lambda v: RNG.normal(size=v.shape), params_0)
        shifted = lambda s: jax.tree.map(lambda p, d: p + s * d, params_0, direction)
        f_lin = ntk.linearize(apply_fn, params_0)
        np.testing.assert_allclose(f_lin(params_0, x), apply_fn(params_0, x), rtol=1e-12)
        eps = 1e-5
        derivative = (apply_fn(shifted(eps), x) - apply_fn(shifted(-eps), x)) / (2 * eps)
        np.testing.assert_allclose(f_lin(shifted(1.0), x) - apply_fn(params_0, x), derivative, rtol=1e-7, atol=1e-9)
        np.testing.assert_allclose(f_lin(shifted(3.0), x) - f_lin(params_0, x),
                                   3 * (f_lin(shifted(1.0), x) - f_lin(params_0, x)), rtol=1e-10)


# ----------------------------------------------------------------------------- layers and errors


def test_ntk_dense_is_the_formula_written_out():
    layer = NTKDense(3, weight_std=1.5, bias_std=0.2)
    x = RNG.normal(size=(4, 5)).astype(np.float32)
    params = layer.init(jax.random.key(0), x)["params"]
    assert set(params) == {"dense", "bias"} and set(params["dense"]) == {"kernel"}
    w, b = np.asarray(params["dense"]["kernel"]), np.asarray(params["bias"])
    np.testing.assert_allclose(layer.apply({"params": params}, x), 1.5 / 5 ** 0.5 * x @ w + 0.2 * b, rtol=1e-5)
    big = NTKDense(2000).init(jax.random.key(1), np.zeros((1, 1000), np.float32))["params"]
    assert np.std(big["dense"]["kernel"]) == pytest.approx(1.0, abs=0.01)
    model = get_model("mlp", widths=(7, 7), residual=True, parameterization="ntk")
    assert set(model.init(jax.random.key(0), x)["params"]) == {"hidden_0", "hidden_1", "output"}
    with pytest.raises(ValueError, match="parameterization"):
        get_model("mlp", parameterization="mean_field").init(jax.random.key(0), x)


def test_bad_inputs_name_the_field():
    apply_fn, params, x = _mlp()
    with pytest.raises(ValueError, match="x2"):
        ntk.empirical_ntk(apply_fn, params, x, x[:, :3])
    with pytest.raises(ValueError, match="method"):
        ntk.empirical_ntk(apply_fn, params, x, method="exact")
    with pytest.raises(ValueError, match="trace_axes"):
        ntk.empirical_ntk(apply_fn, params, x, trace_axes=(0,))
    with pytest.raises(ValueError, match="trace_axes"):
        ntk.empirical_ntk(apply_fn, params, x, trace_axes=(2,))
    with pytest.raises(ValueError, match="diagonal_axes"):
        ntk.empirical_ntk(apply_fn, params, x, trace_axes=(-1,), diagonal_axes=(1,))
    with pytest.raises(ValueError, match="chunk_size"):
        ntk.empirical_ntk(apply_fn, params, x, chunk_size=0)
    with pytest.raises(ValueError, match="apply_fn"):
        ntk.empirical_ntk("mlp", params, x)
    with pytest.raises(ValueError, match="k"):
        ntk.ntk_top_eigenvalues(apply_fn, params, x, k=5, num_steps=4)
    with pytest.raises(ValueError, match="x2"):
        ntk.mlp_kernels(x, x[:, :3], depth=1)
    with pytest.raises(ValueError, match="activation"):
        ntk.mlp_kernels(x, depth=1, activation="tanh")
    with pytest.raises(ValueError, match="widths"):
        ntk.mlp_kernels(x, depth=2, parameterization="standard", widths=(10,))
    with pytest.raises(ValueError, match="depth"):
        ntk.mlp_kernels(x, depth=-1)
    k_train, k_test, y, _, _ = _kernel_problem()
    with pytest.raises(ValueError, match="diag_reg"):
        ntk.gradient_descent_mse_predictions(k_train, k_test, y, diag_reg=-1.0)
    with pytest.raises(ValueError, match="t"):
        ntk.gradient_descent_mse_predictions(k_train, k_test, y, t=-1.0)
    with pytest.raises(ValueError, match="k_test_train"):
        ntk.gradient_descent_mse_predictions(k_train, k_test.T, y)
    with pytest.raises(ValueError, match="apply_fn"):
        ntk.linearize(None, params)
