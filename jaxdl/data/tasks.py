"""Task sequences for continual learning: one data set cut into a sequence of tasks.

- :func:`permuted_tasks` -- task t is the whole data set with its input features put in a fixed
  random order pi_t, task 0 the identity: "permuted MNIST" (Goodfellow et al. 2013, "An
  empirical investigation of catastrophic forgetting"; Kirkpatrick et al. 2017) on any set,
  e.g. ``mnist1d``. Every task has the same labels and difficulty for a model without a
  spatial prior (an MLP), so what changes between tasks is only the input-output map.
- :func:`class_split_tasks` -- task t holds the examples of classes ``[t c, (t + 1) c)``:
  "split MNIST" (Zenke et al. 2017), e.g. ``digits`` in class pairs. By default the labels
  stay those of the data set (one output head over every class: the class-incremental
  setting); ``relabel=True`` maps them to ``0..c-1`` (one small head shared by every task).
- :func:`make_tasks` -- either of them by name (:data:`TASK_SPLITS`), with a ``ValueError``
  naming ``split`` and listing the choices for an unknown one.

Each returns a list of :class:`jaxdl.data.Dataset`, one per task, as NumPy arrays.
"""
from __future__ import annotations

import dataclasses
import inspect

import numpy as np

from jaxdl.core import checks
from jaxdl.data.dataset import Dataset, streams

__all__ = ["permuted_tasks", "class_split_tasks", "TASK_SPLITS", "make_tasks"]


def _feature_permutations(seed: int, num_tasks: int, num_features: int) -> list[np.ndarray]:
    # One independent stream per task (SeedSequence children): task t's order depends on
    # (seed, t) only, so a longer sequence starts with the tasks of a shorter one.
    rngs = streams(seed, num_tasks)
    return [np.arange(num_features)] + [rng.permutation(num_features) for rng in rngs[1:]]


def permuted_tasks(data: Dataset, num_tasks: int, seed: int = 0) -> list[Dataset]:
    """``num_tasks`` copies of ``data`` whose input features are permuted, task 0 unpermuted.

    Each example ``x`` (any input shape, flattened to D features) becomes
    ``x.reshape(D)[pi_t].reshape(input_shape)``, the same permutation pi_t for the training and
    the test examples of task t; labels are unchanged. pi_t depends only on ``(seed, t)``.

    Args:
      data: any :class:`Dataset` (classification or regression).
      num_tasks: T >= 1.
      seed: seeds the permutations.

    Returns:
      T datasets named ``'<name>/permuted<t>'``.
    """
    checks.integer("num_tasks", num_tasks)
    checks.integer("seed", seed, minimum=0)
    shape = data.input_shape
    num_features = int(np.prod(shape, dtype=np.int64))

    def permute(x, order_D):
        return np.ascontiguousarray(x.reshape(len(x), num_features)[:, order_D].reshape((len(x),) + shape))

    return [dataclasses.replace(data, x_train=permute(data.x_train, order), x_test=permute(data.x_test, order),
                                name=f"{data.name}/permuted{t}")
            for t, order in enumerate(_feature_permutations(int(seed), int(num_tasks), num_features))]


def class_split_tasks(data: Dataset, classes_per_task: int = 2, relabel: bool = False) -> list[Dataset]:
    """``data`` split by class into ``num_classes / classes_per_task`` tasks.

    Task t holds, in their original order, the training and test examples whose label is in
    ``[t * classes_per_task, (t + 1) * classes_per_task)``.

    Args:
      data: a classification :class:`Dataset`.
      classes_per_task: c, a divisor of ``data.num_classes`` (2: the digits in pairs 0-1, 2-3, ...).
      relabel: keep the labels and ``num_classes`` of ``data`` (False), or map task t's labels
        ``y`` to ``y - t * c`` with ``num_classes = c`` (True).

    Returns:
      ``num_classes / c`` datasets named ``'<name>/classes<first>-<last>'``.

    Raises:
      ValueError naming ``data`` for a regression set, ``classes_per_task`` when it does not
      divide the number of classes, or ``data`` when a task has no training example.
    """
    if data.num_classes is None:
        checks.fail("data", data, "a classification data set (num_classes set) to split by class")
    num_classes = int(data.num_classes)
    per_task = checks.integer("classes_per_task", classes_per_task, maximum=num_classes,
                              maximum_name=f"the number of classes of {data.name!r}")
    if num_classes % per_task:
        checks.fail("classes_per_task", classes_per_task, f"a divisor of the {num_classes} classes of {data.name!r}")
    tasks = []
    for t in range(num_classes // per_task):
        first = t * per_task
        train = (data.y_train >= first) & (data.y_train < first + per_task)
        test = (data.y_test >= first) & (data.y_test < first + per_task)
        if not train.any():
            checks.fail("data", data, f"training examples of classes {first}-{first + per_task - 1} (task {t})")
        shift = first if relabel else 0
        tasks.append(Dataset(data.x_train[train], (data.y_train[train] - shift).astype(data.y_train.dtype),
                             data.x_test[test], (data.y_test[test] - shift).astype(data.y_test.dtype),
                             per_task if relabel else num_classes,
                             f"{data.name}/classes{first}-{first + per_task - 1}"))
    return tasks


TASK_SPLITS = {"permuted": permuted_tasks, "class_split": class_split_tasks}


def make_tasks(data: Dataset, split: str, **options) -> list[Dataset]:
    """The task sequence ``split`` (a key of :data:`TASK_SPLITS`) of ``data``, e.g.
    ``make_tasks(data, 'permuted', num_tasks=5, seed=0)`` or
    ``make_tasks(data, 'class_split', classes_per_task=2)``. An unknown ``split`` raises
    ``ValueError`` listing the choices; an option the split does not take, ``TypeError``."""
    builder = TASK_SPLITS[checks.one_of("split", split, sorted(TASK_SPLITS))]
    accepted = [name for name in inspect.signature(builder).parameters if name != "data"]
    checks.known_options(f"task split {split!r}", options, accepted)
    return builder(data, **options)
