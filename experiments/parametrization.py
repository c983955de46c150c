"""Parametrisation: why a network needs its non-linearity.

The course's first argument. A linear model h(theta, x) = W x + b draws straight decision
boundaries; stacking linear layers without a non-linearity gives again a linear map (the
product of the matrices), so it stays at the same ceiling; a ReLU layer cuts the input space
into linear regions and can fit spirals. On ``spirals`` and ``moons`` we train a linear model,
a one-hidden-layer ReLU MLP, the same MLP with the identity activation and a deep ReLU MLP,
and draw their decision boundaries; on ``digits`` an MLP reaches the usual 97-99% test
accuracy.
"""
from __future__ import annotations

import sys
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from experiments import common
from jaxdl import data as datasets
from jaxdl import io, optim, plot, train
from jaxdl.models import get_model

NAME = "parametrization"
DESCRIPTION = "linear vs MLP vs MLP without non-linearity vs deep MLP on spirals, moons and digits"

MODELS = {
    "linear": dict(name="linear"),
    "mlp": dict(name="mlp", activation="relu"),
    "mlp_identity": dict(name="mlp", activation="identity"),
    "deep_mlp": dict(name="mlp", activation="relu", deep=True),
}


def get_config(size: str = "default") -> ml_collections.ConfigDict:
    """Sizes: ``quick`` (seconds, tests), ``default`` (about a minute on 2 CPU cores), ``full``."""
    common.check_size(size)
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.toy_datasets = ("spirals", "moons")
    c.width = 256
    c.deep_widths = (64, 64, 64, 64)
    c.toy_learning_rate = 0.01
    c.toy_epochs = 300
    c.toy_batch_size = 100
    c.digits_widths = (256,)
    c.digits_learning_rate = 1e-3
    c.digits_epochs = 60
    c.digits_batch_size = 64
    c.figure_resolution = 200
    if size == "quick":
        c.toy_datasets = ("spirals",)
        c.toy_epochs = 5
        c.digits_epochs = 2
        c.width = 32
        c.deep_widths = (16, 16)
        c.figure_resolution = 40
    elif size == "full":
        c.toy_epochs = 1000
        c.digits_epochs = 200
    return c


def _validate(config):
    for field in ("width", "toy_epochs", "toy_batch_size", "digits_epochs", "digits_batch_size", "figure_resolution"):
        common.require(int(config[field]) > 0, field, "a positive integer", config[field])
    for field in ("toy_learning_rate", "digits_learning_rate"):
        common.require(config[field] > 0, field, "a positive learning rate", config[field])
    for name in config.toy_datasets:
        common.require(name in ("spirals", "moons"), "toy_datasets", "names among spirals, moons", name)


def build_model(kind: str, config, num_outputs: int):
    """The four models compared, by name (see ``MODELS``)."""
    spec = MODELS[kind]
    if spec["name"] == "linear":
        return get_model("linear", num_outputs=num_outputs)
    widths = tuple(config.deep_widths) if spec.get("deep") else (int(config.width),)
    return get_model("mlp", widths=widths, num_outputs=num_outputs, activation=spec["activation"])


def run(config, run_dir: io.RunDir) -> dict:
    _validate(config)
    with run_dir.logger() as logger:
        result = _run(config, run_dir, logger)
    run_dir.save_results(**{f"accuracy/{k}": np.asarray(v) for k, v in result["accuracy"].items()})
    return result


def _run(config, run_dir, logger) -> dict:
    figures, rows, accuracy = [], [], {}
    for dataset_name in config.toy_datasets:
        data = datasets.load(dataset_name, seed=config.seed)
        tx = optim.get_optimizer("adam", config.toy_learning_rate)
        predictors = {}
        for kind in MODELS:
            model = build_model(kind, config, data.num_classes)
            start = time.perf_counter()
            result = train.fit(model, data, tx, epochs=config.toy_epochs, batch_size=config.toy_batch_size,
                               seed=config.seed, logger=logger.with_tags(run=f"{dataset_name}/{kind}"))
            seconds = time.perf_counter() - start
            h = result.history
            accuracy[(dataset_name, kind)] = (float(h["train_accuracy"][-1]), float(h["test_accuracy"][-1]))
            rows.append([dataset_name, kind, *accuracy[(dataset_name, kind)], seconds])
            apply_fn = jax.jit(train.make_apply_fn(model, result.state.model_state))
            params = result.state.params
            predictors[kind] = lambda points, f=apply_fn, p=params: np.asarray(jnp.argmax(f(p, points), -1))
        path = run_dir.figure_path(f"decision_boundaries_{dataset_name}")
        plot.decision_boundaries(predictors, data.x_train, data.y_train, title=f"{dataset_name}: decision boundaries",
                                 path=path, resolution=config.figure_resolution)
        figures.append(path)

    digits = datasets.load("digits", seed=config.seed)
    model = get_model("mlp", widths=tuple(config.digits_widths), num_outputs=digits.num_classes)
    tx = optim.get_optimizer("adam", config.digits_learning_rate)
    start = time.perf_counter()
    result = train.fit(model, digits, tx, epochs=config.digits_epochs, batch_size=config.digits_batch_size,
                       seed=config.seed, logger=logger.with_tags(run="digits/mlp"))
    h = result.history
    accuracy[("digits", "mlp")] = (float(h["train_accuracy"][-1]), float(h["test_accuracy"][-1]))
    rows.append(["digits", "mlp", *accuracy[("digits", "mlp")], time.perf_counter() - start])
    path = run_dir.figure_path("digits_curves")
    epochs = np.arange(1, config.digits_epochs + 1)
    plot.line_plot({"train": (epochs, h["train_accuracy"]), "test": (epochs, h["test_accuracy"])},
                   xlabel="epoch", ylabel="accuracy", title="MLP on digits", path=path)
    figures.append(path)

    table = common.format_table(["data set", "model", "train accuracy", "test accuracy", "seconds"], rows,
                                float_format="{:.3f}")
    return {"tables": {"accuracy": table}, "figures": figures,
            "accuracy": {f"{d}/{m}": v for (d, m), v in accuracy.items()}}


def claims(result: dict) -> list:
    acc = result["accuracy"]
    out = []
    for dataset_name in ("spirals", "moons"):
        if f"{dataset_name}/linear" not in acc:
            continue
        linear, identity = acc[f"{dataset_name}/linear"][0], acc[f"{dataset_name}/mlp_identity"][0]
        out.append(common.Claim.check(
            "course (composition of linear maps)",
            f"{dataset_name}: an MLP without non-linearity stays at the linear model's ceiling",
            f"|train acc - linear {linear:.3f}| <= 0.02", identity, lambda a, l=linear: abs(a - l) <= 0.02))
    if "spirals/mlp" in acc:
        out.append(common.Claim.at_least(
            "course (universal approximation)", "spirals: a one-hidden-layer ReLU MLP fits the training set",
            acc["spirals/mlp"][0], 0.99))
        out.append(common.Claim.at_most(
            "course", "spirals: a linear model cannot separate the arms (train accuracy)",
            acc["spirals/linear"][0], 0.7))
    out.append(common.Claim.at_least(
        "scikit-learn digits baseline", "digits: a small MLP reaches about 97-99% test accuracy",
        acc["digits/mlp"][1], 0.97))
    return out


def main(argv=None):
    return common.experiment_main(sys.modules[__name__], argv)


if __name__ == "__main__":
    main()
