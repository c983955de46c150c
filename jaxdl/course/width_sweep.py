"""Width sweeps of MLPs as ONE vmapped training program: every width padded to the largest, masked.

A member of width H of a sweep is an MLP with ``max_width`` units per hidden layer of which only
the first H are live: the activations of the others are multiplied by zero (a mask in the model
state collection ``'masks'``, not a parameter), so they contribute nothing to the output and get
no gradient, and their parameters start (and stay) at zero. All members then share their shapes,
so the widths and seeds of a sweep train as one ``vmap``ped program
(:func:`jaxdl.train.train_model`, the driver of ``fit_seeds``), compiled once, instead of one program per width.

The live parameters of a member are those of :class:`jaxdl.models.MLP` with ``widths=(H,) *
num_layers`` (:func:`narrow_params` slices them out), drawn from the same distributions (He for
the hidden layers, LeCun for the read-out, the fan-in being the live width), and every optimizer of
:func:`jaxdl.train.optim.get_optimizer` updates them as it would update that narrow network: its updates
are per-coordinate, and clipping and the L2 term see zeros for the masked part. The members of one
seed share their random draws (width H uses the first H units of the same draw), so neighbouring
widths differ by their size, not by their luck.

Cost: the sweep computes ``len(widths) * max_width`` hidden units per layer where separate fits
compute ``sum(widths)``; it wins when compilation and dispatch dominate, as for small networks on
a CPU (the width-sweep row of ``python -m experiments.benchmark``). Used by Belkin et al. 2019's
double-descent width sweep in ``experiments/generalization.py``.

Shapes: G members (W widths times K seeds, width-major), U hidden units per layer (max_width), N
examples, D input features.
"""
from __future__ import annotations

import functools
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxdl import train
from jaxdl.core import checks
from jaxdl.train import losses
from jaxdl.models.initializers import get_initializer
from jaxdl.models.activations import get_activation

__all__ = ["MaskedMLP", "num_params", "width_mask", "init_width_states", "narrow_params", "fit_widths"]


class MaskedMLP(nn.Module):
    """An MLP with ``num_layers`` hidden layers of ``max_width`` units whose live units are set by
    the ``'masks'`` collection (``{'hidden': mask_U}``, U = max_width; 1.0 live, 0.0 masked; all live
    by default).

    Input ``x_Bx...`` (flattened), output ``outputs_BxC``. Layer names and parameter shapes are those
    of :class:`jaxdl.models.MLP` at width ``max_width``.
    """

    max_width: int
    num_layers: int = 1
    num_outputs: int = 10
    activation: str = "relu"

    @nn.compact
    def __call__(self, x, train: bool = False):
        mask = self.variable("masks", "hidden", jnp.ones, (self.max_width,), jnp.float32).value
        act = get_activation(self.activation)
        x = x.reshape(x.shape[0], -1)
        for i in range(self.num_layers):
            x = act(nn.Dense(self.max_width, kernel_init=get_initializer("he"), name=f"hidden_{i}")(x)) * mask
        return nn.Dense(self.num_outputs, kernel_init=get_initializer("lecun"), name="output")(x)


def num_params(input_dim: int, width: int, num_layers: int, num_outputs: int) -> int:
    """Parameters (weights and biases) of an MLP ``input_dim - width x num_layers - num_outputs``:
    ``(input_dim + 1) width + (num_layers - 1)(width + 1) width + (width + 1) num_outputs``."""
    return int((input_dim + 1) * width + (num_layers - 1) * (width + 1) * width + (width + 1) * num_outputs)


def width_mask(max_width: int, width) -> jax.Array:
    """``mask_U``: 1.0 for the first ``width`` of ``max_width`` units, 0.0 for the rest."""
    return (jnp.arange(max_width) < width).astype(jnp.float32)


def _member_params(model: MaskedMLP, params, width):
    """The parameters of the member of live width ``width`` (traced), from a draw at ``max_width``."""
    mask_U = width_mask(model.max_width, width)
    # Drawn with fan-in max_width; the live units of the layers fed by hidden units need fan-in width.
    rescale = jnp.sqrt(model.max_width / width.astype(jnp.float32))
    out = {}
    for name, layer in params.items():
        kernel, bias = layer["kernel"], layer["bias"]
        if name != "hidden_0":  # fed by masked hidden units: rows beyond the live width are zero
            kernel = kernel * rescale * mask_U[:, None]
        if name != "output":  # produces hidden units: columns beyond the live width are zero
            kernel, bias = kernel * mask_U, bias * mask_U
        out[name] = {"kernel": kernel, "bias": bias}
    return out


@functools.partial(jax.jit, static_argnames=("model", "tx"))
def _init_members(model, tx, example_x, widths_W, keys_K):
    # One draw per key at the padded width (lax.map: compiles like a single draw), shared by the widths.
    init_keys_K, dropout_keys_K = jax.vmap(jax.random.split, out_axes=1)(keys_K)
    draws_K = jax.lax.map(lambda key: model.init(key, example_x)["params"], init_keys_K)

    def member(width, params, dropout_key):
        params = _member_params(model, params, width)
        return train.TrainState(step=jnp.zeros((), jnp.int32), params=params,
                                model_state={"masks": {"hidden": width_mask(model.max_width, width)}},
                                opt_state=tx.init(params), rng=jax.random.key_data(dropout_key))

    per_seed = jax.vmap(member, in_axes=(None, 0, 0))  # the K seeds of one width
    states_WxK = jax.vmap(per_seed, in_axes=(0, None, None))(widths_W, draws_K, dropout_keys_K)
    return jax.tree.map(lambda leaf: leaf.reshape((-1,) + leaf.shape[2:]), states_WxK)


def init_width_states(model: MaskedMLP, tx: optax.GradientTransformation, example_x, widths_W, keys_K):
    """Train states of the members (every live width of ``widths_W`` for every key of ``keys_K``), every
    leaf with a leading axis G = W K, width-major (member ``w K + k``): masked parameters zero, the
    live ones drawn as a width-H :class:`jaxdl.models.MLP`'s (He / LeCun with the live fan-in). The
    members of one key share its draw: width H gets the first H units."""
    widths_W = np.asarray(widths_W)
    if widths_W.ndim != 1 or not all(checks.is_integer(w) and 1 <= w <= model.max_width for w in widths_W.tolist()):
        checks.fail("widths", widths_W.tolist(), f"integers in [1, max_width={model.max_width}]")
    return _init_members(model, tx, jnp.asarray(example_x), jnp.asarray(widths_W, jnp.int32), keys_K)


def narrow_params(params, width: int, num_layers: int):
    """The live parameters of a member of width ``width``: the parameters of
    ``get_model('mlp', widths=(width,) * num_layers, num_outputs=C)``."""
    out = {}
    for i in range(num_layers):
        kernel = params[f"hidden_{i}"]["kernel"]
        out[f"hidden_{i}"] = {"kernel": kernel[:width, :width] if i else kernel[:, :width],
                              "bias": params[f"hidden_{i}"]["bias"][:width]}
    out["output"] = {"kernel": params["output"]["kernel"][:width], "bias": params["output"]["bias"]}
    return out


def _check_widths(widths) -> tuple[int, ...]:
    widths = tuple(widths)
    if not widths or not all(checks.is_integer(w) and w >= 1 for w in widths):
        checks.fail("widths", widths, "a non-empty sequence of positive integers")
    return tuple(int(w) for w in widths)


def fit_widths(data, tx: optax.GradientTransformation, *, widths: Sequence[int], seeds: Sequence[int] = (0,),
               num_layers: int = 1, activation: str = "relu", **options) -> train.FitResult:
    """Train MLPs of every width in ``widths`` for every seed on ``data`` as one vmapped program.

    :func:`jaxdl.train.fit_seeds` (epochs of shuffled minibatches, or full-batch descent with
    ``batch_size=None``; ``options`` are the fields of :class:`jaxdl.train.FitOptions`: probes,
    checkpoints and resume, logging, progress) over :class:`MaskedMLP` members of each width,
    the widths of a seed drawing that seed's minibatches. Every leaf of the returned
    :class:`jaxdl.train.FitResult` has leading axes (W, K): widths, then seeds (the states keep the
    padded shapes; :func:`narrow_params` gives a member's network). A second call with the same
    shapes and options compiles nothing.

    Raises ``ValueError`` naming ``widths`` or ``seeds`` when empty or not positive integers, and
    ``FloatingPointError`` naming the step when the loss becomes non-finite.
    """
    widths, seeds = _check_widths(widths), list(seeds)
    if not seeds or not all(checks.is_integer(s) and s >= 0 for s in seeds):
        checks.fail("seeds", seeds, "a non-empty sequence of non-negative integers")
    options = train.FitOptions.parse("fit_widths", options)
    losses.check_loss_name(options.loss_name)
    num_layers = checks.integer("num_layers", num_layers)
    num_outputs = (data.num_classes if losses.is_classification(options.loss_name)
                   else int(np.prod(data.y_train.shape[1:])))
    model = MaskedMLP(max(widths), num_layers, int(num_outputs), activation)
    num_widths, num_seeds = len(widths), len(seeds)
    init_keys_K, data_keys_K = train.seed_streams(np.asarray(seeds, np.uint32))
    initial = init_width_states(model, tx, data.x_train[:1], widths, init_keys_K)
    result = train.train_model(model, data, tx, options, seeds=seeds * num_widths, vmapped=True, initial_state=initial,
                               data_keys=[data_keys_K[k] for _ in widths for k in range(num_seeds)],
                               desc=f"fit widths {widths[0]}..{widths[-1]} x{num_seeds} seeds")

    def by_width_and_seed(leaf):
        return np.asarray(leaf).reshape((num_widths, num_seeds) + np.shape(leaf)[1:])

    return jax.tree.map(by_width_and_seed, result)
