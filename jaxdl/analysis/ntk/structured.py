"""Structured derivatives for the empirical NTK of Flax Linen models (Novak, Sohl-Dickstein &
Schoenholz 2022, "Fast finite width neural tangent kernel", section 3.3).

For a Dense layer y = a W (+ b) applied at positions s (one for an MLP, every output pixel of a
convolution, whose input is then the layer's patches), the Jacobian of output o with respect to
W is sum_s a_s (x) delta_{o,s}, with delta the cotangent of the layer's output. So the layer's
share of the kernel needs only the layer's inputs and output cotangents, never a Jacobian:

    Theta_W[n1, n2, o1, o2] = sum_{s, t} <a1[n1, s], a2[n2, t]> <delta1[o1, n1, s], delta2[o2, n2, t]>,

and the bias adds sum_{s, t} <delta1, delta2>. The inputs are recorded and the cotangents
obtained by a zero perturbation added to each layer's output, through ``flax.linen``'s method
interceptor on every ``flax.linen.Dense`` and ``flax.linen.Conv`` call (and every module with a
true ``same_function_as_conv`` attribute, such as :class:`jaxdl.models.layers.PatchConv`); the parameters of
other layers (normalisation scales, embeddings, convolutions with feature groups or circular
padding) are contracted from their Jacobians. A layer called several times shares its
parameters, so its calls are concatenated along the positions.
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxdl.train import ApplyFn

__all__ = ["coverage", "structured_ntk_full"]

PyTree = Any
_HIGHEST = jax.lax.Precision.HIGHEST


def _supported(module) -> bool:
    if isinstance(module, nn.Dense):
        return True
    if isinstance(module, nn.Conv) and module.feature_group_count == 1:
        padding = module.padding
        return padding in ("SAME", "VALID") or not isinstance(padding, str)
    # A module that declares itself nn.Conv's equal (``same_function_as_conv``, e.g. the zoo's
    # PatchConv: its kernel_size, strides, padding and parameters mean what nn.Conv's do); the
    # inner product of two patches does not depend on the order of their entries.
    return getattr(module, "same_function_as_conv", False) and module.padding in ("SAME", "VALID")


def _run(apply_fn: ApplyFn, params, x, perturbations=None):
    """``(outputs, calls)``: the model's outputs and, for each supported layer call, its module
    path, the module, its input and its output shape; ``perturbations[i]`` is added to the i-th
    such call's output when given."""
    calls = []

    def interceptor(next_fun, args, kwargs, context):
        module = context.module
        if context.method_name != "__call__" or not _supported(module):
            return next_fun(*args, **kwargs)
        y = next_fun(*args, **kwargs)
        if perturbations is not None:
            y = y + perturbations[len(calls)]
        calls.append((tuple(module.scope.path), module, args[0], y.shape))
        return y

    with nn.intercept_methods(interceptor):
        outputs = apply_fn(params, x)
    return outputs, calls


def _flatten(params):
    leaves = jax.tree_util.tree_flatten_with_path(params)[0]
    return [(tuple(str(getattr(k, "key", k)) for k in path), leaf) for path, leaf in leaves]


def _call_shapes(apply_fn, params, x) -> list[tuple]:
    """``[(path, output shape)]`` of the supported layer calls, found without computing."""
    found = []

    def probe(p, inputs):
        found.extend((path, shape) for path, _, _, shape in _run(apply_fn, p, inputs)[1])
        return 0

    jax.eval_shape(probe, params, x)
    return found


def _is_covered(path, covered) -> bool:
    return path[:-1] in covered and path[-1] in ("kernel", "bias")


def _signature(tree) -> tuple:
    leaves, treedef = jax.tree.flatten(tree)
    return treedef, tuple((np.shape(leaf), jnp.result_type(leaf).name) for leaf in leaves)


_COVERAGE: dict = {}  # (model, shapes) -> fraction: tracing the model costs more than a small kernel


def coverage(apply_fn, params, x) -> float:
    """The fraction of the parameters (by count) that structured derivatives cover: 0 unless
    ``apply_fn`` is a :class:`jaxdl.train.ApplyFn` (a Flax Linen model). Remembered per model
    and shapes."""
    if not isinstance(apply_fn, ApplyFn):
        return 0.0
    key = (apply_fn.model, _signature(apply_fn.model_state), _signature(params), _signature(x))
    if key not in _COVERAGE:
        if len(_COVERAGE) >= 256:
            _COVERAGE.clear()
        _COVERAGE[key] = _coverage(apply_fn, params, x)
    return _COVERAGE[key]


def _coverage(apply_fn, params, x) -> float:
    covered = {path for path, _ in _call_shapes(apply_fn, params, x)}
    sizes = [(path, np.size(leaf)) for path, leaf in _flatten(params)]
    return sum(size for path, size in sizes if _is_covered(path, covered)) / max(sum(s for _, s in sizes), 1)


def _tuple(value, num_spatial):
    value = 1 if value is None else value
    return (value,) * num_spatial if isinstance(value, int) else tuple(value)


def _explicit_padding(padding, num_spatial):
    """Flax's padding forms as ``conv_general_dilated_patches`` takes them."""
    if isinstance(padding, str):
        return padding
    if isinstance(padding, int):
        return [(padding, padding)] * num_spatial
    return [(p, p) if isinstance(p, int) else tuple(p) for p in padding]


def _positions(module, a):
    """The layer's input as ``(N, S, D)``: Dense inputs with their positions flattened, Conv
    inputs as patches at each output position."""
    if isinstance(module, nn.Dense):
        return a.reshape(a.shape[0], -1, a.shape[-1])
    num_spatial = a.ndim - 2
    spatial = "HWDXYZ"[:num_spatial]
    patches = jax.lax.conv_general_dilated_patches(
        a, _tuple(module.kernel_size, num_spatial), _tuple(module.strides, num_spatial),
        _explicit_padding(module.padding, num_spatial),
        lhs_dilation=_tuple(getattr(module, "input_dilation", None), num_spatial),
        rhs_dilation=_tuple(getattr(module, "kernel_dilation", None), num_spatial),
        dimension_numbers=(f"N{spatial}C", f"{spatial}IO", f"N{spatial}C"), precision=_HIGHEST)
    return patches.reshape(patches.shape[0], -1, patches.shape[-1])


def _layer_records(apply_fn, params, x, num_outputs):
    """``{module path: (inputs (N, S, D), cotangents (O, N, S, F), has bias)}`` for every
    supported layer: one forward pass and O vmapped backward passes."""
    dtype = jax.eval_shape(apply_fn, params, x[:1]).dtype
    zeros = [jnp.zeros(shape, dtype) for _, shape in _call_shapes(apply_fn, params, x)]
    modules = []

    def perturbed(perturbations):
        outputs, calls = _run(apply_fn, params, x, perturbations)
        modules[:] = [(path, module) for path, module, _, _ in calls]
        return outputs, [a for _, _, a, _ in calls]

    outputs, vjp_fn, inputs = jax.vjp(perturbed, zeros, has_aux=True)
    basis = jnp.eye(num_outputs, dtype=outputs.dtype).reshape((num_outputs, 1) + outputs.shape[1:])
    cotangents = jax.vmap(lambda e: vjp_fn(jnp.broadcast_to(e, outputs.shape))[0])(basis)
    grouped = {}
    for (path, module), a, delta in zip(modules, inputs, cotangents):
        a = _positions(module, a)
        delta = delta.reshape(num_outputs, delta.shape[1], -1, delta.shape[-1])
        if path in grouped:  # a layer called again shares its parameters: more positions
            a_before, delta_before, _ = grouped[path]
            a, delta = jnp.concatenate([a_before, a], axis=1), jnp.concatenate([delta_before, delta], axis=2)
        grouped[path] = (a, delta, bool(module.use_bias))
    return grouped


def structured_ntk_full(apply_fn: ApplyFn, params, x1, x2):
    """``Theta_full`` of shape ``(N1, N2, O, O)`` (outputs flattened) by structured derivatives
    for the supported layers plus the Jacobian contraction for the other parameters; x2 given as
    the same object as x1 is run through the network once."""
    out_shape = jax.eval_shape(apply_fn, params, x1[:1]).shape[1:]
    num_outputs = int(np.prod(out_shape))
    records1 = _layer_records(apply_fn, params, x1, num_outputs)
    records2 = records1 if x2 is x1 else _layer_records(apply_fn, params, x2, num_outputs)
    theta = 0.0
    for path, (a1, d1, bias) in records1.items():
        a2, d2, _ = records2[path]
        # The cheapest order by FLOPs: pairs of positions first (Novak et al.'s structured
        # product; an MLP's single position) or each example's kernel gradient first (the
        # per-layer Jacobian; a convolution with many positions and few weights).
        theta = theta + jnp.einsum("nsi,mti,ansf,bmtf->nmab", a1, a2, d1, d2, optimize="optimal",
                                   precision=_HIGHEST)
        if bias:
            theta = theta + jnp.einsum("anf,bmf->nmab", d1.sum(2), d2.sum(2), precision=_HIGHEST)
    rest = {path for path, _ in _flatten(params) if not _is_covered(path, set(records1))}
    if rest:
        theta = theta + _rest_full(apply_fn, params, x1, x2, rest, num_outputs)
    return theta


def _rest_full(apply_fn, params, x1, x2, rest_paths, num_outputs):
    """The Jacobian contraction over the parameters at ``rest_paths`` only (the others held)."""
    paths, leaves = zip(*_flatten(params))
    treedef = jax.tree.structure(params)
    keep = [path in rest_paths for path in paths]

    def jacobian(x):
        def f(rest):
            rest = iter(rest)
            merged = jax.tree.unflatten(treedef, [next(rest) if k else leaf for leaf, k in zip(leaves, keep)])
            return apply_fn(merged, x).reshape(x.shape[0] * num_outputs)

        j = jax.jacrev(f)([leaf for leaf, k in zip(leaves, keep) if k])
        return [leaf.reshape(x.shape[0] * num_outputs, -1) for leaf in j]

    j1, j2 = jacobian(x1), jacobian(x2)
    flat = sum(jnp.matmul(a, b.T, precision=_HIGHEST) for a, b in zip(j1, j2))
    return flat.reshape(x1.shape[0], num_outputs, x2.shape[0], num_outputs).transpose(0, 2, 1, 3)
