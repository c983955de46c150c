"""The claim protocol (experiments.framework.claims) against independent references: SciPy's
t-tests for the margins, Student's t quantiles for the critical values, and hand-worked cases
for the verdicts."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from experiments.framework import claims as claims_lib
from experiments.framework.claims import HELD, INCONCLUSIVE, NOT_HELD, Check, Claim

RNG = np.random.default_rng(0)
A = RNG.normal(1.0, 0.3, size=7)
B = RNG.normal(0.7, 0.5, size=5)


def test_critical_value_is_the_one_sided_t_quantile_and_never_below_two():
    assert claims_lib.critical_value(4) == pytest.approx(2.1318, abs=1e-4)  # t_{0.95, 4} from tables
    assert claims_lib.critical_value(9) == 2.0  # t_{0.95, 9} = 1.833 < 2
    assert claims_lib.critical_value(1) == pytest.approx(6.3138, abs=1e-4)
    assert claims_lib.critical_value(math.inf) == 2.0


def test_mean_margin_is_scipys_one_sample_t():
    claim = Claim.mean("k", "P", "s", A, above=0.8)
    assert claim.margin == pytest.approx(stats.ttest_1samp(A, 0.8).statistic)
    assert claim.statistic == pytest.approx(A.mean())
    assert claim.standard_error == pytest.approx(stats.sem(A))
    assert claim.n == 7 and claim.threshold == "> 0.8" and claim.samples == tuple(A)
    below = Claim.mean("k", "P", "s", A, below=0.8)
    assert below.margin == pytest.approx(-claim.margin) and below.threshold == "< 0.8"


@pytest.mark.parametrize("threshold, verdict", [(0.5, HELD), (1.0, INCONCLUSIVE), (1.6, NOT_HELD)])
def test_mean_verdict_agrees_with_the_one_sided_p_value(threshold, verdict):
    claim = Claim.mean("k", "P", "s", A, above=threshold)
    p_for = stats.ttest_1samp(A, threshold, alternative="greater").pvalue
    p_against = stats.ttest_1samp(A, threshold, alternative="less").pvalue
    assert claim.verdict == verdict
    if verdict == HELD:
        assert p_for < 0.05 and claim.margin >= 2
    if verdict == NOT_HELD:
        assert p_against < 0.05 and claim.margin <= -2
    if verdict == INCONCLUSIVE:
        assert abs(claim.margin) < claim.critical


def test_two_standard_errors_are_needed_even_with_many_seeds():
    samples = np.array([1.0, 1.2] * 20)  # t_{0.95, 39} = 1.68 would pass at a margin of 1.7
    threshold = samples.mean() - 1.7 * stats.sem(samples)
    assert Claim.mean("k", "P", "s", samples, above=threshold).verdict == INCONCLUSIVE


def test_welch_difference_matches_scipy_with_welch_degrees_of_freedom():
    claim = Claim.difference("k", "P", "s", A, B, above=0.0)
    reference = stats.ttest_ind(A, B, equal_var=False)
    assert claim.margin == pytest.approx(reference.statistic)
    assert claim.statistic == pytest.approx(A.mean() - B.mean())
    va, vb = A.var(ddof=1) / A.size, B.var(ddof=1) / B.size
    df = (va + vb) ** 2 / (va**2 / (A.size - 1) + vb**2 / (B.size - 1))
    assert claim.critical == pytest.approx(max(2.0, stats.t.ppf(0.95, df)))
    shifted = Claim.difference("k", "P", "s", A, B, above=0.1)
    assert shifted.margin == pytest.approx(stats.ttest_ind(A - 0.1, B, equal_var=False).statistic)


def test_paired_difference_matches_scipys_related_t():
    other = A + RNG.normal(0.05, 0.01, size=A.size)
    claim = Claim.difference("k", "P", "s", other, A, above=0.0, paired=True)
    assert claim.margin == pytest.approx(stats.ttest_rel(other, A).statistic)
    assert claim.verdict == HELD and claim.rule.startswith("paired")
    with pytest.raises(ValueError, match="as many"):
        Claim.difference("k", "P", "s", A, B, above=0.0, paired=True)


def test_ratio_is_a_t_test_on_logs():
    a, b = np.exp(A), np.exp(B)
    claim = Claim.ratio("k", "P", "s", a, b, above=1.0)
    assert claim.margin == pytest.approx(stats.ttest_ind(A, B, equal_var=False).statistic)
    assert claim.statistic == pytest.approx(math.exp(A.mean() - B.mean()))
    with pytest.raises(ValueError, match="positive"):
        Claim.ratio("k", "P", "s", -a, b, above=1.0)


def test_within_is_held_only_when_the_interval_is_inside_the_band():
    samples = np.array([0.98, 1.02, 1.0, 0.99, 1.01])
    se = stats.sem(samples)
    inside = Claim.within("k", "P", "s", samples, target=1.0, tolerance=0.1)
    assert inside.verdict == HELD and inside.margin == pytest.approx(0.1 / se)
    assert Claim.within("k", "P", "s", samples, target=1.5, tolerance=0.1).verdict == NOT_HELD
    assert Claim.within("k", "P", "s", samples, target=1.085, tolerance=0.1).verdict == INCONCLUSIVE


def test_bootstrap_standard_error_approaches_the_analytic_one():
    samples = RNG.normal(2.0, 1.0, size=40)
    claim = Claim.bootstrap("k", "P", "s", [samples], np.mean, above=1.0, seed=3)
    assert claim.standard_error == pytest.approx(stats.sem(samples), rel=0.1)
    assert claim.statistic == pytest.approx(samples.mean())
    again = Claim.bootstrap("k", "P", "s", [samples], np.mean, above=1.0, seed=3)
    assert again == claim  # a fixed seed: the same numbers


def test_exact_counts_its_margin_in_tolerances():
    claim = Claim.exact("k", "P", "s", 1.3, above=1.0, tolerance=0.1)
    assert claim.margin == pytest.approx(3.0) and claim.verdict == HELD and claim.n == 1
    assert Claim.exact("k", "P", "s", 1.05, above=1.0, tolerance=0.1).verdict == INCONCLUSIVE
    assert Claim.exact("k", "P", "s", 0.5, above=1.0, tolerance=0.1).verdict == NOT_HELD
    assert Claim.exact("k", "P", "s", 0.5, below=1.0, tolerance=0.1).verdict == HELD


def test_degenerate_samples():
    assert Claim.mean("k", "P", "s", [1.0, 1.0, 1.0], above=0.99).verdict == HELD  # zero spread, clear
    assert Claim.mean("k", "P", "s", [1.0, 1.0], above=1.0).verdict == INCONCLUSIVE  # zero spread, at it
    assert Claim.mean("k", "P", "s", [0.5], above=0.1).verdict == INCONCLUSIVE  # one seed: no error
    assert Claim.mean("k", "P", "s", [0.5, math.nan, 0.6], above=0.1).verdict == INCONCLUSIVE
    with pytest.raises(ValueError, match="exactly one"):
        Claim.mean("k", "P", "s", A, above=1.0, below=2.0)
    with pytest.raises(ValueError, match="no measurements"):
        Claim.mean("k", "P", "s", [], above=1.0)


def test_measured_text_and_dict():
    claim = Claim.mean("k", "P", "s", [1.0, 2.0, 3.0], above=0.0, fmt="{:.2f}")
    assert claim.measured == "2.00 +- 0.58 (n=3)"
    assert claim.to_dict()["measured"] == claim.measured and claim.to_dict()["key"] == "k"
    assert Claim.exact("k", "P", "s", 1.5, above=1.0, tolerance=0.1).measured == "1.5"


def test_checks_and_split_and_summary():
    checks = [Check.at_most("a", "algebra", "s", 1e-7, 1e-5), Check.at_least("b", "algebra", "s", 0.5, 1.0),
              Check.that("c", "algebra", "s", True, "0 mismatches", 0), Check.at_most("d", "x", "s", math.nan, 1.0)]
    assert [c.passed for c in checks] == [True, False, True, False]
    claims = [Claim.mean("m", "P", "s", A, above=0.5), Claim.mean("n", "P", "s", A, above=1.6),
              Claim.mean("o", "P", "s", A, above=1.0)]
    got_claims, got_checks = claims_lib.split(claims + checks)
    assert got_claims == claims and got_checks == checks
    summary = claims_lib.summary(got_claims, got_checks)
    assert (summary["held"], summary["not held"], summary["inconclusive"]) == (1, 1, 1)
    assert (summary["checks_passed"], summary["checks"]) == (2, 4)
    assert summary["smallest_margin_key"] == "o"
    with pytest.raises(ValueError, match="'m' is used twice"):
        claims_lib.split(claims + [claims[0]])
    with pytest.raises(TypeError, match="Claim and Check"):
        claims_lib.split([1.0])
