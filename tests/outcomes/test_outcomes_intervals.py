"""Intervals: Wilson against published values, cluster-robust ratios and means by hand.

Tolerances: published four-decimal values are matched to 5e-5 (half the last
printed digit); hand calculations below are matched to 1e-6.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from knowdo.errors import ParameterError
from knowdo.outcomes import (
    cluster_proportion,
    cluster_ratio,
    mean_interval,
    smd_means,
    smd_proportions,
    wilson,
)
from knowdo.outcomes.intervals import grouped_cluster_ratio, grouped_mean

PUBLISHED = 5e-5
HAND = 1e-6


# Newcombe RG. Two-sided confidence intervals for the single proportion: comparison of seven
# methods. Stat Med 1998;17:857-872, Table I, method 3 (Wilson score interval without continuity
# correction), 95%.
@pytest.mark.parametrize(
    ("k", "n", "low", "high"),
    [
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0000, 0.1611),
        (1, 29, 0.0061, 0.1718),
    ],
)
def test_wilson_matches_newcombe_1998_table_1(k: int, n: int, low: float, high: float) -> None:
    got_low, got_high = wilson(k, n)
    assert got_low == pytest.approx(low, abs=PUBLISHED)
    assert got_high == pytest.approx(high, abs=PUBLISHED)


def test_wilson_by_hand_for_81_of_263() -> None:
    # z = 1.959964, z^2 = 3.841459, p = 81/263 = 0.307985
    # denominator 1 + z^2/n = 1 + 0.014606 = 1.014606
    # centre = (p + z^2/(2n)) / 1.014606 = (0.307985 + 0.007303) / 1.014606 = 0.310749
    # half = z * sqrt(p(1-p)/n + z^2/(4n^2)) / 1.014606
    #      = 1.959964 * sqrt(0.000810396 + 0.0000138838) / 1.014606 = 0.055461
    # -> (0.255289, 0.366210)
    low, high = wilson(81, 263)
    assert low == pytest.approx(0.255289, abs=HAND)
    assert high == pytest.approx(0.366210, abs=HAND)


def test_wilson_is_vectorised_and_returns_nan_for_empty_denominators() -> None:
    low, high = wilson(np.array([81, 15, 0, 0]), np.array([263, 148, 0, 10]))
    assert isinstance(low, np.ndarray)
    assert low.shape == (4,)
    assert low[0] == pytest.approx(0.2553, abs=PUBLISHED)
    assert high[1] == pytest.approx(0.1605, abs=PUBLISHED)
    assert np.isnan(low[2]) and np.isnan(high[2])
    assert low[3] == 0.0


def test_wilson_scalar_input_gives_floats() -> None:
    low, high = wilson(3, 10)
    assert isinstance(low, float) and isinstance(high, float)
    assert 0 < low < 0.3 < high < 1


def test_wilson_rejects_numerator_above_denominator() -> None:
    with pytest.raises(ParameterError, match="'k' must lie between 0 and 'n'"):
        wilson(11, 10)


def test_wilson_rejects_bad_level() -> None:
    with pytest.raises(ParameterError, match="'level' must be a number between 0 and 1"):
        wilson(1, 10, level=95)


def test_wilson_coverage_is_close_to_nominal() -> None:
    # Exact coverage from the binomial distribution over a grid of p in [0.05, 0.95]: the Wilson
    # interval's coverage oscillates around the nominal 95% rather than falling short like the Wald interval.
    for n in (20, 50, 200):
        k = np.arange(n + 1)
        low, high = wilson(k, np.full(n + 1, n))
        coverage = [stats.binom.pmf(k, n, p)[(low <= p) & (p <= high)].sum() for p in np.arange(0.05, 0.951, 0.01)]
        assert 0.94 <= np.mean(coverage) <= 0.96
        assert min(coverage) >= 0.90


def test_cluster_ratio_by_hand() -> None:
    # clusters (k, n): (2, 10), (3, 10), (5, 20); R = 10 / 40 = 0.25
    # residuals k - R n: 2 - 2.5 = -0.5, 3 - 2.5 = 0.5, 5 - 5 = 0 -> sum of squares 0.5
    # var = G/(G-1) * 0.5 / 40^2 = 1.5 * 0.5 / 1600 = 0.00046875 -> se = 0.0216506
    # t(0.975, df = G - 1 = 2) = 4.302653 -> half width 0.0931552 -> (0.156845, 0.343155)
    r = cluster_ratio([2, 3, 5], [10, 10, 20])
    assert r.estimate == pytest.approx(0.25, abs=HAND)
    assert r.std_error == pytest.approx(0.0216506, abs=HAND)
    assert r.df == 2
    assert r.n == 3
    assert r.conf_low == pytest.approx(0.156845, abs=HAND)
    assert r.conf_high == pytest.approx(0.343155, abs=HAND)


def test_cluster_ratio_uses_t_on_clusters_minus_one() -> None:
    k, n = [2, 3, 5], [10, 10, 20]
    r = cluster_ratio(k, n)
    t2 = stats.t.ppf(0.975, 2)
    assert r.conf_high - r.estimate == pytest.approx(t2 * r.std_error, abs=HAND)


def test_cluster_ratio_single_cluster_has_no_interval() -> None:
    r = cluster_ratio([4], [10])
    assert r.estimate == pytest.approx(0.4)
    assert np.isnan(r.std_error) and np.isnan(r.conf_low) and np.isnan(r.conf_high)


def test_cluster_proportion_clips_to_unit_interval() -> None:
    # R = 19/20 = 0.95; the t interval on 1 df is wide, so the upper bound is cut at 1
    r = cluster_proportion([10, 9], [10, 10])
    assert r.estimate == pytest.approx(0.95)
    assert r.conf_high == 1.0
    assert 0.0 <= r.conf_low < 0.95


def test_cluster_proportion_rejects_impossible_counts() -> None:
    with pytest.raises(ParameterError, match="k_by_cluster"):
        cluster_proportion([11, 2], [10, 10])


def test_mean_interval_by_hand() -> None:
    # values 1, 2, 3, 4: mean 2.5, sd sqrt(5/3) = 1.290994, se = 0.645497
    # t(0.975, 3) = 3.182446 -> half width 2.054261 -> (0.445739, 4.554261)
    r = mean_interval([1, 2, 3, 4, np.nan])
    assert r.estimate == pytest.approx(2.5)
    assert r.n == 4
    assert r.conf_low == pytest.approx(0.445739, abs=HAND)
    assert r.conf_high == pytest.approx(4.554261, abs=HAND)


def test_mean_interval_with_clusters_by_hand() -> None:
    # clusters a: (1, 2), b: (3, 4); sums 3 and 7, counts 2 and 2; mean = 10 / 4 = 2.5
    # residuals 3 - 2.5*2 = -2 and 7 - 5 = 2 -> var = 2/1 * 8 / 16 = 1, se = 1
    # t(0.975, 1) = 12.706205 -> (-10.206205, 15.206205)
    r = mean_interval([1, 2, 3, 4], clusters=["a", "a", "b", "b"])
    assert r.estimate == pytest.approx(2.5)
    assert r.std_error == pytest.approx(1.0)
    assert r.conf_low == pytest.approx(-10.206205, abs=HAND)
    assert r.conf_high == pytest.approx(15.206205, abs=HAND)


def test_smd_for_proportions_by_hand() -> None:
    # (0.6 - 0.5) / sqrt((0.6*0.4 + 0.5*0.5) / 2) = 0.1 / sqrt(0.245) = 0.1 / 0.494975 = 0.202031
    assert smd_proportions(0.6, 0.5) == pytest.approx(0.202031, abs=HAND)
    # (0.2 - 0.4) / sqrt((0.16 + 0.24) / 2) = -0.2 / sqrt(0.2) = -0.447214
    out = smd_proportions(np.array([0.2, 0.0, 1.0]), np.array([0.4, 0.0, 0.0]))
    assert out[0] == pytest.approx(-0.447214, abs=HAND)
    assert out[1] == 0.0  # equal proportions with no variance
    assert np.isnan(out[2])  # different proportions with no variance


def test_smd_for_means_by_hand() -> None:
    # (12 - 10) / sqrt((4 + 4) / 2) = 2 / 2 = 1
    assert smd_means(12.0, 2.0, 10.0, 2.0) == pytest.approx(1.0)
    # (3 - 5) / sqrt((1 + 9) / 2) = -2 / sqrt(5) = -0.894427
    assert smd_means(3.0, 1.0, 5.0, 3.0) == pytest.approx(-0.894427, abs=HAND)


def test_grouped_versions_agree_with_the_scalar_functions() -> None:
    frame = pd.DataFrame(
        {
            "g": ["x", "x", "x", "x", "y", "y"],
            "site": ["a", "a", "b", "c", "a", "b"],
            "k": [1, 1, 3, 5, 4, 6],
            "n": [5, 5, 10, 20, 10, 10],
        }
    )
    out = grouped_cluster_ratio(frame, ["g"], "site", "k", "n").set_index("g")
    x = cluster_ratio([2, 3, 5], [10, 10, 20])
    assert out.loc["x", "estimate"] == pytest.approx(x.estimate)
    assert out.loc["x", "conf_low"] == pytest.approx(x.conf_low)
    assert out.loc["x", "n_clusters"] == 3
    y = cluster_ratio([4, 6], [10, 10])
    assert out.loc["y", "conf_high"] == pytest.approx(y.conf_high)

    means = grouped_mean(frame.assign(v=frame["k"].astype(float)), ["g"], "v").set_index("g")
    m = mean_interval([1, 1, 3, 5])
    assert means.loc["x", "estimate"] == pytest.approx(m.estimate)
    assert means.loc["x", "conf_low"] == pytest.approx(m.conf_low)
