"""Generalizability / transportability: weights checked by hand, Tipton's index, simulated recovery.

Hand checks (frameworks.md §8 item 10, designs-and-power.md §7): with one
binary covariate the participation model is saturated, p(x) = n_trial(x) /
(n_trial(x) + n_target(x)); inverse-odds weights (1-p)/p = n_target(x) /
n_trial(x) transport to a disjoint target, so the weighted effect is the
target-share-weighted cell effect; inverse-probability weights 1/p generalise
to the population containing the trial (trial + non-participants).
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from knowdo.designs.transport import Transport, participation_weights, tipton_band, tipton_index, transport
from knowdo.errors import ParameterError


def _hand() -> pd.DataFrame:
    """Trial: 40 with x=0, 60 with x=1, arms exactly balanced in each cell. Target: 150 x=0, 50 x=1."""
    rows = []
    for x, n, effect in ((0, 40, 1.0), (1, 60, 3.0)):
        for i in range(n):
            a = i % 2
            rows.append((1, x, a, 10.0 + 2 * x + effect * a + (0.5 if i % 4 < 2 else -0.5)))
    rows += [(0, 0, np.nan, np.nan)] * 150 + [(0, 1, np.nan, np.nan)] * 50
    return pd.DataFrame(rows, columns=["in_trial", "x", "a", "y"])


def test_inverse_odds_weights_transport_to_the_target_by_hand() -> None:
    effect = transport(_hand(), outcome="y", treatment="a", covariates=["x"], target="disjoint", n_bootstrap=50)
    # target shares 150/200 and 50/200 of cell effects 1 and 3
    assert effect.estimate == pytest.approx(0.75 * 1.0 + 0.25 * 3.0, abs=1e-9)
    # unweighted trial effect: 40/100 and 60/100
    assert effect.diagnostics["trial_effect_unweighted"] == pytest.approx(0.4 * 1.0 + 0.6 * 3.0)
    # weights (1-p)/p = 150/40 and 50/60: Kish ESS by hand
    w = np.r_[np.full(40, 150 / 40), np.full(60, 50 / 60)]
    assert effect.diagnostics["ess_trial"] == pytest.approx(w.sum() ** 2 / (w**2).sum(), rel=1e-6)


def test_inverse_probability_weights_generalise_to_the_whole_population_by_hand() -> None:
    effect = transport(_hand(), outcome="y", treatment="a", covariates=["x"], target="nested", n_bootstrap=50)
    # population = trial + non-participants: x=0 190, x=1 110 of 300
    assert effect.estimate == pytest.approx((190 * 1.0 + 110 * 3.0) / 300, abs=1e-9)


def test_participation_weight_formulas() -> None:
    p = np.array([0.2, 0.5, 0.8])
    assert participation_weights(p, "nested") == pytest.approx([5.0, 2.0, 1.25])
    assert participation_weights(p, "disjoint") == pytest.approx([4.0, 1.0, 0.25])


def test_tipton_index_against_the_normal_closed_form() -> None:
    # equal-variance normals d apart: B = exp(-d^2 / 8); d = 0.92 gives 0.90 (designs-and-power.md §7)
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, 20_000), rng.normal(0.92, 1, 20_000)
    assert tipton_index(a, b) == pytest.approx(np.exp(-0.92**2 / 8), abs=0.01)
    assert tipton_index(a, a) == pytest.approx(1.0, abs=1e-6)
    assert tipton_index(a, rng.normal(10, 1, 5000)) < 0.01
    assert [tipton_band(v) for v in (0.95, 0.85, 0.6, 0.3)] == ["very high", "high", "medium", "low"]


def _simulated(n_trial: int = 1500, n_target: int = 3000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x_t, x_p = rng.normal(0.6, 1, n_trial), rng.normal(0.0, 1, n_target)
    a = rng.integers(0, 2, n_trial)
    y = 2.0 + x_t + (1.0 + 0.8 * x_t) * a + rng.normal(size=n_trial)  # effect modified by x
    trial = pd.DataFrame({"in_trial": 1, "x": x_t, "a": a, "y": y,
                          "area": np.where(rng.random(n_trial) < 0.5, "urban", "rural")})
    target = pd.DataFrame({"in_trial": 0, "x": x_p, "a": np.nan, "y": np.nan,
                           "area": np.where(rng.random(n_target) < 0.5, "urban", "rural")})
    return pd.concat([trial, target], ignore_index=True)


def test_simulated_transport_recovers_target_effect() -> None:
    df = _simulated()
    effect = transport(df, outcome="y", treatment="a", covariates=["x"], n_bootstrap=100, seed=1, strata=["area"])
    truth = 1.0  # target mean of x is 0
    assert effect.diagnostics["trial_effect_unweighted"] == pytest.approx(1.0 + 0.8 * 0.6, abs=0.15)
    assert effect.conf_low < truth < effect.conf_high
    assert effect.diagnostics["propensity_smd"] > 0.25  # the trial is not like the target
    assert 0.5 < effect.diagnostics["tipton_index"] < 1.0
    balance = effect.details["balance"].set_index("covariate")
    assert balance.loc["x", "asmd_after"] < 0.05 < balance.loc["x", "asmd_before"]
    assert list(effect.strata["stratum"]) == ["rural", "urban"]
    assert effect.strata["conf_low"].lt(effect.strata["conf_high"]).all()


def test_bootstrap_reproduces_with_seed() -> None:
    df = _simulated(n_trial=400, n_target=800, seed=2)
    a = transport(df, outcome="y", treatment="a", covariates=["x"], n_bootstrap=40, seed=5)
    b = transport(df, outcome="y", treatment="a", covariates=["x"], n_bootstrap=40, seed=5)
    assert (a.conf_low, a.conf_high, a.std_error) == (b.conf_low, b.conf_high, b.std_error)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"target": "overlap"}, "target='overlap' is not accepted; use one of 'nested', 'disjoint'"),
        ({"n_bootstrap": 5}, "n_bootstrap=5 must be an integer >= 20"),
        ({"covariates": []}, "name at least one covariate"),
        ({"sample": "a"}, "column 'a' has"),
    ],
)
def test_user_errors(settings: dict[str, object], message: str) -> None:
    args = {"outcome": "y", "treatment": "a", "covariates": ["x"], **settings}
    with pytest.raises(ParameterError, match=re.escape(message)):
        Transport(**args).fit(_hand())  # type: ignore[arg-type]
