"""Headline coverage measures month by month for each site and each district.

The other results pool a site (or a district) over the whole period, or pool
every site for a month; none shows how one site's coverage moves over time,
which is what a programme manager watching a scale-up looks at first. This
result crosses place and month for four headline measures, for all people
only (``stratum_dimension = stratum = 'all'``; crossing with equity strata
as well would make most cells too small to publish):

``screening_coverage``
    adults screened ÷ adults in the catchment;
``detection``
    people screening positive ÷ estimated need;
``reach``
    people starting treatment ÷ estimated need;
``effective_coverage``
    people treated adequately who responded ÷ estimated need.

Tidy rows (:data:`TREND_COLUMNS`: the outcome columns plus ``period``, the
month as ``YYYY-MM``) have ``group_type`` ``site_month`` (``group`` is the
site), ``district_month`` (``group`` is the district) or ``month`` (the whole
programme, ``group`` is the month label: the reference line each site and
district is read against, equal to the cascade's monthly rows). Pooling
follows :mod:`knowdo.outcomes.groups`: counts are summed over the sites of a
district, and so are the stocks (need, population), each site's stock taken
for that month.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal, get_args

import altair as alt
import numpy as np
import pandas as pd

from knowdo.errors import ParameterError
from knowdo.outcomes.cascade import NEED_NOTE, CiMethod, proportion_rows
from knowdo.outcomes.charts import Chart, chart_data
from knowdo.outcomes.groups import ALL, check_panel, period_label
from knowdo.outcomes.intervals import DEFAULT_LEVEL, z_value
from knowdo.outcomes.results import TIDY_COLUMNS, OutcomeResult, concat_tidy, level_text, pct

TrendLevel = Literal["site_month", "district_month", "month"]
TREND_LEVELS: tuple[TrendLevel, ...] = get_args(TrendLevel)
TREND_COLUMNS = (*TIDY_COLUMNS, "period")
# outcome -> (panel numerator, panel denominator); the denominators are stocks, the numerators flows.
TREND_MEASURES: dict[str, tuple[str, str]] = {
    "screening_coverage": ("screened", "population"),
    "detection": ("positive", "need"),
    "reach": ("started", "need"),
    "effective_coverage": ("effective", "need"),
}
_LABELS = {
    "screening_coverage": "Screening coverage (adults screened)",
    "detection": "Detection (screened positive ÷ need)",
    "reach": "Reach (started treatment ÷ need)",
    "effective_coverage": "Effective coverage (adequate and responded ÷ need)",
}
_CI_METHODS: tuple[CiMethod, ...] = ("wilson", "cluster")
# Where each level's place comes from in the panel (the programme level has one place).
_PLACE = {"site_month": "site_id", "district_month": "district_id", "month": None}
_COUNTS = sorted({c for pair in TREND_MEASURES.values() for c in pair} - {"need", "population"})
_STOCKS = ["need", "population"]


def _check_level(group_type: str) -> TrendLevel:
    for known in TREND_LEVELS:
        if group_type == known:
            return known
    raise ParameterError(f"'group_type' must be one of {', '.join(TREND_LEVELS)} (got {group_type!r}).")


def _check_outcome(outcome: str) -> str:
    if outcome not in TREND_MEASURES:
        raise ParameterError(f"'outcome' must be one of {', '.join(TREND_MEASURES)} (got {outcome!r}).")
    return outcome


@dataclass(frozen=True, kw_only=True, eq=False)
class Trends(OutcomeResult):
    """Screening coverage, detection, reach and effective coverage per site and district, month by month.

    Tidy rows (``domain='trends'``, ``measure='proportion'``, all people
    only) carry a ``period`` column (``YYYY-MM``); ``group_type`` is
    ``site_month``, ``district_month`` or ``month`` (programme-wide).
    """

    kind: ClassVar[str] = "trends"

    measures: tuple[str, ...] = tuple(TREND_MEASURES)
    ci: str = "wilson"

    def settings(self) -> dict[str, Any]:
        return {
            "measures": {m: {"numerator": k, "denominator": n} for m, (k, n) in TREND_MEASURES.items()},
            "ci": self.ci,
        }

    def series(self, outcome: str, *, group_type: str = "site_month", group: str | None = None) -> pd.DataFrame:
        """Rows of one measure at one level (optionally one site or district), in month order."""
        _check_outcome(outcome)
        level = _check_level(group_type)
        rows = self.select(outcome, "proportion", domain="trends", group_type=level, group=group)
        return rows.sort_values(["group", "period"], kind="stable").reset_index(drop=True)

    def summary(self) -> str:
        """Per measure: the programme's first and last month, and the spread across districts in the last month."""
        months = sorted(set(self.table["period"].dropna()))
        if not months:
            return "Trends by site and district: no months in the panel."
        first, last = months[0], months[-1]
        n_sites = self.table.loc[self.table["group_type"] == "site_month", "group"].nunique()
        n_districts = self.table.loc[self.table["group_type"] == "district_month", "group"].nunique()
        lines = [
            f"Trends by site and district, {first} to {last}: {n_sites} sites, {n_districts} districts, "
            f"all people ({level_text(self.level)} intervals)"
        ]
        for outcome in self.measures:
            programme = self.series(outcome, group_type="month").set_index("period")["estimate"]
            start = pct(float(programme.get(first, np.nan)))
            end = pct(float(programme.get(last, np.nan)))
            line = f"  {_LABELS[outcome]}: programme {start} in {first}, {end} in {last}"
            districts = self.series(outcome, group_type="district_month")
            at_end = districts.loc[districts["period"] == last, "estimate"].dropna()
            if len(at_end) >= 2:
                line += f"; districts in {last} from {pct(float(at_end.min()))} to {pct(float(at_end.max()))}"
            lines.append(line)
        if self.notes:
            lines.append("Notes:")
            lines.extend(f"- {n}" for n in self.notes)
        return "\n".join(lines)

    def plot(self, outcome: str = "reach", group_type: str = "district_month") -> Chart:
        """One line per district (or site) over the months, with the programme as a dashed black line."""
        _check_outcome(outcome)
        level = _check_level(group_type)
        groups = self.series(outcome, group_type=level)
        if groups.empty:
            raise ParameterError(f"nothing to plot: no {level} rows for {outcome!r}.")
        programme = self.series(outcome, group_type="month")
        data = chart_data(pd.concat([groups, programme], ignore_index=True))
        data = data.assign(month=pd.to_datetime(data["period"] + "-01"))
        x = alt.X("month:T", title="Month", axis=alt.Axis(format="%b %Y"))
        y = alt.Y("estimate:Q", title=_LABELS[outcome], axis=alt.Axis(format="%"))
        tooltip = [
            alt.Tooltip("group:N", title="Group"),
            alt.Tooltip("period:N", title="Month"),
            alt.Tooltip("estimate:Q", format=".1%"),
            alt.Tooltip("numerator:Q", format=",.0f"),
            alt.Tooltip("denominator:Q", format=",.0f"),
        ]
        place = "site" if level == "site_month" else "district"
        lines = (
            alt.Chart(data)
            .transform_filter(alt.datum.group_type == level)
            .mark_line(opacity=0.6)
            .encode(x=x, y=y, color=alt.Color("group:N", title=place.capitalize()), tooltip=tooltip)
        )
        whole = (
            alt.Chart(data)
            .transform_filter(alt.datum.group_type == "month")
            .mark_line(color="black", strokeDash=[5, 3], strokeWidth=2)
            .encode(x=x, y=y, tooltip=tooltip)
        )
        return alt.layer(lines, whole).properties(title=f"{_LABELS[outcome]} by {place} and month")


def _pooled(totals: pd.DataFrame, level: TrendLevel) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(by_group, by_site)`` for one level, keyed by :data:`KEYS` with a unique place-and-month ``group``.

    ``by_site`` has one row per place, month and site (counts summed, stocks
    averaged over the site's rows that month); ``by_group`` sums it over sites.
    Both also hold ``place`` and ``period``.
    """
    column = _PLACE[level]
    place = totals[column].astype(object) if column is not None else pd.Series(ALL, index=totals.index, dtype=object)
    data = totals.assign(place=place).loc[place.notna()]
    site_keys = ["place", "period", "site_id"]
    grouped = data.groupby(site_keys, sort=True, dropna=False)
    by_site = pd.concat([grouped[_COUNTS].sum(min_count=1), grouped[_STOCKS].mean()], axis=1).reset_index()
    agg: dict[str, tuple[str, str]] = {c: (c, "sum") for c in [*_COUNTS, *_STOCKS]}
    agg["n_sites"] = ("site_id", "nunique")
    by_group = by_site.groupby(["place", "period"], sort=True).agg(**agg).reset_index()
    present = by_site.groupby(["place", "period"], sort=True)[[*_COUNTS, *_STOCKS]].count().to_numpy() > 0
    # min_count semantics, as aggregate_panel: a place-month whose every site is missing stays missing
    by_group[[*_COUNTS, *_STOCKS]] = by_group[[*_COUNTS, *_STOCKS]].where(present)
    for frame in (by_group, by_site):
        frame["group_type"] = level
        frame["group"] = frame["place"].astype(str) + "\x1f" + frame["period"].astype(str)
        frame["stratum_dimension"] = ALL
        frame["stratum"] = ALL
    return by_group, by_site


def compute_trends(
    panel: pd.DataFrame,
    *,
    level: float = DEFAULT_LEVEL,
    ci: CiMethod = "wilson",
) -> Trends:
    """Screening coverage, detection, reach and effective coverage for each site and district, month by month.

    Parameters
    ----------
    panel
        The analysis panel (columns :data:`knowdo.schema.PANEL_COLUMN_NAMES`). Not modified; only its
        total rows (``dimension = stratum = 'all'``) are read.
    level
        Confidence level.
    ci
        ``'wilson'`` or ``'cluster'`` (site-clustered ratio intervals for district and programme months
        pooling two or more sites), as in :func:`~knowdo.outcomes.cascade.compute_cascade`.

    Returns
    -------
    Trends

    Examples
    --------
    >>> import pandas as pd
    >>> from knowdo.schema import PANEL_COLUMN_NAMES
    >>> row = dict.fromkeys(PANEL_COLUMN_NAMES, 0)
    >>> row.update(site_id="s1", district_id="d1", period=pd.Timestamp("2024-01-01"), dimension="all",
    ...            stratum="all", population=1000, need=100.0, screened=400, positive=60, started=30, effective=9)
    >>> t = compute_trends(pd.DataFrame([row]))
    >>> t.series("reach", group="s1")[["period", "estimate"]].to_dict("records")
    [{'period': '2024-01', 'estimate': 0.3}]
    """
    check_panel(panel)
    if ci not in _CI_METHODS:
        raise ParameterError(f"'ci' must be one of {', '.join(_CI_METHODS)} (got {ci!r}).")
    z_value(level)
    totals = panel.loc[(panel["dimension"] == ALL) & (panel["stratum"] == ALL)]
    totals = totals[["site_id", "district_id", "period", *_COUNTS, *_STOCKS]]
    totals = totals.assign(period=period_label(totals["period"], "month").astype(object))
    totals = totals.loc[totals["period"].notna() & totals["site_id"].notna()]
    parts = []
    for trend_level in TREND_LEVELS:
        by_group, by_site = _pooled(totals, trend_level)
        for outcome, (k, n) in TREND_MEASURES.items():
            rows = proportion_rows(
                by_group,
                by_site,
                k=k,
                n=n,
                domain="trends",
                outcome=outcome,
                measure="proportion",
                level=level,
                ci=ci,
                estimated_denominator=n == "need",
                unit="people",
            )
            # programme rows are labelled by their month, as the cascade's monthly rows are
            place = by_group["period"] if trend_level == "month" else by_group["place"]
            rows["group"] = place.astype(str).to_numpy(dtype=object)
            rows["period"] = by_group["period"].astype(str).to_numpy(dtype=object)
            parts.append(rows)
    table = _sort(concat_tidy(parts))
    if "period" not in table.columns:
        table["period"] = pd.Series(dtype=object)
    table = table[list(TREND_COLUMNS)]
    notes = (
        NEED_NOTE,
        "Rows are for all people; site and district months are too small to cross with equity strata. Months "
        "before a site started the programme show its usual-care screening and treatment.",
        "Counts follow each person's positive screen to its month, so the latest months undercount reach and "
        "effective coverage: people screened then have not had time to start or finish treatment.",
    )
    return Trends(table=table, level=level, notes=notes, ci=ci)


def _sort(table: pd.DataFrame) -> pd.DataFrame:
    """Measure, then programme, district and site rows, then place and month."""
    if table.empty:
        return table.reset_index(drop=True)
    order = pd.DataFrame(
        {
            "o": table["outcome"].map({m: i for i, m in enumerate(TREND_MEASURES)}),
            "g": table["group_type"].map({"month": 0, "district_month": 1, "site_month": 2}),
            "p": table["group"].astype(str),
            "t": table["period"].astype(str),
        },
        index=table.index,
    )
    index = order.sort_values(["o", "g", "p", "t"], kind="stable").index
    return table.loc[index].reset_index(drop=True)
