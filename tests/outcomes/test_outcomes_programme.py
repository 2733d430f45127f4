"""RE-AIM, Proctor and the combined OutcomeSet on a small programme worked out by hand.

The programme: districts d1 (sites s1, s2) and d2 (s3, s4, s5); s1-s3 rolled
out, January-February 2024; ten people screened positive; five providers.
Tolerance 1e-6 unless stated.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from knowdo.config import OutcomeDefinitions, Project, Stratum
from knowdo.outcomes import (
    TIDY_COLUMNS,
    OutcomeSet,
    ReAim,
    compute_outcomes,
    compute_proctor,
    compute_reaim,
    mean_interval,
    wilson,
)
from knowdo.schema import PANEL_COLUMN_NAMES

HAND = 1e-6

PROJECT = Project(
    root=Path("."),
    name="test programme",
    start=dt.date(2024, 1, 1),
    end=dt.date(2024, 12, 31),
    sources=(),
    strata=(Stratum("sex", "Gender/sex", False, ("female", "male")),),
    outcomes=OutcomeDefinitions(adequate_sessions=6, maintenance_months=6),
)

# site, district, month, dimension, stratum, population, need, screened, positive, started, adequate, effective
CASCADE = [
    ("s1", "d1", "2024-01-01", "all", "all", 1000, 100, 50, 20, 10, 5, 2),
    ("s1", "d1", "2024-02-01", "all", "all", 1000, 110, 40, 16, 8, 4, 2),
    ("s2", "d1", "2024-01-01", "all", "all", 500, 50, 30, 12, 6, 2, 1),
    ("s2", "d1", "2024-02-01", "all", "all", 500, 50, 20, 8, 4, 2, 1),
    ("s3", "d2", "2024-01-01", "all", "all", 2000, 200, 100, 30, 12, 6, 3),
    ("s3", "d2", "2024-02-01", "all", "all", 2000, 190, 80, 24, 9, 3, 1),
    ("s1", "d1", "2024-01-01", "sex", "female", 500, 60, 30, 12, 6, 3, 1),
    ("s1", "d1", "2024-02-01", "sex", "female", 500, 60, 20, 8, 4, 2, 1),
    ("s2", "d1", "2024-01-01", "sex", "female", 250, 30, 15, 6, 3, 1, 1),
    ("s2", "d1", "2024-02-01", "sex", "female", 250, 30, 10, 4, 2, 1, 0),
    ("s3", "d2", "2024-01-01", "sex", "female", 1000, 100, 50, 15, 6, 3, 2),
    ("s3", "d2", "2024-02-01", "sex", "female", 1000, 100, 40, 12, 5, 2, 1),
    ("s1", "d1", "2024-01-01", "sex", "male", 500, 40, 20, 8, 4, 2, 1),
    ("s1", "d1", "2024-02-01", "sex", "male", 500, 50, 20, 8, 4, 2, 1),
    ("s2", "d1", "2024-01-01", "sex", "male", 250, 20, 15, 6, 3, 1, 0),
    ("s2", "d1", "2024-02-01", "sex", "male", 250, 20, 10, 4, 2, 1, 1),
    ("s3", "d2", "2024-01-01", "sex", "male", 1000, 100, 50, 15, 6, 3, 1),
    ("s3", "d2", "2024-02-01", "sex", "male", 1000, 90, 40, 12, 4, 1, 0),
]
# 'all' rows only: site, month, sessions, fidelity_sum, fidelity_n, cost, treated
DELIVERY = [
    ("s1", "2024-01-01", 12, 8.0, 10, 300.0, 1),
    ("s1", "2024-02-01", 10, 9.0, 10, 300.0, 1),
    ("s2", "2024-01-01", 0, 0.0, 0, 200.0, 1),
    ("s2", "2024-02-01", 6, 3.0, 6, 200.0, 1),
    ("s3", "2024-01-01", 0, 0.0, 0, 500.0, 0),
    ("s3", "2024-02-01", 8, 6.0, 8, 250.0, 1),
]


def make_panel() -> pd.DataFrame:
    cols = [
        "site_id",
        "district_id",
        "period",
        "dimension",
        "stratum",
        "population",
        "need",
        "screened",
        "positive",
        "started",
        "adequate",
        "effective",
    ]
    frame = pd.DataFrame(CASCADE, columns=cols)
    frame["period"] = pd.to_datetime(frame["period"])
    frame["need"] = frame["need"].astype(float)
    delivery = pd.DataFrame(
        DELIVERY, columns=["site_id", "period", "sessions", "fidelity_sum", "fidelity_n", "cost", "treated"]
    )
    delivery["period"] = pd.to_datetime(delivery["period"])
    delivery["dimension"] = "all"
    delivery["stratum"] = "all"
    frame = frame.merge(delivery, on=["site_id", "period", "dimension", "stratum"], how="left")
    frame[["sessions", "fidelity_n"]] = frame[["sessions", "fidelity_n"]].fillna(0).astype(int)
    frame["fidelity_sum"] = frame["fidelity_sum"].fillna(0.0)
    frame["treated"] = frame.groupby(["site_id", "period"])["treated"].transform("max").astype(int)
    frame["followed_up"] = 0
    frame["responded"] = 0
    frame["remitted"] = 0
    frame["first_treated"] = frame["site_id"].map(
        {"s1": pd.Timestamp("2024-01-01"), "s2": pd.Timestamp("2024-01-01"), "s3": pd.Timestamp("2024-02-01")}
    )
    frame["event_time"] = (frame["period"].dt.month - frame["first_treated"].dt.month).astype(float)
    return frame[list(PANEL_COLUMN_NAMES)]


def make_sites() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "site_id": ["d1", "d2", "s1", "s2", "s3", "s4", "s5"],
            "name": ["North", "South", "A", "B", "C", "D", "E"],
            "parent_id": [None, None, "d1", "d1", "d2", "d2", "d2"],
            "level": ["district", "district", "facility", "facility", "facility", "facility", "facility"],
            "urbanicity": [None, None, "urban", "rural", "rural", "urban", "rural"],
            "catchment_population": [None, None, 5000, 3000, 2000, 4000, 1000],
        }
    )


def dates(*values: str | None) -> pd.Series:
    return pd.to_datetime(pd.Series(values, dtype=object))


def make_rollout() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "site_id": ["s1", "s2", "s3"],
            "kind": ["intervention"] * 3,
            "name": ["PST"] * 3,
            "start": pd.to_datetime(["2024-01-01", "2024-01-01", "2024-02-01"]),
            "end": dates(None, None, None),
        }
    )


def make_providers() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "provider_id": ["a", "b", "c", "d", "e"],
            "site_id": ["s1", "s1", "s2", "s3", "s3"],
            "cadre": ["lay_worker", "lay_worker", "nurse", "lay_worker", "nurse"],
            "trained_date": dates("2023-12-01", "2023-12-01", "2024-01-15", "2023-12-01", None),
            "left_date": dates(None, "2024-02-10", None, None, None),
            "sessions_delivered": [20, 5, 0, 12, 0],
            "first_session_date": dates("2024-01-05", "2024-02-01", None, "2024-01-08", None),
        }
    )


# person, site, sex, screened, baseline, started, sessions, follow-up, late follow-up
PEOPLE = [
    ("p1", "s1", "female", "2024-01-05", 20, True, 6, 8, 4),
    ("p2", "s1", "male", "2024-01-10", 15, True, 3, 12, None),
    ("p3", "s1", "female", "2024-02-03", 12, True, 8, 4, None),
    ("p4", "s2", "male", "2024-01-20", 18, True, 2, None, None),
    ("p5", "s2", "female", "2024-02-11", 10, True, 6, 16, 15),
    ("p6", "s2", "female", "2024-02-14", 14, False, 0, None, None),
    ("p7", "s3", "male", "2024-01-08", 22, True, 7, 10, 8),
    ("p8", "s3", "female", "2024-01-25", 16, True, 1, None, None),
    ("p9", "s3", "male", "2024-02-19", 11, False, 0, None, None),
    ("p10", "s3", "female", "2024-02-27", 13, True, 4, 3, 2),
]


def make_episodes() -> pd.DataFrame:
    cols = [
        "person_id",
        "site_id",
        "sex",
        "screen_date",
        "baseline_phq9",
        "started",
        "sessions",
        "followup_phq9",
        "late_followup_phq9",
    ]
    ep = pd.DataFrame(PEOPLE, columns=cols)
    ep["district_id"] = ep["site_id"].map({"s1": "d1", "s2": "d1", "s3": "d2"})
    ep["screen_date"] = pd.to_datetime(ep["screen_date"])
    ep["baseline_phq9"] = ep["baseline_phq9"].astype(float)
    ep["followup_phq9"] = ep["followup_phq9"].astype(float)
    ep["late_followup_phq9"] = ep["late_followup_phq9"].astype(float)
    ep["start_date"] = ep["screen_date"].where(ep["started"])
    ep["adequate"] = ep["sessions"] >= 6
    ep["last_contact_date"] = ep["screen_date"] + pd.Timedelta(days=60)
    ep["followup_date"] = ep["last_contact_date"].where(ep["followup_phq9"].notna())
    has = ep["followup_phq9"].notna()
    ep["responded"] = (ep["followup_phq9"] <= ep["baseline_phq9"] / 2).astype(object).where(has, np.nan)
    ep["remitted"] = (ep["followup_phq9"] < 5).astype(object).where(has, np.nan)
    ep["deteriorated"] = (ep["followup_phq9"] >= ep["baseline_phq9"] + 5).astype(object).where(has, np.nan)
    return ep


def make_perceptions() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "measure_id": ["m1", "m2", "m3"],
            "provider_id": ["a", "a", "a"],
            "site_id": ["s1", "s1", "s1"],
            "date": pd.to_datetime(["2024-02-01"] * 3),
            "instrument": ["AIM", "IAM", "FIM"],
            "total": [np.nan, np.nan, np.nan],
            "item_1": [4, 3, 5],
            "item_2": [5, 3, 5],
            "item_3": [4, 4, 5],
            "item_4": [3, 4, 5],
        }
    )


@pytest.fixture
def inputs() -> dict[str, pd.DataFrame]:
    return {
        "panel": make_panel(),
        "episodes": make_episodes(),
        "providers": make_providers(),
        "sites": make_sites(),
        "rollout": make_rollout(),
        "perceptions": make_perceptions(),
    }


def reaim_of(i: dict[str, pd.DataFrame]) -> ReAim:
    return compute_reaim(i["panel"], i["episodes"], i["providers"], i["sites"], i["rollout"], PROJECT)


def test_reach_uses_need_not_screened(inputs: dict[str, pd.DataFrame]) -> None:
    r = reaim_of(inputs)
    # participants 49 (started); eligible = need 105 + 50 + 195 = 350 -> 49/350 = 0.14
    # (not 49/320 screened, nor 49/110 detected)
    assert r.value("reach", "participants") == 49
    assert r.value("reach", "eligible") == pytest.approx(350.0)
    assert r.value("reach", "proportion") == pytest.approx(0.14)
    assert r.value("reach", "proportion", column="denominator") == pytest.approx(350.0)
    low, high = wilson(49, 350)
    assert r.value("reach", "proportion", column="conf_low") == pytest.approx(low)
    assert r.value("reach", "proportion", column="conf_high") == pytest.approx(high)
    # female: started 26 of need 190 = 0.136842
    assert r.value("reach", "proportion", stratum_dimension="sex", stratum="female") == pytest.approx(
        0.136842, abs=HAND
    )


def test_reach_representativeness_smd_by_hand(inputs: dict[str, pd.DataFrame]) -> None:
    r = reaim_of(inputs)
    kw = {"stratum_dimension": "sex", "stratum": "female"}
    # participant share p1 = 26/49 = 0.530612; eligible share p2 = 190/350 = 0.542857
    assert r.value("reach_representativeness", "participant_share", **kw) == pytest.approx(0.530612, abs=HAND)
    assert r.value("reach_representativeness", "eligible_share", **kw) == pytest.approx(0.542857, abs=HAND)
    # SMD = (0.530612 - 0.542857) / sqrt((0.530612*0.469388 + 0.542857*0.457143) / 2)
    #     = -0.012245 / sqrt((0.249063 + 0.248163) / 2) = -0.012245 / 0.498611 = -0.024558
    assert r.value("reach_representativeness", "smd", **kw) == pytest.approx(-0.024558, abs=HAND)
    assert r.value("reach_representativeness", "smd", stratum_dimension="sex", stratum="male") == pytest.approx(
        0.024558, abs=HAND
    )


def test_effectiveness_by_hand(inputs: dict[str, pd.DataFrame]) -> None:
    r = reaim_of(inputs)
    # started: p1 p2 p3 p4 p5 p7 p8 p10 = 8; followed up: p1 p2 p3 p5 p7 p10 = 6 -> 0.75
    assert r.value("follow_up", "proportion") == pytest.approx(0.75)
    # response (follow-up <= baseline / 2): p1 8<=10, p3 4<=6, p7 10<=11, p10 3<=6.5 -> 4/6
    assert r.value("response", "proportion") == pytest.approx(4 / 6)
    low, high = wilson(4, 6)
    assert r.value("response", "proportion", column="conf_low") == pytest.approx(low)
    assert r.value("response", "proportion", column="conf_high") == pytest.approx(high)
    # remission (< 5): p3 (4), p10 (3) -> 2/6; deterioration (>= baseline + 5): p5 16 >= 15 -> 1/6
    assert r.value("remission", "proportion") == pytest.approx(2 / 6)
    assert r.value("deterioration", "proportion") == pytest.approx(1 / 6)
    # change: -12, -3, -8, +6, -12, -10 -> mean -6.5; sd 6.978539, se 2.848976, t(5) 2.570582
    # -> (-13.823527, 0.823527)
    assert r.value("phq9_change", "mean") == pytest.approx(-6.5)
    assert r.value("phq9_change", "mean", column="conf_low") == pytest.approx(-13.823527, abs=HAND)
    assert r.value("phq9_change", "mean", column="conf_high") == pytest.approx(0.823527, abs=HAND)
    # by stratum: women followed up p1 p3 p5 p10, responded p1 p3 p10 -> 3/4; men p2 p7, responded p7 -> 1/2
    assert r.value("response", "proportion", stratum_dimension="sex", stratum="female") == pytest.approx(0.75)
    assert r.value("response", "proportion", stratum_dimension="sex", stratum="male") == pytest.approx(0.5)
    # by site: s1 responded p1 p3 of p1 p2 p3 -> 2/3
    assert r.value("response", "proportion", group_type="site", group="s1") == pytest.approx(2 / 3)
    # by month of screen: January followed up p1 p2 p7, responded p1 p7 -> 2/3
    assert r.value("response", "proportion", group_type="month", group="2024-01") == pytest.approx(2 / 3)


def test_adoption_settings_and_staff_by_hand(inputs: dict[str, pd.DataFrame]) -> None:
    r = reaim_of(inputs)
    # sites rolled out by 29 Feb: s1 s2 s3; all three delivered a session -> 3/3
    assert r.value("adoption_settings", "of_rolled_out") == pytest.approx(1.0)
    # of all five facilities (s4 and s5 never rolled out) -> 3/5
    assert r.value("adoption_settings", "of_all_sites") == pytest.approx(0.6)
    # January: rolled out s1 s2; delivered by 31 Jan only s1 (s2's first session is in February) -> 1/2
    assert r.value("adoption_settings", "of_rolled_out", group_type="month", group="2024-01") == pytest.approx(0.5)
    # district d2: s3 delivered, s4 and s5 did not -> 1/3 of all sites
    assert r.value("adoption_settings", "of_all_sites", group_type="district", group="d2") == pytest.approx(1 / 3)
    # staff: trained a b c d (e untrained); delivered a b d -> 3/4
    assert r.value("adoption_staff", "proportion") == pytest.approx(0.75)
    low, high = wilson(3, 4)
    assert r.value("adoption_staff", "proportion", column="conf_low") == pytest.approx(low)
    assert r.value("adoption_staff", "proportion", column="conf_high") == pytest.approx(high)
    # January: trained a b c d (c on 15 Jan); first sessions by 31 Jan: a, d -> 2/4
    assert r.value("adoption_staff", "proportion", group_type="month", group="2024-01") == pytest.approx(0.5)
    # site s2: c trained, never delivered -> 0/1
    assert r.value("adoption_staff", "proportion", group_type="site", group="s2") == 0.0


def test_adopting_site_representativeness_by_hand(inputs: dict[str, pd.DataFrame]) -> None:
    r = reaim_of(inputs)
    out = "adoption_representativeness"
    # adopters s1 (urban, 5000), s2 (rural, 3000), s3 (rural, 2000); others s4 (urban, 4000), s5 (rural, 1000)
    assert r.value(out, "urban_share_adopters") == pytest.approx(1 / 3)
    assert r.value(out, "urban_share_non_adopters") == pytest.approx(0.5)
    # (1/3 - 1/2) / sqrt((1/3*2/3 + 1/2*1/2) / 2) = -0.166667 / 0.485913 = -0.342997
    assert r.value(out, "urban_smd") == pytest.approx(-0.342997, abs=HAND)
    # catchment means 3333.33 (sd 1527.525) vs 2500 (sd 2121.320)
    # SMD = 833.333 / sqrt((1527.525^2 + 2121.320^2) / 2) = 833.333 / 1848.423 = 0.450835
    assert r.value(out, "catchment_mean_adopters") == pytest.approx(10000 / 3)
    assert r.value(out, "catchment_smd") == pytest.approx(0.450835, abs=HAND)


def test_implementation_by_hand(inputs: dict[str, pd.DataFrame]) -> None:
    r = reaim_of(inputs)
    # fidelity = (8 + 9 + 3 + 6) / (10 + 10 + 6 + 8) = 26/34 = 0.764706
    assert r.value("fidelity", "mean") == pytest.approx(0.764706, abs=HAND)
    assert r.select("fidelity", "mean").iloc[0]["method"] == "cluster_ratio_sites"
    # site s1 alone: 17/20, clustered on its months
    assert r.value("fidelity", "mean", group_type="site", group="s1") == pytest.approx(0.85)
    # sessions among the 8 who started: 6+3+8+2+6+7+1+4 = 37 -> 4.625; of 6 planned -> 0.770833
    assert r.value("sessions_per_participant", "mean") == pytest.approx(4.625)
    assert r.value("dose_vs_planned", "ratio") == pytest.approx(0.770833, abs=HAND)
    # cost over treated site-months (s3 January untreated): 300+300+200+200+250 = 1250
    # people starting in those months: 10+8+6+4+9 = 37 -> 33.783784
    assert r.value("cost_per_participant", "ratio") == pytest.approx(33.783784, abs=HAND)
    # cost is inside Implementation only: no RE-AIM domain is about cost
    assert set(r.table["domain"]) == {"reach", "effectiveness", "adoption", "implementation", "maintenance"}
    assert set(r.table.loc[r.table["outcome"].str.contains("cost"), "domain"]) == {"implementation"}


def test_individual_maintenance_by_hand(inputs: dict[str, pd.DataFrame]) -> None:
    r = reaim_of(inputs)
    # late PHQ-9 for p1 (4), p5 (15), p7 (8), p10 (2) among 8 who started -> 4/8
    assert r.value("late_follow_up", "proportion") == pytest.approx(0.5)
    # remission (< 5): p1, p10 -> 2/4; response (<= baseline/2): p1 4<=10, p7 8<=11, p10 2<=6.5 -> 3/4
    assert r.value("late_remission", "proportion") == pytest.approx(0.5)
    assert r.value("late_response", "proportion") == pytest.approx(0.75)
    # change: 4-20, 15-10, 8-22, 2-13 = -16, 5, -14, -11 -> mean -9
    assert r.value("late_phq9_change", "mean") == pytest.approx(-9.0)
    expected = mean_interval([-16, 5, -14, -11])
    assert r.value("late_phq9_change", "mean", column="conf_low") == pytest.approx(expected.conf_low)


def maintenance_inputs(m2_december_sessions: int = 0) -> dict[str, pd.DataFrame]:
    # five sites, 12 months of 2024; data end 31 Dec 2024; maintenance window 6 months
    months = pd.date_range("2024-01-01", "2024-12-01", freq="MS")
    sessions = {
        "m1": [5] * 12,
        "m2": [5] * 11 + [m2_december_sessions],
        "m3": [5] * 12,
        "m4": [5] * 12,
        "m5": [5] * 12,
    }
    rows = []
    for site, values in sessions.items():
        for month, n in zip(months, values, strict=True):
            row: dict[str, object] = dict.fromkeys(PANEL_COLUMN_NAMES, 0)
            row.update(
                site_id=site,
                district_id="d9",
                period=month,
                dimension="all",
                stratum="all",
                population=1000,
                need=100.0,
                sessions=n,
                cost=0.0,
                treated=1,
                first_treated=months[0],
                event_time=month.month - 1,
            )
            rows.append(row)
    panel = pd.DataFrame(rows)[list(PANEL_COLUMN_NAMES)]
    sites = pd.DataFrame(
        {
            "site_id": ["d9", "m1", "m2", "m3", "m4", "m5"],
            "name": None,
            "parent_id": [None, "d9", "d9", "d9", "d9", "d9"],
            "level": ["district"] + ["facility"] * 5,
            "urbanicity": [None, "urban", "rural", "rural", "urban", "rural"],
            "catchment_population": [None, 1000, 1000, 1000, 1000, 1000],
        }
    )
    start = pd.Timestamp("2024-01-01")
    rollout = pd.DataFrame(
        [
            ("m1", "intervention", "PST", start, pd.NaT),
            ("m1", "strategy", "Provide external facilitation", start, pd.Timestamp("2024-03-31")),
            ("m2", "intervention", "PST", start, pd.NaT),
            ("m2", "strategy", "Provide external facilitation", start, pd.Timestamp("2024-06-15")),
            ("m3", "intervention", "PST", start, pd.NaT),
            ("m3", "strategy", "Provide external facilitation", start, pd.Timestamp("2024-07-31")),
            ("m4", "intervention", "PST", start, pd.NaT),
            ("m4", "strategy", "Provide external facilitation", start, pd.NaT),
            ("m5", "intervention", "PST", start, pd.Timestamp("2024-04-30")),
        ],
        columns=["site_id", "kind", "name", "start", "end"],
    )
    providers = make_providers().iloc[0:0]
    return {"panel": panel, "sites": sites, "rollout": rollout, "providers": providers}


def test_setting_maintenance_windows() -> None:
    m = maintenance_inputs()
    episodes = make_episodes().iloc[0:0]
    r = compute_reaim(m["panel"], episodes, m["providers"], m["sites"], m["rollout"], PROJECT)
    # support ended: m1 March (9 months before December: eligible), m2 June (6: eligible),
    # m3 July (5: excluded although it still delivers), m4 ongoing (excluded),
    # m5 no strategy, intervention support ended April (8: eligible).
    # still delivering 6+ months on: m1 (sessions from September), m5 (from October); m2 stopped after
    # November, so nothing in December, the first month 6 months after June -> 2 of 3
    assert r.value("maintenance_settings", "proportion", column="denominator") == 3
    assert r.value("maintenance_settings", "proportion") == pytest.approx(2 / 3)
    p = compute_proctor(m["panel"], m["providers"], m["sites"], m["rollout"], PROJECT)
    assert p.value("sustainability", "proportion") == pytest.approx(2 / 3)


def test_setting_maintenance_counts_a_session_exactly_six_months_on() -> None:
    m = maintenance_inputs(m2_december_sessions=3)
    p = compute_proctor(m["panel"], m["providers"], m["sites"], m["rollout"], PROJECT)
    # m2's support ended in June; a December session is 6 months on -> 3 of 3
    assert p.value("sustainability", "proportion") == pytest.approx(1.0)


def test_proctor_by_hand(inputs: dict[str, pd.DataFrame]) -> None:
    i = inputs
    p = compute_proctor(i["panel"], i["providers"], i["sites"], i["rollout"], PROJECT)
    assert p.value("adoption", "providers") == pytest.approx(0.75)  # a b d of trained a b c d
    assert p.value("adoption", "sites") == pytest.approx(1.0)  # s1 s2 s3 of rolled-out s1 s2 s3
    assert p.value("fidelity", "mean") == pytest.approx(26 / 34)
    # providers form: in post on 29 Feb and trained: a, c, d (b left 10 Feb); delivering a, d -> 2/3
    assert p.value("penetration", "providers") == pytest.approx(2 / 3)
    # ... in January b was still in post: a b c d trained, a d delivering -> 2/4
    assert p.value("penetration", "providers", group_type="month", group="2024-01") == pytest.approx(0.5)
    # patients form: started 49 / need 350
    assert p.value("penetration", "patients") == pytest.approx(0.14)
    assert p.value("penetration", "patients", stratum_dimension="sex", stratum="male") == pytest.approx(23 / 160)
    # cost: every month 300+300+200+200+500+250 = 1750; per person starting 1750/49 = 35.714286
    assert p.value("implementation_cost", "total") == pytest.approx(1750.0)
    assert p.value("implementation_cost", "per_participant") == pytest.approx(35.714286, abs=HAND)
    assert p.value("implementation_cost", "total", group_type="site", group="s3") == pytest.approx(750.0)
    # no site's support has ended here, so sustainability has no eligible site
    assert p.value("sustainability", "proportion", column="denominator") == 0
    assert np.isnan(p.value("sustainability", "proportion"))
    assert "Sustainability" in p.summary()


def test_compute_outcomes_leaves_inputs_unchanged_and_serialises(inputs: dict[str, pd.DataFrame]) -> None:
    before = {k: v.copy(deep=True) for k, v in inputs.items()}
    out = compute_outcomes(
        inputs["panel"],
        inputs["episodes"],
        inputs["providers"],
        inputs["sites"],
        inputs["rollout"],
        inputs["perceptions"],
        PROJECT,
    )
    for name, frame in inputs.items():
        pd.testing.assert_frame_equal(frame, before[name], obj=name)
    assert isinstance(out, OutcomeSet)
    d = out.to_dict()
    assert list(d) == ["cascade", "reaim", "proctor", "perceptions", "trends"]
    text = json.dumps(d, allow_nan=False)
    assert json.loads(text)["reaim"]["settings"]["maintenance_months"] == 6
    for name, result in out.results().items():
        extra = ("period",) if name == "trends" else ()  # trend rows also carry their month
        assert tuple(result.to_frame().columns) == (*TIDY_COLUMNS, *extra)
        assert result.summary()
        assert result.plot().to_dict()
    frame = out.to_frame()
    assert frame.columns[0] == "result"
    assert set(frame["result"]) == {"cascade", "reaim", "proctor", "perceptions", "trends"}
    assert out.plot().to_dict()["vconcat"]
    assert "RE-AIM" in out.summary()


def test_to_dict_has_only_plain_json_types(inputs: dict[str, pd.DataFrame]) -> None:
    d = reaim_of(inputs).to_dict()

    def walk(v: object) -> None:
        if isinstance(v, dict):
            assert all(isinstance(k, str) for k in v)
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)
        else:
            assert v is None or type(v) in (str, int, float), type(v)

    walk(d)


def test_aggregate_only_programme_uses_panel_counts(inputs: dict[str, pd.DataFrame]) -> None:
    # a DHIS2-style programme: no person-level episodes, follow-up counts in the panel
    panel = inputs["panel"].assign(
        followed_up=inputs["panel"]["started"],
        responded=inputs["panel"]["adequate"],
        remitted=inputs["panel"]["effective"],
    )
    r = compute_reaim(panel, pd.DataFrame(), inputs["providers"], inputs["sites"], inputs["rollout"], PROJECT)
    # follow-up 49/49; response 22/49 = 0.448980; remission 10/49 = 0.204082
    assert r.value("follow_up", "proportion") == pytest.approx(1.0)
    assert r.value("response", "proportion") == pytest.approx(0.448980, abs=HAND)
    assert r.value("remission", "proportion") == pytest.approx(0.204082, abs=HAND)
    # women: adequate 3+2+1+1+3+2 = 12 of started 6+4+3+2+6+5 = 26
    assert r.value("response", "proportion", stratum_dimension="sex", stratum="female") == pytest.approx(12 / 26)
    # sessions delivered 12 + 10 + 6 + 8 = 36 over 49 starting -> 0.734694; of 6 planned -> 0.122449
    assert r.value("sessions_per_participant", "mean") == pytest.approx(0.734694, abs=HAND)
    assert r.value("dose_vs_planned", "ratio") == pytest.approx(0.122449, abs=HAND)
    # person-level measures are absent, and the result says so
    assert r.select("phq9_change", "mean").empty
    assert r.select("late_remission", "proportion").empty
    assert any("No person-level episodes" in n for n in r.notes)
    assert "no data" not in r.summary().split("EFFECTIVENESS")[1].split("ADOPTION")[0]


def test_sessions_outside_the_rollout_are_not_adoption(inputs: dict[str, pd.DataFrame]) -> None:
    # s3 records 4 sessions in January, before its rollout starts in February (treated = 0)
    panel = inputs["panel"].copy()
    row = (panel["site_id"] == "s3") & (panel["period"] == "2024-01-01") & (panel["dimension"] == "all")
    panel.loc[row, "sessions"] = 4
    r = compute_reaim(panel, inputs["episodes"], inputs["providers"], inputs["sites"], inputs["rollout"], PROJECT)
    # January: only s1 delivered while running the intervention -> 1 of 5 facilities
    assert r.value("adoption_settings", "of_all_sites", group_type="month", group="2024-01") == pytest.approx(0.2)
    assert r.value("adoption_settings", "of_all_sites") == pytest.approx(0.6)
    assert any("outside the intervention's rollout" in n for n in r.notes)


def test_units_say_what_each_count_counts(inputs: dict[str, pd.DataFrame]) -> None:
    """The unit columns name what numerator and denominator count, so publishing can tell people from sites."""
    out = compute_outcomes(
        inputs["panel"],
        inputs["episodes"],
        inputs["providers"],
        inputs["sites"],
        inputs["rollout"],
        inputs["perceptions"],
        PROJECT,
    )
    frame = out.to_frame()
    assert frame["unit"].notna().all() and frame["denominator_unit"].notna().all()
    units = frame.groupby(["result", "outcome", "measure"])[["unit", "denominator_unit"]].agg(set)
    expected = {
        ("proctor", "adoption", "sites"): ("sites", "sites"),  # rolled-out sites delivering / rolled out
        ("proctor", "adoption", "providers"): ("providers", "providers"),
        ("proctor", "sustainability", "proportion"): ("sites", "sites"),
        ("proctor", "fidelity", "mean"): ("score", "sessions"),  # fidelity scores summed over scored sessions
        ("proctor", "implementation_cost", "total"): ("money", "money"),
        ("proctor", "implementation_cost", "per_participant"): ("money", "people"),
        ("proctor", "penetration", "patients"): ("people", "people"),
        ("reaim", "adoption_settings", "of_all_sites"): ("sites", "sites"),
        ("reaim", "adoption_staff", "proportion"): ("providers", "providers"),
        ("reaim", "adoption_representativeness", "catchment_mean_adopters"): ("people", "sites"),
        ("reaim", "phq9_change", "mean"): ("score", "people"),
        ("reaim", "sessions_per_participant", "mean"): ("sessions", "people"),
        ("reaim", "cost_per_participant", "ratio"): ("money", "people"),
        ("reaim", "reach", "proportion"): ("people", "people"),
        ("reaim", "response", "proportion"): ("people", "people"),
        ("perceptions", "AIM", "mean"): ("score", "providers"),
        ("perceptions", "AIM", "share_agree_informal"): ("providers", "providers"),
        ("cascade", "effective", "cumulative"): ("people", "people"),
        ("trends", "reach", "proportion"): ("people", "people"),
    }
    for key, (unit, denominator_unit) in expected.items():
        assert units.loc[key, "unit"] == {unit}, key
        assert units.loc[key, "denominator_unit"] == {denominator_unit}, key
