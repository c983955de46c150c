"""SGD's implicit regularisation: the modified losses measured, and the regulariser put to work.

Four phases, each a function the tests can call:

- ``backward_error_phase`` (Barrett & Dherin 2021; Smith, Dherin, Barrett & De 2021), in float64
  on a two-parameter model and a small tanh MLP (:mod:`experiments.backward_error`): GD with
  step h against the flows on C (error O(h)) and on C_GD (O(h^2)); the mean SGD iterate after
  one epoch, averaged over every order of its minibatches, against the flows on C, C_GD and
  C_SGD (O(eps^3)); fitted log-log slopes; the identity C_SGD = C_GD + the minibatch-gradient
  variance term.
- ``sweep_phase``: test accuracy against learning rate at a fixed number of epochs for
  small-batch SGD, large-batch SGD and full-batch GD, on MNIST-1D and digits, seeds vmapped.
- ``regularizer_phase``: large-batch and full-batch training with Smith et al.'s explicit
  regulariser (strength the small-batch learning rate, minibatches of the small batch size),
  and the size of mean_k ||grad C_k||^2 tracked along training inside the compiled loop.
- ``noise_phase`` (Fort et al. 2021, at CPU scale): full-batch GD with sampling noise (SGD),
  input-augmentation noise or label noise at equal learning rate and steps; reported, no claim.
"""
from __future__ import annotations

import sys

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from experiments import backward_error, common
from experiments.implicit_tables import claims_from_numbers, summarize
from jaxdl import compiled, implicit, io, losses, plot, train
from jaxdl import data as datasets
from jaxdl.models import get_model

NAME = "implicit_regularization"
DESCRIPTION = ("SGD's implicit regulariser: backward-error slopes of GD and SGD against modified flows, "
               "test accuracy against learning rate per batch size, the explicit regulariser, sampling vs "
               "augmentation noise")
DEVICE_FIELDS = {"seeds": "seeds"}  # see experiments.device_defaults
REGIMES = ("small batch", "large batch", "full batch")


def get_config(size: str = "default") -> ml_collections.ConfigDict:
    """Sizes: ``quick`` (seconds, tests); ``default`` (about two minutes on 2 CPU cores);
    ``full`` (CIFAR-10 files and longer training, for a GPU or TPU)."""
    common.check_size(size)
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.seeds = 3
    c.backward_error = ml_collections.ConfigDict(dict(
        num_examples=16, hidden_width=8, gd_time=0.8, num_batches=4, flow_steps=2000, sgd_flow_steps=400,
        gd_step_sizes=ml_collections.ConfigDict(dict(two_parameter=(0.1, 0.05, 0.025, 0.0125, 0.00625),
                                                     mlp=(0.05, 0.025, 0.0125, 0.00625, 0.003125))),
        sgd_learning_rates=ml_collections.ConfigDict(dict(two_parameter=(0.1, 0.05, 0.025, 0.0125, 0.00625),
                                                          mlp=(0.02, 0.01, 0.005, 0.0025, 0.00125)))))
    c.widths = (100,)
    c.epochs = 100
    c.learning_rates = (0.3, 1.0, 2.0)
    c.batch_sizes = ml_collections.ConfigDict(dict(mnist1d=(50, 500), digits=(32, 256)))  # small, large
    c.regularizer_dataset = "mnist1d"
    c.small_batch_learning_rate = 2.0  # the small-batch run the explicit regulariser imitates
    c.tracking_epochs = 10  # epochs between measurements of mean_k ||grad C_k||^2
    c.noise = ml_collections.ConfigDict(dict(dataset="mnist1d", num_examples=1000, learning_rate=0.5, steps=1000,
                                             batch_size=50, input_noise=0.5, label_noise=0.2))
    if size == "quick":
        c.seeds = 2
        c.backward_error.update(flow_steps=200, sgd_flow_steps=50)
        c.backward_error.gd_step_sizes.update(two_parameter=(0.1, 0.05), mlp=(0.05, 0.025))
        c.backward_error.sgd_learning_rates.update(two_parameter=(0.1, 0.05), mlp=(0.02, 0.01))
        c.widths, c.epochs, c.learning_rates, c.tracking_epochs = (16,), 2, (1.0, 2.0), 1
        c.batch_sizes = ml_collections.ConfigDict(dict(mnist1d=(500, 1000)))
        c.noise.update(num_examples=200, steps=20)
    elif size == "full":
        c.seeds = 5
        c.epochs = 300
        c.learning_rates = (0.1, 0.3, 1.0, 2.0, 4.0)
        c.widths = (256, 256)
        c.batch_sizes.cifar10 = (128, 2048)
        c.noise.update(num_examples=4000, steps=10000)
    return c


def _validate(config):
    for field in ("seeds", "epochs", "tracking_epochs"):
        common.require(int(config[field]) > 0, field, "a positive integer", config[field])
    common.require(all(lr > 0 for lr in config.learning_rates), "learning_rates", "positive numbers",
                   config.learning_rates)
    common.require(config.small_batch_learning_rate in config.learning_rates, "small_batch_learning_rate",
                   f"one of learning_rates {tuple(config.learning_rates)}", config.small_batch_learning_rate)
    common.require(config.regularizer_dataset in config.batch_sizes, "regularizer_dataset",
                   f"one of {list(config.batch_sizes)}", config.regularizer_dataset)
    for name, (small, large) in config.batch_sizes.items():
        common.require(0 < small < large and large % small == 0, f"batch_sizes.{name}",
                       "(small, large) with small dividing large", (small, large))
    common.require(config.epochs % config.tracking_epochs == 0, "tracking_epochs", "a divisor of epochs",
                   config.tracking_epochs)
    for name in ("gd_step_sizes", "sgd_learning_rates"):
        for problem, values in config.backward_error[name].items():
            common.require(len(values) >= 2 and all(v > 0 for v in values), f"backward_error.{name}.{problem}",
                           "at least two positive step sizes", values)


# ----------------------------------------------------------------------------- phases


def backward_error_phase(config, run_dir) -> dict:
    """Errors and slopes of GD and SGD against the flows of C, C_GD and C_SGD (float64)."""
    cfg = config.backward_error
    out, panels = {}, {}
    with jax.enable_x64(True):
        problems = backward_error.problems(cfg.num_examples, cfg.hidden_width, config.seed)
        for (name, (loss_fn, params, batch)), key in zip(problems.items(), ("two_parameter", "mlp")):
            steps, rates = cfg.gd_step_sizes[key], cfg.sgd_learning_rates[key]
            gd = backward_error.gd_against_flows(loss_fn, params, batch, steps, cfg.gd_time, cfg.flow_steps)
            sgd = backward_error.sgd_against_flows(loss_fn, params, batch, rates, cfg.num_batches, cfg.sgd_flow_steps)
            c_sgd = implicit.modified_loss_sgd(loss_fn, rates[0], cfg.num_batches)(params, batch)
            c_gd = implicit.modified_loss_gd(loss_fn, rates[0])(params, batch)
            extra = implicit.sgd_extra_regularizer(loss_fn, rates[0], cfg.num_batches)(params, batch)
            out[name] = {"gd": gd, "sgd": sgd, "gd_steps": list(steps), "sgd_rates": list(rates),
                         "slopes_gd": {k: backward_error.slope(steps, v) for k, v in gd.items()},
                         "slopes_sgd": {k: backward_error.slope(rates, v) for k, v in sgd.items()},
                         "identity_error": float(abs(c_sgd - c_gd - extra) / abs(c_sgd))}
            panels[f"{name}: GD, time {cfg.gd_time:g}"] = {f"flow on {k}": (steps, v) for k, v in gd.items()}
            panels[f"{name}: mean SGD, one epoch"] = {f"flow on {k}": (rates, v) for k, v in sgd.items()}
    path = run_dir.figure_path("backward_error")
    plot.loglog_panels(panels, xlabel="step size (h or eps)", ylabel="distance to the flow",
                       title="backward-error analysis: which flow does the discrete iterate follow?", path=path)
    return {"problems": out, "figures": [path]}


def _dataset(name):
    return datasets.load(name)


def sweep_phase(config, run_dir, logger) -> dict:
    """Test accuracy (mean over seeds) at ``config.epochs`` epochs for every batch regime and
    learning rate: ``{dataset: {regime: {lr: accuracy}}}``, divergent runs as NaN."""
    seeds = [config.seed + i for i in range(config.seeds)]
    results, figures = {}, []
    for name, (small, large) in config.batch_sizes.items():
        data = _dataset(name)
        model = get_model("mlp", widths=tuple(config.widths), num_outputs=data.num_classes)
        results[name] = {}
        for regime, batch_size in zip(REGIMES, (small, large, None)):
            accuracy = {}
            for lr in config.learning_rates:
                try:
                    fit = train.fit_seeds(model, data, optax.sgd(lr), seeds=seeds, epochs=config.epochs,
                                          batch_size=batch_size, eval_every=config.epochs,
                                          logger=logger.with_tags(run=f"sweep/{name}/{regime}/{lr:g}"))
                    accuracy[float(lr)] = float(fit.history["test_accuracy"][:, -1].mean())
                except FloatingPointError:
                    accuracy[float(lr)] = float("nan")
            results[name][regime] = accuracy
        path = run_dir.figure_path(f"accuracy_vs_learning_rate_{name}")
        plot.line_plot({f"{regime} (batch {b or 'all'})": (list(acc), list(acc.values()))
                        for (regime, acc), b in zip(results[name].items(), (small, large, None))},
                       xlabel="learning rate", ylabel="test accuracy", logx=True,
                       title=f"{name}: SGD at {config.epochs} epochs, mean over {len(seeds)} seeds", path=path)
        figures.append(path)
    return {"accuracy": results, "figures": figures}


def _best(accuracy: dict) -> tuple[float, float]:
    """(learning rate, accuracy) of the best finite entry."""
    finite = {lr: a for lr, a in accuracy.items() if np.isfinite(a)}
    lr = max(finite, key=finite.get)
    return lr, finite[lr]


def regularizer_phase(config, run_dir, logger, sweep: dict) -> dict:
    """The small-batch run at ``config.small_batch_learning_rate``, and the large-batch and
    full-batch runs with the explicit regulariser (strength that rate, minibatches of the small
    batch size) and without it, each with mean_k ||grad C_k||^2 of the training set (small-batch
    minibatches) tracked. A regularised run takes its regime's best swept rate, or the next lower
    one where the regularised loss diverges; its plain run takes the same rate."""
    name = config.regularizer_dataset
    small, large = config.batch_sizes[name]
    data = _dataset(name)
    model = get_model("mlp", widths=tuple(config.widths), num_outputs=data.num_classes)
    seeds = [config.seed + i for i in range(config.seeds)]
    num_train = data.x_train.shape[0] - data.x_train.shape[0] % small
    probe = implicit.MinibatchGradientProbe(num_train // small)
    probe_batch = (data.x_train[:num_train], data.y_train[:num_train])
    eps = float(config.small_batch_learning_rate)

    def fit(label, batch_size, lr, regularizer):
        steps_per_epoch = data.x_train.shape[0] // (batch_size or data.x_train.shape[0])
        result = train.fit_seeds(model, data, optax.sgd(lr), seeds=seeds, epochs=config.epochs, batch_size=batch_size,
                                 eval_every=config.epochs, regularizer=regularizer, probes={"gradients": probe},
                                 probe_every=config.tracking_epochs * steps_per_epoch, probe_batch=probe_batch,
                                 logger=logger.with_tags(run=f"regularizer/{label}"))
        values = result.history["probe/gradients"].mean(axis=0)
        measured = np.flatnonzero(~np.isnan(values))
        return {"learning_rate": lr, "test_accuracy": float(result.history["test_accuracy"][:, -1].mean()),
                "train_loss": float(result.history["train_loss"][:, -1].mean()),
                "epochs": measured / steps_per_epoch, "gradient_norms": values[measured]}

    out = {"small batch": fit("small batch", small, eps, None)}
    for regime, batch_size in (("large batch", large), ("full batch", None)):
        best = _best(sweep[name][regime])[0]
        regularizer = implicit.SGDRegularizer(eps, (batch_size or num_train) // small)
        for lr in sorted((lr for lr in sweep[name][regime] if lr <= best), reverse=True):
            try:
                out[f"{regime} + regulariser"] = fit(f"{regime} + regulariser", batch_size, lr, regularizer)
                break
            except FloatingPointError:
                print(f"{regime} + regulariser diverged at learning rate {lr:g}", flush=True)
        lr = out.get(f"{regime} + regulariser", {"learning_rate": best})["learning_rate"]
        out[regime] = fit(regime, batch_size, lr, None)
    order = ("small batch", "large batch", "large batch + regulariser", "full batch", "full batch + regulariser")
    out = {label: out[label] for label in order if label in out}
    path = run_dir.figure_path("regularizer_along_training")
    plot.line_plot({label: (r["epochs"], eps / 4 * r["gradient_norms"]) for label, r in out.items()},
                   xlabel="epoch", ylabel=f"(eps / 4) mean_k ||grad C_k||^2, eps = {eps:g}, batch {small}",
                   logy=True, title=f"{name}: the small-batch regulariser along training", path=path)
    return {"runs": out, "figures": [path], "small_batch": small, "eps": eps}


@compiled.jit(static_argnames=("steps", "kind", "batch_size"))
def _noisy_descent(train_step, state, x, y, key, input_noise, label_noise, *, steps, kind, batch_size):
    num_classes = 10

    def step(state, step_key):
        if kind == "sampling":
            index = jax.random.choice(step_key, x.shape[0], (batch_size,), replace=False)
            batch = (x[index], y[index])
        elif kind == "input noise":
            batch = (x + input_noise * jax.random.normal(step_key, x.shape, x.dtype), y)
        elif kind == "label noise":
            flip_key, class_key = jax.random.split(step_key)
            flipped = jax.random.bernoulli(flip_key, label_noise, y.shape)
            batch = (x, jnp.where(flipped, jax.random.randint(class_key, y.shape, 0, num_classes), y))
        else:
            batch = (x, y)
        return train_step(state, batch)

    return jax.lax.scan(step, state, jax.random.split(key, steps))[0]


def noise_phase(config) -> dict:
    """Test accuracy after the same steps at the same learning rate with no noise (full-batch
    GD), sampling noise (SGD), input-augmentation noise or label noise on the full batch."""
    cfg = config.noise
    source = _dataset(cfg.dataset)
    n = int(cfg.num_examples)
    model = get_model("mlp", widths=tuple(config.widths), num_outputs=source.num_classes)
    tx = optax.sgd(cfg.learning_rate)
    train_step = train.make_train_step(model, tx)
    apply_fn = train.make_apply_fn(model)
    x, y = jnp.asarray(source.x_train[:n]), jnp.asarray(source.y_train[:n])
    out = {}
    for kind in ("none (full-batch GD)", "sampling", "input noise", "label noise"):
        accuracies = []
        for seed in range(config.seeds):
            key = jax.random.key(config.seed + seed)
            state = train.init_state(model, tx, source.x_train[:1], key)
            state = _noisy_descent(train_step, state, x, y, jax.random.fold_in(key, 1), float(cfg.input_noise),
                                   float(cfg.label_noise), steps=int(cfg.steps), kind=kind,
                                   batch_size=int(cfg.batch_size))
            accuracies.append(float(losses.accuracy(apply_fn(state.params, source.x_test), source.y_test)))
        out[kind] = float(np.mean(accuracies))
    return out


def run(config, run_dir: io.RunDir) -> dict:
    _validate(config)
    timed = common.PhaseTimer()
    with run_dir.logger() as logger:
        errors = timed("backward error", backward_error_phase, config, run_dir)
        sweep = timed("learning-rate sweep", sweep_phase, config, run_dir, logger)
        regularizer = timed("explicit regulariser", regularizer_phase, config, run_dir, logger, sweep["accuracy"])
        noise = timed("noise", noise_phase, config)
    summary = summarize(config, errors, sweep, regularizer, noise)
    summary["tables"]["seconds per phase"] = timed.table()
    return {"tables": summary["tables"], "figures": errors["figures"] + sweep["figures"] + regularizer["figures"],
            **summary["numbers"]}


def claims(result: dict) -> list:
    return claims_from_numbers(result)


def main(argv=None):
    return common.experiment_main(sys.modules[__name__], argv)


if __name__ == "__main__":
    main()
