"""Adversarial examples: the fast gradient sign method and adversarial training.

Goodfellow, Shlens & Szegedy 2015: x_adv = x + eps sign(grad_x L) moves every input feature by at
most eps, yet fools a trained network because its logits are close to linear in x. We train an
MLP and the zoo CNN on ``digits`` (8x8 images) and ``mnist1d`` (the published MNIST-1D CNN,
Greydanus 2020), measure test accuracy under FGSM against eps, find the smallest eps that halves
it, draw clean and perturbed examples with their predicted labels and confidences (the course's
panda and gibbon in small), and retrain each model with the paper's mixed objective
0.5 L(x) + 0.5 L(x_adv) at the first eps of the grid that halves its accuracy
(:class:`jaxdl.adversarial.FGSMRegularizer`), attacking it again there with its own gradients.

Units of eps: inputs are loaded raw (``standardize=False``): digits are pixel intensities in
[0, 1], as the paper's MNIST; mnist1d signals as generated (globally centred, unit std, as
published). Per-pixel standardisation would divide the near-constant border pixels of digits by
tiny deviations, so that one eps would be a large change in some pixels and none in others.
eps is stated as a fraction of the training inputs' global range max(x) - min(x), and perturbed
inputs are clipped to [min(x), max(x)], so every attacked input stays in the range of the data.
"""
from __future__ import annotations

import sys
import time

import jax
import matplotlib.pyplot as plt
import ml_collections
import numpy as np

from experiments import common
from jaxdl import adversarial, compiled, io, optim, plot, train
from jaxdl import data as datasets
from jaxdl.models import get_model

NAME = "adversarial"
DESCRIPTION = "FGSM (Goodfellow et al. 2015) on an MLP and a CNN on digits and mnist1d; adversarial training"

PAPER = "Goodfellow, Shlens & Szegedy 2015"
# The paper's MNIST eps (pixels in [0, 1]): there FGSM drives a shallow softmax to 99.9% and a
# maxout network to 89.4% error. The claim's bound on the eps that halves accuracy.
PAPER_EPS_FRACTION = 0.25
DATASETS = ("digits", "mnist1d")
MODEL_ORDER = ("mlp", "cnn")  # ConfigDict sorts its keys; tables and figures follow this order


def _ordered(names):
    return sorted(names, key=lambda n: (MODEL_ORDER.index(n) if n in MODEL_ORDER else len(MODEL_ORDER), n))


def _models(size: str) -> ml_collections.ConfigDict:
    def spec(name, learning_rate, epochs, batch_size, **hparams):
        return dict(name=name, learning_rate=learning_rate, epochs=epochs, batch_size=batch_size, hparams=hparams)

    # mnist1d: the published residual MLP 100-100 and CNN (3 x 25 channels, kernel 5, stride 2,
    # linear read-out), as in experiments.architectures; Adam with a cosine decay throughout.
    models = {
        "digits": {"mlp": spec("mlp", 3e-3, 30, 64, widths=(256,)),
                   "cnn": spec("cnn2d", 3e-3, 30, 64, channels=(16, 32), dense_widths=(64,),
                               conv_implementation="patches")},
        "mnist1d": {"mlp": spec("mlp", 1e-2, 60, 100, widths=(100, 100), residual=True),
                    "cnn": spec("cnn1d", 2e-2, 40, 100, channels=(25, 25, 25), kernel_size=5, strides=2, pool="none",
                                dense_widths=(), conv_implementation="patches")},
    }
    if size == "quick":
        models = {"digits": {"mlp": dict(models["digits"]["mlp"], epochs=2, hparams=dict(widths=(32,)))}}
    elif size == "full":
        for by_model in models.values():
            for model in by_model.values():
                model["epochs"] *= 3
    return ml_collections.ConfigDict(models)


def get_config(size: str = "default") -> ml_collections.ConfigDict:
    """Sizes: ``quick`` (seconds, tests: a small MLP on digits, 2 epochs), ``default`` (about two
    minutes on 2 CPU cores, mostly compilation), ``full`` (three times the epochs, a finer eps grid)."""
    common.check_size(size)
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.mnist1d_samples = 5000
    c.models = _models(size)
    # The eps grid, as fractions of the input range: 0 and a geometric grid (mnist1d breaks at
    # about 1% of its range, digits at about 10%).
    c.eps_min = 1e-3
    c.eps_max = 0.5
    c.num_eps = 25
    c.alpha = 0.5  # the paper's weight of the clean loss in adversarial training
    c.chunk_size = 1000  # test examples per chunk of the attack
    c.figure_examples = 4
    c.figure_model = "cnn"
    if size == "quick":
        c.num_eps = 9
        c.figure_examples = 3
        c.figure_model = "mlp"
    elif size == "full":
        c.num_eps = 49
    return c


def _validate(config):
    for field in ("num_eps", "chunk_size", "figure_examples"):
        common.require(int(config[field]) > 0, field, "a positive integer", config[field])
    common.require(config.num_eps >= 3, "num_eps", "at least 3", config.num_eps)
    common.require(0 < config.eps_min < config.eps_max, "eps_min", f"in (0, eps_max={config.eps_max})", config.eps_min)
    common.require(0 < config.alpha <= 1, "alpha", "in (0, 1]", config.alpha)
    common.require(config.mnist1d_samples % 10 == 0 and config.mnist1d_samples >= 100, "mnist1d_samples",
                   "a multiple of 10, at least 100", config.mnist1d_samples)
    common.require(set(config.models) <= set(DATASETS), "models", f"data sets among {DATASETS}", list(config.models))
    for dataset_name, by_model in config.models.items():
        common.require(config.figure_model in by_model, "figure_model", "a model of every data set",
                       config.figure_model)
        for name, spec in by_model.items():
            field = f"models.{dataset_name}.{name}"
            common.require(spec.learning_rate > 0, f"{field}.learning_rate", "a positive learning rate",
                           spec.learning_rate)
            for key in ("epochs", "batch_size"):
                common.require(int(spec[key]) > 0, f"{field}.{key}", "a positive integer", spec[key])


def eps_grid(config) -> np.ndarray:
    """``fractions_E``: 0, then ``num_eps - 1`` geometric steps from ``eps_min`` to ``eps_max``."""
    return np.concatenate([[0.0], np.geomspace(config.eps_min, config.eps_max, config.num_eps - 1)])


def _load(dataset_name, config):
    options = dict(num_samples=config.mnist1d_samples) if dataset_name == "mnist1d" else {}
    data = datasets.load(dataset_name, standardize=False, **options)
    low, high = float(data.x_train.min()), float(data.x_train.max())
    return data, (low, high)


def _train(model, data, spec, config, logger, regularizer=None):
    steps = int(spec.epochs) * (data.x_train.shape[0] // int(spec.batch_size))
    tx = optim.get_optimizer("adam", spec.learning_rate, schedule="cosine", total_steps=steps)
    result = train.fit(model, data, tx, epochs=int(spec.epochs), batch_size=int(spec.batch_size), seed=config.seed,
                       eval_every=int(spec.epochs), regularizer=regularizer, logger=logger)
    return train.make_apply_fn(model, result.state.model_state), result.state.params


def _attack(apply_fn, params, data, eps_E, clip, config) -> np.ndarray:
    out = adversarial.accuracy_under_attack(apply_fn, params, (data.x_test, data.y_test), eps_E, clip=clip,
                                            chunk_size=int(config.chunk_size))
    return np.asarray(out["accuracy"])


def _study(dataset_name, name, spec, data, clip, config, logger) -> dict:
    """Standard training, the FGSM curve, adversarial training at the eps that halves accuracy."""
    scale = clip[1] - clip[0]
    fractions_E = eps_grid(config)
    model = get_model(spec.name, num_outputs=data.num_classes, **spec.hparams.to_dict())
    start = time.perf_counter()
    apply_fn, params = _train(model, data, spec, config, logger.with_tags(run=f"{dataset_name}/{name}"))
    curve = _attack(apply_fn, params, data, fractions_E * scale, clip, config)
    halving = adversarial.critical_eps(fractions_E, curve, 0.5)
    # Adversarial training at the first grid eps where accuracy is at most half the clean one
    # (the largest grid eps if there is none): there both models' accuracies are measured
    # exactly, by the same compiled program as the rest of the curve.
    below = np.flatnonzero(curve <= curve[0] / 2)
    index = int(below[0]) if below.size else len(fractions_E) - 1
    train_fraction = float(fractions_E[index])
    regularizer = adversarial.FGSMRegularizer(train_fraction * scale, alpha=float(config.alpha), clip=clip)
    adv_apply_fn, adv_params = _train(model, data, spec, config, logger.with_tags(run=f"{dataset_name}/{name}/adv"),
                                      regularizer)
    adv_curve = _attack(adv_apply_fn, adv_params, data, fractions_E * scale, clip, config)
    return {"curve": curve, "adv_curve": adv_curve, "clean": float(curve[0]), "adv_clean": float(adv_curve[0]),
            "halving": halving, "adv_halving": adversarial.critical_eps(fractions_E, adv_curve, 0.5),
            "train_fraction": train_fraction, "at_train": float(curve[index]), "adv_at_train": float(adv_curve[index]),
            "alpha": float(config.alpha), "seconds": time.perf_counter() - start,
            "apply_fn": apply_fn, "params": params}


def _curves_figure(studies, fractions_E, run_dir):
    names = list(dict.fromkeys(d for d, _ in studies))
    fig, axes = plt.subplots(1, len(names), figsize=(5.5 * len(names), 4), squeeze=False)
    for ax, dataset_name in zip(axes[0], names):
        for (d, name), s in studies.items():
            if d != dataset_name:
                continue
            # A log axis has no 0: the clean accuracy is the horizontal dotted line.
            (line,) = ax.plot(fractions_E[1:], s["curve"][1:], marker=".", label=f"{name}")
            ax.plot(fractions_E[1:], s["adv_curve"][1:], "--", color=line.get_color(),
                    label=f"{name}, adversarially trained at eps={s['train_fraction']:.3g}")
            ax.axhline(s["clean"] / 2, color=line.get_color(), lw=0.8, ls=":")
            ax.axvline(s["train_fraction"], color=line.get_color(), lw=0.8, alpha=0.5)
        ax.axvline(PAPER_EPS_FRACTION, color="k", lw=0.8, ls="-.", label=f"paper's MNIST eps ({PAPER_EPS_FRACTION})")
        ax.set(xscale="log", ylim=(0, 1), xlabel="eps / (max x - min x) of the training inputs",
               ylabel="test accuracy under FGSM", title=f"{dataset_name}: FGSM (dotted: half of clean accuracy)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower left")
    return plot.save_figure(fig, run_dir.figure_path("accuracy_vs_eps"))


@compiled.jit
def _probabilities(apply_fn, params, x):
    return jax.nn.softmax(apply_fn(params, x))


def _examples(study, data, clip, count):
    """The first ``count`` test examples that the model gets right and FGSM at the training eps
    turns wrong (test order; fewer if there are fewer), with labels and confidences."""
    apply_fn, params = study["apply_fn"], study["params"]
    eps = study["train_fraction"] * (clip[1] - clip[0])
    x_adv = adversarial.fgsm(apply_fn, params, data.x_test, data.y_test, eps, clip=clip)
    probs, adv_probs = (np.asarray(_probabilities(apply_fn, params, x)) for x in (data.x_test, x_adv))
    x_adv = np.asarray(x_adv)
    fooled = np.flatnonzero((probs.argmax(1) == data.y_test) & (adv_probs.argmax(1) != data.y_test))[:count]
    return [(data.x_test[i], x_adv[i], probs[i], adv_probs[i], eps, study["train_fraction"]) for i in fooled]


def _examples_figure(examples_by_dataset, model_name, run_dir):
    rows = sum(len(e) for e in examples_by_dataset.values())
    fig, axes = plt.subplots(max(rows, 1), 3, figsize=(8, 2.1 * max(rows, 1)), squeeze=False)
    row = 0
    for dataset_name, examples in examples_by_dataset.items():
        for x, x_adv, probs, adv_probs, eps, fraction in examples:
            clean_text = f"{probs.argmax()} ({probs.max():.0%})"
            adv_text = f"{adv_probs.argmax()} ({adv_probs.max():.0%})"
            ax_clean, ax_delta, ax_adv = axes[row]
            if x.ndim >= 2:  # an image
                low, high = float(min(x.min(), x_adv.min())), float(max(x.max(), x_adv.max()))
                ax_clean.imshow(x[..., 0], cmap="gray", vmin=low, vmax=high)
                ax_delta.imshow((x_adv - x)[..., 0], cmap="RdBu", vmin=-eps, vmax=eps)
                ax_adv.imshow(x_adv[..., 0], cmap="gray", vmin=low, vmax=high)
                for ax in axes[row]:
                    ax.set_xticks([]), ax.set_yticks([])
            else:  # a signal
                ax_clean.plot(x, color="k")
                ax_delta.plot(x_adv - x, color="tab:red")
                ax_delta.set_ylim(-1.2 * eps, 1.2 * eps)
                ax_adv.plot(x, color="k", alpha=0.3)
                ax_adv.plot(x_adv, color="tab:red")
            ax_clean.set_title(f"{dataset_name}: {clean_text}", fontsize=9)
            ax_delta.set_title(f"+ {eps:.3g} sign(grad_x L) ({fraction:.3g} of the range)", fontsize=9)
            ax_adv.set_title(f"= {adv_text}", fontsize=9)
            row += 1
    fig.suptitle(f"FGSM against the {model_name}: predicted label (confidence), clean and perturbed", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.98))
    return plot.save_figure(fig, run_dir.figure_path("examples"))


def run(config, run_dir: io.RunDir) -> dict:
    _validate(config)
    fractions_E = eps_grid(config)
    studies, examples = {}, {}
    with run_dir.logger() as logger:
        for dataset_name in config.models:
            data, clip = _load(dataset_name, config)
            for name in _ordered(config.models[dataset_name]):
                spec = config.models[dataset_name][name]
                studies[(dataset_name, name)] = _study(dataset_name, name, spec, data, clip, config, logger)
                s = studies[(dataset_name, name)]
                print(f"{dataset_name:8s} {name:4s} clean {s['clean']:.3f}, halved at eps {s['halving']:.4f} of "
                      f"the range; at that eps {s['at_train']:.3f} -> {s['adv_at_train']:.3f} adversarially trained "
                      f"({s['seconds']:.1f} s)")
            examples[dataset_name] = _examples(studies[(dataset_name, config.figure_model)], data, clip,
                                               int(config.figure_examples))
    figures = [_curves_figure(studies, fractions_E, run_dir), _examples_figure(examples, config.figure_model, run_dir)]
    run_dir.save_results(eps_fractions=fractions_E,
                         **{f"{d}/{m}/{kind}": s[kind] for (d, m), s in studies.items()
                            for kind in ("curve", "adv_curve")})
    rows = [[d, m, s["clean"], s["halving"], s["train_fraction"], s["at_train"], s["adv_clean"], s["adv_at_train"],
             s["adv_halving"], s["seconds"]] for (d, m), s in studies.items()]
    table = common.format_table(
        ["data set", "model", "clean acc", "eps halving acc", "training eps", "acc at training eps",
         "adv. trained: clean acc", "adv. trained: acc at training eps", "adv. trained: eps halving acc", "seconds"],
        rows, float_format="{:.4g}")
    summary = {f"{d}/{m}": {k: v for k, v in s.items() if k not in ("apply_fn", "params", "curve", "adv_curve")}
               for (d, m), s in studies.items()}
    alpha = float(config.alpha)
    note = ("eps as a fraction of the training inputs' range max(x) - min(x); 'eps halving acc' interpolated on the "
            "grid; 'training eps' the first grid eps with at most half the clean accuracy, where the model is "
            f"retrained on {alpha:g} L(x) + {1 - alpha:g} L(x_adv)")
    tables = {"FGSM and adversarial training (test set)": table + "\n\n" + note}
    return {"tables": tables, "figures": figures, "studies": summary}


def claims(result: dict) -> list:
    out = []
    for key, s in result["studies"].items():
        out.append(common.Claim.at_most(
            PAPER, f"{key}: FGSM halves test accuracy at an eps of at most {PAPER_EPS_FRACTION} of the input range "
            "(the paper's MNIST eps); measured: the smallest eps that does", s["halving"], PAPER_EPS_FRACTION,
            fmt="{:.4f}"))
        out.append(common.Claim.check(
            PAPER, f"{key}: adversarial training (alpha={s['alpha']:g}) at the first grid eps that halves accuracy "
            "raises FGSM test accuracy there", f"> {s['at_train']:.3f} (standard training)", s["adv_at_train"],
            lambda value, baseline=s["at_train"]: value > baseline))
    return out


def main(argv=None):
    return common.experiment_main(sys.modules[__name__], argv)


if __name__ == "__main__":
    main()
