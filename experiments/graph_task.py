"""A small graph task for ``experiments.architectures``: graph network versus MLP.

The data set is :func:`jaxdl.data.degree_graphs` (does a random graph have a node of high
degree?). A graph network (Battaglia et al. 2018) computes degrees with one round of sum
aggregation and pools over nodes, whatever their order; an MLP on the flattened adjacency
matrix has to learn both the per-node sums and the invariance to node order from examples.
The test set is evaluated once as drawn and once with every graph's nodes permuted
(:func:`jaxdl.data.permute_graph_nodes`): the graph network's outputs do not change, the MLP's do.
"""
from __future__ import annotations

import dataclasses

import jax
import ml_collections
import numpy as np

from experiments import common
from jaxdl import data as datasets
from jaxdl import optim, plot, train
from jaxdl.models import as_graph, get_model


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


def run(config, logger) -> dict:
    for field in ("num_train", "num_test", "epochs", "batch_size", "hidden_dim"):
        common.require(int(config[field]) > 0, f"graph.{field}", "a positive integer", config[field])
    common.require(0 < config.edge_probability < 1, "graph.edge_probability", "a number in (0, 1)",
                   config.edge_probability)
    common.require(config.max_nodes >= datasets.graphs.MIN_NODES, "graph.max_nodes",
                   f"an integer >= {datasets.graphs.MIN_NODES}", config.max_nodes)
    graphs = datasets.degree_graphs(config.num_train, config.num_test, config.max_nodes, config.edge_probability,
                                    seed=config.seed)
    permuted = datasets.permute_graph_nodes(graphs.x_test, seed=config.seed + 1)
    adjacency = lambda x: np.asarray(as_graph(x).adjacency_BxNxN).reshape(len(x), -1)
    views = {
        "graph_network": (graphs, permuted),
        "mlp": (dataclasses.replace(graphs, x_train=adjacency(graphs.x_train), x_test=adjacency(graphs.x_test),
                                    name="degree_graphs/adjacency"), adjacency(permuted)),
    }
    models = {
        "graph_network": get_model("graph_network", hidden_dim=config.hidden_dim, num_layers=2, num_outputs=2),
        "mlp": get_model("mlp", widths=tuple(config.mlp_widths), num_outputs=2),
    }
    tx = optim.get_optimizer("adam", config.learning_rate)
    summary, arrays, rows = {}, {}, []
    for name, (data, x_permuted) in views.items():
        result = train.fit(models[name], data, tx, epochs=config.epochs, batch_size=config.batch_size,
                           seed=config.seed, logger=logger)
        apply_fn = jax.jit(train.make_apply_fn(models[name], result.state.model_state))
        # Full float32 matmuls: on GPUs the default (TF32) rounding would hide what is checked.
        with jax.default_matmul_precision("highest"):
            logits = np.asarray(apply_fn(result.state.params, data.x_test))
            logits_permuted = np.asarray(apply_fn(result.state.params, x_permuted))
        accuracy = float(np.mean(logits.argmax(-1) == data.y_test))
        accuracy_permuted = float(np.mean(logits_permuted.argmax(-1) == data.y_test))
        # Relative to the logits' scale: summing the same messages in another order moves
        # float32 results by rounding only.
        change = float(np.max(np.abs(logits - logits_permuted)) / max(np.max(np.abs(logits)), 1e-12))
        summary[name] = {"train_accuracy": float(result.history["train_accuracy"][-1]), "test_accuracy": accuracy,
                         "permuted_test_accuracy": accuracy_permuted, "max_output_change": change}
        arrays[f"{name}/test_accuracy"] = result.history["test_accuracy"]
        rows.append([name, summary[name]["train_accuracy"], accuracy, accuracy_permuted, change])
    table = common.format_table(["model", "train accuracy", "test accuracy", "test accuracy (nodes permuted)",
                                 "max relative output change under permutation"], rows, float_format="{:.3g}")
    threshold = datasets.degree_threshold(graphs)

    def figures(run_dir):
        path = run_dir.figure_path("graph_task_accuracy")
        labels = [f"{n}\n{v}" for n in summary for v in ("as drawn", "permuted")]
        values = [summary[n][k] for n in summary for k in ("test_accuracy", "permuted_test_accuracy")]
        plot.bar_chart(labels, values, ylabel="test accuracy",
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
