"""The command line of one experiment, and the runner that writes its run directory.

    python -m experiments.<name> [--size quick|default|full] [--workdir DIR] [--config.<field>=value ...]

`--size` picks the experiment's config, `--workdir` the run directory (default `runs/<NAME>`);
each `--config.<field>=value` (or `--config.<field> value`, anywhere on the line) overrides one
field, parsed by `ml_collections.config_flags` as the type of the field's default. `--help`
lists every field of the chosen size's config with its default.

One more field belongs to the runner, not to the experiment's config: `device_aware` (True for
`--size full`, else False; `--config.device_aware=true|false`). A device-aware run sizes the
fields the experiment declares in `DEVICE_FIELDS` (seed counts, evaluation chunks) for the
devices it finds, after `jax.distributed.initialize` and before `run`, leaving alone the fields
given on the command line (`experiments.device_defaults`); config.json holds what `run` got.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import sys
import time
from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import Any

import ml_collections
from absl import flags
from ml_collections import config_flags

from experiments import device_defaults
from experiments.device_defaults import field_value as _field_default
from experiments.reporting import Claim, claims_table, flatten_config, report_sections
from jaxdl import checks, io

SIZES = ("quick", "default", "full")

_OVERRIDE_PREFIX = "--config."


def check_size(size: str) -> None:
    """Raises `ValueError` unless `size` is one of `SIZES` (for `get_config`)."""
    if size not in SIZES:
        raise ValueError(f"size {size!r} is not one of {', '.join(SIZES)}")


def require(condition: Any, field: str, expected: str, value: Any) -> None:
    """Config validation in `run`: raises `ValueError` naming the field unless `condition`.

    Example: `require(config.lr > 0, "lr", "a positive learning rate", config.lr)` raises
    "config.lr must be a positive learning rate, got -1" when `config.lr` is -1.
    """
    if not condition:
        checks.fail(f"config.{field}", value, expected)


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


def writing_workdir(workdir: str) -> str:
    """``workdir`` on process 0; on the other processes of a distributed run a private
    temporary directory, so that only process 0 writes the run directory."""
    import jax  # noqa: PLC0415

    if jax.process_index() == 0:
        return workdir
    return tempfile.mkdtemp(prefix=f"jaxdl-process{jax.process_index()}-")


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
    config = module.get_config(size)
    runner = _runner_config(size)

    parser = _parser(module, config, size, prog, runner)
    args, overrides = parser.parse_known_args(argv)
    overrides, runner_overrides = _split_runner_arguments(overrides, runner)
    try:
        args.config = apply_overrides(config, overrides, prog)
        args.device_aware = bool(apply_overrides(runner, runner_overrides, prog).device_aware)
    except ValueError as error:
        parser.error(str(error))
    args.overridden = tuple(_override_fields(overrides))
    return args


# ----------------------------------------------------------------------------- running


def _check_result(module: ModuleType, result: Any) -> None:
    if not isinstance(result, Mapping):
        raise TypeError(f"{module.NAME}.run must return a dict, got {type(result).__name__}")
    if not isinstance(result.get("tables"), Mapping):
        raise TypeError(f"{module.NAME}.run result needs 'tables': a dict of name -> table text")
    if not isinstance(result.get("figures"), (list, tuple)):
        raise TypeError(f"{module.NAME}.run result needs 'figures': a list of figure paths")


def run_experiment(module: ModuleType, config: ml_collections.ConfigDict, workdir: str, *,
                   device_aware: bool = False, overridden: Sequence[str] = ()) -> dict:
    """Runs one experiment into the run directory `workdir` (an `io.RunDir` passed to `run`).

    When `device_aware`, first sizes the fields of `module.DEVICE_FIELDS` not in `overridden`
    for the devices (`device_defaults.for_run`; call this after `initialize_distributed`) and
    prints the changes in one line. Writes config.json (the config `run` gets, before running,
    so that an interrupted run records what it ran), report.md (with a "Devices" line when
    device-aware) and claims.json; prints the tables, the claim table and the wall time.

    Returns:
      `module.run`'s result plus "claims" (list of Claim), "wall_time_s", "report" and
      "device_defaults" (a `device_defaults.DeviceDefaults`: the config `run` got and the changes).
    """
    devices = device_defaults.for_run(module, config, device_aware=device_aware, overridden=overridden)
    config = devices.config
    if devices.device_aware:
        print(devices.line(), flush=True)
    run_dir = io.RunDir(writing_workdir(workdir))
    run_dir.save_config(config)
    start = time.perf_counter()
    result = module.run(config, run_dir)
    _check_result(module, result)
    claims = list(module.claims(result))
    if not all(isinstance(claim, Claim) for claim in claims):
        raise TypeError(f"{module.NAME}.claims must return Claim objects, got {claims!r}")
    wall_time_s = time.perf_counter() - start

    for name, table in result["tables"].items():
        print(f"\n{name}\n{table}")
    print(f"\nClaims\n{claims_table(claims) if claims else '(no claims)'}")
    sections = report_sections(module, config, result, claims, run_dir.root, run_dir.root,
                               wall_time_s)
    sections = device_defaults.with_device_section(sections, devices)
    io.write_report(run_dir.report_path, module.NAME, sections)
    io.save_json(os.path.join(run_dir.root, "claims.json"), [c.to_dict() for c in claims])
    held = sum(c.held for c in claims)
    print(f"\n{module.NAME}: {held}/{len(claims)} claims held; wall time {wall_time_s:.1f} s; "
          f"report {run_dir.report_path}")
    return {**result, "claims": claims, "wall_time_s": wall_time_s,
            "report": run_dir.report_path, "device_defaults": devices}


def experiment_main(module: ModuleType, argv: Sequence[str] | None = None) -> dict:
    """The command line of one experiment: parse arguments, run, report."""
    args = parse_args(module, argv)
    initialize_distributed(args.distributed)
    print(f"{module.NAME} ({args.size}): {module.DESCRIPTION}\nworkdir {args.workdir}")
    return run_experiment(module, args.config, args.workdir, device_aware=args.device_aware,
                          overridden=args.overridden)
