"""Tests of jaxdl.core.tree: every operation against NumPy on the flattened parameter vector."""
from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdl.core import tree
from helpers import flat

SHAPES = {"dense": {"kernel": (3, 4), "bias": (4,)}, "scale": (), "conv": [(2, 2, 1, 3)]}


def _random_tree(seed):
    """A nested dict/list pytree of float32 leaves with several shapes (including a scalar)."""
    rng = np.random.default_rng(seed)
    return jax.tree.map(
        lambda shape: jnp.asarray(rng.normal(size=shape), jnp.float32),
        SHAPES,
        is_leaf=lambda x: isinstance(x, tuple),
    )


@pytest.fixture(scope="module")
def trees():
    return _random_tree(0), _random_tree(1)


@jax.jit
def _all_ops(a, b, alpha, t):
    """Every binary/unary operation in one compiled program (one compile for the module)."""
    return {
        "add": tree.add(a, b),
        "subtract": tree.subtract(a, b),
        "scale": tree.scale(alpha, a),
        "axpy": tree.axpy(alpha, a, b),
        "dot": tree.dot(a, b),
        "norm": tree.norm(a),
        "lerp": tree.lerp(a, b, t),
    }


def test_linear_algebra_matches_numpy_on_flat_vectors(trees):
    a, b = trees
    alpha, t = 0.7, 0.3
    out = _all_ops(a, b, alpha, t)
    va, vb = flat(a), flat(b)
    np.testing.assert_allclose(flat(out["add"]), va + vb, rtol=1e-6)
    np.testing.assert_allclose(flat(out["subtract"]), va - vb, rtol=1e-6)
    np.testing.assert_allclose(flat(out["scale"]), alpha * va, rtol=1e-6)
    np.testing.assert_allclose(flat(out["axpy"]), alpha * va + vb, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(flat(out["lerp"]), (1 - t) * va + t * vb, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(float(out["dot"]), va @ vb, rtol=1e-5)
    np.testing.assert_allclose(float(out["norm"]), np.linalg.norm(va), rtol=1e-6)
    # Structure is preserved by the leaf-wise operations.
    for key in ("add", "subtract", "scale", "axpy", "lerp"):
        chex.assert_trees_all_equal_shapes_and_dtypes(out[key], a)


def test_dot_of_empty_tree_is_zero():
    assert float(tree.dot({}, {})) == 0.0
    assert float(tree.norm([])) == 0.0


def test_lerp_hits_endpoints_exactly_under_jit(trees):
    a, b = trees
    lerp = jax.jit(tree.lerp)
    chex.assert_trees_all_equal(lerp(a, b, 0.0), a)
    chex.assert_trees_all_equal(lerp(a, b, 1.0), b)


def test_zeros_and_ones_like_keep_structure_shapes_and_dtypes():
    a = {"f": jnp.full((2, 3), 5.0, jnp.float32), "i": jnp.arange(4, dtype=jnp.int32), "s": jnp.float32(2)}
    zeros, ones = tree.zeros_like(a), tree.ones_like(a)
    chex.assert_trees_all_equal_shapes_and_dtypes(zeros, a)
    chex.assert_trees_all_equal_shapes_and_dtypes(ones, a)
    chex.assert_trees_all_equal(zeros, jax.tree.map(lambda x: np.zeros(np.shape(x)), a))
    chex.assert_trees_all_equal(ones, jax.tree.map(lambda x: np.ones(np.shape(x)), a))


# One compile per (tree structure, distribution): eager random calls compile per leaf shape.
_random_like = jax.jit(tree.random_like, static_argnums=2)
# Two same-shaped leaves of 20000 entries each, for moments and stream independence.
BIG = {"x": jnp.zeros((100, 200)), "y": jnp.zeros((100, 200))}


@pytest.mark.parametrize("distribution", ["normal", "rademacher"])
def test_random_like_is_reproducible_and_key_dependent(trees, distribution):
    # Shapes and dtypes of the nested tree via eval_shape (no compile); values on BIG.
    shapes = jax.eval_shape(lambda k, a: tree.random_like(k, a, distribution), jax.random.key(0), trees[0])
    chex.assert_trees_all_equal_shapes_and_dtypes(shapes, trees[0])
    r1 = _random_like(jax.random.key(0), BIG, distribution)
    r2 = _random_like(jax.random.key(0), BIG, distribution)
    r3 = _random_like(jax.random.key(1), BIG, distribution)
    chex.assert_trees_all_equal(r1, r2)
    assert not np.allclose(flat(r1), flat(r3))


def test_random_like_normal_moments_and_independent_leaves():
    r = _random_like(jax.random.key(3), BIG, "normal")
    v = flat(r)
    # 40000 samples: standard error of the mean 0.005, of the variance about 0.007.
    assert abs(v.mean()) < 0.03
    assert abs(v.var() - 1.0) < 0.04
    # Each leaf has its own stream: the two leaves are (nearly) uncorrelated, not equal.
    correlation = np.corrcoef(np.ravel(r["x"]), np.ravel(r["y"]))[0, 1]
    assert abs(correlation) < 0.03


def test_random_like_rademacher_is_plus_minus_one_and_balanced():
    r = _random_like(jax.random.key(3), BIG, "rademacher")
    chex.assert_trees_all_equal_shapes_and_dtypes(r, BIG)
    v = flat(r)
    assert set(np.unique(v)) == {-1.0, 1.0}
    assert abs(v.mean()) < 0.03
    assert not np.array_equal(r["x"], r["y"])


def test_random_like_rejects_unknown_distribution(trees):
    with pytest.raises(ValueError, match="uniform"):
        tree.random_like(jax.random.key(0), trees[0], "uniform")


def test_count_is_the_number_of_scalars(trees):
    expected = 3 * 4 + 4 + 1 + 2 * 2 * 1 * 3
    assert tree.count(trees[0]) == expected
    assert isinstance(tree.count(trees[0]), int)
    assert tree.count({}) == 0


def test_flatten_unflatten_round_trip(trees):
    a, _ = trees
    vector, unflatten_fn = tree.flatten(a)
    chex.assert_shape(vector, (tree.count(a),))
    np.testing.assert_array_equal(np.asarray(vector, np.float64), flat(a))
    chex.assert_trees_all_equal(tree.unflatten(unflatten_fn, vector), a)
    # A different vector lands in the same places.
    new = jnp.arange(vector.size, dtype=vector.dtype)
    np.testing.assert_array_equal(flat(tree.unflatten(unflatten_fn, new)), np.arange(vector.size))
