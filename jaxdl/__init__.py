"""jaxdl: a JAX functional research codebase for the science of deep learning.

One convention, everywhere
--------------------------
- A model is a pure function ``apply_fn(params, x) -> outputs``; :func:`jaxdl.train.make_apply_fn`
  makes one from a Flax module and its model state (BatchNorm statistics, never perturbed).
- A *batch* is a pytree whose leaves share a leading example axis, usually ``(x_Nx..., y_N...)``;
  a whole data set given to an analysis tool is such a batch. A :class:`jaxdl.data.Dataset`
  (train and test splits as NumPy arrays) is called ``data``.
- A loss given as a callable is ``loss_fn(params, batch) -> scalar``, the mean over the batch,
  built by :func:`jaxdl.train.losses.make_loss_fn(apply_fn, loss_name)` or written by hand; a loss
  given by name is ``loss_name`` (``'cross_entropy'``, ``'mse'``, ``'half_mse'``).
- Every tool that walks a data set takes ``chunk_size`` (examples per chunk; None is one pass)
  and returns exact data-set means (:mod:`jaxdl.core.batching`); items evaluated together are
  ``points_per_chunk`` or ``probes_per_chunk``.
- Compile once: calling a tool or :func:`jaxdl.train.fit` again with the same model, shapes and
  options compiles nothing (:mod:`jaxdl.core.compiled`).
- Bad arguments raise ``ValueError`` naming the argument, the value and what was expected; an
  unknown option name raises ``TypeError`` (:mod:`jaxdl.core.checks`).
- Array names carry their shapes: ``x_NxD``, ``logits_BxC``, ``keys_K``, with B batch, N
  examples of a data set, C classes, D feature or flat-parameter dimension, S steps, K seeds,
  P grid points (or parameters in a flat vector ``v_P``), T curve or time points, R random
  probes, L sequence length, H heads.

Layers (imports point downwards only), one folder each
-----------------------------------------------------
::

    experiments/    the experiments, their runner (experiments/framework) and the benchmark
        |           (experiments/benchmark); never imported by jaxdl
    analysis/       landscape/, curvature/, ntk/, implicit, adversarial -- functions of apply_fn or
        |           loss_fn, params, batch; never a model family, never a course tool
    course/         regions, backprop, propagation, recurrence, features, warm_start, width_sweep --
        |           the course's model-specific tools; never an analysis tool
    train/          the fit loop, state and step, evaluation, probes, losses, optim, sam
        |
    data/, models/, plot/, core/
                    foundations: data sets and their readers, the model zoo with its activation
                    and initialiser registries, figures, and the core (checks, chunked means,
                    compile-once, meshes and placement, pytree algebra, Lanczos, io, checkpoints)

A test (``tests/test_layers.py``) reads every module's imports and holds each folder to this.
"""
from jaxdl import analysis, core, course, data, models, plot, train

__all__ = ["analysis", "core", "course", "data", "models", "plot", "train"]
