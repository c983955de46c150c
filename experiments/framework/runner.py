"""Running one experiment: its phases, its run directory, its claims, and the record that lets
an interrupted tour resume.

An experiment's `run(config, ctx)` calls `ctx.phase(name, fn, ...)` for each phase; a phase
function returns a `Phase` (tables, figures, arrays, numbers, and an optional `carry` for later
phases). The runner times each phase, saves its figures, arrays (results.npz) and numbers
(numbers.json) as soon as it finishes, so an interrupted run keeps what it finished, then
evaluates `claims(config, numbers)` and writes report.md, claims.json and, last, outcome.json:
the record of a complete run, keyed on the config and the code version.
"""
from __future__ import annotations

import dataclasses
import functools
import gc
import hashlib
import os
import tempfile
import time
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

import jax
import matplotlib.figure
import ml_collections
import numpy as np

from experiments.framework import claims as claims_lib
from experiments.framework import devices, report
from experiments.framework.config import config_hash, flatten_config, validate
from jaxdl import plot
from jaxdl.core import io

OUTCOME = "outcome.json"


@dataclasses.dataclass
class Phase:
    """What a phase hands the runner.

    Attributes:
      tables: name -> a markdown (or plain-text) table, printed and put in the report.
      figures: name -> a `matplotlib.figure.Figure` (saved as <name>.png) or the path
        of a figure already saved in the run directory.
      arrays: name -> array, saved in results.npz.
      numbers: name -> a JSON-able value (numbers, lists, dicts with string keys) that the
        claims read; saved in numbers.json.
      carry: anything later phases need (states, models, data); neither saved nor reported.
    """

    tables: dict[str, str] = dataclasses.field(default_factory=dict)
    figures: dict[str, Any] = dataclasses.field(default_factory=dict)
    arrays: dict[str, Any] = dataclasses.field(default_factory=dict)
    numbers: dict[str, Any] = dataclasses.field(default_factory=dict)
    carry: Any = None


class Context:
    """The runner's side of a run, handed to `run(config, ctx)`: `ctx.phase(...)` runs a phase;
    `ctx.logger` is the run's metrics logger (`logger.with_tags(run=...)` per training run);
    `ctx.run_dir` the `jaxdl.core.io.RunDir`."""

    def __init__(self, run_dir: io.RunDir, logger: io.MetricsLogger):
        self.run_dir, self.logger = run_dir, logger
        self.tables: dict[str, str] = {}
        self.figures: list[str] = []
        self.arrays: dict[str, np.ndarray] = {}
        self.numbers: dict[str, Any] = {}
        self.phase_seconds: dict[str, float] = {}
        self.current: str | None = None

    def phase(self, name: str, fn: Callable[..., Phase], *args, **kwargs) -> Phase:
        """Runs `fn(*args, **kwargs)` as the phase `name`, prints its seconds, and saves what it
        returned (figures, results.npz, numbers.json) before returning it."""
        if name in self.phase_seconds:
            raise ValueError(f"phase {name!r} ran twice")
        self.current, start = name, time.perf_counter()
        print(f"-- {name}", flush=True)
        result = fn(*args, **kwargs)
        if not isinstance(result, Phase):
            raise TypeError(f"phase {name!r} must return a Phase, got {type(result).__name__}")
        self._absorb(name, result)  # saving the figures is part of the phase's time
        self.phase_seconds[name] = time.perf_counter() - start
        print(f"-- {name}: {self.phase_seconds[name]:.1f} s", flush=True)
        self.current = None
        return result

    def _absorb(self, name: str, result: Phase) -> None:
        for kind in ("tables", "arrays", "numbers"):
            clash = set(getattr(result, kind)) & set(getattr(self, kind))
            if clash:
                raise ValueError(f"phase {name!r} returns {kind} {sorted(clash)} that an earlier phase returned")
        for figure_name, figure in result.figures.items():
            if isinstance(figure, matplotlib.figure.Figure):
                figure = plot.save_figure(figure, self.run_dir.figure_path(figure_name))
            path = os.fspath(figure)
            if not os.path.exists(path):
                raise FileNotFoundError(f"phase {name!r}: figure {figure_name!r} is not at {path}")
            self.figures.append(os.path.relpath(path, self.run_dir.root))
        self.tables.update(result.tables)
        self.numbers.update(io.to_builtin(result.numbers))
        io.save_json(os.path.join(self.run_dir.root, "numbers.json"), self.numbers)
        if result.arrays:
            self.arrays.update({k: np.asarray(v) for k, v in result.arrays.items()})
            self.run_dir.save_results(**self.arrays)


# ----------------------------------------------------------------------------- helpers for experiments


def seeds(config: ml_collections.ConfigDict, count: int | None = None) -> list[int]:
    """`count` (default `config.seeds`) consecutive seeds from `config.seed`."""
    return [int(config.seed) + i for i in range(int(config.seeds if count is None else count))]


def model_spec(name: str, **hparams: Any) -> dict:
    """A model in a config: `{"name": ..., "hparams": {...}}`, built by `build_model`."""
    return {"name": name, "hparams": hparams}


def build_model(spec: Mapping[str, Any], num_outputs: int, **overrides: Any):
    """The zoo model of a `model_spec` (a dict or ConfigDict), `overrides` replacing hparams."""
    from jaxdl.models import get_model  # noqa: PLC0415

    hparams = spec["hparams"]
    hparams = dict(hparams.to_dict() if hasattr(hparams, "to_dict") else hparams)
    return get_model(spec["name"], num_outputs=num_outputs, **{**hparams, **overrides})


# ----------------------------------------------------------------------------- the record of a run


def _source_files(package_dir: str) -> list[str]:
    files = []
    for root, dirs, names in os.walk(package_dir):
        dirs[:] = sorted(d for d in dirs if not d.startswith((".", "__pycache__")))
        files += [os.path.join(root, n) for n in sorted(names) if n.endswith(".py")]
    return files


@functools.cache
def code_version() -> str:
    """A digest of the jaxdl and experiments sources and the JAX version: a rerun of the tour
    reuses a run only when this and the config are unchanged."""
    import jax  # noqa: PLC0415

    import experiments  # noqa: PLC0415
    import jaxdl  # noqa: PLC0415

    digest = hashlib.sha256(jax.__version__.encode())
    for package in (jaxdl, experiments):
        root = os.path.dirname(package.__file__)
        for path in _source_files(root):
            digest.update(os.path.relpath(path, root).encode())
            with open(path, "rb") as f:
                digest.update(f.read())
    return digest.hexdigest()[:16]


def load_complete(workdir: str, config: ml_collections.ConfigDict) -> dict | None:
    """The outcome of a complete run in `workdir` for this `config` and code version, or None."""
    path = os.path.join(workdir, OUTCOME)
    if not os.path.exists(path):
        return None
    try:
        outcome = io.load_json(path)
    except (OSError, ValueError):
        return None
    if outcome.get("config_hash") != config_hash(config) or outcome.get("code_version") != code_version():
        return None
    return outcome


def writing_workdir(workdir: str) -> str:
    """`workdir` on process 0; on the other processes of a distributed run a private temporary
    directory, so that only process 0 writes the run directory."""
    import jax  # noqa: PLC0415

    if jax.process_index() == 0:
        return workdir
    return tempfile.mkdtemp(prefix=f"jaxdl-process{jax.process_index()}-")


# ----------------------------------------------------------------------------- running


def release_compiled_programs() -> None:
    """Drops JAX's in-memory caches of compiled programs (the tour calls it between experiments).

    Each compiled CPU program holds a few memory mappings while a cache holds it; over a long
    process they add up to the kernel's limit (vm.max_map_count, 65530 by default), past which
    XLA crashes inside a compile. An experiment's programs are built for its own models and shapes,
    so the next experiment seldom has one to reuse.
    """
    jax.clear_caches()
    gc.collect()


def run_experiment(module: ModuleType, config: ml_collections.ConfigDict, workdir: str, *, size: str = "default",
                   device_aware: bool = False, overridden: tuple[str, ...] = (),
                   sized: devices.DeviceDefaults | None = None) -> dict:
    """Runs one experiment into the run directory `workdir` and returns its outcome.

    Validates the config (`module.FIELDS`), sizes the device fields when `device_aware`
    (`experiments.framework.devices`; or takes `sized`, what `devices.for_run` already made of
    `config`), writes config.json before running, runs the phases,
    evaluates the claims, prints the tables, claims and checks, and writes report.md,
    claims.json and outcome.json (last: its presence marks the run complete).

    Returns:
      The outcome: a dict with name, description, size, config (flat), config_hash,
      code_version, tables, figures (relative to `workdir`), numbers, claims and checks (as
      dicts), summary, phase_seconds, wall_time_s, devices (a line, or None), and the
      `Claim`/`Check` objects under "claim_objects".
    """
    if sized is None:
        sized = devices.for_run(module, config, device_aware=device_aware, overridden=overridden)
    config = sized.config
    validate(module, config)
    if sized.device_aware:
        print(sized.line(), flush=True)
    run_dir = io.RunDir(writing_workdir(workdir))
    stale = os.path.join(run_dir.root, OUTCOME)
    if os.path.exists(stale):
        os.remove(stale)
    run_dir.save_config(config)
    start = time.perf_counter()
    with run_dir.logger() as logger:
        ctx = Context(run_dir, logger)
        module.run(config, ctx)
    items = list(module.claims(config, ctx.numbers))
    claims, checks = claims_lib.split(items)
    wall_time_s = time.perf_counter() - start
    summary = claims_lib.summary(claims, checks)
    outcome = {
        "name": module.NAME, "description": module.DESCRIPTION, "size": size, "config": flatten_config(config),
        "config_hash": config_hash(config), "code_version": code_version(), "tables": ctx.tables,
        "figures": ctx.figures, "numbers": ctx.numbers, "claims": [c.to_dict() for c in claims],
        "checks": [c.to_dict() for c in checks], "summary": summary, "phase_seconds": ctx.phase_seconds,
        "wall_time_s": wall_time_s, "devices": sized.line() if sized.device_aware else None,
    }
    _print(outcome)
    io.write_report(run_dir.report_path, module.NAME, report.sections(outcome))
    io.save_json(os.path.join(run_dir.root, "claims.json"),
                 {"claims": outcome["claims"], "checks": outcome["checks"], "summary": summary})
    io.save_json(stale, {k: v for k, v in outcome.items() if k != "numbers"})
    print(f"\n{module.NAME}: {report.verdict_line(summary)}; wall time {wall_time_s:.1f} s; "
          f"report {run_dir.report_path}", flush=True)
    return {**outcome, "claim_objects": items}


def _print(outcome: Mapping[str, Any]) -> None:
    for name, table in outcome["tables"].items():
        print(f"\n{name}\n{table}")
    print(f"\nClaims\n{report.claims_table(outcome['claims']) if outcome['claims'] else '(no claims)'}")
    if outcome["checks"]:
        print(f"\nChecks\n{report.checks_table(outcome['checks'])}")
