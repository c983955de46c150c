"""Data sets as NumPy arrays: the :class:`Dataset` record, ``load(name, **options)`` and its registry.

Embedded sets need no network and are deterministic given ``seed``
(:mod:`jaxdl.data.embedded`): ``digits``, ``mnist1d``, ``moons``, ``spirals``, ``teacher``,
``poly``. File sets ``mnist``, ``fashion_mnist`` and ``cifar10`` (:mod:`jaxdl.data.files`) are
read from a local folder by :mod:`jaxdl.datafiles` and downloaded only with ``download=True``.
The graph task :func:`degree_graphs` (:mod:`jaxdl.data.graphs`) is built by its own function,
because standardising a packed graph would scramble its adjacency.

Conventions: x is float32; classification y is int32 of shape (N,) with ``num_classes`` set;
regression y is float32 of shape (N, d_out) with ``num_classes=None``. Images are NHWC.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable

from jaxdl import checks
from jaxdl.data.dataset import Dataset, classification, standardize, streams
from jaxdl.data.embedded import (_load_digits, _load_mnist1d, _load_moons, _load_poly, _load_spirals, _load_teacher,
                                 poly_true_function)
from jaxdl.data.files import _load_cifar10, _load_fashion_mnist, _load_mnist
from jaxdl.data.graphs import degree_graphs, degree_threshold, permute_graph_nodes, random_graphs

_standardize = standardize  # `load` takes a flag of the same name

LOADERS: dict[str, Callable[..., Dataset]] = {
    "digits": _load_digits,
    "mnist1d": _load_mnist1d,
    "moons": _load_moons,
    "spirals": _load_spirals,
    "teacher": _load_teacher,
    "poly": _load_poly,
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


def load(name: str, *, standardize: bool = True, **options) -> Dataset:
    """Load data set `name` (a key of `LOADERS`) with its `options`, as a `Dataset`.

    With `standardize=True` x is standardised per feature with training statistics (see
    `standardize`); y is never changed. The options of each set are those of its loader, e.g.
    `load('moons', noise=0.2, seed=1)`, `load('mnist', root='/data/mnist', download=True)`;
    `help(LOADERS[name])` lists them. An unknown option raises TypeError naming it.
    """
    loader = get_loader(name)
    checks.known_options(f"data set {name!r}", options, inspect.signature(loader).parameters)
    dataset = loader(**options)
    return _standardize(dataset) if standardize else dataset


__all__ = ["Dataset", "LOADERS", "classification", "degree_graphs", "degree_threshold", "get_loader", "load",
           "permute_graph_nodes", "poly_true_function", "random_graphs", "standardize", "streams"]
