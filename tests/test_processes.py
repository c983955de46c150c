"""Each process's rows of a data set (jaxdl.data.processes) in one process; the two-process runs that
train on them are in test_distributed.py."""
from __future__ import annotations

import numpy as np
import pytest

from jaxdl import data
from jaxdl.core import meshes


def test_process_shards_are_consecutive_equal_blocks_that_tile_the_set():
    full = data.Dataset(np.arange(12.0)[:, None], np.arange(12), np.arange(6.0)[:, None], np.arange(6), 12, "ids")
    shards = [data.process_shard(full, process_index=p, process_count=3) for p in range(3)]
    for name in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(np.concatenate([getattr(s, name) for s in shards]), getattr(full, name))
    assert [s.y_train.tolist() for s in shards] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]
    assert shards[2].num_classes == 12 and shards[2].name == "ids"
    # One process (the default here) keeps every row.
    np.testing.assert_array_equal(data.process_shard(full).x_train, full.x_train)


def test_process_shard_refuses_or_drops_a_remainder():
    full = data.Dataset(np.zeros((10, 2), np.float32), np.zeros(10, np.int32), np.zeros((6, 2), np.float32),
                        np.zeros(6, np.int32), 2, "ten")
    with pytest.raises(ValueError, match="x_train has 10 examples, not a multiple of the 4 processes.*last 2"):
        data.process_shard(full, process_index=0, process_count=4)
    kept = data.process_shard(full, process_index=3, process_count=4, drop_remainder=True)
    assert kept.x_train.shape == (2, 2) and kept.x_test.shape == (1, 2)
    with pytest.raises(ValueError, match="process_index"):
        data.process_shard(full, process_index=4, process_count=4)
    with pytest.raises(ValueError, match="process_count"):
        data.process_shard(full, process_index=0, process_count=0)


def test_spread_over_one_process_keeps_the_rows():
    full = data.load("moons", num_train=40, num_test=20)
    spread = data.spread_over_processes(data.process_shard(full))
    assert meshes.process_mesh().axis_names == ("processes", "local")
    for name in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(np.asarray(getattr(spread, name)), getattr(full, name))


def test_process_mesh_needs_as_many_devices_on_every_process():
    class FakeDevice:  # process_mesh reads only these two attributes before it refuses
        def __init__(self, process_index, id):
            self.process_index, self.id = process_index, id

    devices = [FakeDevice(0, 0), FakeDevice(0, 1), FakeDevice(1, 2)]
    with pytest.raises(ValueError, match="devices must be the same number of devices on every process"):
        meshes.process_mesh(devices)
