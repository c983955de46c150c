"""Tests of jaxdl.analysis.landscape mode connectivity (Garipov et al. 2018): curve coefficients against
their closed forms, arc-length summaries against the trapezoid rule and polygon lengths computed
in NumPy, BatchNorm statistics recomputed along a curve, and a trained curve on two moons.
"""
from __future__ import annotations

from types import SimpleNamespace

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxdl import data as datasets
from jaxdl import train
from jaxdl.analysis import landscape
from jaxdl.models import get_model
from helpers import flat

TS = np.linspace(0.0, 1.0, 101)


def _mean_cross_entropy(logits, labels) -> float:
    logits = np.asarray(logits, np.float64)
    log_norm = np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1)) + logits.max(-1)
    return float(np.mean(log_norm - logits[np.arange(len(labels)), labels]))


def _trapezoid(values, ts):
    return float(np.sum((values[1:] + values[:-1]) / 2 * np.diff(ts)))


# ----------------------------------------------------------------------------- coefficients


@pytest.mark.parametrize("kind", ["bezier", "polychain"])
def test_coefficients_are_convex_weights_hitting_the_endpoints(kind):
    c = np.asarray(jax.jit(jax.vmap(lambda t: landscape.curve_coefficients(kind, t)))(jnp.asarray(TS)))
    assert c.shape == (101, 3)
    assert (c >= 0).all()
    np.testing.assert_allclose(c.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(c[0], [1, 0, 0])
    np.testing.assert_array_equal(c[-1], [0, 0, 1])
    if kind == "bezier":
        np.testing.assert_allclose(c, np.stack([(1 - TS) ** 2, 2 * TS * (1 - TS), TS ** 2], 1), atol=1e-6)
    else:
        np.testing.assert_array_equal(np.asarray(landscape.polychain_coefficients(0.5)), [0, 1, 0])
        first = TS <= 0.5
        np.testing.assert_allclose(c[first], np.stack([1 - 2 * TS, 2 * TS, 0 * TS], 1)[first], atol=1e-6)
        np.testing.assert_allclose(c[~first], np.stack([0 * TS, 2 - 2 * TS, 2 * TS - 1], 1)[~first], atol=1e-6)


def test_unknown_curve_kind_is_named():
    with pytest.raises(ValueError, match="kind"):
        landscape.curve_coefficients("spline", 0.3)


# ----------------------------------------------------------------------------- curves of a small MLP


def apply_fn(params, x):
    return jnp.tanh(x @ params["w1"] + params["b1"]) @ params["w2"]


@pytest.fixture(scope="module")
def endpoints():
    rng = np.random.default_rng(0)
    make = lambda: {"w1": jnp.asarray(rng.normal(size=(2, 6)), jnp.float32),
                    "b1": jnp.asarray(rng.normal(size=6), jnp.float32),
                    "w2": jnp.asarray(rng.normal(size=(6, 3)), jnp.float32)}
    x = rng.normal(size=(24, 2)).astype(np.float32)
    return make(), make(), make(), (x, rng.integers(0, 3, 24).astype(np.int32))


def test_curve_points(endpoints):
    e0, bend, e1, _ = endpoints
    for kind in ("bezier", "polychain"):
        np.testing.assert_array_equal(flat(landscape.curve_point(kind, e0, bend, e1, 0.0)), flat(e0))
        np.testing.assert_array_equal(flat(landscape.curve_point(kind, e0, bend, e1, 1.0)), flat(e1))
    np.testing.assert_allclose(flat(landscape.curve_point("polychain", e0, bend, e1, 0.5)), flat(bend))
    middle = landscape.init_bend(e0, e1)
    np.testing.assert_allclose(flat(landscape.curve_point("bezier", e0, middle, e1, 0.3)),
                               0.7 * flat(e0) + 0.3 * flat(e1), rtol=1e-5, atol=1e-6)


def test_line_metrics_integral_is_the_trapezoid_rule(endpoints):
    e0, _, e1, data = endpoints
    ts = np.array([0.0, 0.1, 0.45, 0.5, 0.8, 1.0])
    line = landscape.line_metrics(apply_fn, e0, e1, data, ts=ts, chunk_size=10)
    assert line["loss"].shape == (6,) and line["segment_lengths"].shape == (5,)
    distance = np.linalg.norm(flat(e1) - flat(e0))
    np.testing.assert_allclose(line["segment_lengths"], distance * np.diff(ts), rtol=1e-5)
    np.testing.assert_allclose(line["length"], distance, rtol=1e-5)
    # Uniform speed: arc length is proportional to t, so the weighted mean is the trapezoid rule.
    np.testing.assert_allclose(line["loss_integral"], _trapezoid(line["loss"], ts), rtol=1e-5)
    for t, value in zip(ts, line["loss"]):
        point = jax.tree.map(lambda a, b: (1 - t) * a + t * b, e0, e1)
        np.testing.assert_allclose(value, landscape.evaluate_params(apply_fn, point, data)["loss"], rtol=1e-5)
    assert line["loss_max"] == line["loss"].max() and line["loss_min"] == line["loss"].min()
    np.testing.assert_allclose(line["accuracy_mean"], line["accuracy"].mean(), rtol=1e-6)


def test_polychain_length_and_weights(endpoints):
    e0, bend, e1, data = endpoints
    ts = np.linspace(0.0, 1.0, 5)
    chain = landscape.curve_metrics(apply_fn, "polychain", e0, bend, e1, data, ts=ts)
    first, second = np.linalg.norm(flat(bend) - flat(e0)), np.linalg.norm(flat(e1) - flat(bend))
    np.testing.assert_allclose(chain["segment_lengths"], [first / 2, first / 2, second / 2, second / 2], rtol=1e-5)
    expected = np.array([first / 4, first / 2, (first + second) / 4, second / 2, second / 4])
    np.testing.assert_allclose(chain["arc_weights"], expected, rtol=1e-5)
    np.testing.assert_allclose(chain["loss_integral"], expected @ chain["loss"] / expected.sum(), rtol=1e-5)
    with pytest.raises(ValueError, match="ts"):
        landscape.curve_metrics(apply_fn, "polychain", e0, bend, e1, data, ts=[0.0, 0.5, 0.5, 1.0])


# ----------------------------------------------------------------------------- BatchNorm along a curve


class NormNet(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool = False):
        x = nn.relu(nn.BatchNorm(use_running_average=not train, momentum=0.9)(nn.Dense(6)(x)))
        return nn.Dense(3)(x)


def test_curve_with_batch_norm_reproduces_the_endpoints():
    rng = np.random.default_rng(2)
    x = (rng.normal(size=(36, 4)) + 1.0).astype(np.float32)
    data = (x, rng.integers(0, 3, 36).astype(np.int32))
    model = NormNet()
    v0, v1 = model.init(jax.random.key(0), x[:2]), model.init(jax.random.key(1), x[:2])
    state = {"batch_stats": v0["batch_stats"]}
    e0, e1 = v0["params"], v1["params"]
    bend = jax.tree.map(lambda a: a + 0.5, landscape.init_bend(e0, e1))
    stats = landscape.BatchStats(model, state, x, 12)
    curve = landscape.curve_metrics(None, "bezier", e0, bend, e1, data, ts=np.linspace(0, 1, 5), batch_stats=stats)
    for index, endpoint in ((0, e0), (-1, e1)):
        at = landscape.evaluate_params(None, endpoint, data, batch_stats=stats)
        np.testing.assert_allclose(curve["loss"][index], at["loss"], rtol=1e-5)
        own_state = landscape.recompute_batch_stats(model, endpoint, state, x, batch_size=12)
        by_hand = _mean_cross_entropy(model.apply({"params": endpoint, **own_state}, data[0]), data[1])
        np.testing.assert_allclose(at["loss"], by_hand, rtol=1e-5)
        frozen = _mean_cross_entropy(model.apply({"params": endpoint, **state}, data[0]), data[1])
        assert abs(frozen - float(at["loss"])) > 1e-3  # the initial statistics: not the same
    # The same recomputation at every point of a (vmapped) surface: plane through e0, e1 and bend.
    dx, dy = (jax.tree.map(jnp.subtract, p, e0) for p in (e1, bend))
    plane = landscape.surface(None, e0, dx, dy, data, [0.0, 1.0], [0.0, 1.0], batch_stats=stats)
    np.testing.assert_allclose(plane["loss"][0, [0, 1]], curve["loss"][[0, -1]], rtol=1e-5)
    at_bend = landscape.evaluate_params(None, bend, data, batch_stats=stats)
    np.testing.assert_allclose(plane["loss"][1, 0], at_bend["loss"], rtol=1e-5)


# ----------------------------------------------------------------------------- training a curve


@pytest.fixture(scope="module")
def two_minima():
    data = datasets.load("moons", num_train=256, num_test=64)
    model = get_model("mlp", widths=(16, 16), num_outputs=2)
    fitted = train.fit_seeds(model, data, optax.adam(0.02), seeds=[0, 1], epochs=25, batch_size=32, progress=False)
    return model, data, train.unstack(fitted.state.params, 0), train.unstack(fitted.state.params, 1)


def test_fit_curve_lowers_the_midpoint_loss_and_keeps_the_endpoints(two_minima):
    model, data, e0, e1 = two_minima
    before = (flat(e0), flat(e1))
    bend, history = landscape.fit_curve(model, {}, e0, e1, data, optax.adam(0.02), epochs=10, batch_size=32,
                                        weight_decay=1e-4, key=jax.random.key(0), progress=False)
    assert history["loss"].shape == (80,) and np.isfinite(history["loss"]).all()
    assert ((history["t"] >= 0) & (history["t"] < 1)).all() and np.ptp(history["t"]) > 0.5
    np.testing.assert_array_equal(flat(e0), before[0])
    np.testing.assert_array_equal(flat(e1), before[1])
    apply_fn, xy, ts = train.make_apply_fn(model), (data.x_train, data.y_train), np.linspace(0, 1, 5)
    curve = landscape.curve_metrics(apply_fn, "bezier", e0, bend, e1, xy, ts=ts)
    line = landscape.line_metrics(apply_fn, e0, e1, xy, ts=ts)
    np.testing.assert_allclose(curve["loss"][[0, -1]], line["loss"][[0, -1]], rtol=1e-5)
    assert line["loss"][2] > 0.1 and curve["loss"][2] < 0.3 * line["loss"][2]


def test_fit_curve_stops_on_a_non_finite_loss(two_minima):
    model, data, e0, e1 = two_minima
    broken = SimpleNamespace(x_train=np.full_like(data.x_train, np.nan), y_train=data.y_train)
    with pytest.raises(FloatingPointError, match="step 0"):
        landscape.fit_curve(model, {}, e0, e1, broken, optax.adam(0.02), epochs=1, batch_size=32,
                            key=jax.random.key(0), progress=False)


def test_barrier_and_largest_rise_on_hand_made_paths():
    bump = [1.0, 1.5, 3.0, 2.0, 0.5]
    assert landscape.barrier(bump) == pytest.approx(2.0)  # 3.0 above the higher end, 1.0
    assert landscape.largest_rise(bump) == pytest.approx(2.0)  # from 1.0 up to 3.0
    monotone = [3.0, 2.0, 2.0, 1.0]
    assert landscape.barrier(monotone) == 0.0 and landscape.largest_rise(monotone) == 0.0
    valley = [1.0, 0.2, 0.8]
    assert landscape.barrier(valley) == pytest.approx(0.0)  # the peak is an end
    assert landscape.largest_rise(valley) == pytest.approx(0.6)  # but the loss rises after the dip
    with pytest.raises(ValueError, match="values_T"):
        landscape.barrier([1.0])
