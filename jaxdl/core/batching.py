"""Chunked evaluation: the one home of "a function over a data set, a chunk at a time".

A *batch* is a pytree whose leaves share a leading example axis of size N, usually
``(x_Nx..., y_N...)``. Two jobs recur across the library:

- :func:`dataset_mean` -- the data-set mean of a per-batch mean (a loss, its gradient, a
  Hessian-vector product, a dict of metrics), computed over chunks of ``chunk_size`` examples
  with ``lax.map`` and combined weighted by chunk size, so that the result is exact for any
  remainder and peak memory is that of one chunk (training evaluation, landscapes, curvature,
  sharpness, BatchNorm recomputation);
- :func:`map_in_chunks` -- a function of one item (a grid point, a random probe) over a leading
  axis of items, ``vmap``ped within chunks and ``lax.map``ped across them (surfaces, curves,
  Hutchinson probes).

Both are plain functions for use inside ``jit``.
"""
from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

from jaxdl.core import checks, tree

__all__ = ["num_examples", "dataset_mean", "items_per_chunk", "map_in_chunks"]

PyTree = Any


def num_examples(batch: PyTree) -> int:
    """N, the leading size shared by every leaf of ``batch``; ``ValueError`` naming ``batch`` if
    the leaves disagree, a leaf is a scalar, or there are none."""
    leaves = jax.tree.leaves(batch)
    sizes = {int(jnp.shape(leaf)[0]) if jnp.ndim(leaf) else -1 for leaf in leaves}
    if not sizes or -1 in sizes or len(sizes) != 1:
        raise ValueError(f"batch: every leaf needs the same leading example axis, got shapes "
                         f"{[jnp.shape(leaf) for leaf in leaves]}")
    return sizes.pop()


def _split_head(batch: PyTree, chunk_size: int, num_chunks: int):
    """The first ``num_chunks * chunk_size`` items as ``(num_chunks, chunk_size, ...)``, and the rest."""
    cut = num_chunks * chunk_size
    head = jax.tree.map(lambda a: a[:cut].reshape((num_chunks, chunk_size) + a.shape[1:]), batch)
    return head, jax.tree.map(lambda a: a[cut:], batch)


def dataset_mean(fn: Callable[[PyTree], PyTree], batch: PyTree, chunk_size: int | None = None) -> PyTree:
    """The data-set mean of ``fn(batch)``, where ``fn`` returns means over its batch.

    ``batch`` is cut along axis 0 into ``N // chunk_size`` chunks of ``chunk_size`` examples,
    mapped with ``lax.map``, and a remainder of ``N % chunk_size`` examples handled by one more
    call; the chunk means are combined weighted by their sizes, so the result equals
    ``fn(batch)`` up to rounding and memory is bounded by one chunk. ``chunk_size=None`` (or
    ``>= N``) is ``fn(batch)``.

    Args:
      fn: ``batch -> pytree`` of per-batch means (a loss, a gradient, a dict of metrics, ...).
      batch: pytree with leading example axis N on every leaf.
      chunk_size: examples per chunk, or None for one pass.

    Returns:
      A pytree like ``fn``'s output.
    """
    checks.integer("chunk_size", chunk_size, allow_none=True)
    if chunk_size is None:
        return fn(batch)
    num = num_examples(batch)
    if chunk_size >= num:
        return fn(batch)
    num_chunks, remainder = divmod(num, chunk_size)
    head, tail = _split_head(batch, chunk_size, num_chunks)
    total = jax.tree.map(lambda m: jnp.sum(m, axis=0) * chunk_size, jax.lax.map(fn, head))
    if remainder:
        total = tree.axpy(remainder, fn(tail), total)
    return tree.scale(1.0 / num, total)


def items_per_chunk(name: str, value, measured: dict, fallback: int | None) -> int | None:
    """An ``<items>_per_chunk`` argument that may be ``'auto'``: the size ``measured`` fastest on the
    default backend (``{backend: size}``, as the benchmark found it), ``fallback`` on a backend
    not in ``measured``; otherwise ``value`` itself, a positive integer or None (all at once).
    ``ValueError`` naming ``name`` for anything else."""
    if isinstance(value, str):
        if value != "auto":
            checks.fail(name, value, "a positive integer, None (all at once) or 'auto'")
        return measured.get(jax.default_backend(), fallback)
    return checks.integer(name, value, allow_none=True)


def map_in_chunks(fn: Callable[[PyTree], PyTree], items: PyTree, items_per_chunk: int | None = None, *,
                  chunk_sharding: jax.sharding.Sharding | None = None) -> PyTree:
    """``fn`` applied to every item along the leading axis of ``items``, stacked.

    The items are cut into chunks of ``items_per_chunk``: ``vmap`` within a chunk, ``lax.map``
    across chunks, one more ``vmap``ped call for a remainder; ``items_per_chunk=None`` (or at least
    the number of items) is one ``vmap``, ``items_per_chunk=1`` a plain ``lax.map`` (the model is
    never batched). Peak memory is that of ``items_per_chunk`` items at once. (Items, not examples:
    a caller names the argument for its items, ``points_per_chunk``, ``probes_per_chunk``, ...) With
    ``chunk_sharding`` (a sharding of one chunk, e.g. ``NamedSharding(mesh, P('points'))``) each
    chunk is spread over devices.

    Args:
      fn: ``item -> pytree``.
      items: pytree whose leaves share a leading axis, one entry per item.
      items_per_chunk: items evaluated together, or None.
      chunk_sharding: optional sharding constraint on each chunk.

    Returns:
      The outputs, every leaf with the items' leading axis.
    """
    checks.integer("items_per_chunk", items_per_chunk, allow_none=True)
    num = num_examples(items)

    def vmapped(chunk):
        if chunk_sharding is not None:
            chunk = jax.lax.with_sharding_constraint(chunk, chunk_sharding)
        return jax.vmap(fn)(chunk)

    if items_per_chunk is None or items_per_chunk >= num:
        return vmapped(items)
    if items_per_chunk == 1:
        return jax.lax.map(fn, items)
    num_chunks, remainder = divmod(num, items_per_chunk)
    head, tail = _split_head(items, items_per_chunk, num_chunks)
    out = jax.tree.map(lambda a: a.reshape((num_chunks * items_per_chunk,) + a.shape[2:]),
                       jax.lax.map(vmapped, head))
    if remainder:
        out = jax.tree.map(lambda a, b: jnp.concatenate([a, b]), out, jax.vmap(fn)(tail))
    return out
