"""Data sets as NumPy arrays: the :class:`Dataset` record, ``load(name, **options)`` and its registry.

Embedded sets need no network and are deterministic given ``seed``
(:mod:`jaxdl.data.embedded`): ``digits``, ``mnist1d``, ``moons``, ``spirals``, ``teacher``,
``poly``, and the adding problem ``adding`` (:mod:`jaxdl.data.sequences`). File sets ``mnist``,
``fashion_mnist`` and ``cifar10`` (:mod:`jaxdl.data.files`) are read from a local folder by
:mod:`jaxdl.datafiles` and downloaded only with ``download=True``.
The graph task :func:`degree_graphs` (:mod:`jaxdl.data.graphs`) is built by its own function,
because standardising a packed graph would scramble its adjacency.
:func:`corrupt_labels` (:mod:`jaxdl.data.corruption`) replaces a fraction of a set's training labels
by random classes (Zhang et al. 2017's random labels; label noise).
:func:`process_shard` and :func:`spread_over_processes` (:mod:`jaxdl.data.processes`) let each
process of a distributed run hold only its rows of a set.
:func:`make_tasks` (:mod:`jaxdl.data.tasks`) cuts a set into a continual-learning task sequence:
permuted input features (:func:`permuted_tasks`) or classes in groups (:func:`class_split_tasks`).

Conventions: x is float32; classification y is int32 of shape (N,) with ``num_classes`` set;
regression y is float32 of shape (N, d_out) with ``num_classes=None``. Images are NHWC.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable

from jaxdl import checks
from jaxdl.data.corruption import corrupt_labels, replace_labels
from jaxdl.data.dataset import Dataset, classification, standardize, streams, validation_split
from jaxdl.data.embedded import (_load_digits, _load_mnist1d, _load_moons, _load_poly, _load_spirals, _load_teacher,
                                 poly_true_function)
from jaxdl.data.files import _load_cifar10, _load_fashion_mnist, _load_mnist
from jaxdl.data.graphs import degree_graphs, degree_threshold, permute_graph_nodes, random_graphs
from jaxdl.data.processes import process_mesh, process_shard, spread_over_processes
from jaxdl.data.sequences import ADDING_MEAN_PREDICTION_MSE, _load_adding, adding_problem
from jaxdl.data.tasks import TASK_SPLITS, class_split_tasks, make_tasks, permuted_tasks

_standardize = standardize  # `load` takes a flag of the same name

LOADERS: dict[str, Callable[..., Dataset]] = {
    "digits": _load_digits,
    "mnist1d": _load_mnist1d,
    "moons": _load_moons,
    "spirals": _load_spirals,
    "teacher": _load_teacher,
    "poly": _load_poly,
    "adding": _load_adding,
    "mnist": _load_mnist,
    "fashion_mnist": _load_fashion_mnist,
    "cifar10": _load_cifar10,
}


def get_loader(name: str) -> Callable[..., Dataset]:
    """The loader registered under `name`; ValueError listing the known names otherwise."""
    if name not in LOADERS:
        known = ", ".join(sorted(LOADERS))
        raise ValueError(f"unknown data set {name!r}; known data sets: {known}")
    return LOADERS[name]


# Sets whose inputs keep their raw values unless asked: standardising the adding problem per step
# would turn its first marker (always at the same step) into a constant.
RAW_BY_DEFAULT = ("adding",)


def load(name: str, *, standardize: bool | None = None, **options) -> Dataset:
    """Load data set `name` (a key of `LOADERS`) with its `options`, as a `Dataset`.

    With `standardize=True` x is standardised per feature with training statistics (see
    `standardize`); y is never changed. The default (None) standardises every set except those
    of `RAW_BY_DEFAULT` (the adding problem). The options of each set are those of its loader, e.g.
    `load('moons', noise=0.2, seed=1)`, `load('mnist', root='/data/mnist', download=True)`;
    `help(LOADERS[name])` lists them. An unknown option raises TypeError naming it.
    """
    loader = get_loader(name)
    checks.known_options(f"data set {name!r}", options, inspect.signature(loader).parameters)
    dataset = loader(**options)
    if standardize is None:
        standardize = name not in RAW_BY_DEFAULT
    return _standardize(dataset) if standardize else dataset


__all__ = ["ADDING_MEAN_PREDICTION_MSE", "adding_problem", "class_split_tasks", "classification",
           "corrupt_labels", "Dataset", "degree_graphs", "degree_threshold", "get_loader", "load", "LOADERS",
           "make_tasks", "permute_graph_nodes", "permuted_tasks", "poly_true_function", "process_mesh",
           "process_shard", "random_graphs", "spread_over_processes",
           "RAW_BY_DEFAULT", "replace_labels", "standardize", "streams", "TASK_SPLITS", "validation_split"]
