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
  and returns exact data-set means (:mod:`jaxdl.core.batching`); other items evaluated together
  are ``<items>_per_chunk`` (``points_per_chunk``, ``probes_per_chunk``, ``runs_per_chunk``,
  ``eps_per_chunk``, ``rows_per_chunk``). ``batch_size`` is only ever a training batch: the
  minibatch of :func:`jaxdl.train.fit` and the functions that train, or the BatchNorm batch of
  :func:`jaxdl.analysis.landscape.recompute_batch_stats`, which changes the statistics.
- Step counts are ``num_steps`` (exactly that many) or ``max_steps`` (at most, with a stopping
  rule); a function named for one end of a spectrum (``hessian_top_eigenvalues``,
  ``hessian_bottom_eigenvalues``) takes no ``which``; the activation with no non-linearity is
  ``'identity'`` (never ``'linear'``).
- Compile once: calling a tool or :func:`jaxdl.train.fit` again with the same model, shapes and
  options compiles nothing (:mod:`jaxdl.core.compiled`).
- Bad arguments raise ``ValueError`` naming the argument, the value and what was expected; an
  unknown option name raises ``TypeError`` (:mod:`jaxdl.core.checks`).

Shape letters
-------------
Array names carry their shapes: ``x_NxD``, ``logits_BxC``, ``keys_K`` (a digit is a literal size:
``basis_2xD``). Each letter has one meaning across the library; ``tests/test_vocabulary.py`` reads
this table and holds every public signature to it::

    A  activation regions of a ReLU network, one activation pattern each
    B  examples of a batch: a minibatch, or a chunk of a data set
    C  classes
    D  feature dimension: of an input, a token, a graph node or an attention head
    E  edges: of a graph, or the boundary segments of a planar partition
    F  features of a feature map (the columns of a design matrix ``phi_NxF``)
    G  points of a 1-D grid or sweep: eps values, feature counts, radii, start points
    H  attention heads
    I  points along the first axis of a 2-D grid (x)
    J  points along the second axis of a 2-D grid (y)
    K  seeds, one run each (``keys_K``)
    L  sequence length: the positions of a sequence
    M  layers of a deep network (its weight matrices)
    N  examples of a data set (each data set its own N)
    O  outputs of a model: output units, regression targets
    P  parameters, flattened into one vector (``v_P``)
    Q  spectral modes: the eigenpairs found, the singular modes of a linear task
    R  random probes: Hutchinson vectors, the random starts of stochastic Lanczos runs
    S  steps: of training, of Lanczos, of a recurrence
    T  curve or time points: values recorded along a curve or over training
    U  hidden units of a layer
    V  vertices: the nodes of a graph, the corners of a polygon
    W  widths of a width sweep

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
