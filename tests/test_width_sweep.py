"""Tests for jaxdl.course.width_sweep: a masked member is the narrow MLP at init and after a whole fit
(same outputs, same parameters, masked units still zero), with the narrow MLP's initial scale."""
import jax
import numpy as np
import pytest

from helpers import count_compiles
from jaxdl import train
from jaxdl.course import width_sweep
from jaxdl.train import optim
from jaxdl.data import Dataset
from jaxdl.models import get_model

rng = np.random.default_rng(0)
X = rng.normal(size=(48, 8)).astype(np.float32)
Y = rng.integers(0, 10, 48).astype(np.int32)
DATA = Dataset(X[:32], Y[:32], X[32:], Y[32:], 10, "toy")
# Two layers and a sigmoid (f(0) = 0.5: a masked unit would feed the read-out without its mask); clipping
# and the L2 term see the whole padded parameter vector, where the masked zeros must not count.
WIDTHS, SEEDS, STEPS, LAYERS, ACTIVATION = (128, 64), (0, 1), 4, 2, "sigmoid"
TX = optim.get_optimizer("adam", 0.05, clip_norm=0.5, l2=0.01)
KWARGS = dict(widths=WIDTHS, seeds=SEEDS, epochs=STEPS, num_layers=LAYERS, activation=ACTIVATION,
              epochs_per_call=2, eval_every=2, progress=False)


def _member(tree, w, k):
    return jax.tree.map(lambda leaf: leaf[w, k], tree)


def _max_difference(a, b):
    return max(float(np.abs(np.asarray(u) - np.asarray(v)).max()) for u, v in zip(jax.tree.leaves(a),
                                                                               jax.tree.leaves(b)))


@pytest.fixture(scope="module")
def fitted():
    return jax.device_get(width_sweep.fit_widths(DATA, TX, **KWARGS))  # host copies: slicing compiles nothing


def test_members_start_as_narrow_mlps_with_their_initial_scale(fitted):
    assert fitted.history["test_accuracy"].shape == (2, 2, STEPS) and fitted.history["batch_loss"].shape == (2, 2, 4)
    assert np.isnan(fitted.history["test_loss"][0, 0, 0]) and np.isfinite(fitted.history["test_loss"][0, 0, 1])
    width = WIDTHS[1]
    initial = _member(fitted.initial_state, 1, 1)
    narrow = width_sweep.narrow_params(initial.params, width, LAYERS)
    # He for the hidden layers (variance 2 / fan_in), LeCun for the read-out (1 / fan_in), fan_in being
    # the live width, not the padded one.
    for name, fan_in, gain in (("hidden_0", 8, 2.0), ("hidden_1", width, 2.0), ("output", width, 1.0)):
        assert abs(np.std(narrow[name]["kernel"]) / np.sqrt(gain / fan_in) - 1) < 0.15, name
    assert width_sweep.num_params(8, width, LAYERS, 10) == sum(leaf.size for leaf in jax.tree.leaves(narrow))
    narrow_model = get_model("mlp", widths=(width,) * LAYERS, num_outputs=10, activation=ACTIVATION)
    assert jax.tree.structure(narrow) == jax.tree.structure(
        jax.eval_shape(narrow_model.init, jax.random.key(0), X[:1])["params"])
    model = width_sweep.MaskedMLP(max(WIDTHS), LAYERS, 10, ACTIVATION)
    np.testing.assert_allclose(jax.jit(model.apply)({"params": initial.params, **initial.model_state}, X),
                               jax.jit(narrow_model.apply)({"params": narrow}, X), rtol=1e-5, atol=1e-6)
    # The widths of a seed share its draw (the first units of the wider one); the seeds draw apart.
    wide = _member(fitted.initial_state.params, 0, 1)
    np.testing.assert_array_equal(wide["hidden_0"]["kernel"][:, :width], narrow["hidden_0"]["kernel"])
    assert _max_difference(narrow, width_sweep.narrow_params(_member(fitted.initial_state.params, 1, 0), width,
                                                             LAYERS)) > 0


def test_a_fitted_member_is_the_narrow_mlp_trained_alone(fitted):
    width = WIDTHS[1]
    params = width_sweep.narrow_params(_member(fitted.initial_state.params, 1, 1), width, LAYERS)
    state = train.TrainState(step=np.zeros((), np.int32), params=params, model_state={},
                             opt_state=jax.jit(TX.init)(params), rng=np.zeros(2, np.uint32))
    step = train.make_train_step(get_model("mlp", widths=(width,) * LAYERS, num_outputs=10, activation=ACTIVATION),
                                 TX)
    # Full batch: no data order to reproduce.
    state, metrics = jax.jit(lambda s: jax.lax.scan(lambda s, _: step(s, (DATA.x_train, DATA.y_train)), s, None,
                                                    length=STEPS))(state)
    final = _member(fitted.state.params, 1, 1)
    assert _max_difference(width_sweep.narrow_params(final, width, LAYERS), state.params) < 1e-5
    np.testing.assert_allclose(fitted.history["batch_loss"][1, 1], metrics["loss"], rtol=1e-5)
    # Outside the live block every parameter is still exactly zero: no gradient, no decay, no Adam update.
    live = width_sweep.narrow_params(final, width, LAYERS)
    for name, layer in final.items():
        for key, leaf in layer.items():
            outside = np.array(leaf)
            outside[tuple(slice(0, n) for n in live[name][key].shape)] = 0.0
            assert np.all(outside == 0.0), (name, key)


def test_fit_widths_compiles_once(fitted):
    with count_compiles() as compiles:
        width_sweep.fit_widths(DATA, TX, **KWARGS)
    assert compiles.count == 0


def test_bad_widths_and_seeds_name_the_argument():
    tx = optim.get_optimizer("sgd", 0.1)
    with pytest.raises(ValueError, match="widths"):
        width_sweep.fit_widths(DATA, tx, widths=(), epochs=1)
    with pytest.raises(ValueError, match="widths"):
        width_sweep.fit_widths(DATA, tx, widths=(4, 0), epochs=1)
    with pytest.raises(ValueError, match="seeds"):
        width_sweep.fit_widths(DATA, tx, widths=(4,), seeds=(), epochs=1)
    with pytest.raises(ValueError, match="widths"):
        width_sweep.init_width_states(width_sweep.MaskedMLP(8), tx, X[:1], [9], jax.random.key(0)[None])
