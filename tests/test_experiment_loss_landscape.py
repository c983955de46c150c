"""Tests of experiments/loss_landscape.py's phases and claims beyond its quick run (tests/test_experiments.py)."""
import numpy as np
import pytest

from experiments import framework as fw
from experiments import loss_landscape
from jaxdl import train
from jaxdl.core import io
from jaxdl.train import optim


def test_lines_phase_starts_and_ends_at_the_endpoints(tmp_path):
    config = fw.config_for(loss_landscape, "quick")
    ctx = fw.Context(io.RunDir(tmp_path), io.MetricsLogger(tmp_path / "m.jsonl"))
    phase = loss_landscape.lines_phase(config, ctx)
    model, data, solutions = phase.carry
    # The initialisations fit_seeds drew: each seed's 'init' stream.
    init_keys, _ = train.seed_streams(np.asarray(fw.seeds(config), np.uint32))
    tx = optim.get_optimizer(config.optimizer, config.learning_rate, momentum=config.momentum)
    initial = train.init_states(model, tx, data.x_train[:1], init_keys).params
    alphas = phase.arrays["lines/alphas"]
    assert len(solutions) == config.seeds
    for k in range(config.seeds):
        line = phase.arrays[f"lines/seed{k}/train_loss"]
        for alpha, params in ((0.0, train.unstack(initial, k)), (1.0, solutions[k].params)):
            logits = np.asarray(model.apply({"params": params}, data.x_train), np.float64)
            shifted = logits - logits.max(-1, keepdims=True)
            log_probs = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
            by_hand = -log_probs[np.arange(len(data.y_train)), data.y_train].mean()
            assert line[list(alphas).index(alpha)] == pytest.approx(by_hand, rel=1e-4)
    assert len(phase.numbers["monotone_rise"]) == config.seeds and min(phase.numbers["monotone_rise"]) >= 0
    assert list(phase.figures) == ["init_to_solution"]


def test_rescale_touches_only_the_convolution_kernels():
    params = {"conv_0": {"kernel": np.ones((3, 3, 1, 2))}, "bn_0": {"scale": np.ones(2)},
              "dense": {"kernel": np.ones((2, 3)), "bias": np.ones(3)}}
    scaled = loss_landscape.rescale_batchnorm_inputs(params, 0.1)
    np.testing.assert_allclose(scaled["conv_0"]["kernel"], 0.1)
    for path in (("bn_0", "scale"), ("dense", "kernel"), ("dense", "bias")):
        np.testing.assert_array_equal(scaled[path[0]][path[1]], 1.0)


def _numbers(line_barriers, curve_barriers, rises, filter_change=1e-5, raw_change=0.2):
    return {"monotone_rise": rises, "surface_centre_error": 0.0, "curve_endpoint_error": 0.0,
            "rescale_change": {"filter": filter_change, "raw": raw_change},
            "paths": {"line": {"test-error barrier": line_barriers}, "bezier": {"test-error barrier": curve_barriers}}}


def test_claims_decide_the_papers_thresholds():
    config = fw.config_for(loss_landscape)
    config.curves, config.seeds = ("bezier",), 10
    held = {c.key: c for c in loss_landscape.claims(config, _numbers([0.40, 0.42, 0.38, 0.41, 0.39],
                                                                      [0.001, 0.0, 0.002, 0.001, 0.0], [0.0] * 10))}
    assert [c.verdict for c in held.values() if isinstance(c, fw.Claim)] == [fw.HELD] * 3
    assert all(c.passed for c in held.values() if isinstance(c, fw.Check))
    # A curve as high as the line, a line without a barrier and a bumpy path fail their claims;
    # a filter-normalised curve that moves, or a raw one that does not, fail their checks.
    failed = {c.key: c for c in loss_landscape.claims(config, _numbers([0.01, 0.02, 0.0, 0.01, 0.02], [0.3] * 5,
                                                                        [0.2, 0.3] * 5, 0.1, 1e-3))}
    assert failed["init_to_solution_monotone"].verdict == fw.NOT_HELD
    assert failed["line_barrier"].verdict == fw.NOT_HELD
    assert failed["bezier_curve_within_one_point"].verdict == fw.NOT_HELD
    assert not failed["filter_normalised_curve_invariant"].passed and not failed["raw_curve_changes"].passed
