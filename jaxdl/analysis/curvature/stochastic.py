"""Randomised spectral estimates: Hutchinson's trace and the stochastic-Lanczos density.

Each is one compiled program: Hutchinson's samples are second directional derivatives
(:func:`hessian_quadratic_form`); SLQ's runs are Lanczos on a flat operator, the Hessian
(:func:`hessian_matvec`) or the Gauss-Newton matrix (:func:`gauss_newton_matvec`). The random
probes (Hutchinson) or starts (SLQ) are evaluated in chunks
(:func:`jaxdl.core.batching.map_in_chunks`), by default of the size measured fastest on the
backend (:data:`PROBES_PER_CHUNK`).
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from jaxdl.core import batching, checks, compiled, meshes, tree
from jaxdl.core.linalg import lanczos, tridiagonal
from jaxdl.analysis.curvature.hvp import default_key, gauss_newton_matvec, hessian_matvec, hessian_quadratic_form

__all__ = ["PROBES_PER_CHUNK", "default_probes_per_chunk", "TraceEstimate", "SpectralDensity", "hessian_trace",
           "hessian_spectral_density", "gauss_newton_spectral_density"]

PyTree = Any
# Probes (or SLQ runs) evaluated together by default, per backend: on a CPU a vmapped batch of
# probes costs more than the same products one after another, so one at a time (a ``lax.map``);
# other backends take all at once, where a vmapped batch fills the device. The benchmark's
# Hutchinson rows compare the two.
PROBES_PER_CHUNK = {"cpu": 1}


def default_probes_per_chunk(backend: str | None = None) -> int | None:
    """``probes_per_chunk='auto'``: :data:`PROBES_PER_CHUNK` for ``backend`` (default
    ``jax.default_backend()``), None (all at once) for a backend not in it."""
    return PROBES_PER_CHUNK.get(backend or jax.default_backend())


def _probes_per_chunk(name, value):
    return batching.items_per_chunk(name, value, PROBES_PER_CHUNK, None)


class TraceEstimate(NamedTuple):
    """``estimate`` of tr(H) and its ``standard_error`` (sample std / sqrt(num_probes))."""

    estimate: jax.Array
    standard_error: jax.Array


class SpectralDensity(NamedTuple):
    """A stochastic-Lanczos-quadrature density.

    Attributes:
      grid: (G,) eigenvalue axis, from the smallest to the largest Ritz value padded by six
        bandwidths.
      density: (G,) Gaussian-broadened density on ``grid``; integrates to 1.
      nodes: (R, S) Ritz values of each of the R runs (quadrature nodes).
      weights: (R, S) quadrature weights (squared first components of T's eigenvectors); each
        row sums to 1.
    """

    grid: jax.Array
    density: jax.Array
    nodes: jax.Array
    weights: jax.Array


@compiled.jit(static_argnames=("num_probes", "chunk_size", "probes_per_chunk"))
def _hutchinson(loss_fn, params, batch, key, where, *, num_probes, chunk_size, probes_per_chunk):
    params_P, unflatten = tree.flatten(params)
    mask_P = jnp.ones_like(params_P) if where is None else tree.flatten(where)[0].astype(params_P.dtype)

    def quadratic_form(probe_key):
        z_P = jax.random.rademacher(probe_key, params_P.shape, params_P.dtype) * mask_P
        return hessian_quadratic_form(loss_fn, params, batch, unflatten(z_P), chunk_size=chunk_size)

    samples_R = batching.map_in_chunks(quadratic_form, jax.random.split(key, num_probes), probes_per_chunk)
    standard_error = jnp.std(samples_R, ddof=1) / jnp.sqrt(num_probes)
    return TraceEstimate(jnp.mean(samples_R), standard_error)


def hessian_trace(loss_fn: Callable, params: PyTree, batch: PyTree, *, num_probes: int = 100,
                  key: jax.Array | None = None, chunk_size: int | None = None,
                  probes_per_chunk: int | str | None = "auto", where: PyTree | None = None) -> TraceEstimate:
    """Hutchinson's estimate of tr(H) with Rademacher probes, and its standard error.

    tr(H) = E[z^T H z] for z with i.i.d. +-1 entries (Hutchinson 1989); the variance of one
    sample is 2 (||H||_F^2 - sum_i H_ii^2), the smallest of any i.i.d. probe distribution. Each
    sample z^T H z is a second directional derivative (:func:`hessian_quadratic_form`,
    forward-over-forward), cheaper than a Hessian-vector product.
    Probes are drawn from ``key`` one by one (never an (R, P) matrix) and evaluated in chunks
    of ``probes_per_chunk`` (``vmap`` within a chunk, ``lax.map`` across chunks); ``'auto'``
    picks the backend's measured best (:data:`PROBES_PER_CHUNK`). With ``where`` (a pytree like ``params``
    of 0/1 masks) the probes vanish outside the mask, which estimates the trace of the Hessian
    block of the selected parameters, sum_{i in mask} H_ii (e.g. one layer's); the same
    ``key`` draws the same probes whatever the mask.

    Args:
      loss_fn, params, batch, chunk_size: as for :func:`hessian_top_eigenvalues`.
      num_probes: R >= 2.
      key: PRNG key (default ``jax.random.key(0)``).
      probes_per_chunk: probes evaluated together (``vmap``), None for all at once, or
        ``'auto'`` (one at a time on a CPU, all at once elsewhere).
      where: None (the whole Hessian) or a 0/1 mask pytree shaped like ``params``.

    Returns:
      :class:`TraceEstimate` (estimate, standard_error), scalars; the standard error is the
      sample standard deviation over sqrt(R).
    """
    checks.integer("chunk_size", chunk_size, allow_none=True)
    num_probes = checks.integer("num_probes", num_probes, minimum=2)
    probes_per_chunk = _probes_per_chunk("probes_per_chunk", probes_per_chunk)
    if where is not None:
        checks.same_structure("where", where, params)
    batch, params, where = meshes.shard_examples(batch, params, where)
    return _hutchinson(loss_fn, params, batch, default_key(key), where, num_probes=num_probes, chunk_size=chunk_size,
                       probes_per_chunk=probes_per_chunk)


def _slq_on(matvec, key, bandwidth, like_P, *, num_steps, num_runs, num_points, runs_per_chunk) -> SpectralDensity:
    """Stochastic Lanczos quadrature of the symmetric operator ``matvec`` on R^P (``like_P`` gives
    P and the dtype): R runs of ``num_steps`` Lanczos steps from Gaussian starts, their Gauss
    quadrature nodes and weights, and the density broadened by Gaussians of width ``bandwidth``
    (<= 0: 1% of the nodes' range). Call inside ``jit``."""
    def one_run(run_key):
        start_P = jax.random.normal(run_key, like_P.shape, like_P.dtype)
        result = lanczos(matvec, start_P, num_steps)
        theta_S, s_SxS = jnp.linalg.eigh(tridiagonal(result.alphas, result.betas))
        return theta_S, jnp.square(s_SxS[0])

    nodes_RxS, weights_RxS = batching.map_in_chunks(one_run, jax.random.split(key, num_runs), runs_per_chunk)
    low, high = jnp.min(nodes_RxS), jnp.max(nodes_RxS)
    span = jnp.maximum(high - low, 1e-3 * jnp.maximum(jnp.abs(low), jnp.abs(high)))
    span = jnp.maximum(span, jnp.finfo(like_P.dtype).eps)
    sigma = jnp.where(bandwidth > 0, bandwidth, 0.01 * span).astype(like_P.dtype)
    grid_G = jnp.linspace(low - 6 * sigma, high + 6 * sigma, num_points)
    gaussians_GxRS = jnp.exp(-0.5 * jnp.square((grid_G[:, None] - nodes_RxS.reshape(-1)) / sigma))
    density_G = gaussians_GxRS @ weights_RxS.reshape(-1) / (num_runs * sigma * jnp.sqrt(2 * jnp.pi))
    return SpectralDensity(grid_G, density_G, nodes_RxS, weights_RxS)


@compiled.jit(static_argnames=("num_steps", "num_runs", "num_points", "chunk_size", "runs_per_chunk"))
def _slq(matvec_of, params, batch, key, bandwidth, *, num_steps, num_runs, num_points, chunk_size, runs_per_chunk):
    matvec = matvec_of(params, batch, chunk_size=chunk_size)
    return _slq_on(matvec, key, bandwidth, tree.flatten(params)[0], num_steps=num_steps, num_runs=num_runs,
                   num_points=num_points, runs_per_chunk=runs_per_chunk)


def _spectral_density(matvec_of, params, batch, *, num_steps, num_runs, num_points, bandwidth, key, chunk_size,
                      runs_per_chunk) -> SpectralDensity:
    """Checks the arguments and runs :func:`_slq` on the operator ``matvec_of(params, batch,
    chunk_size=...) -> matvec`` (a ``Partial`` pytree, keyed as :mod:`jaxdl.core.compiled` keys a
    callable)."""
    checks.integer("chunk_size", chunk_size, allow_none=True)
    num_steps = checks.integer("num_steps", num_steps, maximum=tree.count(params),
                               maximum_name="the number of parameters P")
    num_runs = checks.integer("num_runs", num_runs)
    num_points = checks.integer("num_points", num_points, minimum=2)
    bandwidth = checks.number("bandwidth", bandwidth, allow_none=True)
    runs_per_chunk = _probes_per_chunk("runs_per_chunk", runs_per_chunk)
    batch, params = meshes.shard_examples(batch, params)
    return _slq(matvec_of, params, batch, default_key(key), -1.0 if bandwidth is None else bandwidth,
                num_steps=num_steps, num_runs=num_runs, num_points=num_points, chunk_size=chunk_size,
                runs_per_chunk=runs_per_chunk)


def hessian_spectral_density(loss_fn: Callable, params: PyTree, batch: PyTree, *, num_steps: int = 30,
                             num_runs: int = 4, num_points: int = 1000, bandwidth: float | None = None,
                             key: jax.Array | None = None, chunk_size: int | None = None,
                             runs_per_chunk: int | str | None = "auto") -> SpectralDensity:
    """The Hessian's eigenvalue density by stochastic Lanczos quadrature (SLQ).

    Ghorbani, Krishnan & Xiao 2019, "An investigation into neural net optimization via Hessian
    eigenvalue density"; Ubaru, Chen & Saad 2017. For each of R Gaussian starts v, S Lanczos
    steps give T = U diag(theta) U^T; the Gauss quadrature nodes theta_j with weights
    U_{0j}^2 approximate the spectral measure seen from v, whose average over v is the
    eigenvalue density (1/P) sum_i delta(t - lambda_i). Each node is broadened by a Gaussian
    of standard deviation ``bandwidth`` and the R runs are averaged. The R runs are Lanczos
    recurrences ``vmap``ped in chunks of ``runs_per_chunk`` (as ``probes_per_chunk`` in
    :func:`hessian_trace`).

    Args:
      loss_fn, params, batch, chunk_size: as for :func:`hessian_top_eigenvalues`.
      num_steps: Lanczos steps S per run (<= P).
      num_runs: R random starts.
      num_points: G grid points (keep the grid spacing well below the bandwidth).
      bandwidth: Gaussian width in eigenvalue units; None: 1% of the Ritz values' range.
      key: PRNG key (default ``jax.random.key(0)``).
      runs_per_chunk: runs evaluated together, None for all at once, or ``'auto'``.

    Returns:
      :class:`SpectralDensity` (grid_G, density_G, nodes_RxS, weights_RxS); plot it with
      :func:`jaxdl.plot.spectral_density`.
    """
    return _spectral_density(jax.tree_util.Partial(hessian_matvec, loss_fn), params, batch, num_steps=num_steps,
                             num_runs=num_runs, num_points=num_points, bandwidth=bandwidth, key=key,
                             chunk_size=chunk_size, runs_per_chunk=runs_per_chunk)


def gauss_newton_spectral_density(apply_fn: Callable, output_loss_fn: Callable, params: PyTree, batch: PyTree, *,
                                  num_steps: int = 30, num_runs: int = 4, num_points: int = 1000,
                                  bandwidth: float | None = None, key: jax.Array | None = None,
                                  chunk_size: int | None = None,
                                  runs_per_chunk: int | str | None = "auto") -> SpectralDensity:
    """The eigenvalue density of the generalised Gauss-Newton matrix G = J^T H_out J by
    stochastic Lanczos quadrature: :func:`hessian_spectral_density` on
    :func:`gauss_newton_matvec` (Schraudolph 2002) instead of the Hessian, with the same
    arguments, starts and numbers of products. Beside the Hessian's density it shows which part
    of the spectrum G carries: its outliers are G's, the rest of H is the residual H - G
    (Papyan 2019, "Measurements of three-level hierarchical structure in the outliers in the
    spectrum of deepnet Hessians"; Sagun et al. 2017). G is positive semi-definite for a convex
    ``output_loss_fn``, with rank at most N times the output dimension: the rest of its mass
    sits at zero.

    Args:
      apply_fn: ``apply_fn(params, x_Bx...) -> outputs_Bx...``.
      output_loss_fn: ``output_loss_fn(outputs_Bx..., y_B...) -> scalar`` mean over the batch
        (e.g. :func:`jaxdl.train.losses.cross_entropy`).
      params, batch (``(x_Nx..., y_N...)``), num_steps, num_runs, num_points, bandwidth, key,
        chunk_size, runs_per_chunk: as for :func:`hessian_spectral_density`.

    Returns:
      :class:`SpectralDensity` (grid_G, density_G, nodes_RxS, weights_RxS).
    """
    return _spectral_density(jax.tree_util.Partial(gauss_newton_matvec, apply_fn, output_loss_fn), params, batch,
                             num_steps=num_steps, num_runs=num_runs, num_points=num_points, bandwidth=bandwidth,
                             key=key, chunk_size=chunk_size, runs_per_chunk=runs_per_chunk)
