"""Initialisation and signal propagation, three phases:

- ``mlp_phase`` (Glorot & Bengio 2010; He et al. 2015; Saxe et al. 2014; Poole et al. 2016): bias-free
  MLPs of width D and depth 50, ReLU and tanh, naive (std 0.01), Glorot, He and orthogonal inits, in
  float64: per-layer factors of the pre-activation and gradient variances against mean field.
- ``resnet_phase`` (De & Smith 2020): a ResNet's residual-branch variance relative to its skip path
  per block at init, with BatchNorm, without normalisation and with SkipInit (no-norm is SkipInit
  with every residual scale at 1: one program).
- ``deep_linear_phase`` (Saxe et al. 2014): full-batch gradient descent on whitened regression with
  input-output singular values ``s``; each mode's strength ``u_i^T W v_i`` from small random and
  orthogonal inits at several depths, learning rate ``eta / depth``, all runs in one program.
"""
from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from experiments import framework as fw
from jaxdl import plot
from jaxdl.course import propagation as prop
from jaxdl.models import get_model
from jaxdl.core import fits

NAME = "initialisation"
DESCRIPTION = ("signal propagation at initialisation: naive/Glorot/He/orthogonal MLPs of depth 50 against mean "
               "field, Saxe's deep linear dynamics, BatchNorm's bias of ResNets towards shallow paths")
RESNET_VARIANTS = ("batchnorm", "no norm", "SkipInit")
RESNET_STREAM, DEEP_LINEAR_STREAM = 1, 2  # the MLP phase uses key(seed) itself, the others fold in their number
SCHEME_PAPERS = {"naive": "He et al. 2015, Sec. 2.2", "glorot": "Glorot & Bengio 2010; He et al. 2015",
                 "he": "He et al. 2015, Sec. 2.2", "orthogonal": "Saxe et al. 2014"}
# Thresholds, declared before the run:
# - a per-layer factor (measured / mean field) within 5%: at width D the log of a ReLU net's signal
#   drifts by a few / D per layer (Hanin & Nica 2019), about 1% at D = 256: five times inside.
# - De & Smith's 1/(position) law: a stage's skip variance grows by one branch per block, 1/(k + c)
#   for an offset |c| <= 1 fits a log-log slope in [-1.3, -0.8] over positions 2..9: -1 +- 0.3.
# - Saxe: t_half = ln(s / u0 - 1) / (2 eta s) for two layers, a log-log slope of -1 raised by
#   1 / ln(s / u0), about 0.1 at this init: -1 +- 0.25. Plateau: an order of magnitude (small-init
#   escape takes ~u0^(2/N - 1) for N layers against ln(1 / u0) for two: about 100x here).
FACTOR_TOLERANCE, SLOPE_TOLERANCE, SAXE_EXPONENT_TOLERANCE, PLATEAU_RATIO = 0.05, 0.3, 0.25, 10.0


def get_config() -> ml_collections.ConfigDict:
    """The default size: about half a minute on 2 CPU cores."""
    return ml_collections.ConfigDict(dict(
        seed=0, mlp=dict(schemes=prop.SCHEMES, activations=("relu", "tanh"), depth=50, width=256, num_inputs=16,
                         seeds=16, naive_std=0.01),
        resnet=dict(depth=56, width_multiplier=1.0, image_size=8, batch_size=32, seeds=8, conv_implementation="xla"),
        deep_linear=dict(dim=8, singular_values=(2.0, 1.0, 0.5, 0.25), small_std=0.01, depths=(2, 4, 8, 16), seeds=8,
                         learning_rate=0.3, steps=1000, criterion=0.01)))


SIZES = {"quick": {"mlp.depth": 6, "mlp.width": 32, "mlp.num_inputs": 8, "mlp.seeds": 2,
                   "resnet.depth": 8, "resnet.width_multiplier": 0.25, "resnet.batch_size": 8, "resnet.seeds": 2,
                   "deep_linear.depths": (2, 3, 4), "deep_linear.seeds": 2, "deep_linear.steps": 150},
         "full": {"mlp.width": 1024, "mlp.num_inputs": 64, "mlp.seeds": 32, "resnet.depth": 110,
                  "resnet.image_size": 32, "resnet.batch_size": 128, "resnet.seeds": 16, "deep_linear.dim": 32,
                  "deep_linear.depths": (2, 4, 8, 16, 32), "deep_linear.seeds": 32, "deep_linear.steps": 4000}}
FIELDS = {
    **dict.fromkeys(("mlp.depth", "mlp.width", "mlp.num_inputs", "mlp.seeds", "resnet.image_size", "resnet.batch_size",
                     "resnet.seeds", "deep_linear.dim", "deep_linear.seeds", "deep_linear.steps"), fw.positive_int),
    **dict.fromkeys(("mlp.naive_std", "resnet.width_multiplier", "deep_linear.small_std", "deep_linear.learning_rate"),
                    fw.positive),
    "mlp.schemes": fw.subset_of(*prop.SCHEMES), "mlp.activations": fw.subset_of("relu", "tanh", "identity"),
    "resnet.depth": fw.expect(lambda v: v >= 8 and (v - 2) % 6 == 0, "6n + 2 with n >= 1"),
    "deep_linear.singular_values": fw.expect(
        lambda v, c: 1 < len(v) <= c.deep_linear.dim and min(v) > 0 and all(a > b for a, b in zip(v, v[1:])),
        "2 to deep_linear.dim positive, strictly decreasing numbers", uses_config=True),
    "deep_linear.depths": (fw.positive_ints, fw.increasing, fw.expect(lambda v: len(v) > 2, "three or more depths")),
    "deep_linear.criterion": fw.expect(lambda v: 0 < v < 1, "a number in (0, 1)"),
}


def mlp_phase(config) -> fw.Phase:
    """Per seed, the per-layer factors of Var[z_l] (forward) and E[(dJ/da_l)^2] (backward, towards
    the input) over the M layers, beside the mean field's; seed means in a table and a figure."""
    m = config.mlp
    with jax.enable_x64(True):
        stats = jax.tree.map(np.asarray, prop.mlp_signal_statistics(  # leaves (schemes, K, ...)
            jax.random.key(config.seed), schemes=tuple(m.schemes), activations=tuple(m.activations), depth=m.depth,
            width=m.width, num_inputs=m.num_inputs, num_seeds=m.seeds, naive_std=m.naive_std, dtype=jnp.float64))
    layers, per_layer = np.arange(1, m.depth + 1), lambda ratio: ratio ** (1 / max(m.depth - 1, 1))
    rows, numbers, panels = [], {}, {}
    for activation in m.activations:
        forward, backward = {}, {}
        for i, scheme in enumerate(m.schemes):
            q_KxM = stats[activation]["preactivation_second_moment"][i]
            grads_KxM = stats[activation]["activation_gradient_second_moment"][i][:, 0]
            sigma2 = prop.scheme_weight_variance(scheme, m.width, activation, m.naive_std)
            theory = prop.mean_field_second_moments(activation, sigma2, m.depth)
            q_theory, chi_M = theory["preactivation_second_moment"], theory["gradient_factor"]
            numbers[f"{activation}/{scheme}"] = n = {
                "forward": per_layer(q_KxM[:, -1] / q_KxM[:, 0]).tolist(),
                "forward_mean_field": per_layer(q_theory[-1] / q_theory[0]),
                "backward": per_layer(grads_KxM[:, 0] / grads_KxM[:, -1]).tolist(),
                "backward_mean_field": per_layer(np.prod(chi_M[1:]))}
            rows.append([activation, scheme, sigma2, *(np.mean(value) for value in n.values())])
            forward[scheme] = (layers, q_KxM.mean(0), q_theory)
            # E[(dJ/da_l)^2] / E[(dJ/da_M)^2] = chi_{l+1} ... chi_M in mean field (1 at the top layer).
            backward[scheme] = (layers, grads_KxM.mean(0), np.append(np.cumprod(chi_M[:0:-1])[::-1], 1))
        panels[f"{activation}: pre-activation variance Var[z_l]"] = forward
        panels[f"{activation}: Var[z_l] / Var[z_1], close up"] = {
            s: (x, y / y[0], theory / theory[0]) for s, (x, y, theory) in forward.items()}
        panels[f"{activation}: E[(dJ/da_l)^2] (top layer: 1)"] = backward
        panels[f"{activation}: E[(dJ/da_l)^2], close up"] = backward
    figure = plot.panels(panels, columns=len(m.activations), xlabel="layer l", title="MLPs at init, mean over seeds "
                         "(dashed: infinite-width mean field)", ylim=(None, (1e-2, 1e3)) * 2 * len(m.activations))
    return fw.Phase(tables={f"MLPs at init: per-layer factors over {m.depth} layers (means over {m.seeds} seeds)":
                            fw.format_table(["activation", "scheme", "n Var[w]", "forward", "mean field", "backward",
                                             "mean field"], rows, "{:.4g}")},
                    figures={"mlp_signal_propagation": figure}, numbers={"mlp": numbers})


def resnet_phase(config) -> fw.Phase:
    """Branch/skip variance ratios per block for the three variants, and per-seed within-stage slopes."""
    r = config.resnet
    # Drawn by NumPy: a jax.random draw outside the main program would be one more compilation.
    x = np.random.default_rng([config.seed, RESNET_STREAM]).standard_normal((r.seeds, r.batch_size, r.image_size,
                                                                              r.image_size, 3), np.float32)
    models = tuple(get_model("resnet", depth=r.depth, width_multiplier=r.width_multiplier, shortcut="projection",
                             conv_implementation=r.conv_implementation, **norm)
                   for norm in ({"norm": "batch"}, {"norm": "none", "skip_init": True}))
    variances = _resnet_variances(models, jax.random.key(config.seed), x)
    measured = {variant: prop.order_blocks(found) for variant, found in variances.items()}
    ratios_KxJ = {variant: found["ratio"] for variant, found in measured.items()}
    blocks, per_stage = measured["batchnorm"]["blocks"], (r.depth - 2) // 6
    position = np.arange(len(blocks)) % per_stage + 1  # a block's place in its stage; the skip resets at 1
    later = position > 1  # from the second block of a stage on, the skip path is the identity
    # The slope of log(ratio) against log(position) over those blocks, per seed (from ResNet-20 on).
    slopes = {v: fits.loglog_slope(position[later], ratios_KxJ[v][:, later]).tolist()
              for v in ("batchnorm", "no norm")} if per_stage >= 3 else {}
    means = {v: ratio.mean(axis=0) for v, ratio in ratios_KxJ.items()}
    figure = plot.line_plot({v: (np.arange(1, len(blocks) + 1), means[v]) for v in RESNET_VARIANTS},
                            xlabel="residual block", ylabel="Var[branch] / Var[skip] (mean over seeds)",
                            title=f"ResNet-{r.depth} at init (a stage's first block: new skip path)")
    rows = [[b, *(means[v][j] for v in RESNET_VARIANTS)] for j, b in enumerate(blocks)]
    return fw.Phase(tables={"ResNet: Var[branch] / Var[skip] (mean over seeds)": fw.format_table(
        ["block", *RESNET_VARIANTS], rows, "{:.3g}")}, figures={"resnet_branch_ratio": figure},
        arrays={f"resnet_ratio/{v}": ratio for v, ratio in ratios_KxJ.items()},
        numbers={"resnet": {"slopes": slopes, "skipinit_max": float(np.max(ratios_KxJ["SkipInit"]))}})


@functools.partial(jax.jit, static_argnums=0)
def _resnet_variances(models, key, x_KxBxHxWxC):
    """Both models initialised per seed, the three variants measured, in one program."""
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


def deep_linear_phase(config) -> fw.Phase:
    """Mode strengths from small and orthogonal inits at each depth (one program); per seed, the steps
    to 50% and 90% of each target and the learning time (to sum_i (a_i - s_i)^2 <= ``criterion`` sum_i
    s_i^2, Saxe et al.'s time to criterion); a time not reached counts as the run's length."""
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
    learned = fits.first_crossing(reached, True, at_T=steps_T)  # (2, P, K)
    curves = {f"s={s:g}": (steps_T[1:], strength[0, 0, 0, 1:, q] / s, strength[1, 0, 0, 1:, q] / s)
              for q, s in enumerate(s_Q)}
    capped = lambda a: np.clip(a, 1, d.steps)  # at least one step (a log axis, a ratio), at most the run
    median_learned = np.median(capped(learned), axis=-1)  # (2, P)
    figure = plot.panels({f"depth {d.depths[0]}, seed 0: mode strength u_i^T W v_i / s_i": curves,
                          f"learning time (median):\nsteps until sum (a_i - s_i)^2 <= {d.criterion:g} sum s_i^2":
                          {"learning time": (np.asarray(d.depths), *median_learned)}},
                         columns=2, xlabel=("step", f"depth (weight layers); {d.steps}: not learned"),
                         logx=(True, False), logy=(False, True), title=f"deep linear networks from small random "
                         f"(solid) and orthogonal (dashed) init, learning rate {d.learning_rate:g} / depth")
    rows = [[init, depth, median_learned[i, p], *np.median(half[i, p], axis=0)]
            for i, init in enumerate(("small random", "orthogonal")) for p, depth in enumerate(d.depths)]
    table = fw.format_table(["init", "depth", "learning time (steps)"] + [f"steps to 50% (s={s:g})" for s in s_Q],
                            rows, "{:.4g}")
    half_small = capped(half[0])  # (P, K, Q)
    numbers = {"deep_linear": {
        "half_time_exponent": fits.loglog_slope(s_Q, half_small[0]).tolist(),
        "stage_gap": np.min(np.log(half_small[0, :, 1:] / capped(ninety[0, 0, :, :-1])), axis=-1).tolist(),
        "first_mode_half": half_small[:2, :, 0].tolist(), "learned": capped(learned).tolist()}}
    return fw.Phase(tables={"deep linear networks (medians over seeds; inf: not reached in the run)": table},
                    figures={"deep_linear": figure}, numbers=numbers,
                    arrays={"deep_linear_half": half[0], "deep_linear_ninety": ninety[0]})


@functools.partial(jax.jit, static_argnums=(1, 2, 3, 4, 5, 7))
def _deep_linear_runs(key, singular_values, depths, num_seeds, dim, small_std, learning_rate, steps):
    """The task, and training from both inits at every depth and seed: one program, runs vmapped."""
    task_key, init_key = jax.random.split(jax.random.fold_in(key, DEEP_LINEAR_STREAM))
    x, y, modes_in, modes_out = prop.linear_regression_task(task_key, singular_values, dim)
    deepest, depths_P = max(depths), jnp.asarray(depths)
    kernels_IxKxMxDxD = jnp.swapaxes(jax.lax.map(lambda k: prop.init_deep_mlp(
        k, ("naive", "orthogonal"), deepest, dim, activation="identity", naive_std=small_std),
        jax.random.split(init_key, num_seeds)), 0, 1)
    trainable_PxM = jnp.arange(deepest)[None, :] < depths_P[:, None]
    # Frozen identity layers above a run's depth: every depth is the same program.
    kernels = jnp.where(trainable_PxM[None, :, None, :, None, None], kernels_IxKxMxDxD[:, None], jnp.eye(dim))
    batch = kernels.shape[:3]
    learning_rates = jnp.broadcast_to((learning_rate / depths_P)[None, :, None], batch)
    trainable = jnp.broadcast_to(trainable_PxM[None, :, None], batch + (deepest,))
    flat = lambda a: a.reshape((-1,) + a.shape[3:])
    train = lambda k, lr, t: prop.deep_linear_training(k, x, y, modes_in, modes_out, lr, num_steps=steps, trainable_M=t)
    out = jax.vmap(train)(*map(flat, (kernels, learning_rates, trainable)))
    return jax.tree.map(lambda a: a.reshape(batch + a.shape[1:]), out)


def run(config, ctx) -> None:
    ctx.phase("MLP signal propagation", mlp_phase, config)
    ctx.phase("ResNet branches", resnet_phase, config)
    ctx.phase("deep linear dynamics", deep_linear_phase, config)


def claims(config, numbers) -> list:
    out, depth, resnet = [], config.mlp.depth, numbers["resnet"]
    measured = {key: np.divide(n["forward"], n["forward_mean_field"]) for key, n in numbers["mlp"].items()}
    # ReLU is positively homogeneous and the naive init rescales He's draws: its measured /
    # predicted factor is He's, the same measurement, so it is a check, not a second claim.
    rescaled = [k for k in ("relu/naive",) if k in measured and "relu/he" in measured]
    if rescaled:
        out.append(fw.Check.at_most(
            "relu_naive_matches_he", "algebra (ReLU is homogeneous)", "the naive init, He's draws rescaled, gives "
            "He's measured / predicted forward factor (largest relative difference over seeds)",
            np.max(np.abs(measured["relu/naive"] / measured["relu/he"] - 1)), 1e-6, "{:.1e}"))
    for key, n in numbers["mlp"].items():
        activation, scheme = key.split("/")
        if key in rescaled:
            continue
        for way in ("forward", "backward") if scheme == "he" else ("forward",):  # He et al. derive both conditions
            paper = (f"{SCHEME_PAPERS[scheme]}; Poole et al. 2016 (mean field)" if way == "forward" else
                     SCHEME_PAPERS[scheme] if activation == "relu" else "Schoenholz et al. 2017 (chaotic phase)")
            out.append(fw.Claim.within(
                f"{activation}_{scheme}_{way}_factor", paper, f"{scheme} init, {activation}: the per-layer factor of "
                f"{'Var[z_l]' if way == 'forward' else 'E[(dJ/da_l)^2] towards the input'} over {depth} layers is the "
                f"mean field's {n[way + '_mean_field']:.4g} (measured / predicted)",
                np.divide(n[way], n[way + "_mean_field"]), target=1.0, tolerance=FACTOR_TOLERANCE, fmt="{:.4f}"))
    if resnet["slopes"]:  # ResNets of depth 20 and more
        out += [fw.Claim.within(f"resnet_{variant.replace(' ', '_')}_slope", "De & Smith 2020",
                                f"ResNet-{config.resnet.depth} at init: {words} (log-log slope of Var[branch] / "
                                "Var[skip] against the position in the stage, per seed)", resnet["slopes"][variant],
                                target=target, tolerance=SLOPE_TOLERANCE, fmt="{:.3f}")
                for variant, target, words in (("batchnorm", -1.0, "with BatchNorm the branch's share falls like "
                                                "1/position"), ("no norm", 0.0, "without normalisation it does not "
                                                                "fall (control)"))]
    out.append(fw.Check.at_most("skipinit_branch_zero", "De & Smith 2020", "SkipInit: every residual branch "
                                "contributes exactly 0 at init (largest Var[branch] / Var[skip])",
                                resnet["skipinit_max"], 0))
    d, n, saxe = config.deep_linear, numbers["deep_linear"], "Saxe et al. 2014"
    (shallow, mid, deep), (small, orthogonal) = (d.depths[0], d.depths[1], d.depths[-1]), n["learned"]
    return out + [
        fw.Claim.within("saxe_half_time_exponent", saxe, f"from small init (depth {shallow}), a mode of strength s is "
                        "learned in time ~ 1/s (log-log slope of the half-learning time against s, per seed)",
                        n["half_time_exponent"], target=-1.0, tolerance=SAXE_EXPONENT_TOLERANCE, fmt="{:.3f}"),
        fw.Claim.mean("saxe_stagewise", saxe, "... one mode at a time: each reaches 90% before the next reaches 50% "
                      "(smallest log of t50(next) / t90(this), per seed)", n["stage_gap"], above=0.0),
        fw.Claim.ratio("saxe_small_init_plateau", saxe, f"from small init a deeper net sits far longer on the plateau: "
                       f"the first mode's half-learning time, depth {mid} / depth {shallow} (learning rate / depth; a "
                       f"lower bound where not reached in {d.steps} steps)", n["first_mode_half"][1],
                       n["first_mode_half"][0], above=PLATEAU_RATIO, paired=True),
        fw.Claim.ratio("saxe_orthogonal_faster", saxe, f"orthogonal init learns faster than small random init at depth "
                       f"{shallow} (time to {d.criterion:g} of the modes' squared error, small / orthogonal)",
                       small[0], orthogonal[0], above=1.0, paired=True),
        fw.Claim.ratio("saxe_orthogonal_depth_independent", saxe, f"orthogonal init, learning rate / depth: learning "
                       f"time independent of depth (depth {deep} / depth {mid}; threshold halfway in log between 1 and "
                       f"linear growth, {deep / mid:g})", orthogonal[-1], orthogonal[1], below=math.sqrt(deep / mid),
                       paired=True)]


main = fw.entry_point(__name__)


if __name__ == "__main__":
    main()
