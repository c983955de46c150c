"""Backprop by hand: the delta rule for an MLP, written out (Rumelhart, Hinton & Williams 1986).

For the parameters of the zoo's MLP (``get_model("mlp", widths=..., activation=...,
num_outputs=...)``) or linear model: layers ``hidden_0 .. hidden_{L-2}`` and ``output``, each a
Flax ``Dense`` with ``kernel`` of shape ``(n_{m-1}, n_m)`` (fan-in, fan-out) and an optional
``bias`` of shape ``(n_m,)``. Layer m = 1..L is ``hidden_{m-1}`` and layer L is ``output``;
``n_m`` is the width of layer m, ``n_0 = D`` the input features and ``n_L = O`` the outputs (O as
in :mod:`jaxdl.models.mlp`). A residual MLP, or one in the NTK parameterisation, has the same
parameter layout but computes another function: the formulas below are not its gradient.

Flax's kernel layout is the course's ``W^m`` exactly, so the formulas need no transpose:

    forward   a^0 = x,  z^m = W^m^T a^{m-1} + b^m,  a^m = f(z^m)  (a^L = z^L: the read-out is linear)
    backward  delta^L = f'(z^L) * dJ/da^L = dJ/da^L,
              delta^m = f'(z^m) * (W^{m+1} delta^{m+1}),
              dJ/dW^m = a^{m-1} (delta^m)^T,  dJ/db^m = delta^m.

With a batch the vectors are the rows of ``(B, n_m)`` arrays. ``J`` is the batch-mean loss of
:mod:`jaxdl.train.losses`, so ``dJ/da^L`` already carries its factor ``1/B`` (row b is ``1/B`` times the
per-example derivative) and the parameter gradients are sums over the batch:
``dJ/dW^m = (a^{m-1})^T delta^m`` and ``dJ/db^m = sum_b delta^m_b``.

``f'`` is a closed form for every activation of :data:`jaxdl.models.mlp.ACTIVATIONS`; ReLU takes
``f'(0) = 0``, as ``jax.grad(jax.nn.relu)`` does. Every public function is jitted with the
activation and loss names static: a second call with the same shapes compiles nothing.
"""
from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxdl.core import checks, tree
from jaxdl.train import losses
from jaxdl.models.activations import get_activation

__all__ = ["DERIVATIVES", "derivative", "OUTPUT_GRADIENTS", "output_gradient", "layer_names", "Forward", "forward",
           "backward", "value_and_grad", "grad", "walkthrough_example", "Walkthrough", "walkthrough",
           "format_walkthrough"]

_SQRT_2_OVER_PI = float(np.sqrt(2.0 / np.pi))
_GELU_CUBIC = 0.044715  # the tanh approximation of GELU that flax.linen.gelu uses by default


def _gelu_derivative(z):
    t = jnp.tanh(_SQRT_2_OVER_PI * (z + _GELU_CUBIC * z**3))
    return 0.5 * (1 + t) + 0.5 * z * (1 - t**2) * _SQRT_2_OVER_PI * (1 + 3 * _GELU_CUBIC * z**2)


DERIVATIVES = {
    "relu": lambda z: (z > 0).astype(z.dtype),  # f'(0) = 0
    "tanh": lambda z: 1 - jnp.tanh(z) ** 2,
    "sigmoid": lambda z: jax.nn.sigmoid(z) * (1 - jax.nn.sigmoid(z)),
    "gelu": _gelu_derivative,
    "erf": lambda z: 2 / np.sqrt(np.pi) * jnp.exp(-(z**2)),
    "identity": jnp.ones_like,
}


def derivative(activation: str):
    """``f'`` of the activation named ``activation``, elementwise (a closed form; ``ValueError``
    listing the choices for an unknown name)."""
    f = get_activation(activation)
    if activation in DERIVATIVES:
        return DERIVATIVES[activation]
    # An activation added to the zoo without a closed form here: differentiate it elementwise.
    return lambda z: jax.jvp(f, (z,), (jnp.ones_like(z),))[1]


def _output_gradient_cross_entropy(outputs_BxO, labels_B):
    one_hot_BxO = jax.nn.one_hot(labels_B, outputs_BxO.shape[-1], dtype=outputs_BxO.dtype)
    return (jax.nn.softmax(outputs_BxO) - one_hot_BxO) / len(labels_B)


def _output_gradient_mse(outputs_BxO, targets_BxO):
    return 2 * (outputs_BxO - targets_BxO.reshape(outputs_BxO.shape)) / outputs_BxO.size


def _output_gradient_half_mse(outputs_BxO, targets_BxO):
    return (outputs_BxO - targets_BxO.reshape(outputs_BxO.shape)) / outputs_BxO.size


# dJ/da^L of the batch-mean losses of jaxdl.train.losses, in closed form.
OUTPUT_GRADIENTS = {
    "cross_entropy": _output_gradient_cross_entropy,  # (softmax(a^L) - onehot(y)) / B
    "mse": _output_gradient_mse,  # 2 (a^L - y) / (B O)
    "half_mse": _output_gradient_half_mse,  # (a^L - y) / (B O)
}


def output_gradient(loss_name: str, outputs_BxO, targets):
    """``dJ/da^L``, shape ``(B, O)``, of the batch-mean loss ``loss_name`` (one of
    :data:`OUTPUT_GRADIENTS`) at the network's outputs; ``targets`` are labels ``y_B`` for
    ``cross_entropy`` and ``y_BxO`` for the squared errors."""
    checks.one_of("loss_name", loss_name, sorted(OUTPUT_GRADIENTS))
    return OUTPUT_GRADIENTS[loss_name](outputs_BxO, targets)


# ----------------------------------------------------------------------------- the layout


def layer_names(params) -> list[str]:
    """``['hidden_0', ..., 'output']``, layers 1..L in order, after checking that ``params`` is a
    plain MLP's parameter dict (``ValueError`` naming ``params`` and what was expected)."""
    expected = "an MLP's parameters {'hidden_0': ..., 'output': {'kernel', 'bias'}} (model.init(...)['params'])"
    if not isinstance(params, Mapping):
        checks.fail("params", type(params).__name__, expected)
    if set(params) == {"params"}:
        checks.fail("params", "{'params': ...}", expected + "; pass variables['params']")
    hidden = [k for k in params if isinstance(k, str) and k.startswith("hidden_") and k[7:].isdigit()]
    names = [f"hidden_{i}" for i in range(len(hidden))] + ["output"]
    if set(params) != set(names):
        checks.fail("params", sorted(map(str, params)), expected + " with layers " + ", ".join(names))
    fan_in = None
    for name in names:
        layer = params[name]
        if not isinstance(layer, Mapping) or "kernel" not in layer or set(layer) - {"kernel", "bias"}:
            checks.fail(f"params[{name!r}]", layer if not isinstance(layer, Mapping) else sorted(layer),
                        "a Dense layer {'kernel'[, 'bias']}")
        kernel_shape = np.shape(layer["kernel"])
        if len(kernel_shape) != 2 or (fan_in is not None and kernel_shape[0] != fan_in):
            checks.fail(f"params[{name!r}]['kernel'].shape", kernel_shape,
                        "2-D (fan_in, fan_out)" + (f" with fan_in {fan_in}" if fan_in is not None else ""))
        if "bias" in layer and np.shape(layer["bias"]) != kernel_shape[1:]:
            checks.fail(f"params[{name!r}]['bias'].shape", np.shape(layer["bias"]), f"({kernel_shape[1]},)")
        fan_in = kernel_shape[1]
    return names


def _inputs(params, x):
    """``x_Bx...`` flattened to ``x_BxD``, checked against the first layer's fan-in."""
    names = layer_names(params)
    num_features = np.shape(params[names[0]]["kernel"])[0]
    if np.ndim(x) < 2 or int(np.prod(np.shape(x)[1:])) != num_features:
        checks.fail("x.shape", np.shape(x), f"(B, ...) with {num_features} features per example (the first "
                                            "layer's fan-in)")
    return names, jnp.reshape(x, (np.shape(x)[0], -1))


def _check_targets(loss_name, outputs_shape, targets):
    checks.one_of("loss_name", loss_name, sorted(OUTPUT_GRADIENTS))
    if losses.is_classification(loss_name):
        if np.shape(targets) != outputs_shape[:1] or not jnp.issubdtype(jnp.asarray(targets).dtype, jnp.integer):
            checks.fail("y", f"{jnp.asarray(targets).dtype}{list(np.shape(targets))}",
                        f"integer labels of shape ({outputs_shape[0]},)")
    elif np.size(targets) != int(np.prod(outputs_shape)) or np.shape(targets)[:1] != outputs_shape[:1]:
        checks.fail("y.shape", np.shape(targets), f"targets of shape {outputs_shape}")


# ----------------------------------------------------------------------------- forward and backward


class Forward(NamedTuple):
    """The forward pass: ``z[m-1]`` is z^m, shape ``(B, n_m)``, for m = 1..L; ``a[m]`` is a^m for
    m = 0..L, ``a[0] = x_BxD`` and ``a[L] = z^L`` (the linear read-out)."""

    z: tuple
    a: tuple

    @property
    def outputs(self):
        """The network's outputs a^L, shape ``(B, O)``."""
        return self.a[-1]


@functools.partial(jax.jit, static_argnames=("activation",))
def forward(params, x, activation: str) -> Forward:
    """Every pre-activation z^m and activation a^m of the MLP ``params`` on ``x_Bx...``
    (flattened to ``x_BxD``); the outputs equal the zoo model's ``apply``."""
    f = get_activation(activation)
    names, a = _inputs(params, x)
    zs, activations = [], [a]
    for m, name in enumerate(names, start=1):
        layer = params[name]
        z = a @ layer["kernel"] + layer["bias"] if "bias" in layer else a @ layer["kernel"]
        a = z if m == len(names) else f(z)
        zs.append(z)
        activations.append(a)
    return Forward(tuple(zs), tuple(activations))


@functools.partial(jax.jit, static_argnames=("activation",))
def backward(params, forward: Forward, dloss_doutputs_BxO, activation: str):
    """The delta rule. ``dloss_doutputs_BxO`` is dJ/da^L of the loss to differentiate (for a
    batch-mean loss, with its 1/B; :func:`output_gradient`). Returns ``(grads, deltas)``:
    ``grads`` has the layout of ``params`` (dJ/dW^m summed over the batch), ``deltas[m-1]`` is
    delta^m of shape ``(B, n_m)``."""
    f_prime = derivative(activation)
    names = layer_names(params)
    if len(forward.z) != len(names) or len(forward.a) != len(names) + 1:
        checks.fail("forward", f"{len(forward.z)} layers", f"the forward pass of these params ({len(names)} layers)")
    if np.shape(dloss_doutputs_BxO) != np.shape(forward.outputs):
        checks.fail("dloss_doutputs_BxO.shape", np.shape(dloss_doutputs_BxO),
                    f"the outputs' {np.shape(forward.outputs)}")
    deltas, grads = [None] * len(names), {}
    delta = dloss_doutputs_BxO  # delta^L = f'(z^L) * dJ/da^L with f' = 1: the read-out is linear
    for m in range(len(names), 0, -1):
        if m < len(names):
            # W^{m+1} delta^{m+1} for every example at once: the rows are the examples.
            delta = f_prime(forward.z[m - 1]) * (delta @ params[names[m]]["kernel"].T)
        deltas[m - 1] = delta
        grads[names[m - 1]] = {"kernel": forward.a[m - 1].T @ delta}  # sum_b a^{m-1}_b (delta^m_b)^T
        if "bias" in params[names[m - 1]]:
            grads[names[m - 1]]["bias"] = delta.sum(axis=0)
    return grads, tuple(deltas)


@functools.partial(jax.jit, static_argnames=("activation", "loss_name"))
def value_and_grad(params, batch, activation: str, loss_name: str = "cross_entropy"):
    """``(J, dJ/dparams)`` by the delta rule, for the batch-mean ``loss_name`` loss of
    :mod:`jaxdl.train.losses` on ``batch = (x_Bx..., y)``: labels ``y_B`` for ``cross_entropy``,
    targets ``y_BxO`` for ``mse`` and ``half_mse``. Equals ``jax.value_and_grad`` of that loss."""
    x, y = batch
    fwd = forward(params, x, activation)
    _check_targets(loss_name, np.shape(fwd.outputs), y)
    loss = losses.batch_loss(loss_name, fwd.outputs, y)
    grads, _ = backward(params, fwd, output_gradient(loss_name, fwd.outputs, y), activation)
    return loss, grads


def grad(params, batch, activation: str, loss_name: str = "cross_entropy"):
    """dJ/dparams by the delta rule, with the layout of ``params`` (see :func:`value_and_grad`)."""
    return value_and_grad(params, batch, activation, loss_name)[1]


# ----------------------------------------------------------------------------- the walkthrough


def walkthrough_example():
    """The course-style 2-2-1 example ``(params, x_1x2, y_1x1)``: two inputs, two hidden units,
    one linear output, round numbers a student can follow by hand."""
    params = {"hidden_0": {"kernel": jnp.asarray([[0.1, -0.2], [0.3, 0.4]]), "bias": jnp.asarray([0.1, -0.1])},
              "output": {"kernel": jnp.asarray([[0.5], [-0.6]]), "bias": jnp.asarray([0.2])}}
    return params, jnp.asarray([[1.0, 2.0]]), jnp.asarray([[1.0]])


class Walkthrough(NamedTuple):
    """The trace of forward, backward, one gradient-descent update, forward again.

    ``predicted_loss_after = loss - learning_rate * ||g||^2`` is the first-order prediction of
    ``loss_after`` (exact as the learning rate goes to 0)."""

    activation: str
    loss_name: str
    learning_rate: Any
    params: Any
    forward: Forward
    loss: Any
    dloss_doutputs: Any
    deltas: tuple
    grads: Any
    params_after: Any
    forward_after: Forward
    loss_after: Any
    predicted_loss_after: Any


@functools.partial(jax.jit, static_argnames=("activation", "loss_name"))
def _walkthrough(params, x, y, learning_rate, activation, loss_name):
    before = forward(params, x, activation)
    _check_targets(loss_name, np.shape(before.outputs), y)
    dloss_doutputs = output_gradient(loss_name, before.outputs, y)
    grads, deltas = backward(params, before, dloss_doutputs, activation)
    params_after = tree.axpy(-learning_rate, grads, params)
    after = forward(params_after, x, activation)
    loss = losses.batch_loss(loss_name, before.outputs, y)
    return (before, loss, dloss_doutputs, deltas, grads, params_after, after,
            losses.batch_loss(loss_name, after.outputs, y), loss - learning_rate * tree.dot(grads, grads))


def walkthrough(params=None, x=None, y=None, *, activation: str = "sigmoid", loss_name: str = "half_mse",
                learning_rate: float = 0.1) -> Walkthrough:
    """The course's "forward, backward, update, forward again" on ``(params, x_Bx..., y)``
    (default: :func:`walkthrough_example`), one compiled program; print it with
    :func:`format_walkthrough`. The update is plain gradient descent, W <- W - lr dJ/dW."""
    if params is None and x is None and y is None:
        params, x, y = walkthrough_example()
    elif params is None or x is None or y is None:
        checks.fail("params, x, y", "some of them", "all three given, or none (the default example)")
    learning_rate = checks.number("learning_rate", learning_rate)
    dtype = jnp.result_type(*jax.tree.leaves(params))
    outputs = _walkthrough(params, x, y, jnp.asarray(learning_rate, dtype), activation, loss_name)
    return Walkthrough(activation, loss_name, learning_rate, params, *outputs)


def _array_text(value, precision: int) -> str:
    value = np.asarray(value, np.float64)
    if value.ndim == 2 and value.shape[0] == 1:
        value = value[0]  # one example: print the vector, not a 1 x n matrix
    if value.ndim == 0:
        return f"{float(value):.{precision}f}"
    text = np.array2string(value, precision=precision, floatmode="fixed", separator=", ", max_line_width=10**6)
    return re.sub(r"\[ +", "[", re.sub(r"\s+", " ", text))  # one line per matrix, for a table cell


def _text_table(headers, rows) -> str:
    widths = [max(len(str(c)) for c in column) for column in zip(headers, *rows)]
    line = lambda cells: "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"
    return "\n".join([line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|"] + [line(r) for r in rows])


def format_walkthrough(trace: Walkthrough, precision: int = 4) -> str:
    """The trace as text: the forward pass, the deltas and gradients, the update, the forward
    pass again and the losses, one table per phase (vectors for one example, else matrices)."""
    text = functools.partial(_array_text, precision=precision)
    names = layer_names(trace.params)
    num_layers = len(names)
    widths = [np.shape(trace.params[names[0]]["kernel"])[0]] + [np.shape(trace.params[n]["kernel"])[1] for n in names]

    def forward_table(fwd):
        rows = [[0, "", text(fwd.a[0])]]
        rows += [[m, text(fwd.z[m - 1]), text(fwd.a[m]) + (" (linear read-out)" if m == num_layers else "")]
                 for m in range(1, num_layers + 1)]
        return _text_table(["m", "z^m = W^m^T a^(m-1) + b^m", f"a^m = {trace.activation}(z^m)"], rows)

    def parameter_rows(params, m):
        layer = params[names[m - 1]]
        return text(layer["kernel"]), text(layer["bias"]) if "bias" in layer else "-"

    backward_rows = [[m, text(trace.deltas[m - 1]), *parameter_rows(trace.grads, m)] for m in range(num_layers, 0, -1)]
    update_rows = [[m, *parameter_rows(trace.params, m), *parameter_rows(trace.params_after, m)]
                   for m in range(1, num_layers + 1)]
    lr = trace.learning_rate
    return "\n".join([
        f"Backprop by hand: MLP {'-'.join(map(str, widths))}, activation {trace.activation}, loss "
        f"{trace.loss_name}, learning rate {lr:g}",
        "", "1. Forward (a^0 = x)", forward_table(trace.forward),
        f"loss J = {text(trace.loss)}",
        "", "2. Backward: delta^L = dJ/da^L, delta^m = f'(z^m) * (W^(m+1) delta^(m+1))",
        f"dJ/da^{num_layers} = {text(trace.dloss_doutputs)}",
        _text_table(["m", "delta^m", "dJ/dW^m = a^(m-1) delta^m^T", "dJ/db^m = delta^m"], backward_rows),
        "", f"3. Update: W <- W - {lr:g} dJ/dW, b <- b - {lr:g} dJ/db",
        _text_table(["m", "W^m before", "b^m before", "W^m after", "b^m after"], update_rows),
        "", "4. Forward again", forward_table(trace.forward_after),
        f"loss J = {text(trace.loss_after)} (was {text(trace.loss)}; first-order prediction J - lr ||g||^2 = "
        f"{text(trace.predicted_loss_after)})",
    ])
