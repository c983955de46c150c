"""Sharp versus flat minima: small vs large batch, reparametrisation, SAM and the edge of stability.

- Keskar et al. 2017 with Hoffer, Hubara & Soudry 2017's control: each task trained with Adam
  over ``seeds`` seeds (one vmapped fit per regime) at a small batch (SB), at about 10% of the
  training set (LB) for the same epochs, and at LB for SB's number of steps (continuing LB's
  runs from their checkpoint); the sharpness of every solution (``measure_sharpness``); Keskar's
  parametric plot of seed 0.
- Dinh et al. 2017: the SB solution under T_a(W1, b1, W2) = (a W1, a b1, W2 / a) computes the
  same function while the eigenvalue, trace and epsilon-sharpness move (checks: algebra).
- Foret et al. 2021: SAM on Adam against Adam alone, same seeds, equal steps.
- Cohen et al. 2021: full-batch gradient descent with MSE on one-hot targets for a tanh MLP at
  several step sizes over the seeds (their initialisations), the top Hessian eigenvalue tracked
  inside the compiled training program. A single run has no sampling noise but is chaotic at
  the edge of stability (another CPU's rounding takes another path), so the claims are per-seed
  statistics.
"""
from __future__ import annotations

import math
import tempfile

import jax
import ml_collections
import numpy as np
import optax

from experiments import framework as fw
from jaxdl import data as datasets, plot, train
from jaxdl.analysis import curvature, landscape
from jaxdl.core import tree
from jaxdl.train import losses, optim

NAME = "sharp_flat"
DESCRIPTION = ("small vs large batch at equal epochs and equal steps (Keskar, Hoffer), alpha-reparametrisation "
               "(Dinh), SAM (Foret), edge of stability (Cohen)")
DEVICE_FIELDS = {"seeds": "seeds", "chunk_size": "examples_per_chunk"}
KESKAR, HOFFER, DINH = "Keskar et al. 2017", "Hoffer, Hubara & Soudry 2017", "Dinh et al. 2017 (algebra)"
FORET, COHEN = "Foret et al. 2021", "Cohen et al. 2021, section 3"


def _task(dataset, model, learning_rate, epochs, small_batch, large_batch, standardize=True, **hparams):
    return dict(dataset=dataset, standardize=standardize, model=fw.model_spec(model, **hparams),
                learning_rate=learning_rate, epochs=epochs, small_batch=small_batch, large_batch=large_batch)


def get_config() -> ml_collections.ConfigDict:
    """The default size: an MLP on MNIST-1D, five seeds per regime."""
    return ml_collections.ConfigDict(dict(
        seed=0, seeds=5, optimizer="adam",
        tasks=dict(mnist1d_mlp=_task("mnist1d", "mlp", 2e-3, 80, 64, 400, widths=(100, 100))),
        parametric_task="mnist1d_mlp", reparam_task="mnist1d_mlp", sam_task="mnist1d_mlp", chunk_size=1000,
        lanczos_steps=20, trace_probes=30, epsilons=(1e-3, 5e-4), lbfgs_steps=10, filter_radius=0.25,
        filter_directions=4, filter_points=11, num_alphas=25, reparam_alphas=(0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0),
        reparam_layers=("hidden_0", "hidden_1"), sam_epochs=40, sam_rho=0.05,
        eos=dict(dataset="mnist1d", num_examples=1000, widths=(100, 100), activation="tanh",
                 learning_rates=(0.2, 0.7, 1.0), steps=3000, steps_per_call=500, probe_every=50, lanczos_steps=10)))


_CNN = dict(channels=(25, 25, 25), kernel_size=5, strides=2, pool="none", dense_widths=(),
            conv_implementation="patches")
SIZES = {
    "quick": {"seeds": 2, "tasks": {"mnist1d_mlp": _task("mnist1d", "mlp", 2e-3, 1, 64, 400, widths=(16, 16))},
              "lanczos_steps": 5, "trace_probes": 4, "lbfgs_steps": 2, "filter_directions": 1, "filter_points": 3,
              "num_alphas": 5, "reparam_alphas": (0.03, 1.0, 30.0), "sam_epochs": 1, "eos.num_examples": 200,
              "eos.widths": (16, 16), "eos.steps": 60, "eos.steps_per_call": 30, "eos.probe_every": 10,
              "eos.lanczos_steps": 5},
    # Closer to the papers (a GPU or TPU): the published CNN on MNIST-1D and a CNN on CIFAR-10 files.
    "full": {"seeds": 10, "tasks": {"mnist1d_mlp": _task("mnist1d", "mlp", 2e-3, 200, 64, 400, widths=(100, 100)),
                                    "mnist1d_cnn": _task("mnist1d", "cnn1d", 2e-3, 100, 64, 400, standardize=False,
                                                         **_CNN),
                                    "cifar10_cnn": _task("cifar10", "cnn2d", 1e-3, 100, 256, 5000, kernel_size=3,
                                                         channels=(64, 128, 256), pool="max", dense_widths=(256,))},
             "lanczos_steps": 30, "trace_probes": 100, "lbfgs_steps": 20, "sam_epochs": 100,
             "eos.num_examples": 5000, "eos.widths": (200, 200), "eos.steps": 20000, "eos.steps_per_call": 1000,
             "eos.probe_every": 100, "eos.lanczos_steps": 20},
}
_a_task = fw.expect(lambda v, c: v in c.tasks, "the name of a task", uses_config=True)
FIELDS = {
    **{f: fw.positive_int for f in ("seeds", "chunk_size", "lanczos_steps", "lbfgs_steps", "filter_directions",
                                    "num_alphas", "sam_epochs", "tasks.*.epochs", "tasks.*.small_batch",
                                    "eos.num_examples", "eos.steps_per_call", "eos.probe_every", "eos.lanczos_steps")},
    "tasks": fw.expect(lambda v: all(isinstance(t.large_batch, int) and t.large_batch > t.small_batch
                                     for t in v.values()), "tasks whose large_batch (an integer) exceeds small_batch"),
    "tasks.*.learning_rate": fw.positive, "epsilons": fw.positives, "filter_radius": fw.positive,
    "sam_rho": fw.positive, "parametric_task": _a_task, "reparam_task": _a_task, "sam_task": _a_task,
    "trace_probes": fw.expect(lambda v: isinstance(v, int) and v >= 2, "an integer >= 2"),
    "filter_points": fw.expect(lambda v: isinstance(v, int) and v >= 3 and v % 2, "an odd integer >= 3"),
    "reparam_alphas": fw.expect(lambda v: all(a > 0 for a in v) and 1.0 in v and max(max(v), 1 / min(v)) >= 30,
                                "positive numbers including 1.0 and reaching a or 1/a >= 30"),
    "eos.steps": fw.expect(lambda v, c: v > 0 and v % c.eos.steps_per_call == 0, "a multiple of eos.steps_per_call",
                           uses_config=True),
    "eos.learning_rates": fw.expect(lambda v: len(v) >= 2 and all(0 < a < b for a, b in zip(v, v[1:])),
                                    "two or more increasing positive step sizes"),
}


def load_task(task):
    data = datasets.load(task.dataset, standardize=task.standardize)
    return data, fw.build_model(task.model, data.num_classes)


def epsilon_key(epsilon: float) -> str:
    return f"epsilon_sharpness_{epsilon:.0e}"


def measure_sharpness(config, apply_fn, params, batch, key, epsilons=None) -> dict:
    """The sharpness of the solution ``params`` on ``batch`` (the training set), the same ``key``
    (probes, starts, directions) for every solution: the top Hessian eigenvalue (Lanczos), the
    trace (Hutchinson), Keskar et al.'s epsilon-sharpness in the full space (L-BFGS-B) at each
    epsilon, and the filter-normalised sharpness, the mean rise of the loss over |a| <=
    ``filter_radius`` along filter-normalised directions (Li et al. 2018)."""
    loss_fn, chunk = losses.make_loss_fn(apply_fn), config.chunk_size
    steps = min(config.lanczos_steps, tree.count(params))
    out = {"top_eigenvalue": curvature.hessian_top_eigenvalues(loss_fn, params, batch, num_steps=steps, key=key,
                                                               chunk_size=chunk).eigenvalues[0],
           "trace": curvature.hessian_trace(loss_fn, params, batch, num_probes=config.trace_probes, key=key,
                                            chunk_size=chunk).estimate}
    for epsilon in config.epsilons if epsilons is None else epsilons:
        out[epsilon_key(epsilon)] = curvature.epsilon_sharpness(loss_fn, params, batch, float(epsilon), key=key,
                                                                max_steps=config.lbfgs_steps,
                                                                chunk_size=chunk).value
    out["filter_normalized_sharpness"] = landscape.filter_normalized_sharpness(
        apply_fn, params, batch, key, radius=config.filter_radius, num_directions=config.filter_directions,
        num_points=config.filter_points, chunk_size=chunk)["value"]
    return {name: float(value) for name, value in out.items()}


def measure_seeds(config, model, data, result, key) -> dict:
    """``{name: [value per seed]}``: each seed's final train loss and test accuracy (a
    ``fit_seeds`` result) and the sharpness of its solution."""
    states = [train.unstack(result.state, k) for k in range(len(result.history["test_accuracy"]))]
    rows = [measure_sharpness(config, train.make_apply_fn(model, s.model_state), s.params,
                              (data.x_train, data.y_train), key) for s in states]
    return {**{name: result.history[name][:, -1].tolist() for name in ("train_loss", "test_accuracy")},
            **{name: [row[name] for row in rows] for name in rows[0]}}


def solutions_table(config, groups: dict) -> str:
    """One row per group of seeds (``measure_seeds``' dicts): mean +- standard error of each column."""
    columns = ["train_loss", "test_accuracy", "top_eigenvalue", "trace", *map(epsilon_key, config.epsilons),
               "filter_normalized_sharpness"]
    cell = lambda v: f"{np.mean(v):.3g} +- {np.std(v, ddof=1) / np.sqrt(len(v)) if len(v) > 1 else np.nan:.2g}"
    return fw.format_table(["solutions", *(c.replace("_", " ") for c in columns)],
                           [[label, *(cell(group[c]) for c in columns)] for label, group in groups.items()])


def batch_size_phase(config, ctx) -> fw.Phase:
    """SB, LB and step-matched LB solutions of every task with their sharpness, and Keskar's
    parametric plot of ``parametric_task``; carries each task's model, data and seed-0 states."""
    key, groups = jax.random.key(config.seed + 5), {}
    phase = fw.Phase(numbers={"batch_size": {}, "steps": {}}, carry={})
    for name, task in config.tasks.items():
        data, model = load_task(task)
        tx, n = optim.get_optimizer(config.optimizer, task.learning_rate), len(data.x_train)
        matched = max(1, round(task.epochs * (n // task.small_batch) / (n // task.large_batch)))  # SB's steps
        regimes = {"SB": (task.small_batch, task.epochs), "LB": (task.large_batch, task.epochs),
                   "LB_steps": (task.large_batch, matched)}
        block, results = math.gcd(task.epochs, matched), {}
        with tempfile.TemporaryDirectory() as checkpoints:  # LB_steps resumes LB's checkpoint
            for regime, (batch_size, epochs) in regimes.items():
                results[regime] = train.fit_seeds(
                    model, data, tx, seeds=fw.seeds(config), epochs=epochs, batch_size=batch_size, eval_every=epochs,
                    epochs_per_call=block, checkpoint_dir=None if regime == "SB" else checkpoints,
                    logger=ctx.logger.with_tags(run=f"{name}/{regime}"))
        measured = {regime: measure_seeds(config, model, data, result, key) for regime, result in results.items()}
        phase.numbers["batch_size"][name] = measured
        phase.numbers["steps"][name] = {regime: epochs * (n // b) for regime, (b, epochs) in regimes.items()}
        groups.update({f"{name} {regime} (batch {b}, {e} epochs)": measured[regime]
                       for regime, (b, e) in regimes.items()})
        states = {regime: train.unstack(result.state, 0) for regime, result in results.items()}
        phase.carry[name] = (model, data, states)
        if name == config.parametric_task:
            phase.figures["parametric_sb_lb"] = parametric_figure(config, name, model, data, states, measured)
    phase.tables["batch size (mean +- SE over seeds)"] = solutions_table(config, groups)
    return phase


def parametric_figure(config, name, model, data, states, measured):
    """Keskar et al.'s figure 3: loss and accuracy along L(a x_LB + (1 - a) x_SB), seed 0."""
    alphas = np.linspace(-1.0, 2.0, config.num_alphas)
    apply_fn = train.make_apply_fn(model, states["SB"].model_state)
    curves = {split: landscape.interpolate(apply_fn, states["SB"].params, states["LB"].params, batch, alphas,
                                           chunk_size=config.chunk_size)
              for split, batch in (("train", (data.x_train, data.y_train)), ("test", (data.x_test, data.y_test)))}
    return plot.parametric_plot(
        alphas, *({f"{s} {m}": curves[s][m] for s in curves} for m in ("loss", "accuracy")),
        sharpness={f"{r} top eigenvalue": (a, measured[r]["top_eigenvalue"][0]) for r, a in (("SB", 0.0), ("LB", 1.0))},
        xlabel="a  (theta = a x_LB + (1 - a) x_SB)", sharpness_label="top Hessian eigenvalue",
        title=f"{name}: small batch (a = 0) to large batch (a = 1), seed {config.seed}")


def reparametrization_phase(config, ctx, model, data, params) -> fw.Phase:
    """The alpha-scaled SB solution over ``reparam_alphas``: outputs, sharpness measures, and the
    trace beside its prediction a^-2 tr H_11 + a^2 tr H_22 + tr H_rest from the block traces at
    a = 1 (the same Hutchinson probes)."""
    first, second = config.reparam_layers
    batch, key = (data.x_train, data.y_train), jax.random.key(config.seed + 9)
    apply_fn = train.make_apply_fn(model)
    loss_fn, blocks = losses.make_loss_fn(apply_fn), curvature.alpha_scaling_blocks(params, first, second)
    trace = lambda p, mask: float(curvature.hessian_trace(loss_fn, p, batch, num_probes=config.trace_probes, key=key,
                                                          chunk_size=config.chunk_size, where=mask).estimate)
    block_traces = {name: trace(params, mask) for name, mask in blocks.items()}
    outputs, rows = np.asarray(apply_fn(params, data.x_test), np.float64), []
    for alpha in config.reparam_alphas:
        scaled = curvature.alpha_scale(params, first, second, alpha)
        change = np.max(np.abs(apply_fn(scaled, data.x_test) - outputs)) / np.max(np.abs(outputs))
        rows.append({"alpha": float(alpha), "output_change": float(change),
                     **measure_sharpness(config, apply_fn, scaled, batch, key, epsilons=config.epsilons[:1]),
                     "blockwise_trace": sum(trace(scaled, mask) for mask in blocks.values()),
                     "predicted_trace": float(curvature.alpha_scaled_trace(block_traces, alpha))})
    columns, at_one = list(rows[0]), next(r for r in rows if r["alpha"] == 1.0)
    curves = {c.replace("_", " "): (config.reparam_alphas, [max(r[c] / at_one[c], 1e-6) for r in rows])
              for c in ("top_eigenvalue", "trace", epsilon_key(config.epsilons[0]), "filter_normalized_sharpness")}
    figure = plot.line_plot(curves, xlabel="a  in  T_a(W1, b1, W2) = (a W1, a b1, W2 / a)", logx=True, logy=True,
                            ylabel="measure / its value at a = 1", title="the same function, other sharpness")
    c = {name: np.asarray([r[name] for r in rows]) for name in columns}
    top, fns = c["top_eigenvalue"], c["filter_normalized_sharpness"]
    numbers = {"output_change": c["output_change"].max(), "eigenvalue_span": top.max() / top.min(),
               "trace_prediction_error": np.max(np.abs(c["blockwise_trace"] / c["predicted_trace"] - 1)),
               "filter_sharpness_change": np.ptp(fns) / at_one["filter_normalized_sharpness"]}
    return fw.Phase(tables={"reparametrisation": fw.format_table([c.replace("_", " ") for c in columns],
                                                                  [[r[c] for c in columns] for r in rows])},
                    figures={"reparametrization": figure}, numbers={"reparametrization": numbers})


def sam_phase(config, ctx) -> fw.Phase:
    """SAM(Adam) against Adam on ``sam_task`` at the small batch, the same seeds (so the same
    initialisations and data order), equal steps."""
    task = config.tasks[config.sam_task]
    data, model = load_task(task)
    optimizers = {"base": optim.get_optimizer(config.optimizer, task.learning_rate),
                  "sam": optim.get_optimizer("sam", task.learning_rate, base=config.optimizer, rho=config.sam_rho)}
    numbers = {name: measure_seeds(config, model, data, train.fit_seeds(
        model, data, tx, seeds=fw.seeds(config), epochs=config.sam_epochs, batch_size=task.small_batch,
        eval_every=config.sam_epochs, logger=ctx.logger.with_tags(run=f"sam/{name}")), jax.random.key(config.seed + 5))
        for name, tx in optimizers.items()}
    table = solutions_table(config, {f"{config.sam_task} {config.optimizer}": numbers["base"],
                                     f"{config.sam_task} SAM (rho {config.sam_rho:g})": numbers["sam"]})
    return fw.Phase(tables={"SAM (mean +- SE over seeds)": table}, numbers={"sam": numbers})


def edge_of_stability_phase(config, ctx) -> fw.Phase:
    """Full-batch GD at each step size over the seeds (one vmapped fit each), the sharpness
    tracked in the compiled loop; per-seed statistics, seed 0's curves in the figure."""
    eos, source = config.eos, datasets.load(config.eos.dataset)
    n, one_hot = eos.num_examples, lambda y: np.eye(source.num_classes, dtype=np.float32)[y]
    data = datasets.Dataset(source.x_train[:n], one_hot(source.y_train[:n]), source.x_test, one_hot(source.y_test),
                            None, f"{eos.dataset}/one-hot")
    model = fw.build_model(fw.model_spec("mlp", widths=eos.widths, activation=eos.activation), source.num_classes)
    probe, runs, numbers = curvature.SharpnessProbe(num_steps=eos.lanczos_steps, chunk_size=None), {}, {}
    for eta in eos.learning_rates:
        result = train.fit_seeds(model, data, optax.sgd(eta), seeds=fw.seeds(config), epochs=eos.steps,
                                 batch_size=None, loss_name="mse", epochs_per_call=eos.steps_per_call,
                                 eval_every=eos.steps, probes={"sharpness": probe}, probe_every=eos.probe_every,
                                 logger=ctx.logger.with_tags(run=f"eos/{eta:g}"))
        sharpness_KxS = result.history["probe/sharpness"]
        loss_KxS = np.asarray(result.history["batch_loss"], np.float64)
        steps = np.flatnonzero(~np.isnan(sharpness_KxS[0]))  # the probed steps, alike for every seed
        probed_KxP = sharpness_KxS[:, steps]
        runs[f"{eta:g}"] = {"steps": steps, "sharpness": probed_KxP[0], "loss": loss_KxS[0]}
        numbers[f"{eta:g}"] = {
            "threshold": 2.0 / eta, "initial_sharpness": probed_KxP[:, 0].tolist(),
            "max_sharpness": probed_KxP.max(1).tolist(),
            "median_last_third": np.median(probed_KxP[:, 2 * len(steps) // 3:], axis=1).tolist(),
            "loss_by_third": np.stack([t.mean(1) for t in np.array_split(loss_KxS, 3, axis=1)], 1).tolist(),
            "rising_fraction": np.mean(np.diff(loss_KxS, axis=1) > 0, axis=1).tolist()}
    figure = plot.edge_of_stability({f"eta = {eta}": (r["steps"], r["sharpness"], 2.0 / float(eta),
                                                      np.arange(len(r["loss"])), r["loss"]) for eta, r in runs.items()},
                                    title=f"full-batch GD, tanh MLP, MSE, {n} examples, seed {config.seed}")
    mean = lambda v: np.mean(v, axis=0)
    table = fw.format_table(
        ["eta", "2 / eta", "sharpness at step 0", "max sharpness", "median sharpness, last third", "ratio to 2 / eta",
         "mean loss by third of training", "fraction of steps where the loss rose"],
        [[eta, v["threshold"], mean(v["initial_sharpness"]), mean(v["max_sharpness"]), mean(v["median_last_third"]),
          mean(v["median_last_third"]) / v["threshold"], ", ".join(f"{x:.3g}" for x in mean(v["loss_by_third"])),
          mean(v["rising_fraction"])] for eta, v in numbers.items()])
    return fw.Phase(tables={f"edge of stability (means over {config.seeds} seeds)": table},
                    figures={"edge_of_stability": figure},
                    arrays={f"eos/{eta}/{k}": v for eta, r in runs.items() for k, v in r.items()},
                    numbers={"edge_of_stability": numbers})


def run(config, ctx) -> None:
    tasks = ctx.phase("small vs large batch", batch_size_phase, config, ctx).carry
    model, data, states = tasks[config.reparam_task]
    ctx.phase("reparametrisation", reparametrization_phase, config, ctx, model, data, states["SB"].params)
    ctx.phase("SAM", sam_phase, config, ctx)
    ctx.phase("edge of stability", edge_of_stability_phase, config, ctx)


def claims(config, numbers) -> list:
    out, n, epsilon = [], config.seeds, epsilon_key(config.epsilons[0])
    for name in config.tasks:
        measured, steps = numbers["batch_size"][name], numbers["steps"][name]
        sb, lb, lb_steps = measured["SB"], measured["LB"], measured["LB_steps"]
        for key, measure, label in (("eigenvalue", "top_eigenvalue", "the top Hessian eigenvalue"),
                                    ("epsilon", epsilon, f"epsilon-sharpness at {config.epsilons[0]:g}")):
            out.append(fw.Claim.ratio(
                f"{name}_lb_sharper_{key}", KESKAR, f"{name}: large-batch minima are sharper at "
                f"equal epochs: LB/SB ratio of {label} (geometric means over {n} seeds each)", lb[measure], sb[measure],
                above=1.0))
        out += [fw.Claim.difference(
            f"{name}_gap_equal_epochs", KESKAR, f"{name}: the small batch generalises better at equal "
            f"epochs ({steps['SB']} SB steps, {steps['LB']} LB steps): test accuracy SB minus LB, {n} seeds each",
            sb["test_accuracy"], lb["test_accuracy"], above=0.0),
            fw.Claim.difference(
            f"{name}_gap_equal_steps", f"{KESKAR}, under {HOFFER}'s control", f"{name}: the gap persists when LB "
            f"trains for SB's number of steps ({steps['LB_steps']} LB steps; Hoffer et al. find it shrinks or "
            "vanishes): test accuracy SB minus step-matched LB", sb["test_accuracy"], lb_steps["test_accuracy"],
            above=0.0),
            fw.Claim.difference(
            f"{name}_steps_close_gap", HOFFER, f"{name}: training LB for SB's number of steps raises "
            "its test accuracy (step-matched LB minus LB at equal epochs; paired: the longer run continues the "
            "shorter)", lb_steps["test_accuracy"], lb["test_accuracy"], above=0.0, paired=True)]
    sam = numbers["sam"]
    out += [fw.Claim.difference(
        "sam_generalises_better", f"{FORET} (SAM lowers the test error in each of their settings)",
        f"{config.sam_task}: SAM on {config.optimizer} reaches a higher test accuracy than {config.optimizer} alone "
        f"(paired: same seeds, initialisations and data order; {n} seeds)", sam["sam"]["test_accuracy"],
        sam["base"]["test_accuracy"], above=0.0, paired=True),
        fw.Claim.ratio(
        "sam_flatter", FORET, f"{config.sam_task}: SAM finds a flatter minimum: SAM/base ratio of "
        f"the top Hessian eigenvalue (paired, {n} seeds)", sam["sam"]["top_eigenvalue"], sam["base"]["top_eigenvalue"],
        below=1.0, paired=True)]
    reparam = numbers["reparametrization"]
    out += [fw.Check.at_most("reparam_outputs_unchanged", DINH, "T_a leaves the outputs unchanged (max relative "
                             "change over the a grid)", reparam["output_change"], 1e-5, "{:.1e}"),
            fw.Check.at_most("reparam_trace_prediction", DINH, "the trace at T_a(theta) equals a^-2 tr H_11 + a^2 tr "
                             "H_22 + tr H_rest from the block traces at a = 1, same probes (largest relative error)",
                             reparam["trace_prediction_error"], 1e-3, "{:.1e}"),
            fw.Check.at_least("reparam_eigenvalue_span", DINH, "the top eigenvalue spans at least 100x (max / min) "
                              f"over a in [{min(config.reparam_alphas):g}, {max(config.reparam_alphas):g}] (H -> "
                              "D^-1 H D^-1 scales its blocks by a^-2 and a^2)", reparam["eigenvalue_span"], 100.0),
            fw.Check.at_most("reparam_filter_sharpness_invariant", "Li et al. 2018 (algebra)", "the filter-normalised "
                             "sharpness is unchanged by T_a (spread over the a grid / value at a = 1)",
                             reparam["filter_sharpness_change"], 1e-3, "{:.1e}")]
    return out + edge_of_stability_claims(config, numbers["edge_of_stability"])


def edge_of_stability_claims(config, eos: dict) -> list:
    """Cohen et al.'s findings, each a per-seed statistic of the full-batch runs."""
    (first, low), seeds = next(iter(eos.items())), f"{config.seeds} seeds"
    ratio = lambda a, b: np.divide(a, b)
    out = [fw.Claim.mean("eos_progressive_sharpening", COHEN, f"eta = {first} (2/eta = {low['threshold']:.3g}): the "
                         f"sharpness rises during training (median over the last third / sharpness at step 0, {seeds})",
                         ratio(low["median_last_third"], low["initial_sharpness"]), above=1.0),
           fw.Claim.mean("eos_small_step_below_threshold", COHEN, f"eta = {first}: the sharpness stays below 2/eta "
                         f"(max sharpness / (2/eta), {seeds})", ratio(low["max_sharpness"], low["threshold"]),
                         below=1.0),
           fw.Claim.mean("eos_small_step_loss_monotone", COHEN, f"eta = {first} (control): below 2/eta the loss falls "
                         f"on almost every step (fraction of steps where it rose; declared: under 1%; {seeds})",
                         low["rising_fraction"], below=0.01)]
    for eta, run in list(eos.items())[1:]:
        tag, thirds = eta.replace(".", "p"), np.asarray(run["loss_by_third"])
        out += [fw.Claim.within(f"eos_at_threshold_eta{tag}", COHEN, f"eta = {eta}: the sharpness hovers at 2/eta "
                                f"(median over the last third / (2/eta); declared band 10%; {seeds})",
                                ratio(run["median_last_third"], run["threshold"]), target=1.0, tolerance=0.10),
                fw.Claim.mean(f"eos_loss_falls_eta{tag}", COHEN, f"eta = {eta}: the loss keeps falling over the long "
                              f"run (mean loss over the last third / over the first third, {seeds})",
                              thirds[:, 2] / thirds[:, 0], below=1.0),
                fw.Claim.mean(f"eos_loss_non_monotone_eta{tag}", COHEN, f"eta = {eta}: though not monotonically "
                              f"(fraction of steps where the loss rose; declared: over 1%; {seeds})",
                              run["rising_fraction"], above=0.01)]
    return out


main = fw.entry_point(__name__)


if __name__ == "__main__":
    main()
