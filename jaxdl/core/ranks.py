"""Rank correlations of a measure with an outcome over a grid of trained networks: Kendall's tau
over all of them and Jiang et al. 2020's granulated tau (Psi), with bootstrap intervals.

Jiang, Neyshabur, Mobahi, Krishnan & Bengio 2020 ("Fantastic generalization measures and where
to find them", section 4) ask whether a measure mu ranks networks as their generalisation gap g
does: Kendall's tau(mu, g) over every network, and, to see which hyper-parameter's effect the
measure captures, the granulated coefficient

    psi_i = mean over the groups of networks that agree on every hyper-parameter but i
            of tau(mu, g) within the group,     Psi = mean_i psi_i.

A group whose gaps (or measures) are all equal has no ranking to agree with and is left out.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from jaxdl.core import checks

__all__ = ["kendall_tau", "granulated_tau", "bootstrap_interval"]


def kendall_tau(x, y) -> float:
    """Kendall's tau-b of two equally long 1-D sequences: (concordant - discordant) pairs over
    sqrt((n0 - ties in x)(n0 - ties in y)), n0 = n (n - 1) / 2; NaN when either is constant.

    Raises ``ValueError`` naming ``y`` when the lengths differ."""
    x, y = np.asarray(x, np.float64).ravel(), np.asarray(y, np.float64).ravel()
    if x.shape != y.shape:
        checks.fail("y", f"{y.size} values", f"as many as x ({x.size})")
    upper = np.triu_indices(x.size, k=1)
    dx = np.sign(x[:, None] - x[None, :])[upper]
    dy = np.sign(y[:, None] - y[None, :])[upper]
    denominator = np.sqrt(np.count_nonzero(dx) * np.count_nonzero(dy))
    return float(np.sum(dx * dy) / denominator) if denominator > 0 else float("nan")


def _groups(hyperparameters: Mapping[str, Sequence], axis: str) -> list[np.ndarray]:
    """Indices of the networks that agree on every hyper-parameter but ``axis``."""
    others = [np.asarray(values) for name, values in hyperparameters.items() if name != axis]
    keys = list(zip(*others)) if others else [()] * len(hyperparameters[axis])
    groups: dict[tuple, list[int]] = {}
    for index, key in enumerate(keys):
        groups.setdefault(tuple(key), []).append(index)
    return [np.asarray(group) for group in groups.values() if len(group) > 1]


def granulated_tau(measure, gap, hyperparameters: Mapping[str, Sequence]) -> dict:
    """Jiang et al.'s granulated Kendall coefficient.

    Args:
      measure, gap: one value per network (N,).
      hyperparameters: name -> the value of that hyper-parameter for each network (N,); include
        the seed as one more entry to keep seeds apart within groups, or leave it out to pool them.

    Returns:
      ``{'psi': {name: psi_i}, 'Psi': mean of the psi_i, 'groups': {name: number of groups used}}``;
      psi_i is NaN when no group of axis i has a ranking.
    """
    measure, gap = np.asarray(measure, np.float64).ravel(), np.asarray(gap, np.float64).ravel()
    if measure.shape != gap.shape:
        checks.fail("gap", f"{gap.size} values", f"one per network ({measure.size})")
    for name, values in hyperparameters.items():
        if len(values) != measure.size:
            checks.fail(f"hyperparameters[{name!r}]", f"{len(values)} values", f"one per network ({measure.size})")
    psi, used = {}, {}
    for axis in hyperparameters:
        taus = [kendall_tau(measure[group], gap[group]) for group in _groups(hyperparameters, axis)]
        taus = [t for t in taus if np.isfinite(t)]
        psi[axis], used[axis] = (float(np.mean(taus)) if taus else float("nan")), len(taus)
    finite = [v for v in psi.values() if np.isfinite(v)]
    return {"psi": psi, "Psi": float(np.mean(finite)) if finite else float("nan"), "groups": used}


def bootstrap_interval(statistic, num_items: int, *, resamples: int = 1000, level: float = 0.95,
                       seed: int = 0) -> tuple[float, float, float]:
    """``(standard deviation, low, high)`` of ``statistic(indices)`` over ``resamples`` draws of
    ``num_items`` indices with replacement (the percentile interval at ``level``); draws whose
    statistic is NaN are dropped.

    Args:
      statistic: ``indices (num_items,) -> float``, e.g. ``lambda i: kendall_tau(mu[i], gap[i])``.
      num_items: how many items (networks) are resampled.
    """
    num_items = checks.integer("num_items", num_items, minimum=2)
    resamples = checks.integer("resamples", resamples, minimum=2)
    level = checks.number("level", level, maximum=1.0)
    rng = np.random.default_rng(seed)
    draws = np.asarray([statistic(rng.integers(0, num_items, num_items)) for _ in range(resamples)], np.float64)
    draws = draws[np.isfinite(draws)]
    if draws.size < 2:
        return float("nan"), float("nan"), float("nan")
    tail = 50.0 * (1.0 - level)
    low, high = np.percentile(draws, [tail, 100.0 - tail])
    return float(np.std(draws, ddof=1)), float(low), float(high)
