"""The 21 HEAT measures on small examples computed by hand, and their applicability and direction rules.

Formulas: frameworks.md section 4.1 (WHO healthequal; Schlotheuber & Hosseinpoor 2022).
Tolerance: rel 1e-6 on exact arithmetic, 1e-4 where the comment rounds.

The worked example used throughout: three subgroups
    y = 20, 30, 50 (%), se = 2, 3, 4, population = 100, 200, 100
so p = 0.25, 0.5, 0.25 and the population-weighted mean
    mu = 0.25*20 + 0.5*30 + 0.25*50 = 5 + 15 + 12.5 = 32.5.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy.special import expit

from knowdo.equity import MEASURE_CODES, heat_measures
from knowdo.errors import ParameterError


def example(*, ordered: bool, favourable: bool = True, reference: int | None = None) -> pd.DataFrame:
    return pd.DataFrame({
        "indicator_abbr": "ind",
        "dimension": "wealth" if ordered else "region",
        "subgroup": ["low", "mid", "high"],
        "estimate": [20.0, 30.0, 50.0],
        "se": [2.0, 3.0, 4.0],
        "population": [100.0, 200.0, 100.0],
        "favourable_indicator": int(favourable),
        "ordered_dimension": int(ordered),
        "subgroup_order": [1, 2, 3] if ordered else [0, 0, 0],
        "reference_subgroup": [int(i == reference) for i in range(3)],
        "indicator_scale": 100,
    })


def value(table: pd.DataFrame, code: str, column: str = "estimate", **settings: object) -> float:
    result = heat_measures(table, measures=[code], **settings)  # type: ignore[arg-type]
    return float(result.measure(code)[column].iloc[0])


# --------------------------------------------------------------------------- simple measures
def test_difference_and_ratio_ordered_favourable() -> None:
    t = example(ordered=True)
    # most advantaged (order 3) minus least advantaged (order 1): 50 - 20 = 30; SE = sqrt(4^2 + 2^2) = sqrt(20)
    assert value(t, "D") == pytest.approx(30.0)
    assert value(t, "D", "std_error") == pytest.approx(np.sqrt(20.0))
    # R = 50 / 20 = 2.5; SE(ln R) = sqrt((2/20)^2 + (4/50)^2) = sqrt(0.01 + 0.0064) = 0.1280625
    assert value(t, "R") == pytest.approx(2.5)
    assert value(t, "R", "std_error") == pytest.approx(0.12806248, rel=1e-6)
    # CI on the log scale: exp(ln 2.5 +/- 1.959964 * 0.1280625)
    low = value(t, "R", "conf_low")
    assert low == pytest.approx(2.5 * np.exp(-1.959964 * 0.12806248), rel=1e-5)


def test_direction_rules_for_d() -> None:
    # ordered, adverse: least advantaged minus most advantaged: 20 - 50 = -30
    assert value(example(ordered=True, favourable=False), "D") == pytest.approx(-30.0)
    # non-ordered, no reference: highest minus lowest, either way: 50 - 20 = 30
    assert value(example(ordered=False), "D") == pytest.approx(30.0)
    assert value(example(ordered=False, favourable=False), "D") == pytest.approx(30.0)
    # non-ordered with reference 'mid' (30): favourable -> ref minus lowest other = 30 - 20 = 10
    assert value(example(ordered=False, reference=1), "D") == pytest.approx(10.0)
    # adverse -> highest other minus ref = 50 - 30 = 20
    assert value(example(ordered=False, favourable=False, reference=1), "D") == pytest.approx(20.0)
    # R follows the same pairs: 30/20 and 50/30
    assert value(example(ordered=False, reference=1), "R") == pytest.approx(1.5)
    assert value(example(ordered=False, favourable=False, reference=1), "R") == pytest.approx(50 / 30)


# --------------------------------------------------------------------------- ordered complex measures
def test_concentration_indices() -> None:
    t = example(ordered=True)
    # ranks X = 0.125, 0.5, 0.875; ACI = 2 * sum p (X - 0.5)(y - mu)
    #   = 2 * [0.25*(-0.375)*(-12.5) + 0 + 0.25*0.375*17.5] = 2 * (1.171875 + 1.640625) = 5.625
    assert value(t, "ACI") == pytest.approx(5.625)
    # RCI = ACI / mu = 5.625 / 32.5 = 0.1730769, reported x100
    assert value(t, "RCI") == pytest.approx(17.307692, rel=1e-6)
    # Regression SE: lhs = 2 sigma^2 y with sigma^2 = 0.0703125; residuals +-0.3515625 at every point,
    # s^2 = 0.3515625^2 / (3 - 2) = 0.12359619; Var = s^2 / sigma^2 = 1.7578125; SE = 1.3258252
    assert value(t, "ACI", "std_error") == pytest.approx(1.3258252, rel=1e-6)
    assert value(t, "RCI", "std_error") == pytest.approx(100 * 1.3258252 / 32.5, rel=1e-6)


def test_rci_corrections() -> None:
    t = example(ordered=True)
    # Wagstaff: RCI / (1 - mu/scale) = 0.1730769 / 0.675 = 0.2564103 (x100)
    assert value(t, "RCI", rci_correction="wagstaff") == pytest.approx(25.641026, rel=1e-6)
    # Erreygers: 4 * ACI / scale = 4 * 5.625 / 100 = 0.225 (x100)
    assert value(t, "RCI", rci_correction="erreygers") == pytest.approx(22.5)


def test_slope_indices_linear() -> None:
    t = example(ordered=True)
    # WLS of y/100 on X: slope = cov_w / var_w = 0.028125 / 0.0703125 = 0.4 -> SII = 40 points
    # intercept = 0.325 - 0.4 * 0.5 = 0.125 -> RII = (0.125 + 0.4) / 0.125 = 4.2
    assert value(t, "SII", sii_model="linear") == pytest.approx(40.0)
    assert value(t, "RII", sii_model="linear") == pytest.approx(4.2)


def test_slope_indices_logistic_match_statsmodels() -> None:
    # Reference: statsmodels GLM (binomial, var_weights = population), HC0 scaled by n/(n-k) = HC1 as R's sandwich.
    y = np.array([40.0, 50.0, 55.0, 65.0, 70.0])
    pop = np.array([120.0, 80.0, 100.0, 90.0, 110.0])
    p = pop / pop.sum()
    x = np.cumsum(p) - p / 2
    fit = sm.GLM(y / 100, sm.add_constant(x), family=sm.families.Binomial(), var_weights=pop).fit(cov_type="HC0")
    cov = fit.cov_params() * 5 / 3
    a, b = fit.params
    p1, p0 = expit(a + b), expit(a)
    grad = np.array([p1 * (1 - p1) - p0 * (1 - p0), p1 * (1 - p1)])
    t = pd.DataFrame({"indicator_abbr": "i", "dimension": "q", "subgroup": list("abcde"), "estimate": y, "se": 2.0,
                      "population": pop, "favourable_indicator": 1, "ordered_dimension": 1,
                      "subgroup_order": [1, 2, 3, 4, 5], "indicator_scale": 100})
    assert value(t, "SII") == pytest.approx(100 * (p1 - p0), rel=1e-7)
    assert value(t, "SII", "std_error") == pytest.approx(100 * np.sqrt(grad @ cov @ grad), rel=1e-5)
    assert value(t, "RII") == pytest.approx(p1 / p0, rel=1e-7)


# --------------------------------------------------------------------------- non-ordered complex measures
def test_variance_and_mean_difference_measures() -> None:
    t = example(ordered=False)
    # BGV = 0.25*12.5^2 + 0.5*2.5^2 + 0.25*17.5^2 = 39.0625 + 3.125 + 76.5625 = 118.75
    assert value(t, "BGV") == pytest.approx(118.75)
    # SE: 4*sum p^2 se^2 (y-mu)^2 = 4*(39.0625 + 14.0625 + 306.25) = 1437.5;
    # 2*[(sum p^2 se^2)^2 - sum p^4 se^4 + sum p^2 (1-p)^2 se^4] = 2*(12.25 - 6.125 + 14.625) = 41.5; sqrt(1479)
    assert value(t, "BGV", "std_error") == pytest.approx(np.sqrt(1479.0))
    assert value(t, "BGSD") == pytest.approx(np.sqrt(118.75))
    assert value(t, "COV") == pytest.approx(100 * np.sqrt(118.75) / 32.5)  # 33.53
    # |y - mu| = 12.5, 2.5, 17.5: MDMU = 32.5/3; MDMW = 3.125 + 1.25 + 4.375 = 8.75
    assert value(t, "MDMU") == pytest.approx(32.5 / 3)
    assert value(t, "MDMW") == pytest.approx(8.75)
    assert value(t, "IDISU") == pytest.approx(100 * (32.5 / 3) / 32.5)  # 33.33
    assert value(t, "IDISW") == pytest.approx(100 * 8.75 / 32.5)  # 26.92
    # best (favourable) = 50: |y - 50| = 30, 20, 0 -> MDBU = 50/3, MDBW = 7.5 + 10 = 17.5
    assert value(t, "MDBU") == pytest.approx(50 / 3)
    assert value(t, "MDBW") == pytest.approx(17.5)
    # adverse: best = 20: |y - 20| = 0, 10, 30 -> MDBU = 40/3, MDBW = 5 + 7.5 = 12.5
    adverse = example(ordered=False, favourable=False)
    assert value(adverse, "MDBU") == pytest.approx(40 / 3)
    assert value(adverse, "MDBW") == pytest.approx(12.5)
    # reference 'mid' (30): |y - 30| = 10, 0, 20 -> MDRU = 10, MDRW = 2.5 + 5 = 7.5
    ref = example(ordered=False, reference=1)
    assert value(ref, "MDRU") == pytest.approx(10.0)
    assert value(ref, "MDRW") == pytest.approx(7.5)


def test_entropy_measures_scaled_by_1000_with_their_se() -> None:
    t = example(ordered=False)
    # r = y/mu = 0.6154, 0.9231, 1.5385; MLD = -sum p ln r = 0.0537026 -> 53.7026 (x1000)
    assert value(t, "MLD") == pytest.approx(53.702579, rel=1e-6)
    # SE: g = p (1 - 1/r) / mu; g*se = (-0.3125, -0.125, 0.35)/32.5; sqrt(0.23578125)/32.5 = 0.0149407 (x1000)
    assert value(t, "MLD", "std_error") == pytest.approx(14.940711, rel=1e-6)
    # TI = sum p r ln r = 0.0540494 -> 54.0494 (x1000); SE 15.5427 (x1000, the same scale as the estimate)
    assert value(t, "TI") == pytest.approx(54.049439, rel=1e-6)
    assert value(t, "TI", "std_error") == pytest.approx(15.542732, rel=1e-6)


def test_population_attributable_measures_and_truncation() -> None:
    t = example(ordered=False)
    # reference point = best subgroup (50): PAR = 50 - 32.5 = 17.5; PAF = 100 * 17.5 / 32.5 = 53.846
    assert value(t, "PAR") == pytest.approx(17.5)
    assert value(t, "PAF") == pytest.approx(53.846154, rel=1e-6)
    # Walter (1978): c = 0.5*100 = 50, d = 50, a = 0.325*400 - 50 = 80, b = 400 - 80 - 100 = 220, N = 400
    # Var = 50*400*(80*50*350 + 220*50^2) / (130^3 * 100^3) = 3.9e10 / 2.197e12 = 0.0177515; SE = 0.1332348
    se = np.sqrt(3.9e10 / 2.197e12)
    assert value(t, "PAF", "std_error") == pytest.approx(100 * se, rel=1e-6)
    assert value(t, "PAR", "std_error") == pytest.approx(32.5 * se, rel=1e-6)
    # reference 'mid' (30) below the mean (32.5) for a favourable indicator: PAR truncated to 0
    assert value(example(ordered=False, reference=1), "PAR") == 0.0
    assert value(example(ordered=False, reference=1), "PAF") == 0.0
    # adverse with the same reference: 30 - 32.5 = -2.5 is kept; PAF = -7.69
    assert value(example(ordered=False, favourable=False, reference=1), "PAR") == pytest.approx(-2.5)
    assert value(example(ordered=False, favourable=False, reference=1), "PAF") == pytest.approx(-250 / 32.5)
    # ordered, no reference: most advantaged subgroup (50)
    assert value(example(ordered=True), "PAR") == pytest.approx(17.5)


# --------------------------------------------------------------------------- applicability
@pytest.mark.parametrize(
    ("code", "ordered", "applies"),
    [("ACI", False, False), ("ACI", True, True), ("SII", False, False), ("BGV", True, False),
     ("BGV", False, True), ("MLD", True, False), ("D", True, True), ("D", False, True), ("PAF", True, True)],
)
def test_ordered_and_non_ordered_rules(code: str, ordered: bool, applies: bool) -> None:
    result = heat_measures(example(ordered=ordered), measures=[code]).measure(code)
    assert bool(result["applicable"].iloc[0]) is applies
    if not applies:
        assert "ordered" in result["note"].iloc[0]


def test_two_subgroups_allow_only_simple_and_impact_measures() -> None:
    two = example(ordered=False).iloc[:2]
    result = heat_measures(two)
    applicable = set(result.tidy()["measure"])
    assert applicable == {"D", "R", "PAR", "PAF"}
    assert (result.measure("BGV")["note"] == "needs more than two subgroups").all()


def test_population_and_reference_requirements() -> None:
    no_pop = example(ordered=False).assign(population=np.nan)
    result = heat_measures(no_pop)
    assert result.measure("BGV")["note"].iloc[0] == "needs subgroup populations"
    assert result.measure("MDBU")["applicable"].iloc[0]  # unweighted, needs no population
    assert result.measure("MDRU")["note"].iloc[0] == "needs one reference subgroup"
    # IDISU needs a mean: with no population it uses the setting average when given
    assert not result.measure("IDISU")["applicable"].iloc[0]
    with_avg = no_pop.assign(setting_average=40.0)
    # IDISU = 100 * mean |y - 40| / 40 = 100 * (20 + 10 + 10)/3 / 40 = 33.33
    assert value(with_avg, "IDISU") == pytest.approx(100 * (40 / 3) / 40)


def test_missing_estimates_guard_and_force() -> None:
    t = pd.concat([example(ordered=False)] * 3, ignore_index=True)
    t["subgroup"] = [f"g{i}" for i in range(len(t))]
    t.loc[[0, 1], "estimate"] = np.nan  # 2 of 9 missing = 22% > 15%
    assert not heat_measures(t, measures=["BGV"]).measure("BGV")["applicable"].iloc[0]
    assert heat_measures(t, measures=["BGV"], force=True).measure("BGV")["applicable"].iloc[0]


def test_logistic_sii_needs_estimates_within_the_scale() -> None:
    t = example(ordered=True).assign(indicator_scale=10)  # 20, 30, 50 exceed a scale of 10
    note = heat_measures(t, measures=["SII"]).measure("SII")["note"].iloc[0]
    assert "outside 0..scale" in note
    assert np.isfinite(value(t, "SII", sii_model="linear"))


def test_positive_estimates_needed_for_ratios_and_mld() -> None:
    t = example(ordered=False).assign(estimate=[0.0, 30.0, 50.0])
    result = heat_measures(t)
    assert not result.measure("R")["applicable"].iloc[0]
    assert not result.measure("MLD")["applicable"].iloc[0]
    assert result.measure("TI")["applicable"].iloc[0]  # r ln r -> 0 as r -> 0


def test_all_21_measures_are_named_once() -> None:
    assert len(MEASURE_CODES) == 21 == len(set(MEASURE_CODES))
    ordered = heat_measures(example(ordered=True))
    non_ordered = heat_measures(example(ordered=False, reference=1))
    covered = set(ordered.tidy()["measure"]) | set(non_ordered.tidy()["measure"])
    assert covered == set(MEASURE_CODES)


def test_input_rules_are_enforced_with_named_errors() -> None:
    t = example(ordered=True).assign(subgroup_order=[1, 2, 4])
    with pytest.raises(ParameterError, match="consecutive integers"):
        heat_measures(t)
    with pytest.raises(ParameterError, match="one reference subgroup"):
        heat_measures(example(ordered=False).assign(reference_subgroup=[1, 1, 0]))
    flags = example(ordered=False).assign(favourable_indicator=[1, 0, 1])
    with pytest.raises(ParameterError, match="constant within an indicator"):
        heat_measures(flags)
    with pytest.raises(ParameterError, match="measures"):
        heat_measures(example(ordered=False), measures=["XYZ"])
    with pytest.raises(ParameterError, match="sii_model"):
        heat_measures(example(ordered=False), sii_model="probit")


def test_result_views_serialise() -> None:
    result = heat_measures(example(ordered=True))
    text = result.summary()
    assert "SII" in text and "analytic" in text
    payload = result.to_dict()
    json.dumps(payload)
    assert {r["measure"] for r in payload["not_applicable"]} >= {"BGV", "MLD"}
    result.plot().to_dict()
    result.plot_measures().to_dict()
    assert list(result.to_frame().columns)[:5] == ["setting", "date", "source", "indicator_abbr", "dimension"]
