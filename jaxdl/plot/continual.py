"""Figures of continual learning: the accuracy matrix of a task sequence and per-task curves."""
from __future__ import annotations

import os
from collections.abc import Sequence

import matplotlib

import numpy as np

from jaxdl.plot.base import _finish, subplots

__all__ = ["accuracy_matrix", "task_curves"]


def accuracy_matrix(
    matrix: np.ndarray,
    task_labels: Sequence[str] | None = None,
    title: str = "",
    path: str | os.PathLike | None = None,
) -> matplotlib.figure.Figure:
    """Heat map of a continual-learning accuracy matrix, each cell's value written in it.

    Args:
      matrix: ``(T, T)``, entry ``[i, j]`` the accuracy on task j after training on tasks
        0..i in turn (rows: tasks trained so far; columns: task evaluated), in [0, 1].
      task_labels: T names (default ``task 0 .. task T-1``).
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"accuracy_matrix: matrix must be square (T, T), got shape {matrix.shape}")
    num_tasks = matrix.shape[0]
    labels = [f"task {t}" for t in range(num_tasks)] if task_labels is None else [str(s) for s in task_labels]
    if len(labels) != num_tasks:
        raise ValueError(f"accuracy_matrix: {len(labels)} task_labels for {num_tasks} tasks")
    fig, ax = subplots(figsize=(1.0 * num_tasks + 2.5, 0.8 * num_tasks + 1.8))
    image = ax.imshow(matrix, vmin=0.0, vmax=1.0, cmap="viridis")
    for i in range(num_tasks):
        for j in range(num_tasks):
            # Dark text on the bright end of viridis, light text on the dark end.
            ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=9,
                    color="black" if matrix[i, j] > 0.6 else "white")
    crowded = num_tasks > 4
    ax.set_xticks(range(num_tasks), labels, rotation=30 if crowded else 0, ha="right" if crowded else "center")
    ax.set_yticks(range(num_tasks), labels)
    ax.set(xlabel="task evaluated", ylabel="after training on", title=title)
    fig.colorbar(image, ax=ax, label="test accuracy")
    return _finish(fig, path)


def task_curves(
    accuracy: np.ndarray,
    epochs_per_task: int,
    std: np.ndarray | None = None,
    task_labels: Sequence[str] | None = None,
    title: str = "",
    path: str | os.PathLike | None = None,
) -> matplotlib.figure.Figure:
    """Accuracy on every task of a sequence while the tasks are trained one after another.

    Args:
      accuracy: ``(E + 1, T)``, row e the accuracy on each task after e epochs of the whole
        sequence (row 0 before training), E = T * epochs_per_task; task i is trained during
        epochs ``i * epochs_per_task + 1 .. (i + 1) * epochs_per_task`` (shaded alternately).
      std: optional ``(E + 1, T)`` spread (e.g. over seeds), drawn as a band.
      task_labels: T names (default ``task 0 .. task T-1``).
    """
    accuracy = np.asarray(accuracy, dtype=np.float64)
    if accuracy.ndim != 2:
        raise ValueError(f"task_curves: accuracy must be (epochs + 1, tasks), got shape {accuracy.shape}")
    num_tasks = accuracy.shape[1]
    if std is not None and np.shape(std) != accuracy.shape:
        raise ValueError(f"task_curves: std has shape {np.shape(std)}, accuracy {accuracy.shape}")
    labels = [f"task {t}" for t in range(num_tasks)] if task_labels is None else [str(s) for s in task_labels]
    epochs = np.arange(len(accuracy))
    fig, ax = subplots(figsize=(8, 4))
    for start in range(0, len(accuracy) - 1, 2 * epochs_per_task):
        ax.axvspan(start, min(start + epochs_per_task, len(accuracy) - 1), color="0.92", linewidth=0)
    for t in range(num_tasks):
        (line,) = ax.plot(epochs, accuracy[:, t], label=labels[t])
        if std is not None:
            ax.fill_between(epochs, accuracy[:, t] - std[:, t], accuracy[:, t] + std[:, t], color=line.get_color(),
                            alpha=0.2, linewidth=0)
    ax.set(xlabel="epoch of the sequence (bands: one task after another)", ylabel="test accuracy", title=title,
           ylim=(-0.02, 1.02), xlim=(0, len(accuracy) - 1))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), title="evaluated on", title_fontsize=8)
    return _finish(fig, path)
