"""The imputation estimator (Borusyak, Jaravel & Spiess 2024) against a peer, its own algebra and known truths.

Reference numbers:

* mpdta event-time effects e = 0..3: -0.0311, -0.0522, -0.1361, -0.1047, computed with CausalPy 0.9's
  ``StaggeredDifferenceInDifferences`` (the same imputation estimator) and recorded in the shared reference
  folder's README (section 1c). They are given to 4 decimals, so the test allows 5e-5.
* Point estimates: an independent first stage fitted by pyfixest (unit and year fixed effects on the untreated
  rows), whose predictions for the treated rows give the same effects to machine precision.
* Pre-trend test (BJS Test 1): the Wald statistic of the same lead regression fitted by pyfixest with CRV1
  errors clustered by county.
* Standard errors: Theorem 3's clustered variance written out densely (explicit projection matrix), which
  the estimator computes blockwise without forming it.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pyfixest as pf
import pytest

from knowdo.designs.imputation import ImputationDiD, imputation_did
from knowdo.errors import ParameterError

MPDTA = {"outcome": "lemp", "unit": "countyreal", "time": "year", "cohort": "first.treat"}


@pytest.fixture(scope="module")
def mpdta(shared_dir: Path) -> pd.DataFrame:
    return pd.read_csv(shared_dir / "reference" / "mpdta.csv")


def test_mpdta_event_time_effects_match_published_peer_output(mpdta: pd.DataFrame) -> None:
    effect = imputation_did(mpdta, **MPDTA)
    path = effect.path.set_index("time")["estimate"]  # type: ignore[union-attr]
    # CausalPy 0.9 StaggeredDifferenceInDifferences on mpdta (reference README, section 1c).
    expected = {0: -0.0311, 1: -0.0522, 2: -0.1361, 3: -0.1047}
    for event_time, value in expected.items():
        assert path[float(event_time)] == pytest.approx(value, abs=5e-5)


def test_point_estimates_equal_an_independent_first_stage_in_pyfixest(mpdta: pd.DataFrame) -> None:
    data = mpdta.rename(columns={"first.treat": "g"})
    treated = (data["g"] > 0) & (data["year"] >= data["g"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first = pf.feols("lemp ~ 1 | countyreal + year", data=data[~treated], fixef_rm="none")
        predicted = first.predict(newdata=data[treated])
    tau = data.loc[treated, "lemp"].to_numpy() - np.asarray(predicted)
    event = (data.loc[treated, "year"] - data.loc[treated, "g"]).to_numpy()
    effect = imputation_did(data, outcome="lemp", unit="countyreal", time="year", cohort="g")
    # pyfixest demeans iteratively (tolerance 1e-8), so agreement is to about 1e-9, not machine precision.
    assert effect.estimate == pytest.approx(tau.mean(), abs=1e-8)
    path = effect.path.set_index("time")  # type: ignore[union-attr]
    for e in np.unique(event):
        assert path.loc[float(e), "estimate"] == pytest.approx(tau[event == e].mean(), abs=1e-8)
        assert path.loc[float(e), "n_obs"] == int((event == e).sum())


def test_pretrend_wald_equals_pyfixest_lead_regression(mpdta: pd.DataFrame) -> None:
    data = mpdta.rename(columns={"first.treat": "g"})
    untreated = data[(data["g"] == 0) | (data["year"] < data["g"])].copy()
    for k in (1, 2, 3):
        untreated[f"lead{k}"] = ((untreated["g"] > 0) & (untreated["g"] - untreated["year"] == k)).astype(float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = pf.feols("lemp ~ lead1 + lead2 + lead3 | countyreal + year", data=untreated,
                       vcov={"CRV1": "countyreal"}, fixef_rm="none")
        statistic, p_value = fit.wald_test(distribution="chi2").tolist()
    effect = imputation_did(data, outcome="lemp", unit="countyreal", time="year", cohort="g", pretrend_periods=3)
    assert effect.diagnostics["pretrend_df"] == 3
    assert effect.diagnostics["pretrend_wald"] == pytest.approx(statistic, rel=1e-6)
    assert effect.diagnostics["pretrend_p_value"] == pytest.approx(p_value, rel=1e-5)


def _staggered_panel(seed: int, units: int = 90, periods: int = 10, drop: float = 0.0) -> tuple[pd.DataFrame, float]:
    """Unit and period effects, three cohorts and never-treated units, effects varying by cohort and event time.

    Returns the panel and the true ATT over its treated rows (equal weights).
    """
    rng = np.random.default_rng(seed)
    cohort = rng.choice([0, 4, 6, 8], size=units, p=[0.4, 0.2, 0.2, 0.2])
    unit, time = np.repeat(np.arange(units), periods), np.tile(np.arange(1, periods + 1), units)
    g = cohort[unit]
    event = np.where(g > 0, time - g, -1)
    effect = np.where(event >= 0, 1.0 + 0.3 * event + 0.1 * g, 0.0)
    x = rng.normal(size=units * periods) + 0.05 * time
    y = rng.normal(size=units)[unit] + 0.2 * time + 0.5 * x + effect + rng.normal(size=units * periods)
    frame = pd.DataFrame({"id": unit, "t": time, "g": g, "x": x, "y": y, "cluster": unit // 3})
    keep = rng.random(len(frame)) >= drop
    frame, effect = frame[keep], effect[keep]
    treated = (frame["g"] > 0) & (frame["t"] >= frame["g"])
    return frame.reset_index(drop=True), float(effect[treated.to_numpy()].mean())


def _dense_theorem3(frame: pd.DataFrame, covariates: list[str], cluster: str) -> tuple[float, float]:
    """Estimate and Theorem 3 SE (leave-out auxiliary averages) from the explicit projection matrix."""
    treated = ((frame["g"] > 0) & (frame["t"] >= frame["g"])).to_numpy()
    units = pd.get_dummies(frame["id"]).to_numpy(float)
    periods = pd.get_dummies(frame["t"]).to_numpy(float)[:, 1:]
    z = np.hstack([units, periods, frame[covariates].to_numpy(float)])
    z0, z1, y = z[~treated], z[treated], frame["y"].to_numpy()
    projection = np.linalg.pinv(z0.T @ z0)
    coef = projection @ z0.T @ y[~treated]
    tau = y[treated] - z1 @ coef
    w1 = np.full(treated.sum(), 1 / treated.sum())
    v0 = -z0 @ projection @ z1.T @ w1
    resid0 = y[~treated] - z0 @ coef
    rows = frame[treated].reset_index(drop=True)
    group = rows["g"].astype(str) + ":" + (rows["t"] - rows["g"]).astype(str)
    resid1 = np.empty(len(rows))
    for i in range(len(rows)):
        others = (group == group[i]).to_numpy() & (np.arange(len(rows)) != i)
        resid1[i] = tau[i] - (tau[others].mean() if others.any() else tau[i])
    contributions = pd.Series(np.concatenate([v0 * resid0, w1 * resid1]))
    clusters = np.concatenate([frame.loc[~treated, cluster].to_numpy(), frame.loc[treated, cluster].to_numpy()])
    score = contributions.groupby(clusters).sum()
    return float(w1 @ tau), float(np.sqrt((score**2).sum()))


@pytest.mark.parametrize("covariates", [[], ["x"]])
def test_blockwise_se_equals_the_dense_theorem3_formula(covariates: list[str]) -> None:
    frame, _ = _staggered_panel(seed=3, units=40, periods=8, drop=0.08)  # unbalanced on purpose
    effect = imputation_did(frame, outcome="y", unit="id", time="t", cohort="g", covariates=covariates,
                            cluster="cluster")
    estimate, se = _dense_theorem3(frame, covariates, "cluster")
    assert effect.estimate == pytest.approx(estimate, abs=1e-10)
    assert effect.std_error == pytest.approx(se, rel=1e-9)
    assert effect.diagnostics["clusters"] == frame["cluster"].nunique()


def test_recovers_truth_and_covers_it_over_seeds() -> None:
    rows = []
    for seed in range(200):
        frame, truth = _staggered_panel(seed)
        effect = imputation_did(frame, outcome="y", unit="id", time="t", cohort="g", covariates=["x"])
        rows.append((effect.estimate - truth, effect.std_error, effect.conf_low <= truth <= effect.conf_high))
    error, se, covered = (np.array(c, dtype=float) for c in zip(*rows, strict=True))
    assert abs(error.mean()) < 3 * error.std() / np.sqrt(len(error))  # unbiased
    # Effects vary only by cohort and event time, so the Theorem 3 variance is not conservative here:
    # the RMS SE matches the spread of the errors (within 15%) and the 95% interval covers ~95% (200 seeds:
    # Monte Carlo SD 1.5 points).
    assert np.sqrt((se**2).mean()) == pytest.approx(error.std(), rel=0.15)
    assert 0.92 <= covered.mean() <= 0.98


@pytest.mark.slow
def test_coverage_over_2000_seeds() -> None:
    """Recorded in docs/studies/did-coverage.md."""
    covered = []
    for seed in range(2000):
        frame, truth = _staggered_panel(seed)
        effect = imputation_did(frame, outcome="y", unit="id", time="t", cohort="g", covariates=["x"])
        covered.append(effect.conf_low <= truth <= effect.conf_high)
    rate = float(np.mean(covered))
    print({"seeds": len(covered), "coverage": rate})
    assert 0.935 <= rate <= 0.965  # Monte Carlo SD 0.5 points at 2,000 seeds


def test_units_without_untreated_rows_are_left_out_and_counted() -> None:
    frame, _ = _staggered_panel(seed=1, units=30, periods=6)
    always = pd.DataFrame({"id": 999, "t": range(1, 7), "g": 1, "x": 0.0, "y": 5.0, "cluster": 999})
    effect = imputation_did(pd.concat([frame, always]), outcome="y", unit="id", time="t", cohort="g")
    base = imputation_did(frame, outcome="y", unit="id", time="t", cohort="g")
    assert effect.diagnostics["not_imputable_dropped"] == 6
    assert effect.estimate == pytest.approx(base.estimate)


def test_anticipation_moves_periods_out_of_the_first_stage() -> None:
    frame, _ = _staggered_panel(seed=2)
    effect = imputation_did(frame, outcome="y", unit="id", time="t", cohort="g", anticipation=1)
    source = effect.path.set_index("time")["source"]  # type: ignore[union-attr]
    # The anticipation period is estimated as an effect, not assumed untreated; the leads before it are tested.
    assert source[-1.0] == "imputed effect"
    assert [source[t] for t in (-4.0, -3.0, -2.0)] == ["pre-trend test lead"] * 3
    treated = ((frame["g"] > 0) & (frame["t"] >= frame["g"])).sum()
    assert effect.diagnostics["treated_observations"] == treated


def test_strata_columns_give_one_row_per_level() -> None:
    frame, _ = _staggered_panel(seed=4)
    frame["sex"] = np.where(frame["id"] % 2 == 0, "female", "male")
    effect = ImputationDiD(outcome="y", unit="id", time="t", cohort="g").fit(frame, strata=["sex"]).result_
    assert effect.strata is not None and list(effect.strata["stratum"]) == ["female", "male"]
    assert effect.strata["estimate"].notna().all()
    assert effect.to_dict()["path"] and "pretrend_p_value" in effect.to_dict()["diagnostics"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: pd.concat([f, f.head(1)]), "duplicate"),
        (lambda f: f.assign(g=0), "need both untreated and treated"),
        (lambda f: f.assign(g=np.where(f.index == 0, 7, f["g"])), "constant within a unit"),
        (lambda f: f.drop(columns="y"), "'y'"),
    ],
)
def test_bad_input_raises_a_readable_error(change: object, message: str) -> None:
    frame, _ = _staggered_panel(seed=5, units=30, periods=6)
    with pytest.raises(ParameterError, match=message):
        imputation_did(change(frame), outcome="y", unit="id", time="t", cohort="g")  # type: ignore[operator]


@pytest.mark.parametrize("setting", [{"anticipation": -1}, {"pretrend_periods": 0}, {"level": 1.5},
                                     {"covariates": "x"}])
def test_bad_settings_raise(setting: dict[str, object]) -> None:
    frame, _ = _staggered_panel(seed=6, units=30, periods=6)
    with pytest.raises(ParameterError):
        imputation_did(frame, outcome="y", unit="id", time="t", cohort="g", **setting)
