"""One project, end to end: validate -> load -> panel -> outcomes -> report.

The report opens with what the load changed since the last run (from the
store's change log) and closes with the data-quality checks.

The CLI's ``run`` and ``demo`` commands are thin wrappers around
:func:`run_project`; tests and notebooks can call it directly. Each step
reports progress through an optional callback so the CLI can show it without
this module knowing about terminals.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from knowdo.complexity.section import scenario_section
from knowdo.config import Project, load_project
from knowdo.designs.did import did_on_panel
from knowdo.designs.effect import Effect
from knowdo.designs.imputation import imputation_on_panel
from knowdo.designs.planner.advisor import advise_file
from knowdo.equity.section import equity_report
from knowdo.errors import KnowdoError
from knowdo.ingest import ValidatedData, read_and_validate
from knowdo.ingest.quality import loaded_data_quality
from knowdo.outcomes import OutcomeSet, compute_outcomes
from knowdo.report import ReportFiles, ReportSection, build_report, outcome_sections
from knowdo.report.data_sections import changes_results, changes_section, quality_results, quality_section
from knowdo.report.evidence_sections import effects_section, equity_section, plan_section, scenarios_section
from knowdo.report.publish import protect_outcomes
from knowdo.report.strategy_sections import strategies_section
from knowdo.store import (
    OMOP_READERS,
    LoadSummary,
    Store,
    build_panel,
    read_episodes,
    read_panel,
    read_perceptions,
    read_providers,
)
from knowdo.store.engines import build_panel_on_engine
from knowdo.strategies import StrategyEvidence, strategy_evidence

Progress = Callable[[str], None]

INTERSECTIONS = ("sex", "wealth_quintile", "residence")  # MAIHDA strata when the project has these dimensions
CONSTRAINTS_FILE = "study-constraints.toml"  # the design advisor's input, when a project has one


def _quiet(_: str) -> None:
    return None


@dataclass(frozen=True)
class RunResult:
    project: Project
    load: LoadSummary
    panel_source: str
    outcomes: OutcomeSet
    report: ReportFiles


def validate_project(path: str | Path) -> tuple[Project, ValidatedData]:
    """Check a project's files against the schema without touching its store."""
    project = load_project(path)
    return project, read_and_validate(project, readers=OMOP_READERS)


def load_project_data(project: Project, progress: Progress = _quiet) -> LoadSummary:
    progress("validating sources")
    data = read_and_validate(project, readers=OMOP_READERS)
    progress("loading into the store")
    with Store.for_project(project) as store:
        return store.load(data, project)


def run_project(path: str | Path, progress: Progress = _quiet, *, truth: dict[str, Any] | None = None) -> RunResult:
    """Validate and load a project, build its panel and outcomes, and write the report."""
    project = load_project(path)
    summary = load_project_data(project, progress)
    progress("building the analysis panel")
    with Store.for_project(project) as store:
        on_engine = project.engine is not None and project.engine.kind != "duckdb"
        source = build_panel_on_engine(store, project) if on_engine else build_panel(store, project)
        panel = read_panel(store)
        episodes = read_episodes(store)
        providers = read_providers(store)
        sites = store.table("sites")
        rollout = store.table("rollout")
        encounters = store.table("encounters")
        perceptions = read_perceptions(store)
        provenance = store.provenance()
        change_log, loads, arrivals = store.change_log(), store.loads(), store.arrivals()
        aggregates = store.table("aggregates") if source == "aggregates" else None
    progress("checking data quality")
    quality = loaded_data_quality(start=project.start, end=project.end, sites=sites, arrivals=arrivals, loads=loads,
                                  aggregates=aggregates, panel=panel)
    progress("computing outcomes")
    outcomes = compute_outcomes(panel, episodes, providers, sites, rollout, perceptions, project)
    # one protected copy of every outcome table, so that no two published cuts hide different cells
    outcomes = protect_outcomes(outcomes, threshold=project.disclosure_threshold,
                                rounding=project.disclosure_rounding)
    if truth is None:
        truth = _truth_beside(project)
    progress("estimating the programme's effect")
    effects = _effects(panel, project)
    progress("measuring inequality")
    intersections = tuple(d for d in INTERSECTIONS if d in {s.name for s in project.strata})
    equity = equity_report(panel, project, effects=effects, episodes=episodes,
                           intersections=intersections if len(intersections) > 1 else None)
    progress("relating implementation strategies to outcomes")
    strategies = _strategy_evidence(rollout, providers, encounters, panel)
    progress("calibrating the scale-up model and running scenarios")
    scenarios = scenario_section(panel, project, particles=100, sobol_n=128)
    threshold, rounding = project.disclosure_threshold, project.disclosure_rounding
    sections: list[ReportSection] = [changes_section(change_log, loads, threshold=threshold, rounding=rounding),
                                     *outcome_sections(outcomes, project)]
    if effects:
        sections.append(effects_section(effects, truth))
    if strategies is not None:
        sections.append(strategies_section(strategies, truth))
    sections += [equity_section(equity), scenarios_section(scenarios)]
    plan_file = project.root / CONSTRAINTS_FILE
    if plan_file.exists():
        sections.append(plan_section(advise_file(plan_file)))
    sections.append(quality_section(quality))
    progress("writing the report")
    results: dict[str, Any] = {
        "project": {
            "name": project.name,
            "start": project.start.isoformat(),
            "end": project.end.isoformat(),
            "disclosure_threshold": project.disclosure_threshold,
            "panel_source": source,
        },
        **outcomes.to_dict(),
        "effects": [e.to_dict() for e in effects],
        "equity": equity.to_dict(),
        "scenarios": scenarios.to_dict(),
        "strategies": _published_strategies(strategies),
        "changes": changes_results(change_log, loads, threshold=threshold, rounding=rounding),
        "data_quality": quality_results(quality),
        "provenance": {
            "latest_load": summary.to_dict(),
            "loads": json.loads(provenance.to_json(orient="records", date_format="iso")),
        },
    }
    if truth is not None:
        results["truth"] = truth
    report = build_report(project, results, sections=sections)
    return RunResult(project, summary, source, outcomes, report)


def _effects(panel: pd.DataFrame, project: Project) -> list[Effect]:
    """Staggered DiD of treatment starts per 1,000 adults, when the rollout is staggered.

    The imputation estimator is the headline: it uses every untreated month of a clinic, so it stays
    well calibrated on sparse monthly counts (docs/studies/did-coverage.md); Callaway & Sant'Anna follows
    as the robustness check that compares each cohort only with its month before the start. The last
    months are dropped: a screen there has not had its full window to start treatment.
    """
    if panel["first_treated"].isna().all():
        return []
    window = panel[panel["period"] <= pd.Timestamp(project.starts_complete_through)]
    effects = []
    for estimator in (imputation_on_panel, did_on_panel):
        try:
            effects.append(estimator(window, "started"))
        except KnowdoError:
            continue  # too few treated or comparison clinics for this estimator
    return effects


def _strategy_evidence(rollout: pd.DataFrame, providers: pd.DataFrame, encounters: pd.DataFrame,
                       panel: pd.DataFrame) -> StrategyEvidence | None:
    """What the project's own data say about its implementation strategies, when the rollout names them."""
    if rollout.empty:
        return None
    try:
        return strategy_evidence({"rollout": rollout, "providers": providers, "encounters": encounters,
                                  "panel": panel})
    except KnowdoError:
        return None  # no strategies recorded, or too few sites to compare: the report then has no such section


def _published_strategies(evidence: StrategyEvidence | None) -> dict[str, Any] | None:
    """The strategy evidence for results.json, without the per-site outcome table (site-level rows)."""
    if evidence is None:
        return None
    return {key: value for key, value in evidence.to_dict().items() if key != "sites"}


def _truth_beside(project: Project) -> dict[str, Any] | None:
    """The example programme writes its truth next to knowdo.toml; show it when present."""
    file = project.root / "truth.json"
    if not file.exists():
        return None
    loaded: dict[str, Any] = json.loads(file.read_text(encoding="utf-8"))
    return loaded
