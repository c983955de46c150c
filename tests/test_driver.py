"""The one block runner (jaxdl.train.driver.run_blocks) and the trainers built on it.

The runner is checked on a toy program whose every output is known (step numbers, orders,
evaluation cadence, the non-finite stop); the trainers against independent references: a start
state equal to the one they draw, full-batch descent continued from a state against one
uninterrupted run, a mode-connectivity curve against the loop of its epoch program written out,
and resumed runs of curves and width sweeps against uninterrupted ones.
"""
from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxdl import train
from jaxdl.analysis import landscape
from jaxdl.analysis.landscape import connectivity
from jaxdl.core import meshes
from jaxdl.course import width_sweep
from jaxdl.data import Dataset
from jaxdl.models import get_model
from jaxdl.train import optim


def _classification_set(n_train=64, n_test=16, d=4, num_classes=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n_train + n_test, d)).astype(np.float32)
    y = rng.integers(0, num_classes, n_train + n_test).astype(np.int32)
    return Dataset(x[:n_train], y[:n_train], x[n_train:], y[n_train:], num_classes, "classification")


class RecordingLogger:
    def __init__(self):
        self.calls = []

    def log(self, step, **metrics):
        self.calls.append((step, metrics))


# ----------------------------------------------------------------------------- the runner


def _counting_block(seen):
    """A program that adds the sum of its batch indices to the carried value, and reports each
    step's number as its loss."""
    def block(carried, order, steps_S):
        seen.append(np.asarray(order))
        return carried + jnp.sum(order), {"loss": steps_S.astype(np.float32), "double": 2.0 * steps_S}

    return block


def test_run_blocks_passes_the_orders_and_records_every_step_and_evaluation():
    data = _classification_set(n_train=12)
    plan = train.make_plan(data, 4, 6, meshes.data_mesh(jax.devices()[:1]))
    key = jax.random.key(5)
    seen, logger = [], RecordingLogger()
    carried, history = train.run_blocks(_counting_block(seen), jnp.zeros((), jnp.int32), plan, [key], epochs=6,
                                        vmapped=False, step_series={"batch_loss": "loss", "twice": "double"},
                                        evaluate=lambda c: {"total": c}, eval_every=4, epochs_per_call=2,
                                        first_epoch=10, progress=False, logger=logger)
    expected = [np.concatenate([train.epoch_order(key, 10 + e, plan) for e in block]) for block in ((0, 1), (2, 3),
                                                                                                     (4, 5))]
    assert len(seen) == 3
    for got, want in zip(seen, expected):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(history["batch_loss"], np.arange(18))  # 3 steps per epoch, 6 epochs
    np.testing.assert_array_equal(history["twice"], 2 * np.arange(18))
    # Evaluated after epoch 4 (a multiple of eval_every) and after the last, NaN elsewhere.
    assert np.isnan(history["total"][[0, 1, 2, 4]]).all()
    totals = np.cumsum([order.sum() for order in expected])
    assert history["total"][3] == totals[1] and history["total"][5] == totals[2] == int(carried)
    assert [(step, metrics["epoch"]) for step, metrics in logger.calls] == [(12, 4), (18, 6)]


def test_run_blocks_stops_at_the_first_non_finite_loss_naming_its_step():
    data = _classification_set(n_train=12)
    plan = train.make_plan(data, 4, 3, meshes.data_mesh(jax.devices()[:1]))

    def block(carried, order, steps_S):
        return carried, {"loss": np.where(steps_S == 4, np.inf, 0.0)}

    with pytest.raises(FloatingPointError, match=r"curve loss .* at step 4 \(epoch 1\); try this"):
        train.run_blocks(block, 0, plan, [jax.random.key(0)], epochs=3, vmapped=False, step_series={},
                         progress=False, what="curve loss", hint="try this")


# ----------------------------------------------------------------------------- start states


def test_fit_from_the_state_it_would_draw_is_the_same_fit():
    data, model = _classification_set(), get_model("mlp", widths=(8,), num_outputs=3)
    tx = optim.get_optimizer("adam", 0.01)
    options = dict(epochs=2, batch_size=16, seed=3, progress=False)
    drawn = train.fit(model, data, tx, **options)
    start = train.init_state(model, tx, data.x_train[:1], train.seed_streams(np.asarray([3], np.uint32))[0][0])
    given = train.fit(model, data, tx, initial_state=start, **options)
    chex.assert_trees_all_equal(given.state, drawn.state)
    chex.assert_trees_all_equal(given.initial_state, start)


def test_fit_seeds_from_stacked_states_is_the_same_fit():
    data, model = _classification_set(), get_model("mlp", widths=(8,), num_outputs=3)
    tx = optim.get_optimizer("sgd", 0.1)
    options = dict(seeds=[0, 4], epochs=2, batch_size=16, progress=False)
    drawn = train.fit_seeds(model, data, tx, **options)
    keys = train.seed_streams(np.asarray([0, 4], np.uint32))[0]
    given = train.fit_seeds(model, data, tx, initial_state=train.init_states(model, tx, data.x_train[:1], keys),
                            **options)
    chex.assert_trees_all_close(given.state.params, drawn.state.params, rtol=1e-6, atol=1e-7)


def test_full_batch_descent_continued_from_a_state_equals_one_run():
    data, model = _classification_set(), get_model("mlp", widths=(8,), num_outputs=3)
    tx = optim.get_optimizer("momentum", 0.1)  # an optimizer state that must carry over
    straight = train.fit(model, data, tx, epochs=5, progress=False)
    first = train.fit(model, data, tx, epochs=3, progress=False)
    rest = train.fit(model, data, tx, epochs=2, initial_state=first.state, progress=False)
    assert int(rest.state.step) == 5
    chex.assert_trees_all_close(rest.state.params, straight.state.params, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(rest.history["batch_loss"], straight.history["batch_loss"][3:], rtol=1e-6)


def test_bad_start_states_and_options_are_named():
    data, model = _classification_set(), get_model("mlp", widths=(8,), num_outputs=3)
    tx = optim.get_optimizer("sgd", 0.1)
    with pytest.raises(ValueError, match="initial_state"):
        train.fit(model, data, tx, epochs=1, initial_state={"params": {}}, progress=False)
    other = train.init_state(get_model("mlp", widths=(5,), num_outputs=3), tx, data.x_train[:1], jax.random.key(0))
    with pytest.raises(ValueError, match="initial_state has a leaf of shape"):
        train.fit(model, data, tx, epochs=1, initial_state=other, progress=False)
    single = train.init_state(model, tx, data.x_train[:1], jax.random.key(0))
    with pytest.raises(ValueError, match=r"2 seeds first"):
        train.fit_seeds(model, data, tx, seeds=[0, 1], epochs=1, initial_state=single, progress=False)
    with pytest.raises(TypeError, match="'epoch'"):
        train.fit(model, data, tx, epoch=1)
    with pytest.raises(TypeError, match="epochs"):
        train.fit(model, data, tx)


# ----------------------------------------------------------------------------- trainers on the runner


@pytest.fixture(scope="module")
def endpoints():
    data = _classification_set(n_train=96, n_test=16)
    model = get_model("mlp", widths=(8,), num_outputs=3)
    fitted = train.fit_seeds(model, data, optax.adam(0.02), seeds=[0, 1], epochs=3, batch_size=32, progress=False)
    return model, data, train.unstack(fitted.state.params, 0), train.unstack(fitted.state.params, 1)


def test_fit_curve_is_its_epoch_program_in_a_loop(endpoints):
    model, data, e0, e1 = endpoints
    tx, key = optax.adam(0.02), jax.random.key(7)
    bend, history = landscape.fit_curve(model, {}, e0, e1, data, tx, epochs=3, batch_size=32, weight_decay=1e-3,
                                        key=key, progress=False)
    # The loop written out, one epoch program per epoch, on one device.
    plan = train.make_plan(data, 32, 3, meshes.data_mesh(jax.devices()[:1]))
    data_key, t_key, dropout_key = jax.random.split(key, 3)
    start = connectivity.init_bend(e0, e1)
    carry, losses = (jax.tree.map(jnp.array, start), tx.init(start)), []
    for epoch in range(3):
        steps_S = epoch * plan.steps_per_epoch + np.arange(plan.steps_per_epoch, dtype=np.int32)
        carry, (loss_S, _) = connectivity._curve_epoch(
            carry, (e0, e1), {}, data.x_train, data.y_train, train.epoch_order(data_key, epoch, plan), steps_S, t_key,
            dropout_key, 1e-3, model=model, tx=tx, kind="bezier", loss_name="cross_entropy",
            batch_sharding=jax.sharding.NamedSharding(plan.mesh, jax.sharding.PartitionSpec("data")))
        losses.append(np.asarray(loss_S))
    chex.assert_trees_all_close(bend, carry[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(history["loss"], np.concatenate(losses), rtol=1e-5)


def test_a_resumed_curve_equals_an_uninterrupted_one(endpoints, tmp_path):
    model, data, e0, e1 = endpoints
    options = dict(batch_size=32, key=jax.random.key(2), progress=False)
    straight, straight_history = landscape.fit_curve(model, {}, e0, e1, data, optax.adam(0.02), epochs=4, **options)
    landscape.fit_curve(model, {}, e0, e1, data, optax.adam(0.02), epochs=2, checkpoint_dir=tmp_path, **options)
    resumed, resumed_history = landscape.fit_curve(model, {}, e0, e1, data, optax.adam(0.02), epochs=4,
                                                   checkpoint_dir=tmp_path, **options)
    chex.assert_trees_all_equal(resumed, straight)
    chex.assert_trees_all_equal(resumed_history, straight_history)


def test_a_resumed_width_sweep_with_probes_equals_an_uninterrupted_one(tmp_path):
    data = _classification_set(n_train=48)
    tx = optim.get_optimizer("sgd", 0.1)
    options = dict(widths=(2, 4), seeds=(0, 1), batch_size=16, progress=False,
                   probes={"loss": train.LossProbe()}, probe_every=3)
    straight = width_sweep.fit_widths(data, tx, epochs=4, **options)
    width_sweep.fit_widths(data, tx, epochs=2, checkpoint_dir=tmp_path, **options)
    resumed = width_sweep.fit_widths(data, tx, epochs=4, checkpoint_dir=tmp_path, **options)
    chex.assert_trees_all_equal(resumed.state, straight.state)
    chex.assert_trees_all_equal(resumed.history, straight.history)
    probe = straight.history["probe/loss"]
    assert probe.shape == (2, 2, 12) and np.isfinite(probe[..., ::3]).all() and np.isnan(probe[..., 1::3]).all()
