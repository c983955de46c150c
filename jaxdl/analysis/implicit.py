"""Implicit regularisation of gradient descent and SGD: modified losses, their explicit use, and a
gradient-flow integrator for backward-error analysis.

With step h, gradient descent on C follows to O(h^2) the gradient flow of the modified loss

    C_GD = C + (h / 4) ||grad C||^2                       (Barrett & Dherin 2021),

and one epoch of SGD with learning rate eps over m equal minibatches in random order follows, in
expectation over the order and to O(eps^3), the flow of

    C_SGD = C + (eps / 4m) sum_k ||grad C_k||^2           (Smith, Dherin, Barrett & De 2021),

C_k the mean loss of minibatch k. Since (1/m) sum_k ||g_k||^2 = ||g||^2 + (1/m) sum_k ||g_k - g||^2
for g the mean of the g_k,

    C_SGD = C_GD + (eps / 4m) sum_k ||grad C_k - grad C||^2,

the extra term growing like eps / B (:func:`sgd_extra_regularizer`).

Everything takes a ``loss_fn(params, batch) -> scalar`` (the mean loss over the batch, e.g.
:func:`jaxdl.train.losses.make_loss_fn`) and returns functions of ``(params, batch)`` that are
differentiable (double backprop), jit-able, with the minibatch gradients ``vmap``ped: usable as
the training objective of a full-batch loop, and in :func:`jaxdl.train.fit` through
:class:`SGDRegularizer` (Smith et al.'s explicit regulariser); :class:`MinibatchGradientProbe`
tracks the regulariser's size during training. :func:`gradient_flow` integrates
d theta / dt = -grad F(theta) for any F with classical Runge-Kutta steps in one ``lax.fori_loop``.
"""
from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Callable

import jax
import jax.numpy as jnp
from flax import struct

from jaxdl.core import batching, checks, compiled, tree

__all__ = ["minibatch_gradients", "ModifiedLossGD", "ModifiedLossSGD", "modified_loss_gd", "modified_loss_sgd",
           "sgd_extra_regularizer", "SGDRegularizer", "MinibatchGradientProbe", "gradient_flow"]

PyTree = Any


def _check_loss_fn(loss_fn) -> None:
    try:
        inspect.signature(loss_fn).bind(None, None)
    except TypeError:
        checks.fail("loss_fn", loss_fn, "a callable loss_fn(params, batch)")
    except ValueError:  # a callable without an introspectable signature: trust it
        pass


def minibatch_gradients(loss_fn: Callable, params: PyTree, batch: PyTree, num_batches: int) -> PyTree:
    """The gradients grad C_k of the m = ``num_batches`` equal, contiguous minibatches of
    ``batch``, ``vmap``ped: a pytree like ``params`` whose leaves have a leading axis m.
    ``ValueError`` naming ``num_batches`` unless m divides the batch's N examples."""
    num = batching.num_examples(batch)
    if num % num_batches:
        checks.fail("num_batches", num_batches, f"a divisor of the {num} examples of the batch")
    split = jax.tree.map(lambda a: a.reshape((num_batches, num // num_batches) + a.shape[1:]), batch)
    return jax.vmap(jax.grad(loss_fn), in_axes=(None, 0))(params, split)


def _squared_norms(batch_grads: PyTree) -> jax.Array:
    """||g_k||^2 for each k of a pytree with a leading axis m: shape (m,)."""
    return sum(jnp.sum(jnp.square(leaf).reshape(leaf.shape[0], -1), axis=1) for leaf in jax.tree.leaves(batch_grads))


def _check(loss_fn, learning_rate, num_batches=None):
    _check_loss_fn(loss_fn)
    learning_rate = checks.number("learning_rate", learning_rate)
    return learning_rate, (None if num_batches is None else checks.integer("num_batches", num_batches))


# The modified losses are pytrees whose learning rate is a leaf: a program compiled for one of them
# (a gradient flow, a training step) serves every learning rate (jaxdl.core.compiled).


class ModifiedLossGD(struct.PyTreeNode):
    """``(params, batch) -> C + (h / 4) ||grad C||^2``; see :func:`modified_loss_gd`."""

    loss_fn: Any
    learning_rate: Any

    def __call__(self, params, batch):
        value, grads = jax.value_and_grad(self.loss_fn)(params, batch)
        return value + self.learning_rate / 4 * jnp.square(tree.norm(grads))


class ModifiedLossSGD(struct.PyTreeNode):
    """``(params, batch) -> C + (eps / 4m) sum_k ||grad C_k||^2`` (or, with ``extra_only``, only
    ``(eps / 4m) sum_k ||grad C_k - grad C||^2``); see :func:`modified_loss_sgd`."""

    loss_fn: Any
    learning_rate: Any
    num_batches: int = struct.field(pytree_node=False)
    extra_only: bool = struct.field(pytree_node=False, default=False)

    def __call__(self, params, batch):
        batch_grads = minibatch_gradients(self.loss_fn, params, batch, self.num_batches)
        if self.extra_only:
            mean = jax.tree.map(lambda g: jnp.mean(g, axis=0), batch_grads)
            batch_grads = jax.tree.map(lambda g, a: g - a, batch_grads, mean)
            return self.learning_rate / 4 * jnp.mean(_squared_norms(batch_grads))
        return self.loss_fn(params, batch) + self.learning_rate / 4 * jnp.mean(_squared_norms(batch_grads))


def modified_loss_gd(loss_fn: Callable, learning_rate: float) -> ModifiedLossGD:
    """``loss_gd(params, batch) = C + (h / 4) ||grad C||^2`` with C = ``loss_fn(params, batch)``
    and h = ``learning_rate``: the loss whose gradient flow GD with step h follows to O(h^2)
    (Barrett & Dherin 2021, "Implicit gradient regularization")."""
    learning_rate, _ = _check(loss_fn, learning_rate)
    return ModifiedLossGD(loss_fn, learning_rate)


def modified_loss_sgd(loss_fn: Callable, learning_rate: float, num_batches: int) -> ModifiedLossSGD:
    """``loss_sgd(params, batch) = C + (eps / 4m) sum_k ||grad C_k||^2``, the batch cut into
    m = ``num_batches`` equal contiguous minibatches with mean losses C_k and C their mean (the
    full-batch loss), eps = ``learning_rate``: the loss whose gradient flow one epoch of SGD
    over those minibatches follows, in expectation over their order, to O(eps^3) (Smith,
    Dherin, Barrett & De 2021, "On the origin of implicit regularization in stochastic gradient
    descent", equation 4)."""
    learning_rate, num_batches = _check(loss_fn, learning_rate, num_batches)
    return ModifiedLossSGD(loss_fn, learning_rate, num_batches)


def sgd_extra_regularizer(loss_fn: Callable, learning_rate: float, num_batches: int) -> ModifiedLossSGD:
    """``(eps / 4m) sum_k ||grad C_k - grad C||^2``: C_SGD - C_GD, the part of SGD's implicit
    regulariser that full-batch GD lacks (a gradient variance, of order eps / B)."""
    learning_rate, num_batches = _check(loss_fn, learning_rate, num_batches)
    return ModifiedLossSGD(loss_fn, learning_rate, num_batches, extra_only=True)


@dataclasses.dataclass(frozen=True)
class SGDRegularizer:
    """Smith et al.'s explicit regulariser ``(strength / 4m) sum_k ||grad C_k||^2`` for
    :func:`jaxdl.train.fit` (``fit(..., regularizer=SGDRegularizer(eps, m))``): each step's batch
    is cut into ``num_batches`` minibatches and the term is added to the training loss, so that
    large-batch or full-batch training sees the implicit regulariser of small-batch SGD with
    learning rate ``strength`` and batch size B / m. Called as ``regularizer(loss_fn, params,
    batch)`` with the model's loss (evaluation mode)."""

    strength: float
    num_batches: int

    def __post_init__(self):
        checks.number("strength", self.strength)
        checks.integer("num_batches", self.num_batches)

    def __call__(self, loss_fn, params, batch):
        batch_grads = minibatch_gradients(loss_fn, params, batch, self.num_batches)
        return self.strength / 4 * jnp.mean(_squared_norms(batch_grads))


@dataclasses.dataclass(frozen=True)
class MinibatchGradientProbe:
    """A probe (:mod:`jaxdl.train.probes`): the mean squared minibatch gradient norm
    ``(1/m) sum_k ||grad C_k||^2`` of the probe batch cut into ``num_batches`` minibatches,
    the size of SGD's implicit regulariser (times eps / 4) along training."""

    num_batches: int

    def __post_init__(self):
        checks.integer("num_batches", self.num_batches)

    def init(self, params) -> tuple:
        return ()

    def measure(self, probe_state, loss_fn, params, batch):
        return probe_state, jnp.mean(_squared_norms(minibatch_gradients(loss_fn, params, batch, self.num_batches)))


@compiled.jit(static_argnames=("num_steps",))
def _rk4(objective, params, time, args, *, num_steps):
    velocity = jax.grad(lambda p: objective(p, *args))
    h = time / num_steps

    def step(_, theta):
        k1 = velocity(theta)
        k2 = velocity(tree.axpy(-h / 2, k1, theta))
        k3 = velocity(tree.axpy(-h / 2, k2, theta))
        k4 = velocity(tree.axpy(-h, k3, theta))
        increment = jax.tree.map(lambda a, b, c, d: (a + 2 * b + 2 * c + d) / 6, k1, k2, k3, k4)
        return tree.axpy(-h, increment, theta)

    return jax.lax.fori_loop(0, num_steps, step, params)


def gradient_flow(objective: Callable, params: PyTree, time: float, *, args: tuple = (),
                  num_steps: int = 1000) -> PyTree:
    """theta(time) for d theta / dt = -grad_theta objective(theta, *args), theta(0) = ``params``,
    by ``num_steps`` classical Runge-Kutta (RK4) steps in one compiled ``lax.fori_loop``; the
    error is O((time / num_steps)^4).

    ``objective(params, *args) -> scalar`` is any differentiable function, e.g.
    ``gradient_flow(modified_loss_gd(loss_fn, h), params, T, args=(batch,))``. The arrays in
    ``args`` and a pytree ``objective``'s own (a modified loss's learning rate) are traced, so
    one compiled flow serves them all. Run it in float64 (``jax.enable_x64(True)``) when
    comparing with discrete iterates to high accuracy."""
    checks.number("time", time, inclusive=True)
    num_steps = checks.integer("num_steps", num_steps)
    return _rk4(objective, params, float(time), tuple(args), num_steps=num_steps)
