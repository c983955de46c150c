"""Tests of jaxdl.train: each result is checked against an independent reference (a closed
form, the same steps written by hand in NumPy, separate runs, a run on another mesh)."""
from __future__ import annotations

import textwrap

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxdl import train
from jaxdl.train import optim
from jaxdl.models import get_model

from jaxdl.data import Dataset
from helpers import flat, json_result, run_on_devices


def _standardised(rng, n, d):
    x = rng.standard_normal((n, d))
    return ((x - x.mean(0)) / x.std(0)).astype(np.float32)


def _regression_set(n_train=200, n_test=40, d=5, noise=0.01, seed=0):
    """y = X w + b + noise with standardised X (a well-conditioned least-squares problem)."""
    rng = np.random.default_rng(seed)
    x = _standardised(rng, n_train + n_test, d)
    w_Dx1 = rng.standard_normal((d, 1))
    y = (x @ w_Dx1 + 0.5 + noise * rng.standard_normal((n_train + n_test, 1))).astype(np.float32)
    return Dataset(x[:n_train], y[:n_train], x[n_train:], y[n_train:], None, "regression")


def _classification_set(n_train=64, n_test=16, d=4, num_classes=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n_train + n_test, d)).astype(np.float32)
    y = rng.integers(0, num_classes, n_train + n_test).astype(np.int32)
    return Dataset(x[:n_train], y[:n_train], x[n_train:], y[n_train:], num_classes, "classification")


def _leaves(tree):
    return [np.asarray(leaf) for leaf in jax.tree.leaves(tree)]


def _cross_entropy_np(logits, labels):
    logits = np.asarray(logits, np.float64)
    shifted = logits - logits.max(-1, keepdims=True)
    log_softmax = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
    return -log_softmax[np.arange(len(labels)), labels]


def _mlp_run():
    """Model, data, optimizer and options shared by the seed and resume tests (one program)."""
    data = _classification_set()
    model = get_model("mlp", widths=(8,), num_outputs=3)
    tx = optim.get_optimizer("adam", 0.01)  # a non-trivial optimizer state
    return model, data, tx, dict(batch_size=16, loss_name="cross_entropy", progress=False)


class RecordingLogger:
    def __init__(self):
        self.calls = []

    def log(self, step, **metrics):
        self.calls.append((step, metrics))


# ----------------------------------------------------------------------------- convex problem


@pytest.fixture(scope="module")
def regression():
    data = _regression_set()
    design = np.c_[data.x_train.astype(np.float64), np.ones(len(data.x_train))]
    solution, *_ = np.linalg.lstsq(design, data.y_train.astype(np.float64), rcond=None)
    optimal_loss = 0.5 * np.mean((design @ solution - data.y_train) ** 2)
    return data, solution[:, 0], optimal_loss


def _linear_params_vector(params):
    return np.r_[np.asarray(params["output"]["kernel"])[:, 0], np.asarray(params["output"]["bias"])]


def test_full_batch_gd_reaches_least_squares_solution(regression):
    data, solution, optimal_loss = regression
    # Hessian eigenvalues lie in about [0.8, 1.25], so lr=0.8 contracts the error by >2x per step.
    result = train.fit(get_model("linear", num_outputs=1), data, optim.get_optimizer("gd", 0.8),
                       epochs=60, batch_size=None, loss_name="half_mse", progress=False)
    np.testing.assert_allclose(_linear_params_vector(result.state.params), solution, atol=1e-4)
    np.testing.assert_allclose(result.history["train_loss"][-1], optimal_loss, rtol=1e-3)
    assert result.history["batch_loss"].shape == (60,)


def test_minibatch_adam_reaches_least_squares_loss(regression):
    data, solution, optimal_loss = regression
    epochs, batch_size = 40, 20
    tx = optim.get_optimizer("adam", 0.05, schedule="cosine", total_steps=epochs * 200 // batch_size)
    result = train.fit(get_model("linear", num_outputs=1), data, tx, epochs=epochs, batch_size=batch_size,
                       loss_name="half_mse", progress=False)
    assert result.history["batch_loss"].shape == (epochs * 200 // batch_size,)
    # The optimum is ~5e-5; the excess of the last iterate must be far below that.
    assert 0 <= result.history["train_loss"][-1] - optimal_loss < 1e-6
    np.testing.assert_allclose(_linear_params_vector(result.state.params), solution, atol=2e-3)


# ----------------------------------------------------------------------------- GD by hand and logging


@pytest.fixture(scope="module")
def hand_gd_run():
    """3 full-batch GD epochs on a tiny linear model, the initial params, and the logger."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((12, 3)).astype(np.float32)
    y = rng.standard_normal((12, 2)).astype(np.float32)
    data = Dataset(x[:8], y[:8], x[8:], y[8:], None, "tiny")
    model = get_model("linear", num_outputs=2)
    # A zero learning rate leaves the initial parameters of seed 0 in place.
    initial = train.fit(model, data, optax.sgd(0.0), epochs=1, loss_name="half_mse", progress=False).state.params
    logger = RecordingLogger()
    result = train.fit(model, data, optim.get_optimizer("gd", 0.3), epochs=3, batch_size=None,
                       loss_name="half_mse", progress=False, logger=logger)
    return data, initial, result, logger


def _half_mse_np(kernel, bias, x, y):
    residual = x @ kernel + bias - y
    return 0.5 * np.mean(residual**2)


def test_full_batch_gd_equals_hand_written_update(hand_gd_run):
    data, initial, result, _ = hand_gd_run
    x, y = data.x_train.astype(np.float64), data.y_train.astype(np.float64)
    kernel = np.asarray(initial["output"]["kernel"], np.float64)
    bias = np.asarray(initial["output"]["bias"], np.float64)
    n, d_out = y.shape
    batch_losses, train_losses, test_losses = [], [], []
    for _ in range(3):
        batch_losses.append(_half_mse_np(kernel, bias, x, y))
        residual = x @ kernel + bias - y  # half_mse = 0.5 mean over N and D_out of residual^2
        kernel = kernel - 0.3 * x.T @ residual / (n * d_out)
        bias = bias - 0.3 * residual.sum(0) / (n * d_out)
        train_losses.append(_half_mse_np(kernel, bias, x, y))
        test_losses.append(_half_mse_np(kernel, bias, data.x_test, data.y_test))
    np.testing.assert_allclose(result.state.params["output"]["kernel"], kernel, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(result.state.params["output"]["bias"], bias, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(result.history["batch_loss"], batch_losses, rtol=1e-5)
    np.testing.assert_allclose(result.history["train_loss"], train_losses, rtol=1e-5)
    np.testing.assert_allclose(result.history["test_loss"], test_losses, rtol=1e-5)
    assert int(result.state.step) == 3


def test_logger_gets_one_call_per_epoch(hand_gd_run):
    _, _, result, logger = hand_gd_run
    assert [step for step, _ in logger.calls] == [1, 2, 3]  # one full-batch step per epoch
    assert [metrics["epoch"] for _, metrics in logger.calls] == [1, 2, 3]
    for i, (_, metrics) in enumerate(logger.calls):
        assert set(metrics) == {"epoch", "train_loss", "test_loss"}
        assert metrics["train_loss"] == pytest.approx(float(result.history["train_loss"][i]), rel=1e-6)
        assert metrics["test_loss"] == pytest.approx(float(result.history["test_loss"][i]), rel=1e-6)


def test_eval_every_evaluates_only_those_epochs_and_the_last(hand_gd_run):
    data, _, every_epoch, _ = hand_gd_run
    logger = RecordingLogger()
    result = train.fit(get_model("linear", num_outputs=2), data, optim.get_optimizer("gd", 0.3), epochs=3,
                       batch_size=None, loss_name="half_mse", eval_every=2, progress=False, logger=logger)
    assert [metrics["epoch"] for _, metrics in logger.calls] == [2, 3]
    for name in ("train_loss", "test_loss"):
        assert np.isnan(result.history[name][0])
        np.testing.assert_array_equal(result.history[name][1:], every_epoch.history[name][1:])
    # Training itself is unchanged: every step's loss and the final parameters.
    np.testing.assert_array_equal(result.history["batch_loss"], every_epoch.history["batch_loss"])
    with pytest.raises(ValueError, match="eval_every"):
        train.fit(get_model("linear", num_outputs=2), data, optim.get_optimizer("gd", 0.3), epochs=1,
                  loss_name="half_mse", eval_every=0, progress=False)


# ----------------------------------------------------------------------------- seeds and determinism


def test_fit_seeds_equals_separate_fits_and_is_deterministic():
    model, data, tx, kwargs = _mlp_run()
    kwargs["epochs"] = 2
    seeds = [0, 1, 2]
    stacked = train.fit_seeds(model, data, tx, seeds=seeds, **kwargs)
    assert set(stacked.history) == {"train_loss", "test_loss", "train_accuracy", "test_accuracy", "batch_loss"}
    singles = [train.fit(model, data, tx, seed=s, **kwargs) for s in seeds]
    for i, single in enumerate(singles):
        chex.assert_trees_all_close(train.unstack(stacked.state.params, i), single.state.params, rtol=1e-5, atol=1e-6)
        chex.assert_trees_all_close(train.unstack(stacked.history, i), single.history, rtol=1e-5, atol=1e-6)
    for other in singles[1:]:
        assert not np.allclose(_leaves(singles[0].state.params)[0], _leaves(other.state.params)[0])
        assert not np.allclose(singles[0].history["batch_loss"], other.history["batch_loss"])
    again = train.fit(model, data, tx, seed=0, **kwargs)
    chex.assert_trees_all_equal(again.state, singles[0].state)
    chex.assert_trees_all_equal(again.history, singles[0].history)


def test_fit_returns_the_state_it_started_from():
    model, data, tx, kwargs = _mlp_run()
    kwargs["epochs"] = 1
    result = train.fit(model, data, tx, seed=3, **kwargs)
    init_key = train.seed_streams(np.asarray([3], np.uint32))[0][0]
    by_hand = train.init_state(model, tx, data.x_train[:1], init_key)
    chex.assert_trees_all_equal(result.initial_state, by_hand)  # not overwritten by the donated epoch
    assert not np.allclose(flat(result.state.params), flat(by_hand.params))
    stacked = train.fit_seeds(model, data, tx, seeds=[3, 4], **kwargs)
    chex.assert_trees_all_close(train.unstack(stacked.initial_state, 0), by_hand, rtol=1e-6, atol=1e-7)


def test_snapshots_are_the_iterates_of_shorter_fits():
    # Minibatch orders are a function of (seed, epoch), so a fit of e epochs passes through the
    # iterate that a longer fit's snapshot records after e epochs (4 steps per epoch here).
    model, data, tx, kwargs = _mlp_run()
    result = train.fit(model, data, tx, seed=2, epochs=3, snapshot_every=2, **kwargs)
    final = result.state.params
    assert [leaf.shape[0] for leaf in jax.tree.leaves(result.snapshots)] == [6] * len(jax.tree.leaves(final))
    chex.assert_trees_all_equal(train.unstack(result.snapshots, 0), result.initial_state.params)
    for epochs, row in ((1, 2), (2, 4)):
        shorter = train.fit(model, data, tx, seed=2, epochs=epochs, **kwargs)
        chex.assert_trees_all_close(train.unstack(result.snapshots, row), shorter.state.params, rtol=1e-5, atol=1e-6)
    assert not np.allclose(flat(train.unstack(result.snapshots, 5)), flat(final))  # the last steps come after row 5
    plain = train.fit(model, data, tx, seed=2, epochs=3, **kwargs)
    assert plain.snapshots is None
    chex.assert_trees_all_close(plain.state.params, result.state.params, rtol=1e-6, atol=1e-7)
    # A cadence that does not divide the steps: rows at steps 0, 5 and 10 of 12.
    odd = train.fit(model, data, tx, seed=2, epochs=3, snapshot_every=5, **kwargs)
    chex.assert_trees_all_close(train.unstack(odd.snapshots, 2), train.unstack(result.snapshots, 5), rtol=1e-5,
                                atol=1e-6)
    stacked = train.fit_seeds(model, data, tx, seeds=[2, 3], epochs=3, snapshot_every=2, **kwargs)
    chex.assert_trees_all_close(train.unstack(stacked.snapshots, 0), result.snapshots, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="snapshot_every"):
        train.fit(model, data, tx, epochs=1, snapshot_every=0, **kwargs)


class Interrupt(Exception):
    pass


class InterruptingLogger:
    """Raises at its call after ``epoch``'s evaluation, before that epoch's checkpoint."""

    def __init__(self, epoch):
        self.epoch = epoch

    def log(self, step, **metrics):
        if metrics["epoch"] == self.epoch:
            raise Interrupt


def test_interrupted_fit_resumes_with_its_snapshots(tmp_path):
    model, data, tx, kwargs = _mlp_run()
    straight = train.fit(model, data, tx, epochs=4, snapshot_every=3, **kwargs)
    options = dict(epochs=4, snapshot_every=3, checkpoint_dir=tmp_path / "ckpt", **kwargs)
    with pytest.raises(Interrupt):
        train.fit(model, data, tx, logger=InterruptingLogger(epoch=3), **options)  # saved after epoch 2
    resumed = train.fit(model, data, tx, **options)
    chex.assert_trees_all_equal(resumed.snapshots, straight.snapshots)
    chex.assert_trees_all_equal(resumed.state, straight.state)


def test_runs_freeze_at_their_target_train_loss():
    """Each seed trains until its evaluated train loss is at or below the target, then keeps its
    state while the others train on; training ends when every seed is frozen."""
    model, data, tx, kwargs = _mlp_run()
    free = train.fit_seeds(model, data, tx, seeds=[0, 1, 2], epochs=30, **kwargs)
    losses_KxE = free.history["train_loss"]
    target = float(np.sort(losses_KxE[:, 8])[1])  # one seed gets there by epoch 9, another not before
    reached = losses_KxE <= target
    first_epoch = np.where(reached.any(1), np.argmax(reached, axis=1), -1)
    assert len(set(first_epoch.tolist())) > 1 and first_epoch.max() < 29  # seeds stop at different epochs
    frozen = train.fit_seeds(model, data, tx, seeds=[0, 1, 2], epochs=30, target_train_loss=target, **kwargs)
    np.testing.assert_array_equal(frozen.steps_to_target, (first_epoch + 1) * 4)  # 4 steps per epoch
    last = first_epoch.max()
    assert np.isnan(frozen.history["train_loss"][:, last + 1:]).all()  # ended once all were frozen
    for k, epoch in enumerate(first_epoch):
        shorter = train.fit(model, data, tx, seed=k, epochs=int(epoch) + 1, **kwargs)
        chex.assert_trees_all_close(train.unstack(frozen.state.params, k), shorter.state.params, rtol=1e-5,
                                    atol=1e-6)
        np.testing.assert_allclose(frozen.history["train_loss"][k, epoch:last + 1], losses_KxE[k, epoch], rtol=1e-5)
        assert int(train.unstack(frozen.state, k).step) == (epoch + 1) * 4
    single = train.fit(model, data, tx, seed=1, epochs=30, target_train_loss=target, **kwargs)
    assert int(single.steps_to_target) == int(frozen.steps_to_target[1])
    never = train.fit(model, data, tx, seed=1, epochs=3, target_train_loss=1e-9, **kwargs)
    assert int(never.steps_to_target) == -1 and not np.isnan(never.history["train_loss"]).any()
    assert free.steps_to_target is None
    with pytest.raises(ValueError, match="target_train_loss"):
        train.fit(model, data, tx, epochs=1, target_train_loss=-1.0, **kwargs)


def test_interrupted_fit_to_a_target_resumes_to_the_same_numbers(tmp_path):
    model, data, tx, kwargs = _mlp_run()
    free = train.fit_seeds(model, data, tx, seeds=[0, 1], epochs=12, **kwargs)
    # One seed frozen before the interruption (after epoch 2's evaluation), the other after it.
    options = dict(epochs=12, target_train_loss=float(free.history["train_loss"][:, 0].min()), **kwargs)
    straight = train.fit_seeds(model, data, tx, seeds=[0, 1], **options)
    assert sorted(straight.steps_to_target.tolist())[0] == 4 and sorted(straight.steps_to_target.tolist())[1] >= 8
    with pytest.raises(Interrupt):
        train.fit_seeds(model, data, tx, seeds=[0, 1], checkpoint_dir=tmp_path / "ckpt",
                        logger=InterruptingLogger(epoch=2), **options)
    resumed = train.fit_seeds(model, data, tx, seeds=[0, 1], checkpoint_dir=tmp_path / "ckpt", **options)
    chex.assert_trees_all_equal(resumed.state, straight.state)
    np.testing.assert_array_equal(resumed.steps_to_target, straight.steps_to_target)


# ----------------------------------------------------------------------------- sharding

_SHARDING_SCRIPT = textwrap.dedent("""
    import json
    import jax
    import numpy as np
    from jaxdl import train
    from jaxdl.core import meshes
    from jaxdl.train import optim
    from jaxdl.models import get_model
    try:
        from jaxdl.data import Dataset
    except ImportError:
        from types import SimpleNamespace
        Dataset = lambda *a: SimpleNamespace(**dict(zip(
            ["x_train", "y_train", "x_test", "y_test", "num_classes", "name"], a)))

    rng = np.random.default_rng(0)
    x = rng.standard_normal((80, 4)).astype(np.float32)
    y = rng.integers(0, 3, 80).astype(np.int32)
    data = Dataset(x[:64], y[:64], x[64:], y[64:], 3, "toy")
    model = get_model("mlp", widths=(8,), num_outputs=3)
    tx = optim.get_optimizer("sgd", 0.1)
    kwargs = dict(epochs=3, batch_size=16, loss_name="cross_entropy", progress=False)
    sharded = train.fit(model, data, tx, **kwargs)
    single = train.fit(model, data, tx, mesh=meshes.data_mesh(jax.local_devices()[:1]), **kwargs)
    try:
        train.fit(model, data, tx, epochs=1, batch_size=18, loss_name="cross_entropy", progress=False,
                  mesh=meshes.data_mesh())
        error = None
    except ValueError as e:
        error = str(e)
    # By default a batch of 18 goes over 3 of the 4 devices (the most that divide it).
    uneven = train.fit(model, data, tx, epochs=1, batch_size=18, loss_name="cross_entropy", progress=False)
    leaves = lambda t: [np.asarray(v).tolist() for v in jax.tree.leaves(t)]
    print("RESULT " + json.dumps({
        "device_count": jax.device_count(),
        "default_mesh_size": int(meshes.data_mesh().devices.size),
        "sharded": leaves(sharded.state.params), "single": leaves(single.state.params),
        "sharded_loss": sharded.history["batch_loss"].tolist(),
        "single_loss": single.history["batch_loss"].tolist(),
        "error": error,
        "uneven_devices": len(jax.tree.leaves(uneven.state.params)[0].sharding.device_set),
        "uneven_mesh": int(train.make_plan(data, 18, 1).mesh.devices.size),
    }))
""")


def test_sharded_fit_equals_single_device_fit():
    result = json_result(run_on_devices(_SHARDING_SCRIPT, num_devices=4))
    assert result["device_count"] == 4 and result["default_mesh_size"] == 4
    for sharded, single in zip(result["sharded"], result["single"], strict=True):
        np.testing.assert_allclose(sharded, single, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(result["sharded_loss"], result["single_loss"], rtol=1e-5)
    assert result["error"] is not None and "batch_size" in result["error"]
    # Trained on 3 devices, returned on all 4 (to meet the results of other fits).
    assert result["uneven_mesh"] == 3 and result["uneven_devices"] == 4


# ----------------------------------------------------------------------------- checkpoints and resume


def test_resumed_fit_equals_uninterrupted_fit(tmp_path):
    model, data, tx, kwargs = _mlp_run()
    kwargs["seed"] = 3
    straight = train.fit(model, data, tx, epochs=4, checkpoint_dir=tmp_path / "straight", **kwargs)
    first = train.fit(model, data, tx, epochs=2, checkpoint_dir=tmp_path / "ckpt", **kwargs)
    logger = RecordingLogger()
    resumed = train.fit(model, data, tx, epochs=4, checkpoint_dir=tmp_path / "ckpt", logger=logger, **kwargs)
    assert [(step, metrics["epoch"]) for step, metrics in logger.calls] == [(12, 3), (16, 4)]  # 4 steps/epoch
    assert not np.allclose(_leaves(first.state.params)[0], _leaves(resumed.state.params)[0])
    chex.assert_trees_all_equal(resumed.state, straight.state)
    chex.assert_trees_all_equal(resumed.history, straight.history)
    assert int(resumed.state.step) == 4 * 4


# ----------------------------------------------------------------------------- failures


def test_non_finite_loss_raises_naming_the_step():
    data = _regression_set(n_train=64, n_test=16, d=4)
    model = get_model("mlp", widths=(16,), num_outputs=1)
    with pytest.raises(FloatingPointError, match=r"at step \d+"):
        train.fit(model, data, optim.get_optimizer("sgd", 1e6), epochs=3, batch_size=16, loss_name="mse",
                  progress=False)


_REGRESSION = _regression_set(n_train=20, n_test=8, d=3)
_CLASSIFICATION = _classification_set(n_train=20, n_test=8, d=3, num_classes=3)


@pytest.mark.parametrize("data, model_kwargs, fit_kwargs, field", [
    (_REGRESSION, dict(num_outputs=1), dict(loss_name="mse", epochs=0), "epochs"),
    (_REGRESSION, dict(num_outputs=1), dict(loss_name="mse", epochs=1, batch_size=0), "batch_size"),
    (_REGRESSION, dict(num_outputs=1), dict(loss_name="mse", epochs=1, batch_size=21), "batch_size"),
    (_REGRESSION, dict(num_outputs=1), dict(loss_name="hinge", epochs=1), "loss_name"),
    (_REGRESSION, dict(num_outputs=1), dict(loss_name="cross_entropy", epochs=1), "loss_name"),
    (_CLASSIFICATION, dict(num_outputs=3), dict(loss_name="mse", epochs=1), "loss_name"),
    (_CLASSIFICATION, dict(num_outputs=4), dict(loss_name="cross_entropy", epochs=1), "num_outputs"),
    (_REGRESSION, dict(num_outputs=2), dict(loss_name="mse", epochs=1), "y_train"),
])
def test_bad_inputs_raise_value_error_naming_the_field(data, model_kwargs, fit_kwargs, field):
    model = get_model("linear", **model_kwargs)
    with pytest.raises(ValueError, match=field):
        train.fit(model, data, optim.get_optimizer("sgd", 0.1), progress=False, **fit_kwargs)


def test_fit_seeds_rejects_empty_seeds():
    with pytest.raises(ValueError, match="seeds"):
        train.fit_seeds(get_model("linear", num_outputs=1), _REGRESSION, optim.get_optimizer("sgd", 0.1),
                        seeds=[], epochs=1, loss_name="mse", progress=False)


# ----------------------------------------------------------------------------- evaluate and the step


def test_evaluate_in_uneven_chunks_equals_whole_set_by_hand():
    data = _classification_set(n_train=103, n_test=1, d=4, num_classes=3)
    model = get_model("mlp", widths=(8,), num_outputs=3)
    params = model.init(jax.random.key(0), data.x_train[:1])["params"]
    apply_fn = train.make_apply_fn(model)
    evaluate = jax.jit(lambda p, x, y: train.evaluate(apply_fn, p, (x, y), loss_name="cross_entropy", chunk_size=10))
    metrics = evaluate(params, data.x_train, data.y_train)
    logits = np.asarray(model.apply({"params": params}, data.x_train))
    np.testing.assert_allclose(metrics["loss"], _cross_entropy_np(logits, data.y_train).mean(), rtol=1e-5)
    np.testing.assert_allclose(metrics["accuracy"], np.mean(logits.argmax(-1) == data.y_train), rtol=1e-6)

    targets = np.random.default_rng(0).standard_normal((103, 3)).astype(np.float32)
    regression = jax.jit(lambda p, x, y: train.evaluate(apply_fn, p, (x, y), loss_name="half_mse", chunk_size=10))
    metrics = regression(params, data.x_train, targets)
    assert set(metrics) == {"loss"}
    np.testing.assert_allclose(metrics["loss"], 0.5 * np.mean((logits - targets) ** 2), rtol=1e-5)


def test_make_apply_fn_equals_model_apply():
    model = get_model("mlp", widths=(8, 8), num_outputs=3, activation="tanh")
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    params = model.init(jax.random.key(1), x)["params"]
    apply_fn = train.make_apply_fn(model)
    np.testing.assert_allclose(jax.jit(apply_fn)(params, x), model.apply({"params": params}, x), rtol=1e-5, atol=1e-7)


def test_jitted_train_step_decreases_loss_and_reports_grad_norm():
    data = _classification_set(n_train=32, n_test=1, d=4, num_classes=3)
    model = get_model("mlp", widths=(16,), num_outputs=3)
    learning_rate = 0.1
    tx = optim.get_optimizer("sgd", learning_rate)
    batch = (jnp.asarray(data.x_train), jnp.asarray(data.y_train))
    state = train.init_state(model, tx, batch[0][:1], jax.random.key(0))
    train_step = train.make_train_step(model, tx, "cross_entropy")

    @jax.jit
    def run(state):
        def body(state, _):
            state, metrics = train_step(state, batch)
            return state, (metrics, state.params)

        return jax.lax.scan(body, state, None, length=20)

    final, (metrics, params_by_step) = run(state)

    def loss_by_hand(params):
        logits = model.apply({"params": params}, batch[0])
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), batch[1][:, None], axis=1))

    loss0, grads0 = jax.jit(jax.value_and_grad(loss_by_hand))(state.params)
    global_norm = np.linalg.norm(flat(grads0))
    np.testing.assert_allclose(metrics["loss"][0], loss0, rtol=1e-5)
    np.testing.assert_allclose(metrics["grad_norm"][0], global_norm, rtol=1e-5)
    assert metrics["accuracy"].shape == (20,)
    assert np.all(np.diff(np.asarray(metrics["loss"])) < 0), metrics["loss"]
    assert int(final.step) == 20

    after_one_step = jax.tree.map(lambda p: p[0], params_by_step)
    chex.assert_trees_all_close(after_one_step, jax.tree.map(lambda p, g: p - learning_rate * g, state.params, grads0),
                                rtol=1e-5, atol=1e-6)
