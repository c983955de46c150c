"""A small graph task for ``experiments.architectures``: graph network versus MLP.

Random Erdos-Renyi graphs with 8 to ``max_nodes`` nodes (padded to ``max_nodes``); the label
says whether some node has degree >= a threshold (the training median of the maximum degree,
so the classes are balanced). A graph network (Battaglia et al. 2018) computes degrees with
one round of sum aggregation and pools over nodes, whatever their order; an MLP on the
flattened adjacency matrix has to learn both the per-node sums and the invariance to node
order from examples. The test set is evaluated once as drawn and once with every graph's
nodes permuted: the graph network's outputs do not change, the MLP's do.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from experiments import common
from jaxdl import optim, plot, train
from jaxdl.data import Dataset
from jaxdl.models import get_model
from jaxdl.models.graph import Graph, pack_graph


def get_config(size: str = "default") -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.max_nodes = 12
    c.edge_probability = 0.25
    c.num_train = 2000
    c.num_test = 1000
    c.epochs = 25
    c.batch_size = 100
    c.learning_rate = 3e-3
    c.hidden_dim = 32
    c.mlp_widths = (256, 256)
    if size == "quick":
        c.num_train, c.num_test, c.epochs, c.hidden_dim, c.mlp_widths = 200, 100, 1, 8, (32,)
    elif size == "full":
        c.num_train, c.num_test, c.epochs = 10000, 2000, 100
    return c


def random_graphs(rng: np.random.Generator, count: int, max_nodes: int, p: float):
    """Undirected graphs: ``adjacency_BxNxN`` (0/1, symmetric, no self-loops), ``mask_BxN``."""
    sizes = rng.integers(8, max_nodes + 1, size=count)
    upper = np.triu(rng.random((count, max_nodes, max_nodes)) < p, k=1)
    mask = np.arange(max_nodes)[None] < sizes[:, None]
    adjacency = (upper | upper.transpose(0, 2, 1)) & mask[:, :, None] & mask[:, None, :]
    return adjacency.astype(np.float32), mask


def permute_nodes(rng: np.random.Generator, adjacency, mask):
    """The same graphs with each one's nodes (padding included) in a random order."""
    perms = np.stack([rng.permutation(adjacency.shape[1]) for _ in range(adjacency.shape[0])])
    rows = np.arange(adjacency.shape[0])[:, None]
    return adjacency[rows[..., None], perms[:, :, None], perms[:, None, :]], mask[rows, perms]


def _pack(adjacency, mask):
    nodes = mask[..., None].astype(np.float32)  # every real node has the feature 1
    return np.asarray(pack_graph(Graph(jnp.asarray(nodes), jnp.asarray(adjacency), jnp.asarray(mask))))


def run(config, logger) -> dict:
    for field in ("num_train", "num_test", "epochs", "batch_size", "hidden_dim"):
        common.require(int(config[field]) > 0, f"graph.{field}", "a positive integer", config[field])
    common.require(0 < config.edge_probability < 1, "graph.edge_probability", "a number in (0, 1)",
                   config.edge_probability)
    common.require(config.max_nodes >= 8, "graph.max_nodes", "an integer >= 8", config.max_nodes)
    rng = np.random.default_rng(config.seed)
    adjacency, mask = random_graphs(rng, config.num_train + config.num_test, config.max_nodes,
                                    config.edge_probability)
    max_degree = adjacency.sum(-1).max(-1)
    threshold = float(np.median(max_degree[: config.num_train]))
    labels = (max_degree >= threshold).astype(np.int32)
    test_adjacency, test_mask = adjacency[config.num_train:], mask[config.num_train:]
    permuted_adjacency, permuted_mask = permute_nodes(rng, test_adjacency, test_mask)
    split = config.num_train
    views = {
        "graph_network": (_pack(adjacency, mask), _pack(permuted_adjacency, permuted_mask)),
        "mlp": (adjacency.reshape(len(adjacency), -1), permuted_adjacency.reshape(len(test_adjacency), -1)),
    }
    models = {
        "graph_network": get_model("graph_network", hidden_dim=config.hidden_dim, num_layers=2, num_outputs=2),
        "mlp": get_model("mlp", widths=tuple(config.mlp_widths), num_outputs=2),
    }
    tx = optim.get_optimizer("adam", config.learning_rate)
    summary, arrays, rows = {}, {}, []
    for name, (x, x_permuted) in views.items():
        data = Dataset(x[:split], labels[:split], x[split:], labels[split:], 2, f"graphs/{name}")
        result = train.fit(models[name], data, tx, epochs=config.epochs, batch_size=config.batch_size,
                           seed=config.seed, logger=logger)
        apply_fn = jax.jit(train.make_apply_fn(models[name], result.state.model_state))
        # Full float32 matmuls: on GPUs the default (TF32) rounding would hide what is checked.
        with jax.default_matmul_precision("highest"):
            logits = np.asarray(apply_fn(result.state.params, x[split:]))
            logits_permuted = np.asarray(apply_fn(result.state.params, x_permuted))
        accuracy = float(np.mean(logits.argmax(-1) == labels[split:]))
        accuracy_permuted = float(np.mean(logits_permuted.argmax(-1) == labels[split:]))
        # Relative to the logits' scale: summing the same messages in another order moves
        # float32 results by rounding only.
        change = float(np.max(np.abs(logits - logits_permuted)) / max(np.max(np.abs(logits)), 1e-12))
        summary[name] = {"train_accuracy": float(result.history["train_accuracy"][-1]), "test_accuracy": accuracy,
                         "permuted_test_accuracy": accuracy_permuted, "max_output_change": change}
        arrays[f"{name}/test_accuracy"] = result.history["test_accuracy"]
        rows.append([name, summary[name]["train_accuracy"], accuracy, accuracy_permuted, change])
    table = common.format_table(["model", "train accuracy", "test accuracy", "test accuracy (nodes permuted)",
                                 "max relative output change under permutation"], rows, float_format="{:.3g}")

    def figures(run_dir):
        path = run_dir.figure_path("graph_task_accuracy")
        labels_ = [f"{n}\n{v}" for n in summary for v in ("as drawn", "permuted")]
        values = [summary[n][k] for n in summary for k in ("test_accuracy", "permuted_test_accuracy")]
        plot.bar_chart(labels_, values, ylabel="test accuracy",
                       title=f"has a node of degree >= {threshold:g}? (chance 0.5)", path=path)
        return [path]

    return {"table": table, "figures": figures, "summary": summary, "arrays": arrays}


def claims(summary: dict) -> list:
    gn, mlp = summary["graph_network"], summary["mlp"]
    return [
        common.Claim.check(
            "Battaglia et al. 2018", "a graph network beats an MLP on the flattened adjacency (test accuracy)",
            "GN > MLP", (gn["test_accuracy"], mlp["test_accuracy"]), lambda v: v[0] > v[1],
            "{0[0]:.3f} vs {0[1]:.3f}"),
        common.Claim.at_most(
            "Battaglia et al. 2018", "graph-network outputs are unchanged when the nodes are permuted "
            "(max relative change, float32 rounding only)", gn["max_output_change"], 1e-5, "{:.2g}"),
    ]
