"""Lanczos with full reorthogonalisation for any symmetric operator, and its Ritz pairs.

The one home of the Krylov machinery that :mod:`jaxdl.analysis.curvature` (Hessian spectra,
stochastic Lanczos quadrature) and :mod:`jaxdl.analysis.ntk` (kernel eigenvalues) share. The
operator is a function ``matvec(v_P) -> (A v)_P`` on flat vectors; everything is jit-able and
runs as ``lax`` loops over a preallocated ``(S, P)`` basis (S Lanczos steps, P the dimension).

- :func:`lanczos` -- a fixed number of steps; :func:`lanczos_to_tolerance` -- until the k wanted
  Ritz values have converged (:func:`ritz_errors`, the Kato-Temple estimate);
- :func:`tridiagonal`, :func:`ritz_pairs` -- the tridiagonal T = Q^T A Q and its eigenpairs.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxdl.core import checks

__all__ = ["LanczosResult", "lanczos", "lanczos_to_tolerance", "ritz_errors", "ritz_pairs", "tridiagonal",
           "wanted_indices"]

_HIGHEST = jax.lax.Precision.HIGHEST


class LanczosResult(NamedTuple):
    """A Lanczos run of S steps.

    Attributes:
      alphas: (S,) diagonal of the tridiagonal T = Q^T A Q.
      betas: (S,) ``betas[i]`` couples basis vectors i and i+1 (``betas[S-1]`` is the norm of
        the final residual, outside T); 0 where the recurrence broke down and restarted.
      basis: (S, P) orthonormal rows Q^T.
    """

    alphas: jax.Array
    betas: jax.Array
    basis: jax.Array


def _orthogonalise(w_P, basis_SxP):
    # Classical Gram-Schmidt twice ("twice is enough", Giraud et al. 2005): rows not yet filled
    # are zero and remove nothing.
    for _ in range(2):
        coefficients_S = jnp.matmul(basis_SxP, w_P, precision=_HIGHEST)
        w_P = w_P - jnp.matmul(coefficients_S, basis_SxP, precision=_HIGHEST)
    return w_P


def _lanczos_step(matvec, start_P, i, basis, alphas, betas, scale):
    """Step i of :func:`lanczos`: row i + 1 of the basis, alpha_i and beta_i."""
    tiny = 100 * jnp.finfo(start_P.dtype).eps
    v = basis[i]
    w = matvec(v)
    alpha = jnp.vdot(v, w)
    w = _orthogonalise(w, basis)
    beta = jnp.linalg.norm(w)
    scale = jnp.maximum(scale, jnp.abs(alpha) + beta)
    alive = beta > tiny * scale

    def restart():
        fresh = _orthogonalise(jnp.roll(start_P, i + 1), basis)
        return fresh / jnp.linalg.norm(fresh)

    next_v = jax.lax.cond(alive, lambda: w / beta, restart)
    # The write past the last row (i + 1 == S) is dropped by the scatter.
    basis = basis.at[i + 1].set(next_v, mode="drop")
    return basis, alphas.at[i].set(alpha), betas.at[i].set(jnp.where(alive, beta, 0)), scale


def _lanczos_init(start_P, num_steps):
    dtype = start_P.dtype
    basis = jnp.zeros((num_steps, start_P.shape[0]), dtype).at[0].set(start_P / jnp.linalg.norm(start_P))
    zeros = jnp.zeros((num_steps,), dtype)
    return basis, zeros, zeros, jnp.zeros((), dtype)


def lanczos(matvec: Callable[[jax.Array], jax.Array], start_P: jax.Array, num_steps: int) -> LanczosResult:
    """``num_steps`` steps of Lanczos with full reorthogonalisation on a symmetric operator.

    Lanczos 1950; Golub & Van Loan, "Matrix Computations", section 10.1. Each new vector is
    orthogonalised against ALL previous ones, so the Ritz values are free of the spurious
    copies plain Lanczos produces in finite precision. If the Krylov space is exhausted (the
    residual vanishes), the recurrence restarts with a zero coupling, so T stays exact, from
    a cyclic shift of the start vector orthogonalised against the basis (for a random start,
    almost surely outside the span). Jit-able; a ``lax.fori_loop``.

    Args:
      matvec: ``v_P -> (A v)_P``, A symmetric (e.g. :func:`jaxdl.analysis.curvature.hessian_matvec`).
      start_P: starting vector, normally random (normalised here).
      num_steps: S <= P, the Krylov dimension.

    Returns:
      :class:`LanczosResult` with T's diagonal, couplings and the (S, P) basis.
    """
    body = lambda i, carry: _lanczos_step(matvec, start_P, i, *carry)
    basis, alphas, betas, _ = jax.lax.fori_loop(0, num_steps, body, _lanczos_init(start_P, num_steps))
    return LanczosResult(alphas, betas, basis)


def _leading_tridiagonal(alphas_S, betas_S, steps, which):
    """The (S, S) tridiagonal of the first ``steps`` rows of a run, the other rows decoupled
    with their diagonal set past the filled block's Gershgorin interval on the side away from
    ``which``: the wanted extreme eigenvalues of the result are the filled block's Ritz values,
    and the rest of the basis (zero rows) adds nothing to Ritz vectors."""
    rows = jnp.arange(alphas_S.shape[0])
    filled = rows < steps
    couplings_S = jnp.where(rows < steps - 1, betas_S, 0)
    low = jnp.min(jnp.where(filled, alphas_S, jnp.inf))
    high = jnp.max(jnp.where(filled, alphas_S, -jnp.inf))
    rounding = jnp.finfo(alphas_S.dtype).eps * (1 + jnp.abs(low) + jnp.abs(high))
    margin = 2 * jnp.max(couplings_S) + (high - low) + rounding
    fill = low - margin if which == "top" else high + margin
    return tridiagonal(jnp.where(filled, alphas_S, fill), couplings_S)


def wanted_indices(num_steps, k, which):
    """Indices of the k wanted Ritz values among the S ascending ones."""
    return np.arange(num_steps - 1, num_steps - 1 - k, -1) if which == "top" else np.arange(k)


def _stage_sizes(max_steps: int, k: int) -> list[int]:
    """Basis sizes of the stages of :func:`lanczos_to_tolerance`: 8 (or 2k + 2) rows, doubled up
    to ``max_steps``."""
    sizes = [min(max_steps, max(8, 2 * k + 2))]
    while sizes[-1] < max_steps:
        sizes.append(min(max_steps, 2 * sizes[-1]))
    return sizes


def _pad_rows(array, rows):
    return jnp.pad(array, [(0, rows - array.shape[0])] + [(0, 0)] * (array.ndim - 1))


def ritz_errors(alphas_S, betas_S, steps, k: int, which: str = "top", on: str = "eigenvalue"):
    """The k wanted Ritz values of the first ``steps`` rows of a run (``which`` end first) and
    an estimate of each one's distance to an eigenvalue of the operator.

    The Ritz pair (theta, y = Q^T s) of T_j has residual r = ||A y - theta y|| = beta_j |s_j|
    (the last component of s; Golub & Van Loan 10.1.4), and an eigenvalue lies within r of
    theta. With ``on='eigenvalue'`` the estimate is min(r, r^2 / delta), delta = the distance
    from theta to the nearest other Ritz value less r: the Kato-Temple bound (Parlett, "The
    Symmetric Eigenvalue Problem", 10.2), quadratic in r once theta is separated, with the gap
    to the rest of the spectrum estimated by the Ritz values (a gap estimate from a short run
    can be too large, so the bound is an estimate, not a guarantee). ``on='residual'``: r.

    Returns:
      ``(theta_Q, error_Q)``.
    """
    size = alphas_S.shape[0]
    wanted = wanted_indices(size, k, which)
    theta_S, s_SxS = jnp.linalg.eigh(_leading_tridiagonal(alphas_S, betas_S, steps, which))
    residuals_Q = jnp.abs(betas_S[steps - 1] * s_SxS[steps - 1, wanted])
    if on == "residual":
        return theta_S[wanted], residuals_Q
    # The filled block's Ritz values are the ``steps`` at the wanted end of the sorted list.
    rows = jnp.arange(size)
    filled_S = rows >= size - steps if which == "top" else rows < steps
    distance_QxS = jnp.abs(theta_S[wanted][:, None] - theta_S[None, :])
    others_QxS = filled_S[None, :] & (rows[None, :] != jnp.asarray(wanted)[:, None])
    gap_Q = jnp.min(jnp.where(others_QxS, distance_QxS, jnp.inf), axis=1) - residuals_Q
    # Only once an unwanted Ritz value (steps > k) stands between the wanted ones and the rest.
    separated_Q = (steps > k) & jnp.isfinite(gap_Q) & (gap_Q > 0)
    quadratic_Q = jnp.where(separated_Q, residuals_Q ** 2 / jnp.where(separated_Q, gap_Q, 1), jnp.inf)
    return theta_S[wanted], jnp.minimum(residuals_Q, quadratic_Q)


def lanczos_to_tolerance(matvec: Callable[[jax.Array], jax.Array], start_P: jax.Array, max_steps: int, *, k: int,
                         tol: float, which: str = "top", on: str = "eigenvalue",
                         extra_steps: int = 0) -> tuple[LanczosResult, jax.Array]:
    """:func:`lanczos` until the ``k`` wanted Ritz values have converged, then ``extra_steps``
    more, or ``max_steps`` in all.

    The test passes when each of the k extreme Ritz values (``which``: ``'top'`` or
    ``'bottom'``) has an estimated error (:func:`ritz_errors`; ``on``: ``'eigenvalue'``, the
    Kato-Temple estimate, or ``'residual'``, the Ritz residual itself) of at most
    ``tol * |theta|``. The test cannot see an eigenvalue the Krylov space has not reached yet:
    when the start vector's component along an eigenvector is small, its eigenvalue has no Ritz
    value near it, the Ritz value of that rank sits converged on the next eigenvalue down, and
    the test passes. ``extra_steps`` past the test give such an eigenvalue room to appear; they
    never make an answer worse, since with full reorthogonalisation the i-th largest Ritz value
    only rises with the steps (Cauchy interlacing), towards the i-th largest eigenvalue.
    Lanczos steps run in ``lax.while_loop`` stages over bases of 8, 16, 32, ... rows up to
    ``max_steps`` (each stage carries on from the last), so an early stop costs no
    orthogonalisation against a ``max_steps``-row basis. Jit-able.

    Returns:
      ``(result, steps)``: the run, ``max_steps`` rows (alphas and betas past ``steps`` are zero,
      basis rows past ``steps + 1`` too; pass both to :func:`ritz_pairs`) and the number of
      steps taken, each one product of ``matvec``.
    """
    checks.one_of("on", on, ("eigenvalue", "residual"))
    extra_steps = checks.integer("extra_steps", extra_steps, minimum=0)

    def converged(steps, alphas, betas):
        theta_Q, error_Q = ritz_errors(alphas, betas, steps, k, which, on)
        return (steps >= k) & jnp.all(error_Q <= tol * jnp.abs(theta_Q))

    def body(carry):
        # ``stop``: the step to stop at, max_steps until the test first passes.
        steps, stop, *state = carry
        basis, alphas, betas, scale = _lanczos_step(matvec, start_P, steps, *state)
        steps = steps + 1
        passed = (stop == max_steps) & converged(steps, alphas, betas)
        stop = jnp.where(passed, jnp.minimum(steps + extra_steps, max_steps), stop)
        return steps, stop, basis, alphas, betas, scale

    sizes = _stage_sizes(max_steps, k)
    carry = (jnp.asarray(0), jnp.asarray(max_steps), *_lanczos_init(start_P, sizes[0]))
    for size in sizes:
        steps, stop, basis, alphas, betas, scale = carry
        carry = (steps, stop, _pad_rows(basis, size), _pad_rows(alphas, size), _pad_rows(betas, size), scale)
        # A stage's last step writes the next basis row, so it must fit: the final stage alone may
        # fill all its rows (its last write is dropped).
        last = size if size == max_steps else size - 1
        carry = jax.lax.while_loop(lambda c, last=last: (c[0] < last) & (c[0] < c[1]), body, carry)
    steps, _, basis, alphas, betas, _ = carry
    return LanczosResult(alphas, betas, basis), steps


def tridiagonal(alphas_S: jax.Array, betas_S: jax.Array) -> jax.Array:
    """The dense (S, S) tridiagonal T from a Lanczos run (``betas_S[S-1]`` is not used)."""
    off = betas_S[:-1]
    return jnp.diag(alphas_S) + jnp.diag(off, 1) + jnp.diag(off, -1)


def ritz_pairs(result: LanczosResult, steps: jax.Array | None = None, which: str = "top"):
    """Ritz values ``theta_S`` (ascending) and Ritz vectors ``(S, P)`` (rows) of a run; of its
    first ``steps`` rows for a run of :func:`lanczos_to_tolerance` (whose extreme ``which``
    values are then the filled block's)."""
    t_SxS = (tridiagonal(result.alphas, result.betas) if steps is None
             else _leading_tridiagonal(result.alphas, result.betas, steps, which))
    theta_S, s_SxS = jnp.linalg.eigh(t_SxS)
    return theta_S, jnp.matmul(s_SxS.T, result.basis, precision=_HIGHEST)
