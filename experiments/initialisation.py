"""Initialisation and signal propagation: vanishing and exploding signals at initialisation, the
learning dynamics of deep linear networks, and BatchNorm's bias of residual networks towards
shallow paths.

Three phases, each a function the tests can call:

- ``mlp_phase`` (Glorot & Bengio 2010; He et al. 2015; Saxe et al. 2014): bias-free MLPs of width
  D and depth up to 50 with ReLU and tanh under the naive (fixed std 0.01), Glorot, He and
  orthogonal initialisations, in float64 (the naive init takes the signal below float32's range):
  per-layer variance of the pre-activations (one forward of the 50-layer net serves every depth)
  and of the gradients with respect to the activations (one backward per depth: a gradient depends
  on every layer above it), seeds and schemes in one compiled program, beside the infinite-width
  mean-field recursion (Poole et al. 2016).
- ``resnet_phase`` (De & Smith 2020): for the zoo's ResNet at initialisation, the variance of each
  block's residual branch relative to its skip path, with BatchNorm (batch statistics, as in a
  training step), without normalisation, and with SkipInit. The no-norm ResNet is the SkipInit
  ResNet with every residual scale set to 1 (the same function, the same initial weights): one
  compiled program measures both.
- ``deep_linear_phase`` (Saxe et al. 2014): full-batch gradient descent on a regression task with
  whitened inputs and input-output correlation singular values ``s``; the strength ``u_i^T W v_i``
  of each mode over training from small random and from orthogonal initialisations, at several
  depths with learning rate ``eta / depth`` (their scaling), every run ``vmap``ped in one program.
"""
from __future__ import annotations

import functools
import math
import sys

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import matplotlib.ticker
import ml_collections
import numpy as np

from experiments import common
from jaxdl import io, plot
from jaxdl import propagation as prop
from jaxdl.models import get_model

NAME = "initialisation"
DESCRIPTION = ("signal propagation at initialisation: naive/Glorot/He/orthogonal MLPs of depth 10-50, Saxe's deep "
               "linear dynamics, BatchNorm's bias of ResNets towards shallow paths")
RESNET_VARIANTS = ("batchnorm", "no norm", "SkipInit")
# Random streams: the MLP phase uses key(seed) itself, the others fold in their own number.
RESNET_STREAM, DEEP_LINEAR_STREAM = 1, 2
CLOSE_UP = (1e-2, 1e3)  # the y range of the figure's close-ups: factor-2 bands and 100-fold explosions


def get_config(size: str = "default") -> ml_collections.ConfigDict:
    """Sizes: ``quick`` (seconds, tests); ``default`` (about a minute on 2 CPU cores); ``full``."""
    common.check_size(size)
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.mlp = ml_collections.ConfigDict(dict(
        schemes=prop.SCHEMES, activations=("relu", "tanh"), depth=50, depths=(10, 30, 50), width=256, batch_size=16,
        seeds=16, naive_std=0.01, float64=True))
    c.resnet = ml_collections.ConfigDict(dict(depth=56, width_multiplier=1.0, image_size=8, batch_size=32, seeds=2,
                                              conv_implementation="xla"))
    c.deep_linear = ml_collections.ConfigDict(dict(
        dim=8, singular_values=(2.0, 1.0, 0.5, 0.25), small_std=0.01, depths=(2, 4, 8, 16), seeds=8,
        learning_rate=0.3, steps=1000, criterion=0.01))
    if size == "quick":
        c.mlp.update(depth=6, depths=(3, 6), width=32, batch_size=8, seeds=2)
        c.resnet.update(depth=8, width_multiplier=0.25, image_size=8, batch_size=8, seeds=1)
        c.deep_linear.update(depths=(2, 3, 4), seeds=2, steps=150)
    elif size == "full":
        c.mlp.update(width=1024, batch_size=64, seeds=32)
        c.resnet.update(depth=110, image_size=32, batch_size=128, seeds=4)
        c.deep_linear.update(dim=32, depths=(2, 4, 8, 16, 32), seeds=32, steps=4000)
    return c


def _validate(config):
    m, r, d = config.mlp, config.resnet, config.deep_linear
    for group, names in (("mlp", ("depth", "width", "batch_size", "seeds")), ("resnet", ("image_size", "batch_size",
                         "seeds")), ("deep_linear", ("dim", "seeds", "steps"))):
        for name in names:
            value = config[group][name]
            common.require(isinstance(value, int) and value > 0, f"{group}.{name}", "a positive integer", value)
    common.require(len(m.schemes) > 0 and set(m.schemes) <= set(prop.SCHEMES), "mlp.schemes",
                   f"names among {', '.join(prop.SCHEMES)}", m.schemes)
    common.require(len(m.activations) > 0 and set(m.activations) <= {"relu", "tanh", "identity"}, "mlp.activations",
                   "names among relu, tanh, identity", m.activations)
    common.require(len(m.depths) > 0 and all(0 < v <= m.depth for v in m.depths), "mlp.depths",
                   f"depths between 1 and mlp.depth={m.depth}", m.depths)
    common.require(m.naive_std > 0, "mlp.naive_std", "a positive number", m.naive_std)
    common.require(r.depth >= 8 and (r.depth - 2) % 6 == 0, "resnet.depth", "6n + 2 with n >= 1", r.depth)
    common.require(r.width_multiplier > 0, "resnet.width_multiplier", "a positive number", r.width_multiplier)
    s = np.asarray(d.singular_values, float)
    common.require(1 < s.size <= d.dim and np.all(s > 0) and np.all(np.diff(s) < 0), "deep_linear.singular_values",
                   f"2 to dim={d.dim} positive, strictly decreasing numbers", d.singular_values)
    common.require(len(d.depths) > 1 and all(v > 0 for v in d.depths) and list(d.depths) == sorted(set(d.depths)),
                   "deep_linear.depths", "at least two increasing positive depths", d.depths)
    for name in ("small_std", "learning_rate"):
        common.require(d[name] > 0, f"deep_linear.{name}", "a positive number", d[name])
    common.require(0 < d.criterion < 1, "deep_linear.criterion", "a number in (0, 1)", d.criterion)


# ----------------------------------------------------------------------------- MLPs


def mlp_phase(config, run_dir) -> dict:
    """Seed means of the per-layer statistics, their summary numbers, and one figure."""
    m = config.mlp
    with jax.enable_x64(bool(m.float64)):
        stats = prop.mlp_signal_statistics(
            jax.random.key(config.seed), schemes=tuple(m.schemes), activations=tuple(m.activations), depth=m.depth,
            width=m.width, batch_size=m.batch_size, num_seeds=m.seeds, depths=tuple(m.depths),
            naive_std=m.naive_std, dtype=jnp.float64 if m.float64 else jnp.float32)
        stats = jax.tree.map(lambda v: np.asarray(v, np.float64).mean(axis=1), stats)  # mean over seeds: (I, ...)
    layers, deepest, tail = np.arange(1, m.depth + 1), int(np.argmax(m.depths)), min(10, m.depth - 1)
    rows, summary, panels = [], {}, {}
    for activation in m.activations:
        forward, backward = {}, {}
        for i, scheme in enumerate(m.schemes):
            q_M = stats[activation]["preactivation_second_moment"][i]
            grads_PxM = stats[activation]["activation_gradient_second_moment"][i]
            theory = prop.mean_field_second_moments(
                activation, prop.scheme_weight_variance(scheme, m.width, activation, m.naive_std), m.depth)
            grad_ratios = [g[0] / g[depth - 1] for g, depth in zip(grads_PxM, m.depths)]
            summary[(activation, scheme)] = s = {
                "forward_ratio": q_M[-1] / q_M[0], "forward_spread": q_M.max() / q_M.min(),
                "per_layer_factor": (q_M[-1] / q_M[0]) ** (1 / max(m.depth - 1, 1)),
                "tail_factor": (q_M[-1] / q_M[-1 - tail]) ** (1 / max(tail, 1)),
                "backward_ratio": grad_ratios[deepest],
                "backward_spread": np.nanmax(grads_PxM[deepest]) / np.nanmin(grads_PxM[deepest])}
            forward[scheme] = (layers, q_M, theory["preactivation_second_moment"])
            backward[scheme] = (layers[:max(m.depths)], grads_PxM[deepest, :max(m.depths)],
                                _mean_field_gradients(theory["gradient_factor"][:max(m.depths)]))
            q_theory = theory["preactivation_second_moment"]
            rows.append([activation, scheme, s["forward_ratio"], q_theory[-1] / q_theory[0], s["forward_spread"],
                         *grad_ratios, np.prod(theory["gradient_factor"][1:])])
        deep = f"depth-{max(m.depths)} net"
        panels[f"{activation}: pre-activation variance Var[z_l]"] = forward
        panels[f"{activation}: Var[z_l] / Var[z_1], close up"] = {
            s: (x, y / y[0], theory / theory[0]) for s, (x, y, theory) in forward.items()}
        panels[f"{activation}: E[(dJ/da_l)^2], {deep} (top: 1)"] = backward
        panels[f"{activation}: E[(dJ/da_l)^2], {deep}, close up"] = backward
    path = run_dir.figure_path("mlp_signal_propagation")
    _panels(panels, columns=len(m.activations), xlabel="layer l", logy=True, path=path,
            ylim=(None, CLOSE_UP, None, CLOSE_UP) * len(m.activations),
            title="MLPs at init, mean over seeds (dashed: infinite-width mean field)")
    headers = (["activation", "scheme", f"Var[z_{m.depth}] / Var[z_1]", "mean field", "max / min over layers"]
               + [f"grad 1 / grad {d} (depth {d})" for d in m.depths] + [f"mean field (depth {m.depth})"])
    return {"summary": summary, "figures": [path], "table": common.format_table(headers, rows, "{:.3g}")}


def _mean_field_gradients(chi_M):
    """E[(dJ/da_l)^2] / E[(dJ/da_M)^2] = chi_{l+1} ... chi_M (1 at the top layer)."""
    return np.append(np.cumprod(chi_M[:0:-1])[::-1], 1.0)


def _panels(panels, *, columns, xlabel, path, title, logy=False, logx=False, ylim=None):
    """Panels in ``columns`` columns, filled column by column: ``{panel title: {label: (x, y) or
    (x, y, y_dashed)}}``, ``y_dashed`` (a prediction, a second condition) drawn dashed in y's colour.
    ``xlabel``, ``logx``, ``logy`` and ``ylim`` are one value for every panel or a tuple of one per panel."""
    rows = -(-len(panels) // columns)
    per_panel = lambda value: value if isinstance(value, tuple) else (value,) * len(panels)
    fig, axes = plt.subplots(rows, columns, figsize=(5.2 * columns, 3.6 * rows), squeeze=False, layout="constrained")
    for ax, (panel, curves), label, log_x, log_y, limits in zip(axes.T.ravel(), panels.items(), per_panel(xlabel),
                                                                 per_panel(logx), per_panel(logy), per_panel(ylim)):
        for name, (x, y, *dashed) in curves.items():
            (line,) = ax.plot(x, y, label=name)
            for prediction in dashed:
                ax.plot(x, prediction, "--", color=line.get_color(), linewidth=1)
        ax.set(xlabel=label, title=panel, xscale="log" if log_x else "linear", yscale="log" if log_y else "linear")
        if limits is not None:
            ax.set_ylim(*limits)
        ticks = np.unique(np.concatenate([np.asarray(curve[0], float) for curve in curves.values()]))
        if log_x and len(ticks) <= 10:  # a few x values (depths): label them, not powers of ten
            ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title)
    return plot.save_figure(fig, path)


# ----------------------------------------------------------------------------- ResNets


def resnet_phase(config, run_dir) -> dict:
    """Branch/skip variance ratios per block for the three variants, and the within-stage slopes."""
    r = config.resnet
    # Drawn by NumPy: a jax.random draw outside the main program would be one more compilation.
    x = np.random.default_rng([config.seed, RESNET_STREAM]).standard_normal(
        (r.seeds, r.batch_size, r.image_size, r.image_size, 3), np.float32)
    options = dict(depth=r.depth, width_multiplier=r.width_multiplier, shortcut="projection",
                   conv_implementation=r.conv_implementation)
    models = (get_model("resnet", norm="batch", **options), get_model("resnet", norm="none", skip_init=True, **options))
    variances = _resnet_variances(models, jax.random.key(config.seed), x)
    measured = {variant: prop.order_blocks(v) for variant, v in variances.items()}
    ratios = {variant: m["ratio"].mean(axis=0) for variant, m in measured.items()}
    blocks = measured["batchnorm"]["blocks"]
    per_stage = (r.depth - 2) // 6
    position = np.arange(len(blocks)) % per_stage + 1  # a block's place in its stage; the skip resets at 1
    identity = position > 1  # from the second block of a stage on, the skip path is the identity
    # A slope needs two places in a stage past the first: ResNets of depth 20 and more.
    slopes = {v: _within_stage_slope(ratios[v], position, identity) for v in ("batchnorm", "no norm")} \
        if per_stage >= 3 else {}
    path = run_dir.figure_path("resnet_branch_ratio")
    plot.line_plot({v: (np.arange(1, len(blocks) + 1), ratios[v]) for v in RESNET_VARIANTS}, xlabel="residual block",
                   ylabel="Var[branch] / Var[skip] (mean over seeds)",
                   title=f"ResNet-{r.depth} at init (a stage's first block: new skip path)", path=path)
    rows = [[b, *(ratios[v][j] for v in RESNET_VARIANTS)] for j, b in enumerate(blocks)]
    return {"ratios": ratios, "slopes": slopes, "figures": [path],
            "table": common.format_table(["block", *RESNET_VARIANTS], rows, "{:.3g}")}


@functools.partial(jax.jit, static_argnums=0)
def _resnet_variances(models, key, x_KxBxHxWxC):
    """Initialise both models per seed and measure the three variants, in one program. The two
    inits draw the same conv kernels (same names, same keys), which XLA computes once."""
    batchnorm, skip_init = models
    keys_K = jax.random.split(jax.random.fold_in(key, RESNET_STREAM), x_KxBxHxWxC.shape[0])

    def one_seed(key, x):
        skip_variables = skip_init.init(key, x[:1])
        # SkipInit with every residual scale at 1 is the ResNet without normalisation.
        no_norm_variables = jax.tree_util.tree_map_with_path(
            lambda path, v: jnp.ones_like(v) if path[-1].key == "residual_scale" else v, skip_variables)
        return {"batchnorm": prop.residual_branch_variances(batchnorm, batchnorm.init(key, x[:1]), x),
                "no norm": prop.residual_branch_variances(skip_init, no_norm_variables, x),
                "SkipInit": prop.residual_branch_variances(skip_init, skip_variables, x)}

    # lax.map over seeds: a draw with a batch of keys compiles several times slower on a CPU.
    return jax.lax.map(lambda args: one_seed(*args), (keys_K, x_KxBxHxWxC))


def _within_stage_slope(ratio_J, position_J, mask_J):
    """Least-squares slope of log(ratio) against log(position in the stage) over the masked blocks."""
    return float(np.polyfit(np.log(position_J[mask_J]), np.log(ratio_J[mask_J]), 1)[0])


# ----------------------------------------------------------------------------- deep linear networks


def deep_linear_phase(config, run_dir) -> dict:
    """Mode strengths over training for small and orthogonal inits at each depth (all runs in one
    program); the steps at which modes reach 50% and 90% of their targets, and the learning time:
    the first step at which the target modes' squared error sum_i (a_i - s_i)^2 is down to
    ``criterion`` of sum_i s_i^2 (a time to criterion, as Saxe et al. measure learning speed)."""
    d = config.deep_linear
    s_Q = np.asarray(d.singular_values, np.float64)
    with prop.single_threaded_lapack():  # the task's and the orthogonal inits' QRs
        out = jax.tree.map(np.asarray, _deep_linear_runs(jax.random.key(config.seed), tuple(map(float, s_Q)),
                                                         tuple(d.depths), d.seeds, d.dim, float(d.small_std),
                                                         float(d.learning_rate), d.steps))
    strength = out["mode_strength_TxQ"]  # (2 inits, P depths, K seeds, T, Q)
    steps_T = out["steps_T"][0, 0, 0]
    half, ninety = (prop.crossing_steps(strength, steps_T, s_Q, f) for f in (0.5, 0.9))  # (2, P, K, Q)
    reached = np.sum((strength - s_Q) ** 2, axis=-1) <= d.criterion * np.sum(s_Q**2)
    learned = np.where(reached.any(axis=-1), steps_T[np.argmax(reached, axis=-1)], np.inf)  # (2, P, K)
    inits = ("small random", "orthogonal")
    median_learned = {(init, depth): float(np.median(learned[i, p])) for i, init in enumerate(inits)
                      for p, depth in enumerate(d.depths)}
    curves = {f"s={s:g}": (steps_T[1:], strength[0, 0, 0, 1:, q] / s, strength[1, 0, 0, 1:, q] / s)
              for q, s in enumerate(s_Q)}
    # Capped at the run's length: a point there was not reached within the run.
    capped = {"learning time": (np.asarray(d.depths), *([min(median_learned[(init, m)], d.steps) for m in d.depths]
                                                        for init in inits))}
    path = run_dir.figure_path("deep_linear")
    _panels({f"depth {d.depths[0]}, seed 0: mode strength u_i^T W v_i / s_i": curves,
             f"learning time (median):\nsteps until sum (a_i - s_i)^2 <= {d.criterion:g} sum s_i^2": capped},
            columns=2, xlabel=("step", f"depth (weight layers); {d.steps}: not learned"), logx=True,
            logy=(False, True), path=path,
            title=f"deep linear networks from small random (solid) and orthogonal (dashed) init, learning rate "
                  f"{d.learning_rate:g} / depth")
    rows = [[init, depth, median_learned[(init, depth)], *np.median(half[i, p], axis=0)]
            for i, init in enumerate(inits) for p, depth in enumerate(d.depths)]
    table = common.format_table(["init", "depth", "learning time (steps)"] + [f"steps to 50% (s={s:g})" for s in s_Q],
                                rows, "{:.4g}")
    return {"half": half[0], "ninety": ninety[0], "median_learned": median_learned, "figures": [path],
            "table": table, "depths": tuple(d.depths), "steps": d.steps, "criterion": d.criterion}


@functools.partial(jax.jit, static_argnums=(1, 2, 3, 4, 5, 7))
def _deep_linear_runs(key, singular_values, depths, num_seeds, dim, small_std, learning_rate, steps):
    """The task, and training from both inits at every depth and seed: one program, runs vmapped."""
    task_key, init_key = jax.random.split(jax.random.fold_in(key, DEEP_LINEAR_STREAM))
    x, y, modes_in, modes_out = prop.linear_regression_task(task_key, singular_values, dim)
    keys_K = jax.random.split(init_key, num_seeds)
    deepest = max(depths)
    kernels_IxKxMxDxD = jnp.swapaxes(jax.lax.map(lambda k: prop.init_deep_mlp(
        k, ("naive", "orthogonal"), deepest, dim, activation="identity", naive_std=small_std), keys_K), 0, 1)
    depths_P = jnp.asarray(depths)
    trainable_PxM = jnp.arange(deepest)[None, :] < depths_P[:, None]
    # Frozen identity layers above a run's depth: every depth is the same program.
    kernels = jnp.where(trainable_PxM[None, :, None, :, None, None], kernels_IxKxMxDxD[:, None], jnp.eye(dim))
    batch = kernels.shape[:3]
    learning_rates = jnp.broadcast_to((learning_rate / depths_P)[None, :, None], batch)
    trainable = jnp.broadcast_to(trainable_PxM[None, :, None], batch + (deepest,))
    flat = lambda a: a.reshape((-1,) + a.shape[3:])
    out = jax.vmap(lambda k, lr, t: prop.deep_linear_training(k, x, y, modes_in, modes_out, lr, num_steps=steps,
                                                              trainable_M=t))(
        flat(kernels), flat(learning_rates), flat(trainable))
    return jax.tree.map(lambda a: a.reshape(batch + a.shape[1:]), out)


# ----------------------------------------------------------------------------- run and claims


def run(config, run_dir: io.RunDir) -> dict:
    _validate(config)
    timed = common.PhaseTimer()
    mlp = timed("MLP signal propagation", mlp_phase, config, run_dir)
    resnet = timed("ResNet branches", resnet_phase, config, run_dir)
    linear = timed("deep linear dynamics", deep_linear_phase, config, run_dir)
    run_dir.save_results(**{f"resnet_ratio/{v}": r for v, r in resnet["ratios"].items()},
                         deep_linear_half=linear["half"], deep_linear_ninety=linear["ninety"])
    return {"tables": {"MLPs at init (seed means)": mlp["table"], "ResNet: Var[branch] / Var[skip]": resnet["table"],
                       "deep linear networks (median over seeds)": linear["table"], "seconds per phase": timed.table()},
            "figures": mlp["figures"] + resnet["figures"] + linear["figures"], "mlp": mlp["summary"],
            "mlp_depth": config.mlp.depth, "resnet": resnet, "deep_linear": linear}


def claims(result: dict) -> list:
    mlp, depth, out = result["mlp"], result["mlp_depth"], []
    he = "He et al. 2015"
    if ("relu", "he") in mlp:
        out.append(common.Claim.at_most(he, f"He init keeps a ReLU net's pre-activation variance within a factor 2 "
                                        f"across {depth} layers (max / min over layers)",
                                        mlp[("relu", "he")]["forward_spread"], 2.0, "{:.3g}"))
        out.append(common.Claim.at_most(he, "... and the gradient variance across the layers of the deepest net "
                                        "(max / min over layers)", mlp[("relu", "he")]["backward_spread"], 2.0,
                                        "{:.3g}"))
    if ("relu", "glorot") in mlp:
        out.append(common.Claim.check(he, "Glorot's Var = 1/n halves a ReLU net's variance at every layer "
                                      "(Var[y_L] = Var[y_1] prod(n Var[w] / 2)): per-layer factor", "0.5 +- 10%",
                                      mlp[("relu", "glorot")]["per_layer_factor"], lambda v: abs(v - 0.5) <= 0.05))
    for activation, paper in (("relu", he), ("tanh", "Glorot & Bengio 2010")):
        if (activation, "naive") in mlp:
            out.append(common.Claim.at_most(paper, f"a fixed small std (0.01) shrinks a {activation} net's variance by "
                                            f"orders of magnitude: Var[z_{depth}] / Var[z_1]",
                                            mlp[(activation, "naive")]["forward_ratio"], 1e-2, "{:.3g}"))
    if ("tanh", "glorot") in mlp:
        out.append(common.Claim.at_least(
            "Glorot & Bengio 2010", "Glorot's n Var[w] = 1 removes tanh's geometric vanishing (per-layer variance "
            "factor over the last 10 layers; tanh's curvature still leaves a slow ~1/l decay, Poole et al. 2016)",
            mlp[("tanh", "glorot")]["tail_factor"], 0.9, "{:.3f}"))
    if ("tanh", "he") in mlp:
        out.append(common.Claim.at_least(
            "Poole et al. 2016; Schoenholz et al. 2017", "He's factor 2 is for ReLU: on tanh it is chaotic and the "
            "gradient variance explodes towards the input (grad 1 / grad L of the deepest net)",
            mlp[("tanh", "he")]["backward_ratio"], 10.0, "{:.3g}"))
    slopes, ratios = result["resnet"]["slopes"], result["resnet"]["ratios"]
    de_smith = "De & Smith 2020"
    if slopes:
        out.append(common.Claim.check(de_smith, "with BatchNorm the branch's share of the variance falls like "
                                      "1/depth (log-log slope against the block's place in its stage)", "-1 +- 0.3",
                                      slopes["batchnorm"], lambda v: abs(v + 1) <= 0.3))
        out.append(common.Claim.check(de_smith, "without normalisation it does not fall (same slope)", "> -0.3",
                                      slopes["no norm"], lambda v: v > -0.3))
    out.append(common.Claim.at_most(de_smith, "SkipInit: every residual branch contributes exactly 0 at init "
                                    "(largest ratio)", float(np.max(ratios["SkipInit"])), 0.0, "{:.3g}"))
    out.extend(_deep_linear_claims(result["deep_linear"]))
    return out


def _deep_linear_claims(linear) -> list:
    """Claims on the small-init runs (half and ninety: (P, K, Q)) and the median learning times."""
    half, ninety, learned, depths = linear["half"], linear["ninety"], linear["median_learned"], linear["depths"]
    saxe, shallow = "Saxe et al. 2014", depths[0]
    ordered = np.mean(np.all(np.diff(half[0], axis=-1) > 0, axis=-1))
    staged = np.mean(ninety[0, :, :-1] < half[0, :, 1:])
    faster = np.mean([learned[("orthogonal", m)] < learned[("small random", m)] for m in depths])
    # Not reached within the run: the run's length is a lower bound on the time.
    plateau = min(np.median(half[1, :, 0]), linear["steps"]) / np.median(half[0, :, 0])
    deep, mid = depths[-1], depths[1]
    ratio = learned[("orthogonal", deep)] / learned[("orthogonal", mid)]
    return [
        common.Claim.at_least(saxe, f"from small random init (depth {shallow}), modes are learned in the order of "
                              "their singular values (fraction of seeds with ordered half-learning times)", ordered,
                              1.0),
        common.Claim.at_least(saxe, "... one at a time: each mode reaches 90% before the next reaches 50% "
                              "(fraction of consecutive pairs over seeds)", staged, 1.0),
        common.Claim.at_least(saxe, f"from small init a deeper net sits far longer on the plateau: the first mode's "
                              f"half-learning time at depth {depths[1]} / at depth {shallow} (a lower bound where "
                              f"not reached in {linear['steps']} steps)", plateau, 10.0, "{:.3g}"),
        common.Claim.at_least(saxe, f"orthogonal init learns faster than small random init at every depth "
                              f"{list(depths)} (time to {linear['criterion']:g} of the modes' squared error; fraction "
                              "of depths)", faster, 1.0),
        common.Claim.at_most(saxe, f"orthogonal init, learning rate / depth: depth-independent learning time (at "
                             f"depth {deep} / at depth {mid}; linear growth: {deep / mid:g}, threshold halfway in log)",
                             ratio, math.sqrt(deep / mid), "{:.3g}")]


def main(argv=None):
    return common.experiment_main(sys.modules[__name__], argv)


if __name__ == "__main__":
    main()
