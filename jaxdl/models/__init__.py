"""Model registry: ``get_model(name, **hparams)`` returns a Flax Linen module.

Every model is called as ``module.apply(variables, x, train=False)`` and maps a batch
``x_Bx...`` to ``outputs_BxO``; :func:`jaxdl.train.make_apply_fn` turns it into the pure
``apply_fn(params, x)`` that the analysis tools take. Registered names (main hyper-parameters;
input -> output):

- ``linear``, ``mlp`` (``widths``, ``activation``, ``initializer``, ``residual``): ``x_Bx...``
  flattened -> ``BxO``;
- ``cnn1d`` (``channels``, ``kernel_size``, ``padding``, ``pool``, ``readout``, ``dense_widths``,
  ``conv_implementation``, ``norm``): ``x_BxL`` or ``x_BxLxD`` -> ``BxO``;
- ``cnn2d`` (same): NHWC images ``(B, height, width[, channels])`` -> ``BxO``;
- ``resnet`` (``depth=20``, ``width_multiplier``, ``norm``, ``skip_init``, ``shortcut`` --
  ``'none'`` for the plain net --, ``conv_implementation``): NHWC -> ``BxO``, BatchNorm
  statistics in the ``'batch_stats'`` collection; ``resnet1d`` the same on ``x_BxL`` or
  ``x_BxLxD`` sequences;
- ``rnn``, ``lstm`` (``peepholes``), ``gru`` (``hidden_size``, ``num_layers``, ``readout``,
  ``bidirectional``, ``recurrent_init``, ``spectral_radius``): ``x_BxL`` or ``x_BxLxD`` -> ``BxO``
  (or ``BxLxO``);
- ``transformer`` (``num_layers``, ``model_dim``, ``num_heads``, ``positional``, ``readout``,
  ``norm_position``, ``patch_size``): ``x_BxL`` or ``x_BxLxD`` -> ``BxO`` (or ``BxLxO``);
- ``graph_network``, ``gat`` (``hidden_dim``, ``num_layers``, ``task``): a :class:`Graph` or its
  packed array ``BxVx(V+1+D)`` -> ``BxO`` (``task='graph'``) or ``BxVxO`` (``task='node'``).

Convolutions (``conv_implementation``): ``'auto'`` by default, the backend's measured best
(:func:`jaxdl.models.layers.conv_layer`): on a CPU a matmul over patches (XLA's convolutions run
much slower inside the ``lax.scan`` of a training epoch there), ``flax.linen.Conv`` elsewhere;
``'xla'`` or ``'patches'`` to choose. Both have the same parameters.
"""
from __future__ import annotations

import dataclasses

import flax.linen as nn

from jaxdl.core import checks
from jaxdl.models.attention import Transformer
from jaxdl.models.cnn import CNN1D, CNN2D
from jaxdl.models.graph import GAT, Graph, GraphNetwork, as_graph, graph_from_edges, pack_graph
from jaxdl.models.initializers import INITIALIZERS, get_initializer
from jaxdl.models.activations import ACTIVATIONS, get_activation
from jaxdl.models.mlp import MLP, Linear
from jaxdl.models.nnx_bridge import NNXModule, as_linen, from_nnx, nnx_variables
from jaxdl.models.recurrent import GRU, LSTM, RNN, recurrent_initializer
from jaxdl.models.resnet import ResNet, ResNet1D

MODELS: dict[str, type[nn.Module]] = {
    "linear": Linear,
    "mlp": MLP,
    "cnn1d": CNN1D,
    "cnn2d": CNN2D,
    "resnet": ResNet,
    "resnet1d": ResNet1D,
    "rnn": RNN,
    "lstm": LSTM,
    "gru": GRU,
    "transformer": Transformer,
    "graph_network": GraphNetwork,
    "gat": GAT,
}


def get_model(name: str, **hparams) -> nn.Module:
    """Build a registered model: an unknown ``name`` raises ``ValueError`` listing the choices, an
    unknown hyper-parameter ``TypeError`` listing the accepted ones (as Python does for an
    unexpected keyword argument)."""
    cls = MODELS[checks.one_of("name", name, sorted(MODELS))]
    fields = [f.name for f in dataclasses.fields(cls) if f.name not in ("parent", "name")]
    checks.known_options(f"model {name!r}", hparams, fields)
    return cls(**hparams)


__all__ = ["MODELS", "get_model", "MLP", "Linear", "CNN1D", "CNN2D", "ResNet", "ResNet1D", "RNN", "LSTM", "GRU",
           "Transformer", "GraphNetwork", "GAT", "Graph", "graph_from_edges", "pack_graph", "as_graph",
           "INITIALIZERS", "get_initializer", "recurrent_initializer", "ACTIVATIONS", "get_activation",
           "NNXModule", "as_linen", "from_nnx", "nnx_variables"]
