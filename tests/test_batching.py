"""Tests of jaxdl.core.batching against the same quantity computed on the whole data set at once."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdl.core import batching


def _batch(num=23, seed=0):
    rng = np.random.default_rng(seed)
    return {"x": rng.normal(size=(num, 3)).astype(np.float32), "y": rng.normal(size=(num,)).astype(np.float32)}


def _means(batch):
    # A dict of per-batch means, one of them non-linear in the batch only through the mean.
    return {"xy": jnp.mean(batch["x"] * batch["y"][:, None], axis=0), "y2": jnp.mean(batch["y"] ** 2)}


@pytest.mark.parametrize("chunk_size", [None, 1, 4, 5, 7, 23, 50])
def test_dataset_mean_is_exact_for_any_remainder(chunk_size):
    batch = _batch()
    whole = {k: np.asarray(v, np.float64) for k, v in _means(batch).items()}
    got = jax.jit(lambda b: batching.dataset_mean(_means, b, chunk_size))(batch)
    for name in whole:
        np.testing.assert_allclose(np.asarray(got[name]), whole[name], rtol=1e-5, atol=1e-6)


def test_dataset_mean_evaluates_chunks_of_the_given_size():
    sizes = []

    def record(batch):
        sizes.append(batch["y"].shape[0])
        return jnp.mean(batch["y"])

    jax.jit(lambda b: batching.dataset_mean(record, b, 5))(_batch(23))
    assert sorted(sizes) == [3, 5]  # one traced chunk of 5 (lax.map) and the remainder of 3


@pytest.mark.parametrize("items_per_chunk", [None, 1, 3, 4, 10, 11])
def test_map_in_chunks_equals_a_python_loop(items_per_chunk):
    items = {"a": np.arange(10.0, dtype=np.float32), "b": np.arange(20.0, dtype=np.float32).reshape(10, 2)}
    fn = lambda item: {"sum": item["a"] + item["b"].sum(), "outer": item["a"] * item["b"]}
    got = jax.jit(lambda i: batching.map_in_chunks(fn, i, items_per_chunk))(items)
    for n in range(10):
        expected = fn({k: v[n] for k, v in items.items()})
        np.testing.assert_allclose(got["sum"][n], expected["sum"])
        np.testing.assert_allclose(got["outer"][n], expected["outer"])
    assert got["outer"].shape == (10, 2)


def test_num_examples_and_bad_input():
    assert batching.num_examples((np.zeros((4, 2)), np.zeros(4))) == 4
    with pytest.raises(ValueError, match="batch: every leaf needs the same leading example axis"):
        batching.num_examples((np.zeros((4, 2)), np.zeros(3)))
    with pytest.raises(ValueError, match="batch"):
        batching.num_examples((np.zeros(()),))
    with pytest.raises(ValueError, match="chunk_size must be a positive integer or None, got 0"):
        batching.dataset_mean(_means, _batch(), 0)
    with pytest.raises(ValueError, match="items_per_chunk must be a positive integer or None, got True"):
        batching.map_in_chunks(lambda i: i, np.zeros(3), True)


def test_items_per_chunk_auto_is_the_backends_measured_size():
    measured = {jax.default_backend(): 3, "some-other-backend": 5}
    assert batching.items_per_chunk("points_per_chunk", "auto", measured, 64) == 3
    assert batching.items_per_chunk("points_per_chunk", "auto", {"some-other-backend": 5}, 64) == 64
    assert batching.items_per_chunk("points_per_chunk", 7, measured, 64) == 7
    assert batching.items_per_chunk("points_per_chunk", None, measured, 64) is None
    with pytest.raises(ValueError, match="points_per_chunk must be a positive integer, None .* or 'auto'"):
        batching.items_per_chunk("points_per_chunk", "fast", measured, 64)
    with pytest.raises(ValueError, match="points_per_chunk"):
        batching.items_per_chunk("points_per_chunk", 0, measured, 64)
