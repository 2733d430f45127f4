"""Trial emulation: weighting formulas checked by hand, simulated recovery, diagnostics, the protocol.

Hand checks use one binary confounder, where the logistic propensity model is
saturated: e(x) is the exposed share in each cell, so normalised IPW equals
direct standardisation, sum_x P(x) (ybar1(x) - ybar0(x)) for the ATE and
sum_x P(x | exposed) (...) for the ATT (Hernan & Robins, Causal Inference, ch. 12).
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from knowdo.designs.emulation import Protocol, TrialEmulation, emulate, smd
from knowdo.errors import ParameterError


def _cells() -> pd.DataFrame:
    """x=0: 30 exposed / 70 not; x=1: 60 exposed / 40 not; fixed outcomes per cell and arm."""
    rows = []
    for x, n1, n0, y1, y0 in ((0, 30, 70, [5, 7], [3, 4]), (1, 60, 40, [9, 12], [6, 6])):
        rows += [(x, 1, y1[i % 2]) for i in range(n1)] + [(x, 0, y0[i % 2]) for i in range(n0)]
    return pd.DataFrame(rows, columns=["x", "a", "y"])


def _standardised(df: pd.DataFrame, weights: pd.Series) -> float:
    cell = df.groupby(["x", "a"])["y"].mean().unstack()
    return float(((cell[1] - cell[0]) * weights).sum() / weights.sum())


@pytest.mark.parametrize("method", ["ipw", "aipw"])
def test_ate_equals_standardisation_by_hand(method: str) -> None:
    df = _cells()
    expected = _standardised(df, df.groupby("x").size())  # P(x): 100 / 100
    # by hand: x=0: 6 - 3.5 = 2.5; x=1: 10.5 - 6 = 4.5; equal cell sizes -> 3.5
    assert expected == pytest.approx(3.5)
    effect = emulate(df, outcome="y", treatment="a", covariates=["x"], method=method)
    assert effect.estimate == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("method", ["ipw", "aipw"])
def test_att_equals_standardisation_to_the_exposed(method: str) -> None:
    df = _cells()
    expected = _standardised(df, df[df.a == 1].groupby("x").size())  # (30 * 2.5 + 60 * 4.5) / 90
    assert expected == pytest.approx((30 * 2.5 + 60 * 4.5) / 90)
    effect = emulate(df, outcome="y", treatment="a", covariates=["x"], method=method, estimand="att")
    assert effect.estimate == pytest.approx(expected, abs=1e-9)


def test_weights_balance_the_confounder_exactly() -> None:
    effect = emulate(_cells(), outcome="y", treatment="a", covariates=["x"], method="ipw")
    balance = effect.details["balance"].set_index("covariate")
    # before: exposed 60/90 with x=1 vs unexposed 40/110
    assert balance.loc["x", "mean_exposed"] == pytest.approx(60 / 90)
    assert balance.loc["x", "mean_unexposed"] == pytest.approx(40 / 110)
    assert abs(balance.loc["x", "smd_before"]) > 0.5
    assert balance.loc["x", "smd_after"] == pytest.approx(0.0, abs=1e-12)
    # Kish ESS of the exposed ATE weights 1/e: e = 0.3 (30 units) and 0.6 (60 units)
    w = np.r_[np.full(30, 1 / 0.3), np.full(60, 1 / 0.6)]
    assert effect.diagnostics["ess_exposed"] == pytest.approx(w.sum() ** 2 / (w**2).sum())


def test_smd_formula_by_hand() -> None:
    x = np.array([1.0, 2.0, 3.0, 2.0, 3.0, 4.0])
    a = np.array([1, 1, 1, 0, 0, 0])
    # means 2 and 3, both variances 1 -> SMD -1
    assert smd(x, a) == pytest.approx(-1.0)


def _observational(n: int = 3000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=n)
    x2 = rng.integers(0, 3, n)
    e = 1 / (1 + np.exp(-(-0.3 + 0.8 * x1 + 0.4 * x2)))
    a = (rng.random(n) < e).astype(int)
    y = 1.0 + 1.5 * a + 2.0 * x1 + 0.5 * x2 + rng.normal(size=n)
    clinic = rng.integers(0, 40, n)
    return pd.DataFrame({"x1": x1, "x2": pd.Categorical(x2).astype(str), "a": a, "y": y, "clinic": clinic,
                         "sex": np.where(rng.random(n) < 0.5, "female", "male")})


@pytest.mark.parametrize("method", ["ipw", "aipw"])
def test_simulated_recovery_and_confounding_removed(method: str) -> None:
    df = _observational()
    naive = df[df.a == 1].y.mean() - df[df.a == 0].y.mean()
    effect = emulate(df, outcome="y", treatment="a", covariates=["x1", "x2"], method=method)
    assert naive > 2.5  # confounded
    assert effect.estimate == pytest.approx(1.5, abs=3 * effect.std_error)
    assert effect.diagnostics["max_abs_smd_after"] < 0.1 < effect.diagnostics["max_abs_smd_before"]
    assert set(effect.details["balance"]["covariate"]) == {"x1", "x2=1", "x2=2"}


def test_ipw_sandwich_se_agrees_with_bootstrap() -> None:
    df = _observational(n=1000, seed=1)
    effect = emulate(df, outcome="y", treatment="a", covariates=["x1", "x2"], method="ipw")
    rng = np.random.default_rng(2)
    draws = [emulate(df.iloc[rng.integers(0, len(df), len(df))], outcome="y", treatment="a",
                     covariates=["x1", "x2"], method="ipw").estimate for _ in range(100)]
    assert effect.std_error == pytest.approx(np.std(draws, ddof=1), rel=0.25)


def test_cluster_robust_and_strata_and_trim() -> None:
    df = _observational(seed=3)
    plain = emulate(df, outcome="y", treatment="a", covariates=["x1", "x2"])
    clustered = emulate(df, outcome="y", treatment="a", covariates=["x1", "x2"], cluster="clinic",
                        strata=["sex"])
    assert clustered.estimate == plain.estimate
    assert clustered.n_units == 40
    assert list(clustered.strata["stratum"]) == ["female", "male"]
    trimmed = emulate(df, outcome="y", treatment="a", covariates=["x1", "x2"], trim=0.1)
    assert trimmed.diagnostics["n_trimmed"] > 0
    assert "propensity in [0.1, 0.9]" in trimmed.estimand


def test_protocol_prints_seven_components() -> None:
    protocol = Protocol(
        eligibility="Adults screening PHQ-9 >= 10 at a programme clinic",
        exposure_comparison="Lay-worker PST available at the clinic vs usual care",
        assignment="Rollout not randomised; emulate randomisation given baseline covariates",
        time_zero_follow_up="Date of the positive screen; 3 months",
        outcomes="Started treatment within 30 days",
        estimand="ATE among the eligible",
        analysis="AIPW; logistic propensity; assumptions listed with the result",
        emulation={"assignment": "inverse-probability weights"},
    )
    text = protocol.summary()
    assert len(re.findall(r"^  \d\. ", text, flags=re.MULTILINE)) == 7
    assert "emulated by: inverse-probability weights" in text
    table = protocol.components()
    assert list(table["number"]) == [1, 2, 3, 4, 5, 6, 7]
    effect = emulate(_observational(), outcome="y", treatment="a", covariates=["x1"], protocol=protocol)
    assert effect.details["protocol"].shape == (7, 4)
    assert effect.settings["protocol"]["estimand"] == "ATE among the eligible"


def test_protocol_and_estimator_errors() -> None:
    with pytest.raises(ParameterError, match="component 'outcomes' is empty"):
        Protocol("e", "x", "a", "t", "  ", "ate", "aipw")
    with pytest.raises(ParameterError, match=re.escape("unknown component(s) ['weights']")):
        Protocol("e", "x", "a", "t", "o", "ate", "aipw", emulation={"weights": "no"})
    with pytest.raises(ParameterError, match=re.escape("estimand='atc' is not accepted; use one of 'ate', 'att'")):
        TrialEmulation(outcome="y", treatment="a", covariates=["x"], estimand="atc").fit(_cells())  # type: ignore[arg-type]
    separated = _cells().assign(z=lambda d: d.a)
    with pytest.raises(ParameterError, match="perfect"):
        emulate(separated, outcome="y", treatment="a", covariates=["z"])
