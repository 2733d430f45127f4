"""Interrupted time series against the Sicily smoking-ban analysis (Lopez Bernal, Cummins & Gasparrini 2017).

Reference: the authors' models M1-M4 on the authors' data (reference README §4;
the corrected 2020 Rcode.R in gasparrini/2017_lopezbernal_IJE_codedata).
Tolerance: the printed precision, i.e. rate ratios and limits to 4 decimals
(|diff| <= 5e-5), dispersion to 3 decimals (5e-4).
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from knowdo.designs.its import its

RR_TOL = 5e-5  # half a unit in the 4th decimal printed in the reference table
DISPERSION_TOL = 5e-4  # half a unit in the 3rd decimal


@pytest.fixture(scope="module")
def sicily(shared_dir: Path) -> pd.DataFrame:
    return pd.read_csv(shared_dir / "reference" / "sicily_smoking_ban_aces.csv")


BASE = {"outcome": "aces", "time": "time", "start": 37, "offset": "stdpop", "errors": "iid"}
SEASONAL = {"seasonality": "fourier", "season": "month", "harmonics": 2, "season_length": 12}

# model: (settings, rate ratio, CI low, CI high, dispersion or None); README §4 table
MODELS = {
    "M1 Poisson": ({"family": "poisson", "slope_change": False}, 0.8944, 0.8647, 0.9251, None),
    "M2 quasi-Poisson": ({"family": "quasipoisson", "slope_change": False}, 0.8944, 0.8392, 0.9532, 3.559),
    "M3 quasi-Poisson + harmonics": (
        {"family": "quasipoisson", "slope_change": False, **SEASONAL}, 0.8851, 0.8394, 0.9332, 2.262),
    "M4 M3 + slope change": ({"family": "quasipoisson", "slope_change": True, **SEASONAL}, 0.8765, 0.8268, 0.9292,
                             2.275),
}


@pytest.mark.parametrize("name", list(MODELS))
def test_sicily_rate_ratios(sicily: pd.DataFrame, name: str) -> None:
    settings, rr, low, high, dispersion = MODELS[name]
    effect = its(sicily, **BASE, **settings)
    assert effect.diagnostics["rate_ratio"] == pytest.approx(rr, abs=RR_TOL)
    assert effect.diagnostics["rate_ratio_conf_low"] == pytest.approx(low, abs=RR_TOL)
    assert effect.diagnostics["rate_ratio_conf_high"] == pytest.approx(high, abs=RR_TOL)
    # the headline is the log rate ratio, so exp() of it is the rate ratio
    assert math.exp(effect.estimate) == pytest.approx(effect.diagnostics["rate_ratio"], rel=1e-12)
    assert effect.term == "log_rate_ratio"
    if dispersion is not None:
        assert effect.diagnostics["dispersion"] == pytest.approx(dispersion, abs=DISPERSION_TOL)


def test_sicily_m3_underlying_trend(sicily: pd.DataFrame) -> None:
    # README §4: M3 12-month underlying trend RR 1.0668
    effect = its(sicily, **BASE, family="quasipoisson", slope_change=False, **SEASONAL)
    coefs = effect.details["coefficients"].set_index("term")
    assert math.exp(12 * coefs.loc["time", "estimate"]) == pytest.approx(1.0668, abs=RR_TOL)


def test_sicily_counterfactual_path(sicily: pd.DataFrame) -> None:
    effect = its(sicily, **BASE, family="quasipoisson", slope_change=False, **SEASONAL)
    series = effect.details["series"]
    assert len(series) == 59
    post = series[series["post"] == 1]
    pre = series[series["post"] == 0]
    # before the ban the counterfactual is the fitted model itself
    assert (pre["counterfactual"] - pre["fitted"]).abs().max() < 1e-9
    # after it the fitted/counterfactual ratio is the constant rate ratio (no slope change in M3)
    ratio = post["fitted"] / post["counterfactual"]
    assert ratio.to_numpy() == pytest.approx(effect.diagnostics["rate_ratio"], rel=1e-9)
    assert (post["counterfactual_low"] < post["counterfactual"]).all()
    assert (post["counterfactual"] < post["counterfactual_high"]).all()
    # path: one log-rate-ratio per post month, equal to the level change in M3
    assert len(effect.path) == 23
    assert effect.path["estimate"].to_numpy() == pytest.approx(effect.estimate, rel=1e-12)
