"""Losses and metrics: per-example functions and their batch means.

Classification targets are integer labels ``y_B`` with logits ``logits_BxC``;
regression targets are ``y_BxD`` with predictions ``predictions_BxD``. Each loss has a
per-example form ``(outputs_Bx..., targets_B...) -> losses_B``, so that data-set means
over chunks of unequal size can be accumulated exactly (sum, then divide by N).
"""
from __future__ import annotations

from typing import Callable

import jax.numpy as jnp
import optax


def cross_entropy_per_example(logits_BxC, labels_B):
    """Softmax cross-entropy -log softmax(logits)[label], one value per example."""
    return optax.softmax_cross_entropy_with_integer_labels(logits_BxC, labels_B)


def mse_per_example(predictions_BxD, targets_BxD):
    """Squared error averaged over output dimensions, one value per example."""
    diff = predictions_BxD - targets_BxD.reshape(predictions_BxD.shape)
    return jnp.mean(jnp.square(diff).reshape(diff.shape[0], -1), axis=-1)


def half_mse_per_example(predictions_BxD, targets_BxD):
    """0.5 * squared error averaged over outputs: the course's least-squares loss (for one
    output its gradient with respect to f is f - y)."""
    return 0.5 * mse_per_example(predictions_BxD, targets_BxD)


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


def mse(predictions_BxD, targets_BxD):
    """Mean squared error mean((f(x) - y)^2) over batch and outputs."""
    return mse_per_example(predictions_BxD, targets_BxD).mean()


def half_mse(predictions_BxD, targets_BxD):
    """0.5 * mean((f(x) - y)^2)."""
    return half_mse_per_example(predictions_BxD, targets_BxD).mean()


def accuracy(logits_BxC, labels_B):
    """Fraction of argmax predictions equal to the label."""
    return accuracy_per_example(logits_BxC, labels_B).mean()


def check_loss_name(name: str) -> str:
    """Return ``name`` if it is a known loss, else raise ``ValueError`` listing the choices."""
    if name not in PER_EXAMPLE_LOSSES:
        raise ValueError(f"unknown loss {name!r}; choose one of {sorted(PER_EXAMPLE_LOSSES)}")
    return name


def is_classification(loss_name: str) -> bool:
    """Whether the loss takes integer labels (and accuracy is meaningful)."""
    return loss_name == "cross_entropy"


def per_example_metrics(loss_name: str, outputs, targets) -> dict:
    """``{'loss': losses_B[, 'accuracy': correct_B]}`` for one batch."""
    metrics = {"loss": PER_EXAMPLE_LOSSES[check_loss_name(loss_name)](outputs, targets)}
    if is_classification(loss_name):
        metrics["accuracy"] = accuracy_per_example(outputs, targets)
    return metrics


def batch_loss(loss_name: str, outputs, targets):
    """Mean loss over the batch (what a train step differentiates)."""
    return PER_EXAMPLE_LOSSES[check_loss_name(loss_name)](outputs, targets).mean()
