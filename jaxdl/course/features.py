"""Regression on fixed features, in closed form: the course's polynomial fits and random-features
double descent.

- :func:`polynomial_features` -- ``[1, x, x^2, ..., x^M]`` of a scalar input (the course's
  order-M polynomial model h(theta, x) = sum_m theta_m x^m);
- :func:`random_fourier_features` -- ``sqrt(2 / F) cos(x W + b)`` with ``W ~ N(0, I / bandwidth^2)``
  and ``b ~ U[0, 2 pi)`` (Rahimi & Recht 2007), the model of Belkin et al. 2019's double descent;
- :func:`least_squares` -- theta minimising ``(1/N) ||Phi theta - y||^2 + l2 ||theta||^2`` (the
  course's L2 penalty gamma ||theta||^2 on every coefficient, as :func:`jaxdl.train.optim.get_optimizer`'s
  ``l2``), or, with ``l2=None``, the minimum-norm least-squares solution ``pinv(Phi) y``: the
  interpolating solution beyond the interpolation threshold, whose norm (and test error) peaks
  where the number of features equals the number of training points;
- :func:`fit_feature_counts` -- the fits that use only the first F_g of the F features, for a
  grid of counts F_g (and L2 strengths), as ONE compiled program: the unused features are masked
  to zero, so every fit has the same shapes, and a masked feature gets a zero coefficient. With
  more features than points the fits go through the N x N Gram matrix (kernel form) with
  iterative refinement, far cheaper than an SVD of each masked N x F matrix.

Shapes (the letters of :mod:`jaxdl`): N examples (training or test points, each set its own N), O
target columns (outputs), F features, G entries of a sweep (feature counts or penalties).
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxdl.core import checks

__all__ = ["polynomial_features", "random_fourier_features", "least_squares", "feature_mask", "fit_feature_counts"]


def polynomial_features(x_N, degree: int):
    """``phi_Nx(degree+1)`` with ``phi[n, m] = x[n] ** m``, m = 0..degree (a Vandermonde matrix
    with increasing powers). ``x_N`` may also be ``x_Nx1``."""
    degree = checks.integer("degree", degree, minimum=0)
    x_N = jnp.asarray(x_N)
    if x_N.ndim == 2 and x_N.shape[1] == 1:
        x_N = x_N[:, 0]
    if x_N.ndim != 1:
        raise ValueError(f"x must have shape (N,) or (N, 1) for polynomial features, got {x_N.shape}")
    return x_N[:, None] ** jnp.arange(degree + 1, dtype=x_N.dtype)


def random_fourier_features(key, x_NxD, num_features: int, bandwidth: float = 1.0):
    """``phi_NxF = sqrt(2 / F) cos(x W + b)``, ``W_DxF ~ N(0, 1 / bandwidth^2)``, ``b_F ~ U[0, 2 pi)``.

    Random Fourier features of the Gaussian kernel exp(-||x - x'||^2 / (2 bandwidth^2)) (Rahimi &
    Recht 2007; Belkin et al. 2019 sweep their number F). The draw depends only on ``key``, the
    input dimension D and F, so calling it with the same key on training and test inputs gives the
    same features; the first F' features of a draw of F are distributed as a draw of F' up to the
    common scale sqrt(2 / F), which no minimum-norm prediction depends on (the effect of a fixed L2
    strength does).
    """
    num_features = checks.integer("num_features", num_features)
    bandwidth = checks.number("bandwidth", bandwidth)
    x_NxD = jnp.asarray(x_NxD)
    if x_NxD.ndim != 2:
        raise ValueError(f"x must have shape (N, D) for random features, got {x_NxD.shape}")
    return _random_fourier_features(key, x_NxD, bandwidth, num_features=num_features)


@functools.partial(jax.jit, static_argnames=("num_features",))
def _random_fourier_features(key, x_NxD, bandwidth, num_features):
    weight_key, phase_key = jax.random.split(key)
    w_DxF = jax.random.normal(weight_key, (x_NxD.shape[1], num_features), x_NxD.dtype) / bandwidth
    b_F = jax.random.uniform(phase_key, (num_features,), x_NxD.dtype, 0.0, 2.0 * jnp.pi)
    return jnp.sqrt(2.0 / num_features) * jnp.cos(x_NxD @ w_DxF + b_F)


def least_squares(phi_NxF, y_NxO, l2=None):
    """``theta_FxO`` of the linear model ``phi @ theta`` fitted to ``y_NxO`` (``y_N`` gives ``theta_F``).

    ``l2=None``: the minimum-norm least-squares solution ``pinv(phi) y`` (``jnp.linalg.lstsq``):
    the exact fit when F >= N and the rows are independent, the ordinary least-squares fit when
    F <= N. ``l2 = gamma >= 0`` (a number or a traced scalar, e.g. under ``vmap`` over a grid of
    penalties): the minimiser of ``(1/N) ||phi theta - y||^2 + gamma ||theta||^2``, i.e.
    ``(phi^T phi + N gamma I) theta = phi^T y``, solved as the stacked least-squares problem
    ``[phi; sqrt(N gamma) I] theta = [y; 0]``, which keeps the conditioning of phi rather than
    squaring it (a degree-9 polynomial fit in float32); ``gamma = 0`` gives the min-norm fit too.
    """
    phi_NxF, y = jnp.asarray(phi_NxF), jnp.asarray(y_NxO)
    if phi_NxF.ndim != 2 or y.shape[:1] != phi_NxF.shape[:1] or y.ndim not in (1, 2):
        raise ValueError(f"phi must be (N, F) and y (N,) or (N, O) with the same N, got {phi_NxF.shape} and {y.shape}")
    if l2 is None:
        return jnp.linalg.lstsq(phi_NxF, y)[0]
    if isinstance(l2, (int, float)):
        checks.number("l2", l2, inclusive=True)
    num_examples, num_features = phi_NxF.shape
    penalty_FxF = jnp.sqrt(num_examples * jnp.asarray(l2, phi_NxF.dtype)) * jnp.eye(num_features, dtype=phi_NxF.dtype)
    stacked = jnp.concatenate([phi_NxF, penalty_FxF])
    zeros = jnp.zeros((num_features,) + y.shape[1:], y.dtype)
    return jnp.linalg.lstsq(stacked, jnp.concatenate([y, zeros]))[0]


def feature_mask(num_features: int, count):
    """``mask_F``: 1.0 for the first ``count`` of ``num_features`` features, 0.0 for the rest
    (``count`` may be traced)."""
    return (jnp.arange(num_features) < count).astype(jnp.float32)


@functools.partial(jax.jit, static_argnames=("min_norm",))
def _fit_counts(phi_train_NxF, y_train_NxO, phi_test_NxF, counts_G, l2_G, min_norm):
    num_examples, num_features = phi_train_NxF.shape
    y_NxO = y_train_NxO.reshape(num_examples, -1)

    def primal(phi_masked_NxF, count, l2):
        return least_squares(phi_masked_NxF, y_train_NxO, None if min_norm else l2)

    def dual(phi_masked_NxF, count, l2):
        # theta = phi^T (phi phi^T + N l2 I)^+ y: the same solution from the N x N Gram matrix, whose
        # eigendecomposition costs far less than an SVD of phi when F >> N. Features in general
        # position give phi rank min(count, N); eigenvalues beyond that rank are round-off and are
        # dropped, as are those below machine precision relative to the largest. The Gram matrix
        # squares phi's condition number, so two steps of iterative refinement on the residual
        # y - phi theta (plus the penalty's term) win back the accuracy of an SVD beyond the threshold.
        gram_NxN = phi_masked_NxF @ phi_masked_NxF.T
        eigenvalues_N, eigenvectors_NxN = jnp.linalg.eigh(gram_NxN)
        rank = jnp.minimum(count, num_examples)
        floor = jnp.finfo(gram_NxN.dtype).eps * eigenvalues_N[-1]
        keep_N = ((jnp.arange(num_examples) >= num_examples - rank) & (eigenvalues_N > floor)) | (l2 > 0)
        inverse_N = jnp.where(keep_N, 1.0 / (jnp.maximum(eigenvalues_N, floor) + num_examples * l2), 0.0)
        solve_gram = lambda r_NxO: eigenvectors_NxN @ (inverse_N[:, None] * (eigenvectors_NxN.T @ r_NxO))
        alpha_NxO = solve_gram(y_NxO)
        for _ in range(2):
            residual_NxO = y_NxO - phi_masked_NxF @ (phi_masked_NxF.T @ alpha_NxO) - num_examples * l2 * alpha_NxO
            alpha_NxO = alpha_NxO + solve_gram(residual_NxO)
        return (phi_masked_NxF.T @ alpha_NxO).reshape((num_features,) + y_train_NxO.shape[1:])

    solve = primal if num_features <= num_examples else dual

    def fit(count_and_l2):
        count, l2 = count_and_l2
        mask_F = feature_mask(num_features, count).astype(phi_train_NxF.dtype)
        # Masked features have all-zero columns and so zero coefficients; masking theta as well keeps
        # round-off in those coefficients out of the predictions.
        theta = solve(phi_train_NxF * mask_F, count, l2) * mask_F.reshape((-1,) + (1,) * (y_train_NxO.ndim - 1))
        return phi_train_NxF @ theta, phi_test_NxF @ theta, jnp.linalg.norm(theta)

    # lax.map, not vmap: one fit's N x F masked copy in memory at a time, whatever the number of counts.
    return jax.lax.map(fit, (counts_G, l2_G))


def fit_feature_counts(phi_train_NxF, y_train_NxO, phi_test_NxF, counts_G, l2_G=None):
    """Least-squares fits on the first ``counts_G[g]`` features, for every g, as one compiled program.

    ``l2_G``: None for the minimum-norm fits, else one L2 strength per fit (see
    :func:`least_squares`; broadcast from a scalar). With F <= N features each fit is a
    least-squares solve of the masked features (:func:`least_squares`); with F > N (random
    features beyond the data) it is computed from the N x N Gram matrix of the masked features,
    ``theta = phi^T (phi phi^T + N l2 I)^+ y`` (the same solution). Returns
    ``(train_predictions_GxNxO, test_predictions_GxNxO, theta_norms_G)``, each N that of its set.
    Compiles once per shapes and ``l2_G is None``.
    """
    phi_train_NxF, phi_test_NxF = jnp.asarray(phi_train_NxF), jnp.asarray(phi_test_NxF)
    if phi_train_NxF.ndim != 2 or phi_test_NxF.ndim != 2 or phi_test_NxF.shape[1] != phi_train_NxF.shape[1]:
        raise ValueError(f"phi_train must be (N, F) and phi_test (N_test, F) with the same F, got "
                         f"{phi_train_NxF.shape} and {phi_test_NxF.shape}")
    counts = np.asarray(counts_G)
    if counts.ndim != 1 or counts.size == 0 or not np.issubdtype(counts.dtype, np.integer) \
            or counts.min() < 1 or counts.max() > phi_train_NxF.shape[1]:
        checks.fail("counts", counts.tolist(), f"a non-empty 1-D array of integers in [1, F={phi_train_NxF.shape[1]}]")
    min_norm = l2_G is None
    if not min_norm and np.any(np.asarray(l2_G) < 0):
        checks.fail("l2", np.asarray(l2_G).tolist(), "penalties >= 0")
    l2_G = jnp.broadcast_to(jnp.asarray(0.0 if min_norm else l2_G, phi_train_NxF.dtype), counts.shape)
    y = jnp.asarray(y_train_NxO)
    if y.shape[:1] != phi_train_NxF.shape[:1]:
        raise ValueError(f"y_train must have the N = {phi_train_NxF.shape[0]} rows of phi_train, got {y.shape}")
    return _fit_counts(phi_train_NxF, y, phi_test_NxF, jnp.asarray(counts, jnp.int32), l2_G, min_norm=min_norm)
