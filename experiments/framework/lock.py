"""The regression lock: every claim's verdict and measured value at the default size.

`experiments/claims.lock.json` records, per experiment, each claim's verdict, statistic and a
band around it, and the keys of its checks. `compare` lists what changed in a tour: a verdict
that flipped, a statistic outside its band, a claim or check added or gone, a failed check.
`tests/test_claims.py` runs the default tour and fails on any of these; `python -m experiments
--update-lock` rewrites the entries of the experiments it ran. Changing the lock is a
deliberate act: say why in the commit message.

The band allows for the difference between two independent runs: the statistic +-
`BAND_SIGMAS` x sqrt(2) standard errors, the standard error taken at its 95% upper confidence
bound (five seeds estimate it poorly), one tolerance for a deterministic value, |statistic| / n
when all n seeds gave the same value (one seed's worth: the spread is unresolved), and never
narrower than `RELATIVE_FLOOR` of the statistic. The same seed gives the same numbers on one
machine but not across CPUs, where training behaves like a fresh draw of seeds (CLAIMS.md,
"The lock"). A fresh draw moves a margin by about
sqrt(2) standard errors, so a claim whose locked margin lies within `MARGINAL_STANDARD_ERRORS`
of its decision line (+-critical) is marked marginal: on another machine it may land on the
adjacent verdict (held or not held <-> inconclusive), which the comparison accepts while its
statistic stays in its band. A firm verdict must not move, and held <-> not held never may.
"""
from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

from scipy import stats

from experiments.framework.claims import INCONCLUSIVE
from jaxdl.core import io

LOCK_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "claims.lock.json")
BAND_SIGMAS = 4.0
RELATIVE_FLOOR = 0.01
MARGINAL_STANDARD_ERRORS = 3.0  # for a deterministic value: one tolerance


def _finite(value: Any) -> float:
    value = float(value)
    return value if math.isfinite(value) else 0.0


def standard_error_bound(standard_error: float, n: int) -> float:
    """The 95% upper confidence bound of a standard error estimated from n seeds:
    SE * sqrt((n - 1) / chi2_{0.05, n-1})."""
    return standard_error * math.sqrt((n - 1) / stats.chi2.ppf(0.05, n - 1))


def band(claim: Mapping[str, Any]) -> list[float]:
    """`[low, high]` around a claim's statistic (see the module docstring)."""
    statistic, n = float(claim["statistic"]), int(claim["n"])
    error = _finite(claim["standard_error"])
    width = error if n <= 1 else BAND_SIGMAS * math.sqrt(2.0) * standard_error_bound(error, n)
    if n > 1 and claim["standard_error"] == 0:
        # Every seed gave the same value (a count, say): the spread is unresolved, and one seed
        # moving by its own size on another machine moves the mean by |statistic| / n.
        width = abs(statistic) / n
    half = max(width, RELATIVE_FLOOR * abs(statistic), 1e-12)
    return [statistic - half, statistic + half]


def marginal(claim: Mapping[str, Any]) -> bool:
    """Whether a claim's margin lies within `MARGINAL_STANDARD_ERRORS` (one tolerance for a
    deterministic value) of its decision line, where a fresh draw may change its verdict."""
    margin = float(claim["margin"])
    if math.isnan(margin):
        return True
    reach = 1.0 if claim["n"] <= 1 else MARGINAL_STANDARD_ERRORS
    return abs(abs(margin) - float(claim["critical"])) < reach


def entry(outcome: Mapping[str, Any]) -> dict[str, Any]:
    """One experiment's lock entry, from its outcome."""
    return {"claims": {c["key"]: {"verdict": c["verdict"], "statistic": c["statistic"], "band": band(c),
                                  "margin": c["margin"], "marginal": marginal(c)} for c in outcome["claims"]},
            "checks": sorted(c["key"] for c in outcome["checks"])}


def load(path: str | None = None) -> dict[str, Any]:
    """The lock file (default `LOCK_PATH`), or an empty lock when there is none."""
    path = path or LOCK_PATH
    if not os.path.exists(path):
        return {"size": "default", "experiments": {}}
    return io.load_json(path)


def update(outcomes: Mapping[str, Mapping[str, Any]], path: str | None = None) -> dict[str, Any]:
    """Rewrites the entries of `outcomes` (experiment name -> outcome at the default size) in the
    lock at `path` (default `LOCK_PATH`), keeping the other experiments' entries; returns the
    new lock."""
    path = path or LOCK_PATH
    lock = load(path)
    for name, outcome in outcomes.items():
        if outcome.get("size") != "default":
            raise ValueError(f"the lock records the default size; {name} ran at {outcome.get('size')!r}")
        lock["experiments"][name] = entry(outcome)
    lock["band_sigmas"], lock["relative_floor"] = BAND_SIGMAS, RELATIVE_FLOOR
    lock["marginal_standard_errors"] = MARGINAL_STANDARD_ERRORS
    io.save_json(path, lock)
    return lock


def compare(lock: Mapping[str, Any], outcome: Mapping[str, Any]) -> list[str]:
    """What differs between one experiment's outcome and its lock entry, one line each (empty
    when it matches)."""
    name = outcome["name"]
    locked = lock["experiments"].get(name)
    if locked is None:
        return [f"{name}: not in the lock (python -m experiments --only {name} --update-lock)"]
    problems = []
    measured = {c["key"]: c for c in outcome["claims"]}
    for key in sorted(set(locked["claims"]) - set(measured)):
        problems.append(f"{name}/{key}: locked but no longer measured")
    for key in sorted(set(measured) - set(locked["claims"])):
        problems.append(f"{name}/{key}: measured but not in the lock")
    for key, record in locked["claims"].items():
        if key not in measured:
            continue
        claim = measured[key]
        adjacent = INCONCLUSIVE in (claim["verdict"], record["verdict"])
        if claim["verdict"] != record["verdict"] and not (record.get("marginal") and adjacent):
            problems.append(f"{name}/{key}: verdict {record['verdict']!r} -> {claim['verdict']!r} "
                            f"(measured {claim['measured']}, margin {claim['margin']:+.2f})")
        low, high = record["band"]
        if not low <= claim["statistic"] <= high:
            problems.append(f"{name}/{key}: statistic {claim['statistic']:.6g} outside the locked band "
                            f"[{low:.6g}, {high:.6g}]")
    checks = {c["key"]: c for c in outcome["checks"]}
    if sorted(checks) != sorted(locked["checks"]):
        problems.append(f"{name}: checks {sorted(checks)} differ from the locked {sorted(locked['checks'])}")
    problems += [f"{name}/{key}: check failed (expected {c['expected']}, measured {c['measured']})"
                 for key, c in checks.items() if not c["passed"]]
    return problems
