"""A model from outside the zoo trains: flax's MNIST example CNN, written as flax writes it
(``__call__(self, x)``, no ``train`` flag), through ``fit`` and the analysis tools.

The reference is the same module with a ``train`` argument it ignores: jaxdl decides from the
signature whether to pass the flag, so both must give the same trajectory bit for bit.
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.flatten_util
import numpy as np
import pytest
import scipy.sparse.linalg

from jaxdl import data, train
from jaxdl.analysis import curvature
from jaxdl.train import losses, optim


def _layers(x):
    x = nn.Conv(features=8, kernel_size=(3, 3))(x)
    x = nn.relu(x)
    x = nn.avg_pool(x, window_shape=(2, 2), strides=(2, 2))
    x = nn.Conv(features=16, kernel_size=(3, 3))(x)
    x = nn.relu(x)
    x = nn.avg_pool(x, window_shape=(2, 2), strides=(2, 2))
    x = x.reshape((x.shape[0], -1))
    x = nn.Dense(features=32)(x)
    x = nn.relu(x)
    return nn.Dense(features=10)(x)


class CNN(nn.Module):
    """flax's examples/mnist CNN as flax writes it, with the widths scaled down for 8 x 8 digits."""

    @nn.compact
    def __call__(self, x):
        return _layers(x)


class FlaggedCNN(nn.Module):
    """The same network whose ``__call__`` takes (and ignores) the zoo's ``train`` flag."""

    @nn.compact
    def __call__(self, x, train: bool = False):
        return _layers(x)


class NeedsMask(nn.Module):
    @nn.compact
    def __call__(self, x, mask):
        return nn.Dense(2)(x * mask)


@pytest.fixture(scope="module")
def digits():
    return data.load("digits")


def test_the_signature_decides_whether_train_is_passed():
    assert not train.takes_train_flag(CNN())
    assert train.takes_train_flag(FlaggedCNN())
    with pytest.raises(TypeError, match=r"NeedsMask.*__call__\(self, x, mask\)"):
        train.takes_train_flag(NeedsMask())


def test_flax_example_cnn_trains_like_its_flagged_twin(digits):
    tx = optim.get_optimizer("adam", 3e-3)
    options = dict(epochs=10, batch_size=64, seed=0, progress=False)
    plain = train.fit(CNN(), digits, tx, **options)
    flagged = train.fit(FlaggedCNN(), digits, tx, **options)
    for a, b in zip(jax.tree.leaves(plain.state.params), jax.tree.leaves(flagged.state.params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert plain.history["test_accuracy"][-1] > 0.9  # chance is 0.1


def test_an_unsupported_signature_fails_naming_the_module(digits):
    x = digits.x_train.reshape(len(digits.x_train), -1)
    flat = data.Dataset(x, digits.y_train, digits.x_test.reshape(len(digits.x_test), -1), digits.y_test, 10, "flat")
    with pytest.raises(TypeError, match="NeedsMask"):
        train.fit(NeedsMask(), flat, optim.get_optimizer("sgd", 0.1), epochs=1, batch_size=64, progress=False)


def test_analysis_tools_take_the_example_cnn(digits):
    result = train.fit(CNN(), digits, optim.get_optimizer("adam", 3e-3), epochs=1, batch_size=64, seed=1,
                       progress=False)
    apply_fn = train.make_apply_fn(CNN(), result.state.model_state)
    loss_fn = losses.make_loss_fn(apply_fn, "cross_entropy")
    batch = (digits.x_train[:64], digits.y_train[:64])
    top = curvature.hessian_top_eigenvalues(loss_fn, result.state.params, batch, k=1, num_steps=20).eigenvalues[0]
    # Against ARPACK (scipy's eigsh) on Hessian-vector products of the same loss, by autodiff.
    flat, unravel = jax.flatten_util.ravel_pytree(result.state.params)
    grad = jax.grad(lambda v: loss_fn(unravel(v), batch))
    hvp = jax.jit(lambda v, t: jax.jvp(grad, (v,), (t,))[1])
    operator = scipy.sparse.linalg.LinearOperator((flat.size, flat.size), dtype=np.float32,
                                                  matvec=lambda t: np.asarray(hvp(flat, t.astype(np.float32))))
    reference = scipy.sparse.linalg.eigsh(operator, k=1, which="LA", tol=1e-6)[0][0]
    np.testing.assert_allclose(float(top), reference, rtol=1e-3)
