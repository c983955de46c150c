"""Parametrisation: why a network needs its non-linearity.

The course's first argument: a linear model h(theta, x) = W x + b draws straight decision
boundaries; linear layers stacked without a non-linearity multiply out to one linear map, so
they stay at its ceiling; a ReLU layer cuts the input space into linear regions and fits
spirals. A linear model, a one-hidden-layer ReLU MLP, the same MLP with the identity activation
and a deep ReLU MLP on ``spirals`` and ``moons`` (one vmapped fit over the seeds each; seed 0's
decision boundaries drawn), and an MLP on ``digits``.
"""
from __future__ import annotations


import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from experiments import framework as fw
from jaxdl import data as datasets, plot, train
from jaxdl.train import optim
from jaxdl.models import get_model

NAME = "parametrization"
DESCRIPTION = "linear vs MLP vs MLP without non-linearity vs deep MLP on spirals, moons and digits"
DEVICE_FIELDS = {"seeds": "seeds"}
MODELS = ("linear", "mlp", "mlp_identity", "deep_mlp")
COURSE = "course (parametrisation)"


def get_config() -> ml_collections.ConfigDict:
    """The default size: about a minute on 2 CPU cores."""
    return ml_collections.ConfigDict(dict(
        seed=0, seeds=5, toy_datasets=("spirals", "moons"), width=256, deep_widths=(64, 64, 64, 64),
        toy_learning_rate=0.01, toy_epochs=300, toy_batch_size=100, digits_widths=(256,),
        digits_learning_rate=1e-3, digits_epochs=60, digits_batch_size=64, figure_resolution=200))


SIZES = {"quick": {"seeds": 2, "toy_datasets": ("spirals",), "toy_epochs": 5, "digits_epochs": 2, "width": 32,
                   "deep_widths": (16, 16), "figure_resolution": 40},
         "full": {"seeds": 10, "toy_epochs": 1000, "digits_epochs": 200}}
FIELDS = {**dict.fromkeys(("seeds", "width", "toy_epochs", "toy_batch_size", "digits_epochs", "digits_batch_size",
                           "figure_resolution"), fw.positive_int),
          **dict.fromkeys(("deep_widths", "digits_widths"), fw.positive_ints),
          **dict.fromkeys(("toy_learning_rate", "digits_learning_rate"), fw.positive),
          "toy_datasets": fw.subset_of("spirals", "moons")}


def build_model(kind: str, config, num_outputs: int):
    """One of ``MODELS`` by name."""
    if kind == "linear":
        return get_model("linear", num_outputs=num_outputs)
    return get_model("mlp", widths=tuple(config.deep_widths) if kind == "deep_mlp" else (config.width,),
                     num_outputs=num_outputs, activation="identity" if kind == "mlp_identity" else "relu")


def _final(result):
    """Each seed's final train and test accuracy."""
    return {split: result.history[f"{split}_accuracy"][:, -1].tolist() for split in ("train", "test")}


def toy_phase(config, ctx) -> fw.Phase:
    """Every model on each toy data set over the seeds; seed 0's decision boundaries."""
    phase, rows = fw.Phase(), []
    for dataset_name in config.toy_datasets:
        data = datasets.load(dataset_name, seed=config.seed)
        tx = optim.get_optimizer("adam", config.toy_learning_rate)
        predictors = {}
        for kind in MODELS:
            model = build_model(kind, config, data.num_classes)
            result = train.fit_seeds(model, data, tx, seeds=fw.seeds(config), epochs=config.toy_epochs,
                                     batch_size=config.toy_batch_size, eval_every=config.toy_epochs,
                                     logger=ctx.logger.with_tags(run=f"{dataset_name}/{kind}"))
            final = phase.numbers[f"{dataset_name}/{kind}"] = _final(result)
            rows.append([dataset_name, kind, np.mean(final["train"]), np.mean(final["test"])])
            state = train.unstack(result.state, 0)
            apply_fn = jax.jit(train.make_apply_fn(model, state.model_state))
            predictors[kind] = lambda points, f=apply_fn, p=state.params: np.asarray(jnp.argmax(f(p, points), -1))
            if kind == "mlp_identity":
                phase.numbers[f"{dataset_name}/identity_is_affine"] = _affine_gap(state.params, data.x_train, apply_fn)
        phase.figures[f"decision_boundaries_{dataset_name}"] = plot.decision_boundaries(
            predictors, data.x_train, data.y_train, title=f"{dataset_name}: decision boundaries (seed {config.seed})",
            resolution=config.figure_resolution)
    phase.tables["accuracy, mean over seeds"] = fw.format_table(
        ["data set", "model", "train accuracy", "test accuracy"], rows, float_format="{:.3f}")
    return phase


def _affine_gap(params, x, apply_fn) -> float:
    """Largest relative difference between the identity MLP and the affine map its layers make."""
    weight, bias = np.eye(dim := int(np.prod(x.shape[1:]))), np.zeros(dim)
    for name in [f"hidden_{i}" for i in range(len(params) - 1)] + ["output"]:
        kernel = np.asarray(params[name]["kernel"], np.float64)
        weight, bias = weight @ kernel, bias @ kernel + np.asarray(params[name]["bias"], np.float64)
    outputs, affine = np.asarray(apply_fn(params, x), np.float64), np.reshape(x, (len(x), -1)) @ weight + bias
    return float(np.max(np.abs(outputs - affine)) / np.max(np.abs(outputs)))


def digits_phase(config, ctx) -> fw.Phase:
    """An MLP on digits over the seeds, with its mean learning curves."""
    digits = datasets.load("digits", seed=config.seed)
    model = get_model("mlp", widths=tuple(config.digits_widths), num_outputs=digits.num_classes)
    result = train.fit_seeds(model, digits, optim.get_optimizer("adam", config.digits_learning_rate),
                             seeds=fw.seeds(config), epochs=config.digits_epochs, batch_size=config.digits_batch_size,
                             logger=ctx.logger.with_tags(run="digits/mlp"))
    h, epochs = result.history, np.arange(1, config.digits_epochs + 1)
    figure = plot.line_plot({split: (epochs, h[f"{split}_accuracy"].mean(0), h[f"{split}_accuracy"].std(0))
                             for split in ("train", "test")}, xlabel="epoch", ylabel="accuracy",
                            title=f"MLP on digits: mean and std over {config.seeds} seeds")
    return fw.Phase(figures={"digits_curves": figure}, arrays={"digits/test_accuracy": h["test_accuracy"]},
                    numbers={"digits/mlp": _final(result)})


def run(config, ctx) -> None:
    ctx.phase("toy data sets", toy_phase, config, ctx)
    ctx.phase("digits", digits_phase, config, ctx)


def claims(config, numbers) -> list:
    out = []
    for name in config.toy_datasets:
        linear, identity = numbers[f"{name}/linear"]["train"], numbers[f"{name}/mlp_identity"]["train"]
        out.append(fw.Claim.within(
            f"{name}_identity_at_linear_ceiling", COURSE, f"{name}: an MLP without non-linearity stays at the linear "
            "model's train accuracy (identity MLP minus linear, paired by seed)",
            np.subtract(identity, linear), target=0.0, tolerance=0.02))
        out.append(fw.Check.at_most(f"{name}_identity_is_affine", "algebra", f"{name}: the trained identity MLP "
                                    "equals the single affine map its layers multiply out to (relative difference)",
                                    numbers[f"{name}/identity_is_affine"], 1e-4, "{:.1e}"))
    if "spirals" in config.toy_datasets:
        out.append(fw.Claim.mean("spirals_mlp_fits", "course (universal approximation)", "spirals: a one-hidden-layer "
                                 "ReLU MLP fits the training set (train accuracy)",
                                 numbers["spirals/mlp"]["train"], above=0.99))
        out.append(fw.Claim.within("spirals_linear_at_chance", COURSE, "spirals: a linear model stays at chance, 1/2 "
                                   "(two interleaved arms have no separating line; train accuracy)",
                                   numbers["spirals/linear"]["train"], target=0.5, tolerance=0.05))
    out.append(fw.Claim.mean("digits_mlp_accuracy", "scikit-learn digits baseline", "digits: a small MLP reaches "
                             "about 97-99% test accuracy", numbers["digits/mlp"]["test"], above=0.97))
    return out


main = fw.entry_point(__name__)


if __name__ == "__main__":
    main()
