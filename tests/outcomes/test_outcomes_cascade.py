"""Care cascade on a 3-site x 2-month panel worked out by hand.

Tolerance: 1e-6 for hand arithmetic; 1e-3 where a published three-decimal
percentage is reproduced from counts.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from knowdo.errors import ParameterError
from knowdo.outcomes import STAGES, TIDY_COLUMNS, cluster_proportion, compute_cascade, wilson
from knowdo.schema import PANEL_COLUMN_NAMES

HAND = 1e-6

# site, district, month, dimension, stratum, population, need, screened, positive, started, adequate, effective
ROWS = [
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


def make_panel(rows: list[tuple] = ROWS) -> pd.DataFrame:
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
    frame = pd.DataFrame(rows, columns=cols)
    frame["period"] = pd.to_datetime(frame["period"])
    frame["need"] = frame["need"].astype(float)
    for col in PANEL_COLUMN_NAMES:
        if col not in frame.columns:
            frame[col] = 0
    frame["cost"] = np.where(frame["dimension"] == "all", 100.0, np.nan)
    frame["first_treated"] = pd.NaT
    frame["event_time"] = np.nan
    return frame[list(PANEL_COLUMN_NAMES)]


@pytest.fixture
def panel() -> pd.DataFrame:
    return make_panel()


def test_overall_counts_and_proportions_by_hand(panel: pd.DataFrame) -> None:
    c = compute_cascade(panel)
    # need: each site's monthly need averaged, then summed over sites
    #   s1 (100 + 110) / 2 = 105; s2 (50 + 50) / 2 = 50; s3 (200 + 190) / 2 = 195 -> 350
    assert c.value("need", "count") == pytest.approx(350.0)
    # detected = 20+16+12+8+30+24 = 110; started = 10+8+6+4+12+9 = 49
    # adequate = 5+4+2+2+6+3 = 22; effective = 2+2+1+1+3+1 = 10
    assert c.value("detected", "count") == 110
    assert c.value("started", "count") == 49
    assert c.value("adequate", "count") == 22
    assert c.value("effective", "count") == 10
    # conditionals: 110/350 = 0.314286, 49/110 = 0.445455, 22/49 = 0.448980, 10/22 = 0.454545
    assert c.value("detected", "conditional") == pytest.approx(0.314286, abs=HAND)
    assert c.value("started", "conditional") == pytest.approx(0.445455, abs=HAND)
    assert c.value("adequate", "conditional") == pytest.approx(0.448980, abs=HAND)
    assert c.value("effective", "conditional") == pytest.approx(0.454545, abs=HAND)
    # cumulative: effective coverage = 10/350 = 0.028571; started = 49/350 = 0.14
    assert c.value("effective", "cumulative") == pytest.approx(0.028571, abs=HAND)
    assert c.value("started", "cumulative") == pytest.approx(0.14, abs=HAND)
    # screening coverage = 320 screened / 3,500 adults (1000 + 500 + 2000 averaged over months) = 0.091429
    assert c.value("screening_coverage", "proportion") == pytest.approx(0.091429, abs=HAND)


def test_cumulative_is_the_product_of_conditionals_in_every_group(panel: pd.DataFrame) -> None:
    t = compute_cascade(panel).to_frame()
    keys = ["group_type", "group", "stratum_dimension", "stratum"]
    wide = t.pivot_table(index=keys, columns=["outcome", "measure"], values="estimate", aggfunc="first")
    product = pd.Series(1.0, index=wide.index)
    for stage in STAGES[1:]:
        product = product * wide[(stage, "conditional")]
        np.testing.assert_allclose(wide[(stage, "cumulative")], product, rtol=1e-12)
    # groups: overall 1 + sites 3 + districts 2 + months 2 + quarter 1 + year 1 = 10, x 3 strata (all, female, male)
    assert len(wide) == 30


def test_thornicroft_2017_cascade_reproduced_from_counts() -> None:
    # Thornicroft et al., Br J Psychiatry 2017;210:119: 56.7% perceived need, 71.1% of those made a visit,
    # 41.0% of those treated received minimally adequate treatment -> 0.567 x 0.711 x 0.410 = 0.165.
    # As counts per 1,000 with the disorder: 567 -> 403 (403/567 = 0.7108) -> 165 (165/403 = 0.4094).
    rows = [("s1", "d1", "2024-01-01", "all", "all", 20_000, 1000, 2000, 567, 403, 165, 80)]
    c = compute_cascade(make_panel(rows), by=["overall"])
    assert c.value("detected", "conditional") == pytest.approx(0.567, abs=1e-3)
    assert c.value("started", "conditional") == pytest.approx(0.711, abs=1e-3)
    assert c.value("adequate", "conditional") == pytest.approx(0.410, abs=1e-3)
    assert c.value("adequate", "cumulative") == pytest.approx(0.567 * 0.711 * 0.410, abs=1e-3)
    assert c.value("adequate", "cumulative") == pytest.approx(0.165, abs=HAND)


def test_conditional_intervals_are_wilson(panel: pd.DataFrame) -> None:
    c = compute_cascade(panel)
    row = c.select("started", "conditional").iloc[0]
    low, high = wilson(49, 110)
    assert row["conf_low"] == pytest.approx(low)
    assert row["conf_high"] == pytest.approx(high)
    assert row["method"] == "wilson"
    need_row = c.select("detected", "conditional").iloc[0]
    assert need_row["method"] == "wilson_fixed_denominator"  # need is an estimate, taken as known
    assert any("Need is an estimate" in n for n in c.notes)


def test_groups_by_district_month_quarter_and_site(panel: pd.DataFrame) -> None:
    c = compute_cascade(panel)
    # district d1 = s1 + s2: need 105 + 50 = 155; started 10 + 8 + 6 + 4 = 28 -> 28/155 = 0.180645
    assert c.value("need", "count", group_type="district", group="d1") == pytest.approx(155.0)
    assert c.value("started", "cumulative", group_type="district", group="d1") == pytest.approx(0.180645, abs=HAND)
    # January: need 100 + 50 + 200 = 350; started 10 + 6 + 12 = 28 -> 0.08
    assert c.value("started", "cumulative", group_type="month", group="2024-01") == pytest.approx(0.08)
    # the quarter and the year pool both months, so equal the overall values
    overall = c.value("effective", "cumulative")
    assert c.value("effective", "cumulative", group_type="quarter", group="2024-Q1") == pytest.approx(overall)
    assert c.value("effective", "cumulative", group_type="year", group="2024") == pytest.approx(overall)
    # site s3: adequate 6 + 3 = 9 of started 12 + 9 = 21 -> 0.428571
    assert c.value("adequate", "conditional", group_type="site", group="s3") == pytest.approx(0.428571, abs=HAND)


def test_equity_strata(panel: pd.DataFrame) -> None:
    c = compute_cascade(panel)
    # female need: s1 60, s2 30, s3 100 -> 190; effective 1+1+1+0+2+1 = 6 -> 6/190 = 0.031579
    assert c.value("effective", "cumulative", stratum_dimension="sex", stratum="female") == pytest.approx(
        0.031579, abs=HAND
    )
    # male need: s1 (40+50)/2 = 45, s2 20, s3 (100+90)/2 = 95 -> 160; effective 4 -> 0.025
    assert c.value("effective", "cumulative", stratum_dimension="sex", stratum="male") == pytest.approx(0.025)
    # strata within a site-month are available too: s1 female started 6 + 4 = 10 of detected 20
    assert c.value(
        "started", "conditional", group_type="site", group="s1", stratum_dimension="sex", stratum="female"
    ) == pytest.approx(0.5)


def test_cluster_intervals_pool_sites(panel: pd.DataFrame) -> None:
    c = compute_cascade(panel, ci="cluster")
    # per-site started / detected: s1 18/36, s2 10/20, s3 21/54
    expected = cluster_proportion([18, 10, 21], [36, 20, 54])
    row = c.select("started", "conditional").iloc[0]
    assert row["method"] == "cluster_ratio_sites"
    assert row["estimate"] == pytest.approx(49 / 110)
    assert row["std_error"] == pytest.approx(expected.std_error)
    assert row["conf_low"] == pytest.approx(expected.conf_low)
    assert row["conf_high"] == pytest.approx(expected.conf_high)
    # one site: back to Wilson
    site_row = c.select("started", "conditional", group_type="site", group="s1").iloc[0]
    assert site_row["method"] == "wilson"


def test_detected_above_need_has_no_interval_and_a_note() -> None:
    rows = [("s1", "d1", "2024-01-01", "all", "all", 1000, 10, 100, 30, 5, 2, 1)]
    c = compute_cascade(make_panel(rows), by=["overall"])
    row = c.select("detected", "conditional").iloc[0]
    assert row["estimate"] == pytest.approx(3.0)
    assert np.isnan(row["conf_low"]) and np.isnan(row["conf_high"])
    assert any("more people screened positive than the estimated need" in n for n in c.notes)


def test_result_shape_serialisation_and_inputs_unchanged(panel: pd.DataFrame) -> None:
    before = panel.copy(deep=True)
    c = compute_cascade(panel)
    pd.testing.assert_frame_equal(panel, before)
    frame = c.to_frame()
    assert tuple(frame.columns) == TIDY_COLUMNS
    frame.loc[0, "estimate"] = -1.0
    assert c.table.loc[0, "estimate"] != -1.0  # to_frame is a copy
    text = json.dumps(c.to_dict(), allow_nan=False)
    back = json.loads(text)
    assert back["kind"] == "cascade"
    assert len(back["rows"]) == len(c.table)
    assert "Effective coverage" in c.summary()
    spec = c.plot().to_dict()
    assert "vconcat" in spec
    assert c.plot("sex").to_dict()["layer"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.table = frame  # type: ignore[misc]


def test_stage_table(panel: pd.DataFrame) -> None:
    st = compute_cascade(panel).stage_table()
    assert list(st["stage"]) == list(STAGES)
    assert st.loc[st["stage"] == "effective", "cumulative"].iloc[0] == pytest.approx(10 / 350)


def test_bad_arguments(panel: pd.DataFrame) -> None:
    with pytest.raises(ParameterError, match="'by' must contain only"):
        compute_cascade(panel, by=["week"])  # type: ignore[list-item]
    with pytest.raises(ParameterError, match="missing column"):
        compute_cascade(panel.drop(columns=["need"]))
    with pytest.raises(ParameterError, match="'ci' must be one of"):
        compute_cascade(panel, ci="bootstrap")  # type: ignore[arg-type]
