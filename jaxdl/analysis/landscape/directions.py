"""Directions in parameter space with a meaning: filter-normalised, layer- or model-scaled,
orthogonalised.

Li, Xu, Taylor, Studer & Goldstein 2018, "Visualizing the loss landscape of neural nets",
section 4: a random Gaussian direction d is rescaled filter by filter,

    d_j <- d_j / ||d_j|| * ||theta_j||,

so that plots of f(theta + a d) do not depend on the arbitrary scale of each filter (a ReLU
network, or a layer followed by BatchNorm, computes the same function when a filter is scaled
and the scale is undone downstream). A *filter* of a leaf with ndim >= 2 is a slice along its
LAST axis: a column of a Dense kernel ``(in, out)``, an output channel of a Conv kernel
``(h, w, in, out)`` (Flax layouts). Leaves with ndim <= 1 (biases, BatchNorm scale and offset,
scalar SkipInit gains) are zeroed (``ignore_biasbn=True``) or set equal to the parameters, as
in the authors' code.

Only ``params`` are perturbed: model state such as BatchNorm running statistics is not part of
``params``, so no direction here ever touches it (see :class:`jaxdl.analysis.landscape.BatchStats` to
recompute it at each point instead).
"""
from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp

from jaxdl.core import checks, tree

__all__ = ["NORMALIZATIONS", "filter_norms", "normalize_direction", "random_direction", "orthogonalize"]

PyTree = Any
NORMALIZATIONS = ("filter", "layer", "model", None)


def _safe_ratio(numerator, denominator):
    """numerator / denominator, and 0 where the denominator is 0 (a zero filter stays zero)."""
    positive = denominator > 0
    return jnp.where(positive, numerator / jnp.where(positive, denominator, 1), 0)


def _filter_norm(leaf, keepdims=False):
    """Frobenius norm of each slice along the last axis: shape ``(out,)``."""
    return jnp.sqrt(jnp.sum(jnp.square(leaf), axis=tuple(range(leaf.ndim - 1)), keepdims=keepdims))


def filter_norms(params: PyTree) -> PyTree:
    """Per-filter norms: for a leaf with ndim >= 2 the vector ``(out,)`` of ``||theta[..., j]||``
    (the slice along the last axis), for a leaf with ndim <= 1 its whole norm (a scalar)."""
    return jax.tree.map(lambda w: _filter_norm(w) if w.ndim >= 2 else jnp.linalg.norm(jnp.ravel(w)), params)


@functools.partial(jax.jit, static_argnames=("normalization", "ignore_biasbn"))
def _normalize(direction, params, *, normalization, ignore_biasbn):
    if normalization is None:
        return direction

    def weight_leaf(d, w):
        if d.ndim < 2:
            return d
        if normalization == "filter":
            return d * _safe_ratio(_filter_norm(w, keepdims=True), _filter_norm(d, keepdims=True))
        if normalization == "layer":
            return d * _safe_ratio(jnp.linalg.norm(jnp.ravel(w)), jnp.linalg.norm(jnp.ravel(d)))
        return d

    direction = jax.tree.map(weight_leaf, direction, params)
    if normalization == "model":
        # The weight leaves together get the weights' norm; the 1-D leaves are handled below,
        # so with ignore_biasbn=False the whole direction has norm ||params||.
        weights = lambda t: [leaf for leaf in jax.tree.leaves(t) if leaf.ndim >= 2]
        squared = lambda t: sum((jnp.sum(jnp.square(leaf)) for leaf in weights(t)), jnp.zeros(()))
        factor = _safe_ratio(jnp.sqrt(squared(params)), jnp.sqrt(squared(direction)))
        direction = jax.tree.map(lambda d: d * factor.astype(d.dtype) if d.ndim >= 2 else d, direction)
    return jax.tree.map(
        lambda d, w: d if d.ndim >= 2 else (jnp.zeros_like(d) if ignore_biasbn else jnp.asarray(w, d.dtype)),
        direction, params)


def normalize_direction(direction: PyTree, params: PyTree, normalization: str | None = "filter",
                        ignore_biasbn: bool = True) -> PyTree:
    """Rescale ``direction`` to the scale of ``params`` (Li et al. 2018, section 4).

    Leaves with ndim >= 2 are rescaled according to ``normalization``:

    - ``'filter'``: each filter (slice along the last axis) to the norm of the same filter of
      ``params``, ``d_j <- d_j / ||d_j|| * ||theta_j||``; a zero filter of ``params`` or of
      ``direction`` gives a zero filter, never NaN;
    - ``'layer'``: each leaf to the norm of the same leaf of ``params``;
    - ``'model'``: the weight leaves (ndim >= 2) together to the norm of the weight leaves of
      ``params`` (with ``ignore_biasbn=False`` the whole direction then has norm ``||params||``);
    - ``None``: ``direction`` is returned unchanged (1-D leaves included).

    For the three normalised modes, leaves with ndim <= 1 (biases, BatchNorm scale/offset,
    scalars) become zeros if ``ignore_biasbn`` else a copy of the ``params`` leaf.

    Args:
      direction: pytree shaped like ``params`` (e.g. a Gaussian draw, or a user's direction).
      params: pytree theta.
      normalization: ``'filter'``, ``'layer'``, ``'model'`` or None.
      ignore_biasbn: zero the ndim <= 1 leaves (else copy them from ``params``).

    Returns:
      The normalised direction, a pytree shaped like ``params``.
    """
    checks.one_of("normalization", normalization, NORMALIZATIONS)
    checks.same_structure("direction", direction, params)
    return _normalize(direction, params, normalization=normalization, ignore_biasbn=bool(ignore_biasbn))


@jax.jit
def _gaussian_like(key, params):
    # One flat draw cut into the leaves, jitted apart from the normalisation: on CPU a draw per
    # leaf compiles slowly (seconds for a ResNet), and one compiled draw per parameter structure
    # serves every normalisation.
    flat, unflatten = tree.flatten(params)
    return unflatten(jax.random.normal(key, flat.shape, flat.dtype))


def random_direction(key: jax.Array, params: PyTree, *, normalization: str | None = "filter",
                     ignore_biasbn: bool = True) -> PyTree:
    """A random direction for loss-landscape plots (Li et al. 2018): i.i.d. N(0, 1) entries
    (one flat draw of ``jaxdl.core.tree.count(params)`` numbers, cut into the leaves in
    ``jax.tree.leaves`` order) normalised by :func:`normalize_direction`.

    The same ``key`` gives the same direction bit for bit. Only ``params`` are perturbed along
    it; model state (BatchNorm running statistics) is never part of a direction.

    Args:
      key: a JAX PRNG key.
      params: pytree theta; the direction has its structure, shapes and dtypes.
      normalization: ``'filter'`` (default), ``'layer'``, ``'model'`` or None (raw Gaussian).
      ignore_biasbn: zero the ndim <= 1 leaves (else copy them from ``params``).

    Returns:
      A pytree shaped like ``params``.
    """
    checks.one_of("normalization", normalization, NORMALIZATIONS)
    return _normalize(_gaussian_like(key, params), params, normalization=normalization,
                      ignore_biasbn=bool(ignore_biasbn))


@jax.jit
def orthogonalize(direction: PyTree, reference: PyTree) -> PyTree:
    """Gram-Schmidt: ``direction - <direction, r> / <r, r> * r`` for ``r = reference``, so the
    result is orthogonal to ``reference`` (``direction`` itself when ``reference`` is zero).
    Both are pytrees of the same structure; inner products are :func:`jaxdl.core.tree.dot`."""
    coefficient = _safe_ratio(tree.dot(direction, reference), tree.dot(reference, reference))
    return jax.tree.map(lambda d, r: d - coefficient.astype(d.dtype) * r, direction, reference)
