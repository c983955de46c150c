"""Losses and metrics: per-example functions, their batch means, and ``loss_fn`` objects.

Classification targets are integer labels ``y_B`` with logits ``logits_BxC``;
regression targets are ``y_BxO`` with predictions ``predictions_BxO``. Each loss has a
per-example form ``(outputs_Bx..., targets_B...) -> losses_B`` and is named by a string
``loss_name`` (a key of :data:`PER_EXAMPLE_LOSSES`).

The analysis tools take a callable ``loss_fn(params, batch) -> scalar``, the mean loss over a
batch ``(x_Bx..., y_B...)``; :func:`make_loss_fn` builds one from a model's
``apply_fn(params, x)`` and a ``loss_name``.
"""
from __future__ import annotations

from typing import Any, Callable

import jax.numpy as jnp
import optax
from flax import struct

from jaxdl.core import checks

__all__ = ["cross_entropy_per_example", "mse_per_example", "half_mse_per_example", "accuracy_per_example",
           "PER_EXAMPLE_LOSSES", "cross_entropy", "mse", "half_mse", "accuracy", "check_loss_name",
           "is_classification", "metric_names", "per_example_metrics", "batch_metrics", "batch_loss", "LossFn",
           "make_loss_fn"]


def cross_entropy_per_example(logits_BxC, labels_B):
    """Softmax cross-entropy -log softmax(logits)[label], one value per example."""
    return optax.softmax_cross_entropy_with_integer_labels(logits_BxC, labels_B)


def mse_per_example(predictions_BxO, targets_BxO):
    """Squared error averaged over output dimensions, one value per example."""
    diff = predictions_BxO - targets_BxO.reshape(predictions_BxO.shape)
    return jnp.mean(jnp.square(diff).reshape(diff.shape[0], -1), axis=-1)


def half_mse_per_example(predictions_BxO, targets_BxO):
    """0.5 * squared error averaged over outputs: the course's least-squares loss (for one
    output its gradient with respect to f is f - y)."""
    return 0.5 * mse_per_example(predictions_BxO, targets_BxO)


def accuracy_per_example(logits_BxC, labels_B):
    """1.0 where the argmax prediction equals the label, else 0.0."""
    return (jnp.argmax(logits_BxC, axis=-1) == labels_B).astype(jnp.float32)


PER_EXAMPLE_LOSSES: dict[str, Callable] = {
    "cross_entropy": cross_entropy_per_example,
    "mse": mse_per_example,
    "half_mse": half_mse_per_example,
}


def cross_entropy(logits_BxC, labels_B):
    """Mean softmax cross-entropy with integer labels."""
    return cross_entropy_per_example(logits_BxC, labels_B).mean()


def mse(predictions_BxO, targets_BxO):
    """Mean squared error mean((f(x) - y)^2) over batch and outputs."""
    return mse_per_example(predictions_BxO, targets_BxO).mean()


def half_mse(predictions_BxO, targets_BxO):
    """0.5 * mean((f(x) - y)^2)."""
    return half_mse_per_example(predictions_BxO, targets_BxO).mean()


def accuracy(logits_BxC, labels_B):
    """Fraction of argmax predictions equal to the label."""
    return accuracy_per_example(logits_BxC, labels_B).mean()


def check_loss_name(loss_name: str) -> str:
    """Return ``loss_name`` if it is a known loss, else raise ``ValueError`` listing the choices."""
    return checks.one_of("loss_name", loss_name, sorted(PER_EXAMPLE_LOSSES))


def is_classification(loss_name: str) -> bool:
    """Whether the loss takes integer labels (and accuracy is meaningful)."""
    return loss_name == "cross_entropy"


def metric_names(loss_name: str) -> list[str]:
    """The metrics evaluated for ``loss_name``: ``['loss'[, 'accuracy']]``."""
    return ["loss"] + (["accuracy"] if is_classification(loss_name) else [])


def per_example_metrics(loss_name: str, outputs, targets) -> dict:
    """``{'loss': losses_B[, 'accuracy': correct_B]}`` for one batch."""
    metrics = {"loss": PER_EXAMPLE_LOSSES[check_loss_name(loss_name)](outputs, targets)}
    if is_classification(loss_name):
        metrics["accuracy"] = accuracy_per_example(outputs, targets)
    return metrics


def batch_metrics(loss_name: str, outputs, targets) -> dict:
    """Means over the batch of :func:`per_example_metrics`: ``{'loss': scalar[, 'accuracy': scalar]}``."""
    return {name: values.mean() for name, values in per_example_metrics(loss_name, outputs, targets).items()}


def batch_loss(loss_name: str, outputs, targets):
    """Mean loss over the batch (what a train step differentiates)."""
    return PER_EXAMPLE_LOSSES[check_loss_name(loss_name)](outputs, targets).mean()


class LossFn(struct.PyTreeNode):
    """``loss_fn(params, batch) -> scalar``: the mean ``loss_name`` loss of ``apply_fn`` on a batch
    ``(x_Bx..., y_B...)``. A pytree (``apply_fn`` a child, ``loss_name`` static), so a tool
    compiled for it is reused when the same model is wrapped again (:mod:`jaxdl.core.compiled`)."""

    apply_fn: Any
    loss_name: str = struct.field(pytree_node=False)

    # Compared and hashed by identity, as a function is: the fields hold arrays, which have no
    # truth value, and jax.jit hashes the callables it is given.
    __eq__ = object.__eq__
    __hash__ = object.__hash__

    def __call__(self, params, batch):
        x, y = batch
        return batch_loss(self.loss_name, self.apply_fn(params, x), y)


def make_loss_fn(apply_fn: Callable, loss_name: str = "cross_entropy") -> LossFn:
    """The ``loss_fn(params, batch)`` that analysis tools take, from a pure
    ``apply_fn(params, x)`` (e.g. :func:`jaxdl.train.make_apply_fn`) and a loss name."""
    if not callable(apply_fn):
        checks.fail("apply_fn", apply_fn, "a callable apply_fn(params, x)")
    return LossFn(apply_fn, check_loss_name(loss_name))
