"""Optimizers: GD, SGD, momentum, RMSprop and Adam on test functions; SGD and Adam on MNIST-1D.

1. Trajectories on the badly conditioned quadratic 0.5 (w1^2 + kappa w2^2), GD and heavy-ball
   momentum at their optimal settings (Polyak 1964): GD contracts |w| by (kappa - 1) / (kappa + 1)
   per step, heavy ball by (sqrt(kappa) - 1) / (sqrt(kappa) + 1), about sqrt(kappa) times as fast
   (closed forms the code must reproduce: checks).
2. Trajectories on the Rosenbrock function (1 - x)^2 + 100 (y - x^2)^2.
3. An MLP on MNIST-1D (Greydanus 2020) with SGD and with Adam, each at the rate of a small grid
   with the lowest validation loss on a split carved from the training set, then trained over
   the seeds on the whole training set (Kingma & Ba 2015: Adam lowers the training loss faster).
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from experiments import framework as fw
from jaxdl import data as datasets, plot, train
from jaxdl.train import optim
from jaxdl.models import get_model
from jaxdl.core import fits

NAME = "optimizers"
DESCRIPTION = ("GD, SGD, momentum, RMSprop, Adam: quadratic and Rosenbrock trajectories; SGD vs Adam on MNIST-1D "
               "at validation-picked rates")
DEVICE_FIELDS = {"seeds": "seeds"}
POLYAK = "Polyak 1964"


def get_config() -> ml_collections.ConfigDict:
    """The default size: about half a minute on 2 CPU cores."""
    return ml_collections.ConfigDict(dict(
        seed=0, seeds=5, condition_number=100.0, quadratic_steps=800, quadratic_start=(-4.0, 1.5),
        quadratic_sgd_noise=0.5, quadratic_adaptive_learning_rate=0.05, trajectory_steps_shown=60,
        rosenbrock_steps=3000, rosenbrock_start=(-1.2, 1.0),
        rosenbrock_learning_rates=dict(gd=1e-3, sgd=1e-3, momentum=1e-3, rmsprop=2e-3, adam=2e-2),
        widths=(100, 100), epochs=30, batch_size=100, validation_fraction=0.2,
        learning_rate_grids=dict(sgd=(0.03, 0.1, 0.3), adam=(3e-4, 1e-3, 3e-3))))  # x3 around the course's rates


SIZES = {"quick": {"quadratic_steps": 200, "rosenbrock_steps": 300, "seeds": 2, "epochs": 2, "widths": (32,),
                   "learning_rate_grids": dict(sgd=(0.03, 0.1), adam=(1e-3,))},
         "full": {"quadratic_steps": 2000, "rosenbrock_steps": 10000, "seeds": 10, "epochs": 200}}
FIELDS = {**dict.fromkeys(("quadratic_steps", "rosenbrock_steps", "seeds", "epochs", "batch_size",
                           "trajectory_steps_shown"), fw.positive_int),
          "condition_number": fw.at_least(1.0), "widths": fw.positive_ints, "quadratic_sgd_noise": fw.non_negative,
          "rosenbrock_learning_rates.*": fw.positive, "quadratic_adaptive_learning_rate": fw.positive,
          "learning_rate_grids": fw.expect(lambda v: {"sgd", "adam"} <= set(v), "a group with sgd and adam grids"),
          "learning_rate_grids.*": fw.positives, "validation_fraction": fw.expect(lambda v: 0 < v < 1, "in (0, 1)")}


def polyak_settings(condition_number):
    """Optimal constant settings for curvatures in [1, kappa]: GD at eta = 2 / (L + mu), rate
    (kappa - 1) / (kappa + 1); heavy ball at eta = 4 / (sqrt(L) + sqrt(mu))^2, beta = rate^2 with
    rate (sqrt(kappa) - 1) / (sqrt(kappa) + 1)."""
    k, root = condition_number, math.sqrt(condition_number)
    return {"gd_learning_rate": 2.0 / (k + 1.0), "gd_rate": (k - 1.0) / (k + 1.0),
            "momentum_learning_rate": 4.0 / (root + 1.0) ** 2, "momentum_rate": (root - 1.0) / (root + 1.0)}


def run_trajectories(loss_fn, start, optimizers: dict, steps: int) -> dict:
    """``{name: path_Tx2}``: T = steps + 1 iterates of each optimizer from ``start`` (included),
    all in one compiled program: a 2-D descent path, not a training run on data."""
    grad_fn, w0 = jax.grad(loss_fn), jnp.asarray(start, jnp.float32)

    def path(tx):
        def step(carry, _):
            updates, state = tx.update(grad_fn(carry[0]), carry[1], carry[0])
            w = optax.apply_updates(carry[0], updates)
            return (w, state), w

        return jnp.concatenate([w0[None], jax.lax.scan(step, (w0, tx.init(w0)), None, length=steps)[1]])

    return {k: np.asarray(v) for k, v in jax.jit(lambda: {k: path(tx) for k, tx in optimizers.items()})().items()}


def log_rate(relative_error_T, jordan: bool = False) -> float:
    """The fitted slope of log |w_t| / |w_0| against t over the steps above 1e-20 (clear of float32
    underflow). With ``jordan`` the fit is of log(|w_t| / t): at Polyak's settings both of heavy
    ball's roots are double, so its error is (a + b t) r^t, not r^t."""
    t = np.arange(len(relative_error_T))
    keep = (relative_error_T > 1e-20) & (t > 0)
    return fits.slope(t[keep], np.log(relative_error_T[keep]) - (np.log(t[keep]) if jordan else 0.0))


def quadratic_phase(config, ctx) -> fw.Phase:
    """Every optimizer on the badly conditioned quadratic, GD and heavy ball at Polyak's settings."""
    kappa, polyak = float(config.condition_number), polyak_settings(float(config.condition_number))
    optimizers = {"gd": optax.sgd(polyak["gd_learning_rate"]),
                  "sgd": optax.chain(optax.add_noise(config.quadratic_sgd_noise**2, 0.0, config.seed),
                                     optax.sgd(polyak["gd_learning_rate"])),
                  "momentum": optax.sgd(polyak["momentum_learning_rate"], momentum=polyak["momentum_rate"] ** 2),
                  **{k: optim.get_optimizer(k, config.quadratic_adaptive_learning_rate) for k in ("rmsprop", "adam")}}
    loss_fn = lambda w: 0.5 * (w[..., 0] ** 2 + kappa * w[..., 1] ** 2)  # curvatures mu = 1 and L = kappa
    paths = run_trajectories(loss_fn, config.quadratic_start, optimizers, config.quadratic_steps)
    rel_error = {k: np.linalg.norm(p, axis=-1) / np.linalg.norm(config.quadratic_start) for k, p in paths.items()}
    table = fw.format_table(["optimizer", "steps to |w|/|w0| <= 1e-4", "final loss"], [
        [k, fits.first_crossing(e, 1e-4, rising=False, never="not reached"), float(loss_fn(paths[k][-1]))]
        for k, e in rel_error.items()], float_format="{:.3g}")
    shown = {k: p[:config.trajectory_steps_shown + 1] for k, p in paths.items()}
    trajectories = plot.trajectories_2d(lambda x, y: loss_fn(np.stack([x, y], -1)), shown, (-4.5, 1.5), (-4, 4),
                                        f"quadratic, condition number {kappa:g}: first {len(shown['gd']) - 1} steps")
    convergence = plot.line_plot({k: (np.arange(len(e)), np.maximum(e, 1e-12)) for k, e in rel_error.items()},
                                 "step", "|w_t| / |w_0|", "quadratic: distance to the minimum", logy=True)
    return fw.Phase(tables={"quadratic": table}, numbers={"quadratic/gd_log_rate": log_rate(rel_error["gd"]),
                    "quadratic/momentum_log_rate": log_rate(rel_error["momentum"], jordan=True)},
                    figures={"quadratic_trajectories": trajectories, "quadratic_convergence": convergence},
                    arrays={f"quadratic_path/{k}": p for k, p in paths.items()})


def rosenbrock_phase(config, ctx) -> fw.Phase:
    """Every optimizer on the Rosenbrock function."""
    learning_rates = config.rosenbrock_learning_rates
    rosenbrock = lambda w: (1.0 - w[..., 0]) ** 2 + 100.0 * (w[..., 1] - w[..., 0] ** 2) ** 2  # minimum 0 at (1, 1)
    optimizers = {name: optax.chain(optax.add_noise(1.0, 0.0, config.seed + 1), optax.sgd(lr)) if name == "sgd"
                  else optim.get_optimizer(name, lr) for name, lr in learning_rates.items()}
    paths = run_trajectories(rosenbrock, config.rosenbrock_start, optimizers, config.rosenbrock_steps)
    table = fw.format_table(["optimizer", "learning rate", "final loss", "distance to (1, 1)"],
                            [[k, learning_rates[k], float(rosenbrock(p[-1])), float(np.linalg.norm(p[-1] - 1.0))]
                             for k, p in paths.items()], float_format="{:.3g}")
    figure = plot.trajectories_2d(lambda x, y: rosenbrock(np.stack([x, y], -1)), paths, (-2, 2), (-1, 3), "Rosenbrock")
    return fw.Phase(tables={"rosenbrock": table}, figures={"rosenbrock_trajectories": figure},
                    arrays={f"rosenbrock_path/{k}": p for k, p in paths.items()})


def mnist1d_phase(config, ctx) -> fw.Phase:
    """Each optimizer's learning rate picked on a validation split (final validation loss, mean
    over seeds), then an MLP on MNIST-1D trained with it over the seeds (one vmapped fit each)."""
    data = datasets.load("mnist1d")
    model = get_model("mlp", widths=tuple(config.widths), num_outputs=data.num_classes)

    def fit(dataset, name, lr, eval_every):
        return train.fit_seeds(model, dataset, optim.get_optimizer(name, lr), seeds=fw.seeds(config),
                               epochs=config.epochs, batch_size=config.batch_size, eval_every=eval_every,
                               logger=ctx.logger.with_tags(run=f"{dataset.name}/{name}/{lr:g}")).history

    held_out = datasets.validation_split(data, round(config.validation_fraction * data.num_train))
    chosen, validation, histories = {}, {}, {}
    for name, grid in config.learning_rate_grids.items():
        for lr in grid:
            try:
                history = fit(held_out, name, lr, config.epochs)
                validation[f"{name}/{lr:g}"] = float(history["test_loss"][:, -1].mean())
            except FloatingPointError:  # a rate that diverges is not picked
                validation[f"{name}/{lr:g}"] = math.inf
        chosen[name] = float(min(grid, key=lambda lr: validation[f"{name}/{lr:g}"]))
        histories[name] = fit(data, name, chosen[name], 1)
    epochs = np.arange(1, config.epochs + 1)
    figures = {f"mnist1d_{m}": plot.line_plot({k: (epochs, h[m].mean(0), h[m].std(0)) for k, h in histories.items()},
                                              "epoch", m.replace("_", " "), f"MLP on MNIST-1D, rates picked on "
                                              f"validation: mean and std over {config.seeds} seeds", m == "train_loss")
               for m in ("train_loss", "test_accuracy")}
    final = {k: {m: h[m][:, -1].tolist() for m in ("train_loss", "test_accuracy")} for k, h in histories.items()}
    table = fw.format_table(["optimizer", "rate: validation loss (* picked)", "train loss", "test accuracy"], [
        [k, ", ".join(f"{lr:g}{'*' * (lr == chosen[k])}: {validation[f'{k}/{lr:g}']:.3f}" for lr in grid),
         *(f"{np.mean(final[k][m]):.4f} +- {np.std(final[k][m]):.4f}" for m in ("train_loss", "test_accuracy"))]
        for k, grid in config.learning_rate_grids.items()])
    return fw.Phase(tables={"mnist1d": table}, figures=figures,
                    numbers={"mnist1d/final": final, "mnist1d/learning_rate": chosen, "mnist1d/validation": validation},
                    arrays={f"mnist1d/{k}/{m}": h[m] for k, h in histories.items() for m in h})


def run(config, ctx) -> None:
    ctx.phase("quadratic", quadratic_phase, config, ctx)
    ctx.phase("rosenbrock", rosenbrock_phase, config, ctx)
    ctx.phase("mnist1d", mnist1d_phase, config, ctx)


def claims(config, numbers) -> list:
    polyak, kappa = polyak_settings(float(config.condition_number)), config.condition_number
    gd, momentum = math.log(polyak["gd_rate"]), math.log(polyak["momentum_rate"])
    measured_gd, measured_momentum = numbers["quadratic/gd_log_rate"], numbers["quadratic/momentum_log_rate"]
    # Tolerances: GD's |w_t| = r^t |w_0| exactly, so only float32 rounding (~1e-7 per step) moves
    # its fitted rate; heavy ball's (a + b t) r^t leaves an O(1 / t) bias in the fitted slope.
    out = [fw.Check.at_most(key, POLYAK, f"{text} (relative error; fitted log-rates)", abs(measured / expected - 1),
                            tolerance, "{:.1e}") for key, text, measured, expected, tolerance in (
        ("gd_contraction", f"GD at eta = 2/(L+mu) contracts |w| by (kappa-1)/(kappa+1) = {polyak['gd_rate']:.4f} per "
         "step", measured_gd, gd, 1e-3),
        ("heavy_ball_contraction", "heavy ball at Polyak's settings contracts |w| by (sqrt(kappa)-1)/(sqrt(kappa)+1) = "
         f"{polyak['momentum_rate']:.4f} per step", measured_momentum, momentum, 2e-2),
        ("heavy_ball_speedup", f"heavy ball needs {momentum / gd:.4g} (about sqrt(kappa) = {math.sqrt(kappa):.3g}) "
         "times fewer steps than GD", measured_momentum / measured_gd, momentum / gd, 2e-2))]
    final, lr = numbers["mnist1d/final"], numbers["mnist1d/learning_rate"]
    return out + [fw.Claim.difference(
        "adam_faster_than_sgd", "Kingma & Ba 2015, Fig. 2", f"MLP on MNIST-1D: train loss after {config.epochs} "
        f"epochs, Adam (rate {lr['adam']:g}) minus SGD (rate {lr['sgd']:g}), each rate picked from its grid by the "
        f"validation loss on {config.validation_fraction:.0%} of the training set held out; {config.seeds} seeds, "
        "paired (same init and batch order)", final["adam"]["train_loss"], final["sgd"]["train_loss"], below=0.0,
        paired=True)]


main = fw.entry_point(__name__)


if __name__ == "__main__":
    main()
