"""Where training runs: the plan of an epoch (batch size against the data and the devices) and the
meshes that :func:`jaxdl.train.fit` and :func:`jaxdl.train.fit_seeds` spread their work over.

- :func:`make_plan` -- ``batch_size`` and ``epochs`` checked against the data set, and the ``'data'``
  mesh of the devices that divide the batch;
- :func:`data_mesh`, :func:`seeds_mesh` -- a ``'data'`` axis over devices, a ``('seeds', 'data')``
  grid for vmapped seeds;
- :func:`place_data` -- the four splits of a data set on a mesh: copied to each of its devices, or
  left spread over the processes of a distributed run.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import jax
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jaxdl import batching, checks


@dataclasses.dataclass(frozen=True)
class _Plan:
    """Validated sizes and placements of one training run."""

    num_train: int
    batch_size: int
    steps_per_epoch: int
    full_batch: bool
    mesh: jax.sharding.Mesh


def make_plan(data, batch_size, epochs, mesh=None) -> _Plan:
    """Validate ``epochs``/``batch_size`` against ``data`` and the mesh (default: the devices
    that divide the batch evenly, :func:`jaxdl.batching.example_mesh`)."""
    num_train = int(data.x_train.shape[0])
    checks.integer("epochs", epochs)
    full_batch = batch_size is None
    batch_size = checks.integer("batch_size", num_train if full_batch else batch_size, maximum=num_train,
                                maximum_name="the number of training examples")
    # By default every local device that the batch splits over evenly (all of them when the
    # batch size is a multiple of their count).
    mesh = batching.example_mesh(batch_size) if mesh is None else mesh
    num_devices = dict(mesh.shape).get("data", 1)
    if batch_size % num_devices:
        raise ValueError(f"batch_size={batch_size} must be divisible by the {num_devices} devices of the data mesh")
    return _Plan(num_train, batch_size, num_train // batch_size, full_batch, mesh)


def data_mesh(devices: Sequence[jax.Device] | None = None) -> jax.sharding.Mesh:
    """A 1-D mesh with axis ``'data'`` over ``devices`` (default: every device of every process)."""
    devices = jax.devices() if devices is None else list(devices)
    return jax.make_mesh((len(devices),), ("data",), devices=devices, axis_types=(jax.sharding.AxisType.Auto,))


def seeds_mesh(num_seeds: int, batch_size: int, devices: Sequence[jax.Device] | None = None) -> jax.sharding.Mesh:
    """A 2-D mesh ``('seeds', 'data')`` for ``num_seeds`` vmapped runs over ``devices`` (default
    every device of every process): the seed axis takes s = gcd(K, D) devices, so K seeds on K devices (or
    on any multiple of K) run side by side with no padding, and the data axis takes the largest
    divisor of D / s that divides ``batch_size`` (each seed's batch split over it). Seed counts
    that share no factor with the device count run with the batch split only (5 seeds on 8
    devices: a 1 x 8 mesh for a batch divisible by 8). Uses s x d of the D devices; one device
    is the same code path (a 1 x 1 mesh)."""
    devices = jax.devices() if devices is None else list(devices)
    num_seeds, batch_size = checks.integer("num_seeds", num_seeds), checks.integer("batch_size", batch_size)
    seeds_axis = math.gcd(num_seeds, len(devices))
    data_axis = max(d for d in range(1, len(devices) // seeds_axis + 1)
                    if (len(devices) // seeds_axis) % d == 0 and batch_size % d == 0)
    grid = np.asarray(devices[:seeds_axis * data_axis]).reshape(seeds_axis, data_axis)
    return jax.sharding.Mesh(grid, ("seeds", "data"), axis_types=(jax.sharding.AxisType.Auto,) * 2)


def place_data(data, mesh: jax.sharding.Mesh) -> tuple:
    """The four splits on ``mesh``: copied to each of its devices, or, for global arrays spread over
    several processes (:func:`jaxdl.data.spread_over_processes`), left where they are (each
    process keeps its rows; XLA moves the rows each batch needs). Those need a mesh over every
    device of every process."""
    arrays = (data.x_train, data.y_train, data.x_test, data.y_test)
    spread = [isinstance(a, jax.Array) and not a.is_fully_addressable for a in arrays]
    if any(spread) and set(mesh.devices.flat) != set(jax.devices()):
        raise ValueError(f"data set {data.name!r} is spread over {jax.process_count()} processes, so training needs "
                         f"all {jax.device_count()} devices but the batch splits over {mesh.devices.size}: use a "
                         f"batch_size (and for fit_seeds a seed count) that the device count divides")
    replicated = NamedSharding(mesh, P())
    return tuple(a if is_spread else jax.device_put(a, replicated) for a, is_spread in zip(arrays, spread))
