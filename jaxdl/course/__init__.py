"""The course's model-specific tools: each studies one family of the zoo (or a closed form).

- :mod:`~jaxdl.course.regions` -- exact linear regions of a ReLU network on a 2-D input plane;
- :mod:`~jaxdl.course.backprop` -- the delta rule of an MLP written out (Rumelhart et al. 1986);
- :mod:`~jaxdl.course.propagation` -- signal propagation at initialisation, deep linear dynamics,
  residual branches;
- :mod:`~jaxdl.course.recurrence` -- gradients through time: the cliff, clipping, Jacobian norms
  (Pascanu et al. 2013);
- :mod:`~jaxdl.course.features` -- regression on fixed features in closed form;
- :mod:`~jaxdl.course.warm_start` -- shrink-and-perturb (Ash & Adams 2020);
- :mod:`~jaxdl.course.width_sweep` -- masked MLP width sweeps as one vmapped training program.

These may use the model zoo and training; they never import :mod:`jaxdl.analysis`.
"""
from jaxdl.course import backprop, features, propagation, recurrence, regions, warm_start, width_sweep

__all__ = ["backprop", "features", "propagation", "recurrence", "regions", "warm_start", "width_sweep"]
