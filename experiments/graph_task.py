"""A small graph task for ``experiments.architectures``: graph network versus MLP.

Does a random graph have a node of high degree (:func:`jaxdl.data.degree_graphs`)? A graph network
(Battaglia et al. 2018) computes degrees with one round of sum aggregation and pools over nodes,
whatever their order; an MLP on the flattened adjacency matrix must learn both the per-node sums
and the invariance to node order from examples. Both train over the seeds (one vmapped fit
each); the test set is evaluated as drawn and with every graph's nodes permuted: the graph
network's outputs do not change (a check), the MLP's do.
"""
from __future__ import annotations

import dataclasses

import jax
import ml_collections
import numpy as np
from scipy import stats

from experiments import framework as fw
from jaxdl import data as datasets, plot, train
from jaxdl.train import optim
from jaxdl.models import as_graph, get_model


def get_config() -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(dict(max_nodes=12, edge_probability=0.25, num_train=2000, num_test=1000,
                                          epochs=25, batch_size=100, learning_rate=3e-3, hidden_dim=32,
                                          mlp_widths=(256, 256)))


QUICK = {"graph.num_train": 200, "graph.num_test": 100, "graph.epochs": 1, "graph.hidden_dim": 8,
         "graph.mlp_widths": (32,)}
FULL = {"graph.num_train": 10000, "graph.num_test": 2000, "graph.epochs": 100}
FIELDS = {**dict.fromkeys(("graph.num_train", "graph.num_test", "graph.epochs", "graph.batch_size",
                           "graph.hidden_dim"), fw.positive_int),
          "graph.mlp_widths": fw.positive_ints, "graph.learning_rate": fw.positive,
          "graph.edge_probability": fw.expect(lambda v: 0 < v < 1, "a number in (0, 1)"),
          "graph.max_nodes": fw.expect(lambda v: int(v) == v >= datasets.graphs.MIN_NODES,
                                       f"an integer >= {datasets.graphs.MIN_NODES}")}


def graph_phase(config, ctx) -> fw.Phase:
    """A graph network and an MLP on the degree task over the seeds: test accuracy as drawn and
    with the nodes permuted, and the largest relative change of the outputs."""
    cfg = config.graph
    graphs = datasets.degree_graphs(cfg.num_train, cfg.num_test, cfg.max_nodes, cfg.edge_probability, seed=config.seed)
    permuted = datasets.permute_graph_nodes(graphs.x_test, seed=config.seed + 1)
    adjacency = lambda x: np.asarray(as_graph(x).adjacency_BxVxV).reshape(len(x), -1)
    views = {"graph_network": (graphs, permuted),
             "mlp": (dataclasses.replace(graphs, x_train=adjacency(graphs.x_train), x_test=adjacency(graphs.x_test),
                                         name="degree_graphs/adjacency"), adjacency(permuted))}
    models = {"graph_network": get_model("graph_network", hidden_dim=cfg.hidden_dim, num_layers=2, num_outputs=2),
              "mlp": get_model("mlp", widths=tuple(cfg.mlp_widths), num_outputs=2)}
    numbers, rows = {}, []
    for name, (data, x_permuted) in views.items():
        result = train.fit_seeds(models[name], data, optim.get_optimizer("adam", cfg.learning_rate),
                                 seeds=fw.seeds(config), epochs=cfg.epochs, batch_size=cfg.batch_size,
                                 eval_every=cfg.epochs, logger=ctx.logger.with_tags(run=f"graph/{name}"))
        apply_fn = jax.jit(jax.vmap(train.make_apply_fn(models[name]), in_axes=(0, None)))
        # Full float32 matmuls: on GPUs the default (TF32) rounding would hide what is checked.
        with jax.default_matmul_precision("highest"):
            logits_KxBxC, permuted_KxBxC = (np.asarray(apply_fn(result.state.params, x)) for x in (data.x_test,
                                                                                                    x_permuted))
        # Relative to the logits' scale: summing the same messages in another order moves
        # float32 results by rounding only.
        change_K = np.abs(logits_KxBxC - permuted_KxBxC).max((1, 2)) / np.abs(logits_KxBxC).max((1, 2))
        numbers[f"graph/{name}"] = {"test": (logits_KxBxC.argmax(-1) == data.y_test).mean(-1).tolist(),
                                    "permuted": (permuted_KxBxC.argmax(-1) == data.y_test).mean(-1).tolist(),
                                    "change": change_K.tolist()}
        rows.append([name, *(f"{np.mean(v):.3f} +- {stats.sem(v):.3f}" for v in (
            result.history["train_accuracy"][:, -1], numbers[f"graph/{name}"]["test"],
            numbers[f"graph/{name}"]["permuted"])), float(change_K.max())])
    table = fw.format_table(["model", "train accuracy", "test accuracy", "test accuracy (nodes permuted)",
                             "max relative output change under permutation"], rows, float_format="{:.3g}")
    bars = {f"{n.replace('_', ' ')}\n{v}": numbers[f"graph/{n}"][k] for n in views
            for k, v in (("test", "as drawn"), ("permuted", "permuted"))}
    title = f"has a node of degree >= {datasets.degree_threshold(graphs):g}? (chance 0.5; {config.seeds} seeds)"
    figure = plot.bar_chart(list(bars), [np.mean(v) for v in bars.values()], [stats.sem(v) for v in bars.values()],
                            ylabel="test accuracy", title=title)
    return fw.Phase(tables={"graph": table}, figures={"graph_task_accuracy": figure}, numbers=numbers)


def claims(config, numbers) -> list:
    gn, mlp = numbers["graph/graph_network"], numbers["graph/mlp"]
    return [fw.Claim.difference(
        "graph_network_beats_mlp", "Battaglia et al. 2018", "degree task: test accuracy of a graph network minus an "
        f"MLP on the flattened adjacency matrix ({config.seeds} seeds each)", gn["test"], mlp["test"], above=0.0),
        fw.Check.at_most(
        "graph_network_permutation_invariant", "Battaglia et al. 2018", "graph-network outputs are unchanged when the "
        "nodes are permuted (sum aggregation; max relative change over seeds, float32 rounding only)",
        max(gn["change"]), 1e-5, "{:.2g}")]
