"""Loss landscapes: lines, planes and curves through the solutions gradient descent finds.

On ``seeds`` solutions from one vmapped fit (seeds 2p and 2p + 1 form pair p):

- Goodfellow, Vinyals & Saxe 2015: the loss along theta(a) = (1 - a) theta_0 + a theta_1 from
  the initialisation to the solution, a in [-0.5, 1.5], falls without a bump (every seed).
- Li et al. 2018: the train loss on a plane of two filter-normalised random directions through
  seed 0's solution (resumable from ``surface.npz``); filter normalisation makes a 1-D curve
  blind to rescaling the filters that feed a BatchNorm (a check, on an untrained ResNet unless
  ``rescale_epochs``, with the unnormalised curve as its negative control).
- Garipov et al. 2018: between the solutions of each pair, a quadratic Bezier curve and a
  polygonal chain with a trained bend keep the test error near the endpoints' while the
  straight line climbs over a barrier. BatchNorm statistics are recomputed at every evaluated
  point (``batchnorm_mode='recompute'``, as Garipov et al.) or frozen (``'frozen'``).
"""
from __future__ import annotations

import os

import jax
import ml_collections
import numpy as np

from experiments import framework as fw
from jaxdl import data as datasets, plot, train
from jaxdl.analysis import landscape
from jaxdl.train import optim

NAME = "loss_landscape"
DESCRIPTION = ("init-to-solution lines, a filter-normalised 2-D surface, Bezier and polygonal-chain mode "
               "connectivity over pairs of seeds, filter normalisation against BatchNorm rescaling")
DEVICE_FIELDS = {"points_per_chunk": "points_per_chunk"}
BATCHNORM_MODES = ("recompute", "frozen")
GOODFELLOW, GARIPOV, LI = "Goodfellow, Vinyals & Saxe 2015", "Garipov et al. 2018", "Li et al. 2018"


def get_config() -> ml_collections.ConfigDict:
    """The default size: an MLP on MNIST-1D (five pairs of seeds) and a ResNet-8 on digits."""
    return ml_collections.ConfigDict(dict(
        seed=0, seeds=10, dataset="mnist1d", model=fw.model_spec("mlp", widths=(100, 100)), optimizer="adam",
        learning_rate=0.01, momentum=0.9, epochs=30, batch_size=100, batchnorm_mode="recompute",
        batchnorm_batch_size=500, chunk_size=1000, alpha_range=(-0.5, 1.5), num_alphas=101, grid_size=51,
        grid_range=(-1.0, 1.0), points_per_chunk=8, ignore_biasbn=True, orthogonalize=True,
        curves=("bezier", "polychain"), curve_epochs=30, curve_learning_rate=0.01, curve_weight_decay=1e-4,
        curve_points=61, rescale_dataset="digits",
        rescale_model=fw.model_spec("resnet", depth=8, width_multiplier=0.5), rescale_epochs=0,
        rescale_factor=0.1, rescale_points=21))


SIZES = {"quick": {"seeds": 2, "model.hparams.widths": (16,), "epochs": 2, "num_alphas": 9, "grid_size": 5,
                   "curves": ("bezier",), "curve_epochs": 1, "curve_points": 7,
                   "rescale_model.hparams.width_multiplier": 0.25, "rescale_points": 5},
         # ResNet-20 on CIFAR-10 files (in the data folder, or jaxdl.data.load('cifar10', download=True)).
         "full": {"dataset": "cifar10", "model": fw.model_spec("resnet", depth=20), "epochs": 100, "batch_size": 128,
                  "curve_epochs": 100, "chunk_size": 2000, "rescale_dataset": "cifar10",
                  "rescale_model": fw.model_spec("resnet", depth=20), "rescale_epochs": 20}}
FIELDS = {
    "seeds": fw.expect(lambda v: isinstance(v, int) and v > 0 and v % 2 == 0, "a positive even integer (pairs)"),
    **{f: fw.positive_int for f in ("epochs", "batch_size", "batchnorm_batch_size", "chunk_size", "num_alphas",
                                    "points_per_chunk", "curve_epochs", "curve_points", "rescale_points")},
    **{f: fw.positive for f in ("learning_rate", "curve_learning_rate", "rescale_factor")},
    "rescale_epochs": fw.non_negative_int, "curve_weight_decay": fw.non_negative,
    "batchnorm_mode": fw.one_of(*BATCHNORM_MODES), "curves": fw.subset_of(*landscape.CURVES),
    "alpha_range": fw.expect(lambda v: len(v) == 2 and v[0] <= 0 and v[1] >= 1, "(start <= 0, stop >= 1)"),
    "grid_range": fw.expect(lambda v: len(v) == 2 and -v[0] == v[1] > 0, "(-r, r) with r > 0"),
    "grid_size": fw.expect(lambda v: isinstance(v, int) and v > 0 and v % 2, "an odd positive integer (0 on the grid)"),
    "rescale_model": fw.expect(lambda v: v.name == "resnet" and v.hparams.get("norm", "batch") == "batch",
                               "a ResNet with BatchNorm (every convolution feeds a BatchNorm)"),
}


def evaluation(config, model, data, model_state) -> tuple:
    """``(apply_fn, kwargs)`` of the landscape tools for one solution: BatchNorm statistics
    frozen in ``apply_fn``, or recomputed at every point by ``kwargs['batch_stats']``."""
    if config.batchnorm_mode == "recompute" and "batch_stats" in model_state:
        stats = landscape.BatchStats(model, model_state, data.x_train, config.batchnorm_batch_size)
        return None, dict(chunk_size=config.chunk_size, batch_stats=stats)
    return train.make_apply_fn(model, model_state), dict(chunk_size=config.chunk_size, batch_stats=None)


def splits(data) -> dict:
    return {"train": (data.x_train, data.y_train), "test": (data.x_test, data.y_test)}


def lines_phase(config, ctx) -> fw.Phase:
    """Every seed in one vmapped fit, and each seed's line from its initialisation to its
    solution (Goodfellow et al. 2015): the largest rise of the train loss on [0, 1] over the
    total drop. Carries the model, the data and each seed's final state."""
    data = datasets.load(config.dataset)
    model = fw.build_model(config.model, data.num_classes)
    tx = optim.get_optimizer(config.optimizer, config.learning_rate, momentum=config.momentum)
    result = train.fit_seeds(model, data, tx, seeds=fw.seeds(config), epochs=config.epochs, eval_every=config.epochs,
                             batch_size=config.batch_size, logger=ctx.logger.with_tags(run="seeds"))
    final = [result.history[name][:, -1].tolist() for name in ("train_loss", "test_accuracy")]
    alphas = landscape.interpolation_alphas(*config.alpha_range, config.num_alphas)
    inside, rises, curves, arrays, solutions = (alphas >= 0) & (alphas <= 1), [], {}, {"lines/alphas": alphas}, []
    for k in range(config.seeds):
        start, state = train.unstack(result.initial_state.params, k), train.unstack(result.state, k)
        apply_fn, kwargs = evaluation(config, model, data, state.model_state)
        for split, batch in splits(data).items():
            loss = np.asarray(landscape.interpolate(apply_fn, start, state.params, batch, alphas, **kwargs)["loss"],
                              np.float64)
            arrays[f"lines/seed{k}/{split}_loss"] = loss
            if split == "train":
                rises.append(landscape.largest_rise(loss[inside]) / max(loss[inside][0] - loss[inside][-1], 1e-12))
            if split == "train" or k == 0:
                curves[f"seed {k}, {split}"] = (alphas, loss)
        solutions.append(state)
    figure = plot.line_plot(curves, xlabel="a  (theta = (1 - a) theta_0 + a theta_1)", ylabel="loss", logy=True,
                            title="initialisation to solution, every seed")
    table = fw.format_table(["seed", "train loss", "test accuracy", "largest rise / drop"],
                            list(zip(fw.seeds(config), *final, rises)), float_format="{:.4g}")
    return fw.Phase(tables={"solutions": table}, figures={"init_to_solution": figure}, arrays=arrays,
                    numbers={"monotone_rise": rises}, carry=(model, data, solutions))


def surface_phase(config, ctx, model, data, solution) -> fw.Phase:
    """The train loss on the plane of two filter-normalised directions through seed 0's
    solution (Li et al. 2018), resumable from ``surface.npz``."""
    params, (apply_fn, kwargs) = solution.params, evaluation(config, model, data, solution.model_state)
    direction_x, direction_y = (landscape.random_direction(key, params, ignore_biasbn=config.ignore_biasbn)
                                for key in jax.random.split(jax.random.key(config.seed + 3)))
    if config.orthogonalize:
        direction_y = landscape.orthogonalize(direction_y, direction_x)
    grid, batch = np.linspace(*config.grid_range, config.grid_size), (data.x_train, data.y_train)
    loss = landscape.surface(apply_fn, params, direction_x, direction_y, batch, grid, grid, progress=True,
                             path=os.path.join(ctx.run_dir.root, "surface.npz"),
                             points_per_chunk=config.points_per_chunk, **kwargs)["loss"]
    centre, middle = float(landscape.evaluate_params(apply_fn, params, batch, **kwargs)["loss"]), config.grid_size // 2
    figures = {f"surface_{'filled' if filled else 'contour'}": plot.contour_surface(
        grid, grid, loss, title="train loss, filter-normalised directions", filled=filled, log=True,
        xlabel="direction x", ylabel="direction y") for filled in (True, False)}
    return fw.Phase(figures=figures, arrays={"surface/grid": grid, "surface/train_loss": loss},
                    numbers={"surface_centre_error": abs(float(loss[middle, middle]) - centre)})


PATH_STATISTICS = ("train-loss barrier", "test-error barrier", "worse endpoint's test error", "max test error")


def curves_phase(config, ctx, model, data, solutions) -> fw.Phase:
    """Between the solutions of each pair, the straight line (a Bezier curve with the midpoint
    as its bend) and each trained curve (Garipov et al. 2018): barriers and endpoints."""
    ts, names = np.linspace(0.0, 1.0, config.curve_points), ("line", *config.curves)
    tx = optim.get_optimizer(config.optimizer, config.curve_learning_rate, momentum=config.momentum)
    numbers = {name: {statistic: [] for statistic in PATH_STATISTICS} for name in names}
    arrays, curves, endpoint_gap = {"curves/ts": ts}, {}, 0.0
    for p in range(config.seeds // 2):
        first, second = solutions[2 * p], solutions[2 * p + 1]
        apply_fn, kwargs = evaluation(config, model, data, first.model_state)
        bends = {"line": landscape.init_bend(first.params, second.params)}
        for i, kind in enumerate(config.curves):
            bends[kind] = landscape.fit_curve(
                model, first.model_state, first.params, second.params, data, tx, kind=kind, epochs=config.curve_epochs,
                batch_size=config.batch_size, weight_decay=config.curve_weight_decay,
                key=jax.random.fold_in(jax.random.key(config.seed + 11 + i), p))[0]
        for name, bend in bends.items():
            metrics = {split: landscape.curve_metrics(apply_fn, "bezier" if name == "line" else name, first.params,
                                                      bend, second.params, batch, ts=ts, **kwargs)
                       for split, batch in splits(data).items()}
            loss, error = metrics["train"]["loss"], 1.0 - np.asarray(metrics["test"]["accuracy"], np.float64)
            for statistic, value in zip(PATH_STATISTICS, (landscape.barrier(loss), landscape.barrier(error),
                                                          max(error[0], error[-1]), error.max())):
                numbers[name][statistic].append(float(value))
            if name == "line":
                line_ends = loss[[0, -1]]
            endpoint_gap = max(endpoint_gap, *np.abs(loss[[0, -1]] - line_ends))
            arrays.update({f"curves/pair{p}/{name}/train_loss": loss, f"curves/pair{p}/{name}/test_error": error})
            if p == 0:
                curves.update({f"{name}, train loss": (ts, loss), f"{name}, test error": (ts, error)})
    figure = plot.line_plot(curves, xlabel="t", ylabel="train loss / test error",
                            title=f"seeds {config.seed} and {config.seed + 1}: line vs trained curves")
    table = fw.format_table(["path", *PATH_STATISTICS], [[name, *map(np.mean, numbers[name].values())]
                                                         for name in names], float_format="{:.4g}")
    return fw.Phase(tables={f"paths, mean over {config.seeds // 2} pairs of seeds": table}, arrays=arrays,
                    figures={"mode_connectivity": figure},
                    numbers={"paths": numbers, "curve_endpoint_error": float(endpoint_gap)})


def rescale_batchnorm_inputs(params, factor: float):
    """Every convolution kernel multiplied by ``factor``. In a ResNet each convolution feeds a
    BatchNorm, which divides each filter's scale out again, so the function (with recomputed
    statistics) is unchanged; the dense read-out is left alone."""
    def rescale(path, leaf):
        names = [str(getattr(entry, "key", entry)) for entry in path]
        return leaf * factor if names[-1] == "kernel" and "conv" in names[-2] else leaf

    return jax.tree_util.tree_map_with_path(rescale, params)


def rescale_phase(config, ctx) -> fw.Phase:
    """1-D curves theta + a d of a BatchNorm ResNet and of the same function with every
    convolution rescaled, for one random draw filter-normalised or raw (Li et al. 2018)."""
    data = datasets.load(config.rescale_dataset)
    model = fw.build_model(config.rescale_model, data.num_classes)
    tx = optim.get_optimizer(config.optimizer, config.learning_rate, momentum=config.momentum)
    state = (train.fit(model, data, tx, epochs=config.rescale_epochs, batch_size=config.batch_size, seed=config.seed,
                       logger=ctx.logger.with_tags(run="rescale")).state if config.rescale_epochs
             else train.init_state(model, tx, data.x_train[:1], jax.random.key(config.seed)))
    stats = landscape.BatchStats(model, state.model_state, data.x_train, config.batchnorm_batch_size)
    alphas, curves = np.linspace(-1.0, 1.0, config.rescale_points), {}
    points = {"original": state.params, "rescaled": rescale_batchnorm_inputs(state.params, config.rescale_factor)}
    for normalization, (name, point) in ((n, item) for n in ("filter", None) for item in points.items()):
        direction = landscape.random_direction(jax.random.key(config.seed + 7), point, normalization=normalization,
                                               ignore_biasbn=config.ignore_biasbn)
        curves[normalization or "raw", name] = np.asarray(landscape.interpolate_direction(
            None, point, direction, (data.x_train, data.y_train), alphas, chunk_size=config.chunk_size,
            batch_stats=stats)["loss"], np.float64)
    change = {n: float(np.max(np.abs(curves[n, "rescaled"] - curves[n, "original"])) / np.max(curves[n, "original"]))
              for n in ("filter", "raw")}
    figure = plot.line_plot({f"{n} d, {name} params": (alphas, v) for (n, name), v in curves.items()},
                            xlabel="a  (theta + a d)", ylabel="train loss",
                            title=f"every conv filter x{config.rescale_factor:g} (each feeds a BatchNorm)")
    return fw.Phase(figures={"filter_normalization": figure}, numbers={"rescale_change": change},
                    arrays={f"rescale/{n}/{name}_train_loss": v for (n, name), v in curves.items()})


def run(config, ctx) -> None:
    model, data, solutions = ctx.phase("seeds and lines", lines_phase, config, ctx).carry
    ctx.phase("surface", surface_phase, config, ctx, model, data, solutions[0])
    ctx.phase("curves", curves_phase, config, ctx, model, data, solutions)
    ctx.phase("filter normalisation", rescale_phase, config, ctx)


def claims(config, numbers) -> list:
    paths, pairs = numbers["paths"], config.seeds // 2
    out = [fw.Claim.mean(
        "init_to_solution_monotone", GOODFELLOW, "the train loss falls along the line from the "
        "initialisation to the solution without a significant bump (largest rise on [0, 1] over the total drop; "
        f"declared: under 1% of the drop), over {config.seeds} seeds", numbers["monotone_rise"], below=0.01),
        fw.Claim.mean(
        "line_barrier", GARIPOV, "the straight line between two solutions climbs over a high barrier "
        "(its peak test error above the worse endpoint's; declared: 10 points, ten times the band the curves keep), "
        f"over {pairs} pairs of seeds", paths["line"]["test-error barrier"], above=0.10)]
    out += [fw.Claim.mean(
        f"{kind}_curve_within_one_point", f"{GARIPOV} (VGG16, CIFAR-10: test error 6.8-7.8% along the "
        "curve, 6.8-6.9% at the endpoints)", f"a trained {kind} curve keeps the test error within about one point of "
        f"the endpoints (its peak above the worse endpoint's), over {pairs} pairs of seeds",
        paths[kind]["test-error barrier"], below=0.01) for kind in config.curves]
    change = numbers["rescale_change"]
    return out + [
        fw.Check.at_most("surface_centre_is_the_solution", "two evaluations", "the surface's centre equals the loss "
                         "evaluated at the solution (absolute difference)", numbers["surface_centre_error"], 1e-5,
                         "{:.1e}"),
        fw.Check.at_most("curves_reproduce_their_endpoints", GARIPOV, "every trained curve at t = 0 and 1 gives the "
                         "endpoints' train loss (largest absolute difference)", numbers["curve_endpoint_error"], 1e-5,
                         "{:.1e}"),
        fw.Check.at_most("filter_normalised_curve_invariant", LI, "a filter-normalised 1-D curve is unchanged when "
                         "every filter feeding a BatchNorm is rescaled (max relative change)", change["filter"], 1e-3,
                         "{:.1e}"),
        fw.Check.at_least("raw_curve_changes", LI, "negative control: the unnormalised curve of the same draw "
                          "changes by ten times that tolerance (max relative change)", change["raw"], 1e-2)]


main = fw.entry_point(__name__)


if __name__ == "__main__":
    main()
