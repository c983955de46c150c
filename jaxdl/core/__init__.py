"""Foundations: the pieces every other layer stands on, each the one home of its idea.

- :mod:`~jaxdl.core.checks` -- argument checks and the library's one error style;
- :mod:`~jaxdl.core.batching` -- a function over a data set a chunk at a time (exact means);
- :mod:`~jaxdl.core.compiled` -- compile once for functions whose arguments hold callables;
- :mod:`~jaxdl.core.meshes` -- meshes and placement over one device or many;
- :mod:`~jaxdl.core.tree` -- pytree linear algebra (parameter-space arithmetic);
- :mod:`~jaxdl.core.linalg` -- Lanczos, Ritz pairs and tridiagonal matrices of any symmetric operator;
- :mod:`~jaxdl.core.io` -- the run directory, written atomically;
- :mod:`~jaxdl.core.checkpoint` -- Orbax checkpoints of a pytree;
- :mod:`~jaxdl.core.fits` and :mod:`~jaxdl.core.ranks` -- slopes and crossings read off curves;
  rank correlations over a grid of runs (Kendall's tau, Jiang et al.'s granulated tau, bootstrap).

Nothing here imports another layer of jaxdl.
"""
from jaxdl.core import batching, checkpoint, checks, compiled, fits, io, linalg, meshes, ranks, tree

__all__ = ["batching", "checkpoint", "checks", "compiled", "fits", "io", "linalg", "meshes", "ranks", "tree"]
