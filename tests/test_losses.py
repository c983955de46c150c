"""Tests of jaxdl.train.losses against hand-written NumPy (log-softmax by hand) and closed-form gradients."""
from __future__ import annotations

import functools

import jax
import numpy as np
import pytest

from jaxdl.train import losses

RNG = np.random.default_rng(0)
# Large logits in one row check that the loss is computed stably.
LOGITS_BxC = np.concatenate([RNG.normal(size=(5, 4)), [[1000.0, -1000.0, 0.0, 999.0]]]).astype(np.float32)
LABELS_B = np.array([0, 3, 2, 1, 3, 1], dtype=np.int32)
PREDICTIONS_BxD = RNG.normal(size=(6, 3)).astype(np.float32)
TARGETS_BxD = RNG.normal(size=(6, 3)).astype(np.float32)


def _log_softmax(logits):
    shifted = logits.astype(np.float64) - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def _numpy_cross_entropy_per_example(logits, labels):
    return -_log_softmax(logits)[np.arange(len(labels)), labels]


def _numpy_accuracy_per_example(logits, labels):
    return np.array([float(np.argmax(row) == label) for row, label in zip(logits, labels)])


@jax.jit
def _classification(logits, labels):
    return {
        "ce_per_example": losses.cross_entropy_per_example(logits, labels),
        "ce": losses.cross_entropy(logits, labels),
        "accuracy_per_example": losses.accuracy_per_example(logits, labels),
        "accuracy": losses.accuracy(logits, labels),
    }


@jax.jit
def _regression(predictions, targets):
    return {
        "mse_per_example": losses.mse_per_example(predictions, targets),
        "mse": losses.mse(predictions, targets),
        "half_mse_per_example": losses.half_mse_per_example(predictions, targets),
        "half_mse": losses.half_mse(predictions, targets),
    }


def test_cross_entropy_matches_hand_log_softmax():
    out = _classification(LOGITS_BxC, LABELS_B)
    expected = _numpy_cross_entropy_per_example(LOGITS_BxC, LABELS_B)
    # Last row: label 1 has logit -1000, 2000 below the max: loss ~ 2000, finite (float32: ulp 1e-4).
    assert np.isclose(expected[-1], 2000.0 + np.log1p(np.exp(-1.0)), rtol=1e-9)
    np.testing.assert_allclose(out["ce_per_example"], expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["ce"], expected.mean(), rtol=1e-5)


def test_accuracy_matches_hand_count():
    out = _classification(LOGITS_BxC, LABELS_B)
    expected = _numpy_accuracy_per_example(LOGITS_BxC, LABELS_B)
    np.testing.assert_array_equal(out["accuracy_per_example"], expected)
    np.testing.assert_allclose(out["accuracy"], expected.mean())
    # Labels equal to the argmax give accuracy exactly 1; shifted labels give 0.
    argmax = LOGITS_BxC.argmax(-1)
    assert float(losses.accuracy(LOGITS_BxC, argmax)) == 1.0
    assert float(losses.accuracy(LOGITS_BxC, (argmax + 1) % 4)) == 0.0


def test_mse_and_half_mse_match_numpy():
    out = _regression(PREDICTIONS_BxD, TARGETS_BxD)
    squared = (PREDICTIONS_BxD.astype(np.float64) - TARGETS_BxD) ** 2
    np.testing.assert_allclose(out["mse_per_example"], squared.mean(axis=1), rtol=1e-5)
    np.testing.assert_allclose(out["mse"], squared.mean(), rtol=1e-5)
    np.testing.assert_allclose(out["half_mse_per_example"], 0.5 * squared.mean(axis=1), rtol=1e-5)
    np.testing.assert_allclose(out["half_mse"], 0.5 * squared.mean(), rtol=1e-5)


def test_mse_accepts_flat_targets_for_one_output():
    predictions_Bx1 = PREDICTIONS_BxD[:, :1]
    targets_B = TARGETS_BxD[:, 0]
    expected = (predictions_Bx1[:, 0].astype(np.float64) - targets_B) ** 2
    np.testing.assert_allclose(losses.mse_per_example(predictions_Bx1, targets_B), expected, rtol=1e-5)


def test_half_mse_gradient_is_residual_over_batch():
    # One output (the course's least squares): dJ/df = (f - y) / B.
    predictions_Bx1, targets_Bx1 = PREDICTIONS_BxD[:, :1], TARGETS_BxD[:, :1]
    batch = predictions_Bx1.shape[0]
    grad = jax.jit(jax.grad(losses.half_mse))(predictions_Bx1, targets_Bx1)
    np.testing.assert_allclose(grad, (predictions_Bx1 - targets_Bx1) / batch, rtol=1e-5, atol=1e-7)


def test_half_mse_gradient_averages_over_outputs_too():
    # With D outputs the loss also averages over them: dJ/df = (f - y) / (B D).
    batch, outputs = PREDICTIONS_BxD.shape
    grad = jax.jit(jax.grad(losses.half_mse))(PREDICTIONS_BxD, TARGETS_BxD)
    np.testing.assert_allclose(
        grad, (PREDICTIONS_BxD - TARGETS_BxD) / (batch * outputs), rtol=1e-5, atol=1e-7
    )


def test_cross_entropy_gradient_is_softmax_minus_one_hot():
    grad = jax.jit(jax.grad(losses.cross_entropy))(LOGITS_BxC[:5], LABELS_B[:5])
    softmax = np.exp(_log_softmax(LOGITS_BxC[:5]))
    one_hot = np.eye(4)[LABELS_B[:5]]
    np.testing.assert_allclose(grad, (softmax - one_hot) / 5, rtol=1e-5, atol=1e-7)


@functools.partial(jax.jit, static_argnums=0)
def _loss_and_metrics(name, outputs, targets):
    return losses.batch_loss(name, outputs, targets), losses.per_example_metrics(name, outputs, targets)


@pytest.mark.parametrize("name", ["cross_entropy", "mse", "half_mse"])
def test_batch_loss_and_metrics_dispatch_by_name(name):
    if name == "cross_entropy":
        outputs, targets = LOGITS_BxC, LABELS_B
        expected = _numpy_cross_entropy_per_example(outputs, targets)
    else:
        outputs, targets = PREDICTIONS_BxD, TARGETS_BxD
        expected = ((outputs.astype(np.float64) - targets) ** 2).mean(axis=1)
        expected = expected * (0.5 if name == "half_mse" else 1.0)
    loss, metrics = _loss_and_metrics(name, outputs, targets)
    np.testing.assert_allclose(loss, expected.mean(), rtol=1e-5)
    np.testing.assert_allclose(metrics["loss"], expected, rtol=1e-5, atol=1e-6)
    assert losses.is_classification(name) == (name == "cross_entropy")
    if name == "cross_entropy":
        np.testing.assert_array_equal(metrics["accuracy"], _numpy_accuracy_per_example(outputs, targets))
    else:
        assert set(metrics) == {"loss"}


def test_unknown_loss_name_raises_naming_it():
    assert losses.check_loss_name("mse") == "mse"
    with pytest.raises(ValueError, match="hinge"):
        losses.check_loss_name("hinge")
    with pytest.raises(ValueError, match="hinge"):
        losses.batch_loss("hinge", PREDICTIONS_BxD, TARGETS_BxD)
    with pytest.raises(ValueError, match="hinge"):
        losses.per_example_metrics("hinge", PREDICTIONS_BxD, TARGETS_BxD)


def test_make_loss_fn_is_the_mean_loss_of_apply_fn():
    weights = RNG.normal(size=(3, 4)).astype(np.float32)
    apply_fn = lambda params, x: x @ params
    loss_fn = losses.make_loss_fn(apply_fn, "cross_entropy")
    x = RNG.normal(size=(6, 3)).astype(np.float32)
    expected = _numpy_cross_entropy_per_example(x.astype(np.float64) @ weights, LABELS_B).mean()
    np.testing.assert_allclose(jax.jit(loss_fn)(weights, (x, LABELS_B)), expected, rtol=1e-5)
    regression = losses.make_loss_fn(apply_fn, "half_mse")
    targets = RNG.normal(size=(6, 4)).astype(np.float32)
    np.testing.assert_allclose(regression(weights, (x, targets)), 0.5 * np.mean((x @ weights - targets) ** 2),
                               rtol=1e-5)
    # The same apply_fn wrapped twice is the same pytree (compiled tools key on it), whatever its name.
    assert jax.tree.structure(loss_fn) == jax.tree.structure(losses.make_loss_fn(apply_fn, "cross_entropy"))
    assert jax.tree.structure(loss_fn) != jax.tree.structure(regression)
    with pytest.raises(ValueError, match="loss_name must be one of .*, got 'hinge'"):
        losses.make_loss_fn(apply_fn, "hinge")
    with pytest.raises(ValueError, match="apply_fn must be a callable"):
        losses.make_loss_fn("cross_entropy")


def test_metric_names_match_the_metrics_computed():
    for name in losses.PER_EXAMPLE_LOSSES:
        outputs, targets = (LOGITS_BxC, LABELS_B) if name == "cross_entropy" else (PREDICTIONS_BxD, TARGETS_BxD)
        assert sorted(losses.batch_metrics(name, outputs, targets)) == sorted(losses.metric_names(name))
