"""Tests of jaxdl.train.optim: each optimizer's steps against its update rule written out in NumPy."""
from __future__ import annotations

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxdl.train import optim
from helpers import flat

LR = 0.1
NUM_STEPS = 3
# Quadratic L(theta) = sum(0.5 a theta^2 - c theta), gradient a theta - c, on a two-leaf pytree
# whose leaves (in jax.tree.leaves order: 'm' then 'w') concatenate to a 7-vector.
CURVATURE = np.array([1.0, 2.0, 0.5, 3.0, 1.5, 0.8, 2.5])
CENTRE = np.array([0.3, -1.0, 2.0, 0.5, -0.7, 1.2, 0.1])
THETA0 = np.array([1.0, -2.0, 0.5, 1.5, -1.0, 2.0, -0.5])


def _to_tree(vector):
    vector = jnp.asarray(vector, jnp.float32)
    return {"m": vector[:4].reshape(2, 2), "w": vector[4:]}


def _loss(params):
    a, c = _to_tree(CURVATURE), _to_tree(CENTRE)
    terms = jax.tree.map(lambda t, ai, ci: jnp.sum(0.5 * ai * t**2 - ci * t), params, a, c)
    return sum(jax.tree.leaves(terms))


def _run(optimizer, num_steps=NUM_STEPS, theta0=THETA0):
    """``num_steps`` steps of ``optimizer`` on the quadratic, as one jitted program."""

    @jax.jit
    def run(params):
        state = optimizer.init(params)
        for _ in range(num_steps):
            grads = jax.grad(_loss)(params)
            updates, state = optimizer.update(grads, state, params)
            params = optax.apply_updates(params, updates)
        return params

    return flat(run(_to_tree(theta0)))


# ----------------------------------------------------------------------------- hand-written rules


def _hand(name, num_steps=NUM_STEPS, lr=LR, momentum=0.9, decay=0.9, b1=0.9, b2=0.999,
          eps=1e-2, weight_decay=0.1):
    theta = THETA0.copy()
    v = np.zeros_like(theta)  # momentum trace / Adam first moment
    s = np.zeros_like(theta)  # RMSprop / Adam second moment
    for t in range(1, num_steps + 1):
        g = CURVATURE * theta - CENTRE
        if name in ("gd", "sgd"):
            theta = theta - lr * g
        elif name == "momentum":  # optax trace: v = g + mu v
            v = g + momentum * v
            theta = theta - lr * v
        elif name == "nesterov":  # optax: v = g + mu v; step along g + mu v
            v = g + momentum * v
            theta = theta - lr * (g + momentum * v)
        elif name == "rmsprop":
            s = decay * s + (1 - decay) * g**2
            theta = theta - lr * g / np.sqrt(s + eps)
        elif name in ("adam", "adamw"):
            v = b1 * v + (1 - b1) * g
            s = b2 * s + (1 - b2) * g**2
            m_hat, s_hat = v / (1 - b1**t), s / (1 - b2**t)
            step = m_hat / (np.sqrt(s_hat) + eps)
            if name == "adamw":
                step = step + weight_decay * theta
            theta = theta - lr * step
        else:
            raise AssertionError(name)
    return theta


# eps = 1e-2 (not the default) so that where eps sits (inside or outside the root) is tested.
OPTIONS = dict(momentum=0.9, decay=0.9, b1=0.9, b2=0.999, eps=1e-2, weight_decay=0.1)


@pytest.mark.parametrize("name", optim.OPTIMIZERS)
def test_three_steps_match_the_hand_written_update_rule(name):
    got = _run(optim.get_optimizer(name, LR, **OPTIONS))
    expected = _hand(name, **OPTIONS)
    np.testing.assert_allclose(got, expected, rtol=2e-5, atol=1e-6)
    # The optimizer moved: a rule that ignores the gradient would fail here.
    assert np.abs(got - THETA0).max() > 1e-2


def test_rmsprop_and_adam_with_default_eps():
    for name in ("rmsprop", "adam"):
        got = _run(optim.get_optimizer(name, LR))
        np.testing.assert_allclose(got, _hand(name, eps=1e-8), rtol=2e-5, atol=1e-6)


def test_momentum_differs_from_nesterov_and_sgd():
    # Guards the reference itself: the rules really are different on this problem.
    assert not np.allclose(_hand("momentum"), _hand("nesterov"))
    assert not np.allclose(_hand("momentum"), _hand("sgd"))


# ----------------------------------------------------------------------------- clipping and L2


def _one_update(optimizer, grads, params):
    """The first update of ``optimizer`` for the given gradient, jitted."""

    @jax.jit
    def update(grads, params):
        return optimizer.update(grads, optimizer.init(params), params)[0]

    return update(grads, params)


def test_global_norm_clipping_rescales_to_threshold():
    # Leaf norms 3 and 4 are each below 4.5; the global norm 5 is above it.
    grads = {"x": jnp.array([3.0, 0.0]), "y": jnp.array([[0.0], [4.0]])}
    params = jax.tree.map(jnp.zeros_like, grads)
    sgd = optim.get_optimizer("sgd", 1.0, clip_norm=4.5)
    updates = _one_update(sgd, grads, params)
    expected = jax.tree.map(lambda g: -g * 4.5 / 5.0, grads)
    chex.assert_trees_all_close(updates, expected, rtol=1e-6)
    norm = np.linalg.norm(flat(updates))
    assert abs(norm - 4.5) < 1e-5


def test_global_norm_clipping_leaves_small_gradients_unchanged():
    grads = {"x": jnp.array([3.0, 0.0]), "y": jnp.array([[0.0], [4.0]])}
    params = jax.tree.map(jnp.zeros_like, grads)
    sgd = optim.get_optimizer("sgd", 1.0, clip_norm=6.0)
    updates = _one_update(sgd, grads, params)
    chex.assert_trees_all_close(updates, jax.tree.map(jnp.negative, grads), rtol=1e-7)


def test_l2_penalty_adds_two_gamma_theta_to_the_gradient():
    gamma = 0.05
    got = _run(optim.get_optimizer("sgd", LR, l2=gamma), num_steps=1)
    g = CURVATURE * THETA0 - CENTRE
    expected = THETA0 - LR * (g + 2 * gamma * THETA0)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)
    # Same as jax.grad of the penalised loss.
    penalised = jax.jit(jax.grad(lambda p: _loss(p) + gamma * sum(jnp.sum(x**2) for x in jax.tree.leaves(p))))
    np.testing.assert_allclose(got, THETA0 - LR * flat(penalised(_to_tree(THETA0))), rtol=1e-6)


# ----------------------------------------------------------------------------- schedules


def test_constant_schedule():
    schedule = optim.make_schedule(0.3)
    for step in (0, 1, 1000):
        assert np.isclose(float(schedule(step)), 0.3)


def test_cosine_schedule_closed_form():
    total = 40
    schedule = optim.make_schedule(0.5, "cosine", total_steps=total)
    assert np.isclose(float(schedule(0)), 0.5, rtol=1e-7)
    assert abs(float(schedule(total))) < 1e-7
    for step in (5, 20, 33):
        assert np.isclose(float(schedule(step)), 0.25 * (1 + math.cos(math.pi * step / total)), rtol=1e-5)


def test_step_schedule_decays_at_boundaries():
    schedule = optim.make_schedule(2.0, "step", total_steps=100, boundaries=(0.5, 0.75), decay_factor=0.1)
    values = {step: float(schedule(step)) for step in (0, 49, 50, 74, 75, 99)}
    np.testing.assert_allclose(
        [values[s] for s in (0, 49, 50, 74, 75, 99)], [2.0, 2.0, 0.2, 0.2, 0.02, 0.02], rtol=1e-6
    )


def test_linear_warmup_then_cosine():
    lr, warmup, total = 1.0, 4, 20
    schedule = optim.make_schedule(lr, "cosine", total_steps=total, warmup_steps=warmup)
    for step in range(warmup + 1):
        assert np.isclose(float(schedule(step)), lr * step / warmup, atol=1e-7)
    for step in range(warmup, total + 1):
        expected = 0.5 * lr * (1 + math.cos(math.pi * (step - warmup) / (total - warmup)))
        assert np.isclose(float(schedule(step)), expected, rtol=1e-5, atol=1e-7)


def test_linear_warmup_then_constant():
    schedule = optim.make_schedule(0.8, warmup_steps=8)
    np.testing.assert_allclose([float(schedule(s)) for s in (0, 2, 4, 8, 50)], [0.0, 0.2, 0.4, 0.8, 0.8], rtol=1e-6)


def test_optimizer_follows_its_schedule():
    # Constant gradient (a = 0): theta_k = theta_0 + c * sum_{i < k} lr_i, lr_i cosine over 4 steps.
    total = 4
    optimizer = optim.get_optimizer("sgd", LR, schedule="cosine", total_steps=total)
    params0 = _to_tree(THETA0)
    grads = _to_tree(-CENTRE)

    @jax.jit
    def run(params):
        state = optimizer.init(params)
        for _ in range(total):
            updates, state = optimizer.update(grads, state, params)
            params = optax.apply_updates(params, updates)
        return params

    rates = [0.5 * LR * (1 + math.cos(math.pi * i / total)) for i in range(total)]
    np.testing.assert_allclose(flat(run(params0)), THETA0 + CENTRE * sum(rates), rtol=1e-6)


def test_callable_learning_rate_is_used_as_is():
    optimizer = optim.get_optimizer("sgd", lambda step: 0.25)
    updates = _one_update(optimizer, {"x": jnp.array([4.0])}, {"x": jnp.array([0.0])})
    np.testing.assert_allclose(updates["x"], [-1.0])


# ----------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(name="sgd", learning_rate=0.0), "learning_rate"),
        (dict(name="sgd", learning_rate=-0.1), "learning_rate"),
        (dict(name="lbfgs", learning_rate=0.1), "lbfgs"),
        (dict(name="sgd", learning_rate=0.1, schedule="linear"), "schedule"),
        (dict(name="sgd", learning_rate=0.1, schedule="cosine"), "total_steps"),
        (dict(name="sgd", learning_rate=0.1, schedule="step", total_steps=0), "total_steps"),
        (dict(name="sgd", learning_rate=0.1, warmup_steps=-1), "warmup_steps"),
        (dict(name="sgd", learning_rate=0.1, l2=-1e-3), "l2"),
        (dict(name="sgd", learning_rate=0.1, clip_norm=0.0), "clip_norm"),
        (dict(name="sgd", learning_rate=0.1, clip_norm=-1.0), "clip_norm"),
        (dict(name="momentum", learning_rate=0.1, momentum=1.0), "momentum"),
    ],
)
def test_bad_inputs_raise_naming_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        optim.get_optimizer(**kwargs)


def test_make_schedule_validates_directly():
    with pytest.raises(ValueError, match="learning_rate"):
        optim.make_schedule(0.0)
    with pytest.raises(ValueError, match="total_steps"):
        optim.make_schedule(0.1, "step")
    with pytest.raises(ValueError, match="schedule"):
        optim.make_schedule(0.1, "exponential", total_steps=10)


def test_the_same_arguments_give_the_same_transformation():
    # So that programs compiled for one (jaxdl.train.fit) are reused when it is asked for again.
    adam = optim.get_optimizer("adam", 1e-3, clip_norm=1.0)
    assert optim.get_optimizer("adam", 1e-3, clip_norm=1.0) is adam
    assert optim.get_optimizer("adam", 1e-3) is not adam
    assert optim.get_optimizer("sam", 0.1, base="momentum") is optim.get_optimizer("sam", 0.1, base="momentum")
    schedule = optax.constant_schedule(0.1)
    assert optim.get_optimizer("sgd", schedule) is optim.get_optimizer("sgd", schedule)
    # An unhashable learning rate (an array) still builds, afresh each time.
    array_rate = jnp.asarray(0.1)
    assert optim.get_optimizer("sgd", array_rate) is not optim.get_optimizer("sgd", array_rate)
