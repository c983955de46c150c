"""A data set spread over the processes of a distributed run, each process holding its own rows.

In a run over several hosts (``jax.distributed.initialize()``, the experiments' ``--distributed``),
every process may load the whole (small) data set and let ``fit`` place its part, or each may
hold only its shard:

- :func:`process_shard` cuts a :class:`Dataset` down to this process's contiguous block of rows,
  train and test (process p of P keeps rows ``[p N / P, (p + 1) N / P)``): what a process needs
  to load;
- :func:`spread_over_processes` assembles every process's shard into a data set of global
  ``jax.Array`` s (``jax.make_array_from_process_local_data``), whose rows stay on their
  process's devices: split over the processes, copied to each device of a process.

:func:`jaxdl.train.fit` and :func:`jaxdl.train.fit_seeds` train on such a data set as on the whole
data set held by every process: the same permutations and, up to floating-point reassociation,
the same numbers (``tests/test_distributed.py``); XLA moves the rows each batch needs. With one
process, both functions keep every row. Standardise before cutting (``data.load`` does): the
statistics must be those of the whole training set.
"""
from __future__ import annotations

import dataclasses

import jax
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jaxdl.core import checks, meshes
from jaxdl.data.dataset import Dataset

__all__ = ["SPLITS", "process_shard", "spread_over_processes"]

SPLITS = ("x_train", "y_train", "x_test", "y_test")


def process_shard(dataset: Dataset, *, process_index: int | None = None, process_count: int | None = None,
                  drop_remainder: bool = False) -> Dataset:
    """This process's rows of ``dataset`` (default: ``jax.process_index()`` of
    ``jax.process_count()``): the same number of consecutive rows of each split on every process.

    A split whose size is not a multiple of the process count raises ``ValueError`` naming it,
    unless ``drop_remainder``, which drops its last ``N mod P`` rows on every process (the
    result then differs from a one-process run on the whole set)."""
    count = checks.integer("process_count", jax.process_count() if process_count is None else process_count)
    index = checks.integer("process_index", jax.process_index() if process_index is None else process_index,
                           minimum=0, maximum=count - 1)
    rows = {}
    for name in SPLITS:
        array = getattr(dataset, name)
        size = len(array)
        if size % count and not drop_remainder:
            raise ValueError(f"{name} has {size} examples, not a multiple of the {count} processes: pass "
                             f"drop_remainder=True to drop the last {size % count} on every process")
        per_process = size // count
        rows[name] = array[index * per_process:(index + 1) * per_process]
    return dataclasses.replace(dataset, **rows)


def spread_over_processes(local: Dataset, devices=None) -> Dataset:
    """The data set whose rows are every process's ``local`` rows in process order (each process
    calls it with its :func:`process_shard`), as global ``jax.Array`` s split over the
    ``'processes'`` axis of :func:`jaxdl.core.mesh.process_mesh` and copied over each process's devices. Every
    process must pass shards of the same shapes."""
    mesh = meshes.process_mesh(devices)
    sharding = NamedSharding(mesh, P("processes"))
    num_processes = mesh.shape["processes"]
    arrays = {}
    for name in SPLITS:
        rows = np.asarray(getattr(local, name))
        global_shape = (num_processes * len(rows),) + rows.shape[1:]
        arrays[name] = jax.make_array_from_process_local_data(sharding, rows, global_shape)
    return dataclasses.replace(local, **arrays)
