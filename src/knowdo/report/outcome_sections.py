"""Report sections for the outcome results (cascade, trends, RE-AIM, Proctor, AIM/IAM/FIM).

Each result's tidy table (``domain, outcome, measure, group_type, group,
stratum_dimension, stratum, numerator, denominator, estimate, std_error,
conf_low, conf_high, method, unit, denominator_unit``) is cut into a few
readable tables (all people for the whole period; by equity stratum; by
district; by site) and drawn with the chart builders of
:mod:`knowdo.report.charts`. Monthly, quarterly and yearly rows are drawn but
not printed; every row is in ``results.json``. The trends (site × month and
district × month rows with a ``period`` column) are drawn as one line per
place and printed for the latest month only. The unit columns travel with
every table and chart so the disclosure rule can tell counts of people from
counts of sites, score sums and money; they are not printed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import altair as alt
import numpy as np
import pandas as pd

from knowdo.config import Project
from knowdo.equity.disclosure import DEFAULT_THRESHOLD
from knowdo.errors import ParameterError
from knowdo.outcomes import OutcomeResult, OutcomeSet
from knowdo.report import charts
from knowdo.report.publish import UNIT_KEYS, records_frame, suppress_frame
from knowdo.report.sections import (
    KNOWN_SECTIONS,
    META_KEYS,
    SECTION_ORDER,
    ReportSection,
    ReportTable,
    find_tables,
    humanise,
    section_texts,
    split_table,
)

ALL = "all"
CASCADE_STAGES = charts.CASCADE_STAGES
# How table captions name each section.
SHORT_TITLES = {
    "cascade": "Care cascade",
    "reaim": "RE-AIM",
    "proctor": "Implementation outcomes",
    "perceptions": "Provider perceptions",
    "trends": "Trends",
}
# How trend rows are relabelled for the chart builders: place rows by their place, programme rows as overall.
TREND_LEVELS = {"district_month": "district", "site_month": "site"}
TREND_PROGRAMME = "month"
# The headline figure of each RE-AIM dimension, in order of preference: the first with an estimate is drawn.
REAIM_HEADLINES: dict[str, tuple[tuple[str, str, str], ...]] = {
    "reach": (("reach", "proportion", "people treated ÷ people in need"),),
    "effectiveness": (
        ("response", "proportion", "share responding (PHQ-9 halved)"),
        ("remission", "proportion", "share in remission"),
    ),
    "adoption": (
        ("adoption_settings", "of_rolled_out", "rolled-out sites delivering"),
        ("adoption_staff", "proportion", "trained staff delivering"),
    ),
    "implementation": (
        ("fidelity", "mean", "mean session fidelity"),
        ("dose_vs_planned", "ratio", "sessions ÷ planned dose"),
    ),
    "maintenance": (
        ("maintenance_settings", "proportion", "sites still delivering"),
        ("late_response", "proportion", "responding ≥6 months on"),
    ),
}
# AIM, IAM and FIM items are rated 1-5 (Weiner et al. 2017), so their means are drawn on that range.
SCALE_RANGE = (1.0, 5.0)
# Measures that are totals or spreads rather than headline estimates; left out of the charts.
NOT_CHARTED = frozenset({"count", "total", "sd", "eligible", "participants"})
PROPORTION_MEASURES = frozenset({"proportion", "cumulative", "conditional", "of_rolled_out", "of_all_sites"})
TABLE_COLUMNS = (
    "domain",
    "outcome",
    "measure",
    "group",
    "stratum_dimension",
    "stratum",
    "numerator",
    "denominator",
    "estimate",
    "conf_low",
    "conf_high",
)


def outcome_sections(outcomes: OutcomeSet, project: Project) -> list[ReportSection]:
    """The report sections for a project's outcome results, in reading order (:data:`SECTION_ORDER` first).

    Examples
    --------
    >>> sections = outcome_sections(compute_outcomes(...), project)  # doctest: +SKIP
    >>> [s.key for s in sections]  # doctest: +SKIP
    ['cascade', 'trends', 'reaim', 'proctor', 'perceptions']
    """
    threshold, rounding = project.disclosure_threshold, project.disclosure_rounding
    results: Mapping[str, OutcomeResult] = outcomes.results()
    keys = [k for k in SECTION_ORDER if k in results] + [k for k in results if k not in SECTION_ORDER]
    return [
        tidy_section(key, results[key].to_frame(), notes=results[key].notes, threshold=threshold, rounding=rounding)
        for key in keys
    ]


def sections_from_results(
    results: Mapping[str, Any], *, threshold: int = DEFAULT_THRESHOLD, rounding: int | None = None
) -> list[ReportSection]:
    """Derive the report sections from a results dictionary alone (e.g. a saved ``results.json``).

    Known sections (cascade, RE-AIM, Proctor outcomes, perceptions) come first,
    then any other top-level section. A section holding tidy outcome rows
    (``{"rows": [...], "notes": [...]}``, as ``to_dict()`` writes them, or a
    bare list of such rows) is laid out like :func:`outcome_sections`. Any
    other section shows its records as tables (one row per key for a mapping
    of records), its ``summary`` as the introduction and its ``notes`` as
    notes, with small multiples when the records carry ``outcome`` and
    ``estimate``. Suppression is applied when the report is built;
    ``threshold`` and ``rounding`` here are those the chart builders apply.
    """
    keys = [k for k in SECTION_ORDER if k in results]
    keys += [k for k in results if k not in keys and k not in META_KEYS]
    sections = []
    for key in keys:
        content = results[key]
        texts = section_texts(content)
        summary = texts.pop("intro", "")
        tidy = _tidy_rows(content)
        if tidy is not None:
            section = tidy_section(key, tidy, notes=tuple(texts.values()), threshold=threshold, rounding=rounding)
            rest = {k: v for k, v in content.items() if k != "rows"} if isinstance(content, Mapping) else {}
            extra = [t for caption, f in find_tables(rest, section.title) for t in split_table(f, caption)]
            sections.append(
                ReportSection(
                    title=section.title,
                    intro_text=" ".join(t for t in (section.intro_text, summary) if t),
                    tables=[*section.tables, *extra],
                    charts=section.charts,
                    notes=section.notes,
                    key=key,
                )
            )
            continue
        title, intro = KNOWN_SECTIONS.get(key, (humanise(key), ""))
        found = find_tables(content, title)
        tables = [t for caption, frame in found for t in split_table(frame, caption)]
        tidyish = [f for _, f in found if {"outcome", "estimate"} <= set(f.columns)]
        built = []
        if tidyish:
            rows = pd.concat(tidyish, ignore_index=True, sort=False)
            with contextlib.suppress(ParameterError):
                built.append(charts.small_multiples(rows, title=title, threshold=threshold, rounding=rounding))
        sections.append(
            ReportSection(
                title=title,
                intro_text=" ".join(t for t in (intro, summary) if t),
                tables=tables,
                charts=built,
                notes=tuple(texts.values()),
                key=key,
            )
        )
    return sections


def _tidy_rows(content: Any) -> pd.DataFrame | None:
    """The tidy outcome rows of a section, when it holds them."""
    rows = content.get("rows") if isinstance(content, Mapping) else content
    if not isinstance(rows, list | tuple) or not rows or not all(isinstance(r, Mapping) for r in rows):
        return None
    frame = records_frame(rows)
    if {"outcome", "estimate", "group_type"} <= set(frame.columns):
        return frame
    return None


def tidy_section(
    key: str,
    frame: pd.DataFrame,
    *,
    notes: Sequence[str] = (),
    threshold: int,
    rounding: int | None = None,
) -> ReportSection:
    """One report section from one result's tidy table.

    ``key`` picks the charts: ``cascade`` (funnel, monthly trend, districts and
    sites compared), ``trends`` (each district's and each site's months, one
    highlighted), ``reaim`` (five-dimension panel, reach gaps, monthly trend,
    districts), ``proctor`` and ``perceptions`` (small multiples, districts);
    any other key gets small multiples.
    """
    title, intro = KNOWN_SECTIONS.get(key, (key.replace("_", " ").capitalize(), ""))
    data = _normalise(frame)
    builders = _chart_builders(key, data, threshold=threshold, rounding=rounding)
    built: list[alt.TopLevelMixin] = []
    for build in builders:
        try:
            built.append(build())
        except ParameterError:
            # Results without the rows a chart needs (e.g. no strata, no months) keep their tables.
            continue
    return ReportSection(
        title=title,
        intro_text=intro,
        tables=_tables(key, title, data),
        charts=built,
        notes=tuple(notes),
        key=key,
    )


def _normalise(frame: pd.DataFrame) -> pd.DataFrame:
    data = frame.copy()
    for column in ("domain", "measure", "group_type", "group", "stratum_dimension", "stratum"):
        if column not in data.columns:
            data[column] = ALL if column in ("group", "stratum_dimension", "stratum") else ""
        data[column] = data[column].astype(str)
    if "group_type" in frame.columns:
        data["group_type"] = data["group_type"].replace({"": "overall"})
    return data


def _chart_builders(
    key: str, data: pd.DataFrame, *, threshold: int, rounding: int | None
) -> list[Callable[[], alt.TopLevelMixin]]:
    opts: dict[str, Any] = {"threshold": threshold, "rounding": rounding}
    overall = data[data["group_type"] == "overall"]
    if key == "trends":
        return [
            lambda: charts.trend_chart(
                _trend_rows(data, "district_month"),
                group_type="district",
                title="Districts month by month",
                **opts,
            ),
            lambda: charts.trend_chart(
                _trend_rows(data, "site_month"), group_type="site", title="Sites month by month", **opts
            ),
        ]
    if key == "cascade":
        cumulative = data[data["measure"] == "cumulative"]
        funnel = _with_need_rows(cumulative[cumulative["group_type"] == "overall"])
        stages = [s for s in CASCADE_STAGES if s != "need"]
        places = cumulative[cumulative["group_type"].isin(["overall", "district", "site"])]
        return [
            lambda: charts.cascade_funnel(funnel, **opts),
            lambda: charts.monthly_trend(
                cumulative, outcomes=stages, title="Share of people in need reaching each stage, by month", **opts
            ),
            lambda: charts.group_comparison(
                places, group_type="district", outcomes=stages, title="Districts compared", **opts
            ),
            lambda: charts.group_comparison(places, group_type="site", outcomes=stages, title="Sites compared", **opts),
        ]
    if key == "reaim":
        visible = suppress_frame(data, threshold=threshold, rounding=rounding).frame
        headline, subtitles = _reaim_headlines(data, visible)
        proportions = data[(data["measure"] == "proportion") & (data["domain"].isin(["reach", "effectiveness"]))]
        reach = overall[(overall["outcome"] == "reach") & (overall["measure"] == "proportion")]
        return [
            lambda: charts.reaim_panel(
                headline[headline["group_type"] == "overall"],
                dimensions=list(REAIM_HEADLINES),
                subtitles=subtitles,
                title="RE-AIM at a glance",
                **opts,
            ),
            lambda: charts.reach_gaps(reach, outcome="reach", title="Reach by equity stratum", **opts),
            lambda: charts.monthly_trend(proportions, title="Reach and effectiveness by month", **opts),
            lambda: charts.group_comparison(
                proportions, group_type="district", title="Reach and effectiveness by district", **opts
            ),
        ]
    heading = KNOWN_SECTIONS.get(key, (key.replace("_", " ").capitalize(), ""))[0]
    if key == "perceptions":
        means = data[data["measure"] == "mean"]
        shares = data[data["measure"] == "share_agree_informal"]
        return [
            lambda: charts.small_multiples(
                means[means["group_type"] == "overall"],
                title="Mean scale scores (1 = completely disagree, 5 = completely agree)",
                value_domain=SCALE_RANGE,
                **opts,
            ),
            lambda: charts.group_comparison(
                shares, group_type="district", title="Share agreeing (score ≥ 4), by district", **opts
            ),
        ]
    charted = _measure_labels(data[~data["measure"].isin(NOT_CHARTED)])
    builders: list[Callable[[], alt.TopLevelMixin]] = [
        lambda: charts.small_multiples(charted[charted["group_type"] == "overall"], title=heading, **opts)
    ]
    shares = charted[_proportion_rows(charted)]
    builders.append(
        lambda: charts.group_comparison(shares, group_type="district", title=f"{heading}: districts compared", **opts)
    )
    return builders


def _trend_rows(data: pd.DataFrame, level: str) -> pd.DataFrame:
    """One level's trend rows labelled as :func:`~knowdo.report.charts.trend_chart` reads them.

    ``site_month`` rows become ``site`` rows (``district_month``: ``district``)
    and the programme's monthly rows become the overall line.
    """
    if "period" not in data.columns:
        raise ParameterError("trend rows need a 'period' column holding their month.")
    places = data[data["group_type"] == level].assign(group_type=TREND_LEVELS[level])
    programme = data[data["group_type"] == TREND_PROGRAMME].assign(group_type="overall", group=ALL)
    return pd.concat([places, programme], ignore_index=True)


def _trend_tables(title: str, data: pd.DataFrame) -> list[ReportTable]:
    """The latest month of each district and each site (every month is in ``results.json``)."""
    if "period" not in data.columns:
        return []
    out = []
    for level, place in TREND_LEVELS.items():
        part = data[data["group_type"] == level]
        if part.empty:
            continue
        latest = str(part["period"].astype(str).max())
        part = part[part["period"].astype(str) == latest]
        columns = [c for c in (*TABLE_COLUMNS, *UNIT_KEYS) if c in part.columns]
        columns = [c for c in columns if c not in ("domain", "measure", "stratum_dimension", "stratum")]
        caption = f"{title}: by {place}, {_month_name(latest)}"
        out.append(ReportTable(part[columns].reset_index(drop=True), caption, hidden_columns=UNIT_KEYS))
    return out


def _month_name(label: str) -> str:
    month = pd.to_datetime(label, format="%Y-%m", errors="coerce")
    return label if pd.isna(month) else month.strftime("%B %Y")


def _with_need_rows(cumulative: pd.DataFrame) -> pd.DataFrame:
    """Add a 100% 'need' bar per stratum (the funnel's first step) to the cumulative shares."""
    if cumulative.empty:
        return cumulative
    keys = ["group_type", "group", "stratum_dimension", "stratum"]
    need = cumulative.drop_duplicates(keys).assign(
        outcome="need", measure="cumulative", numerator=np.nan, estimate=1.0, conf_low=np.nan, conf_high=np.nan
    )
    return pd.concat([need, cumulative], ignore_index=True)


def _reaim_headlines(data: pd.DataFrame, visible: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, str]]:
    """The headline rows of each RE-AIM dimension, relabelled by dimension, and what each measures.

    A dimension's first candidate whose overall estimate survives suppression (in ``visible``) is used.
    """
    parts = []
    subtitles: dict[str, str] = {}
    overall = visible[(visible["group_type"] == "overall") & (visible["stratum_dimension"] == ALL)]
    for dimension, options in REAIM_HEADLINES.items():
        for outcome, measure, meaning in options:
            rows = data[(data["outcome"] == outcome) & (data["measure"] == measure)]
            has_estimate = overall[(overall["outcome"] == outcome) & (overall["measure"] == measure)]["estimate"]
            if not rows.empty and pd.to_numeric(has_estimate, errors="coerce").notna().any():
                # A mean of 0-1 fidelity scores (or a dose ratio) reads as a share: draw it as one.
                shown = rows.assign(outcome=dimension)
                values = pd.to_numeric(shown["estimate"], errors="coerce").dropna()
                if measure in ("mean", "ratio") and values.between(0, 1).all():
                    shown = shown.assign(measure="proportion")
                parts.append(shown)
                subtitles[dimension] = meaning
                break
    if not parts:
        return data.iloc[0:0], subtitles
    return pd.concat(parts, ignore_index=True), subtitles


def _measure_labels(data: pd.DataFrame) -> pd.DataFrame:
    """Name each outcome by its measure too when an outcome has several (``Adoption (sites)``)."""
    if data.empty:
        return data
    per_outcome = data.groupby("outcome")["measure"].nunique()
    several = set(per_outcome[per_outcome > 1].index)

    def label(row: pd.Series) -> str:
        name = str(row["outcome"])
        if name in several:
            return f"{name} ({str(row['measure']).replace('_', ' ')})"
        return name

    return data.assign(outcome=data.apply(label, axis=1))


def _proportion_rows(data: pd.DataFrame) -> pd.Series:
    values = data[["estimate", "conf_low", "conf_high"]].apply(pd.to_numeric, errors="coerce")
    within = ((values >= 0) & (values <= 1)) | values.isna()
    named = data["measure"].isin(PROPORTION_MEASURES) | data["measure"].isin({"sites", "providers", "patients"})
    return named & within.all(axis=1)


def _tables(key: str, title: str, data: pd.DataFrame) -> list[ReportTable]:
    title = SHORT_TITLES.get(key, title)
    if key == "trends":
        return _trend_tables(title, data)
    all_people = data["stratum_dimension"] == ALL
    overall = data["group_type"] == "overall"
    headline = ~data["measure"].isin(NOT_CHARTED)
    if key == "cascade":
        headline = data["measure"] == "cumulative"
    tables = [
        (data[overall & all_people], f"{title}: overall, whole period", ("group", "stratum_dimension", "stratum")),
        (data[overall & ~all_people & headline], f"{title}: by equity stratum, whole period", ("group",)),
        (data[(data["group_type"] == "district") & all_people & headline], f"{title}: by district", ("stratum",)),
        (data[(data["group_type"] == "site") & all_people & headline], f"{title}: by site", ("stratum",)),
    ]
    out = []
    for part, caption, drop in tables:
        if part.empty:
            continue
        columns = [c for c in TABLE_COLUMNS if c in part.columns and c not in drop]
        if key != "reaim":
            columns = [c for c in columns if c != "domain"]
        if "stratum" in drop:
            columns = [c for c in columns if c != "stratum_dimension"]
        columns += [c for c in UNIT_KEYS if c in part.columns]
        shown = part[columns].reset_index(drop=True)
        out.append(ReportTable(shown, caption, hidden_columns=UNIT_KEYS))
    return out
