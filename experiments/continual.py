"""Continual learning: catastrophic forgetting, and the warm-starting gap with its remedy.

Two phenomena of networks trained on data that arrive in parts:

- Catastrophic forgetting (McCloskey & Cohen 1989; Goodfellow et al. 2013): an MLP trained on a
  sequence of tasks -- ``digits`` split into class pairs (split MNIST, Zenke et al. 2017) and
  permuted ``mnist1d`` (permuted MNIST, Kirkpatrick et al. 2017) -- loses its accuracy on the
  first task while it learns the later ones. We record the accuracy on every task after every
  epoch: the accuracy matrix (tasks trained x tasks evaluated) and per-task curves.
- The warm-starting gap (Ash & Adams 2020, "On Warm-Starting Neural Network Training"): a
  network trained on half of the training set and then on all of it generalises worse than one
  trained on all of it from scratch, although both fit the training set; starting the second
  round from ``shrink * theta + noise_scale * fresh_init`` (shrink-and-perturb,
  :func:`jaxdl.warm_start.shrink_perturb`, the authors' code's defaults 0.4 and 0.1) closes
  part of the gap. The three second rounds of a seed see the same minibatches, and the
  perturbation of shrink-and-perturb is the scratch run's own initialisation.
- Loss of plasticity (Berariu et al. 2020, "A study on the plasticity of neural networks"; a
  stretch): along a long permuted sequence each new task is learned to a lower test accuracy
  than task 0, whose accuracy is a fresh network's (an MLP is blind to the order of its inputs).

Every run is ``vmap``ped over seeds (and, in the second round, over the three starts) in one
compiled epoch program (:func:`jaxdl.train.build_epoch_programs`); the optimizer state is reset
at the start of each task and of each round, as in the authors' code.
"""
from __future__ import annotations

import functools
import sys

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from experiments import common
from jaxdl import checks, compiled, io, optim, plot, train, warm_start
from jaxdl import data as datasets
from jaxdl.data.tasks import TASK_SPLITS, make_tasks
from jaxdl.models import get_model
from jaxdl.plot import continual as continual_plot

NAME = "continual"
DESCRIPTION = "catastrophic forgetting on task sequences; the warm-starting gap and shrink-and-perturb"
DEVICE_FIELDS = {"task_seeds": "seeds", "warm_seeds": "seeds"}  # see experiments.device_defaults

DATASETS = ("digits", "mnist1d")
STARTS = ("warm start", "scratch", "shrink-perturb")


def get_config(size: str = "default") -> ml_collections.ConfigDict:
    """Sizes: ``quick`` (seconds, tests), ``default`` (about two minutes on 2 CPU cores), ``full``."""
    common.check_size(size)
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.widths = (128, 128)
    c.learning_rate = 3e-3
    # Forgetting: "<data set>/<split>" sequences, split a key of jaxdl.data.tasks.TASK_SPLITS.
    c.task_sequences = ("digits/class_split", "mnist1d/permuted")
    c.classes_per_task = 2
    c.num_permuted_tasks = 10
    c.task_seeds = 3
    c.epochs_per_task = 10
    c.task_batch_size = 32
    # The warm-starting gap.
    c.warm_dataset = "mnist1d"
    c.warm_fraction = 0.5
    c.warm_seeds = 6
    c.first_epochs = 40
    c.second_epochs = 40
    c.warm_batch_size = 100
    c.shrink = 0.4
    c.noise_scale = 0.1
    if size == "quick":
        # 6 runs of batch 64 on the whole of digits in both phases: the permuted sequence and the
        # second round share one compiled epoch program.
        c.widths = (32,)
        c.task_sequences = ("digits/permuted",)
        c.num_permuted_tasks = 3
        c.task_seeds = 6
        c.epochs_per_task = 2
        c.task_batch_size = 64
        c.warm_dataset = "digits"
        c.warm_seeds = 2
        c.first_epochs = 2
        c.second_epochs = 2
        c.warm_batch_size = 64
    elif size == "full":
        c.num_permuted_tasks = 30
        c.task_seeds = 10
        c.warm_seeds = 10
        c.first_epochs = 200
        c.second_epochs = 200
    return c


def _validate(config):
    for field in ("num_permuted_tasks", "task_seeds", "epochs_per_task", "task_batch_size", "warm_seeds",
                  "first_epochs", "second_epochs", "warm_batch_size", "classes_per_task"):
        common.require(checks.is_integer(config[field]) and config[field] > 0, field, "a positive integer",
                       config[field])
    common.require(checks.is_integer(config.seed) and config.seed >= 0, "seed", "a non-negative integer", config.seed)
    common.require(10 % config.classes_per_task == 0, "classes_per_task", "a divisor of the 10 classes",
                   config.classes_per_task)
    common.require(config.learning_rate > 0, "learning_rate", "a positive learning rate", config.learning_rate)
    for sequence in config.task_sequences:
        name, _, split = str(sequence).partition("/")
        common.require(name in DATASETS and split in TASK_SPLITS, "task_sequences",
                       f"'<data set>/<split>' with a data set among {list(DATASETS)} and a split among "
                       f"{sorted(TASK_SPLITS)}", sequence)
    common.require(config.warm_dataset in DATASETS, "warm_dataset", f"one of {list(DATASETS)}", config.warm_dataset)
    common.require(0 < config.warm_fraction < 1, "warm_fraction", "a fraction in (0, 1)", config.warm_fraction)
    common.require(0 <= config.shrink <= 1, "shrink", "a factor in [0, 1]", config.shrink)
    common.require(config.noise_scale >= 0, "noise_scale", "a non-negative noise scale", config.noise_scale)


def _streams(first_seed: int, num_seeds: int):
    """Per seed k the keys ``(init_K, data_K, fresh_K)``: first initialisation, minibatch order,
    and the fresh initialisation of a second round (scratch, and the perturbation)."""
    keys_Kx3 = _split_seeds(np.arange(first_seed, first_seed + num_seeds, dtype=np.uint32))
    return keys_Kx3[:, 0], keys_Kx3[:, 1], keys_Kx3[:, 2]


@jax.jit
def _split_seeds(seeds_K):
    return jax.vmap(lambda seed: jax.random.split(jax.random.key(seed), 3))(seeds_K)


@compiled.jit
def _init_params(model, example_x, keys_K):
    """Parameters of K fresh initialisations, as :func:`jaxdl.train.init_states` draws them."""
    return train.init_states(model, optim.get_optimizer("sgd", 1.0), example_x, keys_K).params


@compiled.jit
def _start_states(tx, params_K) -> train.TrainState:
    """Stacked states at ``params_K`` with a new optimizer state (and step 0)."""
    num_runs = jax.tree.leaves(params_K)[0].shape[0]
    rng_Kx2 = jax.vmap(jax.random.key_data)(jax.random.split(jax.random.key(0), num_runs))  # no dropout: unused
    return train.TrainState(step=jnp.zeros((num_runs,), jnp.int32), params=params_K, model_state={},
                            opt_state=jax.vmap(tx.init)(params_K), rng=rng_Kx2)


def continue_training(model, tx, states_K, data, data_keys_K, *, epochs: int, batch_size: int, first_epoch: int = 0,
                      measure=None):
    """Train K stacked states (any leading run axis K) on ``data`` for ``epochs`` epochs from where
    they are, one compiled ``vmap``ped epoch program per epoch; run k's minibatches are
    :func:`jaxdl.train.epoch_order` of ``data_keys_K[k]`` and the epoch number (counted from
    ``first_epoch``). ``states_K`` is consumed (its buffers are donated to the program).

    ``measure(states_K, evaluate)`` is called before the first epoch and after each one;
    ``evaluate(states_K)`` gives the train and test loss and accuracy of ``data``, each of shape
    (K,) (:func:`jaxdl.train.build_epoch_programs`). Returns ``(states_K, [epochs + 1 values of
    measure])``. What ``train.fit_seeds(..., initial_states=states_K)`` would do, had it that argument."""
    num_runs = len(data_keys_K)
    mesh = train.seeds_mesh(num_runs, batch_size)
    plan = train.make_plan(data, batch_size, epochs, mesh=mesh)
    train_epoch, eval_both = train.build_epoch_programs(model, tx, "cross_entropy", plan, vmapped=True)
    # Committed to the mesh up front, as in fit, so that every epoch runs the same program.
    x, y, x_test, y_test = jax.device_put((data.x_train, data.y_train, data.x_test, data.y_test),
                                          NamedSharding(mesh, P()))
    evaluate = lambda states: eval_both(states, x, y, x_test, y_test)
    states_K = jax.device_put(states_K, NamedSharding(mesh, P("seeds")))
    order_sharding = NamedSharding(mesh, P("seeds", None, "data"))
    values = [] if measure is None else [measure(states_K, evaluate)]
    for epoch in range(first_epoch, first_epoch + epochs):
        order_KxSxB = np.stack([train.epoch_order(key, epoch, plan) for key in data_keys_K])
        states_K, metrics = train_epoch(states_K, x, y, jax.device_put(order_KxSxB, order_sharding))
        checks.raise_if_not_finite(np.asarray(metrics["loss"]), what="training loss",
                                   first_step=epoch * plan.steps_per_epoch, epoch=epoch,
                                   hint="lower config.learning_rate")
        if measure is not None:
            values.append(measure(states_K, evaluate))
    return states_K, values


@compiled.jit
def _accuracies(apply_fn, params_K, x_TxNx, y_TxN):
    """``accuracy_KxT``: the accuracy of each of K parameter sets on each of T test sets."""
    def accuracy(params, x, y):
        return train.evaluate(apply_fn, params, (x, y))["accuracy"]

    return jax.vmap(lambda p: jax.vmap(lambda x, y: accuracy(p, x, y))(x_TxNx, y_TxN))(params_K)


def _equal_sizes(tasks):
    """The tasks cut to the smallest task's numbers of training and test examples, so that every
    task has the same shapes (one compiled program for all)."""
    num_train, num_test = min(t.num_train for t in tasks), min(t.num_test for t in tasks)
    return [datasets.Dataset(t.x_train[:num_train], t.y_train[:num_train], t.x_test[:num_test], t.y_test[:num_test],
                             t.num_classes, t.name) for t in tasks]


def run_sequence(config, sequence: str) -> dict:
    """Train ``config.task_seeds`` MLPs through the tasks of ``sequence`` ('<data set>/<split>').

    Returns ``{'curves_KxExT', 'matrix_TxT'}``: the test accuracy on each task after each epoch
    of the whole sequence, per seed, and its seed mean after the last epoch of each task."""
    name, _, split = sequence.partition("/")
    data = datasets.load(name)
    options = dict(num_tasks=config.num_permuted_tasks, seed=config.seed) if split == "permuted" else dict(
        classes_per_task=config.classes_per_task)
    tasks = _equal_sizes(make_tasks(data, split, **options))
    model = get_model("mlp", widths=tuple(config.widths), num_outputs=data.num_classes)
    tx = optim.get_optimizer("adam", config.learning_rate)
    apply_fn = train.make_apply_fn(model)
    x_test_TxN, y_test_TxN = (jnp.asarray(np.stack([getattr(t, f) for t in tasks])) for f in ("x_test", "y_test"))
    init_keys, data_keys, _ = _streams(config.seed, config.task_seeds)
    params_K = _init_params(model, tasks[0].x_train[:1], init_keys)
    curves = []
    for t, task in enumerate(tasks):
        states_K, values = continue_training(
            model, tx, _start_states(tx, params_K), task, data_keys, epochs=config.epochs_per_task,
            batch_size=config.task_batch_size, first_epoch=t * config.epochs_per_task,
            measure=lambda s, _: _accuracies(apply_fn, s.params, x_test_TxN, y_test_TxN))
        params_K = states_K.params
        # Before task t (t > 0) is where task t - 1 ended: kept once.
        curves += [np.asarray(v) for v in values[(t > 0):]]
    curves_KxExT = np.stack(curves, axis=1)
    ends = np.arange(1, len(tasks) + 1) * config.epochs_per_task
    return {"curves_KxExT": curves_KxExT, "matrix_TxT": curves_KxExT[:, ends].mean(0),
            "labels": [t.name.split("/")[-1] for t in tasks]}


@functools.partial(compiled.jit, static_argnames=("shrink", "noise_scale"))
def _shrink_perturb_seeds(params_K, fresh_K, fresh_keys_K, *, shrink, noise_scale):
    """Shrink-and-perturb of K parameter sets, run k perturbed by ``fresh_K[k]``, the model's
    initialisation drawn from ``fresh_keys_K[k]`` (so ``shrink=0, noise_scale=1`` is that fresh start)."""
    def one(params, fresh, key):
        # fresh is init_fn(key), drawn already for the scratch runs: not drawn (nor compiled) twice.
        return warm_start.shrink_perturb(params, key, shrink, noise_scale, init_fn=lambda _: fresh)

    return jax.vmap(one)(params_K, fresh_K, fresh_keys_K)


def run_warm_start(config) -> dict:
    """Ash & Adams' two rounds on ``config.warm_dataset``: K seeds trained on a random
    ``warm_fraction`` of the training set, then a warm start, a fresh start (scratch) and
    shrink-and-perturb of the first round trained on all of it (one ``vmap`` over the 3K runs).

    Returns ``{'first_train_KxE', 'first_test_KxE', 'train_3xKxE', 'test_3xKxE'}``: the train (on
    its part) and test accuracy of the first round and of the three second rounds, before and after
    each epoch (E = epochs + 1)."""
    data = datasets.load(config.warm_dataset)  # the published split; config.seed draws the part and the runs
    # A random part (not the first examples), the same for every seed.
    count = int(config.warm_fraction * data.num_train)
    order = np.random.default_rng(config.seed).permutation(data.num_train)[:count]
    part = datasets.Dataset(data.x_train[order], data.y_train[order], data.x_test, data.y_test, data.num_classes,
                            f"{data.name}/part")
    model = get_model("mlp", widths=tuple(config.widths), num_outputs=data.num_classes)
    tx = optim.get_optimizer("adam", config.learning_rate)
    init_keys, data_keys, fresh_keys = _streams(config.seed, config.warm_seeds)
    example = data.x_train[:1]
    first_K, first_values = continue_training(
        model, tx, _start_states(tx, _init_params(model, example, init_keys)), part, data_keys,
        epochs=config.first_epochs, batch_size=config.warm_batch_size, measure=lambda s, evaluate: evaluate(s))
    fresh_K = _init_params(model, example, fresh_keys)
    perturbed_K = _shrink_perturb_seeds(first_K.params, fresh_K, fresh_keys, shrink=float(config.shrink),
                                        noise_scale=float(config.noise_scale))
    starts_3K = jax.tree.map(lambda *leaves: jnp.concatenate(leaves), first_K.params, fresh_K, perturbed_K)
    # The three starts of a seed see the same minibatches; before training, the warm start is
    # the first round's result.
    _, values = continue_training(
        model, tx, _start_states(tx, starts_3K), data, jnp.concatenate([data_keys] * 3),
        epochs=config.second_epochs, batch_size=config.warm_batch_size, first_epoch=config.first_epochs,
        measure=lambda s, evaluate: evaluate(s))
    stack = lambda measured, name: np.stack([np.asarray(v[name]) for v in measured], -1)
    runs = (len(STARTS), config.warm_seeds, -1)
    return {"first_train_KxE": stack(first_values, "train_accuracy"),
            "first_test_KxE": stack(first_values, "test_accuracy"),
            "train_3xKxE": stack(values, "train_accuracy").reshape(runs),
            "test_3xKxE": stack(values, "test_accuracy").reshape(runs)}


def run(config, run_dir: io.RunDir) -> dict:
    _validate(config)
    sequences = {sequence: run_sequence(config, sequence) for sequence in config.task_sequences}
    warm = run_warm_start(config)
    result = _report(config, sequences, warm, run_dir)
    arrays = {f"{s}/curves_KxExT": r["curves_KxExT"] for s, r in sequences.items()}
    arrays.update({f"warm_start/{k}": v for k, v in warm.items()})
    run_dir.save_results(**arrays)
    return result


def _warm_summary(test_3xK) -> dict:
    """The gap (scratch - warm start) and the part of it shrink-and-perturb recovers, means over
    seeds of paired differences, with their standard errors."""
    gap_K, recovered_K = test_3xK[1] - test_3xK[0], test_3xK[2] - test_3xK[0]
    stderr = lambda v: float(np.std(v, ddof=1) / np.sqrt(len(v))) if len(v) > 1 else float("nan")
    gap = float(gap_K.mean())
    return {"gap": gap, "gap_stderr": stderr(gap_K), "recovered": float(recovered_K.mean()),
            "recovered_stderr": stderr(recovered_K),
            "recovered_fraction": float(recovered_K.mean()) / gap if gap > 0 else float("nan")}


def _report(config, sequences, warm, run_dir) -> dict:
    rows = []
    figures = {name: run_dir.figure_path(name) for name in _figure_names(sequences)}
    for sequence, r in sequences.items():
        slug, matrix, curves = sequence.replace("/", "_"), r["matrix_TxT"], r["curves_KxExT"]
        continual_plot.accuracy_matrix(matrix, r["labels"], title=f"{sequence}: test accuracy (mean of {len(curves)} "
                                       f"seeds)", path=figures[f"accuracy_matrix_{slug}"])
        continual_plot.task_curves(curves.mean(0), config.epochs_per_task, curves.std(0), r["labels"],
                                   title=f"{sequence}: test accuracy on every task, tasks trained in turn",
                                   path=figures[f"task_curves_{slug}"])
        rows.append([sequence, len(matrix), matrix[0, 0], matrix[-1, 0], matrix[0, 0] - matrix[-1, 0],
                     float(np.mean(np.diag(matrix))), float(matrix[-1].mean())])
    trained, tested = warm["train_3xKxE"][..., -1], warm["test_3xKxE"][..., -1]
    num_seeds = tested.shape[1]
    plot.bar_chart(list(STARTS), tested.mean(1), errors=tested.std(1), ylabel="test accuracy",
                   title=f"{config.warm_dataset}: after the second round (mean +- std, {num_seeds} seeds)",
                   path=figures["warm_start_test_accuracy"])
    first, second = warm["first_test_KxE"], warm["test_3xKxE"]
    curves = {f"first round ({config.warm_fraction:.0%} of the data)": (np.arange(first.shape[-1]), first.mean(0),
                                                                        first.std(0))}
    epochs = config.first_epochs + np.arange(second.shape[-1])
    curves.update({start: (epochs, second[i].mean(0), second[i].std(0)) for i, start in enumerate(STARTS)})
    plot.line_plot(curves, xlabel="epoch", ylabel="test accuracy (mean +- std over seeds)",
                   title=f"{config.warm_dataset}: a first round on part of the data, a second on all of it",
                   path=figures["warm_start_curves"])
    summary = _warm_summary(tested)
    forgetting = common.format_table(
        ["sequence", "tasks", "task 0 after task 0", "task 0 after last", "drop", "mean new-task acc",
         "mean acc after last"], rows, float_format="{:.3f}")
    warm_rows = [[start, float(trained[i].mean()), float(tested[i].mean()), float(tested[i].std())]
                 for i, start in enumerate(STARTS)]
    first_train, first_test = warm["first_train_KxE"][:, -1], warm["first_test_KxE"][:, -1]
    warm_rows.insert(0, [f"(first round, on {config.warm_fraction:.0%} of the data)", float(first_train.mean()),
                         float(first_test.mean()), float(first_test.std())])
    warm_table = common.format_table(["second round from", "train accuracy", "test accuracy", "test std"],
                                     warm_rows, float_format="{:.4f}")
    warm_table += (f"\n\ngap (scratch - warm start): {summary['gap']:.4f} +- {summary['gap_stderr']:.4f} (s.e. over "
                   f"{num_seeds} paired seeds); shrink-and-perturb (shrink {config.shrink}, noise scale "
                   f"{config.noise_scale}) recovers {summary['recovered']:.4f} +- {summary['recovered_stderr']:.4f}, "
                   f"{summary['recovered_fraction']:.0%} of the gap")
    return {"tables": {"forgetting": forgetting, "warm start": warm_table}, "figures": list(figures.values()),
            "forgetting": {s: r["matrix_TxT"].tolist() for s, r in sequences.items()},
            "plasticity": {s: _plasticity(r["matrix_TxT"]) for s, r in sequences.items() if s.endswith("/permuted")},
            "warm_start": {**summary, "test": tested.tolist(), "train": trained.tolist()}}


def _plasticity(matrix_TxT) -> dict:
    """New-task accuracy along a permuted sequence: task 0's is a fresh network's (an MLP does not
    see the order of its input features), against the mean over the second half of the tasks."""
    diagonal = np.diag(matrix_TxT)
    return {"fresh": float(diagonal[0]), "late": float(diagonal[len(diagonal) // 2:].mean()),
            "late_tasks": f"{len(diagonal) // 2}-{len(diagonal) - 1}"}


def _figure_names(sequences) -> list:
    slugs = [s.replace("/", "_") for s in sequences]
    return ([name for slug in slugs for name in (f"accuracy_matrix_{slug}", f"task_curves_{slug}")]
            + ["warm_start_test_accuracy", "warm_start_curves"])


def claims(result: dict) -> list:
    out = []
    for sequence, matrix in result["forgetting"].items():
        matrix = np.asarray(matrix)
        out.append(common.Claim.at_least(
            "McCloskey & Cohen 1989; Goodfellow et al. 2013",
            f"{sequence}: task-0 test accuracy falls by at least 20 points after training on the later tasks",
            matrix[0, 0] - matrix[-1, 0], 0.20))
    for sequence, p in result.get("plasticity", {}).items():
        out.append(common.Claim.check(
            "Berariu et al. 2020 (stretch)", f"{sequence}: after earlier tasks a network learns a new task to a lower "
            f"test accuracy than a fresh one (task 0 minus mean of tasks {p['late_tasks']}, each just learned)",
            "> 0", p["fresh"] - p["late"], lambda d: d > 0, fmt="{:.3f}"))
    w = result["warm_start"]
    out.append(common.Claim.check(
        "Ash & Adams 2020", "a network warm-started from a first round on part of the data generalises worse than "
        "one trained from scratch (scratch - warm start test accuracy)", "> 0", w["gap"], lambda g: g > 0,
        fmt="{:.4f}"))
    out.append(common.Claim.check(
        "Ash & Adams 2020", "shrink-and-perturb closes part of that gap (shrink-perturb - warm start test accuracy; "
        "the fraction of the gap is in the table)", "> 0, with a gap > 0", w["recovered"],
        lambda r: r > 0 and w["gap"] > 0, fmt="{:.4f}"))
    return out


def main(argv=None):
    return common.experiment_main(sys.modules[__name__], argv)


if __name__ == "__main__":
    main()
