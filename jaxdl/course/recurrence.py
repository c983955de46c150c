"""Gradients through time: the one-unit cliff, clipping, Jacobian norms across steps, and Omega.

Pascanu, Mikolov & Bengio 2013, "On the difficulty of training recurrent neural networks":

- the one-unit recurrence ``h(t) = w sigma(h(t-1)) + b``, ``h(0) = 0.5``, with the error
  ``(h(50) - 0.7)^2`` (:func:`cliff_states`, :func:`cliff_loss`, :class:`CliffLoss`): for ``w > 4``
  and a band of ``b`` the map has two stable fixed points, and the (w, b) where ``h(0)`` changes
  basin form a wall where ``h(50)`` jumps and the gradient explodes. :func:`loss_surface` evaluates it over a grid,
  :func:`descent_paths` runs gradient descent from several starts, with or without the
  global-norm clipping ``g <- c g / ||g||`` of :mod:`jaxdl.train.optim` (the library's one clipping rule);
- the norm of ``dh_t / dh_{t-k}`` for ``h_t = f(h_{t-1} W + x_t)`` (:func:`state_jacobian_norms`):
  for a linear ``f`` it is ``||W^k||``, which grows or decays like ``rho(W)^k`` (Gelfand's formula),
  ``rho`` the spectral radius; :func:`jacobian_norms_by_radius` does it for several radii and seeds;
- the vanishing-gradient regulariser
  ``Omega = sum_k ( ||dC/dh_{k+1} dh_{k+1}/dh_k|| / ||dC/dh_{k+1}|| - 1 )^2``
  for the zoo's one-layer Elman RNN (:func:`omega`, :class:`OmegaRegularizer` for
  ``train.fit(..., regularizer=...)``).

Row vectors throughout, as in :mod:`jaxdl.models.recurrent`: ``h_t = f(x_t W_x + h_{t-1} W_h + b)``.
Shape letters as in the table of :mod:`jaxdl`: G start points or radii, I and J grid points along w and
along b, U hidden units, S steps.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxdl.core import batching, checks, compiled, tree
from jaxdl.train import losses
from jaxdl.models.activations import get_activation
from jaxdl.models.recurrent import RECURRENT_INITS, recurrent_initializer

__all__ = ["JACOBIAN_ACTIVATIONS", "cliff_states", "cliff_loss", "CliffLoss", "loss_surface", "DescentPaths",
           "descent_paths", "state_jacobian_norms", "jacobian_norms_by_radius", "elman_states", "omega",
           "OmegaRegularizer"]

PyTree = Any
JACOBIAN_ACTIVATIONS = ("identity", "tanh")

# ----------------------------------------------------------------------------- the one-unit cliff


def cliff_states(w, b, *, num_steps: int = 50, h0: float = 0.5) -> jax.Array:
    """``h(1), ..., h(S)`` of ``h(t) = w sigmoid(h(t-1)) + b`` from ``h(0) = h0``, shape ``(S,)``."""
    h0 = jnp.asarray(h0, jnp.result_type(w, b, float))

    def step(h, _):
        h = w * jax.nn.sigmoid(h) + b
        return h, h

    return jax.lax.scan(step, h0, None, length=num_steps)[1]


def cliff_loss(w, b, *, num_steps: int = 50, h0: float = 0.5, target: float = 0.7) -> jax.Array:
    """The error ``(h(S) - target)^2`` of :func:`cliff_states` (Pascanu et al. 2013)."""
    return jnp.square(cliff_states(w, b, num_steps=num_steps, h0=h0)[-1] - target)


@dataclasses.dataclass(frozen=True)
class CliffLoss:
    """:func:`cliff_loss` as a function of ``theta_2 = (w, b)``: the ``loss_fn`` that
    :func:`loss_surface` and :func:`descent_paths` take. Equal instances compile once."""

    num_steps: int = 50
    h0: float = 0.5
    target: float = 0.7

    def __post_init__(self):
        checks.integer("num_steps", self.num_steps)
        checks.number("h0", self.h0, minimum=None)
        checks.number("target", self.target, minimum=None)

    def __call__(self, theta_2) -> jax.Array:
        return cliff_loss(theta_2[0], theta_2[1], num_steps=self.num_steps, h0=self.h0, target=self.target)


@compiled.jit(static_argnames=("points_per_chunk",))
def loss_surface(loss_fn: Callable, ws_I, bs_J, *, points_per_chunk: int | None = None) -> jax.Array:
    """``loss_fn((w, b))`` at every point of the grid ``ws_I x bs_J`` as one program, shape
    ``(J, I)`` (the ``np.meshgrid`` layout: row j is ``b = bs_J[j]``), points ``vmap``ped in chunks
    of ``points_per_chunk`` (:func:`jaxdl.core.batching.map_in_chunks`; None: all at once)."""
    mesh_w, mesh_b = jnp.meshgrid(jnp.asarray(ws_I), jnp.asarray(bs_J))
    points_Gx2 = jnp.stack([mesh_w.ravel(), mesh_b.ravel()], axis=1)
    return batching.map_in_chunks(loss_fn, points_Gx2, points_per_chunk).reshape(mesh_w.shape)


class DescentPaths(NamedTuple):
    """What :func:`descent_paths` returns: ``params_GxSxD`` the iterates ``theta_0 .. theta_S``
    (``S + 1`` of them), ``loss_GxS`` the loss at each iterate (``S + 1``), ``grad_norm_GxS`` the
    norm of the raw gradient at ``theta_0 .. theta_{S-1}`` (before any clipping)."""

    params_GxSxD: jax.Array
    loss_GxS: jax.Array
    grad_norm_GxS: jax.Array


@compiled.jit(static_argnames=("num_steps",))
def descent_paths(loss_fn: Callable, starts_GxD, tx: optax.GradientTransformation, *, num_steps: int) -> DescentPaths:
    """``num_steps`` updates of ``tx`` on ``loss_fn(theta_D) -> scalar`` from each of G starts: one
    ``lax.scan`` over steps, ``vmap``ped over the starts. Gradient descent with global-norm
    clipping is ``tx = jaxdl.train.optim.get_optimizer('gd', eta, clip_norm=c)``; without, ``clip_norm=None``.
    Calling again with the same ``loss_fn``, ``tx`` object and shapes compiles nothing."""
    value_and_grad = jax.value_and_grad(loss_fn)

    def path(theta_D):
        def step(carry, _):
            theta, opt_state = carry
            loss, grad = value_and_grad(theta)
            updates, opt_state = tx.update(grad, opt_state, theta)
            return (optax.apply_updates(theta, updates), opt_state), (theta, loss, tree.norm(grad))

        (last, _), (thetas, loss, grad_norm) = jax.lax.scan(step, (theta_D, tx.init(theta_D)), None, length=num_steps)
        return (jnp.concatenate([thetas, last[None]]), jnp.append(loss, loss_fn(last)), grad_norm)

    return DescentPaths(*jax.vmap(path)(jnp.asarray(starts_GxD)))


# ----------------------------------------------------------------------------- Jacobians across time


def _activation(name: str) -> Callable:
    checks.one_of("activation", name, JACOBIAN_ACTIVATIONS)
    return get_activation(name)


def state_jacobian_norms(recurrent_UxU, h0_U, inputs_SxU, activation: str = "identity") -> jax.Array:
    """Spectral norms ``||dh_S / dh_{S-k}||_2`` for ``k = 0 .. S``, shape ``(S + 1,)``, of
    ``h_t = f(h_{t-1} W + x_t)``, ``t = 1 .. S``, from ``h_0 = h0_U``, ``f`` ``'identity'`` or ``'tanh'``.

    ``dh_S / dh_{S-k}`` is the product of the per-step Jacobians ``diag(f'(a_t)) W^T`` for
    ``t = S, ..., S - k + 1``, accumulated from the last step backwards (the order in which
    backpropagation meets them); for a linear ``f`` it is ``(W^T)^k``.
    """
    act = _activation(activation)
    recurrent_UxU = jnp.asarray(recurrent_UxU)

    def forward(h, x):
        a = h @ recurrent_UxU + x
        slope = jax.jvp(act, (a,), (jnp.ones_like(a),))[1]  # f'(a), elementwise
        return act(a), slope

    _, slopes_SxU = jax.lax.scan(forward, jnp.asarray(h0_U), jnp.asarray(inputs_SxU))

    def backward(product_UxU, slope_U):
        product_UxU = product_UxU @ (slope_U[:, None] * recurrent_UxU.T)
        return product_UxU, product_UxU

    eye = jnp.eye(recurrent_UxU.shape[0], dtype=recurrent_UxU.dtype)
    _, products_SxUxU = jax.lax.scan(backward, eye, slopes_SxU[::-1])
    # The largest singular value as the root of the top eigenvalue of P^T P: a symmetric
    # eigensolver compiles and runs several times faster than an SVD on a CPU.
    gram_SxUxU = jnp.swapaxes(products_SxUxU, -1, -2) @ products_SxUxU
    norms_S = jnp.sqrt(jnp.maximum(jnp.linalg.eigvalsh(gram_SxUxU)[:, -1], 0.0))
    return jnp.concatenate([jnp.ones((1,), norms_S.dtype), norms_S])


@compiled.jit(static_argnames=("hidden_size", "num_steps", "num_seeds", "activation", "recurrent_init"))
def jacobian_norms_by_radius(key, radii_G, *, hidden_size: int, num_steps: int, num_seeds: int,
                             activation: str = "identity", recurrent_init: str = "gaussian",
                             input_scale: float = 1.0) -> jax.Array:
    """:func:`state_jacobian_norms` for recurrent matrices of spectral radius ``radii_G``, K seeds
    each, as one program: shape ``(G, K, S + 1)``.

    Seed k draws ``W_1`` of spectral radius 1 with :func:`jaxdl.models.recurrent.recurrent_initializer`
    (``'gaussian'``: ``N(0, 1/U)`` entries rescaled; ``'orthogonal'``), uses ``W = radius W_1`` for
    every radius (the same directions, only the scale changes), ``h_0 = 0`` and inputs
    ``x_t ~ N(0, input_scale^2 I)`` (they matter only for ``tanh``).
    """
    checks.one_of("recurrent_init", recurrent_init, RECURRENT_INITS)
    _activation(activation)
    matrix_key, input_key = jax.random.split(key)
    # The K seeds' matrices as the K independent gate blocks of one (U, K U) kernel: one flat
    # draw, which on a CPU compiles several times faster than K vmapped draws.
    kernel = recurrent_initializer(recurrent_init, 1.0)(matrix_key, (hidden_size, num_seeds * hidden_size))
    w_KxUxU = jnp.swapaxes(kernel.reshape(hidden_size, num_seeds, hidden_size), 0, 1)
    inputs_KxSxU = input_scale * jax.random.normal(input_key, (num_seeds * num_steps * hidden_size,)).reshape(
        num_seeds, num_steps, hidden_size)
    h0_U = jnp.zeros((hidden_size,))

    def seed(w_UxU, inputs_SxU):
        return jax.vmap(lambda r: state_jacobian_norms(r * w_UxU, h0_U, inputs_SxU, activation))(radii_G)

    return jnp.swapaxes(jax.vmap(seed)(w_KxUxU, inputs_KxSxU), 0, 1)


# ----------------------------------------------------------------------------- Omega


def _elman_parts(params: PyTree):
    """The (layer, readout) parameters of a one-layer, unidirectional zoo RNN; ValueError otherwise."""
    if not isinstance(params, dict) or set(params) != {"layer_0", "output"}:
        keys = sorted(params) if isinstance(params, dict) else type(params).__name__
        checks.fail("params", keys, "the parameters of get_model('rnn', num_layers=1, readout='last') "
                    "(keys ['layer_0', 'output'])")
    layer = params["layer_0"]
    if not {"input_kernel", "recurrent_kernel", "bias"} <= set(layer):
        checks.fail("params['layer_0']", sorted(layer), "an Elman layer (input_kernel, recurrent_kernel, bias)")
    return layer, params["output"]


def elman_states(params: PyTree, x_BxLxD, activation: str = "tanh", perturbation_BxLxU=None) -> jax.Array:
    """States ``h_BxLxU`` of the zoo's one-layer Elman RNN (``get_model('rnn', num_layers=1)``),
    recomputed with their own ``lax.scan`` from its ``params``: ``h_t = f(x_t W_x + h_{t-1} W_h + b)``
    from ``h_0 = 0``, with ``W_x, W_h, b`` = ``params['layer_0']`` ``input_kernel, recurrent_kernel,
    bias``. ``perturbation_BxLxU`` (default none) is added to each state as it is made, so that the
    gradient of a loss with respect to it is ``dC/dh_t``. ``x_BxL`` is read as one feature."""
    layer, _ = _elman_parts(params)
    act = get_activation(activation)
    x_BxLxD = jnp.asarray(x_BxLxD)
    x_BxLxD = x_BxLxD[..., None] if x_BxLxD.ndim == 2 else x_BxLxD
    xw_LxBxU = jnp.einsum("blf,fh->lbh", x_BxLxD, layer["input_kernel"]) + layer["bias"]
    if perturbation_BxLxU is None:
        perturbation_BxLxU = jnp.zeros(x_BxLxD.shape[:2] + xw_LxBxU.shape[-1:], xw_LxBxU.dtype)

    def step(h, inputs):
        xw, eps = inputs
        h = act(xw + h @ layer["recurrent_kernel"]) + eps
        return h, h

    h0 = jnp.zeros(xw_LxBxU.shape[1:], xw_LxBxU.dtype)
    _, h_LxBxU = jax.lax.scan(step, h0, (xw_LxBxU, jnp.swapaxes(perturbation_BxLxU, 0, 1)))
    return jnp.swapaxes(h_LxBxU, 0, 1)


def omega(params: PyTree, batch, *, loss_name: str = "mse", activation: str = "tanh") -> jax.Array:
    """Pascanu et al.'s regulariser for the zoo's Elman RNN with ``readout='last'``, mean over the batch::

        Omega = sum_{k=1}^{L-1} ( ||dC/dh_{k+1} dh_{k+1}/dh_k|| / ||dC/dh_{k+1}|| - 1 )^2

    ``C`` is the batch's mean ``loss_name`` of the read-out ``h_L W_o + b_o`` (``params['output']``)
    against ``y``; ``dC/dh_{k+1}`` is per example (the 1/B of the mean cancels in the ratio) and
    every term pairs two computed states, ``h_1 .. h_L`` (``h_0 = 0`` is no state of the net).
    ``dC/dh_{k+1}`` is held constant (``lax.stop_gradient``), as the paper does: the gradient of
    Omega moves the per-step Jacobian ``diag(f'(a_{k+1})) W_h^T`` (through ``W_h``, ``W_x``, ``b``
    and ``h_k``) so that it keeps the norm of the error it carries back, never the error itself.
    A term whose ``dC/dh_{k+1}`` is exactly zero counts 0. The states come from
    :func:`elman_states`' own scan over the same parameters; ``activation`` must be the model's.

    Args:
      params: ``get_model('rnn', num_layers=1, readout='last')`` parameters.
      batch: ``(x_BxLxD, y_BxO)``.
      loss_name: the training loss (``'mse'`` or ``'half_mse'`` for regression, ``'cross_entropy'``).
    """
    losses.check_loss_name(loss_name)
    layer, readout = _elman_parts(params)
    x, y = batch
    act = get_activation(activation)

    def cost(perturbation_BxLxU):
        h_BxLxU = elman_states(params, x, activation, perturbation_BxLxU)
        outputs = h_BxLxU[:, -1] @ readout["kernel"] + readout["bias"]
        return losses.PER_EXAMPLE_LOSSES[loss_name](outputs, y).mean(), h_BxLxU

    x = jnp.asarray(x)
    x = x[..., None] if x.ndim == 2 else x
    zeros = jnp.zeros(x.shape[:2] + layer["recurrent_kernel"].shape[:1], layer["recurrent_kernel"].dtype)
    errors_BxLxU, h_BxLxU = jax.grad(cost, has_aux=True)(zeros)
    incoming_BxLxU = jax.lax.stop_gradient(errors_BxLxU[:, 1:])
    # The ratio does not change when dC/dh_(k+1) is scaled, and dC/dh_(k+1) is held constant, so it
    # is scaled to unit norm first (through its largest entry: errors that vanished to 1e-30 keep
    # their direction in float32 instead of underflowing).
    largest = jnp.max(jnp.abs(incoming_BxLxU), axis=-1, keepdims=True)
    nonzero = largest[..., 0] > 0
    incoming_BxLxU = incoming_BxLxU / jnp.where(nonzero[..., None], largest, 1.0)
    incoming_BxLxU = incoming_BxLxU / jnp.where(nonzero, _norm(incoming_BxLxU), 1.0)[..., None]
    xw_next = jnp.einsum("blf,fh->blh", x[:, 1:], layer["input_kernel"]) + layer["bias"]
    # One step h_k -> h_(k+1) acts row by row, so one VJP gives every (example, k) at once.
    _, step_vjp = jax.vjp(lambda h_prev: act(xw_next + h_prev @ layer["recurrent_kernel"]), h_BxLxU[:, :-1])
    ratio = _norm(step_vjp(incoming_BxLxU)[0])
    return jnp.where(nonzero, jnp.square(ratio - 1.0), 0.0).sum(axis=1).mean()


def _norm(v):
    """Euclidean norm over the last axis with a zero gradient (not NaN) at the zero vector: a
    saturated tanh can carry an error back as exactly zero."""
    squares = jnp.sum(jnp.square(v), axis=-1)
    positive = squares > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, squares, 1.0)), 0.0)


@dataclasses.dataclass(frozen=True)
class OmegaRegularizer:
    """``strength * omega(params, batch)`` as a regulariser for :func:`jaxdl.train.fit`
    (``fit(..., regularizer=OmegaRegularizer(alpha))``), for the zoo's one-layer Elman RNN
    trained with ``loss_name``; called as ``regularizer(loss_fn, params, batch)`` (it recomputes
    the states itself, so ``loss_fn`` is unused)."""

    strength: float
    loss_name: str = "mse"
    activation: str = "tanh"

    def __post_init__(self):
        checks.number("strength", self.strength, inclusive=True)
        losses.check_loss_name(self.loss_name)
        get_activation(self.activation)

    def __call__(self, loss_fn, params, batch) -> jax.Array:
        return self.strength * omega(params, batch, loss_name=self.loss_name, activation=self.activation)
