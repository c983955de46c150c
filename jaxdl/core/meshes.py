"""Meshes and placement: the one home of "which devices, along which axis".

Every program in jaxdl that spans devices names its axis after what is split: ``'data'``
(examples of a batch), ``'seeds'`` (vmapped training runs), ``'points'`` (grid points of a
surface), ``('processes', 'local')`` (the hosts of a distributed run). One device is the same
code path as many: every builder returns a mesh of size one there.

- :func:`example_mesh` -- a ``'data'`` axis over the devices that divide a number of examples;
  :func:`shard_examples` places a batch (split) and its companions (replicated) on it, and
  :func:`on_every_device` brings a result back onto every device;
- :func:`data_mesh`, :func:`seeds_mesh`, :func:`points_mesh`, :func:`process_mesh` -- the meshes of
  training, vmapped seeds, surfaces and multi-host data;
- :func:`place_data` -- the four splits of a data set on a mesh.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jaxdl.core import batching, checks

__all__ = ["data_mesh", "example_mesh", "on_every_device", "place_data", "points_mesh", "process_mesh",
           "seeds_mesh", "shard_examples"]

PyTree = Any


def _mesh(grid, axis_names: tuple[str, ...]) -> jax.sharding.Mesh:
    """A mesh over the device array ``grid`` (one axis per name), every axis sharded automatically."""
    return jax.sharding.Mesh(np.asarray(grid), axis_names, axis_types=(jax.sharding.AxisType.Auto,) * len(axis_names))


def _devices(devices: Sequence[jax.Device] | None) -> list:
    return jax.devices() if devices is None else list(devices)


def example_mesh(num: int, devices: Sequence[jax.Device] | None = None) -> jax.sharding.Mesh:
    """A 1-D mesh ``'data'`` over the largest number of ``devices`` (default every device, of
    every process in a distributed run) that divides ``num`` examples: all of them, when ``num``
    is a multiple of their count."""
    devices = _devices(devices)
    size = max(d for d in range(1, len(devices) + 1) if num % d == 0)
    return _mesh(devices[:size], ("data",))


def data_mesh(devices: Sequence[jax.Device] | None = None) -> jax.sharding.Mesh:
    """A 1-D mesh with axis ``'data'`` over ``devices`` (default: every device of every process)."""
    devices = _devices(devices)
    return jax.make_mesh((len(devices),), ("data",), devices=devices, axis_types=(jax.sharding.AxisType.Auto,))


def points_mesh() -> jax.sharding.Mesh:
    """A 1-D mesh with axis ``'points'`` over every device (one device is the same code path)."""
    return jax.make_mesh((jax.device_count(),), ("points",), axis_types=(jax.sharding.AxisType.Auto,))


def seeds_mesh(num_seeds: int, batch_size: int, devices: Sequence[jax.Device] | None = None) -> jax.sharding.Mesh:
    """A 2-D mesh ``('seeds', 'data')`` for ``num_seeds`` vmapped runs over ``devices`` (default
    every device of every process): the seed axis takes s = gcd(K, D) devices, so K seeds on K devices (or
    on any multiple of K) run side by side with no padding, and the data axis takes the largest
    divisor of D / s that divides ``batch_size`` (each seed's batch split over it). Seed counts
    that share no factor with the device count run with the batch split only (5 seeds on 8
    devices: a 1 x 8 mesh for a batch divisible by 8). Uses s x d of the D devices; one device
    is the same code path (a 1 x 1 mesh)."""
    devices = _devices(devices)
    num_seeds, batch_size = checks.integer("num_seeds", num_seeds), checks.integer("batch_size", batch_size)
    seeds_axis = math.gcd(num_seeds, len(devices))
    data_axis = max(d for d in range(1, len(devices) // seeds_axis + 1)
                    if (len(devices) // seeds_axis) % d == 0 and batch_size % d == 0)
    grid = np.asarray(devices[:seeds_axis * data_axis]).reshape(seeds_axis, data_axis)
    return _mesh(grid, ("seeds", "data"))


def process_mesh(devices: Sequence[jax.Device] | None = None) -> jax.sharding.Mesh:
    """A 2-D mesh ``('processes', 'local')``: row p holds the devices of process p (default: every
    device of every process). ``ValueError`` when the processes hold different numbers of devices."""
    by_process: dict[int, list] = {}
    for device in sorted(_devices(devices), key=lambda d: (d.process_index, d.id)):
        by_process.setdefault(device.process_index, []).append(device)
    counts = {len(v) for v in by_process.values()}
    if len(counts) != 1:
        checks.fail("devices", {p: len(v) for p, v in by_process.items()},
                    "the same number of devices on every process")
    return _mesh([by_process[p] for p in sorted(by_process)], ("processes", "local"))


def shard_examples(batch: PyTree, *replicated: PyTree) -> tuple:
    """``(batch, *replicated)`` placed for a data-parallel program: ``batch``'s example axis
    split over :func:`example_mesh` (every device when N is a multiple of their count) and
    every tree in ``replicated`` (parameters, directions, probes) copied to each device of it.

    A program jitted on the results runs on every device of the mesh, and its means over the
    examples are exact (XLA reduces the per-device partial sums across devices): the same
    number as on one device up to floating-point reassociation. With one device (or a prime
    N above the device count) the trees are returned as they are.
    """
    mesh = example_mesh(batching.num_examples(batch))
    if mesh.devices.size == 1:  # nothing to split: the arrays stay where they are
        return (batch, *replicated)
    sharded = jax.device_put(batch, NamedSharding(mesh, P("data")))
    return (sharded, *jax.device_put(replicated, NamedSharding(mesh, P())))


def on_every_device(tree: PyTree, mesh: jax.sharding.Mesh) -> PyTree:
    """``tree`` (computed on ``mesh``) replicated on every device when ``mesh`` leaves some out
    (a mesh chosen to divide a batch), so that results computed on different meshes can meet in
    one program; unchanged when ``mesh`` spans every device."""
    if mesh.devices.size == jax.device_count():
        return tree
    return jax.device_put(tree, NamedSharding(example_mesh(jax.device_count()), P()))


def place_data(data, mesh: jax.sharding.Mesh) -> tuple:
    """The four splits of ``data`` (a :class:`jaxdl.data.Dataset`) on ``mesh``: copied to each of
    its devices, or, for global arrays spread over several processes
    (:func:`jaxdl.data.spread_over_processes`), left where they are (each process keeps its rows;
    XLA moves the rows each batch needs). Those need a mesh over every device of every process."""
    arrays = (data.x_train, data.y_train, data.x_test, data.y_test)
    spread = [isinstance(a, jax.Array) and not a.is_fully_addressable for a in arrays]
    if any(spread) and set(mesh.devices.flat) != set(jax.devices()):
        raise ValueError(f"data set {data.name!r} is spread over {jax.process_count()} processes, so training needs "
                         f"all {jax.device_count()} devices but the batch splits over {mesh.devices.size}: use a "
                         f"batch_size (and for fit_seeds a seed count) that the device count divides")
    replicated = NamedSharding(mesh, P())
    return tuple(a if is_spread else jax.device_put(a, replicated) for a, is_spread in zip(arrays, spread))
