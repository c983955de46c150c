"""Linear regions: how depth multiplies the pieces of a ReLU network, and how many a trained one uses.

A ReLU network is piecewise affine; on a 2-D plane of its inputs :mod:`jaxdl.regions` computes
the exact partition into activation regions. Four parts:

1. Zaslavsky (1975): one hidden layer of m units on R^2 (random weights and biases, so the lines
   are in general position) has exactly C(m, 2) + m + 1 regions, for m = 1..30, counted on a
   window that holds every crossing of the lines; a dense-grid sampler of the same window beside it.
2. Montufar et al. (2014): their folding network (L hidden layers of width 4 on the unit square)
   reaches (2^{L-1})^2 * 11 regions exactly, against the most any one-hidden-layer net with the
   same number of parameters can have (Zaslavsky's count).
3. The course's two pictures: a two-hidden-layer net trained on ``moons``, its layer-1 lines and
   the bent layer-2 lines.
4. The course's question, "is the limiting factor expressivity?": MLPs of equal parameter count
   and depth 1..4 trained on ``mnist1d`` (seeds vmapped), regions counted on the plane through
   three test inputs at initialisation and after training, beside test accuracy (Hanin & Rolnick
   2019: random and trained nets have far fewer regions than depth allows, and the count grows
   with the number of neurons rather than exponentially with depth).
"""
from __future__ import annotations

import sys
import time

import jax
import ml_collections
import numpy as np

from experiments import common
from jaxdl import data as datasets
from jaxdl import io, optim, plot, regions, train
from jaxdl.models import get_model

NAME = "linear_regions"
DESCRIPTION = "exact linear regions on a plane: Zaslavsky's count, Montufar's folding net, trained nets by depth"
DEVICE_FIELDS = {"seeds": "seeds"}  # see experiments.device_defaults


def get_config(size: str = "default") -> ml_collections.ConfigDict:
    """Sizes: ``quick`` (seconds, tests), ``default`` (about a minute on 2 CPU cores), ``full``."""
    common.check_size(size)
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.max_lines = 30                    # Zaslavsky: one hidden layer of m = 1..max_lines units.
    c.grid_resolution = 256             # The dense-grid sampler shown beside the exact counts.
    c.folding_depths = (1, 2, 3, 4, 5)
    c.folding_width = 4
    c.picture_widths = (8, 8)           # The two-layer net of the course's pictures, trained on moons.
    c.picture_epochs = 200
    c.dataset = "mnist1d"
    c.depths = (1, 2, 3, 4)
    c.parameter_budget = 4000           # Every trained net has at most this many parameters.
    c.seeds = (0, 1)
    c.learning_rate = 1e-3
    c.epochs = 60
    c.batch_size = 128
    c.window = (-0.25, 1.25)            # Plane coordinates u, v of the counting window (the inputs at 0 and 1).
    if size == "quick":
        c.max_lines = 6
        c.grid_resolution = 64
        c.folding_depths = (1, 2, 3)
        c.picture_widths = (4, 4)
        c.picture_epochs = 5
        c.depths = (1, 2)
        c.parameter_budget = 600
        c.seeds = (0,)
        c.epochs = 2
    elif size == "full":
        c.max_lines = 60
        c.grid_resolution = 1024
        c.folding_depths = (1, 2, 3, 4, 5, 6)
        c.depths = (1, 2, 3, 4, 6)
        c.parameter_budget = 12000
        c.seeds = (0, 1, 2, 3, 4)
        c.epochs = 200
    return c


def _validate(config):
    for field in ("max_lines", "grid_resolution", "folding_width", "picture_epochs", "parameter_budget", "epochs",
                  "batch_size"):
        common.require(int(config[field]) > 0, field, "a positive integer", config[field])
    common.require(config.folding_width % 2 == 0, "folding_width", "an even width (two folded inputs)",
                   config.folding_width)
    for field in ("folding_depths", "depths"):
        common.require(len(config[field]) and all(int(d) >= 1 for d in config[field]), field,
                       "depths of at least 1", config[field])
    common.require(len(config.picture_widths) == 2, "picture_widths", "two hidden widths", config.picture_widths)
    common.require(config.learning_rate > 0, "learning_rate", "a positive learning rate", config.learning_rate)
    common.require(len(config.seeds) > 0, "seeds", "at least one seed", config.seeds)
    common.require(len(config.window) == 2 and config.window[0] < config.window[1], "window",
                   "(low, high) with low < high", config.window)


def width_for_budget(depth: int, budget: int, input_dim: int, num_outputs: int) -> int:
    """The largest width w whose MLP (``depth`` hidden layers of w units, biases, a read-out) has at most
    ``budget`` parameters."""
    def count(w):
        return input_dim * w + w + (depth - 1) * (w * w + w) + w * num_outputs + num_outputs
    width = 1
    while count(width + 1) <= budget:
        width += 1
    return width


def run(config, run_dir: io.RunDir) -> dict:
    _validate(config)
    with run_dir.logger() as logger:
        result = _run(config, run_dir, logger)
    run_dir.save_results(**{k: np.asarray(v) for k, v in result["arrays"].items()})
    return result


def _zaslavsky(config):
    """Exact and sampled counts of m random lines, m = 1..max_lines."""
    rng = np.random.default_rng(config.seed)
    plane = regions.input_plane()
    rows = []
    for m in range(1, config.max_lines + 1):
        layer = (rng.normal(size=(2, m)), rng.normal(size=m))
        window = regions.window_around_lines(layer, plane)
        start = time.perf_counter()
        exact = regions.linear_regions([layer], plane, window).num_regions
        seconds = time.perf_counter() - start
        # Padded with units that are always off (zero weights, bias -1): one compiled sampler for every m.
        padded = (np.pad(layer[0], ((0, 0), (0, config.max_lines - m))),
                  np.pad(layer[1], (0, config.max_lines - m), constant_values=-1.0))
        sampled = regions.count_patterns_on_grid(regions.grid_patterns([padded], plane, window, config.grid_resolution))
        rows.append((m, regions.zaslavsky_count(m), exact, sampled, seconds))
    return np.array(rows)


def _folding(config):
    """The folding network's exact count against Montufar's formula and the best shallow net of equal size."""
    width, rows, partitions = config.folding_width, [], {}
    for depth in config.folding_depths:
        layers = regions.folding_network(depth, width)
        start = time.perf_counter()
        partition = regions.linear_regions(layers, regions.input_plane(), regions.Window(0.0, 1.0, 0.0, 1.0))
        seconds = time.perf_counter() - start
        partitions[depth] = partition
        parameters = sum(k.size + b.size for k, b in layers)
        shallow_units = parameters // 3  # A unit on two inputs costs two weights and a bias.
        rows.append((depth, parameters, regions.montufar_count(depth, width), partition.num_regions,
                     shallow_units, regions.zaslavsky_count(shallow_units), seconds))
    return np.array(rows), partitions


def _picture(config, run_dir, logger):
    """The course's two pictures: layer 1's lines alone, then layer 2's bent lines, of a net trained on moons."""
    moons = datasets.load("moons", seed=config.seed)
    model = get_model("mlp", widths=tuple(config.picture_widths), num_outputs=moons.num_classes)
    fitted = train.fit(model, moons, optim.get_optimizer("adam", 1e-2), epochs=config.picture_epochs,
                       batch_size=100, seed=config.seed, logger=logger.with_tags(run="moons"))
    layers = regions.relu_layers(model, fitted.state.params)
    low, high = moons.x_train.min(0) - 0.5, moons.x_train.max(0) + 0.5
    window = regions.Window(low[0], high[0], low[1], high[1])
    plane = regions.input_plane()
    partitions = [regions.linear_regions(layers, plane, window, stop_after_layer=1),
                  regions.linear_regions(layers, plane, window)]
    path = run_dir.figure_path("regions_moons")
    plot.linear_regions(partitions, ["hidden layer 1: straight lines", "layers 1 and 2: layer 2's lines bend"],
                        moons.x_train, moons.y_train,
                        suptitle=f"ReLU MLP {tuple(config.picture_widths)} trained on moons", path=path)
    return path, [p.num_regions for p in partitions]


def _trained(config, logger):
    """Equal-size MLPs of each depth: regions on the plane through three test inputs, at init and trained."""
    data = datasets.load(config.dataset, seed=config.seed)
    first_of_class = [int(np.flatnonzero(data.y_test == c)[0]) for c in range(3)]
    plane = regions.plane_through(*data.x_test[first_of_class])
    window = regions.Window(config.window[0], config.window[1], config.window[0], config.window[1])
    input_dim = int(np.prod(data.x_train.shape[1:]))
    tx = optim.get_optimizer("adam", config.learning_rate)
    rows, examples = [], {}
    for depth in config.depths:
        width = width_for_budget(depth, config.parameter_budget, input_dim, data.num_classes)
        model = get_model("mlp", widths=(width,) * depth, num_outputs=data.num_classes)
        fitted = train.fit_seeds(model, data, tx, seeds=list(config.seeds), epochs=config.epochs,
                                 batch_size=config.batch_size, logger=logger.with_tags(run=f"depth{depth}"))
        counts = {"init": [], "trained": []}
        for k in range(len(config.seeds)):
            for stage, state in (("init", fitted.initial_state), ("trained", fitted.state)):
                params = jax.tree.map(lambda leaf, k=k: leaf[k], state.params)
                partition = regions.linear_regions(regions.relu_layers(model, params), plane, window)
                counts[stage].append(partition.num_regions)
                if k == 0:
                    examples[(depth, stage)] = partition
        parameters = sum(leaf[0].size for leaf in jax.tree.leaves(fitted.state.params))
        bound = float(regions.zaslavsky_count(width)) ** depth  # Each layer cuts each region by at most Z(width).
        rows.append((depth, width, parameters, depth * width, float(np.mean(counts["init"])),
                     float(np.mean(counts["trained"])), float(bound),
                     float(np.mean(fitted.history["test_accuracy"][:, -1]))))
    return np.array(rows), examples


def _run(config, run_dir, logger) -> dict:
    timer = common.PhaseTimer()
    zaslavsky = timer("zaslavsky", _zaslavsky, config)
    folding, folding_partitions = timer("folding", _folding, config)
    picture_path, picture_counts = timer("picture", _picture, config, run_dir, logger)
    trained, examples = timer("trained", _trained, config, logger)

    figures = [picture_path]
    path = run_dir.figure_path("zaslavsky")
    m = zaslavsky[:, 0]
    plot.line_plot({"C(m,2) + m + 1": (m, zaslavsky[:, 1]), "exact partition": (m, zaslavsky[:, 2]),
                    f"grid sampler {config.grid_resolution}^2": (m, zaslavsky[:, 3])},
                   xlabel="units m (lines)", ylabel="regions", logy=True,
                   title="one hidden layer on R^2 (Zaslavsky 1975)", path=path)
    figures.append(path)
    path = run_dir.figure_path("regions_by_depth")
    budget = f"{config.dataset} MLPs, <= {config.parameter_budget} parameters"
    plot.line_plot({"folding net, width 4 (Montufar et al. 2014)": (folding[:, 0], folding[:, 3]),
                    "best one-hidden-layer net, folding net's parameters": (folding[:, 0], folding[:, 5]),
                    f"{budget}: layerwise bound": (trained[:, 0], trained[:, 6]),
                    f"{budget}: at init": (trained[:, 0], trained[:, 4]),
                    f"{budget}: trained": (trained[:, 0], trained[:, 5])},
                   xlabel="hidden layers", ylabel="linear regions", logy=True,
                   title="depth multiplies regions; random and trained nets use few", path=path)
    figures.append(path)
    deepest = max(folding_partitions)
    path = run_dir.figure_path("folding_and_trained")
    last = max(config.depths)
    plot.linear_regions([folding_partitions[deepest], examples[(last, "init")], examples[(last, "trained")]],
                        [f"folding net, depth {deepest}", f"depth {last} at init ({config.dataset} plane)",
                         f"depth {last} trained"], path=path)
    figures.append(path)

    tables = {
        "zaslavsky": common.format_table(["units m", "C(m,2)+m+1", "exact", "grid sampler", "seconds"],
                                         zaslavsky.tolist(), float_format="{:.3g}"),
        "folding": common.format_table(
            ["depth", "parameters", "Montufar count", "exact", "shallow units", "shallow max", "seconds"],
            folding.tolist(), float_format="{:.3g}"),
        "trained": common.format_table(
            ["depth", "width", "parameters", "neurons", "regions at init", "regions trained", "layerwise bound",
             "test accuracy"], trained.tolist(), float_format="{:.4g}"),
        "phases": timer.table(),
    }
    return {"tables": tables, "figures": figures, "picture_counts": picture_counts,
            "arrays": {"zaslavsky": zaslavsky, "folding": folding, "trained": trained}}


def claims(result: dict) -> list:
    zaslavsky, folding, trained = (result["arrays"][k] for k in ("zaslavsky", "folding", "trained"))
    mismatches = int(np.sum(zaslavsky[:, 1] != zaslavsky[:, 2]))
    out = [common.Claim.check(
        "Zaslavsky 1975", f"m lines in general position cut R^2 into C(m,2)+m+1 regions (m = 1..{len(zaslavsky)})",
        "0 mismatches", mismatches, lambda v: v == 0, fmt="{}")]
    out.append(common.Claim.check(
        "Montufar et al. 2014", "the folding network reaches (prod floor(n/n0))^n0 * sum_j C(n,j) regions exactly "
        f"(depths {', '.join(str(int(d)) for d in folding[:, 0])})",
        "0 mismatches", int(np.sum(folding[:, 2] != folding[:, 3])), lambda v: v == 0, fmt="{}"))
    ratio = folding[-1, 3] / folding[-1, 5]
    if folding[-1, 0] >= 4:
        out.append(common.Claim.at_least(
            "Montufar et al. 2014", f"at equal parameters the depth-{int(folding[-1, 0])} net has more regions than "
            "any one-hidden-layer net (ratio of counts)", ratio, 1.0, fmt="{:.2f}"))
    if len(trained) > 1:
        density = (trained[:, 4] / trained[:, 3] ** 2)
        out.append(common.Claim.check(
            "Hanin & Rolnick 2019", f"at init the count grows like (neurons)^2, not exponentially with depth: "
            f"regions / neurons^2 of depth {int(trained[-1, 0])} over depth {int(trained[0, 0])} (equal parameters)",
            "within a factor 2 (0.5 .. 2)", density[-1] / density[0], lambda v: 0.5 <= v <= 2.0, fmt="{:.2f}"))
        trained_ratio = trained[-1, 5] / trained[0, 5]
        bound_ratio = trained[-1, 6] / trained[0, 6]
        out.append(common.Claim.check(
            "Hanin & Rolnick 2019", f"trained nets of equal size do not use depth's capacity: regions of "
            f"depth {int(trained[-1, 0])} / depth {int(trained[0, 0])} stay below 1% of the ratio of their "
            "layerwise bounds", f"< 0.01 x {bound_ratio:.3g}", trained_ratio, lambda v: v < 0.01 * bound_ratio,
            fmt="{:.3g}"))
    return out


def main(argv=None):
    return common.experiment_main(sys.modules[__name__], argv)


if __name__ == "__main__":
    main()
