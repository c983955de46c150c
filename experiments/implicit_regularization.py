"""SGD's implicit regularisation: the modified losses measured, and the regulariser put to work.

- backward error, in float64 on a two-parameter model and a tanh MLP small enough for an accurate
  flow (RK4, :func:`jaxdl.analysis.implicit.gradient_flow`): GD with step h for time T against the flows on
  C (distance O(h)) and on C_GD = C + (h/4) ||grad C||^2 (O(h^2), Barrett & Dherin 2021); the mean
  SGD iterate after one epoch of m minibatches, averaged exactly over all m! orders, against the
  flows for time m eps on C, C_GD and C_SGD = C + (eps/4m) sum_k ||grad C_k||^2 (O(eps^3), Smith,
  Dherin, Barrett & De 2021). The order is the slope of log distance on log step; the spread of
  the local orders between consecutive steps (Richardson's estimate of how far the grid is from
  the asymptotic regime) is a claim's tolerance.
- sweep: small-batch SGD, large-batch SGD and full-batch GD at equal epochs over a rate grid,
  seeds vmapped (seed k of every run shares its initialisation); each regime's rate chosen on a
  validation split carved from the training set; the test set read once, for the claims.
- control (Hoffer et al. 2017): the large batch and GD trained for the small batch's updates.
- regulariser: Smith et al.'s explicit regulariser (strength the small batch's rate, minibatches
  of its size) on the large and full batch; mean_k ||grad C_k||^2 tracked in the compiled loop.
"""
from __future__ import annotations

import itertools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from experiments import framework as fw
from jaxdl import data as datasets, plot, train
from jaxdl.analysis import implicit
from jaxdl.core import checks, compiled, fits, tree
from jaxdl.train import losses, optim
from jaxdl.models import get_model

NAME = "implicit_regularization"
DESCRIPTION = ("SGD's implicit regulariser: backward-error orders of GD and SGD against modified flows, SGD vs "
               "large-batch and full-batch GD at equal epochs and equal steps, the explicit regulariser")
DEVICE_FIELDS = {"seeds": "seeds"}
SMITH = "Smith, Dherin, Barrett & De 2021"


def get_config() -> ml_collections.ConfigDict:
    """The default size: about a minute and a half on 2 CPU cores."""
    steps = (0.1, 0.05, 0.025, 0.0125, 0.00625)
    return ml_collections.ConfigDict(dict(
        seed=0, seeds=8,
        backward_error=dict(
            num_examples=16, hidden_width=8, gd_time=0.8, num_batches=4, flow_steps=2000, sgd_flow_steps=400,
            gd_step_sizes=dict(two_parameter=steps, mlp=(0.05, 0.025, 0.0125, 0.00625, 0.003125)),
            sgd_learning_rates=dict(two_parameter=steps, mlp=(0.02, 0.01, 0.005, 0.0025, 0.00125))),
        # The first train_examples training signals train and the last validation_examples choose
        # the rates (a subset, so that full-batch GD at the small batch's steps stays affordable).
        dataset="mnist1d", train_examples=1000, validation_examples=1000, widths=(100,), epochs=100,
        learning_rates=(0.3, 1.0, 2.0), small_batch=50, large_batch=500,
        tracking_epochs=10))  # epochs between measurements of mean_k ||grad C_k||^2


SIZES = {
    "quick": {"seeds": 2, "backward_error.flow_steps": 200, "backward_error.sgd_flow_steps": 50,
              "backward_error.gd_step_sizes": {"two_parameter": (0.1, 0.05)},
              "backward_error.sgd_learning_rates": {"two_parameter": (0.1, 0.05)}, "train_examples": 200,
              "validation_examples": 200, "widths": (16,), "epochs": 2, "learning_rates": (1.0,), "large_batch": 100,
              "tracking_epochs": 1},
    "full": {"seeds": 10, "dataset": "cifar10", "train_examples": 40960, "validation_examples": 5000,
             "widths": (256, 256), "epochs": 300, "learning_rates": (0.1, 0.3, 1.0, 2.0, 4.0), "small_batch": 128,
             "large_batch": 2048},
}
_steps = fw.expect(lambda v: len(v) >= 2 and all(h > 0 for h in v), "at least two positive step sizes")
FIELDS = {
    "seeds": fw.positive_int, "train_examples": fw.positive_int, "validation_examples": fw.positive_int,
    "widths": fw.positive_ints, "learning_rates": (fw.positives, fw.increasing), "small_batch": fw.positive_int,
    "large_batch": fw.expect(lambda v, c: v > c.small_batch and v % c.small_batch == 0 == c.train_examples % v,
                             "a multiple of small_batch dividing train_examples", uses_config=True),
    "epochs": fw.expect(lambda v, c: v > 0 == v % c.tracking_epochs, "a multiple of tracking_epochs", uses_config=True),
    "tracking_epochs": fw.positive_int, "backward_error.gd_step_sizes.*": _steps,
    "backward_error.gd_step_sizes": fw.expect(lambda v, c: set(v) == set(c.backward_error.sgd_learning_rates) <= {
        "two_parameter", "mlp"}, "problems among two_parameter and mlp, as in sgd_learning_rates", uses_config=True),
    "backward_error.sgd_learning_rates.*": _steps,
}



def problems(num_examples: int, hidden_width: int, seed: int) -> dict:
    """``{key: (name, loss_fn, params, batch)}`` in float64 (inside ``jax.enable_x64(True)``): f(x) =
    theta_1 tanh(theta_2 x) and a tanh MLP 1-H-1 fitting noisy samples of a curve, halved MSE."""
    rng = np.random.default_rng(seed)
    x = np.linspace(-2.0, 2.0, num_examples)[:, None]
    y = 1.5 * np.tanh(0.7 * x) + 0.1 * rng.normal(size=x.shape)
    shuffled = rng.permutation(num_examples)
    batch = (jnp.asarray(x[shuffled]), jnp.asarray(y[shuffled]))

    def two_parameter(theta, b):
        return 0.5 * jnp.mean(jnp.square(theta[0] * jnp.tanh(theta[1] * b[0]) - b[1]))

    model = get_model("mlp", widths=(hidden_width,), activation="tanh", num_outputs=1)
    params = jax.tree.map(lambda p: jnp.asarray(p, jnp.float64),
                          model.init(jax.random.key(seed), jnp.zeros((1, 1)))["params"])
    mlp_loss = losses.make_loss_fn(train.make_apply_fn(model), "half_mse")
    return {"two_parameter": ("two-parameter model", two_parameter, jnp.asarray([0.4, 0.2]), batch),
            "mlp": (f"tanh MLP 1-{hidden_width}-1", mlp_loss, params, batch)}


def fitted_order(steps, errors) -> tuple[float, float]:
    """(order, spread): the least-squares slope of log(error) against log(step), and max - min
    of the local orders log(e_i / e_i+1) / log(h_i / h_i+1) (0 for two steps)."""
    log_h, log_e = np.log(np.asarray(steps, np.float64)), np.log(np.asarray(errors, np.float64))
    return fits.loglog_slope(steps, errors), float(np.ptp(np.diff(log_e) / np.diff(log_h)))


@compiled.jit
def gradient_descent(loss_fn, params, batch, step_size, num_steps):
    """``num_steps`` steps of full-batch GD (step size and count traced: one program for all): a
    recurrence whose error against the flow is the measurement, not a training run."""
    grad = jax.grad(loss_fn)
    return jax.lax.fori_loop(0, num_steps, lambda _, p: tree.axpy(-step_size, grad(p, batch), p), params)


@compiled.jit(static_argnames=("num_batches",))
def mean_sgd_epoch(loss_fn, params, batch, learning_rate: float, num_batches: int):
    """The SGD iterate after one epoch over the ``num_batches`` contiguous minibatches of
    ``batch``, averaged exactly over all m! orders (``vmap`` over the orders)."""
    num = jax.tree.leaves(batch)[0].shape[0]
    split = jax.tree.map(lambda a: a.reshape((num_batches, num // num_batches) + a.shape[1:]), batch)
    grad = jax.grad(loss_fn)

    def epoch(order):
        step = lambda p, k: (tree.axpy(-learning_rate, grad(p, jax.tree.map(lambda a: a[k], split)), p), None)
        return jax.lax.scan(step, params, order)[0]

    orders = jnp.asarray(list(itertools.permutations(range(num_batches))))
    return jax.tree.map(lambda a: jnp.mean(a, axis=0), jax.vmap(epoch)(orders))


def distances(loss_fn, params, batch, steps, *, flow_steps: int, time: float = 0.0, num_batches=None) -> dict:
    """``{flow: [distance per step]}`` of GD with each step h for ``time`` (``time / h`` steps) to
    the flows on C and C_GD; or, given ``num_batches`` m, of the mean SGD iterate after one epoch
    at rate eps = h to the flows for time m eps on C, C_GD and C_SGD."""
    errors = {}
    for h in steps:
        # C as C_GD at h = 0: one compiled flow serves both (the step size is traced).
        objectives = {"C": implicit.ModifiedLossGD(loss_fn, 0.0), "C_GD": implicit.modified_loss_gd(loss_fn, h)}
        if num_batches is None:
            iterate = gradient_descent(loss_fn, params, batch, float(h), np.int32(round(time / h)))
        else:
            iterate, time = mean_sgd_epoch(loss_fn, params, batch, float(h), num_batches), num_batches * h
            objectives["C_SGD"] = implicit.modified_loss_sgd(loss_fn, h, num_batches)
        for name, objective in objectives.items():
            flow = implicit.gradient_flow(objective, params, time, args=(batch,), num_steps=flow_steps)
            errors.setdefault(name, []).append(float(tree.norm(tree.subtract(iterate, flow))))
    return errors


def backward_error_phase(config, ctx) -> fw.Phase:
    """Distances of GD and mean SGD to the flows, their orders, and C_SGD = C_GD + the variance term."""
    cfg, phase, rows, panels = config.backward_error, fw.Phase(), [], {}
    with jax.enable_x64(True):
        for key in cfg.gd_step_sizes:
            name, loss_fn, params, batch = problems(cfg.num_examples, cfg.hidden_width, config.seed)[key]
            h, eps, m = cfg.gd_step_sizes[key], cfg.sgd_learning_rates[key], cfg.num_batches
            runs = {"GD": (h, distances(loss_fn, params, batch, h, flow_steps=cfg.flow_steps, time=cfg.gd_time)),
                    "mean SGD": (eps, distances(loss_fn, params, batch, eps, flow_steps=cfg.sgd_flow_steps,
                                                num_batches=m))}
            c_sgd = implicit.modified_loss_sgd(loss_fn, eps[0], m)(params, batch)
            gap = c_sgd - implicit.modified_loss_gd(loss_fn, eps[0])(params, batch)
            extra = implicit.sgd_extra_regularizer(loss_fn, eps[0], m)(params, batch)
            orders = {f"{it}/{flow}": fitted_order(steps, errors)
                      for it, (steps, flows) in runs.items() for flow, errors in flows.items()}
            phase.numbers[f"backward_error/{key}"] = {"name": name, **orders,
                                                      "identity_error": float(abs(gap - extra) / abs(c_sgd))}
            for it, (steps, flows) in runs.items():
                panels[f"{name}: {it}"] = {f"flow on {flow}": (steps, errors) for flow, errors in flows.items()}
                rows += [[name, it, f"flow on {flow}", ", ".join(f"{e:.2e}" for e in errors), *orders[f"{it}/{flow}"]]
                         for flow, errors in flows.items()]
    phase.tables["backward error"] = fw.format_table(
        ["problem", "iterate", "compared with", "distance at each step size (largest first)", "fitted order",
         "spread of local orders"], rows, float_format="{:.3f}")
    phase.figures["backward_error"] = plot.loglog_panels(
        panels, xlabel="step size (h or eps)", ylabel="distance to the flow",
        title=f"backward-error analysis: GD for time {cfg.gd_time:g}, mean SGD over one epoch")
    return phase


# What every run shares: the data (validation as its test split), the test (x, y), model and probe.
Setup = NamedTuple("Setup", [("data", datasets.Dataset), ("test", tuple), ("model", object), ("probe", object)])


def _setup(config) -> Setup:
    source, n, v = datasets.load(config.dataset), config.train_examples, config.validation_examples
    if n + v > source.num_train:
        checks.fail("config.train_examples", n, f"at most {source.num_train - v} (the training set less validation)")
    data = datasets.validation_split(source, v, num_train=n)
    model = get_model("mlp", widths=tuple(config.widths), num_outputs=source.num_classes)
    return Setup(data, (source.x_test, source.y_test), model, implicit.MinibatchGradientProbe(n // config.small_batch))


def _size(config, regime) -> int:
    return {"small batch": config.small_batch, "large batch": config.large_batch}.get(regime, config.train_examples)


def _fit(config, ctx, setup, regime, learning_rate, label, *, epochs=None, regularizer=None) -> dict:
    """Every seed at once: parameters, validation accuracy, train loss, mean_k ||grad C_k||^2 tracked."""
    epochs, steps_per_epoch = epochs or config.epochs, config.train_examples // _size(config, regime)
    result = train.fit_seeds(
        setup.model, setup.data, optim.get_optimizer("sgd", learning_rate), seeds=fw.seeds(config), epochs=epochs,
        batch_size=None if regime == "full batch" else _size(config, regime), eval_every=epochs, progress=False,
        epochs_per_call=config.tracking_epochs, regularizer=regularizer, probes={"gradients": setup.probe},
        probe_every=config.tracking_epochs * steps_per_epoch, probe_batch=(setup.data.x_train, setup.data.y_train),
        logger=ctx.logger.with_tags(run=label))
    tracked_KxS = result.history["probe/gradients"]
    measured = np.flatnonzero(~np.isnan(tracked_KxS[0]))
    return {"params": result.state.params, "learning_rate": float(learning_rate), "epochs": epochs, "steps": epochs
            * steps_per_epoch, "tracked": (measured / steps_per_epoch, tracked_KxS[:, measured].mean(axis=0)),
            "validation": result.history["test_accuracy"][:, -1].tolist(),
            "train_loss": result.history["train_loss"][:, -1].tolist()}


def _public(setup, run: dict) -> dict:
    """A chosen run's numbers, with its test accuracy per seed: the only reading of the test set."""
    logits_KxNxC = jax.vmap(train.make_apply_fn(setup.model), in_axes=(0, None))(run["params"], setup.test[0])
    test = np.mean(np.argmax(np.asarray(logits_KxNxC), -1) == setup.test[1], axis=1).tolist()
    return {k: v for k, v in run.items() if k not in ("params", "tracked")} | {"test": test}


def sweep_phase(config, ctx, setup) -> fw.Phase:
    """Every regime at every rate; each regime's rate the one of highest mean validation accuracy."""
    runs, rows, chosen = {}, [], {}
    for regime in ("small batch", "large batch", "full batch"):
        for lr in config.learning_rates:
            try:
                runs[regime, lr] = _fit(config, ctx, setup, regime, lr, f"sweep/{regime}/{lr:g}")
            except FloatingPointError:
                print(f"{regime} diverged at learning rate {lr:g}", flush=True)
        validation = [np.mean(runs[regime, lr]["validation"]) if (regime, lr) in runs else np.nan
                      for lr in config.learning_rates]
        chosen[regime] = config.learning_rates[int(np.nanargmax(validation))]
        rows.append([regime, _size(config, regime), *validation, chosen[regime]])
    table = fw.format_table(["regime", "batch"] + [f"lr {lr:g}" for lr in config.learning_rates] + ["chosen"], rows,
                            float_format="{:.3f}")
    return fw.Phase(tables={f"validation accuracy against learning rate ({config.epochs} epochs)": table},
                    numbers={f"runs/{regime}": _public(setup, runs[regime, lr]) for regime, lr in chosen.items()},
                    carry=(runs, chosen))


def control_phase(config, ctx, setup, chosen) -> fw.Phase:
    """The large batch and GD at their chosen rates for the small batch's updates (Hoffer et al. 2017)."""
    return fw.Phase(numbers={f"runs/{regime}, equal steps": _public(setup, _fit(
        config, ctx, setup, regime, chosen[regime], f"control/{regime}",
        epochs=config.epochs * _size(config, regime) // config.small_batch))
        for regime in ("large batch", "full batch")})


def regularizer_phase(config, ctx, setup, runs, chosen) -> fw.Phase:
    """The large and full batch with the explicit regulariser at their chosen rate (or the next lower
    where it diverges) beside the plain run at that rate; the test accuracy of every chosen run."""
    eps, numbers, tracked = chosen["small batch"], {}, {"small batch": runs["small batch", chosen["small batch"]]}
    for regime in ("large batch", "full batch"):
        regularizer = implicit.SGDRegularizer(eps, _size(config, regime) // config.small_batch)
        for lr in [lr for lr in reversed(config.learning_rates) if lr <= chosen[regime]]:
            try:
                run = _fit(config, ctx, setup, regime, lr, f"regulariser/{regime}", regularizer=regularizer)
            except FloatingPointError:
                print(f"{regime} + regulariser diverged at learning rate {lr:g}", flush=True)
                continue
            numbers |= {f"runs/{regime} + regulariser": _public(setup, run),
                        f"runs/{regime} at the regulariser's rate": _public(setup, runs[regime, lr])}
            tracked |= {regime: runs[regime, lr], f"{regime} + regulariser": run}
            break
    figure = plot.line_plot({label: (r["tracked"][0], eps / 4 * r["tracked"][1]) for label, r in tracked.items()},
                            xlabel="epoch", ylabel=f"(eps/4) mean_k ||grad C_k||^2, eps = {eps:g}, batch "
                            f"{config.small_batch}", logy=True, title="the small-batch regulariser along training")
    table = fw.format_table(
        ["run", "learning rate", "epochs", "steps", "train loss", "validation accuracy", "test accuracy", "test std"],
        [[label[5:], r["learning_rate"], r["epochs"], r["steps"], np.mean(r["train_loss"]), np.mean(r["validation"]),
          np.mean(r["test"]), np.std(r["test"], ddof=1)]
         for label, r in (ctx.numbers | numbers).items() if label.startswith("runs/")], float_format="{:.4g}")
    return fw.Phase(tables={"test accuracy of the chosen runs": table}, figures={"regularizer_along_training": figure},
                    numbers=numbers)


def run(config, ctx) -> None:
    ctx.phase("backward error", backward_error_phase, config, ctx)
    setup = _setup(config)
    runs, chosen = ctx.phase("learning-rate sweep", sweep_phase, config, ctx, setup).carry
    ctx.phase("step-matched control", control_phase, config, ctx, setup, chosen)
    ctx.phase("explicit regulariser", regularizer_phase, config, ctx, setup, runs, chosen)


ORDERS = (  # (iterate, flow, direction, threshold halfway between orders, paper, finding)
    ("GD", "C_GD", "above", 1.5, "Barrett & Dherin 2021, theorem 3.1", "GD with step h stays O(h^2) from the flow on "
     "C_GD = C + (h/4)||grad C||^2 (order 2, not Euler's 1)"),
    ("mean SGD", "C_SGD", "above", 2.5, f"{SMITH}, section 2", "the mean SGD iterate after an epoch stays O(eps^3) "
     "from the flow on C_SGD (order 3)"),
    ("mean SGD", "C_GD", "below", 2.5, f"{SMITH}, section 2", "C_GD misses SGD's variance term: the mean SGD "
     "iterate stays only O(eps^2) from its flow (order 2)"))
# An order's tolerance: the spread of its local orders rounded up to 0.01, at least ORDER_FLOOR
# (float64 iterates and RK4 flows are exact far below it).
ORDER_FLOOR = 0.05


def claims(config, numbers) -> list:
    out, n, test = [], config.seeds, {label[5:]: numbers[label]["test"] for label in numbers if label[:5] == "runs/"}
    for key in config.backward_error.gd_step_sizes:
        problem = numbers[f"backward_error/{key}"]
        for iterate, flow, direction, threshold, paper, finding in ORDERS:
            order, spread = problem[f"{iterate}/{flow}"]
            out.append(fw.Claim.exact(f"{key}_{iterate.split()[-1].lower()}_{flow.lower()}_order", paper,
                                      f"{problem['name']}: {finding}; fitted order in the step", order,
                                      **{direction: threshold}, fmt="{:.3f}",
                                      tolerance=max(math.ceil(spread * 100) / 100, ORDER_FLOOR)))
        order = problem["GD/C"][0]
        out += [fw.Check.that(f"{key}_euler_order", "Euler's method", f"{problem['name']}: GD is first order against "
                              "the flow on C (fitted order)", abs(order - 1) <= 0.2, "1 +- 0.2", f"{order:.3f}"),
                fw.Check.at_most(f"{key}_csgd_identity", SMITH, f"{problem['name']}: C_SGD = C_GD + (eps/4m) sum_k "
                                 "||grad C_k - grad C||^2 (relative error, float64)", problem["identity_error"], 1e-10,
                                 "{:.1e}")]
    for regime, paper in (("full batch", f"{SMITH}; Geiping et al. 2022"), ("large batch", f"Keskar et al. 2017; "
                                                                                       f"{SMITH}")):
        for control, words in (("equal_epochs", "at equal epochs"),
                               ("equal_steps", "trained for as many updates as the small batch (Hoffer et al. 2017)")):
            out.append(fw.Claim.difference(
                f"small_beats_{regime.replace(' ', '_')}_{control}", paper, f"small-batch SGD (batch "
                f"{config.small_batch}) beats the {regime} {words}: test accuracy difference, each at its "
                f"validation-chosen rate, paired over {n} seeds", test["small batch"],
                test[regime if control == "equal_epochs" else f"{regime}, equal steps"], above=0.0, paired=True,
                fmt="{:.4f}"))
    if "large batch + regulariser" in test:
        midpoint = np.add(test["small batch"], test["large batch at the regulariser's rate"]) / 2
        out.append(fw.Claim.mean(
            "regulariser_closes_half_the_large_batch_gap", f"{SMITH}, section 5", "the explicit regulariser closes at "
            "least half of the large-batch gap at equal epochs: test accuracy of the regularised large batch minus the "
            "midpoint of the small and the plain large batch at its rate (> 0 iff the fraction closed > 1/2), paired "
            f"over {n} seeds", np.subtract(test["large batch + regulariser"], midpoint), above=0.0, fmt="{:.4f}"))
    return out


main = fw.entry_point(__name__)


if __name__ == "__main__":
    main()
