"""Interrupted time series on simulated series with known effects, and its input errors."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from knowdo.designs.its import InterruptedTimeSeries, its, newey_west_lags
from knowdo.errors import ParameterError


def _series(n: int = 60, start: int = 31, level: float = 3.0, slope: float = 0.5, sd: float = 0.0,
            phi: float = 0.0, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    t = np.arange(1, n + 1)
    post = (t >= start).astype(float)
    e = np.zeros(n)
    for i in range(n):
        e[i] = (phi * e[i - 1] if i else 0.0) + rng.normal(0, sd) if sd else 0.0
    y = 10 + 0.2 * t + level * post + slope * (t - start + 1) * post + e
    return pd.DataFrame({"t": t, "y": y})


def test_noise_free_series_is_recovered_exactly() -> None:
    effect = its(_series(), outcome="y", time="t", start=31, errors="iid")
    assert effect.estimate == pytest.approx(3.0, abs=1e-9)
    assert effect.diagnostics["slope_change"] == pytest.approx(0.5, abs=1e-9)
    # path: level + slope * k for k = 1..30
    assert effect.path["estimate"].to_numpy() == pytest.approx(3.0 + 0.5 * np.arange(1, 31), abs=1e-8)


def test_average_estimand_is_mean_of_path() -> None:
    df = _series(sd=1.0, seed=1)
    level = its(df, outcome="y", time="t", start=31, errors="iid")
    average = its(df, outcome="y", time="t", start=31, errors="iid", estimand="average")
    assert average.estimate == pytest.approx(level.path["estimate"].mean(), rel=1e-10)
    assert average.estimate == pytest.approx(3.0 + 0.5 * 15.5, abs=4 * average.std_error)


def test_ar1_errors_recovered_by_ml() -> None:
    df = _series(n=150, start=76, sd=1.0, phi=0.6, seed=3)
    effect = its(df, outcome="y", time="t", start=76, errors="ar", ar_order=1)
    assert effect.diagnostics["ar_coefficients"][0] == pytest.approx(0.6, abs=0.15)
    assert abs(effect.estimate - 3.0) < 4 * effect.std_error
    # OLS residuals are autocorrelated, GLS-whitened ones are not
    ols = its(df, outcome="y", time="t", start=76, errors="iid")
    assert ols.diagnostics["residual_lag1_autocorrelation"] > 0.35
    assert abs(effect.diagnostics["residual_lag1_autocorrelation"]) < 0.2


def test_newey_west_widens_se_under_positive_autocorrelation() -> None:
    df = _series(n=150, start=76, sd=1.0, phi=0.7, seed=4)
    iid = its(df, outcome="y", time="t", start=76, errors="iid")
    nw = its(df, outcome="y", time="t", start=76, errors="newey-west")
    assert nw.estimate == pytest.approx(iid.estimate)  # same OLS point estimate
    assert nw.std_error > iid.std_error
    assert nw.diagnostics["newey_west_maxlags"] == newey_west_lags(150) == 4


def test_controlled_its_removes_a_shared_shock() -> None:
    rng = np.random.default_rng(5)
    t = np.arange(1, 49)
    shock = np.where(t >= 25, 4.0, 0.0)  # hits both series at the intervention date
    rows = []
    for g in (0, 1):
        y = 20 + 0.1 * t + shock + g * (2.0 + 1.5 * (t >= 25)) + rng.normal(0, 0.3, len(t))
        rows.append(pd.DataFrame({"t": t, "treated_series": g, "y": y}))
    df = pd.concat(rows, ignore_index=True)
    single = its(df[df.treated_series == 1], outcome="y", time="t", start=25, errors="iid")
    controlled = its(df, outcome="y", time="t", start=25, group="treated_series", errors="iid")
    assert single.estimate == pytest.approx(5.5, abs=0.6)  # shock + effect: biased
    assert controlled.estimate == pytest.approx(1.5, abs=3 * controlled.std_error)
    assert controlled.design == "cits"
    assert set(controlled.details["series"]["series"]) == {"treated", "comparison"}
    nw = its(df, outcome="y", time="t", start=25, group="treated_series")
    assert nw.estimate == pytest.approx(controlled.estimate)


def test_negative_binomial_rate_ratio_with_offset_and_month_dummies() -> None:
    rng = np.random.default_rng(6)
    periods = pd.date_range("2019-01-01", periods=72, freq="MS")
    t = np.arange(1, 73)
    pop = np.linspace(50_000, 60_000, 72)
    season = 1 + 0.2 * np.cos(2 * np.pi * periods.month / 12)
    mu = pop / 1000 * 2.0 * np.exp(0.003 * t) * season * np.where(t >= 37, 0.8, 1.0)
    y = rng.negative_binomial(20, 20 / (20 + mu))
    df = pd.DataFrame({"period": periods, "y": y, "pop": pop})
    effect = its(df, outcome="y", start="2022-01-01", family="negbin", offset="pop", seasonality="month",
                 slope_change=False)
    assert effect.diagnostics["rate_ratio"] == pytest.approx(0.8, abs=3 * 0.8 * effect.std_error)
    assert effect.diagnostics["negbin_alpha"] > 0
    assert effect.path["time"].iloc[0] == "2022-01-01"
    assert any(c.startswith("season_") for c in effect.details["coefficients"]["term"])


def test_panel_strata_are_fitted_separately() -> None:
    base = _series(sd=0.5, seed=7)
    parts = [base.assign(dimension="all", stratum="all")]
    for stratum, shift in (("female", 1.0), ("male", 0.0)):
        parts.append(base.assign(y=base.y + shift * (base.t >= 31), dimension="sex", stratum=stratum))
    effect = its(pd.concat(parts, ignore_index=True), outcome="y", time="t", start=31, errors="iid")
    strata = effect.strata.set_index("stratum")
    assert strata.loc["female", "estimate"] - strata.loc["male", "estimate"] == pytest.approx(1.0, abs=1e-8)
    assert strata.loc["male", "estimate"] == pytest.approx(effect.estimate, abs=1e-8)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"family": "binomial"}, "family='binomial' is not accepted; use one of 'gaussian'"),
        ({"start": 500}, "leaves no post-intervention"),
        ({"start": 2}, "pre-intervention period"),
        ({"family": "poisson", "errors": "ar"}, "errors='ar' is for family='gaussian'"),
        ({"offset": "y"}, "offset='y' applies to count families"),
        ({"seasonality": "fourier"}, "needs the position in the seasonal cycle"),
        ({"outcome": "missing"}, "column(s) 'missing' not found"),
        ({"level": 5}, "level=5 must be a number between 0.5 and 1"),
    ],
)
def test_user_errors_say_what_to_do(settings: dict[str, object], message: str) -> None:
    df = _series(sd=1.0)
    args = {"outcome": "y", "time": "t", "start": 31, **settings}
    with pytest.raises(ParameterError, match=re.escape(message)):
        InterruptedTimeSeries(**args).fit(df)  # type: ignore[arg-type]


def test_duplicate_periods_are_refused() -> None:
    df = pd.concat([_series(), _series()], ignore_index=True)
    with pytest.raises(ParameterError, match="more than one row per period"):
        its(df, outcome="y", time="t", start=31)

