"""What the report shows: sections of text, tables and charts.

A :class:`ReportSection` is the unit the renderer lays out. Callers with
result objects build sections themselves (tables from ``.to_frame()``, charts
from ``.plot()`` or :mod:`knowdo.report.charts`), or let
:mod:`knowdo.report.outcome_sections` build them. This module also holds the
helpers that read tables and text out of a results dictionary.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import altair as alt
import pandas as pd

from knowdo.report import charts
from knowdo.report.publish import is_record, records_frame

# Sections of the results dictionary that are not analysis sections.
META_KEYS = frozenset({"provenance", "project", "truth", "disclosure", "report"})
# Keys whose text is shown as a section's introduction or its notes.
INTRO_KEYS = ("summary", "intro", "description")
NOTE_KEYS = ("notes", "note", "caveats", "assumptions", "warnings", "method", "definitions")

KNOWN_SECTIONS: dict[str, tuple[str, str]] = {
    "cascade": (
        "Care cascade and effective coverage",
        "The cascade follows the people estimated to need care for depression through each step: being "
        "detected by screening, starting treatment, receiving an adequate number of sessions, and getting "
        "better (effective coverage). Each step is shown as a share of everyone in need, so the bars can "
        "only fall from left to right; the biggest drop marks the biggest gap to close.",
    ),
    "reaim": (
        "RE-AIM: reach, effectiveness, adoption, implementation, maintenance",
        "RE-AIM asks five questions of a programme: how many of the people who could benefit it reaches, "
        "whether it works for them, how many clinics and workers take it up, how faithfully it is delivered, "
        "and whether it lasts. Comparing groups of people shows who is being left behind.",
    ),
    "proctor": (
        "Implementation outcomes",
        "Implementation outcomes describe how the service is taken up and delivered, separately from whether "
        "it helps patients: adoption by sites and staff, fidelity to the protocol, penetration into the "
        "eligible population, cost and sustainability.",
    ),
    "perceptions": (
        "How providers see the intervention",
        "Providers rated the intervention on three four-item scales: acceptability (AIM), appropriateness "
        "(IAM) and feasibility (FIM). Scores run from 1 (completely disagree) to 5 (completely agree); a "
        "mean of 4 or more is commonly read as agreement.",
    ),
    "trends": (
        "Trends by site and district",
        "How screening coverage, detection, reach and effective coverage moved month by month in each site and "
        "each district, for all people. Pick a site or district to highlight it against the others (grey) and "
        "the programme as a whole (dashed). Each month counts that month's screens and treatment starts "
        "against the adults, or the people in need, living in the catchment, so monthly shares are far smaller "
        "than the whole-period coverage above. A single site's month holds few people, so many months are not "
        "drawn: their counts are too small to publish. The latest month's figures are in the tables below.",
    ),
    "changes": (
        "What changed since the last run",
        "What the latest load of the project's sources added, corrected or removed, table by table, from the "
        "store's change log.",
    ),
    "data_quality": (
        "Data quality",
        "Completeness, timeliness, outliers and internal consistency of the monthly facility counts, in the style "
        "of the WHO Data Quality Review and DHIS2.",
    ),
}
SECTION_ORDER = ("cascade", "trends", "reaim", "proctor", "perceptions")

TABLE_SPLIT_COLUMN = "group_type"


@dataclass(frozen=True)
class ReportTable:
    """A table to publish: the frame, its caption and which columns are counts.

    ``count_columns`` and ``dependent_columns`` default to the known names
    present in the frame (numerator, denominator, n, count and cascade counts;
    estimate, conf_low, conf_high, std_error). ``hidden_columns`` are read by
    the disclosure rule (for example what each count counts) but not printed.
    """

    frame: pd.DataFrame
    caption: str
    count_columns: tuple[str, ...] | None = None
    dependent_columns: tuple[str, ...] | None = None
    note: str = ""
    hidden_columns: tuple[str, ...] = ()


@dataclass(frozen=True)
class ReportSection:
    """One section of the report: a title, plain-language text, tables, charts and notes.

    ``tables`` accepts data frames (captioned from ``frame.attrs["caption"]``
    or numbered) or :class:`ReportTable`; ``charts`` accepts Altair charts or
    Vega-Lite specifications as dictionaries. Every table and chart is passed
    through small-cell suppression when the report is built.

    Examples
    --------
    >>> import pandas as pd
    >>> s = ReportSection("Reach", "Who the programme reaches.", tables=[pd.DataFrame({"n": [20]})])
    >>> s.anchor
    'reach'
    """

    title: str
    intro_text: str = ""
    tables: Sequence[pd.DataFrame | ReportTable] = ()
    charts: Sequence[alt.TopLevelMixin | Mapping[str, Any]] = ()
    notes: Sequence[str] = ()
    key: str = field(default="")

    @property
    def anchor(self) -> str:
        """The section's id in the page."""
        text = self.key or self.title
        slug = "".join(ch if ch.isalnum() else "-" for ch in text.lower()).strip("-")
        return "-".join(part for part in slug.split("-") if part) or "section"


def find_tables(content: Any, caption: str) -> list[tuple[str, pd.DataFrame]]:
    """Every table inside ``content``, with a caption built from where it was found.

    A list of mappings is a table; a mapping whose values are records (with a
    count) is a table with one row per key, in an ``item`` column.
    """
    out: list[tuple[str, pd.DataFrame]] = []
    if isinstance(content, pd.DataFrame):
        return [(caption, content)]
    if isinstance(content, list | tuple):
        if content and all(isinstance(v, Mapping) for v in content):
            return [(caption, records_frame(content))]
        return out
    if not isinstance(content, Mapping):
        return out
    if is_record(content):
        return [(caption, records_frame([content]))]
    records = {k: v for k, v in content.items() if is_record(v)}
    if records:
        rows = [{"item": humanise(k), **dict(v)} for k, v in records.items()]
        out.append((caption, records_frame(rows)))
    for key, value in content.items():
        if key in records or key in INTRO_KEYS or key in NOTE_KEYS:
            continue
        out.extend(find_tables(value, f"{caption}: {humanise(key)}"))
    return out


def split_table(frame: pd.DataFrame, caption: str) -> list[ReportTable]:
    """One table per level (overall, district, site) when a tidy table mixes them."""
    if TABLE_SPLIT_COLUMN not in frame.columns or frame[TABLE_SPLIT_COLUMN].nunique(dropna=False) <= 1:
        return [ReportTable(_tidy_columns(frame), caption)]
    tables = []
    for level, part in frame.groupby(TABLE_SPLIT_COLUMN, sort=False, dropna=False):
        where = "programme overall" if str(level).lower() in charts.OVERALL_VALUES else f"by {level}"
        tables.append(ReportTable(_tidy_columns(part.reset_index(drop=True)), f"{caption}, {where}"))
    return tables


def _tidy_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """Drop level/group columns that hold one overall value throughout (the caption says it)."""
    drop = []
    for column in ("group_type", "group"):
        if column in frame.columns and frame[column].nunique(dropna=False) == 1:
            value = str(frame[column].iloc[0]).lower()
            if value in charts.OVERALL_VALUES or column == "group_type":
                drop.append(column)
    return frame.drop(columns=drop)


def section_texts(content: Any) -> dict[str, str]:
    """The introduction (``intro``) and notes found at the top of a section."""
    if not isinstance(content, Mapping):
        return {}
    out: dict[str, str] = {}
    for key in INTRO_KEYS:
        if isinstance(content.get(key), str) and content[key].strip():
            out["intro"] = content[key].strip()
            break
    for key in NOTE_KEYS:
        value = content.get(key)
        if isinstance(value, str) and value.strip():
            out[key] = value.strip()
        elif isinstance(value, list | tuple):
            for i, item in enumerate(value):
                if isinstance(item, str) and item.strip():
                    out[f"{key}.{i}"] = item.strip()
        elif isinstance(value, Mapping):
            for name, item in value.items():
                if isinstance(item, str | int | float) and not isinstance(item, bool):
                    out[f"{key}.{name}"] = f"{humanise(name)}: {item}"
    return out


def humanise(name: Any) -> str:
    """A key as a heading: spaces for underscores, a capital first letter, framework acronyms kept."""
    text = str(name).replace("_", " ").strip()
    special = {"reaim": "RE-AIM", "aim": "AIM", "iam": "IAM", "fim": "FIM"}
    if text.lower() in special:
        return special[text.lower()]
    return text[:1].upper() + text[1:]
