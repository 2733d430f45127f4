"""DHIS2 period identifiers → dates, against DHIS2's own reference vectors.

Expected start/end dates are the Gregorian test cases of DHIS2's period
library (github.com/dhis2/multi-calendar-dates,
src/period-calculation/create-fixed-period-from-period-id/*.gregorian.spec.ts)
and the Web API's period table (data-standards.md section 1.1).
"""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from knowdo.ingest.dhis2_periods import PeriodFormatError, parse_period, weekly_period, weeks_in_year

D = dt.date


@pytest.mark.parametrize(
    ("text", "kind", "start", "end"),
    [
        ("2023", "Yearly", D(2023, 1, 1), D(2023, 12, 31)),
        ("2023April", "FinancialApril", D(2023, 4, 1), D(2024, 3, 31)),
        ("2023July", "FinancialJuly", D(2023, 7, 1), D(2024, 6, 30)),
        ("2023Oct", "FinancialOct", D(2023, 10, 1), D(2024, 9, 30)),
        ("2023Nov", "FinancialNov", D(2023, 11, 1), D(2024, 10, 31)),
        ("202301", "Monthly", D(2023, 1, 1), D(2023, 1, 31)),
        ("202302B", "BiMonthly", D(2023, 3, 1), D(2023, 4, 30)),
        ("2023Q1", "Quarterly", D(2023, 1, 1), D(2023, 3, 31)),
        ("2023JulyQ1", "QuarterlyJuly", D(2023, 7, 1), D(2023, 9, 30)),
        ("2023JulyQ4", "QuarterlyJuly", D(2024, 4, 1), D(2024, 6, 30)),
        ("2023NovemberQ1", "QuarterlyNov", D(2023, 11, 1), D(2024, 1, 31)),
        ("2023NovemberQ4", "QuarterlyNov", D(2024, 8, 1), D(2024, 10, 31)),
        ("2023AprilS1", "SixMonthlyApril", D(2023, 4, 1), D(2023, 9, 30)),
        ("2023AprilS2", "SixMonthlyApril", D(2023, 10, 1), D(2024, 3, 31)),
        ("2023JulyS2", "SixMonthlyJuly", D(2024, 1, 1), D(2024, 6, 30)),
        ("2023NovemberS1", "SixMonthlyNov", D(2023, 11, 1), D(2024, 4, 30)),
        ("2023NovemberS2", "SixMonthlyNov", D(2024, 5, 1), D(2024, 10, 31)),
        ("2023W1", "Weekly", D(2023, 1, 2), D(2023, 1, 8)),
        ("2023BiW1", "BiWeekly", D(2023, 1, 2), D(2023, 1, 15)),
        ("2023WedW1", "WeeklyWednesday", D(2023, 1, 4), D(2023, 1, 10)),
        ("2023ThuW1", "WeeklyThursday", D(2022, 12, 29), D(2023, 1, 4)),
        ("2023SatW1", "WeeklySaturday", D(2022, 12, 31), D(2023, 1, 6)),
        ("2023SunW1", "WeeklySunday", D(2023, 1, 1), D(2023, 1, 7)),
        ("20230101", "Daily", D(2023, 1, 1), D(2023, 1, 1)),
        ("2024S2", "SixMonthly", D(2024, 7, 1), D(2024, 12, 31)),
        ("2024NovS1", "SixMonthlyNov", D(2024, 11, 1), D(2025, 4, 30)),
    ],
)
def test_dhis2_reference_periods(text: str, kind: str, start: dt.date, end: dt.date) -> None:
    period = parse_period(text)
    assert (period.type, period.start, period.end) == (kind, start, end)


def test_weeks_accept_padding_and_write_unpadded() -> None:
    # data-standards.md 0.1: DHIS2 writes 2024W5; 2024W05 must parse to the same week.
    assert parse_period("2024W05") == parse_period("2024W5")
    assert parse_period("2024W05").iso == "2024W5"
    assert parse_period("2024W5").start == D(2024, 1, 29)  # ISO week 5 of 2024 starts Monday 29 January


def test_53_week_years() -> None:
    assert weeks_in_year(2020) == 53 and weeks_in_year(2021) == 52  # ISO 8601: 2020 has 53 weeks
    assert parse_period("2020W53").end == D(2021, 1, 3)
    with pytest.raises(PeriodFormatError, match="52 weeks"):
        parse_period("2021W53")


@pytest.mark.parametrize("text", ["2024W0", "202413", "20240230", "2024Q5", "2024S3", "2024B", "202407B", "24W5",
                                  "2024-01", "", "2024March"])
def test_malformed_periods_are_rejected(text: str) -> None:
    with pytest.raises(PeriodFormatError):
        parse_period(text)


@given(st.dates(min_value=D(1900, 1, 1), max_value=D(2200, 12, 31)))
def test_weekly_period_round_trips(day: dt.date) -> None:
    period = parse_period(weekly_period(day))
    assert period.start <= day <= period.end and period.days == 7 and period.start.weekday() == 0
