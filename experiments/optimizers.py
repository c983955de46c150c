"""Optimizers: GD, SGD, momentum, RMSprop and Adam on test functions and on MNIST-1D.

Three phases, each one compiled program:
1. trajectories on a badly conditioned quadratic f(w) = 0.5 (mu w1^2 + L w2^2) with every
   optimizer, GD and heavy-ball momentum at their optimal settings (Polyak 1964):
   GD contracts the error by (kappa - 1) / (kappa + 1) per step, momentum by about
   (sqrt(kappa) - 1) / (sqrt(kappa) + 1), kappa = L / mu;
2. trajectories on the Rosenbrock function (1 - x)^2 + 100 (y - x^2)^2;
3. an MLP on MNIST-1D (Greydanus 2020) trained with each optimizer over several seeds, the
   seeds of one optimizer as one vmapped program; loss curves show mean and spread.
"""
from __future__ import annotations

import math
import sys
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from experiments import common
from jaxdl import data as datasets
from jaxdl import io, optim, plot, train
from jaxdl.models import get_model

NAME = "optimizers"
DESCRIPTION = "GD, SGD, momentum, RMSprop, Adam: quadratic and Rosenbrock trajectories, MNIST-1D loss curves"
DEVICE_FIELDS = {"seeds": "seeds"}  # see experiments.device_defaults

TEST_FUNCTION_OPTIMIZERS = ("gd", "sgd", "momentum", "rmsprop", "adam")


def get_config(size: str = "default") -> ml_collections.ConfigDict:
    """Sizes: ``quick`` (seconds, tests), ``default`` (about a minute on 2 CPU cores), ``full``."""
    common.check_size(size)
    c = ml_collections.ConfigDict()
    c.seed = 0
    # Test functions.
    c.condition_number = 100.0
    c.quadratic_steps = 800
    c.quadratic_start = (-4.0, 1.5)
    c.quadratic_sgd_noise = 0.5
    c.trajectory_steps_shown = 60
    c.rosenbrock_steps = 3000
    c.rosenbrock_start = (-1.2, 1.0)
    c.rosenbrock_learning_rates = ml_collections.ConfigDict(
        dict(gd=1e-3, sgd=1e-3, momentum=1e-3, rmsprop=2e-3, adam=2e-2))
    c.quadratic_adaptive_learning_rate = 0.05
    # MNIST-1D.
    c.dataset = "mnist1d"
    c.widths = (100, 100)
    c.seeds = 5
    c.epochs = 30
    c.batch_size = 100
    c.learning_rates = ml_collections.ConfigDict(
        dict(sgd=0.1, momentum=0.02, nesterov=0.02, rmsprop=1e-3, adam=1e-3))
    if size == "quick":
        c.quadratic_steps = 200
        c.rosenbrock_steps = 300
        c.seeds = 2
        c.epochs = 2
        c.widths = (32,)
        c.learning_rates = ml_collections.ConfigDict(dict(sgd=0.1, adam=1e-3))
    elif size == "full":
        c.quadratic_steps = 2000
        c.rosenbrock_steps = 10000
        c.seeds = 10
        c.epochs = 200
    return c


def _validate(config):
    common.require(config.condition_number >= 1, "condition_number", "a number >= 1", config.condition_number)
    for field in ("quadratic_steps", "rosenbrock_steps", "seeds", "epochs", "batch_size", "trajectory_steps_shown"):
        common.require(int(config[field]) > 0, field, "a positive integer", config[field])
    for group in ("learning_rates", "rosenbrock_learning_rates"):
        for name, lr in config[group].items():
            common.require(lr > 0, f"{group}.{name}", "a positive learning rate", lr)


# ----------------------------------------------------------------------------- test functions


def quadratic(w, condition_number):
    """0.5 (w1^2 + kappa w2^2): curvatures mu = 1 and L = kappa."""
    return 0.5 * (w[..., 0] ** 2 + condition_number * w[..., 1] ** 2)


def rosenbrock(w):
    """(1 - x)^2 + 100 (y - x^2)^2, minimum 0 at (1, 1)."""
    return (1.0 - w[..., 0]) ** 2 + 100.0 * (w[..., 1] - w[..., 0] ** 2) ** 2


def polyak_settings(condition_number):
    """Optimal constant step sizes for f with curvatures in [1, kappa].

    GD: eta = 2 / (L + mu), rate (kappa - 1) / (kappa + 1).
    Heavy ball: eta = 4 / (sqrt(L) + sqrt(mu))^2, beta = ((sqrt(kappa) - 1) / (sqrt(kappa) + 1))^2.
    """
    k = condition_number
    root = math.sqrt(k)
    return {
        "gd_learning_rate": 2.0 / (k + 1.0),
        "gd_rate": (k - 1.0) / (k + 1.0),
        "momentum_learning_rate": 4.0 / (root + 1.0) ** 2,
        "momentum_beta": ((root - 1.0) / (root + 1.0)) ** 2,
        "momentum_rate": (root - 1.0) / (root + 1.0),
    }


def run_trajectories(loss_fn, start, optimizers: dict, steps: int, key, sgd_noise: float = 0.0):
    """Iterates of each optimizer from ``start``, all in one compiled program.

    Returns ``{name: path_Tx2}`` with T = steps + 1 (the start included). The ``sgd``
    entry sees the gradient plus Gaussian noise of standard deviation ``sgd_noise``.
    """
    grad_fn = jax.grad(loss_fn)

    @jax.jit
    def all_paths(start, key):
        paths = {}
        for name, tx in optimizers.items():
            noise = sgd_noise if name == "sgd" else 0.0

            def step(carry, step_key, tx=tx, noise=noise):
                w, opt_state = carry
                g = grad_fn(w) + noise * jax.random.normal(step_key, w.shape)
                updates, opt_state = tx.update(g, opt_state, w)
                w = optax.apply_updates(w, updates)
                return (w, opt_state), w

            _, path = jax.lax.scan(step, (start, tx.init(start)), jax.random.split(key, steps))
            paths[name] = jnp.concatenate([start[None], path])
        return paths

    return {k: np.asarray(v) for k, v in all_paths(jnp.asarray(start, jnp.float32), key).items()}


def steps_to_tolerance(values, tolerance):
    """First index where ``values <= tolerance``, or ``len(values)`` if never."""
    below = np.nonzero(np.asarray(values) <= tolerance)[0]
    return int(below[0]) if below.size else len(values)


# ----------------------------------------------------------------------------- run


def quadratic_phase(config, key, run_dir):
    """Every optimizer on the badly conditioned quadratic, GD and heavy ball at Polyak's
    settings: ``(numbers, arrays, figures, table)``."""
    kappa = float(config.condition_number)
    polyak = polyak_settings(kappa)
    adaptive_lr = config.quadratic_adaptive_learning_rate
    optimizers = {
        "gd": optax.sgd(polyak["gd_learning_rate"]),
        "sgd": optax.sgd(polyak["gd_learning_rate"]),
        "momentum": optax.sgd(polyak["momentum_learning_rate"], momentum=polyak["momentum_beta"]),
        "rmsprop": optim.get_optimizer("rmsprop", adaptive_lr),
        "adam": optim.get_optimizer("adam", adaptive_lr),
    }
    loss_fn = lambda w: quadratic(w, kappa)
    paths = run_trajectories(loss_fn, config.quadratic_start, optimizers, config.quadratic_steps, key,
                             config.quadratic_sgd_noise)
    start_norm = float(np.linalg.norm(config.quadratic_start))
    rel_error = {k: np.linalg.norm(p, axis=-1) / start_norm for k, p in paths.items()}
    tolerance = 1e-4
    steps = {k: steps_to_tolerance(e, tolerance) for k, e in rel_error.items()}
    gd_tail = rel_error["gd"][1:60]
    table = common.format_table(
        ["optimizer", f"steps to |w|/|w0| <= {tolerance:g}", "final loss"],
        [[k, steps[k] if steps[k] <= config.quadratic_steps else "not reached", float(loss_fn(paths[k][-1]))]
         for k in paths], float_format="{:.3g}")
    shown = {k: p[:config.trajectory_steps_shown + 1] for k, p in paths.items()}
    trajectories = run_dir.figure_path("quadratic_trajectories")
    plot.trajectories_2d(lambda x, y: 0.5 * (x**2 + kappa * y**2), shown, xlim=(-4.5, 1.5), ylim=(-4, 4),
                         title=f"quadratic, condition number {kappa:g}: first {config.trajectory_steps_shown} steps",
                         path=trajectories)
    convergence = _save_curves({k: (np.arange(len(e)), np.maximum(e, 1e-12)) for k, e in rel_error.items()},
                               "step", "|w_t| / |w_0|", "quadratic: distance to the minimum", True,
                               run_dir.figure_path("quadratic_convergence"))
    numbers = {
        "condition_number": kappa,
        "quadratic_steps": steps,
        "max_steps": int(config.quadratic_steps),
        "measured_gd_rate": float(np.exp(np.mean(np.diff(np.log(gd_tail))))),
        "expected_gd_rate": polyak["gd_rate"],
        "momentum_rate": float(rel_error["momentum"][-1] ** (1.0 / config.quadratic_steps)),
        "expected_momentum_rate": polyak["momentum_rate"],
    }
    arrays = {f"quadratic_path/{k}": p for k, p in paths.items()}
    return numbers, arrays, [trajectories, convergence], table


def rosenbrock_phase(config, key, run_dir):
    """Every optimizer on the Rosenbrock function: ``(numbers, arrays, figures, table)``."""
    optimizers = {name: optim.get_optimizer("gd" if name == "sgd" else name, lr)
                  for name, lr in config.rosenbrock_learning_rates.items()}
    paths = run_trajectories(rosenbrock, config.rosenbrock_start, optimizers, config.rosenbrock_steps, key,
                             sgd_noise=1.0)
    final = {k: float(rosenbrock(p[-1])) for k, p in paths.items()}
    table = common.format_table(
        ["optimizer", "learning rate", "final loss", "distance to (1, 1)"],
        [[k, config.rosenbrock_learning_rates[k], final[k], float(np.linalg.norm(p[-1] - 1.0))]
         for k, p in paths.items()], float_format="{:.3g}")
    path = run_dir.figure_path("rosenbrock_trajectories")
    plot.trajectories_2d(lambda x, y: (1 - x) ** 2 + 100 * (y - x**2) ** 2, paths, xlim=(-2, 2), ylim=(-1, 3),
                         title="Rosenbrock", path=path)
    return {"rosenbrock_final": final}, {f"rosenbrock_path/{k}": p for k, p in paths.items()}, [path], table


def mnist1d_phase(config, run_dir, logger):
    """An MLP on MNIST-1D with each optimizer, its seeds one vmapped fit:
    ``(numbers, arrays, figures, table)``."""
    data = datasets.load(config.dataset)
    model = get_model("mlp", widths=tuple(config.widths), num_outputs=data.num_classes)
    seeds = [config.seed + i for i in range(config.seeds)]
    histories, seconds = {}, {}
    for name, lr in config.learning_rates.items():
        start = time.perf_counter()
        histories[name] = train.fit_seeds(model, data, optim.get_optimizer(name, lr), seeds=seeds,
                                          epochs=config.epochs, batch_size=config.batch_size,
                                          logger=logger.with_tags(run=f"{config.dataset}/{name}")).history
        seconds[name] = time.perf_counter() - start
    epochs = np.arange(1, config.epochs + 1)
    figures = [
        _save_curves({k: (epochs, h["train_loss"].mean(0), h["train_loss"].std(0)) for k, h in histories.items()},
                     "epoch", "train loss", f"MLP on {config.dataset}: mean and std over {config.seeds} seeds",
                     True, run_dir.figure_path("mnist1d_train_loss")),
        _save_curves({k: (epochs, h["test_accuracy"].mean(0), h["test_accuracy"].std(0))
                      for k, h in histories.items()},
                     "epoch", "test accuracy", f"MLP on {config.dataset}: test accuracy", False,
                     run_dir.figure_path("mnist1d_test_accuracy")),
    ]
    final = {k: {m: (float(h[m][:, -1].mean()), float(h[m][:, -1].std())) for m in ("train_loss", "test_accuracy")}
             for k, h in histories.items()}
    table = common.format_table(
        ["optimizer", "learning rate", "final train loss", "final test accuracy", "seconds (all seeds)"],
        [[k, config.learning_rates[k], "{:.4f} +- {:.4f}".format(*final[k]["train_loss"]),
          "{:.3f} +- {:.3f}".format(*final[k]["test_accuracy"]), seconds[k]] for k in histories],
        float_format="{:.3g}")
    arrays = {f"{config.dataset}/{k}/{m}": h[m] for k, h in histories.items() for m in h}
    return {"mnist1d_final": final}, arrays, figures, table


def run(config, run_dir: io.RunDir) -> dict:
    _validate(config)
    quadratic_key, rosenbrock_key = jax.random.split(jax.random.key(config.seed))
    with run_dir.logger() as logger:
        phases = {"quadratic": quadratic_phase(config, quadratic_key, run_dir),
                  "rosenbrock": rosenbrock_phase(config, rosenbrock_key, run_dir),
                  "mnist1d": mnist1d_phase(config, run_dir, logger)}
    run_dir.save_results(**{k: v for numbers, arrays, _, _ in phases.values() for k, v in arrays.items()})
    return {"tables": {name: phase[3] for name, phase in phases.items()},
            "figures": [path for _, _, figures, _ in phases.values() for path in figures],
            **{k: v for numbers, _, _, _ in phases.values() for k, v in numbers.items()}}


def _save_curves(curves, xlabel, ylabel, title, logy, path):
    plot.line_plot(curves, xlabel=xlabel, ylabel=ylabel, title=title, logy=logy, path=path)
    return path


def claims(result: dict) -> list:
    kappa = result["condition_number"]
    steps = result["quadratic_steps"]
    speedup = steps["gd"] / max(steps["momentum"], 1)
    final = result["mnist1d_final"]
    out = [
        common.Claim.check(
            "Polyak 1964 / course", "GD with step 2/(L+mu) contracts the error by (kappa-1)/(kappa+1) per step",
            f"{result['expected_gd_rate']:.4f} +- 0.002", result["measured_gd_rate"],
            lambda r: abs(r - result["expected_gd_rate"]) <= 2e-3, "{:.4f}"),
        common.Claim.check(
            "Polyak 1964", "heavy-ball momentum needs about sqrt(kappa) times fewer steps than GD",
            f">= sqrt(kappa)/2 = {math.sqrt(kappa) / 2:.1f}x", speedup,
            lambda s: s >= math.sqrt(kappa) / 2 and steps["momentum"] < result["max_steps"], "{:.1f}x"),
    ]
    if "adam" in final and "sgd" in final:
        out.append(common.Claim.check(
            "Kingma & Ba 2015", "Adam lowers the training loss of an MLP faster than plain SGD",
            "Adam < SGD (mean over seeds)",
            (final["adam"]["train_loss"][0], final["sgd"]["train_loss"][0]),
            lambda v: v[0] < v[1], "{0[0]:.4f} vs {0[1]:.4f}"))
    return out


def main(argv=None):
    return common.experiment_main(sys.modules[__name__], argv)


if __name__ == "__main__":
    main()
