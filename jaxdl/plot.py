"""Matplotlib figures (Agg backend), one function per kind of figure.

Every function returns the `Figure`; given `path`, it also saves the figure there atomically
and closes it, so that long experiments do not accumulate open figures.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # Headless: experiments run on servers, CI and TPU hosts.

import matplotlib.colors  # noqa: E402
import matplotlib.ticker  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from jaxdl import io  # noqa: E402


def save_figure(fig: matplotlib.figure.Figure, path: str | os.PathLike, dpi: int = 120) -> str:
    """Saves `fig` to `path` atomically and closes it; returns the path.

    The format follows the extension of `path` (.png when it has none); the temporary file
    keeps that extension so that Matplotlib picks the same format.
    """
    path = os.fspath(path)
    extension = os.path.splitext(path)[1] or ".png"
    if not os.path.splitext(path)[1]:
        path += extension
    with io.atomic_path(path, suffix=extension) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return path


def _finish(fig, path):
    if path is not None:
        save_figure(fig, path)
    return fig


def line_plot(
    curves: Mapping[str, tuple],
    xlabel: str = "",
    ylabel: str = "",
    title: str = "",
    logy: bool = False,
    logx: bool = False,
    path: str | os.PathLike | None = None,
) -> matplotlib.figure.Figure:
    """One line per curve, with an optional shaded band.

    Args:
      curves: label -> `(x, y)`, or `(x, mean, std)` to shade `mean +- std`.
      logy, logx: logarithmic axes.
    """
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, curve in curves.items():
        if len(curve) not in (2, 3):
            raise ValueError(
                f"line_plot: curve {label!r} must be (x, y) or (x, mean, std), "
                f"got {len(curve)} arrays")
        x = np.asarray(curve[0])
        y = np.asarray(curve[1])
        (line,) = ax.plot(x, y, label=str(label))
        if len(curve) == 3:
            std = np.asarray(curve[2])
            ax.fill_between(x, y - std, y + std, color=line.get_color(), alpha=0.2, linewidth=0)
    if logy:
        ax.set_yscale("log")
    if logx:
        ax.set_xscale("log")
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.grid(alpha=0.3)
    if curves:
        ax.legend()
    return _finish(fig, path)


def _boundary_grid(x, resolution, margin):
    """A `resolution` x `resolution` grid over the data's bounding box, padded by `margin`."""
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[1] != 2:
        raise ValueError(f"decision_boundary: x must have shape (N, 2), got {x.shape}")
    low, high = x.min(axis=0), x.max(axis=0)
    pad = margin * np.maximum(high - low, 1e-12)
    grid_x = np.linspace(low[0] - pad[0], high[0] + pad[0], resolution)
    grid_y = np.linspace(low[1] - pad[1], high[1] + pad[1], resolution)
    return np.meshgrid(grid_x, grid_y)


def _boundary_panel(ax, predict_fn, x, y, mesh_x, mesh_y, num_classes, title):
    points_Mx2 = np.stack([mesh_x.ravel(), mesh_y.ravel()], axis=1)
    classes = np.asarray(predict_fn(points_Mx2)).reshape(mesh_x.shape)
    num_classes = max(num_classes, int(classes.max()) + 1, 2)
    cmap = plt.get_cmap("coolwarm" if num_classes == 2 else "tab10", num_classes)
    ax.contourf(mesh_x, mesh_y, classes, levels=np.arange(num_classes + 1) - 0.5, cmap=cmap,
                alpha=0.35)
    ax.scatter(x[:, 0], x[:, 1], c=y, cmap=cmap, vmin=-0.5, vmax=num_classes - 0.5,
               s=12, edgecolors="k", linewidths=0.3)
    ax.set(title=title, xlim=(mesh_x[0, 0], mesh_x[0, -1]), ylim=(mesh_y[0, 0], mesh_y[-1, 0]))
    ax.set_aspect("equal")


def decision_boundary(predict_fn: Callable[[np.ndarray], np.ndarray], x: np.ndarray, y: np.ndarray, title: str = "",
                      **options) -> matplotlib.figure.Figure:
    """Predicted classes over the plane (filled contour) with the data on top: one panel of
    :func:`decision_boundaries`, whose ``path``, ``resolution`` and ``margin`` it takes.

    Args:
      predict_fn: maps points `(M, 2)` (NumPy) to class indices `(M,)`.
      x: inputs `(N, 2)`; y: integer labels `(N,)`.
      title: the panel's title.
    """
    return decision_boundaries({title: predict_fn}, x, y, title="", **options)


def decision_boundaries(
    predictors: Mapping[str, Callable[[np.ndarray], np.ndarray]],
    x: np.ndarray,
    y: np.ndarray,
    title: str = "",
    path: str | os.PathLike | None = None,
    resolution: int = 200,
    margin: float = 0.1,
) -> matplotlib.figure.Figure:
    """`decision_boundary` for several models side by side on the same data.

    Args:
      predictors: panel title -> `predict_fn` (points `(M, 2)` -> class indices `(M,)`).
      x: inputs `(N, 2)`; y: integer labels `(N,)`.
      title: the figure's title above the panels.
      path: where to save the PNG, if given.
      resolution: grid points per axis.
      margin: padding around the data, as a fraction of its range.
    """
    mesh_x, mesh_y = _boundary_grid(x, resolution, margin)
    x, y = np.asarray(x), np.asarray(y).reshape(-1)
    num_classes = int(y.max()) + 1
    fig, axes = plt.subplots(1, len(predictors), figsize=(4.5 * len(predictors), 4.5),
                             squeeze=False)
    for ax, (label, predict_fn) in zip(axes[0], predictors.items()):
        _boundary_panel(ax, predict_fn, x, y, mesh_x, mesh_y, num_classes, str(label))
    if title:
        fig.suptitle(title)
    return _finish(fig, path)


def contour_surface(
    xs: np.ndarray,
    ys: np.ndarray,
    z: np.ndarray,
    title: str = "",
    path: str | os.PathLike | None = None,
    filled: bool = True,
    levels: int = 30,
    log: bool = False,
    xlabel: str = "",
    ylabel: str = "",
) -> matplotlib.figure.Figure:
    """Contour plot of a function sampled on a grid (a loss surface along two directions).

    Args:
      xs: grid coordinates `(Nx,)`; ys: grid coordinates `(Ny,)`.
      z: values `(Ny, Nx)`, `z[i, j]` at `(xs[j], ys[i])` (the `np.meshgrid` "xy" layout).
      filled: filled contours with a colour bar, else labelled lines.
      levels: number of contour levels.
      log: logarithmic colour scale (needs positive values; non-positive ones are clipped).
    """
    xs, ys, z = np.asarray(xs), np.asarray(ys), np.asarray(z, dtype=np.float64)
    if z.shape != (len(ys), len(xs)):
        raise ValueError(
            f"contour_surface: z must have shape (len(ys), len(xs)) = {(len(ys), len(xs))}, "
            f"got {z.shape}")
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    _draw_contours(ax, xs, ys, z, filled=filled, levels=levels, log=log, colorbar=True)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    return _finish(fig, path)


def _draw_contours(ax, xs, ys, z, filled, levels, log, colorbar):
    """Draws contours of `z` on `ax`, on a log scale if asked."""
    finite = z[np.isfinite(z)]
    if finite.size == 0:
        raise ValueError("contour: every value of z is non-finite")
    if log:
        positive = finite[finite > 0]
        floor = positive.min() if positive.size else 1e-12
        z = np.clip(np.nan_to_num(z, nan=finite.max(), posinf=finite.max()), floor, None)
        level_values = np.geomspace(floor, max(z.max(), floor * (1 + 1e-9)), levels)
        norm = matplotlib.colors.LogNorm(vmin=level_values[0], vmax=level_values[-1])
    else:
        z = np.nan_to_num(z, nan=finite.max(), posinf=finite.max(), neginf=finite.min())
        level_values, norm = levels, None
    draw = ax.contourf if filled else ax.contour
    contours = draw(xs, ys, z, levels=level_values, norm=norm, cmap="viridis")
    if filled and colorbar:
        bar = ax.figure.colorbar(contours, ax=ax)
        if log:  # Ticks at the geometric contour levels would read 1.48034e-01.
            bar.locator = matplotlib.ticker.LogLocator()
            bar.formatter = matplotlib.ticker.LogFormatterSciNotation()
            bar.update_ticks()
    elif not filled:
        ax.clabel(contours, inline=True, fontsize=7, fmt="%.3g")
    return contours


def trajectories_2d(
    loss_fn_numpy: Callable[[np.ndarray, np.ndarray], np.ndarray],
    paths: Mapping[str, np.ndarray],
    xlim: tuple[float, float],
    ylim: tuple[float, float],
    title: str = "",
    path: str | os.PathLike | None = None,
    resolution: int = 200,
    levels: int = 30,
    log: bool = True,
) -> matplotlib.figure.Figure:
    """Contours of a 2-D function with optimizer paths drawn on top.

    Args:
      loss_fn_numpy: vectorised `f(X, Y) -> Z` on NumPy arrays of equal shape.
      paths: label -> iterates `(T, 2)`; start marked by a circle, end by a cross.
      xlim, ylim: the plotted window.
      log: logarithmic contour levels (the default suits valley-shaped test functions).
    """
    xs = np.linspace(*xlim, resolution)
    ys = np.linspace(*ylim, resolution)
    mesh_x, mesh_y = np.meshgrid(xs, ys)
    z = np.asarray(loss_fn_numpy(mesh_x, mesh_y), dtype=np.float64)
    fig, ax = plt.subplots(figsize=(6, 5))
    _draw_contours(ax, xs, ys, z, filled=True, levels=levels, log=log, colorbar=False)
    for label, iterates in paths.items():
        iterates_Tx2 = np.asarray(iterates)
        if iterates_Tx2.ndim != 2 or iterates_Tx2.shape[1] != 2:
            raise ValueError(
                f"trajectories_2d: path {label!r} must have shape (T, 2), got {iterates_Tx2.shape}")
        (line,) = ax.plot(iterates_Tx2[:, 0], iterates_Tx2[:, 1], "-", lw=1.5, label=str(label))
        ax.plot(*iterates_Tx2[0], "o", color=line.get_color(), ms=5)
        ax.plot(*iterates_Tx2[-1], "x", color=line.get_color(), ms=7, mew=2)
    ax.set(title=title, xlim=xlim, ylim=ylim)
    if paths:
        ax.legend(loc="upper right", fontsize=8)
    return _finish(fig, path)


def bar_chart(
    labels: Sequence[str],
    values: Sequence[float],
    errors: Sequence[float] | None = None,
    reference: Sequence[float | None] | None = None,
    ylabel: str = "",
    title: str = "",
    path: str | os.PathLike | None = None,
    reference_label: str = "published",
) -> matplotlib.figure.Figure:
    """Bars of measured values, optional error bars, and published numbers as markers.

    Args:
      labels, values: one bar per label.
      errors: half-heights of error bars (e.g. std over seeds), one per bar.
      reference: published values drawn as red diamonds; `None` entries are skipped.
    """
    values = np.asarray(values, dtype=np.float64)
    if len(labels) != len(values):
        raise ValueError(f"bar_chart: {len(labels)} labels but {len(values)} values")
    positions = np.arange(len(values))
    fig, ax = plt.subplots(figsize=(max(4.0, 0.8 * len(values) + 2), 4))
    ax.bar(positions, values, yerr=None if errors is None else np.asarray(errors),
           capsize=4, color="tab:blue", alpha=0.8, label="measured")
    if reference is not None:
        if len(reference) != len(values):
            raise ValueError(f"bar_chart: {len(reference)} reference values for {len(values)} bars")
        shown = [(p, r) for p, r in zip(positions, reference) if r is not None]
        if shown:
            ax.plot(*zip(*shown), "D", color="tab:red", ms=8, label=reference_label)
    ax.set_xticks(positions, [str(label) for label in labels],
                  rotation=30 if len(values) > 5 else 0, ha="right" if len(values) > 5 else "center")
    ax.set(ylabel=ylabel, title=title)
    ax.grid(axis="y", alpha=0.3)
    ax.legend()
    return _finish(fig, path)


def spectral_density(
    grid: Sequence[float],
    density: Sequence[float],
    eigenvalues: Sequence[float] | None = None,
    log: bool = True,
    xlabel: str = "eigenvalue",
    title: str = "",
    path: str | os.PathLike | None = None,
) -> matplotlib.figure.Figure:
    """An eigenvalue density (e.g. :func:`jaxdl.curvature.hessian_spectral_density`).

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
    fig, ax = plt.subplots(figsize=(6, 4))
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
      alphas: (A,) path coordinates.
      losses, accuracies: label -> values (A,).
      sharpness: label -> (a, value), e.g. the top eigenvalue of each solution at a = 0 and 1.
    """
    alphas = np.asarray(alphas, np.float64)
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5), gridspec_kw={"wspace": 0.45})
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
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
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
