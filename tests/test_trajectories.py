"""Tests of jaxdl.analysis.landscape.trajectory_plane against NumPy's SVD (Li et al. 2018, section 7)."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdl.analysis import landscape


def _iterates(seed=0, steps=12):
    """A pytree trajectory (two leaves) drifting mostly along two fixed directions, with noise."""
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=17), rng.normal(size=17)
    t = np.linspace(0, 1, steps)[:, None]
    flat = 3 * t * a + np.sin(3 * t) * b + 0.05 * rng.normal(size=(steps, 17))
    return {"w": jnp.asarray(flat[:, :12].reshape(steps, 3, 4)), "b": jnp.asarray(flat[:, 12:])}, flat


@pytest.mark.parametrize("center", [True, False])
def test_directions_variance_and_coordinates_match_numpy_svd(center):
    with jax.enable_x64(True):
        iterates, flat = _iterates()
        plane = landscape.trajectory_plane(iterates, center=center)
        directions = np.concatenate([np.asarray(plane.directions["b"]),
                                     np.asarray(plane.directions["w"]).reshape(2, -1)], axis=1)
    # tree.flatten orders leaves by key: "b" before "w".
    flat = np.concatenate([flat[:, 12:], flat[:, :12]], axis=1)
    offsets = flat - flat[-1]
    rows = offsets - offsets.mean(axis=0) if center else offsets
    _, singular, vt = np.linalg.svd(rows, full_matrices=False)
    for j in range(2):  # equal up to sign
        np.testing.assert_allclose(abs(directions[j] @ vt[j]), 1.0, atol=1e-8)
    np.testing.assert_allclose(directions @ directions.T, np.eye(2), atol=1e-8)
    np.testing.assert_allclose(plane.explained_variance, singular[:2] ** 2 / np.sum(singular ** 2), rtol=1e-8)
    np.testing.assert_allclose(plane.coordinates, offsets @ directions.T, atol=1e-8)
    np.testing.assert_allclose(plane.coordinates[-1], 0.0, atol=1e-12)
    # The drift lies in two directions: they carry almost all of the variance.
    assert float(np.sum(np.asarray(plane.explained_variance))) > 0.95


def test_an_explicit_final_point_is_the_origin():
    with jax.enable_x64(True):
        iterates, _ = _iterates(1)
        final = jax.tree.map(lambda leaf: leaf[-1] + 0.1, iterates)
        plane = landscape.trajectory_plane(iterates, final)
        moved = jax.tree.map(lambda leaf, f: jnp.concatenate([leaf, f[None]]), iterates, final)
        again = landscape.trajectory_plane(moved, center=False)
    assert np.asarray(again.coordinates)[-1] == pytest.approx([0.0, 0.0], abs=1e-12)
    assert plane.coordinates.shape == (12, 2)


def test_bad_iterates_are_named():
    with pytest.raises(ValueError, match="iterates"):
        landscape.trajectory_plane({"w": jnp.zeros((2, 3))})
    with pytest.raises(ValueError, match="iterates"):
        landscape.trajectory_plane({"w": jnp.zeros((4, 3)), "b": jnp.zeros((5,))})
    with pytest.raises(ValueError, match="final"):
        landscape.trajectory_plane({"w": jnp.zeros((4, 3))}, {"v": jnp.zeros(3)})
