"""Callaway & Sant'Anna: input handling, options, inference plumbing and the Effect contract.

Expected values here are computed from the definitions (group means, the
universal-base identity, the unit-cluster identity), not copied from output.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from knowdo.designs.did import CallawaySantAnna, did
from knowdo.designs.did_inference import InfluenceRows
from knowdo.errors import ParameterError

COLUMNS = {"outcome": "lemp", "unit": "countyreal", "time": "year", "cohort": "first.treat"}


@pytest.fixture(scope="module")
def mpdta(shared_dir: Path) -> pd.DataFrame:
    return pd.read_csv(shared_dir / "reference" / "mpdta.csv")


def toy_panel(seed: int = 0, units: int = 120, periods: int = 6, effect: float = 1.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = np.repeat(rng.choice([0, 3, 5], units), periods)
    t = np.tile(np.arange(1, periods + 1), units)
    y = rng.normal(size=units * periods) + 0.2 * t + effect * ((g > 0) & (t >= g))
    return pd.DataFrame({"id": np.repeat(np.arange(units), periods), "t": t, "g": g, "y": y,
                         "region": np.repeat(np.arange(units) % 10, periods),
                         "sex": np.repeat(np.where(np.arange(units) % 2, "f", "m"), periods)})


def test_simple_att_equals_hand_computed_2x2() -> None:
    df = toy_panel(periods=2).assign(g=lambda d: np.where(d["g"] > 0, 2, 0))
    wide = df.pivot(index="id", columns="t", values="y")
    change = wide[2] - wide[1]
    treated = df.groupby("id")["g"].first() == 2
    expected = change[treated].mean() - change[~treated].mean()
    eff = did(df, outcome="y", unit="id", time="t", cohort="g")
    assert eff.estimate == pytest.approx(expected, abs=1e-12)
    # Welch-type SE (without the n-1 correction) of a difference in means is the analytic IF SE here.
    se = np.sqrt(change[treated].var(ddof=0) / treated.sum() + change[~treated].var(ddof=0) / (~treated).sum())
    assert eff.std_error == pytest.approx(se, rel=1e-10)


@pytest.mark.parametrize("never", [0, np.nan, np.inf])
def test_never_treated_coding_is_equivalent(mpdta: pd.DataFrame, never: float) -> None:
    coded = mpdta.assign(**{"first.treat": mpdta["first.treat"].replace(0, never)})
    base = did(mpdta, **COLUMNS)
    other = did(coded, **COLUMNS)
    assert other.estimate == base.estimate and other.std_error == base.std_error


def test_fit_does_not_mutate_data_and_init_only_assigns(mpdta: pd.DataFrame) -> None:
    before = mpdta.copy()
    est = CallawaySantAnna(**COLUMNS, control_group="nope")  # type: ignore[arg-type]
    assert est.control_group == "nope"  # not validated until fit
    with pytest.raises(ParameterError, match=r"control_group='nope'.*'nevertreated', 'notyettreated'"):
        est.fit(mpdta)
    CallawaySantAnna(**COLUMNS, bootstrap=True, n_boot=50, seed=1).fit(mpdta)
    pd.testing.assert_frame_equal(mpdta, before)


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"est_method": "ols"}, "est_method='ols'"),
        ({"base_period": "fixed"}, "base_period='fixed'"),
        ({"anticipation": -1}, "anticipation=-1"),
        ({"n_boot": 1}, "n_boot=1"),
        ({"covariates": "lpop"}, "list of column names"),
        ({"level": 95}, "level=95"),
    ],
)
def test_bad_settings_are_named(mpdta: pd.DataFrame, setting: dict[str, object], message: str) -> None:
    with pytest.raises(ParameterError, match=message):
        CallawaySantAnna(**COLUMNS, **setting).fit(mpdta)  # type: ignore[arg-type]


def test_unbalanced_panel_is_refused_then_dropped(mpdta: pd.DataFrame) -> None:
    holey = mpdta.drop(index=[3, 7])  # county 8001 loses 2006, county 8019 loses 2005
    with pytest.raises(ParameterError, match=r"unbalanced: 2 of 500 unit\(s\).*unbalanced='drop'"):
        did(holey, **COLUMNS)
    dropped = CallawaySantAnna(**COLUMNS, unbalanced="drop").fit(holey)
    assert dropped.result_.n_units == 498
    assert dropped.result_.diagnostics["dropped_unbalanced"] == 2
    expected = did(mpdta[~mpdta["countyreal"].isin(mpdta.loc[[3, 7], "countyreal"])], **COLUMNS)
    assert dropped.result_.estimate == pytest.approx(expected.estimate, abs=1e-14)


def test_missing_columns_and_duplicates_are_reported(mpdta: pd.DataFrame) -> None:
    with pytest.raises(ParameterError, match="'emp' not found"):
        did(mpdta, **{**COLUMNS, "outcome": "emp"})
    with pytest.raises(ParameterError, match="more than one row for unit"):
        did(pd.concat([mpdta, mpdta.head(1)]), **COLUMNS)
    with pytest.raises(ParameterError, match="no unit is never treated"):
        did(mpdta[mpdta["first.treat"] > 0], **COLUMNS)


def test_not_yet_treated_works_without_never_treated(mpdta: pd.DataFrame) -> None:
    treated_only = mpdta[mpdta["first.treat"] > 0]
    eff = did(treated_only, **COLUMNS, control_group="notyettreated")
    att = eff.details["att_gt"]
    # R did's rule: the last cohort (2007) becomes the comparison group and 2007 itself is dropped.
    assert set(att["group"]) == {2004.0, 2006.0} and att["time"].max() == 2006
    recoded = treated_only.assign(**{"first.treat": treated_only["first.treat"].replace(2007, 0)})
    same = did(recoded[recoded["year"] < 2007], **COLUMNS, control_group="notyettreated")
    assert eff.estimate == pytest.approx(same.estimate, abs=1e-14)


def test_universal_base_period(mpdta: pd.DataFrame) -> None:
    varying = did(mpdta, **COLUMNS).details["att_gt"]
    universal = did(mpdta, **COLUMNS, base_period="universal").details["att_gt"]
    # Post-treatment cells use g-1 as base under both; the g-1 cell is the reference (0, no SE).
    post_v = varying[varying["post"]].set_index(["group", "time"])["att"]
    post_u = universal[universal["post"]].set_index(["group", "time"])["att"]
    pd.testing.assert_series_equal(post_v, post_u)
    ref = universal[universal["time"] == universal["group"] - 1]
    assert (ref["att"] == 0).all() and ref["se"].isna().all()
    # Universal pre-period cells are long differences: ATT(2007, 2004) = sum of the varying short differences.
    short = varying[(varying["group"] == 2007) & (varying["time"] <= 2006)].set_index("time")["att"]
    long = universal[(universal["group"] == 2007) & (universal["time"] == 2004)]["att"].iloc[0]
    assert long == pytest.approx(-(short[2005] + short[2006]), abs=1e-12)


def test_anticipation_shifts_the_base_period(mpdta: pd.DataFrame) -> None:
    att = did(mpdta, **COLUMNS, anticipation=1).details["att_gt"]
    assert (att.loc[att["post"] & (att["group"] == 2006), "base_period"] == 2004).all()
    assert 2004.0 not in set(att["group"])  # no period before 2004 - 1 to serve as base
    assert did(mpdta, **COLUMNS, anticipation=1).diagnostics["dropped_no_pre_period"] == 20


def test_unit_cluster_equals_default_and_cluster_widens(mpdta: pd.DataFrame) -> None:
    base = did(mpdta, **COLUMNS)
    same = did(mpdta, **COLUMNS, cluster="countyreal")
    assert same.std_error == base.std_error
    state = mpdta.assign(state=mpdta["countyreal"] // 1000)
    clustered = did(state, **COLUMNS, cluster="state")
    assert clustered.diagnostics["n_clusters"] == state["state"].nunique()
    assert clustered.estimate == base.estimate and clustered.std_error != base.std_error
    boot = CallawaySantAnna(**COLUMNS, cluster="state", bootstrap=True, n_boot=4000, seed=3).fit(state).result_
    assert boot.std_error == pytest.approx(clustered.std_error, rel=0.15)


def test_bootstrap_is_seeded_and_matches_analytic() -> None:
    df = toy_panel(units=400)
    a = CallawaySantAnna(outcome="y", unit="id", time="t", cohort="g", bootstrap=True, n_boot=3000, seed=9).fit(df)
    b = CallawaySantAnna(outcome="y", unit="id", time="t", cohort="g", bootstrap=True, n_boot=3000, seed=9).fit(df)
    assert a.result_.std_error == b.result_.std_error
    analytic = did(df, outcome="y", unit="id", time="t", cohort="g")
    assert a.result_.std_error == pytest.approx(analytic.std_error, rel=0.08)
    path = a.result_.path
    assert path is not None and (path["band_high"] - path["band_low"] > path["conf_high"] - path["conf_low"]).all()


def test_aggregate_options_and_errors(mpdta: pd.DataFrame) -> None:
    est = CallawaySantAnna(**COLUMNS).fit(mpdta)
    dyn = est.aggregate("dynamic", min_e=-1, max_e=1)
    assert list(dyn.path["time"]) == [-1.0, 0.0, 1.0]
    assert dyn.estimate == pytest.approx(dyn.path.query("time >= 0")["estimate"].mean(), abs=1e-14)
    cal = est.aggregate("calendar")
    assert list(cal.path["time"]) == [2004.0, 2005.0, 2006.0, 2007.0]
    assert est.aggregate("group", max_e=0).details["group"].query("term != 'overall'")["estimate"].round(6).tolist() \
        == est.result_.details["att_gt"].query("time == group")["att"].round(6).tolist()
    with pytest.raises(ParameterError, match="kind='event'"):
        est.aggregate("event")  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match="call fit"):
        CallawaySantAnna(**COLUMNS).aggregate("simple")
    with pytest.raises(ParameterError, match="balance_e applies to kind='dynamic'"):
        est.aggregate("group", balance_e=1)


def test_strata_by_column_and_by_panel_convention() -> None:
    df = toy_panel(units=300)
    by_col = CallawaySantAnna(outcome="y", unit="id", time="t", cohort="g").fit(df, strata=["sex"]).result_
    assert by_col.strata is not None and list(by_col.strata["stratum"]) == ["f", "m"]
    female = did(df[df["sex"] == "f"], outcome="y", unit="id", time="t", cohort="g")
    assert by_col.strata.iloc[0]["estimate"] == pytest.approx(female.estimate, abs=1e-14)
    # Same data in the knowdo panel's long (dimension, stratum) layout.
    long = pd.concat(
        [df.assign(dimension="all", stratum="all")]
        + [part.assign(dimension="sex", stratum=level) for level, part in df.groupby("sex")]
    ).drop(columns=["sex"])
    panel_fit = did(long, outcome="y", unit="id", time="t", cohort="g")
    assert panel_fit.estimate == pytest.approx(by_col.estimate, abs=1e-14)
    pd.testing.assert_series_equal(panel_fit.strata["estimate"], by_col.strata["estimate"])


def test_effect_contract(mpdta: pd.DataFrame) -> None:
    eff = CallawaySantAnna(**COLUMNS, bootstrap=True, n_boot=99, seed=2).fit(mpdta).result_
    tidy = eff.tidy()
    assert list(tidy.columns) == ["term", "estimate", "std_error", "statistic", "p_value", "conf_low", "conf_high"]
    assert len(tidy) == 1 + len(eff.path)
    payload = json.loads(json.dumps(eff.to_dict()))
    assert payload["design"] == "did" and payload["settings"]["bootstrap_weights"] == "rademacher"
    assert {"att_gt", "simple", "group", "calendar", "dynamic"} <= set(payload["details"])
    assert {"group", "time", "att", "se", "conf_low", "conf_high"} <= set(payload["details"]["att_gt"][0])
    assert any("Parallel trends" in a for a in eff.assumptions)
    assert "pretrend_p_value" in eff.diagnostics and "event_pretrend_p_value" in eff.diagnostics
    assert "ATT" in eff.summary()
    eff.plot().to_dict()


def test_row_order_does_not_change_the_fit(mpdta: pd.DataFrame) -> None:
    # Sorted input takes the reshape fast path, shuffled input the general scatter path: same numbers.
    shuffled = mpdta.sample(frac=1.0, random_state=4)
    for settings in ({}, {"covariates": ["lpop"], "est_method": "dr"}):
        a = did(mpdta, **COLUMNS, **settings)
        b = did(shuffled, **COLUMNS, **settings)
        np.testing.assert_allclose(a.details["att_gt"]["att"], b.details["att_gt"]["att"], atol=1e-13)
        np.testing.assert_allclose(a.details["att_gt"]["se"], b.details["att_gt"]["se"], atol=1e-13)


def test_cohort_changing_within_unit_is_refused(mpdta: pd.DataFrame) -> None:
    broken = mpdta.copy()
    broken.loc[broken.index[1], "first.treat"] = 2006  # county 8001 is never treated in its other rows
    with pytest.raises(ParameterError, match="changes within unit"):
        did(broken, **COLUMNS)


def test_small_sample_interval_is_welch_for_one_2x2() -> None:
    # One cohort, two periods: the ATT is a difference in mean changes and the corrected interval must be
    # Welch's t interval (Welch 1947), computed here independently by scipy.
    df = toy_panel(seed=3, units=40, periods=2).assign(g=lambda d: np.where(d["g"] > 0, 2, 0))
    wide = df.pivot(index="id", columns="t", values="y")
    change = wide[2] - wide[1]
    treated = (df.groupby("id")["g"].first() == 2).to_numpy()
    welch = stats.ttest_ind(change[treated], change[~treated], equal_var=False)
    ci = welch.confidence_interval(0.95)
    eff = did(df, outcome="y", unit="id", time="t", cohort="g", small_sample="satterthwaite")
    assert eff.conf_low == pytest.approx(ci.low, rel=1e-10)
    assert eff.conf_high == pytest.approx(ci.high, rel=1e-10)
    assert eff.p_value == pytest.approx(welch.pvalue, rel=1e-8)
    assert eff.diagnostics["small_sample_df"] == pytest.approx(welch.df, rel=1e-10)
    assert eff.settings["small_sample"] == "satterthwaite" and "t interval" in eff.settings["interval"]


def test_small_sample_widens_and_clusters_use_g_minus_1(mpdta: pd.DataFrame) -> None:
    base = did(mpdta, **COLUMNS)
    corrected = did(mpdta, **COLUMNS, small_sample="satterthwaite")
    assert corrected.estimate == base.estimate
    # HC2 scales the within-cohort part up; the between-cohort part is unchanged, so the SE can only grow.
    # Cohorts of 20, 40, 131 and 309 counties: HC2 adds at most 20/19 to a variance part, so the SE moves < 3%.
    assert base.std_error < corrected.std_error < base.std_error * 1.03
    assert corrected.conf_high - corrected.conf_low > base.conf_high - base.conf_low
    att = corrected.details["att_gt"]
    # Satterthwaite df lie between the smallest n_g - 1 (here 2004's 20 counties) and their sum.
    assert (att["df"] >= 19).all() and (att["df"] <= 496).all()
    assert (att["se"] >= base.details["att_gt"]["se"]).all()
    state = mpdta.assign(state=mpdta["countyreal"] // 1000)
    plain = did(state, **COLUMNS, cluster="state")
    cr1 = did(state, **COLUMNS, cluster="state", small_sample="satterthwaite")
    g = state["state"].nunique()
    assert cr1.std_error == pytest.approx(plain.std_error * np.sqrt(g / (g - 1)), rel=1e-12)
    assert cr1.diagnostics["small_sample_df"] == g - 1
    half = (cr1.conf_high - cr1.conf_low) / 2
    assert half == pytest.approx(stats.t.ppf(0.975, g - 1) * cr1.std_error, rel=1e-12)


def test_corrected_bootstrap_matches_corrected_analytic() -> None:
    df = toy_panel(units=60)
    settings = {"outcome": "y", "unit": "id", "time": "t", "cohort": "g", "small_sample": "satterthwaite"}
    analytic = did(df, **settings)
    boot = CallawaySantAnna(**settings, bootstrap=True, n_boot=4000, seed=2).fit(df).result_
    assert boot.std_error == pytest.approx(analytic.std_error, rel=0.08)
    assert boot.diagnostics["small_sample_df"] == analytic.diagnostics["small_sample_df"]


def test_influence_blocks_reproduce_the_dense_gram(mpdta: pd.DataFrame) -> None:
    est = CallawaySantAnna(**COLUMNS, covariates=["lpop"]).fit(mpdta)
    core = est._core
    onehot = np.eye(len(core.coding.values))[core.coding.code]
    dense = np.hstack([core.att.inf, onehot])
    np.testing.assert_allclose(core.gram, dense.T @ dense, rtol=1e-12, atol=1e-9)
    state = (mpdta.groupby("countyreal")["countyreal"].first() // 1000).to_numpy()
    codes = pd.factorize(state, sort=True)[0]
    rows = InfluenceRows.build(core.att.inf, core.coding.code, len(core.coding.values), codes)
    sums = pd.DataFrame(dense).groupby(codes).sum().to_numpy()
    np.testing.assert_allclose(rows.gram(), sums.T @ sums, rtol=1e-12, atol=1e-9)
