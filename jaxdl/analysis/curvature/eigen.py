"""Extreme Hessian (and Gauss-Newton) eigenpairs: Lanczos with full reorthogonalisation, and
power iteration.

Both run as one compiled program: the Lanczos recurrence is a ``lax.fori_loop`` over a
preallocated ``(steps, P)`` basis, power iteration a ``lax.while_loop`` per eigenpair inside a
``lax.scan`` over the k pairs. Vectors are flat (R^P, :func:`jaxdl.core.tree.flatten` order)
inside; eigenvectors are returned as pytrees shaped like ``params`` with a leading axis Q, one per
eigenpair.

Each is one program compiled by :func:`jaxdl.core.compiled.jit`: a ``loss_fn`` from
:func:`jaxdl.train.losses.make_loss_fn` is keyed on the model it wraps, so a second call on the same
model and shapes compiles nothing; a hand-written ``loss_fn`` is keyed on its identity (pass the
same function object, not a fresh ``lambda``).
"""
from __future__ import annotations

import dataclasses
import warnings
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from jaxdl.core import checks, compiled, meshes, tree
from jaxdl.core.linalg import lanczos, lanczos_to_tolerance, ritz_pairs, wanted_indices
from jaxdl.analysis.curvature.hvp import default_key, gauss_newton_matvec, gradient_and_hessian_matvec, hessian_matvec

__all__ = ["EXTRA_STEPS", "EXTRA_STEPS_ONE", "default_extra_steps", "Eigenpairs", "PowerIteration", "start_vector", "hessian_top_eigenvalues",
           "hessian_bottom_eigenvalues", "gauss_newton_top_eigenvalues", "hessian_power_iteration", "SharpnessProbe"]

PyTree = Any
# Lanczos steps past the tolerance test (:func:`jaxdl.core.linalg.lanczos_to_tolerance`), so that
# an eigenvalue the start vector barely touches has room to appear: EXTRA_STEPS for k > 1,
# EXTRA_STEPS_ONE for the top (or bottom) eigenvalue alone. Measured on the benchmark's MLP
# 40-256-256-10 after 5 epochs of Adam on 4,000 MNIST-1D examples (top eigenvalues 24.90, 23.27,
# 20.60, 19.97, 19.31 by ARPACK in float64), 100 Gaussian starts for each k: with no extra steps
# k = 1, 3, 5 missed the tolerance (1e-3) in 2, 7 and 15 runs, k = 3 and 5 by a whole eigenvalue
# (up to 13% off); converging k + p Ritz values still missed at p = 1, 2 and 3; 4 extra steps
# missed in 4 runs at k = 3 and 6 missed none (largest error 4e-6); at k = 1, 3 extra steps
# missed none from the Gaussian start or the gradient start (largest error 7e-5).
EXTRA_STEPS = 6
EXTRA_STEPS_ONE = 3


def default_extra_steps(k: int) -> int:
    """``extra_steps=None``: :data:`EXTRA_STEPS_ONE` for one eigenvalue, :data:`EXTRA_STEPS` for more."""
    return EXTRA_STEPS_ONE if k == 1 else EXTRA_STEPS
_HIGHEST = jax.lax.Precision.HIGHEST


class Eigenpairs(NamedTuple):
    """``eigenvalues_Q`` and ``eigenvectors``: a pytree like ``params`` whose leaves have a
    leading axis Q = k (unit norm over the whole pytree); pair i is ``eigenvalues[i]`` with
    ``jax.tree.map(lambda a: a[i], eigenvectors)``. ``steps``: the Lanczos steps taken (one
    Hessian-vector product each), when known."""

    eigenvalues: jax.Array
    eigenvectors: PyTree
    steps: jax.Array | None = None


class PowerIteration(NamedTuple):
    """Eigenpairs from :func:`hessian_power_iteration` and the matrix-vector products spent on
    each (``steps_Q``)."""

    eigenvalues: jax.Array
    eigenvectors: PyTree
    steps: jax.Array


def start_vector(key: jax.Array, gradient_P: jax.Array, use_gradient: bool = True) -> jax.Array:
    """A Lanczos start: a unit Gaussian vector from ``key``, plus the unit gradient when
    ``use_gradient`` and the gradient is not zero.

    The gradient of a network's loss lies mostly in the span of the Hessian's top eigenvectors
    (Gur-Ari, Roberts & Dyer 2018, "Gradient descent happens in a tiny subspace"), so a start
    with a large component along it shortens the run for the top eigenvalues; the Gaussian part
    keeps every eigenvector in the Krylov space (almost surely), so the answer does not depend
    on where the gradient points, only the number of steps does. Unnormalised (:func:`lanczos`
    normalises)."""
    z_P = jax.random.normal(key, gradient_P.shape, gradient_P.dtype)
    z_P = z_P / jnp.linalg.norm(z_P)
    if not use_gradient:
        return z_P
    norm = jnp.linalg.norm(gradient_P)
    return z_P + jnp.where(norm > 0, gradient_P / jnp.where(norm > 0, norm, 1), 0)


def _hessian_operator(loss_fn: Callable) -> jax.tree_util.Partial:
    """The Hessian of ``loss_fn`` as an operator for the Lanczos programs here (and in
    :mod:`jaxdl.analysis.curvature.spectrum`):
    ``operator(params, batch, chunk_size=...) -> (gradient_P, matvec)``
    (:func:`gradient_and_hessian_matvec`). A ``Partial`` pytree, so a tool compiled for it is keyed
    on ``loss_fn`` as :mod:`jaxdl.core.compiled` keys a callable."""
    return jax.tree_util.Partial(gradient_and_hessian_matvec, loss_fn)


def _gauss_newton_with_no_gradient(apply_fn, output_loss_fn, params, batch, *, chunk_size):
    return None, gauss_newton_matvec(apply_fn, output_loss_fn, params, batch, chunk_size=chunk_size)


def _gauss_newton_operator(apply_fn: Callable, output_loss_fn: Callable) -> jax.tree_util.Partial:
    """The Gauss-Newton matrix as an operator like :func:`_hessian_operator`'s, with no gradient
    (``(None, matvec)``; :func:`gauss_newton_matvec`)."""
    return jax.tree_util.Partial(_gauss_newton_with_no_gradient, apply_fn, output_loss_fn)


def _extreme_ritz_pairs(operator, params, batch, key, tol, *, num_steps, chunk_size, k, which, use_gradient,
                        extra_steps):
    """``(theta_Q, vectors_QxP, steps)``: the k extreme Ritz pairs (``which`` end first) of a
    Lanczos run on ``operator`` (:func:`_hessian_operator`, :func:`_gauss_newton_operator`) from
    :func:`start_vector` (the gradient part only with ``use_gradient``). Call inside ``jit``;
    the Ritz vectors cost nothing when unused (XLA drops them)."""
    gradient_P, matvec = operator(params, batch, chunk_size=chunk_size)
    start_P = start_vector(key, tree.flatten(params)[0] if gradient_P is None else gradient_P,
                           use_gradient and gradient_P is not None)
    if tol is None:
        result, steps = lanczos(matvec, start_P, num_steps), jnp.asarray(num_steps)
        theta_S, vectors_SxP = ritz_pairs(result)
    else:
        result, steps = lanczos_to_tolerance(matvec, start_P, num_steps, k=k, tol=tol, which=which,
                                              extra_steps=extra_steps)
        theta_S, vectors_SxP = ritz_pairs(result, steps, which)
    order_Q = wanted_indices(num_steps, k, which)
    return theta_S[order_Q], vectors_SxP[order_Q], steps


@compiled.jit(static_argnames=("num_steps", "chunk_size", "k", "which", "use_gradient", "extra_steps"))
def _lanczos_eigenpairs(operator, params, batch, key, tol, *, num_steps, chunk_size, k, which, use_gradient,
                        extra_steps):
    theta_Q, vectors_QxP, steps = _extreme_ritz_pairs(
        operator, params, batch, key, tol, num_steps=num_steps, chunk_size=chunk_size, k=k, which=which,
        use_gradient=use_gradient, extra_steps=extra_steps)
    return Eigenpairs(theta_Q, jax.vmap(tree.flatten(params)[1])(vectors_QxP), steps)


def _lanczos_extreme(operator, params, batch, k, *, num_steps, tol, which, key, chunk_size, start,
                     extra_steps) -> Eigenpairs:
    checks.integer("chunk_size", chunk_size, allow_none=True)
    num_steps = checks.integer("num_steps", num_steps, maximum=tree.count(params),
                               maximum_name="the number of parameters P")
    k = checks.integer("k", k, maximum=num_steps, maximum_name="num_steps")
    tol = checks.number("tol", tol, allow_none=True)
    checks.one_of("start", start, ("auto", "gradient", "random"))
    extra_steps = default_extra_steps(k) if extra_steps is None else checks.integer("extra_steps", extra_steps,
                                                                                      minimum=0)
    batch, params = meshes.shard_examples(batch, params)
    use_gradient = start == "gradient" or (start == "auto" and which == "top" and k == 1)
    return _lanczos_eigenpairs(operator, params, batch, default_key(key), tol, num_steps=num_steps,
                               chunk_size=chunk_size, k=k, which=which, use_gradient=use_gradient,
                               extra_steps=extra_steps)


def hessian_top_eigenvalues(loss_fn: Callable, params: PyTree, batch: PyTree, k: int = 1, *, num_steps: int = 30,
                            tol: float | None = 1e-3, key: jax.Array | None = None, chunk_size: int | None = None,
                            start: str = "auto", extra_steps: int | None = None,
                            which: str | None = None) -> Eigenpairs:
    """The k largest Hessian eigenvalues (descending) and their eigenvectors by Lanczos.

    Runs :func:`lanczos` with full reorthogonalisation on the data-set Hessian
    (:func:`hessian_matvec`) and returns the k largest Ritz pairs (Lanczos 1950; Golub & Van
    Loan 10.1): until each of the k Ritz values is within ``tol`` of an eigenvalue, relatively,
    by the Kato-Temple estimate r^2 / gap of its Ritz residual r (:func:`ritz_errors`,
    :func:`lanczos_to_tolerance`), then ``extra_steps`` more, at most ``num_steps`` steps; or
    exactly ``num_steps`` steps with ``tol=None``. The extra steps guard against a missed
    eigenvalue: trained networks put their top eigenvalues close together, and an eigenvector
    the start barely touches has no Ritz value yet when the test passes on the next eigenvalue
    down (:data:`EXTRA_STEPS` gives the measurements). For the top eigenvalue alone the start
    is a Gaussian vector plus the gradient (:func:`start_vector`; the gradient is the primal
    output of the linearisation, so free without chunks), which shortens the run for it; for
    k > 1 it helped on one MLP and cost steps on a small tanh net, so ``'auto'`` keeps the
    Gaussian start there. Extreme eigenvalues converge first (the smallest:
    :func:`hessian_bottom_eigenvalues`).
    One compiled program.

    Args:
      loss_fn: ``loss_fn(params, batch) -> scalar`` mean (e.g. :func:`jaxdl.train.losses.make_loss_fn`).
      params: pytree, P parameters.
      batch: pytree with leading example axis N (the data set).
      k: number of eigenpairs Q, ``1 <= k <= num_steps``.
      num_steps: Lanczos steps S (the most, with ``tol``), ``<= P``.
      tol: relative tolerance > 0 on the eigenvalues (default 1e-3), or None for exactly
        ``num_steps`` steps.
      key: PRNG key for the Gaussian part of the start (default ``jax.random.key(0)``).
      chunk_size: examples per chunk of the full-data HVP, or None.
      start: ``'gradient'`` (Gaussian plus gradient), ``'random'`` (Gaussian only), or
        ``'auto'`` (default): ``'gradient'`` for the top eigenvalue alone (``k=1``), else
        ``'random'``. With chunks the gradient costs one more pass over the data.
      extra_steps: Lanczos steps after the tolerance test first passes; None (default):
        :func:`default_extra_steps`, 3 for ``k=1`` and 6 for more; 0 stops at the test; ignored
        with ``tol=None``.
      which: deprecated (removed in the next version): ``'top'`` is this function,
        ``'bottom'`` is :func:`hessian_bottom_eigenvalues`; passing it warns.

    Returns:
      :class:`Eigenpairs` with ``eigenvalues`` (k,), ``eigenvectors`` (pytree, leaves (k, ...))
      and ``steps``, the Hessian-vector products spent.
    """
    if which is not None:
        checks.one_of("which", which, ("top", "bottom"))
        warnings.warn("hessian_top_eigenvalues(..., which=...) is deprecated and will be removed in the next "
                      "version: call hessian_bottom_eigenvalues(...) for the smallest eigenvalues "
                      "(hessian_top_eigenvalues always returns the largest)", DeprecationWarning, stacklevel=2)
    return _lanczos_extreme(_hessian_operator(loss_fn), params, batch, k, num_steps=num_steps, tol=tol,
                            which=which or "top", key=key, chunk_size=chunk_size, start=start, extra_steps=extra_steps)


def hessian_bottom_eigenvalues(loss_fn: Callable, params: PyTree, batch: PyTree, k: int = 1, *, num_steps: int = 30,
                               tol: float | None = 1e-3, key: jax.Array | None = None,
                               chunk_size: int | None = None, start: str = "auto",
                               extra_steps: int | None = None) -> Eigenpairs:
    """The k smallest Hessian eigenvalues (ascending, the most negative first) and their
    eigenvectors by Lanczos: :func:`hessian_top_eigenvalues` at the other end of the spectrum,
    with the same arguments (``start='auto'`` is the Gaussian start). Eigenvalues near zero (the
    bottom end, often) rarely meet a relative tolerance and take all ``num_steps``.

    Returns:
      :class:`Eigenpairs` with ``eigenvalues`` (k,), ``eigenvectors`` (pytree, leaves (k, ...))
      and ``steps``, the Hessian-vector products spent.
    """
    return _lanczos_extreme(_hessian_operator(loss_fn), params, batch, k, num_steps=num_steps, tol=tol,
                            which="bottom", key=key, chunk_size=chunk_size, start=start, extra_steps=extra_steps)


def gauss_newton_top_eigenvalues(apply_fn: Callable, output_loss_fn: Callable, params: PyTree, batch: PyTree,
                                 k: int = 1, *, num_steps: int = 30, tol: float | None = 1e-3,
                                 key: jax.Array | None = None, chunk_size: int | None = None,
                                 extra_steps: int | None = None) -> Eigenpairs:
    """The k largest eigenvalues (descending) and eigenvectors of the generalised Gauss-Newton
    matrix G = J^T H_out J (Schraudolph 2002; :func:`gauss_newton_matvec`) by Lanczos.

    The Lanczos run of :func:`hessian_top_eigenvalues` (full reorthogonalisation, to ``tol`` by
    the Kato-Temple estimate then ``extra_steps`` more, or exactly ``num_steps`` steps with
    ``tol=None``) on G instead of H, from a Gaussian start (G has no gradient to lean on). G is
    positive semi-definite for a convex ``output_loss_fn``; its top eigenvalues are the outliers
    of the Hessian's spectrum (Papyan 2019, "Measurements of three-level hierarchical structure
    in the outliers in the spectrum of deepnet Hessians"). Each product linearises the model
    afresh (a forward pass, its tangent and a transpose per chunk), about the cost of a
    chunked Hessian-vector product. One compiled program.

    Args:
      apply_fn: ``apply_fn(params, x_Bx...) -> outputs_Bx...``.
      output_loss_fn: ``output_loss_fn(outputs_Bx..., y_B...) -> scalar`` mean over the batch
        (e.g. :func:`jaxdl.train.losses.cross_entropy`).
      params, batch (``(x_Nx..., y_N...)``), k, num_steps, tol, key, chunk_size, extra_steps: as
        for :func:`hessian_top_eigenvalues`.

    Returns:
      :class:`Eigenpairs` with ``eigenvalues`` (k,), ``eigenvectors`` (pytree, leaves (k, ...))
      and ``steps``, the Gauss-Newton-vector products spent.
    """
    return _lanczos_extreme(_gauss_newton_operator(apply_fn, output_loss_fn), params, batch, k, num_steps=num_steps,
                            tol=tol, which="top", key=key, chunk_size=chunk_size, start="random",
                            extra_steps=extra_steps)


@compiled.jit(static_argnames=("k", "max_steps", "chunk_size"))
def _power_iteration(loss_fn, params, batch, key, tol, *, k, max_steps, chunk_size):
    params_P, unflatten = tree.flatten(params)
    matvec = hessian_matvec(loss_fn, params, batch, chunk_size=chunk_size)

    def find_next(carry, key_j):
        found_QxP, values_Q, j = carry

        def deflated(v):
            # Rows not yet found are zero and deflate nothing.
            coefficients = values_Q * jnp.matmul(found_QxP, v, precision=_HIGHEST)
            return matvec(v) - jnp.matmul(coefficients, found_QxP, precision=_HIGHEST)

        def not_converged(state):
            _, _, value, previous, step = state
            return (step < max_steps) & (jnp.abs(value - previous) > tol * jnp.abs(value))

        def step_once(state):
            _, w, value, _, step = state
            v = w / jnp.linalg.norm(w)
            w = deflated(v)
            return v, w, jnp.vdot(v, w), value, step + 1

        v0 = jax.random.normal(key_j, params_P.shape, params_P.dtype)
        v0 = v0 / jnp.linalg.norm(v0)
        w0 = deflated(v0)
        inf = jnp.asarray(jnp.inf, params_P.dtype)
        v, _, value, _, steps = jax.lax.while_loop(not_converged, step_once, (v0, w0, jnp.vdot(v0, w0), inf, 1))
        return (found_QxP.at[j].set(v), values_Q.at[j].set(value), j + 1), (value, v, steps)

    init = (jnp.zeros((k,) + params_P.shape, params_P.dtype), jnp.zeros((k,), params_P.dtype), 0)
    _, (values_Q, vectors_QxP, steps_Q) = jax.lax.scan(find_next, init, jax.random.split(key, k))
    return PowerIteration(values_Q, jax.vmap(unflatten)(vectors_QxP), steps_Q)


def hessian_power_iteration(loss_fn: Callable, params: PyTree, batch: PyTree, k: int = 1, *, max_steps: int = 100,
                            tol: float = 1e-3, key: jax.Array | None = None,
                            chunk_size: int | None = None) -> PowerIteration:
    """The k Hessian eigenvalues of largest magnitude by power iteration with deflation.

    For comparison with :func:`hessian_top_eigenvalues`. Pair j iterates v <- H_j v / ||H_j v||
    with the deflated H_j = H - sum_{i<j} lambda_i u_i u_i^T until the Rayleigh quotient's
    relative change is <= ``tol`` or ``max_steps`` products are spent (a ``lax.while_loop``).
    Converges at rate |lambda_2 / lambda_1|: with a small gap a 1e-3 stop can leave an error
    of the same order. Finds the largest MAGNITUDE, so a large negative eigenvalue comes first.

    Args:
      loss_fn, params, batch, key, chunk_size: as for :func:`hessian_top_eigenvalues`.
      k: number of eigenpairs (1 <= k <= P).
      max_steps: products per eigenpair at most.
      tol: relative-change stop, > 0.

    Returns:
      :class:`PowerIteration`: ``eigenvalues`` (k,) in the order found, ``eigenvectors``
      (pytree, leaves (k, ...)), ``steps`` (k,).
    """
    checks.integer("chunk_size", chunk_size, allow_none=True)
    k = checks.integer("k", k, maximum=tree.count(params), maximum_name="the number of parameters P")
    max_steps = checks.integer("max_steps", max_steps)
    tol = checks.number("tol", tol)
    batch, params = meshes.shard_examples(batch, params)
    return _power_iteration(loss_fn, params, batch, default_key(key), tol, k=k, max_steps=max_steps,
                            chunk_size=chunk_size)


@dataclasses.dataclass(frozen=True)
class SharpnessProbe:
    """The top Hessian eigenvalue of the loss on the probe batch, tracked during training
    (Cohen et al. 2021, "Gradient descent on neural networks typically occurs at the edge of
    stability"): a probe for ``jaxdl.train.fit(..., probes={'sharpness': SharpnessProbe()})``.

    Each measurement runs ``num_steps`` steps of :func:`lanczos` (full reorthogonalisation)
    started from the previous measurement's top Ritz vector, so a few steps suffice while the
    top eigenvector moves slowly; the first starts from a Gaussian vector drawn from
    ``jax.random.key(seed)``. ``chunk_size`` as for :func:`hessian_matvec`.
    """

    num_steps: int = 20
    seed: int = 0
    chunk_size: int | None = None

    def __post_init__(self):
        checks.integer("num_steps", self.num_steps)
        checks.integer("chunk_size", self.chunk_size, allow_none=True)

    def init(self, params: PyTree) -> jax.Array:
        params_P, _ = tree.flatten(params)
        start_P = jax.random.normal(jax.random.key(self.seed), params_P.shape, params_P.dtype)
        return start_P / jnp.linalg.norm(start_P)

    def measure(self, start_P, loss_fn, params, batch):
        matvec = hessian_matvec(loss_fn, params, batch, chunk_size=self.chunk_size)
        theta_S, vectors_SxP = ritz_pairs(lanczos(matvec, start_P, self.num_steps))
        return vectors_SxP[-1], theta_S[-1]
