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
  the WHO DQR compares districts with the national ratio.

Findings are reported, never used to drop data: the report's Data quality
section shows them beside the estimates.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
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
        return "\n".join(lines)

    def to_frame(self) -> pd.DataFrame:
        """Every flagged finding, one row each: check, site, indicator, period, value, detail."""
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
        frames = [r for r in rows if len(r)]
        if not frames:
            return pd.DataFrame(columns=["check", "site_id", "indicator", "period", "value", "detail"])
        return pd.concat(frames, ignore_index=True)

    def tidy(self) -> pd.DataFrame:
        return self.to_frame()

    def to_dict(self) -> dict[str, Any]:
        return {"settings": dict(self.settings), "completeness": _jsonable(self.completeness),
                "outliers": _jsonable(self.outliers), "over_time": _jsonable(self.over_time),
                "related": _jsonable(self.related)}


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

    Examples
    --------
    >>> import datetime as dt, pandas as pd
    >>> agg = pd.DataFrame({"site_id": "A", "period": pd.to_datetime(["2024-01-01", "2024-02-01"]),
    ...                     "indicator": "screened", "dimension": "all", "stratum": "all", "value": [10, 12]})
    >>> data_quality(agg, start=dt.date(2024, 1, 1), end=dt.date(2024, 3, 31)).completeness["percent"].iloc[0]
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
    settings = {"moderate": moderate, "extreme": extreme, "target": target, "consistency": consistency}
    return DataQuality(
        completeness=_completeness(series, months, sites, target),
        outliers=_outliers(series, moderate, extreme),
        over_time=_over_time(series, months, consistency),
        related=_related(series, related, consistency),
        settings=settings,
    )


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
