"""Tests of jaxdl.analysis.adversarial: FGSM against the input gradient of a linear softmax model written out
by hand, against per-example ``jax.grad`` on a zoo MLP, the attack over an eps grid against a
brute-force loop, adversarial training against a train step written out, bad inputs, compile once."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import count_compiles, random_params

from jaxdl import train
from jaxdl.analysis import adversarial
from jaxdl.train import losses, optim
from jaxdl.models import get_model

RNG = np.random.default_rng(0)
X_BxD = RNG.normal(size=(9, 5)).astype(np.float32)
LABELS_B = (np.arange(9) % 3).astype(np.int32)
W_DxC = RNG.normal(size=(5, 3)).astype(np.float32)
B_C = RNG.normal(size=3).astype(np.float32)


def _linear(params, x):
    return x @ params["w"] + params["b"]


LINEAR_PARAMS = {"w": W_DxC, "b": B_C}


def _linear_input_gradients_by_hand(x_BxD, labels_B):
    """d/dx of -log softmax(W^T x + b)[y] is W (p - onehot(y)): rows (p - onehot) W^T, float64."""
    logits = x_BxD.astype(np.float64) @ W_DxC + B_C
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    return (p - np.eye(3)[labels_B]) @ W_DxC.T.astype(np.float64)


def _mlp():
    model = get_model("mlp", widths=(7,), activation="tanh", num_outputs=3)
    return model, random_params(model, X_BxD[:1], scale=0.7)


def test_fgsm_on_a_linear_model_matches_the_gradient_by_hand():
    by_hand = _linear_input_gradients_by_hand(X_BxD, LABELS_B)
    assert np.abs(by_hand).min() > 1e-4  # no sign is ambiguous
    gradients = adversarial.input_gradients(_linear, LINEAR_PARAMS, X_BxD, LABELS_B)
    np.testing.assert_allclose(gradients, by_hand, rtol=1e-5, atol=1e-6)
    x_adv = adversarial.fgsm(_linear, LINEAR_PARAMS, X_BxD, LABELS_B, 0.1)
    np.testing.assert_allclose(x_adv, X_BxD + 0.1 * np.sign(by_hand), atol=1e-6)
    # The perturbation is a steepest ascent under the max-norm: each example's loss rises.
    before = losses.cross_entropy_per_example(_linear(LINEAR_PARAMS, X_BxD), LABELS_B)
    after = losses.cross_entropy_per_example(_linear(LINEAR_PARAMS, x_adv), LABELS_B)
    assert np.all(np.asarray(after) > np.asarray(before))


@pytest.mark.parametrize("loss_name", ["cross_entropy", "mse"])
def test_input_gradients_of_the_zoo_mlp_match_jax_grad_per_example(loss_name):
    model, params = _mlp()
    apply_fn = train.make_apply_fn(model)
    y = LABELS_B if loss_name == "cross_entropy" else RNG.normal(size=(9, 3)).astype(np.float32)
    per_example = losses.PER_EXAMPLE_LOSSES[loss_name]
    # One example at a time (vmap of the gradient of a single example's loss), not one summed loss.
    single = lambda xb, yb: per_example(apply_fn(params, xb[None]), yb[None])[0]
    reference = np.asarray(jax.jit(jax.vmap(jax.grad(single)))(X_BxD, y))
    gradients = adversarial.input_gradients(apply_fn, params, X_BxD, y, loss_name)
    np.testing.assert_allclose(gradients, reference, rtol=1e-5, atol=1e-7)
    x_adv = adversarial.fgsm(apply_fn, params, X_BxD, y, 0.05, loss_name)
    np.testing.assert_allclose(x_adv, X_BxD + 0.05 * np.sign(reference), atol=1e-6)


def test_zero_eps_is_the_identity_and_clipping_bounds_the_result():
    model, params = _mlp()
    apply_fn = train.make_apply_fn(model)
    x = np.clip(X_BxD, -1, 1)
    np.testing.assert_array_equal(adversarial.fgsm(apply_fn, params, x, LABELS_B, 0.0), x)
    np.testing.assert_array_equal(adversarial.fgsm(apply_fn, params, x, LABELS_B, 0.0, clip=(-1, 1)), x)
    sign = np.sign(adversarial.input_gradients(apply_fn, params, x, LABELS_B))
    clipped = np.asarray(adversarial.fgsm(apply_fn, params, x, LABELS_B, 0.5, clip=(-1.0, 1.0)))
    np.testing.assert_allclose(clipped, np.clip(x + 0.5 * sign, -1, 1), atol=1e-6)
    assert clipped.min() >= -1 and clipped.max() <= 1
    assert np.any(np.abs(x + 0.5 * sign) > 1)  # the clip did bite


def test_accuracy_under_attack_matches_a_loop_over_eps_and_examples():
    model, params = _mlp()
    apply_fn = train.make_apply_fn(model)
    eps_G = np.array([0.0, 0.1, 0.3, 1.0])
    # Examples in two chunks of 4 and a remainder of 1; eps one at a time, or 3 together and 1.
    outs = [adversarial.accuracy_under_attack(apply_fn, params, (X_BxD, LABELS_B), eps_G, clip=(-2.0, 2.0),
                                              chunk_size=4, eps_per_chunk=eps_per_chunk) for eps_per_chunk in (1, 3)]
    predict = jax.jit(apply_fn)
    for e, eps in enumerate(eps_G):
        x_adv = adversarial.fgsm(apply_fn, params, X_BxD, LABELS_B, eps, clip=(-2.0, 2.0))
        logits = predict(params, x_adv)
        for out in outs:
            np.testing.assert_allclose(out["accuracy"][e], np.mean(np.argmax(logits, 1) == LABELS_B), atol=1e-6)
            np.testing.assert_allclose(out["loss"][e], losses.cross_entropy(logits, LABELS_B), rtol=1e-5)
    assert outs[0]["loss"][-1] > outs[0]["loss"][0]


def test_critical_eps_interpolates_the_first_crossing():
    eps_G = np.array([0.0, 0.1, 0.2, 0.4])
    # Half of 0.8 is 0.4, reached between 0.1 (0.6) and 0.2 (0.3): 0.1 + (0.6 - 0.4) / 0.3 * 0.1.
    assert adversarial.critical_eps(eps_G, [0.8, 0.6, 0.3, 0.5]) == pytest.approx(0.1 + 0.2 / 0.3 * 0.1)
    assert adversarial.critical_eps(eps_G, [0.8, 0.7, 0.6, 0.5]) == np.inf
    assert adversarial.critical_eps(eps_G, [0.8, 0.7, 0.6, 0.5], fraction=0.75) == pytest.approx(0.2)
    with pytest.raises(ValueError, match="eps_G"):
        adversarial.critical_eps([0.1, 0.2], [0.5, 0.4])


def test_adversarial_training_step_descends_the_mixed_objective():
    # One SGD step with FGSMRegularizer(alpha=1/2) moves params by -lr (grad L(x) + grad L(x_adv)),
    # x_adv held constant: (1 / alpha) times the gradient of the paper's 0.5 L(x) + 0.5 L(x_adv).
    model, params = _mlp()
    apply_fn = train.make_apply_fn(model)
    eps, lr = 0.2, 0.1
    regularizer = adversarial.FGSMRegularizer(eps, alpha=0.5, clip=(-3.0, 3.0))
    tx = optim.get_optimizer("sgd", lr)
    state = train.TrainState(step=jnp.zeros((), jnp.int32), params=params, model_state={}, opt_state=tx.init(params),
                             rng=jax.random.key_data(jax.random.key(0)))
    new_state, metrics = jax.jit(train.make_train_step(model, tx, regularizer=regularizer))(state, (X_BxD, LABELS_B))
    x_adv = adversarial.fgsm(apply_fn, params, X_BxD, LABELS_B, eps, clip=(-3.0, 3.0))
    loss_at = lambda x: (lambda p: losses.cross_entropy(apply_fn(p, x), LABELS_B))
    expected = optax.apply_updates(params, jax.tree.map(lambda a, b: -lr * (a + b), jax.grad(loss_at(X_BxD))(params),
                                                        jax.grad(loss_at(x_adv))(params)))
    for got, want in zip(jax.tree.leaves(new_state.params), jax.tree.leaves(expected)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(metrics["regularizer"], loss_at(x_adv)(params), rtol=1e-5)


def test_bad_inputs_name_the_field():
    model, params = _mlp()
    apply_fn = train.make_apply_fn(model)
    with pytest.raises(ValueError, match=r"eps must be a number >= 0"):
        adversarial.fgsm(apply_fn, params, X_BxD, LABELS_B, -0.1)
    with pytest.raises(ValueError, match="eps"):
        adversarial.fgsm(apply_fn, params, X_BxD, LABELS_B, np.array([0.1, 0.2]))
    with pytest.raises(ValueError, match="eps"):
        adversarial.fgsm(apply_fn, params, X_BxD, LABELS_B, float("nan"))
    with pytest.raises(ValueError, match="clip"):
        adversarial.fgsm(apply_fn, params, X_BxD, LABELS_B, 0.1, clip=(1.0, 0.0))
    with pytest.raises(ValueError, match="loss_name"):
        adversarial.fgsm(apply_fn, params, X_BxD, LABELS_B, 0.1, loss_name="hinge")
    with pytest.raises(ValueError, match="leading example axis"):
        adversarial.input_gradients(apply_fn, params, X_BxD, LABELS_B[:4])
    with pytest.raises(ValueError, match="eps_G"):
        adversarial.accuracy_under_attack(apply_fn, params, (X_BxD, LABELS_B), [0.0, -0.1])
    with pytest.raises(ValueError, match="chunk_size"):
        adversarial.accuracy_under_attack(apply_fn, params, (X_BxD, LABELS_B), [0.0], chunk_size=0)
    with pytest.raises(ValueError, match="eps_per_chunk"):
        adversarial.accuracy_under_attack(apply_fn, params, (X_BxD, LABELS_B), [0.0], eps_per_chunk=0)
    with pytest.raises(ValueError, match="eps"):
        adversarial.FGSMRegularizer(-1.0)
    with pytest.raises(ValueError, match="alpha"):
        adversarial.FGSMRegularizer(0.1, alpha=0.0)


def test_a_second_call_compiles_nothing():
    model, params = _mlp()
    other = random_params(model, X_BxD[:1], seed=3)
    batch = (X_BxD[:7], LABELS_B[:7])  # shapes no other test uses: the first calls must compile
    with count_compiles() as first:
        adversarial.accuracy_under_attack(train.make_apply_fn(model), params, batch, [0.0, 0.1, 0.2], clip=(-1.0, 1.0))
        adversarial.fgsm(train.make_apply_fn(model), params, *batch, 0.1, clip=(-1.0, 1.0))
    with count_compiles() as again:
        # The same model wrapped again, other parameters, eps values and clip bounds.
        out = adversarial.accuracy_under_attack(train.make_apply_fn(model), other, batch, [0.0, 0.3, 0.5],
                                                clip=(-2.0, 2.0))
        x_adv = adversarial.fgsm(train.make_apply_fn(model), other, *batch, 0.4, clip=(-2.0, 2.0))
        jax.block_until_ready((out, x_adv))
    assert first.count > 0, "the first calls compiled nothing: the counter is not counting"
    assert again.count == 0
