"""Linear regions: how depth multiplies the pieces of a ReLU network, and how many a random or
trained one has, on a 2-D plane of the inputs, exactly (:mod:`jaxdl.course.regions`).

1. Checks of the counter: Zaslavsky (1975), m lines in general position cut R^2 into C(m, 2) +
   m + 1 regions (a grid sampler beside it); Montufar et al. (2014)'s folding net, L hidden layers
   of width 4 on the unit square, has (2^{L-1})^2 * 11.
2. The course's two pictures: a net trained on ``moons``, its layer-1 lines, layer 2's bent lines.
3. Hanin & Rolnick (2019b, "Deep ReLU networks have surprisingly few activation patterns"): at
   init the count in an n_in-dimensional cross-section grows like neurons^{n_in}, whatever the
   depth. He-initialised MLPs on the plane through three ``mnist1d`` test inputs, over seeds: the
   exponent fitted at each depth against their 2. And the count stays near its initial value in
   training: the same nets' counts before and after training on ``mnist1d``, beside test accuracy.
"""
from __future__ import annotations


import ml_collections
import numpy as np

from experiments import framework as fw
from jaxdl import data as datasets, plot, train
from jaxdl.course import regions
from jaxdl.train import optim
from jaxdl.models import get_model
from jaxdl.core import fits

NAME = "linear_regions"
DESCRIPTION = "exact linear regions on a plane: Zaslavsky's and Montufar's counts, Hanin & Rolnick's scaling law"
DEVICE_FIELDS = {"seeds": "seeds"}
HANIN_ROLNICK = "Hanin & Rolnick 2019b (activation patterns)"
# Declared before the run. Exponent: the paper's n_in = 2, +- 0.25 for the window's boundary, which
# adds a term linear in neurons (a fit at finite neurons sits a little below 2). Training: "close to
# the initial count" read as within a factor 2 (|log2(trained / init)| < 1).
EXPONENT, EXPONENT_TOLERANCE, TRAINED_LOG2_TOLERANCE = 2.0, 0.25, 1.0


def get_config() -> ml_collections.ConfigDict:
    """The default size: about half a minute on 2 CPU cores."""
    return ml_collections.ConfigDict(dict(
        seed=0, seeds=8, max_lines=30, grid_resolution=256, folding_depths=(1, 2, 3, 4, 5), folding_width=4,
        picture_widths=(8, 8), picture_epochs=200, dataset="mnist1d", depths=(1, 2, 4), neurons=(32, 64, 128),
        trained_neurons=64, learning_rate=1e-3, epochs=60, batch_size=128,
        window=(-0.25, 1.25)))  # plane coordinates u, v of the counting window (the three inputs at 0 and 1)


SIZES = {"quick": {"seeds": 2, "max_lines": 6, "grid_resolution": 64, "folding_depths": (1, 2, 3),
                   "picture_widths": (4, 4), "picture_epochs": 5, "depths": (1, 2), "neurons": (8, 16),
                   "trained_neurons": 16, "epochs": 2},
         "full": {"seeds": 16, "max_lines": 60, "grid_resolution": 1024, "folding_depths": (1, 2, 3, 4, 5, 6),
                  "depths": (1, 2, 3, 4, 6), "neurons": (48, 96, 192), "trained_neurons": 96, "epochs": 200}}
FIELDS = {
    **dict.fromkeys(("max_lines", "grid_resolution", "picture_epochs", "epochs", "batch_size", "seeds"),
                    fw.positive_int),
    "folding_width": fw.expect(lambda v: v >= 2 and v % 2 == 0, "an even width (two folded inputs)"),
    "folding_depths": fw.positive_ints, "depths": fw.positive_ints, "learning_rate": fw.positive,
    "picture_widths": fw.expect(lambda v: len(v) == 2 and min(v) > 0, "two positive hidden widths"),
    "neurons": (fw.increasing, fw.expect(lambda v, c: len(v) >= 2 and all(n % d == 0 for n in v for d in c.depths),
                                         "two or more counts, each a multiple of every depth", uses_config=True)),
    "trained_neurons": fw.expect(lambda v, c: v in c.neurons, "one of config.neurons", uses_config=True),
    "window": fw.expect(lambda v: len(v) == 2 and v[0] < v[1], "(low, high) with low < high"),
}


def closed_forms_phase(config) -> fw.Phase:
    """Zaslavsky's lines (exact and sampled) and Montufar's folding net (exact) against their formulas."""
    rng, plane, lines = np.random.default_rng(config.seed), regions.input_plane(), []
    for m in range(1, config.max_lines + 1):
        layer = (rng.normal(size=(2, m)), rng.normal(size=m))
        window = regions.window_around_lines(layer, plane)
        # Padded with units that are always off (zero weights, bias -1): one compiled sampler for every m.
        padded = (np.pad(layer[0], ((0, 0), (0, config.max_lines - m))),
                  np.pad(layer[1], (0, config.max_lines - m), constant_values=-1.0))
        sampled = regions.count_patterns_on_grid(regions.grid_patterns([padded], plane, window, config.grid_resolution))
        lines.append([m, regions.zaslavsky_count(m), regions.linear_regions([layer], plane, window).num_regions,
                      sampled])
    folding, partitions = [], {}
    for depth in config.folding_depths:
        layers = regions.folding_network(depth, config.folding_width)
        partitions[depth] = regions.linear_regions(layers, plane, regions.Window(0.0, 1.0, 0.0, 1.0))
        parameters = sum(k.size + b.size for k, b in layers)
        shallow_units = parameters // 3  # a unit on two inputs costs two weights and a bias
        folding.append([depth, parameters, regions.montufar_count(depth, config.folding_width),
                        partitions[depth].num_regions, shallow_units, regions.zaslavsky_count(shallow_units)])
    columns = np.array(lines).T
    figure = plot.line_plot({"C(m,2) + m + 1": columns[[0, 1]], "exact partition": columns[[0, 2]],
                             f"grid sampler {config.grid_resolution}^2": columns[[0, 3]]}, xlabel="units m (lines)",
                            ylabel="regions", logy=True, title="one hidden layer on R^2 (Zaslavsky 1975)")
    return fw.Phase(
        tables={"zaslavsky": fw.format_table(["units m", "C(m,2)+m+1", "exact", "grid sampler"], lines),
                "folding": fw.format_table(["depth", "parameters", "Montufar count", "exact", "shallow units",
                                            "shallow max"], folding)},
        figures={"zaslavsky": figure}, numbers={"zaslavsky": lines, "folding": folding},
        carry=partitions[max(partitions)])


def picture_phase(config, ctx) -> fw.Phase:
    """The course's two pictures: layer 1's lines alone, then layer 2's bent lines, of a net trained on moons."""
    moons = datasets.load("moons", seed=config.seed)
    model = get_model("mlp", widths=tuple(config.picture_widths), num_outputs=moons.num_classes)
    fitted = train.fit(model, moons, optim.get_optimizer("adam", 1e-2), epochs=config.picture_epochs, batch_size=100,
                       seed=config.seed, logger=ctx.logger.with_tags(run="moons"))
    low, high = moons.x_train.min(0) - 0.5, moons.x_train.max(0) + 0.5
    partitions = [regions.linear_regions(regions.relu_layers(model, fitted.state.params), regions.input_plane(),
                                         regions.Window(low[0], high[0], low[1], high[1]), stop_after_layer=stop)
                  for stop in (1, None)]
    return fw.Phase(figures={"regions_moons": plot.linear_regions(
        partitions, ["hidden layer 1: straight lines", "layers 1 and 2: layer 2's lines bend"], moons.x_train,
        moons.y_train, suptitle=f"ReLU MLP {tuple(config.picture_widths)} trained on moons")})


def _he_layers(rng, input_dim, depth, neurons):
    """Hidden layers of ``depth`` x ``neurons // depth`` units as the zoo's MLP draws them (He normal
    kernels, zero biases), drawn by NumPy: no compilation per shape."""
    width = neurons // depth
    return [(rng.normal(0.0, np.sqrt(2.0 / fan_in), (fan_in, width)), np.zeros(width))
            for fan_in in [input_dim] + [width] * (depth - 1)]


def scaling_phase(config) -> fw.Phase:
    """Regions at initialisation for every depth and neuron count over the seeds; the exponent per seed.
    The plane runs through the first test inputs of classes 0, 1, 2 (at u, v = 0 or 1)."""
    data, (low, high) = datasets.load(config.dataset, seed=config.seed), config.window
    plane = regions.plane_through(*data.x_test[[int(np.flatnonzero(data.y_test == c)[0]) for c in range(3)]])
    window = regions.Window(low, high, low, high)
    input_dim = int(np.prod(data.x_train.shape[1:]))
    counts = np.array([[[regions.linear_regions(_he_layers(np.random.default_rng([seed, depth, n]), input_dim, depth,
                                                           n), plane, window).num_regions for seed in fw.seeds(config)]
                        for n in config.neurons] for depth in config.depths], float)  # (depths, neurons, K)
    rows = [[d, n, n // d, c.mean(), c.std(ddof=1) / np.sqrt(c.size) if c.size > 1 else np.nan, c.mean() / n**2]
            for d, c_NxK in zip(config.depths, counts) for n, c in zip(config.neurons, c_NxK)]
    curves = {f"depth {d}": (config.neurons, c_NxK.mean(1)) for d, c_NxK in zip(config.depths, counts)}
    curves["neurons^2 / 4"] = (config.neurons, np.asarray(config.neurons, float) ** 2 / 4)
    figure = plot.loglog_panels({f"{config.dataset} plane at init, mean over {config.seeds} seeds": curves},
                                xlabel="neurons", ylabel="linear regions",
                                title="Hanin & Rolnick 2019: regions grow like neurons^2, whatever the depth")
    return fw.Phase(tables={"regions at initialisation": fw.format_table(
        ["depth", "neurons", "width", "regions (mean)", "SE", "regions / neurons^2"], rows, "{:.4g}")},
        figures={"regions_scaling": figure}, arrays={"init_counts": counts}, carry=(data, plane, window),
        numbers={"exponents": {str(d): fits.loglog_slope(config.neurons, c_NxK.T).tolist()
                               for d, c_NxK in zip(config.depths, counts)}})


def trained_phase(config, ctx, folded, data, plane, window) -> fw.Phase:
    """The shallowest and deepest nets of ``trained_neurons`` neurons trained: regions before and after."""
    tx, rows, numbers = optim.get_optimizer("adam", config.learning_rate), [], {}
    examples = {f"folding net, depth {max(config.folding_depths)}": folded}
    for depth in sorted({min(config.depths), max(config.depths)}):
        model = get_model("mlp", widths=(config.trained_neurons // depth,) * depth, num_outputs=data.num_classes)
        fitted = train.fit_seeds(model, data, tx, seeds=fw.seeds(config), epochs=config.epochs,
                                 batch_size=config.batch_size, logger=ctx.logger.with_tags(run=f"depth{depth}"))
        found = {stage: [regions.linear_regions(regions.relu_layers(model, train.unstack(state, k).params), plane,
                                                window) for k in range(config.seeds)]
                 for stage, state in (("init", fitted.initial_state), ("trained", fitted.state))}
        counts = {stage: [p.num_regions for p in partitions] for stage, partitions in found.items()}
        accuracy = fitted.history["test_accuracy"][:, -1]
        numbers[str(depth)] = {**counts, "test_accuracy": accuracy.tolist(), "area_error": max(
            abs(regions.region_areas(p).sum() / window.area - 1) for p in found["trained"])}
        rows.append([depth, config.trained_neurons // depth, np.mean(counts["init"]), np.mean(counts["trained"]),
                     np.mean(np.log2(np.divide(counts["trained"], counts["init"]))), accuracy.mean()])
        examples.update({f"depth {depth} at init": found["init"][0], f"depth {depth} trained": found["trained"][0]})
    figure = plot.linear_regions(list(examples.values()), list(examples), suptitle=f"{config.dataset} plane, "
                                 f"{config.trained_neurons} neurons (seed {config.seed})")
    return fw.Phase(tables={f"{config.trained_neurons} neurons trained on {config.dataset} (means over seeds)":
                            fw.format_table(["depth", "width", "regions at init", "regions trained",
                                             "log2(trained / init)", "test accuracy"], rows, "{:.4g}")},
                    figures={"trained_regions": figure}, numbers={"trained": numbers})


def run(config, ctx) -> None:
    folded = ctx.phase("closed forms", closed_forms_phase, config).carry
    ctx.phase("picture", picture_phase, config, ctx)
    on_plane = ctx.phase("scaling at initialisation", scaling_phase, config).carry
    ctx.phase("trained", trained_phase, config, ctx, folded, *on_plane)


def claims(config, numbers) -> list:
    lines, folding = np.array(numbers["zaslavsky"]), np.array(numbers["folding"])
    deep = folding[folding[:, 0] >= 3]
    out = [fw.Check.that(key, source, statement, not np.any(bad), "none", int(np.sum(bad))) for key, source, statement,
           bad in (("zaslavsky_exact", "Zaslavsky 1975", f"the exact counter finds C(m,2)+m+1 regions, m = 1.."
                    f"{len(lines)} random lines (mismatches)", lines[:, 1] != lines[:, 2]),
                   ("grid_sampler_below_exact", "regions.count_patterns_on_grid", "a grid sampler can only miss "
                    "regions (m with more sampled than exact)", lines[:, 3] > lines[:, 2]),
                   ("montufar_folding_exact", "Montufar et al. 2014", "the folding net has (prod floor(n/n0))^n0 * "
                    "sum_j C(n,j) regions exactly (mismatching depths)", folding[:, 2] != folding[:, 3]))]
    out.append(fw.Check.at_least(
        "montufar_deep_beats_shallow", "Montufar et al. 2014", "from depth 3 on, the folding net has more regions than "
        "any one-hidden-layer net with as many parameters (smallest ratio of the two closed forms)",
        np.min(deep[:, 3] / deep[:, 5]) if len(deep) else np.inf, 1.0, "{:.2f}"))
    out.append(fw.Check.at_most("regions_tile_window", "regions.linear_regions", "the regions of every trained net "
                                "tile the window (largest relative error of their total area)",
                                max(t["area_error"] for t in numbers["trained"].values()), 1e-9, "{:.1e}"))
    for depth, exponents in numbers["exponents"].items():
        out.append(fw.Claim.within(
            f"regions_exponent_depth{depth}", HANIN_ROLNICK, f"at init, depth {depth}: regions on the {config.dataset} "
            f"plane grow like neurons^2 (fitted exponent over {list(config.neurons)} neurons; a count exponential in "
            f"depth would grow like neurons^{2 * int(depth)})", exponents, target=EXPONENT,
            tolerance=EXPONENT_TOLERANCE, fmt="{:.2f}"))
    for depth, t in numbers["trained"].items():
        out.append(fw.Claim.within(
            f"trained_regions_near_init_depth{depth}", HANIN_ROLNICK, f"depth {depth}, {config.trained_neurons} "
            f"neurons trained on {config.dataset}: the count stays near its value at init (log2 of trained / init)",
            np.log2(np.divide(t["trained"], t["init"])), target=0.0, tolerance=TRAINED_LOG2_TOLERANCE, fmt="{:.2f}"))
    return out


main = fw.entry_point(__name__)


if __name__ == "__main__":
    main()
