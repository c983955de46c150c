"""Tests of the shared test helpers (tests/helpers.py), each able to fail: ``numbers_in`` against
numbers written out by hand, ``flat`` against
vectors written out by hand, ``random_params`` against the same NumPy draws, ``run_on_devices``
against what the subprocess reports, and ``count_compiles`` against calls that must and must
not compile."""
from __future__ import annotations

import os

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import REPO_ROOT, count_compiles, flat, json_result, numbers_in, random_params, run_on_devices


# ----------------------------------------------------------------------------- flat


def test_flat_concatenates_leaves_in_tree_order_as_float64():
    tree = {"w": jnp.arange(6, dtype=jnp.float32).reshape(2, 3), "b": [np.int32(7), np.array([0.5, -1.5])],
            "s": jnp.float32(2.25)}
    vector = flat(tree)
    assert vector.dtype == np.float64 and vector.shape == (10,)
    # jax.tree.leaves order: dict keys sorted ('b', 's', 'w'), lists in order, arrays row-major.
    np.testing.assert_array_equal(vector, [7, 0.5, -1.5, 2.25, 0, 1, 2, 3, 4, 5])
    # float64 leaves are not rounded through float32.
    assert flat({"x": np.array([1 + 1e-12])})[0] == 1 + 1e-12
    assert flat({}).shape == (0,) and flat([]).dtype == np.float64


# ----------------------------------------------------------------------------- random_params


def test_random_params_has_the_init_structure_and_the_numpy_draws():
    model, x = nn.Dense(3), np.zeros((1, 2), np.float32)
    params = random_params(model, x, seed=4, scale=0.5)
    chex.assert_trees_all_equal_shapes_and_dtypes(params, model.init(jax.random.key(0), x)["params"])
    rng = np.random.default_rng(4)  # leaves in jax.tree.leaves order: 'bias' then 'kernel'
    bias, kernel = rng.normal(size=3) * 0.5, rng.normal(size=(2, 3)) * 0.5
    chex.assert_trees_all_equal(params, {"bias": bias.astype(np.float32), "kernel": kernel.astype(np.float32)})
    assert not np.array_equal(flat(random_params(model, x, seed=5, scale=0.5)), flat(params))


# ----------------------------------------------------------------------------- run_on_devices

_DEVICES_SCRIPT = """
import json, os
import jax
print("noise before the result")
print("RESULT " + json.dumps({"devices": jax.device_count(), "platform": jax.default_backend(), "cwd": os.getcwd()}))
"""


@pytest.mark.parametrize("num_devices", [4, 2])
def test_run_on_devices_sees_the_requested_cpu_devices_from_the_repository_root(num_devices):
    result = json_result(run_on_devices(_DEVICES_SCRIPT, num_devices=num_devices))
    assert result == {"devices": num_devices, "platform": "cpu", "cwd": os.fspath(REPO_ROOT)}


def test_run_on_devices_fails_the_test_with_stderr():
    with pytest.raises(pytest.fail.Exception, match="exited with 3(.|\n)*went wrong"):
        run_on_devices("import sys; print('went wrong', file=sys.stderr); sys.exit(3)")
    with pytest.raises(pytest.fail.Exception, match="ran past"):
        run_on_devices("import time; time.sleep(30)", timeout=1)


def test_json_result_takes_the_last_tagged_line():
    assert json_result('RESULT {"a": 1}\nwarning\nRESULT {"a": [2, 3]}\n') == {"a": [2, 3]}
    with pytest.raises(AssertionError, match="RESULT"):
        json_result("nothing tagged\n")


# ----------------------------------------------------------------------------- count_compiles


def test_count_compiles_counts_jit_cache_misses_only():
    scale = jax.jit(lambda v: v * 3.0 + 1.0)  # a new function: never compiled before
    x, longer = np.ones(5, np.float32), np.ones(6, np.float32)
    with count_compiles() as first:
        scale(x)
    assert first.count >= 1
    with count_compiles() as again:
        scale(x)
        scale(x + 1)  # other values, same shapes and dtypes
    assert again.count == 0
    with count_compiles() as new_shape:
        scale(longer)
    assert new_shape.count >= 1
    with count_compiles() as new_dtype:
        scale(x.astype(np.float16))
    assert new_dtype.count >= 1


def test_count_compiles_counts_a_program_the_persistent_cache_already_holds():
    def compile_and_run():
        # A new function object each time: JAX traces and lowers it again, and the persistent
        # compilation cache (tests/conftest.py) may then find the binary; both runs count.
        return jax.jit(lambda v: jnp.sin(v) * 2.0)(np.ones(7, np.float32))

    for _ in range(2):
        with count_compiles() as compiles:
            compile_and_run()
        assert compiles.count >= 1


def test_count_compiles_counts_eager_ops_the_first_time_only():
    x = jnp.asarray(np.arange(3 * 7 * 11, dtype=np.float32).reshape(3, 7, 11))  # a shape no other test uses
    with count_compiles() as first:
        jnp.cumsum(x, axis=1)
    assert first.count >= 1
    with count_compiles() as again:
        jnp.cumsum(x, axis=1)
    assert again.count == 0


def test_count_compiles_blocks_nest_and_freeze_on_exit():
    with count_compiles() as outer:
        with count_compiles() as inner:
            jax.jit(lambda v: v - 2.0)(np.ones(3, np.float32))
        after_inner = inner.count
        jax.jit(lambda v: v / 2.0)(np.ones(3, np.float32))
    assert after_inner >= 1 and inner.count == after_inner  # frozen at exit
    assert outer.count >= inner.count + 1
    frozen = outer.count
    jax.jit(lambda v: v + 5.0)(np.ones(3, np.float32))
    assert outer.count == frozen


def test_numbers_in_finds_every_number_of_a_string():
    assert numbers_in("3 of 1.5e-3, -2") == [3.0, 0.0015, -2.0]
    assert numbers_in("0.912 +- 0.004 (n=5)") == [0.912, 0.004, 5.0]
    assert numbers_in("4.49 vs 8.45; +0.017 and 2.5E+2") == [4.49, 8.45, 0.017, 250.0]
    assert numbers_in("yes") == []
