"""Architectures as structural priors: the MNIST-1D table (Greydanus 2020) and a graph task.

A convolution shares one function across positions, a recurrent net one across time, a graph
network one across nodes (and is blind to their order). On MNIST-1D with the published split
we train logistic regression, an MLP, a CNN, a GRU, an LSTM and a transformer, each over
several seeds as one vmapped program, on the plain signals and on the shuffled ones (one
fixed permutation of the 40 positions). Shuffling costs nothing to the models that do not
know about positions (logistic, MLP) and a lot to those whose prior is locality (CNN, GRU).

The graph task (``jaxdl.experiments.graph_task``): decide whether a random graph has a node of
high degree. A graph network (Battaglia et al. 2018) sees the graph; an MLP sees its flattened
adjacency matrix and must learn the invariance to node order from data.
"""
from __future__ import annotations

import sys
import time

import ml_collections
import numpy as np

from experiments import common
from experiments import graph_task
from jaxdl import data as datasets
from jaxdl import io, optim, plot, train
from jaxdl.models import get_model

NAME = "architectures"
DESCRIPTION = "MNIST-1D: logistic, MLP, CNN, GRU, LSTM, transformer on plain vs shuffled signals; graph network vs MLP"

# Test accuracy in Greydanus 2020 (Table 1): plain and shuffled sequences.
PUBLISHED = {"logistic": (0.32, 0.32), "mlp": (0.68, 0.68), "cnn": (0.94, 0.56), "gru": (0.91, 0.57)}


def _models(size: str) -> ml_collections.ConfigDict:
    models = {
        "logistic": dict(name="linear", learning_rate=1e-2, hparams=dict()),
        "mlp": dict(name="mlp", learning_rate=1e-2, hparams=dict(widths=(100, 100))),
        "cnn": dict(name="cnn1d", learning_rate=1e-2, hparams=dict(
            channels=(25, 25, 25), kernel_size=5, strides=2, pool="none", dense_widths=())),
        "gru": dict(name="gru", learning_rate=1e-2, hparams=dict(hidden_size=32, readout="last")),
        "lstm": dict(name="lstm", learning_rate=1e-2, hparams=dict(hidden_size=32, readout="last")),
        "transformer": dict(name="transformer", learning_rate=3e-3, hparams=dict(
            num_layers=2, model_dim=32, num_heads=4, mlp_dim=64, positional="learned")),
    }
    if size == "quick":
        models = {k: models[k] for k in ("logistic", "cnn")}
    return ml_collections.ConfigDict(models)


# ConfigDict sorts its keys; tables and figures follow the paper's order instead.
MODEL_ORDER = ("logistic", "mlp", "cnn", "gru", "lstm", "transformer")


def _ordered(names):
    return sorted(names, key=lambda n: (MODEL_ORDER.index(n) if n in MODEL_ORDER else len(MODEL_ORDER), n))


def get_config(size: str = "default") -> ml_collections.ConfigDict:
    """Sizes: ``quick`` (seconds, tests), ``default`` (minutes on 2 CPU cores), ``full``
    (the published protocol: Adam, batch 100, 8000 steps = 200 epochs)."""
    common.check_size(size)
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.seeds = 3
    c.epochs = 60
    c.batch_size = 100
    c.num_samples = 5000
    c.models = _models(size)
    c.graph = graph_task.get_config(size)
    if size == "quick":
        c.seeds = 2
        c.epochs = 1
    elif size == "full":
        c.seeds = 5
        c.epochs = 200
    return c


def _validate(config):
    for field in ("seeds", "epochs", "batch_size"):
        common.require(int(config[field]) > 0, field, "a positive integer", config[field])
    common.require(config.num_samples % 10 == 0 and config.num_samples >= 100, "num_samples",
                   "a multiple of 10, at least 100", config.num_samples)
    for name, spec in config.models.items():
        common.require(spec.learning_rate > 0, f"models.{name}.learning_rate", "a positive learning rate",
                       spec.learning_rate)


def run(config, workdir: str) -> dict:
    _validate(config)
    run_dir = io.RunDir(workdir)
    seeds = [config.seed + i for i in range(config.seeds)]
    accuracy, seconds, arrays = {}, {}, {}
    with run_dir.logger() as logger:
        for variant, shuffle in (("plain", False), ("shuffled", True)):
            data = datasets.load("mnist1d", shuffle=shuffle, num_samples=config.num_samples)
            for name in _ordered(config.models):
                spec = config.models[name]
                model = get_model(spec.name, num_outputs=data.num_classes, **spec.hparams.to_dict())
                tx = optim.get_optimizer("adam", spec.learning_rate)
                start = time.perf_counter()
                result = train.fit_seeds(model, data, tx, seeds=seeds, epochs=config.epochs,
                                         batch_size=config.batch_size,
                                         logger=logger.with_tags(run=f"{variant}/{name}"))
                seconds[(name, variant)] = time.perf_counter() - start
                final = result.history["test_accuracy"][:, -1]
                accuracy[(name, variant)] = final
                arrays[f"{variant}/{name}/test_accuracy"] = result.history["test_accuracy"]
                print(f"{variant:8s} {name:12s} test accuracy {final.mean():.3f} +- {final.std():.3f} "
                      f"({seconds[(name, variant)]:.1f} s)")
        graph_result = graph_task.run(config.graph, logger.with_tags(run="graph"))
    run_dir.save_results(**arrays, **{f"graph/{k}": np.asarray(v) for k, v in graph_result["arrays"].items()})

    names = _ordered(config.models)
    rows = []
    for name in names:
        plain, shuffled = accuracy[(name, "plain")], accuracy[(name, "shuffled")]
        published = PUBLISHED.get(name)
        rows.append([name, f"{plain.mean():.3f} +- {plain.std():.3f}",
                     f"{published[0]:.2f}" if published else "-",
                     f"{shuffled.mean():.3f} +- {shuffled.std():.3f}",
                     f"{published[1]:.2f}" if published else "-",
                     seconds[(name, "plain")] + seconds[(name, "shuffled")]])
    table = common.format_table(
        ["model", "test acc (plain)", "published", "test acc (shuffled)", "published (shuffled)", "seconds"],
        rows, float_format="{:.1f}")
    path = run_dir.figure_path("mnist1d_accuracy")
    labels = [f"{n}\n{v}" for n in names for v in ("plain", "shuffled")]
    means = [float(accuracy[(n, v)].mean()) for n in names for v in ("plain", "shuffled")]
    stds = [float(accuracy[(n, v)].std()) for n in names for v in ("plain", "shuffled")]
    reference = [PUBLISHED[n][i] if n in PUBLISHED else None for n in names for i in (0, 1)]
    plot.bar_chart(labels, means, errors=stds, reference=reference, ylabel="test accuracy",
                   title=f"MNIST-1D, {config.seeds} seeds, {config.epochs} epochs", path=path)
    return {
        "tables": {"mnist1d": table, "graph": graph_result["table"]},
        "figures": [path] + graph_result["figures"](run_dir),
        "accuracy": {f"{n}/{v}": [float(a) for a in acc] for (n, v), acc in accuracy.items()},
        "graph": graph_result["summary"],
    }


def claims(result: dict) -> list:
    acc = {k: float(np.mean(v)) for k, v in result["accuracy"].items()}
    out = []
    for name, (published, _) in PUBLISHED.items():
        if f"{name}/plain" in acc:
            out.append(common.Claim.at_least(
                "Greydanus 2020", f"{name} reaches its published MNIST-1D test accuracy {published:.0%} "
                "(within 2 points or better)", acc[f"{name}/plain"], published - 0.02))
    for name in ("cnn", "gru"):
        if f"{name}/plain" in acc:
            drop = acc[f"{name}/plain"] - acc[f"{name}/shuffled"]
            out.append(common.Claim.at_least(
                "Greydanus 2020", f"shuffling the positions costs the {name} (a locality prior) > 20 points",
                drop, 0.20))
    for name in ("mlp", "logistic"):
        if f"{name}/plain" in acc:
            drop = abs(acc[f"{name}/plain"] - acc[f"{name}/shuffled"])
            out.append(common.Claim.at_most(
                "Greydanus 2020", f"shuffling the positions leaves the {name} (no spatial prior) within 2 points",
                drop, 0.02))
    out.extend(graph_task.claims(result["graph"]))
    return out


def main(argv=None):
    return common.experiment_main(sys.modules[__name__], argv)


if __name__ == "__main__":
    main()
