"""Tests of jaxdl.models.resnet: the paper's parameter counts, BatchNorm train/eval behaviour
against normalisation by hand, SkipInit blocks as identities, and a tiny jaxdl.train.fit."""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jaxdl import train
from jaxdl.data import Dataset
from jaxdl.models import get_model
from jaxdl.core import meshes

TINY = dict(depth=8, width_multiplier=0.25, num_outputs=3, shortcut="padding")  # channels 4, 8, 16


def _count(tree):
    return sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(tree))


@pytest.mark.parametrize("depth, millions", [(20, 0.27), (32, 0.46), (44, 0.66), (56, 0.85)])
def test_parameter_counts_match_he_et_al_table_6(depth, millions):
    # He et al. 2015, Table 6 (CIFAR-10, option A shortcuts): ResNet-20 0.27M ... ResNet-56 0.85M.
    model = get_model("resnet", depth=depth, shortcut="padding")
    variables = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 32, 32, 3)))
    assert round(_count(variables["params"]) / 1e6, 2) == millions
    # Weighted layers: 6n + 1 3x3 convs and one dense layer.
    kernels = [leaf.shape for leaf in jax.tree.leaves(variables["params"]) if leaf.ndim >= 2]
    assert len(kernels) == depth and sum(len(k) == 4 for k in kernels) == depth - 1
    assert set(variables) == {"params", "batch_stats"}


def test_resnet20_parameter_count_by_hand():
    n = 3
    convs = 3 * 3 * (3 * 16 + (2 * n) * 16 * 16 + (16 * 32 + (2 * n - 1) * 32 * 32) + (32 * 64 + (2 * n - 1) * 64 * 64))
    norms = 2 * (16 + (2 * n) * (16 + 32 + 64))
    dense = 64 * 10 + 10
    model = get_model("resnet", shortcut="padding")
    params = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 32, 32, 3)))["params"]
    assert _count(params) == convs + norms + dense == 269_722


def _random_variables(model, x, seed=0):
    """Variables of the model's structure with random params and random running statistics."""
    shapes = jax.eval_shape(model.init, jax.random.key(0), x)
    rng = np.random.default_rng(seed)
    draw = {"mean": lambda s: rng.normal(size=s), "var": lambda s: rng.uniform(0.5, 2.0, size=s)}
    variables = {
        "params": jax.tree.map(lambda v: rng.normal(size=v.shape) * 0.3, shapes["params"]),
        "batch_stats": jax.tree.map_with_path(lambda path, v: draw[path[-1].key](v.shape), shapes["batch_stats"]),
    }
    return jax.tree.map(lambda v: np.asarray(v, np.float32), variables)


@pytest.fixture(scope="module")
def tiny():
    model = get_model("resnet", skip_init=True, **TINY)
    x = np.random.default_rng(1).normal(size=(6, 8, 8, 3)).astype(np.float32)
    return model, x, _random_variables(model, x)


@functools.partial(jax.jit, static_argnums=(0, 3))
def _apply_capturing(model, variables, x, train):
    mutable = ["batch_stats", "intermediates"] if train else ["intermediates"]
    return model.apply(variables, x, train=train, capture_intermediates=True, mutable=mutable)


def test_eval_mode_normalises_with_the_running_statistics(tiny):
    model, x, variables = tiny
    outputs, state = _apply_capturing(model, variables, x, False)
    captured = state["intermediates"]
    conv = np.asarray(captured["stem_conv"]["__call__"][0], np.float64)
    stats, p = variables["batch_stats"]["stem_norm"], variables["params"]["stem_norm"]
    expected = (conv - stats["mean"]) / np.sqrt(stats["var"] + 1e-5) * p["scale"] + p["bias"]
    np.testing.assert_allclose(captured["stem_norm"]["__call__"][0], expected, rtol=1e-4, atol=1e-4)
    # Each example's output does not depend on the rest of the batch.
    alone, _ = _apply_capturing(model, variables, x[:1], False)
    np.testing.assert_allclose(alone, outputs[:1], rtol=1e-4, atol=1e-5)


def test_train_mode_normalises_by_the_batch_and_updates_the_running_averages(tiny):
    model, x, variables = tiny
    outputs, state = _apply_capturing(model, variables, x, True)
    conv = np.asarray(state["intermediates"]["stem_conv"]["__call__"][0], np.float64)
    mean, var = conv.mean(axis=(0, 1, 2)), conv.var(axis=(0, 1, 2))
    old, p = variables["batch_stats"]["stem_norm"], variables["params"]["stem_norm"]
    expected = (conv - mean) / np.sqrt(var + 1e-5) * p["scale"] + p["bias"]
    np.testing.assert_allclose(state["intermediates"]["stem_norm"]["__call__"][0], expected, rtol=1e-4, atol=1e-4)
    new = state["batch_stats"]["stem_norm"]
    np.testing.assert_allclose(new["mean"], 0.9 * old["mean"] + 0.1 * mean, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(new["var"], 0.9 * old["var"] + 0.1 * var, rtol=1e-4, atol=1e-5)
    # Batch statistics couple the examples: the first two alone give different outputs.
    alone, _ = _apply_capturing(model, variables, x[:2], True)
    assert np.abs(np.asarray(alone) - np.asarray(outputs[:2])).max() > 1e-3


def test_skip_init_blocks_with_zero_scale_are_the_identity(tiny):
    model, x, variables = tiny
    params = dict(variables["params"])
    params["stage_0_block_0"] = {**params["stage_0_block_0"], "residual_scale": np.float32(0.0)}
    _, state = _apply_capturing(model, {**variables, "params": params}, x, False)
    captured = state["intermediates"]
    block_input = np.maximum(captured["stem_norm"]["__call__"][0], 0.0)
    np.testing.assert_array_equal(captured["stage_0_block_0"]["__call__"][0], block_input)
    # With its random non-zero scale, the same block does change its input.
    _, state = _apply_capturing(model, variables, x, False)
    assert np.abs(np.asarray(state["intermediates"]["stage_0_block_0"]["__call__"][0]) - block_input).max() > 1e-3


def test_norm_none_has_no_batch_stats_and_biased_convs():
    model = get_model("resnet", norm="none", **TINY)
    variables = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 8, 8, 3)))
    assert set(variables) == {"params"}
    assert "bias" in variables["params"]["stem_conv"]


def test_fit_one_epoch_carries_and_updates_batch_stats():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(40, 8, 8, 3)).astype(np.float32)
    y = rng.integers(0, 3, 40).astype(np.int32)
    data = Dataset(x[:32], y[:32], x[32:], y[32:], 3, "random")
    model = get_model("resnet", skip_init=True, **TINY)
    tx = optax.sgd(0.05)
    # fit's own initial state (seed 0), with fit's placement so the compiled init is shared.
    init_keys, _ = train.seed_streams(np.asarray([0], np.uint32))
    example = jax.device_put(data.x_train, NamedSharding(meshes.data_mesh(), P()))[:1]
    initial = train.init_state(model, tx, example, init_keys[0])
    scales = [v["residual_scale"] for k, v in initial.params.items() if k.startswith("stage")]
    assert len(scales) == 3 and not np.any(scales)  # SkipInit: every block starts as the identity
    for path, stat in jax.tree.leaves_with_path(initial.model_state["batch_stats"]):
        np.testing.assert_array_equal(stat, 0.0 if path[-1].key == "mean" else 1.0)

    result = train.fit(model, data, tx, epochs=1, batch_size=16, progress=False)
    state = result.state
    assert set(state.model_state) == {"batch_stats"}
    for before, after in zip(jax.tree.leaves(initial.model_state), jax.tree.leaves(state.model_state)):
        assert np.abs(np.asarray(after) - np.asarray(before)).max() > 1e-4
    assert all(np.isfinite(v).all() for v in result.history.values())
    # evaluate() runs in eval mode with the stored statistics: the same as applying them by hand.
    logits = jax.jit(model.apply)({"params": state.params, **state.model_state}, data.x_test)
    expected = optax.softmax_cross_entropy_with_integer_labels(logits, data.y_test).mean()
    np.testing.assert_allclose(result.history["test_loss"][-1], expected, rtol=1e-4)


def test_bad_depth_and_options_raise_naming_the_field():
    x = jnp.zeros((1, 8, 8, 3))
    for hparams, field in [({"depth": 18}, "depth"), ({"norm": "layer"}, "norm"), ({"shortcut": "conv"}, "shortcut"),
                           ({"conv_implementation": "fft"}, "conv_implementation")]:
        with pytest.raises(ValueError, match=field):
            jax.eval_shape(get_model("resnet", **hparams).init, jax.random.key(0), x)


@pytest.mark.parametrize("shortcut", ["projection", "padding"])
def test_patch_convolutions_give_the_xla_resnet(shortcut):
    # The same parameters and the same function in train mode (batch statistics, updated
    # averages), with PatchConv (the CPU default, 'auto') or flax.linen.Conv: stride-2 'SAME'
    # convolutions on an odd and an even size included.
    hparams = dict(TINY, shortcut=shortcut)
    x = np.random.default_rng(7).normal(size=(4, 9, 10, 3)).astype(np.float32)
    xla, patches = (get_model("resnet", conv_implementation=impl, **hparams) for impl in ("xla", "patches"))
    variables = _random_variables(xla, x)
    assert jax.tree.structure(variables) == jax.tree.structure(_random_variables(patches, x))
    expected, expected_state = _apply_capturing(xla, variables, x, True)
    got, state = _apply_capturing(patches, variables, x, True)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    for a, b in zip(jax.tree.leaves(state["batch_stats"]), jax.tree.leaves(expected_state["batch_stats"])):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    if jax.default_backend() == "cpu":
        auto, _ = _apply_capturing(get_model("resnet", **hparams), variables, x, True)
        np.testing.assert_array_equal(auto, got)


@pytest.mark.parametrize("name, shape", [("resnet", (3, 8, 8, 2)), ("resnet1d", (3, 16, 2))])
def test_plain_nets_have_the_parameters_of_padding_shortcuts_and_no_identity_path(name, shape):
    x = np.random.default_rng(7).normal(size=shape).astype(np.float32)
    nets = {s: get_model(name, **{**TINY, "shortcut": s, "norm": "none"}) for s in ("padding", "none", "projection")}
    variables = {s: net.init(jax.random.key(0), x) for s, net in nets.items()}
    counts = {s: _count(v["params"]) for s, v in variables.items()}
    assert counts["none"] == counts["padding"] < counts["projection"]
    # The same weights: zero one block's second conv (kernel and bias). With shortcuts the block
    # passes its input on (relu of a non-negative input is itself), so the output still depends on
    # x; without them nothing reaches the read-out from x.
    params = variables["padding"]["params"]
    cut = jax.tree.map(jnp.zeros_like, params["stage_1_block_0"]["conv_1"])
    params = {**params, "stage_1_block_0": {**params["stage_1_block_0"], "conv_1": cut}}
    outputs = {s: np.asarray(nets[s].apply({"params": params}, x)) for s in ("padding", "none")}
    assert np.ptp(outputs["padding"], axis=0).max() > 1e-3
    np.testing.assert_allclose(np.ptp(outputs["none"], axis=0), 0.0, atol=1e-6)
    # Intact, the plain net is the padding net with every skip path removed: blocks differ.
    full = {s: np.asarray(nets[s].apply({"params": variables["padding"]["params"]}, x)) for s in ("padding", "none")}
    assert not np.allclose(full["padding"], full["none"])


def test_resnet1d_is_the_resnet_on_a_sequence_with_width_three_kernels():
    model = get_model("resnet1d", **TINY)
    x = np.random.default_rng(8).normal(size=(2, 40)).astype(np.float32)  # MNIST-1D: (B, 40), one channel added
    variables = model.init(jax.random.key(0), x)
    assert variables["params"]["stem_conv"]["kernel"].shape == (3, 1, 4)
    out, _ = model.apply(variables, x, train=True, mutable=["batch_stats"])
    assert out.shape == (2, 3)
    two_d = jax.eval_shape(get_model("resnet", **TINY).init, jax.random.key(0), jnp.zeros((1, 8, 8, 1)))
    # The same layers, each 2-D kernel 3x3 against 3: a third of the conv weights.
    conv = lambda tree: sum(int(np.prod(k.shape)) for k in jax.tree.leaves(tree) if k.ndim >= 3)
    assert 3 * conv(variables["params"]) == conv(two_d["params"])
    with pytest.raises(ValueError, match="sequences"):
        jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 8, 8, 1)))


def test_plain_nets_refuse_skip_init():
    with pytest.raises(ValueError, match="skip_init"):
        jax.eval_shape(get_model("resnet", **{**TINY, "shortcut": "none", "skip_init": True}).init,
                       jax.random.key(0), jnp.zeros((1, 8, 8, 1)))
