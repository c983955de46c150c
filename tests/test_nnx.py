"""Flax NNX models through the library (jaxdl.models.nnx_bridge): each against its Linen twin.

A Linen and an NNX version of the same MLP, and of the same CNN with BatchNorm and Dropout, start
from the same weights (copied across); ``fit`` must then give the same trajectory, and the
curvature, landscape and NTK tools the same numbers. Flax's own example CNN, written as flax's
MNIST example writes it, trains on digits; a checkpointed NNX fit resumes to the same numbers;
a second fit compiles nothing.
"""
from __future__ import annotations

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from helpers import count_compiles
from jaxdl import data, train
from jaxdl.analysis import curvature, landscape, ntk
from jaxdl.models import from_nnx, nnx_variables
from jaxdl.train import losses, optim

DROPOUT = 0.2


# ----------------------------------------------------------------------------- the twins


class LinenMLP(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool = False):
        x = nn.tanh(nn.Dense(16)(x.reshape((x.shape[0], -1))))
        return nn.Dense(10)(x)


class NNXMLP(nnx.Module):
    def __init__(self, *, rngs: nnx.Rngs):
        self.hidden, self.out = nnx.Linear(64, 16, rngs=rngs), nnx.Linear(16, 10, rngs=rngs)

    def __call__(self, x):
        return self.out(nnx.tanh(self.hidden(x.reshape((x.shape[0], -1)))))


class LinenCNN(nn.Module):
    """conv, BatchNorm, relu, pool, dropout, dense; the dropout key drawn at the root scope, as the
    NNX adapter draws it, and folded once, as ``nnx.Rngs`` does on its first draw."""

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = nn.Conv(8, (3, 3))(x)
        x = nn.BatchNorm(use_running_average=not train)(x)
        x = nn.avg_pool(nn.relu(x), (2, 2), strides=(2, 2)).reshape((x.shape[0], -1))
        if train:
            keep = jax.random.bernoulli(jax.random.fold_in(self.make_rng("dropout"), 0), 1 - DROPOUT, x.shape)
            x = jnp.where(keep, x / (1 - DROPOUT), 0)
        return nn.Dense(10)(x)


class NNXCNN(nnx.Module):
    def __init__(self, *, rngs: nnx.Rngs):
        self.conv = nnx.Conv(1, 8, kernel_size=(3, 3), rngs=rngs)
        self.bn = nnx.BatchNorm(8, rngs=rngs)
        self.dropout = nnx.Dropout(DROPOUT)
        self.out = nnx.Linear(8 * 4 * 4, 10, rngs=rngs)

    def __call__(self, x, rngs: nnx.Rngs | None = None):
        x = nnx.avg_pool(nnx.relu(self.bn(self.conv(x))), window_shape=(2, 2), strides=(2, 2))
        return self.out(self.dropout(x.reshape((x.shape[0], -1)), rngs=rngs))


class FlaxExampleCNN(nnx.Module):
    """flax's examples/mnist CNN as flax writes it (widths scaled to 8 x 8 digits)."""

    def __init__(self, *, rngs: nnx.Rngs):
        self.conv1 = nnx.Conv(1, 16, kernel_size=(3, 3), rngs=rngs)
        self.batch_norm1 = nnx.BatchNorm(16, rngs=rngs)
        self.dropout1 = nnx.Dropout(rate=0.025)
        self.conv2 = nnx.Conv(16, 32, kernel_size=(3, 3), rngs=rngs)
        self.batch_norm2 = nnx.BatchNorm(32, rngs=rngs)
        self.avg_pool = lambda x: nnx.avg_pool(x, window_shape=(2, 2), strides=(2, 2))
        self.linear1 = nnx.Linear(32 * 2 * 2, 64, rngs=rngs)
        self.dropout2 = nnx.Dropout(rate=0.025)
        self.linear2 = nnx.Linear(64, 10, rngs=rngs)

    def __call__(self, x, rngs: nnx.Rngs | None = None):
        x = self.avg_pool(nnx.relu(self.batch_norm1(self.dropout1(self.conv1(x), rngs=rngs))))
        x = self.avg_pool(nnx.relu(self.batch_norm2(self.conv2(x))))
        x = x.reshape(x.shape[0], -1)
        x = self.dropout2(nnx.relu(self.linear1(x)), rngs=rngs)
        return self.linear2(x)


class LinenExampleCNN(nn.Module):
    """:class:`FlaxExampleCNN` written in Linen, for the accuracy it reaches."""

    @nn.compact
    def __call__(self, x, train: bool = False):
        pool = lambda x: nn.avg_pool(x, (2, 2), strides=(2, 2))  # noqa: E731
        x = nn.Dropout(0.025, deterministic=not train)(nn.Conv(16, (3, 3))(x))
        x = pool(nn.relu(nn.BatchNorm(use_running_average=not train)(x)))
        x = pool(nn.relu(nn.BatchNorm(use_running_average=not train)(nn.Conv(32, (3, 3))(x))))
        x = nn.Dropout(0.025, deterministic=not train)(nn.relu(nn.Dense(64)(x.reshape((x.shape[0], -1)))))
        return nn.Dense(10)(x)


def _to_nnx(linen_params, names):
    """Linen parameters renamed to the NNX twin's attributes (``names``: Linen -> NNX)."""
    return {names[k]: v for k, v in linen_params.items()}


MLP_NAMES = {"Dense_0": "hidden", "Dense_1": "out"}
CNN_NAMES = {"Conv_0": "conv", "BatchNorm_0": "bn", "Dense_0": "out"}


@pytest.fixture(scope="module")
def digits():
    return data.load("digits")


def _twin_states(linen_model, nnx_model, names, tx, x):
    """A Linen start state and the NNX adapter's state holding the same weights (and statistics)."""
    linen_state = train.init_state(linen_model, tx, x[:1], jax.random.key(0))
    nnx_state = train.init_state(nnx_model, tx, x[:1], jax.random.key(1))
    params = _to_nnx(linen_state.params, names)
    model_state = nnx_state.model_state
    if "batch_stats" in linen_state.model_state:
        model_state = {**model_state, "batch_stats": {"nnx": _to_nnx(linen_state.model_state["batch_stats"], names)}}
    return linen_state, nnx_state.replace(params=params, model_state=model_state, opt_state=tx.init(params),
                                          rng=linen_state.rng)


# ----------------------------------------------------------------------------- training


@pytest.mark.parametrize("twins", [(LinenMLP, NNXMLP, MLP_NAMES), (LinenCNN, NNXCNN, CNN_NAMES)],
                         ids=["mlp", "cnn_batchnorm_dropout"])
def test_fit_gives_the_linen_twins_trajectory(digits, twins):
    linen_cls, nnx_cls, names = twins
    tx = optim.get_optimizer("sgd", 0.05)
    linen_start, nnx_start = _twin_states(linen_cls(), nnx_cls, names, tx, digits.x_train)
    options = dict(epochs=2, batch_size=64, seed=3, progress=False)
    linen = train.fit(linen_cls(), digits, tx, initial_state=linen_start, **options)
    nnx_run = train.fit(nnx_cls, digits, tx, initial_state=nnx_start, **options)
    np.testing.assert_allclose(nnx_run.history["batch_loss"], linen.history["batch_loss"], rtol=2e-5, atol=1e-6)
    chex.assert_trees_all_close(nnx_run.state.params, _to_nnx(linen.state.params, names), rtol=1e-4, atol=1e-5)
    if "batch_stats" in linen.state.model_state:
        chex.assert_trees_all_close(nnx_run.state.model_state["batch_stats"]["nnx"],
                                    _to_nnx(linen.state.model_state["batch_stats"], names), rtol=1e-4, atol=1e-5)


def test_flax_example_cnn_trains_on_digits_and_seeds_draw_their_own_weights(digits):
    tx = optim.get_optimizer("adam", 3e-3)
    model = FlaxExampleCNN(rngs=nnx.Rngs(0))  # as a user holds it; its class builds each seed
    result = train.fit_seeds(model, digits, tx, seeds=[0, 1], epochs=8, batch_size=64, progress=False)
    assert (result.history["test_accuracy"][:, -1] > 0.9).all()  # chance is 0.1
    twin = train.fit_seeds(LinenExampleCNN(), digits, tx, seeds=[0, 1], epochs=8, batch_size=64, progress=False)
    assert abs(result.history["test_accuracy"][:, -1].mean() - twin.history["test_accuracy"][:, -1].mean()) < 0.03
    kernels = result.initial_state.params["conv1"]["kernel"]
    assert not np.allclose(kernels[0], kernels[1])
    single = train.fit(model, digits, tx, seed=1, epochs=8, batch_size=64, progress=False)
    np.testing.assert_allclose(single.history["test_accuracy"], result.history["test_accuracy"][1], atol=0.02)


def test_a_resumed_nnx_fit_with_probes_equals_an_uninterrupted_one(digits, tmp_path):
    tx = optim.get_optimizer("adam", 3e-3)
    options = dict(batch_size=128, seed=2, progress=False, probes={"loss": train.LossProbe()}, probe_every=4)
    straight = train.fit(NNXCNN, digits, tx, epochs=3, **options)
    train.fit(NNXCNN, digits, tx, epochs=1, checkpoint_dir=tmp_path, **options)
    resumed = train.fit(NNXCNN, digits, tx, epochs=3, checkpoint_dir=tmp_path, **options)
    chex.assert_trees_all_equal(resumed.state, straight.state)
    chex.assert_trees_all_equal(resumed.history, straight.history)
    assert np.isfinite(straight.history["probe/loss"][::4]).all()


def test_a_second_nnx_fit_compiles_nothing(digits):
    tx = optim.get_optimizer("sgd", 0.1)
    options = dict(epochs=1, batch_size=128, progress=False)
    train.fit(NNXMLP(rngs=nnx.Rngs(0)), digits, tx, seed=0, **options)
    with count_compiles() as compiles:
        train.fit(NNXMLP(rngs=nnx.Rngs(5)), digits, tx, seed=1, **options)
    assert compiles.count == 0


# ----------------------------------------------------------------------------- analysis


TWINS = [(LinenMLP, NNXMLP, MLP_NAMES), (LinenCNN, NNXCNN, CNN_NAMES)]


@pytest.fixture(scope="module", params=TWINS, ids=["mlp", "cnn_batchnorm_dropout"])
def trained_twins(digits, request):
    """The Linen twin trained one epoch, and both twins' apply_fn and parameters at its weights."""
    linen_cls, nnx_cls, names = request.param
    tx = optim.get_optimizer("sgd", 0.05)
    linen_start, _ = _twin_states(linen_cls(), nnx_cls, names, tx, digits.x_train)
    result = train.fit(linen_cls(), digits, tx, initial_state=linen_start, epochs=1, batch_size=64, progress=False)
    linen_state = result.state.model_state
    nnx_state = {"batch_stats": {"nnx": _to_nnx(linen_state["batch_stats"], names)}} if linen_state else {}
    return (linen_cls(), train.make_apply_fn(linen_cls(), linen_state), result.state.params, linen_state,
            nnx_cls, train.make_apply_fn(nnx_cls, nnx_state), _to_nnx(result.state.params, names), nnx_state, names)


def test_the_analysis_tools_agree_on_the_twins(digits, trained_twins):
    linen_model, linen_fn, linen_params, linen_state, nnx_model, nnx_fn, nnx_params, nnx_state, names = trained_twins
    batch = (digits.x_train[:128], digits.y_train[:128])
    x = digits.x_test[:6]
    np.testing.assert_allclose(nnx_fn(nnx_params, x), linen_fn(linen_params, x), rtol=1e-5, atol=1e-5)
    top = [curvature.hessian_top_eigenvalues(losses.make_loss_fn(f, "cross_entropy"), p, batch, num_steps=20,
                                             tol=None).eigenvalues[0]
           for f, p in ((linen_fn, linen_params), (nnx_fn, nnx_params))]
    np.testing.assert_allclose(top[1], top[0], rtol=1e-4)
    linen_directions = tuple(landscape.random_direction(jax.random.key(k), linen_params) for k in (3, 4))
    nnx_directions = tuple(_to_nnx(d, names) for d in linen_directions)
    grid = np.linspace(-0.5, 0.5, 3)
    surfaces = [landscape.surface(f, p, *d, batch, grid, grid)["loss"]
                for f, p, d in ((linen_fn, linen_params, linen_directions), (nnx_fn, nnx_params, nnx_directions))]
    np.testing.assert_allclose(surfaces[1], surfaces[0], rtol=1e-5)
    kernels = [ntk.empirical_ntk(f, p, x) for f, p in ((linen_fn, linen_params), (nnx_fn, nnx_params))]
    np.testing.assert_allclose(kernels[1], kernels[0], rtol=1e-4, atol=1e-4)
    if linen_state:  # BatchNorm statistics recomputed at the weights (Garipov et al.), as along a curve
        recomputed = [landscape.recompute_batch_stats(m, p, s, digits.x_train[:256], batch_size=64)["batch_stats"]
                      for m, p, s in ((linen_model, linen_params, linen_state), (nnx_model, nnx_params, nnx_state))]
        chex.assert_trees_all_close(recomputed[1]["nnx"], _to_nnx(recomputed[0], names), rtol=1e-4, atol=1e-5)


def test_an_nnx_instance_is_analysed_with_its_own_weights(digits):
    module = NNXMLP(rngs=nnx.Rngs(7))
    variables = nnx_variables(module)
    apply_fn = train.make_apply_fn(from_nnx(module), {k: v for k, v in variables.items() if k != "params"})
    np.testing.assert_allclose(apply_fn(variables["params"], digits.x_test[:4]), module(digits.x_test[:4]),
                               rtol=1e-6)


# ----------------------------------------------------------------------------- errors


class NeedsWidth(nnx.Module):
    def __init__(self, width: int, *, rngs: nnx.Rngs):
        self.layer = nnx.Linear(64, width, rngs=rngs)

    def __call__(self, x):
        return self.layer(x)


class NeedsMask(nnx.Module):
    def __init__(self, *, rngs: nnx.Rngs):
        self.layer = nnx.Linear(64, 10, rngs=rngs)

    def __call__(self, x, mask):
        return self.layer(x * mask)


def test_modules_the_adapter_cannot_drive_fail_naming_them(digits):
    flat = data.Dataset(digits.x_train.reshape(-1, 64), digits.y_train, digits.x_test.reshape(-1, 64), digits.y_test,
                        10, "flat")
    tx = optim.get_optimizer("sgd", 0.1)
    with pytest.raises(TypeError, match=r"NeedsWidth.*functools.partial\(NeedsWidth"):
        train.fit(NeedsWidth(10, rngs=nnx.Rngs(0)), flat, tx, epochs=1, progress=False)
    with pytest.raises(TypeError, match=r"NeedsMask.*__call__\(self, x, mask\)"):
        train.fit(NeedsMask, flat, tx, epochs=1, progress=False)
