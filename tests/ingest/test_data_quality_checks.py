"""WHO/DHIS2-style data-quality findings on monthly aggregates, against hand-computed numbers.

Thresholds are the WHO Data Quality Tool defaults (moderate outlier 2 SD, extreme 3 SD,
completeness 90 %, consistency 33 %; dhis2/who-data-quality-app, data-standards.md section 6).
"""

from __future__ import annotations

import datetime as dt
import math

import pandas as pd
import pytest

from knowdo.errors import ParameterError
from knowdo.ingest.quality import data_quality


def _rows(site: str, indicator: str, months: pd.DatetimeIndex, values: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"site_id": site, "period": months, "indicator": indicator, "dimension": "all",
                         "stratum": "all", "value": values})


YEAR = pd.date_range("2023-01-01", periods=12, freq="MS")


def test_completeness_outliers_and_related_indicators() -> None:
    aggregates = pd.concat([
        _rows("A", "screened", YEAR, [10.0] * 11 + [40.0]),
        _rows("A", "positive", YEAR, [2.0] * 12),
        _rows("B", "screened", YEAR[:10], [10.0] * 10),
        _rows("B", "positive", YEAR[:10], [5.0] * 10),
        _rows("B", "screened", YEAR[:1], [999.0]).assign(dimension="sex", stratum="female"),  # margins are ignored
    ])
    quality = data_quality(aggregates, start=dt.date(2023, 1, 1), end=dt.date(2023, 12, 31), sites=["A", "B", "C"])
    completeness = quality.completeness.set_index(["site_id", "indicator"])
    assert completeness.loc[("A", "screened"), "percent"] == 100.0
    assert completeness.loc[("B", "screened"), "percent"] == pytest.approx(100 * 10 / 12)
    assert completeness.loc[("C", "positive"), "reported"] == 0  # expected but silent
    assert completeness["below_target"].sum() == 4  # B x 2 indicators, C x 2
    # A's December: mean 12.5, sample SD sqrt((11 * 2.5**2 + 27.5**2) / 11) = sqrt(75), z = 27.5 / sqrt(75)
    [outlier] = quality.outliers.to_dict(orient="records")
    assert (outlier["site_id"], outlier["period"], outlier["severity"]) == ("A", YEAR[11], "extreme")
    assert outlier["z"] == pytest.approx(27.5 / math.sqrt(75))
    # positive/screened: A 24/150 = 0.16, B 50/100 = 0.5, overall 74/250 = 0.296
    related = quality.related.set_index("site_id")
    assert related.loc["A", "overall"] == pytest.approx(74 / 250)
    assert related.loc["A", "deviation_percent"] == pytest.approx(100 * (0.16 / 0.296 - 1))
    assert related["flagged"].all()
    assert quality.over_time.empty  # needs two years
    findings = quality.to_frame()
    assert set(findings["check"]) == {"completeness", "outlier", "related"}
    assert "1 extreme" in quality.summary() and quality.to_dict()["outliers"][0]["period"] == "2023-12-01"


def test_consistency_over_time() -> None:
    two_years = pd.date_range("2022-01-01", periods=24, freq="MS")
    aggregates = pd.concat([_rows("A", "screened", two_years, [10.0] * 12 + [15.0] * 12),
                            _rows("B", "screened", two_years, [10.0] * 12 + [12.0] * 12)])
    quality = data_quality(aggregates, start=dt.date(2022, 1, 1), end=dt.date(2023, 12, 31))
    over_time = quality.over_time.set_index("site_id")
    assert over_time.loc["A", "deviation_percent"] == pytest.approx(50.0) and over_time.loc["A", "flagged"]
    assert over_time.loc["B", "deviation_percent"] == pytest.approx(20.0) and not over_time.loc["B", "flagged"]


def test_bad_settings_are_explained() -> None:
    empty = pd.DataFrame(columns=["site_id", "period", "indicator", "dimension", "stratum", "value"])
    with pytest.raises(ParameterError, match="moderate < extreme"):
        data_quality(empty, start=dt.date(2023, 1, 1), end=dt.date(2023, 12, 31), moderate=3, extreme=2)
    with pytest.raises(ParameterError, match="lack columns"):
        data_quality(empty.drop(columns="value"), start=dt.date(2023, 1, 1), end=dt.date(2023, 12, 31))
