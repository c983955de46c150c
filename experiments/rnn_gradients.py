"""Recurrent gradients: the cliff, clipping, vanishing and exploding Jacobians, and gated cells.

Pascanu, Mikolov & Bengio 2013, "On the difficulty of training recurrent neural networks", in
three phases (:mod:`jaxdl.recurrence`):

1. The one-unit cliff. ``h(t) = w sigma(h(t-1)) + b``, ``h(0) = 0.5``, error ``(h(50) - 0.7)^2``:
   the loss over a (w, b) grid on a log colour scale, with gradient-descent paths from starts
   below the wall where ``h(0)`` changes basin. Plain GD steps onto the wall and is thrown far
   away by one huge gradient; GD with global-norm clipping (``g <- c g / ||g||``) takes a
   bounded step, crosses, and descends to the valley of zero loss.
2. Jacobians across time. ``||dh_t / dh_{t-k}||`` against k for ``h_t = f(h_{t-1} W + x_t)`` with W
   of spectral radius below, at and above 1: for a linear f it behaves like ``rho^k`` (decays,
   stays, explodes); a saturating tanh only shrinks it further.
3. The adding problem (Hochreiter & Schmidhuber 1997; :mod:`jaxdl.data.sequences`) at growing
   lags: an Elman RNN (with and without Pascanu's regulariser Omega), an LSTM and a GRU, trained
   with Adam and clipping; predicting the mean scores the target's variance 1/6.
"""
from __future__ import annotations

import sys

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from experiments import common
from jaxdl import data as datasets
from jaxdl import io, optim, plot, recurrence, train
from jaxdl.models import get_model

NAME = "rnn_gradients"
DESCRIPTION = ("the one-unit cliff with and without clipping, ||dh_t/dh_t-k|| against the spectral radius, "
               "Elman RNN (+ Omega) vs LSTM and GRU on the adding problem")
DEVICE_FIELDS = {"adding.num_seeds": "seeds"}  # see experiments.device_defaults
PAPER = "Pascanu et al. 2013"
MODELS = {"rnn": "rnn", "rnn_omega": "rnn", "lstm": "lstm", "gru": "gru"}  # name: zoo model
LABELS = {"rnn": "Elman RNN", "rnn_omega": "Elman RNN + Omega", "lstm": "LSTM", "gru": "GRU"}
BASELINE = datasets.ADDING_MEAN_PREDICTION_MSE


def get_config(size: str = "default") -> ml_collections.ConfigDict:
    """Sizes: ``quick`` (seconds, tests), ``default`` (under two minutes on 2 CPU cores), ``full``."""
    common.check_size(size)
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.cliff = ml_collections.ConfigDict(dict(
        num_steps=50, h0=0.5, target=0.7, learning_rate=0.01, clip_norm=10.0, descent_steps=1500,
        start=(7.0, -3.5), other_starts=((5.5, -4.0), (6.5, -3.0)), w_range=(2.5, 8.5), b_range=(-5.0, -0.5),
        resolution=200))
    c.jacobian = ml_collections.ConfigDict(dict(
        radii=(0.9, 1.0, 1.1), hidden_size=64, num_steps=60, num_seeds=4, recurrent_init="gaussian",
        input_scale=0.3, fit_from=1, slope_tolerance=0.02, activations=("linear", "tanh")))
    c.adding = ml_collections.ConfigDict(dict(
        models=("rnn", "rnn_omega", "lstm", "gru"), lags=(10, 25, 40), length=41, hidden_size=16,
        learning_rate=0.01, clip_norm=1.0, omega_strength=0.01, epochs=15, batch_size=50, num_train=2000,
        num_test=500, num_seeds=3))
    if size == "quick":
        c.cliff.update(dict(descent_steps=100, resolution=40))
        c.jacobian.update(dict(hidden_size=16, num_steps=20, num_seeds=2, activations=("linear",)))
        c.adding.update(dict(models=("rnn_omega",), lags=(2, 4), length=5, hidden_size=4, epochs=1,
                             num_train=100, num_test=50, num_seeds=1))
    elif size == "full":
        c.jacobian.update(dict(hidden_size=256, num_steps=200, num_seeds=16))
        c.adding.update(dict(lags=(10, 25, 50, 100, 200), length=201, hidden_size=128, epochs=100,
                             num_train=10000, num_test=2000, num_seeds=5))
    return c


def _validate(config):
    cliff, jac, add = config.cliff, config.jacobian, config.adding
    for field, value in [("cliff.num_steps", cliff.num_steps), ("cliff.descent_steps", cliff.descent_steps),
                         ("cliff.resolution", cliff.resolution), ("jacobian.hidden_size", jac.hidden_size),
                         ("jacobian.num_steps", jac.num_steps), ("jacobian.num_seeds", jac.num_seeds),
                         ("adding.length", add.length), ("adding.hidden_size", add.hidden_size),
                         ("adding.epochs", add.epochs), ("adding.batch_size", add.batch_size),
                         ("adding.num_train", add.num_train), ("adding.num_test", add.num_test),
                         ("adding.num_seeds", add.num_seeds)]:
        common.require(isinstance(value, int) and value > 0, field, "a positive integer", value)
    for field, value in [("cliff.learning_rate", cliff.learning_rate), ("cliff.clip_norm", cliff.clip_norm),
                         ("adding.learning_rate", add.learning_rate), ("adding.clip_norm", add.clip_norm),
                         ("jacobian.slope_tolerance", jac.slope_tolerance)]:
        common.require(value > 0, field, "a positive number", value)
    common.require(add.omega_strength >= 0, "adding.omega_strength", "a number >= 0", add.omega_strength)
    for field in ("start", "w_range", "b_range"):
        common.require(len(cliff[field]) == 2, f"cliff.{field}", "a pair of numbers", cliff[field])
    common.require(all(len(s) == 2 for s in cliff.other_starts), "cliff.other_starts", "pairs (w, b)",
                   cliff.other_starts)
    common.require(all(r > 0 for r in jac.radii) and 0 < len(jac.radii) <= 3, "jacobian.radii",
                   "one to three positive spectral radii (a colour each in the figure)", jac.radii)
    common.require("linear" in jac.activations and set(jac.activations) <= set(recurrence.JACOBIAN_ACTIVATIONS),
                   "jacobian.activations", f"'linear' and any of {list(recurrence.JACOBIAN_ACTIVATIONS)}",
                   jac.activations)
    common.require(0 <= jac.fit_from < jac.num_steps - 1, "jacobian.fit_from",
                   f"an integer in [0, {jac.num_steps - 1}) (num_steps - 1)", jac.fit_from)
    common.require(set(add.models) <= set(MODELS) and add.models, "adding.models",
                   f"names among {list(MODELS)}", add.models)
    common.require(all(isinstance(lag, int) and 0 < lag < add.length for lag in add.lags) and add.lags,
                   "adding.lags", f"integers in [1, adding.length={add.length})", add.lags)
    common.require(add.batch_size <= add.num_train, "adding.batch_size", "at most adding.num_train",
                   add.batch_size)


# ----------------------------------------------------------------------------- 1. the cliff


def _largest_step(params_SxD):
    """Index j of the largest step, its length, and the median length of the steps before it."""
    steps = np.linalg.norm(np.diff(params_SxD, axis=0), axis=-1)
    j = int(np.argmax(steps))
    return j, float(steps[j]), float(np.median(steps[: max(j, 1)]))


def cliff_phase(config, run_dir: io.RunDir) -> dict:
    cfg = config.cliff
    loss_fn = recurrence.CliffLoss(int(cfg.num_steps), float(cfg.h0), float(cfg.target))
    starts_Qx2 = np.array([cfg.start, *cfg.other_starts], np.float32)
    paths = {}
    for method, clip_norm in (("GD", None), ("clipped GD", float(cfg.clip_norm))):
        tx = optim.get_optimizer("gd", float(cfg.learning_rate), clip_norm=clip_norm)
        paths[method] = jax.device_get(recurrence.descent_paths(loss_fn, starts_Qx2, tx,
                                                                num_steps=int(cfg.descent_steps)))
    rows, shown = [], {}
    for q, (w, b) in enumerate(starts_Qx2):
        for method, path in paths.items():
            params, loss = path.params_QxSxD[q], path.loss_QxS[q]
            j, largest, before = _largest_step(params)
            rows.append([f"({w:g}, {b:g})", method, float(loss[0]), largest, before, float(loss.max()),
                         f"({params[-1, 0]:.3g}, {params[-1, 1]:.3g})", float(loss[-1])])
            shown[f"{method} from ({w:g}, {b:g})"] = params
    plain, clipped = paths["GD"], paths["clipped GD"]
    j, largest, before = _largest_step(plain.params_QxSxD[0])

    def surface(mesh_w, mesh_b):
        return np.asarray(recurrence.loss_surface(loss_fn, mesh_w[0], mesh_b[:, 0]))

    figure = run_dir.figure_path("cliff_surface")
    title = (f"(h({cfg.num_steps}) - {cfg.target:g})^2 with h(t) = w sigmoid(h(t-1)) + b, h(0) = {cfg.h0:g}\n"
             f"GD (eta {cfg.learning_rate:g}) with and without clipping at {cfg.clip_norm:g}")
    fig = plot.trajectories_2d(surface, shown, tuple(cfg.w_range), tuple(cfg.b_range), resolution=int(cfg.resolution),
                               title=title)
    ax = fig.axes[0]
    ax.set(xlabel="w", ylabel="b")
    contours = ax.collections[0]  # the filled contours, on a log colour scale
    ticks = [10.0 ** e for e in range(-12, 6) if contours.norm.vmin <= 10.0 ** e <= contours.norm.vmax]
    fig.colorbar(contours, ax=ax, ticks=ticks, format="%.0e", label="loss (log scale)")
    plot.save_figure(fig, figure)
    table = common.format_table(["start (w, b)", "method", "start loss", "largest step", "median step before it",
                                 "largest loss", "end (w, b)", "end loss"], rows, float_format="{:.3g}")
    arrays = {f"cliff/{m}/params": p.params_QxSxD for m, p in paths.items()}
    arrays.update({f"cliff/{m}/loss": p.loss_QxS for m, p in paths.items()})
    return {"table": table, "figure": figure, "arrays": arrays, "start": tuple(map(float, starts_Qx2[0])),
            "start_loss": float(plain.loss_QxS[0, 0]), "jump_ratio": largest / max(before, 1e-30),
            "jump": largest, "jump_losses": (float(plain.loss_QxS[0, j]), float(plain.loss_QxS[0, j + 1])),
            "plain_end": tuple(map(float, plain.params_QxSxD[0, -1])),
            "clipped_end_loss": float(clipped.loss_QxS[0, -1]),
            "clipped_end_losses": [float(v) for v in clipped.loss_QxS[:, -1]]}


# ----------------------------------------------------------------------------- 2. Jacobians


def jacobian_phase(config, run_dir: io.RunDir) -> dict:
    cfg = config.jacobian
    radii = np.asarray(cfg.radii, np.float32)
    key = jax.random.fold_in(jax.random.key(config.seed), 1)
    norms = {activation: np.asarray(recurrence.jacobian_norms_by_radius(
        key, jnp.asarray(radii), hidden_size=int(cfg.hidden_size), num_steps=int(cfg.num_steps),
        num_seeds=int(cfg.num_seeds), activation=activation, recurrent_init=cfg.recurrent_init,
        input_scale=float(cfg.input_scale)), np.float64) for activation in cfg.activations}
    k = np.arange(int(cfg.num_steps) + 1)
    slopes, rows = {}, []
    for activation, norms_MxKxT in norms.items():
        mean_log = np.log(norms_MxKxT).mean(axis=1)  # geometric mean over seeds
        for m, radius in enumerate(radii):
            slope = float(np.polyfit(k[cfg.fit_from:], mean_log[m, cfg.fit_from:], 1)[0])
            slopes[(activation, float(radius))] = slope
            rows.append([activation, float(radius), float(np.log(radius)), slope, float(np.exp(mean_log[m, -1]))])
    panels = {}
    titles = {"linear": "linear: h_t = h_(t-1) W + x_t", "tanh": "tanh: h_t = tanh(h_(t-1) W + x_t)"}
    for activation in norms:
        title = titles[activation]
        panels[title] = {"predicted rho^k": np.log10(radii[:, None] ** k[None].astype(np.float64))}
        panels[title].update({f"rho = {r:g}": np.log10(norms[activation][m]) for m, r in enumerate(radii)})
    figure = run_dir.figure_path("jacobian_norms")
    plot.function_ensembles(k, panels, xlabel="k", ylabel="log10 ||dh_t / dh_(t-k)||_2",
                            title=f"{cfg.recurrent_init} W of spectral radius rho, H = {cfg.hidden_size}, "
                                  f"{cfg.num_seeds} seeds (thin lines)", path=figure)
    table = common.format_table(["recurrence", "radius", "log(radius)", "fitted log-slope",
                                 f"norm at k = {cfg.num_steps} (geometric mean)"], rows, float_format="{:.4g}")
    last = {float(r): float(np.exp(np.log(norms["linear"][m, :, -1]).mean())) for m, r in enumerate(radii)}
    return {"table": table, "figure": figure, "slopes": slopes, "last_norms": last,
            "arrays": {f"jacobian/{a}": n for a, n in norms.items()}}


# ----------------------------------------------------------------------------- 3. the adding problem

_omega_over_seeds = jax.jit(jax.vmap(recurrence.omega, in_axes=(0, None)))


def adding_phase(config, run_dir: io.RunDir, logger) -> dict:
    cfg = config.adding
    tx = optim.get_optimizer("adam", float(cfg.learning_rate), clip_norm=float(cfg.clip_norm))
    seeds = [config.seed + s for s in range(int(cfg.num_seeds))]
    data = {lag: datasets.load("adding", length=int(cfg.length), lag=int(lag), num_train=int(cfg.num_train),
                               num_test=int(cfg.num_test), seed=config.seed, standardize=False) for lag in cfg.lags}
    mse, omega = {}, {}
    for name in cfg.models:
        # One sequence length for every lag: each model compiles once, whatever the lag.
        model = get_model(MODELS[name], hidden_size=int(cfg.hidden_size), num_outputs=1)
        regularizer = recurrence.OmegaRegularizer(float(cfg.omega_strength)) if name == "rnn_omega" else None
        mse[name], omega[name] = np.zeros((len(cfg.lags), len(seeds))), np.zeros((len(cfg.lags), len(seeds)))
        for i, (lag, dataset) in enumerate(data.items()):
            result = train.fit_seeds(model, dataset, tx, seeds=seeds, epochs=int(cfg.epochs),
                                     batch_size=int(cfg.batch_size), loss_name="mse", regularizer=regularizer,
                                     eval_every=int(cfg.epochs), epochs_per_call=int(cfg.epochs),
                                     logger=logger.with_tags(run=f"adding/{name}/lag_{lag}"))
            mse[name][i] = result.history["test_loss"][:, -1]
            if MODELS[name] == "rnn":
                omega[name][i] = np.asarray(_omega_over_seeds(result.state.params, (dataset.x_test, dataset.y_test)))
    lags = np.asarray(cfg.lags)
    curves = {LABELS[n]: (lags, m.mean(axis=1), m.std(axis=1)) for n, m in mse.items()}
    curves["predict the mean (1/6)"] = (lags, np.full(len(lags), BASELINE))
    curves["remember the second value only (1/12)"] = (lags, np.full(len(lags), BASELINE / 2))
    figure = run_dir.figure_path("adding_problem")
    plot.line_plot(curves, xlabel="lag (steps the first value must be remembered)", ylabel="test MSE",
                   title=f"adding problem, length {cfg.length}, {len(seeds)} seeds (mean +- std)", logy=True,
                   path=figure)
    rows = []
    for name, values in mse.items():
        for i, lag in enumerate(cfg.lags):
            omega_text = f"{omega[name][i].mean():.3g}" if MODELS[name] == "rnn" else ""
            rows.append([LABELS[name], int(lag), float(values[i].mean()), ", ".join(f"{v:.3g}" for v in values[i]),
                         float(values[i].mean() / BASELINE), omega_text])
    table = common.format_table(["model", "lag", "test MSE (mean)", "per seed", "MSE / (1/6)",
                                 "Omega on the test set (mean)"], rows, float_format="{:.3g}")
    return {"table": table, "figure": figure, "lags": [int(v) for v in cfg.lags],
            "mse": {n: m.mean(axis=1).tolist() for n, m in mse.items()},
            "arrays": {f"adding/{n}/test_mse": m for n, m in mse.items()}}


# ----------------------------------------------------------------------------- run and claims


def run(config, run_dir: io.RunDir) -> dict:
    _validate(config)
    timed = common.PhaseTimer()
    cliff = timed("cliff", cliff_phase, config, run_dir)
    jacobian = timed("jacobians", jacobian_phase, config, run_dir)
    with run_dir.logger() as logger:
        adding = timed("adding problem", adding_phase, config, run_dir, logger)
    run_dir.save_results(**cliff["arrays"], **jacobian["arrays"], **adding["arrays"])
    tables = {"cliff: gradient descent with and without clipping": cliff["table"],
              "Jacobian norms against the spectral radius": jacobian["table"],
              "adding problem: test MSE against lag": adding["table"], "seconds per phase": timed.table()}
    return {"tables": tables, "figures": [cliff["figure"], jacobian["figure"], adding["figure"]],
            "cliff": {k: v for k, v in cliff.items() if k not in ("table", "figure", "arrays")},
            "slopes": {f"{a}/{r:g}": s for (a, r), s in jacobian["slopes"].items()},
            "last_norms": jacobian["last_norms"], "slope_tolerance": float(config.jacobian.slope_tolerance),
            "num_steps": int(config.jacobian.num_steps), "lags": adding["lags"], "mse": adding["mse"]}


def claims(result: dict) -> list:
    cliff = result["cliff"]
    start = "({:g}, {:g})".format(*cliff["start"])
    out = [
        common.Claim.at_least(
            PAPER, f"plain GD from {start}, below the cliff, steps onto it and is thrown away: its largest step "
            f"({cliff['jump']:.3g}, loss {cliff['jump_losses'][0]:.3g} -> {cliff['jump_losses'][1]:.3g}, ends at "
            "({:.3g}, {:.3g})) over the median step before it".format(*cliff["plain_end"]),
            cliff["jump_ratio"], 100.0, "{:.3g}"),
        common.Claim.at_most(
            PAPER, f"GD with global-norm clipping from {start} crosses the cliff and reaches a low loss "
            f"(start loss {cliff['start_loss']:.3g}; final loss)", cliff["clipped_end_loss"], 1e-3, "{:.2g}"),
    ]
    tolerance = result["slope_tolerance"]
    for key, slope in result["slopes"].items():
        activation, radius = key.split("/")
        if activation != "linear":
            continue
        predicted = float(np.log(float(radius)))
        out.append(common.Claim.check(
            PAPER, f"rho = {radius}: ||dh_t/dh_(t-k)|| of a linear recurrence scales like rho^k (fitted log-slope "
            f"against k)", f"log(rho) = {predicted:.3f} +- {tolerance:g}", slope,
            lambda s, p=predicted: abs(s - p) <= tolerance, "{:.4f}"))
    for radius, norm in result["last_norms"].items():
        if radius < 1:
            out.append(common.Claim.at_most(PAPER, f"rho = {radius:g} < 1: the gradient vanishes "
                                            f"(||dh_t/dh_(t-k)|| at k = {result['num_steps']})", norm, 1.0, "{:.3g}"))
        elif radius > 1:
            out.append(common.Claim.at_least(PAPER, f"rho = {radius:g} > 1: the gradient explodes "
                                             f"(||dh_t/dh_(t-k)|| at k = {result['num_steps']})", norm, 1.0, "{:.3g}"))
    mse, lag = result["mse"], result["lags"][-1]
    if "rnn" in mse:
        out.append(common.Claim.at_least(
            "Hochreiter & Schmidhuber 1997", f"adding problem, lag {lag}: the Elman RNN stays near the "
            "mean-prediction baseline 1/6 (test MSE at least 1/12, the error of forgetting the first value)",
            mse["rnn"][-1], BASELINE / 2, "{:.3g}"))
    for name in ("lstm", "gru"):
        if name in mse:
            out.append(common.Claim.at_most(
                "Hochreiter & Schmidhuber 1997; Chung et al. 2014", f"adding problem, lag {lag}: the {LABELS[name]} "
                "reaches a test MSE well below the baseline 1/6 (at most a tenth of it)", mse[name][-1],
                BASELINE / 10, "{:.3g}"))
    return out


def main(argv=None):
    return common.experiment_main(sys.modules[__name__], argv)


if __name__ == "__main__":
    main()
