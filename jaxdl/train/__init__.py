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
- the block runner (:mod:`jaxdl.train.driver`): :func:`run_blocks`, the one loop under every
  trainer (history, the non-finite stop, evaluation cadence, logging, progress, checkpoints and
  resume, placement), with the epoch plan (:func:`make_plan`, an :class:`EpochPlan`) and the
  minibatch order (:func:`epoch_order`); the meshes themselves live in :mod:`jaxdl.core.meshes`;
- objectives and optimizers: :mod:`jaxdl.train.losses` (losses by name, ``make_loss_fn``),
  :mod:`jaxdl.train.optim` (``get_optimizer``: GD, SGD, momentum, RMSprop, Adam, SAM, clipping) and
  :mod:`jaxdl.train.sam` (sharpness-aware minimisation as an Optax transformation);
- probes (:mod:`jaxdl.train.probes`): scalars of (params, data) -- a loss, the top Hessian
  eigenvalue (:class:`jaxdl.analysis.curvature.SharpnessProbe`) -- measured every k steps inside the
  compiled training program (``fit(..., probes=..., probe_every=k)``).
"""
from jaxdl.train.evaluation import evaluate
from jaxdl.train import losses, optim, sam
from jaxdl.train.driver import EpochPlan, epoch_order, make_plan, run_blocks
from jaxdl.train.loop import (FitOptions, FitResult, build_block_programs, build_epoch_programs, fit, fit_seeds,
                              train_model)
from jaxdl.train.probes import LossProbe
from jaxdl.train.state import (ApplyFn, TrainState, apply_model, init_state, init_states, make_apply_fn,
                               make_train_step, seed_streams, takes_train_flag, unstack)

__all__ = [
    "evaluate",
    "losses", "optim", "sam",
    "EpochPlan", "epoch_order", "make_plan", "run_blocks",
    "FitOptions", "FitResult", "build_block_programs", "build_epoch_programs", "LossProbe", "fit", "fit_seeds",
    "train_model",
    "ApplyFn", "TrainState", "apply_model", "init_state", "init_states", "make_apply_fn", "make_train_step",
    "seed_streams", "takes_train_flag", "unstack",
]
