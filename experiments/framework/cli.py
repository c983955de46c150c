"""The command line of one experiment.

    python -m experiments.<name> [--size quick|default|full] [--workdir DIR] [--config.<field>=value ...]

`--size` picks the experiment's config, `--workdir` the run directory (default `runs/<NAME>`);
each `--config.<field>=value` (or `--config.<field> value`, anywhere on the line) overrides one
field, parsed by `ml_collections.config_flags` as the type of the field's default. `--help`
lists every field of the chosen size's config with its default.

One more field belongs to the runner, not to the experiment's config: `device_aware` (True for
`--size full`, else False; `--config.device_aware=true|false`). A device-aware run sizes the
fields the experiment declares in `DEVICE_FIELDS` (seed counts, evaluation chunks) for the
devices it finds, after `jax.distributed.initialize` and before `run`, leaving alone the fields
given on the command line (`experiments.framework.devices`); config.json holds what `run` got.

Every value is checked against the experiment's declared `FIELDS` before anything runs: a bad
one is a usage error that names the field (exit status 2), as an unknown field is.
"""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from types import ModuleType

import ml_collections
from absl import flags
from ml_collections import config_flags

from experiments.framework.config import SIZES, config_for, flatten_config, validate
from experiments.framework.config import field_value as _field_default
from experiments.framework.runner import run_experiment

_OVERRIDE_PREFIX = "--config."


# ----------------------------------------------------------------------------- overrides


def _override_fields(arguments: Sequence[str]) -> list[str]:
    """The dotted field names of the `--config.<field>[=value]` arguments, in order."""
    return [argument.split("=", 1)[0][len(_OVERRIDE_PREFIX):]
            for argument in arguments if argument.startswith(_OVERRIDE_PREFIX)]


def _check_fields(config: ml_collections.ConfigDict, fields: Sequence[str]) -> None:
    """Raises `ValueError` naming a field that cannot be overridden.

    config_flags would reject these too, but an unknown field only as a bare `AttributeError`
    with the last part of its name, and a None-valued one with a dump of the supported types.
    """
    for field in fields:
        try:
            default = _field_default(config, field)
        except LookupError:
            known = ", ".join(flatten_config(config))
            raise ValueError(f"unknown config field {field!r}; known fields: {known}") from None
        if default is None:
            # config_flags takes the type to parse a value as from the field's default.
            raise ValueError(f"--config.{field}: a field whose default is None cannot be set on "
                             "the command line; give it a typed default in get_config")


def apply_overrides(config: ml_collections.ConfigDict, arguments: Sequence[str],
                    prog: str = "experiment") -> ml_collections.ConfigDict:
    """Sets the `--config.<field>=value` / `--config.<field> value` arguments on `config`.

    `config` is changed in place and returned. Each value is parsed as the type of the field's
    default: bool takes true/false/1/0 (after '='); a tuple takes `3,4`, `(3, 4)` or the flag
    repeated (`--config.t=a --config.t=b`), a single value `a` becoming `('a',)`. Tuple elements
    are read as Python literals, so words joined by commas stay one string: repeat the flag.

    Raises:
      ValueError: a message naming the field, for an unknown field, a field whose default is
        None or a value that does not parse; or an argument that is not a config override.
    """
    arguments = list(arguments)
    _check_fields(config, _override_fields(arguments))
    argv = [prog, *arguments]
    # A fresh FlagValues rather than absl's global FLAGS, so that one process can parse twice.
    flag_values = flags.FlagValues()
    try:
        config_flags.DEFINE_config_dict("config", config, flag_values=flag_values, sys_argv=argv)
        leftover = flag_values(argv)[1:]
    except flags.IllegalFlagValueError as error:
        # absl words it "flag --config.<field>=<value>: <reason>".
        raise ValueError(f"bad config value {str(error).removeprefix('flag ')}") from None
    except flags.Error as error:
        raise ValueError(str(error)) from None
    if leftover:
        raise ValueError(f"unrecognized arguments: {' '.join(leftover)}"
                         + _bare_bool_hint(config, arguments))
    return flag_values.config


def _bare_bool_hint(config: ml_collections.ConfigDict, arguments: Sequence[str]) -> str:
    """A hint for `--config.<bool field> false`: absl reads a bare bool flag as true."""
    bare = [argument[len(_OVERRIDE_PREFIX):] for argument in arguments
            if argument.startswith(_OVERRIDE_PREFIX) and "=" not in argument]
    bools = [field for field in bare if isinstance(_field_default(config, field), bool)]
    if not bools:
        return ""
    return f" (a bool field takes its value after '=', as in --config.{bools[0]}=false)"


def _runner_config(size: str) -> ml_collections.ConfigDict:
    """The runner's own fields, set like config fields but never passed to `run`."""
    return ml_collections.ConfigDict({"device_aware": size == "full"})


_RUNNER_HELP = {"device_aware": "size the DEVICE_FIELDS (seeds, evaluation chunks) for the devices found; "
                                "True for --size full"}


def _split_runner_arguments(arguments: Sequence[str],
                            runner: ml_collections.ConfigDict) -> tuple[list[str], list[str]]:
    """`(experiment's arguments, runner's arguments)`: the `--config.<field>` arguments that set a
    runner field (with a separate value after one, as in `--config.device_aware false`, which
    `apply_overrides` then rejects with a hint) apart from the rest, each in order."""
    experiment_arguments, runner_arguments = [], []
    position = 0
    while position < len(arguments):
        argument = arguments[position]
        if argument.startswith(_OVERRIDE_PREFIX) and _override_fields([argument])[0] in runner:
            runner_arguments.append(argument)
            following = arguments[position + 1] if position + 1 < len(arguments) else None
            if "=" not in argument and following is not None and not following.startswith("-"):
                runner_arguments.append(following)
                position += 1
        else:
            experiment_arguments.append(argument)
        position += 1
    return experiment_arguments, runner_arguments


def _config_listing(config: ml_collections.ConfigDict, size: str, runner: ml_collections.ConfigDict) -> str:
    lines = [f"config fields (size {size!r}; override with --config.<field>=value):"]
    lines += [f"  {name} = {value!r}" for name, value in flatten_config(config).items()]
    lines += ["runner fields (set the same way):"]
    lines += [f"  {name} = {value!r}  ({_RUNNER_HELP[name]})" for name, value in runner.items()]
    return "\n".join(lines)


def _parser(module: ModuleType, config: ml_collections.ConfigDict, size: str,
            prog: str, runner: ml_collections.ConfigDict) -> argparse.ArgumentParser:
    """The full parser, whose --help lists `config`'s fields and the runner's."""
    default_workdir = os.path.join("runs", module.NAME)
    parser = argparse.ArgumentParser(
        prog=prog,
        description=module.DESCRIPTION,
        epilog=_config_listing(config, size, runner),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--size", choices=SIZES, default="default",
                        help="config size: quick (seconds), default (minutes on a CPU), "
                             "full (the papers' scale)")
    parser.add_argument("--workdir", default=default_workdir,
                        help=f"run directory (default: {default_workdir})")
    add_distributed_flag(parser)
    return parser


DISTRIBUTED_ENV = "JAXDL_DISTRIBUTED"


def add_distributed_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--distributed", action="store_true",
                        help="one of several processes (hosts): call jax.distributed.initialize() first, which "
                             "reads JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and JAX_PROCESS_ID or detects "
                             f"a TPU pod or SLURM job (also with {DISTRIBUTED_ENV}=1)")


def initialize_distributed(requested: bool) -> None:
    """``jax.distributed.initialize()`` when ``requested`` (``--distributed``) or the environment
    variable ``JAXDL_DISTRIBUTED`` is ``1``, before any computation: every process then sees
    every device of every process (``jax.devices()``), over which ``fit``, ``fit_seeds`` and the
    curvature tools spread their work. Each process runs the same program on the same data."""
    if requested or os.environ.get(DISTRIBUTED_ENV) == "1":
        import jax  # noqa: PLC0415 -- only the distributed path needs it here

        if jax.distributed.is_initialized():  # a tour or a script did it already
            return

        # Explicit settings from the environment where given; otherwise JAX detects the cluster.
        env = {name: os.environ.get(f"JAX_{name.upper()}") for name in ("coordinator_address", "num_processes",
                                                                          "process_id")}
        jax.distributed.initialize(coordinator_address=env["coordinator_address"],
                                   num_processes=None if env["num_processes"] is None else int(env["num_processes"]),
                                   process_id=None if env["process_id"] is None else int(env["process_id"]))


def parse_args(module: ModuleType, argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parses an experiment's command line.

    Returns:
      A namespace with `size`, `workdir`, `distributed`, `config` (the ConfigDict for the size,
      with the `--config.<field>` overrides applied), `device_aware` (the runner field: True
      for `--size full` unless overridden) and `overridden` (the dotted names of the config
      fields given on the line). Bad input exits through `argparse` with a message.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    prog = f"python -m experiments.{module.NAME}"

    # The size must be known before the full parser, whose --help lists that size's config.
    size_parser = argparse.ArgumentParser(prog=prog, add_help=False)
    size_parser.add_argument("--size", choices=SIZES, default="default")
    size = size_parser.parse_known_args(argv)[0].size
    config = config_for(module, size)
    runner = _runner_config(size)

    parser = _parser(module, config, size, prog, runner)
    args, overrides = parser.parse_known_args(argv)
    overrides, runner_overrides = _split_runner_arguments(overrides, runner)
    try:
        args.config = apply_overrides(config, overrides, prog)
        args.device_aware = bool(apply_overrides(runner, runner_overrides, prog).device_aware)
        validate(module, args.config)
    except ValueError as error:
        parser.error(str(error))
    args.overridden = tuple(_override_fields(overrides))
    return args


# ----------------------------------------------------------------------------- running


def entry_point(module_name: str) -> Callable[..., dict]:
    """``main(argv=None)`` for the experiment module ``module_name`` (pass ``__name__``): its command
    line, :func:`experiment_main`. An experiment ends with ``main = fw.entry_point(__name__)`` and
    the usual ``if __name__ == "__main__": main()``."""
    def main(argv: Sequence[str] | None = None) -> dict:
        return experiment_main(sys.modules[module_name], argv)

    return main


def experiment_main(module: ModuleType, argv: Sequence[str] | None = None) -> dict:
    """The command line of one experiment: parse arguments, run, report.

    A bad config value is a one-line usage error (exit status 2); Ctrl-C prints one line
    saying what finished and exits with status 130.
    """
    args = parse_args(module, argv)
    initialize_distributed(args.distributed)
    print(f"{module.NAME} ({args.size}): {module.DESCRIPTION}\nworkdir {args.workdir}")
    try:
        return run_experiment(module, args.config, args.workdir, size=args.size, device_aware=args.device_aware,
                              overridden=args.overridden)
    except KeyboardInterrupt:
        print(f"\n{module.NAME}: interrupted; what finished is in {args.workdir} (config.json, metrics.jsonl, "
              "results.npz and numbers.json of the finished phases)", file=sys.stderr, flush=True)
        raise SystemExit(130) from None
