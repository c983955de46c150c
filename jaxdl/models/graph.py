"""Graph neural networks on padded dense graphs: a Graph Network (Battaglia et al. 2018,
"Relational inductive biases, deep learning, and graph networks") and a Graph Attention Network
(Velickovic et al. 2018, "Graph attention networks").

Input: a :class:`Graph` of a batch of graphs padded to V nodes,

- ``nodes_BxVxD``: node features;
- ``adjacency_BxVxV``: ``adjacency[b, i, j] != 0`` iff there is an edge from sender ``j`` to
  receiver ``i`` (row ``i`` lists the neighbours ``i`` aggregates from); the value is the
  edge's weight, used as its (scalar) feature by the Graph Network;
- ``node_mask_BxV``: True (or 1) for real nodes, False for padding;

or the same packed into one array ``x_BxVx(V+1+D)`` by :func:`pack_graph` (adjacency, mask,
features along the last axis), which is what :func:`jaxdl.train.fit` can index into batches.
Edge lists ``senders_BxE``, ``receivers_BxE`` with ``edge_mask_BxE`` convert with
:func:`graph_from_edges`.

Output: ``outputs_BxO`` for graph-level tasks (``task='graph'``), ``outputs_BxVxO`` for
node-level ones (``task='node'``; padded nodes get zeros). Both models sum or average over
neighbours and nodes only, so node outputs are permutation-equivariant and graph outputs
permutation-invariant, and padded nodes never change the outputs of real ones.
"""
from __future__ import annotations

from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxdl.core import checks
from jaxdl.models.initializers import get_initializer
from jaxdl.models.layers import Dropout
from jaxdl.models.activations import get_activation

__all__ = ["TASKS", "Graph", "graph_from_edges", "pack_graph", "as_graph", "GraphNetworkBlock", "GraphNetwork",
           "GATLayer", "GAT"]

TASKS = ("graph", "node")


class Graph(NamedTuple):
    """A batch of padded dense graphs; see the module docstring for the conventions."""

    nodes_BxVxD: jax.Array
    adjacency_BxVxV: jax.Array
    node_mask_BxV: jax.Array


def graph_from_edges(nodes_BxVxD, senders_BxE, receivers_BxE, edge_mask_BxE=None, node_mask_BxV=None,
                     edge_weights_BxE=None) -> Graph:
    """Dense :class:`Graph` from padded edge lists (edge ``e`` goes ``senders[b, e] -> receivers[b, e]``).

    Masked-out edges are dropped; repeated edges add their weights (default weight 1); a
    missing ``node_mask_BxV`` means every node is real.
    """
    batch, num_nodes = nodes_BxVxD.shape[:2]
    weights = jnp.ones(senders_BxE.shape, nodes_BxVxD.dtype) if edge_weights_BxE is None else edge_weights_BxE
    if edge_mask_BxE is not None:
        weights = jnp.where(edge_mask_BxE, weights, 0)
    batch_index = jnp.broadcast_to(jnp.arange(batch)[:, None], senders_BxE.shape)
    adjacency = jnp.zeros((batch, num_nodes, num_nodes), nodes_BxVxD.dtype)
    adjacency = adjacency.at[batch_index, receivers_BxE, senders_BxE].add(weights.astype(nodes_BxVxD.dtype))
    if node_mask_BxV is None:
        node_mask_BxV = jnp.ones((batch, num_nodes), bool)
    return Graph(nodes_BxVxD, adjacency, jnp.asarray(node_mask_BxV, bool))


def pack_graph(graph: Graph) -> jax.Array:
    """One array ``x_BxVx(V+1+D)``: ``[adjacency, node_mask, nodes]`` along the last axis."""
    nodes, adjacency, mask = graph
    return jnp.concatenate([adjacency.astype(nodes.dtype), mask[..., None].astype(nodes.dtype), nodes], axis=-1)


def as_graph(x) -> Graph:
    """A :class:`Graph` as is, or the inverse of :func:`pack_graph` for an array."""
    if isinstance(x, Graph):
        return Graph(x.nodes_BxVxD, x.adjacency_BxVxV, jnp.asarray(x.node_mask_BxV, bool))
    if x.ndim != 3 or x.shape[2] < x.shape[1] + 1:
        raise ValueError(f"a packed graph has shape (B, V, V + 1 + D), got {x.shape}")
    num_nodes = x.shape[1]
    return Graph(x[..., num_nodes + 1:], x[..., :num_nodes], x[..., num_nodes] > 0.5)


def _edge_mask(graph: Graph, self_loops: bool = False):
    """``mask_BxVxV``: an edge between two real nodes (plus ``i -> i`` with ``self_loops``)."""
    edges = graph.adjacency_BxVxV != 0
    if self_loops:
        edges = edges | jnp.eye(edges.shape[-1], dtype=bool)
    return edges & graph.node_mask_BxV[:, :, None] & graph.node_mask_BxV[:, None, :]


def _check_task(task):
    checks.one_of("task", task, TASKS)


class GraphNetworkBlock(nn.Module):
    """One full GN block (Battaglia et al. 2018, Algorithm 1) with sum aggregation:

    ``e'_ij = phi_e(e_ij, v_i, v_j, u)`` on every edge ``j -> i``, ``v'_i = phi_v(sum_j e'_ij, v_i, u)``,
    ``u' = phi_u(sum_ij e'_ij, sum_i v'_i, u)``; each ``phi`` a two-layer MLP of width ``hidden_dim``.
    Shapes: edges ``(B, V, V, e)``, nodes ``(B, V, d)`` and globals ``(B, g)`` in, the same with
    e = d = g = ``hidden_dim`` out.
    """

    hidden_dim: int = 64
    activation: str = "relu"

    @nn.compact
    def __call__(self, edges, nodes, globals_, edge_mask_BxVxV, node_mask_BxV):
        act = get_activation(self.activation)
        kernel_init = get_initializer("he")
        dense = lambda name, bias=False: nn.Dense(self.hidden_dim, use_bias=bias, kernel_init=kernel_init, name=name)
        edge_weight = edge_mask_BxVxV[..., None].astype(nodes.dtype)
        node_weight = node_mask_BxV[..., None].astype(nodes.dtype)

        # phi_e's first layer on the concatenation [e_ij, v_i, v_j, u] is a sum of one dense map
        # per part: the same function without building the (B, V, V, e + 2d + g) concatenation.
        hidden = (dense("edge_in_edges", True)(edges) + dense("edge_in_receivers")(nodes)[:, :, None]
                  + dense("edge_in_senders")(nodes)[:, None, :] + dense("edge_in_globals")(globals_)[:, None, None])
        edges = dense("edge_out", True)(act(hidden)) * edge_weight

        globals_per_node = jnp.broadcast_to(globals_[:, None], nodes.shape[:2] + globals_.shape[-1:])
        hidden = jnp.concatenate([edges.sum(axis=2), nodes, globals_per_node], -1)  # sum over senders j
        nodes = dense("node_out", True)(act(dense("node_in", True)(hidden))) * node_weight

        hidden = jnp.concatenate([edges.sum(axis=(1, 2)), nodes.sum(axis=1), globals_], -1)
        globals_ = dense("global_out", True)(act(dense("global_in", True)(hidden)))
        return edges, nodes, globals_


class GraphNetwork(nn.Module):
    """Encode, ``num_layers`` GN blocks (parameters not shared), decode.

    Input: a :class:`Graph` or packed array (module docstring). The node features are embedded
    by a dense layer, the initial edge feature is the adjacency weight, the initial global is 0.
    Output: ``outputs_BxO`` from the final global (``task='graph'``) or ``outputs_BxVxO`` from the
    final nodes (``task='node'``).

    Attributes: ``hidden_dim``, ``num_layers``, ``num_outputs`` (O), ``task``, ``activation``.
    """

    hidden_dim: int = 64
    num_layers: int = 2
    num_outputs: int = 10
    task: str = "graph"
    activation: str = "relu"

    @nn.compact
    def __call__(self, x, train: bool = False):
        _check_task(self.task)
        graph = as_graph(x)
        edge_mask, node_mask = _edge_mask(graph), graph.node_mask_BxV
        embed = nn.Dense(self.hidden_dim, kernel_init=get_initializer("lecun"), name="embed")
        nodes = embed(graph.nodes_BxVxD) * node_mask[..., None]
        edges = (graph.adjacency_BxVxV * edge_mask)[..., None].astype(nodes.dtype)
        globals_ = jnp.zeros((nodes.shape[0], 1), nodes.dtype)
        for layer in range(self.num_layers):
            edges, nodes, globals_ = GraphNetworkBlock(self.hidden_dim, self.activation, name=f"block_{layer}")(
                edges, nodes, globals_, edge_mask, node_mask)
        readout = nn.Dense(self.num_outputs, kernel_init=get_initializer("lecun"), name="output")
        if self.task == "graph":
            return readout(globals_)
        return readout(nodes) * node_mask[..., None]


class GATLayer(nn.Module):
    """One graph attention layer (Velickovic et al. 2018, eq. 1-6): per head ``k``,

    ``e_ij = LeakyReLU(a_k^T [W_k h_i || W_k h_j])``, ``alpha_ij = softmax over j in N(i)``,
    ``h'_i = sum_j alpha_ij W_k h_j + b``; heads concatenated (``concat=True``, output
    ``BxVx(heads features)``) or averaged (``BxVxfeatures``, the paper's output layer).
    ``mask_BxVxV[b, i, j]``: ``j`` is a neighbour of ``i`` (include ``i`` itself for self-loops).
    """

    features: int
    num_heads: int = 1
    concat: bool = True
    negative_slope: float = 0.2
    dropout_rate: float = 0.0

    @nn.compact
    def __call__(self, h_BxVxD, mask_BxVxV, train: bool = False):
        batch, num_nodes, _ = h_BxVxD.shape
        wh = nn.Dense(self.num_heads * self.features, use_bias=False, kernel_init=get_initializer("glorot"),
                      name="project")(h_BxVxD).reshape(batch, num_nodes, self.num_heads, self.features)
        # a^T [Wh_i || Wh_j] = a_receiver . Wh_i + a_sender . Wh_j, kept as two halves.
        attention = self.param("attention", get_initializer("glorot"), (2, self.num_heads, self.features))
        score_i = jnp.einsum("bnhf,hf->bhn", wh, attention[0])
        score_j = jnp.einsum("bnhf,hf->bhn", wh, attention[1])
        logits = nn.leaky_relu(score_i[..., :, None] + score_j[..., None, :], self.negative_slope)
        mask = mask_BxVxV[:, None]
        weights = jax.nn.softmax(jnp.where(mask, logits, jnp.finfo(logits.dtype).min), axis=-1)
        # Rows with no neighbour at all (padded nodes) would be uniform: zero them.
        weights = weights * mask
        self.sow("intermediates", "attention_weights", weights)
        if self.dropout_rate > 0.0:
            weights = Dropout(self.dropout_rate, deterministic=not train)(weights)
        out = jnp.einsum("bhij,bjhf->bihf", weights, wh)
        out = out.reshape(batch, num_nodes, -1) if self.concat else out.mean(axis=2)
        return out + self.param("bias", nn.initializers.zeros, (out.shape[-1],))


class GAT(nn.Module):
    """Graph attention network (Velickovic et al. 2018): ``num_layers - 1`` hidden GAT layers of
    ``num_heads`` concatenated heads of ``hidden_dim`` features with ELU, then an output GAT layer
    averaging ``output_heads`` heads of O features.

    Input: a :class:`Graph` or packed array (module docstring). Output: node outputs
    ``outputs_BxVxO`` (``task='node'``) or their mean over the real nodes ``outputs_BxO``
    (``task='graph'``).

    Attributes: ``hidden_dim, num_heads, num_layers, output_heads, num_outputs, task``;
    ``dropout_rate`` on inputs and attention weights when ``train=True`` (paper: 0.6);
    ``add_self_loops`` (the paper's neighbourhoods include the node itself).
    """

    hidden_dim: int = 8
    num_heads: int = 8
    num_layers: int = 2
    output_heads: int = 1
    num_outputs: int = 10
    task: str = "graph"
    dropout_rate: float = 0.0
    add_self_loops: bool = True

    @nn.compact
    def __call__(self, x, train: bool = False):
        _check_task(self.task)
        checks.integer("num_layers", self.num_layers)
        graph = as_graph(x)
        mask, node_weight = _edge_mask(graph, self.add_self_loops), graph.node_mask_BxV[..., None]
        h = graph.nodes_BxVxD
        drop = Dropout(self.dropout_rate, deterministic=not train)
        for layer in range(self.num_layers - 1):
            h = GATLayer(self.hidden_dim, self.num_heads, True, dropout_rate=self.dropout_rate,
                         name=f"layer_{layer}")(drop(h), mask, train)
            h = nn.elu(h)
        h = GATLayer(self.num_outputs, self.output_heads, False, dropout_rate=self.dropout_rate,
                     name=f"layer_{self.num_layers - 1}")(drop(h), mask, train)
        h = h * node_weight
        if self.task == "node":
            return h
        return h.sum(axis=1) / jnp.maximum(node_weight.sum(axis=1), 1.0)
