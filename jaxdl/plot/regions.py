"""Linear regions of a ReLU network on a plane (:mod:`jaxdl.course.regions`), coloured by activation pattern."""
from __future__ import annotations

import os
from collections.abc import Sequence

import matplotlib.collections
import numpy as np

from jaxdl.plot.base import _finish, colormap, subplots

__all__ = ["linear_regions"]

_LAYER_STYLES = ({"color": "black", "linewidth": 0.9, "linestyle": "--"},
                 {"color": "crimson", "linewidth": 1.2, "linestyle": "-"},
                 {"color": "navy", "linewidth": 0.8, "linestyle": "-"})


def _pattern_colours(patterns_AxU: np.ndarray) -> np.ndarray:
    """A pastel colour per distinct pattern, stable for a given pattern (a hash of its bits)."""
    weights_U = np.random.default_rng(0).uniform(size=patterns_AxU.shape[1])
    hues = np.mod(patterns_AxU.astype(np.float64) @ weights_U * 7.31, 1.0)
    return 0.55 + 0.4 * colormap("hsv")(hues)[:, :3]


def linear_regions(partitions: Sequence, titles: Sequence[str], points_Nx2: np.ndarray | None = None,
                   labels_N: np.ndarray | None = None, suptitle: str = "",
                   path: str | os.PathLike | None = None):
    """One panel per :class:`jaxdl.course.regions.Partition`: every region filled in its pattern's colour, the
    boundaries of hidden layer 1 dashed black (straight lines), of layer 2 red (bent where they cross
    layer 1's), of deeper layers navy; optional data points (plane coordinates) on top."""
    fig, axes = subplots(1, len(partitions), figsize=(4.6 * len(partitions), 4.4), squeeze=False)
    for ax, partition, title in zip(axes[0], partitions, titles):
        colours = _pattern_colours(partition.patterns_AxU)
        ax.add_collection(matplotlib.collections.PolyCollection(
            partition.polygons, facecolors=colours, edgecolors="none"))
        for layer in np.unique(partition.segment_layers_E):
            style = _LAYER_STYLES[min(int(layer), len(_LAYER_STYLES) - 1)]
            segments = partition.segments_Ex2x2[partition.segment_layers_E == layer]
            ax.add_collection(matplotlib.collections.LineCollection(segments, label=f"layer {layer + 1}", **style))
        if points_Nx2 is not None:
            ax.scatter(points_Nx2[:, 0], points_Nx2[:, 1], c=labels_N, s=6, cmap="coolwarm", edgecolors="none")
        w = partition.window
        ax.set_xlim(w.u_min, w.u_max)
        ax.set_ylim(w.v_min, w.v_max)
        ax.set_title(f"{title}\n{partition.num_regions} regions", fontsize=10)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
        if len(partition.segment_layers_E):
            ax.legend(loc="lower right", fontsize=7, framealpha=0.8)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return _finish(fig, path)
