"""Adversarial examples: the fast gradient sign method and adversarial training.

Goodfellow, Shlens & Szegedy 2015: x_adv = x + eps sign(grad_x L) moves each input feature by at
most eps, yet fools a network whose logits are close to linear in x. On MNIST at eps = 0.25 (pixels
in [0, 1]) a maxout network misclassified 89.4% of the perturbed test set; adversarial training on
0.5 L(x) + 0.5 L(x_adv) at that eps cut this to 17.9%. We train an MLP and the zoo CNN on ``digits``
(8x8) and ``mnist1d`` (the published MNIST-1D CNN, Greydanus 2020), ``seeds`` seeds in one vmapped
fit each, measure test accuracy under FGSM against eps, retrain with the paper's objective at the
paper's eps (:class:`jaxdl.analysis.adversarial.FGSMRegularizer`; seed k shares its initialisation and
minibatches with the standard run) and attack again with the new model's gradients.

Units of eps are the paper's, pixel intensities in [0, 1]: digits are loaded raw, in [0, 1], so eps
is the paper's eps. mnist1d has no pixel range; eps is translated by the inputs' standard deviation:
the paper's 0.25 is 0.81 of MNIST's pixel standard deviation (0.3081), so mnist1d's eps is
0.25 / 0.3081 * std(x_train). Attacked inputs are clipped to the training inputs' [min, max]. By the
paper's own linearity argument the same eps is a weaker attack on 64 or 40 features than on 784.
"""
from __future__ import annotations


import jax
import ml_collections
import numpy as np

from experiments import framework as fw
from jaxdl import data as datasets, plot, train
from jaxdl.analysis import adversarial
from jaxdl.train import optim

NAME = "adversarial"
DESCRIPTION = "FGSM (Goodfellow et al. 2015) on an MLP and a CNN on digits and mnist1d; adversarial training"
DEVICE_FIELDS = {"seeds": "seeds"}
PAPER = "Goodfellow, Shlens & Szegedy 2015"
PAPER_EPS = 0.25  # MNIST, pixels in [0, 1]
PAPER_ERROR, PAPER_ADV_ERROR = 0.894, 0.179  # the maxout network under FGSM at PAPER_EPS, before and after
MNIST_PIXEL_STD = 0.3081


def _spec(name, learning_rate, epochs, batch_size, **hparams):
    return dict(fw.model_spec(name, **hparams), learning_rate=learning_rate, epochs=epochs, batch_size=batch_size)


def get_config() -> ml_collections.ConfigDict:
    """The default size: about a minute on 2 CPU cores (epochs cut for 5 seeds). mnist1d: the published
    residual MLP 100-100 and CNN (3 x 25 channels, kernel 5, stride 2); Adam with a cosine decay."""
    return ml_collections.ConfigDict(dict(
        seed=0, seeds=5, mnist1d_samples=5000,
        models={"digits": {"mlp": _spec("mlp", 3e-3, 15, 64, widths=(256,)),
                           "cnn": _spec("cnn2d", 3e-3, 15, 64, channels=(16, 32), dense_widths=(64,),
                                        conv_implementation="patches")},
                "mnist1d": {"mlp": _spec("mlp", 1e-2, 30, 100, widths=(100, 100), residual=True),
                            "cnn": _spec("cnn1d", 2e-2, 25, 100, channels=(25, 25, 25), kernel_size=5, strides=2,
                                         pool="none", dense_widths=(), conv_implementation="patches")}},
        # The eps grid in the paper's units: 0, a geometric grid, and the paper's eps.
        eps_min=1e-3, eps_max=0.5, num_eps=25, alpha=0.5, chunk_size=1000, figure_examples=4, figure_model="cnn"))


SIZES = {"quick": {"seeds": 2, "models": {"digits": {"mlp": _spec("mlp", 3e-3, 2, 64, widths=(32,))}},
                   "num_eps": 9, "figure_examples": 3, "figure_model": "mlp"},
         "full": {"seeds": 10, "num_eps": 49, "models.digits.mlp.epochs": 90, "models.digits.cnn.epochs": 90,
                  "models.mnist1d.mlp.epochs": 180, "models.mnist1d.cnn.epochs": 120}}
FIELDS = {"seeds": fw.positive_int, "num_eps": fw.expect(lambda v: int(v) == v >= 3, "an integer >= 3"),
          "chunk_size": fw.positive_int, "figure_examples": fw.positive_int,
          "eps_min": fw.expect(lambda v, c: 0 < v < c.eps_max, "in (0, eps_max)", uses_config=True),
          "alpha": fw.expect(lambda v: 0 < v <= 1, "in (0, 1]"),
          "mnist1d_samples": fw.expect(lambda v: v % 10 == 0 and v >= 100, "a multiple of 10, at least 100"),
          "models": fw.expect(lambda v: 0 < len(v) and set(v) <= {"digits", "mnist1d"}, "digits and/or mnist1d"),
          "figure_model": fw.expect(lambda v, c: all(v in m for m in c.models.values()), "a model of every data set",
                                    uses_config=True),
          "models.*.*.learning_rate": fw.positive, "models.*.*.epochs": fw.positive_int,
          "models.*.*.batch_size": fw.positive_int}


def eps_grid(config) -> np.ndarray:
    """``eps_E`` in the paper's units: 0, ``PAPER_EPS`` and ``num_eps - 1`` geometric steps."""
    return np.unique(np.concatenate([[0.0, PAPER_EPS], np.geomspace(config.eps_min, config.eps_max,
                                                                    config.num_eps - 1)]))


def load(dataset_name, config):
    """The raw data set, its clip range ``(low, high)`` and ``scale``: input units per paper unit
    (1 for digits' [0, 1] pixels; std(x_train) / 0.3081 for mnist1d, see the module docstring)."""
    options = dict(num_samples=config.mnist1d_samples) if dataset_name == "mnist1d" else {}
    data = datasets.load(dataset_name, standardize=False, **options)
    low, high = float(data.x_train.min()), float(data.x_train.max())
    scale = high - low if dataset_name == "digits" else float(data.x_train.std()) / MNIST_PIXEL_STD
    return data, (low, high), scale


def _fit(model, data, spec, config, ctx, run, regularizer=None):
    steps = spec.epochs * (data.num_train // spec.batch_size)
    tx = optim.get_optimizer("adam", spec.learning_rate, schedule="cosine", total_steps=steps)
    result = train.fit_seeds(model, data, tx, seeds=fw.seeds(config), epochs=spec.epochs, batch_size=spec.batch_size,
                             eval_every=spec.epochs, epochs_per_call=spec.epochs, regularizer=regularizer,
                             logger=ctx.logger.with_tags(run=run))
    state = jax.device_get(result.state)  # split on the host: no compiled slice per seed and leaf
    return [(train.make_apply_fn(model, s.model_state), s.params)
            for s in (jax.tree.map(lambda leaf: leaf[k], state) for k in range(config.seeds))]


def dataset_phase(config, ctx, dataset_name) -> fw.Phase:
    """Every model of ``dataset_name``: standard training over the seeds, the FGSM curve of each
    seed, adversarial training at the paper's eps and its FGSM curve; seed 0's examples."""
    (data, clip, scale), eps_E = load(dataset_name, config), eps_grid(config)
    paper = int(np.flatnonzero(eps_E == PAPER_EPS)[0])
    phase, rows, lines = fw.Phase(), [], {}
    curves_KxE = lambda models: np.stack([adversarial.accuracy_under_attack(
        f, p, (data.x_test, data.y_test), eps_E * scale, clip=clip, chunk_size=config.chunk_size)["accuracy"]
        for f, p in models])
    for name in config.models[dataset_name]:
        spec, run = config.models[dataset_name][name], f"{dataset_name}/{name}"
        model = fw.build_model(spec, data.num_classes)
        standard = _fit(model, data, spec, config, ctx, run)
        curve_KxE = curves_KxE(standard)
        regularizer = adversarial.FGSMRegularizer(PAPER_EPS * scale, alpha=config.alpha, clip=clip)
        adv_KxE = curves_KxE(_fit(model, data, spec, config, ctx, f"{run}/adv", regularizer))
        phase.numbers[run] = {"clean": curve_KxE[:, 0], "at_paper_eps": curve_KxE[:, paper],
                              "adv_clean": adv_KxE[:, 0], "adv_at_paper_eps": adv_KxE[:, paper]}
        phase.arrays.update({f"{run}/curve_KxE": curve_KxE, f"{run}/adv_curve_KxE": adv_KxE})
        mean, adv_mean = curve_KxE.mean(0), adv_KxE.mean(0)
        rows.append([name, mean[0], adversarial.critical_eps(eps_E, mean), mean[paper], adv_mean[0], adv_mean[paper],
                     adversarial.critical_eps(eps_E, adv_mean)])
        lines[name] = (eps_E[1:], mean[1:], curve_KxE.std(0)[1:])
        lines[f"{name}, adversarially trained"] = (eps_E[1:], adv_mean[1:], adv_KxE.std(0)[1:])
        if name == config.figure_model:
            phase.figures[f"examples_{dataset_name}"], bounds = _examples_figure(
                *standard[0], data, clip, PAPER_EPS * scale, config.figure_examples, dataset_name, name)
            phase.numbers[f"{dataset_name}/fgsm_bounds"] = {"change_over_eps": bounds[0], "clipped": bool(bounds[1])}
    phase.arrays[f"{dataset_name}/eps_E"] = eps_E
    units = "pixel intensity in [0, 1]" if dataset_name == "digits" else f"x std / {MNIST_PIXEL_STD}"
    fig = plot.line_plot(lines, xlabel=f"eps (paper's units: {units})", ylabel="test accuracy under FGSM",
                         logx=True, title=f"{dataset_name}: FGSM (mean +- std over {config.seeds} seeds)")
    fig.axes[0].axvline(PAPER_EPS, color="k", lw=0.8, ls="-.", label=f"paper's eps ({PAPER_EPS})")
    fig.axes[0].legend(fontsize=7, loc="lower left")
    phase.figures[f"accuracy_vs_eps_{dataset_name}"] = fig
    phase.tables[f"FGSM and adversarial training on {dataset_name} (test set, means over {config.seeds} seeds)"] = (
        fw.format_table(["model", "clean acc", "eps halving acc", f"acc at eps {PAPER_EPS}", "adv. trained: clean acc",
                         f"adv. trained: acc at eps {PAPER_EPS}", "adv. trained: eps halving acc"], rows)
        + f"\n\neps in the paper's units ({units}); adversarial training at eps {PAPER_EPS} on "
        f"{config.alpha:g} L(x) + {1 - config.alpha:g} L(x_adv)")
    return phase


def _examples_figure(apply_fn, params, data, clip, eps, count, dataset_name, model_name):
    """The first ``count`` test examples that the model gets right and FGSM at ``eps`` turns wrong,
    with the predicted labels and confidences (the course's panda and gibbon in small)."""
    x_adv = np.asarray(adversarial.fgsm(apply_fn, params, data.x_test, data.y_test, eps, clip=clip))
    bounds = (np.abs(x_adv - data.x_test).max() / eps, x_adv.min() >= clip[0] and x_adv.max() <= clip[1])
    probs, adv_probs = (np.asarray(jax.nn.softmax(apply_fn(params, x))) for x in (data.x_test, x_adv))
    fooled = np.flatnonzero((probs.argmax(1) == data.y_test) & (adv_probs.argmax(1) != data.y_test))[:count]
    fig, axes = plot.subplots(max(len(fooled), 1), 3, figsize=(8, 2.1 * max(len(fooled), 1)), squeeze=False)
    for row, i in zip(axes, fooled):
        images, ranges = (data.x_test[i], x_adv[i] - data.x_test[i], x_adv[i]), (clip, (-eps, eps), clip)
        titles = (f"{probs[i].argmax()} ({probs[i].max():.0%})", f"+ {eps:.3g} sign(grad_x L)",
                  f"= {adv_probs[i].argmax()} ({adv_probs[i].max():.0%})")
        for ax, image, cmap, (low, high), title in zip(row, images, ("gray", "RdBu", "gray"), ranges, titles):
            if image.ndim >= 2:  # an image
                ax.imshow(image[..., 0], cmap=cmap, vmin=low, vmax=high)
                ax.set_xticks([]), ax.set_yticks([])
            else:  # a signal
                ax.plot(image, color="k" if cmap == "gray" else "tab:red")
            ax.set_title(title, fontsize=9)
    fig.suptitle(f"{dataset_name}: FGSM at the paper's eps against the {model_name} (seed 0): predicted label "
                 "(confidence), clean and perturbed", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    return fig, bounds


def run(config, ctx) -> None:
    for dataset_name in config.models:
        ctx.phase(dataset_name, dataset_phase, config, ctx, dataset_name)


def claims(config, numbers) -> list:
    out, seeds = [], f"mean over {config.seeds} seeds"
    for dataset_name, by_model in config.models.items():
        change, clipped = (numbers[f"{dataset_name}/fgsm_bounds"][k] for k in ("change_over_eps", "clipped"))
        out.append(fw.Check.that(f"{dataset_name}_fgsm_within_budget", "FGSM's construction", f"{dataset_name}: FGSM "
                                 "moves no feature by more than eps and stays in the training range (largest change / "
                                 "eps)", change <= 1 + 1e-5 and clipped, "<= 1, inside [min, max]", f"{change:.6f}"))
        eps = "eps 0.25 of the [0, 1] pixel range" if dataset_name == "digits" else "eps 0.25 / 0.3081 = 0.81 input std"
        for name in by_model:
            key, s = f"{dataset_name}_{name}", numbers[f"{dataset_name}/{name}"]
            out += [fw.Claim.mean(f"{key}_clean_accuracy", f"{PAPER} (positive control)", f"{key}: the attacked "
                                  f"model classifies clean test inputs: accuracy above 0.5, 5x chance ({seeds})",
                                  s["clean"], above=0.5),
                    fw.Claim.mean(f"{key}_fgsm_at_paper_eps", PAPER, f"{key}: FGSM at the paper's MNIST eps ({eps}) "
                                  f"leaves at most the paper's maxout accuracy, {1 - PAPER_ERROR:.3f} (89.4% error; "
                                  f"test accuracy under attack, {seeds})", s["at_paper_eps"], below=1 - PAPER_ERROR),
                    fw.Claim.difference(f"{key}_adversarial_training", PAPER, f"{key}: adversarial training at that "
                                        f"eps raises FGSM test accuracy there (the paper: {1 - PAPER_ERROR:.3f} to "
                                        f"{1 - PAPER_ADV_ERROR:.3f}); minus standard, paired over {config.seeds} "
                                        "seeds", s["adv_at_paper_eps"], s["at_paper_eps"], above=0.0, paired=True)]
    return out


main = fw.entry_point(__name__)


if __name__ == "__main__":
    main()
