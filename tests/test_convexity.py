"""Tests of jaxdl.analysis.landscape.convexity_map against dense Hessians (``jax.hessian`` and
``numpy.linalg.eigvalsh`` in float64) at the points of a small grid."""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdl.analysis import landscape
from jaxdl.core import tree
from jaxdl.train import losses

DIMS = (5, 6, 3)


def apply_fn(params, x):
    return jnp.tanh(x @ params["w1"] + params["b1"]) @ params["w2"] + params["b2"]


@functools.lru_cache(maxsize=None)
def _problem():
    rng = np.random.default_rng(0)
    params = {"w1": rng.normal(size=DIMS[:2]) / np.sqrt(DIMS[0]), "b1": 0.1 * rng.normal(size=DIMS[1]),
              "w2": rng.normal(size=DIMS[1:]) / np.sqrt(DIMS[1]), "b2": 0.1 * rng.normal(size=DIMS[2])}
    directions = [jax.tree.map(lambda v: rng.normal(size=v.shape), params) for _ in range(2)]
    x, y = rng.normal(size=(24, DIMS[0])), rng.integers(0, DIMS[2], 24).astype(np.int32)
    return params, directions, (x, y)


def test_extreme_eigenvalues_match_the_dense_hessian_at_every_point():
    xs, ys = np.array([-0.5, 0.0, 0.5]), np.array([-0.3, 0.4])
    with jax.enable_x64(True):
        params, (dx, dy), batch = jax.tree.map(jnp.asarray, _problem())
        count = tree.count(params)
        values = landscape.convexity_map(apply_fn, params, dx, dy, batch, xs, ys, num_steps=count)
        loss_fn = losses.make_loss_fn(apply_fn)
        for i, y in enumerate(ys):
            for j, x in enumerate(xs):
                point = tree.axpy(y, dy, tree.axpy(x, dx, params))
                flat, unflatten = tree.flatten(point)
                dense = np.linalg.eigvalsh(np.asarray(jax.hessian(lambda t: loss_fn(unflatten(t), batch))(flat)))
                np.testing.assert_allclose(values["top"][i, j], dense[-1], rtol=1e-8)
                np.testing.assert_allclose(values["bottom"][i, j], dense[0], rtol=1e-6, atol=1e-10)
                assert values["ratio"][i, j] == pytest.approx(abs(dense[0] / dense[-1]), rel=1e-6)
        # A short run understates both ends (Ritz values lie inside the spectrum).
        short = landscape.convexity_map(apply_fn, params, dx, dy, batch, xs, ys, num_steps=5, points_per_chunk=2)
    assert np.all(short["top"] <= values["top"] * (1 + 1e-9)) and np.all(short["bottom"] >= values["bottom"] - 1e-9)
    assert values["top"].shape == (2, 3)


def test_fraction_counts_points_above_the_threshold_in_the_central_region():
    xs, ys = np.array([-1.0, 0.0, 1.0]), np.array([-1.0, 0.0, 1.0])
    ratio = np.array([[0.5, 0.0, 0.5], [0.5, 0.2, 0.0], [0.5, 0.0, 0.5]])
    assert landscape.convexity_fraction({"ratio": ratio}, xs, ys, 0.1) == pytest.approx(6 / 9)
    assert landscape.convexity_fraction({"ratio": ratio}, xs, ys, 0.1, radius=0.5) == 1.0
    with pytest.raises(ValueError, match="ratio"):
        landscape.convexity_fraction({"ratio": ratio[:2]}, xs, ys, 0.1)


def test_bad_inputs_are_named():
    params, (dx, dy), batch = _problem()
    with pytest.raises(ValueError, match="num_steps"):
        landscape.convexity_map(apply_fn, params, dx, dy, batch, [0.0], [0.0], num_steps=10_000)
    with pytest.raises(ValueError, match="direction_y"):
        landscape.convexity_map(apply_fn, params, dx, {"w": 0}, batch, [0.0], [0.0])
    with pytest.raises(ValueError, match="xs"):
        landscape.convexity_map(apply_fn, params, dx, dy, batch, [], [0.0])
