"""Data quality of routine aggregate counts, in the style of the WHO Data Quality Review and DHIS2.

Checks the monthly ``aggregates`` a DHIS2-style source loads, per facility and
indicator (``dimension = 'all'`` rows):

* **completeness**: share of the months in the window with a reported value;
  below ``target`` percent is flagged (WHO DQ Tool default 90 %);
* **outliers**: a month whose value lies ``moderate`` (2) or ``extreme`` (3)
  standard deviations from the facility's mean for that indicator (WHO DQ Tool
  defaults; DHIS2 outlier detection's Z_SCORE), needing at least 3 months;
* **consistency over time**: the latest 12 months against the mean of the
  earlier 12-month blocks; deviation above ``consistency`` percent is flagged
  (WHO DQ Tool default 33 %);
* **consistency between related indicators**: each facility's ratio of a
  sub-count to its total (positive/screened by default) against the ratio
  over all facilities; deviation above ``consistency`` percent is flagged, as
  the WHO DQR compares districts with the national ratio;
* **timeliness** (DHIS2's "reporting rate on time"): a facility-month is on
  time when it was reported no later than ``deadline_days`` after the month
  ended (DHIS2's data-set default, 15 days). The reporting time is the
  source's own (a ``reported`` or ``last_updated`` column, earliest per
  facility-month) when it has one, else the time the facility-month first
  reached the project store (the store's arrival log), and the result says
  which. Months whose deadline had already passed when the store's first
  load brought them in cannot be judged from load times (they are a
  back-fill, not a report) and are counted as "not judged", not as late.

:func:`panel_counts` gives person-level programmes the same checks: the
panel's monthly cascade counts, kept only for the facility-months in which
the facility recorded any contact.

Findings are reported, never used to drop data: the report's Data quality
section shows them beside the estimates.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from knowdo.errors import ParameterError

MODERATE_SD = 2.0  # WHO Data Quality Tool default "moderateOutlier" (dhis2/who-data-quality-app)
EXTREME_SD = 3.0  # WHO Data Quality Tool default "extremeOutlier"
COMPLETENESS_TARGET = 90.0  # WHO Data Quality Tool default "missing" target, % of expected monthly reports
CONSISTENCY_PERCENT = 33.0  # WHO Data Quality Tool default "consistency" threshold, % deviation
MIN_MONTHS_FOR_OUTLIERS = 3  # a mean and SD from fewer months say nothing
RELATED = (("positive", "screened"),)  # sub-count, total
TIMELY_DAYS = 15  # DHIS2 data set "timelyDays" default (dhis2-core fills 15 where unset): days after the period
REPORTED_COLUMNS = ("reported", "last_updated", "lastUpdated")  # a source's own reporting time, first found wins
TIMELINESS_COLUMNS = ["site_id", "period", "reported_at", "due", "days_after_due", "judged", "on_time"]


def _jsonable(frame: pd.DataFrame) -> list[dict[str, Any]]:
    records = frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
    return [{str(k): (v.isoformat()[:10] if isinstance(v, pd.Timestamp | dt.date) else
                 float(v) if isinstance(v, np.floating) else int(v) if isinstance(v, np.integer) else v)
             for k, v in r.items()} for r in records]


@dataclass(frozen=True)
class DataQuality:
    """Findings of :func:`data_quality`: one tidy frame per check, and the thresholds used."""

    completeness: pd.DataFrame
    outliers: pd.DataFrame
    over_time: pd.DataFrame
    related: pd.DataFrame
    settings: dict[str, float]
    timeliness: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=TIMELINESS_COLUMNS))
    timeliness_basis: str = "not assessed: no reporting time was given"

    def timeliness_by_site(self) -> pd.DataFrame:
        """Per facility: months judged, on time, late, not judged, and the percent on time."""
        columns = ["site_id", "judged", "on_time", "late", "not_judged", "percent_on_time", "below_target"]
        if self.timeliness.empty:
            return pd.DataFrame(columns=columns)
        t = self.timeliness.assign(late=self.timeliness["judged"] & ~self.timeliness["on_time"].astype(bool),
                                   not_judged=~self.timeliness["judged"],
                                   on_time=self.timeliness["on_time"].astype(bool))
        out = t.groupby("site_id")[["judged", "on_time", "late", "not_judged"]].sum().astype(int).reset_index()
        out["percent_on_time"] = (100.0 * out["on_time"] / out["judged"]).where(out["judged"] > 0)
        out["below_target"] = out["percent_on_time"].notna() & (out["percent_on_time"] < self.settings["target"])
        return out[columns]

    def summary(self) -> str:
        low = self.completeness[self.completeness["below_target"]]
        lines = [
            f"Completeness: {len(low)} of {len(self.completeness)} facility-indicator series below "
            f"{self.settings['target']:g}% of months reported.",
            f"Outliers: {int((self.outliers['severity'] == 'extreme').sum())} extreme (>= "
            f"{self.settings['extreme']:g} SD) and {int((self.outliers['severity'] == 'moderate').sum())} moderate "
            f"(>= {self.settings['moderate']:g} SD) monthly values.",
            f"Consistency over time: {int(self.over_time['flagged'].sum())} series deviate more than "
            f"{self.settings['consistency']:g}% from their earlier years.",
            f"Related indicators: {int(self.related['flagged'].sum())} facilities' ratios deviate more than "
            f"{self.settings['consistency']:g}% from the overall ratio.",
        ]
        judged = self.timeliness[self.timeliness["judged"]] if len(self.timeliness) else self.timeliness
        if len(judged):
            on_time = int(judged["on_time"].astype(bool).sum())
            lines.append(f"Timeliness: {on_time} of {len(judged)} facility-months reported within "
                         f"{self.settings['deadline_days']:g} days of the month's end "
                         f"({len(self.timeliness) - len(judged)} not judged); reporting time: "
                         f"{self.timeliness_basis}.")
        else:
            lines.append(f"Timeliness: no facility-month could be judged; reporting time: {self.timeliness_basis}.")
        return "\n".join(lines)

    def to_frame(self) -> pd.DataFrame:
        """Every flagged finding (late months included), one row each: check, site, indicator, period, value, detail."""
        rows: list[pd.DataFrame] = []
        low = self.completeness[self.completeness["below_target"]]
        rows.append(pd.DataFrame({"check": "completeness", "site_id": low["site_id"], "indicator": low["indicator"],
                                  "period": None, "value": low["percent"], "detail": "percent of months reported"}))
        rows.append(pd.DataFrame({"check": "outlier", "site_id": self.outliers["site_id"],
                                  "indicator": self.outliers["indicator"], "period": self.outliers["period"],
                                  "value": self.outliers["value"], "detail": self.outliers["severity"]}))
        late = self.over_time[self.over_time["flagged"]]
        rows.append(pd.DataFrame({"check": "over_time", "site_id": late["site_id"], "indicator": late["indicator"],
                                  "period": None, "value": late["deviation_percent"], "detail": "% deviation"}))
        odd = self.related[self.related["flagged"]]
        rows.append(pd.DataFrame({"check": "related", "site_id": odd["site_id"],
                                  "indicator": odd["sub"] + "/" + odd["total"], "period": None,
                                  "value": odd["ratio"], "detail": "ratio vs overall " + odd["overall"].round(3)
                                  .astype(str)}))
        if len(self.timeliness):
            late = self.timeliness[self.timeliness["judged"] & ~self.timeliness["on_time"].astype(bool)]
            rows.append(pd.DataFrame({"check": "timeliness", "site_id": late["site_id"], "indicator": None,
                                      "period": late["period"], "value": late["days_after_due"],
                                      "detail": "days after the deadline"}))
        frames = [r for r in rows if len(r)]
        if not frames:
            return pd.DataFrame(columns=["check", "site_id", "indicator", "period", "value", "detail"])
        return pd.concat(frames, ignore_index=True)

    def tidy(self) -> pd.DataFrame:
        return self.to_frame()

    def to_dict(self) -> dict[str, Any]:
        return {"settings": dict(self.settings), "completeness": _jsonable(self.completeness),
                "outliers": _jsonable(self.outliers), "over_time": _jsonable(self.over_time),
                "related": _jsonable(self.related), "timeliness": _jsonable(self.timeliness),
                "timeliness_basis": self.timeliness_basis}


def data_quality(
    aggregates: pd.DataFrame,
    *,
    start: dt.date,
    end: dt.date,
    sites: Sequence[str] | None = None,
    moderate: float = MODERATE_SD,
    extreme: float = EXTREME_SD,
    target: float = COMPLETENESS_TARGET,
    consistency: float = CONSISTENCY_PERCENT,
    related: Sequence[tuple[str, str]] = RELATED,
    reported: pd.DataFrame | None = None,
    reported_basis: str = "when each facility-month first reached the project store",
    first_load: dt.datetime | None = None,
    deadline_days: float = TIMELY_DAYS,
) -> DataQuality:
    """WHO/DHIS2-style data-quality findings for monthly aggregate counts.

    Parameters
    ----------
    aggregates
        The canonical ``aggregates`` table (``site_id, period, indicator,
        dimension, stratum, value``); only the ``all`` totals are checked.
    start, end
        The window: every month in it is expected to be reported.
    sites
        Facilities expected to report (default: those that reported anything).
    reported, reported_basis, first_load, deadline_days
        Timeliness inputs. A ``reported`` (or ``last_updated``) column of
        ``aggregates`` is used first; else ``reported`` gives one reporting
        time per facility-month (``site_id, period, reported_at``), described
        by ``reported_basis``. When the times are load times, ``first_load``
        is the store's first load: months already overdue then are not judged.

    Examples
    --------
    >>> import datetime as dt, pandas as pd
    >>> agg = pd.DataFrame({"site_id": "A", "period": pd.to_datetime(["2024-01-01", "2024-02-01"]),
    ...                     "indicator": "screened", "dimension": "all", "stratum": "all", "value": [10, 12]})
    >>> float(data_quality(agg, start=dt.date(2024, 1, 1), end=dt.date(2024, 3, 31)).completeness["percent"].iloc[0])
    66.66666666666667
    """
    if not 0 < moderate < extreme:
        raise ParameterError(f"data_quality: need 0 < moderate < extreme (SD), saw {moderate} and {extreme}")
    if not 0 < target <= 100 or consistency <= 0:
        raise ParameterError(f"data_quality: target must be in (0, 100] and consistency > 0, saw {target}, "
                             f"{consistency}")
    missing = {"site_id", "period", "indicator", "dimension", "value"} - set(aggregates.columns)
    if missing:
        raise ParameterError(f"data_quality: aggregates lack columns {sorted(missing)}")
    totals = aggregates[aggregates["dimension"] == "all"].copy()
    totals["period"] = pd.to_datetime(totals["period"]).dt.to_period("M").dt.to_timestamp()
    totals["value"] = pd.to_numeric(totals["value"], errors="coerce").astype(float)
    months = pd.date_range(pd.Timestamp(start).to_period("M").to_timestamp(), pd.Timestamp(end), freq="MS")
    totals = totals[totals["period"].isin(months)]
    series = totals.groupby(["site_id", "indicator", "period"])["value"].sum().reset_index()
    if deadline_days < 0:
        raise ParameterError(f"data_quality: deadline_days must be 0 or more, saw {deadline_days}")
    settings = {"moderate": moderate, "extreme": extreme, "target": target, "consistency": consistency,
                "deadline_days": deadline_days}
    own = next((c for c in REPORTED_COLUMNS if c in aggregates.columns), None)
    basis = "not assessed: the source has no reporting time and none was given"
    times: pd.DataFrame | None = None
    if own is not None:
        times = aggregates[["site_id", "period", own]].rename(columns={own: "reported_at"})
        basis, first_load = f"the source's own '{own}' column (earliest per facility-month)", None
    elif reported is not None:
        times, basis = reported, reported_basis
    timely = (_timeliness(times, months, first_load, deadline_days) if times is not None
              else pd.DataFrame(columns=TIMELINESS_COLUMNS))
    return DataQuality(
        completeness=_completeness(series, months, sites, target),
        outliers=_outliers(series, moderate, extreme),
        over_time=_over_time(series, months, consistency),
        related=_related(series, related, consistency),
        settings=settings,
        timeliness=timely,
        timeliness_basis=basis,
    )


def _timeliness(times: pd.DataFrame, months: pd.DatetimeIndex, first_load: dt.datetime | None,
                deadline_days: float) -> pd.DataFrame:
    missing = {"site_id", "period", "reported_at"} - set(times.columns)
    if missing:
        raise ParameterError(f"data_quality: reporting times lack columns {sorted(missing)}")
    frame = pd.DataFrame({
        "site_id": times["site_id"].astype(str),
        "period": pd.to_datetime(times["period"]).dt.to_period("M").dt.to_timestamp(),
        "reported_at": pd.to_datetime(times["reported_at"], errors="coerce", utc=True).dt.tz_localize(None),
    })
    frame = frame.loc[frame["period"].isin(months)].groupby(["site_id", "period"], as_index=False).agg(
        reported_at=("reported_at", "min"))
    month_end = frame["period"] + pd.offsets.MonthBegin(1)  # midnight after the month's last day
    frame["due"] = month_end + pd.to_timedelta(deadline_days, unit="D")
    frame["days_after_due"] = (frame["reported_at"] - frame["due"]).dt.total_seconds() / 86400.0
    judged = frame["reported_at"].notna()
    if first_load is not None:  # a back-fill: the month was overdue before the store held anything
        backfill = (frame["reported_at"] <= pd.Timestamp(first_load)) & (frame["due"] < pd.Timestamp(first_load))
        judged &= ~backfill
    frame["judged"] = judged.astype(bool)
    frame["on_time"] = (judged & (frame["days_after_due"] <= 0)).astype(bool)
    return frame[TIMELINESS_COLUMNS].sort_values(["site_id", "period"]).reset_index(drop=True)


def panel_counts(panel: pd.DataFrame, reported: pd.DataFrame,
                 indicators: Sequence[str] = ("screened", "positive", "started", "adequate")) -> pd.DataFrame:
    """Monthly facility totals from the analysis panel, shaped like ``aggregates``, for reported months only.

    The panel holds a zero for every facility-month without data, which
    would make every series complete; ``reported`` (``site_id, period``, the
    facility-months with any recorded contact) says which months were
    actually reported.
    """
    missing = {"site_id", "period", "dimension", *indicators} - set(panel.columns)
    if missing:
        raise ParameterError(f"panel_counts: the panel lacks columns {sorted(missing)}")
    totals = panel[panel["dimension"] == "all"]
    keys = pd.DataFrame({"site_id": reported["site_id"].astype(str),
                         "period": pd.to_datetime(reported["period"]).dt.to_period("M").dt.to_timestamp()})
    totals = totals.assign(period=pd.to_datetime(totals["period"]).dt.to_period("M").dt.to_timestamp())
    kept = totals.merge(keys.drop_duplicates(), on=["site_id", "period"], how="inner")
    long = kept.melt(id_vars=["site_id", "period"], value_vars=list(indicators), var_name="indicator",
                     value_name="value")
    return long.assign(dimension="all", stratum="all")[["site_id", "period", "indicator", "dimension", "stratum",
                                                        "value"]]


def _completeness(series: pd.DataFrame, months: pd.DatetimeIndex, sites: Sequence[str] | None,
                  target: float) -> pd.DataFrame:
    indicators = sorted(series["indicator"].unique())
    expected_sites = sorted(sites) if sites is not None else sorted(series["site_id"].unique())
    grid = pd.MultiIndex.from_product([expected_sites, indicators], names=["site_id", "indicator"]).to_frame(
        index=False)
    reported = series.groupby(["site_id", "indicator"])["period"].nunique().rename("reported").reset_index()
    out = grid.merge(reported, on=["site_id", "indicator"], how="left").fillna({"reported": 0})
    out["reported"] = out["reported"].astype(int)
    out["expected"] = len(months)
    out["percent"] = 100.0 * out["reported"] / max(len(months), 1)
    out["below_target"] = out["percent"] < target
    return out[["site_id", "indicator", "expected", "reported", "percent", "below_target"]]


def _outliers(series: pd.DataFrame, moderate: float, extreme: float) -> pd.DataFrame:
    grouped = series.groupby(["site_id", "indicator"])["value"]
    stats = series.assign(mean=grouped.transform("mean"), sd=grouped.transform("std"),
                          n=grouped.transform("count"))
    usable = (stats["n"] >= MIN_MONTHS_FOR_OUTLIERS) & (stats["sd"] > 0)
    stats = stats[usable].copy()
    stats["z"] = (stats["value"] - stats["mean"]) / stats["sd"]
    stats["severity"] = np.where(stats["z"].abs() >= extreme, "extreme",
                                 np.where(stats["z"].abs() >= moderate, "moderate", ""))
    flagged = stats[stats["severity"] != ""]
    return flagged[["site_id", "indicator", "period", "value", "mean", "sd", "z", "severity"]].reset_index(drop=True)


def _over_time(series: pd.DataFrame, months: pd.DatetimeIndex, consistency: float) -> pd.DataFrame:
    columns = ["site_id", "indicator", "latest_mean", "earlier_mean", "deviation_percent", "flagged"]
    if len(months) < 24:  # needs the latest year and at least one earlier one
        return pd.DataFrame(columns=columns).astype({"flagged": bool})
    latest = months[-12:]
    recent = series[series["period"].isin(latest)].groupby(["site_id", "indicator"])["value"].mean()
    earlier = series[~series["period"].isin(latest)].groupby(["site_id", "indicator"])["value"].mean()
    joined = pd.concat({"latest_mean": recent, "earlier_mean": earlier}, axis=1).dropna().reset_index()
    joined = joined[joined["earlier_mean"] > 0]
    joined["deviation_percent"] = 100.0 * (joined["latest_mean"] / joined["earlier_mean"] - 1)
    joined["flagged"] = joined["deviation_percent"].abs() > consistency
    return joined[columns].reset_index(drop=True)


def _related(series: pd.DataFrame, pairs: Sequence[tuple[str, str]], consistency: float) -> pd.DataFrame:
    rows = []
    for sub, total in pairs:
        both = series[series["indicator"].isin([sub, total])].pivot_table(
            index=["site_id", "period"], columns="indicator", values="value", aggfunc="sum")
        if sub not in both or total not in both:
            continue
        both = both.dropna(subset=[sub, total])
        per_site = both.groupby(level="site_id")[[sub, total]].sum()
        overall = per_site[sub].sum() / per_site[total].sum() if per_site[total].sum() > 0 else np.nan
        for site, row in per_site.iterrows():
            ratio = row[sub] / row[total] if row[total] > 0 else np.nan
            deviation = 100.0 * (ratio / overall - 1) if overall and not np.isnan(ratio) else np.nan
            rows.append({"site_id": site, "sub": sub, "total": total, "ratio": ratio, "overall": overall,
                         "deviation_percent": deviation,
                         "flagged": bool(not np.isnan(deviation) and abs(deviation) > consistency)})
    columns = ["site_id", "sub", "total", "ratio", "overall", "deviation_percent", "flagged"]
    return pd.DataFrame(rows, columns=columns).astype({"flagged": bool})


def loaded_data_quality(
    *,
    start: dt.date,
    end: dt.date,
    sites: pd.DataFrame | None,
    arrivals: pd.DataFrame,
    loads: pd.DataFrame,
    aggregates: pd.DataFrame | None = None,
    panel: pd.DataFrame | None = None,
    deadline_days: float = TIMELY_DAYS,
) -> DataQuality | None:
    """The checks for data already in the store: aggregates when it holds them, else the panel's counts.

    ``arrivals`` and ``loads`` are the store's arrival log and load list:
    they give each facility-month's reporting time (its first arrival) and the
    first load (before which overdue months are a back-fill). Returns ``None``
    when there is nothing monthly to check.
    """
    facilities = None
    if sites is not None and len(sites):
        facilities = sorted(sites.loc[sites["level"] == "facility", "site_id"].astype(str))
    first_load = pd.Timestamp(loads["loaded_at"].min()).to_pydatetime() if len(loads) else None

    def arrived(table: str) -> pd.DataFrame:
        rows = arrivals[arrivals["table_name"] == table]
        return rows.rename(columns={"first_loaded_at": "reported_at"})[["site_id", "period", "reported_at"]]

    basis = "when each facility-month first reached the project store (the source gives no reporting date)"
    if aggregates is not None and len(aggregates):
        return data_quality(aggregates, start=start, end=end, sites=facilities, reported=arrived("aggregates"),
                            reported_basis=basis, first_load=first_load, deadline_days=deadline_days)
    if panel is None or not len(panel):
        return None
    reported = arrived("encounters")
    counts = panel_counts(panel, reported)
    return data_quality(counts, start=start, end=end, sites=facilities, reported=reported,
                        related=(("positive", "screened"), ("started", "positive")),
                        reported_basis=basis.replace("facility-month", "facility-month's contacts"),
                        first_load=first_load, deadline_days=deadline_days)
