"""Continual learning: catastrophic forgetting, loss of plasticity, and the warm-starting gap.

- Forgetting (McCloskey & Cohen 1989; Goodfellow et al. 2013): an MLP trained on a sequence of
  tasks -- ``digits`` in class pairs (split MNIST, Zenke et al. 2017), permuted ``mnist1d``
  (permuted MNIST, Kirkpatrick et al. 2017) -- loses task 0 as it learns the later ones.
- Loss of plasticity (Berariu et al. 2020; a stretch): along a permuted sequence each new task is
  learned to a lower test accuracy than task 0, a fresh network's (an MLP is blind to input order).
- The warm-starting gap (Ash & Adams 2020): trained on half the training set, then on all of it, a
  network generalises worse than one trained on all of it from scratch, though both fit it; starting
  the second round from ``shrink * theta + noise_scale * fresh_init`` (shrink-and-perturb, the
  authors' code's 0.4 and 0.1) closes much of the gap. A seed's three second rounds see the same
  minibatches; the perturbation is the scratch run's own initialisation.

Runs are ``vmap``ped over seeds (and starts) in one compiled epoch program; the optimizer state is
reset at each task and round, as in the authors' code.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from experiments import framework as fw
from jaxdl import data as datasets, plot, train
from jaxdl.core import compiled, meshes
from jaxdl.course import warm_start
from jaxdl.train import optim
from jaxdl.data.tasks import TASK_SPLITS, make_tasks
from jaxdl.models import get_model
from jaxdl.plot import continual as continual_plot

NAME = "continual"
DESCRIPTION = "catastrophic forgetting on task sequences; the warm-starting gap and shrink-and-perturb"
DEVICE_FIELDS = {"task_seeds": "seeds", "warm_seeds": "seeds"}
DATASETS = ("digits", "mnist1d")
STARTS = ("warm start", "scratch", "shrink-perturb")


def get_config() -> ml_collections.ConfigDict:
    """The default size: about a minute on 2 CPU cores. task_sequences: '<data set>/<split>'."""
    return ml_collections.ConfigDict(dict(
        seed=0, widths=(128, 128), learning_rate=3e-3,
        task_sequences=("digits/class_split", "mnist1d/permuted"), classes_per_task=2, num_permuted_tasks=10,
        task_seeds=5, epochs_per_task=10, task_batch_size=32,
        warm_dataset="mnist1d", warm_fraction=0.5, warm_seeds=6, first_epochs=40, second_epochs=40,
        warm_batch_size=100, shrink=0.4, noise_scale=0.1))


# quick: 6 runs of batch 64 on all of digits in both phases: one compiled epoch program for both.
SIZES = {"quick": {"widths": (32,), "task_sequences": ("digits/permuted",), "num_permuted_tasks": 3, "task_seeds": 6,
                   "epochs_per_task": 2, "task_batch_size": 64, "warm_dataset": "digits", "warm_seeds": 2,
                   "first_epochs": 2, "second_epochs": 2, "warm_batch_size": 64},
         "full": {"num_permuted_tasks": 30, "task_seeds": 10, "warm_seeds": 10, "first_epochs": 200,
                  "second_epochs": 200}}
FIELDS = {**{field: fw.positive_int for field in ("num_permuted_tasks", "task_seeds", "epochs_per_task",
                                                  "task_batch_size", "warm_seeds", "first_epochs", "second_epochs",
                                                  "warm_batch_size")},
          "seed": fw.non_negative_int, "learning_rate": fw.positive, "widths": fw.positive_ints,
          "classes_per_task": fw.expect(lambda v: int(v) == v > 0 and 10 % v == 0, "a divisor of the 10 classes"),
          "task_sequences": fw.expect(lambda v: len(v) > 0 and all(
              s.partition("/")[0] in DATASETS and s.partition("/")[2] in TASK_SPLITS for s in v), "'<data set>/"
              f"<split>' names with a data set among {list(DATASETS)} and a split among {sorted(TASK_SPLITS)}"),
          "warm_dataset": fw.one_of(*DATASETS), "warm_fraction": fw.expect(lambda v: 0 < v < 1, "in (0, 1)"),
          "shrink": fw.probability, "noise_scale": fw.non_negative}


def _streams(first_seed: int, num_seeds: int):
    """Keys ``(init_K, data_K, fresh_K)`` per seed: first init, minibatch order, a second round's init."""
    keys_Kx3 = jax.vmap(lambda seed: jax.random.split(jax.random.key(seed), 3))(
        np.arange(first_seed, first_seed + num_seeds, dtype=np.uint32))
    return keys_Kx3[:, 0], keys_Kx3[:, 1], keys_Kx3[:, 2]


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
    """Train K stacked states on ``data`` for ``epochs`` epochs from where they are, run k's minibatches
    ``epoch_order`` of ``data_keys_K[k]`` and the epoch (from ``first_epoch``): the block program of
    ``train.fit_seeds`` run by the library's block runner (``train.run_blocks``), with this
    experiment's keys. ``measure(states_K, evaluate) -> {name: (K, ...)}`` runs before the first epoch
    and after each (``evaluate(states_K)``: train and test loss and accuracy of ``data``, each (K,)).
    Returns ``(states_K, [epochs + 1 measures])``."""
    mesh = meshes.seeds_mesh(len(data_keys_K), batch_size)
    plan = train.make_plan(data, batch_size, epochs, mesh=mesh)
    train_block, eval_both = train.build_block_programs(model, tx, "cross_entropy", plan, vmapped=True)
    x, y, x_test, y_test = meshes.place_data(data, mesh)
    evaluate = lambda states: eval_both(states, x, y, x_test, y_test)
    states_K = jax.device_put(states_K, NamedSharding(mesh, P("seeds")))
    before = [] if measure is None else [measure(states_K, evaluate)]

    def block(states, order, steps_S):
        states, _, metrics = train_block(states, {}, x, y, order, steps_S, None)
        return states, metrics

    states_K, history = train.run_blocks(
        block, states_K, plan, data_keys_K, epochs=epochs, vmapped=True, step_series={"batch_loss": "loss"},
        evaluate=None if measure is None else lambda states: measure(states, evaluate), first_epoch=first_epoch,
        progress=False, hint="lower config.learning_rate")
    names = [] if measure is None else list(before[0])
    return states_K, before + [{name: history[name][:, e] for name in names} for e in range(epochs)]


@compiled.jit
def _accuracies(apply_fn, params_K, x_TxNx, y_TxN):
    """``accuracy_KxT``: the accuracy of each of K parameter sets on each of T test sets."""
    accuracy = lambda p, x, y: train.evaluate(apply_fn, p, (x, y))["accuracy"]
    return jax.vmap(lambda p: jax.vmap(lambda x, y: accuracy(p, x, y))(x_TxNx, y_TxN))(params_K)


def _equal_sizes(tasks):
    """The tasks cut to the smallest task's sizes: the same shapes, one compiled program for all."""
    num_train, num_test = min(t.num_train for t in tasks), min(t.num_test for t in tasks)
    return [datasets.Dataset(t.x_train[:num_train], t.y_train[:num_train], t.x_test[:num_test], t.y_test[:num_test],
                             t.num_classes, t.name) for t in tasks]


def run_sequence(config, sequence: str) -> dict:
    """``config.task_seeds`` MLPs through the tasks of ``sequence``: test accuracy on each task after
    each epoch (``curves_KxExT``), after each task (``after_task_KxTxT``, seed mean ``matrix_TxT``)."""
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
            measure=lambda s, _: {"accuracy": _accuracies(apply_fn, s.params, x_test_TxN, y_test_TxN)})
        params_K = states_K.params
        # Before task t (t > 0) is where task t - 1 ended: kept once.
        curves += [np.asarray(v["accuracy"]) for v in values[(t > 0):]]
    curves_KxExT = np.stack(curves, axis=1)
    ends = np.arange(1, len(tasks) + 1) * config.epochs_per_task
    return {"curves_KxExT": curves_KxExT, "after_task_KxTxT": curves_KxExT[:, ends],
            "matrix_TxT": curves_KxExT[:, ends].mean(0), "labels": [t.name.split("/")[-1] for t in tasks],
            "chance": 1.0 / data.num_classes}


@functools.partial(compiled.jit, static_argnames=("shrink", "noise_scale"))
def _shrink_perturb_seeds(params_K, fresh_K, fresh_keys_K, *, shrink, noise_scale):
    """Shrink-and-perturb of K parameter sets by ``fresh_K``, the inits drawn from ``fresh_keys_K``."""
    def one(params, fresh, key):
        # fresh is init_fn(key), drawn already for the scratch runs: not drawn (nor compiled) twice.
        return warm_start.shrink_perturb(params, key, shrink, noise_scale, init_fn=lambda _: fresh)

    return jax.vmap(one)(params_K, fresh_K, fresh_keys_K)


def run_warm_start(config) -> dict:
    """Ash & Adams' two rounds: K seeds on a random ``warm_fraction`` of the training set, then a warm
    start, scratch and shrink-and-perturb on all of it (one ``vmap`` over the 3K runs). Returns the
    train and test accuracy of the first round (``*_KxE``) and the second (``*_3xKxE``), E = epochs + 1."""
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
    # The three starts of a seed see the same minibatches.
    _, values = continue_training(
        model, tx, _start_states(tx, starts_3K), data, jnp.concatenate([data_keys] * 3),
        epochs=config.second_epochs, batch_size=config.warm_batch_size, first_epoch=config.first_epochs,
        measure=lambda s, evaluate: evaluate(s))
    stack = lambda measured, name: np.stack([np.asarray(v[name]) for v in measured], -1)
    runs = (len(STARTS), config.warm_seeds, -1)
    return {**{f"first_{split}_KxE": stack(first_values, f"{split}_accuracy") for split in ("train", "test")},
            **{f"{split}_3xKxE": stack(values, f"{split}_accuracy").reshape(runs) for split in ("train", "test")}}


def forgetting_phase(config, ctx) -> fw.Phase:
    """Every task sequence over ``task_seeds`` seeds: accuracy matrices and per-task curves."""
    phase, rows = fw.Phase(), []
    for sequence in config.task_sequences:
        r = run_sequence(config, sequence)
        slug, matrix, curves = sequence.replace("/", "_"), r["matrix_TxT"], r["curves_KxExT"]
        phase.figures[f"accuracy_matrix_{slug}"] = continual_plot.accuracy_matrix(
            matrix, r["labels"], title=f"{sequence}: test accuracy (mean of {len(curves)} seeds)")
        phase.figures[f"task_curves_{slug}"] = continual_plot.task_curves(
            curves.mean(0), config.epochs_per_task, curves.std(0), r["labels"],
            title=f"{sequence}: test accuracy on every task, tasks trained in turn")
        phase.arrays[f"{sequence}/curves_KxExT"] = curves
        phase.numbers[sequence] = {"after_task_KxTxT": r["after_task_KxTxT"], "chance": r["chance"]}
        rows.append([sequence, len(matrix), matrix[0, 0], matrix[-1, 0], np.diag(matrix).mean(), matrix[-1].mean()])
    phase.tables["forgetting (means over seeds)"] = fw.format_table(
        ["sequence", "tasks", "task 0 after task 0", "task 0 after last", "mean new-task acc", "mean acc after last"],
        rows, "{:.3f}")
    return phase


def warm_start_phase(config, ctx) -> fw.Phase:
    """Ash & Adams' two rounds (``run_warm_start``): the table, the final test accuracies and curves."""
    warm = run_warm_start(config)
    first, second = warm["first_test_KxE"], warm["test_3xKxE"]
    trained, tested = warm["train_3xKxE"][..., -1], second[..., -1]
    first_round = f"first round, on {config.warm_fraction:.0%} of the data"
    rows = [[f"({first_round})", warm["first_train_KxE"][:, -1].mean(), first[:, -1].mean(), first[:, -1].std(ddof=1)]]
    rows += [[start, trained[i].mean(), tested[i].mean(), tested[i].std(ddof=1)] for i, start in enumerate(STARTS)]
    curves = {first_round: (np.arange(first.shape[-1]), first.mean(0), first.std(0)),
              **{start: (config.first_epochs + np.arange(second.shape[-1]), second[i].mean(0), second[i].std(0))
                 for i, start in enumerate(STARTS)}}
    figure = plot.line_plot(curves, xlabel="epoch", ylabel=f"test accuracy (mean +- std over {config.warm_seeds} "
                            f"seeds)", title=f"{config.warm_dataset}: a first round on part of the data, a second "
                            "on all of it")
    table = fw.format_table(["second round from", "train accuracy", "test accuracy", "test std over seeds"], rows)
    restart = float(np.abs(second[0, :, 0] - first[:, -1]).max())  # the warm start before its second round
    return fw.Phase(tables={f"warm start (shrink {config.shrink}, noise scale {config.noise_scale})": table},
                    figures={"warm_start_curves": figure}, arrays={f"warm_start/{k}": v for k, v in warm.items()},
                    numbers={"warm_start": {"test_3xK": tested, "train_3xK": trained, "restart_change": restart}})


def run(config, ctx) -> None:
    ctx.phase("forgetting", forgetting_phase, config, ctx)
    ctx.phase("warm start", warm_start_phase, config, ctx)


def claims(config, numbers) -> list:
    out = []
    for sequence in config.task_sequences:
        after_KxTxT, chance = np.asarray(numbers[sequence]["after_task_KxTxT"]), numbers[sequence]["chance"]
        slug, (num_seeds, num_tasks, _) = sequence.replace("/", "_"), after_KxTxT.shape
        first, last, diagonal_KxT = after_KxTxT[:, 0, 0], after_KxTxT[:, -1, 0], np.diagonal(after_KxTxT, 0, 1, 2)
        out.append(fw.Claim.mean(
            f"{slug}_forgetting", "McCloskey & Cohen 1989; Goodfellow et al. 2013", f"{sequence}: the later tasks "
            f"erase at least half of task 0's test accuracy above chance ((after task 0 - after the last) / (after "
            f"task 0 - 1/C), mean over {num_seeds} seeds; in the paper the twos facts all but erased the ones)",
            (first - last) / (first - chance), above=0.5))
        if sequence.endswith("/permuted"):
            out.append(fw.Claim.difference(
                f"{slug}_plasticity_loss", "Berariu et al. 2020 (stretch)", f"{sequence}: after earlier tasks a "
                f"network learns a new task to a lower test accuracy than a fresh one (task 0 minus the mean of tasks "
                f"{num_tasks // 2}-{num_tasks - 1}, each just learned; paired over {num_seeds} seeds)",
                diagonal_KxT[:, 0], diagonal_KxT[:, num_tasks // 2:].mean(1), above=0.0, paired=True))
    warm, scratch, perturbed = np.asarray(numbers["warm_start"]["test_3xK"])
    seeds = f"paired over {len(warm)} seeds, whose three starts see the same minibatches"
    return out + [
        fw.Check.at_most("warm_start_resumes_first_round", "construction", "the warm start's test accuracy before its "
                         "second round is the first round's last", numbers["warm_start"]["restart_change"], 1e-6),
        fw.Claim.difference("warm_start_gap", "Ash & Adams 2020", "warm-started from a first round on part of the "
                            f"data, a network generalises worse than from scratch (scratch minus warm start test "
                            f"accuracy, {seeds})", scratch, warm, above=0.0, paired=True, fmt="{:.4f}"),
        fw.Claim.difference("shrink_perturb_closes_half_the_gap", "Ash & Adams 2020", "shrink-and-perturb closes much "
                            "of that gap, at least half (shrink-perturb minus the midpoint of warm start and scratch "
                            f"test accuracy, {seeds})", perturbed, (warm + scratch) / 2, above=0.0, paired=True,
                            fmt="{:.4f}")]


main = fw.entry_point(__name__)


if __name__ == "__main__":
    main()
