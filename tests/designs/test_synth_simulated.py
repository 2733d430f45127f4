"""Synthetic control on simulated factor-model panels, the simplex solver, and input errors."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from scipy import optimize

from knowdo.designs.synth import SyntheticControl, simplex_least_squares, synthetic_control
from knowdo.errors import ParameterError


def _panel(effect: float = 3.0, donors: int = 12, periods: int = 30, start: int = 20, noise: float = 0.05,
           seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Treated unit = a convex combination of three donors (plus noise), effect from ``start`` on."""
    rng = np.random.default_rng(seed)
    factors = rng.normal(size=(periods, 3)).cumsum(axis=0)
    loadings = rng.uniform(0.5, 2.0, size=(donors, 3))
    Y = loadings @ factors.T + rng.normal(0, noise, (donors, periods))
    true_w = np.zeros(donors)
    true_w[[0, 3, 7]] = [0.5, 0.3, 0.2]
    treated = true_w @ Y + rng.normal(0, noise, periods) + effect * (np.arange(periods) >= start)
    rows = [(f"u{j:02d}", t, Y[j, t]) for j in range(donors) for t in range(periods)]
    rows += [("treated", t, treated[t]) for t in range(periods)]
    return pd.DataFrame(rows, columns=["unit", "time", "y"]), true_w


def test_simplex_solver_matches_slsqp_and_kkt() -> None:
    rng = np.random.default_rng(1)
    for _ in range(20):
        A = rng.normal(size=(8, 12))
        b = rng.normal(size=8)
        w = simplex_least_squares(A, b)
        assert w.min() >= 0 and w.sum() == pytest.approx(1.0, abs=1e-12)
        ref = optimize.minimize(lambda v, A=A, b=b: float(np.sum((A @ v - b) ** 2)), np.full(12, 1 / 12),
                                method="SLSQP", bounds=[(0, 1)] * 12,
                                constraints={"type": "eq", "fun": lambda v: v.sum() - 1},
                                options={"ftol": 1e-14, "maxiter": 500})
        ours, theirs = float(np.sum((A @ w - b) ** 2)), float(np.sum((A @ ref.x - b) ** 2))
        assert ours <= theirs + 1e-9


def test_recovers_effect_and_weights_with_outcome_predictors() -> None:
    df, true_w = _panel()
    fit = SyntheticControl(unit="unit", time="time", outcome="y", treated_unit="treated", treatment_time=20,
                           in_time_placebo=12).fit(df)
    effect = fit.result_
    assert effect.estimate == pytest.approx(3.0, abs=0.1)
    # three factors: many convex combinations fit, so check the fit rather than the particular weights
    assert effect.diagnostics["pre_rmspe"] < 0.15
    weights = effect.details["weights"]["weight"].to_numpy()
    assert weights.sum() == pytest.approx(1.0) and weights.min() >= 0
    assert weights @ true_w > 0  # weight lands on the donors that built the treated unit
    # the treated unit has by far the largest post/pre RMSPE ratio: p = 1 / (J + 1)
    assert effect.p_value == pytest.approx(1 / 13)
    assert effect.diagnostics["rmspe_ratio_rank"] == 1
    # the in-time placebo finds no effect where there is none
    assert abs(effect.diagnostics["in_time_placebo_att"]) < 0.2
    # leave-one-out: dropping any weighted donor keeps an effect of the same sign
    loo = effect.details["leave_one_out"]
    assert len(loo) >= 3 and (loo["att"] > 1.5).all()
    assert len(effect.details["placebo"]) == 12
    assert np.isfinite(effect.std_error) and effect.conf_low < effect.estimate < effect.conf_high


def test_no_effect_gives_unremarkable_p_value() -> None:
    df, _ = _panel(effect=0.0, noise=0.3, seed=2)
    effect = synthetic_control(df, unit="unit", time="time", outcome="y", treated_unit="treated",
                               treatment_time=20, leave_one_out=False)
    assert abs(effect.estimate) < 0.5
    assert effect.p_value > 1 / 13


def test_nested_v_with_covariate_predictors() -> None:
    df, _ = _panel(seed=3)
    rng = np.random.default_rng(3)
    pre_mean = df[df.time < 20].groupby("unit")["y"].mean()
    df["x"] = df["unit"].map(pre_mean) + rng.normal(0, 0.01, len(df))
    effect = synthetic_control(
        df, unit="unit", time="time", outcome="y", treated_unit="treated", treatment_time=20,
        predictors=[("x", range(0, 20)), ("y", range(15, 20), "mean"), ("y", (5,))], placebo=False,
        leave_one_out=False)
    assert effect.estimate == pytest.approx(3.0, abs=0.3)
    v = effect.details["predictor_weights"]
    assert len(v) == 3 and v["v"].sum() == pytest.approx(1.0)


def test_panel_strata_rows() -> None:
    df, _ = _panel(seed=4)
    both = pd.concat([df.assign(dimension="all", stratum="all"),
                      df.assign(dimension="sex", stratum="female"),
                      df.assign(y=df.y * 2, dimension="sex", stratum="male")], ignore_index=True)
    effect = synthetic_control(both, unit="unit", time="time", outcome="y", treated_unit="treated",
                               treatment_time=20, leave_one_out=False)
    strata = effect.strata.set_index("stratum")
    assert strata.loc["female", "estimate"] == pytest.approx(effect.estimate, rel=1e-6)
    assert strata.loc["male", "estimate"] == pytest.approx(2 * effect.estimate, rel=1e-3)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"treated_unit": "nobody"}, "treated_unit='nobody' is not a value of 'unit'"),
        ({"treatment_time": 1}, "leaves 1 pre"),
        ({"v_method": "random"}, "v_method='random' is not accepted; use one of 'nested', 'equal'"),
        ({"donors": ["u01"]}, "1 donor(s)"),
        ({"predictors": [("y", ())]}, "has no times"),
    ],
)
def test_user_errors(settings: dict[str, object], message: str) -> None:
    df, _ = _panel()
    args = {"unit": "unit", "time": "time", "outcome": "y", "treated_unit": "treated", "treatment_time": 20,
            **settings}
    with pytest.raises(ParameterError, match=re.escape(message)):
        SyntheticControl(**args).fit(df)  # type: ignore[arg-type]


def test_unbalanced_panel_is_refused() -> None:
    df, _ = _panel()
    with pytest.raises(ParameterError, match="balanced panel"):
        synthetic_control(df.iloc[1:], unit="unit", time="time", outcome="y", treated_unit="treated",
                          treatment_time=20)
