"""Figures of particular studies: spectral densities, Keskar et al.'s parametric plot, the edge
of stability, ensembles of functions beside a prediction."""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import matplotlib

import numpy as np

from jaxdl.plot.base import _finish, subplots

__all__ = ["spectral_density", "spectral_densities", "parametric_plot", "edge_of_stability", "function_ensembles"]


def spectral_density(
    grid: Sequence[float],
    density: Sequence[float],
    eigenvalues: Sequence[float] | None = None,
    log: bool = True,
    xlabel: str = "eigenvalue",
    title: str = "",
    path: str | os.PathLike | None = None,
) -> matplotlib.figure.Figure:
    """An eigenvalue density (e.g. :func:`jaxdl.analysis.curvature.hessian_spectral_density`).

    Args:
      grid, density: the density on its grid, shape (G,) each.
      eigenvalues: exact eigenvalues, if known, drawn as a rug along the axis.
      log: logarithmic density axis (floored at 1e-12 of the peak), where the outliers of a
        Hessian spectrum show.
    """
    grid = np.asarray(grid, dtype=np.float64)
    density = np.asarray(density, dtype=np.float64)
    if grid.shape != density.shape or grid.ndim != 1:
        raise ValueError(f"spectral_density: grid {grid.shape} and density {density.shape} must be equal 1-D shapes")
    fig, ax = subplots(figsize=(6, 4))
    shown = np.maximum(density, 1e-12 * max(density.max(), 1e-300)) if log else density
    ax.plot(grid, shown, color="tab:blue", label="density")
    if eigenvalues is not None:
        ax.plot(np.asarray(eigenvalues), np.full(len(eigenvalues), shown.min()), "|", color="tab:red",
                ms=12, label="eigenvalues")
        ax.legend()
    if log:
        ax.set_yscale("log")
    ax.set(xlabel=xlabel, ylabel="density", title=title)
    ax.grid(alpha=0.3)
    return _finish(fig, path)


def spectral_densities(
    panels: Mapping[str, Mapping[str, tuple]],
    xlabel: str = "eigenvalue",
    title: str = "",
    path: str | os.PathLike | None = None,
) -> matplotlib.figure.Figure:
    """Eigenvalue densities side by side on a log density axis, the outliers marked (the style of
    Ghorbani, Krishnan & Xiao 2019's figures).

    Args:
      panels: panel title -> {curve label: ``(grid_G, density_G, outliers_Q)``}; each curve is
        drawn with its outliers (e.g. Lanczos top eigenvalues) as dashed vertical lines of the
        same colour (``outliers_Q`` may be empty).
    """
    if not panels:
        raise ValueError("spectral_densities: panels is empty; pass {title: {label: (grid, density, outliers)}}")
    fig, axes = subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    for ax, (panel, curves) in zip(axes[0], panels.items()):
        for i, (label, (grid, density, outliers)) in enumerate(curves.items()):
            grid, density = np.asarray(grid, np.float64), np.asarray(density, np.float64)
            if grid.shape != density.shape or grid.ndim != 1:
                raise ValueError(f"spectral_densities: {panel!r}/{label!r}: grid {grid.shape} and density "
                                 f"{density.shape} must be equal 1-D shapes")
            colour = f"C{i}"
            ax.plot(grid, np.maximum(density, 1e-8 * max(density.max(), 1e-300)), color=colour, label=str(label))
            for value in np.asarray(outliers, np.float64).ravel():
                ax.axvline(value, color=colour, linestyle="--", linewidth=0.8, alpha=0.7)
        ax.set_yscale("log")
        ax.set(xlabel=xlabel, ylabel="density", title=panel)
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    return _finish(fig, path)


def parametric_plot(
    alphas: Sequence[float],
    losses: Mapping[str, Sequence[float]],
    accuracies: Mapping[str, Sequence[float]],
    sharpness: Mapping[str, tuple[float, float]] | None = None,
    xlabel: str = "a",
    sharpness_label: str = "sharpness",
    title: str = "",
    path: str | os.PathLike | None = None,
) -> matplotlib.figure.Figure:
    """Two panels along a 1-D path (Keskar et al. 2017, figure 3): the loss curves on the left
    (with the sharpness of named points as markers on a second y axis) and the accuracies on the
    right. Curve labels containing "test" are dashed.

    Args:
      alphas: (G,) path coordinates.
      losses, accuracies: label -> values (G,).
      sharpness: label -> (a, value), e.g. the top eigenvalue of each solution at a = 0 and 1.
    """
    alphas = np.asarray(alphas, np.float64)
    fig, (left, right) = subplots(1, 2, figsize=(12, 4.5), gridspec_kw={"wspace": 0.45})
    for ax, curves, ylabel, corner in ((left, losses, "loss", "upper left"), (right, accuracies, "accuracy", "best")):
        for label, values in curves.items():
            ax.plot(alphas, np.asarray(values), "--" if "test" in label else "-", label=label)
        ax.set(xlabel=xlabel, ylabel=ylabel)
        ax.grid(alpha=0.3)
        ax.legend(loc=corner, fontsize=8)
    if sharpness:
        twin = left.twinx()
        for (label, (a, value)), colour in zip(sharpness.items(), ("tab:green", "tab:red", "tab:purple")):
            twin.plot([a], [value], "D", ms=8, color=colour, label=label)
        twin.set_ylabel(sharpness_label)
        twin.set_ylim(0, 1.35 * max(value for _, value in sharpness.values()))  # room for the legend
        twin.legend(loc="upper right", fontsize=8)
    fig.suptitle(title)
    return _finish(fig, path)


def edge_of_stability(
    runs: Mapping[str, tuple],
    title: str = "",
    path: str | os.PathLike | None = None,
) -> matplotlib.figure.Figure:
    """Sharpness against step with its stability threshold, and the training loss beneath
    (Cohen et al. 2021, figure 1).

    Args:
      runs: label -> ``(steps_S, sharpness_S, threshold, loss_steps_T, loss_T)``: the measured
        sharpness at its steps, the line 2/eta drawn dashed in the same colour, and the loss.
    """
    fig, (top, bottom) = subplots(2, 1, figsize=(7, 6), sharex=True)
    for label, (steps, sharpness, threshold, loss_steps, loss) in runs.items():
        (line,) = top.plot(np.asarray(steps), np.asarray(sharpness), label=label)
        top.axhline(threshold, color=line.get_color(), linestyle="--", linewidth=1)
        bottom.plot(np.asarray(loss_steps), np.asarray(loss), color=line.get_color(), label=label)
    top.set(ylabel="top Hessian eigenvalue (dashed: 2 / eta)", title=title)
    bottom.set(xlabel="step", ylabel="training loss", yscale="log")
    for ax in (top, bottom):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _finish(fig, path)


def function_ensembles(
    x: Sequence[float],
    panels: Mapping[str, Mapping[str, np.ndarray]],
    reference: tuple[str, Sequence[float]] | None = None,
    points: tuple[Sequence[float], Sequence[float]] | None = None,
    xlabel: str = "",
    ylabel: str = "",
    title: str = "",
    path: str | os.PathLike | None = None,
) -> matplotlib.figure.Figure:
    """Ensembles of functions of one variable side by side (e.g. networks of one width over
    seeds, at initialisation and after training, as in Jacot et al. 2018's figure).

    Args:
      x: the inputs, shape (T,).
      panels: panel title -> {label -> curves (K, T)}: each label one colour, each of its K
        members a thin line.
      reference: ``(label, values (T,))`` drawn thick and black in every panel (e.g. an
        infinite-width prediction).
      points: ``(x_points, y_points)`` drawn as markers in every panel (training data).
    """
    x = np.asarray(x, np.float64)
    fig, axes = subplots(1, len(panels), figsize=(5.5 * len(panels), 4.2), squeeze=False, sharey=True)
    colours = ("tab:gray", "tab:blue", "tab:orange", "tab:green")
    for ax, (panel, ensembles) in zip(axes[0], panels.items()):
        for colour, (label, curves) in zip(colours[-len(ensembles):], ensembles.items()):
            curves = np.asarray(curves, np.float64).reshape(-1, x.size)
            for i, curve in enumerate(curves):
                ax.plot(x, curve, color=colour, lw=1.0, alpha=0.7, label=label if i == 0 else None)
        if reference is not None:
            ax.plot(x, np.asarray(reference[1]), color="black", lw=2.2, label=reference[0])
        if points is not None:
            ax.plot(*points, "o", color="tab:red", ms=7, zorder=5, label="training points")
        ax.set(xlabel=xlabel, title=panel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0][0].set_ylabel(ylabel)
    fig.suptitle(title)
    fig.tight_layout()
    return _finish(fig, path)
