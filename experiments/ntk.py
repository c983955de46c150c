"""Neural tangent kernels: when does a network behave like its tangent kernel, and how far are
the networks we train from that?

Four phases, each a function the tests can call:

- ``convergence_phase`` (Jacot et al. 2018): the empirical NTK of NTK-parameterised ReLU MLPs
  at initialisation against the analytic infinite-width NTK, relative Frobenius error against
  width over seeds, with its fitted log-log slope (-1/2 expected); the three methods of
  :func:`jaxdl.ntk.empirical_ntk` compared on one network.
- ``lazy_training_phase`` (Lee et al. 2019): full-batch gradient descent on the MSE at a fixed
  fraction of the critical learning rate 2 n / lambda_max(NTK); the relative change of the
  weights and of the empirical NTK, and the RMS gap between the network and its linearisation
  trained the same way, each against width with its slope.
- ``circle_phase`` (Jacot et al. 2018, figure 2 in small): a depth-4 ReLU network on the unit
  circle, trained by GD at half the critical rate on four points, for a narrow and a wide width
  over seeds, beside the infinite-width predictions (the ensemble mean, and each network's own
  kernel-regime trajectory from its initial outputs, with the analytic NTK).
- ``regression_phase``: kernel regression with the analytic NTK and NNGP against the trained
  finite network on a ``digits`` subset (MSE on one-hot targets): test accuracy of each, and of
  the network trained with its initial function subtracted, which the kernel predicts (the
  kernel's prediction is the mean over initialisations).
"""
from __future__ import annotations

import sys

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from experiments import common
from jaxdl import compiled, io, ntk, plot, train, tree
from jaxdl import data as datasets
from jaxdl.models import get_model


NAME = "ntk"
DESCRIPTION = ("neural tangent kernels: empirical vs analytic NTK against width, lazy training, a depth-4 ReLU "
               "net on the circle vs its infinite-width prediction, kernel regression vs the trained net")


def get_config(size: str = "default") -> ml_collections.ConfigDict:
    """Sizes: ``quick`` (seconds, tests); ``default`` (about two minutes on 2 CPU cores);
    ``full`` (wider nets, more data and seeds, for a GPU or TPU)."""
    common.check_size(size)
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.seeds = 3
    c.weight_std = 2.0 ** 0.5  # He scaling for ReLU: the kernel keeps its size through the layers
    c.bias_std = 0.1
    c.convergence = ml_collections.ConfigDict(dict(
        num_inputs=16, input_dim=8, depth=2, widths=(64, 128, 256, 512, 1024, 2048, 4096)))
    c.lazy = ml_collections.ConfigDict(dict(
        num_train=32, num_test=64, input_dim=8, depth=2, widths=(64, 128, 256, 512, 1024), steps=300,
        critical_fraction=0.5))
    c.circle = ml_collections.ConfigDict(dict(depth=4, widths=(50, 2000), seeds=5, steps=200, critical_fraction=0.5,
                                              num_points=100, tolerance=0.1))
    c.regression = ml_collections.ConfigDict(dict(dataset="digits", num_train=256, num_test=360, depth=2, width=512,
                                                  steps=2000, diag_reg=1e-3, tolerance=0.03))
    if size == "quick":
        c.seeds = 2
        c.convergence.update(num_inputs=4, widths=(16, 64))
        c.lazy.update(num_train=8, num_test=8, widths=(16, 64), steps=5)
        c.circle.update(widths=(8, 64), seeds=2, steps=5, num_points=16)
        c.regression.update(num_train=32, num_test=32, width=16, steps=5)
    elif size == "full":
        c.seeds = 10
        c.convergence.widths = (64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384)
        c.lazy.update(widths=(64, 128, 256, 512, 1024, 2048, 4096, 8192), steps=1000)
        c.circle.update(widths=(50, 10000), seeds=10)
        c.regression.update(dataset="mnist1d", num_train=2000, num_test=1000, width=4096, steps=10000)
    return c


def _validate(config):
    common.require(int(config.seeds) > 0, "seeds", "a positive integer", config.seeds)
    for group in ("convergence", "lazy"):
        common.require(len(config[group].widths) >= 2 and all(w > 0 for w in config[group].widths),
                       f"{group}.widths", "at least two positive widths", config[group].widths)
    common.require(len(config.circle.widths) == 2, "circle.widths", "a narrow and a wide width", config.circle.widths)
    for group in ("lazy", "circle"):
        common.require(0 < config[group].critical_fraction < 1, f"{group}.critical_fraction", "a number in (0, 1)",
                       config[group].critical_fraction)
    for group in ("circle", "regression"):
        common.require(config[group].tolerance > 0, f"{group}.tolerance", "a positive number", config[group].tolerance)
    common.require(config.regression.diag_reg >= 0, "regression.diag_reg", "a number >= 0", config.regression.diag_reg)


def _mlp(config, depth, width, num_outputs=1):
    return get_model("mlp", widths=(int(width),) * int(depth), num_outputs=num_outputs, activation="relu",
                     parameterization="ntk", weight_std=config.weight_std, bias_std=config.bias_std)


def _networks(config, depth, widths, x, seed_offset):
    """``(width, apply_fn, params of each seed)`` for each width, the parameters drawn one at a
    time (wide networks of every seed need not fit in memory together)."""
    for width in widths:
        model = _mlp(config, depth, width)
        keys = [jax.random.key(config.seed + seed_offset + seed) for seed in range(config.seeds)]
        yield int(width), train.make_apply_fn(model), (model.init(key, x[:1])["params"] for key in keys)


def _analytic(config, x1, x2, depth):
    return ntk.mlp_kernels(x1, x2, depth=int(depth), activation="relu", weight_std=config.weight_std,
                           bias_std=config.bias_std)


def slope(widths, values) -> float:
    """Least-squares slope of log(value) against log(width)."""
    return float(np.polyfit(np.log(np.asarray(widths, np.float64)), np.log(np.asarray(values, np.float64)), 1)[0])


# ----------------------------------------------------------------------------- phases


def convergence_phase(config, run_dir) -> dict:
    """Relative Frobenius error of the empirical NTK at init against the analytic one, per width
    (mean over seeds), and the agreement of the three methods on the narrowest network."""
    cfg = config.convergence
    x = jax.random.normal(jax.random.key(config.seed), (cfg.num_inputs, cfg.input_dim))
    analytic = _analytic(config, x, x, cfg.depth)["ntk"]
    errors = {}
    for width, apply_fn, inits in _networks(config, cfg.depth, cfg.widths, x, seed_offset=100):
        errors[width] = [float(jnp.linalg.norm(ntk.empirical_ntk(apply_fn, params, x) - analytic)
                               / jnp.linalg.norm(analytic)) for params in inits]
    model = _mlp(config, cfg.depth, cfg.widths[0], num_outputs=3)
    params = model.init(jax.random.key(config.seed), x[:1])["params"]
    kernels = {method: np.asarray(ntk.empirical_ntk(train.make_apply_fn(model), params, x, method=method,
                                                    trace_axes=()))
               for method in ("jacobian", "ntvp", "structured")}
    agreement = max(float(np.max(np.abs(k - kernels["jacobian"])) / np.max(np.abs(kernels["jacobian"])))
                    for k in kernels.values())
    widths = list(errors)
    means = [float(np.mean(v)) for v in errors.values()]
    path = run_dir.figure_path("ntk_convergence")
    plot.loglog_panels({"empirical NTK at initialisation vs the infinite-width NTK": {
        f"relative Frobenius error (mean of {config.seeds} seeds)": (widths, means)}},
        xlabel="width", ylabel="||Theta_width - Theta_inf|| / ||Theta_inf||",
        title=f"ReLU MLP, depth {cfg.depth}, NTK parameterisation, {cfg.num_inputs} inputs", path=path)
    return {"errors": errors, "slope": slope(widths, means), "method_agreement": agreement, "figures": [path]}


@compiled.jit(static_argnames=("steps",))
def gradient_descent_mse(apply_fn, params, x, y, learning_rate, *, steps):
    """``steps`` steps of full-batch gradient descent on (1 / 2 y.size) ||f - y||^2, one
    compiled loop (for a network and for its linearisation alike)."""
    loss = lambda p: 0.5 * jnp.mean(jnp.square(apply_fn(p, x) - y))

    def step(_, p):
        return jax.tree.map(lambda a, g: a - learning_rate * g, p, jax.grad(loss)(p))

    return jax.lax.fori_loop(0, steps, step, params)


def lazy_training_phase(config, run_dir) -> dict:
    """Weight change, kernel change and linearisation gap after training, per width."""
    cfg = config.lazy
    key_x, key_test, key_y = jax.random.split(jax.random.key(config.seed + 1), 3)
    x = jax.random.normal(key_x, (cfg.num_train, cfg.input_dim))
    x_test = jax.random.normal(key_test, (cfg.num_test, cfg.input_dim))
    y = jnp.sin(x @ jax.random.normal(key_y, (cfg.input_dim, 1)))
    kernel = _analytic(config, x, x, cfg.depth)["ntk"]
    critical = 2 * y.size / float(jnp.linalg.eigvalsh(kernel)[-1])  # GD on the MSE is stable below it
    learning_rate = cfg.critical_fraction * critical
    measures = {"weight change": {}, "kernel change": {}, "linearisation gap": {}}
    for width, apply_fn, inits in _networks(config, cfg.depth, cfg.widths, x, seed_offset=200):
        rows = []
        for params0 in inits:
            trained = gradient_descent_mse(apply_fn, params0, x, y, learning_rate, steps=cfg.steps)
            linear = ntk.linearize(apply_fn, params0)
            trained_linear = gradient_descent_mse(linear, params0, x, y, learning_rate, steps=cfg.steps)
            k0, k1 = ntk.empirical_ntk(apply_fn, params0, x), ntk.empirical_ntk(apply_fn, trained, x)
            gap = apply_fn(trained, x_test) - linear(trained_linear, x_test)
            rows.append((float(tree.norm(tree.subtract(trained, params0)) / tree.norm(params0)),
                         float(jnp.linalg.norm(k1 - k0) / jnp.linalg.norm(k0)),
                         float(jnp.sqrt(jnp.mean(jnp.square(gap))) / jnp.sqrt(jnp.mean(jnp.square(y))))))
        for name, values in zip(measures, zip(*rows)):
            measures[name][int(width)] = float(np.mean(values))
    path = run_dir.figure_path("lazy_training")
    plot.loglog_panels({name: {name: (list(v), list(v.values()))} for name, v in measures.items()},
                       xlabel="width", ylabel="relative size after training",
                       title=f"GD at {cfg.critical_fraction:g} x the critical learning rate, {cfg.steps} steps",
                       path=path)
    return {"measures": measures, "slopes": {name: slope(list(v), list(v.values())) for name, v in measures.items()},
            "learning_rate": learning_rate, "critical_learning_rate": critical, "figures": [path]}


def circle_phase(config, run_dir) -> dict:
    """Depth-4 ReLU networks on the unit circle trained on four points, against the infinite-
    width predictions; the error of the wide ones against their own kernel-regime trajectory."""
    cfg = config.circle
    angles = np.linspace(-np.pi, np.pi, cfg.num_points)
    x = jnp.asarray(np.stack([np.cos(angles), np.sin(angles)], axis=1), jnp.float32)
    train_angles = np.array([-2.0, -0.5, 1.0, 2.5])
    x_train = jnp.asarray(np.stack([np.cos(train_angles), np.sin(train_angles)], axis=1), jnp.float32)
    y_train = jnp.asarray([[-0.4], [0.6], [-0.2], [0.5]], jnp.float32)
    kernels = _analytic(config, x_train, x_train, cfg.depth)["ntk"]
    cross = _analytic(config, x, x_train, cfg.depth)["ntk"]
    # Below the critical rate 2 n / lambda_max GD stays in the kernel regime (no catapult);
    # the run lasts long enough to converge, and flow time = rate x steps.
    learning_rate = cfg.critical_fraction * 2 * y_train.size / float(jnp.linalg.eigvalsh(kernels)[-1])
    time = learning_rate * cfg.steps
    mean_prediction = ntk.gradient_descent_mse_predictions(kernels, cross, y_train, time)
    panels, errors = {}, {}
    for width in cfg.widths:
        model = _mlp(config, cfg.depth, width)
        apply_fn = train.make_apply_fn(model)
        errors[int(width)], initial, final = [], [], []
        for seed in range(cfg.seeds):
            params0 = model.init(jax.random.key(config.seed + 300 + seed), x[:1])["params"]
            trained = gradient_descent_mse(apply_fn, params0, x_train, y_train, learning_rate, steps=cfg.steps)
            own = ntk.gradient_descent_mse_predictions(kernels, cross, y_train, time,
                                                       initial_train=apply_fn(params0, x_train),
                                                       initial_test=apply_fn(params0, x))
            outputs = apply_fn(trained, x)
            errors[int(width)].append(float(jnp.sqrt(jnp.mean(jnp.square(outputs - own)))
                                            / jnp.sqrt(jnp.mean(jnp.square(own)))))
            initial.append(np.asarray(apply_fn(params0, x)[:, 0]))
            final.append(np.asarray(outputs[:, 0]))
        panels[f"width {width}, {cfg.seeds} seeds"] = {"at initialisation": np.stack(initial),
                                                       "after training": np.stack(final)}
    path = run_dir.figure_path("circle")
    plot.function_ensembles(angles, panels, reference=("infinite width, mean after training",
                                                       np.asarray(mean_prediction[:, 0])),
                            points=(train_angles, np.asarray(y_train[:, 0])), xlabel="angle of x on the unit circle",
                            ylabel="f(x)", title=f"depth-{cfg.depth} ReLU networks (NTK parameterisation) trained by "
                            f"GD on 4 points (Jacot et al. 2018, figure in small)", path=path)
    return {"errors": errors, "figures": [path], "wide_error": float(np.mean(errors[int(cfg.widths[-1])])),
            "narrow_error": float(np.mean(errors[int(cfg.widths[0])]))}


def regression_phase(config) -> dict:
    """Test accuracy of NTK and NNGP kernel regression (t = infinity) and of the trained network,
    as it is and with its initial function subtracted."""
    cfg = config.regression
    data = datasets.load(cfg.dataset)
    x = jnp.asarray(data.x_train[:cfg.num_train].reshape(cfg.num_train, -1))
    x_test = jnp.asarray(data.x_test[:cfg.num_test].reshape(min(cfg.num_test, len(data.x_test)), -1))
    y = jax.nn.one_hot(data.y_train[:cfg.num_train], data.num_classes)
    labels = np.asarray(data.y_test[:cfg.num_test])
    accuracy = lambda outputs: float(np.mean(np.asarray(outputs).argmax(-1) == labels))
    train_kernels, test_kernels = _analytic(config, x, x, cfg.depth), _analytic(config, x_test, x, cfg.depth)
    out = {name: accuracy(ntk.gradient_descent_mse_predictions(train_kernels[name], test_kernels[name], y,
                                                               diag_reg=cfg.diag_reg))
           for name in ("ntk", "nngp")}
    model = _mlp(config, cfg.depth, cfg.width, num_outputs=data.num_classes)
    apply_fn = train.make_apply_fn(model)
    params0 = model.init(jax.random.key(config.seed), x[:1])["params"]
    learning_rate = 0.5 * 2 * y.size / float(jnp.linalg.eigvalsh(train_kernels["ntk"])[-1])
    trained = gradient_descent_mse(apply_fn, params0, x, y, learning_rate, steps=cfg.steps)
    out["trained network"] = accuracy(apply_fn(trained, x_test))
    # The kernel predictions are the mean over initialisations (f = 0 at t = 0); one network
    # keeps its random initial function, a Gaussian-process draw the training leaves on the
    # test points. Trained with that function subtracted, it follows the kernel.
    centred_fn = jax.tree_util.Partial(_centred, apply_fn, params0)
    trained = gradient_descent_mse(centred_fn, params0, x, y, learning_rate, steps=cfg.steps)
    out["trained network, initial function subtracted"] = accuracy(centred_fn(trained, x_test))
    return out


def _centred(apply_fn, params0, params, x):
    """f(params, x) - f(params0, x): the network with its initial function subtracted."""
    return apply_fn(params, x) - apply_fn(params0, x)


def run(config, run_dir: io.RunDir) -> dict:
    _validate(config)
    timed = common.PhaseTimer()
    convergence = timed("convergence", convergence_phase, config, run_dir)
    lazy = timed("lazy training", lazy_training_phase, config, run_dir)
    circle = timed("circle", circle_phase, config, run_dir)
    regression = timed("kernel regression", regression_phase, config)
    tables = {
        "empirical vs analytic NTK": common.format_table(
            ["width", "relative Frobenius error (mean)", "per seed"],
            [[w, float(np.mean(v)), ", ".join(f"{e:.3g}" for e in v)] for w, v in convergence["errors"].items()],
            float_format="{:.4g}"),
        "lazy training": common.format_table(
            ["width"] + list(lazy["measures"]),
            [[w] + [lazy["measures"][name][w] for name in lazy["measures"]] for w in config.lazy.widths],
            float_format="{:.4g}"),
        "circle": common.format_table(
            ["width", "relative RMS gap to its kernel-regime prediction (mean)", "per seed"],
            [[w, float(np.mean(v)), ", ".join(f"{e:.3g}" for e in v)] for w, v in circle["errors"].items()],
            float_format="{:.4g}"),
        "kernel regression": common.format_table(["predictor", "test accuracy"], list(regression.items()),
                                                 float_format="{:.3f}"),
        "seconds per phase": timed.table(),
    }
    return {"tables": tables, "figures": convergence["figures"] + lazy["figures"] + circle["figures"],
            "convergence_slope": convergence["slope"], "method_agreement": convergence["method_agreement"],
            "lazy_slopes": lazy["slopes"], "wide_error": circle["wide_error"], "narrow_error": circle["narrow_error"],
            "circle_tolerance": float(config.circle.tolerance), "regression": regression,
            "regression_tolerance": float(config.regression.tolerance)}


def claims(result: dict) -> list:
    out = [common.Claim.check(
        "Jacot et al. 2018", "the empirical NTK at initialisation converges to the analytic NTK as the width grows "
        "(log-log slope of the relative error)", "-0.5 +- 0.15", result["convergence_slope"],
        lambda s: abs(s + 0.5) <= 0.15, "{:.3f}")]
    for name, value in result["lazy_slopes"].items():
        out.append(common.Claim.at_most(
            "Lee et al. 2019", f"training is lazier as the width grows: the {name} falls with width (log-log slope)",
            value, -0.35, "{:.3f}"))
    out.append(common.Claim.at_most(
        "Jacot et al. 2018", "the wide network's trained outputs follow its infinite-width kernel-regime prediction "
        f"(relative RMS gap, the narrow one's: {result['narrow_error']:.3g})", result["wide_error"],
        result["circle_tolerance"], "{:.3g}"))
    out.append(common.Claim.at_most(
        "Novak et al. 2022", "Jacobian contraction, NTK-vector products and structured derivatives agree (largest "
        "relative difference, float32)", result["method_agreement"], 1e-5, "{:.1e}"))
    regression = result["regression"]
    out.append(common.Claim.at_most(
        "Lee et al. 2019; Arora et al. 2019", "a wide network trained by GD with its initial function subtracted "
        f"reaches the test accuracy of NTK kernel regression ({regression['ntk']:.3f}; uncentred: "
        f"{regression['trained network']:.3f}), absolute difference",
        abs(regression["trained network, initial function subtracted"] - regression["ntk"]),
        result["regression_tolerance"], "{:.3f}"))
    return out


def main(argv=None):
    return common.experiment_main(sys.modules[__name__], argv)


if __name__ == "__main__":
    main()
