"""Tests of jaxdl.models.recurrent: every cell against the course's equations written out in
NumPy (Elman; LSTM with peepholes, Graves 2013; GRU, Chung et al. 2014), stacking, read-outs,
and the spectral radius of the initial recurrent matrices."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdl.models import get_model
from helpers import random_params

HIDDEN, LENGTH, BATCH = 3, 4, 2


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _numpy_layer(cell, p, x_BxLxD, peepholes=True):
    """The hidden states ``h_BxLxH`` of one layer, one step at a time, with every gate's matrix
    cut out of the stored kernels by name: W_x* from ``input_kernel``, W_h* from ``recurrent_kernel``."""
    p = {k: np.asarray(v, np.float64) for k, v in p.items()}
    gates = {"rnn": ["h"], "lstm": ["i", "f", "c", "o"], "gru": ["z", "r", "h"]}[cell]
    W = {g: p["input_kernel"][:, k * HIDDEN:(k + 1) * HIDDEN] for k, g in enumerate(gates)}
    U = {g: p["recurrent_kernel"][:, k * HIDDEN:(k + 1) * HIDDEN] for k, g in enumerate(gates)}
    b = {g: p["bias"][k * HIDDEN:(k + 1) * HIDDEN] for k, g in enumerate(gates)}
    w_ci, w_cf, w_co = p["peephole"] if peepholes else np.zeros((3, HIDDEN))
    h = np.zeros((x_BxLxD.shape[0], HIDDEN))
    c = np.zeros_like(h)
    states = []
    for t in range(x_BxLxD.shape[1]):
        x = x_BxLxD[:, t]
        if cell == "rnn":
            h = np.tanh(x @ W["h"] + h @ U["h"] + b["h"])
        elif cell == "lstm":
            i = _sigmoid(x @ W["i"] + h @ U["i"] + w_ci * c + b["i"])
            f = _sigmoid(x @ W["f"] + h @ U["f"] + w_cf * c + b["f"])
            c = f * c + i * np.tanh(x @ W["c"] + h @ U["c"] + b["c"])
            o = _sigmoid(x @ W["o"] + h @ U["o"] + w_co * c + b["o"])
            h = o * np.tanh(c)
        else:
            z = _sigmoid(x @ W["z"] + h @ U["z"] + b["z"])
            r = _sigmoid(x @ W["r"] + h @ U["r"] + b["r"])
            candidate = np.tanh(x @ W["h"] + (r * h) @ U["h"] + b["h"])
            h = (1 - z) * h + z * candidate
        states.append(h)
    return np.stack(states, axis=1)


@pytest.mark.parametrize("name, hparams", [
    ("rnn", {}),
    ("lstm", {"peepholes": True}),
    ("lstm", {"peepholes": False}),
    ("gru", {}),
    ("gru", {"num_layers": 2}),
])
def test_every_state_matches_the_equations_written_out(name, hparams):
    model = get_model(name, hidden_size=HIDDEN, num_outputs=HIDDEN, readout="all", **hparams)
    x = np.random.default_rng(1).normal(size=(BATCH, LENGTH, 2)).astype(np.float32)
    params = random_params(model, x, scale=0.7)
    peepholes = name == "lstm" and hparams.get("peepholes", True)
    assert ("peephole" in params["layer_0"]) == peepholes
    # An identity read-out without bias exposes the top layer's states.
    params["output"] = {"kernel": np.eye(HIDDEN, dtype=np.float32), "bias": np.zeros(HIDDEN, np.float32)}
    states = jax.jit(model.apply)({"params": params}, x)

    expected = x.astype(np.float64)
    for layer in range(hparams.get("num_layers", 1)):
        expected = _numpy_layer(name, params[f"layer_{layer}"], expected, peepholes)
    assert states.shape == (BATCH, LENGTH, HIDDEN)
    np.testing.assert_allclose(states, expected, rtol=1e-5, atol=1e-5)


def test_last_readout_reads_the_final_state_and_sequences_get_a_feature_axis():
    all_model = get_model("lstm", hidden_size=HIDDEN, num_outputs=2, readout="all")
    last_model = get_model("lstm", hidden_size=HIDDEN, num_outputs=2, readout="last")
    x = np.random.default_rng(2).normal(size=(BATCH, LENGTH)).astype(np.float32)
    params = random_params(all_model, x, scale=0.7)

    @jax.jit
    def outputs(params):
        return (all_model.apply({"params": params}, x), last_model.apply({"params": params}, x),
                last_model.apply({"params": params}, x[..., None]))

    every, last, with_axis = outputs(params)
    assert every.shape == (BATCH, LENGTH, 2) and last.shape == (BATCH, 2)
    np.testing.assert_allclose(last, every[:, -1], rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(with_axis, last)


@pytest.mark.parametrize("name", ["gru", "lstm"])
def test_bidirectional_layers_run_the_equations_both_ways_and_read_out(name):
    hparams = dict(hidden_size=HIDDEN, bidirectional=True, num_layers=2)
    model = get_model(name, num_outputs=2 * HIDDEN, readout="all", **hparams)
    x = np.random.default_rng(3).normal(size=(BATCH, LENGTH, 2)).astype(np.float32)
    params = random_params(model, x, scale=0.7)
    params["output"] = {"kernel": np.eye(2 * HIDDEN, dtype=np.float32), "bias": np.zeros(2 * HIDDEN, np.float32)}
    states = jax.jit(model.apply)({"params": params}, x)

    expected = x.astype(np.float64)
    for layer in range(2):
        peepholes = name == "lstm"
        forward = _numpy_layer(name, params[f"layer_{layer}"], expected, peepholes)
        backward = _numpy_layer(name, params[f"layer_{layer}_backward"], expected[:, ::-1], peepholes)[:, ::-1]
        expected = np.concatenate([forward, backward], axis=-1)
    assert states.shape == (BATCH, LENGTH, 2 * HIDDEN)
    np.testing.assert_allclose(states, expected, rtol=1e-5, atol=1e-5)

    # The same parameters under the other read-outs: a dense layer on the flattened states,
    # and on the forward layer's last state beside the backward layer's first.
    flatten = get_model(name, num_outputs=3, readout="flatten", **hparams)
    last = get_model(name, num_outputs=3, readout="last", **hparams)
    rng = np.random.default_rng(4)
    flat_params = dict(params, output={"kernel": rng.normal(size=(LENGTH * 2 * HIDDEN, 3)).astype(np.float32),
                                       "bias": np.zeros(3, np.float32)})
    last_params = dict(params, output={"kernel": rng.normal(size=(2 * HIDDEN, 3)).astype(np.float32),
                                       "bias": np.zeros(3, np.float32)})
    np.testing.assert_allclose(jax.jit(flatten.apply)({"params": flat_params}, x),
                               expected.reshape(BATCH, -1) @ flat_params["output"]["kernel"], rtol=1e-4, atol=1e-4)
    last_states = np.concatenate([forward[:, -1], backward[:, 0]], axis=-1)
    np.testing.assert_allclose(jax.jit(last.apply)({"params": last_params}, x),
                               last_states @ last_params["output"]["kernel"], rtol=1e-4, atol=1e-4)


@pytest.fixture(scope="module")
def recurrent_kernels():
    """Recurrent kernels of every (cell, init, radius) case, initialised in one program."""
    width = 24
    cases = {
        ("rnn", "gaussian", 0.9): 1, ("rnn", "gaussian", 1.7): 1, ("lstm", "gaussian", 1.2): 4,
        ("rnn", "orthogonal", 1.1): 1, ("gru", "orthogonal", 0.5): 3,
    }
    models = {case: get_model(case[0], hidden_size=width, recurrent_init=case[1], spectral_radius=case[2])
              for case in cases}

    @jax.jit
    def init_all(key):
        return {case: model.init(jax.random.fold_in(key, i), jnp.zeros((1, 2)))["params"]["layer_0"]["recurrent_kernel"]
                for i, (case, model) in enumerate(models.items())}

    kernels = jax.tree.map(np.asarray, init_all(jax.random.key(3)))
    return {case: (kernels[case], blocks, width) for case, blocks in cases.items()}


@pytest.mark.parametrize("case", [
    ("rnn", "gaussian", 0.9), ("rnn", "gaussian", 1.7), ("lstm", "gaussian", 1.2),
    ("rnn", "orthogonal", 1.1), ("gru", "orthogonal", 0.5),
])
def test_initial_recurrent_matrices_have_the_requested_spectral_radius(recurrent_kernels, case):
    kernel, blocks, width = recurrent_kernels[case]
    radius = case[2]
    assert kernel.shape == (width, blocks * width)
    for k in range(blocks):
        block = kernel[:, k * width:(k + 1) * width].astype(np.float64)
        eigenvalues = np.abs(np.linalg.eigvals(block))
        np.testing.assert_allclose(eigenvalues.max(), radius, rtol=0, atol=1e-5)
        if case[1] == "orthogonal":  # radius * Q: every eigenvalue on the circle, Q^T Q = I
            np.testing.assert_allclose(eigenvalues, radius, atol=1e-5)
            np.testing.assert_allclose(block.T @ block, radius**2 * np.eye(width), atol=1e-5)
        else:  # a Gaussian matrix, not an orthogonal one: its eigenvalues fill the disc
            assert eigenvalues.min() < 0.8 * radius
    # The gate blocks are drawn independently.
    if blocks > 1:
        assert not np.allclose(kernel[:, :width], kernel[:, width:2 * width])


def test_bad_options_raise_naming_the_field():
    x = jnp.zeros((1, 5))
    for hparams, field in [({"recurrent_init": "identity"}, "recurrent_init"),
                           ({"spectral_radius": 0.0}, "spectral_radius"),
                           ({"readout": "mean"}, "readout"), ({"num_layers": 0}, "num_layers")]:
        with pytest.raises(ValueError, match=field):
            jax.eval_shape(get_model("rnn", **hparams).init, jax.random.key(0), x)
    with pytest.raises(ValueError, match="sequences"):
        jax.eval_shape(get_model("gru").init, jax.random.key(0), jnp.zeros((1, 4, 4, 1)))
