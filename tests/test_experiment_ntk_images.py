"""Tests of experiments/ntk_images.py's pieces beyond its quick run (tests/test_experiments.py)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import framework as fw
from experiments import ntk_images
from experiments.framework import claims as claim_rules
from jaxdl import data as datasets


def test_centred_ensembles_follow_gd_on_a_linear_model_by_hand():
    """f(W, x) = x W: the centred function is x (W - W0), and GD on (1 / 2 y.size) ||x D - y||^2
    moves D = W - W0 by -lr x^T (x D - y) / y.size from D = 0, in NumPy."""
    rng = np.random.default_rng(0)
    x, y, x_test = rng.normal(size=(6, 3)), rng.normal(size=(6, 2)), rng.normal(size=(4, 3))
    w0_E = rng.normal(size=(3, 3, 2))
    learning_rate, steps = 0.3, 7
    outputs = ntk_images.centred_ensembles(lambda p, inputs: inputs @ p["w"], {"w": jnp.asarray(w0_E)},
                                           jnp.asarray(x), jnp.asarray(y), learning_rate, jnp.asarray(x_test),
                                           steps=steps)
    d = np.zeros((3, 2))
    for _ in range(steps):
        d = d - learning_rate * x.T @ (x @ d - y) / y.size
    assert outputs.shape == (3, 4, 2)
    for e in range(3):  # every net ends at the same centred function, whatever its W0
        np.testing.assert_allclose(outputs[e], x_test @ d, rtol=1e-5, atol=1e-6)


def test_centred_ensembles_of_a_nonlinear_net_start_at_zero_and_differ_by_initialisation():
    config = fw.config_for(ntk_images, "quick")
    net = ntk_images.cnn(config, 1, width=3, num_outputs=2).module()
    x = jax.random.normal(jax.random.key(0), (5, 8, 1))
    params_E = jax.tree.map(lambda *a: jnp.stack(a), *[net.init(jax.random.key(k), x[:1])["params"] for k in (1, 2)])
    apply_fn = lambda p, inputs: net.apply({"params": p}, inputs)  # noqa: E731
    untrained = ntk_images.centred_ensembles(apply_fn, params_E, x, jnp.ones((5, 2)), 0.1, x, steps=0)
    np.testing.assert_array_equal(untrained, 0.0)
    trained = ntk_images.centred_ensembles(apply_fn, params_E, x, jnp.ones((5, 2)), 0.1, x, steps=3)
    assert float(jnp.max(jnp.abs(trained[0] - trained[1]))) > 1e-4


@pytest.mark.parametrize("name", ["digits", "mnist1d"])
def test_task_rows_pick_each_random_subset_from_the_pool(name):
    config = fw.config_for(ntk_images, "quick")
    task = ntk_images._task(config, name)
    data = datasets.load(name)
    rng = np.random.default_rng(config.seed)
    for rows in task["rows"]:
        subset = rng.choice(data.num_train, config.num_train, replace=False)
        np.testing.assert_array_equal(task["x_pool"][rows].reshape(len(rows), -1),
                                      np.asarray(data.x_train[subset]).reshape(len(rows), -1))
        np.testing.assert_array_equal(task["y_pool"][rows], data.y_train[subset])
    assert task["x_pool"].ndim == (3 if name == "mnist1d" else 4)  # signals gain a channel axis
    assert len(task["x_test"]) == len(task["y_test"]) == config.num_test


def _numbers(seeds):
    """Synthetic measurements: the CNTK-GAP well ahead on mnist1d and behind on digits; the
    uncertainty larger when wrong on digits only."""
    ramp = np.linspace(0.0, 0.01, seeds)
    entry = lambda accuracy, right=0.1, wrong=0.1: {  # noqa: E731
        "accuracy": (accuracy + ramp).tolist(), "std_right": (right + ramp).tolist(),
        "std_wrong": (wrong + 2 * ramp).tolist(), "wrong": [1] * seeds}
    return {
        "convergence_slopes": (-0.5 + ramp).tolist(),
        "mnist1d/CNTK-GAP": entry(0.7, 0.03, 0.02), "mnist1d/CNTK-flatten": entry(0.3), "mnist1d/fully connected NTK":
            entry(0.25), "mnist1d/CNTK-GAP, positions shuffled": entry(0.26), "mnist1d/fc_permutation_difference": 1e-9,
        "digits/CNTK-GAP": entry(0.88, 0.08, 0.13), "digits/CNTK-flatten": entry(0.92), "digits/fully connected NTK":
            entry(0.92),
        "finite": {"kernel_accuracy": [0.45] * seeds, "gaps": {"4": (0.2 + ramp).tolist(),
                                                           "16": (0.05 - ramp).tolist()},
                   "distance": {"4": [0.7] * seeds, "16": [0.3] * seeds}},
    }


def test_claims_read_each_measurement_the_right_way_round():
    config = fw.config_for(ntk_images, "default")
    claims, checks = claim_rules.split(ntk_images.claims(config, _numbers(config.seeds)))
    verdicts = {claim.key: claim.verdict for claim in claims}
    assert verdicts == {
        "empirical_cntk_converges_at_rate_one_half": "held",
        "cntk_gap_beats_fully_connected_mnist1d": "held", "cntk_gap_beats_flatten_mnist1d": "held",
        "cntk_gap_beats_fully_connected_digits": "not held", "cntk_gap_beats_flatten_digits": "not held",
        "shuffled_positions_remove_the_advantage_mnist1d": "held",
        "centred_ensembles_approach_the_kernel": "held",
        "nngp_uncertainty_larger_when_wrong_mnist1d": "not held", "nngp_uncertainty_larger_when_wrong_digits": "held"}
    assert [(check.key, check.passed) for check in checks] == [("fully_connected_ntk_ignores_the_permutation", True)]


def test_bad_config_fields_are_named(capsys, tmp_path):
    for override, expected in (("--config.finite.dataset=cifar10", "config.finite.dataset must be one of "
                                "config.datasets"), ("--config.control=digits2", "config.control must be None or")):
        with pytest.raises(SystemExit):
            ntk_images.main(["--size", "quick", override, "--workdir", str(tmp_path)])
        assert expected in capsys.readouterr().err
