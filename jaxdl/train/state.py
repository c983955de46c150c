"""The training state, the pure ``apply_fn`` of a model, and one pure train step.

- :class:`TrainState` -- a plain pytree (step, params, model state, optimizer state, rng);
- :func:`init_state`, :func:`init_states` -- parameters drawn from a key (or a stack of keys);
- :func:`apply_model`, :class:`ApplyFn`, :func:`make_apply_fn` -- the model as the pure
  ``apply_fn(params, x)`` the analysis tools take;
- :func:`make_train_step` -- ``train_step(state, (x_B, y_B)) -> (state, metrics)``.
"""
from __future__ import annotations

import functools
import inspect
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct

from jaxdl.core import tree
from jaxdl.models.nnx_bridge import as_linen
from jaxdl.train import losses

__all__ = ["TrainState", "init_state", "init_states", "seed_streams", "apply_model", "ApplyFn", "make_apply_fn",
           "make_train_step", "takes_train_flag", "unstack"]

PyTree = Any


class TrainState(struct.PyTreeNode):
    """Everything that changes during training, as one pytree.

    Attributes:
      step: int32 scalar, optimizer steps taken.
      params: the trainable parameters theta.
      model_state: non-trainable collections (e.g. ``{'batch_stats': ...}``); ``{}`` if none.
      opt_state: the Optax state.
      rng: raw uint32 key data (``jax.random.key_data``), folded with ``step`` in each step.
    """

    step: jax.Array
    params: PyTree
    model_state: PyTree
    opt_state: PyTree
    rng: jax.Array


@functools.lru_cache(maxsize=None)
def _train_flag_of(module_type: type) -> bool:
    call = getattr(module_type, "__call__", None)
    try:
        parameters = list(inspect.signature(call).parameters.values())[1:]  # without self
    except (TypeError, ValueError) as error:
        raise TypeError(f"model {module_type.__name__}: jaxdl cannot read the signature of its __call__; "
                        "expected __call__(self, x) or __call__(self, x, train: bool)") from error
    kinds = inspect.Parameter
    if any(p.name == "train" or p.kind == kinds.VAR_KEYWORD for p in parameters):
        return True
    takes_inputs = bool(parameters) and parameters[0].kind in (kinds.POSITIONAL_ONLY, kinds.POSITIONAL_OR_KEYWORD,
                                                               kinds.VAR_POSITIONAL)
    needs_more = [p for p in parameters[1:] if p.default is kinds.empty and p.kind not in (kinds.VAR_POSITIONAL,)]
    if not takes_inputs or needs_more:
        signature = ", ".join(["self", *(str(p) for p in parameters)])
        raise TypeError(f"model {module_type.__name__}: jaxdl cannot drive __call__({signature}); expected "
                        "__call__(self, x) or __call__(self, x, train: bool), other arguments with defaults")
    return False


def takes_train_flag(model: nn.Module) -> bool:
    """Whether ``model.__call__`` takes the ``train`` flag (the zoo's modules, for dropout and
    BatchNorm) or only its inputs (flax's examples, most user code), read from the signature.

    jaxdl passes ``train`` only to a module that declares it (or takes ``**kwargs``); a module
    whose call needs another argument without a default gets a ``TypeError`` naming it.
    """
    return _train_flag_of(type(as_linen(model)))


def _mode(model: nn.Module, train: bool) -> dict:
    """The keyword arguments that put ``model`` in training or evaluation mode."""
    return {"train": train} if takes_train_flag(model) else {}


def init_state(model: nn.Module, tx: optax.GradientTransformation, example_x, key) -> TrainState:
    """Initialise parameters from ``key`` on one example batch ``example_x`` (shape (B, ...))."""
    variables, dropout_key = _init_variables(as_linen(model), example_x, key)
    return _assemble_state(variables, tx, dropout_key)


@functools.partial(jax.jit, static_argnums=0)
def _init_variables(model, example_x, key):
    # Jitted with the model as a static argument: Flax modules hash by value, so repeated fits
    # of the same architecture reuse one compiled initialiser (random draws compile slowly on CPU).
    init_key, dropout_key = jax.random.split(key)
    return model.init(init_key, example_x, **_mode(model, False)), dropout_key


@functools.partial(jax.jit, static_argnums=0)
def _init_variables_seeds(model, example_x, keys_K):
    # lax.map, not vmap: the body compiles like one seed, and each seed draws exactly what
    # a single-seed fit draws.
    return jax.lax.map(lambda key: _init_variables(model, example_x, key), keys_K)


def _assemble_state(variables, tx, dropout_key) -> TrainState:
    params = variables["params"]
    model_state = {name: value for name, value in variables.items() if name != "params"}
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        model_state=model_state,
        opt_state=tx.init(params),
        rng=jax.random.key_data(dropout_key),
    )


def init_states(model: nn.Module, tx: optax.GradientTransformation, example_x, keys_K) -> TrainState:
    """:func:`init_state` for a stack of keys: every leaf gains a leading seed axis K."""
    variables, dropout_keys = _init_variables_seeds(as_linen(model), example_x, keys_K)
    return jax.vmap(lambda v, k: _assemble_state(v, tx, k))(variables, dropout_keys)


@jax.jit
def seed_streams(seeds_K):
    """Named random streams per seed: ``(init_keys_K, data_keys_K)``, split from ``key(seed)``."""
    streams = jax.vmap(lambda s: jax.random.split(jax.random.key(s)))(seeds_K)
    return streams[:, 0], streams[:, 1]


def apply_model(model: nn.Module, params, model_state, x, *, train: bool = False, rng=None):
    """Run the model; in training mode also return the updated model state. ``train`` reaches
    the module only if its ``__call__`` takes it (:func:`takes_train_flag`)."""
    model = as_linen(model)
    variables = {"params": params, **model_state}
    rngs = {"dropout": rng} if rng is not None else {}
    if train and model_state:
        return model.apply(variables, x, **_mode(model, True), mutable=list(model_state), rngs=rngs)
    outputs = model.apply(variables, x, **_mode(model, train), rngs=rngs)
    return (outputs, model_state) if train else outputs


class ApplyFn(struct.PyTreeNode):
    """The pure ``apply_fn(params, x) -> outputs`` of a Flax model in evaluation mode, with its
    model state (BatchNorm statistics) closed over and never perturbed.

    A pytree whose ``model`` is static (Flax modules compare by value) and whose
    ``model_state`` arrays are children: a tool compiled for one ``ApplyFn`` is reused for
    another of the same model, whatever its statistics (:mod:`jaxdl.core.compiled`).
    """

    model: nn.Module = struct.field(pytree_node=False)
    model_state: PyTree

    # Compared and hashed by identity, as a function is: the fields hold arrays, which have no
    # truth value, and jax.jit hashes the callables it is given.
    __eq__ = object.__eq__
    __hash__ = object.__hash__

    def __call__(self, params, x):
        return apply_model(self.model, params, self.model_state, x, train=False)


def make_apply_fn(model: nn.Module, model_state: PyTree | None = None) -> ApplyFn:
    """The pure ``apply_fn(params, x) -> outputs`` that analysis tools take (an :class:`ApplyFn`)."""
    return ApplyFn(as_linen(model), {} if model_state is None else model_state)


def make_train_step(model: nn.Module, tx: optax.GradientTransformation, loss_name: str = "cross_entropy",
                    regularizer: Callable | None = None) -> Callable:
    """Build the pure ``train_step(state, batch) -> (state, metrics)``.

    ``batch = (x_Bx..., y_B...)``; ``metrics`` holds the batch ``loss`` (before the update, the
    data loss without any regulariser), ``grad_norm`` and, for classification, ``accuracy``.
    Jit it once (``fit`` does). With ``regularizer`` (e.g. :class:`jaxdl.analysis.implicit.SGDRegularizer`)
    the step descends ``loss + regularizer(loss_fn, params, batch)``, ``loss_fn`` the model's
    loss in evaluation mode, and ``metrics`` holds its value as ``regularizer``.
    Transformations that take extra arguments get ``grad_fn(params) -> grads`` on the same batch
    (what :func:`jaxdl.train.sam.sam` needs).
    """
    losses.check_loss_name(loss_name)
    model = as_linen(model)

    def train_step(state: TrainState, batch):
        x, y = batch
        rng = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)

        def objective(params):
            outputs, model_state = apply_model(model, params, state.model_state, x, train=True, rng=rng)
            per_example = losses.per_example_metrics(loss_name, outputs, y)
            value = per_example["loss"].mean()
            if regularizer is not None:
                loss_fn = losses.make_loss_fn(ApplyFn(model, state.model_state), loss_name)
                per_example = {**per_example, "regularizer": regularizer(loss_fn, params, batch)}
                value = value + per_example["regularizer"]
            return value, (per_example, model_state)

        (_, (per_example, model_state)), grads = jax.value_and_grad(objective, has_aux=True)(state.params)
        if isinstance(tx, optax.GradientTransformationExtraArgs):
            # The batch gradient at other params (SAM's ascent point), same batch and rng;
            # traced only if a transformation calls it.
            def grad_fn(params):
                return jax.grad(lambda p: objective(p)[0])(params)

            updates, opt_state = tx.update(grads, state.opt_state, state.params, grad_fn=grad_fn)
        else:
            updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        metrics = {name: v.mean() for name, v in per_example.items()}
        metrics["grad_norm"] = tree.norm(grads)
        new_state = state.replace(step=state.step + 1, params=params, model_state=model_state, opt_state=opt_state)
        return new_state, metrics

    return train_step


def unstack(stacked: PyTree, index: int) -> PyTree:
    """Seed ``index`` of a stacked result from :func:`jaxdl.train.fit_seeds`."""
    return jax.tree.map(lambda leaf: leaf[index], stacked)
