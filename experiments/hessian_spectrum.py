"""The Hessian spectrum after and along training: a bulk near zero, outliers, saddles.

Every spectrum is measured on the first ``curvature_examples`` training examples (the same for
every network of a phase), by Lanczos (the top 2C + 1 eigenvalues, C the number of classes) and
by stochastic Lanczos quadrature (the density, its index and mass, with standard errors over the
runs). Outliers are counted by the largest ratio between consecutive top eigenvalues
(:func:`jaxdl.analysis.curvature.outlier_count`).

- Sagun et al. 2017; Papyan 2019: an MLP trained on MNIST-1D (10 classes) and on its first 5
  classes (5), ``seeds`` seeds each: the number of outliers is about C in both.
- Papyan 2019: the outliers are the Gauss-Newton matrix's: the top C eigenvalues of H and of G
  agree, and in the span of H's top C eigenvectors the residual H - G is no larger than the
  bulk edge.
- Ghorbani, Krishnan & Xiao 2019: the MNIST-1D CNN with and without BatchNorm (the Hessian of
  the training-mode loss, BatchNorm normalising each mini-batch by its own statistics): the
  ratio of the top eigenvalue to the bulk edge is lower with BatchNorm.
- Dauphin et al. 2014: the index (the fraction of negative eigenvalues, from the SLQ density)
  at checkpoints along training against the train loss: Spearman's correlation per seed.
- Keskar et al. 2017, as densities: sharp_flat's MNIST-1D MLP at a small and a large batch (equal
  epochs): the densities side by side, and the large batch's outliers larger.
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import ml_collections
import numpy as np
import scipy.stats
from flax import struct

from experiments import framework as fw
from jaxdl import data as datasets, plot, train
from jaxdl.analysis import curvature
from jaxdl.train import losses, optim
from jaxdl.train.state import apply_model

NAME = "hessian_spectrum"
DESCRIPTION = ("bulk and outliers after training (Sagun, Papyan), outliers from the Gauss-Newton part (Papyan), "
               "BatchNorm and the outliers (Ghorbani), index along training (Dauphin), small vs large batch "
               "densities (Keskar)")
DEVICE_FIELDS = {"seeds": "seeds"}
SAGUN, PAPYAN, GHORBANI = "Sagun et al. 2017; Papyan 2019", "Papyan 2019", "Ghorbani, Krishnan & Xiao 2019"
DAUPHIN, KESKAR = "Dauphin et al. 2014", "Keskar et al. 2017"


def get_config() -> ml_collections.ConfigDict:
    """The default size: MLPs and a CNN on MNIST-1D, five seeds per setting."""
    return ml_collections.ConfigDict(dict(
        seed=0, seeds=5, dataset="mnist1d", model=fw.model_spec("mlp", widths=(64, 64)), optimizer="adam",
        learning_rate=1e-3, epochs=40, batch_size=128, subset_classes=5, curvature_examples=2000,
        lanczos_steps=80, slq_runs=4, slq_steps=40,
        # Declared thresholds: "about C" outliers within 30% of C; H and G top-C agreement within 10%.
        outlier_band=0.3, agreement_tolerance=0.1,
        # The BatchNorm pair: the Hessian of the loss as training computes it, each mini-batch of
        # batch_size examples normalised by its own statistics (Ghorbani et al. find the outliers
        # return when BatchNorm uses population statistics), on curvature_examples of them.
        # The MNIST-1D CNN of Greydanus 2020 (and of sharp_flat's full size), with BatchNorm or none.
        bn=dict(dataset="mnist1d", model=fw.model_spec("cnn1d", channels=(25, 25, 25), kernel_size=5, strides=2,
                                                      pool="none", dense_widths=()),
                learning_rate=1e-3, epochs=40, batch_size=128, curvature_examples=1024),
        # Checkpoints of the index run: the epochs trained before each (0 is the initialisation).
        index_epochs=(0, 1, 2, 3, 5, 8, 13, 21, 34),
        # sharp_flat's MNIST-1D MLP (its default config), trained at both batches for equal epochs.
        keskar=dict(model=fw.model_spec("mlp", widths=(100, 100)), learning_rate=2e-3, epochs=80, small_batch=64,
                    large_batch=400)))


SIZES = {
    "quick": {"seeds": 2, "model.hparams.widths": (16, 16), "epochs": 2, "curvature_examples": 200,
              "lanczos_steps": 30, "slq_runs": 2, "slq_steps": 10,
              "bn.epochs": 1, "bn.curvature_examples": 64, "bn.batch_size": 32, "bn.model.hparams.channels": (4, 4, 4), "index_epochs": (0, 1, 2), "keskar.model.hparams.widths": (16, 16), "keskar.epochs": 1},
    # Closer to the papers (a GPU or TPU): ResNet-20 with and without BatchNorm on CIFAR-10 files.
    "full": {"seeds": 10, "epochs": 100, "curvature_examples": 4000, "lanczos_steps": 120, "slq_runs": 10,
             "slq_steps": 90, "bn.dataset": "cifar10", "bn.model": fw.model_spec("resnet", depth=20),
             "bn.epochs": 100, "bn.curvature_examples": 4096, "index_epochs": (0, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89), "keskar.epochs": 200},
}
FIELDS = {
    **{f: fw.positive_int for f in ("seeds", "epochs", "batch_size", "curvature_examples", "lanczos_steps",
                                    "slq_steps", "bn.epochs", "bn.batch_size", "bn.curvature_examples", "keskar.epochs",
                                    "keskar.small_batch")},
    **{f: fw.positive for f in ("learning_rate", "bn.learning_rate", "keskar.learning_rate", "outlier_band",
                                "agreement_tolerance")},
    "slq_runs": fw.expect(lambda v: isinstance(v, int) and v >= 2, "an integer >= 2 (a standard error over runs)"),
    "subset_classes": fw.expect(lambda v: isinstance(v, int) and v >= 2, "an integer >= 2"),
    "index_epochs": fw.expect(lambda v: len(v) >= 3 and v[0] == 0 and all(a < b for a, b in zip(v, v[1:])),
                              "three or more increasing epochs starting at 0"),
    "keskar.large_batch": fw.expect(lambda v, c: isinstance(v, int) and v > c.keskar.small_batch,
                                    "an integer above keskar.small_batch", uses_config=True),
    "bn.model": fw.expect(lambda v: v.name in ("cnn1d", "cnn2d", "resnet"),
                          "a cnn1d, cnn2d or resnet (each built with norm 'batch' and 'none')"),
}


def curvature_batch(config, data):
    n = min(config.curvature_examples, len(data.x_train))
    return data.x_train[:n], data.y_train[:n]


def fit(config, model, data, learning_rate, epochs, batch_size, ctx, run, **options):
    tx = optim.get_optimizer(config.optimizer, learning_rate)
    return train.fit_seeds(model, data, tx, seeds=fw.seeds(config), epochs=epochs, batch_size=batch_size,
                           eval_every=epochs, logger=ctx.logger.with_tags(run=run), **options)


def spectrum(config, apply_fn, params, batch, num_classes, key, *, gauss_newton=False, density=False,
             chunk_size=None) -> dict:
    """The top 2C + 1 eigenvalues of H (Lanczos) with the outlier count and bulk edge; with
    ``gauss_newton`` the same of G, the residual H - G in the span of H's top C eigenvectors,
    and the top-C relative difference; with ``density`` the SLQ densities (H, and G). ``chunk_size``:
    the examples per chunk of every product (None: the batch at once)."""
    loss_fn, k = losses.make_loss_fn(apply_fn), 2 * num_classes + 1
    steps = min(config.lanczos_steps, sum(x.size for x in jax.tree.leaves(params)))
    top = curvature.hessian_top_eigenvalues(loss_fn, params, batch, k=k, num_steps=steps, key=key,
                                            chunk_size=chunk_size)
    values = np.asarray(top.eigenvalues, np.float64)
    count, _ = curvature.outlier_count(values)
    count = int(count)
    # Ratios to the bulk edge take it at no less than 1e-3 of the top eigenvalue: a bulk edge at or
    # below zero (the top 2C + 1 reach the negative eigenvalues, as barely trained nets' do) leaves
    # every positive eigenvalue above it an outlier.
    edge = max(values[count], 1e-3 * values[0])
    out = {"top": values.tolist(), "count": count, "bulk_edge": float(values[count]),
           "edge_ratio": float(values[0] / edge), "products": int(top.steps)}
    slq = dict(num_steps=config.slq_steps, num_runs=config.slq_runs, key=key, chunk_size=chunk_size)
    if density:
        out["density"] = curvature.hessian_spectral_density(loss_fn, params, batch, **slq)
    if gauss_newton:
        output_loss = losses.cross_entropy
        g_top = curvature.gauss_newton_top_eigenvalues(apply_fn, output_loss, params, batch, k=k, num_steps=steps,
                                                       key=key)
        g_values = np.asarray(g_top.eigenvalues, np.float64)
        vectors = jax.tree.map(lambda v: v[:num_classes], top.eigenvectors)
        residual = curvature.hessian_gauss_newton_residual(apply_fn, output_loss, params, batch, vectors)
        out.update({
            "g_top": g_values.tolist(), "g_count": int(curvature.outlier_count(g_values)[0]),
            "agreement": float(np.max(np.abs(values[:num_classes] - g_values[:num_classes]) / values[:num_classes])),
            "residual_norm": float(np.linalg.norm(np.asarray(residual.residual, np.float64), 2)),
            "residual_relative": float(residual.relative)})
        out["residual_over_edge"] = out["residual_norm"] / edge
        if density:
            out["g_density"] = curvature.gauss_newton_spectral_density(apply_fn, output_loss, params, batch, **slq)
    return out


def per_seed(config, model, data, result, key, **options) -> list[dict]:
    """``spectrum`` of every seed's trained state."""
    batch, rows = curvature_batch(config, data), []
    for k in range(len(result.history["test_accuracy"])):
        state = train.unstack(result.state, k)
        rows.append(spectrum(config, train.make_apply_fn(model, state.model_state), state.params, batch,
                             data.num_classes, key, density=options.get("density", False) and k == 0,
                             gauss_newton=options.get("gauss_newton", False)))
    return rows


def density_curve(density, outliers):
    return np.asarray(density.grid), np.asarray(density.density), np.asarray(outliers)


def summary_row(label, rows, accuracy):
    mean = lambda name: float(np.mean([r[name] for r in rows]))
    return [label, float(np.mean(accuracy)), mean("count"), mean("edge_ratio"), mean("bulk_edge"),
            float(np.mean([r["top"][0] for r in rows])), mean("products")]


SUMMARY_HEADERS = ["networks", "test accuracy", "outliers", "top / bulk edge", "bulk edge", "top eigenvalue",
                   "Lanczos products"]


def classes_phase(config, ctx) -> fw.Phase:
    """Sagun and Papyan: the MLP on all classes and on the first ``subset_classes``."""
    source = datasets.load(config.dataset)
    sets = {f"{source.num_classes} classes": source,
            f"{config.subset_classes} classes": datasets.class_split_tasks(source, config.subset_classes,
                                                                           relabel=True)[0]}
    key, numbers, panels, summary, scatter = jax.random.key(config.seed + 1), {}, {}, [], {}
    for label, data in sets.items():
        model = fw.build_model(config.model, data.num_classes)
        result = fit(config, model, data, config.learning_rate, config.epochs, config.batch_size, ctx, label)
        rows = per_seed(config, model, data, result, key, gauss_newton=True, density=True)
        c = data.num_classes
        numbers[str(c)] = {name: [r[name] for r in rows] for name in rows[0] if "density" not in name}
        numbers[str(c)]["test_accuracy"] = result.history["test_accuracy"][:, -1].tolist()
        panels[f"MLP, {label}, seed {config.seed}"] = {
            "Hessian": density_curve(rows[0]["density"], rows[0]["top"][:rows[0]["count"]]),
            "Gauss-Newton": density_curve(rows[0]["g_density"], rows[0]["g_top"][:rows[0]["g_count"]])}
        scatter[label] = (np.concatenate([r["top"][:c] for r in rows]), np.concatenate([r["g_top"][:c] for r in rows]))
        summary.append(summary_row(f"MLP, {label}", rows, numbers[str(c)]["test_accuracy"]))
    agreement = fw.format_table(
        ["classes C", "outliers of H", "outliers of G", "max top-C |H - G| / H", "||U^T (H - G) U||", "bulk edge",
         "residual / bulk edge"],
        [[c, np.mean(v["count"]), np.mean(v["g_count"]), np.mean(v["agreement"]), np.mean(v["residual_norm"]),
          np.mean(v["bulk_edge"]), np.mean(v["residual_over_edge"])] for c, v in numbers.items()])
    return fw.Phase(tables={f"outliers and classes (means over {config.seeds} seeds)":
                            fw.format_table(SUMMARY_HEADERS, summary),
                            "Hessian against Gauss-Newton (means over seeds)": agreement},
                    figures={"densities_classes": plot.spectral_densities(
                                 panels, title="Hessian and Gauss-Newton densities (SLQ), outliers dashed"),
                             "hessian_vs_gauss_newton": h_against_g_figure(scatter)},
                    numbers={"classes": numbers})


def h_against_g_figure(scatter):
    fig, ax = plot.subplots(figsize=(5, 5))
    low, high = np.inf, 0.0
    for label, (h, g) in scatter.items():
        ax.loglog(h, g, "o", alpha=0.6, label=label)
        low, high = min(low, h.min(), g.min()), max(high, h.max(), g.max())
    ax.loglog([low, high], [low, high], "k--", linewidth=0.8, label="G = H")
    ax.set(xlabel="top-C eigenvalues of H", ylabel="top-C eigenvalues of G", title="the outliers are G's (all seeds)")
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


class TrainModeApply(struct.PyTreeNode):
    """``apply_fn(params, x)`` of a BatchNorm network in training mode: normalised by the
    statistics of ``x`` itself (the loss that training descends), the running averages unused.
    A pytree like :class:`jaxdl.train.ApplyFn`, so the curvature programs compile once per model."""

    model: nn.Module = struct.field(pytree_node=False)
    model_state: Any
    __eq__ = object.__eq__
    __hash__ = object.__hash__

    def __call__(self, params, x):
        return apply_model(self.model, params, self.model_state, x, train=True, rng=jax.random.key(0))[0]


def batchnorm_phase(config, ctx) -> fw.Phase:
    """Ghorbani et al.: the same network with and without BatchNorm; the Hessian of the training-mode
    loss, BatchNorm normalising each mini-batch (a chunk of ``bn.batch_size`` examples) by its own
    statistics."""
    bn, key = config.bn, jax.random.key(config.seed + 2)
    data = datasets.load(bn.dataset)
    n = min(bn.curvature_examples, len(data.x_train)) // bn.batch_size * bn.batch_size
    batch, numbers, panels, summary = (data.x_train[:n], data.y_train[:n]), {}, {}, []
    for norm in ("batch", "none"):
        model = fw.build_model(bn.model, data.num_classes, norm=norm)
        result = fit(config, model, data, bn.learning_rate, bn.epochs, bn.batch_size, ctx, f"norm/{norm}")
        rows = []
        for k in range(config.seeds):
            state = train.unstack(result.state, k)
            apply_fn = TrainModeApply(model, state.model_state) if norm == "batch" else train.make_apply_fn(model)
            rows.append(spectrum(config, apply_fn, state.params, batch, data.num_classes, key, density=k == 0,
                                 chunk_size=bn.batch_size))
        numbers[norm] = {name: [r[name] for r in rows] for name in rows[0] if name != "density"}
        numbers[norm]["test_accuracy"] = result.history["test_accuracy"][:, -1].tolist()
        label = "with BatchNorm" if norm == "batch" else "without BatchNorm"
        panels[label] = {label: density_curve(rows[0]["density"], rows[0]["top"][:rows[0]["count"]])}
        summary.append(summary_row(f"{bn.model.name} {label}", rows, numbers[norm]["test_accuracy"]))
    return fw.Phase(tables={f"BatchNorm and the outliers (means over {config.seeds} seeds)":
                            fw.format_table(SUMMARY_HEADERS, summary)},
                    figures={"densities_batchnorm": plot.spectral_densities(
                        panels, title=f"{bn.model.name} on {bn.dataset}: Hessian densities, seed {config.seed}")},
                    numbers={"batchnorm": numbers})


def index_phase(config, ctx) -> fw.Phase:
    """Dauphin et al.: the index and the train loss at checkpoints along training."""
    data = datasets.load(config.dataset)
    model, batch = fw.build_model(config.model, data.num_classes), curvature_batch(config, data)
    key, rows, states = jax.random.key(config.seed + 3), [], []
    state, previous = None, 0
    for epochs in config.index_epochs[1:]:
        result = fit(config, model, data, config.learning_rate, epochs - previous, config.batch_size, ctx,
                     f"index/{epochs}", initial_state=state, epochs_per_call=1)
        states += [result.initial_state] if state is None else []
        state, previous = result.state, epochs
        states.append(state)
    for state in states:
        row = {"loss": [], "index": [], "index_standard_error": [], "near_zero": []}
        for k in range(config.seeds):
            seed_state = train.unstack(state, k)
            loss_fn = losses.make_loss_fn(train.make_apply_fn(model, seed_state.model_state))
            density = curvature.hessian_spectral_density(loss_fn, seed_state.params, batch, num_steps=config.slq_steps,
                                                         num_runs=config.slq_runs, key=key)
            index = curvature.spectral_index(density)
            # The mass within 1% of the largest Ritz value of zero: where the sign is the quadrature's guess.
            width = 0.01 * float(np.max(np.asarray(density.nodes)))
            row["near_zero"].append(float(curvature.spectral_mass(density, below=width, above=-width).estimate))
            row["loss"].append(float(loss_fn(seed_state.params, batch)))
            row["index"].append(float(index.estimate))
            row["index_standard_error"].append(float(index.standard_error))
        rows.append(row)
    loss_TxK = np.asarray([r["loss"] for r in rows])
    index_TxK = np.asarray([r["index"] for r in rows])
    # A constant index (all checkpoints alike) has no rank correlation with the loss: 0.
    spearman = [float(np.nan_to_num(scipy.stats.spearmanr(loss_TxK[:, k], index_TxK[:, k]).statistic))
                for k in range(config.seeds)]
    table = fw.format_table(["epoch", "train loss", "index", "SE of the index (runs)",
                             "mass within 1% of the top of zero"],
                            [[e, np.mean(r["loss"]), np.mean(r["index"]), np.mean(r["index_standard_error"]),
                              np.mean(r["near_zero"])] for e, r in zip(config.index_epochs, rows)])
    figure = plot.line_plot({f"seed {s}": (loss_TxK[:, k], index_TxK[:, k]) for k, s in enumerate(fw.seeds(config))},
                            xlabel="train loss (curvature batch)", ylabel="index (fraction of negative eigenvalues)",
                            title="the index against the train loss at checkpoints along training", logx=True)
    return fw.Phase(tables={f"index along training (means over {config.seeds} seeds)": table},
                    figures={"index_vs_loss": figure},
                    arrays={"index/loss": loss_TxK, "index/index": index_TxK},
                    numbers={"index": {"epochs": list(config.index_epochs), "loss": loss_TxK.tolist(),
                                       "index": index_TxK.tolist(), "spearman": spearman,
                                       "near_zero": [r["near_zero"] for r in rows],
                                       "initial_index": index_TxK[0].tolist()}})


def keskar_phase(config, ctx) -> fw.Phase:
    """Keskar et al.: the small- and large-batch solutions' spectra and densities."""
    task, key = config.keskar, jax.random.key(config.seed + 4)
    data = datasets.load(config.dataset)
    model, numbers, curves, summary = fw.build_model(task.model, data.num_classes), {}, {}, []
    for regime, batch_size in (("SB", task.small_batch), ("LB", task.large_batch)):
        result = fit(config, model, data, task.learning_rate, task.epochs, batch_size, ctx, f"keskar/{regime}")
        rows = per_seed(config, model, data, result, key, density=True)
        c = data.num_classes
        numbers[regime] = {name: [r[name] for r in rows] for name in rows[0] if name != "density"}
        numbers[regime]["outlier_mean"] = [float(np.mean(r["top"][:c])) for r in rows]
        numbers[regime]["test_accuracy"] = result.history["test_accuracy"][:, -1].tolist()
        curves[f"{regime} (batch {batch_size})"] = density_curve(rows[0]["density"], rows[0]["top"][:rows[0]["count"]])
        summary.append(summary_row(f"MLP {regime}, batch {batch_size}", rows, numbers[regime]["test_accuracy"]))
    return fw.Phase(tables={f"small vs large batch, {task.epochs} epochs each (means over {config.seeds} seeds)":
                            fw.format_table(SUMMARY_HEADERS, summary)},
                    figures={"densities_batch_size": plot.spectral_densities(
                        {f"MLP on {config.dataset}, seed {config.seed}": curves},
                        title="small- and large-batch solutions: Hessian densities")},
                    numbers={"keskar": numbers})


def run(config, ctx) -> None:
    ctx.phase("outliers and classes", classes_phase, config, ctx)
    ctx.phase("BatchNorm", batchnorm_phase, config, ctx)
    ctx.phase("index along training", index_phase, config, ctx)
    ctx.phase("small vs large batch", keskar_phase, config, ctx)


def claims(config, numbers) -> list:
    out, n, band = [], config.seeds, config.outlier_band
    for c, v in numbers["classes"].items():
        out.append(fw.Claim.within(
            f"outliers_about_c_{c}_classes", SAGUN, f"{c} classes: the number of outliers (largest ratio between "
            f"consecutive eigenvalues among the top {2 * int(c) + 1}) is about C: count / C within the declared "
            f"{band:.0%} ({n} seeds)", np.asarray(v["count"]) / int(c), target=1.0, tolerance=band))
    (many, many_counts), (few, few_counts) = ((c, v["count"]) for c, v in numbers["classes"].items())
    out.append(fw.Claim.ratio(
        "outliers_follow_classes", SAGUN, f"the count follows C on the same data: outliers with {many} classes over "
        f"outliers with {few} (geometric means over {n} seeds each)", many_counts, few_counts, above=1.0))
    for c, v in numbers["classes"].items():
        out += [fw.Claim.mean(
            f"outliers_are_gauss_newton_{c}_classes", PAPYAN, f"{c} classes: the top C eigenvalues of H and of G "
            f"agree (largest relative difference; declared tolerance {config.agreement_tolerance:g}; {n} seeds)",
            v["agreement"], below=config.agreement_tolerance),
            fw.Claim.mean(
            f"residual_bulk_sized_{c}_classes", PAPYAN, f"{c} classes: in the span of H's top C eigenvectors the "
            "residual H - G is bulk-sized: ||U^T (H - G) U||_2 / the bulk edge of H below 1", v["residual_over_edge"],
            below=1.0)]
    bn = numbers["batchnorm"]
    out.append(fw.Claim.ratio(
        "batchnorm_suppresses_outliers", GHORBANI, "the CNN with BatchNorm against without: ratio of (top "
        f"eigenvalue / bulk edge), geometric means over {n} seeds each", bn["batch"]["edge_ratio"],
        bn["none"]["edge_ratio"], below=1.0))
    index = numbers["index"]
    out.append(fw.Claim.mean(
        "index_falls_with_loss", DAUPHIN, f"along training the index falls as the loss falls: Spearman correlation "
        f"of train loss and index over {len(index['epochs'])} checkpoints, per seed ({n} seeds)", index["spearman"],
        above=0.0))
    keskar = numbers["keskar"]
    out.append(fw.Claim.ratio(
        "large_batch_outliers_larger", KESKAR, f"the large batch's outliers are larger: LB/SB ratio of the mean of the "
        f"top C eigenvalues ({config.keskar.epochs} epochs each; geometric means over {n} seeds)",
        keskar["LB"]["outlier_mean"], keskar["SB"]["outlier_mean"], above=1.0))
    return out


main = fw.entry_point(__name__)


if __name__ == "__main__":
    main()
