"""Result objects and results dictionaries → a self-contained HTML report.

:func:`build_report` writes ``index.html`` (tables, interactive Vega-Lite
charts, provenance; works offline) and ``results.json`` (the same figures),
both after small-cell suppression. Chart builders for tidy outcome frames are
in :mod:`knowdo.report.charts`.
"""

from knowdo.report.charts import (
    cascade_funnel,
    group_comparison,
    monthly_trend,
    reach_gaps,
    reaim_panel,
    small_multiples,
    trend_chart,
)
from knowdo.report.embed import chart_spec
from knowdo.report.outcome_sections import outcome_sections, sections_from_results, tidy_section
from knowdo.report.publish import publishable_results, suppress_frame
from knowdo.report.render import ReportFiles, build_report
from knowdo.report.sections import ReportSection, ReportTable
from knowdo.report.tables import render_table

__all__ = [
    "ReportFiles",
    "ReportSection",
    "ReportTable",
    "build_report",
    "cascade_funnel",
    "chart_spec",
    "group_comparison",
    "monthly_trend",
    "outcome_sections",
    "publishable_results",
    "reach_gaps",
    "reaim_panel",
    "render_table",
    "sections_from_results",
    "small_multiples",
    "suppress_frame",
    "tidy_section",
    "trend_chart",
]
