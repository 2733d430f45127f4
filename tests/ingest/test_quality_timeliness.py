"""Timeliness in the DHIS2 style: a facility-month is on time when reported within 15 days of its end.

The deadline is DHIS2's data-set default ``timelyDays = 15`` (dhis2-core fills 15 where a data set sets
none); a month ending 31 January 2024 is due by the end of 15 February, i.e. 2024-02-16 00:00.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from knowdo.errors import ParameterError
from knowdo.ingest.quality import data_quality, loaded_data_quality, panel_counts

MONTHS = pd.to_datetime(["2024-01-01", "2024-02-01", "2024-03-01"])


def _aggregates(**extra: list[object]) -> pd.DataFrame:
    return pd.DataFrame({"site_id": ["A"] * 3, "period": MONTHS, "indicator": "screened", "dimension": "all",
                         "stratum": "all", "value": [10, 11, 12], **extra})


def test_the_sources_own_reporting_time_is_used() -> None:
    # January on the deadline's last day, February one day late, March on time
    agg = _aggregates(last_updated=["2024-02-15T23:59:00", "2024-03-16T08:00:00", "2024-04-02T00:00:00"])
    quality = data_quality(agg, start=dt.date(2024, 1, 1), end=dt.date(2024, 3, 31))
    t = quality.timeliness.set_index("period")
    assert t["on_time"].tolist() == [True, False, True] and t["judged"].all()
    assert t.loc[pd.Timestamp("2024-02-01"), "days_after_due"] == pytest.approx(8 / 24)
    assert "last_updated" in quality.timeliness_basis
    by_site = quality.timeliness_by_site().iloc[0]
    assert (by_site["judged"], by_site["on_time"], by_site["late"]) == (3, 2, 1)
    assert by_site["percent_on_time"] == pytest.approx(200 / 3) and by_site["below_target"]
    assert "Timeliness: 2 of 3" in quality.summary()
    assert set(quality.to_frame()["check"]) >= {"timeliness"}


def test_load_times_judge_only_months_not_back_filled() -> None:
    # the first load (2024-03-05) brought January (overdue since 16 Feb: a back-fill) and February (not yet due);
    # March arrived with a later load on 2024-05-01, after its 16 April deadline
    reported = pd.DataFrame({"site_id": "A", "period": MONTHS,
                             "reported_at": pd.to_datetime(["2024-03-05", "2024-03-05", "2024-05-01"])})
    quality = data_quality(_aggregates(), start=dt.date(2024, 1, 1), end=dt.date(2024, 3, 31), reported=reported,
                           reported_basis="load time", first_load=dt.datetime(2024, 3, 5))
    t = quality.timeliness.set_index("period")
    assert t["judged"].tolist() == [False, True, True]
    assert t["on_time"].tolist() == [False, True, False]
    assert quality.timeliness_basis == "load time"
    assert quality.timeliness_by_site().iloc[0]["not_judged"] == 1


def test_without_any_time_timeliness_says_so() -> None:
    quality = data_quality(_aggregates(), start=dt.date(2024, 1, 1), end=dt.date(2024, 3, 31))
    assert quality.timeliness.empty and quality.timeliness_basis.startswith("not assessed")
    assert "no facility-month could be judged" in quality.summary()
    with pytest.raises(ParameterError, match="deadline_days"):
        data_quality(_aggregates(), start=dt.date(2024, 1, 1), end=dt.date(2024, 3, 31), deadline_days=-1)


def test_panel_counts_keep_only_reported_months() -> None:
    panel = pd.DataFrame({"site_id": "A", "period": MONTHS, "dimension": "all", "stratum": "all",
                          "screened": [20, 0, 25], "positive": [5, 0, 6], "started": [3, 0, 4],
                          "adequate": [1, 0, 2]})
    reported = pd.DataFrame({"site_id": ["A", "A"], "period": MONTHS[[0, 2]],
                             "first_loaded_at": pd.to_datetime(["2024-02-01", "2024-04-01"]),
                             "table_name": "encounters"})
    counts = panel_counts(panel, reported)
    assert len(counts) == 2 * 4 and set(counts["period"]) == set(MONTHS[[0, 2]])  # February: no contact, not zero
    quality = loaded_data_quality(start=dt.date(2024, 1, 1), end=dt.date(2024, 3, 31),
                                  sites=pd.DataFrame({"site_id": ["A"], "level": ["facility"]}), arrivals=reported,
                                  loads=pd.DataFrame({"loaded_at": pd.to_datetime(["2024-02-01", "2024-04-01"])}),
                                  panel=panel)
    assert quality is not None
    completeness = quality.completeness.set_index("indicator")
    assert completeness.loc["screened", "reported"] == 2 and completeness.loc["screened", "expected"] == 3
    # January arrived with the first load, before its 16 February deadline; March on 1 April, before 16 April
    assert quality.timeliness["on_time"].tolist() == [True, True]
    related = quality.related.set_index("sub")
    assert related.loc["positive", "ratio"] == pytest.approx(11 / 45)  # (5 + 6) / (20 + 25)
