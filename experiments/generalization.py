"""Generalisation: over-fitting polynomials, random labels, and double descent.

- polynomials (the course, after Bishop 2006, 1.1): least squares of orders 1, 2 and 9 on 15 noisy
  points of sin(pi x), with and without an L2 penalty, in closed form over ``poly.draws`` draws.
- random labels (Zhang et al. 2017): MLPs on ``digits`` and ``mnist1d`` with part or all of their
  training labels random, one ``fit_seeds`` per fraction: fitted still, more slowly; test at chance.
- double descent (Belkin et al. 2019): test loss against model size on a ``mnist1d`` subset with
  one-hot squared-loss targets, for random Fourier features by min-norm least squares (a vmapped
  member per draw of the features) and one-hidden-layer MLPs by full-batch Adam (a masked member per
  width and seed, :mod:`jaxdl.course.width_sweep`): a peak at the interpolation threshold (features = n;
  parameters = n K fitted values), a second descent below the under-parametrised sweet spot.
"""
from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from experiments import framework as fw
from jaxdl import data as datasets, plot, train
from jaxdl.course import features, width_sweep
from jaxdl.train import optim
from jaxdl.models import get_model
from jaxdl.core import fits

NAME = "generalization"
DESCRIPTION = "polynomial over-fitting and an L2 penalty, random labels (Zhang 2017), double descent (Belkin 2019)"
DEVICE_FIELDS = {"random_labels.seeds": "seeds", "double_descent.seeds": "seeds"}
BISHOP, ZHANG, BELKIN = "course (Bishop 2006, 1.1)", "Zhang et al. 2017", "Belkin et al. 2019"
# A float32 least-squares fit's training MSE is exact to about eps * cond(features)^2 ~ 1e-3 relative
# for the order-9 monomials on [-1, 1]: the slack of the checks that nesting and the penalty guarantee.
LSTSQ_TOLERANCE = 1e-3


def get_config() -> ml_collections.ConfigDict:
    """The default size: about half a minute on 2 CPU cores."""
    return ml_collections.ConfigDict(dict(
        seed=0, poly=dict(degrees=(1, 2, 9), l2=1e-3, num_train=15, noise=0.2, draws=10,
                          l2_grid=tuple(float(g) for g in np.logspace(-8, 0, 17))),
        # num_train: the first examples of each training set (0: all).
        random_labels=dict(datasets=("digits", "mnist1d"), num_train=1000, fractions=(0.0, 0.5, 1.0),
                           seeds=5, widths=(128, 128), learning_rate=3e-3, batch_size=128, epochs=50,
                           fit_accuracy=0.99, replacement="uniform"),
        # seeds: draws of the random features and MLP seeds; rf_bandwidth about sqrt(40): w . x of order one.
        double_descent=dict(label_noise=(0.0, 0.2), mnist1d_samples=5000, seeds=5, rf_num_train=200,
                            rf_max_features=2000, rf_counts=12, rf_bandwidth=6.0, mlp_num_train=100,
                            mlp_widths=(2, 4, 8, 16, 20, 24, 32, 128), mlp_steps=2000,
                            mlp_learning_rate=3e-3, mlp_evaluations=1)))


SIZES = {
    "quick": {"poly.draws": 3, "poly.l2_grid": (1e-6, 1e-3, 1.0), "random_labels.datasets": ("digits",),
              "random_labels.num_train": 200, "random_labels.fractions": (0.0, 1.0), "random_labels.seeds": 2,
              "random_labels.widths": (16,), "random_labels.epochs": 2, "double_descent.mnist1d_samples": 500,
              "double_descent.seeds": 2, "double_descent.rf_num_train": 30, "double_descent.rf_max_features": 120,
              "double_descent.rf_counts": 6, "double_descent.mlp_num_train": 30, "double_descent.mlp_widths": (2, 8),
              "double_descent.mlp_steps": 20, "double_descent.mlp_evaluations": 1},
    "full": {"poly.draws": 100, "random_labels.num_train": 0, "random_labels.seeds": 10,
             "random_labels.fractions": tuple(float(f) for f in np.linspace(0, 1, 11)),
             "random_labels.widths": (512, 512), "random_labels.epochs": 200,
             "double_descent.label_noise": (0.0, 0.1, 0.2), "double_descent.seeds": 10,
             "double_descent.rf_num_train": 1000, "double_descent.rf_max_features": 20000,
             "double_descent.rf_counts": 48, "double_descent.mlp_num_train": 400, "double_descent.mlp_steps": 20000,
             "double_descent.mlp_widths": (2, 4, 8, 16, 24, 32, 48, 64, 80, 96, 128, 192, 256, 512, 1024)},
}
_fractions = fw.expect(lambda v: len(v) > 0 and all(0 <= f <= 1 for f in v), "fractions in [0, 1]")
FIELDS = {**{field: fw.positive_int for field in (
        "poly.draws", "poly.num_train", "random_labels.seeds", "random_labels.epochs", "random_labels.batch_size",
        "double_descent.mnist1d_samples", "double_descent.seeds", "double_descent.rf_num_train",
        "double_descent.rf_counts", "double_descent.mlp_num_train", "double_descent.mlp_steps")},
    **{field: fw.positive for field in ("poly.l2", "random_labels.learning_rate", "double_descent.rf_bandwidth",
                                        "double_descent.mlp_learning_rate")},
    "poly.degrees": fw.expect(lambda v: len(v) >= 2 and all(int(m) == m >= 0 for m in v),
                              "at least two non-negative polynomial orders"),
    "poly.l2_grid": fw.positives, "poly.noise": fw.non_negative, "random_labels.widths": fw.positive_ints,
    "random_labels.datasets": fw.subset_of("digits", "mnist1d"), "random_labels.num_train": fw.non_negative_int,
    "random_labels.fractions": (_fractions, fw.increasing, fw.expect(
        lambda v: v[0] == 0 and v[-1] == 1, "fractions from 0.0 (true labels) to 1.0 (random labels)")),
    "random_labels.replacement": fw.one_of("uniform", "different"), "double_descent.label_noise": _fractions,
    "random_labels.fit_accuracy": fw.expect(lambda v: 0 < v <= 1, "a number in (0, 1]"),
    "double_descent.rf_max_features": fw.expect(lambda v, c: v > c.double_descent.rf_num_train,
                                                "more features than rf_num_train", uses_config=True),
    "double_descent.mlp_widths": (fw.positive_ints, fw.expect(lambda v: len(v) >= 2, "at least two widths")),
    "double_descent.mlp_evaluations": fw.expect(lambda v, c: v > 0 and c.double_descent.mlp_steps % v == 0,
                                                "a positive divisor of mlp_steps", uses_config=True)}


def _mse(predictions, targets, axis):
    return np.mean(np.square(np.asarray(predictions, np.float64) - np.asarray(targets, np.float64)), axis=axis)


def poly_phase(config, ctx) -> fw.Phase:
    """Closed-form fits of each order without and with the penalty, and of the top order over
    ``l2_grid``, for ``draws`` draws of ``poly`` as one vmapped program."""
    cfg, x_plot_T = config.poly, np.linspace(-1.0, 1.0, 400, dtype=np.float32)
    degrees, grid, n = tuple(int(m) for m in cfg.degrees), np.asarray(cfg.l2_grid, np.float32), len(cfg.degrees)
    draws = [datasets.load("poly", standardize=False, num_train=cfg.num_train, noise=cfg.noise, seed=seed)
             for seed in fw.seeds(config, cfg.draws)]
    counts = [m + 1 for m in degrees] * 2 + [max(degrees) + 1] * len(grid)
    l2s = np.concatenate([np.zeros(n), np.full(n, cfg.l2), grid]).astype(np.float32)

    def fits(x_train, y_train, x_test):
        phi = features.polynomial_features(x_train, max(degrees))
        phi_test = features.polynomial_features(jnp.concatenate([x_test[:, 0], x_plot_T]), max(degrees))
        return features.fit_feature_counts(phi, y_train, phi_test, counts, l2s)

    x_train, y_train, x_test, y_test = (np.stack([getattr(d, f) for d in draws])
                                        for f in ("x_train", "y_train", "x_test", "y_test"))
    train_pred, test_pred, _ = jax.device_get(jax.jit(jax.vmap(fits))(x_train, y_train, x_test))
    num_test = draws[0].num_test
    train_mse = _mse(train_pred, y_train[:, None], axis=(2, 3))  # (draws, fits)
    test_mse = _mse(test_pred[:, :, :num_test], y_test[:, None], axis=(2, 3))
    median_train, median_test = np.median(train_mse, 0), np.median(test_mse, 0)
    rows = [[c - 1, f"{g:g}", median_train[i], median_test[i]] for i, (c, g) in enumerate(zip(counts, l2s[:2 * n]))]
    # The figure shows the median draw by the unpenalised top order's test error.
    shown = int(np.argsort(test_mse[:, int(np.argmax(degrees))])[len(draws) // 2])
    curves = test_pred[shown, :, num_test:, 0]
    panels = {title: {f"order {m}": curves[offset + i] for i, m in enumerate(degrees)}
              for offset, title in ((0, "least squares"), (n, f"L2 penalty gamma = {cfg.l2:g}"))}
    fits_figure = plot.function_ensembles(
        x_plot_T, panels, reference=("sin(pi x)", datasets.poly_true_function(x_plot_T)),
        points=(draws[shown].x_train[:, 0], draws[shown].y_train[:, 0]), xlabel="x", ylabel="y",
        title=f"polynomial fits to {cfg.num_train} noisy points (the median of {len(draws)} draws by test error)")
    for ax in fits_figure.axes:
        ax.set_ylim(-2.0, 2.0)  # an unpenalised high-order fit leaves the picture near the ends
    sweep = plot.line_plot({"train": (grid, median_train[2 * n:]), "test": (grid, median_test[2 * n:])},
                           xlabel="gamma", ylabel=f"median MSE over {len(draws)} draws", logx=True, logy=True,
                           title=f"order-{max(degrees)} fit against the L2 penalty gamma ||theta||^2")
    return fw.Phase(tables={"polynomial fits": fw.format_table(["order", "gamma", f"median train MSE ({len(draws)} "
                                                                "draws)", "median test MSE"], rows)},
                    figures={"poly_fits": fits_figure, "poly_l2_sweep": sweep},
                    arrays={"poly/train_mse": train_mse, "poly/test_mse": test_mse, "poly/l2_grid": grid},
                    numbers={"poly": {"train": train_mse[:, :2 * n], "test": test_mse[:, :2 * n]}})


def epochs_to_fit(train_accuracy_KxE: np.ndarray, threshold: float) -> np.ndarray:
    """``epochs_K``: the first epoch (1-based) whose training accuracy (K seeds, E epochs) reaches
    ``threshold``; E + 1 (a lower bound) for a run that never does in its E epochs."""
    num_epochs = np.shape(train_accuracy_KxE)[-1]
    return fits.first_crossing(train_accuracy_KxE, threshold, at_T=np.arange(1.0, num_epochs + 1), never=num_epochs + 1)


def random_labels_phase(config, ctx) -> fw.Phase:
    """One ``fit_seeds`` per data set and fraction (seed k's init and data order are the same at
    every fraction, the random labels drawn from ``config.seed``); compiled once per data set.
    Shapes: F fractions, K seeds, E epochs."""
    cfg, phase, rows = config.random_labels, fw.Phase(), []
    tx, fractions = optim.get_optimizer("adam", cfg.learning_rate), np.asarray(cfg.fractions, np.float64)
    for name in cfg.datasets:
        data = datasets.load(name)
        num_train = cfg.num_train or data.num_train
        data = dataclasses.replace(data, x_train=data.x_train[:num_train], y_train=data.y_train[:num_train])
        model = get_model("mlp", widths=tuple(cfg.widths), num_outputs=data.num_classes)
        histories = [train.fit_seeds(model, datasets.corrupt_labels(data, f, config.seed, cfg.replacement), tx,
                                     seeds=fw.seeds(config, cfg.seeds), epochs=cfg.epochs, batch_size=cfg.batch_size,
                                     logger=ctx.logger.with_tags(run=f"{name}/{f}")).history for f in fractions]
        train_FxKxE = np.stack([h["train_accuracy"] for h in histories])
        test_FxK = np.stack([h["test_accuracy"][:, -1] for h in histories])
        epochs_FxK = np.stack([epochs_to_fit(t, cfg.fit_accuracy) for t in train_FxKxE])
        rows += [[name, f, train_FxKxE[i, :, -1].mean(), test_FxK[i].mean(), test_FxK[i].std(ddof=1),
                  epochs_FxK[i].mean()] for i, f in enumerate(fractions)]
        phase.numbers[f"random_labels/{name}"] = dict(train=train_FxKxE[:, :, -1], test=test_FxK, epochs=epochs_FxK,
                                                      chance=1.0 / data.num_classes, num_test=data.num_test)
        phase.arrays[f"random_labels/{name}/train_accuracy"] = train_FxKxE
        phase.figures[f"random_labels_{name}"] = plot.line_plot(
            {f"{f:.0%} random": (np.arange(1, cfg.epochs + 1), t.mean(0)) for f, t in zip(fractions, train_FxKxE)},
            xlabel="epoch", ylabel="training accuracy (on the labels trained on)",
            title=f"{name}: fitting partly random labels (mean of {cfg.seeds} seeds)")
    phase.tables["random labels"] = fw.format_table(
        ["data set", "fraction random", "final train acc", "test acc", "(std over seeds)",
         f"epochs to {cfg.fit_accuracy:.0%} train acc ({cfg.epochs + 1}: not reached)"], rows, "{:.3f}")
    return phase


def _one_hot_targets(labels_N, num_classes, noise_V, seed):
    """``targets_VxNxC``: one-hot ``labels_N``, a fraction ``noise_V[v]`` of them replaced at random."""
    eye = np.eye(num_classes, dtype=np.float32)
    return np.stack([eye[datasets.replace_labels(labels_N, num_classes, f, seed)[0]] for f in noise_V])


def random_features_curves(config, mnist) -> dict:
    """Min-norm random-features fits of every count, noise level (target columns) and draw of the
    features (a vmapped member), as one program: curves (V, P, K)."""
    d = config.double_descent
    n, num_classes, num_noise = d.rf_num_train, mnist.num_classes, len(d.label_noise)
    grid = np.geomspace(max(2, n // 20), d.rf_max_features, d.rf_counts)
    counts = np.unique(np.concatenate([np.round(grid).astype(int), [n]]))
    targets_VxNxC = _one_hot_targets(mnist.y_train[:n], num_classes, d.label_noise, config.seed)

    def fit(key):
        phi, phi_test = (features.random_fourier_features(key, x, d.rf_max_features, d.rf_bandwidth)
                         for x in (mnist.x_train[:n], mnist.x_test))
        return features.fit_feature_counts(phi, targets_VxNxC.transpose(1, 0, 2).reshape(n, -1), phi_test, counts)[:2]

    keys_K = jax.vmap(jax.random.key)(np.asarray(fw.seeds(config, d.seeds), np.uint32))
    shape = lambda a: a.reshape(*a.shape[:3], num_noise, num_classes).transpose(3, 1, 0, 2, 4)  # (V, P, K, N, C)
    train_pred, test_pred = (shape(a) for a in jax.device_get(jax.jit(jax.vmap(fit))(keys_K)))
    return dict(sizes=counts, threshold=n, train_loss=_mse(train_pred, targets_VxNxC[:, None, None], axis=(3, 4)),
                test_loss=_mse(test_pred, np.eye(num_classes)[mnist.y_test], axis=(3, 4)),
                test_error=np.mean(test_pred.argmax(-1) != mnist.y_test, axis=3))


@functools.partial(jax.jit, static_argnames="model")
def _member_outputs(model, params, model_state, x):
    """Outputs ``(W, K, N, C)`` of every member of a width sweep (leaves with leading axes W, K)."""
    return jax.vmap(jax.vmap(lambda p, s: model.apply({"params": p, **s}, x)))(params, model_state)


def mlp_curves(config, mnist, logger) -> dict:
    """Full-batch Adam on the squared loss, every width and seed one masked program per noise level
    (compiled once); width H is the first H units of its seed's draw. Curves (V, W, K)."""
    d = config.double_descent
    n, widths, num_classes = d.mlp_num_train, tuple(d.mlp_widths), mnist.num_classes
    model = width_sweep.MaskedMLP(max(widths), 1, num_classes)
    tx, steps_per_call = optim.get_optimizer("adam", d.mlp_learning_rate), d.mlp_steps // d.mlp_evaluations
    test_targets = np.eye(num_classes, dtype=np.float32)[mnist.y_test]
    curves = {"train_loss": [], "test_loss": [], "test_error": []}
    for noise, targets in zip(d.label_noise, _one_hot_targets(mnist.y_train[:n], num_classes, d.label_noise,
                                                               config.seed)):
        data = datasets.Dataset(mnist.x_train[:n], targets, mnist.x_test, test_targets, None, "mnist1d")
        fitted = width_sweep.fit_widths(data, tx, widths=widths, seeds=fw.seeds(config, d.seeds), epochs=d.mlp_steps,
                                        loss_name="mse", epochs_per_call=steps_per_call, eval_every=steps_per_call,
                                        logger=logger.with_tags(run=f"mlp/noise{noise}"))
        outputs = jax.device_get(_member_outputs(model, fitted.state.params, fitted.state.model_state, mnist.x_test))
        for k in ("train_loss", "test_loss"):  # "mse": the mean over outputs
            curves[k].append(fitted.history[k][..., -1])
        curves["test_error"].append(np.mean(outputs.argmax(-1) != mnist.y_test, axis=-1))
    sizes = np.asarray([width_sweep.num_params(int(np.prod(mnist.input_shape)), w, 1, num_classes) for w in widths])
    return dict(sizes=sizes, threshold=n * num_classes, **{k: np.stack(v) for k, v in curves.items()})


def double_descent_phase(config, ctx) -> fw.Phase:
    """Test loss and error against model size for random features and MLP widths, every noise level."""
    noise = tuple(config.double_descent.label_noise)
    mnist = datasets.load("mnist1d", num_samples=config.double_descent.mnist1d_samples)
    curves = {"rf": random_features_curves(config, mnist), "mlp": mlp_curves(config, mnist, ctx.logger)}
    labels, figures = {"rf": "random features", "mlp": "MLP"}, {}
    rows = [[labels[m], int(size), size / c["threshold"]] + [c[k][v, i].mean() for v in range(len(noise))
                                                             for k in ("train_loss", "test_loss", "test_error")]
            for m, c in curves.items() for i, size in enumerate(c["sizes"])]
    headers = ["model", "size (RF: features; MLP: parameters)", "/ threshold"] + [
        f"{k} (noise {f:g})" for f in noise for k in ("train MSE", "test MSE", "test 0-1 error")]
    for metric, ylabel in (("test_loss", "test squared loss (mean over outputs)"), ("test_error", "test 0-1 error")):
        figures[f"double_descent_{metric}"] = fig = plot.line_plot(
            {f"{labels[m]}, label noise {f:g}": (c["sizes"] / c["threshold"], c[metric][v].mean(-1),
                                                 c[metric][v].std(-1)) for m, c in curves.items()
             for v, f in enumerate(noise)}, ylabel=ylabel, logx=True, logy=metric == "test_loss",
            xlabel="model size / interpolation threshold (RF: features / n; MLP: parameters / nK)",
            title=f"double descent on mnist1d (mean +- std over {config.double_descent.seeds} draws or seeds)")
        fig.axes[0].axvline(1.0, color="black", linestyle=":", linewidth=1.2, label="interpolation threshold")
        fig.axes[0].legend(fontsize=8)
    return fw.Phase(tables={"double descent (means over draws or seeds)": fw.format_table(headers, rows)},
                    figures=figures, arrays={f"double_descent/{m}/{k}": v for m, c in curves.items()
                                             for k, v in c.items()},
                    numbers={"double_descent": {m: {k: c[k] for k in ("sizes", "threshold", "test_loss")}
                                                for m, c in curves.items()}})


def run(config, ctx) -> None:
    ctx.phase("polynomials", poly_phase, config, ctx)
    ctx.phase("random labels", random_labels_phase, config, ctx)
    ctx.phase("double descent", double_descent_phase, config, ctx)


def claims(config, numbers) -> list:
    degrees, n = list(config.poly.degrees), len(config.poly.degrees)
    train_mse, test_mse = np.asarray(numbers["poly"]["train"]), np.asarray(numbers["poly"]["test"])
    top = int(np.argmax(degrees))
    lower = [i for i in range(n) if degrees[i] < degrees[top]]
    order, draws = f"the order-{degrees[top]} fit", f"geometric mean over {len(train_mse)} draws of the data, paired"
    excess = np.max(train_mse[:, [top]] / train_mse[:, lower]) - 1
    out = [fw.Check.at_most("poly_nested_train_error", "least squares", f"{order}'s train MSE is at most every lower "
                            "order's (nesting; largest relative excess)", excess, LSTSQ_TOLERANCE),
           fw.Check.at_least("poly_penalty_raises_train_error", "least squares", "the L2 penalty never lowers a fit's "
                             "train MSE (smallest ratio)", np.min(train_mse[:, n:] / train_mse[:, :n]),
                             1 - LSTSQ_TOLERANCE),
           fw.Claim.ratio("poly_high_order_overfits", BISHOP, f"{order}'s test MSE over the best lower order's "
                          f"({draws})", test_mse[:, top], test_mse[:, lower].min(1), above=1.0, paired=True),
           fw.Claim.ratio("poly_penalty_cures_overfitting", BISHOP, f"{order}'s test MSE with the penalty gamma = "
                          f"{config.poly.l2:g} over without ({draws})", test_mse[:, n + top], test_mse[:, top],
                          below=1.0, paired=True)]
    for name in config.random_labels.datasets:
        r = {k: np.asarray(v) for k, v in numbers[f"random_labels/{name}"].items()}
        seeds, chance = f"{r['train'].shape[1]} seeds", r["chance"]
        out += [fw.Claim.mean(f"{name}_fits_random_labels", ZHANG, f"{name}: an MLP fits random labels (final train "
                              f"accuracy over {seeds}; the paper's 100% less 1 point)", r["train"][-1], above=0.99),
                fw.Claim.within(f"{name}_random_labels_test_at_chance", ZHANG, f"{name}: trained on random labels, "
                                f"test accuracy is chance, 1/C, within twice a chance classifier's sampling noise on "
                                f"{r['num_test']} examples ({seeds})", r["test"][-1], target=chance,
                                tolerance=2 * np.sqrt(chance * (1 - chance) / r["num_test"])),
                fw.Claim.ratio(f"{name}_random_labels_fit_slower", ZHANG, f"{name}: random labels take longer to fit "
                               f"than true ones (epochs to {config.random_labels.fit_accuracy:.0%} train accuracy, "
                               f"ratio paired over {seeds})", r["epochs"][-1], r["epochs"][0], above=1.0, paired=True)]
    for model, c in numbers["double_descent"].items():
        sizes, threshold = np.asarray(c["sizes"]), c["threshold"]
        under, unit = np.flatnonzero(sizes < threshold), "features, n" if model == "rf" else "parameters, nK"
        for f, loss in zip(config.double_descent.label_noise, np.asarray(c["test_loss"])):
            key, what = f"{model}_noise{round(100 * f)}", f"{model.upper()}, label noise {f:g}"
            seeds = f"{loss.shape[1]} {'draws of the features' if model == 'rf' else 'seeds'}"
            sweet = under[np.argmin(loss[under].mean(1))]  # the under-parametrised size of least mean test loss
            out += [fw.Claim.within(f"{key}_peak_at_threshold", BELKIN, f"{what}: the test squared loss peaks at the "
                                    f"interpolation threshold ({unit} = {threshold}): log2(peak size / threshold) "
                                    f"within +-1, over {seeds}", np.log2(sizes[loss.argmax(0)] / threshold),
                                    target=0.0, tolerance=1.0),
                    fw.Claim.difference(f"{key}_second_descent_below_sweet_spot", BELKIN, f"{what}: the largest model "
                                        f"({sizes[-1]}) reaches a lower test squared loss than the under-parametrised "
                                        f"sweet spot ({sizes[sweet]}); difference paired over {seeds}", loss[-1],
                                        loss[sweet], below=0.0, paired=True, fmt="{:.4f}")]
    return out


main = fw.entry_point(__name__)


if __name__ == "__main__":
    main()
