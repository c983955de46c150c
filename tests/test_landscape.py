"""Tests of jaxdl.analysis.landscape directions, evaluation, interpolation, surfaces and BatchNorm
recomputation, against independent references: NumPy norms and inner products on the flattened
parameters, a hand-written float64 loss, a Python double loop over the grid, and the BatchNorm
statistics computed by hand in NumPy.

One small ReLU network (3-8-4, written out by hand) on 30 examples serves most tests.
"""
from __future__ import annotations

import textwrap

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdl import train
from jaxdl.analysis import landscape
from jaxdl.core import tree
from jaxdl.models import get_model
from jaxdl.analysis.landscape import surfaces
from helpers import flat, json_result, run_on_devices

NUM_EXAMPLES = 30


def apply_fn(params, x):
    return jax.nn.relu(x @ params["w1"] + params["b1"]) @ params["w2"] + params["b2"]


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(0)
    params = {"w1": rng.normal(size=(3, 8)), "b1": 0.1 * rng.normal(size=8),
              "w2": rng.normal(size=(8, 4)) / 3, "b2": 0.1 * rng.normal(size=4)}
    params = jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), params)
    x = rng.normal(size=(NUM_EXAMPLES, 3)).astype(np.float32)
    y = rng.integers(0, 4, NUM_EXAMPLES).astype(np.int32)
    return params, (x, y)


def reference_metrics(params, data):
    """Float64 NumPy cross-entropy and accuracy, independent of jaxdl.train.losses."""
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    x, y = data
    logits = np.maximum(x @ p["w1"] + p["b1"], 0) @ p["w2"] + p["b2"]
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return {"loss": -np.mean(log_probs[np.arange(len(y)), y]), "accuracy": np.mean(logits.argmax(1) == y)}


# ----------------------------------------------------------------------------- directions

DIRECTION_PARAMS = {"dense": {"kernel": (5, 4), "bias": (4,)}, "conv": {"kernel": (3, 3, 2, 6)},
                    "norm": {"scale": (6,)}, "alpha": ()}


def _direction_params(seed=0):
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda s: jnp.asarray(rng.normal(size=s), jnp.float32), DIRECTION_PARAMS,
                        is_leaf=lambda s: isinstance(s, tuple))


def _numpy_filter_norms(leaf):
    leaf = np.asarray(leaf, np.float64)
    return np.linalg.norm(leaf.reshape(-1, leaf.shape[-1]), axis=0)


@pytest.mark.parametrize("ignore_biasbn", [True, False])
def test_filter_normalised_direction_has_the_weights_filter_norms(ignore_biasbn):
    params = _direction_params()
    direction = landscape.random_direction(jax.random.key(3), params, ignore_biasbn=ignore_biasbn)
    for path in (("dense", "kernel"), ("conv", "kernel")):
        d, w = direction[path[0]][path[1]], params[path[0]][path[1]]
        np.testing.assert_allclose(_numpy_filter_norms(d), _numpy_filter_norms(w), rtol=1e-5)
        np.testing.assert_allclose(landscape.filter_norms(direction)[path[0]][path[1]], _numpy_filter_norms(w),
                                   rtol=1e-5)
        assert not np.allclose(np.asarray(d), np.asarray(w))  # a direction, not a copy of the weights
    for path in (("dense", "bias"), ("norm", "scale"), ("alpha",)):
        d, w = direction, params
        for key in path:
            d, w = d[key], w[key]
        np.testing.assert_array_equal(np.asarray(d), 0.0 if ignore_biasbn else np.asarray(w))


def test_zero_filters_give_zeros_not_nan():
    params = _direction_params()
    params["dense"]["kernel"] = params["dense"]["kernel"].at[:, 1].set(0.0)
    direction = landscape.random_direction(jax.random.key(0), params)
    assert all(np.isfinite(np.asarray(leaf)).all() for leaf in jax.tree.leaves(direction))
    np.testing.assert_array_equal(np.asarray(direction["dense"]["kernel"][:, 1]), 0.0)
    raw = tree.random_like(jax.random.key(1), params)
    raw["conv"]["kernel"] = raw["conv"]["kernel"].at[..., 2].set(0.0)
    normalised = landscape.normalize_direction(raw, params)
    assert np.isfinite(np.asarray(normalised["conv"]["kernel"])).all()
    np.testing.assert_array_equal(np.asarray(normalised["conv"]["kernel"][..., 2]), 0.0)


def test_same_key_same_direction_bit_for_bit():
    params = _direction_params()
    a = landscape.random_direction(jax.random.key(7), params)
    b = landscape.random_direction(jax.random.key(7), params)
    c = landscape.random_direction(jax.random.key(8), params)
    np.testing.assert_array_equal(flat(a), flat(b))
    assert not np.allclose(flat(a), flat(c))
    raw = landscape.random_direction(jax.random.key(7), params, normalization=None)
    flat_params, unflatten = tree.flatten(params)
    expected = unflatten(jax.random.normal(jax.random.key(7), flat_params.shape, flat_params.dtype))
    np.testing.assert_array_equal(flat(raw), flat(expected))


def test_layer_and_model_normalisation():
    params = _direction_params()
    layer = landscape.random_direction(jax.random.key(1), params, normalization="layer")
    for name in ("dense", "conv"):
        np.testing.assert_allclose(np.linalg.norm(flat(layer[name]["kernel"])),
                                   np.linalg.norm(flat(params[name]["kernel"])), rtol=1e-5)
    model = landscape.random_direction(jax.random.key(1), params, normalization="model", ignore_biasbn=False)
    np.testing.assert_allclose(np.linalg.norm(flat(model)), np.linalg.norm(flat(params)), rtol=1e-5)
    weights_only = landscape.random_direction(jax.random.key(1), params, normalization="model")
    kernels = [params["dense"]["kernel"], params["conv"]["kernel"]]
    np.testing.assert_allclose(np.linalg.norm(flat(weights_only)), np.linalg.norm(flat(kernels)), rtol=1e-5)
    with pytest.raises(ValueError, match="normalization"):
        landscape.random_direction(jax.random.key(1), params, normalization="filters")


def test_orthogonalize_removes_the_projection():
    a, b = _direction_params(1), _direction_params(2)
    result = landscape.orthogonalize(a, b)
    va, vb = flat(a), flat(b)
    np.testing.assert_allclose(flat(result), va - va @ vb / (vb @ vb) * vb, rtol=1e-5, atol=1e-6)
    assert abs(float(tree.dot(result, b))) < 1e-4 * np.linalg.norm(va) * np.linalg.norm(vb)


def test_filter_normalised_curve_is_invariant_to_filter_rescaling(problem):
    """Scaling hidden unit j of a ReLU layer by s (its kernel column and bias) and its outgoing
    weights by 1/s leaves the network unchanged. The filter-normalised direction of the
    rescaled layer scales with the filter, so the 1-D curve is unchanged; the raw one is not.
    Only the first layer is perturbed (the second layer's filters are its columns, whose norms
    the rescaling does change, so Li et al.'s invariance is per layer)."""
    params, data = problem
    j, s = 2, 10.0
    scaled = dict(params, w1=params["w1"].at[:, j].multiply(s), b1=params["b1"].at[j].multiply(s),
                  w2=params["w2"].at[j, :].divide(s))
    np.testing.assert_allclose(apply_fn(scaled, data[0]), apply_fn(params, data[0]), rtol=1e-5, atol=1e-5)
    alphas = np.linspace(-1.0, 1.0, 9)

    def curve(p, normalization):
        d = landscape.random_direction(jax.random.key(5), p, normalization=normalization)
        d = dict(d, w2=jnp.zeros_like(d["w2"]), b2=jnp.zeros_like(d["b2"]), b1=jnp.zeros_like(d["b1"]))
        return np.asarray(landscape.interpolate_direction(apply_fn, p, d, data, alphas)["loss"])

    np.testing.assert_allclose(curve(scaled, "filter"), curve(params, "filter"), rtol=1e-5)
    assert np.max(np.abs(curve(scaled, None) - curve(params, None))) > 1e-2


# ----------------------------------------------------------------------------- evaluation and 1-D


@pytest.mark.parametrize("chunk_size", [None, 7, 30])
def test_evaluate_params_matches_reference(problem, chunk_size):
    params, data = problem
    metrics = landscape.evaluate_params(apply_fn, params, data, chunk_size=chunk_size)
    expected = reference_metrics(params, data)
    np.testing.assert_allclose(float(metrics["loss"]), expected["loss"], rtol=1e-5)
    np.testing.assert_allclose(float(metrics["accuracy"]), expected["accuracy"], atol=1e-6)
    with pytest.raises(ValueError, match="chunk_size"):
        landscape.evaluate_params(apply_fn, params, data, chunk_size=0)


def test_interpolation_alphas_contain_zero_and_one():
    alphas = landscape.interpolation_alphas()
    assert alphas.shape == (101,) and alphas[0] == -0.5 and alphas[-1] == 1.5
    assert np.sum(alphas == 0.0) == 1 and np.sum(alphas == 1.0) == 1
    assert np.sum(landscape.interpolation_alphas(0.0, 1.0, 3) == 0.5) == 1
    with pytest.raises(ValueError, match="num"):
        landscape.interpolation_alphas(-0.5, 1.5, 100)
    with pytest.raises(ValueError, match="num"):
        landscape.interpolation_alphas(0.2, 1.5, 14)


def test_interpolate_hits_the_endpoints(problem):
    params0, data = problem
    params1 = jax.tree.map(lambda a: a + 0.5, params0)
    alphas = landscape.interpolation_alphas(-0.5, 1.5, 9)
    curve = landscape.interpolate(apply_fn, params0, params1, data, alphas, chunk_size=8)
    assert curve["loss"].shape == (9,) and curve["accuracy"].shape == (9,)
    for alpha, endpoint in ((0.0, params0), (1.0, params1)):
        at = landscape.evaluate_params(apply_fn, endpoint, data)
        index = int(np.flatnonzero(alphas == alpha)[0])
        np.testing.assert_allclose(curve["loss"][index], at["loss"], rtol=1e-6)
        np.testing.assert_allclose(curve["accuracy"][index], at["accuracy"], rtol=1e-6)
    for index, alpha in enumerate(alphas):
        point = {k: (1 - alpha) * np.asarray(params0[k], np.float64) + alpha * np.asarray(params1[k], np.float64)
                 for k in params0}
        np.testing.assert_allclose(curve["loss"][index], reference_metrics(point, data)["loss"], rtol=1e-5)


# ----------------------------------------------------------------------------- 2-D surfaces

XS, YS = np.array([-0.6, 0.0, 0.9]), np.array([-1.0, -0.2, 0.0, 0.7])


def _surface_reference(params, dx, dy, data, xs, ys):
    """The Python double loop of jitted evaluations a user would write."""
    evaluate = jax.jit(lambda p: landscape.evaluate_params(apply_fn, p, data)["loss"])
    return np.array([[float(evaluate(jax.tree.map(lambda w, u, v: w + a * u + b * v, params, dx, dy)))
                      for a in xs] for b in ys])


@pytest.fixture(scope="module")
def plane(problem):
    params, data = problem
    dx = landscape.random_direction(jax.random.key(0), params)
    dy = landscape.random_direction(jax.random.key(1), params)
    return params, dx, dy, data, _surface_reference(params, dx, dy, data, XS, YS)


def test_surface_matches_double_loop(plane):
    params, dx, dy, data, expected = plane
    values = landscape.surface(apply_fn, params, dx, dy, data, XS, YS)
    assert values["loss"].shape == (4, 3) and values["accuracy"].shape == (4, 3)
    np.testing.assert_allclose(values["loss"], expected, rtol=1e-5)
    centre = float(landscape.evaluate_params(apply_fn, params, data)["loss"])
    np.testing.assert_allclose(values["loss"][2, 1], centre, rtol=1e-6)
    # Orientation: rows follow ys, columns xs; the transpose is a different function.
    assert not np.allclose(values["loss"][1, 0], expected[0, 1], rtol=1e-3)
    odd = landscape.surface(apply_fn, params, dx, dy, data, XS, YS, chunk_size=7, points_per_chunk=5)
    np.testing.assert_allclose(odd["loss"], values["loss"], rtol=1e-6)
    np.testing.assert_allclose(odd["accuracy"], values["accuracy"], atol=1e-6)
    # The default ('auto': the backend's measured chunk) is one of the same programs.
    assert landscape.POINTS_PER_CHUNK["cpu"] == 1
    single = landscape.surface(apply_fn, params, dx, dy, data, XS, YS, points_per_chunk=1)
    np.testing.assert_allclose(single["loss"], values["loss"], rtol=1e-6)
    with pytest.raises(ValueError, match="points_per_chunk must be a positive integer or 'auto', got None"):
        landscape.surface(apply_fn, params, dx, dy, data, XS, YS, points_per_chunk=None)


def test_surface_resumes_after_interruption(plane, tmp_path, monkeypatch):
    params, dx, dy, data, expected = plane
    path = tmp_path / "surface.npz"
    kwargs = dict(path=path, points_per_block=4, points_per_chunk=2)
    real, calls = surfaces._evaluate_points, []

    def interrupted_after_one_block(*args, **kw):
        if calls:
            raise KeyboardInterrupt
        calls.append(1)
        return real(*args, **kw)

    monkeypatch.setattr(surfaces, "_evaluate_points", interrupted_after_one_block)
    with pytest.raises(KeyboardInterrupt):
        landscape.surface(apply_fn, params, dx, dy, data, XS, YS, **kwargs)
    with np.load(path, allow_pickle=False) as saved:
        assert saved["done"].shape == (4, 3)
        np.testing.assert_array_equal(saved["done"].ravel(), np.arange(12) < 4)
    resumed_calls = []
    monkeypatch.setattr(surfaces, "_evaluate_points", lambda *a, **k: resumed_calls.append(1) or real(*a, **k))
    resumed = landscape.surface(apply_fn, params, dx, dy, data, XS, YS, **kwargs)
    assert len(resumed_calls) == 2  # only the two missing blocks of 4 points
    np.testing.assert_allclose(resumed["loss"], expected, rtol=1e-5)
    again = landscape.surface(apply_fn, params, dx, dy, data, XS, YS, **kwargs)
    assert len(resumed_calls) == 2  # a complete file is only read
    np.testing.assert_array_equal(again["loss"], resumed["loss"])
    with pytest.raises(ValueError, match="path"):
        landscape.surface(apply_fn, params, dx, dy, data, XS + 0.1, YS, **kwargs)


_SHARDED_SURFACE_SCRIPT = textwrap.dedent("""
    import json
    import jax, jax.numpy as jnp, numpy as np
    from jaxdl.analysis import landscape
    rng = np.random.default_rng(0)
    params = {"w": jnp.asarray(rng.normal(size=(3, 4)), jnp.float32), "b": jnp.zeros(4)}
    apply_fn = lambda p, x: x @ p["w"] + p["b"]
    data = (rng.normal(size=(20, 3)).astype(np.float32), rng.integers(0, 4, 20).astype(np.int32))
    dx = landscape.random_direction(jax.random.key(0), params)
    dy = landscape.random_direction(jax.random.key(1), params)
    xs, ys = np.linspace(-1, 1, 5), np.linspace(-1, 1, 3)
    values = landscape.surface(apply_fn, params, dx, dy, data, xs, ys, points_per_chunk=3, chunk_size=6)
    loop = [[float(landscape.evaluate_params(apply_fn, jax.tree.map(lambda w, u, v: w + a * u + b * v,
             params, dx, dy), data)["loss"]) for a in xs] for b in ys]
    print("RESULT " + json.dumps({"devices": jax.device_count(), "surface": values["loss"].tolist(), "loop": loop}))
""")


def test_surface_sharded_over_four_devices_matches_loop():
    result = json_result(run_on_devices(_SHARDED_SURFACE_SCRIPT, num_devices=4))
    assert result["devices"] == 4
    np.testing.assert_allclose(result["surface"], result["loop"], rtol=1e-5)


# ----------------------------------------------------------------------------- BatchNorm statistics


class TwoNormNet(nn.Module):
    """Dense -> BatchNorm(momentum 0.9) -> relu -> Dense -> BatchNorm(momentum 0.99) -> relu -> Dense."""

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = nn.relu(nn.BatchNorm(use_running_average=not train, momentum=0.9, name="norm_0")(nn.Dense(4, name="dense_0")(x)))
        x = nn.relu(nn.BatchNorm(use_running_average=not train, momentum=0.99, name="norm_1")(nn.Dense(3, name="dense_1")(x)))
        return nn.Dense(2, name="output")(x)


def _batch_norm_problem(num_examples):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(num_examples, 5)).astype(np.float32) + 0.5
    variables = TwoNormNet().init(jax.random.key(0), x[:2])
    # Random BatchNorm scales and offsets, so the second layer's input depends on them.
    params = jax.tree.map(lambda a: a + jnp.asarray(0.3 * rng.normal(size=a.shape), a.dtype), variables["params"])
    return params, {"batch_stats": variables["batch_stats"]}, x


def _numpy_batch_stats(params, x, batch_size, eps=1e-5):
    """Size-weighted means over batches of each BatchNorm's batch mean and biased variance."""
    p = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
    sums, total = None, 0
    for start in range(0, len(x), batch_size):
        h = np.asarray(x[start:start + batch_size], np.float64)
        stats = []
        for layer in ("0", "1"):
            z = h @ p[f"dense_{layer}"]["kernel"] + p[f"dense_{layer}"]["bias"]
            mean, var = z.mean(0), z.var(0)
            stats += [mean, var]
            norm = p[f"norm_{layer}"]
            h = np.maximum(norm["scale"] * (z - mean) / np.sqrt(var + eps) + norm["bias"], 0)
        weighted = [len(h) * s for s in stats]
        sums = weighted if sums is None else [a + b for a, b in zip(sums, weighted)]
        total += len(h)
    return [s / total for s in sums]


@pytest.mark.parametrize("num_examples, batch_size", [(48, 16), (40, 16), (40, 40), (40, 64)])
def test_recompute_batch_stats_matches_hand_computation(num_examples, batch_size):
    params, state, x = _batch_norm_problem(num_examples)
    recomputed = jax.jit(landscape.recompute_batch_stats, static_argnums=0, static_argnames="batch_size")(
        TwoNormNet(), params, state, x, batch_size=batch_size)["batch_stats"]
    got = [recomputed[f"norm_{layer}"][stat] for layer in ("0", "1") for stat in ("mean", "var")]
    for value, expected in zip(got, _numpy_batch_stats(params, x, batch_size), strict=True):
        np.testing.assert_allclose(np.asarray(value), expected, rtol=2e-5, atol=1e-6)
    if batch_size >= num_examples:  # one batch: that batch's own statistics
        z = np.asarray(x, np.float64) @ np.asarray(params["dense_0"]["kernel"]) + np.asarray(params["dense_0"]["bias"])
        np.testing.assert_allclose(np.asarray(recomputed["norm_0"]["var"]), z.var(0), rtol=2e-5)


def test_filter_normalized_sharpness_is_the_largest_rise_along_its_directions():
    model = get_model("mlp", widths=(6,), num_outputs=3)
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(30, 4)).astype(np.float32), (np.arange(30) % 3).astype(np.int32)
    params = model.init(jax.random.key(0), x[:1])["params"]
    apply_fn = train.make_apply_fn(model)
    key = jax.random.key(7)
    result = landscape.filter_normalized_sharpness(apply_fn, params, (x, y), key, radius=0.5, num_directions=2,
                                                   num_points=5)
    np.testing.assert_allclose(result["alphas"], [-0.5, -0.25, 0.0, 0.25, 0.5])
    for r in range(2):
        direction = landscape.random_direction(jax.random.fold_in(key, r), params)
        by_hand = []
        for a in result["alphas"]:
            logits = np.asarray(apply_fn(jax.tree.map(lambda p, d: p + a * d, params, direction), x), np.float64)
            shifted = logits - logits.max(-1, keepdims=True)
            by_hand.append(-np.mean(shifted[np.arange(30), y] - np.log(np.exp(shifted).sum(-1))))
        np.testing.assert_allclose(result["losses"][r], by_hand, rtol=1e-5)
        assert result["rises"][r] == pytest.approx(max(by_hand) - by_hand[2], rel=1e-4, abs=1e-7)
    assert result["value"] == pytest.approx(np.mean(result["rises"]))
    with pytest.raises(ValueError, match="num_points must be an odd integer"):
        landscape.filter_normalized_sharpness(apply_fn, params, (x, y), key, num_points=4)
    with pytest.raises(ValueError, match="radius must be a positive number"):
        landscape.filter_normalized_sharpness(apply_fn, params, (x, y), key, radius=0.0)
