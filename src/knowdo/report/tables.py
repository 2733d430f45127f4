"""Tables as the page shows them: suppressed, formatted, with suppressed cells marked.

:func:`render_table` passes a :class:`~knowdo.report.sections.ReportTable`
through the disclosure rule and turns every cell into text: counts with
thousands separators, proportions as percentages, the two confidence limits
as one "95% CI" column, and blanked cells as "<11" (a small count) or
"suppressed" (a figure derived from one, or another count in its row).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from knowdo.report.publish import SUPPRESSED, protected_counts, suppress_frame
from knowdo.report.sections import ReportTable

# Tables longer than this are left to results.json rather than printed in the page.
TABLE_ROW_LIMIT = 400
# Tables longer than this start folded (a <details> element the reader opens).
TABLE_FOLD_ROWS = 12
CHECKSUM_PREFIX = 12
HEADERS = {
    "outcome": "Outcome",
    "item": "Item",
    "group_type": "Level",
    "group": "Group",
    "stratum_dimension": "Equity dimension",
    "stratum": "Stratum",
    "numerator": "Numerator",
    "denominator": "Denominator",
    "estimate": "Estimate",
    "std_error": "Std. error",
    "measure": "Measure",
    "domain": "Dimension",
    "ci": "95% CI",
    "period": "Month",
    "n": "N",
}
# Names that read better spelled out.
NAMES = {"att": "Average effect on the treated (ATT)", "phq9": "PHQ-9", "smd": "Standardised difference"}
# Text columns whose snake_case values are shown with spaces.
LABEL_COLUMNS = frozenset({"domain", "outcome", "measure", "stratum_dimension", "group_type"})
# Plain words for the tidy tables' measure names.
MEASURE_NAMES = {
    "cumulative": "share of people in need",
    "conditional": "share of previous stage",
    "of_rolled_out": "share of rolled-out sites",
    "of_all_sites": "share of all sites",
    "per_participant": "per participant",
    "share_agree_informal": "share agreeing (score ≥ 4)",
    "smd": "standardised difference",
}
# Measures that are not proportions even when their value lies in 0..1.
NOT_PROPORTION = r"mean|sd|smd|ratio|count|total|eligible|participants|per_"


@dataclass(frozen=True)
class Cell:
    text: str
    numeric: bool = False
    suppressed: bool = False


@dataclass(frozen=True)
class RenderedTable:
    caption: str
    headers: list[str]
    numeric: list[bool]
    rows: list[list[Cell]]
    total_rows: int
    folded: bool
    omitted: bool
    note: str
    any_suppressed: bool


def render_table(table: ReportTable, *, threshold: int, rounding: int | None = None) -> RenderedTable:
    """Suppress and format one table for the page (cells as text, suppressed cells marked)."""
    frame = table.frame.reset_index(drop=True)
    result = suppress_frame(
        frame,
        threshold=threshold,
        rounding=rounding,
        count_columns=table.count_columns,
        dependent_columns=table.dependent_columns,
    )
    shown, blanked = result.frame, result.blanked
    # Only a count of people reads "<11" when blanked; a score sum or an amount blanked with its row reads "suppressed".
    protected = protected_counts(frame, [c for c in result.count_columns if c in frame.columns])
    total = len(shown)
    percent = _percent_rows(shown)
    hidden = set(table.hidden_columns)
    columns = [c for c in shown.columns if c != SUPPRESSED and not str(c).startswith("_") and c not in hidden]
    with_ci = "conf_low" in columns and "conf_high" in columns
    layout: list[str] = []
    for column in columns:
        if with_ci and column == "conf_high":
            continue
        layout.append("ci" if with_ci and column == "conf_low" else column)
    if with_ci and "estimate" in layout:
        layout.remove("ci")
        layout.insert(layout.index("estimate") + 1, "ci")
    numeric = [_is_numeric_column(shown, c) for c in layout]
    marker = f"<{threshold}"
    rows: list[list[Cell]] = []
    omitted = total > TABLE_ROW_LIMIT
    if not omitted:
        for i in range(total):
            row = []
            for column, is_num in zip(layout, numeric, strict=True):
                row.append(
                    _cell(
                        column,
                        i,
                        frame,
                        shown,
                        blanked,
                        counts=result.count_columns,
                        protected=protected,
                        percent=bool(percent[i]),
                        marker=marker,
                        threshold=threshold,
                        numeric=is_num,
                    )
                )
            rows.append(row)
    note = table.note
    if omitted:
        note = (note + " " if note else "") + (
            f"This table has {total:,} rows, too many to print here; its figures are in results.json, "
            "next to this page."
        )
    return RenderedTable(
        caption=table.caption,
        headers=[HEADERS.get(c, header_name(c)) for c in layout],
        numeric=numeric,
        rows=rows,
        total_rows=total,
        folded=total > TABLE_FOLD_ROWS,
        omitted=omitted,
        note=note,
        any_suppressed=bool(shown[SUPPRESSED].any()) if SUPPRESSED in shown.columns else False,
    )


def _cell(
    column: str,
    i: int,
    original: pd.DataFrame,
    shown: pd.DataFrame,
    blanked: pd.DataFrame,
    *,
    counts: Sequence[str],
    protected: pd.DataFrame,
    percent: bool,
    marker: str,
    threshold: int,
    numeric: bool,
) -> Cell:
    if column == "ci":
        if blanked.at[i, "conf_low"] or blanked.at[i, "conf_high"]:
            return Cell("suppressed", numeric=True, suppressed=True)
        low, high = shown.at[i, "conf_low"], shown.at[i, "conf_high"]
        if _missing(low) or _missing(high):
            return Cell("–", numeric=True)
        return Cell(f"{_number(low, percent)} to {_number(high, percent)}", numeric=True)
    if blanked.at[i, column]:
        if column in counts:
            count: Any = pd.to_numeric(pd.Series([original.at[i, column]]), errors="coerce").iloc[0]
            small = not _missing(count) and 0 < float(count) < threshold and bool(protected.at[i, column])
            return Cell(marker if small else "suppressed", numeric=True, suppressed=True)
        return Cell("suppressed", numeric=True, suppressed=True)
    value: Any = shown.at[i, column]
    if column in counts:
        return Cell("–" if _missing(value) else _plain_number(float(value)), numeric=True)
    if column in ("estimate", "std_error", "conf_low", "conf_high"):
        return Cell("–" if _missing(value) else _number(value, percent and column != "std_error"), numeric=True)
    if column == "measure" and isinstance(value, str) and value in MEASURE_NAMES:
        return Cell(MEASURE_NAMES[value], numeric=numeric)
    if column in LABEL_COLUMNS and isinstance(value, str):
        return Cell(value.replace("_", " "), numeric=numeric)
    return Cell(cell_text(value), numeric=numeric)


def provenance_table(provenance: Any) -> RenderedTable | None:
    """The provenance records as a table: source, file, checksum prefix, rows, loaded at."""
    rows = _provenance_rows(provenance)
    if not rows:
        return None
    fields = (
        ("Source", ("source", "table_name", "table", "name")),
        ("File", ("file", "path", "filename")),
        ("SHA-256 (first 12)", ("checksum", "sha256", "hash", "digest")),
        ("Rows", ("rows", "n_rows", "row_count")),
        ("Loaded at", ("loaded_at", "loaded", "timestamp", "time")),
    )
    numeric = [False, False, False, True, False]
    cells = []
    for record in rows:
        line = []
        for (label, aliases), is_num in zip(fields, numeric, strict=True):
            value = next((record[a] for a in aliases if a in record and record[a] is not None), None)
            text = cell_text(value)
            if label.startswith("SHA-256") and value is not None:
                digest = str(value).split(":", 1)[-1]
                text = digest[:CHECKSUM_PREFIX]
            elif label == "Loaded at" and isinstance(value, str):
                text = _timestamp(value)
            elif label == "File" and value is not None:
                text = Path(str(value)).name
            elif label == "Rows" and isinstance(value, int | float) and not isinstance(value, bool):
                text = f"{value:,.0f}"
            line.append(Cell(text, numeric=is_num))
        cells.append(line)
    return RenderedTable(
        caption="Data sources loaded for this report",
        headers=[label for label, _ in fields],
        numeric=numeric,
        rows=cells,
        total_rows=len(cells),
        folded=False,
        omitted=False,
        note=f"Checksums are the first {CHECKSUM_PREFIX} characters of each file's SHA-256 digest.",
        any_suppressed=False,
    )


def _provenance_rows(provenance: Any) -> list[Mapping[str, Any]]:
    """The loaded files, as records; when several loads are recorded, only the latest one's."""
    rows: list[Mapping[str, Any]] = []
    if isinstance(provenance, list | tuple):
        rows = [r for r in provenance if isinstance(r, Mapping)]
    elif isinstance(provenance, Mapping):
        lists = [v for v in provenance.values() if isinstance(v, list | tuple) and v]
        lists = [v for v in lists if all(isinstance(r, Mapping) for r in v)]
        if "loads" in provenance and provenance["loads"] in lists:
            rows = list(provenance["loads"])
        elif lists:
            rows = list(lists[0])
        elif provenance and all(isinstance(v, Mapping) for v in provenance.values()):
            rows = [{"source": k, **dict(v)} for k, v in provenance.items()]
    loads = [float(r["load_id"]) for r in rows if isinstance(r.get("load_id"), int | float)]
    if loads:
        latest = max(loads)
        rows = [r for r in rows if r.get("load_id") == latest]
    return rows


def _timestamp(value: str) -> str:
    """An ISO time stamp as ``2024-01-31 09:00:00`` (unchanged when it does not parse)."""
    try:
        return dt.datetime.fromisoformat(value).strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return value


def _percent_rows(frame: pd.DataFrame) -> np.ndarray:
    """Rows whose estimate is a proportion, shown as a percentage.

    A row qualifies when it has a denominator, its estimate and limits lie in
    0..1, and (when the table names its measure) the measure is not a mean,
    ratio, spread or count.
    """
    n = len(frame)
    if "estimate" not in frame.columns or "denominator" not in frame.columns:
        return np.zeros(n, dtype=bool)
    limits = [c for c in ("estimate", "conf_low", "conf_high") if c in frame.columns]
    values = frame[limits].apply(pd.to_numeric, errors="coerce")
    within = (((values >= 0) & (values <= 1)) | values.isna()).all(axis=1)
    denominator = pd.to_numeric(frame["denominator"], errors="coerce")
    has_denominator = denominator.gt(0) | frame.get(SUPPRESSED, pd.Series(False, index=frame.index)).astype(bool)
    if "measure" in frame.columns:
        kind = frame["measure"].astype(str).str.lower()
        eligible = ~kind.str.contains(NOT_PROPORTION, regex=True)
    else:
        eligible = pd.Series("numerator" in frame.columns, index=frame.index)
    return (within & has_denominator & eligible).to_numpy(dtype=bool)


def _is_numeric_column(frame: pd.DataFrame, column: str) -> bool:
    if column == "ci":
        return True
    return bool(pd.api.types.is_numeric_dtype(frame[column]) and not pd.api.types.is_bool_dtype(frame[column]))


def _missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _number(value: Any, percent: bool) -> str:
    number = float(value)
    if percent:
        return f"{number * 100:.1f}%"
    return _plain_number(number)


def _plain_number(number: float) -> str:
    if not math.isfinite(number):
        return "–"
    if number.is_integer() and abs(number) < 1e15:
        return f"{number:,.0f}"
    if abs(number) >= 100:
        return f"{number:,.0f}"
    if abs(number) >= 10:
        return f"{number:.1f}"
    if abs(number) >= 1:
        return f"{number:.2f}"
    return f"{number:.3f}"


def cell_text(value: Any) -> str:
    if _missing(value):
        return "–"
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, int | np.integer):
        return f"{int(value):,}"
    if isinstance(value, float | np.floating):
        return _plain_number(float(value))
    if isinstance(value, pd.Timestamp):
        return value.date().isoformat() if value == value.normalize() else value.isoformat()
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return ", ".join(cell_text(v) for v in value)
    if isinstance(value, Mapping):
        return "; ".join(f"{k}: {cell_text(v)}" for k, v in value.items())
    return str(value)


def header_name(name: str) -> str:
    if name.lower() in NAMES:
        return NAMES[name.lower()]
    text = name.replace("_", " ").strip()
    return text[:1].upper() + text[1:]
