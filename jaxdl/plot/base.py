"""Saving figures, and the generic kinds: lines, bars, log-log panels with fitted slopes.

Every function builds a :class:`matplotlib.figure.Figure` directly, never through pyplot, so
importing or calling jaxdl's plotting never switches matplotlib's backend (notebooks keep their
inline figures, and a figure is not registered with pyplot's global state). Display one in a
notebook by evaluating it; save it with :func:`save_figure`.
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import matplotlib
import matplotlib.figure
import matplotlib.ticker
import numpy as np

from jaxdl.core import fits
from jaxdl.core import io

__all__ = ["subplots", "colormap", "save_figure", "line_plot", "bar_chart", "loglog_panels", "panels"]


def subplots(nrows: int = 1, ncols: int = 1, *, figsize: tuple[float, float], layout: str | None = None, **options):
    """``(figure, axes)`` as ``matplotlib.pyplot.subplots`` returns them, for a new
    :class:`matplotlib.figure.Figure` that pyplot does not know about (no backend, no global
    state); ``options`` go to :meth:`matplotlib.figure.Figure.subplots`."""
    fig = matplotlib.figure.Figure(figsize=figsize, layout=layout)
    return fig, fig.subplots(nrows, ncols, **options)


def colormap(name: str, num_colors: int | None = None):
    """The registered colormap ``name``, resampled to ``num_colors`` entries when given."""
    cmap = matplotlib.colormaps[name]
    return cmap if num_colors is None else cmap.resampled(num_colors)


def save_figure(fig: matplotlib.figure.Figure, path: str | os.PathLike, dpi: int = 120) -> str:
    """Saves `fig` to `path` atomically; returns the path.

    The format follows the extension of `path` (.png when it has none); the temporary file
    keeps that extension so that Matplotlib picks the same format.
    """
    path = os.fspath(path)
    extension = os.path.splitext(path)[1] or ".png"
    if not os.path.splitext(path)[1]:
        path += extension
    with io.atomic_path(path, suffix=extension) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight")
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
    fig, ax = subplots(figsize=(6, 4))
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
    fig, ax = subplots(figsize=(max(4.0, 0.8 * len(values) + 2), 4))
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


def loglog_panels(
    panels: Mapping[str, Mapping[str, tuple]],
    xlabel: str = "",
    ylabel: str = "",
    title: str = "",
    path: str | os.PathLike | None = None,
) -> matplotlib.figure.Figure:
    """Side-by-side log-log panels, each line labelled with its fitted slope (an error against
    a step size, e.g. a backward-error analysis).

    Args:
      panels: panel title -> {label -> (x, y)}.
    """
    fig, axes = subplots(1, len(panels), figsize=(5 * len(panels), 4.2), squeeze=False)
    for ax, (panel, curves) in zip(axes[0], panels.items()):
        for label, (x, y) in curves.items():
            x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
            fitted = fits.loglog_slope(x, y)
            ax.loglog(x, y, "o-", label=f"{label} (slope {fitted:.2f})")
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # decades only: no crowded labels
        xs = np.unique(np.concatenate([np.asarray(x, np.float64) for x, _ in curves.values()]))
        if len(xs) and xs.max() < 30 * xs.min():  # under a decade and a half: label the points themselves
            ax.set_xticks(xs, [f"{v:g}" for v in xs])
        ax.set(xlabel=xlabel, ylabel=ylabel, title=panel)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return _finish(fig, path)


def panels(
    curves_by_panel: Mapping[str, Mapping[str, tuple]],
    *,
    columns: int = 2,
    xlabel: str | Sequence[str] = "",
    title: str = "",
    logx: bool | Sequence[bool] = False,
    logy: bool | Sequence[bool] = True,
    ylim: tuple | None = None,
    path: str | os.PathLike | None = None,
) -> matplotlib.figure.Figure:
    """A grid of panels filled column by column, each curve with an optional prediction dashed in
    its colour (a measurement beside its theory).

    Args:
      curves_by_panel: panel title -> {label -> `(x, y)` or `(x, y, y_predicted)`}.
      xlabel, logx, logy: one value for every panel, or a tuple of one per panel.
      ylim: None, or a tuple of one `(low, high)` (or None) per panel.
    """
    count = len(curves_by_panel)
    per_panel = lambda value: tuple(value) if isinstance(value, (tuple, list)) else (value,) * count
    rows = -(-count // columns)
    fig, axes = subplots(rows, columns, figsize=(5.2 * columns, 3.6 * rows), squeeze=False, layout="constrained")
    limits = per_panel(ylim) if ylim is not None else (None,) * count
    for ax, (panel, curves), label, log_x, log_y, low_high in zip(axes.T.ravel(), curves_by_panel.items(),
                                                                   per_panel(xlabel), per_panel(logx), per_panel(logy),
                                                                   limits):
        for name, (x, y, *predicted) in curves.items():
            (line,) = ax.plot(x, y, label=str(name))
            for prediction in predicted:
                ax.plot(x, prediction, "--", color=line.get_color(), linewidth=1)
        ax.set(xlabel=label, title=panel, xscale="log" if log_x else "linear", yscale="log" if log_y else "linear",
               ylim=low_high)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in axes.T.ravel()[count:]:
        ax.set_axis_off()
    fig.suptitle(title)
    return _finish(fig, path)
