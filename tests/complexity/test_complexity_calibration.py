"""Calibration recovers known parameters on simulated data and calls an unidentifiable one so.

Data: the care-pathway model run at known values, with Poisson noise. Burnout
sensitivity cannot be identified from these data because capacity never
binds (attrition is never raised), so its posterior must stay as wide as its prior.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from knowdo.complexity.calibration import Calibration, Prior, calibrate
from knowdo.complexity.panel_data import PathwayData, PathwaySimulator
from knowdo.errors import ParameterError

TRUTH = {"detection": 0.012, "acceptance_specialist": 0.5, "screening_uplift": 0.03}
PRIORS = {"detection": Prior(0.002, 0.05, "log"), "acceptance_specialist": Prior(0.1, 1.0),
          "screening_uplift": Prior(0.002, 0.2, "log"), "burnout_lay": Prior(0.0, 3.0)}


@pytest.fixture(scope="module")
def simulated() -> tuple[PathwaySimulator, dict[str, np.ndarray]]:
    months = 36
    coverage = np.clip((np.arange(months) - 6) / 12, 0, 1)[:, None]
    empty = {s: np.zeros((months, 1)) for s in ("positive", "started", "adequate", "effective", "sessions")}
    data = PathwayData(dimension="all", strata=("all",), periods=pd.date_range("2023-01-01", periods=months, freq="MS"),
                       population=np.array([200_000.0]), need=np.array([28_000.0]), coverage=coverage,
                       observed=empty, cost=np.zeros(months))
    sim = PathwaySimulator(data, series=("positive", "started", "adequate"), dt=0.5, warmup=12)
    expected = sim({k: np.array([v]) for k, v in TRUTH.items()})
    rng = np.random.default_rng(5)
    observed = {k: rng.poisson(v[0]).astype(float) for k, v in expected.items()}
    return sim, observed


def test_abc_smc_recovers_known_parameters_and_flags_burnout(simulated) -> None:
    sim, observed = simulated
    result = calibrate(sim, observed, PRIORS, method="abc_smc", particles=200, generations=4, held_out=6, seed=2)
    est = result.estimates.set_index("parameter")
    for name, value in TRUTH.items():
        assert est.loc[name, "conf_low"] <= value <= est.loc[name, "conf_high"], name
        assert est.loc[name, "identified"] == "identified", name
        assert abs(est.loc[name, "estimate"] / value - 1) < 0.15, name
    assert est.loc["burnout_lay", "identified"] == "not identified"
    assert est.loc["burnout_lay", "width_ratio"] > 0.8
    assert any("cannot pin down burnout_lay" in s for s in result.statements)
    assert result.held_out["months_held_out"] == 6 and result.held_out["coverage_held_out"] >= 0.6
    fit = result.fit
    assert set(fit["series"]) == {"positive", "started", "adequate"} and fit["held_out"].sum() == 18
    assert "burnout_lay" in result.summary() and result.to_dict()["method"] == "abc_smc"


def test_rejection_and_least_squares_agree_with_the_truth(simulated) -> None:
    sim, observed = simulated
    rej = calibrate(sim, observed, PRIORS, method="abc_rejection", simulations=4_000, accept=0.02, seed=3)
    ls = calibrate(sim, observed, PRIORS, method="least_squares", seed=3)
    for result in (rej, ls):
        est = result.estimates.set_index("parameter")
        assert est.loc["detection", "conf_low"] <= TRUTH["detection"] <= est.loc["detection", "conf_high"]
    ls_est = ls.estimates.set_index("parameter")
    assert abs(ls_est.loc["acceptance_specialist", "estimate"] / 0.5 - 1) < 0.1
    assert ls_est.loc["burnout_lay", "identified"] == "not identified"  # a flat direction of J'J


def test_only_a_combination_is_identified() -> None:
    def simulate(p: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"y": (p["a"] * p["b"])[:, None] * np.full((1, 24), 100.0)}

    result = calibrate(simulate, {"y": np.full(24, 25.0)}, {"a": (0.1, 1.0), "b": (0.1, 1.0)},
                       method="abc_smc", particles=200, generations=4, held_out=0, seed=1)
    assert any("only in combination" in s for s in result.statements)


def test_calibration_errors() -> None:
    def simulate(p: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"y": np.ones((len(p["a"]), 12))}

    with pytest.raises(ParameterError, match="'method' must be one of"):
        Calibration(simulate=simulate, priors={"a": (0, 1)}, method="mcmc").fit({"y": np.ones(12)})  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match="held_out"):
        calibrate(simulate, {"y": np.ones(12)}, {"a": (0, 1)}, held_out=11)
    with pytest.raises(ParameterError, match="did not return series"):
        calibrate(simulate, {"z": np.ones(12)}, {"a": (0, 1)}, method="abc_rejection", simulations=100)
    with pytest.raises(ParameterError, match="log-scale prior needs low > 0"):
        Prior(0.0, 1.0, "log")
