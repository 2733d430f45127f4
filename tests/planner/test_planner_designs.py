"""SMART, hybrid, DiD, ITS, individual and parallel-CRT planners against their published formulas.

Formulas are re-derived here by hand from the cited papers (not through the
planner), so a wrong factor in the code fails. Tolerances: exact arithmetic
to 1e-9 unless stated.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import stats

from knowdo.designs.planner import (
    CovarianceModel,
    Design,
    ar1_covariance,
    bpw_variance,
    co_primary_power,
    design_effect,
    inflation_factor,
    information_content,
    information_content_chart,
    its_variance,
    longitudinal_factor,
    mckenzie_factor,
    pilot_smart_size,
    plan_crt,
    plan_did,
    plan_hybrid_type2,
    plan_individual,
    plan_its,
    plan_longitudinal,
    plan_smart,
    power_curve_frame,
    solve_hybrid_size,
    z_power,
)
from knowdo.designs.planner.its_power import _ols_newey_west, _prais_winsten, segmented_design
from knowdo.errors import ParameterError

Z = stats.norm.isf(0.025) + stats.norm.ppf(0.8)  # z_{0.975} + z_{0.80}


# ------------------------------------------------------------------- SMART
@pytest.mark.parametrize(("design", "factor"), [("I", 2.0), ("II", 2 - 0.4), ("III", (3 - 0.4) / 2)])
def test_smart_sizes_equal_the_published_formula(design: str, factor: float) -> None:
    # Seewald et al. (SMMR 2020) / Oetting et al. (2011): N = 4 (z+z)^2 / delta^2 x IF (designs-and-power.md §4).
    delta = 0.35
    result = plan_smart(design=design, response_rate=0.4, delta=delta, power=0.8)  # type: ignore[arg-type]
    assert result.details["n_exact"] == pytest.approx(4 * Z**2 / delta**2 * factor, rel=1e-9)
    assert result.n == math.ceil(4 * Z**2 / delta**2 * factor)


def test_smart_longitudinal_factors_match_rmsmartsize() -> None:
    # rmSMARTsize sample.size(): conservative correction 1 - rho^2; exact forms for designs I-III.
    rho, r = 0.6, 0.3
    assert longitudinal_factor("II", rho, r, "conservative") == pytest.approx(1 - rho**2)
    exact_ii = (1 - rho) * (2 * rho + 1) / (1 + rho) + (1 - rho) / (1 + rho) * rho**2 / (2 - r)
    assert longitudinal_factor("II", rho, r, "exact") == pytest.approx(exact_ii)
    exact_i = (1 - rho**2) - (1 - rho) * rho**2 / (2 * (1 + rho))
    assert longitudinal_factor("I", rho, r, "exact") == pytest.approx(exact_i)
    exact_iii = ((3 - r) * (1 + 2 * rho) + 2 * rho**2) * (1 - rho) / ((3 - r) * (1 + rho))
    assert longitudinal_factor("III", rho, r, "exact") == pytest.approx(exact_iii)
    assert inflation_factor("II", 0.3, 0.5) == pytest.approx(((2 - 0.3) + (2 - 0.5)) / 2)


def test_smart_binary_matches_kidwell() -> None:
    # Kidwell et al. (2018): N = (z+z)^2/(log OR)^2 x [A/(p1 q1) + B/(p2 q2)], A = B = 2(2 - r) for design II.
    p1, p2, r = 0.4, 0.55, 0.4
    log_or = math.log(p2 / (1 - p2)) - math.log(p1 / (1 - p1))
    expected = Z**2 / log_or**2 * (2 * (2 - r) / (p1 * (1 - p1)) + 2 * (2 - r) / (p2 * (1 - p2)))
    result = plan_smart(design="II", response_rate=r, p1=p1, p2=p2, power=0.8)
    assert result.details["n_exact"] == pytest.approx(expected)


def test_smart_power_round_trip_and_clusters() -> None:
    sized = plan_smart(design="II", response_rate=0.4, delta=0.3, power=0.8)
    assert sized.power >= 0.8
    back = plan_smart(design="II", response_rate=0.4, delta=0.3, n=sized.n)
    assert back.power == pytest.approx(sized.power)
    clustered = plan_smart(design="II", response_rate=0.4, delta=0.3, power=0.8, cluster_size=10, icc=0.05)
    assert clustered.details["n_exact"] == pytest.approx(sized.details["n_exact"] * (1 + 9 * 0.05))
    assert clustered.clusters == math.ceil(clustered.n / 10)


def test_pilot_smart_cells_reach_the_minimum() -> None:
    n = pilot_smart_size(3, 0.4, 0.8)
    cell = (1 - 0.4) / 4
    assert stats.binom.sf(2, n, cell) ** 4 >= 0.8 > stats.binom.sf(2, n - 1, cell) ** 4


# ------------------------------------------------------------------- hybrid
def test_co_primary_power_both_and_either() -> None:
    shift = Z
    both_independent = co_primary_power((shift, shift), 0.0)
    assert both_independent == pytest.approx(0.8**2, abs=1e-5)  # independent tests: 0.8 x 0.8
    both_correlated = co_primary_power((shift, shift), 0.5)
    assert 0.64 < both_correlated < 0.70  # designs-and-power.md §3: about 0.64-0.70
    either = co_primary_power((shift, shift), 0.0, rule="either")
    single = 1 - stats.norm.cdf(stats.norm.isf(0.0125) - shift)
    assert either == pytest.approx(1 - (1 - single) ** 2, abs=1e-5)


def test_hybrid_from_two_plans() -> None:
    clinical = plan_crt(icc=0.05, clusters_per_arm=10, cluster_size=30, delta=0.3, sd=1.0, test="z")
    implementation = plan_individual(p0=0.3, p1=0.6, n_per_arm=10)  # clinic-level outcome: 10 clinics per arm
    joint = plan_hybrid_type2(clinical, implementation, correlation=0.2)
    assert joint.power < min(clinical.power, implementation.power)


# ------------------------------------------------------------------- DiD
def test_bpw_reduces_to_mckenzie_under_equicorrelation() -> None:
    rho, m, r, units = 0.4, 3, 4, 120
    cov = np.full((m + r, m + r), rho) + (1 - rho) * np.eye(m + r)
    expected = mckenzie_factor(m, r, rho, "did") / (0.25 * units)
    assert bpw_variance(cov, m, units, 0.5) == pytest.approx(expected, rel=1e-12)
    assert mckenzie_factor(m, r, rho, "did") == pytest.approx((1 / m + 1 / r) * (1 - rho))


def test_mckenzie_ancova_beats_did_at_low_correlation() -> None:
    assert mckenzie_factor(1, 1, 0.3, "ancova") < mckenzie_factor(1, 1, 0.3, "did")
    assert mckenzie_factor(1, 1, 0.3, "ancova") == pytest.approx(1 - 0.3**2)


def test_did_sample_size_formula() -> None:
    # McKenzie (2012): N = (z+z)^2 sigma^2 / (P(1-P) delta^2) x factor.
    result = plan_did(sd=2.0, pre_rounds=2, post_rounds=2, rho=0.5, delta=0.3, power=0.8)
    exact = Z**2 * 4 / (0.25 * 0.09) * mckenzie_factor(2, 2, 0.5)
    assert exact <= result.n <= math.ceil(exact) + 1
    ar1 = plan_did(sd=1.0, pre_rounds=3, post_rounds=3, covariance=ar1_covariance(6, 1.0, 0.7), units=200, delta=0.2)
    assert 0 < ar1.power < 1


# ------------------------------------------------------------------- ITS
def test_its_gls_equals_ols_without_autocorrelation() -> None:
    x = segmented_design(12, 12)
    ols = np.linalg.inv(x.T @ x)[2, 2]
    assert its_variance(12, 12, 1.0, 0.0) == pytest.approx(ols, rel=1e-12)
    assert its_variance(12, 12, 1.0, 0.0, analysis="ols") == pytest.approx(ols, rel=1e-12)
    assert its_variance(12, 12, 1.0, 0.5) > ols  # positive autocorrelation costs information


def test_its_newey_west_equals_statsmodels() -> None:
    rng = np.random.default_rng(5)
    x = segmented_design(10, 14)
    y = rng.standard_normal((24, 3)).cumsum(axis=0) * 0.3 + rng.standard_normal((24, 3))
    est, nw, _ = _ols_newey_west(x, y, 2, 3)
    for s in range(3):
        fit = sm.OLS(y[:, s], x).fit(cov_type="HAC", cov_kwds={"maxlags": 3})
        assert est[s] == pytest.approx(fit.params[2], abs=1e-10)
        assert nw[s] == pytest.approx(fit.bse[2], rel=1e-10)


def test_its_prais_winsten_matches_a_direct_fit() -> None:
    rng = np.random.default_rng(11)
    x = segmented_design(12, 12)
    y = rng.standard_normal((24, 1)) + 0.5 * np.arange(24)[:, None] / 24
    est, se = _prais_winsten(x, y, 2)
    # Reference: iterate phi from OLS residuals and refit on the transformed data with statsmodels.
    phi = 0.0
    beta = sm.OLS(y[:, 0], x).fit().params
    for _ in range(200):
        resid = y[:, 0] - x @ beta
        phi = float(np.clip(resid[1:] @ resid[:-1] / (resid[:-1] @ resid[:-1]), -0.99, 0.99))
        ys = np.r_[math.sqrt(1 - phi**2) * y[0, 0], y[1:, 0] - phi * y[:-1, 0]]
        xs = np.vstack([math.sqrt(1 - phi**2) * x[0], x[1:] - phi * x[:-1]])
        fit = sm.OLS(ys, xs).fit()
        beta = fit.params
    assert est[0] == pytest.approx(fit.params[2], rel=1e-6)
    assert se[0] == pytest.approx(fit.bse[2], rel=1e-6)


def test_its_solves_for_post_length_and_mde() -> None:
    result = plan_its(pre=12, post=0, sigma=1.0, phi=0.3, effect=3.0, power=0.8)
    assert result.power >= 0.8
    shorter = plan_its(pre=12, post=int(result.parameters["post"]) - 1, sigma=1.0, phi=0.3, effect=3.0)
    assert shorter.power < 0.8
    mde = plan_its(pre=12, post=12, sigma=1.0, phi=0.3, power=0.8)
    assert z_power(mde.effect, mde.std_error) == pytest.approx(0.8, abs=1e-8)  # type: ignore[arg-type]


# ------------------------------------------------------------ individual / CRT
def test_individual_binary_formula() -> None:
    # [p0 q0 + p1 q1](z+z)^2/(p1-p0)^2 (designs-and-power.md §1).
    p0, p1 = 0.3, 0.4
    exact = (p0 * (1 - p0) + p1 * (1 - p1)) * Z**2 / (p1 - p0) ** 2
    result = plan_individual(p0=p0, p1=p1, power=0.8)
    assert result.details["n_per_arm_exact"] == pytest.approx(exact, rel=1e-3)  # far tail adds < 1e-3
    assert result.parameters["n_per_arm"] == math.ceil(result.details["n_per_arm_exact"])


def test_individual_t_test_matches_power_t_test() -> None:
    # R power.t.test(n = 64, delta = 0.5): power 0.8015 (noncentral t, 126 df).
    assert plan_individual(delta=0.5, sd=1, n_per_arm=64, test="t").power == pytest.approx(0.8015, abs=5e-5)


def test_crt_design_effects() -> None:
    assert design_effect(10, 0.1) == pytest.approx(1.9)
    # Eldridge: 1 + ((CV^2+1) m - 1) rho; van Breukelen: DE / (1 - CV^2 lambda (1 - lambda)).
    assert design_effect(100, 0.1, 0.5, "eldridge") == pytest.approx(1 + (1.25 * 100 - 1) * 0.1)
    lam = 100 * 0.1 / 10.9
    assert design_effect(100, 0.1, 0.5) == pytest.approx(10.9 / (1 - 0.25 * lam * (1 - lam)))


def test_crt_mde_round_trip() -> None:
    mde = plan_crt(icc=0.05, clusters_per_arm=12, cluster_size=25, sd=1.0, power=0.8)
    again = plan_crt(icc=0.05, clusters_per_arm=12, cluster_size=25, sd=1.0, delta=mde.effect)
    assert again.power == pytest.approx(0.8, abs=1e-8)


def test_longitudinal_mde_round_trip() -> None:
    design = Design.stepped_wedge(4, 4)
    cov = CovarianceModel.block_exchangeable(0.05, cac=0.8)
    mde = plan_longitudinal(design, cov, effect=None, cluster_period_size=30, power=0.9)
    assert plan_longitudinal(design, cov, effect=mde.effect, cluster_period_size=30).power == pytest.approx(0.9)


def test_one_missing_quantity_is_required() -> None:
    with pytest.raises(ParameterError, match="leave exactly one of"):
        plan_crt(icc=0.05, clusters_per_arm=12, cluster_size=25, sd=1.0, delta=0.3, power=0.8)
    with pytest.raises(ParameterError, match="sd"):
        plan_crt(icc=0.05, clusters_per_arm=12, cluster_size=25, delta=0.3)
    with pytest.raises(ParameterError, match="unequal='taylor' is not accepted"):
        plan_crt(icc=0.05, clusters_per_arm=12, cluster_size=25, sd=1, delta=0.3, unequal="taylor")  # type: ignore[arg-type]


def test_hybrid_solves_for_clusters() -> None:


    def plans(k: int) -> tuple:  # type: ignore[type-arg]
        clinical = plan_crt(icc=0.05, clusters_per_arm=k, cluster_size=30, delta=0.3, sd=1.0, test="z")
        implementation = plan_individual(p0=0.3, p1=0.6, n_per_arm=k)
        return clinical, implementation

    k, joint = solve_hybrid_size(plans, 0.8, correlation=0.1)
    assert joint.power >= 0.8
    assert plan_hybrid_type2(*plans(k - 1), correlation=0.1).power < 0.8


def test_power_curves_and_information_chart() -> None:


    frame = power_curve_frame(lambda k: plan_crt(icc=0.05, clusters_per_arm=int(k), cluster_size=20, delta=0.3, sd=1),
                              [4, 8, 12], "clusters per arm")
    assert frame["power"].is_monotonic_increasing
    table = information_content(Design.stepped_wedge(1, 3), 10, CovarianceModel.hussey_hughes(1.0, 0.2))
    assert information_content_chart(table).to_dict()["layer"][0]["mark"]["type"] == "rect"
