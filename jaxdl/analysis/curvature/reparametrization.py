"""Function-preserving rescalings of a ReLU network (Dinh, Pascanu, Bengio & Bengio 2017, "Sharp
minima can generalize for deep nets", section 4).

For two consecutive layers with a ReLU (or any positively homogeneous activation) between them,

    T_a(W1, b1, W2) = (a W1, a b1, W2 / a),   a > 0,

computes the same function, since relu(a z) = a relu(z). It is the linear map
``theta -> D theta`` with D = a on the first layer's parameters, 1/a on the second layer's
weights and 1 elsewhere (the second layer's bias and every other layer), so the Hessian of the
loss at the rescaled point is ``D^-1 H D^-1``:

    tr H(T_a theta) = a^-2 tr H_11 + a^2 tr H_22 + tr H_rest,

with H_11 the block of (W1, b1), H_22 the block of W2 and H_rest the remaining diagonal blocks.
Its top eigenvalue and trace can therefore be made as large as one likes without changing the
network's outputs. Layers are named by their path in the params pytree: ``'hidden_0'``, or
``'block/hidden_1'`` (keys joined by ``/``), or a tuple of keys (see :func:`layer_paths`).
"""
from __future__ import annotations

from typing import Any, Sequence

import jax
import numpy as np

from jaxdl.core import checks

__all__ = ["layer_paths", "alpha_scaling", "alpha_scale", "alpha_scaling_blocks", "alpha_scaled_trace"]

PyTree = Any


def _keys(path) -> tuple[str, ...]:
    """A layer path as a tuple of keys: ``'a/b'`` -> ``('a', 'b')``."""
    return tuple(path.split("/")) if isinstance(path, str) else tuple(str(k) for k in path)


def _leaf_keys(path) -> tuple[str, ...]:
    return tuple(str(getattr(entry, "key", getattr(entry, "idx", getattr(entry, "name", entry)))) for entry in path)


def layer_paths(params: PyTree) -> list[str]:
    """The ``/``-joined paths of every leaf's parent (the layers), in leaf order, without repeats."""
    parents = [_leaf_keys(path)[:-1] for path, _ in jax.tree_util.tree_flatten_with_path(params)[0]]
    return list(dict.fromkeys("/".join(p) for p in parents))


def _check_layer(name: str, path, params: PyTree) -> tuple[str, ...]:
    keys = _keys(path)
    leaves = [_leaf_keys(p) for p, _ in jax.tree_util.tree_flatten_with_path(params)[0]]
    if not keys or not any(leaf[:len(keys)] == keys for leaf in leaves):
        checks.fail(name, path, f"the path of a layer of params, one of {layer_paths(params)}")
    return keys


def alpha_scaling(params: PyTree, first_layer, second_layer, alpha: float) -> PyTree:
    """The diagonal of D in T_a(theta) = D theta, a pytree shaped like ``params``.

    ``alpha`` on every leaf under ``first_layer`` (its weights and bias), ``1 / alpha`` on the
    leaves of ``second_layer`` with ndim >= 2 (its weights), 1 on everything else.

    Raises ``ValueError`` naming ``first_layer``/``second_layer`` if a path names no layer of
    ``params`` (or both name the same one) and ``alpha`` unless it is positive.
    """
    alpha = checks.number("alpha", alpha)
    first = _check_layer("first_layer", first_layer, params)
    second = _check_layer("second_layer", second_layer, params)
    if first == second:
        checks.fail("second_layer", second_layer, "a layer other than first_layer")

    def factor(path, leaf):
        keys = _leaf_keys(path)
        if keys[:len(first)] == first:
            value = alpha
        elif keys[:len(second)] == second and np.ndim(leaf) >= 2:
            value = 1.0 / alpha
        else:
            value = 1.0
        return np.full(np.shape(leaf), value, getattr(leaf, "dtype", np.float32))

    return jax.tree_util.tree_map_with_path(factor, params)


def alpha_scale(params: PyTree, first_layer, second_layer, alpha: float) -> PyTree:
    """T_a(theta): the first layer's weights and bias times ``alpha``, the second layer's
    weights divided by ``alpha`` (Dinh et al. 2017). With a ReLU between the two layers the
    network computes the same function; see :func:`alpha_scaling` for the arguments."""
    factors = alpha_scaling(params, first_layer, second_layer, alpha)
    return jax.tree.map(lambda d, p: (d * p).astype(p.dtype), factors, params)


def alpha_scaling_blocks(params: PyTree, first_layer, second_layer) -> dict[str, PyTree]:
    """0/1 masks of the three diagonal blocks that T_a scales differently: ``'first'`` (the
    first layer's weights and bias, Hessian block scaled by a^-2), ``'second'`` (the second
    layer's weights, scaled by a^2) and ``'rest'`` (unchanged). Pass them as
    ``curvature.hessian_trace(..., where=mask)`` to estimate each block's trace."""
    factors = alpha_scaling(params, first_layer, second_layer, 2.0)
    select = lambda value: jax.tree.map(lambda d: (d == value).astype(d.dtype), factors)
    return {"first": select(2.0), "second": select(0.5), "rest": select(1.0)}


def alpha_scaled_trace(block_traces: dict, alpha) -> Any:
    """The trace of the Hessian at T_a(theta) predicted from the block traces at theta:
    ``alpha^-2 first + alpha^2 second + rest`` (works elementwise on arrays of alphas)."""
    alpha = np.asarray(alpha, np.float64)
    return block_traces["first"] / alpha ** 2 + block_traces["second"] * alpha ** 2 + block_traces["rest"]


__all__: Sequence[str] = ("alpha_scale", "alpha_scaled_trace", "alpha_scaling", "alpha_scaling_blocks", "layer_paths")
