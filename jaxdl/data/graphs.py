"""A graph classification data set: does a random graph have a node of high degree?

Random Erdos-Renyi graphs with 8 to ``max_nodes`` nodes, padded to ``max_nodes``; the label
says whether some node has degree >= a threshold, the training median of the maximum degree,
so the classes are balanced. One round of sum aggregation computes the degrees, so a graph
network (Battaglia et al. 2018) finds the rule whatever the order of the nodes; an MLP on the
flattened adjacency matrix has to learn both the per-node sums and the invariance to node order
from examples. :func:`permute_graph_nodes` gives the same graphs with their nodes reordered.
"""
from __future__ import annotations

import numpy as np

from jaxdl.core import checks
from jaxdl.data.dataset import Dataset
from jaxdl.models.graph import Graph, pack_graph

__all__ = ["MIN_NODES", "random_graphs", "degree_graphs", "degree_threshold", "permute_graph_nodes"]

MIN_NODES = 8


def random_graphs(rng: np.random.Generator, count: int, max_nodes: int, edge_probability: float):
    """Undirected graphs: ``adjacency_BxVxV`` (0/1 float32, symmetric, no self-loops) and
    ``mask_BxV`` (True for the real nodes, the first ``MIN_NODES..max_nodes`` of each graph)."""
    sizes = rng.integers(MIN_NODES, max_nodes + 1, size=count)
    upper = np.triu(rng.random((count, max_nodes, max_nodes)) < edge_probability, k=1)
    mask = np.arange(max_nodes)[None] < sizes[:, None]
    adjacency = (upper | upper.transpose(0, 2, 1)) & mask[:, :, None] & mask[:, None, :]
    return adjacency.astype(np.float32), mask


def _pack(adjacency_BxVxV, mask_BxV) -> np.ndarray:
    nodes = mask_BxV[..., None].astype(np.float32)  # every real node has the feature 1
    return np.asarray(pack_graph(Graph(nodes, adjacency_BxVxV, mask_BxV)))


def degree_graphs(num_train: int = 2000, num_test: int = 1000, max_nodes: int = 12, edge_probability: float = 0.25,
                  seed: int = 0) -> Dataset:
    """The high-degree graph task as a :class:`Dataset` of packed graphs.

    x: ``(N, max_nodes, max_nodes + 2)`` float32, :func:`jaxdl.models.pack_graph` of the
    adjacency, the node mask and one node feature (1 for every real node), which
    :func:`jaxdl.models.as_graph` unpacks (``as_graph(x).adjacency_BxVxV`` is the MLP's view);
    y: (N,) int32 in {0, 1}. Deterministic given ``seed``.
    """
    checks.integer("num_train", num_train)
    checks.integer("num_test", num_test)
    checks.integer("max_nodes", max_nodes, minimum=MIN_NODES)
    edge_probability = checks.number("edge_probability", edge_probability, maximum=1.0)
    rng = np.random.default_rng(seed)
    adjacency, mask = random_graphs(rng, num_train + num_test, max_nodes, edge_probability)
    max_degree = adjacency.sum(-1).max(-1)
    threshold = float(np.median(max_degree[:num_train]))
    labels = (max_degree >= threshold).astype(np.int32)
    x = _pack(adjacency, mask)
    return Dataset(x[:num_train], labels[:num_train], x[num_train:], labels[num_train:], 2, "degree_graphs")


def degree_threshold(data: Dataset) -> float:
    """The degree a node must reach for label 1: the smallest maximum degree among the
    positive training graphs of :func:`degree_graphs`."""
    num_nodes = data.x_train.shape[1]
    max_degree = data.x_train[..., :num_nodes].sum(-1).max(-1)
    return float(max_degree[data.y_train == 1].min())


def permute_graph_nodes(x_packed: np.ndarray, seed: int = 0) -> np.ndarray:
    """The packed graphs ``x_BxVx(V+1+D)`` with each graph's nodes (padding included) in its own
    random order: adjacency rows and columns, mask and features permuted together."""
    x_packed = np.asarray(x_packed)
    num_graphs, num_nodes = x_packed.shape[:2]
    rng = np.random.default_rng(seed)
    perms_BxV = np.stack([rng.permutation(num_nodes) for _ in range(num_graphs)])
    rows = np.take_along_axis(x_packed, perms_BxV[:, :, None], axis=1)
    adjacency = np.take_along_axis(rows[..., :num_nodes], perms_BxV[:, None, :], axis=2)
    return np.concatenate([adjacency, rows[..., num_nodes:]], axis=-1)
