"""Optimizers as Optax chains: ``get_optimizer(name, learning_rate, ...)``.

Update rules (course notation, g the gradient, eta the learning rate):
- gd / sgd: theta <- theta - eta g (gd is the same rule used with the full batch);
- momentum / nesterov: heavy-ball and Nesterov momentum (Polyak 1964; Sutskever et al. 2013);
- rmsprop: S <- b S + (1 - b) g^2, theta <- theta - eta g / sqrt(S + eps) (Tieleman & Hinton 2012);
- adam / adamw: Kingma & Ba 2015 with bias correction; adamw decouples weight decay
  (Loshchilov & Hutter 2019);
- sam: any of the above (``base``) fed the gradient at w + rho g / ||g|| (Foret et al. 2021,
  :mod:`jaxdl.train.sam`); its ``update`` needs ``grad_fn``, which ``jaxdl.train`` passes.

Options shared by every optimizer: global-norm clipping g <- c g / ||g|| when ||g|| >= c
(Pascanu et al. 2013), the course's L2 penalty gamma ||theta||^2 (its gradient 2 gamma theta is
added to g before the optimizer sees it) and a learning-rate schedule.

``get_optimizer`` returns the same transformation object for the same arguments, so that
programs compiled for it (:func:`jaxdl.train.fit`) are reused when it is asked for again.
"""
from __future__ import annotations

import functools
from typing import Callable, Sequence

import optax

from jaxdl.core import checks
from jaxdl.train.sam import sam

__all__ = ["OPTIMIZERS", "WRAPPERS", "SCHEDULES", "make_schedule", "get_optimizer"]

# Update rules of one gradient; WRAPPERS feed one of them a different gradient.
OPTIMIZERS = ("gd", "sgd", "momentum", "nesterov", "rmsprop", "adam", "adamw")
WRAPPERS = ("sam",)
SCHEDULES = ("constant", "cosine", "step")


def make_schedule(
    learning_rate: float,
    schedule: str = "constant",
    total_steps: int | None = None,
    warmup_steps: int = 0,
    boundaries: Sequence[float] = (0.5, 0.75),
    decay_factor: float = 0.1,
) -> optax.Schedule:
    """Learning rate as a function of the step.

    ``cosine`` decays from ``learning_rate`` to 0; ``step`` multiplies it by ``decay_factor`` at
    each boundary. A linear warm-up from 0 over ``warmup_steps`` may precede either; the decay
    then spans the remaining ``total_steps - warmup_steps`` steps and the boundaries are
    fractions of that span.
    """
    checks.number("learning_rate", learning_rate)
    checks.one_of("schedule", schedule, SCHEDULES)
    checks.integer("total_steps", total_steps, allow_none=schedule == "constant")
    checks.integer("warmup_steps", warmup_steps, minimum=0)
    decay_steps = None if total_steps is None else max(total_steps - warmup_steps, 1)
    if schedule == "constant":
        main = optax.constant_schedule(learning_rate)
    elif schedule == "cosine":
        main = optax.cosine_decay_schedule(learning_rate, decay_steps)
    else:
        main = optax.piecewise_constant_schedule(
            learning_rate, {int(b * decay_steps): decay_factor for b in boundaries}
        )
    if warmup_steps == 0:
        return main
    warmup = optax.linear_schedule(0.0, learning_rate, warmup_steps)
    return optax.join_schedules([warmup, main], [warmup_steps])


def get_optimizer(
    name: str,
    learning_rate: float | Callable,
    *,
    momentum: float = 0.9,
    b1: float = 0.9,
    b2: float = 0.999,
    decay: float = 0.9,
    eps: float = 1e-8,
    weight_decay: float = 1e-4,
    l2: float = 0.0,
    clip_norm: float | None = None,
    schedule: str = "constant",
    total_steps: int | None = None,
    warmup_steps: int = 0,
    base: str = "sgd",
    rho: float = 0.05,
) -> optax.GradientTransformation:
    """Build an Optax chain: [clip] -> [L2 gradient 2 l2 theta] -> optimizer(schedule).

    ``name="sam"`` wraps the chain of ``base`` (built with every other option) in
    :func:`jaxdl.train.sam.sam`: clipping and the L2 term then act on the SAM gradient.

    Args:
      name: one of ``OPTIMIZERS`` or ``WRAPPERS``.
      learning_rate: positive float, or an Optax schedule (then ``schedule`` is ignored).
      momentum: momentum coefficient for momentum/nesterov.
      b1, b2, eps: Adam moments and epsilon; ``decay``/``eps`` for RMSprop.
      weight_decay: decoupled decay for adamw only.
      l2: gamma in the penalty gamma ||theta||^2 (coupled, applied to every parameter).
      clip_norm: global-norm clipping threshold, or None.
      schedule, total_steps, warmup_steps: see :func:`make_schedule`.
      base: for sam, the optimizer in ``OPTIMIZERS`` that takes the SAM gradient.
      rho: for sam, the perturbation radius (> 0).
    """
    arguments = (name, learning_rate, momentum, b1, b2, decay, eps, weight_decay, l2, clip_norm, schedule,
                 total_steps, warmup_steps, base, rho)
    try:
        hash(arguments)
    except TypeError:  # e.g. a learning rate held in a JAX array: built afresh, not shared
        return _build_optimizer.__wrapped__(*arguments)
    return _build_optimizer(*arguments)


@functools.cache
def _build_optimizer(name, learning_rate, momentum, b1, b2, decay, eps, weight_decay, l2, clip_norm, schedule,
                     total_steps, warmup_steps, base, rho) -> optax.GradientTransformation:
    if name == "sam":
        checks.one_of("base", base, OPTIMIZERS)
        checks.number("rho", rho)
        return sam(_build_optimizer(base, learning_rate, momentum, b1, b2, decay, eps, weight_decay, l2, clip_norm,
                                    schedule, total_steps, warmup_steps, "sgd", rho), rho)
    checks.one_of("name", name, OPTIMIZERS + WRAPPERS)
    if callable(learning_rate):
        lr = learning_rate
    else:
        lr = make_schedule(learning_rate, schedule, total_steps, warmup_steps)
    checks.number("l2", l2, inclusive=True)
    checks.number("clip_norm", clip_norm, allow_none=True)
    checks.number("momentum", momentum, inclusive=True)
    if momentum >= 1:
        checks.fail("momentum", momentum, "a number in [0, 1)")

    if name in ("gd", "sgd"):
        base = optax.sgd(lr)
    elif name == "momentum":
        base = optax.sgd(lr, momentum=momentum)
    elif name == "nesterov":
        base = optax.sgd(lr, momentum=momentum, nesterov=True)
    elif name == "rmsprop":
        base = optax.rmsprop(lr, decay=decay, eps=eps, eps_in_sqrt=True)
    elif name == "adam":
        base = optax.adam(lr, b1=b1, b2=b2, eps=eps)
    else:
        base = optax.adamw(lr, b1=b1, b2=b2, eps=eps, weight_decay=weight_decay)

    chain = []
    if clip_norm is not None:
        chain.append(optax.clip_by_global_norm(clip_norm))
    if l2 > 0:
        chain.append(optax.add_decayed_weights(2.0 * l2))
    chain.append(base)
    return optax.chain(*chain)
