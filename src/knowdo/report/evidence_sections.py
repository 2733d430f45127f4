"""Report sections for effects, equity, scale-up scenarios and the study plan.

Each function turns one finished result object into a :class:`ReportSection`:
the core computed everything; these only choose the tables, charts and words.
Tables still pass through small-cell suppression when the report is built.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from knowdo.complexity.section import ScenarioReport
from knowdo.designs.effect import Effect
from knowdo.designs.planner.advisor import Advice
from knowdo.equity.section import EquityReport
from knowdo.report.sections import ReportSection, ReportTable

NO_COUNTS: tuple[str, ...] = ()


def _plain(frame: pd.DataFrame, caption: str) -> ReportTable:
    """A table of estimates, not counts of people: nothing in it is a cell to suppress."""
    return ReportTable(frame, caption, count_columns=NO_COUNTS, dependent_columns=NO_COUNTS)


def effects_section(effects: Sequence[Effect], truth: Mapping[str, Any] | None = None) -> ReportSection:
    """Each effect's headline, per-stratum estimates and path, with the known truth beside it when given."""
    tables: list[ReportTable] = []
    charts = []
    notes: list[str] = []
    targets = pd.DataFrame((truth or {}).get("did_targets") or [])
    for effect in effects:
        headline = pd.DataFrame([{
            "design": effect.design, "estimand": effect.estimand, "estimate": effect.estimate,
            "std_error": effect.std_error, "conf_low": effect.conf_low, "conf_high": effect.conf_high,
            "p_value": effect.p_value, "method": effect.method,
        }])
        tables.append(_plain(headline, f"{effect.design}: headline estimate"))
        if effect.strata is not None and len(effect.strata):
            strata = effect.strata[["dimension", "stratum", "estimate", "std_error", "conf_low", "conf_high"]]
            if len(targets):
                strata = strata.merge(targets[["dimension", "stratum", "att"]].rename(columns={"att": "truth"}),
                                      on=["dimension", "stratum"], how="left")
                strata = strata.assign(covered=(strata["conf_low"] <= strata["truth"])
                                       & (strata["truth"] <= strata["conf_high"]))
            tables.append(_plain(strata, f"{effect.design}: estimate by equity stratum"))
        charts.append(effect.plot())
        notes += [f"Assumption to judge: {a}" for a in effect.assumptions]
    if len(targets):
        overall = targets[(targets["dimension"] == "all") & (targets["stratum"] == "all")]
        if len(overall) and effects:
            value = float(overall["att"].iloc[0])
            notes.insert(0, f"The generator's true effect is {value:.3f} per 1,000 adults per month.")
            for position, effect in enumerate(effects, start=1):
                inside = "inside" if effect.conf_low <= value <= effect.conf_high else "outside"
                notes.insert(position, f"{effect.design}: the estimate is {effect.estimate:.3f} "
                                       f"({effect.conf_low:.3f} to {effect.conf_high:.3f}), so the truth lies "
                                       f"{inside} the 95% interval.")
    intro = ("The programme was rolled out in waves, so its effect is estimated by comparing clinics that had "
             "started with clinics that had not yet (or never) started (staggered difference-in-differences). "
             "The headline uses the imputation estimator (Borusyak, Jaravel and Spiess), which predicts each "
             "started clinic's months from its own months before the start and the other clinics' trends; "
             "Callaway and Sant'Anna's estimator, which compares each wave with its month before the start, "
             "follows as a check. Each is shown for everyone and for each equity group, with the path over "
             "months since rollout.")
    return ReportSection("Effects of the programme", intro, tables=tables, charts=charts, notes=notes, key="effects")


def equity_section(report: EquityReport) -> ReportSection:
    """WHO HEAT summary measures, equiplots, trends and intersectional estimates (already protected)."""
    intro = " ".join(report.sentences()) or "Inequality between equity groups, measured as WHO HEAT does."
    heat = report.heat.tidy()
    keep = [c for c in ("indicator", "dimension", "period", "measure", "estimate", "conf_low", "conf_high")
            if c in heat.columns]
    tables = [_plain(heat[keep].head(400), "Summary measures of inequality (WHO HEAT)")]
    return ReportSection("Equity", intro, tables=tables, charts=list(report.charts()), notes=list(report.notes),
                         key="equity")


def scenarios_section(report: ScenarioReport) -> ReportSection:
    """Calibrated scale-up scenarios with bands, who gains, and what the data cannot pin down."""
    intro = " ".join(report.sentences())
    return ReportSection("Scale-up scenarios", intro, charts=list(report.charts()), notes=list(report.notes),
                         key="scenarios")


def plan_section(advice: Advice) -> ReportSection:
    """The design advisor's ranked designs for the next study."""
    results = advice.to_results()
    designs = pd.DataFrame(results.get("designs") or [])
    tables = [_plain(designs, "Feasible designs for the next study, ranked")] if len(designs) else []
    notes = [str(n) for n in results.get("notes") or []]
    return ReportSection("Study plan", str(results.get("summary", "")), tables=tables, charts=[advice.plot()],
                         notes=notes, key="plan")
