"""Loss landscapes: lines, planes and curves through the solutions gradient descent finds.

Three published pictures, on one trained model pair (two seeds, one vmapped fit):

- Goodfellow, Vinyals & Saxe 2015: the loss along the straight line from the initialisation
  to the solution, theta(a) = (1 - a) theta_0 + a theta_1, a in [-0.5, 1.5], falls without a
  bump; the line between two solutions (two seeds) has a barrier.
- Li et al. 2018: the loss on the plane through the solution spanned by two filter-normalised
  random directions (51 x 51 grid in one compiled program, resumable from ``surface.npz``);
  filter normalisation makes the picture blind to rescaling the filters that feed a BatchNorm
  (which leaves the function unchanged), shown on a small ResNet with BatchNorm on ``digits``.
- Garipov et al. 2018: a quadratic Bezier curve and a polygonal chain between the two
  solutions, with the bend trained on random points of the curve, keep the loss low where the
  straight line climbs over the barrier.

BatchNorm statistics are recomputed at every evaluated point (``batchnorm_mode='recompute'``,
as Garipov et al.) or kept frozen at the trained values (``'frozen'``); models without
BatchNorm ignore the mode.
"""
from __future__ import annotations

import os
import sys
from typing import NamedTuple

import jax
import ml_collections
import numpy as np

from experiments import common
from jaxdl import data as datasets
from jaxdl import io, landscape, optim, plot, train, tree
from jaxdl.models import get_model

NAME = "loss_landscape"
DESCRIPTION = ("init-to-solution and solution-to-solution lines, a filter-normalised 2-D surface, Bezier and "
               "polygonal-chain mode connectivity, filter normalisation against BatchNorm rescaling")
DEVICE_FIELDS = {"points_per_chunk": "points_per_chunk"}  # see experiments.device_defaults

BATCHNORM_MODES = ("recompute", "frozen")


def get_config(size: str = "default") -> ml_collections.ConfigDict:
    """Sizes: ``quick`` (seconds, tests); ``default`` (an MLP on MNIST-1D and a ResNet-8 on
    digits, about two minutes on 2 CPU cores); ``full`` (a ResNet-20 on CIFAR-10 files, which
    must be in the data folder or downloaded with ``jaxdl.data.load('cifar10', download=True)``)."""
    common.check_size(size)
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.dataset = "mnist1d"
    c.model = ml_collections.ConfigDict(dict(name="mlp", hparams=dict(widths=(100, 100))))
    c.optimizer = "adam"
    c.learning_rate = 0.01
    c.momentum = 0.9  # for optimizer sgd/momentum/nesterov
    c.epochs = 30
    c.batch_size = 100
    c.batchnorm_mode = "recompute"
    c.batchnorm_batch_size = 500
    c.chunk_size = 1000  # examples per chunk of every full-data evaluation
    c.alpha_range = (-0.5, 1.5)
    c.num_alphas = 101
    c.grid_size = 51
    c.grid_range = (-1.0, 1.0)
    c.points_per_chunk = 8  # on CPU small chunks are fastest; raise it on a GPU
    c.ignore_biasbn = True
    c.orthogonalize = True
    c.curves = ("bezier", "polychain")
    c.curve_epochs = 30
    c.curve_learning_rate = 0.01
    c.curve_weight_decay = 1e-4
    c.curve_points = 61
    # Filter normalisation against rescaling a filter that feeds a BatchNorm.
    c.rescale_dataset = "digits"
    c.rescale_model = ml_collections.ConfigDict(dict(name="resnet", hparams=dict(depth=8, width_multiplier=0.5)))
    c.rescale_epochs = 10  # 0: the initial parameters (the invariance holds at any point)
    c.rescale_factor = 0.1
    c.rescale_points = 21
    if size == "quick":
        c.model.hparams.widths = (16,)
        c.epochs = 2
        c.num_alphas = 9
        c.grid_size = 5
        c.points_per_chunk = 8
        c.curves = ("bezier",)
        c.curve_epochs = 1
        c.curve_points = 7
        c.rescale_model.hparams.update(width_multiplier=0.25)
        c.rescale_epochs = 0
        c.rescale_points = 5
    elif size == "full":
        c.dataset = "cifar10"
        c.model = ml_collections.ConfigDict(dict(name="resnet", hparams=dict(depth=20)))
        c.epochs = 100
        c.batch_size = 128
        c.curve_epochs = 100
        c.chunk_size = 2000
        c.rescale_dataset = "cifar10"
        c.rescale_model = ml_collections.ConfigDict(dict(name="resnet", hparams=dict(depth=20)))
        c.rescale_epochs = 20
    return c


def _validate(config):
    for field in ("epochs", "batch_size", "batchnorm_batch_size", "chunk_size", "num_alphas", "grid_size",
                  "points_per_chunk", "curve_epochs", "curve_points", "rescale_points"):
        common.require(int(config[field]) > 0, field, "a positive integer", config[field])
    common.require(int(config.rescale_epochs) >= 0, "rescale_epochs", "a non-negative integer", config.rescale_epochs)
    for field in ("learning_rate", "curve_learning_rate", "rescale_factor"):
        common.require(config[field] > 0, field, "a positive number", config[field])
    common.require(config.curve_weight_decay >= 0, "curve_weight_decay", "a non-negative number",
                   config.curve_weight_decay)
    common.require(config.batchnorm_mode in BATCHNORM_MODES, "batchnorm_mode", f"one of {BATCHNORM_MODES}",
                   config.batchnorm_mode)
    common.require(len(config.alpha_range) == 2 and config.alpha_range[0] <= 0 and config.alpha_range[1] >= 1,
                   "alpha_range", "(start <= 0, stop >= 1)", config.alpha_range)
    common.require(len(config.grid_range) == 2 and config.grid_range[0] < 0 < config.grid_range[1],
                   "grid_range", "(low < 0 < high)", config.grid_range)
    for kind in config.curves:
        common.require(kind in landscape.CURVES, "curves", f"names from {landscape.CURVES}", config.curves)


# ----------------------------------------------------------------------------- phases
#
# Each phase is a function of the config and what the earlier phases made, returning a
# ``Phase``: arrays for results.npz, figure paths, and the numbers the tables and claims read.


class Phase(NamedTuple):
    arrays: dict
    figures: list
    numbers: dict


def train_pair(config, model, data, logger):
    """Two seeds in one vmapped fit: ``(initial params of seed 0, [solution 0, solution 1]
    (TrainStates), history)``."""
    tx = optim.get_optimizer(config.optimizer, config.learning_rate, momentum=config.momentum)
    result = train.fit_seeds(model, data, tx, seeds=[config.seed, config.seed + 1], epochs=config.epochs,
                             batch_size=config.batch_size, logger=logger)
    initial = train.unstack(result.initial_state.params, 0)
    return initial, [train.unstack(result.state, i) for i in range(2)], result.history


class Evaluator:
    """Metrics of one model on the train and test splits, with the configured BatchNorm mode."""

    def __init__(self, config, model, data, model_state):
        self.splits = {"train": (data.x_train, data.y_train), "test": (data.x_test, data.y_test)}
        self.chunk_size = int(config.chunk_size)
        recompute = config.batchnorm_mode == "recompute" and "batch_stats" in model_state
        self.batch_stats = (landscape.BatchStats(model, model_state, data.x_train, int(config.batchnorm_batch_size))
                            if recompute else None)
        self.apply_fn = None if recompute else train.make_apply_fn(model, model_state)

    def kwargs(self):
        return dict(chunk_size=self.chunk_size, batch_stats=self.batch_stats)

    def each_split(self, fn):
        """``{split: fn(apply_fn, batch, **kwargs)}`` with every metric as a NumPy array."""
        return {split: {k: np.asarray(v) for k, v in fn(self.apply_fn, batch, **self.kwargs()).items()}
                for split, batch in self.splits.items()}


def lines_phase(config, evaluator, run_dir, w0, w1, w2) -> Phase:
    """The lines initialisation -> solution and solution -> solution (Goodfellow et al. 2015)."""
    alphas = landscape.interpolation_alphas(*config.alpha_range, config.num_alphas)
    lines = {
        "init_to_solution": evaluator.each_split(lambda f, b, **kw: landscape.interpolate(f, w0, w1, b, alphas, **kw)),
        "solution_to_solution": evaluator.each_split(
            lambda f, b, **kw: landscape.interpolate(f, w1, w2, b, alphas, **kw)),
    }
    arrays, figures = {"lines/alphas": alphas}, []
    for line, per_split in lines.items():
        for split, metrics in per_split.items():
            arrays.update({f"lines/{line}/{split}_{name}": values for name, values in metrics.items()})
        path = run_dir.figure_path(line)
        plot.line_plot({f"{split} loss": (alphas, per_split[split]["loss"]) for split in per_split},
                       xlabel="a  (theta = (1 - a) start + a end)", ylabel="loss",
                       title=line.replace("_", " "), path=path)
        figures.append(path)
    inside = (alphas >= 0) & (alphas <= 1)
    train_line = lines["init_to_solution"]["train"]["loss"][inside]
    monotone_rise = landscape.largest_rise(train_line) / max(float(train_line[0] - train_line[-1]), 1e-12)
    return Phase(arrays, figures, {"monotone_rise": monotone_rise})


def surface_phase(config, evaluator, run_dir, w1) -> Phase:
    """The train loss on the plane of two filter-normalised directions through the solution
    (Li et al. 2018), resumable from ``surface.npz``."""
    key_x, key_y = jax.random.split(jax.random.key(config.seed + 3))
    direction_x = landscape.random_direction(key_x, w1, ignore_biasbn=config.ignore_biasbn)
    direction_y = landscape.random_direction(key_y, w1, ignore_biasbn=config.ignore_biasbn)
    if config.orthogonalize:
        direction_y = landscape.orthogonalize(direction_y, direction_x)
    grid = np.linspace(*config.grid_range, config.grid_size)
    surface = landscape.surface(evaluator.apply_fn, w1, direction_x, direction_y, evaluator.splits["train"], grid,
                                grid, path=os.path.join(run_dir.root, "surface.npz"),
                                points_per_chunk=config.points_per_chunk, progress=True, **evaluator.kwargs())
    centre = landscape.evaluate_params(evaluator.apply_fn, w1, evaluator.splits["train"], **evaluator.kwargs())
    centre_error = abs(float(surface["loss"][len(grid) // 2, len(grid) // 2]) - float(centre["loss"]))
    arrays = {"surface/direction_x": np.asarray(tree.flatten(direction_x)[0]),
              "surface/direction_y": np.asarray(tree.flatten(direction_y)[0]), "surface/xs": grid, "surface/ys": grid}
    arrays.update({f"surface/train_{name}": values for name, values in surface.items()})
    figures = []
    for filled in (True, False):
        path = run_dir.figure_path("surface_filled" if filled else "surface_contour")
        plot.contour_surface(grid, grid, surface["loss"], title="train loss, filter-normalised directions",
                             path=path, filled=filled, log=True, xlabel="direction x", ylabel="direction y")
        figures.append(path)
    return Phase(arrays, figures, {"centre_error": centre_error})


def curves_phase(config, evaluator, run_dir, model, model_state, data, w1, w2) -> Phase:
    """Trained Bezier and polygonal-chain curves against the straight line between the two
    solutions (Garipov et al. 2018)."""
    ts = np.linspace(0.0, 1.0, config.curve_points)
    paths = {"line": evaluator.each_split(lambda f, b, **kw: landscape.line_metrics(f, w1, w2, b, ts=ts, **kw))}
    curve_tx = optim.get_optimizer(config.optimizer, config.curve_learning_rate, momentum=config.momentum)
    for i, kind in enumerate(config.curves):
        bend, _ = landscape.fit_curve(model, model_state, w1, w2, data, curve_tx, kind=kind,
                                      epochs=config.curve_epochs, batch_size=config.batch_size,
                                      weight_decay=config.curve_weight_decay, key=jax.random.key(config.seed + 11 + i))
        paths[kind] = evaluator.each_split(
            lambda f, b, **kw: landscape.curve_metrics(f, kind, w1, bend, w2, b, ts=ts, **kw))
    arrays, rows = {"curves/ts": ts}, []
    for name, per_split in paths.items():
        for split, metrics in per_split.items():
            arrays.update({f"curves/{name}/{split}_{metric}": metrics[metric]
                           for metric in ("loss", "accuracy") if metric in metrics})
            rows.append([name, split, metrics["loss_min"], metrics["loss_max"], metrics["loss_mean"],
                         metrics["loss_integral"], landscape.barrier(metrics["loss"]),
                         metrics.get("accuracy_min", np.nan)])
    path = run_dir.figure_path("mode_connectivity")
    plot.line_plot({f"{name} ({split})": (ts, per_split[split]["loss"]) for name, per_split in paths.items()
                    for split in ("train", "test")},
                   xlabel="t", ylabel="loss", title="two solutions: straight line vs trained curves", path=path)
    numbers = {"rows": rows, "line_barrier": landscape.barrier(paths["line"]["train"]["loss"]),
               "curve_barriers": {kind: landscape.barrier(paths[kind]["train"]["loss"]) for kind in config.curves}}
    return Phase(arrays, [path], numbers)


def rescale_batchnorm_inputs(params, factor: float):
    """Every convolution kernel multiplied by ``factor``. In a ResNet each convolution feeds a
    BatchNorm, which divides each filter's scale out again, so the function (with recomputed
    statistics) is unchanged; the dense read-out is left alone."""
    def rescale(path, leaf):
        names = [str(getattr(entry, "key", entry)) for entry in path]
        return leaf * factor if names[-1] == "kernel" and "conv" in names[-2] else leaf

    return jax.tree_util.tree_map_with_path(rescale, params)


def rescale_phase(config, run_dir, logger) -> Phase:
    """1-D curves theta + a d of a BatchNorm ResNet and of the same function with every
    convolution rescaled, for the same random draw filter-normalised or left raw (Li et al. 2018)."""
    data = datasets.load(config.rescale_dataset)
    model = get_model(config.rescale_model.name, num_outputs=data.num_classes, **config.rescale_model.hparams.to_dict())
    tx = optim.get_optimizer(config.optimizer, config.learning_rate, momentum=config.momentum)
    if config.rescale_epochs:
        state = train.fit(model, data, tx, epochs=config.rescale_epochs, batch_size=config.batch_size,
                          seed=config.seed, logger=logger.with_tags(run="rescale")).state
    else:
        state = train.init_state(model, tx, data.x_train[:1], jax.random.key(config.seed))
    params = state.params
    scaled = rescale_batchnorm_inputs(params, config.rescale_factor)
    stats = landscape.BatchStats(model, state.model_state, data.x_train, int(config.batchnorm_batch_size))
    alphas = np.linspace(-1.0, 1.0, config.rescale_points)
    key = jax.random.key(config.seed + 7)
    curves = {}
    for normalization in ("filter", None):
        for name, point in (("original", params), ("rescaled", scaled)):
            direction = landscape.random_direction(key, point, normalization=normalization,
                                                   ignore_biasbn=config.ignore_biasbn)
            metrics = landscape.interpolate_direction(None, point, direction, (data.x_train, data.y_train), alphas,
                                                      chunk_size=config.chunk_size, batch_stats=stats)
            curves[(normalization or "none", name)] = np.asarray(metrics["loss"], np.float64)
    change = {n: float(np.max(np.abs(curves[(n, "rescaled")] - curves[(n, "original")]))
                       / np.max(np.abs(curves[(n, "original")]))) for n in ("filter", "none")}
    path = run_dir.figure_path("filter_normalization")
    labels = {"filter": "filter-normalised d", "none": "raw d"}
    plot.line_plot({f"{labels[n]}, {name} params": (alphas, v) for (n, name), v in curves.items()},
                   xlabel="a  (theta + a d)", ylabel="train loss",
                   title=f"every conv filter x{config.rescale_factor:g} (each feeds a BatchNorm)", path=path)
    arrays = {f"rescale/{n}/{name}_train_loss": values for (n, name), values in curves.items()}
    return Phase(arrays, [path], {"rescale_change": change})


def run(config, run_dir: io.RunDir) -> dict:
    _validate(config)
    common.require(config.rescale_model.name == "resnet"
                   and config.rescale_model.hparams.get("norm", "batch") == "batch",
                   "rescale_model", "a ResNet with BatchNorm (every convolution feeds a BatchNorm)",
                   config.rescale_model.name)
    data = datasets.load(config.dataset)
    model = get_model(config.model.name, num_outputs=data.num_classes, **config.model.hparams.to_dict())
    with run_dir.logger() as logger:
        w0, (first, second), history = train_pair(config, model, data, logger.with_tags(run="pair"))
        evaluator = Evaluator(config, model, data, first.model_state)
        w1, w2 = first.params, second.params
        phases = [lines_phase(config, evaluator, run_dir, w0, w1, w2),
                  surface_phase(config, evaluator, run_dir, w1),
                  curves_phase(config, evaluator, run_dir, model, first.model_state, data, w1, w2),
                  rescale_phase(config, run_dir, logger)]
    numbers = {k: v for phase in phases for k, v in phase.numbers.items()}
    run_dir.save_results(**{k: v for phase in phases for k, v in phase.arrays.items()})

    table = common.format_table(["path", "split", "loss min", "loss max", "loss mean", "length-weighted loss",
                                 "barrier", "accuracy min"], numbers["rows"], float_format="{:.4g}")
    change = numbers["rescale_change"]
    summary = common.format_table(["quantity", "value"], [
        ["final train loss (seed 0, seed 1)", f"{history['train_loss'][0, -1]:.4g}, {history['train_loss'][1, -1]:.4g}"],
        ["final test accuracy (seed 0, seed 1)",
         f"{history['test_accuracy'][0, -1]:.4g}, {history['test_accuracy'][1, -1]:.4g}"],
        ["init-to-solution train loss: largest rise on [0, 1] / total drop", f"{numbers['monotone_rise']:.3g}"],
        ["surface centre minus loss at the solution", f"{numbers['centre_error']:.2e}"],
        ["rescaled conv filters: max relative change of the filter-normalised curve", f"{change['filter']:.2e}"],
        ["rescaled conv filters: max relative change of the unnormalised curve", f"{change['none']:.3g}"],
    ], float_format="{:.4g}")
    return {"tables": {"summary": summary, "paths": table},
            "figures": [path for phase in phases for path in phase.figures],
            **{k: numbers[k] for k in ("monotone_rise", "line_barrier", "curve_barriers", "centre_error",
                                       "rescale_change")}}


def claims(result: dict) -> list:
    out = [common.Claim.at_most(
        "Goodfellow, Vinyals & Saxe 2015", "the train loss falls along the line from the initialisation to the "
        "solution without a bump (largest rise on [0, 1] / total drop)", result["monotone_rise"], 0.01, "{:.3g}")]
    out.append(common.Claim.at_least(
        "Garipov et al. 2018", "the straight line between two solutions crosses a barrier (train-loss peak above "
        "the higher endpoint)", result["line_barrier"], 0.05, "{:.3g}"))
    for kind, value in result["curve_barriers"].items():
        out.append(common.Claim.at_most(
            "Garipov et al. 2018", f"the trained {kind} curve removes most of that barrier (its peak, at most half "
            f"the line's {result['line_barrier']:.3g})", value, 0.5 * result["line_barrier"], "{:.3g}"))
    out.append(common.Claim.at_most(
        "Li et al. 2018", "a filter-normalised 1-D curve is unchanged when the filters feeding a BatchNorm are "
        "rescaled (max relative change)", result["rescale_change"]["filter"], 1e-3, "{:.2e}"))
    out.append(common.Claim.at_least(
        "Li et al. 2018", "the unnormalised curve with the same random draw changes (max relative change)",
        result["rescale_change"]["none"], 0.05, "{:.3g}"))
    return out


def main(argv=None):
    return common.experiment_main(sys.modules[__name__], argv)


if __name__ == "__main__":
    main()
