"""The experiment framework: what an experiment declares, and the runner that does the rest.

An experiment is a module `experiments/<name>.py` that defines

    NAME = "parametrization"                 # the module name
    DESCRIPTION = "one line"
    def get_config() -> ml_collections.ConfigDict          # the default size
    SIZES = {"quick": {...}, "full": {...}}  # dotted field -> value, per size (config.SIZES)
    FIELDS = {"epochs": positive_int, ...}   # declared field checks (config.validate)
    def run(config, ctx) -> None             # ctx.phase(name, fn, ...) per phase; fn returns a Phase
    def claims(config, numbers) -> list      # Claim and Check objects from the phases' numbers
    main = entry_point(__name__)             # the command line, then: if __name__ == "__main__": main()
    DEVICE_FIELDS = {...}                    # optional: fields sized for the devices (devices.py)

The runner owns the rest: the command line (`--size`, `--workdir`, `--config.<field>=value`,
one-line errors), validation, the run directory (config.json, metrics.jsonl, results.npz,
numbers.json, figures, report.md, claims.json, outcome.json), timing, claim evaluation under
`../shared/CLAIMS.md`'s protocol (`claims`), the checks table, the lock (`lock`) and resuming an
interrupted tour (`tour`).
"""
from __future__ import annotations

from experiments.framework.claims import HELD, INCONCLUSIVE, NOT_HELD, VERDICTS, Check, Claim
from experiments.framework.cli import (add_distributed_flag, apply_overrides, entry_point, experiment_main,
                                       initialize_distributed, parse_args)
from experiments.framework.config import (SIZES, Expect, at_least, check_size, config_for, expect,
                                          field_value, flatten_config, increasing, non_negative,
                                          non_negative_int, one_of, positive, positive_int, positive_ints,
                                          positives, probability, subset_of, validate)
from experiments.framework.report import checks_table, claims_table, format_table
from experiments.framework.runner import (Context, Phase, build_model, model_spec, run_experiment, seeds,
                                          writing_workdir)

__all__ = [
    "HELD", "INCONCLUSIVE", "NOT_HELD", "SIZES", "VERDICTS",
    "Check", "Claim", "Context", "Expect", "Phase",
    "add_distributed_flag", "apply_overrides", "at_least", "build_model", "check_size", "checks_table",
    "claims_table", "config_for", "entry_point", "expect", "experiment_main", "field_value", "flatten_config", "format_table",
    "increasing", "initialize_distributed", "model_spec", "non_negative", "non_negative_int", "one_of",
    "parse_args", "positive", "positive_int", "positive_ints", "positives", "probability", "run_experiment",
    "seeds", "subset_of", "validate", "writing_workdir",
]
