"""The experiment framework: one import for every experiment module.

An experiment is a module `experiments/<name>.py` that defines

    NAME: str                  # the module name, e.g. "parametrization"
    DESCRIPTION: str           # one line
    get_config(size="default") -> ml_collections.ConfigDict   # sizes "quick", "default", "full"
    run(config, run_dir) -> dict    # run_dir: a jaxdl.io.RunDir; the result must hold
                                    # "tables": {name: str} and "figures": [paths]
    claims(result) -> list[Claim]
    main(argv=None)            # common.experiment_main(sys.modules[__name__], argv)
    DEVICE_FIELDS: dict        # optional: dotted config field -> "seeds", "examples_per_chunk"
                               # or "points_per_chunk", sized for the devices in a device-aware
                               # run (`experiments.device_defaults`)

`experiment_main` parses `--size`, `--workdir` and `--config.<field>=value`, runs the
experiment, prints its tables and claim table, and writes config.json, report.md and
claims.json into the run directory. A device-aware run (`--size full`, or
`--config.device_aware=true`) first sizes the `DEVICE_FIELDS` for the devices it finds.

The names live in `experiments.reporting` (claims, tables, the report's sections),
`experiments.cli` (sizes, config checks, the command line, running one experiment) and
`experiments.device_defaults` (the device-aware sizes).
"""
from __future__ import annotations

from experiments.cli import (SIZES, add_distributed_flag, apply_overrides, check_size, experiment_main,
                             initialize_distributed, parse_args, require, run_experiment, writing_workdir)
from experiments.device_defaults import DeviceDefaults, resolve_device_defaults
from experiments.reporting import Claim, PhaseTimer, claims_table, flatten_config, format_table, report_sections

__all__ = [
    "SIZES",
    "add_distributed_flag",
    "initialize_distributed",
    "writing_workdir",
    "Claim",
    "DeviceDefaults",
    "PhaseTimer",
    "apply_overrides",
    "check_size",
    "claims_table",
    "experiment_main",
    "flatten_config",
    "format_table",
    "parse_args",
    "report_sections",
    "require",
    "resolve_device_defaults",
    "run_experiment",
]
