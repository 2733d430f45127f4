"""DHIS2 period identifiers → calendar dates, for every fixed period type.

DHIS2 writes periods in its own notation, not ISO 8601 (weeks are ``2024W5``,
financial years ``2024July``, six-month periods starting in April
``2024AprilS1``). The grammar and the start/end dates below follow the DHIS2
Web API "Date and period format" table and the test vectors of DHIS2's own
period library (``dhis2/multi-calendar-dates``, Gregorian calendar):

* weeks (any start day) are numbered so that week 1 is the week holding
  4 January, i.e. the first week with at least four days in the new year
  (ISO 8601 for Monday weeks); ``2024W05`` is accepted, ``2024W5`` is written;
* bi-weeks are pairs of ISO weeks (``BiW1`` = ISO weeks 1-2);
* bi-months are numbered 1-6 (``202402B`` = March-April);
* financial years and April/July/November quarters and halves are named by the
  year they start in (``2023July`` = 2023-07-01..2024-06-30,
  ``2023NovemberQ1`` = 2023-11-01..2024-01-31).

Only the Gregorian calendar is handled; DHIS2 instances on the Ethiopian or
Nepali calendars export Gregorian periods through the API anyway.

Written here rather than taken from a package: the Python DHIS2 clients on
PyPI cover a subset of period types (none handles Wed/Thu/Sat/Sun weeks,
bi-weeks and November quarters together) and none validates week numbers
against the year.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from dataclasses import dataclass
from typing import Literal

PeriodType = Literal[
    "Daily",
    "Weekly",
    "WeeklyWednesday",
    "WeeklyThursday",
    "WeeklySaturday",
    "WeeklySunday",
    "BiWeekly",
    "Monthly",
    "BiMonthly",
    "Quarterly",
    "QuarterlyJuly",
    "QuarterlyNov",
    "SixMonthly",
    "SixMonthlyApril",
    "SixMonthlyJuly",
    "SixMonthlyNov",
    "Yearly",
    "FinancialApril",
    "FinancialJuly",
    "FinancialOct",
    "FinancialNov",
]

# ISO weekday numbers (Monday = 0) of each weekly period type's first day.
_WEEK_START = {"": 0, "Wed": 2, "Thu": 3, "Sat": 5, "Sun": 6}
_WEEK_TYPE: dict[str, PeriodType] = {
    "": "Weekly",
    "Wed": "WeeklyWednesday",
    "Thu": "WeeklyThursday",
    "Sat": "WeeklySaturday",
    "Sun": "WeeklySunday",
}
_FINANCIAL: dict[str, tuple[PeriodType, int]] = {
    "April": ("FinancialApril", 4),
    "July": ("FinancialJuly", 7),
    "Oct": ("FinancialOct", 10),
    "Nov": ("FinancialNov", 11),
}
_QUARTER_OFFSET: dict[str, tuple[PeriodType, int]] = {
    "": ("Quarterly", 1),
    "July": ("QuarterlyJuly", 7),
    "Nov": ("QuarterlyNov", 11),
    "November": ("QuarterlyNov", 11),
}
_HALF_OFFSET: dict[str, tuple[PeriodType, int]] = {
    "": ("SixMonthly", 1),
    "April": ("SixMonthlyApril", 4),
    "July": ("SixMonthlyJuly", 7),
    "Nov": ("SixMonthlyNov", 11),
    "November": ("SixMonthlyNov", 11),
}

_DAILY = re.compile(r"^(\d{4})(\d{2})(\d{2})$")
_MONTHLY = re.compile(r"^(\d{4})(\d{2})$")
_BIMONTHLY = re.compile(r"^(\d{4})(\d{2})B$")
_WEEKLY = re.compile(r"^(\d{4})(Wed|Thu|Sat|Sun)?W(\d{1,2})$")
_BIWEEKLY = re.compile(r"^(\d{4})BiW(\d{1,2})$")
_QUARTERLY = re.compile(r"^(\d{4})(July|Nov|November)?Q([1-4])$")
_SIXMONTHLY = re.compile(r"^(\d{4})(April|July|Nov|November)?S([12])$")
_YEARLY = re.compile(r"^(\d{4})$")
_FINANCIAL_RE = re.compile(r"^(\d{4})(April|July|Oct|Nov)$")


class PeriodFormatError(ValueError):
    """A string is not a DHIS2 period identifier (the caller turns it into a Problem)."""


@dataclass(frozen=True)
class Period:
    """One DHIS2 period: its canonical identifier, type and inclusive date range."""

    iso: str
    type: PeriodType
    start: dt.date
    end: dt.date

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def within_one_month(self) -> bool:
        return (self.start.year, self.start.month) == (self.end.year, self.end.month)

    @property
    def month(self) -> dt.date:
        """First day of the month the period starts in."""
        return self.start.replace(day=1)


def _month_end(year: int, month: int) -> dt.date:
    return dt.date(year, month, calendar.monthrange(year, month)[1])


def _add_months(year: int, month: int, n: int) -> tuple[int, int]:
    index = year * 12 + (month - 1) + n
    return index // 12, index % 12 + 1


def _span(year: int, month: int, months: int) -> tuple[dt.date, dt.date]:
    end_year, end_month = _add_months(year, month, months - 1)
    return dt.date(year, month, 1), _month_end(end_year, end_month)


def week_one_start(year: int, weekday: int) -> dt.date:
    """First day of week 1: the week (starting on ``weekday``) that holds 4 January."""
    jan4 = dt.date(year, 1, 4)
    return jan4 - dt.timedelta(days=(jan4.weekday() - weekday) % 7)


def weeks_in_year(year: int, weekday: int = 0) -> int:
    return (week_one_start(year + 1, weekday) - week_one_start(year, weekday)).days // 7


def parse_period(text: str) -> Period:
    """Parse a DHIS2 period identifier.

    Examples
    --------
    >>> parse_period("2024W5").start
    datetime.date(2024, 1, 29)
    >>> parse_period("2023July").end
    datetime.date(2024, 6, 30)
    """
    value = text.strip()
    if m := _DAILY.match(value):
        try:
            day = dt.date(int(m[1]), int(m[2]), int(m[3]))
        except ValueError:
            raise PeriodFormatError(f"{text!r} is not a real day (DHIS2 daily periods are yyyyMMdd)") from None
        return Period(day.strftime("%Y%m%d"), "Daily", day, day)
    if m := _WEEKLY.match(value):
        year, prefix, week = int(m[1]), m[2] or "", int(m[3])
        weekday = _WEEK_START[prefix]
        if not 1 <= week <= weeks_in_year(year, weekday):
            raise PeriodFormatError(f"{text!r}: {year} has {weeks_in_year(year, weekday)} weeks of this type")
        start = week_one_start(year, weekday) + dt.timedelta(weeks=week - 1)
        return Period(f"{year}{prefix}W{week}", _WEEK_TYPE[prefix], start, start + dt.timedelta(days=6))
    if m := _BIWEEKLY.match(value):
        year, number = int(m[1]), int(m[2])
        count = (weeks_in_year(year) + 1) // 2
        if not 1 <= number <= count:
            raise PeriodFormatError(f"{text!r}: {year} has {count} bi-weeks")
        start = week_one_start(year, 0) + dt.timedelta(weeks=2 * (number - 1))
        return Period(f"{year}BiW{number}", "BiWeekly", start, start + dt.timedelta(days=13))
    if m := _BIMONTHLY.match(value):
        year, number = int(m[1]), int(m[2])
        if not 1 <= number <= 6:
            raise PeriodFormatError(f"{text!r}: bi-months are numbered 01-06")
        start, end = _span(year, 2 * number - 1, 2)
        return Period(f"{year}{number:02d}B", "BiMonthly", start, end)
    if m := _MONTHLY.match(value):
        year, month = int(m[1]), int(m[2])
        if not 1 <= month <= 12:
            raise PeriodFormatError(f"{text!r}: month {month} does not exist")
        start, end = _span(year, month, 1)
        return Period(f"{year}{month:02d}", "Monthly", start, end)
    if m := _QUARTERLY.match(value):
        year, offset, number = int(m[1]), m[2] or "", int(m[3])
        kind, first = _QUARTER_OFFSET[offset]
        start_year, start_month = _add_months(year, first, 3 * (number - 1))
        start, end = _span(start_year, start_month, 3)
        name = {"": "", "July": "July", "Nov": "November", "November": "November"}[offset]
        return Period(f"{year}{name}Q{number}", kind, start, end)
    if m := _SIXMONTHLY.match(value):
        year, offset, number = int(m[1]), m[2] or "", int(m[3])
        kind, first = _HALF_OFFSET[offset]
        start_year, start_month = _add_months(year, first, 6 * (number - 1))
        start, end = _span(start_year, start_month, 6)
        name = {"": "", "April": "April", "July": "July", "Nov": "November", "November": "November"}[offset]
        return Period(f"{year}{name}S{number}", kind, start, end)
    if m := _YEARLY.match(value):
        year = int(m[1])
        return Period(str(year), "Yearly", dt.date(year, 1, 1), dt.date(year, 12, 31))
    if m := _FINANCIAL_RE.match(value):
        year = int(m[1])
        kind, first = _FINANCIAL[m[2]]
        start, end = _span(year, first, 12)
        return Period(f"{year}{m[2]}", kind, start, end)
    raise PeriodFormatError(
        f"{text!r} is not a DHIS2 period (e.g. 20240115, 2024W5, 202401, 2024Q1, 2024S1, 2024, 2024July)"
    )


def period_type_of(text: str) -> PeriodType:
    return parse_period(text).type


def monthly_period(day: dt.date) -> str:
    """The DHIS2 monthly period holding ``day`` (``202401``)."""
    return f"{day.year}{day.month:02d}"


def weekly_period(day: dt.date) -> str:
    """The DHIS2 (Monday, ISO) weekly period holding ``day``, unpadded (``2024W5``)."""
    year, week, _ = day.isocalendar()
    return f"{year}W{week}"
