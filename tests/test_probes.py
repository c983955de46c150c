"""Tests of probes measured inside the compiled training loop (jaxdl.train.probes), against the
same quantities computed afterwards by separate calls at the same steps."""
from __future__ import annotations

import chex
import numpy as np
import optax
import pytest

from jaxdl import train
from jaxdl.analysis import curvature, landscape
from jaxdl.train import losses
from jaxdl.data import Dataset
from jaxdl.models import get_model

RNG = np.random.default_rng(0)
_X = RNG.normal(size=(40, 4)).astype(np.float32)
_Y = np.eye(3, dtype=np.float32)[np.arange(40) % 3]
REGRESSION = Dataset(_X[:30], _Y[:30], _X[30:], _Y[30:], None, "one-hot")
MODEL = get_model("mlp", widths=(8,), activation="tanh", num_outputs=3)
PROBE = curvature.SharpnessProbe(num_steps=12)
K = 5  # steps between measurements


def _gd(epochs, **kwargs):
    """Full-batch gradient descent: one step per epoch, K steps per compiled call."""
    return train.fit(MODEL, REGRESSION, optax.sgd(0.5), epochs=epochs, batch_size=None, loss_name="mse",
                     epochs_per_call=K, eval_every=K, progress=False, **kwargs)


def test_in_program_sharpness_equals_separate_lanczos_calls_at_the_same_steps():
    probed = _gd(3 * K, probes={"sharpness": PROBE}, probe_every=K)
    values = probed.history["probe/sharpness"]
    measured = np.flatnonzero(~np.isnan(values))
    np.testing.assert_array_equal(measured, [0, K, 2 * K])
    batch = (REGRESSION.x_train, REGRESSION.y_train)
    for step in measured:
        # The same deterministic descent stopped at `step`, then measured by the ordinary tool.
        params = _gd(step).state.params if step else probed.initial_state.params
        loss_fn = losses.make_loss_fn(train.make_apply_fn(MODEL), "mse")
        expected = curvature.hessian_top_eigenvalues(loss_fn, params, batch, num_steps=30, tol=None).eigenvalues[0]
        np.testing.assert_allclose(values[step], expected, rtol=1e-4)


def test_probes_leave_training_unchanged_and_loss_probe_is_the_evaluated_loss():
    plain = _gd(2 * K)
    probed = _gd(2 * K, probes={"loss": train.LossProbe(), "sharpness": PROBE}, probe_every=K,
                 probe_batch=(REGRESSION.x_test, REGRESSION.y_test))
    chex.assert_trees_all_equal(probed.state.params, plain.state.params)
    loss_values = probed.history["probe/loss"]
    assert np.isnan(loss_values[1:K]).all() and np.isfinite(loss_values[[0, K]]).all()
    held_out = landscape.evaluate_params(train.make_apply_fn(MODEL), probed.initial_state.params,
                                         (REGRESSION.x_test, REGRESSION.y_test), loss_name="mse")["loss"]
    np.testing.assert_allclose(loss_values[0], held_out, rtol=1e-5)


def test_fit_seeds_probes_equal_single_seed_probes():
    seeds = train.fit_seeds(MODEL, REGRESSION, optax.sgd(0.5), seeds=[0, 1], epochs=2 * K, batch_size=None,
                            loss_name="mse", epochs_per_call=K, eval_every=K, progress=False,
                            probes={"sharpness": PROBE}, probe_every=K)
    single = train.fit(MODEL, REGRESSION, optax.sgd(0.5), seed=1, epochs=2 * K, batch_size=None, loss_name="mse",
                       epochs_per_call=K, eval_every=K, progress=False, probes={"sharpness": PROBE}, probe_every=K)
    np.testing.assert_allclose(seeds.history["probe/sharpness"][1], single.history["probe/sharpness"], rtol=1e-4)


def test_resumed_fit_with_probes_equals_an_uninterrupted_one(tmp_path):
    probes = dict(probes={"sharpness": PROBE}, probe_every=K)
    whole = _gd(4 * K, **probes)
    _gd(2 * K, checkpoint_dir=tmp_path / "run", **probes)
    resumed = _gd(4 * K, checkpoint_dir=tmp_path / "run", **probes)
    np.testing.assert_allclose(resumed.history["probe/sharpness"], whole.history["probe/sharpness"], rtol=1e-6)
    chex.assert_trees_all_close(resumed.state.params, whole.state.params, rtol=1e-6)


@pytest.mark.parametrize("kwargs, field", [
    (dict(probes={"sharpness": PROBE}, probe_every=0), "probe_every"),
    (dict(probes={"bad": object()}), r"probes\['bad'\]"),
    (dict(epochs_per_call=2), "epochs_per_call"),  # does not divide epochs=K=5
])
def test_bad_probe_arguments_raise_naming_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        train.fit(MODEL, REGRESSION, optax.sgd(0.5), epochs=K, batch_size=None, loss_name="mse", progress=False,
                  **kwargs)
    with pytest.raises(ValueError, match="num_steps"):
        curvature.SharpnessProbe(num_steps=0)
