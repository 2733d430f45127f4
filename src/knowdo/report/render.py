"""Write the self-contained HTML report and its ``results.json``.

The page works offline: the Vega, Vega-Lite and Vega-Embed JavaScript (from
``vl-convert-python``) is inlined once, each chart's Vega-Lite specification
is embedded as a JSON script block, and a content security policy forbids any
network request. Every table and every chart's data pass through small-cell
suppression first; suppressed cells read "<11" (for the project's threshold)
with a footnote explaining the rule.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd

from knowdo import __version__
from knowdo.config import Project
from knowdo.report.embed import (
    CHART_THEME,
    chart_spec,
    count_suppressed,
    javascript_bundle,
    json_for_script,
    script_safe,
)
from knowdo.report.outcome_sections import sections_from_results
from knowdo.report.publish import is_record_list, publishable_results
from knowdo.report.sections import ReportSection, ReportTable, find_tables
from knowdo.report.tables import RenderedTable, cell_text, header_name, provenance_table, render_table

TEMPLATE = "report.html.j2"

# Columns that hold a known true value, beside an ``estimate`` column, in a truth table.
TRUTH_COLUMNS = ("truth", "true_value", "true", "expected")
# Keys of the truth whose values are listed only in the folded part of the truth box.
DETAIL_KEYS = ("parameters", "settings")


@dataclass(frozen=True)
class ReportFiles:
    """Where the report was written."""

    html: Path
    json: Path

    @property
    def directory(self) -> Path:
        return self.html.parent


@dataclass(frozen=True)
class RenderedChart:
    element_id: str
    title: str
    description: str
    spec_json: str


@dataclass(frozen=True)
class TruthBox:
    intro: str
    comparisons: list[RenderedTable]
    headline: RenderedTable | None
    details: list[RenderedTable]


@dataclass(frozen=True)
class RenderedSection:
    anchor: str
    title: str
    intro: list[str]
    tables: list[RenderedTable]
    charts: list[RenderedChart]
    notes: list[str]


def build_report(
    project: Project,
    results: Mapping[str, Any],
    sections: Sequence[ReportSection] | None = None,
    out_dir: Path | None = None,
    *,
    generated_at: dt.datetime | None = None,
) -> ReportFiles:
    """Write ``index.html`` and ``results.json`` for a project's results.

    Parameters
    ----------
    project
        The project; its name, window and disclosure settings head the report.
    results
        JSON-serialisable results with the sections ``cascade``, ``reaim``,
        ``proctor``, ``perceptions`` and ``provenance`` (and optionally
        ``project`` and ``truth``), each holding tidy records.
    sections
        The ordered sections to show. ``None`` derives them from ``results``
        with :func:`~knowdo.report.sections_from_results`.
    out_dir
        Folder to write to; defaults to ``project.report_dir``.
    generated_at
        Time stamp printed in the header (defaults to now, UTC).

    Returns
    -------
    ReportFiles
        Paths of the HTML page and the JSON file.

    Examples
    --------
    >>> import datetime as dt, pathlib, tempfile
    >>> from knowdo.config import Project
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> p = Project(root=root, name="Demo", start=dt.date(2024, 1, 1), end=dt.date(2024, 12, 31), sources=(), strata=())
    >>> files = build_report(p, {"reaim": {"reach": {"numerator": 120, "denominator": 400, "estimate": 0.3}}})
    >>> files.html.name, files.json.name
    ('index.html', 'results.json')
    """
    threshold = project.disclosure_threshold
    rounding = project.disclosure_rounding
    out = Path(out_dir) if out_dir is not None else project.report_dir
    stamp = (generated_at or dt.datetime.now(dt.UTC)).replace(microsecond=0)
    if sections is None:
        sections = sections_from_results(results, threshold=threshold, rounding=rounding)
    counter = _Counter()
    rendered = [_render_section(s, threshold, rounding, counter) for s in sections]
    provenance = provenance_table(results.get("provenance"))
    truth = _truth_box(results.get("truth"), threshold, rounding)
    any_suppressed = any(t.any_suppressed for s in rendered for t in s.tables)
    if truth is not None:
        any_suppressed = any_suppressed or any(t.any_suppressed for t in (*truth.comparisons, *truth.details))
    context = {
        "project": project,
        "window": f"{_long_date(project.start)} to {_long_date(project.end)}",
        "generated_at": stamp.isoformat(),
        "generated_text": stamp.strftime("%d %B %Y, %H:%M %Z").strip(),
        "threshold": threshold,
        "rounding": rounding,
        "marker": f"<{threshold}",
        "sections": rendered,
        "provenance": provenance,
        "truth": truth,
        "any_suppressed": any_suppressed,
        "version": __version__,
        "vega_bundle": script_safe(javascript_bundle()),
        "chart_theme": json_for_script(CHART_THEME),
        "has_charts": any(s.charts for s in rendered),
    }
    html = _environment().get_template(TEMPLATE).render(**context)
    payload = publishable_results(results, threshold, rounding=rounding)
    payload.setdefault(
        "disclosure",
        {
            "threshold": threshold,
            "rounding": rounding,
            "rule": f"counts from 1 to {threshold - 1} are suppressed, with every estimate derived from them",
        },
    )
    out.mkdir(parents=True, exist_ok=True)
    html_path = out / "index.html"
    json_path = out / "results.json"
    html_path.write_text(html, encoding="utf-8")
    text = json.dumps(payload, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
    json_path.write_text(text + "\n", encoding="utf-8")
    return ReportFiles(html=html_path, json=json_path)


class _Counter:
    def __init__(self) -> None:
        self.charts = 0

    def next_chart(self) -> str:
        self.charts += 1
        return f"chart-{self.charts}"


def _render_section(section: ReportSection, threshold: int, rounding: int | None, counter: _Counter) -> RenderedSection:
    tables = []
    for i, table in enumerate(section.tables, start=1):
        if isinstance(table, pd.DataFrame):
            caption = str(table.attrs.get("caption") or f"{section.title}: table {i}")
            table = ReportTable(table, caption)
        tables.append(render_table(table, threshold=threshold, rounding=rounding))
    rendered_charts = []
    for chart in section.charts:
        spec = chart_spec(chart, threshold=threshold, rounding=rounding)
        title = _spec_title(spec) or section.title
        description = str(spec.get("description") or f"Chart: {title}")
        spec.setdefault("description", description)
        if count_suppressed(spec):
            description += (
                " Some groups or months are not drawn because their figures are suppressed to protect privacy."
            )
        rendered_charts.append(
            RenderedChart(
                element_id=counter.next_chart(),
                title=title,
                description=description,
                spec_json=json_for_script(spec),
            )
        )
    return RenderedSection(
        anchor=section.anchor,
        title=section.title,
        intro=_paragraphs(section.intro_text),
        tables=tables,
        charts=rendered_charts,
        notes=[n for n in section.notes if n],
    )


def _truth_box(truth: Any, threshold: int, rounding: int | None) -> TruthBox | None:
    """Lay out the known truth: comparisons first, headline values, then everything else folded."""
    if not isinstance(truth, Mapping) or not truth:
        return None
    intro = next((str(truth[k]) for k in ("description", "summary") if isinstance(truth.get(k), str)), "")
    comparisons: list[RenderedTable] = []
    others: list[RenderedTable] = []
    for caption, frame in find_tables(truth, "Known truth"):
        table = render_table(ReportTable(frame, caption), threshold=threshold, rounding=rounding)
        has_truth = any(c in frame.columns for c in TRUTH_COLUMNS)
        (comparisons if has_truth and "estimate" in frame.columns else others).append(table)
    headline_values = [
        (name, value)
        for key, item in truth.items()
        if key not in ("description", "summary", *DETAIL_KEYS)
        for name, value in _scalars({key: item})
    ]
    detail_values = [pair for key in DETAIL_KEYS for pair in _scalars(truth.get(key))]
    headline = _pairs_table(headline_values, "Headline values the data were generated from", threshold)
    parameters = _pairs_table(detail_values, "Generating parameters", threshold)
    details = [t for t in (parameters, *others) if t is not None]
    return TruthBox(intro=intro, comparisons=comparisons, headline=headline, details=details)


def _pairs_table(pairs: list[tuple[str, str]], caption: str, threshold: int) -> RenderedTable | None:
    if not pairs:
        return None
    frame = pd.DataFrame(pairs, columns=["item", "value"])
    return render_table(ReportTable(frame, caption), threshold=threshold)


def _scalars(value: Any, prefix: str = "") -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    if not isinstance(value, Mapping):
        return out
    for key, item in value.items():
        name = f"{prefix}{header_name(str(key))}"
        if isinstance(item, Mapping) and not is_record_list([item]):
            out.extend(_scalars(item, f"{name}: "))
        elif _is_scalar(item) or (isinstance(item, list | tuple) and all(_is_scalar(v) for v in item)):
            out.append((name, cell_text(item)))
    return out


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _spec_title(spec: Mapping[str, Any]) -> str:
    """The chart's title, with its subtitle when it has one (a caption should name what is plotted)."""
    title: Any = spec.get("title")
    subtitle: Any = None
    if isinstance(title, Mapping):
        subtitle = title.get("subtitle")
        title = title.get("text")
    text = _joined(title)
    extra = _joined(subtitle)
    return f"{text}: {extra}" if text and extra else text


def _joined(value: Any) -> str:
    if isinstance(value, list):
        return " ".join(str(t) for t in value)
    return str(value) if value else ""


def _paragraphs(text: str) -> list[str]:
    return [p.strip() for p in text.split("\n\n") if p.strip()]


def _long_date(day: dt.date) -> str:
    return f"{day.day} {day.strftime('%B %Y')}"


@functools.cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("knowdo.report", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"], default_for_string=True, default=True),
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
