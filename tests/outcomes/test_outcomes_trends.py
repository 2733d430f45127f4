"""Site × month and district × month trends on a small panel worked out by hand.

The panel: district d1 holds sites s1 and s2, district d2 holds s3, and site
s4 has no district; January and February 2024. Equity rows (sex) are present
and must be ignored: trends are for all people only. Tolerance 1e-9 unless stated.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from knowdo.errors import ParameterError
from knowdo.outcomes import TREND_COLUMNS, Trends, compute_cascade, compute_trends
from knowdo.schema import PANEL_COLUMN_NAMES

HAND = 1e-9

# site, district, month, dimension, stratum, population, need, screened, positive, started, effective
ROWS = [
    ("s1", "d1", "2024-01-01", "all", "all", 1000, 100.0, 50, 20, 10, 2),
    ("s1", "d1", "2024-02-01", "all", "all", 1000, 110.0, 40, 16, 8, 2),
    ("s2", "d1", "2024-01-01", "all", "all", 500, 50.0, 30, 12, 6, 1),
    ("s2", "d1", "2024-02-01", "all", "all", 500, 50.0, 20, 8, 4, 0),
    ("s3", "d2", "2024-01-01", "all", "all", 2000, 200.0, 100, 30, 12, 3),
    ("s3", "d2", "2024-02-01", "all", "all", 2000, 190.0, 80, 24, 9, 1),
    ("s4", None, "2024-01-01", "all", "all", 400, 40.0, 20, 5, 2, 0),
    ("s4", None, "2024-02-01", "all", "all", 400, 40.0, 10, 4, 2, 1),
    # equity rows: different numbers, so using them by mistake would change the totals
    ("s1", "d1", "2024-01-01", "sex", "female", 500, 60.0, 30, 12, 6, 1),
    ("s1", "d1", "2024-01-01", "sex", "male", 500, 40.0, 20, 8, 4, 1),
    ("s3", "d2", "2024-02-01", "sex", "female", 1000, 100.0, 40, 12, 5, 1),
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
        "effective",
    ]
    frame = pd.DataFrame(ROWS, columns=cols)
    frame["period"] = pd.to_datetime(frame["period"])
    for col in PANEL_COLUMN_NAMES:
        if col not in frame.columns:
            frame[col] = 0
    frame["adequate"] = frame["effective"]
    frame["first_treated"] = pd.NaT
    frame["event_time"] = np.nan
    return frame[list(PANEL_COLUMN_NAMES)]


def hand_wilson(k: float, n: float, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson (1927) score interval written out: (p + z²/2n ± z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n)."""
    p = k / n
    centre = p + z * z / (2 * n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre - half) / (1 + z * z / n), (centre + half) / (1 + z * z / n)


@pytest.fixture(scope="module")
def trends() -> Trends:
    return compute_trends(make_panel())


def one(trends: Trends, outcome: str, group_type: str, group: str, period: str) -> pd.Series:
    rows = trends.series(outcome, group_type=group_type, group=group)
    rows = rows.loc[rows["period"] == period]
    assert len(rows) == 1, (outcome, group_type, group, period)
    return rows.iloc[0]


def test_site_months_by_hand(trends: Trends) -> None:
    # reach = started / need: s1 in January 10 / 100, in February 8 / 110
    assert one(trends, "reach", "site_month", "s1", "2024-01")["estimate"] == pytest.approx(0.1, abs=HAND)
    assert one(trends, "reach", "site_month", "s1", "2024-02")["estimate"] == pytest.approx(8 / 110, abs=HAND)
    # detection = positive / need: s2 in February 8 / 50
    assert one(trends, "detection", "site_month", "s2", "2024-02")["estimate"] == pytest.approx(0.16, abs=HAND)
    # screening coverage = screened / population: s3 in January 100 / 2000
    row = one(trends, "screening_coverage", "site_month", "s3", "2024-01")
    assert (row["numerator"], row["denominator"], row["estimate"]) == (100, 2000, pytest.approx(0.05, abs=HAND))
    # effective coverage = effective / need: s2 in February 0 / 50 is a zero, not a gap
    assert one(trends, "effective_coverage", "site_month", "s2", "2024-02")["estimate"] == 0.0
    # a site without a district still has its own months
    assert one(trends, "reach", "site_month", "s4", "2024-02")["estimate"] == pytest.approx(2 / 40, abs=HAND)


def test_district_months_pool_their_sites(trends: Trends) -> None:
    # d1 = s1 + s2. January: started 10 + 6 = 16, need 100 + 50 = 150
    row = one(trends, "reach", "district_month", "d1", "2024-01")
    assert (row["numerator"], row["denominator"]) == (16, 150)
    assert row["estimate"] == pytest.approx(16 / 150, abs=HAND)
    # February: effective 2 + 0 = 2 of need 110 + 50 = 160
    assert one(trends, "effective_coverage", "district_month", "d1", "2024-02")["estimate"] == pytest.approx(
        2 / 160, abs=HAND
    )
    # d2 is s3 alone: screening 80 of 2000 adults in February
    assert one(trends, "screening_coverage", "district_month", "d2", "2024-02")["estimate"] == pytest.approx(
        0.04, abs=HAND
    )
    # s4 has no district, so there are exactly two districts
    districts = trends.table.loc[trends.table["group_type"] == "district_month", "group"]
    assert set(districts) == {"d1", "d2"}


def test_programme_months_include_every_site(trends: Trends) -> None:
    # January: started 10 + 6 + 12 + 2 = 30 of need 100 + 50 + 200 + 40 = 390
    row = one(trends, "reach", "month", "2024-01", "2024-01")
    assert (row["numerator"], row["denominator"]) == (30, 390)
    # February: positive 16 + 8 + 24 + 4 = 52 of need 110 + 50 + 190 + 40 = 390
    assert one(trends, "detection", "month", "2024-02", "2024-02")["estimate"] == pytest.approx(52 / 390, abs=HAND)


def test_programme_months_equal_the_cascade_monthly_rows(trends: Trends) -> None:
    cascade = compute_cascade(make_panel(), by=["month"])
    pairs = {
        "screening_coverage": ("screening_coverage", "proportion"),
        "detection": ("detected", "cumulative"),
        "reach": ("started", "cumulative"),
        "effective_coverage": ("effective", "cumulative"),
    }
    for outcome, (stage, measure) in pairs.items():
        for month in ("2024-01", "2024-02"):
            mine = one(trends, outcome, "month", month, month)
            theirs = cascade.select(stage, measure, group_type="month", group=month).iloc[0]
            for column in ("numerator", "denominator", "estimate", "conf_low", "conf_high"):
                assert mine[column] == pytest.approx(theirs[column], abs=HAND), (outcome, month, column)


def test_wilson_intervals_and_estimated_need(trends: Trends) -> None:
    row = one(trends, "reach", "site_month", "s1", "2024-01")
    low, high = hand_wilson(10, 100)  # 0.0552 to 0.1744 for 10 of 100
    assert (row["conf_low"], row["conf_high"]) == (pytest.approx(low, abs=HAND), pytest.approx(high, abs=HAND))
    assert row["conf_low"] == pytest.approx(0.0552, abs=1e-4) and row["conf_high"] == pytest.approx(0.1744, abs=1e-4)
    # need is an estimate; screening's denominator (adults) is a count
    assert row["method"] == "wilson_fixed_denominator"
    assert one(trends, "screening_coverage", "site_month", "s1", "2024-01")["method"] == "wilson"


def test_shape_units_and_strata(trends: Trends) -> None:
    table = trends.to_frame()
    assert tuple(table.columns) == TREND_COLUMNS
    # (4 sites + 2 districts + the programme) x 2 months x 4 measures
    assert len(table) == (4 + 2 + 1) * 2 * 4
    assert set(table["group_type"]) == {"site_month", "district_month", "month"}
    assert set(table["stratum_dimension"]) == {"all"} and set(table["stratum"]) == {"all"}
    assert set(table["domain"]) == {"trends"} and set(table["measure"]) == {"proportion"}
    # every count here is a count of people, so all of it falls under the disclosure rule
    assert set(table["unit"]) == {"people"} and set(table["denominator_unit"]) == {"people"}
    series = trends.series("reach", group_type="site_month", group="s3")
    assert list(series["period"]) == ["2024-01", "2024-02"]


def test_cluster_intervals_for_pooled_districts() -> None:
    trends = compute_trends(make_panel(), ci="cluster")
    d1 = one(trends, "reach", "district_month", "d1", "2024-01")
    d2 = one(trends, "reach", "district_month", "d2", "2024-01")
    site = one(trends, "reach", "site_month", "s1", "2024-01")
    assert d1["method"] == "cluster_ratio_sites"  # two sites
    assert d2["method"] == "wilson_fixed_denominator" and site["method"] == "wilson_fixed_denominator"  # one site
    assert d1["estimate"] == pytest.approx(16 / 150, abs=HAND)


def test_inputs_unchanged_serialises_and_summarises(trends: Trends) -> None:
    panel = make_panel()
    before = panel.copy(deep=True)
    compute_trends(panel)
    pd.testing.assert_frame_equal(panel, before)
    data = json.loads(json.dumps(trends.to_dict(), allow_nan=False))
    assert data["kind"] == "trends" and data["rows"][0]["period"] in ("2024-01", "2024-02")
    assert data["settings"]["measures"]["reach"] == {"numerator": "started", "denominator": "need"}
    text = trends.summary()
    # programme reach: January 30 / 390 = 7.7%; February started 8 + 4 + 9 + 2 = 23 of 390 = 5.9%
    assert "programme 7.7% in 2024-01, 5.9% in 2024-02" in text
    assert trends.plot().to_dict()["layer"]
    assert trends.plot("detection", "site_month").to_dict()["layer"]


def test_bad_options_are_named() -> None:
    with pytest.raises(ParameterError, match="'ci' must be one of"):
        compute_trends(make_panel(), ci="bootstrap")  # type: ignore[arg-type]
    trends = compute_trends(make_panel())
    with pytest.raises(ParameterError, match="'outcome' must be one of"):
        trends.series("adoption")
    with pytest.raises(ParameterError, match="'group_type' must be one of"):
        trends.series("reach", group_type="site")
    with pytest.raises(ParameterError, match="missing column"):
        compute_trends(make_panel().drop(columns=["need"]))
