"""The tour: `python -m experiments` runs every registered experiment and writes one report.

    python -m experiments                  # default configs into runs/tour/<name>/
    python -m experiments --quick          # the quick configs (seconds each)
    python -m experiments --size full      # the papers' scale (a GPU or TPU), device-aware
    python -m experiments --only a,b       # a selection
    python -m experiments --list           # one line per experiment

At `--size full` each experiment's `DEVICE_FIELDS` are sized for the devices found
(`experiments.device_defaults`); the quick and default sizes run their configs as they are.
An experiment that raises is recorded in the report with its traceback; the others still run,
and the exit status is non-zero.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from collections.abc import Sequence

import experiments
from experiments import common, device_defaults
from jaxdl import io


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m experiments",
        description="Run every registered experiment and write one report.")
    parser.add_argument("--quick", action="store_true", help="use the quick configs (same as --size quick)")
    parser.add_argument("--size", choices=common.SIZES, default=None,
                        help="config size of every experiment (default: 'default')")
    parser.add_argument("--only", default=None, help="comma-separated experiment names")
    parser.add_argument("--list", action="store_true", help="list the experiments and exit")
    parser.add_argument("--workdir", default=os.path.join("runs", "tour"),
                        help="root of the run directories and the report (default: runs/tour)")
    common.add_distributed_flag(parser)
    args = parser.parse_args(argv)
    registered = tuple(experiments.EXPERIMENTS)
    if args.only is None:
        args.names = registered
    else:
        args.names = tuple(name.strip() for name in args.only.split(",") if name.strip())
        unknown = [name for name in args.names if name not in registered]
        if unknown or not args.names:
            parser.error(f"--only: unknown experiment(s) {', '.join(map(repr, unknown))}; "
                         f"choices: {', '.join(registered)}")
    return args


def _list(names: Sequence[str]) -> None:
    for name in names:
        try:
            description = experiments.get_experiment(name).DESCRIPTION
        except Exception as error:  # A broken module must not hide the others.
            description = f"(cannot import: {type(error).__name__}: {error})"
        print(f"{name}: {description}")


def _summary_table(outcomes: dict[str, dict]) -> str:
    rows = []
    for name, outcome in outcomes.items():
        if outcome["error"] is None:
            claims = outcome["result"]["claims"]
            held = f"{sum(c.held for c in claims)}/{len(claims)}"
            status = "ok" if all(c.held for c in claims) else "claims not held"
        else:
            held, status = "-", "FAILED"
        rows.append([name, held, f"{outcome['wall_time_s']:.1f}", status])
    return common.format_table(["Experiment", "Claims held", "Wall time (s)", "Status"], rows)


def _experiment_section(name: str, outcome: dict, report_dir: str) -> str:
    """One experiment's part of the tour report, sub-headings one level down."""
    if outcome["error"] is not None:
        return f"**FAILED**\n\n```\n{outcome['error'].rstrip()}\n```"
    result = outcome["result"]
    devices = result["device_defaults"]
    sections = common.report_sections(
        outcome["module"], devices.config, result, result["claims"], report_dir,
        outcome["workdir"], outcome["wall_time_s"])
    return io.markdown_sections(device_defaults.with_device_section(sections, devices), level=3)


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the tour; returns the exit status (0 when every experiment ran)."""
    args = _parse_args(argv)
    if args.list:
        _list(args.names)
        return 0
    if args.quick and args.size not in (None, "quick"):
        raise SystemExit(f"--quick and --size {args.size} disagree: pass one of them")
    size = "quick" if args.quick else (args.size or "default")
    common.initialize_distributed(args.distributed)
    os.makedirs(args.workdir, exist_ok=True)
    tour_start = time.perf_counter()
    outcomes: dict[str, dict] = {}
    for index, name in enumerate(args.names, start=1):
        print(f"\n{'=' * 78}\n[{index}/{len(args.names)}] {name} ({size})\n{'=' * 78}", flush=True)
        workdir = os.path.join(args.workdir, name)
        outcome = {"module": None, "config": None, "result": None, "error": None,
                   "workdir": workdir}
        start = time.perf_counter()
        try:
            outcome["module"] = experiments.get_experiment(name)
            print(outcome["module"].DESCRIPTION)
            outcome["config"] = outcome["module"].get_config(size)
            outcome["result"] = common.run_experiment(
                outcome["module"], outcome["config"], workdir, device_aware=size == "full")
        except Exception:  # Record it and go on: one broken experiment must not stop the tour.
            outcome["error"] = traceback.format_exc()
            print(f"{name} FAILED:\n{outcome['error']}", file=sys.stderr, flush=True)
        outcome["wall_time_s"] = time.perf_counter() - start
        outcomes[name] = outcome

    total_s = time.perf_counter() - tour_start
    sections = [("Summary", _summary_table(outcomes) + f"\n\nTotal wall time {total_s:.1f} s "
                 f"(size {size!r}).")]
    sections += [(name, _experiment_section(name, outcome, args.workdir))
                 for name, outcome in outcomes.items()]
    report_path = os.path.join(common.writing_workdir(args.workdir), "report.md")
    io.write_report(report_path, "jaxdl tour", sections)

    failed = [name for name, outcome in outcomes.items() if outcome["error"] is not None]
    print(f"\n{_summary_table(outcomes)}\n\nTotal wall time {total_s:.1f} s")
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
    print(f"Report: {report_path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
