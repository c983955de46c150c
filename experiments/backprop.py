"""Backprop by hand: the delta rule (Rumelhart, Hinton & Williams 1986) against autodiff.

The course's walkthrough on a 2-2-1 sigmoid network (forward, backward, one update, forward
again); then zoo MLPs of several activations and depths trained on ``digits`` for a few full-batch
gradient-descent steps by the hand-written delta rule (:mod:`jaxdl.course.backprop`), whose gradient is
compared per layer, ``||g - g_ref|| / max(||g||, ||g_ref||)``, with reverse-mode autodiff (float32,
whole training set) and with central finite differences (float64, random coordinates, a subset of
the examples; a ReLU stencil across a kink is skipped and counted). Agreements between two
implementations and a first-order identity: checks, not a paper's findings.
"""
from __future__ import annotations


import jax
import jax.numpy as jnp
import matplotlib.ticker
import ml_collections
import numpy as np

from experiments import framework as fw
from jaxdl import data as datasets, plot, train
from jaxdl.core import compiled, tree
from jaxdl.course import backprop
from jaxdl.train import losses
from jaxdl.models import ACTIVATIONS, get_model

NAME = "backprop"
DESCRIPTION = "the delta rule by hand: the course's walkthrough, and equality with autodiff and finite differences"
PAPER = "Rumelhart, Hinton & Williams 1986"
AUTODIFF_TOLERANCE = 1e-5  # float32: ~100 ulps, the same sums taken in another order
FINITE_DIFFERENCE_TOLERANCE = 1e-6  # float64 central differences: O(h^2) truncation + O(eps / h) rounding


def get_config() -> ml_collections.ConfigDict:
    """The default size: about ten seconds on 2 CPU cores."""
    return ml_collections.ConfigDict(dict(
        seed=0, walkthrough_learning_rate=0.1, activations=("relu", "tanh", "sigmoid", "gelu"), depths=(1, 2, 3),
        width=32, loss_names=("cross_entropy", "mse"),  # mse on one-hot targets
        train_steps=100, learning_rate=0.5,  # full-batch gradient descent on the cross-entropy, by the delta rule
        fd_examples=256, fd_coordinates=24, fd_step=1e-5))  # fd_coordinates per layer (all of a smaller one)


SIZES = {"quick": {"activations": ("relu",), "depths": (2,), "width": 8, "train_steps": 5, "fd_examples": 32,
                   "fd_coordinates": 4},
         "full": {"activations": tuple(sorted(ACTIVATIONS)), "depths": (1, 2, 3, 4), "width": 128,
                  "learning_rate": 0.1, "fd_examples": 512, "fd_coordinates": 64}}  # 0.5 diverges: deep identity nets
FIELDS = {**dict.fromkeys(("width", "train_steps", "fd_examples", "fd_coordinates"), fw.positive_int),
          **dict.fromkeys(("walkthrough_learning_rate", "learning_rate", "fd_step"), fw.positive),
          "activations": fw.subset_of(*sorted(ACTIVATIONS)), "depths": fw.positive_ints,
          "loss_names": fw.subset_of("cross_entropy", "mse")}


def _targets(loss_name, labels_N, num_classes):
    return labels_N if loss_name == "cross_entropy" else jax.nn.one_hot(labels_N, num_classes, dtype=jnp.float32)


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


@compiled.jit(static_argnames=("loss_names", "train_steps", "num_classes"))
def train_and_check(models, key, x, labels, learning_rate, *, loss_names, train_steps, num_classes):
    """For each zoo MLP (one program for all): ``train_steps`` of gradient descent by the delta rule
    from ``key``'s init, then the delta rule against autodiff per loss and layer. One ``(params,
    [loss at the start, at the end], errors of shape (len(loss_names), L))`` per model. A recurrence
    on hand-written gradients, not a training run, so not on ``train.run_blocks``."""
    targets = [_targets(name, labels, num_classes) for name in loss_names]

    def one(model, params):
        value_and_grad = lambda p: backprop.value_and_grad(p, (x, labels), model.activation, "cross_entropy")

        def step(p, _):
            loss, g = value_and_grad(p)
            return tree.axpy(-learning_rate, g, p), loss

        trained, losses_S = jax.lax.scan(step, params, None, length=train_steps)
        by_hand = _delta_rule_grads(trained, x, targets, model.activation, loss_names)
        # jax.grad(J o apply_fn) is the model's pullback of grad J: one reverse pass of the zoo model per loss.
        outputs, pullback = jax.vjp(lambda p: train.make_apply_fn(model)(p, x), trained)
        reference = [pullback(jax.grad(lambda o, n=name, t=y: losses.batch_loss(n, o, t))(outputs))[0]
                     for name, y in zip(loss_names, targets)]
        errors = jnp.stack([jnp.stack([_relative(tree.flatten(g[name])[0], tree.flatten(r[name])[0])
                                       for name in backprop.layer_names(g)]) for g, r in zip(by_hand, reference)])
        return trained, jnp.stack([losses_S[0], value_and_grad(trained)[0]]), errors

    initial = {}  # the initial parameters depend on the widths, not on the activation
    for model in models:
        if model.widths not in initial:
            initial[model.widths] = model.init(key, x[:1])["params"]
    return [one(model, initial[model.widths]) for model in models]


def layer_coordinates(params, rng: np.random.Generator, per_layer: int):
    """Flat indices (in :func:`jaxdl.core.tree.flatten` order) of up to ``per_layer`` coordinates of
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
    """For each zoo MLP at its ``params`` (one program; float64 under ``jax.enable_x64``): central
    differences of each loss along its ``indices`` (of :func:`jaxdl.core.tree.flatten`), the delta rule's
    entries beside them, both ``(len(loss_names), R)``, and whether each stencil stays off ReLU kinks."""
    return [_central_differences_one(model, p, x, labels, indices_R, step, loss_names, num_classes)
            for model, p, indices_R in zip(models, params, indices)]


def walkthrough_phase(config) -> fw.Phase:
    trace = backprop.walkthrough(learning_rate=config.walkthrough_learning_rate)
    numbers = {k: float(getattr(trace, k)) for k in ("loss", "loss_after", "predicted_loss_after")}
    return fw.Phase(tables={"walkthrough": backprop.format_walkthrough(trace)}, numbers={"walkthrough": numbers})


def delta_rule_phase(config) -> fw.Phase:
    """Every (activation, depth) trained by the delta rule, then checked (float32, then float64: two programs)."""
    digits = datasets.load("digits", seed=config.seed)
    grid = [(activation, depth) for activation in config.activations for depth in config.depths]
    models = tuple(get_model("mlp", widths=(config.width,) * depth, activation=activation,
                             num_outputs=digits.num_classes) for activation, depth in grid)
    names, num_classes = tuple(config.loss_names), digits.num_classes
    # The checks are about the algebra: keep accelerators' reduced-precision matmul passes out of them.
    with jax.default_matmul_precision("highest"):
        trained = jax.device_get(train_and_check(
            models, jax.random.key(config.seed), digits.x_train, digits.y_train, float(config.learning_rate),
            loss_names=names, train_steps=config.train_steps, num_classes=num_classes))
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
            [indices_R for indices_R, _ in coordinates], float(config.fd_step), loss_names=names,
            num_classes=num_classes))
    rows, training_rows, errors = [], [], {}
    for (activation, depth), (_, losses_2, autodiff), (_, layers_R), (central, by_hand, smooth) in zip(
            grid, trained, coordinates, differences):
        keep_MxR = smooth & (layers_R == np.arange(depth + 1)[:, None])  # per layer, its smooth coordinates
        fd = np.array([[_relative(by_hand[row][keep], central[row][keep]) for keep in keep_MxR]
                       for row in range(len(names))])
        errors[activation, depth] = {"autodiff": autodiff, "finite_differences": fd, "checked": keep_MxR.sum(axis=1)}
        training_rows.append([activation, depth, *losses_2])
        rows += [[activation, depth, name, float(autodiff[row].max()), float(fd[row].max()),
                  int(keep_MxR.sum()), int(np.sum(~smooth))] for row, name in enumerate(names)]
    figures, depth = {}, max(config.depths)
    for key, what, tolerance in (("autodiff", "jax.grad (float32)", AUTODIFF_TOLERANCE),
                                 ("finite_differences", "central differences (float64)", FINITE_DIFFERENCE_TOLERANCE)):
        figures[f"errors_{key}"] = fig = plot.line_plot(  # a log axis has no 0: exact agreement is drawn at 1e-12
            {f"{a}, {name}": (np.arange(1, depth + 2), np.maximum(errors[a, depth][key][row], 1e-12))
             for a in config.activations for row, name in enumerate(names)}, logy=True,
            xlabel=f"layer m (1..{depth} hidden, {depth + 1} read-out)", ylabel="||g - g_ref|| / max(||g||, ||g_ref||)",
            title=f"delta rule vs {what} per layer ({depth} hidden layers; check <= {tolerance:g})")
        fig.axes[0].xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        fig.axes[0].legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=8)  # beside: curves interleave
    tables = {
        "delta rule against autodiff and finite differences (max over layers)": fw.format_table(
            ["activation", "hidden layers", "loss", "vs jax.grad (float32)", "vs central differences (float64)",
             "coordinates checked", "skipped at ReLU kinks"], rows, float_format="{:.2e}"),
        f"digits cross-entropy, {config.train_steps} gradient-descent steps by the delta rule": fw.format_table(
            ["activation", "hidden layers", "at initialisation", "after"], training_rows, float_format="{:.4f}")}
    # np.max, not max: a NaN must reach the check (which then fails), not be skipped.
    numbers = {"autodiff_error": float(np.max([r[3] for r in rows])),
               "finite_difference_error": float(np.max([r[4] for r in rows])),
               "coordinates_checked": sum(r[5] for r in rows[::len(names)]),
               "coordinates_skipped": sum(r[6] for r in rows[::len(names)])}
    return fw.Phase(tables=tables, figures=figures, numbers=numbers,
                    arrays={f"{kind}/{a}/depth{d}": e[kind] for (a, d), e in errors.items() for kind in e})


def run(config, ctx) -> None:
    ctx.phase("walkthrough", walkthrough_phase, config)
    ctx.phase("delta rule against autodiff and finite differences", delta_rule_phase, config)


def claims(config, numbers) -> list:
    walk = numbers["walkthrough"]
    return [
        fw.Check.at_most("delta_rule_equals_autodiff", PAPER, "the delta rule equals reverse-mode autodiff (jax.grad "
                         "of the zoo MLP; every layer, activation, depth and loss; largest relative error, float32)",
                         numbers["autodiff_error"], AUTODIFF_TOLERANCE, "{:.1e}"),
        fw.Check.at_most("delta_rule_equals_finite_differences", PAPER, "the delta rule equals central finite "
                         f"differences (float64; largest relative error over {numbers['coordinates_checked']} "
                         f"coordinates, each for every loss; {numbers['coordinates_skipped']} ReLU stencil(s) across "
                         "a kink skipped)", numbers["finite_difference_error"], FINITE_DIFFERENCE_TOLERANCE, "{:.1e}"),
        fw.Check.that("walkthrough_step_lowers_loss", "course walkthrough", "one small gradient-descent step along "
                      "the delta-rule gradient lowers the loss (J - lr ||g||^2 to first order: "
                      f"{walk['predicted_loss_after']:.4f})", walk["loss_after"] < walk["loss"],
                      f"< {walk['loss']:.4f} (before)", f"{walk['loss_after']:.4f}"),
    ]


main = fw.entry_point(__name__)


if __name__ == "__main__":
    main()
