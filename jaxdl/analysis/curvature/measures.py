"""Generalisation measures: norms, margins and flatness of a trained network, the candidates of
Jiang et al. 2020 ("Fantastic generalization measures and where to find them", appendix C).

Beside the curvature measures of this package (:func:`hessian_top_eigenvalues`,
:func:`hessian_trace`, :func:`epsilon_sharpness`) and the filter-normalised sharpness of
:mod:`jaxdl.analysis.landscape`:

- norms of the parameters: :func:`parameter_norm`, :func:`distance_to_init`,
  :func:`spectral_norms` (one per weight matrix; their product and sum are Jiang et al.'s
  spectral measures), :func:`path_norm` (Neyshabur, Salakhutdinov & Srebro 2015),
  :func:`fisher_rao_norm` (Liang, Poggio, Rakhlin & Stokes 2019);
- the output margin: :func:`output_margin`;
- flatness: :func:`adaptive_sharpness` (Kwon et al. 2021; Andriushchenko et al. 2023), the
  worst case over a box whose half-widths are proportional to the weights, and
  :func:`pac_bayes_flatness` (Jiang et al.'s ``pacbayes.flatness`` and
  ``pacbayes.mag.flatness``), the largest Gaussian perturbation whose expected loss increase
  stays under a target.

Under Dinh et al.'s function-preserving rescaling :func:`alpha_scale` the path norm, the
Fisher-Rao norm, the margin, the product of spectral norms, adaptive sharpness (``eta=0``) and
the magnitude-aware PAC-Bayes flatness (``epsilon=0``) do not move; the parameter norm, the
distance to initialisation, the sum of spectral norms, the plain PAC-Bayes flatness and every
curvature measure do.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxdl.core import batching, checks, compiled, tree
from jaxdl.analysis.curvature.hvp import default_key
from jaxdl.analysis.curvature.reparametrization import _leaf_keys
from jaxdl.analysis.curvature.sharpness import Sharpness, _projected_ascent, _start
from jaxdl.train import losses

__all__ = ["parameter_norm", "distance_to_init", "spectral_norms", "path_norm", "fisher_rao_norm", "output_margin",
           "adaptive_sharpness", "PacBayesFlatness", "pac_bayes_flatness"]

PyTree = Any


def parameter_norm(params: PyTree) -> jax.Array:
    """||theta||_2 over every leaf (Jiang et al.'s ``param.norm`` is its square)."""
    return jnp.sqrt(sum(jnp.sum(jnp.square(leaf)) for leaf in jax.tree.leaves(params)))


def distance_to_init(params: PyTree, initial_params: PyTree) -> jax.Array:
    """||theta - theta_0||_2 (Jiang et al.'s ``dist.init`` is its square; Nagarajan & Kolter 2019).

    Raises ``ValueError`` naming ``initial_params`` when its structure or shapes differ."""
    if jax.tree.structure(params) != jax.tree.structure(initial_params) or any(
            np.shape(a) != np.shape(b) for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(initial_params))):
        checks.fail("initial_params", "a pytree of other structure or shapes", "the structure and shapes of params")
    return parameter_norm(jax.tree.map(jnp.subtract, params, initial_params))


def spectral_norms(params: PyTree) -> dict[str, jax.Array]:
    """The largest singular value of every weight matrix: each leaf named ``kernel`` with
    ndim >= 2, a convolution's (*window, in, out) reshaped to (prod(window) * in, out), as
    Jiang et al. do (not the convolution operator's norm). Keyed by the leaf's path ('hidden_0/kernel').

    The product prod_i ||W_i||_2 (Jiang et al.'s spectral measures are functions of it) is
    unchanged by :func:`alpha_scale`; the plain sum sum_i ||W_i||_2 is not.

    Raises ``ValueError`` naming ``params`` when no leaf is a weight matrix."""
    norms = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        keys = _leaf_keys(path)
        if keys and keys[-1] == "kernel" and np.ndim(leaf) >= 2:
            matrix = jnp.reshape(leaf, (-1, np.shape(leaf)[-1]))
            norms["/".join(keys)] = jnp.linalg.svd(matrix, compute_uv=False)[0]
    if not norms:
        checks.fail("params", "no leaf named 'kernel' with ndim >= 2", "a network with weight matrices")
    return norms


def path_norm(apply_fn: Callable, params: PyTree, input_shape) -> jax.Array:
    """The l2 path norm (Neyshabur et al. 2015): sqrt of the sum over every input-to-output path
    (biases starting paths of their own) of the product of its squared weights, computed as
    ``sqrt(sum(apply_fn(theta^2, ones)))``: with every weight squared and an all-ones input each
    pre-activation is non-negative, so every ReLU passes it on (Jiang et al.'s ``path.norm``).
    Meaningful for ReLU networks of dense and convolutional layers, average pooling and
    residual sums; not for normalisation layers or max pooling.

    Args:
      apply_fn: ``apply_fn(params, x)``; params: pytree theta.
      input_shape: one example's shape (without the batch axis).
    """
    if not (isinstance(input_shape, (tuple, list)) and all(checks.is_integer(n) and n > 0 for n in input_shape)):
        checks.fail("input_shape", input_shape, "one example's shape, a tuple of positive integers")
    squared = jax.tree.map(jnp.square, params)
    x = jnp.ones((1, *tuple(input_shape)), jax.tree.leaves(params)[0].dtype)
    return jnp.sqrt(jnp.sum(apply_fn(squared, x)))


def _directional_losses(apply_fn, loss_name, params, chunk):
    """<theta, grad_theta loss_i>, one per example of the chunk (forward mode along theta)."""
    x, y = chunk
    per_example = lambda p: losses.PER_EXAMPLE_LOSSES[loss_name](apply_fn(p, x), y)  # noqa: E731
    return jax.jvp(per_example, (params,), (params,))[1]


@compiled.jit(static_argnames=("loss_name", "chunk_size"))
def _fisher_rao(apply_fn, params, batch, *, loss_name, chunk_size):
    mean_square = batching.dataset_mean(
        lambda chunk: jnp.mean(jnp.square(_directional_losses(apply_fn, loss_name, params, chunk))), batch, chunk_size)
    return jnp.sqrt(mean_square)


def fisher_rao_norm(apply_fn: Callable, params: PyTree, batch, *, loss_name: str = "cross_entropy",
                    chunk_size: int | None = None) -> jax.Array:
    """The Fisher-Rao norm (Liang et al. 2019, definition 2, with the data's labels):
    ||theta||_fr = sqrt(E_(x, y) <theta, grad_theta loss(f_theta(x), y)>^2). For a bias-free ReLU
    net of L + 1 weight layers <theta, grad_theta loss> = (L + 1) <d loss / d f, f> (their
    lemma 2.1); it is unchanged by :func:`alpha_scale`.

    Args:
      apply_fn: ``apply_fn(params, x)``; params: pytree theta.
      batch: ``(x_N..., y_N...)``, the data set.
      loss_name: a key of :data:`jaxdl.train.losses.PER_EXAMPLE_LOSSES`.
      chunk_size: examples per chunk, or None.
    """
    return _fisher_rao(apply_fn, params, batch, loss_name=losses.check_loss_name(loss_name),
                       chunk_size=checks.integer("chunk_size", chunk_size, allow_none=True))


def output_margin(apply_fn: Callable, params: PyTree, batch, *, percentile: float = 10.0) -> jax.Array:
    """The ``percentile``-th percentile over examples of f(x)_y - max_(j != y) f(x)_j, the
    margin of the logits (Jiang et al.'s ``1/margin`` takes the 10th percentile, so that a few
    misfit examples do not decide it). Negative where more than ``percentile``% of the examples
    are misclassified.

    Args:
      apply_fn: ``apply_fn(params, x) -> logits (N, C)``; batch: ``(x_N..., labels_N)``.
      percentile: in [0, 100].
    """
    percentile = checks.number("percentile", percentile, inclusive=True, maximum=100.0)
    x, y = batch
    logits = apply_fn(params, x)
    labels = jnp.asarray(y)
    true = jnp.take_along_axis(logits, labels[:, None], axis=1)[:, 0]
    others = jnp.where(jax.nn.one_hot(labels, logits.shape[-1], dtype=bool), -jnp.inf, logits)
    return jnp.percentile(true - jnp.max(others, axis=-1), percentile)


def adaptive_sharpness(loss_fn: Callable, params: PyTree, batch, rho: float, *, eta: float = 0.0,
                       num_steps: int = 20, step_size: float = 0.5, key: jax.Array | None = None,
                       chunk_size: int | None = None) -> Sharpness:
    """Adaptive (scale-invariant) sharpness, the l-infinity form of Kwon et al. 2021 and
    Andriushchenko et al. 2023:

        max_{|delta_i| <= rho (|theta_i| + eta)} L(theta + delta) - L(theta),

    found by projected sign-gradient ascent (as :func:`epsilon_sharpness` with
    ``method='ascent'``) from a random point of the box, the best iterate kept; one compiled
    ``lax.fori_loop``. With ``eta = 0`` the box moves with the weights, so :func:`alpha_scale`
    leaves the value unchanged; ``eta = 1`` is Keskar et al.'s box (their epsilon-sharpness,
    without its normalisation by 1 + L and its factor 100).

    Args:
      loss_fn: ``loss_fn(params, batch) -> scalar`` mean; params: pytree theta.
      batch: the data set (leading example axis).
      rho: the box's relative half-width (> 0).
      eta: added to |theta_i| (>= 0; Kwon et al.'s ASAM uses 0.01 so that zero weights move).
      num_steps, step_size: ascent steps and their length as a fraction of each half-width.
      key: PRNG key of the start; default ``jax.random.key(0)``.
      chunk_size: examples per chunk of the loss, or None.

    Returns:
      :class:`Sharpness` with ``value`` = the increase above (>= 0), the maximising
      ``perturbation``, ``loss`` L(theta) and ``perturbed_loss``.
    """
    rho = checks.number("rho", rho)
    eta = checks.number("eta", eta, inclusive=True)
    checks.integer("num_steps", num_steps)
    checks.integer("chunk_size", chunk_size, allow_none=True)
    x_D, _ = tree.flatten(params)
    _, bounds, u0 = _start(default_key(key), x_D, None, rho, subspace_dim=0, ball=False, offset=eta)
    found = _projected_ascent(loss_fn, params, batch, None, u0, bounds, step_size, num_steps=num_steps,
                              chunk_size=chunk_size, ball=False)
    return found._replace(value=found.perturbed_loss - found.loss)


class PacBayesFlatness(NamedTuple):
    """The result of :func:`pac_bayes_flatness`.

    Attributes:
      sigma: the largest sigma found whose expected loss increase is at most the target.
      flatness: 1 / sigma^2 (Jiang et al.'s measure: larger is sharper).
      deviation: the expected loss increase at ``sigma`` (Monte Carlo over the samples).
      loss: L(theta).
      bracketed: False when the target was not crossed inside ``sigma_range`` (``sigma`` is
        then an end of the range).
    """

    sigma: jax.Array
    flatness: jax.Array
    deviation: jax.Array
    loss: jax.Array
    bracketed: jax.Array


@compiled.jit(static_argnames=("num_samples", "bisection_steps", "samples_per_chunk", "chunk_size"))
def _pac_bayes(loss_fn, params, batch, key, target, log_range, epsilon, magnitude_aware, *, num_samples,
               bisection_steps, samples_per_chunk, chunk_size):
    x_D, unflatten = tree.flatten(params)
    noise_RxD = jax.random.normal(key, (num_samples, x_D.shape[0]), x_D.dtype)
    loss_at = lambda p: batching.dataset_mean(lambda chunk: loss_fn(p, chunk), batch, chunk_size)  # noqa: E731
    base = loss_at(params)

    def deviation(log_sigma):
        sigma = jnp.exp(log_sigma)
        std_D = jnp.where(magnitude_aware, jnp.sqrt(jnp.square(sigma * x_D) + jnp.square(epsilon)), sigma)
        perturbed = jax.lax.map(lambda n_D: loss_at(unflatten(x_D + std_D * n_D)), noise_RxD,
                                batch_size=samples_per_chunk)
        return jnp.mean(perturbed) - base

    low, high = log_range[0], log_range[1]
    low_ok, high_ok = deviation(low) <= target, deviation(high) <= target

    def bisect(_, bounds):
        low, high = bounds
        middle = 0.5 * (low + high)
        below = deviation(middle) <= target
        return jnp.where(below, middle, low), jnp.where(below, high, middle)

    low, high = jax.lax.fori_loop(0, bisection_steps, bisect, (low, high))
    # Every sigma of the range passes: its top; none passes: its bottom.
    log_sigma = jnp.where(high_ok, log_range[1], low)
    sigma = jnp.exp(log_sigma)
    return PacBayesFlatness(sigma, 1.0 / jnp.square(sigma), deviation(log_sigma), base, low_ok & ~high_ok)


def pac_bayes_flatness(loss_fn: Callable, params: PyTree, batch, *, key: jax.Array | None = None,
                       target: float = 0.1, magnitude_aware: bool = False, epsilon: float = 1e-3,
                       num_samples: int = 16, sigma_range: tuple[float, float] = (1e-5, 10.0),
                       bisection_steps: int = 20, samples_per_chunk: int | None = None,
                       chunk_size: int | None = None) -> PacBayesFlatness:
    """PAC-Bayes flatness (Jiang et al. 2020, appendix C, ``pacbayes.flatness`` and
    ``pacbayes.mag.flatness``): the largest sigma such that

        E_u [L(theta + u)] - L(theta) <= target,

    with u_i ~ N(0, sigma^2) or, ``magnitude_aware``, u_i ~ N(0, sigma^2 theta_i^2 + epsilon^2);
    the measure is 1 / sigma^2. The expectation is a mean over ``num_samples`` draws of u made
    once from ``key`` (the same draws at every sigma, so the deviation is a smooth function of
    sigma), and sigma is bisected in log space inside ``sigma_range``; one compiled program.
    ``loss_fn`` may be a loss or an error rate (Jiang et al. bound the deviation of the training
    error by 0.1). With ``magnitude_aware`` and ``epsilon = 0``, :func:`alpha_scale` leaves sigma
    unchanged.

    Args:
      loss_fn: ``loss_fn(params, batch) -> scalar`` mean; params: pytree theta.
      batch: the data set (leading example axis).
      key: PRNG key of the perturbations; default ``jax.random.key(0)``.
      target: the largest expected increase (> 0).
      magnitude_aware, epsilon: the perturbation's form (epsilon >= 0).
      num_samples: Monte Carlo draws S.
      sigma_range: (low, high), 0 < low < high.
      bisection_steps: halvings of the log-range.
      samples_per_chunk: draws evaluated at once (``lax.map``'s batch size; None: one by one).
      chunk_size: examples per chunk of the loss, or None.

    Returns:
      :class:`PacBayesFlatness`.
    """
    target = checks.number("target", target)
    epsilon = checks.number("epsilon", epsilon, inclusive=True)
    num_samples = checks.integer("num_samples", num_samples)
    bisection_steps = checks.integer("bisection_steps", bisection_steps, minimum=0)
    samples_per_chunk = checks.integer("samples_per_chunk", samples_per_chunk, allow_none=True)
    if not (len(sigma_range) == 2 and 0 < sigma_range[0] < sigma_range[1]):
        checks.fail("sigma_range", sigma_range, "(low, high) with 0 < low < high")
    log_range = jnp.log(jnp.asarray(sigma_range, tree.flatten(params)[0].dtype))
    return _pac_bayes(loss_fn, params, batch, default_key(key), target, log_range, epsilon, bool(magnitude_aware),
                      num_samples=num_samples, bisection_steps=bisection_steps, samples_per_chunk=samples_per_chunk,
                      chunk_size=checks.integer("chunk_size", chunk_size, allow_none=True))
