"""Sharp versus flat minima: small vs large batch, reparametrisation, SAM and the edge of stability.

Four phases, each a function the tests can call:

- ``batch_size_phase`` (Keskar et al. 2017, "On large-batch training for deep learning:
  generalization gap and sharp minima"): each task (an MLP and the published CNN on MNIST-1D,
  an MLP on digits) trained with Adam for the same epochs at a small batch (SB) and at about 10%
  of the training set (LB), the seeds of one regime as one vmapped fit; every solution gets its
  train and test metrics, the top Hessian eigenvalue (Lanczos), the trace (Hutchinson, with its
  standard error), Keskar's epsilon-sharpness at two epsilons in the full space and in a random
  subspace, and the filter-normalised sharpness (Li et al. 2018); the loss and accuracy along
  L(a x_LB + (1 - a) x_SB) for a in [-1, 2] (Keskar's parametric plot).
- ``reparametrization_phase`` (Dinh et al. 2017, "Sharp minima can generalize for deep nets"):
  the SB MLP solution rescaled by T_a(W1, b1, W2) = (a W1, a b1, W2 / a) over a grid of a: the
  outputs stay put while the top eigenvalue, the trace and epsilon-sharpness move; the trace
  beside its exact prediction a^-2 tr H_11 + a^2 tr H_22 + tr H_rest from block traces at a = 1;
  the filter-normalised sharpness beside them.
- ``sam_phase`` (Foret et al. 2021): SAM on Adam against Adam alone at equal steps.
- ``edge_of_stability_phase`` (Cohen et al. 2021): full-batch gradient descent with MSE on
  one-hot targets for a tanh MLP at three step sizes, the top Hessian eigenvalue tracked every k
  steps inside the compiled training program (:class:`jaxdl.curvature.SharpnessProbe`).

The claims about the generalisation gap are made on the MNIST-1D tasks; digits is reported
beside them (both regimes reach the same test accuracy there within seed noise).
"""
from __future__ import annotations

import sys

import jax
import ml_collections
import numpy as np
import optax

from experiments import common
from experiments.sharp_flat_measures import edge_of_stability_claims, measure_sharpness, summarize
from jaxdl import curvature, io, landscape, losses, optim, plot, train
from jaxdl import data as datasets
from jaxdl.models import get_model

NAME = "sharp_flat"
DESCRIPTION = ("small vs large batch (Keskar), alpha-reparametrisation (Dinh), SAM (Foret), "
               "edge of stability (Cohen): sharpness measures and the claims they test")
DEVICE_FIELDS = {"seeds": "seeds", "chunk_size": "examples_per_chunk"}  # see experiments.device_defaults


def _task(dataset, model, learning_rate, epochs, small_batch, large_batch, standardize=True, **hparams):
    return dict(dataset=dataset, standardize=standardize, model=model, hparams=hparams, learning_rate=learning_rate,
                epochs=epochs, small_batch=small_batch, large_batch=large_batch)


def get_config(size: str = "default") -> ml_collections.ConfigDict:
    """Sizes: ``quick`` (seconds, tests); ``default`` (about three minutes on 2 CPU cores);
    ``full`` (closer to the papers: a CNN on CIFAR-10 files, batches 256 vs 5000, longer
    edge-of-stability runs; for a GPU or TPU)."""
    common.check_size(size)
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.seeds = 3
    c.optimizer = "adam"
    c.tasks = ml_collections.ConfigDict(dict(
        mnist1d_mlp=_task("mnist1d", "mlp", 2e-3, 80, 64, 400, widths=(100, 100)),
        mnist1d_cnn=_task("mnist1d", "cnn1d", 2e-3, 30, 64, 400, standardize=False, channels=(25, 25, 25),
                          kernel_size=5, strides=2, pool="none", dense_widths=(), conv_implementation="patches"),
        digits_mlp=_task("digits", "mlp", 2e-3, 40, 32, 144, widths=(100, 100)),
    ))
    c.claim_tasks = ("mnist1d_mlp", "mnist1d_cnn")  # the generalisation-gap claims
    c.parametric_task = "mnist1d_mlp"  # Keskar's parametric plot
    c.chunk_size = 1000
    c.lanczos_steps = 20
    c.trace_probes = 30
    c.epsilons = (1e-3, 5e-4)
    c.subspace_dim = 100
    c.lbfgs_iterations = 10
    c.filter_radius = 0.25
    c.filter_directions = 4
    c.filter_points = 11
    c.num_alphas = 25  # Keskar's parametric plot on the first task, a in [-1, 2]
    c.reparam_alphas = (0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0)
    c.reparam_task = "mnist1d_mlp"  # a ReLU MLP: T_a preserves its function
    c.reparam_layers = ("hidden_0", "hidden_1")
    c.sam_task = "mnist1d_mlp"
    c.sam_epochs = 40
    c.sam_rho = 0.05
    c.eos = ml_collections.ConfigDict(dict(dataset="mnist1d", num_examples=1000, widths=(100, 100), activation="tanh",
                                           learning_rates=(0.2, 0.7, 1.0), steps=3000, steps_per_call=500,
                                           probe_every=50, lanczos_steps=10))
    if size == "quick":
        c.seeds = 2
        c.tasks = ml_collections.ConfigDict(dict(
            mnist1d_mlp=_task("mnist1d", "mlp", 2e-3, 1, 64, 400, widths=(16, 16))))
        c.claim_tasks = ("mnist1d_mlp",)
        c.lanczos_steps, c.trace_probes, c.subspace_dim, c.lbfgs_iterations = 5, 4, 10, 2
        c.filter_directions, c.filter_points, c.num_alphas = 1, 3, 5
        c.reparam_alphas = (0.1, 1.0, 10.0)
        c.sam_epochs = 1
        c.eos.update(num_examples=200, widths=(16, 16), steps=60, steps_per_call=30, probe_every=10, lanczos_steps=5)
    elif size == "full":
        c.seeds = 5
        c.tasks.mnist1d_mlp.epochs = 200
        c.tasks.mnist1d_cnn.epochs = 100
        c.tasks.digits_mlp.epochs = 100
        c.tasks.cifar10_cnn = _task("cifar10", "cnn2d", 1e-3, 100, 256, 5000, channels=(64, 128, 256), kernel_size=3,
                                    pool="max", dense_widths=(256,))
        c.claim_tasks = ("mnist1d_mlp", "mnist1d_cnn", "cifar10_cnn")
        c.lanczos_steps, c.trace_probes, c.lbfgs_iterations = 30, 100, 20
        c.sam_epochs = 100
        c.eos.update(num_examples=5000, widths=(200, 200), steps=20000, steps_per_call=1000, probe_every=100,
                     lanczos_steps=20)
    return c


def _validate(config):
    for field in ("seeds", "chunk_size", "lanczos_steps", "subspace_dim", "lbfgs_iterations", "filter_directions",
                  "num_alphas", "sam_epochs"):
        common.require(int(config[field]) > 0, field, "a positive integer", config[field])
    common.require(int(config.trace_probes) >= 2, "trace_probes", "an integer >= 2", config.trace_probes)
    common.require(config.filter_points >= 3 and config.filter_points % 2, "filter_points", "an odd integer >= 3",
                   config.filter_points)
    common.require(all(e > 0 for e in config.epsilons), "epsilons", "positive numbers", config.epsilons)
    common.require(all(a > 0 for a in config.reparam_alphas) and 1.0 in config.reparam_alphas, "reparam_alphas",
                   "positive numbers including 1.0", config.reparam_alphas)
    for field in ("sam_task", "reparam_task", "parametric_task"):
        common.require(config[field] in config.tasks, field, f"one of {list(config.tasks)}", config[field])
    common.require(all(t in config.tasks for t in config.claim_tasks), "claim_tasks",
                   f"names from {list(config.tasks)}", config.claim_tasks)
    for name, task in config.tasks.items():
        for field in ("epochs", "small_batch", "large_batch"):
            common.require(int(task[field]) > 0, f"tasks.{name}.{field}", "a positive integer", task[field])
        common.require(task.learning_rate > 0, f"tasks.{name}.learning_rate", "a positive number", task.learning_rate)
    for field in ("num_examples", "steps", "steps_per_call", "probe_every", "lanczos_steps"):
        common.require(int(config.eos[field]) > 0, f"eos.{field}", "a positive integer", config.eos[field])
    common.require(config.eos.steps % config.eos.steps_per_call == 0, "eos.steps", "a multiple of eos.steps_per_call",
                   config.eos.steps)
    common.require(all(lr > 0 for lr in config.eos.learning_rates) and len(config.eos.learning_rates) == 3,
                   "eos.learning_rates", "three positive step sizes", config.eos.learning_rates)


# ----------------------------------------------------------------------------- phases


def task_order(config) -> list[str]:
    """The claim tasks first, in their order, then the others (ConfigDict sorts its keys)."""
    return list(config.claim_tasks) + sorted(set(config.tasks) - set(config.claim_tasks))


def _load_task(task):
    data = datasets.load(task.dataset, standardize=task.standardize)
    return data, get_model(task.model, num_outputs=data.num_classes, **task.hparams.to_dict())


def _fit_regime(config, task, model, data, batch_size, tx, logger, epochs=None):
    seeds = [config.seed + i for i in range(config.seeds)]
    epochs = int(epochs or task.epochs)
    return train.fit_seeds(model, data, tx, seeds=seeds, epochs=epochs, batch_size=int(batch_size), eval_every=epochs,
                           logger=logger)


def _measure_seeds(config, model, data, result, key) -> list[dict]:
    """The sharpness measures of every seed's solution, with its final metrics."""
    rows = []
    for k in range(len(result.history["test_accuracy"])):
        state = train.unstack(result.state, k)
        apply_fn = train.make_apply_fn(model, state.model_state)
        measures = measure_sharpness(config, apply_fn, state.params, (data.x_train, data.y_train), key)
        final = {name: float(result.history[name][k, -1]) for name in ("train_loss", "test_loss", "train_accuracy",
                                                                       "test_accuracy")}
        rows.append({**final, **measures})
    return rows


def batch_size_phase(config, run_dir, logger) -> dict:
    """SB and LB solutions of every task with their sharpness, and Keskar's parametric plot of
    the first task (seed 0). Returns ``{'solutions': {task: {'SB'|'LB': [rows]}}, 'figures',
    'arrays', 'states'}``."""
    key = jax.random.key(config.seed + 5)
    solutions, arrays, figures, states = {}, {}, [], {}
    for name in task_order(config):
        task = config.tasks[name]
        data, model = _load_task(task)
        tx = optim.get_optimizer(config.optimizer, task.learning_rate)
        results = {regime: _fit_regime(config, task, model, data, task[f"{size}_batch"], tx,
                                       logger.with_tags(run=f"{name}/{regime}"))
                   for regime, size in (("SB", "small"), ("LB", "large"))}
        solutions[name] = {regime: _measure_seeds(config, model, data, result, key)
                           for regime, result in results.items()}
        states[name] = (model, data, {regime: train.unstack(r.state, 0) for regime, r in results.items()})
        if name == config.parametric_task:
            figures.append(_parametric_plot(config, run_dir, name, model, data, states[name][2], solutions[name],
                                            arrays))
    return {"solutions": solutions, "figures": figures, "arrays": arrays, "states": states}


def _parametric_plot(config, run_dir, name, model, data, regimes, solutions, arrays) -> str:
    alphas = np.linspace(-1.0, 2.0, config.num_alphas)
    apply_fn = train.make_apply_fn(model, regimes["SB"].model_state)
    curves = {split: landscape.interpolate(apply_fn, regimes["SB"].params, regimes["LB"].params, batch, alphas,
                                           chunk_size=config.chunk_size)
              for split, batch in (("train", (data.x_train, data.y_train)), ("test", (data.x_test, data.y_test)))}
    arrays.update({f"parametric/{split}_{metric}": np.asarray(values)
                   for split, metrics in curves.items() for metric, values in metrics.items()})
    arrays["parametric/alphas"] = alphas
    path = run_dir.figure_path("parametric_sb_lb")
    plot.parametric_plot(alphas, {f"{s} loss": curves[s]["loss"] for s in curves},
                         {f"{s} accuracy": curves[s]["accuracy"] for s in curves},
                         sharpness={f"{regime} top eigenvalue": (float(a), solutions[regime][0]["top_eigenvalue"])
                                    for regime, a in (("SB", 0.0), ("LB", 1.0))},
                         xlabel="a  (theta = a x_LB + (1 - a) x_SB)", sharpness_label="top Hessian eigenvalue",
                         title=f"{name}: small batch (a = 0) to large batch (a = 1), seed {config.seed}", path=path)
    return path


def reparametrization_phase(config, run_dir, model, data, params) -> dict:
    """The alpha-scaled SB solution over ``config.reparam_alphas``: ``{'rows', 'figures'}``."""
    first, second = config.reparam_layers
    batch, key = (data.x_train, data.y_train), jax.random.key(config.seed + 9)
    apply_fn = train.make_apply_fn(model)
    loss_fn = losses.make_loss_fn(apply_fn)
    blocks = curvature.alpha_scaling_blocks(params, first, second)
    trace = lambda p, where=None: curvature.hessian_trace(loss_fn, p, batch, num_probes=config.trace_probes, key=key,
                                                          chunk_size=config.chunk_size, where=where)
    block_traces = {name: float(trace(params, mask).estimate) for name, mask in blocks.items()}
    outputs = np.asarray(apply_fn(params, data.x_test), np.float64)
    rows = []
    for alpha in config.reparam_alphas:
        scaled = curvature.alpha_scale(params, first, second, alpha)
        difference = np.asarray(apply_fn(scaled, data.x_test), np.float64) - outputs
        change = np.max(np.abs(difference)) / np.max(np.abs(outputs))
        measures = measure_sharpness(config, apply_fn, scaled, batch, key, epsilons=config.epsilons[:1],
                                     subspace=False)
        blockwise = sum(float(trace(scaled, mask).estimate) for mask in blocks.values())
        rows.append({"alpha": float(alpha), "max_relative_output_change": float(change), **measures,
                     "blockwise_trace": blockwise, "predicted_trace": float(curvature.alpha_scaled_trace(block_traces,
                                                                                                          alpha))})
    keys = ("top_eigenvalue", "trace", "epsilon_sharpness_1e-03", "filter_normalized_sharpness")
    at_one = next(r for r in rows if r["alpha"] == 1.0)
    path = run_dir.figure_path("reparametrization")
    alphas = [r["alpha"] for r in rows]
    curves = {name.replace("_", " "): (alphas, [max(r[name] / at_one[name], 1e-6) for r in rows]) for name in keys}
    curves["predicted trace"] = (alphas, [r["predicted_trace"] / at_one["predicted_trace"] for r in rows])
    plot.line_plot(curves, xlabel="a  in  T_a(W1, b1, W2) = (a W1, a b1, W2 / a)",
                   ylabel="measure / its value at a = 1",
                   title="the same function, other sharpness (Dinh et al. 2017)", logx=True, logy=True, path=path)
    return {"rows": rows, "block_traces": block_traces, "figures": [path]}


def sam_phase(config, logger) -> dict:
    """SAM(Adam) against Adam on ``config.sam_task`` at equal steps: ``{'base': rows, 'sam': rows}``."""
    task = config.tasks[config.sam_task]
    data, model = _load_task(task)
    key = jax.random.key(config.seed + 5)
    out = {}
    sam = optim.get_optimizer("sam", task.learning_rate, base=config.optimizer, rho=config.sam_rho)
    for name, tx in (("base", optim.get_optimizer(config.optimizer, task.learning_rate)), ("sam", sam)):
        result = _fit_regime(config, task, model, data, task.small_batch, tx, logger.with_tags(run=f"sam/{name}"),
                             epochs=config.sam_epochs)
        out[name] = _measure_seeds(config, model, data, result, key)
    return out


def edge_of_stability_phase(config, run_dir, logger) -> dict:
    """Full-batch GD at each step size with the sharpness tracked in the compiled loop:
    ``{'runs': {eta: {'steps', 'sharpness', 'loss'}}, 'figures'}``."""
    eos = config.eos
    source = datasets.load(eos.dataset)
    n = int(eos.num_examples)
    one_hot = lambda y: np.eye(source.num_classes, dtype=np.float32)[y]
    data = datasets.Dataset(source.x_train[:n], one_hot(source.y_train[:n]), source.x_test, one_hot(source.y_test),
                            None, f"{eos.dataset}/one-hot")
    model = get_model("mlp", widths=tuple(eos.widths), activation=eos.activation, num_outputs=source.num_classes)
    probe = curvature.SharpnessProbe(num_steps=int(eos.lanczos_steps), chunk_size=None)
    runs = {}
    for eta in eos.learning_rates:
        result = train.fit(model, data, optax.sgd(eta), epochs=int(eos.steps), batch_size=None, loss_name="mse",
                           seed=config.seed, epochs_per_call=int(eos.steps_per_call), eval_every=int(eos.steps),
                           probes={"sharpness": probe}, probe_every=int(eos.probe_every),
                           logger=logger.with_tags(run=f"eos/{eta:g}"))
        sharpness = result.history["probe/sharpness"]
        measured = np.flatnonzero(~np.isnan(sharpness))
        runs[float(eta)] = {"steps": measured, "sharpness": sharpness[measured], "loss": result.history["batch_loss"]}
    path = run_dir.figure_path("edge_of_stability")
    plot.edge_of_stability({f"eta = {eta:g}": (r["steps"], r["sharpness"], 2.0 / eta, np.arange(len(r["loss"])),
                                               r["loss"]) for eta, r in runs.items()},
                           title=f"full-batch GD, tanh MLP, MSE, {n} {eos.dataset} examples", path=path)
    return {"runs": runs, "figures": [path]}


def run(config, run_dir: io.RunDir) -> dict:
    _validate(config)
    timed = common.PhaseTimer()
    with run_dir.logger() as logger:
        batch_sizes = timed("small vs large batch", batch_size_phase, config, run_dir, logger)
        model, data, regimes = batch_sizes["states"][config.reparam_task]
        reparam = timed("reparametrisation", reparametrization_phase, config, run_dir, model, data,
                        regimes["SB"].params)
        sam = timed("SAM", sam_phase, config, logger)
        eos = timed("edge of stability", edge_of_stability_phase, config, run_dir, logger)
    summary = summarize(config, batch_sizes["solutions"], reparam, sam, eos["runs"])
    summary["tables"]["seconds per phase"] = timed.table()
    arrays = dict(batch_sizes["arrays"])
    for eta, r in eos["runs"].items():
        arrays.update({f"eos/{eta:g}/{k}": np.asarray(v) for k, v in r.items()})
    run_dir.save_results(**arrays)
    return {"tables": summary["tables"], "figures": batch_sizes["figures"] + reparam["figures"] + eos["figures"],
            **summary["numbers"]}


def claims(result: dict) -> list:
    out = []
    for task, numbers in result["batch_size"].items():
        out.append(common.Claim.check(
            "Keskar et al. 2017", f"{task}: large-batch minima are sharper (LB/SB ratio of the top Hessian eigenvalue; "
            "of epsilon-sharpness at 1e-3)", "both > 1", (numbers["eigenvalue_ratio"], numbers["epsilon_ratio"]),
            lambda v: v[0] > 1 and v[1] > 1, "{0[0]:.2f}x; {0[1]:.2f}x"))
        out.append(common.Claim.at_least(
            "Keskar et al. 2017", f"{task}: and generalise worse (test accuracy SB minus LB, mean over seeds)",
            numbers["test_accuracy_gap"], 0.0, "{:.3f}"))
    reparam = result["reparametrization"]
    out.append(common.Claim.at_most(
        "Dinh et al. 2017", "alpha-scaling leaves the outputs unchanged (max relative change over the a grid)",
        reparam["max_output_change"], 1e-5, "{:.1e}"))
    out.append(common.Claim.at_least(
        "Dinh et al. 2017", "while the top eigenvalue spans orders of magnitude (max / min over the a grid)",
        reparam["eigenvalue_span"], 100.0, "{:.3g}"))
    out.append(common.Claim.at_most(
        "Dinh et al. 2017", "and the trace follows a^-2 tr H_11 + a^2 tr H_22 + tr H_rest (largest relative error)",
        reparam["trace_prediction_error"], 0.01, "{:.1e}"))
    sam = result["sam"]
    out.append(common.Claim.check(
        "Foret et al. 2021", "SAM finds a flatter minimum (top eigenvalue, SAM vs base) at comparable or better test "
        "accuracy (SAM minus base >= -0.01)", "lower; >= -0.01",
        (sam["top_eigenvalue"], sam["base_top_eigenvalue"], sam["test_accuracy_difference"]),
        lambda v: v[0] < v[1] and v[2] >= -0.01, "{0[0]:.3g} vs {0[1]:.3g}; {0[2]:+.3f}"))
    out.extend(edge_of_stability_claims(result["edge_of_stability"]))
    return out


def main(argv=None):
    return common.experiment_main(sys.modules[__name__], argv)


if __name__ == "__main__":
    main()
