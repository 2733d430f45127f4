"""Regression discontinuity against the US Senate incumbency data (rdrobust's rdrobust_RDsenate).

Reference (README §3): ``rdrobust(y=vote, x=margin)`` with its defaults gives
h = 17.754, b = 28.028, conventional 7.414 (SE 1.459), conventional CI
[4.555, 10.273], bias-corrected 7.507, robust CI [4.094, 10.919] (robust SE
1.741), N 595/702, effective N 360/323 (Calonico, Cattaneo, Farrell &
Titiunik 2017 illustration, reproduced with rdrobust 2.1.1). Also README §3:
covariates class, termshouse, termssenate give 6.850 (SE 1.407), h 18.033;
clustering by state (vce='hc1') gives 7.395 (SE 1.534).
Tolerance: half a unit in the last printed decimal.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from knowdo.designs.rd import RegressionDiscontinuity, rd
from knowdo.errors import ParameterError

TOL3 = 5e-4  # three printed decimals


@pytest.fixture(scope="module")
def senate(shared_dir: Path) -> pd.DataFrame:
    return pd.read_csv(shared_dir / "reference" / "rdrobust_senate.csv")


def test_senate_default_call(senate: pd.DataFrame) -> None:
    effect = rd(senate, outcome="vote", running="margin")
    d = effect.diagnostics
    assert d["h_left"] == pytest.approx(17.754, abs=TOL3) and d["h_right"] == d["h_left"]
    assert d["b_left"] == pytest.approx(28.028, abs=TOL3)
    assert d["rho"] == pytest.approx(0.633, abs=TOL3)
    assert effect.estimate == pytest.approx(7.414, abs=TOL3)
    assert d["conventional_se"] == pytest.approx(1.459, abs=TOL3)
    assert d["bias_corrected_estimate"] == pytest.approx(7.507, abs=TOL3)
    # the headline uses the robust bias-corrected interval and SE
    assert effect.conf_low == pytest.approx(4.094, abs=TOL3)
    assert effect.conf_high == pytest.approx(10.919, abs=TOL3)
    assert effect.std_error == pytest.approx(1.741, abs=TOL3)
    assert (d["n_left"], d["n_right"], d["n_effective_left"], d["n_effective_right"]) == (595, 702, 360, 323)
    rows = effect.details["estimates"].set_index("method")
    assert rows.loc["conventional", "conf_low"] == pytest.approx(4.555, abs=TOL3)
    assert rows.loc["conventional", "conf_high"] == pytest.approx(10.273, abs=TOL3)
    assert rows.loc["conventional", "statistic"] == pytest.approx(5.083, abs=TOL3)
    assert rows.loc["robust", "statistic"] == pytest.approx(4.311, abs=TOL3)
    bw = effect.details["bandwidth"].set_index("bandwidth")
    assert bw.loc["h", "left"] == pytest.approx(17.754, abs=TOL3)


def test_senate_conventional_inference_option(senate: pd.DataFrame) -> None:
    effect = rd(senate, outcome="vote", running="margin", inference="conventional", density_test=False)
    assert effect.std_error == pytest.approx(1.459, abs=TOL3)
    assert (effect.conf_low, effect.conf_high) == pytest.approx((4.555, 10.273), abs=TOL3)


def test_senate_with_covariates_and_clusters(senate: pd.DataFrame) -> None:
    covs = rd(senate, outcome="vote", running="margin", covariates=["class", "termshouse", "termssenate"],
              density_test=False)
    assert covs.estimate == pytest.approx(6.850, abs=TOL3)
    assert covs.diagnostics["conventional_se"] == pytest.approx(1.407, abs=TOL3)
    assert covs.diagnostics["h_left"] == pytest.approx(18.033, abs=TOL3)
    clustered = rd(senate, outcome="vote", running="margin", cluster="state", vce="hc1", density_test=False)
    assert clustered.estimate == pytest.approx(7.395, abs=TOL3)
    assert clustered.diagnostics["conventional_se"] == pytest.approx(1.534, abs=TOL3)


def test_senate_density_test_reported(senate: pd.DataFrame) -> None:
    effect = rd(senate, outcome="vote", running="margin")
    assert 0 <= effect.diagnostics["density_p_value"] <= 1
    # no evidence of sorting around a zero vote margin in these data
    assert effect.diagnostics["density_p_value"] > 0.1


def test_fuzzy_design_recovers_late() -> None:
    rng = np.random.default_rng(4)
    n = 4000
    x = rng.uniform(-1, 1, n)
    take_up = rng.random(n) < np.where(x >= 0, 0.8, 0.2)
    y = 0.5 * x + 3.0 * take_up + rng.normal(0, 0.5, n)
    df = pd.DataFrame({"x": x, "d": take_up.astype(float), "y": y})
    effect = rd(df, outcome="y", running="x", treatment="d", density_test=False)
    assert effect.estimate == pytest.approx(3.0, abs=3 * effect.std_error)
    assert "compliers" in effect.estimand and "fuzzy" in effect.method


def test_strata_fit_separately(senate: pd.DataFrame) -> None:
    effect = rd(senate, outcome="vote", running="margin", strata=["class"], density_test=False)
    assert list(effect.strata["stratum"]) == ["1", "2", "3"]
    assert effect.strata["n"].sum() == senate["class"].notna().sum()
    assert effect.strata["estimate"].notna().all()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"kernel": "gaussian"}, "kernel='gaussian' is not accepted; use one of 'triangular'"),
        ({"cutoff": 500.0}, "no observations on one side of cutoff=500.0"),
        ({"h": -1.0}, "h=-1.0 must be a positive bandwidth"),
        ({"q": 0}, "q=0 must be an integer >= p=1"),
    ],
)
def test_user_errors(senate: pd.DataFrame, settings: dict[str, object], message: str) -> None:
    with pytest.raises(ParameterError, match=re.escape(message)):
        RegressionDiscontinuity(outcome="vote", running="margin", **settings).fit(senate)  # type: ignore[arg-type]
