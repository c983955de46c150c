"""Helpers shared by the test modules: flattening pytrees, random parameters for Flax modules,
running code on several (forced host) devices in a subprocess, and counting compilations.

``tests/`` has no ``__init__.py``; pytest puts it on ``sys.path``, so tests import this module
as ``from helpers import ...``.
"""
from __future__ import annotations

import contextlib
import json
import pathlib
import re
import subprocess
import threading
from collections.abc import Iterator
from typing import Any

import jax
import numpy as np
import pytest

from experiments.benchmark.devices import run_with_devices

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent


def flat(tree) -> np.ndarray:
    """Every leaf of ``tree`` raveled and concatenated, in ``jax.tree.leaves`` order, as one
    float64 NumPy vector (independent of ``jaxdl.core.tree.flatten``, which the tests check)."""
    leaves = [np.ravel(np.asarray(leaf, np.float64)) for leaf in jax.tree.leaves(tree)]
    return np.concatenate(leaves) if leaves else np.zeros(0)


def random_params(model, *inputs, seed: int = 0, scale: float = 1.0, **kwargs):
    """Float32 parameters with the structure ``model.init(key, *inputs, **kwargs)["params"]``
    would have, every entry drawn from N(0, scale^2) by ``np.random.default_rng(seed)``.

    The structure comes from ``jax.eval_shape`` (nothing is compiled), and biases are random
    too, so a forward pass that drops a term fails.
    """
    shapes = jax.eval_shape(model.init, jax.random.key(0), *inputs, **kwargs)["params"]
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda v: (rng.normal(size=v.shape) * scale).astype(np.float32), shapes)


# ----------------------------------------------------------------------------- several devices

def run_on_devices(code: str, num_devices: int = 4, timeout: float = 300.0) -> str:
    """Runs ``code`` with ``python -c`` in a fresh interpreter that sees ``num_devices`` CPU
    devices, from the repository root (:func:`experiments.benchmark.devices.run_with_devices`),
    and returns its stdout; fails the calling test with the end of stderr when the process exits
    non-zero or runs past ``timeout`` seconds.

    The device count is an XLA flag read once, when JAX starts, hence the subprocess.
    """
    try:
        proc = run_with_devices(code, num_devices, timeout)
    except subprocess.TimeoutExpired as error:
        stderr = error.stderr.decode(errors="replace") if isinstance(error.stderr, bytes) else error.stderr or ""
        pytest.fail(f"subprocess on {num_devices} devices ran past {timeout} s:\n{stderr[-3000:]}")
    if proc.returncode != 0:
        pytest.fail(f"subprocess on {num_devices} devices exited with {proc.returncode}:\n{proc.stderr[-3000:]}")
    return proc.stdout


# A toy classification problem for the subprocess scripts (paste with ``+``): ``x``, ``y``, a
# Dataset ``data``, an MLP ``model``, Adam ``tx`` and the fit ``kwargs`` (needs ``np``, ``optim``).
TOY_FIT_PROBLEM = """
from jaxdl.data import Dataset
from jaxdl.models import get_model

rng = np.random.default_rng(0)
x = rng.standard_normal((96, 6)).astype(np.float32)
y = rng.integers(0, 3, 96).astype(np.int32)
data = Dataset(x[:64], y[:64], x[64:], y[64:], 3, "toy")
model = get_model("mlp", widths=(8,), num_outputs=3)
tx = optim.get_optimizer("adam", 0.01)
kwargs = dict(epochs=3, batch_size=16, progress=False)
"""


def assert_config_error_names_field(module, size: str, field: str, value: Any) -> None:
    """The experiment ``module``'s declared checks reject its ``size`` config with the dotted
    ``field`` set to ``value``, with a ``ValueError`` that names the field."""
    from experiments import framework as fw  # noqa: PLC0415 -- only these tests need the runner

    config = fw.config_for(module, size)
    fw.config.set_field(config, field, value)
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        fw.validate(module, config)


def json_result(stdout: str, tag: str = "RESULT") -> Any:
    """The JSON payload of the last line of ``stdout`` that starts with ``tag`` and a space
    (how the subprocess scripts report back, next to whatever else JAX prints)."""
    prefix = tag + " "
    lines = [line for line in stdout.splitlines() if line.startswith(prefix)]
    assert lines, f"no {prefix!r} line in the subprocess output:\n{stdout[-3000:]}"
    return json.loads(lines[-1][len(prefix):])


# ----------------------------------------------------------------------------- compile counting

# JAX records this event once for every program it lowers to MLIR: each jit cache miss and each
# eager op run for the first time with new shapes, also when the persistent compilation cache
# (tests/conftest.py) then finds the compiled binary. A jit cache hit records nothing.
_LOWERING_EVENT = "/jax/core/compile/jaxpr_to_mlir_module_duration"
_lock = threading.Lock()
_lowerings_so_far = 0
_listener_registered = False


def _on_event_duration(event: str, duration_secs: float, **kwargs) -> None:
    global _lowerings_so_far
    if event == _LOWERING_EVENT:
        with _lock:
            _lowerings_so_far += 1


def _lowerings() -> int:
    with _lock:
        return _lowerings_so_far


class CompileCount:
    """The number of programs JAX has lowered since the ``count_compiles`` block was entered
    (frozen when it exits)."""

    def __init__(self):
        self._start = _lowerings()
        self._stop: int | None = None

    @property
    def count(self) -> int:
        stop = self._stop if self._stop is not None else _lowerings()
        return stop - self._start

    def __repr__(self) -> str:
        return f"CompileCount(count={self.count})"


@contextlib.contextmanager
def count_compiles() -> Iterator[CompileCount]:
    """Counts the XLA programs JAX builds inside the block::

        with count_compiles() as compiles:
            f(x)
        assert compiles.count == 0  # f was already compiled for these shapes
    """
    global _listener_registered
    with _lock:
        # One listener for the session; each block only reads the running total, so blocks nest.
        if not _listener_registered:
            jax.monitoring.register_event_duration_secs_listener(_on_event_duration)
            _listener_registered = True
    counter = CompileCount()
    try:
        yield counter
    finally:
        counter._stop = _lowerings()


def numbers_in(text: str) -> list[float]:
    """Every number written in ``text`` (integers, decimals, exponents, signs), in order:
    ``numbers_in("3 of 1.5e-3, -2")`` is ``[3.0, 0.0015, -2.0]``."""
    return [float(v) for v in re.findall(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?", text)]
