"""Backward-error analysis measured (for :mod:`experiments.implicit_regularization`).

In float64 on problems small enough for an accurate flow (RK4, :func:`jaxdl.implicit.gradient_flow`):

- gradient descent with step h for time T against the flows on C (error O(h)) and on
  C_GD = C + (h/4) ||grad C||^2 (error O(h^2); Barrett & Dherin 2021);
- the mean SGD iterate after one epoch over m minibatches, averaged exactly over all m! orders,
  against the flows for time m eps on C, on C_GD and on
  C_SGD = C + (eps/4m) sum_k ||grad C_k||^2 (error O(eps^3); Smith et al. 2021).

The slopes of log error against log step are fitted over the step sizes.
"""
from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np

from jaxdl import compiled, implicit, losses, train, tree
from jaxdl.models import get_model


def problems(num_examples: int, hidden_width: int, seed: int) -> dict:
    """``{name: (loss_fn, params, batch)}`` in float64 (call inside ``jax.enable_x64(True)``):
    a two-parameter model f(x) = theta_1 tanh(theta_2 x) and a tanh MLP 1-H-1, each fitting
    noisy samples of a smooth curve with the mean squared error (halved)."""
    rng = np.random.default_rng(seed)
    x = np.linspace(-2.0, 2.0, num_examples)[:, None]
    y = 1.5 * np.tanh(0.7 * x) + 0.1 * rng.normal(size=x.shape)
    rng.shuffle(order := np.arange(num_examples))
    batch = (jnp.asarray(x[order]), jnp.asarray(y[order]))

    def two_parameter(theta, b):
        inputs, targets = b
        return 0.5 * jnp.mean(jnp.square(theta[0] * jnp.tanh(theta[1] * inputs) - targets))

    model = get_model("mlp", widths=(hidden_width,), activation="tanh", num_outputs=1)
    params = jax.tree.map(lambda p: jnp.asarray(p, jnp.float64),
                          model.init(jax.random.key(seed), jnp.zeros((1, 1)))["params"])
    mlp_loss = losses.make_loss_fn(train.make_apply_fn(model), "half_mse")
    return {"two-parameter model": (two_parameter, jnp.asarray([0.4, 0.2]), batch),
            f"tanh MLP 1-{hidden_width}-1": (mlp_loss, params, batch)}


def _distance(a, b) -> float:
    return float(tree.norm(tree.subtract(a, b)))


def slope(steps, errors) -> float:
    """The least-squares slope of log(error) against log(step)."""
    return float(np.polyfit(np.log(np.asarray(steps)), np.log(np.asarray(errors)), 1)[0])


@compiled.jit
def gradient_descent(loss_fn, params, batch, step_size, num_steps):
    """``num_steps`` steps of full-batch gradient descent (a ``lax.fori_loop``; the step size and
    the number of steps are traced: one program for every step size)."""
    grad = jax.grad(loss_fn)
    return jax.lax.fori_loop(0, num_steps, lambda _, p: tree.axpy(-step_size, grad(p, batch), p), params)


@compiled.jit(static_argnames=("num_batches",))
def mean_sgd_epoch(loss_fn, params, batch, learning_rate: float, num_batches: int):
    """The SGD iterate after one epoch over the ``num_batches`` contiguous minibatches of
    ``batch``, averaged exactly over all m! orders (``vmap`` over the orders)."""
    num = jax.tree.leaves(batch)[0].shape[0]
    split = jax.tree.map(lambda a: a.reshape((num_batches, num // num_batches) + a.shape[1:]), batch)
    orders = jnp.asarray(list(itertools.permutations(range(num_batches))))
    grad = jax.grad(loss_fn)

    def epoch(order):
        def step(p, k):
            return tree.axpy(-learning_rate, grad(p, jax.tree.map(lambda a: a[k], split)), p), None

        return jax.lax.scan(step, params, order)[0]

    return jax.tree.map(lambda a: jnp.mean(a, axis=0), jax.vmap(epoch)(orders))


def gd_against_flows(loss_fn, params, batch, step_sizes, time: float, flow_steps: int) -> dict:
    """Errors of GD with each step h (for ``time / h`` steps) against the flows on C and on C_GD."""
    flow_c = implicit.gradient_flow(loss_fn, params, time, args=(batch,), num_steps=flow_steps)
    errors = {"C": [], "C_GD": []}
    for h in step_sizes:
        iterate = gradient_descent(loss_fn, params, batch, float(h), np.int32(round(time / h)))
        flow_gd = implicit.gradient_flow(implicit.modified_loss_gd(loss_fn, h), params, time, args=(batch,),
                                         num_steps=flow_steps)
        errors["C"].append(_distance(iterate, flow_c))
        errors["C_GD"].append(_distance(iterate, flow_gd))
    return errors


def sgd_against_flows(loss_fn, params, batch, learning_rates, num_batches: int, flow_steps: int) -> dict:
    """Errors of the mean SGD iterate after one epoch (learning rate eps, m minibatches) against
    the flows for time m eps on C, C_GD (h = eps) and C_SGD."""
    errors = {"C": [], "C_GD": [], "C_SGD": []}
    for eps in learning_rates:
        iterate = mean_sgd_epoch(loss_fn, params, batch, float(eps), num_batches)
        objectives = {"C": loss_fn, "C_GD": implicit.modified_loss_gd(loss_fn, eps),
                      "C_SGD": implicit.modified_loss_sgd(loss_fn, eps, num_batches)}
        for name, objective in objectives.items():
            flow = implicit.gradient_flow(objective, params, num_batches * eps, args=(batch,), num_steps=flow_steps)
            errors[name].append(_distance(iterate, flow))
    return errors
