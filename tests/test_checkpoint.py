"""Tests of jaxdl.core.checkpoint: Orbax save/restore round trips of pytrees."""
from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdl.core.checkpoint import Checkpointer


def _tree(offset):
    rng = np.random.default_rng(offset)
    return {
        "params": {"kernel": jnp.asarray(rng.standard_normal((3, 2)), jnp.float32),
                   "bias": jnp.arange(2, dtype=jnp.float32) + offset},
        "step": jnp.asarray(offset, jnp.int32),
        "rng": jax.random.key_data(jax.random.key(offset)),
        "history": {"loss": rng.standard_normal(5).astype(np.float32)},
    }


def test_save_restore_round_trip_and_latest_step(tmp_path):
    checkpointer = Checkpointer(tmp_path / "ckpt", max_to_keep=2)
    assert checkpointer.latest_step() is None
    for step in (1, 2, 3):
        checkpointer.save(step, _tree(step))
    assert checkpointer.latest_step() == 3
    like = _tree(0)
    # strict: the dtypes and shapes must survive the round trip, not only the values.
    chex.assert_trees_all_equal(checkpointer.restore(like), _tree(3), strict=True)
    chex.assert_trees_all_equal(checkpointer.restore(like, step=2), _tree(2), strict=True)
    with pytest.raises(Exception):  # step 1 fell out of max_to_keep=2
        checkpointer.restore(like, step=1)
    checkpointer.close()

    reopened = Checkpointer(tmp_path / "ckpt")  # a new process finds the same checkpoints
    assert reopened.latest_step() == 3
    chex.assert_trees_all_equal(reopened.restore(like), _tree(3), strict=True)
    reopened.close()


def test_restore_without_checkpoint_raises_file_not_found(tmp_path):
    checkpointer = Checkpointer(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        checkpointer.restore(_tree(0))
    checkpointer.close()
