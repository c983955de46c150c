"""Tests for jaxdl.course.warm_start.shrink_perturb (Ash & Adams 2020) against hand computations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import flat

from jaxdl.course.warm_start import shrink_perturb


def _params(seed=0, sizes=((250, 200), (200,))):
    # Few distinct leaf shapes: each shape's normal draw compiles on its own, slowly on a CPU.
    rng = np.random.default_rng(seed)
    return {f"layer{i}": jnp.asarray(rng.standard_normal(size), jnp.float32) for i, size in enumerate(sizes)}


def test_without_noise_it_is_exactly_the_shrink():
    params = _params()
    shrunk = shrink_perturb(params, jax.random.key(0), 0.4, 0.0)
    for name, leaf in params.items():
        expected = np.float32(0.4) * np.asarray(leaf)
        np.testing.assert_array_equal(np.asarray(shrunk[name]), expected)
        assert shrunk[name].dtype == jnp.float32 and shrunk[name].shape == leaf.shape
    same = shrink_perturb(params, jax.random.key(0), 1.0, 0.0)  # shrink 1, no noise: a warm start
    np.testing.assert_array_equal(flat(same), flat(params))


def test_gaussian_noise_has_the_right_mean_and_variance():
    params = _params()
    shrink, noise_scale = 0.5, 0.1
    out = shrink_perturb(params, jax.random.key(1), shrink, noise_scale)
    noise = (flat(out) - shrink * flat(params)) / noise_scale  # should be i.i.d. N(0, 1)
    n = noise.size  # 50,200 entries: mean within 5 standard errors of 0, variance within 5 of 1
    assert abs(noise.mean()) < 5 / np.sqrt(n)
    assert abs(noise.var() - 1.0) < 5 * np.sqrt(2.0 / n)
    # Leaves draw from their own keys: no two leaves share a noise sequence.
    first = (np.asarray(out["layer0"]) - shrink * np.asarray(params["layer0"])).ravel()[:200]
    second = (np.asarray(out["layer1"]) - shrink * np.asarray(params["layer1"])).ravel()
    assert abs(np.corrcoef(first, second)[0, 1]) < 0.3


def test_noise_from_init_fn_is_scaled_and_added_as_by_hand():
    params = _params(sizes=((5, 3), (3,)))
    init_fn = lambda key: {name: jax.random.uniform(k, leaf.shape) for (name, leaf), k in
                           zip(params.items(), jax.random.split(key, len(params)))}
    key = jax.random.key(7)
    fresh = init_fn(key)
    out = shrink_perturb(params, key, 0.3, 0.01, init_fn=init_fn)
    for name in params:
        np.testing.assert_allclose(np.asarray(out[name]),
                                   0.3 * np.asarray(params[name], np.float64) + 0.01 * np.asarray(fresh[name]),
                                   rtol=1e-6, atol=1e-7)
    # shrink 0 and noise scale 1: exactly a fresh start.
    np.testing.assert_array_equal(flat(shrink_perturb(params, key, 0.0, 1.0, init_fn=init_fn)), flat(fresh))


def test_deterministic_in_the_key_and_the_same_under_jit():
    params = _params()  # the shapes of the test above: their eager draws are compiled already
    a = shrink_perturb(params, jax.random.key(3), 0.4, 0.1)
    b = shrink_perturb(params, jax.random.key(3), 0.4, 0.1)
    c = shrink_perturb(params, jax.random.key(4), 0.4, 0.1)
    np.testing.assert_array_equal(flat(a), flat(b))
    assert not np.allclose(flat(a), flat(c))
    jitted = jax.jit(lambda p, k: shrink_perturb(p, k, 0.4, 0.1))(params, jax.random.key(3))
    np.testing.assert_allclose(flat(jitted), flat(a), rtol=1e-6, atol=1e-6)  # fused multiply-adds under jit


@pytest.mark.parametrize("kwargs, match", [
    (dict(shrink=1.5, noise_scale=0.1), "shrink must be a number >= 0 and <= 1"),
    (dict(shrink=-0.1, noise_scale=0.1), "shrink must be"),
    (dict(shrink=float("nan"), noise_scale=0.1), "shrink must be"),
    (dict(shrink=0.4, noise_scale=-1.0), "noise_scale must be a number >= 0"),
    (dict(shrink=0.4, noise_scale=0.1, init_fn=lambda key: {"w": jnp.zeros((2,))}), "init_fn"),
])
def test_bad_arguments_raise_naming_them(kwargs, match):
    with pytest.raises(ValueError, match=match):
        shrink_perturb({"w": jnp.ones((3,))}, jax.random.key(0), **kwargs)
