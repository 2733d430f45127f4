"""The evidence dashboard's panels: a registry of result renderers, each producing disclosure-controlled views.

An *evidence panel* turns one result object of the core (an outcome result,
the equity report, an :class:`~knowdo.designs.effect.Effect`) into a
:class:`PanelView`: plain-language sentences, Vega-Lite charts and tables,
and the method and settings behind them. Charts pass through
:func:`knowdo.report.chart_spec` and tables through
:func:`knowdo.report.render_table`, the same disclosure rule as the report,
so a view holds no count under the project's threshold and no figure derived
from one. Views are computed by a background job after each load and kept in
the workspace database; pages only lay them out.

New panels plug in with :func:`register_panel`: a key, a title and a
function from :class:`AnalysisInputs` to a :class:`PanelView` (or ``None``
when the project's data cannot support it). The sentences here only put
published figures into words; every number comes from a result object.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import altair as alt
import pandas as pd

from knowdo.config import Project
from knowdo.designs.effect import Effect
from knowdo.designs.imputation import imputation_on_panel
from knowdo.equity import equity_report
from knowdo.errors import ParameterError
from knowdo.outcomes import OutcomeResult, OutcomeSet
from knowdo.report import ReportTable, chart_spec, render_table, suppress_frame
from knowdo.report import charts as report_charts
from knowdo.report.publish import jsonable
from knowdo.report.sections import KNOWN_SECTIONS
from knowdo.report.tables import RenderedTable

ALL = "all"
# Plain words for the interval methods named in the outcome tables' ``method`` column.
METHOD_WORDS = {
    "wilson": "Wilson score 95% interval for a proportion",
    "wilson_fixed_denominator": "Wilson score interval, treating the estimated number in need as fixed",
    "t": "t-based 95% interval for a mean",
    "cluster_ratio_sites": "ratio estimator with standard errors clustered by site",
    "count": "a count of people or contacts",
    "estimate": "an estimate from population and prevalence (number in need)",
    "sum": "a sum over sites and months",
    "sample_sd": "sample standard deviation",
}
TABLE_COLUMNS = ("outcome", "measure", "stratum_dimension", "stratum", "numerator", "denominator", "estimate",
                 "conf_low", "conf_high")


@dataclass(frozen=True)
class AnalysisInputs:
    """What a panel builder may read. ``episodes`` are person-level: pass them to core functions, never render them."""

    project: Project
    panel: pd.DataFrame
    outcomes: OutcomeSet | None = None
    episodes: pd.DataFrame | None = None
    results: Mapping[str, Any] = field(default_factory=dict)
    # Per-panel keyword settings passed to the core function (e.g. {"equity": {"draws": 200}}).
    options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class PanelView:
    """One panel as the dashboard shows it; every table and chart already disclosure-controlled."""

    key: str
    title: str
    intro: str
    sentences: tuple[str, ...]
    charts: tuple[dict[str, Any], ...]
    tables: tuple[dict[str, Any], ...]
    method: tuple[str, ...]
    settings: dict[str, str]
    notes: tuple[str, ...] = ()
    threshold: int = 11
    computed_at: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key, "title": self.title, "intro": self.intro, "sentences": list(self.sentences),
            "charts": list(self.charts), "tables": list(self.tables), "method": list(self.method),
            "settings": dict(self.settings), "notes": list(self.notes), "threshold": self.threshold,
            "computed_at": self.computed_at,
        }


Builder = Callable[[AnalysisInputs], PanelView | None]


@dataclass(frozen=True)
class EvidencePanel:
    """A registered panel: ``build`` turns the analysis inputs into a view."""

    key: str
    title: str
    build: Builder
    order: int = 100


PANELS: dict[str, EvidencePanel] = {}


def register_panel(panel: EvidencePanel) -> None:
    """Add (or replace) a panel in the dashboard registry."""
    PANELS[panel.key] = panel


def ordered_panels(keys: Sequence[str] | None = None) -> list[EvidencePanel]:
    chosen = [PANELS[k] for k in (keys if keys is not None else PANELS) if k in PANELS]
    return sorted(chosen, key=lambda p: p.order)


# ---------------------------------------------------------------------------- rendering helpers
def chart_view(
    chart: alt.TopLevelMixin | Mapping[str, Any], project: Project, *, key: str, index: int
) -> dict[str, Any]:
    """A chart as its suppressed Vega-Lite specification, with a title and a text description."""
    spec = chart_spec(chart, threshold=project.disclosure_threshold, rounding=project.disclosure_rounding)
    title = spec.get("title")
    if isinstance(title, Mapping):
        title = title.get("text")
    if isinstance(title, list):
        title = " ".join(str(t) for t in title)
    text = str(title or "Chart")
    return {"id": f"chart-{key}-{index}", "title": text,
            "description": str(spec.get("description") or f"Chart: {text}. The table below gives its figures."),
            "spec": spec}


def table_view(frame: pd.DataFrame, caption: str, project: Project, *, note: str = "",
               count_columns: tuple[str, ...] | None = None) -> dict[str, Any]:
    """A table passed through the report's disclosure rule and cell formatting."""
    rendered: RenderedTable = render_table(
        ReportTable(frame.reset_index(drop=True), caption, count_columns=count_columns, note=note),
        threshold=project.disclosure_threshold, rounding=project.disclosure_rounding)
    return {
        "caption": rendered.caption, "headers": list(rendered.headers), "numeric": list(rendered.numeric),
        "rows": [[[c.text, c.suppressed] for c in row] for row in rendered.rows], "total_rows": rendered.total_rows,
        "folded": rendered.folded, "omitted": rendered.omitted, "note": rendered.note,
        "any_suppressed": rendered.any_suppressed,
    }


def settings_text(settings: Mapping[str, Any]) -> dict[str, str]:
    out = {}
    for name, value in settings.items():
        value = jsonable(value) if not isinstance(value, list | tuple | Mapping) else value
        if isinstance(value, list | tuple):
            value = ", ".join(str(v) for v in value)
        elif isinstance(value, Mapping):
            value = "; ".join(f"{k}: {v}" for k, v in value.items())
        elif isinstance(value, float):
            value = f"{value:.4g}"
        out[str(name).replace("_", " ")] = str(value)
    return out


def published(frame: pd.DataFrame, project: Project) -> pd.DataFrame:
    """``frame`` after the disclosure rule: the only numbers a sentence may quote."""
    return suppress_frame(frame, threshold=project.disclosure_threshold, rounding=project.disclosure_rounding).frame


WITHHELD = "a share withheld for privacy (too few people)"


def share(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)) or pd.isna(value):
        return WITHHELD
    return f"{100 * float(value):.1f}%"


def number(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)) or pd.isna(value):
        return "withheld for privacy"
    value = float(value)
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.{digits}f}"


def interval(row: Mapping[Any, Any], percent: bool) -> str:
    low, high = row.get("conf_low"), row.get("conf_high")
    if low is None or high is None or pd.isna(low) or pd.isna(high):
        return ""
    fmt = share if percent else number
    return f" (95% CI {fmt(low)} to {fmt(high)})"


ROW_KEYS = ("domain", "outcome", "measure", "group_type", "group", "stratum_dimension", "stratum", "period")


def protected_frame(result: OutcomeResult, project: Project) -> pd.DataFrame:
    """The result's whole tidy table after primary and complementary suppression, done once.

    Every view cuts its tables, charts and sentences from this frame, so a
    count hidden to protect a small cell in one view (a stratum, a site) is
    hidden in every other view too: what one view shows cannot undo what
    another withholds.
    """
    return suppress_frame(result.to_frame(), threshold=project.disclosure_threshold,
                          rounding=project.disclosure_rounding).frame


def protect_like(rows: pd.DataFrame, protected: pd.DataFrame) -> pd.DataFrame:
    """``rows`` (a result's own cut, e.g. its headlines) with the blanks of the protected whole table."""
    keys = [k for k in ROW_KEYS if k in rows.columns and k in protected.columns]
    flags = protected[[*keys, "suppressed"]].drop_duplicates(keys)
    out = rows.drop(columns=["suppressed"], errors="ignore").merge(flags, on=keys, how="left")
    hidden = out["suppressed"].fillna(False).astype(bool)
    for column in ("numerator", "denominator", "n", "count", "estimate", "conf_low", "conf_high", "std_error"):
        if column in out.columns:
            out[column] = pd.to_numeric(out[column], errors="coerce").where(~hidden)
    return out.assign(suppressed=hidden.to_numpy())


def _overall(t: pd.DataFrame) -> pd.DataFrame:
    return t[(t["group_type"] == "overall") & (t["stratum_dimension"] == ALL)].reset_index(drop=True)


def _by_stratum(t: pd.DataFrame, measures: Sequence[tuple[str, str]]) -> pd.DataFrame:
    keep = pd.Series(False, index=t.index)
    for outcome, measure in measures:
        keep |= (t["outcome"] == outcome) & (t["measure"] == measure)
    rows = t[keep & (t["group_type"] == "overall") & (t["stratum_dimension"] != ALL)]
    return rows.reset_index(drop=True)


def _columns(frame: pd.DataFrame) -> pd.DataFrame:
    # The suppressed flag travels with the cut so the table keeps every blank of the protected whole table.
    return frame[[c for c in (*TABLE_COLUMNS, "suppressed") if c in frame.columns]]


def _method_lines(result: OutcomeResult, project: Project) -> tuple[str, ...]:
    methods = [m for m in dict.fromkeys(result.to_frame()["method"].astype(str)) if m and m != "nan"]
    lines = [f"{m}: {METHOD_WORDS.get(m, m.replace('_', ' '))}" for m in methods]
    lines.append(f"Confidence level {result.level:.0%}; counts from 1 to {project.disclosure_threshold - 1} and "
                 "every figure derived from them are withheld before anything is shown.")
    return tuple(lines)


def outcome_view(key: str, result: OutcomeResult, inputs: AnalysisInputs, *, sentences: Sequence[str],
                 tables: Sequence[dict[str, Any]], chart: alt.TopLevelMixin | None = None) -> PanelView:
    """An outcome result as a panel; ``chart`` defaults to the result's own ``plot()``."""
    project = inputs.project
    title, intro = KNOWN_SECTIONS.get(key, (key.replace("_", " ").capitalize(), ""))
    if chart is None:
        chart = result.plot()  # type: ignore[attr-defined]  # every concrete outcome result draws itself
    return PanelView(
        key=key, title=title, intro=intro, sentences=tuple(sentences),
        charts=(chart_view(chart, project, key=key, index=1),), tables=tuple(tables),
        method=_method_lines(result, project), settings=settings_text(result.settings()), notes=tuple(result.notes),
        threshold=project.disclosure_threshold, computed_at=_now(),
    )


def _report_chart(builder: Callable[..., alt.TopLevelMixin], rows: pd.DataFrame,
                  project: Project) -> alt.TopLevelMixin | None:
    """The report's chart for these rows (with its equity-dimension dropdown), or None to fall back to plot()."""
    try:
        return builder(rows, threshold=project.disclosure_threshold, rounding=project.disclosure_rounding)
    except ParameterError:
        return None


def _now() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()


# ---------------------------------------------------------------------------- the built-in panels
def cascade_panel(inputs: AnalysisInputs) -> PanelView | None:
    if inputs.outcomes is None:
        return None
    result, project = inputs.outcomes.cascade, inputs.project
    t = protected_frame(result, project)
    overall = _overall(t)
    shown = published(overall, project)
    cumulative = shown[shown["measure"] == "cumulative"].set_index("outcome")
    need = published(overall[(overall["outcome"] == "need") & (overall["measure"] == "count")], project)

    def stage(name: str) -> str:
        return share(cumulative["estimate"].get(name)) if name in cumulative.index else "not available"

    need_text = number(need["estimate"].iloc[0], 0) if len(need) else "an unknown number of"
    sentence = (f"Of an estimated {need_text} people in need of care for depression, {stage('detected')} were "
                f"detected by screening, {stage('started')} started treatment, {stage('adequate')} received an "
                f"adequate course and {stage('effective')} got better (effective coverage).")
    headline = overall[overall["measure"].isin(["cumulative", "conditional"])]
    strata = _by_stratum(t, [("started", "cumulative"), ("effective", "cumulative")])
    tables = [table_view(_columns(headline), "Care cascade: all people, whole period", project)]
    if len(strata):
        tables.append(table_view(_columns(strata), "Care cascade by equity stratum (share of people in need)",
                                 project))
    cumulative_rows = t[(t["group_type"] == "overall") & (t["measure"] == "cumulative")]
    chart = _report_chart(report_charts.cascade_funnel, cumulative_rows, project)
    return outcome_view("cascade", result, inputs, sentences=[sentence], tables=tables, chart=chart)


def reaim_panel(inputs: AnalysisInputs) -> PanelView | None:
    if inputs.outcomes is None:
        return None
    result, project = inputs.outcomes.reaim, inputs.project
    t = protected_frame(result, project)
    heads = protect_like(result.headlines(), t)
    shown = published(heads, project)
    sentences = []
    for row in shown.to_dict(orient="records"):
        percent = str(row.get("measure")) in {"proportion", "of_rolled_out", "of_all_sites"}
        value = share(row.get("estimate")) if percent else number(row.get("estimate"))
        ci = interval(row, percent) if row.get("estimate") is not None and not pd.isna(row.get("estimate")) else ""
        sentences.append(f"{row.get('label', row.get('outcome'))}: {value}{ci}.")
    strata = _by_stratum(t, [("reach", "proportion")])
    table = heads[[c for c in ("label", *TABLE_COLUMNS[4:], "suppressed") if c in heads.columns]]
    tables = [table_view(table, "RE-AIM headline figures: all people, whole period", project)]
    if len(strata):
        tables.append(table_view(_columns(strata), "Reach by equity stratum", project))
    wanted = set(zip(heads["outcome"], heads["measure"], strict=True))
    keys = pd.Series(list(zip(t["outcome"], t["measure"], strict=True)), index=t.index)
    chart = _report_chart(report_charts.reaim_panel, t[(t["group_type"] == "overall") & keys.isin(wanted)], project)
    return outcome_view("reaim", result, inputs, sentences=sentences[:5], tables=tables, chart=chart)


def proctor_panel(inputs: AnalysisInputs) -> PanelView | None:
    if inputs.outcomes is None:
        return None
    result, project = inputs.outcomes.proctor, inputs.project
    overall = _overall(protected_frame(result, project))
    sentences = []
    for row in published(overall, project).to_dict(orient="records"):
        percent = 0 <= float(row.get("estimate") or 0) <= 1 and row.get("measure") in {
            "providers", "sites", "patients", "proportion"}
        value = share(row.get("estimate")) if percent else number(row.get("estimate"))
        label = f"{str(row['outcome']).replace('_', ' ').capitalize()} ({str(row['measure']).replace('_', ' ')})"
        sentences.append(f"{label}: {value}.")
    tables = [table_view(_columns(overall), "Implementation outcomes: all sites, whole period", project)]
    return outcome_view("proctor", result, inputs, sentences=sentences[:4], tables=tables)


def perceptions_panel(inputs: AnalysisInputs) -> PanelView | None:
    if inputs.outcomes is None or inputs.outcomes.perceptions.table.empty:
        return None
    result, project = inputs.outcomes.perceptions, inputs.project
    overall = _overall(protected_frame(result, project))
    means = published(overall[overall["measure"] == "mean"], project)
    names = {"AIM": "acceptability", "IAM": "appropriateness", "FIM": "feasibility"}
    sentences = [f"Providers' mean {names.get(str(r['outcome']), r['outcome'])} score ({r['outcome']}) was "
                 f"{number(r.get('estimate'))} on a 1 to 5 scale{interval(r, False)}."
                 for r in means.to_dict(orient="records")]
    tables = [table_view(_columns(overall[overall["measure"] != "sd"]), "Provider perceptions: all providers",
                         project)]
    return outcome_view("perceptions", result, inputs, sentences=sentences, tables=tables)


def equity_panel(inputs: AnalysisInputs) -> PanelView | None:
    """WHO HEAT measures, subgroup estimates and changes after rollout (already protected by the equity section)."""
    project = inputs.project
    if not project.strata:
        return None
    report = equity_report(inputs.panel, project, **dict(inputs.options.get("equity", {})))
    charts = report.charts()[:3]
    measures = report.heat.tidy()
    tables = []
    if len(measures):
        keep = [c for c in ("indicator_name", "dimension", "date", "measure", "estimate", "conf_low", "conf_high")
                if c in measures.columns]
        tables.append(table_view(measures[keep] if keep else measures, "Summary measures of inequality", project))
    latest = report.subgroups
    if len(latest) and "date" in latest.columns:
        latest = latest[latest["date"] == latest["date"].max()]
        keep = [c for c in ("indicator_name", "dimension", "subgroup", "numerator", "denominator", "estimate",
                            "conf_low", "conf_high") if c in latest.columns]
        tables.append(table_view(latest[keep], "Subgroup estimates, latest period", project))
    return PanelView(
        key="equity", title="Equity: who is left behind",
        intro=("Each indicator is compared across the project's equity strata (sex, age, place, wealth and others) "
               "with the WHO Health Equity Assessment Toolkit's summary measures of inequality."),
        sentences=tuple(report.sentences()[:6]),
        charts=tuple(chart_view(c, project, key="equity", index=i) for i, c in enumerate(charts, start=1)),
        tables=tuple(tables),
        method=("WHO HEAT summary measures (difference, ratio, slope and relative index of inequality, population "
                "attributable fraction) with simulation intervals.",
                "Subgroup tables pass complementary suppression with an audit that no hidden cell can be solved "
                "back; a summary measure is withheld when a subgroup it summarises was hidden."),
        settings=settings_text(report.settings), notes=tuple(report.notes),
        threshold=project.disclosure_threshold, computed_at=_now(),
    )


def effect_view(effect: Effect, project: Project, *, key: str, title: str, intro: str) -> PanelView:
    """Any design's :class:`Effect`: the estimate in words, its chart, its tables, its assumptions."""
    pct = round(effect.level * 100)
    sentence = (f"{effect.estimand}: {number(effect.estimate)} ({pct}% CI {number(effect.conf_low)} to "
                f"{number(effect.conf_high)}).")
    tables = [table_view(effect.tidy().head(1), "Headline estimate", project)]
    if effect.strata is not None and len(effect.strata):
        tables.append(table_view(effect.strata, "Estimate by equity stratum", project))
    diagnostics = {k: v for k, v in effect.diagnostics.items() if isinstance(v, int | float | str | bool)}
    return PanelView(
        key=key, title=title, intro=intro, sentences=(sentence,),
        charts=(chart_view(effect.plot(), project, key=key, index=1),), tables=tuple(tables),
        method=(effect.method, *(f"Diagnostic {k}: {v}" for k, v in settings_text(diagnostics).items())),
        settings=settings_text(effect.settings), notes=tuple(f"Assumption to judge: {a}" for a in effect.assumptions),
        threshold=project.disclosure_threshold, computed_at=_now(),
    )


def effects_panel(inputs: AnalysisInputs) -> PanelView | None:
    """Staggered difference-in-differences of treatment starts per 1,000 adults (sites started at different times)."""
    panel = inputs.panel
    if "first_treated" not in panel.columns or panel["first_treated"].notna().sum() == 0:
        return None
    # As in the report: months whose treatment starts are not yet fully observed are left out.
    window = panel[pd.to_datetime(panel["period"]) <= pd.Timestamp(inputs.project.starts_complete_through)]
    effect = imputation_on_panel(window, "started", **dict(inputs.options.get("effects", {})))
    return effect_view(
        effect, inputs.project, key="effects", title="Effects: what the programme changed",
        intro=("Sites started the programme at different times, so sites not yet started serve as the comparison "
               "for those that had (staggered difference-in-differences, imputation estimator: each started site's "
               "months are compared with what its own earlier months and the other sites' trends predict). The "
               "figure is the average change in treatment starts per 1,000 adults per month in started sites."))


for _order, (_key, _title, _build) in enumerate((
    ("cascade", KNOWN_SECTIONS["cascade"][0], cascade_panel),
    ("reaim", KNOWN_SECTIONS["reaim"][0], reaim_panel),
    ("equity", "Equity: who is left behind", equity_panel),
    ("effects", "Effects: what the programme changed", effects_panel),
    ("proctor", KNOWN_SECTIONS["proctor"][0], proctor_panel),
    ("perceptions", KNOWN_SECTIONS["perceptions"][0], perceptions_panel),
)):
    register_panel(EvidencePanel(_key, _title, _build, order=_order * 10))
