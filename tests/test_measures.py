"""Tests of jaxdl.analysis.curvature.measures against closed forms on linear, quadratic and
two-layer nets, and each measure's behaviour under Dinh et al.'s alpha_scale."""
from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdl import train
from jaxdl.analysis import curvature
from jaxdl.models import get_model
from jaxdl.train import losses

RNG = np.random.default_rng(0)
X_NxD = RNG.normal(size=(32, 5)).astype(np.float32)
Y_N = (np.arange(32) % 3).astype(np.int32)


def _mlp(widths=(6, 5), use_bias=True, seed=0):
    model = get_model("mlp", widths=widths, num_outputs=3, use_bias=use_bias)
    return train.make_apply_fn(model), model.init(jax.random.key(seed), X_NxD[:1])["params"]


def _quadratic(a_D):
    """L(theta) = 0.5 sum_i a_i theta_i^2 on a flat parameter vector; the batch is ignored."""
    return lambda params, batch: 0.5 * jnp.sum(a_D * jnp.square(params["w"]))


def test_parameter_norm_and_distance_to_init_are_euclidean_norms():
    _, params = _mlp()
    _, initial = _mlp(seed=1)
    flat = lambda p: np.concatenate([np.ravel(leaf) for leaf in jax.tree.leaves(p)])  # noqa: E731
    assert float(curvature.parameter_norm(params)) == pytest.approx(np.linalg.norm(flat(params)), rel=1e-5)
    assert float(curvature.distance_to_init(params, initial)) == pytest.approx(
        np.linalg.norm(flat(params) - flat(initial)), rel=1e-5)
    with pytest.raises(ValueError, match="initial_params"):
        curvature.distance_to_init(params, {"hidden_0": initial["hidden_0"]})


def test_spectral_norms_are_the_top_singular_values_of_each_reshaped_kernel():
    params = {"conv": {"kernel": RNG.normal(size=(3, 3, 2, 4)).astype(np.float32), "bias": np.ones(4, np.float32)},
              "dense": {"kernel": RNG.normal(size=(7, 3)).astype(np.float32)}}
    norms = curvature.spectral_norms(params)
    assert sorted(norms) == ["conv/kernel", "dense/kernel"]
    assert float(norms["conv/kernel"]) == pytest.approx(
        np.linalg.svd(params["conv"]["kernel"].reshape(18, 4), compute_uv=False)[0], rel=1e-5)
    assert float(norms["dense/kernel"]) == pytest.approx(np.linalg.norm(params["dense"]["kernel"], 2), rel=1e-5)
    with pytest.raises(ValueError, match="params"):
        curvature.spectral_norms({"bias": np.ones(3)})


def test_path_norm_sums_every_path_of_a_two_layer_relu_net():
    apply_fn, params = _mlp(widths=(6,))
    w1, b1 = np.asarray(params["hidden_0"]["kernel"]), np.asarray(params["hidden_0"]["bias"])
    w2, b2 = np.asarray(params["output"]["kernel"]), np.asarray(params["output"]["bias"])
    # Each path input i -> hidden j -> output k, each bias b1_j -> j -> k, each b2_k.
    total = sum(w1[i, j] ** 2 * w2[j, k] ** 2 for i, j, k in itertools.product(range(5), range(6), range(3)))
    total += sum(b1[j] ** 2 * w2[j, k] ** 2 for j, k in itertools.product(range(6), range(3))) + np.sum(b2 ** 2)
    assert float(curvature.path_norm(apply_fn, params, (5,))) == pytest.approx(np.sqrt(total), rel=1e-5)
    with pytest.raises(ValueError, match="input_shape"):
        curvature.path_norm(apply_fn, params, 5)


def test_fisher_rao_norm_of_a_linear_model_with_the_half_mse():
    """f = x W: <W, grad_W 0.5 mean_o (f - y)^2> = mean_o (f - y) f per example."""
    w = RNG.normal(size=(5, 2)).astype(np.float32)
    y = RNG.normal(size=(32, 2)).astype(np.float32)
    apply_fn = lambda p, x: x @ p["w"]  # noqa: E731
    f = X_NxD @ w
    expected = np.sqrt(np.mean(np.mean((f - y) * f, axis=1) ** 2))
    for chunk_size in (None, 10):
        value = curvature.fisher_rao_norm(apply_fn, {"w": w}, (X_NxD, y), loss_name="half_mse", chunk_size=chunk_size)
        assert float(value) == pytest.approx(expected, rel=1e-5)


def test_fisher_rao_norm_of_a_bias_free_relu_net_is_depth_plus_one_times_the_output_term():
    """Liang et al. 2019, lemma 2.1: <theta, grad loss> = (L + 1) <d loss / d f, f> for L hidden layers."""
    apply_fn, params = _mlp(widths=(6, 5), use_bias=False)
    logits = np.asarray(apply_fn(params, X_NxD), np.float64)
    softmax = np.exp(logits - logits.max(1, keepdims=True))
    softmax /= softmax.sum(1, keepdims=True)
    d_loss_d_f = softmax - np.eye(3)[Y_N]
    expected = np.sqrt(np.mean((3 * np.sum(d_loss_d_f * logits, axis=1)) ** 2))
    assert float(curvature.fisher_rao_norm(apply_fn, params, (X_NxD, Y_N))) == pytest.approx(expected, rel=1e-4)


def test_output_margin_is_the_percentile_of_the_logit_margins():
    apply_fn, params = _mlp()
    logits = np.asarray(apply_fn(params, X_NxD))
    true = logits[np.arange(32), Y_N]
    others = np.where(np.eye(3, dtype=bool)[Y_N], -np.inf, logits).max(1)
    for q in (0.0, 10.0, 50.0):
        assert float(curvature.output_margin(apply_fn, params, (X_NxD, Y_N), percentile=q)) == pytest.approx(
            np.percentile(true - others, q), rel=1e-5, abs=1e-6)
    with pytest.raises(ValueError, match="percentile"):
        curvature.output_margin(apply_fn, params, (X_NxD, Y_N), percentile=101)


def test_adaptive_sharpness_of_a_convex_quadratic_is_at_the_outer_vertex():
    """The maximum of a convex function over a box is at a vertex; for 0.5 sum a_i w_i^2 and
    the box |delta_i| <= rho |w_i| it is delta = rho w: 0.5 sum a_i ((1 + rho)^2 - 1) w_i^2."""
    a = np.abs(RNG.normal(size=20)).astype(np.float32) + 0.1
    w = RNG.normal(size=20).astype(np.float32)
    rho = 0.05
    found = curvature.adaptive_sharpness(_quadratic(a), {"w": w}, None, rho, num_steps=30)
    expected = 0.5 * np.sum(a * ((1 + rho) ** 2 - 1) * w ** 2)
    assert float(found.value) == pytest.approx(expected, rel=1e-4)
    np.testing.assert_allclose(found.perturbation["w"], rho * w, rtol=1e-4, atol=1e-7)
    assert float(found.perturbed_loss - found.loss) == pytest.approx(float(found.value))


def test_adaptive_sharpness_with_eta_one_is_keskars_box():
    apply_fn, params = _mlp()
    loss_fn = losses.make_loss_fn(apply_fn)
    key = jax.random.key(3)
    adaptive = curvature.adaptive_sharpness(loss_fn, params, (X_NxD, Y_N), 1e-2, eta=1.0, num_steps=8, key=key)
    keskar = curvature.epsilon_sharpness(loss_fn, params, (X_NxD, Y_N), 1e-2, method="ascent", max_steps=8, key=key)
    assert float(adaptive.perturbed_loss) == pytest.approx(float(keskar.perturbed_loss), rel=1e-6)
    assert float(keskar.value) == pytest.approx(100 * float(adaptive.value) / (1 + float(adaptive.loss)), rel=1e-5)


def test_pac_bayes_flatness_of_a_quadratic_at_its_minimum():
    """At theta = 0, E[L(sigma u)] = 0.5 sigma^2 sum_i a_i E[u_i^2]: with the draws' own second
    moments m_i the bisection must land on sqrt(2 target / sum_i a_i m_i)."""
    a = np.abs(RNG.normal(size=50)) + 0.5
    key = jax.random.key(7)
    found = curvature.pac_bayes_flatness(_quadratic(a), {"w": np.zeros(50)}, None, key=key, target=0.1,
                                         num_samples=64, bisection_steps=40)
    with jax.enable_x64(False):
        noise = np.asarray(jax.random.normal(key, (64, 50), jnp.float32), np.float64)
    expected = np.sqrt(2 * 0.1 / np.sum(a * np.mean(noise ** 2, axis=0)))
    assert float(found.sigma) == pytest.approx(expected, rel=1e-4)
    assert float(found.flatness) == pytest.approx(1 / expected ** 2, rel=1e-3)
    assert float(found.deviation) == pytest.approx(0.1, rel=1e-3) and bool(found.bracketed)
    # Past the range's top every sigma passes: the top is reported, unbracketed.
    flat = curvature.pac_bayes_flatness(_quadratic(1e-9 * a), {"w": np.zeros(50)}, None, sigma_range=(1e-3, 1.0))
    assert float(flat.sigma) == pytest.approx(1.0) and not bool(flat.bracketed)
    with pytest.raises(ValueError, match="sigma_range"):
        curvature.pac_bayes_flatness(_quadratic(a), {"w": np.zeros(50)}, None, sigma_range=(1.0, 0.1))


def _measures(apply_fn, params, initial):
    loss_fn = losses.make_loss_fn(apply_fn)
    batch = (X_NxD, Y_N)
    norms = curvature.spectral_norms(params)
    return {
        "path norm": curvature.path_norm(apply_fn, params, (5,)),
        "Fisher-Rao norm": curvature.fisher_rao_norm(apply_fn, params, batch),
        "output margin": curvature.output_margin(apply_fn, params, batch),
        "product of spectral norms": np.prod([float(v) for v in norms.values()]),
        "adaptive sharpness": curvature.adaptive_sharpness(loss_fn, params, batch, 0.05, num_steps=5).value,
        "magnitude-aware PAC-Bayes": curvature.pac_bayes_flatness(loss_fn, params, batch, magnitude_aware=True,
                                                                  epsilon=0.0, target=0.05).sigma,
        "parameter norm": curvature.parameter_norm(params),
        "distance to init": curvature.distance_to_init(params, initial),
        "sum of spectral norms": sum(float(v) for v in norms.values()),
        "PAC-Bayes": curvature.pac_bayes_flatness(loss_fn, params, batch, target=0.05).sigma,
        "top Hessian eigenvalue": curvature.hessian_top_eigenvalues(loss_fn, params, batch, num_steps=20).eigenvalues[0],
    }


INVARIANT = ("path norm", "Fisher-Rao norm", "output margin", "product of spectral norms", "adaptive sharpness",
             "magnitude-aware PAC-Bayes")


@pytest.mark.parametrize("alpha", [0.1, 10.0])
def test_which_measures_survive_alpha_scaling(alpha):
    """Dinh et al. 2017's T_a (same function): the invariant measures keep their values, the
    others move by more than a tenth."""
    apply_fn, params = _mlp()
    _, initial = _mlp(seed=1)
    before = _measures(apply_fn, params, initial)
    after = _measures(apply_fn, curvature.alpha_scale(params, "hidden_0", "hidden_1", alpha), initial)
    for name, value in before.items():
        ratio = float(after[name]) / float(value)
        if name in INVARIANT:
            assert ratio == pytest.approx(1.0, rel=2e-3), name
        else:
            assert abs(np.log(ratio)) > np.log(1.1), name
