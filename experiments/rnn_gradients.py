"""Recurrent gradients: the cliff, clipping, vanishing and exploding Jacobians, and gated cells.

Pascanu, Mikolov & Bengio 2013, "On the difficulty of training recurrent neural networks":
1. the one-unit cliff ``h(t) = w sigma(h(t-1)) + b``, ``h(0) = 0.5``, error ``(h(50) - 0.7)^2``
   (deterministic): plain GD from below the wall steps onto it and is thrown far away; with
   global-norm clipping it takes bounded steps, crosses, and descends;
2. ``||dh_t / dh_{t-k}||`` against k for ``h_t = f(h_{t-1} W + x_t)``, W of spectral radius rho, over
   the seeds: log-slope log(rho) for a linear f (Gelfand: a check); with tanh, rho > 1 is necessary
   but not sufficient for explosion (Sec. 2.1);
3. the adding problem (Hochreiter & Schmidhuber 1997) at growing lags: an Elman RNN (with and
   without Pascanu's regulariser Omega), an LSTM and a GRU over the seeds, Adam with clipping.
   Predicting the mean scores 1/6, forgetting the first value 1/12; the Elman RNN's failure at
   the longest lag comes with its success at the shortest lag (the positive control).
"""
from __future__ import annotations


import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from experiments import framework as fw
from jaxdl import data as datasets, plot, train
from jaxdl.course import recurrence
from jaxdl.train import optim
from jaxdl.models import get_model
from jaxdl.core import fits

NAME = "rnn_gradients"
DESCRIPTION = ("the one-unit cliff with and without clipping, ||dh_t/dh_t-k|| against the spectral radius, "
               "Elman RNN (+ Omega) vs LSTM and GRU on the adding problem")
DEVICE_FIELDS = {"seeds": "seeds"}
PAPER = "Pascanu et al. 2013"
MODELS = {"rnn": "rnn", "rnn_omega": "rnn", "lstm": "lstm", "gru": "gru"}  # name: zoo model
LABELS = {"rnn": "Elman RNN", "rnn_omega": "Elman RNN + Omega", "lstm": "LSTM", "gru": "GRU"}
BASELINE = datasets.ADDING_MEAN_PREDICTION_MSE
FORGETS = BASELINE / 2  # the MSE of the best prediction that ignores the first value


def get_config() -> ml_collections.ConfigDict:
    """The default size: about a minute on 2 CPU cores."""
    return ml_collections.ConfigDict(dict(
        seed=0, seeds=10,
        cliff=dict(num_steps=50, h0=0.5, target=0.7, learning_rate=0.01, clip_norm=10.0, descent_steps=1500,
                   start=(7.0, -3.5), other_starts=((5.5, -4.0), (6.5, -3.0)), w_range=(2.5, 8.5),
                   b_range=(-5.0, -0.5), resolution=200),
        jacobian=dict(radii=(0.9, 1.0, 1.1), hidden_size=64, num_steps=60, recurrent_init="gaussian",
                      input_scale=0.3, fit_from=1, slope_tolerance=0.02, activations=("identity", "tanh")),
        adding=dict(models=("rnn", "rnn_omega", "lstm", "gru"), lags=(10, 25, 40), length=41, hidden_size=16,
                    learning_rate=0.01, clip_norm=1.0, omega_strength=0.01, epochs=15, batch_size=50,
                    num_train=2000, num_test=500)))


SIZES = {"quick": {"seeds": 2, "cliff.descent_steps": 100, "cliff.resolution": 40, "jacobian.hidden_size": 16,
                   "jacobian.num_steps": 20, "adding.models": ("rnn", "rnn_omega"), "adding.lags": (2, 4),
                   "adding.length": 5, "adding.hidden_size": 4, "adding.epochs": 1, "adding.num_train": 100,
                   "adding.num_test": 50},
         "full": {"seeds": 10, "jacobian.hidden_size": 256, "jacobian.num_steps": 200, "adding.length": 201,
                  "adding.lags": (10, 25, 50, 100, 200), "adding.hidden_size": 128, "adding.epochs": 100,
                  "adding.num_train": 10000, "adding.num_test": 2000}}
FIELDS = {
    **dict.fromkeys(("seeds", "cliff.num_steps", "cliff.descent_steps", "cliff.resolution", "jacobian.hidden_size",
                     "jacobian.num_steps", "adding.length", "adding.hidden_size", "adding.epochs", "adding.num_train",
                     "adding.num_test"), fw.positive_int),
    **dict.fromkeys(("cliff.learning_rate", "cliff.clip_norm", "jacobian.slope_tolerance", "adding.learning_rate",
                     "adding.clip_norm"), fw.positive),
    **dict.fromkeys(("cliff.start", "cliff.w_range", "cliff.b_range"), fw.expect(lambda v: len(v) == 2, "a pair")),
    "cliff.other_starts": fw.expect(lambda v: all(len(s) == 2 for s in v), "pairs (w, b)"),
    "adding.models": fw.subset_of(*MODELS), "jacobian.input_scale": fw.non_negative,
    "adding.omega_strength": fw.non_negative,
    "jacobian.radii": fw.expect(lambda v: 0 < len(v) <= 3 and all(r > 0 for r in v), "one to three positive radii"),
    "jacobian.activations": fw.expect(lambda v: "identity" in v and set(v) <= set(recurrence.JACOBIAN_ACTIVATIONS),
                                      f"'identity' and any of {list(recurrence.JACOBIAN_ACTIVATIONS)}"),
    "jacobian.fit_from": fw.expect(lambda v, c: 0 <= v < c.jacobian.num_steps - 1, "in [0, jacobian.num_steps - 1)",
                                   uses_config=True),
    "adding.lags": fw.expect(lambda v, c: len(v) > 0 and all(type(n) is int and 0 < n < c.adding.length for n in v),
                             "integers in [1, adding.length)", uses_config=True),
    "adding.batch_size": (fw.positive_int, fw.expect(lambda v, c: v <= c.adding.num_train, "at most adding.num_train",
                                                     uses_config=True)),
}


_steps = lambda params_SxD: np.linalg.norm(np.diff(params_SxD, axis=0), axis=-1)  # step lengths


def cliff_phase(config, ctx) -> fw.Phase:
    """Plain and clipped GD on the one-unit cliff from every start, over the loss surface."""
    cfg = config.cliff
    loss_fn = recurrence.CliffLoss(int(cfg.num_steps), float(cfg.h0), float(cfg.target))
    starts_Gx2 = np.array([cfg.start, *cfg.other_starts], np.float32)
    paths = {method: jax.device_get(recurrence.descent_paths(
        loss_fn, starts_Gx2, optim.get_optimizer("gd", float(cfg.learning_rate), clip_norm=clip),
        num_steps=int(cfg.descent_steps))) for method, clip in (("GD", None), ("clipped GD", float(cfg.clip_norm)))}
    rows, shown = [], {}
    for q, (w, b) in enumerate(starts_Gx2):
        for method, path in paths.items():
            params, loss, steps = path.params_GxSxD[q], path.loss_GxS[q], _steps(path.params_GxSxD[q])
            j = int(np.argmax(steps))
            rows.append([f"({w:g}, {b:g})", method, loss[0], steps[j], np.median(steps[:max(j, 1)]), loss.max(),
                         f"({params[-1, 0]:.3g}, {params[-1, 1]:.3g})", loss[-1], j])
            shown[f"{method} from ({w:g}, {b:g})"] = params
    plain, clipped, j = paths["GD"], paths["clipped GD"], rows[0][-1]
    title = (f"(h({cfg.num_steps}) - {cfg.target:g})^2 with h(t) = w sigmoid(h(t-1)) + b, h(0) = {cfg.h0:g}\n"
             f"GD (eta {cfg.learning_rate:g}) with and without clipping at {cfg.clip_norm:g}")
    figure = plot.trajectories_2d(lambda w, b: np.asarray(recurrence.loss_surface(loss_fn, w[0], b[:, 0])), shown,
                                  tuple(cfg.w_range), tuple(cfg.b_range), title, resolution=int(cfg.resolution))
    figure.axes[0].set(xlabel="w", ylabel="b")
    figure.colorbar(figure.axes[0].collections[0], ax=figure.axes[0], format="%.0e", label="loss (log scale)")
    table = fw.format_table(["start (w, b)", "method", "start loss", "largest step", "median step before it",
                             "largest loss", "end (w, b)", "end loss"], [r[:-1] for r in rows], float_format="{:.3g}")
    numbers = {"cliff/jump_ratio": float(rows[0][3] / max(rows[0][4], 1e-30)),
               "cliff/jump_losses": plain.loss_GxS[0, j:j + 2].tolist(),
               "cliff/plain_end": plain.params_GxSxD[0, -1].tolist(),
               "cliff/clipped_end_losses": clipped.loss_GxS[:, -1].tolist(),
               "cliff/clipped_largest_step": float(max(_steps(p).max() for p in clipped.params_GxSxD))}
    return fw.Phase(tables={"cliff: gradient descent with and without clipping": table},
                    figures={"cliff_surface": figure}, numbers=numbers,
                    arrays={f"cliff/{m}/params": p.params_GxSxD for m, p in paths.items()})


def jacobian_phase(config, ctx) -> fw.Phase:
    """||dh_t/dh_(t-k)|| for every radius, seed and activation; log-slopes fitted against k."""
    cfg, radii = config.jacobian, np.asarray(config.jacobian.radii, np.float32)
    norms = {activation: np.asarray(recurrence.jacobian_norms_by_radius(
        jax.random.fold_in(jax.random.key(config.seed), 1), jnp.asarray(radii), hidden_size=int(cfg.hidden_size),
        num_steps=int(cfg.num_steps), num_seeds=int(config.seeds), activation=activation,
        recurrent_init=cfg.recurrent_init, input_scale=float(cfg.input_scale)), np.float64)
        for activation in cfg.activations}
    k, fit = np.arange(int(cfg.num_steps) + 1), slice(int(cfg.fit_from), None)
    numbers, rows, panels = {}, [], {}
    for activation, norms_MxKxT in norms.items():
        log_MxKxT = np.log(norms_MxKxT)
        for m, radius in enumerate(radii):
            slope = fits.slope(k[fit], log_MxKxT[m, :, fit].mean(0))  # of the geometric mean
            numbers[f"jacobian/{activation}/{radius:g}"] = {
                "slope": slope, "seed_slopes": fits.slope(k[fit], log_MxKxT[m, :, fit]).tolist()}
            rows.append([activation, radius, np.log(radius), slope, np.exp(log_MxKxT[m, :, -1].mean())])
        title = {"identity": "identity: h_t = h_(t-1) W + x_t", "tanh": "tanh: h_t = tanh(h_(t-1) W + x_t)"}[activation]
        panels[title] = {"predicted rho^k": np.log10(radii[:, None] ** k[None].astype(np.float64)),
                         **{f"rho = {r:g}": np.log10(norms_MxKxT[m]) for m, r in enumerate(radii)}}
    figure = plot.function_ensembles(k, panels, xlabel="k", ylabel="log10 ||dh_t / dh_(t-k)||_2",
                                     title=f"{cfg.recurrent_init} W of spectral radius rho, H = {cfg.hidden_size}, "
                                           f"{config.seeds} seeds (thin lines)")
    table = fw.format_table(["recurrence", "radius", "log(radius)", "fitted log-slope",
                             f"norm at k = {cfg.num_steps} (geometric mean)"], rows, float_format="{:.4g}")
    return fw.Phase(tables={"Jacobian norms against the spectral radius": table}, figures={"jacobian_norms": figure},
                    numbers=numbers, arrays={f"jacobian/{a}": n for a, n in norms.items()})


_omega_over_seeds = jax.jit(jax.vmap(recurrence.omega, in_axes=(0, None)))


def adding_phase(config, ctx) -> fw.Phase:
    """Every model at every lag over the seeds (one vmapped fit each): test MSE, and Omega for the Elman RNNs."""
    cfg = config.adding
    tx = optim.get_optimizer("adam", float(cfg.learning_rate), clip_norm=float(cfg.clip_norm))
    data = {lag: datasets.load("adding", length=int(cfg.length), lag=int(lag), num_train=int(cfg.num_train),
                               num_test=int(cfg.num_test), seed=config.seed, standardize=False) for lag in cfg.lags}
    mse, rows = {}, []
    for name in cfg.models:
        # One sequence length for every lag: each model compiles once, whatever the lag.
        model = get_model(MODELS[name], hidden_size=int(cfg.hidden_size), num_outputs=1)
        regularizer = recurrence.OmegaRegularizer(float(cfg.omega_strength)) if name == "rnn_omega" else None
        mse[name] = np.zeros((len(cfg.lags), int(config.seeds)))
        for i, (lag, dataset) in enumerate(data.items()):
            result = train.fit_seeds(model, dataset, tx, seeds=fw.seeds(config), epochs=int(cfg.epochs),
                                     batch_size=int(cfg.batch_size), loss_name="mse", regularizer=regularizer,
                                     eval_every=int(cfg.epochs), epochs_per_call=int(cfg.epochs),
                                     logger=ctx.logger.with_tags(run=f"adding/{name}/lag_{lag}"))
            mse[name][i] = result.history["test_loss"][:, -1]
            omega = _omega_over_seeds(result.state.params, (dataset.x_test, dataset.y_test)) if "rnn" in name else ""
            rows.append([LABELS[name], lag, mse[name][i].mean(), ", ".join(f"{v:.3g}" for v in mse[name][i]),
                         mse[name][i].mean() / BASELINE, float(np.mean(omega)) if len(omega) else ""])
    lags = np.asarray(cfg.lags)
    curves = {**{LABELS[n]: (lags, m.mean(axis=1), m.std(axis=1)) for n, m in mse.items()},
              "predict the mean (1/6)": (lags, np.full(len(lags), BASELINE)),
              "remember the second value only (1/12)": (lags, np.full(len(lags), FORGETS))}
    figure = plot.line_plot(curves, "lag (steps the first value must be remembered)", "test MSE",
                            f"adding problem, length {cfg.length}, {config.seeds} seeds (mean +- std)", logy=True)
    table = fw.format_table(["model", "lag", "test MSE (mean)", "per seed", "MSE / (1/6)",
                             "Omega on the test set (mean)"], rows, float_format="{:.3g}")
    return fw.Phase(tables={"adding problem: test MSE against lag": table}, figures={"adding_problem": figure},
                    numbers={f"adding/{n}/{lag}": m[i].tolist() for n, m in mse.items() for i, lag in enumerate(lags)},
                    arrays={f"adding/{n}/test_mse": m for n, m in mse.items()})


def run(config, ctx) -> None:
    ctx.phase("cliff", cliff_phase, config, ctx)
    ctx.phase("jacobians", jacobian_phase, config, ctx)
    ctx.phase("adding problem", adding_phase, config, ctx)


def claims(config, numbers) -> list:
    cliff, jac, add = config.cliff, config.jacobian, config.adding
    # Deterministic. Tolerances: rounding moves a float32 path by ~1e-6 before the wall, which moves
    # the jump ratio by far less than 10 (a tenth of its threshold) and leaves a descended loss near
    # 1e-6, far inside 1e-4.
    out = [fw.Claim.exact(
        "cliff_gd_thrown", PAPER, "plain GD from ({:g}, {:g}), below the cliff, steps onto the wall and is thrown "
        "away: its largest step over the median step before it (loss {:.3g} -> {:.3g}, ends at ({:.3g}, {:.3g}))"
        .format(*cliff.start, *numbers["cliff/jump_losses"], *numbers["cliff/plain_end"]),
        numbers["cliff/jump_ratio"], above=100.0, tolerance=10.0),
        fw.Claim.exact(
        "cliff_clipped_descends", PAPER, f"GD with global-norm clipping at {cliff.clip_norm:g} crosses the cliff and "
        f"descends to a valley from all {1 + len(cliff.other_starts)} starts (largest final loss)",
        max(numbers["cliff/clipped_end_losses"]), below=1e-3, tolerance=1e-4, fmt="{:.2g}"),
        fw.Check.at_most(
        "clipped_step_bounded", "clipping rule", "no clipped GD step is longer than learning rate x clip norm = "
        f"{cliff.learning_rate * cliff.clip_norm:g} (float32 rounding aside)", numbers["cliff/clipped_largest_step"],
        cliff.learning_rate * cliff.clip_norm * (1 + 1e-5), "{:.6g}")]
    out += [fw.Check.at_most(
        f"linear_slope_rho_{r:g}".replace(".", "_"), "Gelfand's formula", f"rho = {r:g}: the fitted log-slope of "
        f"||dh_t/dh_(t-k)|| = ||W^k|| against k is log(rho) = {np.log(r):.4f} (absolute error; geometric mean over "
        f"{config.seeds} seeds)", abs(numbers[f"jacobian/identity/{r:g}"]["slope"] - np.log(r)), jac.slope_tolerance,
        "{:.4f}") for r in jac.radii]
    out += [fw.Claim.mean(
        f"tanh_rho_{r:g}_still_vanishes".replace(".", "_"), f"{PAPER}, Sec. 2.1", f"rho = {r:g} > 1 is necessary but "
        "not sufficient for exploding gradients: the saturating tanh recurrence's ||dh_t/dh_(t-k)|| still decays "
        f"(fitted log-slope per seed, {config.seeds} seeds, inputs of scale {jac.input_scale:g})",
        numbers[f"jacobian/tanh/{r:g}"]["seed_slopes"], below=0.0) for r in jac.radii
        if r > 1 and "tanh" in jac.activations]
    short, long, models = min(add.lags), max(add.lags), set(add.models)
    mse = lambda name, lag: numbers[f"adding/{name}/{lag}"]
    budget = f"{add.epochs} epochs of Adam at {add.learning_rate:g} with clipping, {config.seeds} seeds"
    hochreiter = "Hochreiter & Schmidhuber 1997"
    out += [fw.Claim.mean(key, paper, f"adding problem, lag {lag}: {text} ({budget})", mse(name, lag), **threshold)
            for key, name, lag, paper, text, threshold in (
        ("elman_forgets_long_lag", "rnn", long, f"{hochreiter}; Bengio et al. 1994", "the Elman RNN forgets the first "
         "value: test MSE above 1/12, the error of ignoring it", dict(above=FORGETS)),
        ("elman_learns_short_lag", "rnn", short, f"{hochreiter} (positive control)", "the same Elman RNN in the same "
         "budget remembers the first value: test MSE below 1/12", dict(below=FORGETS)),
        *((f"{n}_solves_long_lag", n, long, f"{hochreiter}; Chung et al. 2014", f"the {LABELS[n]} reaches a test MSE "
           "below a tenth of the baseline 1/6", dict(below=BASELINE / 10)) for n in ("lstm", "gru")))
        if name in models]
    return out + [fw.Claim.difference(
        "omega_helps_long_lag", f"{PAPER}, Sec. 3.3", f"adding problem, lag {long}: the regulariser Omega (strength "
        f"{add.omega_strength:g}) lowers the Elman RNN's test MSE (with minus without, paired by seed; {budget})",
        mse("rnn_omega", long), mse("rnn", long), below=0.0, paired=True)] if {"rnn", "rnn_omega"} <= models else out


main = fw.entry_point(__name__)


if __name__ == "__main__":
    main()
