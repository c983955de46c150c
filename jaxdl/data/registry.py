"""The data-set registry: ``load(name, **options)`` and the loader behind each name.

Each name maps to the loader of its module (embedded sets, the adding problem, file sets);
:func:`load` checks the options against the loader's signature and standardises the inputs.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable

from jaxdl.core import checks
from jaxdl.data.dataset import Dataset, standardize
from jaxdl.data.embedded import _load_digits, _load_mnist1d, _load_moons, _load_poly, _load_spirals, _load_teacher
from jaxdl.data.files import _load_cifar10, _load_fashion_mnist, _load_mnist
from jaxdl.data.sequences import _load_adding

__all__ = ["LOADERS", "RAW_BY_DEFAULT", "get_loader", "load"]

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
