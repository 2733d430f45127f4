"""One project, end to end: validate -> load -> panel -> outcomes -> report.

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

from knowdo.config import Project, load_project
from knowdo.ingest import ValidatedData, read_and_validate
from knowdo.outcomes import OutcomeSet, compute_outcomes
from knowdo.report import ReportFiles, build_report, outcome_sections
from knowdo.store import (
    LoadSummary,
    Store,
    build_panel,
    read_episodes,
    read_panel,
    read_perceptions,
    read_providers,
)

Progress = Callable[[str], None]


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
    return project, read_and_validate(project)


def load_project_data(project: Project, progress: Progress = _quiet) -> LoadSummary:
    progress("validating sources")
    data = read_and_validate(project)
    progress("loading into the store")
    with Store.for_project(project) as store:
        return store.load(data, project)


def run_project(path: str | Path, progress: Progress = _quiet, *, truth: dict[str, Any] | None = None) -> RunResult:
    """Validate and load a project, build its panel and outcomes, and write the report."""
    project = load_project(path)
    summary = load_project_data(project, progress)
    progress("building the analysis panel")
    with Store.for_project(project) as store:
        source = build_panel(store, project)
        panel = read_panel(store)
        episodes = read_episodes(store)
        providers = read_providers(store)
        sites = store.table("sites")
        rollout = store.table("rollout")
        perceptions = read_perceptions(store)
        provenance = store.provenance()
    progress("computing outcomes")
    outcomes = compute_outcomes(panel, episodes, providers, sites, rollout, perceptions, project)
    progress("writing the report")
    if truth is None:
        truth = _truth_beside(project)
    results: dict[str, Any] = {
        "project": {
            "name": project.name,
            "start": project.start.isoformat(),
            "end": project.end.isoformat(),
            "disclosure_threshold": project.disclosure_threshold,
            "panel_source": source,
        },
        **outcomes.to_dict(),
        "provenance": {
            "latest_load": summary.to_dict(),
            "loads": json.loads(provenance.to_json(orient="records", date_format="iso")),
        },
    }
    if truth is not None:
        results["truth"] = truth
    report = build_report(project, results, sections=outcome_sections(outcomes, project))
    return RunResult(project, summary, source, outcomes, report)


def _truth_beside(project: Project) -> dict[str, Any] | None:
    """The example programme writes its truth next to knowdo.toml; show it when present."""
    file = project.root / "truth.json"
    if not file.exists():
        return None
    loaded: dict[str, Any] = json.loads(file.read_text(encoding="utf-8"))
    return loaded
