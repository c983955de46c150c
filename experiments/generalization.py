"""Generalisation: overfitting polynomials, random labels, and double descent.

Three phases, each a function the tests can call:

- ``poly_phase`` (the course, after Bishop 2006, section 1.1): least-squares polynomials of orders
  1, 2 and 9 on the 15 noisy points of ``poly`` (y = sin(pi x) + noise), without and with the L2
  penalty gamma ||theta||^2, in closed form (:mod:`jaxdl.features`), for several draws of the data
  in one vmapped program; the order-9 fit has the lowest training error and (without the penalty)
  the highest test error. Errors are medians over the draws: one 15-point draw can be lucky.
- ``random_labels_phase`` (Zhang et al. 2017): MLPs on ``digits`` and ``mnist1d`` whose training
  labels are partly or entirely replaced by uniformly random classes
  (:func:`jaxdl.data.corrupt_labels`), several seeds in one vmapped fit per fraction: training
  accuracy still reaches 100% on fully random labels, test accuracy falls to chance, and fitting
  takes more epochs the more labels are random.
- ``double_descent_phase`` (Belkin et al. 2019): test error against model size on a ``mnist1d``
  subset with one-hot squared-loss targets, for random Fourier features fitted by minimum-norm
  least squares (every feature count one masked fit of one vmapped program) and for one-hidden-
  layer MLPs trained by full-batch Adam (every width one masked member of one vmapped program,
  :mod:`jaxdl.width_sweep`). The error peaks at the interpolation threshold -- as many features as
  training points, or as many parameters as fitted values n K for the MLP -- and falls beyond it;
  label noise (``label_noise``) raises the peak.
"""
from __future__ import annotations

import dataclasses
import functools
import sys

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from experiments import common
from jaxdl import data as datasets
from jaxdl import features, io, optim, plot, train, width_sweep
from jaxdl.models import get_model

NAME = "generalization"
DESCRIPTION = ("polynomial over-fitting with and without an L2 penalty, random labels (Zhang et al. 2017) and "
               "double descent of random features and MLP widths (Belkin et al. 2019)")
DEVICE_FIELDS = {"random_labels.seeds": "seeds", "double_descent.mlp_seeds": "seeds"}  # see experiments.device_defaults


def get_config(size: str = "default") -> ml_collections.ConfigDict:
    """Sizes: ``quick`` (seconds, tests); ``default`` (about two minutes on 2 CPU cores, claims hold);
    ``full`` (whole training sets, more seeds, larger sweeps: a GPU or TPU)."""
    common.check_size(size)
    c = ml_collections.ConfigDict()
    c.seed = 0
    # Orders of the course's fits, gamma of the penalised fits, draws of `poly` (errors are medians over them).
    c.poly = ml_collections.ConfigDict(dict(degrees=(1, 2, 9), l2=1e-3, num_train=15, noise=0.2, draws=10,
                                            l2_grid=tuple(float(g) for g in np.logspace(-8, 0, 17))))
    # num_train: the first examples of each training set (0: all); epochs to fit: to fit_accuracy.
    c.random_labels = ml_collections.ConfigDict(dict(
        datasets=("digits", "mnist1d"), num_train=1000, fractions=(0.0, 0.25, 0.5, 0.75, 1.0), seeds=2,
        widths=(128, 128), learning_rate=3e-3, batch_size=128, epochs=50, fit_accuracy=0.99, replacement="uniform"))
    # mnist1d subsets; rf_bandwidth about sqrt(40), so that w . x is of order one on standardised inputs.
    c.double_descent = ml_collections.ConfigDict(dict(
        label_noise=(0.0, 0.2), mnist1d_samples=5000, rf_num_train=200, rf_max_features=2000, rf_counts=24,
        rf_bandwidth=6.0, mlp_num_train=100, mlp_widths=(2, 4, 8, 12, 16, 20, 24, 32, 48, 64, 96, 128),
        mlp_steps=2000, mlp_learning_rate=3e-3, mlp_seeds=2, mlp_evaluations=4))
    if size == "quick":
        c.poly.update(draws=3, l2_grid=(1e-6, 1e-3, 1.0))
        c.random_labels.update(datasets=("digits",), num_train=200, fractions=(0.0, 1.0), seeds=1, widths=(16,),
                               epochs=2)
        c.double_descent.update(mnist1d_samples=500, rf_num_train=30, rf_max_features=120, rf_counts=6,
                                mlp_num_train=30, mlp_widths=(2, 8), mlp_steps=20, mlp_seeds=1, mlp_evaluations=1)
    elif size == "full":
        c.poly.draws = 100
        c.random_labels.update(num_train=0, fractions=tuple(float(f) for f in np.linspace(0, 1, 11)), seeds=5,
                               widths=(512, 512), epochs=200)
        c.double_descent.update(label_noise=(0.0, 0.1, 0.2), rf_num_train=1000, rf_max_features=20000, rf_counts=48,
                                mlp_num_train=400, mlp_widths=(2, 4, 8, 16, 24, 32, 48, 64, 80, 96, 128, 192, 256,
                                                               512, 1024), mlp_steps=20000, mlp_seeds=5)
    return c


def _validate(config):
    p, r, d = config.poly, config.random_labels, config.double_descent
    common.require(len(p.degrees) >= 2 and all(int(m) >= 0 for m in p.degrees), "poly.degrees",
                   "at least two non-negative polynomial orders", p.degrees)
    for field, values in (("poly.l2", (p.l2,)), ("poly.l2_grid", p.l2_grid), ("random_labels.learning_rate",
                          (r.learning_rate,)), ("double_descent.mlp_learning_rate", (d.mlp_learning_rate,)),
                          ("double_descent.rf_bandwidth", (d.rf_bandwidth,))):
        common.require(len(values) > 0 and all(v > 0 for v in values), field, "positive numbers", values)
    for field in ("poly.draws", "poly.num_train", "random_labels.seeds", "random_labels.epochs",
                  "random_labels.batch_size", "double_descent.mnist1d_samples", "double_descent.rf_counts",
                  "double_descent.rf_num_train", "double_descent.mlp_num_train", "double_descent.mlp_steps",
                  "double_descent.mlp_seeds", "double_descent.mlp_evaluations"):
        group, name = field.split(".")
        common.require(int(config[group][name]) > 0, field, "a positive integer", config[group][name])
    common.require(int(d.mlp_steps) % int(d.mlp_evaluations) == 0, "double_descent.mlp_evaluations",
                   f"a divisor of mlp_steps={d.mlp_steps}", d.mlp_evaluations)
    common.require(int(r.num_train) >= 0, "random_labels.num_train", "a non-negative integer (0: all)", r.num_train)
    common.require(len(r.datasets) > 0 and all(name in ("digits", "mnist1d") for name in r.datasets),
                   "random_labels.datasets", "names among digits, mnist1d", r.datasets)
    for field, values in (("random_labels.fractions", r.fractions), ("double_descent.label_noise", d.label_noise)):
        common.require(len(values) > 0 and all(0 <= f <= 1 for f in values), field, "fractions in [0, 1]", values)
    common.require(tuple(r.fractions)[0] == 0 and tuple(r.fractions)[-1] == 1, "random_labels.fractions",
                   "increasing fractions from 0.0 (true labels) to 1.0 (random labels)", r.fractions)
    common.require(0 < r.fit_accuracy <= 1, "random_labels.fit_accuracy", "a number in (0, 1]", r.fit_accuracy)
    common.require(int(d.rf_max_features) > int(d.rf_num_train), "double_descent.rf_max_features",
                   f"more features than rf_num_train={d.rf_num_train}", d.rf_max_features)
    common.require(len(d.mlp_widths) >= 2 and all(int(w) > 0 for w in d.mlp_widths), "double_descent.mlp_widths",
                   "at least two positive widths", d.mlp_widths)


def _mse(predictions, targets, axis):
    return np.mean(np.square(np.asarray(predictions, np.float64) - np.asarray(targets, np.float64)), axis=axis)


# ----------------------------------------------------------------------------- polynomials


def poly_phase(config, run_dir) -> dict:
    """Closed-form polynomial fits of each order, without and with the penalty, and the order-max
    fit over ``l2_grid``, for ``draws`` draws of ``poly`` as one vmapped program."""
    cfg = config.poly
    degrees, grid = tuple(int(m) for m in cfg.degrees), np.asarray(cfg.l2_grid, np.float32)
    draws = [datasets.load("poly", standardize=False, num_train=int(cfg.num_train), noise=float(cfg.noise),
                           seed=int(config.seed) + k) for k in range(int(cfg.draws))]
    x_plot_T = np.linspace(-1.0, 1.0, 400, dtype=np.float32)
    counts = [m + 1 for m in degrees] * 2 + [max(degrees) + 1] * len(grid)
    l2s = np.concatenate([np.zeros(len(degrees)), np.full(len(degrees), cfg.l2), grid]).astype(np.float32)

    def fits(x_train, y_train, x_test):
        phi = features.polynomial_features(x_train, max(degrees))
        phi_test = features.polynomial_features(jnp.concatenate([x_test[:, 0], x_plot_T]), max(degrees))
        return features.fit_feature_counts(phi, y_train, phi_test, counts, l2s)

    x_train, y_train, x_test, y_test = (np.stack([getattr(d, f) for d in draws]) for f in
                                        ("x_train", "y_train", "x_test", "y_test"))
    train_pred, test_pred, _ = jax.device_get(jax.jit(jax.vmap(fits))(x_train, y_train, x_test))
    num_test = draws[0].num_test
    train_mse = _mse(train_pred, y_train[:, None], axis=(2, 3))  # (draws, fits)
    test_mse = _mse(test_pred[:, :, :num_test], y_test[:, None], axis=(2, 3))
    median_train, median_test = np.median(train_mse, 0), np.median(test_mse, 0)

    # The figure shows a typical draw: the median one by the unpenalised top order's test error.
    n, top = len(degrees), int(np.argmax(degrees))
    shown = int(np.argsort(test_mse[:, top])[len(draws) // 2])
    rows = []
    for i, (count, l2) in enumerate(zip(counts[:2 * n], l2s[:2 * n])):
        worst = int(np.sum(np.argmax(test_mse[:, (i // n) * n:(i // n + 1) * n], 1) == i % n))
        rows.append([count - 1, f"{l2:g}", median_train[i], median_test[i], worst, train_mse[shown, i],
                     test_mse[shown, i]])
    table = common.format_table(["order", "gamma", f"median train MSE ({len(draws)} draws)", "median test MSE",
                                 "draws where it is the worst test fit", f"train MSE (draw {shown}, shown)",
                                 f"test MSE (draw {shown})"], rows, float_format="{:.4g}")
    curves = test_pred[shown, :, num_test:, 0]
    panels = {title: {f"order {m}": curves[offset + i] for i, m in enumerate(degrees)}
              for offset, title in ((0, "least squares"), (n, f"L2 penalty gamma = {cfg.l2:g}"))}
    fig = plot.function_ensembles(x_plot_T, panels, reference=("sin(pi x)", datasets.poly_true_function(x_plot_T)),
                                  points=(draws[shown].x_train[:, 0], draws[shown].y_train[:, 0]), xlabel="x",
                                  ylabel="y", title=f"polynomial fits to {cfg.num_train} noisy points (draw {shown}, "
                                  f"the median of {len(draws)} by order-{degrees[top]} test error)")
    for ax in fig.axes:
        ax.set_ylim(-2.0, 2.0)  # an unpenalised high-order fit leaves the picture near the ends
    figures = [plot.save_figure(fig, run_dir.figure_path("poly_fits"))]
    sweep = slice(2 * n, None)
    figures.append(run_dir.figure_path("poly_l2_sweep"))
    plot.line_plot({"train": (grid, median_train[sweep]), "test": (grid, median_test[sweep])}, xlabel="gamma",
                   ylabel=f"median MSE over {len(draws)} draws", logx=True, logy=True,
                   title=f"order-{max(degrees)} fit against the L2 penalty gamma ||theta||^2", path=figures[-1])
    return {"table": table, "figures": figures, "degrees": degrees, "median_train": median_train[:n],
            "median_test": median_test[:n], "median_test_l2": median_test[n:2 * n],
            "arrays": {"poly/train_mse": train_mse, "poly/test_mse": test_mse, "poly/l2_grid": grid}}


# ----------------------------------------------------------------------------- random labels


def epochs_to_fit(train_accuracy_KxE: np.ndarray, threshold: float) -> np.ndarray:
    """``epochs_K``: the first epoch (1-based) whose training accuracy (K seeds, E epochs) reaches
    ``threshold``; E + 1 (a lower bound) for a run that never does in its E epochs."""
    reached = np.asarray(train_accuracy_KxE) >= threshold
    return np.where(reached.any(-1), reached.argmax(-1) + 1, reached.shape[-1] + 1).astype(np.float64)


def random_labels_phase(config, run_dir, logger) -> dict:
    """For each data set and corruption fraction one ``fit_seeds`` over the seeds (init and data
    order differ, the corrupted labels are the same); compiled once per data set, since the
    fractions share their shapes. Accuracies are measured after every epoch. Shapes: F fractions,
    K seeds, E epochs."""
    cfg = config.random_labels
    seeds = [int(config.seed) + k for k in range(int(cfg.seeds))]
    tx = optim.get_optimizer("adam", cfg.learning_rate)
    fractions = np.asarray(cfg.fractions, np.float64)
    rows, out, arrays, figures = [], {}, {}, []
    for name in cfg.datasets:
        data = datasets.load(name)
        num_train = int(cfg.num_train) or data.num_train
        data = dataclasses.replace(data, x_train=data.x_train[:num_train], y_train=data.y_train[:num_train])
        model = get_model("mlp", widths=tuple(cfg.widths), num_outputs=data.num_classes)
        histories = [train.fit_seeds(model, datasets.corrupt_labels(data, f, int(config.seed), cfg.replacement), tx,
                                     seeds=seeds, epochs=int(cfg.epochs), batch_size=int(cfg.batch_size),
                                     logger=logger.with_tags(run=f"{name}/{f}")).history for f in fractions]
        train_FxKxE = np.stack([h["train_accuracy"] for h in histories])
        test_FxK = np.stack([h["test_accuracy"][:, -1] for h in histories])
        epochs_FxK = np.stack([epochs_to_fit(t, cfg.fit_accuracy) for t in train_FxKxE])
        for i, fraction in enumerate(fractions):
            rows.append([name, fraction, train_FxKxE[i, :, -1].mean(), train_FxKxE[i, :, -1].min(),
                         test_FxK[i].mean(), test_FxK[i].std(), epochs_FxK[i].mean()])
        out[name] = dict(train=train_FxKxE[:, :, -1], test=test_FxK, epochs=epochs_FxK, chance=1.0 / data.num_classes)
        arrays.update({f"random_labels/{name}/train_accuracy": train_FxKxE, f"random_labels/{name}/test_accuracy":
                       np.stack([h["test_accuracy"] for h in histories])})
        figures.append(run_dir.figure_path(f"random_labels_{name}"))
        epochs_E = np.arange(1, int(cfg.epochs) + 1)
        plot.line_plot({f"{f:.0%} random": (epochs_E, t.mean(0)) for f, t in zip(fractions, train_FxKxE)},
                       xlabel="epoch", ylabel="training accuracy (on the labels trained on)", path=figures[-1],
                       title=f"{name}: fitting partly random labels (mean of {len(seeds)} seeds)")
    not_reached = f"{int(cfg.epochs) + 1}: not reached"
    table = common.format_table(["data set", "fraction random", "final train acc (mean)", "(min over seeds)",
                                 "test acc (mean)", "(std)", f"epochs to {cfg.fit_accuracy:.0%} train acc "
                                 f"({not_reached})"], rows, float_format="{:.3f}")
    chance = max(r["chance"] for r in out.values())
    xlabel = "fraction of training labels replaced by random classes"
    fig = plot.line_plot({**{name: (fractions, r["test"].mean(1), r["test"].std(1)) for name, r in out.items()},
                          f"chance ({chance:g})": (fractions, np.full(len(fractions), chance))}, xlabel=xlabel,
                         ylabel="test accuracy", title="test accuracy against label corruption (mean +- std, seeds)")
    figures.append(plot.save_figure(fig, run_dir.figure_path("random_labels_test_accuracy")))
    figures.append(run_dir.figure_path("random_labels_epochs_to_fit"))
    plot.line_plot({name: (fractions, r["epochs"].mean(1)) for name, r in out.items()}, xlabel=xlabel,
                   ylabel=f"epochs to {cfg.fit_accuracy:.0%} training accuracy ({not_reached})",
                   title="time to fit against label corruption (Zhang et al. 2017, fig. 1b)", path=figures[-1])
    return {"table": table, "figures": figures, "results": out, "arrays": arrays}


# ----------------------------------------------------------------------------- double descent


def _noisy_targets(labels_N, num_classes, noise_V, seed):
    """One-hot targets ``targets_VxNxC`` of ``labels_N``, a fraction ``noise_V[v]`` of them replaced at
    random (V label-noise levels)."""
    eye = np.eye(num_classes, dtype=np.float32)
    return np.stack([eye[datasets.replace_labels(labels_N, num_classes, f, seed)[0]] for f in noise_V])


def _peak(sizes, errors) -> tuple[float, float]:
    """``(size at the largest error, error at the largest size / largest error)``."""
    i = int(np.argmax(errors))
    return float(sizes[i]), float(errors[-1] / errors[i])


def random_features_curves(config, mnist) -> dict:
    """Min-norm random-features fits of every feature count and noise level (one compiled program;
    the V noise levels are extra target columns of the same fits)."""
    d = config.double_descent
    n, noise = int(d.rf_num_train), tuple(d.label_noise)
    num_classes = mnist.num_classes
    grid = np.geomspace(max(2, n // 20), int(d.rf_max_features), int(d.rf_counts))
    counts = np.unique(np.concatenate([np.round(grid).astype(int), [n]]))
    key = jax.random.key(int(config.seed))
    phi = features.random_fourier_features(key, mnist.x_train[:n], int(d.rf_max_features), d.rf_bandwidth)
    phi_test = features.random_fourier_features(key, mnist.x_test, int(d.rf_max_features), d.rf_bandwidth)
    targets_VxNxC = _noisy_targets(mnist.y_train[:n], num_classes, noise, int(config.seed))
    stacked_NxVC = targets_VxNxC.transpose(1, 0, 2).reshape(n, -1)
    train_pred, test_pred, _ = jax.device_get(features.fit_feature_counts(phi, stacked_NxVC, phi_test, counts))
    train_pred = train_pred.reshape(len(counts), n, len(noise), num_classes).transpose(2, 0, 1, 3)
    test_pred = test_pred.reshape(len(counts), -1, len(noise), num_classes).transpose(2, 0, 1, 3)
    test_targets = np.eye(num_classes, dtype=np.float32)[mnist.y_test]
    return dict(sizes=counts, threshold=n, train_loss=_mse(train_pred, targets_VxNxC[:, None], axis=(2, 3)),
                test_loss=_mse(test_pred, test_targets, axis=(2, 3)),
                test_error=np.mean(test_pred.argmax(-1) != mnist.y_test, axis=2))


@functools.partial(jax.jit, static_argnames="model")
def _member_outputs(model, params, model_state, x):
    """Outputs ``(W, K, N, C)`` of every member of a width sweep (leaves with leading axes W, K)."""
    member = lambda p, s: model.apply({"params": p, **s}, x)
    return jax.vmap(jax.vmap(member))(params, model_state)


def mlp_curves(config, mnist, logger) -> dict:
    """Full-batch Adam on the squared loss for every width and seed as one masked program
    (:func:`jaxdl.width_sweep.fit_widths`), once per noise level (same shapes: compiled once).
    The members of a seed share their draws (width H: the first H units of one draw)."""
    d = config.double_descent
    n, widths, num_classes = int(d.mlp_num_train), tuple(int(w) for w in d.mlp_widths), mnist.num_classes
    input_dim = int(np.prod(mnist.input_shape))
    tx = optim.get_optimizer("adam", d.mlp_learning_rate)
    model = width_sweep.MaskedMLP(max(widths), 1, num_classes)
    targets_VxNxC = _noisy_targets(mnist.y_train[:n], num_classes, tuple(d.label_noise), int(config.seed))
    test_targets = np.eye(num_classes, dtype=np.float32)[mnist.y_test]
    seeds = [int(config.seed) + k for k in range(int(d.mlp_seeds))]
    curves = {"train_loss": [], "test_loss": [], "test_error": []}
    for noise, targets in zip(d.label_noise, targets_VxNxC):
        data = datasets.Dataset(mnist.x_train[:n], targets, mnist.x_test, test_targets, None, "mnist1d")
        steps_per_call = int(d.mlp_steps) // int(d.mlp_evaluations)
        fitted = width_sweep.fit_widths(data, tx, widths=widths, seeds=seeds, epochs=int(d.mlp_steps),
                                        loss_name="mse", epochs_per_call=steps_per_call, eval_every=steps_per_call,
                                        logger=logger.with_tags(run=f"mlp/noise{noise}"))
        outputs = jax.device_get(_member_outputs(model, fitted.state.params, fitted.state.model_state, mnist.x_test))
        curves["train_loss"].append(fitted.history["train_loss"][..., -1])  # (W, K); "mse": mean over outputs
        curves["test_loss"].append(fitted.history["test_loss"][..., -1])
        curves["test_error"].append(np.mean(outputs.argmax(-1) != mnist.y_test, axis=-1))
    sizes = np.asarray([width_sweep.num_params(input_dim, w, 1, num_classes) for w in widths])
    return dict(sizes=sizes, widths=np.asarray(widths), threshold=n * num_classes,
                **{k: np.stack(v).mean(-1) for k, v in curves.items()},  # (V, W): means over the seeds
                **{f"{k}_per_seed": np.stack(v) for k, v in curves.items()})  # (V, W, K)


def double_descent_phase(config, run_dir, logger) -> dict:
    """Test error against model size for random features and MLP widths, at every label-noise level."""
    noise = tuple(config.double_descent.label_noise)
    mnist = datasets.load("mnist1d", num_samples=int(config.double_descent.mnist1d_samples))
    curves = {"random features": random_features_curves(config, mnist), "MLP": mlp_curves(config, mnist, logger)}
    rows, peaks, figures = [], {}, []
    for model_name, c in curves.items():
        for level, f in enumerate(noise):
            peaks[f"{model_name}/{f:g}"] = _peak(c["sizes"], c["test_loss"][level])
        for i, size in enumerate(c["sizes"]):
            rows.append([model_name, int(size), size / c["threshold"]] + [
                c[k][level, i] for level in range(len(noise)) for k in ("train_loss", "test_loss", "test_error")])
    headers = ["model", "size (RF: features; MLP: parameters)", "/ threshold"] + [
        f"{k} (noise {f:g})" for f in noise for k in ("train MSE", "test MSE", "test 0-1 error")]
    table = common.format_table(headers, rows, float_format="{:.4g}")
    rf = curves["random features"]
    for metric, ylabel, logy in (("test_loss", "test squared loss (mean over outputs)", True),
                                 ("test_error", "test 0-1 error", False)):
        lines = {f"{model_name}, label noise {f:g}": (c["sizes"] / c["threshold"], c[metric][level])
                 for model_name, c in curves.items() for level, f in enumerate(noise)}
        fig = plot.line_plot(lines, xlabel="model size / interpolation threshold (RF: features / n; MLP: parameters "
                             "/ nK)", ylabel=ylabel, logx=True, logy=logy, title=f"double descent on mnist1d "
                             f"(RF n = {rf['threshold']}, MLP n = {config.double_descent.mlp_num_train})")
        fig.axes[0].axvline(1.0, color="black", linestyle=":", linewidth=1.2, label="interpolation threshold")
        fig.axes[0].legend(fontsize=8)
        figures.append(plot.save_figure(fig, run_dir.figure_path(f"double_descent_{metric}")))
    arrays = {f"double_descent/{m}/{k}": np.asarray(v) for m, c in curves.items() for k, v in c.items()}
    return {"table": table, "figures": figures, "peaks": peaks,
            "thresholds": {m: c["threshold"] for m, c in curves.items()}, "arrays": arrays}


# ----------------------------------------------------------------------------- run and claims


def run(config, run_dir: io.RunDir) -> dict:
    _validate(config)
    timer = common.PhaseTimer()
    with run_dir.logger() as logger:
        poly = timer("polynomials", poly_phase, config, run_dir)
        labels = timer("random labels", random_labels_phase, config, run_dir, logger)
        descent = timer("double descent", double_descent_phase, config, run_dir, logger)
    run_dir.save_results(**poly["arrays"], **labels["arrays"], **descent["arrays"])
    random_labels = {name: {"train_min": float(r["train"][-1].min()), "test": float(r["test"][-1].mean()),
                            "chance": r["chance"], "epochs": r["epochs"].mean(1).tolist()}
                     for name, r in labels["results"].items()}
    return {"tables": {"polynomial fits": poly["table"], "random labels": labels["table"],
                       "double descent": descent["table"], "phases": timer.table()},
            "figures": poly["figures"] + labels["figures"] + descent["figures"],
            "poly": {k: np.asarray(poly[k]).tolist() for k in ("degrees", "median_train", "median_test",
                                                               "median_test_l2")},
            "random_labels": random_labels, "double_descent": descent["peaks"], "thresholds": descent["thresholds"]}


def claims(result: dict) -> list:
    poly, out = result["poly"], []
    top = int(np.argmax(poly["degrees"]))
    others = [i for i in range(len(poly["degrees"])) if i != top]
    order, count = poly["degrees"][top], len(poly["degrees"])
    lowest_other = min(poly["median_train"][i] for i in others)
    highest_other = max(poly["median_test"][i] for i in others)
    out.append(common.Claim.check("course (Bishop 2006, 1.1)", f"the order-{order} fit has the lowest training "
                                  f"error of the {count} orders (median MSE over draws)", f"< {lowest_other:.4f}",
                                  poly["median_train"][top], lambda v: v < lowest_other, "{:.4f}"))
    out.append(common.Claim.check("course (Bishop 2006, 1.1)", f"the order-{order} fit has the highest test error of "
                                  f"the {count} orders (median MSE over draws)", f"> {highest_other:.4f}",
                                  poly["median_test"][top], lambda v: v > highest_other, "{:.4f}"))
    without = poly["median_test"][top]
    out.append(common.Claim.check("course (L2 penalty)", f"the penalty gamma ||theta||^2 lowers the order-{order} "
                                  "test error (median MSE over draws)", f"< {without:.4f}",
                                  poly["median_test_l2"][top], lambda v: v < without, "{:.4f}"))
    for name, r in result["random_labels"].items():
        out.append(common.Claim.at_least("Zhang et al. 2017", f"{name}: an MLP fits fully random labels (train "
                                         "accuracy, worst seed)", r["train_min"], 0.99))
        out.append(common.Claim.check("Zhang et al. 2017", f"{name}: with random labels, test accuracy stays at "
                                      "chance (within 3 points)", f"{r['chance']:.3f} +- 0.030", r["test"],
                                      lambda v, c=r["chance"]: abs(v - c) <= 0.03))
        out.append(common.Claim.check("Zhang et al. 2017", f"{name}: random labels take longer to fit than true "
                                      "labels (epochs, mean over seeds)", f"> {r['epochs'][0]:.1f}", r["epochs"][-1],
                                      lambda v, e=r["epochs"][0]: v > e, "{:.1f}"))
    for key, (peak_size, drop) in result["double_descent"].items():
        model_name, noise = key.split("/")
        threshold = result["thresholds"][model_name]
        unit = "features, threshold n" if model_name == "random features" else "parameters, threshold nK"
        out.append(common.Claim.check("Belkin et al. 2019", f"{model_name}, label noise {noise}: test squared loss "
                                      f"peaks within a factor 2 of the interpolation threshold ({unit} = {threshold})",
                                      "in [0.5, 2]", peak_size / threshold, lambda v: 0.5 <= v <= 2.0, "{:.2f}"))
        out.append(common.Claim.check("Belkin et al. 2019", f"{model_name}, label noise {noise}: test squared loss "
                                      "falls after the peak (largest model / peak)", "< 1", drop, lambda v: v < 1.0,
                                      "{:.2f}"))
    return out


def main(argv=None):
    return common.experiment_main(sys.modules[__name__], argv)


if __name__ == "__main__":
    main()
