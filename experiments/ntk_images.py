"""Infinite-width kernels of convolutional networks, on signals and images: ``jaxdl.analysis.ntk``'s
layer algebra put to Arora et al. 2019's and Lee et al. 2020's questions.

Every network is ``depth`` convolutions of 3 (or 3 x 3) taps with ReLU, the first with stride
``first_stride``, then global average pooling (GAP) or flattening and a dense read-out, in the NTK
parameterisation; the fully connected NTK has as many dense ReLU layers.

- convergence (Jacot et al. 2018, for a CNN): the empirical NTK at initialisation of the CNN-GAP's
  finite twin (``net.module()``) against its CNTK on ``num_inputs`` digits, each seed's log-log slope
  of the relative Frobenius error in width; the central limit gives -1/2.
- Arora et al. 2019 (their table 1: on CIFAR-10 the CNTK with global average pooling, CNTK-GAP,
  is well ahead of the one without, CNTK-V, at every depth; convolutional kernels ahead of fully
  connected ones on images): kernel regression (the NTK's t = infinity prediction) on ``num_train`` random
  training examples, ``seeds`` random subsets, every kernel on the same subsets (paired), on MNIST-1D
  (40-sample signals shifted at random, 1-D convolutions) and digits (centred 8 x 8 images, 2-D
  convolutions). Negative control: the positions of every MNIST-1D signal permuted by one fixed
  permutation, which removes the locality the convolution assumes; the fully connected NTK cannot
  see the permutation (a check) and the CNTK-GAP's advantage over it should vanish.
- Lee et al. 2020 (finite versus infinite): centred finite CNN-GAPs (the network less its initial
  function) trained by full-batch GD on the MSE, ``ensemble`` of them averaged per seed: the
  ensemble's test accuracy approaches the accuracy of the kernel's prediction at the same time as
  width grows (the gap at the wider width smaller, paired by seed and subset).
- calibration: the NNGP posterior standard deviation (the uncertainty of the infinite Bayesian
  ensemble) is larger on the test points its mean misclassifies than on those it gets right, per
  subset, on each data set.

Default size about two and a half minutes on 2 cores; ``--size full`` 1000 training examples, depth 4
and widths to 1024 (a GPU).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from experiments import framework as fw
from experiments.ntk import critical_rate, slopes
from jaxdl import data as datasets, plot, train
from jaxdl.analysis import ntk
from jaxdl.core import compiled

NAME = "ntk_images"
DESCRIPTION = ("infinite-width kernels of CNNs: the empirical NTK's convergence to the CNTK, CNTK-GAP vs flatten vs "
               "fully connected NTK (Arora), centred finite ensembles vs the kernel (Lee 2020), NNGP uncertainty")
JACOT, ARORA, LEE20 = "Jacot, Gabriel & Hongler 2018", "Arora et al. 2019", "Lee et al. 2020"
RATE, RATE_BAND = -0.5, 0.15
GAP, FLATTEN, FC, SHUFFLED = "CNTK-GAP", "CNTK-flatten", "fully connected NTK", "CNTK-GAP, positions shuffled"


def get_config() -> ml_collections.ConfigDict:
    """The default size: 128 training examples per subset, five subsets and seeds."""
    return ml_collections.ConfigDict(dict(
        seed=0, seeds=5, depth=2, first_stride=2, weight_std=1.5, bias_std=0.1, chunk_size=128,
        # Kernel regression: diag_reg x mean(diag) on the training kernel (NTK and NNGP alike).
        num_train=128, num_test=500, datasets=("mnist1d", "digits"), diag_reg=1e-4,
        # The shuffled-positions control, and the advantage over the fully connected NTK it must
        # stay below: a tenth of the CNTK-GAP's advantage on MNIST-1D's validation split (0.50,
        # 256 examples; chosen before the test set was read).
        control="mnist1d", control_margin=0.05,
        convergence=dict(dataset="digits", num_inputs=8, widths=(16, 32, 64, 128, 256)),
        # Widths 4 and 16: a 1-D convolution of 64 channels trains at a third of a second per net
        # and step on this CPU, past the budget for 5 x 4 nets.
        finite=dict(dataset="mnist1d", widths=(4, 16), ensemble=4, steps=300, critical_fraction=0.5)))


SIZES = {
    "quick": {"seeds": 2, "num_train": 16, "num_test": 24, "convergence.num_inputs": 3, "convergence.widths": (4, 8),
              "finite.widths": (2, 4), "finite.ensemble": 2, "finite.steps": 5},
    "full": {"seeds": 10, "num_train": 1000, "num_test": 1000, "depth": 4, "convergence.widths": (16, 64, 256, 1024),
             "finite.widths": (16, 64, 256), "finite.ensemble": 8, "finite.steps": 1000},
}
FIELDS = {
    "seeds": fw.expect(lambda v: isinstance(v, int) and v >= 2, "an integer >= 2 (a standard error needs two)"),
    "depth": fw.positive_int, "first_stride": fw.positive_int, "weight_std": fw.positive, "bias_std": fw.non_negative,
    "chunk_size": fw.positive_int, "num_train": fw.positive_int, "num_test": fw.positive_int,
    "diag_reg": fw.non_negative, "control_margin": fw.positive,
    "datasets": fw.expect(lambda v: len(v) >= 1 and all(d in ("mnist1d", "digits") for d in v),
                          "one or more of 'mnist1d', 'digits'"),
    "control": fw.expect(lambda v, c: v is None or v in c.datasets, "None or one of config.datasets",
                         uses_config=True),
    "convergence.dataset": fw.expect(lambda v: v in ("mnist1d", "digits"), "'mnist1d' or 'digits'"),
    "finite.dataset": fw.expect(lambda v, c: v in c.datasets, "one of config.datasets", uses_config=True),
    "convergence.num_inputs": fw.positive_int, "convergence.widths": (fw.positive_ints, fw.increasing),
    "finite.widths": (fw.positive_ints, fw.increasing), "finite.ensemble": fw.positive_int,
    "finite.steps": fw.positive_int,
    "finite.critical_fraction": fw.expect(lambda v: 0 < v < 1, "a number in (0, 1)"),
}


def cnn(config, spatial_ndim: int, *, readout: str = "gap", width: int = 1, num_outputs: int = 1) -> ntk.Network:
    """``depth`` x (Conv of 3 taps per axis, SAME -> ReLU), the first with stride ``first_stride``,
    then GlobalAvgPool (``readout='gap'``) or Flatten, then Dense(num_outputs). ``width`` matters
    only to the finite twin."""
    def conv(stride):
        return ntk.Conv(width, (3,) * spatial_ndim, (stride,) * spatial_ndim, weight_std=config.weight_std,
                        bias_std=config.bias_std)
    layers = [conv(config.first_stride), ntk.Relu()]
    for _ in range(config.depth - 1):
        layers += [conv(1), ntk.Relu()]
    pool = ntk.GlobalAvgPool() if readout == "gap" else ntk.Flatten()
    return ntk.serial(*layers, pool, ntk.Dense(num_outputs, weight_std=config.weight_std, bias_std=config.bias_std))


def fully_connected(config) -> ntk.Network:
    """Flatten -> ``depth`` x (Dense -> ReLU) -> Dense."""
    dense = lambda: ntk.Dense(1, weight_std=config.weight_std, bias_std=config.bias_std)  # noqa: E731
    layers = [ntk.Flatten()]
    for _ in range(config.depth):
        layers += [dense(), ntk.Relu()]
    return ntk.serial(*layers, dense())


def _images(x) -> np.ndarray:
    """(N, L) signals gain a channel axis: (N, L, 1); images (N, H, W, C) stay."""
    x = np.asarray(x)
    return x[..., None] if x.ndim == 2 else x


def _kernels(config, net, x_pool, x_test) -> dict:
    """Train-train (pool), test-train and test-test kernel dicts."""
    kernels = lambda a, b=None: net.kernels(a, b, chunk_size=config.chunk_size)  # noqa: E731
    return {"pool": kernels(x_pool), "cross": kernels(x_test, x_pool), "test": kernels(x_test)}


def _subset(k: dict, rows) -> tuple[dict, dict, dict]:
    """The kernels of one training subset (``rows`` of the pool)."""
    return ({key: v[np.ix_(rows, rows)] for key, v in k["pool"].items()},
            {key: v[:, rows] for key, v in k["cross"].items()}, k["test"])


def _accuracy(outputs, labels) -> float:
    return float(np.mean(np.asarray(outputs).argmax(-1) == labels))


def _task(config, name):
    """One data set: the pool of every subset's training examples, the subsets' rows in it, the
    test images and labels."""
    data = datasets.load(name)
    rng = np.random.default_rng(config.seed)
    subsets = [rng.choice(data.num_train, config.num_train, replace=False) for _ in fw.seeds(config)]
    pool = np.unique(np.concatenate(subsets))
    return dict(data=data, x_pool=_images(data.x_train[pool]), y_pool=np.asarray(data.y_train[pool]),
                rows=[np.searchsorted(pool, s) for s in subsets], x_test=_images(data.x_test[:config.num_test]),
                y_test=np.asarray(data.y_test[:config.num_test]))


def regression_phase(config, ctx, name) -> fw.Phase:
    """Each kernel's regression accuracy and NNGP posterior standard deviations, per subset."""
    task = _task(config, name)
    data, y_test, spatial_ndim = task["data"], task["y_test"], task["x_pool"].ndim - 2
    nets = {GAP: cnn(config, spatial_ndim), FLATTEN: cnn(config, spatial_ndim, readout="flatten"),
            FC: fully_connected(config)}
    permutation = np.random.default_rng(config.seed + 1).permutation(np.prod(task["x_pool"].shape[1:-1]))
    shuffle = lambda x: x.reshape(len(x), -1, x.shape[-1])[:, permutation].reshape(x.shape)  # noqa: E731
    inputs = {label: (task["x_pool"], task["x_test"]) for label in nets}
    if name == config.control:
        nets[SHUFFLED] = nets[GAP]
        inputs[SHUFFLED] = (shuffle(task["x_pool"]), shuffle(task["x_test"]))
    results, kernels = {}, {}
    for label, net in nets.items():
        kernels[label] = k = _kernels(config, net, *inputs[label])
        out = {"accuracy": [], "std_right": [], "std_wrong": [], "wrong": []}
        for rows in task["rows"]:
            y = np.eye(data.num_classes)[task["y_pool"][rows]]
            mean, _ = ntk.gp_predictions(*_subset(k, rows), y, None, get="ntk", diag_reg=config.diag_reg)
            out["accuracy"].append(_accuracy(mean, y_test))
            mean, cov = ntk.gp_predictions(*_subset(k, rows), y, None, get="nngp", diag_reg=config.diag_reg)
            right = np.asarray(mean).argmax(-1) == y_test
            std = np.sqrt(np.maximum(np.diag(np.asarray(cov)), 0.0))
            out["std_right"].append(float(std[right].mean()) if right.any() else float("nan"))
            out["std_wrong"].append(float(std[~right].mean()) if (~right).any() else float("nan"))
            out["wrong"].append(int((~right).sum()))
        results[label] = out
    numbers = {f"{name}/{label}": out for label, out in results.items()}
    if name == config.control:
        # In float64: near the diagonal arccos turns float32's rounding of the inner products (1e-7)
        # into 1e-4 differences of the ReLU kernel, more than a check can allow.
        with jax.enable_x64(True):
            fc, fc_shuffled = (nets[FC].kernels(np.float64(x), chunk_size=config.chunk_size)["ntk"]
                               for x in (task["x_test"], inputs[SHUFFLED][1]))
            numbers[f"{name}/fc_permutation_difference"] = float(jnp.max(jnp.abs(fc_shuffled - fc))
                                                                 / jnp.max(jnp.abs(fc)))
    table = fw.format_table(
        ["kernel", "test accuracy (mean)", "per subset", "NNGP std, right", "NNGP std, wrong", "misclassified"],
        [[label, np.mean(r["accuracy"]), ", ".join(f"{a:.3f}" for a in r["accuracy"]), np.nanmean(r["std_right"]),
          np.nanmean(r["std_wrong"]), np.mean(r["wrong"])] for label, r in results.items()], float_format="{:.3f}")
    carry = dict(task, kernel=kernels[GAP]) if name == config.finite.dataset else None
    return fw.Phase(tables={f"kernel regression on {name} ({config.num_train} training examples, {config.seeds} "
                            f"subsets, {len(y_test)} test)": table}, numbers=numbers, carry=carry)



def convergence_phase(config, ctx) -> fw.Phase:
    """Relative Frobenius error of the CNN-GAP's empirical NTK at init against its CNTK, per width
    and seed."""
    cfg = config.convergence
    x = _images(datasets.load(cfg.dataset).x_train[:cfg.num_inputs])
    analytic = cnn(config, x.ndim - 2).kernels(x)["ntk"]
    errors_PxK = []
    for width in cfg.widths:
        model = cnn(config, x.ndim - 2, width=width).module()
        apply_fn, errors = train.make_apply_fn(model), []
        for seed in fw.seeds(config):
            params = model.init(jax.random.key(seed + 100), x[:1])["params"]
            empirical = ntk.empirical_ntk(apply_fn, params, jnp.asarray(x))
            errors.append(float(jnp.linalg.norm(empirical - analytic) / jnp.linalg.norm(analytic)))
        errors_PxK.append(errors)
    means = np.mean(errors_PxK, axis=1)
    figure = plot.loglog_panels(
        {"empirical NTK at init vs the CNTK": {
            f"mean of {config.seeds} seeds": (cfg.widths, means),
            "width^-1/2 from the last width": (cfg.widths,
                                               means[-1] * (np.asarray(cfg.widths) / cfg.widths[-1]) ** RATE)}},
        xlabel="channels", ylabel="||Theta_width - Theta_inf|| / ||Theta_inf||",
        title=f"CNN-GAP, {config.depth} convolutions, {cfg.num_inputs} {cfg.dataset} inputs")
    table = fw.format_table(["channels", "relative Frobenius error (mean)", "per seed"], [
        [w, m, ", ".join(f"{e:.3g}" for e in row)] for w, m, row in zip(cfg.widths, means, errors_PxK)])
    return fw.Phase(tables={"empirical NTK vs CNTK": table}, figures={"cntk_convergence": figure},
                    numbers={"convergence_slopes": slopes(cfg.widths, errors_PxK)})


@compiled.jit(static_argnames=("steps",))
def centred_ensembles(apply_fn, params0_E, x, y, learning_rate, x_test, *, steps: int):
    """Each net of the ensemble (leading axis E of ``params0_E``) trained by ``steps`` steps of
    full-batch GD on (1 / 2 y.size) ||f - y||^2, f the network less its initial function (Lee et
    al. 2020's centring); returns each net's centred test outputs (E, N_test, O). The nets run one
    after another (``lax.map``): a ``vmap`` over convolution weights compiles to a grouped
    convolution, twice as slow on a CPU. Compiled once per model and shapes (``apply_fn`` a pytree
    argument, :mod:`jaxdl.core.compiled`)."""
    def one(params0):
        centred = lambda p, inputs: apply_fn(p, inputs) - apply_fn(params0, inputs)  # noqa: E731
        grad = jax.grad(lambda p: 0.5 * jnp.mean(jnp.square(centred(p, x) - y)))
        params = jax.lax.fori_loop(0, steps, lambda _, p: jax.tree.map(lambda w, g: w - learning_rate * g, p,
                                                                         grad(p)), params0)
        return centred(params, x_test)
    return jax.lax.map(one, params0_E)


def finite_phase(config, ctx, task) -> fw.Phase:
    """Per seed (its own subset) and width: the centred ensemble's test accuracy and its outputs'
    RMS distance to the kernel's mean prediction at the same time, and the kernel's accuracy."""
    cfg, data = config.finite, task["data"]
    spatial_ndim, y_test = task["x_pool"].ndim - 2, task["y_test"]
    x_test = jnp.asarray(task["x_test"])
    models = {w: cnn(config, spatial_ndim, width=w, num_outputs=data.num_classes).module() for w in cfg.widths}
    apply_fns = {w: train.make_apply_fn(model) for w, model in models.items()}
    kernel_accuracy, accuracy, distance = [], {w: [] for w in cfg.widths}, {w: [] for w in cfg.widths}
    for k, (seed, rows) in enumerate(zip(fw.seeds(config), task["rows"])):
        x, y = jnp.asarray(task["x_pool"][rows]), jax.nn.one_hot(task["y_pool"][rows], data.num_classes)
        k_train, k_cross, k_test = _subset(task["kernel"], rows)
        rate = critical_rate(cfg.critical_fraction, k_train["ntk"], y)
        mean, _ = ntk.gp_predictions(k_train, k_cross, k_test, y, cfg.steps, get="ntk", learning_rate=rate)
        kernel_accuracy.append(_accuracy(mean, y_test))
        for width in cfg.widths:
            model = models[width]
            keys = jax.random.split(jax.random.key(seed + 200), cfg.ensemble)
            params0_E = jax.tree.map(lambda *a: jnp.stack(a), *[model.init(key, x[:1])["params"] for key in keys])
            outputs = centred_ensembles(apply_fns[width], params0_E, x, y, rate, x_test, steps=cfg.steps)
            ensemble = np.asarray(outputs).mean(0)
            accuracy[width].append(_accuracy(ensemble, y_test))
            distance[width].append(float(np.linalg.norm(ensemble - mean) / np.linalg.norm(mean)))
    gaps = {w: np.abs(np.subtract(accuracy[w], kernel_accuracy)).tolist() for w in cfg.widths}
    table = fw.format_table(
        ["channels", f"ensemble of {cfg.ensemble}: test accuracy (mean)", "|gap| to the kernel (mean)",
         "relative distance to the kernel's mean", "per seed accuracy"],
        [[w, np.mean(accuracy[w]), np.mean(gaps[w]), np.mean(distance[w]), ", ".join(f"{a:.3f}" for a in accuracy[w])]
         for w in cfg.widths], float_format="{:.3f}")
    figure = plot.line_plot(
        {f"centred ensembles of {cfg.ensemble} (mean of {config.seeds} seeds)":
             (cfg.widths, [np.mean(accuracy[w]) for w in cfg.widths], [np.std(accuracy[w]) for w in cfg.widths]),
         "the CNTK-GAP's prediction at the same time": (cfg.widths, [np.mean(kernel_accuracy)] * len(cfg.widths))},
        xlabel="channels", ylabel="test accuracy", logx=True,
        title=f"{cfg.dataset}, {config.num_train} examples, {cfg.steps} GD steps at {cfg.critical_fraction:g} x "
              "the critical rate")
    return fw.Phase(tables={f"finite vs infinite ({cfg.dataset}, kernel accuracy {np.mean(kernel_accuracy):.3f})":
                            table}, figures={"finite_vs_infinite": figure},
                    numbers={"finite": {"kernel_accuracy": kernel_accuracy,
                                        "gaps": {str(w): g for w, g in gaps.items()},
                                        "distance": {str(w): d for w, d in distance.items()}}})


def _accuracy_figure(config, numbers):
    labels, values, errors = [], [], []
    for name in config.datasets:
        for label in (GAP, FLATTEN, FC, SHUFFLED):
            if f"{name}/{label}" in numbers:
                accuracies = numbers[f"{name}/{label}"]["accuracy"]
                labels.append(f"{name}: {label}")
                values.append(np.mean(accuracies))
                errors.append(np.std(accuracies))
    return plot.bar_chart(labels, values, errors, ylabel="test accuracy (mean +- std over subsets)",
                          title=f"kernel regression, {config.num_train} training examples (Arora et al. 2019)")


def run(config, ctx) -> None:
    ctx.phase("convergence", convergence_phase, config, ctx)
    task = None
    for name in config.datasets:
        carry = ctx.phase(f"kernel regression ({name})", regression_phase, config, ctx, name).carry
        task = carry if carry is not None else task
    ctx.phase("finite vs infinite", finite_phase, config, ctx, task)
    ctx.phase("figure", lambda: fw.Phase(figures={"kernel_regression": _accuracy_figure(config, ctx.numbers)}))


def claims(config, numbers) -> list:
    n, widths = config.seeds, config.convergence.widths
    items = [fw.Claim.within(
        "empirical_cntk_converges_at_rate_one_half", f"{JACOT}; {ARORA}", "a CNN-GAP's empirical NTK at initialisation "
        f"converges to its CNTK: relative Frobenius error over {widths[0]}-{widths[-1]} channels, log-log slope of "
        f"each of {n} seeds, exponent in {RATE:g} +- {RATE_BAND:g} (width^-1/2)", numbers["convergence_slopes"],
        target=RATE, tolerance=RATE_BAND, fmt="{:.3f}")]
    subsets = f"{config.num_train} training examples, {n} random subsets, paired"
    for name in config.datasets:
        accuracy = lambda label: numbers[f"{name}/{label}"]["accuracy"]  # noqa: E731
        items += [
            fw.Claim.difference(f"cntk_gap_beats_fully_connected_{name}", ARORA, f"on {name}, CNTK-GAP regression "
                                f"has a higher test accuracy than the fully connected NTK's ({subsets})", accuracy(GAP),
                                accuracy(FC), above=0.0, paired=True, fmt="{:.3f}"),
            fw.Claim.difference(f"cntk_gap_beats_flatten_{name}", f"{ARORA}, table 1", f"on {name}, global average "
                                f"pooling beats "
                                f"flattening (CNTK-GAP against CNTK-V; {subsets})", accuracy(GAP), accuracy(FLATTEN),
                                above=0.0, paired=True, fmt="{:.3f}")]
    if config.control:
        name = config.control
        items += [
            fw.Claim.difference(f"shuffled_positions_remove_the_advantage_{name}", f"{ARORA} (negative control)",
                                f"with the positions of every {name} input permuted (one fixed permutation), the "
                                "CNTK-GAP's advantage over the fully connected NTK falls below the margin "
                                f"({subsets})", numbers[f"{name}/{SHUFFLED}"]["accuracy"],
                                numbers[f"{name}/{FC}"]["accuracy"], below=config.control_margin, paired=True,
                                fmt="{:.3f}"),
            fw.Check.at_most("fully_connected_ntk_ignores_the_permutation", "the fully connected NTK depends on "
                             "inner products and norms only", f"its test kernel on {name} with and without the "
                             "permutation (largest difference over the largest entry, float64)",
                             numbers[f"{name}/fc_permutation_difference"], 1e-6, "{:.1e}")]
    cfg, finite = config.finite, numbers["finite"]
    narrow, wide = (str(w) for w in (cfg.widths[0], cfg.widths[-1]))
    items.append(fw.Claim.difference(
        "centred_ensembles_approach_the_kernel", LEE20, f"centred CNN-GAPs on {cfg.dataset} (ensembles of "
        f"{cfg.ensemble}, {cfg.steps} GD steps on the MSE at {cfg.critical_fraction:g} x the critical rate): the "
        f"|test accuracy gap| to the CNTK's prediction at the same time "
        f"({np.mean(finite['kernel_accuracy']):.3f}) is smaller at {wide} channels than at {narrow} (paired by seed)",
        finite["gaps"][narrow], finite["gaps"][wide], above=0.0, paired=True, fmt="{:.3f}"))
    for name in config.datasets:
        r = numbers[f"{name}/{GAP}"]
        items.append(fw.Claim.mean(
            f"nngp_uncertainty_larger_when_wrong_{name}", "Lee et al. 2018; Novak et al. 2019", f"on {name}, the "
            "CNTK-GAP's NNGP posterior standard deviation is larger on the test points its mean misclassifies than on "
            "those it gets right (difference of the means, per subset)",
            np.subtract(r["std_wrong"], r["std_right"]), above=0.0, fmt="{:.4f}"))
    return items


main = fw.entry_point(__name__)


if __name__ == "__main__":
    main()
