"""Tests of jaxdl.core.ranks against SciPy's Kendall tau and granulated coefficients worked by hand."""
import numpy as np
import pytest
from scipy import stats

from jaxdl.core import ranks


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kendall_tau_is_scipys_tau_b_with_and_without_ties(seed):
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=40), rng.normal(size=40)
    assert ranks.kendall_tau(x, y) == pytest.approx(stats.kendalltau(x, y).statistic, abs=1e-12)
    x_ties, y_ties = np.round(x), np.round(y + 0.5 * x)
    assert ranks.kendall_tau(x_ties, y_ties) == pytest.approx(stats.kendalltau(x_ties, y_ties).statistic, abs=1e-12)
    assert ranks.kendall_tau(x, x) == 1.0 and ranks.kendall_tau(x, -x) == -1.0
    assert np.isnan(ranks.kendall_tau(np.ones(5), np.arange(5)))
    with pytest.raises(ValueError, match="y"):
        ranks.kendall_tau(x, y[:-1])


def test_granulated_tau_by_hand():
    """Two axes of two values, four networks: the measure follows the gap along 'lr' and
    against it along 'width'."""
    lr, width = [1, 2, 1, 2], [10, 10, 20, 20]
    gap = [0.1, 0.2, 0.3, 0.5]
    measure = [1.0, 2.0, 0.5, 1.5]  # up with lr at each width; down with width at each lr
    out = ranks.granulated_tau(measure, gap, {"lr": lr, "width": width})
    assert out["psi"] == {"lr": 1.0, "width": -1.0} and out["Psi"] == 0.0
    assert out["groups"] == {"lr": 2, "width": 2}
    # Pooled over the other axis's groups: the whole grid's tau is a different number.
    assert ranks.kendall_tau(measure, gap) == pytest.approx(stats.kendalltau(measure, gap).statistic)
    # A group without a ranking (equal gaps) is left out; an axis without any is NaN.
    flat = ranks.granulated_tau(measure, [0.1, 0.1, 0.3, 0.3], {"lr": lr, "width": width})
    assert np.isnan(flat["psi"]["lr"]) and flat["groups"]["lr"] == 0 and flat["psi"]["width"] == -1.0
    with pytest.raises(ValueError, match="hyperparameters"):
        ranks.granulated_tau(measure, gap, {"lr": lr[:3]})


def test_bootstrap_interval_of_a_mean_matches_its_standard_error():
    rng = np.random.default_rng(0)
    values = rng.normal(size=200)
    sd, low, high = ranks.bootstrap_interval(lambda i: values[i].mean(), 200, resamples=2000)
    assert sd == pytest.approx(values.std(ddof=1) / np.sqrt(200), rel=0.1)
    assert low < values.mean() < high and high - low == pytest.approx(2 * 1.96 * sd, rel=0.15)
    with pytest.raises(ValueError, match="num_items"):
        ranks.bootstrap_interval(lambda i: 0.0, 1)
