"""The tour: every registered experiment, one report, resumable.

    python -m experiments                  # default configs into runs/tour/<name>/
    python -m experiments --quick          # the quick configs (seconds each)
    python -m experiments --size full      # the papers' scale (a GPU or TPU), device-aware
    python -m experiments --only a,b       # a selection
    python -m experiments --rerun          # run again what is already complete
    python -m experiments --update-lock    # record the verdicts in experiments/claims.lock.json
    python -m experiments --list           # one line per experiment

A rerun skips every experiment whose run directory holds a complete run (outcome.json) of the
same config and code version, so an interrupted tour costs only what it had left. Ctrl-C
prints one line saying what finished. An experiment that raises is recorded in the report with
its traceback; the others still run, and the exit status is non-zero. At the default size the
verdicts are compared with the lock (`experiments.framework.lock`) and the differences listed.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from collections.abc import Sequence

import experiments
from experiments.framework import devices, lock, report, runner
from experiments.framework.cli import add_distributed_flag, initialize_distributed
from experiments.framework.config import SIZES, config_for, set_field
from jaxdl.core import io


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m experiments",
                                     description="Run every registered experiment and write one report.")
    parser.add_argument("--quick", action="store_true", help="use the quick configs (same as --size quick)")
    parser.add_argument("--size", choices=SIZES, default=None, help="config size of every experiment (default: "
                        "'default')")
    parser.add_argument("--only", default=None, help="comma-separated experiment names")
    parser.add_argument("--list", action="store_true", help="list the experiments and exit")
    parser.add_argument("--workdir", default=os.path.join("runs", "tour"),
                        help="root of the run directories and the report (default: runs/tour)")
    parser.add_argument("--rerun", action="store_true",
                        help="run every experiment again, even one whose run directory is complete")
    parser.add_argument("--seed", type=int, default=None,
                        help="set config.seed of every experiment (a fresh draw of seeds, to see which verdicts "
                             "depend on them)")
    parser.add_argument("--update-lock", action="store_true",
                        help=f"record the verdicts of the experiments run in {os.path.relpath(lock.LOCK_PATH)} "
                             "(default size and seed only)")
    add_distributed_flag(parser)
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
    if args.quick and args.size not in (None, "quick"):
        parser.error(f"--quick and --size {args.size} disagree: pass one of them")
    args.size = "quick" if args.quick else (args.size or "default")
    if args.update_lock and (args.size != "default" or args.seed is not None):
        parser.error("--update-lock records the default size at the default seed: drop --size/--quick/--seed")
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
        if outcome.get("error") is not None:
            rows.append([name, "-", "-", "-", "-", "-", f"{outcome['wall_time_s']:.1f}", "FAILED"])
            continue
        s = outcome["summary"]
        margin = "-" if s["smallest_margin_key"] is None else \
            f"{report.format_margin(s['smallest_margin'])} ({s['smallest_margin_key']})"
        rows.append([name, s["held"], s["not held"], s["inconclusive"], f"{s['checks_passed']}/{s['checks']}",
                     margin, f"{outcome['wall_time_s']:.1f}", outcome["status"]])
    return report.format_table(["Experiment", "Held", "Not held", "Inconclusive", "Checks passed",
                                "Smallest margin (SE)", "Wall time (s)", "Status"], rows)


def _totals(outcomes: dict[str, dict]) -> str:
    done = [o for o in outcomes.values() if o.get("error") is None]
    counts = {key: sum(o["summary"][key] for o in done) for key in ("held", "not held", "inconclusive", "claims",
                                                                   "checks_passed", "checks")}
    return (f"{counts['held']} held, {counts['not held']} not held, {counts['inconclusive']} inconclusive of "
            f"{counts['claims']} claims; {counts['checks_passed']}/{counts['checks']} checks passed")


def _write_report(args, outcomes: dict[str, dict], total_s: float, lock_lines: list[str] | None,
                  interrupted: str | None) -> str:
    head = f"{_summary_table(outcomes)}\n\n{_totals(outcomes)}.\n\nTotal wall time {total_s:.1f} s (size " \
           f"{args.size!r}{'' if args.seed is None else f', seed {args.seed}'})."
    if interrupted:
        head += f"\n\n**Interrupted** during {interrupted}: rerun the same command to resume."
    sections = [("Summary", head)]
    if lock_lines is not None:
        sections.append(("Lock", "every verdict and value as locked" if not lock_lines
                         else "\n".join(f"- {line}" for line in lock_lines)))
    for name, outcome in outcomes.items():
        if outcome.get("error") is not None:
            body = f"**FAILED**\n\n```\n{outcome['error'].rstrip()}\n```"
        else:
            body = io.markdown_sections(report.sections(outcome, link_prefix=f"{name}/"), level=3)
        sections.append((name, body))
    path = os.path.join(runner.writing_workdir(args.workdir), "report.md")
    io.write_report(path, "jaxdl tour", sections)
    return path


def _run_one(args, name: str) -> dict:
    module = experiments.get_experiment(name)
    print(module.DESCRIPTION)
    config = config_for(module, args.size)
    if args.seed is not None:
        set_field(config, "seed", args.seed)
    workdir = os.path.join(args.workdir, name)
    sized = devices.for_run(module, config, device_aware=args.size == "full")
    if not args.rerun:
        previous = runner.load_complete(workdir, sized.config)
        if previous is not None:
            print(f"{name}: reused the complete run in {workdir} (same config and code; --rerun to run again): "
                  f"{report.verdict_line(previous['summary'])}", flush=True)
            return {**previous, "status": "reused"}
    outcome = runner.run_experiment(module, config, workdir, size=args.size, sized=sized)
    return {**outcome, "status": "ok"}


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the tour; returns the exit status (0 when every experiment ran, 130 on Ctrl-C)."""
    args = _parse_args(argv)
    if args.list:
        _list(args.names)
        return 0
    initialize_distributed(args.distributed)
    os.makedirs(args.workdir, exist_ok=True)
    tour_start = time.perf_counter()
    outcomes: dict[str, dict] = {}
    interrupted = None
    for index, name in enumerate(args.names, start=1):
        print(f"\n{'=' * 78}\n[{index}/{len(args.names)}] {name} ({args.size})\n{'=' * 78}", flush=True)
        start = time.perf_counter()
        try:
            outcomes[name] = _run_one(args, name)
        except KeyboardInterrupt:
            interrupted = name
            break
        except Exception:  # Record it and go on: one broken experiment must not stop the tour.
            outcomes[name] = {"error": traceback.format_exc(), "wall_time_s": time.perf_counter() - start}
            print(f"{name} FAILED:\n{outcomes[name]['error']}", file=sys.stderr, flush=True)
        finally:
            runner.release_compiled_programs()

    total_s = time.perf_counter() - tour_start
    finished = {name: o for name, o in outcomes.items() if o.get("error") is None}
    lock_lines = None
    if args.size == "default":
        locked = lock.load()
        lock_lines = [line for outcome in finished.values() for line in lock.compare(locked, outcome)]
    if args.update_lock and finished and interrupted is None:
        lock.update(finished)
        print(f"lock: recorded {', '.join(finished)} in {lock.LOCK_PATH}")
        lock_lines = []
    report_path = _write_report(args, outcomes, total_s, lock_lines, interrupted)
    if interrupted is not None:
        done = ", ".join(finished) or "none"
        print(f"\ninterrupted during {interrupted} after {total_s:.0f} s; finished: {done}; report {report_path}; "
              "rerun the same command to resume", file=sys.stderr, flush=True)
        return 130
    print(f"\n{_summary_table(outcomes)}\n\n{_totals(outcomes)}\nTotal wall time {total_s:.1f} s")
    if lock_lines:
        print("lock: differences from experiments/claims.lock.json:\n" + "\n".join(f"  {l}" for l in lock_lines))
    elif lock_lines is not None:
        print("lock: every verdict and value as locked")
    failed = [name for name, outcome in outcomes.items() if outcome.get("error") is not None]
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
    print(f"Report: {report_path}")
    return 1 if failed else 0
