"""Tests of jaxdl.models.graph: permutation equivariance of node outputs and invariance of graph
outputs, padding that changes nothing, a GN block and a GAT layer against NumPy written from
the papers (Battaglia et al. 2018, Algorithm 1; Velickovic et al. 2018, eq. 1-6), and the
edge-list and packed-array representations."""
from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdl.models import Graph, as_graph, get_model, graph_from_edges, pack_graph
from jaxdl.models.graph import GATLayer
from helpers import random_params

BATCH, NODES, FEATURES = 2, 6, 3
SMALL = {"graph_network": dict(hidden_dim=4, num_layers=2), "gat": dict(hidden_dim=3, num_heads=2, num_layers=2)}


def _random_graph(seed=0):
    """Two padded graphs: 6 real nodes, and 4 real nodes plus 2 padding nodes; weighted directed edges."""
    rng = np.random.default_rng(seed)
    nodes = rng.normal(size=(BATCH, NODES, FEATURES)).astype(np.float32)
    adjacency = (rng.uniform(size=(BATCH, NODES, NODES)) < 0.5) * rng.uniform(0.5, 1.5, size=(BATCH, NODES, NODES))
    mask = np.ones((BATCH, NODES), bool)
    mask[1, 4:] = False
    adjacency[1, 4:, :] = adjacency[1, :, 4:] = 0.0
    return Graph(nodes, adjacency.astype(np.float32), mask)


def _permute(graph, perm):
    nodes, adjacency, mask = graph
    return Graph(nodes[:, perm], adjacency[:, perm][:, :, perm], mask[:, perm])


@pytest.mark.parametrize("name", ["graph_network", "gat"])
def test_node_outputs_are_equivariant_and_graph_outputs_invariant(name):
    node_model = get_model(name, num_outputs=2, task="node", **SMALL[name])
    graph_model = get_model(name, num_outputs=2, task="graph", **SMALL[name])
    graph = _random_graph(1)
    params = random_params(node_model, graph, scale=0.5)  # both tasks share one parameter structure
    perm = np.random.default_rng(2).permutation(NODES)

    @jax.jit
    def outputs(g):
        return node_model.apply({"params": params}, g), graph_model.apply({"params": params}, g)

    (node_out, graph_out), (node_perm, graph_perm) = outputs(graph), outputs(_permute(graph, perm))
    assert node_out.shape == (BATCH, NODES, 2) and graph_out.shape == (BATCH, 2)
    np.testing.assert_allclose(node_perm, np.asarray(node_out)[:, perm], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(graph_perm, graph_out, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(np.asarray(node_out)[1, 4:], 0.0)  # padding nodes output zeros
    # Permuting the features alone (not the edges) is a different graph: outputs change.
    relabelled = Graph(graph.nodes_BxVxD[:, perm], graph.adjacency_BxVxV, graph.node_mask_BxV)
    assert np.abs(np.asarray(outputs(relabelled)[0]) - np.asarray(node_out)[:, perm]).max() > 1e-3

    # Padding nodes change nothing, whatever their features and edges.
    nodes, adjacency = graph.nodes_BxVxD.copy(), graph.adjacency_BxVxV.copy()
    nodes[1, 4:] = 100.0
    adjacency[1, 4:, :] = adjacency[1, :, 4:] = 1.0
    node_pad, graph_pad = outputs(Graph(nodes, adjacency, graph.node_mask_BxV))
    np.testing.assert_allclose(node_pad, node_out, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(graph_pad, graph_out, rtol=1e-5, atol=1e-5)


def _mlp(p, prefix, z):
    hidden = np.maximum(z @ p[f"{prefix}_in"]["kernel"] + p[f"{prefix}_in"]["bias"], 0.0)
    return hidden @ p[f"{prefix}_out"]["kernel"] + p[f"{prefix}_out"]["bias"]


def test_graph_network_matches_battaglia_algorithm_1_in_numpy():
    model = get_model("graph_network", hidden_dim=4, num_layers=1, num_outputs=2, task="node")
    graph_model = get_model("graph_network", hidden_dim=4, num_layers=1, num_outputs=2, task="graph")
    graph = _random_graph(3)
    params = random_params(model, graph, scale=0.5)
    node_out = jax.jit(model.apply)({"params": params}, graph)
    graph_out = jax.jit(graph_model.apply)({"params": params}, graph)

    p = jax.tree.map(lambda v: np.asarray(v, np.float64), params)
    block = p["block_0"]
    for b in range(BATCH):
        real = np.flatnonzero(graph.node_mask_BxV[b])  # the reference only ever sees the real graph
        v = graph.nodes_BxVxD[b, real] @ p["embed"]["kernel"] + p["embed"]["bias"]
        u = np.zeros(1)
        parts = ("edges", "receivers", "senders", "globals")
        edge_in = np.concatenate([block[f"edge_in_{k}"]["kernel"] for k in parts])
        block["edge_in"] = {"kernel": edge_in, "bias": block["edge_in_edges"]["bias"]}
        edges = {}  # (receiver, sender) -> e'_ij = phi_e([e_ij, v_i, v_j, u])
        for i in range(len(real)):
            for j in range(len(real)):
                weight = graph.adjacency_BxVxV[b, real[i], real[j]]
                if weight != 0:
                    edges[i, j] = _mlp(block, "edge", np.concatenate([[weight], v[i], v[j], u]))
        count = len(real)
        aggregated = np.array([sum((e for (i, _), e in edges.items() if i == r), np.zeros(4)) for r in range(count)])
        v_new = np.array([_mlp(block, "node", np.concatenate([aggregated[r], v[r], u])) for r in range(count)])
        u_new = _mlp(block, "global", np.concatenate([sum(edges.values()), v_new.sum(0), u]))
        np.testing.assert_allclose(node_out[b, real], v_new @ p["output"]["kernel"] + p["output"]["bias"],
                                   rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(graph_out[b], u_new @ p["output"]["kernel"] + p["output"]["bias"],
                                   rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("concat", [True, False])
def test_gat_layer_matches_velickovic_equations_in_numpy(concat):
    layer = GATLayer(features=3, num_heads=2, concat=concat)
    graph = _random_graph(4)
    mask = (graph.adjacency_BxVxV != 0) | np.eye(NODES, dtype=bool)
    mask &= graph.node_mask_BxV[:, :, None] & graph.node_mask_BxV[:, None, :]
    params = random_params(layer, graph.nodes_BxVxD, mask, scale=0.5)
    out = jax.jit(layer.apply)({"params": params}, graph.nodes_BxVxD, mask)

    p = jax.tree.map(lambda v: np.asarray(v, np.float64), params)
    wh = (graph.nodes_BxVxD @ p["project"]["kernel"]).reshape(BATCH, NODES, 2, 3)
    heads = []
    for k in range(2):
        a = np.concatenate([p["attention"][0, k], p["attention"][1, k]])  # a_k in a^T [W h_i || W h_j]
        expected = np.zeros((BATCH, NODES, 3))
        for b in range(BATCH):
            for i in np.flatnonzero(graph.node_mask_BxV[b]):
                neighbours = np.flatnonzero(mask[b, i])
                scores = np.array([np.concatenate([wh[b, i, k], wh[b, j, k]]) @ a for j in neighbours])
                scores = np.where(scores > 0, scores, 0.2 * scores)  # LeakyReLU, slope 0.2
                alpha = np.exp(scores - scores.max()) / np.exp(scores - scores.max()).sum()
                expected[b, i] = (alpha[:, None] * wh[b, neighbours, k]).sum(0)
        heads.append(expected)
    expected = (np.concatenate(heads, -1) if concat else np.mean(heads, 0)) + p["bias"]
    real = graph.node_mask_BxV
    np.testing.assert_allclose(np.asarray(out)[real], expected[real], rtol=1e-4, atol=1e-4)


def test_edge_lists_and_packed_arrays_are_the_same_graph():
    rng = np.random.default_rng(5)
    nodes = rng.normal(size=(BATCH, 4, FEATURES)).astype(np.float32)
    senders = np.array([[0, 1, 2, 2, 3], [0, 1, 1, 0, 0]])
    receivers = np.array([[1, 2, 0, 0, 3], [1, 0, 0, 1, 0]])
    edge_mask = np.array([[True] * 5, [True, True, False, True, False]])
    weights = rng.uniform(0.5, 1.5, size=(BATCH, 5)).astype(np.float32)
    node_mask = np.array([[True] * 4, [True, True, False, False]])
    graph = jax.jit(graph_from_edges)(nodes, senders, receivers, edge_mask, node_mask, weights)

    expected = np.zeros((BATCH, 4, 4), np.float32)
    for b in range(BATCH):
        for e in range(5):
            if edge_mask[b, e]:
                expected[b, receivers[b, e], senders[b, e]] += weights[b, e]
    np.testing.assert_allclose(graph.adjacency_BxVxV, expected, rtol=1e-6)
    assert expected[0, 0, 2] == pytest.approx(weights[0, 2] + weights[0, 3])  # a repeated edge adds up
    np.testing.assert_array_equal(graph.node_mask_BxV, node_mask)

    packed = pack_graph(graph)
    assert packed.shape == (BATCH, 4, 4 + 1 + FEATURES)
    chex.assert_trees_all_equal(as_graph(packed), graph)  # what the models see of either form


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="task"):
        jax.eval_shape(get_model("gat", task="edge").init, jax.random.key(0), _random_graph())
    with pytest.raises(ValueError, match="packed graph"):
        as_graph(jnp.zeros((2, 5, 3)))
