"""Backprop by hand: the delta rule (Rumelhart, Hinton & Williams 1986) against autodiff.

First the course's walkthrough on a 2-2-1 sigmoid network: forward, backward (every z, a, delta
and gradient), one gradient-descent update, forward again. Then, on ``digits``, zoo MLPs of
several activations and depths are trained for a few full-batch gradient-descent steps driven by
the hand-written delta rule (:mod:`jaxdl.backprop`), and at the trained parameters (non-zero
biases) its gradient is compared, layer by layer, with

- reverse-mode autodiff (``jax.grad`` of the zoo model's loss) in float32, on the whole training
  set: relative error ``||g - g_ref|| / max(||g||, ||g_ref||)`` over each layer's kernel and bias;
- central finite differences ``(J(theta + h e_i) - J(theta - h e_i)) / 2h`` in float64, at
  randomly drawn coordinates of each layer, on a subset of the examples. The loss of a ReLU net is
  not differentiable where a pre-activation is 0: a coordinate whose stencil moves any
  pre-activation across 0 is skipped (and counted), since there a central difference measures a
  kink rather than the gradient.
"""
from __future__ import annotations

import sys

import jax
import jax.numpy as jnp
import matplotlib.ticker
import ml_collections
import numpy as np

from experiments import common
from jaxdl import backprop, checks, compiled, io, losses, plot, train, tree
from jaxdl import data as datasets
from jaxdl.models import get_model
from jaxdl.models.mlp import ACTIVATIONS

NAME = "backprop"
DESCRIPTION = "the delta rule by hand: the course's walkthrough, and equality with autodiff and finite differences"

PAPER = "Rumelhart, Hinton & Williams 1986"
AUTODIFF_TOLERANCE = 1e-5  # float32: ~100 ulps, the same sums taken in another order
FINITE_DIFFERENCE_TOLERANCE = 1e-6  # float64 central differences: O(h^2) truncation + O(eps / h) rounding


def get_config(size: str = "default") -> ml_collections.ConfigDict:
    """Sizes: ``quick`` (seconds, tests), ``default`` (about half a minute on 2 CPU cores), ``full``."""
    common.check_size(size)
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.walkthrough_learning_rate = 0.1
    c.activations = ("relu", "tanh", "sigmoid", "gelu")
    c.depths = (1, 2, 3)  # hidden layers
    c.width = 32
    c.loss_names = ("cross_entropy", "mse")  # mse on one-hot targets
    c.train_steps = 100  # full-batch gradient descent on the cross-entropy, by the delta rule
    c.learning_rate = 0.5
    c.fd_examples = 256
    c.fd_coordinates = 24  # per layer (all of a smaller layer)
    c.fd_step = 1e-5
    if size == "quick":
        c.activations = ("relu",)
        c.depths = (2,)
        c.width = 8
        c.train_steps = 5
        c.fd_examples = 32
        c.fd_coordinates = 4
    elif size == "full":
        c.activations = tuple(sorted(ACTIVATIONS))
        c.depths = (1, 2, 3, 4)
        c.width = 128
        c.learning_rate = 0.1  # 0.5 diverges for the deep linear (identity) nets
        c.fd_examples = 512
        c.fd_coordinates = 64
    return c


def _validate(config):
    for field in ("width", "train_steps", "fd_examples", "fd_coordinates"):
        common.require(checks.is_integer(config[field]) and config[field] > 0, field, "a positive integer",
                       config[field])
    for field in ("walkthrough_learning_rate", "learning_rate", "fd_step"):
        common.require(config[field] > 0, field, "a positive number", config[field])
    common.require(len(config.activations) > 0 and all(a in ACTIVATIONS for a in config.activations), "activations",
                   f"names among {sorted(ACTIVATIONS)}", config.activations)
    common.require(len(config.depths) > 0 and all(checks.is_integer(d) and d >= 1 for d in config.depths), "depths",
                   "positive integers (hidden layers)", config.depths)
    common.require(len(config.loss_names) > 0 and all(n in ("cross_entropy", "mse") for n in config.loss_names),
                   "loss_names", "names among cross_entropy, mse", config.loss_names)


def _targets(loss_name, labels_N, num_classes):
    return labels_N if loss_name == "cross_entropy" else jax.nn.one_hot(labels_N, num_classes, dtype=jnp.float32)


def _layer_errors(grads, reference):
    """Relative error ``||g - g_ref|| / max(||g||, ||g_ref||)`` of each layer (kernel and bias
    together), in layer order; 0 where both are 0."""
    errors = []
    for name in backprop.layer_names(grads):
        g, r = tree.flatten(grads[name])[0], tree.flatten(reference[name])[0]
        errors.append(_relative(g, r))
    return jnp.stack(errors)


def _relative(a, b):
    """``||a - b|| / max(||a||, ||b||)``, 0 where both are 0, NaN where either is (NumPy or traced)."""
    xp = jnp if isinstance(a, jax.Array) or isinstance(b, jax.Array) else np
    scale = xp.maximum(xp.linalg.norm(a), xp.linalg.norm(b))
    return xp.where(scale == 0, 0.0, xp.linalg.norm(a - b) / xp.where(scale == 0, 1.0, scale))


def _delta_rule_grads(params, x, targets, activation, loss_names):
    """The delta rule's gradient of each loss: one forward pass, one backward pass per loss."""
    fwd = backprop.forward(params, x, activation)
    return [backprop.backward(params, fwd, backprop.output_gradient(name, fwd.outputs, y), activation)[0]
            for name, y in zip(loss_names, targets)]


def _train_and_check_one(model, params, x, labels, learning_rate, loss_names, train_steps, num_classes):
    apply_fn, activation = train.make_apply_fn(model), model.activation

    def step(p, _):
        loss, g = backprop.value_and_grad(p, (x, labels), activation, "cross_entropy")
        return tree.axpy(-learning_rate, g, p), loss

    trained, losses_S = jax.lax.scan(step, params, None, length=train_steps)
    final = backprop.value_and_grad(trained, (x, labels), activation, "cross_entropy")[0]
    targets = [_targets(name, labels, num_classes) for name in loss_names]
    by_hand = _delta_rule_grads(trained, x, targets, activation, loss_names)
    # jax.grad(J o apply_fn) is the model's pullback of grad J: one reverse pass of the zoo model, for each loss.
    outputs, pullback = jax.vjp(lambda p: apply_fn(p, x), trained)
    reference = [pullback(jax.grad(lambda o, n=name, t=y: losses.batch_loss(n, o, t))(outputs))[0]
                 for name, y in zip(loss_names, targets)]
    errors = jnp.stack([_layer_errors(g, r) for g, r in zip(by_hand, reference)])
    return trained, jnp.stack([losses_S[0], final]), errors


@compiled.jit(static_argnames=("loss_names", "train_steps", "num_classes"))
def train_and_check(models, key, x, labels, learning_rate, *, loss_names, train_steps, num_classes):
    """For each zoo MLP of ``models`` (one program for all): initialise with ``key``, take
    ``train_steps`` steps of gradient descent on the cross-entropy with delta-rule gradients, then
    measure the relative error of the delta rule against reverse-mode autodiff per layer for each
    loss. Returns one ``(params, [loss at the start, at the end], errors)`` per model, ``errors`` of
    shape ``(len(loss_names), L)``."""
    initial = {}  # the initial parameters depend on the widths, not on the activation
    out = []
    for model in models:
        if model.widths not in initial:
            initial[model.widths] = model.init(key, x[:1])["params"]
        out.append(_train_and_check_one(model, initial[model.widths], x, labels, learning_rate, loss_names,
                                        train_steps, num_classes))
    return out


def layer_coordinates(params, rng: np.random.Generator, per_layer: int):
    """Flat indices (in :func:`jaxdl.tree.flatten` order) of up to ``per_layer`` coordinates of
    each layer drawn without replacement, and the layer of each: ``(indices_R, layers_R)``."""
    paths_and_leaves = jax.tree_util.tree_flatten_with_path(params)[0]
    offsets = np.cumsum([0] + [np.size(leaf) for _, leaf in paths_and_leaves])
    indices, layers = [], []
    for m, name in enumerate(backprop.layer_names(params)):
        owned = np.concatenate([np.arange(offsets[i], offsets[i + 1])
                                for i, (path, _) in enumerate(paths_and_leaves) if path[0].key == name])
        indices.append(np.sort(rng.choice(owned, min(per_layer, len(owned)), replace=False)))
        layers.append(np.full(len(indices[-1]), m))
    return np.concatenate(indices), np.concatenate(layers)


def _central_differences_one(model, params, x, labels, indices_R, step, loss_names, num_classes):
    apply_fn, activation = train.make_apply_fn(model), model.activation
    theta, unravel = tree.flatten(params)
    targets = [_targets(loss_name, labels, num_classes) for loss_name in loss_names]

    def central(index):
        offset = jnp.zeros_like(theta).at[index].set(step)
        plus, minus = unravel(theta + offset), unravel(theta - offset)
        outputs_plus, outputs_minus = apply_fn(plus, x), apply_fn(minus, x)
        differences = jnp.stack([losses.batch_loss(name, outputs_plus, y) - losses.batch_loss(name, outputs_minus, y)
                                 for name, y in zip(loss_names, targets)])
        smooth = jnp.asarray(True)
        if activation == "relu":  # the only activation of the zoo with a kink
            z_plus, z_minus = backprop.forward(plus, x, activation).z, backprop.forward(minus, x, activation).z
            smooth = jnp.all(jnp.stack([jnp.all((p > 0) == (q > 0)) for p, q in zip(z_plus, z_minus)]))
        return differences / (2 * step), smooth

    central_RxL, smooth_R = jax.vmap(central)(indices_R)
    by_hand = [tree.flatten(g)[0][indices_R] for g in _delta_rule_grads(params, x, targets, activation, loss_names)]
    return central_RxL.T, jnp.stack(by_hand), smooth_R


@compiled.jit(static_argnames=("loss_names", "num_classes"))
def finite_difference_check(models, params, x, labels, indices, step, *, loss_names, num_classes):
    """For each zoo MLP of ``models`` at its ``params`` (one program for all; float64 when called
    under ``jax.enable_x64``): central differences of the model's loss along the coordinates of
    its ``indices`` entry (flat indices of :func:`jaxdl.tree.flatten`). Returns one
    ``(central, by_hand, smooth_R)`` per model, the first two of shape ``(len(loss_names), R)``
    (the delta rule's entries beside the differences), ``smooth_R`` whether the stencil of each
    coordinate stays off the ReLU kinks."""
    return [_central_differences_one(model, p, x, labels, indices_R, step, loss_names, num_classes)
            for model, p, indices_R in zip(models, params, indices)]


def _finite_difference_errors(central_LxR, by_hand_LxR, smooth_R, layers_R, num_layers):
    """Per loss and layer, the relative error over the layer's smooth coordinates, and counts."""
    errors = np.zeros((len(central_LxR), num_layers))
    for m in range(num_layers):
        keep = smooth_R & (layers_R == m)
        for row in range(len(central_LxR)):
            errors[row, m] = _relative(by_hand_LxR[row][keep], central_LxR[row][keep])
    return errors, np.array([np.sum(smooth_R & (layers_R == m)) for m in range(num_layers)])


def walkthrough_phase(config) -> dict:
    trace = backprop.walkthrough(learning_rate=config.walkthrough_learning_rate)
    return {"text": backprop.format_walkthrough(trace), "loss": float(trace.loss),
            "loss_after": float(trace.loss_after), "predicted_loss_after": float(trace.predicted_loss_after)}


def checks_phase(config) -> dict:
    """Every (activation, depth): train by the delta rule, then check it (two programs for the
    whole grid: float32, then float64); ``{(activation, depth): {...}}``."""
    digits = datasets.load("digits", seed=config.seed)
    grid = [(activation, depth) for activation in config.activations for depth in config.depths]
    models = tuple(get_model("mlp", widths=(config.width,) * depth, activation=activation,
                             num_outputs=digits.num_classes) for activation, depth in grid)
    loss_names = tuple(config.loss_names)
    # The claim is about the algebra: keep accelerators' reduced-precision matmul passes out of it.
    with jax.default_matmul_precision("highest"):
        trained = jax.device_get(train_and_check(
            models, jax.random.key(config.seed), digits.x_train, digits.y_train, float(config.learning_rate),
            loss_names=loss_names, train_steps=config.train_steps, num_classes=digits.num_classes))
    for (activation, depth), (_, losses_2, _) in zip(grid, trained):
        if not np.all(np.isfinite(losses_2)):
            raise FloatingPointError(f"the {activation} MLP with {depth} hidden layers diverged under gradient descent "
                                     f"(cross-entropy {losses_2[1]}); lower config.learning_rate")
    coordinate_rng = np.random.default_rng(config.seed)  # on the host: the indices set shapes, not values
    coordinates = [layer_coordinates(params, coordinate_rng, config.fd_coordinates) for params, _, _ in trained]
    with jax.enable_x64(True):
        differences = jax.device_get(finite_difference_check(
            models, [jax.tree.map(lambda p: np.asarray(p, np.float64), params) for params, _, _ in trained],
            np.asarray(digits.x_train[:config.fd_examples], np.float64), digits.y_train[:config.fd_examples],
            [indices_R for indices_R, _ in coordinates], float(config.fd_step), loss_names=loss_names,
            num_classes=digits.num_classes))
    out = {}
    for (activation, depth), (_, losses_2, autodiff), (_, layers_R), (central, by_hand, smooth) in zip(
            grid, trained, coordinates, differences):
        fd_errors, checked = _finite_difference_errors(central, by_hand, smooth, layers_R, depth + 1)
        out[(activation, depth)] = {"loss_start": float(losses_2[0]), "loss_end": float(losses_2[1]),
                                    "autodiff": autodiff, "finite_differences": fd_errors, "checked": checked,
                                    "skipped": int(np.sum(~smooth))}
    return out


def _error_figure(measured, config, key, run_dir, title, name):
    depth = max(config.depths)
    curves = {}
    for activation in config.activations:
        errors = measured[(activation, depth)][key]
        for row, loss_name in enumerate(config.loss_names):
            # A log axis has no 0: an exact agreement would be drawn at 1e-12.
            curves[f"{activation}, {loss_name}"] = (np.arange(1, depth + 2), np.maximum(errors[row], 1e-12))
    fig = plot.line_plot(curves, xlabel=f"layer m (1..{depth} hidden, {depth + 1} read-out)",
                         ylabel="relative error ||g - g_ref|| / max(||g||, ||g_ref||)", title=title, logy=True)
    ax = fig.axes[0]
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=8)  # beside the axes: the curves interleave
    return plot.save_figure(fig, run_dir.figure_path(name))


def run(config, run_dir: io.RunDir) -> dict:
    _validate(config)
    timed = common.PhaseTimer()
    walk = timed("walkthrough", walkthrough_phase, config)
    measured = timed("delta rule against autodiff and finite differences", checks_phase, config)
    rows, training_rows = [], []
    for (activation, depth), c in measured.items():
        training_rows.append([activation, depth, c["loss_start"], c["loss_end"]])
        for row, loss_name in enumerate(config.loss_names):
            rows.append([activation, depth, loss_name, float(c["autodiff"][row].max()),
                         float(c["finite_differences"][row].max()), int(c["checked"].sum()), c["skipped"]])
    figures = [
        _error_figure(measured, config, "autodiff", run_dir, "delta rule vs jax.grad per layer (float32, "
                      f"{max(config.depths)} hidden layers; claim <= {AUTODIFF_TOLERANCE:g})", "errors_autodiff"),
        _error_figure(measured, config, "finite_differences", run_dir, "delta rule vs central differences per layer "
                      f"(float64, {max(config.depths)} hidden layers; claim <= {FINITE_DIFFERENCE_TOLERANCE:g})",
                      "errors_finite_differences"),
    ]
    run_dir.save_results(**{f"{kind}/{a}/depth{d}": c[kind] for (a, d), c in measured.items()
                            for kind in ("autodiff", "finite_differences", "checked")})
    tables = {
        "walkthrough": walk["text"],
        "delta rule against autodiff and finite differences (max over layers)": common.format_table(
            ["activation", "hidden layers", "loss", "vs jax.grad (float32)", "vs central differences (float64)",
             "coordinates checked", "skipped at ReLU kinks"], rows, float_format="{:.2e}"),
        f"digits cross-entropy, {config.train_steps} gradient-descent steps by the delta rule": common.format_table(
            ["activation", "hidden layers", "at initialisation", "after"], training_rows, float_format="{:.4f}"),
        "seconds per phase": timed.table(),
    }
    return {"tables": tables, "figures": figures, "walkthrough": {k: v for k, v in walk.items() if k != "text"},
            # np.max, not max: a NaN must reach the claim (which then fails), not be skipped.
            "autodiff_error": float(np.max([r[3] for r in rows])),
            "finite_difference_error": float(np.max([r[4] for r in rows])),
            "coordinates_checked": sum(int(c["checked"].sum()) for c in measured.values()),
            "coordinates_skipped": sum(c["skipped"] for c in measured.values())}


def claims(result: dict) -> list:
    walk = result["walkthrough"]
    return [
        common.Claim.at_most(
            PAPER, "the delta rule equals reverse-mode autodiff (jax.grad of the zoo MLP; every layer, activation, "
            "depth and loss; largest relative error, float32)", result["autodiff_error"], AUTODIFF_TOLERANCE,
            "{:.1e}"),
        common.Claim.at_most(
            PAPER, "the delta rule equals central finite differences (float64; largest relative error over "
            f"{result['coordinates_checked']} coordinates, each for every loss; {result['coordinates_skipped']} "
            "ReLU stencil(s) across a kink skipped)", result["finite_difference_error"], FINITE_DIFFERENCE_TOLERANCE,
            "{:.1e}"),
        common.Claim.check(
            "course walkthrough", "one gradient-descent step along the delta-rule gradient lowers the loss "
            f"(first-order prediction {walk['predicted_loss_after']:.4f})", f"< {walk['loss']:.4f} (before)",
            walk["loss_after"], lambda after: after < walk["loss"], "{:.4f}"),
    ]


def main(argv=None):
    return common.experiment_main(sys.modules[__name__], argv)


if __name__ == "__main__":
    main()
