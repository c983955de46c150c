"""Loss landscapes at depth: shortcuts, convexity, trajectories and what weight decay hides.

- He et al. 2016 (degradation): ResNets with and without shortcuts (``shortcut='none'``, the
  plain twin with the same parameters) at a shallow and a deep depth, ``seeds`` seeds each, the
  same epochs: the plain deep net ends at a higher train loss than the plain shallow one, the
  residual deep net at a lower one than the residual shallow one (the positive control).
- Li et al. 2018, Fig. 5 and 6: around each deep solution, the train loss on a plane of two
  filter-normalised directions and a convexity map (|lambda_min / lambda_max| by Lanczos at every
  point of a coarser grid): without shortcuts more of the plane is non-convex, and the level set
  {L <= L(centre) + level} covers less of it.
- Li et al. 2018, section 7: the iterates of each deep fit (saved inside the compiled loop every
  ``snapshot_every`` steps) on their top two principal directions, which hold 40% to 90% of the
  trajectory's variance in the paper; the negative control is a Gaussian random walk with as many
  points and parameters, whose two top directions already hold about 76%.
- Li et al. 2018, Fig. 3 and 5: small- and large-batch solutions of an MLP, without and with
  weight decay (the same seeds, so pair k shares its initialisation; the decay scaled to shrink
  the weights over the small-batch run as much as the paper's did over theirs). Along the line
  through the two solutions (no normalisation) the large-batch end looks the sharper without
  weight decay and the small-batch end with it; along filter-normalised random directions the
  small-batch solution is the flatter in both. The figure has the four panels: the line and a
  filter-normalised direction, each without and with weight decay.

Default size about 3.5 minutes on 2 cores; ``--size full`` the paper's ResNet-20/56/110 on
CIFAR-10 files (a GPU or TPU).
"""
from __future__ import annotations

import jax
import ml_collections
import numpy as np

from experiments import framework as fw
from jaxdl import data as datasets, plot, train
from jaxdl.analysis import landscape
from jaxdl.train import optim

NAME = "landscape_depth"
DESCRIPTION = ("plain against residual nets at depth: degradation (He), surfaces, convexity maps and level sets "
               "(Li), trajectories on their PCA plane (Li), small vs large batch with and without weight decay and "
               "filter normalisation (Li Fig. 3)")
DEVICE_FIELDS = {"seeds": "seeds"}
HE, LI = "He et al. 2016", "Li et al. 2018"
SHORTCUTS = {"plain": "none", "residual": "padding"}


def get_config() -> ml_collections.ConfigDict:
    """The default size: ResNet-8 and ResNet-20 (1-D, a quarter of the CIFAR widths, BatchNorm)
    with and without shortcuts on MNIST-1D, and sharp_flat's MLP for Fig. 3; five seeds each."""
    return ml_collections.ConfigDict(dict(
        seed=0, seeds=5, dataset="mnist1d",
        # Depths 8 and 32: the smallest ResNet and the shallowest whose plain net degrades by more
        # than the seeds' spread in this budget (He et al. and Li et al. start at 20, where plain
        # and residual nets differ little; 56 and 110 do not compile and train in the budget).
        model=fw.model_spec("resnet1d", width_multiplier=0.25, norm="batch"), depths=(8, 32),
        optimizer="adam", learning_rate=3e-3, epochs=6, batch_size=128, snapshot_every=8,
        # The planes: filter-normalised directions (biases and BatchNorm parameters left out, as
        # Li et al.), the loss on surface_examples training examples over [-r, r]^2. Li et al.'s
        # r = 1 is too wide for filters of 3 x 4 weights: there every net's loss is above its
        # centre's by more than 0.5 nats one grid step (0.2) from the centre.
        grid_range=(-0.5, 0.5), grid_size=11, surface_examples=1000,
        # The convexity maps: a coarser grid, Lanczos on curvature_examples examples.
        convexity_grid_size=5, lanczos_steps=10, curvature_examples=256,
        # Declared: a point is non-convex when |lambda_min / lambda_max| > 0.1 (a negative
        # curvature a tenth of the largest); the level set is L <= L(centre) + 0.5 nats.
        ratio_threshold=0.1, level=0.5,
        # The paper's range of the variance held by two principal directions.
        variance_range=(0.4, 0.9),
        # Fig. 3: SGD with momentum as Li et al., batches 64 and 1000 for equal epochs (theirs: 128
        # and 8192 of 50,000 examples). Weight decay (coupled: the gradient gains wd theta, l2 =
        # wd / 2) scaled so that the small-batch run shrinks the weights as much as theirs: the sum
        # of lr x wd over its steps is 0.1 x 5e-4 x 391 steps x 15.8 lr-weighted epochs (their
        # schedule divides 0.1 by 10 at epochs 150, 225 and 275) = 3.1 there, and 0.05 x 0.01 x 62
        # steps x 100 epochs = 3.1 here; their 5e-4 here would shrink them by 2% instead of 95%.
        fig3=dict(model=fw.model_spec("mlp", widths=(100, 100)), learning_rate=0.05, momentum=0.9, epochs=100,
                  small_batch=64, large_batch=1000, weight_decay=0.01, alphas=(-0.5, 1.5), num_alphas=21,
                  step=0.25, radius=0.25, directions=4)))


SIZES = {
    "quick": {"seeds": 2, "depths": (8, 14), "epochs": 1, "snapshot_every": 4, "grid_size": 3, "surface_examples": 200,
              "convexity_grid_size": 3, "lanczos_steps": 4, "curvature_examples": 32, "fig3.epochs": 1,
              "fig3.model.hparams.widths": (16,), "fig3.num_alphas": 9, "fig3.directions": 2},
    # The paper's scale (a GPU or TPU): ResNet-20/56/110 with and without shortcuts on CIFAR-10 files.
    "full": {"seeds": 5, "dataset": "cifar10", "model": fw.model_spec("resnet", norm="batch"), "depths": (20, 56, 110),
             "epochs": 100, "snapshot_every": 390, "grid_size": 51, "surface_examples": 10000,
             "convexity_grid_size": 21, "lanczos_steps": 20, "curvature_examples": 2048, "grid_range": (-1.0, 1.0),
             # Fig. 3 as the paper's appendix (their Fig. 12): a ResNet-56, batches 128 and 8192, 300
             # epochs at 0.1 (constant here), weight decay 5e-4.
             "fig3.model": fw.model_spec("resnet", depth=56, norm="batch"), "fig3.epochs": 300,
             "fig3.learning_rate": 0.1, "fig3.weight_decay": 5e-4, "fig3.small_batch": 128, "fig3.large_batch": 8192},
}
FIELDS = {
    **{f: fw.positive_int for f in ("seeds", "epochs", "batch_size", "snapshot_every", "surface_examples",
                                    "lanczos_steps", "curvature_examples", "fig3.epochs", "fig3.small_batch",
                                    "fig3.directions")},
    **{f: fw.positive for f in ("learning_rate", "ratio_threshold", "level", "fig3.learning_rate", "fig3.weight_decay",
                                "fig3.step", "fig3.radius")},
    "fig3.momentum": fw.probability,
    "depths": fw.expect(lambda v: len(v) >= 2 and all((d - 2) % 6 == 0 and d >= 8 for d in v)
                        and all(a < b for a, b in zip(v, v[1:])), "two or more increasing depths 6n + 2 (8, 14, 20, ...)"),
    "model": fw.expect(lambda v: v.name in ("resnet", "resnet1d"), "a resnet or resnet1d (built with and without "
                       "shortcuts)"),
    "grid_range": fw.expect(lambda v: len(v) == 2 and -v[0] == v[1] > 0, "(-r, r) with r > 0"),
    "grid_size": fw.expect(lambda v: isinstance(v, int) and v >= 3 and v % 2, "an odd integer >= 3 (0 on the grid)"),
    "convexity_grid_size": fw.expect(lambda v: isinstance(v, int) and v >= 3 and v % 2,
                                     "an odd integer >= 3 (0 on the grid)"),
    "variance_range": fw.expect(lambda v: len(v) == 2 and 0 < v[0] < v[1] <= 1, "(low, high) in (0, 1]"),
    "fig3.large_batch": fw.expect(lambda v, c: isinstance(v, int) and v > c.fig3.small_batch,
                                  "an integer above fig3.small_batch", uses_config=True),
    "fig3.alphas": fw.expect(lambda v, c: len(v) == 2 and v[0] <= -c.fig3.step and v[1] >= 1 + c.fig3.step,
                             "(start, stop) reaching fig3.step beyond both ends", uses_config=True),
    "fig3.num_alphas": fw.expect(lambda v: isinstance(v, int) and v >= 5, "an integer >= 5"),
}


def nets(config) -> list[tuple[str, int]]:
    """``(kind, depth)`` of every net: each depth without and with shortcuts."""
    return [(kind, depth) for depth in config.depths for kind in SHORTCUTS]


def build(config, kind, depth, num_classes):
    return fw.build_model(config.model, num_classes, depth=depth, shortcut=SHORTCUTS[kind])


def depth_phase(config, ctx) -> fw.Phase:
    """He et al.: every net at every depth, ``seeds`` seeds in one vmapped fit each, the deep
    nets' iterates saved every ``snapshot_every`` steps."""
    data = datasets.load(config.dataset)
    tx = optim.get_optimizer(config.optimizer, config.learning_rate)
    deep, rows, numbers, fits = config.depths[-1], [], {}, {}
    for kind, depth in nets(config):
        model = build(config, kind, depth, data.num_classes)
        result = train.fit_seeds(model, data, tx, seeds=fw.seeds(config), epochs=config.epochs,
                                 batch_size=config.batch_size, eval_every=config.epochs,
                                 snapshot_every=config.snapshot_every if depth == deep else None,
                                 logger=ctx.logger.with_tags(run=f"{kind}{depth}"))
        train_loss = result.history["train_loss"][:, -1].tolist()
        test_accuracy = result.history["test_accuracy"][:, -1].tolist()
        parameters = sum(x.size for x in jax.tree.leaves(train.unstack(result.state.params, 0)))
        numbers[f"{kind}{depth}"] = {"train_loss": train_loss, "test_accuracy": test_accuracy, "parameters": parameters}
        rows.append([f"{kind}-{depth}", parameters,
                     np.mean(train_loss), np.std(train_loss, ddof=1) / np.sqrt(len(train_loss)),
                     np.mean(test_accuracy)])
        fits[kind, depth] = (model, result)
    table = fw.format_table(["network", "parameters", "train loss", "SE", "test accuracy"], rows,
                            float_format="{:.4g}")
    return fw.Phase(tables={f"degradation: {config.epochs} epochs each (means over {config.seeds} seeds)": table},
                    numbers={"depth": numbers}, carry=(data, fits))


def centred_surface(config, model, state, data, key, grid, examples):
    """The train loss on the filter-normalised plane through ``state`` and the plane's directions."""
    apply_fn = train.make_apply_fn(model, state.model_state)
    direction_x, direction_y = (landscape.random_direction(k, state.params, ignore_biasbn=True)
                                for k in jax.random.split(key))
    batch = (data.x_train[:examples], data.y_train[:examples])
    loss = landscape.surface(apply_fn, state.params, direction_x, direction_y, batch, grid, grid)["loss"]
    return np.asarray(loss, np.float64), apply_fn, (direction_x, direction_y)


def planes_phase(config, ctx, data, fits) -> fw.Phase:
    """Li et al. Fig. 5 and 6: surfaces (every net, seed 0; every seed of the deep nets), the
    level-set fraction and the convexity maps of the deep nets."""
    grid = np.linspace(*config.grid_range, config.grid_size)
    coarse = np.linspace(*config.grid_range, config.convexity_grid_size)
    deep, numbers, surfaces, maps, rows = config.depths[-1], {}, {}, {}, []
    curvature_batch = (data.x_train[:config.curvature_examples], data.y_train[:config.curvature_examples])
    for (kind, depth), (model, result) in fits.items():
        seeds = range(config.seeds) if depth == deep else range(1)
        levels, fractions, worst = [], [], []
        for k in seeds:
            state, key = train.unstack(result.state, k), jax.random.key(config.seed + 100 + k)
            loss, apply_fn, directions = centred_surface(config, model, state, data, key, grid,
                                                         config.surface_examples)
            centre = loss[config.grid_size // 2, config.grid_size // 2]
            levels.append(float(np.mean(loss <= centre + config.level)))
            if k == 0:
                surfaces[f"{kind}-{depth}"] = loss
            if depth == deep:
                values = landscape.convexity_map(apply_fn, state.params, *directions, curvature_batch, coarse, coarse,
                                                 num_steps=config.lanczos_steps, key=key)
                fractions.append(landscape.convexity_fraction(values, coarse, coarse, config.ratio_threshold))
                worst.append(float(np.max(np.where(np.isfinite(values["ratio"]), values["ratio"], 0.0))))
                if k == 0:
                    maps[f"{kind}-{depth}"] = np.minimum(values["ratio"], 1.0)
        numbers[f"{kind}{depth}"] = {"level_fraction": levels, **({"nonconvex_fraction": fractions,
                                                                   "largest_ratio": worst} if fractions else {})}
        rows.append([f"{kind}-{depth}", len(levels), np.mean(levels),
                     np.mean(fractions) if fractions else float("nan"), np.mean(worst) if worst else float("nan")])
    names = list(surfaces)
    figures = {f"surfaces_{'filled' if filled else 'contour'}": surface_grid(
        grid, {name: surfaces[name] for name in names}, filled, config) for filled in (True, False)}
    figures["convexity_maps"] = surface_grid(coarse, maps, True, config, log=False,
                                             title="|lambda_min / lambda_max| (clipped at 1), seed 0")
    table = fw.format_table(["network", "seeds", f"fraction with L <= L(centre) + {config.level:g}",
                             f"fraction with ratio > {config.ratio_threshold:g}", "largest ratio"], rows,
                            float_format="{:.3g}")
    return fw.Phase(tables={"planes around the solutions (means over seeds)": table}, figures=figures,
                    arrays={"planes/grid": grid, "planes/coarse_grid": coarse,
                            **{f"planes/{name}": value for name, value in surfaces.items()},
                            **{f"convexity/{name}": value for name, value in maps.items()}},
                    numbers={"planes": numbers})


def surface_grid(grid, surfaces: dict, filled: bool, config, log: bool = True, title: str | None = None):
    """Side-by-side panels of ``{name: (J, I) values}`` on the square ``grid``."""
    names = list(surfaces)
    columns = len(config.depths) if len(names) == 2 * len(config.depths) else len(names)
    rows = -(-len(names) // columns)
    fig, axes = plot.subplots(rows, columns, figsize=(4.2 * columns, 3.6 * rows), squeeze=False, layout="constrained")
    for ax, name in zip(axes.ravel(), sorted(names, key=lambda n: (n.split("-")[0], int(n.split("-")[1])))):
        values = np.asarray(surfaces[name], np.float64)
        values = np.log10(np.maximum(values, 1e-12)) if log else values
        drawn = (ax.contourf if filled else ax.contour)(grid, grid, values, levels=20, cmap="viridis")
        if not filled:
            ax.clabel(drawn, fontsize=6)
        fig.colorbar(drawn, ax=ax)
        ax.set(title=name, xlabel="direction x", ylabel="direction y")
    for ax in axes.ravel()[len(names):]:
        ax.axis("off")
    fig.suptitle(title or f"train loss (log10) on filter-normalised planes, seed 0 ({'filled' if filled else 'contours'})")
    return fig


def trajectories_phase(config, ctx, data, fits) -> fw.Phase:
    """Li et al. section 7: each deep fit's iterates on their principal plane."""
    deep, numbers, panels = config.depths[-1], {}, {}
    for kind in SHORTCUTS:
        model, result = fits[kind, deep]
        variances, walks = [], []
        for k in range(config.seeds):
            iterates = train.unstack(result.snapshots, k)
            final = train.unstack(result.state.params, k)
            plane = landscape.trajectory_plane(jax.tree.map(lambda a, b: np.concatenate([a, b[None]]), iterates,
                                                            final), final)
            explained = np.asarray(plane.explained_variance, np.float64)
            variances.append(float(explained.sum()))
            walks.append(random_walk_variance(config.seed + k, plane.coordinates.shape[0],
                                              sum(x.size for x in jax.tree.leaves(final))))
            if k == 0:
                coords = np.asarray(plane.coordinates)
                panels[f"{kind}-{deep}: PC1 {explained[0]:.1%}, PC2 {explained[1]:.1%}"] = coords
        numbers[f"{kind}{deep}"] = {"explained_two": variances, "random_walk_two": walks}
    fig, axes = plot.subplots(1, len(panels), figsize=(5 * len(panels), 4.2), squeeze=False, layout="constrained")
    for ax, (label, coords) in zip(axes.ravel(), panels.items()):
        ax.plot(coords[:, 0], coords[:, 1], ".-", markersize=4)
        ax.plot(coords[0, 0], coords[0, 1], "o", label="start")
        ax.plot(0, 0, "x", color="k", label="final")
        name, pcs = label.split(": ")
        ax.set(title=name, xlabel=pcs.split(", ")[0], ylabel=pcs.split(", ")[1])
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.suptitle(f"trajectories on their principal plane, seed {config.seed} (every {config.snapshot_every} steps)")
    table = fw.format_table(["network", "variance in two directions (mean)", "min", "max",
                             "random walk of as many steps (mean)"],
                            [[name, np.mean(v["explained_two"]), np.min(v["explained_two"]),
                              np.max(v["explained_two"]), np.mean(v["random_walk_two"])]
                             for name, v in numbers.items()], float_format="{:.3g}")
    return fw.Phase(tables={f"trajectories (over {config.seeds} seeds)": table}, figures={"trajectories": fig},
                    numbers={"trajectories": numbers})


def random_walk_variance(seed: int, length: int, dimension: int) -> float:
    """The variance in the top two principal directions of a Gaussian random walk of ``length``
    points in ``dimension`` dimensions, the negative control for Li et al.'s section 7: in high
    dimensions its k-th direction holds about 6 / (pi k)^2 of the variance (Antognini and
    Sohl-Dickstein 2018), 76% for two, so a trajectory is lower-dimensional than noise only above
    that."""
    steps = np.random.default_rng(seed).standard_normal((length, dimension)).astype(np.float32)
    plane = landscape.trajectory_plane({"w": np.cumsum(steps, axis=0)})
    return float(np.sum(np.asarray(plane.explained_variance, np.float64)))


def outward_rise(alphas, loss, at: float, step: float) -> float:
    """L(at + step) - L(at) read off a curve sampled at ``alphas`` (interpolated)."""
    return float(np.interp(at + step, alphas, loss) - np.interp(at, alphas, loss))


def fig3_phase(config, ctx) -> fw.Phase:
    """Li et al. Fig. 3 and 5: small- and large-batch solutions with and without weight decay."""
    task, data = config.fig3, datasets.load(config.dataset)
    model = fw.build_model(task.model, data.num_classes)
    batch, alphas = (data.x_train, data.y_train), np.linspace(*task.alphas, task.num_alphas)
    distances = np.linspace(-1.0, 1.0, task.num_alphas)
    numbers, lines, rays, rows = {}, {}, {}, []
    for decay in (0.0, task.weight_decay):
        tx = optim.get_optimizer("momentum", task.learning_rate, momentum=task.momentum, l2=decay / 2)
        solutions = {}
        for regime, size in (("SB", task.small_batch), ("LB", task.large_batch)):
            result = train.fit_seeds(model, data, tx, seeds=fw.seeds(config), epochs=task.epochs, batch_size=size,
                                     eval_every=task.epochs,
                                     logger=ctx.logger.with_tags(run=f"fig3/{regime}/wd{decay:g}"))
            solutions[regime] = result
        tag, apply_fn = f"wd{decay:g}", train.make_apply_fn(model)
        entry = {"rise_SB": [], "rise_LB": [], "sharpness_SB": [], "sharpness_LB": [], "norm_SB": [], "norm_LB": []}
        for k in range(config.seeds):
            small, large = (train.unstack(solutions[r].state.params, k) for r in ("SB", "LB"))
            loss = np.asarray(landscape.interpolate(apply_fn, small, large, batch, alphas)["loss"], np.float64)
            entry["rise_SB"].append(outward_rise(alphas, loss, 0.0, -task.step))
            entry["rise_LB"].append(outward_rise(alphas, loss, 1.0, task.step))
            for regime, params in (("SB", small), ("LB", large)):
                sharp = landscape.filter_normalized_sharpness(apply_fn, params, batch, jax.random.key(config.seed + k),
                                                              radius=task.radius, num_directions=task.directions)
                entry[f"sharpness_{regime}"].append(float(sharp["value"]))
                entry[f"norm_{regime}"].append(float(np.sqrt(sum(np.sum(np.square(x))
                                                                 for x in jax.tree.leaves(params)))))
            if k == 0:
                lines[f"the line SB -> LB, weight decay {decay:g}"] = {"train loss": (alphas, loss)}
                direction_key = jax.random.key(config.seed + 200)
                rays[f"filter-normalised direction, weight decay {decay:g}"] = {
                    regime: (distances, np.asarray(landscape.interpolate_direction(
                        apply_fn, params, landscape.random_direction(direction_key, params), batch, distances)["loss"]))
                    for regime, params in (("SB", small), ("LB", large))}
        for regime in ("SB", "LB"):
            entry[f"train_loss_{regime}"] = solutions[regime].history["train_loss"][:, -1].tolist()
            entry[f"test_accuracy_{regime}"] = solutions[regime].history["test_accuracy"][:, -1].tolist()
            rows.append([f"{regime}, weight decay {decay:g}", np.mean(entry[f"train_loss_{regime}"]),
                         np.mean(entry[f"test_accuracy_{regime}"]), np.mean(entry[f"norm_{regime}"]),
                         np.mean(entry[f"rise_{regime}"]), np.mean(entry[f"sharpness_{regime}"])])
        numbers[tag] = entry
    figure = plot.panels({**lines, **rays}, columns=2, logy=True,
                         xlabel=("a  (theta = (1 - a) theta_SB + a theta_LB)",) * 2 + ("a  (theta + a d)",) * 2,
                         title=f"Li et al. Fig. 3: small batch {task.small_batch} (at a = 0 on the line) and large batch "
                               f"{task.large_batch} (a = 1), without and with weight decay; right, along one "
                               f"filter-normalised direction d (seed {config.seed})")
    table = fw.format_table(["solution", "train loss", "test accuracy", "||theta||",
                             f"outward rise at {task.step:g} on the line", "filter-normalised sharpness"], rows,
                            float_format="{:.4g}")
    return fw.Phase(tables={f"small vs large batch, {task.epochs} epochs each (means over {config.seeds} seeds)": table},
                    figures={"fig3_interpolation": figure}, numbers={"fig3": numbers})


def run(config, ctx) -> None:
    data, fits = ctx.phase("degradation", depth_phase, config, ctx).carry
    ctx.phase("planes and convexity", planes_phase, config, ctx, data, fits)
    ctx.phase("trajectories", trajectories_phase, config, ctx, data, fits)
    ctx.phase("small vs large batch (Fig. 3)", fig3_phase, config, ctx)


def claims(config, numbers) -> list:
    depth, n = numbers["depth"], config.seeds
    shallow, deep = config.depths[0], config.depths[-1]
    out = [fw.Claim.difference(
        "plain_deep_degrades", HE, f"without shortcuts the {deep}-layer net ends at a higher train loss than the "
        f"{shallow}-layer one after the same {config.epochs} epochs (Welch, {n} seeds each)",
        depth[f"plain{deep}"]["train_loss"], depth[f"plain{shallow}"]["train_loss"], above=0.0),
        fw.Claim.difference(
        "residual_deep_does_not_degrade", HE, f"with shortcuts the {deep}-layer net ends at a lower train loss than "
        f"the {shallow}-layer one (the positive control; Welch, {n} seeds each)",
        depth[f"residual{deep}"]["train_loss"], depth[f"residual{shallow}"]["train_loss"], below=0.0)]
    out += [fw.Check.that(f"equal_parameters_{d}", "construction", f"the {d}-layer nets with and without shortcuts "
                          "have the same parameters (option A shortcuts add none)",
                          depth[f"plain{d}"]["parameters"] == depth[f"residual{d}"]["parameters"],
                          "equal counts", [depth[f"plain{d}"]["parameters"], depth[f"residual{d}"]["parameters"]])
            for d in config.depths]
    planes = numbers["planes"]
    out += [fw.Claim.difference(
        "plain_surface_less_convex", LI, f"around the {deep}-layer solutions a larger fraction of the plane has "
        f"|lambda_min / lambda_max| > {config.ratio_threshold:g} without shortcuts than with them "
        f"({config.convexity_grid_size}^2 points, Welch over {n} seeds each)",
        planes[f"plain{deep}"]["nonconvex_fraction"], planes[f"residual{deep}"]["nonconvex_fraction"], above=0.0),
        fw.Claim.difference(
        "plain_level_set_smaller", LI, f"the level set L <= L(centre) + {config.level:g} covers less of the plane "
        f"without shortcuts than with them ({deep} layers, {config.grid_size}^2 points, Welch over {n} seeds each)",
        planes[f"residual{deep}"]["level_fraction"], planes[f"plain{deep}"]["level_fraction"], above=0.0)]
    low, high = config.variance_range
    for kind in SHORTCUTS:
        out.append(fw.Claim.within(
            f"trajectory_two_dimensional_{kind}", LI, f"{kind}-{deep}: the top two principal directions of the "
            f"iterates hold {low:.0%} to {high:.0%} of the trajectory's variance, the paper's range ({n} seeds)",
            numbers["trajectories"][f"{kind}{deep}"]["explained_two"], target=(low + high) / 2,
            tolerance=(high - low) / 2))
        out.append(fw.Claim.difference(
            f"trajectory_below_random_walk_{kind}", LI, f"{kind}-{deep}: the iterates are lower-dimensional than "
            "noise: two directions hold more of their variance than of a Gaussian random walk's with as many "
            f"points and parameters (the negative control, about 76%; Welch, {n} seeds each)",
            numbers["trajectories"][f"{kind}{deep}"]["explained_two"],
            numbers["trajectories"][f"{kind}{deep}"]["random_walk_two"], above=0.0))
    fig3, decay = numbers["fig3"], f"wd{config.fig3.weight_decay:g}"
    out += [fw.Claim.difference(
        "line_large_batch_sharper_without_decay", LI, "Fig. 3, no weight decay: on the line through the two "
        f"solutions the loss rises more in {config.fig3.step:g} beyond the large-batch end than beyond the small-batch "
        f"end (paired by seed, {n} seeds)", fig3["wd0"]["rise_LB"], fig3["wd0"]["rise_SB"], above=0.0, paired=True),
        fw.Claim.difference(
        "line_reverses_with_decay", LI, f"Fig. 3, weight decay {config.fig3.weight_decay:g}: the apparent sharpness "
        "reverses, the small-batch end rising more (paired by seed)", fig3[decay]["rise_SB"], fig3[decay]["rise_LB"],
        above=0.0, paired=True)]
    for tag, words in (("wd0", "no weight decay"), (decay, f"weight decay {config.fig3.weight_decay:g}")):
        out.append(fw.Claim.ratio(
            f"filter_normalized_small_batch_flatter_{tag}", LI, f"Fig. 5, {words}: along filter-normalised "
            f"directions the small-batch solution is the flatter: SB/LB ratio of the mean rise within radius "
            f"{config.fig3.radius:g} (paired by seed)", fig3[tag]["sharpness_SB"], fig3[tag]["sharpness_LB"],
            below=1.0, paired=True))
    return out


main = fw.entry_point(__name__)


if __name__ == "__main__":
    main()
