"""Every experiment's quick config end to end, figures and report included.

The project's rule: every experiment's quick config runs end to end in the test suite, figures
included, so that a change that breaks an experiment fails a test rather than a user's run.

The claims need not hold at the quick size; what is checked is that the pipeline runs, writes
its run directory, and that each claim compares a finite measured number with its threshold.
"""
import json
import os

import jax
import numpy as np
import pytest

import experiments
from experiments import common
from jaxdl import io

ALL = tuple(experiments.EXPERIMENTS) + ("benchmark",)


@pytest.mark.parametrize("name", ALL)
def test_quick_config_runs_end_to_end(name, tmp_path):
    module = experiments.get_experiment(name)
    workdir = str(tmp_path / name)
    result = module.main(["--size", "quick", "--workdir", workdir])
    for figure in result["figures"]:
        path = figure if os.path.isabs(figure) else os.path.join(workdir, figure)
        with open(path, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n", figure
    assert result["tables"], "an experiment must print at least one results table"
    claims = json.load(open(os.path.join(workdir, "claims.json")))
    assert claims and len(claims) == len(result["claims"])
    for claim in claims:
        assert claim["paper"] and claim["claim"] and claim["expected"]
        assert "nan" not in claim["measured"].lower(), claim
    report = open(os.path.join(workdir, "report.md")).read()
    assert "| Paper" in report
    assert json.load(open(os.path.join(workdir, "config.json")))


@pytest.mark.parametrize("name", ALL)
def test_sizes_and_bad_size(name):
    module = experiments.get_experiment(name)
    for size in common.SIZES:
        assert module.get_config(size).to_dict()
    with pytest.raises(ValueError, match="size"):
        module.get_config("huge")


def test_bad_config_value_names_the_field(tmp_path):
    from experiments import optimizers

    config = optimizers.get_config("quick")
    config.epochs = 0
    with pytest.raises(ValueError, match="epochs"):
        optimizers.run(config, io.RunDir(tmp_path))
    config = optimizers.get_config("quick")
    config.learning_rates.adam = -1.0
    with pytest.raises(ValueError, match="learning_rates.adam"):
        optimizers.run(config, io.RunDir(tmp_path))


# ----------------------------------------------------------------------------- phases


def test_optimizers_quadratic_phase_matches_polyak_rates(tmp_path):
    from experiments import optimizers

    config = optimizers.get_config("quick")
    numbers, arrays, figures, _ = optimizers.quadratic_phase(config, jax.random.key(0), io.RunDir(tmp_path))
    kappa = config.condition_number
    assert numbers["measured_gd_rate"] == pytest.approx((kappa - 1) / (kappa + 1), abs=2e-3)
    assert numbers["quadratic_steps"]["momentum"] < numbers["quadratic_steps"]["gd"]
    path = arrays["quadratic_path/gd"]
    np.testing.assert_allclose(path[0], config.quadratic_start)
    eta = 2.0 / (kappa + 1.0)  # plain GD on 0.5 (w1^2 + kappa w2^2), written out
    np.testing.assert_allclose(path[1], path[0] * (1 - eta * np.array([1.0, kappa])), rtol=1e-5)
    assert all(os.path.exists(f) for f in figures)


def test_loss_landscape_lines_phase_starts_and_ends_at_the_endpoints(tmp_path):
    from experiments import loss_landscape
    from jaxdl import data as datasets
    from jaxdl.models import get_model

    config = loss_landscape.get_config("quick")
    data = datasets.load(config.dataset)
    model = get_model(config.model.name, num_outputs=data.num_classes, **config.model.hparams.to_dict())
    run_dir = io.RunDir(tmp_path)
    with run_dir.logger() as logger:
        w0, (first, second), _ = loss_landscape.train_pair(config, model, data, logger)
    evaluator = loss_landscape.Evaluator(config, model, data, first.model_state)
    phase = loss_landscape.lines_phase(config, evaluator, run_dir, w0, first.params, second.params)
    alphas = phase.arrays["lines/alphas"]
    line = phase.arrays["lines/init_to_solution/train_loss"]
    for alpha, params in ((0.0, w0), (1.0, first.params)):
        logits = np.asarray(model.apply({"params": params}, data.x_train), np.float64)
        shifted = logits - logits.max(-1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
        by_hand = -log_probs[np.arange(len(data.y_train)), data.y_train].mean()
        assert line[list(alphas).index(alpha)] == pytest.approx(by_hand, rel=1e-4)
    assert phase.numbers["monotone_rise"] >= 0 and len(phase.figures) == 2
