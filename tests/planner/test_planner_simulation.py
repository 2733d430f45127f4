"""Simulation power: the vectorised LMM equals statsmodels MixedLM; simulated power equals analytic power.

Agreement with analytic power is judged within 3 Monte Carlo standard errors
(a 0.3% false-alarm rate per check); fits against statsmodels to 1e-6 on the
estimate where both reach the same REML optimum.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
import statsmodels.regression.mixed_linear_model as mlm
from scipy import stats

from knowdo.designs.effect import Effect
from knowdo.designs.planner import (
    CovarianceModel,
    Design,
    ProgrammeScenario,
    fit_random_intercept_lmm,
    simulate_data,
    simulate_its_power,
    simulate_longitudinal_power,
    simulate_power,
    statistics_from_data,
    treatment_variance,
    z_power,
)
from knowdo.examples import generate_programme


def within_mc(simulated: float, analytic: float, n_sims: int) -> bool:
    se = math.sqrt(analytic * (1 - analytic) / n_sims)
    return abs(simulated - analytic) < 3 * se


def test_vectorised_reml_equals_statsmodels_mixedlm() -> None:
    design = Design.stepped_wedge(3, 3)
    cov = CovarianceModel.hussey_hughes(1.0, 0.3)
    rng = np.random.default_rng(12)
    for _ in range(3):
        data = simulate_data(design, 20, cov, 0.2, rng)
        means, ssw, m = statistics_from_data(data, design)
        fit = fit_random_intercept_lmm(means, ssw, design, m)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = smf.mixedlm("y ~ treatment + C(period)", data, groups=data["cluster"])
            res = model.fit(reml=True, method="nm", maxiter=20_000)
            ours = mlm.MixedLMParams.from_components(fe_params=np.zeros(model.k_fe),
                                                     cov_re=np.array([[fit["tau2"][0] / fit["sigma2"][0]]]))
            ours_llf = model.loglike(ours, profile_fe=True)
        assert ours_llf >= res.llf - 1e-6  # our REML optimum is never lower than statsmodels'
        if abs(ours_llf - res.llf) < 1e-6:
            assert fit["estimate"][0] == pytest.approx(res.params["treatment"], abs=1e-5)
            assert fit["sigma2"][0] == pytest.approx(res.scale, rel=1e-4)
            # statsmodels SEs come from the joint observed information; ours are (X'V^-1X)^-1 as in lme4: within 3%.
            assert fit["std_error"][0] == pytest.approx(res.bse["treatment"], rel=0.03)


def test_simulated_lmm_power_agrees_with_analytic() -> None:
    design = Design.stepped_wedge(6, 4)
    cov = CovarianceModel.hussey_hughes(1.0, math.sqrt(0.05 / 0.95))
    result = simulate_longitudinal_power(design, 50, cov, 0.13, n_sims=1000, seed=3)
    assert within_mc(result.power, result.details["analytic_power"], 1000)
    assert result.type1_error is not None and within_mc(result.type1_error, 0.05, 1000)
    assert result.monte_carlo_se == pytest.approx(math.sqrt(result.power * (1 - result.power) / 1000))


def test_simulated_gls_power_agrees_with_analytic_under_decay() -> None:
    design = Design.stepped_wedge(4, 4)
    cov = CovarianceModel.discrete_time_decay(0.1, 0.6)
    result = simulate_longitudinal_power(design, 30, cov, 0.2, n_sims=1000, seed=4, analysis="gls", null=False)
    analytic = z_power(0.2, math.sqrt(treatment_variance(design, 30, cov)))
    assert within_mc(result.power, analytic, 1000)


def _two_sample(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    return rng.normal(0.0, 1.0, 40), rng.normal(0.5, 1.0, 40)


def _difference(data: tuple[np.ndarray, np.ndarray]) -> Effect:
    a, b = data
    return Effect.from_estimate(design="two-sample", estimand="difference", estimate=float(b.mean() - a.mean()),
                                std_error=float(math.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))),
                                method="Welch z")


def test_simulate_power_serial_and_dask_agree() -> None:
    serial = simulate_power(_two_sample, _difference, n_sims=300, seed=9, true_effect=0.5)
    parallel = simulate_power(_two_sample, _difference, n_sims=300, seed=9, true_effect=0.5, backend="dask",
                              chunks=3, scheduler="synchronous")
    assert serial.power == parallel.power
    analytic = z_power(0.5, math.sqrt(2 / 40))
    assert within_mc(serial.power, analytic, 300)
    assert 0.9 < serial.details["coverage"] <= 1.0


def test_its_simulation_agrees_with_exact_t_power() -> None:
    results = simulate_its_power(pre=12, post=12, sigma=1.0, phi=0.0, effect=1.5, methods=("ols",), n_sims=2000, seed=5)
    x_df = 24 - 4
    se = math.sqrt(simulate_its_power.__globals__["its_variance"](12, 12, 1.0, 0.0))
    crit = stats.t.isf(0.025, x_df)
    exact = stats.nct.sf(crit, x_df, 1.5 / se) + stats.nct.cdf(-crit, x_df, 1.5 / se)
    assert within_mc(results["ols"].power, exact, 2000)
    assert within_mc(results["ols"].type1_error or 0.0, 0.05, 2000)


def test_programme_scenario_round_trip() -> None:
    rng = np.random.default_rng(0)
    sites = tuple(f"S{i:02d}" for i in range(30))
    periods = tuple(pd.date_range("2024-01-01", periods=24, freq="MS"))
    truth = ProgrammeScenario(sites, periods, np.full((30, 24), 5000.0), np.linspace(0.002, 0.006, 30), 0.15, "started")
    starts = [None] * 10 + [6] * 10 + [12] * 10
    panel = truth.simulate(starts, 1.5, rng).rename(columns={"count": "started", "denominator": "population"})
    fitted = ProgrammeScenario.from_panel(panel, "started")
    assert fitted.sites == sites and len(fitted.periods) == 24
    # Untreated rates are estimated from 6-24 noisy months per site: check their level and ordering.
    assert fitted.baseline_rate.mean() == pytest.approx(truth.baseline_rate.mean(), rel=0.05)
    assert np.corrcoef(fitted.baseline_rate, truth.baseline_rate)[0, 1] > 0.9
    assert 0.08 < fitted.period_sd < 0.22
    treated = panel.groupby("treated")["started"].sum() / panel.groupby("treated")["population"].sum()
    assert treated.loc[1] > treated.loc[0]


def test_scenario_from_example_programme_with_any_estimator() -> None:
    scenario = ProgrammeScenario.from_example(generate_programme(persons=20_000, seed=1), "screened")
    assert len(scenario.sites) == 48 and len(scenario.periods) == 36
    assert (scenario.baseline_rate > 0).all()
    starts = [None] * 12 + [6] * 12 + [12] * 12 + [20] * 12  # a planned rollout in three waves

    def analyse(panel: pd.DataFrame) -> Effect:
        # Log rate ratio, treated vs untreated site-months, with site and month effects removed by a DiD of logs.
        rate = (panel["count"] + 0.5) / panel["denominator"]
        frame = panel.assign(log_rate=np.log(rate))
        frame["resid"] = (frame["log_rate"] - frame.groupby("site_id")["log_rate"].transform("mean")
                          - frame.groupby("t")["log_rate"].transform("mean") + frame["log_rate"].mean())
        treated = frame.loc[frame["treated"] == 1, "resid"]
        control = frame.loc[frame["treated"] == 0, "resid"]
        se = math.sqrt(treated.var() / len(treated) + control.var() / len(control))
        return Effect.from_estimate(design="did", estimand="log rate ratio", estimate=treated.mean() - control.mean(),
                                    std_error=se, method="two-way demeaned logs")

    result = simulate_power(lambda rng: scenario.simulate(starts, 2.0, rng), analyse, n_sims=20, seed=2)
    assert result.power > 0.5 and result.monte_carlo_se is not None
