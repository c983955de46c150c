"""Figures over a plane: decision boundaries, contour surfaces, 2-D optimiser trajectories."""
from __future__ import annotations

import os
from collections.abc import Callable, Mapping

import matplotlib

import matplotlib.colors
import matplotlib.ticker
import numpy as np

from jaxdl.plot.base import _finish, colormap, subplots

__all__ = ["decision_boundary", "decision_boundaries", "contour_surface", "trajectories_2d"]


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
    points_Gx2 = np.stack([mesh_x.ravel(), mesh_y.ravel()], axis=1)
    classes = np.asarray(predict_fn(points_Gx2)).reshape(mesh_x.shape)
    num_classes = max(num_classes, int(classes.max()) + 1, 2)
    cmap = colormap("coolwarm" if num_classes == 2 else "tab10", num_classes)
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
      predict_fn: maps grid points `(G, 2)` (NumPy) to class indices `(G,)`.
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
      predictors: panel title -> `predict_fn` (grid points `(G, 2)` -> class indices `(G,)`).
      x: inputs `(N, 2)`; y: integer labels `(N,)`.
      title: the figure's title above the panels.
      path: where to save the PNG, if given.
      resolution: grid points per axis.
      margin: padding around the data, as a fraction of its range.
    """
    mesh_x, mesh_y = _boundary_grid(x, resolution, margin)
    x, y = np.asarray(x), np.asarray(y).reshape(-1)
    num_classes = int(y.max()) + 1
    fig, axes = subplots(1, len(predictors), figsize=(4.5 * len(predictors), 4.5),
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
    fig, ax = subplots(figsize=(5.5, 4.5))
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
    fig, ax = subplots(figsize=(6, 5))
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
