"""Pytree linear algebra: the one home of parameter-space arithmetic.

Every analysis tool treats ``params`` as a vector in R^P. These helpers make the
usual vector operations work on any pytree of arrays (Flax params, Optax states,
directions), leaf by leaf, without flattening unless asked.
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from jaxdl.core import checks

__all__ = ["add", "subtract", "scale", "axpy", "dot", "norm", "lerp", "zeros_like", "ones_like", "random_like", "count",
           "flatten", "unflatten"]

PyTree = Any


def add(a: PyTree, b: PyTree) -> PyTree:
    """a + b, leaf by leaf."""
    return jax.tree.map(jnp.add, a, b)


def subtract(a: PyTree, b: PyTree) -> PyTree:
    """a - b, leaf by leaf."""
    return jax.tree.map(jnp.subtract, a, b)


def scale(alpha, a: PyTree) -> PyTree:
    """alpha * a for a scalar alpha."""
    return jax.tree.map(lambda leaf: alpha * leaf, a)


def axpy(alpha, x: PyTree, y: PyTree) -> PyTree:
    """alpha * x + y (BLAS naming), the workhorse of directions and steps."""
    return jax.tree.map(lambda xi, yi: alpha * xi + yi, x, y)


def dot(a: PyTree, b: PyTree) -> jax.Array:
    """Euclidean inner product <a, b> summed over every leaf (a scalar)."""
    products = jax.tree.leaves(jax.tree.map(jnp.vdot, a, b))
    return jnp.sum(jnp.stack(products)) if products else jnp.zeros(())


def norm(a: PyTree) -> jax.Array:
    """Global Euclidean norm ||a||_2 over every leaf."""
    return jnp.sqrt(dot(a, a))


def lerp(a: PyTree, b: PyTree, t) -> PyTree:
    """(1 - t) a + t b; t = 0 gives a and t = 1 gives b exactly."""
    return jax.tree.map(lambda x, y: (1 - t) * x + t * y, a, b)


def zeros_like(a: PyTree) -> PyTree:
    """A pytree of zeros with a's structure, shapes and dtypes."""
    return jax.tree.map(jnp.zeros_like, a)


def ones_like(a: PyTree) -> PyTree:
    """A pytree of ones with a's structure, shapes and dtypes."""
    return jax.tree.map(jnp.ones_like, a)


def random_like(key: jax.Array, a: PyTree, distribution: str = "normal") -> PyTree:
    """Random pytree shaped like ``a``: i.i.d. 'normal' or 'rademacher' (+-1) leaves.

    Each leaf gets its own key (split in leaf order), so the result depends only
    on ``key`` and the tree structure.
    """
    leaves, treedef = jax.tree.flatten(a)
    keys = jax.random.split(key, max(len(leaves), 1))
    if distribution == "normal":
        sample = lambda k, x: jax.random.normal(k, x.shape, x.dtype)
    elif distribution == "rademacher":
        sample = lambda k, x: jax.random.rademacher(k, x.shape, x.dtype)
    else:
        checks.one_of("distribution", distribution, ("normal", "rademacher"))
    return jax.tree.unflatten(treedef, [sample(k, x) for k, x in zip(keys, leaves)])


def count(a: PyTree) -> int:
    """Number of scalar entries in the pytree (the parameter count P)."""
    return int(sum(np.prod(np.shape(x), dtype=np.int64) for x in jax.tree.leaves(a)))


def flatten(a: PyTree):
    """Concatenate every leaf into one vector.

    Returns ``(vector_P, unflatten)`` where ``unflatten(vector_P)`` rebuilds the pytree.
    """
    return ravel_pytree(a)


def unflatten(unflatten_fn, vector: jax.Array) -> PyTree:
    """Inverse of :func:`flatten`: ``unflatten(fn, flatten(a)[0]) == a``."""
    return unflatten_fn(vector)
