"""Probes: scalar measurements of the parameters and a data set, taken every k steps INSIDE the
compiled training program (``fit(..., probes={name: probe}, probe_every=k)``), never by a host
round trip per measurement.

A probe is any hashable object (a frozen dataclass, so that the compiled program is keyed on its
settings) with two pure methods:

- ``init(params) -> probe_state``: the state carried from one measurement to the next (e.g. the
  last top Hessian eigenvector, to warm-start the next eigenvalue search); ``()`` if none;
- ``measure(probe_state, loss_fn, params, batch) -> (probe_state, value)``: ``value`` a scalar,
  ``loss_fn(params, batch)`` the training loss (the model at its current model state, see
  :func:`jaxdl.train.losses.make_loss_fn`), ``batch`` the probe's data set.

:class:`LossProbe` is the simplest; :class:`jaxdl.analysis.curvature.SharpnessProbe` tracks the top Hessian
eigenvalue (Cohen et al. 2021). Steps where no measurement is due cost one ``lax.cond`` branch
that does nothing.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import jax
import jax.numpy as jnp

from jaxdl.train import losses
from jaxdl.train.state import ApplyFn

__all__ = ["PREFIX", "LossProbe", "check_probes", "init_probes", "measure_probes"]

PyTree = Any
PREFIX = "probe/"


@dataclasses.dataclass(frozen=True)
class LossProbe:
    """The mean loss on the probe's batch (e.g. a held-out set, tracked every k steps)."""

    def init(self, params) -> tuple:
        return ()

    def measure(self, probe_state, loss_fn, params, batch):
        return probe_state, loss_fn(params, batch)


def check_probes(probes: Mapping[str, Any] | None) -> dict:
    """``probes`` as a dict, ``ValueError`` naming the entry that is not a probe."""
    probes = dict(probes or {})
    for name, probe in probes.items():
        if not (callable(getattr(probe, "init", None)) and callable(getattr(probe, "measure", None))):
            raise ValueError(f"probes[{name!r}] must have init(params) and measure(state, loss_fn, params, batch), "
                             f"got {type(probe).__name__}")
        try:
            hash(probe)
        except TypeError:
            raise ValueError(f"probes[{name!r}] must be hashable (e.g. a frozen dataclass), got "
                             f"{type(probe).__name__}") from None
    return probes


def init_probes(probes: Mapping[str, Any], params: PyTree) -> dict:
    """``{name: probe.init(params)}``."""
    return {name: probe.init(params) for name, probe in probes.items()}


def measure_probes(probes: Mapping[str, Any], probe_states: dict, model, loss_name: str, state, batch, due):
    """Every probe at the train ``state`` if ``due`` (a traced bool), else the states unchanged and
    NaN values: ``(probe_states, {'probe/<name>': value})``. Jit-able; a ``lax.cond``."""
    loss_fn = losses.make_loss_fn(ApplyFn(model, state.model_state), loss_name)

    def measure(states):
        new_states, values = {}, {}
        for name, probe in probes.items():
            new_states[name], value = probe.measure(states[name], loss_fn, state.params, batch)
            values[PREFIX + name] = jnp.asarray(value, jnp.float32)
        return new_states, values

    def skip(states):
        return states, {PREFIX + name: jnp.full((), jnp.nan, jnp.float32) for name in probes}

    return jax.lax.cond(due, measure, skip, probe_states)
