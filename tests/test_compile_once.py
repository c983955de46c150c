"""Compile once: a second identical call of fit or of an analysis tool builds no program.

Each tool is called twice on the same model, shapes and options, the second time with the model
wrapped afresh (a new ``make_apply_fn``/``make_loss_fn``, a new ``get_optimizer`` call, other
BatchNorm statistics), as a user calling the tool again would. The first call must compile
(else the counter proves nothing); the second must compile nothing.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import count_compiles

from jaxdl import train
from jaxdl.analysis import curvature, landscape, ntk
from jaxdl.core import compiled
from jaxdl.train import losses, optim
from jaxdl.data import Dataset
from jaxdl.models import get_model


@functools.lru_cache(maxsize=None)
def _problem():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 5)).astype(np.float32)
    y = rng.integers(0, 3, 40).astype(np.int32)
    data = Dataset(x[:30], y[:30], x[30:], y[30:], 3, "tiny")
    model = get_model("mlp", widths=(7,), num_outputs=3)
    params = train.init_state(model, optim.get_optimizer("sgd", 0.1), x[:1], jax.random.key(0)).params
    return data, model, params, (x[:30], y[:30])


def _loss_fn():
    _, model, _, _ = _problem()
    return losses.make_loss_fn(train.make_apply_fn(model), "cross_entropy")


def _apply_fn():
    _, model, _, _ = _problem()
    return train.make_apply_fn(model)


def _other_params():
    _, _, params, _ = _problem()
    return jax.tree.map(lambda p: p + 0.1, params)


def _direction():
    _, _, params, _ = _problem()
    return landscape.random_direction(jax.random.key(1), params)


CALLS = {
    "fit": lambda: train.fit(_problem()[1], _problem()[0], optim.get_optimizer("adam", 1e-2), epochs=2,
                             batch_size=10, progress=False),
    "fit_seeds": lambda: train.fit_seeds(_problem()[1], _problem()[0], optim.get_optimizer("adam", 1e-2),
                                         seeds=[0, 1], epochs=2, batch_size=10, progress=False),
    "hessian_top_eigenvalues": lambda: curvature.hessian_top_eigenvalues(_loss_fn(), _problem()[2], _problem()[3],
                                                                         k=2, num_steps=10, chunk_size=7),
    "hessian_bottom_eigenvalues": lambda: curvature.hessian_bottom_eigenvalues(_loss_fn(), _problem()[2],
                                                                               _problem()[3], k=2, num_steps=10),
    "hessian_power_iteration": lambda: curvature.hessian_power_iteration(_loss_fn(), _problem()[2], _problem()[3]),
    "hessian_trace": lambda: curvature.hessian_trace(_loss_fn(), _problem()[2], _problem()[3], num_probes=6,
                                                     probes_per_chunk=4),
    "hessian_spectral_density": lambda: curvature.hessian_spectral_density(_loss_fn(), _problem()[2], _problem()[3],
                                                                           num_steps=8, num_runs=2),
    "epsilon_sharpness": lambda: curvature.epsilon_sharpness(_loss_fn(), _problem()[2], _problem()[3],
                                                             max_steps=3),
    "epsilon_sharpness_ascent": lambda: curvature.epsilon_sharpness(_loss_fn(), _problem()[2], _problem()[3],
                                                                    method="ascent", subspace=4, max_steps=3),
    "ball_sharpness": lambda: curvature.ball_sharpness(_loss_fn(), _problem()[2], _problem()[3], 0.1,
                                                       num_steps=3),
    "adaptive_sharpness": lambda: curvature.adaptive_sharpness(_loss_fn(), _problem()[2], _problem()[3], 0.01,
                                                               num_steps=3),
    "pac_bayes_flatness": lambda: curvature.pac_bayes_flatness(_loss_fn(), _problem()[2], _problem()[3],
                                                               magnitude_aware=True, num_samples=4, bisection_steps=3),
    "fisher_rao_norm": lambda: curvature.fisher_rao_norm(_apply_fn(), _problem()[2], _problem()[3], chunk_size=7),
    "fit_seeds_to_a_target": lambda: train.fit_seeds(_problem()[1], _problem()[0], optim.get_optimizer("adam", 1e-2),
                                                     seeds=[0, 1], epochs=2, batch_size=10, target_train_loss=1e-9,
                                                     progress=False),
    "evaluate_params": lambda: landscape.evaluate_params(_apply_fn(), _problem()[2], _problem()[3], chunk_size=8),
    "random_direction": lambda: landscape.random_direction(jax.random.key(2), _problem()[2], normalization="layer"),
    "interpolate": lambda: landscape.interpolate(_apply_fn(), _problem()[2], _other_params(), _problem()[3],
                                                 np.linspace(0, 1, 5)),
    "surface": lambda: landscape.surface(_apply_fn(), _problem()[2], _direction(), _direction(), _problem()[3],
                                         np.linspace(-1, 1, 3), np.linspace(-1, 1, 2), points_per_chunk=2),
    "curve_metrics": lambda: landscape.line_metrics(_apply_fn(), _problem()[2], _other_params(), _problem()[3],
                                                    ts=np.linspace(0, 1, 5)),
    "convexity_map": lambda: landscape.convexity_map(_apply_fn(), _problem()[2], _direction(), _direction(),
                                                     _problem()[3], np.linspace(-1, 1, 3), [0.0], num_steps=4),
    "trajectory_plane": lambda: landscape.trajectory_plane(
        jax.tree.map(lambda a: jnp.stack([a, 2 * a, 3 * a, a + 1]), _problem()[2])),
    "fit_curve": lambda: landscape.fit_curve(_problem()[1], {}, _problem()[2], _other_params(), _problem()[0],
                                             optim.get_optimizer("sgd", 0.1), epochs=1, batch_size=10,
                                             key=jax.random.key(0), progress=False),
    "ntk_layer_kernels": lambda: _cnn().kernels(_images(), chunk_size=2),
    "monte_carlo_kernels": lambda: ntk.monte_carlo_kernels(_cnn().module(), _images(), num_samples=3,
                                                           key=jax.random.key(0), samples_per_chunk=2),
}


def _cnn():
    """A network of the infinite-width layer algebra, built afresh at every call."""
    return ntk.serial(ntk.Conv(4, (3,), weight_std=1.5, bias_std=0.1), ntk.Relu(), ntk.AvgPool((2,)),
                      ntk.GlobalAvgPool(), ntk.Dense(2, weight_std=1.5))


def _images():
    return np.random.default_rng(0).normal(size=(3, 6, 2)).astype(np.float32)


@pytest.mark.parametrize("name", list(CALLS))
def test_a_second_identical_call_compiles_nothing(name):
    _problem(), _direction(), _other_params()  # inputs made outside the counted blocks
    with count_compiles() as first:
        jax.block_until_ready(CALLS[name]())
    with count_compiles() as second:
        jax.block_until_ready(CALLS[name]())
    assert first.count > 0, "the first call compiled nothing: the counter is not counting"
    assert second.count == 0, f"{name} compiled {second.count} programs again"


def test_batch_norm_statistics_are_traced_not_baked_in():
    # A ResNet's apply_fn with two different sets of statistics: one program serves both, and
    # the results differ (the statistics are inputs of the program, not constants in it).
    model = get_model("resnet", depth=8, width_multiplier=0.25, num_outputs=3)
    x = np.random.default_rng(0).normal(size=(6, 8, 8, 1)).astype(np.float32)
    y = np.arange(6, dtype=np.int32) % 3
    variables = model.init(jax.random.key(0), x[:1])
    stats = variables["batch_stats"]
    shifted = jax.tree.map(lambda s: s + 0.5, stats)
    evaluate = lambda s: landscape.evaluate_params(train.make_apply_fn(model, {"batch_stats": s}),
                                                   variables["params"], (x, y))["loss"]
    first = evaluate(stats)
    with count_compiles() as again:
        second = evaluate(shifted)
    assert again.count == 0
    assert abs(float(first) - float(second)) > 1e-4


def test_compiled_jit_traces_arrays_and_keys_callables_by_value():
    calls = []

    @compiled.jit(static_argnames=("power",))
    def apply(fn, x, scale, *, power):
        calls.append(1)  # runs once per trace
        return fn(x) ** power * scale

    partial_a = jax.tree_util.Partial(jnp.multiply, jnp.ones(3))
    partial_b = jax.tree_util.Partial(jnp.multiply, 2 * jnp.ones(3))  # another array, same structure
    np.testing.assert_allclose(apply(partial_a, jnp.arange(3.0), 2.0, power=2), [0, 2, 8])
    np.testing.assert_allclose(apply(partial_b, jnp.arange(3.0), 3.0, power=2), [0, 12, 48])
    assert len(calls) == 1  # the partial's array and the float are traced
    apply(partial_a, jnp.arange(3.0), 2.0, power=3)
    assert len(calls) == 2  # a static argument is part of the key
    apply(jnp.sin, jnp.arange(3.0), 2.0, power=2)
    assert len(calls) == 3  # another function is another program
