"""Tests of experiments/optimizers.py's phases beyond its quick run (tests/test_experiments.py)."""
import math

import numpy as np
import pytest

from experiments import framework as fw
from experiments import optimizers
from jaxdl.core import io


def _claims_with(numbers):
    """optimizers.claims on the quick config, the MNIST-1D numbers filled in."""
    mnist = {"mnist1d/final": {k: {"train_loss": loss, "test_accuracy": [0.5, 0.5]}
                               for k, loss in (("sgd", [0.5, 0.6]), ("adam", [0.4, 0.5]))},
             "mnist1d/learning_rate": {"sgd": 0.1, "adam": 1e-3}}
    return {c.key: c for c in optimizers.claims(fw.config_for(optimizers, "quick"), {**numbers, **mnist})}


def test_quadratic_phase_matches_polyak_rates(tmp_path):
    config = fw.config_for(optimizers, "quick")
    ctx = fw.Context(io.RunDir(tmp_path), io.MetricsLogger(tmp_path / "m.jsonl"))
    phase = optimizers.quadratic_phase(config, ctx)
    kappa, root = config.condition_number, math.sqrt(config.condition_number)
    assert phase.numbers["quadratic/gd_log_rate"] == pytest.approx(math.log((kappa - 1) / (kappa + 1)), rel=1e-4)
    assert phase.numbers["quadratic/momentum_log_rate"] == pytest.approx(math.log((root - 1) / (root + 1)), rel=2e-2)
    path = phase.arrays["quadratic_path/gd"]
    np.testing.assert_allclose(path[0], config.quadratic_start)
    eta = 2.0 / (kappa + 1.0)  # plain GD on 0.5 (w1^2 + kappa w2^2), written out
    np.testing.assert_allclose(path[1], path[0] * (1 - eta * np.array([1.0, kappa])), rtol=1e-5)
    assert set(phase.figures) == {"quadratic_trajectories", "quadratic_convergence"}
    checks = _claims_with(phase.numbers)
    assert all(checks[key].passed for key in ("gd_contraction", "heavy_ball_contraction", "heavy_ball_speedup"))


def test_rate_checks_fail_on_a_wrong_rate():
    kappa = fw.config_for(optimizers, "quick").condition_number
    wrong = {"quadratic/gd_log_rate": math.log((kappa - 1) / (kappa + 1)) * 1.01,
             "quadratic/momentum_log_rate": math.log(0.9)}
    checks = _claims_with(wrong)
    assert not any(checks[key].passed for key in ("gd_contraction", "heavy_ball_contraction", "heavy_ball_speedup"))
    assert checks["adam_faster_than_sgd"].statistic == pytest.approx(-0.1)


def test_log_rate_of_geometric_and_jordan_sequences():
    t = np.arange(300)
    assert optimizers.log_rate(0.9 ** t) == pytest.approx(math.log(0.9), rel=1e-9)
    jordan = (1.0 + 0.5 * t) * 0.8 ** t  # the error of a double root r = 0.8
    assert optimizers.log_rate(jordan, jordan=True) == pytest.approx(math.log(0.8), rel=1e-2)
    assert abs(optimizers.log_rate(jordan) / math.log(0.8) - 1) > 2e-2  # the plain fit is biased
