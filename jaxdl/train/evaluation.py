"""Evaluation: data-set means of the loss (and accuracy) of an ``apply_fn`` at ``params``.

The one evaluation of the library: :func:`jaxdl.train.fit` calls it after each epoch, and the
loss-landscape tools call it at every point of parameter space.
"""
from __future__ import annotations

from typing import Any, Callable

from jaxdl.core import batching
from jaxdl.train import losses

__all__ = ["evaluate"]

PyTree = Any


def evaluate(apply_fn: Callable, params: PyTree, batch, *, loss_name: str = "cross_entropy",
             chunk_size: int | None = None) -> dict:
    """Data-set means of the metrics of ``loss_name`` at ``params``.

    ``batch = (x_Nx..., y_N...)`` is walked in chunks of ``chunk_size`` examples
    (:func:`jaxdl.core.batching.dataset_mean`: exact for any remainder, memory bounded by one
    chunk; None is one pass). Jit-able.

    Args:
      apply_fn: ``apply_fn(params, x_Bx...) -> outputs_Bx...`` (e.g. :func:`make_apply_fn`).
      params: pytree theta.
      batch: ``(x_Nx..., y_N...)``.
      loss_name: a key of :data:`jaxdl.train.losses.PER_EXAMPLE_LOSSES`.
      chunk_size: examples per chunk, or None.

    Returns:
      ``{'loss': scalar[, 'accuracy': scalar]}`` (accuracy for classification losses).
    """
    def chunk_means(chunk):
        x, y = chunk
        return losses.batch_metrics(loss_name, apply_fn(params, x), y)

    return batching.dataset_mean(chunk_means, batch, chunk_size)
