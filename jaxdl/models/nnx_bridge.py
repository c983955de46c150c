"""Flax NNX models in the library: one adapter, so every tool that drives a Linen module drives them.

Flax's functional recipe for NNX inside compiled programs is ``nnx.split`` into a graph definition
and state, ``nnx.merge`` inside the jitted function, and the new state returned. :class:`NNXModule`
does exactly that inside a Linen module, so the library's one model interface (``init`` and
``apply`` with variable collections) carries an NNX model unchanged:

- the NNX ``Param`` variables are the Linen ``'params'`` collection (one entry per attribute of
  the module, as ``nnx.to_pure_dict`` nests them), so ``params`` is the pytree the analysis tools
  perturb;
- ``BatchStat`` variables (BatchNorm statistics) are the ``'batch_stats'`` collection, model state
  that training updates and the tools never perturb;
- any other state (the counters of an ``nnx.Rngs`` the module keeps) is the ``'nnx_state'``
  collection, carried the same way;
- ``train=True`` calls ``module.train()`` before the forward pass (BatchNorm normalises by the
  batch, Dropout drops), ``train=False`` calls ``module.eval()``; in training the module's call
  gets ``rngs=nnx.Rngs(dropout=key)`` with the step's dropout key when its ``__call__`` takes
  ``rngs``, the key the Linen path threads to its own Dropout.

Seeds: the adapter holds how to build the module (its class, or a factory taking ``rngs``), not
the module's arrays, so ``init`` with a key builds a fresh module from ``nnx.Rngs(key)``:
:func:`jaxdl.train.fit_seeds` draws each seed's weights exactly as a user's ``Module(rngs=
nnx.Rngs(seed_key))`` would. (Re-drawing the state of one instance per seed is not possible in
general: an NNX module keeps no record of how its arrays were drawn.) The adapter is a frozen,
hashable Linen module, so compiled programs keyed on the model compile once.
"""
from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
from flax import nnx

__all__ = ["NNXModule", "as_linen", "from_nnx", "is_nnx", "nnx_variables"]

PyTree = Any
BATCH_STATS, OTHER_STATE = "batch_stats", "nnx_state"


def is_nnx(model) -> bool:
    """Whether ``model`` is an NNX module instance (rather than a Linen module)."""
    return isinstance(model, nnx.Module)


@functools.lru_cache(maxsize=None)
def _takes_rngs(module_type: type) -> bool:
    try:
        parameters = inspect.signature(module_type.__call__).parameters
    except (TypeError, ValueError):
        return False
    return "rngs" in parameters or any(p.kind == inspect.Parameter.VAR_KEYWORD for p in parameters.values())


def _split(module: nnx.Module):
    """``(graph, params, batch_stats, rest)``: the module's graph definition and its states."""
    return nnx.split(module, nnx.Param, nnx.BatchStat, ...)


def _abstract(make: Callable) -> tuple:
    """The graph definition and the abstract states of ``make(rngs=...)`` (no arrays drawn; fresh
    objects each call, since merging fills them in place)."""
    return _split(nnx.eval_shape(lambda: make(rngs=nnx.Rngs(0))))


class NNXModule(nn.Module):
    """A Flax NNX module as the Linen module that every jaxdl tool drives.

    Attributes:
      make: builds the NNX module from ``rngs=nnx.Rngs(...)``: its class (``CNN``, whose
        ``__init__`` takes ``rngs``) or a factory (``functools.partial(CNN, width=64)``); it must
        be hashable, as classes and partials of hashable arguments are.
    """

    make: Callable[..., nnx.Module]

    @nn.compact
    def __call__(self, x, train: bool = False):
        if self.is_initializing():
            graph, params, stats, rest = _split(self.make(rngs=nnx.Rngs(self.make_rng("params"))))
        else:
            graph, params, stats, rest = _abstract(self.make)
        nnx.replace_by_pure_dict(params, {name: self.param(name, lambda _, v=v: v)
                                          for name, v in nnx.to_pure_dict(params).items()})
        # A collection only where the module has such state (an MLP carries none).
        carried = {}
        for collection, state in ((BATCH_STATS, stats), (OTHER_STATE, rest)):
            if jax.tree.leaves(nnx.to_pure_dict(state)):
                carried[collection] = self.variable(collection, "nnx", lambda s=state: nnx.to_pure_dict(s))
                nnx.replace_by_pure_dict(state, carried[collection].value)
        module = nnx.merge(graph, params, stats, rest)
        module.train() if train else module.eval()
        options = {}
        if train and _takes_rngs(type(module)) and self.has_rng("dropout"):
            options["rngs"] = nnx.Rngs(dropout=self.make_rng("dropout"))
        outputs = module(x, **options)
        if train and not self.is_initializing():
            _, _, new_stats, new_rest = _split(module)
            for collection, state in ((BATCH_STATS, new_stats), (OTHER_STATE, new_rest)):
                if collection in carried and self.is_mutable_collection(collection):
                    carried[collection].value = nnx.to_pure_dict(state)
        return outputs


def from_nnx(model) -> NNXModule:
    """The :class:`NNXModule` of ``model``: an NNX module class or factory (called with
    ``rngs=``), or an NNX module instance, whose class is then the factory (its ``__init__`` must
    need nothing but ``rngs``; otherwise pass ``functools.partial(Class, ...)``). An
    :class:`NNXModule` is returned as it is. ``TypeError`` naming the model otherwise."""
    if isinstance(model, NNXModule):
        return model
    make = type(model) if is_nnx(model) else model
    if not callable(make):
        raise TypeError(f"model {model!r}: expected an NNX module, its class or a factory taking rngs=")
    return _adapter(make)


def _check_call(module_type: type) -> None:
    """``TypeError`` naming the module unless its ``__call__`` takes the inputs and, besides an
    optional ``rngs``, nothing without a default."""
    parameters = list(inspect.signature(module_type.__call__).parameters.values())[1:]
    kinds = inspect.Parameter
    takes_inputs = bool(parameters) and parameters[0].kind in (kinds.POSITIONAL_ONLY, kinds.POSITIONAL_OR_KEYWORD,
                                                               kinds.VAR_POSITIONAL)
    needs_more = [p for p in parameters[1:] if p.default is kinds.empty and p.name != "rngs"
                  and p.kind not in (kinds.VAR_POSITIONAL, kinds.VAR_KEYWORD)]
    if not takes_inputs or needs_more:
        signature = ", ".join(["self", *(str(p) for p in parameters)])
        raise TypeError(f"model {module_type.__name__}: jaxdl cannot drive __call__({signature}); expected "
                        "__call__(self, x) or __call__(self, x, rngs=None), other arguments with defaults")


@functools.lru_cache(maxsize=None)
def _adapter(make: Callable) -> NNXModule:
    name = getattr(make, "__name__", type(make).__name__)
    try:
        abstract = nnx.eval_shape(lambda: make(rngs=nnx.Rngs(0)))
    except TypeError as error:
        raise TypeError(f"model {name}: jaxdl builds an NNX model as make(rngs=nnx.Rngs(key)) and that failed "
                        f"({error}); pass functools.partial({name}, <its other arguments>)") from error
    _check_call(type(abstract))
    return NNXModule(make)


def as_linen(model):
    """``model`` as the Linen module the library drives: an NNX module (an instance, its class, or
    a ``functools.partial`` of its class) through :func:`from_nnx`; anything else as it is."""
    make = model.func if isinstance(model, functools.partial) else model
    nnx_class = isinstance(make, type) and issubclass(make, nnx.Module)
    return from_nnx(model) if is_nnx(model) or nnx_class else model


def nnx_variables(module: nnx.Module) -> dict:
    """The Linen variables of an NNX module instance in :class:`NNXModule`'s layout
    (``{'params': ..., 'batch_stats': ..., 'nnx_state': ...}``), to analyse that instance's own
    weights: ``apply_fn = train.make_apply_fn(from_nnx(module), {k: v for k, v in
    variables.items() if k != 'params'})`` with ``params = variables['params']``."""
    _, params, stats, rest = _split(module)
    variables = {"params": nnx.to_pure_dict(params)}
    for collection, state in ((BATCH_STATS, stats), (OTHER_STATE, rest)):
        if jax.tree.leaves(nnx.to_pure_dict(state)):
            variables[collection] = {"nnx": nnx.to_pure_dict(state)}
    return variables
