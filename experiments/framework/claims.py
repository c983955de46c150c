"""Claims and checks: how an experiment states and decides a paper's finding.

The protocol is `../shared/CLAIMS.md`'s. A `Claim` is a paper's finding as a falsifiable
quantity: a statistic measured here (a mean over seeds, a difference between two settings, or
a deterministic value), a threshold declared before the run, and a rule that decides the
verdict:

- held: the statistic clears the threshold by at least `critical` standard errors, where
  `critical = max(2, t_{0.95, df})` (a one-sided t-test at alpha = 0.05, and never less than
  two standard errors, as CLAIMS.md asks);
- not held: it misses the threshold by at least as much (the finding does not reproduce here);
- inconclusive: the interval `statistic +- critical * SE` contains the threshold.

The margin is `(statistic - threshold) / SE`, signed so that positive favours the claim. A
deterministic value (no seeds) has a numerical tolerance in place of the standard error:
held when it clears the threshold by more than the tolerance.

A `Check` is what only a bug can break (an identity, an algebraic consequence, a bound the
algorithm guarantees, a closed form): it passes or fails, appears in the report's checks
table and never counts as a reproduced finding.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy import stats

HELD, NOT_HELD, INCONCLUSIVE = "held", "not held", "inconclusive"
VERDICTS = (HELD, NOT_HELD, INCONCLUSIVE)
ALPHA = 0.05
MIN_STANDARD_ERRORS = 2.0  # CLAIMS.md: a margin under 2 standard errors is inconclusive
BOOTSTRAP_RESAMPLES = 2000


def critical_value(df: float) -> float:
    """The margin (in standard errors) a claim must clear: the one-sided t quantile at
    `ALPHA` for `df` degrees of freedom, and never less than `MIN_STANDARD_ERRORS`."""
    if not df > 0 or math.isinf(df):
        return MIN_STANDARD_ERRORS
    return max(MIN_STANDARD_ERRORS, float(stats.t.ppf(1.0 - ALPHA, df)))


def _verdict(margin: float, critical: float) -> str:
    if math.isnan(margin):
        return INCONCLUSIVE
    if margin >= critical:
        return HELD
    if margin <= -critical:
        return NOT_HELD
    return INCONCLUSIVE


def _samples(name: str, values: Any) -> np.ndarray:
    array = np.asarray(values, np.float64).reshape(-1)
    if array.size == 0:
        raise ValueError(f"{name}: no measurements")
    return array


def _mean_and_error(values: np.ndarray) -> tuple[float, float]:
    if values.size < 2:
        return float(values.mean()), math.nan
    return float(values.mean()), float(values.std(ddof=1) / math.sqrt(values.size))


def _direction(above: float | None, below: float | None) -> tuple[float, float, str]:
    """`(threshold, sign, comparison)`: sign +1 when the claim is `statistic > threshold`."""
    if (above is None) == (below is None):
        raise ValueError("a claim takes exactly one of above= or below=")
    return (float(above), 1.0, ">") if above is not None else (float(below), -1.0, "<")


def _margin(statistic: float, threshold: float, sign: float, error: float) -> float:
    distance = sign * (statistic - threshold)
    if math.isnan(error) or math.isnan(distance):
        return math.nan
    if error == 0:
        return math.copysign(math.inf, distance) if distance else math.nan
    return distance / error


@dataclasses.dataclass(frozen=True)
class Claim:
    """A paper's finding, measured here and decided by a declared rule.

    Build one with `Claim.mean`, `Claim.difference`, `Claim.ratio`, `Claim.within`,
    `Claim.bootstrap` or `Claim.exact`; each computes the statistic, its standard error, the
    margin and the verdict.

    Attributes:
      key: a short identifier, unique within the experiment (the lock's key).
      paper: the source: authors, year, and the figure, table or section.
      statement: the finding as a quantity, in words.
      threshold: the decision threshold in words, e.g. "> 1" or "in [1.7, 2.3]".
      statistic: the measured value: a mean over n seeds, a difference of means, a value.
      standard_error: its standard error (the tolerance, for a deterministic value).
      n: seeds (or samples) behind the statistic; 1 for a deterministic value.
      rule: how the verdict was decided, in words.
      margin: distance from the threshold in standard errors (or tolerances), positive when
        the measurement favours the claim.
      critical: the margin needed for a verdict either way.
      verdict: one of `VERDICTS`.
      samples: the per-seed values behind the statistic (empty for a single value).
      fmt: the format of the statistic in tables.
    """

    key: str
    paper: str
    statement: str
    threshold: str
    statistic: float
    standard_error: float
    n: int
    rule: str
    margin: float
    critical: float
    verdict: str
    samples: tuple[float, ...] = ()
    fmt: str = "{:.3g}"

    @property
    def held(self) -> bool:
        return self.verdict == HELD

    @property
    def measured(self) -> str:
        """The statistic in words: "0.912 +- 0.004 (n=5)", or the value alone."""
        value = self.fmt.format(self.statistic)
        if self.n <= 1:
            return value
        return f"{value} +- {self.fmt.format(self.standard_error)} (n={self.n})"

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "measured": self.measured}

    # ------------------------------------------------------------------------- builders

    @classmethod
    def mean(cls, key: str, paper: str, statement: str, samples: Sequence[float], *, above: float | None = None,
             below: float | None = None, fmt: str = "{:.3g}") -> Claim:
        """The mean of per-seed `samples` is above (or below) a threshold: a one-sample t-test."""
        values = _samples(key, samples)
        threshold, sign, comparison = _direction(above, below)
        statistic, error = _mean_and_error(values)
        critical = critical_value(values.size - 1)
        margin = _margin(statistic, threshold, sign, error)
        return cls(key, paper, statement, f"{comparison} {fmt.format(threshold)}", statistic, error, values.size,
                   f"one-sample t over {values.size} seeds", margin, critical, _verdict(margin, critical),
                   tuple(values.tolist()), fmt)

    @classmethod
    def difference(cls, key: str, paper: str, statement: str, first: Sequence[float], second: Sequence[float], *,
                   above: float | None = None, below: float | None = None, paired: bool = False,
                   fmt: str = "{:.3g}") -> Claim:
        """mean(first) - mean(second) is above (or below) a threshold (usually 0).

        A paired t-test when `paired` (seed k of both settings shares its initialisation or
        data order), else Welch's t-test with the Welch-Satterthwaite degrees of freedom.
        `samples` holds the paired differences, or `first` then `second`.
        """
        a, b = _samples(f"{key} (first)", first), _samples(f"{key} (second)", second)
        threshold, sign, comparison = _direction(above, below)
        if paired:
            if a.size != b.size:
                raise ValueError(f"{key}: a paired difference needs as many first as second samples, "
                                 f"got {a.size} and {b.size}")
            statistic, error = _mean_and_error(a - b)
            df, rule, samples = a.size - 1, f"paired t over {a.size} seeds", tuple((a - b).tolist())
        else:
            statistic = float(a.mean() - b.mean())
            va = a.var(ddof=1) / a.size if a.size > 1 else math.nan
            vb = b.var(ddof=1) / b.size if b.size > 1 else math.nan
            error = math.sqrt(va + vb)
            df = (va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1)) if va + vb > 0 else math.inf
            rule, samples = f"Welch t over {a.size} + {b.size} seeds", tuple(a.tolist() + b.tolist())
        critical = critical_value(df)
        margin = _margin(statistic, threshold, sign, error)
        return cls(key, paper, statement, f"{comparison} {fmt.format(threshold)}", statistic, error,
                   int(min(a.size, b.size)), rule, margin, critical, _verdict(margin, critical), samples, fmt)

    @classmethod
    def ratio(cls, key: str, paper: str, statement: str, numerator: Sequence[float], denominator: Sequence[float], *,
              above: float | None = None, below: float | None = None, paired: bool = False,
              fmt: str = "{:.3g}") -> Claim:
        """The ratio of geometric means of two positive settings is above (or below) a
        threshold: a t-test on the difference of their logarithms. The statistic is reported
        as the ratio, its standard error as that of the log-ratio times the ratio (the delta
        method)."""
        a, b = _samples(f"{key} (numerator)", numerator), _samples(f"{key} (denominator)", denominator)
        if np.any(a <= 0) or np.any(b <= 0):
            raise ValueError(f"{key}: a ratio claim needs positive measurements")
        threshold, sign, comparison = _direction(above, below)
        log_claim = cls.difference(key, paper, statement, np.log(a), np.log(b), paired=paired,
                                   **{"above" if sign > 0 else "below": math.log(threshold)})
        ratio = math.exp(log_claim.statistic)
        return dataclasses.replace(log_claim, threshold=f"{comparison} {fmt.format(threshold)}", statistic=ratio,
                                   standard_error=ratio * log_claim.standard_error,
                                   rule=log_claim.rule + " on logs", fmt=fmt)

    @classmethod
    def within(cls, key: str, paper: str, statement: str, samples: Sequence[float], *, target: float,
               tolerance: float, fmt: str = "{:.3g}") -> Claim:
        """The mean of `samples` lies within `target +- tolerance`: held when the whole interval
        `mean +- critical SE` lies inside the band, not held when it lies wholly outside.
        The margin is the distance to the nearer edge of the band, in standard errors."""
        values = _samples(key, samples)
        if not tolerance > 0:
            raise ValueError(f"{key}: tolerance must be positive, got {tolerance}")
        statistic, error = _mean_and_error(values)
        critical = critical_value(values.size - 1)
        margin = _margin(tolerance - abs(statistic - target), 0.0, 1.0, error)
        return cls(key, paper, statement, f"in {fmt.format(target)} +- {fmt.format(tolerance)}", statistic, error,
                   values.size, f"t interval over {values.size} seeds inside the band", margin, critical,
                   _verdict(margin, critical), tuple(values.tolist()), fmt)

    @classmethod
    def bootstrap(cls, key: str, paper: str, statement: str, samples: Sequence[Sequence[float]],
                  statistic: Callable[..., float], *, above: float | None = None, below: float | None = None,
                  seed: int = 0, resamples: int = BOOTSTRAP_RESAMPLES, fmt: str = "{:.3g}") -> Claim:
        """A statistic of one or more groups of per-seed values (each group resampled with
        replacement on its own, `resamples` times, from a fixed `seed`) is above (or below) a
        threshold; the standard error is the bootstrap standard deviation."""
        groups = [_samples(f"{key} (group {i})", group) for i, group in enumerate(samples)]
        threshold, sign, comparison = _direction(above, below)
        value = float(statistic(*groups))
        rng = np.random.default_rng(seed)
        draws = [statistic(*(g[rng.integers(0, g.size, g.size)] for g in groups)) for _ in range(resamples)]
        error = float(np.std(draws, ddof=1))
        margin = _margin(value, threshold, sign, error)
        critical = critical_value(math.inf)
        n = int(min(g.size for g in groups))
        return cls(key, paper, statement, f"{comparison} {fmt.format(threshold)}", value, error, n,
                   f"bootstrap over {'/'.join(str(g.size) for g in groups)} seeds", margin, critical,
                   _verdict(margin, critical), tuple(np.concatenate(groups).tolist()), fmt)

    @classmethod
    def exact(cls, key: str, paper: str, statement: str, value: float, *, above: float | None = None,
              below: float | None = None, tolerance: float, fmt: str = "{:.3g}") -> Claim:
        """A deterministic value (no seeds to average) is above (or below) a threshold by more
        than its numerical `tolerance`; the margin is counted in tolerances."""
        if not tolerance > 0:
            raise ValueError(f"{key}: tolerance must be positive, got {tolerance}")
        threshold, sign, comparison = _direction(above, below)
        value = float(value)
        margin = _margin(value, threshold, sign, float(tolerance))
        return cls(key, paper, statement, f"{comparison} {fmt.format(threshold)}", value, float(tolerance), 1,
                   f"deterministic, tolerance {tolerance:g}", margin, 1.0, _verdict(margin, 1.0), (), fmt)


@dataclasses.dataclass(frozen=True)
class Check:
    """What only a bug can break: an identity, an algebraic consequence, a closed form, a bound
    the algorithm guarantees. Build one with `Check.at_most`, `Check.at_least` or
    `Check.that`."""

    key: str
    source: str
    statement: str
    expected: str
    measured: str
    passed: bool

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def at_most(cls, key: str, source: str, statement: str, value: float, bound: float,
                fmt: str = "{:.3g}") -> Check:
        """Passes when `value <= bound` (a NaN fails)."""
        value = float(value)
        return cls(key, source, statement, f"<= {fmt.format(bound)}", fmt.format(value), bool(value <= bound))

    @classmethod
    def at_least(cls, key: str, source: str, statement: str, value: float, bound: float,
                 fmt: str = "{:.3g}") -> Check:
        """Passes when `value >= bound` (a NaN fails)."""
        value = float(value)
        return cls(key, source, statement, f">= {fmt.format(bound)}", fmt.format(value), bool(value >= bound))

    @classmethod
    def that(cls, key: str, source: str, statement: str, passed: bool, expected: str, measured: Any) -> Check:
        """Passes when `passed`; `expected` and `measured` say what was compared, in words."""
        return cls(key, source, statement, str(expected), str(measured), bool(passed))


# ----------------------------------------------------------------------------- summaries


def split(items: Sequence[Claim | Check]) -> tuple[list[Claim], list[Check]]:
    """An experiment's `claims()` as (claims, checks), each in order; raises `TypeError` on
    anything else and `ValueError` on a repeated key."""
    claims, checks, keys = [], [], set()
    for item in items:
        if isinstance(item, Claim):
            claims.append(item)
        elif isinstance(item, Check):
            checks.append(item)
        else:
            raise TypeError(f"claims() must return Claim and Check objects, got {type(item).__name__}")
        if item.key in keys:
            raise ValueError(f"claim key {item.key!r} is used twice")
        keys.add(item.key)
    return claims, checks


def summary(claims: Sequence[Claim], checks: Sequence[Check]) -> dict[str, Any]:
    """Counts of each verdict, checks passed, and the claim closest to its decision
    (the smallest absolute margin in units of its critical value)."""
    counts = {verdict: sum(c.verdict == verdict for c in claims) for verdict in VERDICTS}
    closest = min((c for c in claims if not math.isnan(c.margin)),
                  key=lambda c: abs(c.margin) / c.critical, default=None)
    return {**counts, "claims": len(claims), "checks_passed": sum(c.passed for c in checks), "checks": len(checks),
            "smallest_margin": None if closest is None else closest.margin,
            "smallest_margin_key": None if closest is None else closest.key}
