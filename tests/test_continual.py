"""Tests for the pieces of experiments/continual.py: training on from given states, per-task
accuracies, shrink-and-perturb over seeds, and the claims read per seed."""

import jax
import numpy as np
import pytest
from helpers import count_compiles, flat

from experiments import continual
from experiments import framework as fw
from jaxdl import train
from jaxdl.train import optim
from jaxdl.data import Dataset
from jaxdl.models import get_model


def _problem():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((80, 6)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int32) + (x[:, 1] > 0)
    data = Dataset(x[:64], y[:64], x[64:], y[64:], 3, "toy")
    return data, get_model("mlp", widths=(8,), num_outputs=3), optim.get_optimizer("adam", 0.01)


def test_continue_training_from_the_initial_states_reproduces_fit_seeds():
    data, model, tx = _problem()
    seeds = [0, 1]
    fitted = train.fit_seeds(model, data, tx, seeds=seeds, epochs=3, batch_size=16, progress=False)
    _, data_keys = train.seed_streams(np.asarray(seeds, np.uint32))
    states, values = continual.continue_training(model, tx, fitted.initial_state, data, data_keys, epochs=3,
                                                 batch_size=16, measure=lambda s, evaluate: evaluate(s))
    np.testing.assert_allclose(flat(states.params), flat(fitted.state.params), rtol=1e-5, atol=1e-6)
    assert len(values) == 4  # before training and after each epoch
    np.testing.assert_allclose(np.asarray(values[-1]["test_accuracy"]), fitted.history["test_accuracy"][:, -1])


def test_continue_training_compiles_once_and_is_deterministic():
    data, model, tx = _problem()
    keys = jax.random.split(jax.random.key(0), 2)  # two runs, as above: the same programs
    start = lambda: continual._start_states(tx, continual._init_params(model, data.x_train[:1], keys))
    first, _ = continual.continue_training(model, tx, start(), data, keys, epochs=2, batch_size=16)
    with count_compiles() as compiles:
        again, _ = continual.continue_training(model, tx, start(), data, keys, epochs=2, batch_size=16)
    assert compiles.count == 0
    np.testing.assert_array_equal(flat(first.params), flat(again.params))


def test_task_accuracies_match_a_numpy_forward_pass_per_task():
    data, model, _ = _problem()
    params_K = continual._init_params(model, data.x_train[:1], jax.random.split(jax.random.key(1), 2))
    x_TxN = np.stack([data.x_train[:16], data.x_train[16:32], data.x_test])
    y_TxN = np.stack([data.y_train[:16], data.y_train[16:32], data.y_test])
    accuracy_KxT = np.asarray(continual._accuracies(train.make_apply_fn(model), params_K, x_TxN, y_TxN))
    for k in range(2):
        p = jax.tree.map(lambda leaf: np.asarray(leaf[k], np.float64), params_K)
        for t in range(3):
            hidden = np.maximum(x_TxN[t] @ p["hidden_0"]["kernel"] + p["hidden_0"]["bias"], 0.0)
            logits = hidden @ p["output"]["kernel"] + p["output"]["bias"]
            assert accuracy_KxT[k, t] == np.mean(np.argmax(logits, -1) == y_TxN[t])


def test_shrink_perturb_over_seeds_is_the_scratch_start_at_zero_shrink():
    data, model, _ = _problem()
    keys = jax.random.split(jax.random.key(2), 2)
    trained = continual._init_params(model, data.x_train[:1], jax.random.split(jax.random.key(3), 2))
    fresh = continual._init_params(model, data.x_train[:1], keys)
    np.testing.assert_array_equal(flat(continual._shrink_perturb_seeds(trained, fresh, keys, shrink=0.0,
                                                                       noise_scale=1.0)), flat(fresh))
    mixed = continual._shrink_perturb_seeds(trained, fresh, keys, shrink=0.4, noise_scale=0.1)
    np.testing.assert_allclose(flat(mixed), 0.4 * flat(trained) + 0.1 * flat(fresh), rtol=1e-5, atol=1e-7)


def test_equal_sizes_cuts_every_task_to_the_smallest():
    data, _, _ = _problem()
    tasks = continual._equal_sizes([data, Dataset(data.x_train[:50], data.y_train[:50], data.x_test[:9],
                                                  data.y_test[:9], 3, "small")])
    assert [(t.num_train, t.num_test) for t in tasks] == [(50, 9), (50, 9)]
    np.testing.assert_array_equal(tasks[0].x_train, data.x_train[:50])
    assert tasks[1].name == "small"


def test_claims_read_forgetting_plasticity_and_the_warm_start_gap_per_seed():
    config = fw.config_for(continual, "quick")  # digits/permuted, 3 tasks
    rng = np.random.default_rng(0)
    # Task 0 at 0.9 after task 0, 0.3 after the last: (0.9 - 0.3) / (0.9 - 0.1) = 0.75 of it erased.
    after_KxTxT = np.full((6, 3, 3), 0.5) + 0.01 * rng.standard_normal((6, 3, 3))
    after_KxTxT[:, 0, 0], after_KxTxT[:, -1, 0] = 0.9, 0.3
    after_KxTxT[:, 1, 1], after_KxTxT[:, 2, 2] = 0.8, 0.7 + 0.01 * rng.standard_normal(6)
    test_3xK = np.array([0.60, 0.65, 0.64])[:, None] + 0.002 * rng.standard_normal((3, 6))
    numbers = {"digits/permuted": {"after_task_KxTxT": after_KxTxT.tolist(), "chance": 0.1},
               "warm_start": {"test_3xK": test_3xK.tolist(), "restart_change": 0.0}}
    items = {item.key: item for item in continual.claims(config, numbers)}
    assert items["digits_permuted_forgetting"].statistic == pytest.approx(0.75)
    assert items["digits_permuted_forgetting"].verdict == fw.HELD
    plasticity = items["digits_permuted_plasticity_loss"]  # task 0 (0.9) minus tasks 1-2 (0.8, 0.7)
    assert plasticity.statistic == pytest.approx(0.15, abs=0.01) and plasticity.verdict == fw.HELD
    assert items["warm_start_gap"].statistic == pytest.approx(0.05, abs=0.005)
    # Shrink-perturb (0.64) is above the midpoint (0.625) of warm start and scratch.
    assert items["shrink_perturb_closes_half_the_gap"].statistic == pytest.approx(0.015, abs=0.003)
    assert items["warm_start_resumes_first_round"].passed
