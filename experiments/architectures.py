"""Architectures as structural priors: the MNIST-1D table (Greydanus 2020) and a graph task.

A convolution shares one function across positions, a recurrent net one across time, a graph
network one across nodes (and is blind to their order). On MNIST-1D with the published split
we train logistic regression, an MLP, a CNN, a GRU, an LSTM and a transformer, each over
several seeds as one vmapped program, on the plain signals and on the shuffled ones (one
fixed permutation of the 40 positions). Shuffling costs nothing to the models that do not
know about positions (logistic, MLP) and a lot to those whose prior is locality (CNN, GRU).

The graph task (``experiments.graph_task``): decide whether a random graph has a node of
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
DEVICE_FIELDS = {"seeds": "seeds"}  # see experiments.device_defaults

# Test accuracy in Greydanus 2020 (Table 1): plain and shuffled sequences.
PUBLISHED = {"logistic": (0.32, 0.32), "mlp": (0.68, 0.68), "cnn": (0.94, 0.56), "gru": (0.91, 0.57)}


def _models(size: str) -> ml_collections.ConfigDict:
    # The published architectures (Greydanus 2020): residual MLP 100-100, CNN 3 x 25 channels
    # (kernels 5, 3, 3, stride 2) with a linear read-out of the flattened features,
    # bidirectional GRU of 6 units read out from all 40 states. The CNN runs its convolutions
    # as matmuls over patches (same function, several times faster in a scanned epoch on CPU).
    # The cheap models follow the published protocol (Adam at 1e-2, constant, 6000 steps);
    # the others get fewer steps with a cosine decay, which reaches the same accuracies sooner.
    def spec(name, learning_rate, epochs, schedule="cosine", **hparams):
        return dict(name=name, learning_rate=learning_rate, epochs=epochs, schedule=schedule, hparams=hparams)

    models = {
        "logistic": spec("linear", 1e-2, 40),
        "mlp": spec("mlp", 1e-2, 150, "constant", widths=(100, 100), residual=True),
        "cnn": spec("cnn1d", 2e-2, 40, channels=(25, 25, 25), kernel_size=5, strides=2, pool="none",
                    dense_widths=(), conv_implementation="patches"),
        "gru": spec("gru", 2e-2, 40, hidden_size=6, bidirectional=True, readout="flatten"),
        "lstm": spec("lstm", 2e-2, 30, hidden_size=6, bidirectional=True, readout="flatten"),
        "transformer": spec("transformer", 3e-3, 30, num_layers=1, model_dim=32, num_heads=4, mlp_dim=64,
                            positional="learned", patch_size=5),
    }
    if size == "quick":
        models = {k: dict(models[k], epochs=1) for k in ("logistic", "cnn")}
    elif size == "full":
        # The published protocol for every model; a transformer (not in the paper) of two layers
        # on 4-step patches at its own rate.
        for name, model in models.items():
            model.update(epochs=150, schedule="constant", learning_rate=1e-2)
        models["transformer"].update(learning_rate=3e-3)
        models["transformer"]["hparams"].update(num_layers=2, patch_size=4)
    return ml_collections.ConfigDict(models)


# ConfigDict sorts its keys; tables and figures follow the paper's order instead.
MODEL_ORDER = ("logistic", "mlp", "cnn", "gru", "lstm", "transformer")


def _ordered(names):
    return sorted(names, key=lambda n: (MODEL_ORDER.index(n) if n in MODEL_ORDER else len(MODEL_ORDER), n))


def get_config(size: str = "default") -> ml_collections.ConfigDict:
    """Sizes: ``quick`` (seconds, tests); ``default`` (minutes on 2 CPU cores: Adam, batch
    100, the published 6000 steps for logistic regression and the MLP, 1200 to 1600 steps with
    a cosine decay for the others); ``full`` (the published protocol for every model: Adam at a
    constant 1e-2, batch 100, 6000 steps = 150 epochs, 5 seeds).

    Signals are used raw, as published: per-position standardisation would give every position
    its own scale, against the translation structure a convolution exploits."""
    common.check_size(size)
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.seeds = 3
    c.batch_size = 100
    c.eval_every = 5  # epochs between evaluations of train and test metrics (the last always)
    c.standardize = False
    c.num_samples = 5000
    c.models = _models(size)
    c.graph = graph_task.get_config(size)
    if size == "quick":
        c.seeds = 2
    elif size == "full":
        c.seeds = 5
    return c


def _validate(config):
    for field in ("seeds", "batch_size", "eval_every"):
        common.require(int(config[field]) > 0, field, "a positive integer", config[field])
    common.require(config.num_samples % 10 == 0 and config.num_samples >= 100, "num_samples",
                   "a multiple of 10, at least 100", config.num_samples)
    for name, spec in config.models.items():
        common.require(spec.learning_rate > 0, f"models.{name}.learning_rate", "a positive learning rate",
                       spec.learning_rate)
        common.require(int(spec.epochs) > 0, f"models.{name}.epochs", "a positive integer", spec.epochs)
        common.require(spec.schedule in ("constant", "cosine"), f"models.{name}.schedule",
                       "'constant' or 'cosine'", spec.schedule)


def run(config, run_dir: io.RunDir) -> dict:
    _validate(config)
    seeds = [config.seed + i for i in range(config.seeds)]
    accuracy, seconds, arrays = {}, {}, {}
    with run_dir.logger() as logger:
        for variant, shuffle in (("plain", False), ("shuffled", True)):
            data = datasets.load("mnist1d", shuffle=shuffle, num_samples=config.num_samples,
                                 standardize=config.standardize)
            for name in _ordered(config.models):
                spec = config.models[name]
                model = get_model(spec.name, num_outputs=data.num_classes, **spec.hparams.to_dict())
                steps = spec.epochs * (data.x_train.shape[0] // config.batch_size)
                tx = optim.get_optimizer("adam", spec.learning_rate, schedule=spec.schedule, total_steps=steps)
                start = time.perf_counter()
                result = train.fit_seeds(model, data, tx, seeds=seeds, epochs=spec.epochs,
                                         batch_size=config.batch_size, eval_every=config.eval_every,
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
                     config.models[name].epochs, seconds[(name, "plain")] + seconds[(name, "shuffled")]])
    table = common.format_table(
        ["model", "test acc (plain)", "published", "test acc (shuffled)", "published (shuffled)", "epochs",
         "seconds"],
        rows, float_format="{:.1f}")
    path = run_dir.figure_path("mnist1d_accuracy")
    labels = [f"{n}\n{v}" for n in names for v in ("plain", "shuffled")]
    means = [float(accuracy[(n, v)].mean()) for n in names for v in ("plain", "shuffled")]
    stds = [float(accuracy[(n, v)].std()) for n in names for v in ("plain", "shuffled")]
    reference = [PUBLISHED[n][i] if n in PUBLISHED else None for n in names for i in (0, 1)]
    plot.bar_chart(labels, means, errors=stds, reference=reference, ylabel="test accuracy",
                   title=f"MNIST-1D, mean and std over {config.seeds} seeds", path=path)
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
