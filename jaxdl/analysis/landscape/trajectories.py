"""Optimisation trajectories on their principal plane (Li et al. 2018, section 7).

Random directions are nearly orthogonal to a trajectory in high dimension, so a random plane
shows almost none of it. Li, Xu, Taylor, Studer & Goldstein 2018 ("Visualizing the loss
landscape of neural nets") instead take the iterates theta_0 ... theta_{T-1} of a run, form the
T x P matrix M whose rows are theta_i - theta_final, and plot the trajectory on the top two
principal directions of M (their code fits scikit-learn's PCA, which centres the rows first):
most of the trajectory's variance lies in those two directions.

:func:`trajectory_plane` computes the directions, the explained variance and every iterate's
coordinates from the T x T Gram matrix of M (T << P), one compiled program; plot the loss
surface on the plane with :func:`jaxdl.analysis.landscape.surface` along ``plane.directions``.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxdl.core import checks, compiled, tree

__all__ = ["TrajectoryPlane", "trajectory_plane"]

PyTree = Any
_HIGHEST = jax.lax.Precision.HIGHEST


class TrajectoryPlane(NamedTuple):
    """The principal plane of a trajectory.

    Attributes:
      directions: pytree like ``params`` whose leaves have a leading axis of 2: the first and
        second principal directions, unit norm over the whole pytree and orthogonal.
      coordinates: (T, 2) each iterate's theta_i - theta_final along the two directions (the
        final point at the origin).
      explained_variance: (2,) the fraction of the variance of the rows of M along each direction
        (squared singular value over the sum of all of them).
    """

    directions: PyTree
    coordinates: jax.Array
    explained_variance: jax.Array


@compiled.jit(static_argnames=("center",))
def _plane(iterates, final, *, center):
    flat_TxP = jax.vmap(lambda p: tree.flatten(p)[0])(iterates)
    final_P, unflatten = tree.flatten(final)
    offsets_TxP = flat_TxP - final_P
    rows_TxP = offsets_TxP - jnp.mean(offsets_TxP, axis=0) if center else offsets_TxP
    # The right singular vectors of the T x P matrix from the T x T Gram matrix: M M^T = U S^2 U^T,
    # V = M^T U / S.
    gram_TxT = jnp.matmul(rows_TxP, rows_TxP.T, precision=_HIGHEST)
    squares_T, left_TxT = jnp.linalg.eigh(gram_TxT)
    squares_T, left_TxT = squares_T[::-1], left_TxT[:, ::-1]
    singular_2 = jnp.sqrt(jnp.maximum(squares_T[:2], 0))
    directions_2xP = jnp.matmul(left_TxT[:, :2].T, rows_TxP, precision=_HIGHEST) / singular_2[:, None]
    total = jnp.sum(jnp.maximum(squares_T, 0))
    coordinates_Tx2 = jnp.matmul(offsets_TxP, directions_2xP.T, precision=_HIGHEST)
    return TrajectoryPlane(jax.vmap(unflatten)(directions_2xP), coordinates_Tx2, singular_2 ** 2 / total)


def trajectory_plane(iterates: PyTree, final: PyTree | None = None, *, center: bool = True) -> TrajectoryPlane:
    """The top two principal directions of a trajectory's iterates and its coordinates on them.

    Li et al. 2018, section 7: the rows of M are theta_i - theta_final; with ``center`` (the
    default, as their code's scikit-learn PCA) each column of M is centred before the singular
    value decomposition, without it M itself is decomposed. The directions are the top two right
    singular vectors; the coordinates project the uncentred rows, so the final point sits at
    the origin of the plane.

    Args:
      iterates: pytree like ``params`` whose leaves have a leading axis T >= 3 (the saved
        iterates, oldest first), e.g. a fit's snapshots stacked.
      final: the point the rows are taken from (default: the last iterate).
      center: centre the rows of M (PCA) or not (plain SVD).

    Returns:
      :class:`TrajectoryPlane` (directions with leaves (2, ...), coordinates (T, 2), explained
      variance (2,)).
    """
    leaves = jax.tree.leaves(iterates)
    if not leaves or any(jnp.ndim(leaf) < 1 for leaf in leaves):
        checks.fail("iterates", type(iterates).__name__, "a pytree of arrays with a leading axis T (one row per iterate)")
    lengths = {int(jnp.shape(leaf)[0]) for leaf in leaves}
    if len(lengths) != 1 or min(lengths) < 3:
        checks.fail("iterates", sorted(lengths), "leaves sharing one leading axis T >= 3")
    if final is None:
        final = jax.tree.map(lambda leaf: leaf[-1], iterates)
    else:
        checks.same_structure("final", final, jax.tree.map(lambda leaf: leaf[0], iterates))
    return _plane(iterates, final, center=bool(center))
