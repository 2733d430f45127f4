"""Grouping: overall, site, district and period, crossed with equity strata.

Every outcome is reported for the same set of groups. A *grouping* (``by``)
names how rows are pooled: ``overall`` (everything), ``site``, ``district``,
or a period (``month``, ``quarter``, ``year``). Each grouping is crossed with
the equity strata: ``stratum_dimension='all'`` / ``stratum='all'`` holds the
total, and the other rows one equity dimension at a time.

How the panel is pooled over time matters for the denominators. Counts
(screened, started, ...) are flows and are summed. ``need`` and
``population`` are stocks (people in need, adults in the catchment): for a
site they are averaged over the months pooled, then summed over sites. So a
year's coverage is the people treated in the year divided by the average
number in need that year; summing twelve monthly stocks would shrink it
twelvefold.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Literal, get_args

import numpy as np
import pandas as pd

from knowdo.config import Project, Stratum
from knowdo.errors import ParameterError
from knowdo.schema import PANEL_COLUMN_NAMES

Grouping = Literal["overall", "site", "district", "month", "quarter", "year"]
GROUPINGS: tuple[Grouping, ...] = get_args(Grouping)
PERIOD_GROUPINGS: tuple[Grouping, ...] = ("month", "quarter", "year")
KEYS = ["group_type", "group", "stratum_dimension", "stratum"]
ALL = "all"


def check_groupings(by: Iterable[str]) -> tuple[Grouping, ...]:
    """Validate ``by`` against :data:`GROUPINGS` and return it as a tuple without duplicates."""
    if isinstance(by, str):
        by = (by,)
    out: list[Grouping] = []
    for item in by:
        if item not in GROUPINGS:
            raise ParameterError(f"'by' must contain only {', '.join(GROUPINGS)} (got {item!r}).")
        if item not in out:
            out.append(item)
    return tuple(out)


def check_columns(frame: pd.DataFrame, required: Sequence[str], name: str) -> None:
    """Raise :class:`ParameterError` naming the columns of ``frame`` that are missing."""
    if not isinstance(frame, pd.DataFrame):
        raise ParameterError(f"'{name}' must be a pandas DataFrame (got {type(frame).__name__}).")
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise ParameterError(
            f"'{name}' is missing column(s) {', '.join(missing)}; "
            f"it has {', '.join(map(str, frame.columns)) or 'no columns'}."
        )


def check_panel(panel: pd.DataFrame) -> None:
    check_columns(panel, PANEL_COLUMN_NAMES, "panel")


def period_label(dates: pd.Series, grouping: Grouping) -> pd.Series:
    """Label dates as ``2024-01`` (month), ``2024-Q1`` (quarter) or ``2024`` (year); missing stays missing."""
    d = pd.to_datetime(dates)
    if grouping == "month":
        return d.dt.strftime("%Y-%m")
    year = d.dt.year.astype("Int64").astype("string")
    if grouping == "quarter":
        return (year + "-Q" + d.dt.quarter.astype("Int64").astype("string")).astype(object)
    if grouping == "year":
        return year.astype(object)
    raise ParameterError(f"'grouping' must be one of {', '.join(PERIOD_GROUPINGS)} (got {grouping!r}).")


def period_end(label: str, grouping: Grouping) -> dt.date:
    """Last day of a period labelled by :func:`period_label`."""
    if grouping == "month":
        start = pd.Timestamp(label + "-01")
        return (start + pd.offsets.MonthEnd(0)).date()
    if grouping == "quarter":
        year, q = label.split("-Q")
        return (pd.Timestamp(int(year), 3 * int(q), 1) + pd.offsets.MonthEnd(0)).date()
    return dt.date(int(label), 12, 31)


def labels_for(frame: pd.DataFrame, grouping: Grouping, *, date: str, site: str, district: str) -> pd.Series:
    """Group labels of each row of ``frame`` under one grouping (object dtype; NaN where unknown)."""
    if grouping == "overall":
        return pd.Series(ALL, index=frame.index, dtype=object)
    if grouping == "site":
        return frame[site].astype(object).where(frame[site].notna())
    if grouping == "district":
        return frame[district].astype(object).where(frame[district].notna())
    return period_label(frame[date], grouping).astype(object)


def expand_groups(
    frame: pd.DataFrame,
    by: Sequence[Grouping],
    *,
    date: str = "period",
    site: str = "site_id",
    district: str = "district_id",
) -> pd.DataFrame:
    """Stack one copy of ``frame`` per grouping with ``group_type`` and ``group`` columns.

    Rows whose label is unknown under a grouping (no date, no district) are
    left out of that grouping only.
    """
    parts = []
    for grouping in by:
        labels = labels_for(frame, grouping, date=date, site=site, district=district)
        part = frame.assign(group_type=grouping, group=labels)
        parts.append(part.loc[labels.notna()])
    if not parts:
        return frame.iloc[0:0].assign(group_type=pd.Series(dtype=object), group=pd.Series(dtype=object))
    return pd.concat(parts, ignore_index=True)


def expand_strata(frame: pd.DataFrame, dimensions: Sequence[str]) -> pd.DataFrame:
    """Stack the total (``all``/``all``) and one copy of ``frame`` per equity dimension column.

    Person-level frames carry one column per dimension; a person with a
    missing value is counted in the total but in no stratum of that dimension.
    """
    parts = [frame.assign(stratum_dimension=ALL, stratum=ALL)]
    for dim in dimensions:
        if dim not in frame.columns:
            continue
        values = frame[dim]
        part = frame.assign(stratum_dimension=dim, stratum=values.astype(str).where(values.notna()))
        parts.append(part.loc[values.notna()])
    return pd.concat(parts, ignore_index=True)


def aggregate_panel(
    panel: pd.DataFrame,
    by: Sequence[Grouping],
    counts: Sequence[str],
    stocks: Sequence[str] = ("need", "population"),
    *,
    rows: pd.Series | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Pool the panel into groups × strata.

    Returns ``(by_group, by_site)``. ``by_site`` has one row per group,
    stratum and site: counts summed over months, stocks averaged over months.
    ``by_group`` sums ``by_site`` over sites and adds ``n_sites``. Both carry
    the :data:`KEYS` columns (the panel's ``dimension`` becomes
    ``stratum_dimension``).
    """
    data = panel if rows is None else panel.loc[rows]
    cols = ["site_id", "district_id", "period", "dimension", "stratum", *counts, *stocks]
    data = data[cols].rename(columns={"dimension": "stratum_dimension"})
    stacked = expand_groups(data, by)
    site_keys = [*KEYS, "site_id"]
    grouped = stacked.groupby(site_keys, sort=False, dropna=False)
    parts = [grouped[list(counts)].sum(min_count=1)] if counts else []
    if stocks:
        parts.append(grouped[list(stocks)].mean())
    by_site = pd.concat(parts, axis=1).reset_index() if parts else grouped.size().reset_index()[site_keys]
    agg: dict[str, tuple[str, str]] = {c: (c, "sum") for c in [*counts, *stocks]}
    agg["n_sites"] = ("site_id", "nunique")
    by_group = by_site.groupby(KEYS, sort=False, dropna=False).agg(**agg).reset_index()
    for c in [*counts, *stocks]:
        # min_count semantics: a group whose every site is missing stays missing
        has = by_site.groupby(KEYS, sort=False, dropna=False)[c].count().to_numpy() > 0
        by_group[c] = by_group[c].where(has)
    return by_group, by_site


def data_end(panel: pd.DataFrame, project: Project | None) -> dt.date:
    """Last day covered by the data: the end of the panel's last month, capped at ``project.end``."""
    periods = pd.to_datetime(panel["period"]) if "period" in panel.columns else pd.Series(dtype="datetime64[ns]")
    candidates: list[dt.date] = []
    if periods.notna().any():
        candidates.append((periods.max() + pd.offsets.MonthEnd(0)).date())
    if project is not None:
        candidates.append(project.end)
    if not candidates:
        raise ParameterError("cannot tell when the data end: the panel has no periods and no project was given.")
    return min(candidates)


def month_index(dates: pd.Series | dt.date | pd.Timestamp) -> pd.Series | int:
    """Months since year 0 (``year * 12 + month - 1``), for whole-month comparisons."""
    if isinstance(dates, pd.Series):
        d = pd.to_datetime(dates)
        return d.dt.year * 12 + d.dt.month - 1
    ts = pd.Timestamp(dates)
    return int(ts.year * 12 + ts.month - 1)


def period_ends(panel: pd.DataFrame, by: Sequence[Grouping], end: dt.date) -> pd.DataFrame:
    """``group_type, group, end`` for the overall group and every period label found in the panel.

    Used by measures that are cumulative to the end of each period (adoption):
    a period's end is its last day, capped at the data end.
    """
    rows: list[tuple[str, str, dt.date]] = []
    if "overall" in by:
        rows.append(("overall", ALL, end))
    periods = pd.Series(pd.to_datetime(panel["period"]).dropna().unique())
    for grouping in by:
        if grouping not in PERIOD_GROUPINGS:
            continue
        for label in sorted(set(period_label(periods, grouping).dropna())):
            rows.append((grouping, label, min(period_end(label, grouping), end)))
    return pd.DataFrame(rows, columns=["group_type", "group", "end"])


def cumulative_units(
    units: pd.DataFrame,
    by: Sequence[Grouping],
    ends: pd.DataFrame,
    end: dt.date,
    *,
    site: str = "site_id",
    district: str = "district_id",
) -> pd.DataFrame:
    """Stack ``units`` (sites or providers) once per group, each with the ``end`` date it is judged at.

    Overall and period groups take every unit, judged at the end of the
    period; site and district groups take their own units, judged at the data
    end.
    """
    parts = []
    for grouping in by:
        if grouping in ("site", "district"):
            col = site if grouping == "site" else district
            part = units.assign(group_type=grouping, group=units[col].astype(object), end=pd.Timestamp(end))
            parts.append(part.loc[part["group"].notna()])
        else:
            sel = ends.loc[ends["group_type"] == grouping, ["group_type", "group", "end"]]
            if sel.empty or units.empty:
                continue
            part = units.merge(sel.assign(end=pd.to_datetime(sel["end"])), how="cross")
            parts.append(part)
    if not parts:
        return units.iloc[0:0].assign(group_type="", group="", end=pd.Timestamp(end))
    return pd.concat(parts, ignore_index=True)


def strata_of(project: Project | None) -> tuple[Stratum, ...]:
    return () if project is None else project.strata


def sort_tidy(frame: pd.DataFrame, strata: Sequence[Stratum] = ()) -> pd.DataFrame:
    """Order tidy rows: outcome and measure as first seen, then grouping, group, dimension and level.

    Dimensions follow the project order (``all`` first) and levels their
    declared order; anything undeclared sorts after, alphabetically.
    """
    if frame.empty:
        return frame.reset_index(drop=True)
    level_rank = {(s.name, lvl): i for s in strata for i, lvl in enumerate(s.levels)}
    dim_rank = {d: i for i, d in enumerate([ALL, *[s.name for s in strata]])}
    first_seen = {v: i for i, v in enumerate(pd.unique(frame["outcome"] + "\x00" + frame["measure"]))}
    keys = pd.DataFrame(
        {
            "om": (frame["outcome"] + "\x00" + frame["measure"]).map(first_seen),
            "gt": frame["group_type"].map({g: i for i, g in enumerate(GROUPINGS)}).fillna(len(GROUPINGS)),
            "g": frame["group"].astype(str),
            "dr": frame["stratum_dimension"].map(dim_rank).fillna(len(dim_rank)),
            "d": frame["stratum_dimension"].astype(str),
            "lr": [
                level_rank.get((d, s), 0 if s == ALL else 10_000)
                for d, s in zip(frame["stratum_dimension"], frame["stratum"], strict=True)
            ],
            "s": frame["stratum"].astype(str),
        },
        index=frame.index,
    )
    order = keys.sort_values(["om", "gt", "g", "dr", "d", "lr", "s"], kind="stable").index
    return frame.loc[order].reset_index(drop=True)


def lookup(keys: pd.Series, table: pd.Series) -> pd.Series:
    """``table[key]`` for each key (missing where absent), keeping ``table``'s dtype even when it is empty."""
    table = table.loc[~table.index.duplicated()]
    values = table.reindex(pd.Index(keys.to_numpy(dtype=object))).to_numpy()
    return pd.Series(values, index=keys.index, dtype=table.dtype)


def as_float(series: pd.Series) -> np.ndarray:
    """Booleans, 0/1 and nullable values as a float array with NaN for missing."""
    return series.astype("Float64").to_numpy(dtype=float, na_value=np.nan)
