"""Compile once: ``jax.jit`` for functions whose arguments hold callables.

Analysis tools take a user's ``loss_fn`` or ``apply_fn``, and the training loop takes a Flax
module and an Optax transformation. Marking such an argument static in ``jax.jit`` keys the
compiled program on the callable's *identity*, so the same model wrapped twice (two calls of
:func:`jaxdl.train.make_apply_fn`) compiles twice, and any arrays the callable closes over
(BatchNorm statistics) are baked into the program as constants.

:func:`jit` instead splits every argument into its pytree leaves: arrays (JAX or NumPy) and
Python floats are traced, everything else (functions, Flax modules, strings, ints, bools) is
static and compared by equality. A callable that is a pytree -- :class:`jaxdl.train.ApplyFn`,
:class:`jaxdl.train.losses.LossFn`, a ``jax.tree_util.Partial`` over arrays, an Optax transformation --
is therefore keyed on what it computes and traced over its arrays: wrapping the same model
again, or with other BatchNorm statistics, reuses the program. A plain function or lambda is a
single static leaf (so is a ``functools.partial``), keyed on its identity: pass the same object
to reuse the program.

Arguments named in ``static_argnames`` are static as a whole (hashable values such as sizes and
option strings); those in ``donate_argnames`` are traced and their buffers donated.
"""
from __future__ import annotations

import functools
import inspect
from typing import Any, Callable, NamedTuple

import jax
import numpy as np

__all__ = ["is_traced_leaf", "jit"]


class _Spec(NamedTuple):
    """The static half of one call: hashed and compared by ``jax.jit``."""

    treedef: Any
    static_leaves: tuple  # None where the leaf is traced
    static_arguments: tuple  # ((name, value), ...) of static_argnames


def is_traced_leaf(leaf: Any) -> bool:
    """Whether :func:`jit` traces this pytree leaf: JAX and NumPy arrays and scalars, and Python
    floats and complex numbers (not ints or bools, which usually set shapes or switch code)."""
    return isinstance(leaf, (jax.Array, np.ndarray, np.generic, float, complex)) and not isinstance(leaf, np.bool_)


def _split(tree):
    leaves, treedef = jax.tree.flatten(tree)
    traced = [leaf for leaf in leaves if is_traced_leaf(leaf)]
    static = tuple(None if is_traced_leaf(leaf) else leaf for leaf in leaves)
    return traced, treedef, static


def _merge(traced, treedef, static):
    traced = iter(traced)
    return jax.tree.unflatten(treedef, [next(traced) if leaf is None else leaf for leaf in static])


def jit(fun: Callable | None = None, *, static_argnames: tuple[str, ...] = (),
        donate_argnames: tuple[str, ...] = ()) -> Callable:
    """``jax.jit`` of ``fun`` where callables and modules inside any argument are static by
    value and arrays inside them are traced (see the module docstring). Use as a decorator,
    ``@compiled.jit(static_argnames=("num_steps",))``. The returned function has ``fun``'s
    signature."""
    if fun is None:
        return functools.partial(jit, static_argnames=static_argnames, donate_argnames=donate_argnames)
    signature = inspect.signature(fun)
    static_argnames, donate_argnames = tuple(static_argnames), tuple(donate_argnames)

    @functools.partial(jax.jit, static_argnames=("spec", "donated_spec"), donate_argnums=0)
    def program(donated, traced, *, spec, donated_spec):
        arguments = _merge(traced, spec.treedef, spec.static_leaves)
        arguments.update(_merge(donated, donated_spec.treedef, donated_spec.static_leaves))
        return fun(**arguments, **dict(spec.static_arguments))

    @functools.wraps(fun)
    def wrapper(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        arguments = dict(bound.arguments)
        static_arguments = tuple((name, arguments.pop(name)) for name in static_argnames)
        donated = {name: arguments.pop(name) for name in donate_argnames}
        traced, treedef, static = _split(arguments)
        donated_traced, donated_treedef, donated_static = _split(donated)
        return program(donated_traced, traced, spec=_Spec(treedef, static, static_arguments),
                       donated_spec=_Spec(donated_treedef, donated_static, ()))

    return wrapper
