"""Reading a curvature spectrum: mass and index from a density, outliers by their gap, and the
part of the Hessian the Gauss-Newton matrix does not explain.

Deep-net Hessians split into a bulk near zero and a few large outliers (Sagun et al. 2017,
"Empirical analysis of the Hessian of over-parametrized neural networks"); the outliers are the
Gauss-Newton matrix G's, and the rest of H = G + (H - G) adds the bulk (Papyan 2019,
"Measurements of three-level hierarchical structure in the outliers in the spectrum of deepnet
Hessians"). The tools here measure each part:

- :func:`spectral_mass`, :func:`spectral_index`: the fraction of eigenvalues below, above or
  between thresholds, from a stochastic-Lanczos density (:func:`hessian_spectral_density`,
  :func:`gauss_newton_spectral_density`), with a standard error over its runs;
- :func:`outlier_count` (the criterion alone), :func:`hessian_outliers`,
  :func:`gauss_newton_outliers`: the outliers above the largest gap among the top eigenvalues;
- :func:`hessian_gauss_newton_residual`: H, G and H - G restricted to a subspace (e.g. the top
  eigenvectors).

Each tool over a model is one program compiled by :func:`jaxdl.core.compiled.jit`, reused by a
second call on the same model and shapes.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxdl.core import batching, checks, compiled, meshes, tree
from jaxdl.analysis.curvature.eigen import (EXTRA_STEPS, _extreme_ritz_pairs, _gauss_newton_operator,
                                            _hessian_operator)
from jaxdl.analysis.curvature.hvp import default_key, gauss_newton_matvec, hessian_matvec
from jaxdl.analysis.curvature.stochastic import PROBES_PER_CHUNK, SpectralDensity

__all__ = ["SpectralMass", "spectral_mass", "spectral_index", "Outliers", "outlier_count", "hessian_outliers",
           "gauss_newton_outliers", "SubspaceResidual", "hessian_gauss_newton_residual"]

PyTree = Any
_HIGHEST = jax.lax.Precision.HIGHEST


# ----------------------------------------------------------------------------- mass and index


class SpectralMass(NamedTuple):
    """A fraction of the eigenvalues estimated from R stochastic-Lanczos runs.

    Attributes:
      estimate: scalar, the mean over the R runs.
      standard_error: scalar, the runs' sample standard deviation (ddof=1) over sqrt(R); NaN
        when R == 1.
      per_run: (R,) each run's estimate.
    """

    estimate: jax.Array
    standard_error: jax.Array
    per_run: jax.Array


@compiled.jit
def _mass(nodes_RxS, weights_RxS, below, above):
    inside_RxS = jnp.ones(nodes_RxS.shape, bool)
    if below is not None:
        inside_RxS &= nodes_RxS < below
    if above is not None:
        inside_RxS &= nodes_RxS > above
    per_run_R = jnp.sum(jnp.where(inside_RxS, weights_RxS, 0), axis=1)
    num_runs = per_run_R.shape[0]
    standard_error = (jnp.std(per_run_R, ddof=1) / jnp.sqrt(num_runs) if num_runs > 1
                      else jnp.asarray(jnp.nan, per_run_R.dtype))
    return SpectralMass(jnp.mean(per_run_R), standard_error, per_run_R)


def spectral_mass(density: SpectralDensity, *, below: float | None = None,
                  above: float | None = None) -> SpectralMass:
    """The fraction of eigenvalues below ``below``, above ``above``, or between the two, from a
    stochastic-Lanczos density, with its standard error over the density's R runs.

    Run r's estimate is the sum of its quadrature weights ``density.weights[r, j]`` over the
    nodes ``density.nodes[r, j] < below`` (``> above``; both given: strictly between). That is
    Gauss quadrature of a step function against the spectral measure seen from the run's start
    v, whose mean over Gaussian v is the fraction sought (Ubaru, Chen & Saad 2017): a quadrature
    exact for polynomials of degree 2S - 1 but not for a step, so it resolves the threshold only
    to the spacing of the Ritz nodes near it (all S nodes lie on one side of a gap of the
    spectrum, so a threshold inside a gap is exact per run with S = P, and then only the start
    vectors vary). The standard error measures the spread over starts, not that resolution.

    Args:
      density: a :class:`SpectralDensity` (``nodes`` and ``weights`` of shape (R, S)).
      below, above: thresholds in eigenvalue units; one of them, or both with ``above < below``.

    Returns:
      :class:`SpectralMass` (estimate, standard_error, per_run_R).
    """
    below = checks.number("below", below, minimum=None, allow_none=True)
    above = checks.number("above", above, minimum=None, allow_none=True)
    if below is None and above is None:
        raise ValueError("spectral_mass needs below, above or both (the mass below, above or between them); "
                         "got below=None and above=None")
    if below is not None and above is not None and not above < below:
        raise ValueError(f"above must be less than below for the mass between them, got above={above} "
                         f"and below={below}")
    nodes_RxS, weights_RxS = getattr(density, "nodes", None), getattr(density, "weights", None)
    if nodes_RxS is None or np.ndim(nodes_RxS) != 2 or np.shape(nodes_RxS) != np.shape(weights_RxS):
        checks.fail("density", type(density).__name__, "a SpectralDensity with nodes and weights of shape (R, S)")
    return _mass(nodes_RxS, weights_RxS, below, above)


def spectral_index(density: SpectralDensity, threshold: float = 0.0) -> SpectralMass:
    """The index of a critical point: the fraction of eigenvalues below ``threshold``
    (:func:`spectral_mass` ``(density, below=threshold)``).

    Dauphin et al. 2014, "Identifying and attacking the saddle point problem in high-dimensional
    non-convex optimization": the index is the fraction of negative eigenvalues. A threshold
    a little below 0 discounts the rounding-level negative eigenvalues of the bulk. The estimate
    is Gauss quadrature of a step function, so it resolves the threshold only to the spacing of
    the Ritz nodes near it; a bulk piled up at zero makes the index sensitive to that spacing.

    Returns:
      :class:`SpectralMass` (estimate, standard_error, per_run_R).
    """
    return spectral_mass(density, below=checks.number("threshold", threshold, minimum=None))


# ----------------------------------------------------------------------------- outliers


class Outliers(NamedTuple):
    """The top eigenvalues and the outliers among them (:func:`outlier_count`).

    Attributes:
      eigenvalues: (Q,) the Q = max_outliers + 1 largest eigenvalues examined, descending.
      count: int scalar, the number of outliers: ``eigenvalues[:count]``.
      ratios: (Q - 1,) ``eigenvalues[i] / eigenvalues[i + 1]`` (see :func:`outlier_count` for
        non-positive eigenvalues).
      bulk_edge: ``eigenvalues[count]``, the largest eigenvalue of the bulk.
      steps: the Lanczos steps spent (one matrix-vector product each).
    """

    eigenvalues: jax.Array
    count: jax.Array
    ratios: jax.Array
    bulk_edge: jax.Array
    steps: jax.Array


def outlier_count(eigenvalues_Q) -> tuple[jax.Array, jax.Array]:
    """The number of outliers among the Q largest eigenvalues: those above the largest ratio
    between consecutive eigenvalues.

    The outliers of a deep-net Hessian stand apart from the bulk by a gap (Sagun et al. 2017;
    Papyan 2019), and ratios compare gaps across scales: with the eigenvalues sorted descending,
    r_i = lambda_i / lambda_{i+1} for i < Q - 1 and count = 1 + argmax_i r_i (the first of
    equal maxima). Eigenvalues at most 100 eps |lambda_0| (eps of the dtype: the rounding level of
    a Lanczos run) count as zero, and a gap down to zero is infinite: r_i = +inf where lambda_i
    is positive and lambda_{i+1} is not, NaN (never the maximum) where neither is. So when one
    of the Q eigenvalues is not positive the count stops at the first such: it is the number of
    positive eigenvalues, whatever the gaps above (the rank, for a Gauss-Newton matrix of rank
    below Q); it is 0 when the largest is not positive. Ask for Q within the positive part of
    the spectrum, and read ``ratios``. Pure: NumPy or JAX input, jit-able.

    Args:
      eigenvalues_Q: (Q,) eigenvalues, Q >= 2 (sorted descending here).

    Returns:
      ``(count, ratios)``: an int32 scalar in [0, Q - 1] and the (Q - 1,) ratios of the sorted
      eigenvalues.
    """
    if np.ndim(eigenvalues_Q) != 1 or np.shape(eigenvalues_Q)[0] < 2:
        checks.fail("eigenvalues_Q", f"an array of shape {np.shape(eigenvalues_Q)}",
                    "a 1-D array of Q >= 2 eigenvalues")
    return _outlier_count(eigenvalues_Q)


@jax.jit
def _outlier_count(eigenvalues_Q):
    eigenvalues_Q = eigenvalues_Q.astype(jnp.promote_types(eigenvalues_Q.dtype, jnp.float32))
    descending_Q = jnp.sort(eigenvalues_Q)[::-1]
    rounding = 100 * jnp.finfo(descending_Q.dtype).eps * jnp.abs(descending_Q[0])
    positive_Q = descending_Q > rounding
    upper, lower = descending_Q[:-1], descending_Q[1:]
    ratios = jnp.where(positive_Q[1:], upper / jnp.where(positive_Q[1:], lower, 1),
                       jnp.where(positive_Q[:-1], jnp.inf, jnp.nan))
    largest = jnp.argmax(jnp.where(jnp.isnan(ratios), -jnp.inf, ratios))
    count = jnp.where(positive_Q[0], 1 + largest, 0).astype(jnp.int32)
    return count, ratios


@compiled.jit(static_argnames=("num_steps", "chunk_size", "k", "extra_steps"))
def _outliers(operator, params, batch, key, tol, *, num_steps, chunk_size, k, extra_steps):
    eigenvalues_Q, _, steps = _extreme_ritz_pairs(operator, params, batch, key, tol, num_steps=num_steps,
                                                  chunk_size=chunk_size, k=k, which="top", use_gradient=False,
                                                  extra_steps=extra_steps)
    count, ratios = outlier_count(eigenvalues_Q)
    return Outliers(eigenvalues_Q, count, ratios, eigenvalues_Q[count], steps)


def _find_outliers(operator, params, batch, *, max_outliers, num_steps, tol, key, chunk_size,
                   extra_steps) -> Outliers:
    num_parameters = tree.count(params)
    # max_outliers + 1 eigenvalues are examined, so at most P - 1 outliers.
    max_outliers = checks.integer("max_outliers", max_outliers, maximum=num_parameters - 1,
                                  maximum_name="the number of parameters less one, P - 1")
    k = max_outliers + 1
    num_steps = min(num_parameters, 3 * k + 20) if num_steps is None else num_steps
    num_steps = checks.integer("num_steps", num_steps, minimum=k, maximum=num_parameters,
                               maximum_name="the number of parameters P")
    tol = checks.number("tol", tol, allow_none=True)
    checks.integer("chunk_size", chunk_size, allow_none=True)
    extra_steps = checks.integer("extra_steps", extra_steps, minimum=0)
    batch, params = meshes.shard_examples(batch, params)
    return _outliers(operator, params, batch, default_key(key), tol, num_steps=num_steps, chunk_size=chunk_size,
                     k=k, extra_steps=extra_steps)


def hessian_outliers(loss_fn: Callable, params: PyTree, batch: PyTree, *, max_outliers: int = 20,
                     num_steps: int | None = None, tol: float | None = 1e-3, key: jax.Array | None = None,
                     chunk_size: int | None = None, extra_steps: int = EXTRA_STEPS) -> Outliers:
    """The Hessian's outliers: its Q = ``max_outliers + 1`` largest eigenvalues by Lanczos and
    the number above the largest gap among them (:func:`outlier_count`: count = 1 + argmax_i
    lambda_i / lambda_{i+1}; Sagun et al. 2017, Papyan 2019).

    The Lanczos run of :func:`hessian_top_eigenvalues` with k = Q from a Gaussian start: until
    each of the Q Ritz values is within ``tol`` of an eigenvalue (then ``extra_steps`` more), at
    most ``num_steps`` steps, or exactly ``num_steps`` with ``tol=None``. The count is at most
    ``max_outliers``, so a spectrum with more outliers than that, or with no gap, still returns
    the largest ratio it saw: read ``ratios`` (a ratio near 1 is no gap). Interior Ritz values
    converge more slowly than the extreme ones, and the Q-th may take the whole ``num_steps``.
    One compiled program.

    Args:
      loss_fn, params, batch, key, chunk_size, extra_steps: as for
        :func:`hessian_top_eigenvalues`.
      max_outliers: the most outliers to report, ``1 <= max_outliers < P``.
      num_steps: Lanczos steps at most, ``Q <= num_steps <= P``; None: min(P, 3 Q + 20).
      tol: relative tolerance > 0 on the eigenvalues, or None for exactly ``num_steps`` steps.

    Returns:
      :class:`Outliers` (eigenvalues_Q, count, ratios, bulk_edge, steps).
    """
    return _find_outliers(_hessian_operator(loss_fn), params, batch, max_outliers=max_outliers, num_steps=num_steps,
                          tol=tol, key=key, chunk_size=chunk_size, extra_steps=extra_steps)


def gauss_newton_outliers(apply_fn: Callable, output_loss_fn: Callable, params: PyTree, batch: PyTree, *,
                          max_outliers: int = 20, num_steps: int | None = None, tol: float | None = 1e-3,
                          key: jax.Array | None = None, chunk_size: int | None = None,
                          extra_steps: int = EXTRA_STEPS) -> Outliers:
    """The Gauss-Newton matrix's outliers: :func:`hessian_outliers` on G = J^T H_out J
    (:func:`gauss_newton_matvec`), with the same criterion and arguments. Papyan 2019 finds C
    outliers for C classes (and C(C - 1) more, smaller, in a second level). G is positive
    semi-definite with rank at most N times the output dimension; when Q exceeds that rank the
    count stops at the rounding-level eigenvalues (:func:`outlier_count`).

    Args:
      apply_fn: ``apply_fn(params, x_Bx...) -> outputs_Bx...``.
      output_loss_fn: ``output_loss_fn(outputs_Bx..., y_B...) -> scalar`` mean over the batch.
      params, batch (``(x_Nx..., y_N...)``), max_outliers, num_steps, tol, key, chunk_size,
        extra_steps: as for :func:`hessian_outliers`.

    Returns:
      :class:`Outliers` (eigenvalues_Q, count, ratios, bulk_edge, steps).
    """
    return _find_outliers(_gauss_newton_operator(apply_fn, output_loss_fn), params, batch, max_outliers=max_outliers,
                          num_steps=num_steps, tol=tol, key=key, chunk_size=chunk_size, extra_steps=extra_steps)


# ----------------------------------------------------------------------------- H - G in a subspace


class SubspaceResidual(NamedTuple):
    """H, G and H - G restricted to the span of Q orthonormal vectors U (P x Q).

    Attributes:
      hessian: (Q, Q) U^T H U.
      gauss_newton: (Q, Q) U^T G U.
      residual: (Q, Q) U^T (H - G) U.
      relative: scalar ||U^T (H - G) U||_2 / ||U^T H U||_2 (spectral norms).
    """

    hessian: jax.Array
    gauss_newton: jax.Array
    residual: jax.Array
    relative: jax.Array


def _orthonormal_rows(vectors_QxP):
    """Gram-Schmidt of the rows in order, by QR with R's diagonal made positive (unique for
    independent rows: orthonormal rows come back as they are)."""
    q_PxQ, r_QxQ = jnp.linalg.qr(vectors_QxP.T)
    signs_Q = jnp.where(jnp.diagonal(r_QxQ) < 0, -1, 1).astype(q_PxQ.dtype)
    return (q_PxQ * signs_Q).T


def _projected(matvec, basis_QxP, vectors_per_chunk):
    """U^T A U for the operator ``matvec``, symmetrised against rounding."""
    products_QxP = batching.map_in_chunks(matvec, basis_QxP, vectors_per_chunk)
    projected_QxQ = jnp.matmul(basis_QxP, products_QxP.T, precision=_HIGHEST)
    return (projected_QxQ + projected_QxQ.T) / 2


@compiled.jit(static_argnames=("chunk_size", "vectors_per_chunk"))
def _residual(apply_fn, output_loss_fn, params, batch, vectors, *, chunk_size, vectors_per_chunk):
    basis_QxP = _orthonormal_rows(jax.vmap(lambda v: tree.flatten(v)[0])(vectors))
    loss_fn = lambda p, b: output_loss_fn(apply_fn(p, b[0]), b[1])
    hessian_QxQ = _projected(hessian_matvec(loss_fn, params, batch, chunk_size=chunk_size), basis_QxP,
                             vectors_per_chunk)
    gauss_newton_QxQ = _projected(gauss_newton_matvec(apply_fn, output_loss_fn, params, batch, chunk_size=chunk_size),
                                  basis_QxP, vectors_per_chunk)
    residual_QxQ = hessian_QxQ - gauss_newton_QxQ
    relative = jnp.linalg.norm(residual_QxQ, 2) / jnp.linalg.norm(hessian_QxQ, 2)
    return SubspaceResidual(hessian_QxQ, gauss_newton_QxQ, residual_QxQ, relative)


def _check_vectors(vectors: PyTree, params: PyTree) -> int:
    """The number Q of vectors in ``vectors`` (leaves ``(Q, *leaf.shape)`` of ``params``'s), else
    ``ValueError`` naming ``vectors``."""
    if jax.tree.structure(vectors) != jax.tree.structure(params):
        raise ValueError(f"vectors must have the structure of params (with a leading axis Q on every leaf): "
                         f"{jax.tree.structure(vectors)} != {jax.tree.structure(params)}")
    leading = set()
    for vector, leaf in zip(jax.tree.leaves(vectors), jax.tree.leaves(params)):
        if np.shape(vector)[1:] != np.shape(leaf) or np.ndim(vector) != np.ndim(leaf) + 1:
            raise ValueError(f"vectors has a leaf of shape {np.shape(vector)} where params has {np.shape(leaf)}: "
                             f"expected (Q, *{np.shape(leaf)})")
        leading.add(np.shape(vector)[0])
    if len(leading) != 1:
        raise ValueError(f"vectors' leaves must share one leading axis Q, got {sorted(leading)}")
    return checks.integer("the number of vectors Q", leading.pop(), maximum=tree.count(params),
                          maximum_name="the number of parameters P")


def hessian_gauss_newton_residual(apply_fn: Callable, output_loss_fn: Callable, params: PyTree, batch: PyTree,
                                  vectors: PyTree, *, chunk_size: int | None = None) -> SubspaceResidual:
    """The Hessian H, the Gauss-Newton matrix G and the residual H - G in the span of ``vectors``.

    H is the Hessian of loss(params) = ``output_loss_fn(apply_fn(params, x), y)`` (the mean over
    ``batch = (x, y)``) and G = J^T H_out J (:func:`gauss_newton_matvec`); H = G + sum_n
    dl_n/df_n d^2 f_n / dtheta^2, the residual weighted by the output gradients, which vanishes
    for a model linear in ``params``. Papyan 2019 finds the outliers of H to be G's: in the top
    eigenvectors of H the relative residual is then small. ``vectors`` are orthonormalised here
    in order (Gram-Schmidt, by QR), so orthonormal eigenvectors (:class:`Eigenpairs`'s) are used
    as they are; linearly dependent vectors give an undefined basis. Costs 2 Q products (Q
    Hessian- and Q Gauss-Newton-vector products), one at a time on a CPU and all at once
    elsewhere (:data:`PROBES_PER_CHUNK`). One compiled program.

    Args:
      apply_fn: ``apply_fn(params, x_Bx...) -> outputs_Bx...``.
      output_loss_fn: ``output_loss_fn(outputs_Bx..., y_B...) -> scalar`` mean over the batch.
      params: pytree, P parameters.
      batch: ``(x_Nx..., y_N...)``.
      vectors: a pytree like ``params`` whose leaves have a leading axis Q, 1 <= Q <= P (as
        ``Eigenpairs.eigenvectors``).
      chunk_size: examples per chunk, or None.

    Returns:
      :class:`SubspaceResidual` (hessian_QxQ, gauss_newton_QxQ, residual_QxQ, relative), the
      matrices symmetrised against rounding; ``relative`` is not finite when U^T H U = 0.
    """
    checks.integer("chunk_size", chunk_size, allow_none=True)
    _check_vectors(vectors, params)
    vectors_per_chunk = batching.items_per_chunk("vectors_per_chunk", "auto", PROBES_PER_CHUNK, None)
    batch, params, vectors = meshes.shard_examples(batch, params, vectors)
    return _residual(apply_fn, output_loss_fn, params, batch, vectors, chunk_size=chunk_size,
                     vectors_per_chunk=vectors_per_chunk)
