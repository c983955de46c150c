"""Tests of jaxdl.analysis.curvature.reparametrization (Dinh et al. 2017's T_a) against the network's own
outputs and the dense Hessian from ``jax.hessian``."""
from __future__ import annotations

import functools

import jax
import numpy as np
import pytest
from helpers import flat
from jax.flatten_util import ravel_pytree

from jaxdl import train
from jaxdl.analysis import curvature, landscape
from jaxdl.train import losses
from jaxdl.models import get_model

RNG = np.random.default_rng(0)
X_NxD = RNG.normal(size=(24, 5)).astype(np.float32)
Y_N = (np.arange(24) % 3).astype(np.int32)


def _mlp():
    model = get_model("mlp", widths=(6, 5), num_outputs=3)
    return model, model.init(jax.random.key(0), X_NxD[:1])["params"]


@pytest.mark.parametrize("alpha", [0.1, 0.5, 3.0, 20.0])
def test_alpha_scaling_keeps_the_function_of_a_relu_mlp(alpha):
    model, params = _mlp()
    scaled = curvature.alpha_scale(params, "hidden_0", ("hidden_1",), alpha)
    apply_fn = train.make_apply_fn(model)
    np.testing.assert_allclose(apply_fn(scaled, X_NxD), apply_fn(params, X_NxD), rtol=1e-5, atol=1e-5)
    # What moved, by how much: W1, b1 times alpha, W2 over alpha, the rest untouched.
    np.testing.assert_allclose(scaled["hidden_0"]["kernel"], alpha * params["hidden_0"]["kernel"], rtol=1e-6)
    np.testing.assert_allclose(scaled["hidden_0"]["bias"], alpha * params["hidden_0"]["bias"], rtol=1e-6)
    np.testing.assert_allclose(scaled["hidden_1"]["kernel"], params["hidden_1"]["kernel"] / alpha, rtol=1e-6)
    np.testing.assert_array_equal(scaled["hidden_1"]["bias"], params["hidden_1"]["bias"])
    np.testing.assert_array_equal(scaled["output"]["kernel"], params["output"]["kernel"])


def test_alpha_scaling_keeps_the_function_of_a_cnn():
    model = get_model("cnn1d", channels=(4, 4), kernel_size=3, num_outputs=3)
    x = RNG.normal(size=(6, 12)).astype(np.float32)
    params = model.init(jax.random.key(1), x[:1])["params"]
    first, second = curvature.layer_paths(params)[:2]
    scaled = curvature.alpha_scale(params, first, second, 7.0)
    apply_fn = train.make_apply_fn(model)
    np.testing.assert_allclose(apply_fn(scaled, x), apply_fn(params, x), rtol=1e-5, atol=1e-5)
    assert not np.allclose(flat(scaled), flat(params))


@functools.lru_cache(maxsize=None)
def _hessian_program(loss_fn):
    # One compiled dense Hessian for every call (the model's parameter structure is fixed).
    _, unravel = ravel_pytree(_mlp()[1])
    return jax.jit(jax.hessian(lambda v: loss_fn(unravel(v), (X_NxD, Y_N))))


def _dense_hessian(loss_fn, params):
    return np.asarray(_hessian_program(loss_fn)(ravel_pytree(params)[0]), np.float64)


@pytest.mark.parametrize("alpha", [0.2, 4.0])
def test_hessian_at_the_scaled_point_is_d_inverse_h_d_inverse(alpha):
    model, params = _mlp()
    loss_fn = losses.make_loss_fn(train.make_apply_fn(model))
    hessian = _dense_hessian(loss_fn, params)
    scaled_hessian = _dense_hessian(loss_fn, curvature.alpha_scale(params, "hidden_0", "hidden_1", alpha))
    d_inverse = 1.0 / ravel_pytree(curvature.alpha_scaling(params, "hidden_0", "hidden_1", alpha))[0]
    expected = d_inverse[:, None] * hessian * d_inverse[None, :]
    np.testing.assert_allclose(scaled_hessian, expected, rtol=1e-3, atol=1e-4 * np.abs(expected).max())
    # The trace prediction from the three diagonal blocks at theta.
    blocks = curvature.alpha_scaling_blocks(params, "hidden_0", "hidden_1")
    block_traces = {name: float(np.diag(hessian) @ flat(mask)) for name, mask in blocks.items()}
    assert sum(flat(mask).sum() for mask in blocks.values()) == flat(params).size  # a partition
    np.testing.assert_allclose(curvature.alpha_scaled_trace(block_traces, alpha), np.trace(scaled_hessian), rtol=1e-4)


def test_masked_hutchinson_estimates_a_block_trace():
    model, params = _mlp()
    loss_fn = losses.make_loss_fn(train.make_apply_fn(model))
    diagonal = np.diag(_dense_hessian(loss_fn, params))
    for name, mask in curvature.alpha_scaling_blocks(params, "hidden_0", "hidden_1").items():
        estimate = curvature.hessian_trace(loss_fn, params, (X_NxD, Y_N), num_probes=400, where=mask)
        exact = diagonal @ flat(mask)
        assert abs(float(estimate.estimate) - exact) <= 4 * float(estimate.standard_error) + 1e-6, name
    with pytest.raises(ValueError, match="where"):
        curvature.hessian_trace(loss_fn, params, (X_NxD, Y_N), where={"hidden_0": params["hidden_0"]})


def test_filter_normalised_sharpness_does_not_see_the_rescaling():
    model, params = _mlp()
    apply_fn = train.make_apply_fn(model)
    key = jax.random.key(3)
    values = [landscape.filter_normalized_sharpness(apply_fn, curvature.alpha_scale(params, "hidden_0", "hidden_1", a),
                                                    (X_NxD, Y_N), key)["value"] for a in (0.1, 1.0, 10.0)]
    np.testing.assert_allclose(values, values[1], rtol=1e-4)
    top = [float(curvature.hessian_top_eigenvalues(losses.make_loss_fn(apply_fn),
                                                   curvature.alpha_scale(params, "hidden_0", "hidden_1", a),
                                                   (X_NxD, Y_N), num_steps=20).eigenvalues[0]) for a in (0.1, 1.0)]
    assert top[0] > 3 * top[1]  # while the top eigenvalue moves


def test_bad_layers_and_alpha_raise_naming_the_field():
    _, params = _mlp()
    with pytest.raises(ValueError, match=r"first_layer must be the path of a layer of params, one of \['hidden_0'"):
        curvature.alpha_scale(params, "Dense_0", "hidden_1", 2.0)
    with pytest.raises(ValueError, match="second_layer"):
        curvature.alpha_scale(params, "hidden_0", "hidden_0", 2.0)
    for alpha in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="alpha must be a positive number"):
            curvature.alpha_scale(params, "hidden_0", "hidden_1", alpha)
