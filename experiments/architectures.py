"""Architectures as structural priors: the MNIST-1D table (Greydanus 2020) and a graph task.

A convolution shares one function across positions, a recurrent net one across time, a graph
network one across nodes. On MNIST-1D (the published 4000 / 1000 split, raw signals) logistic
regression, an MLP, a CNN and a GRU (at the full size also an LSTM and a transformer) train over
the seeds, one vmapped program each, on the plain signals and on shuffled ones (one fixed
permutation of the 40 positions): shuffling costs a lot to the locality priors (CNN, GRU) and
nothing to models blind to positions (logistic, MLP: the negative control, for which permuting
the inputs permutes the first layer's weights). The graph task is ``experiments.graph_task``.
"""
from __future__ import annotations

import math

import ml_collections
import numpy as np
from scipy import stats

from experiments import framework as fw
from experiments import graph_task
from jaxdl import data as datasets, plot, train
from jaxdl.train import optim

NAME = "architectures"
DESCRIPTION = "MNIST-1D: logistic, MLP, CNN, GRU (LSTM, transformer) on plain vs shuffled signals; graph network vs MLP"
DEVICE_FIELDS = {"seeds": "seeds"}
GREYDANUS = "Greydanus 2020, Table 1"
PUBLISHED = {"logistic": (0.32, 0.32), "mlp": (0.68, 0.68), "cnn": (0.94, 0.56), "gru": (0.91, 0.57)}  # plain, shuffled
ORDER = ("logistic", "mlp", "cnn", "gru", "lstm", "transformer")  # the paper's, not ConfigDict's sorted keys


def _spec(name, learning_rate, epochs, schedule="cosine", **hparams):
    return dict(name=name, learning_rate=learning_rate, epochs=epochs, schedule=schedule, hparams=hparams)


# The published architectures: residual MLP 100-100; CNN 3 x 25 channels (kernels 5, 3, 3, stride 2,
# convolutions as matmuls over patches: faster on CPU) with a linear read-out; bidirectional GRU of 6
# units read out from all 40 states. Logistic regression and the MLP follow the published protocol
# (Adam at 1e-2, batch 100, 6000 steps for the MLP); the CNN and GRU get 1600 steps, cosine decay.
MODELS = {"logistic": _spec("linear", 1e-2, 40),
          "mlp": _spec("mlp", 1e-2, 150, "constant", widths=(100, 100), residual=True),
          "cnn": _spec("cnn1d", 2e-2, 40, channels=(25, 25, 25), kernel_size=5, strides=2, pool="none",
                       dense_widths=(), conv_implementation="patches"),
          "gru": _spec("gru", 2e-2, 40, hidden_size=6, bidirectional=True, readout="flatten")}
# The full size: the published protocol (Adam at a constant 1e-2, 150 epochs) for every model,
# and an LSTM and a two-layer transformer on 4-step patches (not in the paper).
FULL_MODELS = {name: dict(spec, epochs=150, schedule="constant", learning_rate=1e-2) for name, spec in {
    **MODELS, "lstm": _spec("lstm", 1e-2, 150, hidden_size=6, bidirectional=True, readout="flatten")}.items()}
FULL_MODELS["transformer"] = _spec("transformer", 3e-3, 150, "constant", num_layers=2, model_dim=32, num_heads=4,
                                   mlp_dim=64, positional="learned", patch_size=4)


def get_config() -> ml_collections.ConfigDict:
    """The default size: about two minutes on 2 CPU cores."""
    return ml_collections.ConfigDict(dict(seed=0, seeds=5, batch_size=100, num_samples=5000, models=MODELS,
                                          control_tolerance=0.03, graph=graph_task.get_config()))


SIZES = {"quick": {"seeds": 2, "models": {k: dict(MODELS[k], epochs=1) for k in ("logistic", "cnn")},
                   **graph_task.QUICK},
         "full": {"seeds": 10, "models": FULL_MODELS, **graph_task.FULL}}
FIELDS = {"seeds": fw.positive_int, "batch_size": fw.positive_int, "control_tolerance": fw.positive,
          "num_samples": fw.expect(lambda v: v % 10 == 0 and v >= 100, "a multiple of 10, at least 100"),
          "models": fw.expect(lambda v: len(v) > 0 and set(v) <= set(ORDER), f"models named among {list(ORDER)}"),
          "models.*.learning_rate": fw.positive, "models.*.epochs": fw.positive_int,
          "models.*.schedule": fw.one_of("constant", "cosine"), **graph_task.FIELDS}


def published_band(accuracy: float) -> float:
    """How far a reproduction may sit from a published accuracy: two binomial standard errors of
    an accuracy on the paper's 1000 test examples, plus the half point of rounding to a percent."""
    return 2 * math.sqrt(accuracy * (1 - accuracy) / 1000) + 0.005


def mnist1d_phase(config, ctx) -> fw.Phase:
    """Every model on plain and shuffled MNIST-1D over the seeds: final test accuracies."""
    names, accuracy = sorted(config.models, key=ORDER.index), {}
    for variant in ("plain", "shuffled"):
        data = datasets.load("mnist1d", shuffle=variant == "shuffled", num_samples=config.num_samples,
                             standardize=False)
        for name in names:
            spec = config.models[name]
            tx = optim.get_optimizer("adam", spec.learning_rate, schedule=spec.schedule,
                                     total_steps=spec.epochs * (data.num_train // config.batch_size))
            result = train.fit_seeds(fw.build_model(spec, data.num_classes), data, tx, seeds=fw.seeds(config),
                                     epochs=spec.epochs, batch_size=config.batch_size, eval_every=spec.epochs,
                                     logger=ctx.logger.with_tags(run=f"{variant}/{name}"))
            accuracy[f"{name}/{variant}"] = result.history["test_accuracy"][:, -1].tolist()
    cell = lambda v: f"{np.mean(v):.3f} +- {stats.sem(v):.3f}"
    table = fw.format_table(
        ["model", "test acc (plain)", "published", "test acc (shuffled)", "published (shuffled)", "epochs"],
        [[n, cell(accuracy[f"{n}/plain"]), PUBLISHED.get(n, ("-", "-"))[0], cell(accuracy[f"{n}/shuffled"]),
          PUBLISHED.get(n, ("-", "-"))[1], config.models[n].epochs] for n in names], float_format="{:.2f}")
    keys = [f"{n}/{v}" for n in names for v in ("plain", "shuffled")]
    figure = plot.bar_chart([k.replace("/", "\n") for k in keys], [np.mean(accuracy[k]) for k in keys],
                            [stats.sem(accuracy[k]) for k in keys],
                            [PUBLISHED[n][i] if n in PUBLISHED else None for n in names for i in (0, 1)],
                            ylabel="test accuracy", title=f"MNIST-1D, mean +- SE over {config.seeds} seeds")
    return fw.Phase(tables={"mnist1d": table}, figures={"mnist1d_accuracy": figure},
                    numbers={"mnist1d/accuracy": accuracy})


def run(config, ctx) -> None:
    ctx.phase("mnist1d", mnist1d_phase, config, ctx)
    ctx.phase("graph", graph_task.graph_phase, config, ctx)


def claims(config, numbers) -> list:
    acc, out, models = numbers["mnist1d/accuracy"], [], config.models
    for name, variant in ((n, v) for n in PUBLISHED if n in models for v in ("plain", "shuffled")):
        published, spec = PUBLISHED[name][variant == "shuffled"], models[name]
        out.append(fw.Claim.within(
            f"{name}_{variant}_accuracy", GREYDANUS, f"{name} on {variant} MNIST-1D reaches the published test "
            f"accuracy {published:.0%} ({spec.epochs} epochs, Adam at {spec.learning_rate:g}, {spec.schedule}; band: "
            f"two binomial SEs of the paper's 1000 test examples plus rounding; {config.seeds} seeds)",
            acc[f"{name}/{variant}"], target=published, tolerance=published_band(published)))
    out += [fw.Claim.difference(
        f"{name}_shuffle_drop", GREYDANUS, f"shuffling the positions costs the {name} (a locality prior) at least half "
        f"the published drop of {drop:.0%} (plain minus shuffled test accuracy, paired by seed)", acc[f"{name}/plain"],
        acc[f"{name}/shuffled"], above=drop / 2, paired=True)
        for name, drop in ((n, PUBLISHED[n][0] - PUBLISHED[n][1]) for n in ("cnn", "gru") if n in models)]
    out += [fw.Claim.within(
        f"{name}_shuffle_control", GREYDANUS, f"negative control: shuffling the positions leaves the {name} (no "
        "spatial prior) unchanged (plain minus shuffled test accuracy, paired by seed; band: two binomial SEs of a "
        "1000-example accuracy near 68%)", np.subtract(acc[f"{name}/plain"], acc[f"{name}/shuffled"]), target=0.0,
        tolerance=config.control_tolerance) for name in ("logistic", "mlp") if name in models]
    return out + graph_task.claims(config, numbers)


main = fw.entry_point(__name__)


if __name__ == "__main__":
    main()
