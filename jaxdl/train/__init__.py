"""Training: a pure jitted train step, whole epochs as one ``lax.scan``, seeds as one ``vmap``.

The pieces, from small to large:

- state and step (:mod:`jaxdl.train.state`): :class:`TrainState` (a plain pytree), the model
  as a pure ``apply_fn(params, x)`` (:func:`make_apply_fn`), and
  :func:`make_train_step` -- ``train_step(state, (x_B, y_B)) -> (state, metrics)``, pure;
- evaluation (:mod:`jaxdl.train.evaluation`): :func:`evaluate` -- data-set means of the loss
  (and accuracy) of any ``apply_fn``, accumulated over chunks of ``chunk_size`` examples;
- the fit loop (:mod:`jaxdl.train.loop`): :func:`fit` -- epochs of shuffled minibatches,
  each epoch one compiled ``lax.scan`` over a permutation of the training set kept on the
  device, batches sharded over all local devices (one device is the same code path), progress
  bar, metrics log, Orbax checkpoints and resume, and a loud stop on a non-finite loss;
  :func:`fit_seeds` -- the same program ``vmap``ped over seeds (init and data order differ).
  Both return the state they started from beside the trained one, and compile once per model,
  transformation, shapes and options;
- placement (:mod:`jaxdl.train.placement`): the epoch plan and the meshes (:func:`make_plan`,
  :func:`data_mesh`, :func:`seeds_mesh`), and :func:`place_data`;
- probes (:mod:`jaxdl.train.probes`): scalars of (params, data) -- a loss, the top Hessian
  eigenvalue (:class:`jaxdl.curvature.SharpnessProbe`) -- measured every k steps inside the
  compiled training program (``fit(..., probes=..., probe_every=k)``).
"""
from jaxdl.train.evaluation import evaluate
from jaxdl.train.loop import FitResult, build_block_programs, build_epoch_programs, epoch_order, fit, fit_seeds
from jaxdl.train.placement import data_mesh, make_plan, place_data, seeds_mesh
from jaxdl.train.probes import LossProbe
from jaxdl.train.state import (ApplyFn, TrainState, apply_model, init_state, init_states, make_apply_fn,
                               make_train_step, seed_streams, unstack)

__all__ = [
    "evaluate",
    "FitResult", "build_block_programs", "build_epoch_programs", "LossProbe", "data_mesh", "epoch_order", "fit",
    "fit_seeds", "make_plan", "place_data", "seeds_mesh",
    "ApplyFn", "TrainState", "apply_model", "init_state", "init_states", "make_apply_fn", "make_train_step",
    "seed_streams", "unstack",
]
