"""Warm starting: Ash & Adams' shrink-and-perturb initialisation.

Ash & Adams 2020 ("On Warm-Starting Neural Network Training", NeurIPS) find that a network
trained on part of the data and then on all of it (a warm start) generalises worse than one
trained on all of it from scratch, and that starting the second round from

    theta <- shrink * theta + noise_scale * epsilon

closes much of the gap: the shrink (a factor below 1) keeps the learned function's ranking
of classes while raising its loss, so the examples it already fits pull on the weights again,
and the noise restores the diversity of a fresh start. The paper writes epsilon as Gaussian
noise; the authors' released code draws it from the model's own initialiser (a freshly
initialised network, so every layer's noise has its initialisation scale), with shrink 0.4
and noise scale 0.1 as its defaults. ``shrink=0, noise_scale=1`` with ``init_fn`` is then
exactly a fresh start, and ``shrink=1, noise_scale=0`` exactly a warm start.
"""
from __future__ import annotations

from typing import Any, Callable

import jax

from jaxdl.core import checks, tree

__all__ = ["shrink_perturb"]

PyTree = Any


def shrink_perturb(params: PyTree, key: jax.Array, shrink: float, noise_scale: float,
                   init_fn: Callable[[jax.Array], PyTree] | None = None) -> PyTree:
    """``shrink * params + noise_scale * epsilon`` (Ash & Adams 2020), leaf by leaf.

    Args:
      params: the parameter pytree theta (e.g. trained on the first part of the data).
      key: PRNG key of the noise epsilon.
      shrink: lambda in [0, 1].
      noise_scale: sigma >= 0.
      init_fn: ``init_fn(key) -> params``, a fresh draw from the model's initialiser, used as
        epsilon (the authors' practice); default None draws epsilon i.i.d. N(0, 1) per entry
        (:func:`jaxdl.core.tree.random_like`), the paper's "Gaussian noise" of scale sigma.

    Returns:
      a pytree with the structure, shapes and dtypes of ``params``. Jit-able (and ``vmap``-able
      over ``params`` and ``key``) for Python-number ``shrink`` and ``noise_scale``.

    Raises:
      ValueError naming ``shrink`` or ``noise_scale`` when out of range, or ``init_fn`` when
      its draw does not have the structure and shapes of ``params``.
    """
    shrink = checks.number("shrink", shrink, minimum=0.0, inclusive=True, maximum=1.0)
    noise_scale = checks.number("noise_scale", noise_scale, minimum=0.0, inclusive=True)
    if noise_scale == 0.0:
        return tree.scale(shrink, params)  # nothing to draw
    if init_fn is None:
        noise = tree.random_like(key, params, "normal")
    else:
        noise = init_fn(key)
        checks.same_structure("init_fn(key)", noise, params)
    # Dtypes of params are kept: the Python-float factors are weakly typed.
    return tree.axpy(noise_scale, noise, tree.scale(shrink, params))
