"""Model registry: ``get_model(name, **hparams)`` returns a Flax Linen module.

Every model is called as ``module.apply(variables, x, train=False)`` and maps a batch
``x_Bx...`` to ``outputs_BxK``; :func:`jaxdl.train.make_apply_fn` turns it into the pure
``apply_fn(params, x)`` that the analysis tools take.
"""
from __future__ import annotations

import dataclasses

import flax.linen as nn

from jaxdl.models.initializers import INITIALIZERS, get_initializer
from jaxdl.models.mlp import ACTIVATIONS, MLP, Linear, get_activation

MODELS: dict[str, type[nn.Module]] = {
    "linear": Linear,
    "mlp": MLP,
}


def get_model(name: str, **hparams) -> nn.Module:
    """Build a registered model; unknown names or hyper-parameters raise ``ValueError``."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    cls = MODELS[name]
    fields = [f.name for f in dataclasses.fields(cls) if f.name not in ("parent", "name")]
    unknown = sorted(set(hparams) - set(fields))
    if unknown:
        raise ValueError(f"model {name!r} has no hyper-parameter {unknown}; it accepts {fields}")
    return cls(**hparams)


__all__ = ["MODELS", "get_model", "MLP", "Linear", "INITIALIZERS", "get_initializer",
           "ACTIVATIONS", "get_activation"]
