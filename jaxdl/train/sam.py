"""Sharpness-aware minimisation (Foret, Kleiner, Mobahi & Neyshabur 2021) as an Optax transformation.

SAM minimises max_{||e|| <= rho} L(w + e) with one ascent step: at the batch gradient g,

    e = rho g / ||g||                       (global norm over the whole pytree)
    g_SAM = grad L(w + e)                   (same batch)
    w <- w + base_update(g_SAM)

A gradient transformation sees only g, so its ``update`` takes the extra argument ``grad_fn``:
``grad_fn(params) -> gradient pytree`` on the current batch (Optax's
``GradientTransformationExtraArgs`` convention). :func:`jaxdl.train.make_train_step` passes it
to every transformation that accepts extra arguments, so ``get_optimizer("sam", ...)`` trains
through ``fit`` like any other optimizer. For small rho,
(g_SAM - g) / rho -> H g / ||g||, a Hessian-vector product.
"""
from __future__ import annotations

import numbers
from typing import Any, Callable, NamedTuple

import jax.numpy as jnp
import optax

from jaxdl.core import checks, tree

__all__ = ["SAMState", "sam_perturbation", "sam"]

PyTree = Any


class SAMState(NamedTuple):
    """The base optimizer's state (SAM itself keeps none)."""

    base_state: optax.OptState


def sam_perturbation(grads: PyTree, rho: float) -> PyTree:
    """The ascent step e = rho g / ||g||_2 (global norm; zero when g = 0), shaped like ``grads``."""
    grad_norm = tree.norm(grads)
    factor = jnp.where(grad_norm > 0, rho / jnp.where(grad_norm > 0, grad_norm, 1.0), 0.0)
    return tree.scale(factor, grads)


def sam(base: optax.GradientTransformation, rho: float = 0.05) -> optax.GradientTransformationExtraArgs:
    """Wrap ``base`` so that it receives the SAM gradient grad L(w + rho g / ||g||).

    Foret et al. 2021, "Sharpness-aware minimization for efficiently improving
    generalization", algorithm 1 (one ascent step, global-norm perturbation, no second-order
    term).

    Args:
      base: the Optax transformation that turns g_SAM into the update (e.g. ``optax.sgd``).
      rho: perturbation radius, > 0 (0.05 in the paper); may be a traced scalar.

    Returns:
      A transformation whose ``update(grads, state, params, *, grad_fn, **extra)`` needs
      ``params`` (w) and ``grad_fn(params) -> grads`` on the same batch; other extra
      arguments are passed on to ``base``.
    """
    if isinstance(rho, numbers.Real):  # a traced rho (vmapped over radii) is not checked
        checks.number("rho", rho)
    base = optax.with_extra_args_support(base)

    def init_fn(params):
        return SAMState(base.init(params))

    def update_fn(updates, state, params=None, *, grad_fn: Callable | None = None, **extra_args):
        if params is None:
            raise ValueError("sam: update needs params (the point w where the gradient was taken)")
        if grad_fn is None:
            raise ValueError("sam: update needs grad_fn=lambda params: batch gradient at params "
                             "(jaxdl.train.make_train_step passes it)")
        sam_grads = grad_fn(tree.add(params, sam_perturbation(updates, rho)))
        new_updates, base_state = base.update(sam_grads, state.base_state, params, **extra_args)
        return new_updates, SAMState(base_state)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)
