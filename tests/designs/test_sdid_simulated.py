"""Synthetic DiD on simulated block designs: recovery, the jackknife, and input errors."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from knowdo.designs.sdid import SyntheticDiD, sdid
from knowdo.errors import ParameterError


def _block(n_control: int = 30, n_treated: int = 5, periods: int = 20, start: int = 14, effect: float = 2.0,
           seed: int = 0) -> pd.DataFrame:
    """Interactive fixed effects: treated units load more on the common factor (plain DiD is biased)."""
    rng = np.random.default_rng(seed)
    n = n_control + n_treated
    factor = np.linspace(0, 3, periods) + rng.normal(0, 0.2, periods).cumsum()
    loading = np.r_[rng.uniform(0.5, 1.5, n_control), rng.uniform(1.2, 1.6, n_treated)]
    alpha = rng.normal(0, 1, n)
    d = np.zeros((n, periods), int)
    d[n_control:, start:] = 1
    y = alpha[:, None] + loading[:, None] * factor[None, :] + effect * d + rng.normal(0, 0.3, (n, periods))
    units, times = np.meshgrid(np.arange(n), np.arange(periods), indexing="ij")
    return pd.DataFrame({"unit": units.ravel(), "time": times.ravel(), "y": y.ravel(), "d": d.ravel()})


SETTINGS = {"unit": "unit", "time": "time", "outcome": "y", "treatment": "d"}


def test_recovers_effect_where_did_is_biased() -> None:
    effect = sdid(_block(), **SETTINGS, replications=50, seed=1)
    assert effect.estimate == pytest.approx(2.0, abs=3 * effect.std_error)
    assert abs(effect.estimate - 2.0) < abs(effect.diagnostics["did_estimate"] - 2.0)
    assert effect.diagnostics["n_treated"] == 5 and effect.diagnostics["pre_periods"] == 14


def test_jackknife_with_several_treated_units() -> None:
    df = _block(seed=2)
    jk = sdid(df, **SETTINGS, se="jackknife")
    placebo = sdid(df, **SETTINGS, replications=100, seed=2)
    assert jk.estimate == placebo.estimate
    assert 0.2 < jk.std_error / placebo.std_error < 5
    assert len(jk.details["placebo"]) == 35  # one leave-one-out estimate per unit


def test_panel_strata() -> None:
    df = _block(seed=3)
    panel = pd.concat([df.assign(dimension="all", stratum="all"),
                       df.assign(y=df.y + df.d, dimension="sex", stratum="female")], ignore_index=True)
    effect = sdid(panel, **SETTINGS, replications=20)
    row = effect.strata.iloc[0]
    assert row["estimate"] == pytest.approx(effect.estimate + 1.0, abs=1e-8)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("too_early", "have only 1 pre-treatment period(s); need at least 2"),
        ("jackknife_one", "the jackknife needs two or more treated units in every adoption cohort"),
        ("se", "se='analytic' is not accepted; use one of 'placebo', 'bootstrap', 'jackknife'"),
        ("off", "switches treatment off"),
    ],
)
def test_user_errors(change: str, message: str) -> None:
    df = _block()
    settings: dict[str, object] = dict(SETTINGS)
    if change == "too_early":
        df.loc[(df.unit == 34) & (df.time >= 1), "d"] = 1
    elif change == "jackknife_one":
        df = df[(df.unit < 30) | (df.unit == 34)]
        settings["se"] = "jackknife"
    elif change == "se":
        settings["se"] = "analytic"
    else:
        df.loc[(df.unit == 34) & (df.time == 19), "d"] = 0
    with pytest.raises(ParameterError, match=re.escape(message)):
        SyntheticDiD(**settings).fit(df)  # type: ignore[arg-type]
