"""Adversarial examples by the fast gradient sign method, and adversarial training.

Goodfellow, Shlens & Szegedy 2015 ("Explaining and harnessing adversarial examples"): a model
that is close to linear in its input is fooled by a perturbation of at most eps per feature in the
direction that increases the loss fastest under that max-norm budget,

    x_adv = x + eps * sign(grad_x L(theta, x, y)),

and training on the mixed objective alpha L(x) + (1 - alpha) L(x_adv), alpha = 1/2, makes it
resist that perturbation.

- :func:`input_gradients` -- grad_x of each example's own loss, the shape of ``x``;
- :func:`fgsm` -- the perturbed inputs, optionally clipped to a valid input range;
- :func:`accuracy_under_attack` -- data-set means of the loss and accuracy under FGSM for a grid
  of eps, one compiled program: the input gradient of a chunk of examples is taken once and the
  G perturbed copies evaluated in turn (``lax.map``, or ``vmap``ped in groups), the chunks of
  examples ``lax.map``ped (:func:`jaxdl.core.batching.dataset_mean`);
- :func:`critical_eps` -- the smallest eps of such a curve at which accuracy falls to a fraction
  (a half) of its clean value, by linear interpolation;
- :class:`FGSMRegularizer` -- adversarial training through ``jaxdl.train.fit(..., regularizer=...)``.

Everything takes the pure ``apply_fn(params, x)`` and a ``loss_name`` (or, for the regulariser,
the ``loss_fn(params, batch)`` that ``fit`` hands it). Per-example gradients come from one
backward pass of the summed loss, which assumes that examples do not interact in ``apply_fn``
(true of every model in evaluation mode; BatchNorm statistics are closed over, not recomputed).
Shapes: ``x_Bx...`` inputs of any rank, ``y_B`` labels (``y_BxO`` targets for a regression loss),
``G`` eps values of a grid.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxdl.core import batching, checks, compiled, fits
from jaxdl.train import losses

__all__ = ["perturb", "fgsm_batch", "input_gradients", "fgsm", "accuracy_under_attack", "critical_eps", "FGSMRegularizer"]

PyTree = Any


# ----------------------------------------------------------------------------- argument checks


def _check_eps(eps):
    """``eps`` as a float if it is a concrete non-negative number; a traced value (inside a
    caller's ``jit``) passes unchecked."""
    try:
        value = np.asarray(eps)
    except jax.errors.TracerArrayConversionError:
        return eps
    if value.ndim != 0:
        checks.fail("eps", eps, "a non-negative number (a scalar; give a grid to accuracy_under_attack)")
    return checks.number("eps", value.item() if value.dtype.kind in "fiu" else eps, minimum=0.0, inclusive=True)


def _check_clip(clip):
    """``None`` or ``(low, high)`` as two floats with ``low < high``."""
    if clip is None:
        return None
    expected = "None or a pair (low, high) of numbers with low < high"
    if not isinstance(clip, (tuple, list)) or len(clip) != 2:
        checks.fail("clip", clip, expected)
    low, high = clip
    if not (checks.is_number(low) and checks.is_number(high)) or not float(low) < float(high):
        checks.fail("clip", clip, expected)
    return float(low), float(high)


def _check_apply_fn(apply_fn, loss_name):
    if not callable(apply_fn):
        checks.fail("apply_fn", apply_fn, "a callable apply_fn(params, x)")
    return losses.check_loss_name(loss_name)


def _check_examples(x, y):
    x_shape, y_shape = np.shape(x), np.shape(y)
    if len(x_shape) == 0 or len(y_shape) == 0 or x_shape[0] != y_shape[0]:
        raise ValueError(f"x and y must share a leading example axis, got shapes x={x_shape} and y={y_shape}")


# ----------------------------------------------------------------------------- the pieces (jit-able)


def _input_gradients(apply_fn, params, x, y, loss_name):
    # The sum of per-example losses: example b's gradient is that of its own loss, unscaled by B.
    def total_loss(inputs):
        return losses.PER_EXAMPLE_LOSSES[loss_name](apply_fn(params, inputs), y).sum()

    return jax.grad(total_loss)(x)


def perturb(x, direction, eps, clip=None):
    """``x + eps * direction``, clipped to ``clip = (low, high)`` when given; jit-able.

    ``direction`` has the shape of ``x`` (a sign pattern, for FGSM); ``eps`` a scalar.
    """
    x_adv = x + eps * direction
    return x_adv if clip is None else jnp.clip(x_adv, clip[0], clip[1])


def fgsm_batch(loss_fn: Callable, params: PyTree, batch, eps, clip=None):
    """The batch ``(x_adv, y)`` with FGSM inputs, from a batch ``loss_fn(params, batch) -> scalar``
    (the mean loss, e.g. :func:`jaxdl.train.losses.make_loss_fn`); jit-able, unchecked.

    The gradient of the mean has the signs of the per-example gradients (each is scaled by
    1/B), so this equals :func:`fgsm` for models whose examples do not interact. The result is
    a constant for differentiation with respect to ``params`` (sign has zero derivative).
    """
    x, y = batch
    frozen = jax.lax.stop_gradient(params)
    gradient = jax.grad(lambda inputs: loss_fn(frozen, (inputs, y)))(x)
    return jax.lax.stop_gradient(perturb(x, jnp.sign(gradient), eps, clip)), y


@compiled.jit
def _input_gradients_program(apply_fn, params, x, y, loss_name):
    return _input_gradients(apply_fn, params, x, y, loss_name)


@compiled.jit
def _fgsm_program(apply_fn, params, x, y, eps, clip, loss_name):
    return perturb(x, jnp.sign(_input_gradients(apply_fn, params, x, y, loss_name)), eps, clip)


# ----------------------------------------------------------------------------- public tools


def input_gradients(apply_fn: Callable, params: PyTree, x, y, loss_name: str = "cross_entropy"):
    """``grad_x_Bx...``: the gradient of each example's loss ``L(apply_fn(params, x_b), y_b)``
    with respect to its own input ``x_b``, in one backward pass; compiled once per model and
    shapes.

    Args:
      apply_fn: ``apply_fn(params, x_Bx...) -> outputs`` (e.g. :func:`jaxdl.train.make_apply_fn`).
      params: pytree theta.
      x: inputs ``x_Bx...``.
      y: labels ``y_B`` (or regression targets ``y_BxO``).
      loss_name: a key of :data:`jaxdl.train.losses.PER_EXAMPLE_LOSSES`.

    Returns:
      An array of the shape of ``x``.
    """
    loss_name = _check_apply_fn(apply_fn, loss_name)
    _check_examples(x, y)
    return _input_gradients_program(apply_fn, params, x, y, loss_name)


def fgsm(apply_fn: Callable, params: PyTree, x, y, eps, loss_name: str = "cross_entropy", clip=None):
    """Goodfellow et al.'s fast gradient sign method: ``x + eps * sign(grad_x L)`` per example,
    clipped to ``clip = (low, high)`` when given (e.g. ``(0, 1)`` for pixel intensities).

    Every feature moves by at most ``eps`` (exactly ``eps`` where the gradient is non-zero and no
    clipping applies); ``eps = 0`` returns ``x`` (clipped). ``eps`` and ``clip`` are traced, so
    other values reuse the compiled program.

    Args:
      apply_fn, params, x, y, loss_name: as in :func:`input_gradients`.
      eps: a non-negative number, in the units of ``x``.
      clip: ``None`` or ``(low, high)``.

    Returns:
      ``x_adv``, the shape of ``x``.

    Raises:
      ValueError: naming ``eps`` (negative, not a number), ``clip``, ``loss_name``, or ``x``/``y``.
    """
    loss_name = _check_apply_fn(apply_fn, loss_name)
    _check_examples(x, y)
    eps, clip = _check_eps(eps), _check_clip(clip)
    return _fgsm_program(apply_fn, params, x, y, eps, clip, loss_name)


def _check_grid(eps_G):
    values = np.asarray(eps_G, dtype=np.float64) if np.ndim(eps_G) == 1 else None
    if values is None or values.size == 0 or not np.all(np.isfinite(values)) or np.any(values < 0):
        checks.fail("eps_G", eps_G, "a non-empty 1-D sequence of non-negative numbers")
    return values


@compiled.jit
def _under_attack_program(apply_fn, params, batch, eps_G, clip, loss_name, chunk_size, eps_per_chunk):
    def chunk_means(chunk):
        x, y = chunk
        # The gradient does not depend on eps: one backward pass serves the whole grid.
        direction = jnp.sign(_input_gradients(apply_fn, params, x, y, loss_name))
        at_eps = lambda eps: losses.batch_metrics(loss_name, apply_fn(params, perturb(x, direction, eps, clip)), y)
        return batching.map_in_chunks(at_eps, eps_G, eps_per_chunk)

    return batching.dataset_mean(chunk_means, batch, chunk_size)


def accuracy_under_attack(apply_fn: Callable, params: PyTree, batch, eps_G, *, loss_name: str = "cross_entropy",
                          clip=None, chunk_size: int | None = None, eps_per_chunk: int | None = 1) -> dict:
    """Data-set means of the loss (and accuracy) under FGSM, for every eps of a grid.

    One compiled program (the same for any grid of the same length, any ``clip`` values and any
    model state closed over by an :class:`jaxdl.train.ApplyFn`): each chunk of ``chunk_size``
    examples gets its input gradient once, then its G perturbed copies are evaluated,
    ``eps_per_chunk`` of them at once (``vmap``) and the groups one after another (``lax.map``,
    :func:`jaxdl.core.batching.map_in_chunks`); chunks of examples are ``lax.map``ped and combined
    exactly. Peak memory is that of ``eps_per_chunk`` x ``chunk_size`` examples. On a CPU one eps
    at a time (the default) is fastest, since a vmapped group of perturbed copies does not fill
    its cores better than one; on an accelerator a larger ``eps_per_chunk`` (or None, all at once) fills the device. Each example
    is attacked through its own gradient (white-box FGSM).

    Args:
      apply_fn, params, loss_name: as in :func:`input_gradients`.
      batch: ``(x_Nx..., y_N)``.
      eps_G: non-negative eps values (units of ``x``); include 0 for the clean numbers.
      clip: ``None`` or ``(low, high)``, as in :func:`fgsm`.
      chunk_size: examples per chunk, or None for all at once.
      eps_per_chunk: eps values evaluated together, or None for all at once.

    Returns:
      ``{'loss': loss_G[, 'accuracy': accuracy_G]}`` (accuracy for classification losses).
    """
    loss_name = _check_apply_fn(apply_fn, loss_name)
    x, y = batch
    _check_examples(x, y)
    eps_G = jnp.asarray(_check_grid(eps_G), dtype=jnp.result_type(float))
    chunk_size = checks.integer("chunk_size", chunk_size, allow_none=True)
    eps_per_chunk = checks.integer("eps_per_chunk", eps_per_chunk, allow_none=True)
    return _under_attack_program(apply_fn, params, (x, y), eps_G, _check_clip(clip), loss_name, chunk_size,
                                 eps_per_chunk)


def critical_eps(eps_G, accuracy_G, fraction: float = 0.5) -> float:
    """The smallest eps at which the accuracy curve falls to ``fraction`` of its clean value
    ``accuracy_G[0]`` (at ``eps_G[0] = 0``), linearly interpolated between grid points; ``inf``
    if it never does on the grid.

    Args:
      eps_G: increasing grid starting at 0.
      accuracy_G: accuracy at each eps (e.g. from :func:`accuracy_under_attack`).
      fraction: in (0, 1]; 0.5 is "the eps that halves accuracy".
    """
    eps_G, accuracy_G = np.asarray(eps_G, np.float64), np.asarray(accuracy_G, np.float64)
    if eps_G.ndim != 1 or eps_G.size < 2 or eps_G[0] != 0 or np.any(np.diff(eps_G) <= 0):
        checks.fail("eps_G", eps_G, "an increasing 1-D grid of at least two values starting at 0")
    if accuracy_G.shape != eps_G.shape:
        raise ValueError(f"accuracy_G has shape {accuracy_G.shape} but eps_G has {eps_G.shape}")
    fraction = checks.number("fraction", fraction, maximum=1.0)
    level = fraction * accuracy_G[0]
    i = fits.first_crossing(accuracy_G, level, rising=False, never=-1)
    if i < 0:
        return float("inf")
    if i == 0:
        return 0.0
    # Between the last grid point above the level and the first one at or below it.
    a0, a1 = accuracy_G[i - 1], accuracy_G[i]
    return float(eps_G[i - 1] + (a0 - level) / (a0 - a1) * (eps_G[i] - eps_G[i - 1]))


@dataclasses.dataclass(frozen=True)
class FGSMRegularizer:
    """Adversarial training (Goodfellow et al. 2015, section 6) as a regulariser of
    :func:`jaxdl.train.fit`: ``fit(..., regularizer=FGSMRegularizer(eps, alpha=0.5))``.

    Called as ``regularizer(loss_fn, params, batch)`` it returns ``((1 - alpha) / alpha) *
    L(x_adv)``, with ``x_adv`` the FGSM inputs of the batch at the current parameters (held
    constant, as in the paper: sign has zero derivative). Added to the step's clean loss, each
    step descends ``(1 / alpha) * [alpha L(x) + (1 - alpha) L(x_adv)]``: the paper's mixed
    objective, scaled by ``1 / alpha`` (2 for alpha = 1/2). The minimiser is the same, and so is
    every step of a scale-invariant optimiser such as Adam; for plain SGD multiply the learning
    rate by ``alpha`` to match. ``alpha = 1`` is ordinary training.

    Cost: two more forward and backward passes per step (the input gradient, the adversarial
    loss). ``x_adv`` is built in evaluation mode (``loss_fn``).

    Attributes:
      eps: non-negative perturbation size, in the units of the inputs.
      alpha: weight of the clean loss, in (0, 1].
      clip: ``None`` or ``(low, high)``, the valid input range.
    """

    eps: float
    alpha: float = 0.5
    clip: tuple | None = None

    def __post_init__(self):
        object.__setattr__(self, "eps", _check_eps(self.eps))
        object.__setattr__(self, "alpha", checks.number("alpha", self.alpha, maximum=1.0))
        object.__setattr__(self, "clip", _check_clip(self.clip))

    def __call__(self, loss_fn, params, batch):
        adversarial = fgsm_batch(loss_fn, params, batch, self.eps, self.clip)
        return (1 - self.alpha) / self.alpha * loss_fn(params, adversarial)
