"""One-command experiments that reproduce published claims.

`EXPERIMENTS` lists the experiments of the tour (`python -m experiments`) in the order they run;
`python -m experiments.<name>` runs any experiment module, registered in the tour or not. What an
experiment declares, and the runner that does the rest (command line, validation, reports, claim
verdicts, the lock, resuming), live in `experiments.framework`; the benchmark, with its helpers, in
`experiments.benchmark`.
"""
from __future__ import annotations

import importlib
from types import ModuleType

EXPERIMENTS: tuple[str, ...] = ("parametrization", "linear_regions", "backprop", "initialisation",
                                  "optimizers", "architectures",
                                  "rnn_gradients", "loss_landscape", "landscape_depth", "sharp_flat",
                                  "hessian_spectrum",
                                  "implicit_regularization", "ntk", "ntk_images",
                                  "generalization", "adversarial", "continual")


def get_experiment(name: str) -> ModuleType:
    """Imports the experiment module `experiments.<name>`.

    Raises:
      ValueError: no such experiment module; the message lists the registered ones.
    """
    unknown = ValueError(f"unknown experiment {name!r}; choices: {', '.join(EXPERIMENTS)}")
    if not name.isidentifier() or name.startswith("_") or name == "framework":
        raise unknown
    module_name = f"{__name__}.{name}"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name != module_name:
            raise  # The experiment exists but one of its imports is missing.
        raise unknown from None
    if not (hasattr(module, "run") and hasattr(module, "get_config")):
        raise unknown
    return module
