"""Neural tangent kernels: when does a network behave like its tangent kernel? NTK-parameterised
ReLU MLPs, the seeds drawing the initialisations:
- convergence (Jacot et al. 2018): the empirical NTK at init against the analytic one, each seed's
  log-log slope of the relative error in width (the central-limit -1/2); three NTK methods agree.
- lazy training (Lee et al. 2019, theorem 2.1): GD on the MSE below the critical rate; relative
  change of the weights and of the NTK, and the gap to the linearised network trained alike, each
  seed's slope in width against the theorem's -1/2.
- circle (Jacot et al. 2018, figure 2 in small): depth-4 networks trained on four points of the
  unit circle against their own kernel-regime trajectories: the gap's exponent in width.
- regression (Lee et al. 2019; Arora et al. 2019): on ``digits``, the network trained with its
  initial function subtracted against the NTK's prediction at the same training time.
"""
from __future__ import annotations


import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from experiments import framework as fw
from jaxdl import data as datasets, plot, train
from jaxdl.analysis import ntk
from jaxdl.core import compiled, fits, tree
from jaxdl.models import get_model

NAME = "ntk"
DESCRIPTION = ("neural tangent kernels: empirical vs analytic NTK against width, lazy training, a depth-4 ReLU "
               "net on the circle vs its infinite-width prediction, kernel regression vs the trained net")
JACOT, LEE = "Jacot, Gabriel & Hongler 2018", "Lee et al. 2019, theorem 2.1"
RATE, RATE_BAND = -0.5, 0.25  # width^-1/2, told apart from no decay (0) and from a 1/width bias (-1)


def get_config() -> ml_collections.ConfigDict:
    """The default size: about two minutes on 2 CPU cores."""
    return ml_collections.ConfigDict(dict(
        seed=0, seeds=5, weight_std=2.0 ** 0.5, bias_std=0.1,  # He scaling: the kernel keeps its size
        convergence=dict(num_inputs=16, input_dim=8, depth=2, widths=(64, 128, 256, 512, 1024, 2048)),
        lazy=dict(num_train=32, num_test=64, input_dim=8, depth=2, widths=(64, 128, 256, 512, 1024), steps=300,
                  critical_fraction=0.5),
        circle=dict(depth=4, widths=(50, 2000), steps=200, critical_fraction=0.5, num_points=100),
        regression=dict(dataset="digits", num_train=256, num_test=360, depth=2, width=512, steps=500,
                        critical_fraction=0.5, tolerance=0.03)))


SIZES = {
    "quick": {"seeds": 2, "convergence.num_inputs": 4, "convergence.widths": (16, 64), "lazy.num_train": 8,
              "lazy.num_test": 8, "lazy.widths": (16, 64), "lazy.steps": 5, "circle.widths": (8, 64), "circle.steps": 5,
              "circle.num_points": 16, "regression.num_train": 32, "regression.num_test": 32, "regression.width": 16,
              "regression.steps": 5},
    "full": {"seeds": 10, "convergence.widths": (64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384),
             "lazy.widths": (64, 128, 256, 512, 1024, 2048, 4096, 8192), "lazy.steps": 1000,
             "circle.widths": (50, 10000), "regression.dataset": "mnist1d", "regression.num_train": 2000,
             "regression.num_test": 1000, "regression.width": 4096, "regression.steps": 5000},
}
FIELDS = {
    "seeds": fw.expect(lambda v: isinstance(v, int) and v >= 2, "an integer >= 2 (a standard error needs two)"),
    "weight_std": fw.positive, "bias_std": fw.non_negative, "regression.width": fw.positive_int,
    "convergence.widths": (fw.positive_ints, fw.increasing), "lazy.widths": (fw.positive_ints, fw.increasing),
    "circle.widths": fw.expect(lambda v: len(v) == 2 and 0 < v[0] < v[1], "a narrow and a wider width"),
    "*.depth": fw.positive_int, "*.steps": fw.positive_int, "regression.tolerance": fw.positive,
    "*.critical_fraction": fw.expect(lambda v: 0 < v < 1, "a number in (0, 1)"),
}


def _network(config, depth, width, x, offset, num_outputs=1):
    """``apply_fn`` and each seed's initial parameters on a leading axis K (keys seed + offset, so
    each phase draws its own), drawn eagerly: a vmapped init compiles for longer than it runs."""
    model = get_model("mlp", widths=(int(width),) * int(depth), num_outputs=num_outputs, activation="relu",
                      parameterization="ntk", weight_std=config.weight_std, bias_std=config.bias_std)
    inits = [model.init(jax.random.key(seed + offset), x[:1])["params"] for seed in fw.seeds(config)]
    return train.make_apply_fn(model), jax.tree.map(lambda *leaves: jnp.stack(leaves), *inits)


def _kernels(config, x1, x2, depth):
    return ntk.mlp_kernels(x1, x2, depth=int(depth), activation="relu", weight_std=config.weight_std,
                           bias_std=config.bias_std)


def critical_rate(fraction, kernel, y):
    """``fraction`` of the critical rate 2 n / lambda_max(K), n = y.size, of GD on (1/2n)||f - y||^2."""
    return fraction * 2 * y.size / float(jnp.linalg.eigvalsh(kernel)[-1])


def _norm_K(tree_K):
    """The Euclidean norm of each seed's slice of a pytree (or array) with a leading axis K."""
    return np.sqrt(sum(np.sum(np.square(np.asarray(a)).reshape(len(a), -1), axis=1) for a in jax.tree.leaves(tree_K)))


def slopes(widths, values_PxK) -> list:
    """Each seed's least-squares slope of log(value) against log(width)."""
    return fits.loglog_slope(widths, np.asarray(values_PxK).T).tolist()


@compiled.jit(static_argnames=("steps", "mode"))
def train_seeds(apply_fn, params0_K, x, y, learning_rate, x_eval, *, steps, mode="network"):
    """GD on (1 / 2 y.size) ||f - y||^2 from every seed's parameters at once (``vmap``, one compiled
    loop), f the network, its linearisation at the start or the network less its initial function
    (``mode``); returns the trained parameters and f's outputs on ``x_eval`` before and after. A GD
    recurrence on three functions of the same parameters (not a model ``fit`` can take)."""

    def one(params0):
        f = {"network": apply_fn, "linearized": ntk.linearize(apply_fn, params0),
             "centred": lambda p, inputs: apply_fn(p, inputs) - apply_fn(params0, inputs)}[mode]
        grad = jax.grad(lambda p: 0.5 * jnp.mean(jnp.square(f(p, x) - y)))
        params = jax.lax.fori_loop(0, steps, lambda _, p: tree.axpy(-learning_rate, grad(p), p), params0)
        return params, f(params0, x_eval), f(params, x_eval)

    return jax.vmap(one)(params0_K)


def convergence_phase(config, ctx) -> fw.Phase:
    """Relative error of the empirical NTK at init per width and seed; the methods' agreement."""
    cfg = config.convergence
    x = jax.random.normal(jax.random.key(config.seed), (cfg.num_inputs, cfg.input_dim))
    analytic = _kernels(config, x, x, cfg.depth)["ntk"]
    errors_PxK = []
    for width in cfg.widths:
        apply_fn, params_K = _network(config, cfg.depth, width, x, offset=100)
        errors_PxK.append([float(jnp.linalg.norm(ntk.empirical_ntk(apply_fn, train.unstack(params_K, k), x) - analytic)
                                 / jnp.linalg.norm(analytic)) for k in range(config.seeds)])
    apply_fn, params_K = _network(config, cfg.depth, cfg.widths[0], x, offset=0, num_outputs=3)
    kernels = [np.asarray(ntk.empirical_ntk(apply_fn, train.unstack(params_K, 0), x, method=method, trace_axes=()))
               for method in ("jacobian", "ntvp", "structured")]
    agreement = max(float(np.max(np.abs(k - kernels[0])) / np.max(np.abs(kernels[0]))) for k in kernels)
    means = np.mean(errors_PxK, axis=1)
    figure = plot.loglog_panels(
        {"empirical NTK at init vs the infinite-width NTK": {f"mean of {config.seeds} seeds": (cfg.widths, means)}},
        xlabel="width", ylabel="||Theta_width - Theta_inf|| / ||Theta_inf||", title=f"ReLU MLP, depth {cfg.depth}")
    table = fw.format_table(["width", "relative Frobenius error (mean)", "per seed"], [
        [w, m, ", ".join(f"{e:.3g}" for e in row)] for w, m, row in zip(cfg.widths, means, errors_PxK)])
    return fw.Phase(tables={"empirical vs analytic NTK": table}, figures={"ntk_convergence": figure},
                    numbers={"convergence_slopes": slopes(cfg.widths, errors_PxK), "method_agreement": agreement})


def lazy_training_phase(config, ctx) -> fw.Phase:
    """Weight change, kernel change and linearisation gap after training, per width and seed."""
    cfg = config.lazy
    key_x, key_test, key_y = jax.random.split(jax.random.key(config.seed + 1), 3)
    x = jax.random.normal(key_x, (cfg.num_train, cfg.input_dim))
    x_test = jax.random.normal(key_test, (cfg.num_test, cfg.input_dim))
    y = jnp.sin(x @ jax.random.normal(key_y, (cfg.input_dim, 1)))
    rate = critical_rate(cfg.critical_fraction, _kernels(config, x, x, cfg.depth)["ntk"], y)
    measures = {"weight change": [], "kernel change": [], "linearisation gap": []}  # name -> (P, K)
    for width in cfg.widths:
        apply_fn, params0_K = _network(config, cfg.depth, width, x, offset=200)
        trained_K, _, network_K = train_seeds(apply_fn, params0_K, x, y, rate, x_test, steps=cfg.steps)
        _, _, linear_K = train_seeds(apply_fn, params0_K, x, y, rate, x_test, steps=cfg.steps, mode="linearized")
        kernels = [[ntk.empirical_ntk(apply_fn, train.unstack(p, k), x) for p in (params0_K, trained_K)]
                   for k in range(config.seeds)]
        measures["weight change"].append((_norm_K(jax.tree.map(jnp.subtract, trained_K, params0_K))
                                          / _norm_K(params0_K)).tolist())
        measures["kernel change"].append([float(jnp.linalg.norm(k1 - k0) / jnp.linalg.norm(k0)) for k0, k1 in kernels])
        rms_gap = _norm_K(network_K - linear_K) / np.sqrt(network_K[0].size)
        measures["linearisation gap"].append((rms_gap / float(jnp.sqrt(jnp.mean(y ** 2)))).tolist())
    means = {name: np.mean(values, axis=1) for name, values in measures.items()}
    figure = plot.loglog_panels({name: {name: (list(cfg.widths), m)} for name, m in means.items()}, xlabel="width",
                                ylabel="relative size after training", title=f"GD at {cfg.critical_fraction:g} x "
                                f"the critical learning rate, {cfg.steps} steps, mean of {config.seeds} seeds")
    table = fw.format_table(["width"] + [f"{name} (mean)" for name in means],
                            [[w, *(m[i] for m in means.values())] for i, w in enumerate(cfg.widths)])
    return fw.Phase(tables={"lazy training": table}, figures={"lazy_training": figure},
                    numbers={"lazy_slopes": {name: slopes(cfg.widths, v) for name, v in measures.items()}})


def circle_phase(config, ctx) -> fw.Phase:
    """Relative RMS gap of networks trained on four points of the unit circle to their own
    kernel-regime trajectories (analytic NTK, from their initial outputs), per width and seed."""
    cfg = config.circle
    circle = lambda a: jnp.asarray(np.stack([np.cos(a), np.sin(a)], axis=1), jnp.float32)  # noqa: E731
    angles, train_angles = np.linspace(-np.pi, np.pi, cfg.num_points), np.array([-2.0, -0.5, 1.0, 2.5])
    x, x_train = circle(angles), circle(train_angles)
    y_train = jnp.asarray([[-0.4], [0.6], [-0.2], [0.5]], jnp.float32)
    kernels, cross = (_kernels(config, x1, x_train, cfg.depth)["ntk"] for x1 in (x_train, x))
    # Below the critical rate GD stays in the kernel regime (no catapult); flow time = rate x steps.
    learning_rate = critical_rate(cfg.critical_fraction, kernels, y_train)
    time = learning_rate * cfg.steps
    own = jax.jit(jax.vmap(lambda f_train, f_test: ntk.gradient_descent_mse_predictions(
        kernels, cross, y_train, time, initial_train=f_train, initial_test=f_test)))
    panels, gaps = {}, []
    for width in cfg.widths:
        apply_fn, params0_K = _network(config, cfg.depth, width, x, offset=300)
        _, initial, final = train_seeds(apply_fn, params0_K, x_train, y_train, learning_rate,
                                        jnp.concatenate([x, x_train]), steps=cfg.steps)
        predicted = own(initial[:, len(x):], initial[:, :len(x)])
        gaps.append((_norm_K(final[:, :len(x)] - predicted) / _norm_K(predicted)).tolist())
        panels[f"width {width}, {config.seeds} seeds"] = {"at initialisation": np.asarray(initial[:, :len(x), 0]),
                                                          "after training": np.asarray(final[:, :len(x), 0])}
    mean = ntk.gradient_descent_mse_predictions(kernels, cross, y_train, time)
    figure = plot.function_ensembles(
        angles, panels, reference=("infinite width, mean after training", np.asarray(mean[:, 0])),
        points=(train_angles, np.asarray(y_train[:, 0])), xlabel="angle of x on the unit circle", ylabel="f(x)",
        title=f"depth-{cfg.depth} ReLU networks (NTK parameterisation) trained by GD on 4 points "
              "(Jacot et al. 2018, figure in small)")
    table = fw.format_table(["width", "relative RMS gap to its kernel-regime prediction (mean)", "per seed"],
                            [[w, np.mean(g), ", ".join(f"{e:.3g}" for e in g)] for w, g in zip(cfg.widths, gaps)])
    exponents = fits.loglog_slope(cfg.widths[:2], np.asarray(gaps)[:2].T)
    return fw.Phase(tables={"circle": table}, figures={"circle": figure}, numbers={"circle_exponents": exponents})


def regression_phase(config, ctx) -> fw.Phase:
    """Test accuracy of the NTK's prediction at the networks' training time, of NNGP regression
    (t = infinity), and of each seed's network trained with and without its initial function."""
    cfg = config.regression
    data = datasets.load(cfg.dataset)
    x, x_test = (jnp.asarray(a.reshape(len(a), -1)) for a in (data.x_train[:cfg.num_train], data.x_test[:cfg.num_test]))
    y = jax.nn.one_hot(data.y_train[:cfg.num_train], data.num_classes)
    accuracy = lambda f: np.mean(np.asarray(f).argmax(-1) == data.y_test[:cfg.num_test], axis=-1)  # noqa: E731
    train_kernels, test_kernels = _kernels(config, x, x, cfg.depth), _kernels(config, x_test, x, cfg.depth)
    learning_rate = critical_rate(cfg.critical_fraction, train_kernels["ntk"], y)
    out = {"NTK prediction at the same time": [float(accuracy(ntk.gradient_descent_mse_predictions(
               train_kernels["ntk"], test_kernels["ntk"], y, learning_rate * cfg.steps)))],
           "NNGP regression (t = infinity)": [float(accuracy(ntk.gradient_descent_mse_predictions(
               train_kernels["nngp"], test_kernels["nngp"], y, diag_reg=1e-3)))]}
    apply_fn, params0_K = _network(config, cfg.depth, cfg.width, x, offset=400, num_outputs=data.num_classes)
    # The kernel predicts the mean over initialisations (f = 0 at t = 0); a network keeps its
    # random initial function on the test points unless trained with it subtracted.
    for label, mode in (("trained network", "network"), ("trained network, initial function subtracted", "centred")):
        out[label] = accuracy(train_seeds(apply_fn, params0_K, x, y, learning_rate, x_test, steps=cfg.steps,
                                          mode=mode)[2]).tolist()
    table = fw.format_table(["predictor", "test accuracy (mean)", "per seed"],
                            [[k, np.mean(v), ", ".join(f"{a:.3f}" for a in v)] for k, v in out.items()],
                            float_format="{:.3f}")
    return fw.Phase(tables={"kernel regression": table}, numbers={"regression": out})


def run(config, ctx) -> None:
    for name, phase in (("convergence", convergence_phase), ("lazy training", lazy_training_phase),
                        ("circle", circle_phase), ("kernel regression", regression_phase)):
        ctx.phase(name, phase, config, ctx)


def claims(config, numbers) -> list:
    n, band = config.seeds, f"exponent in {RATE:g} +- {RATE_BAND:g}: width^-1/2, not no decay (0) nor 1/width (-1)"
    widths = {g: f"widths {config[g].widths[0]}-{config[g].widths[-1]}" for g in ("convergence", "lazy", "circle")}
    regression, cfg = numbers["regression"], config.regression
    kernel = regression["NTK prediction at the same time"][0]
    return [
        fw.Check.at_most("ntk_methods_agree", "Novak et al. 2022", "Jacobian contraction, NTK-vector products and "
                         "structured derivatives agree (largest relative difference, float32)",
                         numbers["method_agreement"], 1e-5, "{:.1e}"),
        fw.Claim.within("empirical_ntk_converges_at_rate_one_half", JACOT, "the empirical NTK at initialisation "
                        f"converges to the analytic NTK: relative Frobenius error over {widths['convergence']}, "
                        f"log-log slope of each of {n} seeds, {band}", numbers["convergence_slopes"], target=RATE,
                        tolerance=RATE_BAND, fmt="{:.3f}"),
        *(fw.Claim.mean(f"lazy_{name.replace(' ', '_')}_falls_as_fast_as_rate_one_half", LEE, f"training is lazy: the "
                        f"{name} after training falls at least as fast as the theorem's width^-1/2 (log-log slope over "
                        f"{widths['lazy']}, each of {n} seeds)", values, below=RATE, fmt="{:.3f}")
          for name, values in numbers["lazy_slopes"].items()),
        fw.Claim.within("circle_follows_kernel_regime_at_rate_one_half", f"{JACOT}, figure 2; {LEE}", "the trained "
                        "networks approach their own infinite-width kernel-regime trajectories: relative RMS gap from "
                        f"{widths['circle']} (seed k at both, {n} seeds), {band}", numbers["circle_exponents"],
                        target=RATE, tolerance=RATE_BAND, fmt="{:.3f}"),
        fw.Claim.within("centred_network_matches_ntk_prediction", "Lee et al. 2019; Arora et al. 2019", "a network of "
                        f"width {cfg.width} trained by GD with its initial function subtracted reaches the test "
                        f"accuracy of the NTK's prediction at the same time ({kernel:.3f}; the network as it is: "
                        f"{np.mean(regression['trained network']):.3f}): difference over {n} seeds",
                        np.subtract(regression["trained network, initial function subtracted"], kernel), target=0.0,
                        tolerance=cfg.tolerance, fmt="{:.3f}")]


main = fw.entry_point(__name__)


if __name__ == "__main__":
    main()
