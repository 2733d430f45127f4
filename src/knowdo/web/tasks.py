"""What each background job does: load a project, load the example programme, run a scenario, export the report.

Each task takes what it needs from the request as plain values, holds the
project's store lock while it touches the store, and returns a small
JSON-ready summary for the job row. Loads also refresh the project's
overview state and its evidence panels (kept in the workspace database so
pages never wait on the store). Person-level tables are read here only to be
handed to core functions; nothing person-level is written to the workspace
database.
"""

from __future__ import annotations

import collections
import datetime as dt
import functools
import json
import logging
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import delete, select

from knowdo.config import Project, load_project
from knowdo.errors import KnowdoError, StoreError
from knowdo.examples import generate_programme, write_project
from knowdo.outcomes import compute_outcomes
from knowdo.pipeline import run_project, validate_project
from knowdo.store import Store, build_panel, read_episodes, read_panel, read_perceptions, read_providers
from knowdo.web import adapters
from knowdo.web.evidence import AnalysisInputs, PanelView, chart_view, number, ordered_panels, table_view
from knowdo.web.jobs import JobContext, Work, project_lock
from knowdo.web.models import Evidence, utcnow
from knowdo.web.models import Project as ProjectRow
from knowdo.web.settings import Settings

log = logging.getLogger("knowdo.web.tasks")
WARNINGS_KEPT = 200  # detailed warnings kept for the data page; the overview shows counts by rule


def load_task(ctx: JobContext, project_id: int, path: str, panels: tuple[str, ...],
              options: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Validate and load the project's sources, build the panel, compute outcomes and the evidence panels."""
    ctx.progress(0.02, "validating sources")
    project, data = validate_project(path)
    warnings = [w.to_dict() for w in data.warnings]
    with project_lock(str(project.root.resolve())):
        ctx.progress(0.15, "loading into the store")
        with Store.for_project(project) as store:
            summary = store.load(data, project)
            ctx.progress(0.3, "building the analysis panel")
            source = build_panel(store, project)
            inputs = _read_inputs(store)
            provenance = store.provenance()
    ctx.progress(0.4, "computing outcomes")
    outcomes = compute_outcomes(inputs["panel"], inputs["episodes"], inputs["providers"], inputs["sites"],
                                inputs["rollout"], inputs["perceptions"], project)
    state = {
        "loaded": True,
        "last_load": summary.to_dict(),
        "panel_source": source,
        "rows": dict(summary.rows),
        "provenance": json.loads(provenance.to_json(orient="records", date_format="iso")),
        "quality": _quality(warnings),
        "warnings": warnings[:WARNINGS_KEPT],
        "window": [project.start.isoformat(), project.end.isoformat()],
        "strata": [{"name": s.name, "category": s.category, "levels": list(s.levels)} for s in project.strata],
        "threshold": project.disclosure_threshold,
        "config_name": project.name,
    }
    with ctx.db.session() as s:
        row = s.get(ProjectRow, project_id)
        if row is not None:
            row.state = {**(row.state or {}), **state}
        s.execute(delete(Evidence).where(Evidence.project_id == project_id))
    analysis = AnalysisInputs(project, inputs["panel"], outcomes, inputs["episodes"], options=options or {})
    built = analyse(ctx, project_id, analysis, panels, load_id=summary.load_id, start=0.5)
    return {"load_id": summary.load_id, "rows": dict(summary.rows), "panels": built, "unchanged": summary.unchanged}


def _read_inputs(store: Store) -> dict[str, pd.DataFrame]:
    return {
        "panel": read_panel(store),
        "episodes": read_episodes(store),
        "providers": read_providers(store),
        "sites": store.table("sites"),
        "rollout": store.table("rollout"),
        "perceptions": read_perceptions(store),
    }


def _quality(warnings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Warnings counted by rule, without the values (which may name people): what every member may see."""
    counts: collections.Counter[str] = collections.Counter()
    example: dict[str, str] = {}
    for w in warnings:
        counts[str(w.get("rule"))] += int(w.get("count") or 1)
        example.setdefault(str(w.get("rule")), str(w.get("file", "")).rsplit("/", 1)[-1])
    return [{"rule": rule, "count": n, "file": example[rule]} for rule, n in counts.most_common()]


def analyse(ctx: JobContext, project_id: int, inputs: AnalysisInputs, keys: tuple[str, ...], *, load_id: int | None,
            start: float = 0.0) -> list[str]:
    """Build each registered panel in ``keys`` and save its view; a panel that cannot be built says why."""
    chosen = ordered_panels(keys)
    done = []
    for i, panel in enumerate(chosen):
        ctx.progress(start + (1 - start) * i / max(len(chosen), 1), f"computing {panel.title.lower()}")
        try:
            view = panel.build(inputs)
        except KnowdoError as exc:
            view = PanelView(key=panel.key, title=panel.title, intro="", sentences=(), charts=(), tables=(),
                             method=(), settings={}, notes=(f"This panel could not be computed from these data: "
                                                            f"{exc}",), threshold=inputs.project.disclosure_threshold)
        if view is None:
            continue
        with ctx.db.session() as s:
            s.execute(delete(Evidence).where(Evidence.project_id == project_id, Evidence.key == panel.key))
            s.add(Evidence(project_id=project_id, key=panel.key, payload=view.to_dict(), computed_at=utcnow(),
                           load_id=load_id))
        done.append(panel.key)
    return done


def example_task(ctx: JobContext, project_id: int, path: str, name: str, persons: int, seed: int,
                 panels: tuple[str, ...], options: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Write the example programme into the project's folder, then load it."""
    ctx.progress(0.01, f"generating the example programme ({persons:,} people, seed {seed})")
    programme = generate_programme(seed=seed, persons=persons)
    with project_lock(str(Path(path).resolve())):
        write_project(programme, path, name=name)
    return load_task(ctx, project_id, path, panels, options)


def report_task(ctx: JobContext, project_id: int, path: str) -> dict[str, Any]:
    """Write the project's self-contained HTML report (disclosure-controlled) for export."""
    project = load_project(path)
    with project_lock(str(project.root.resolve())):
        result = run_project(path, lambda message: ctx.progress(0.5, message))
    generated = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
    with ctx.db.session() as s:
        row = s.get(ProjectRow, project_id)
        if row is not None:
            row.state = {**(row.state or {}), "report": {"generated_at": generated}}
    return {"report": result.report.html.name, "generated_at": generated}


def read_project_panel(project: Project) -> tuple[pd.DataFrame, int | None]:
    """The analysis panel and the latest load id, for scenario runs."""
    if not project.store_path.exists():
        raise StoreError("the project has no data yet: an analyst must load it first (Data page)")
    with project_lock(str(project.root.resolve())), Store.for_project(project) as store:
        if not store.has_table("panel"):
            raise StoreError("the project's analysis panel has not been built: an analyst must load the data first")
        panel = read_panel(store)
        loads = store.provenance()
    load_id = int(loads["load_id"].max()) if len(loads) else None
    return panel, load_id


def scenario_task(ctx: JobContext, path: str, scenario: dict[str, Any], horizon: int, draws: int) -> dict[str, Any]:
    """Calibrate (once per load) and run one scenario against the baseline; return its rendered view."""
    project = load_project(path)
    ctx.progress(0.05, "reading the analysis panel")
    panel, load_id = read_project_panel(project)
    ctx.progress(0.15, "calibrating the care-pathway model to the data (first run after a load only)")
    model = adapters.calibrate(project, panel, load_id=load_id)
    if scenario.get("preset"):
        chosen = next((s for s in adapters.scenario_options(project) if s.name == scenario["preset"]), None)
        if chosen is None:
            raise StoreError(f"no ready-made scenario named {scenario['preset']!r}")
    else:
        chosen = adapters.custom_scenario(scenario.get("name", ""), scenario["parameter"], scenario["op"],
                                          float(scenario["value"]), float(scenario.get("start", 0.0)),
                                          scenario.get("stratum"), scenario.get("description", ""))
    ctx.progress(0.7, f"running {chosen.name!r} against the current programme")
    result = adapters.run_scenario(model, chosen, horizon=horizon, draws=draws)
    return {"view": scenario_view(result, project, model.dimension).to_dict(), "scenario": chosen.name}


def scenario_view(result: Any, project: Project, dimension: str) -> PanelView:
    """A scenario run as a panel: the comparison in words, trajectories, who gains, budget."""
    budget = result.budget
    rows = budget[budget["scenario"] != result.scenarios[0]].to_dict(orient="records")
    sentences = []
    for r in rows:
        low, high = number(r["additional_effective_low"], 0), number(r["additional_effective_high"], 0)
        sentences.append(
            f"{r['scenario']}: {number(r['additional_effective'], 0)} more people effectively treated over "
            f"{result.horizon} months than the current programme (95% interval {low} to {high}), for a budget "
            f"impact of {number(r['budget_impact'], 0)} USD.")
    gains = result.gains[result.gains["scenario"] != result.scenarios[0]]
    if gains["stratum"].nunique() > 1:
        g = gains.sort_values("mean", ascending=False)
        sentences.append(f"Who gains ({dimension.replace('_', ' ')}): most in {g.iloc[0]['stratum']} "
                         f"({number(g.iloc[0]['mean'], 0)} more people), least in {g.iloc[-1]['stratum']} "
                         f"({number(g.iloc[-1]['mean'], 0)}).")
    charts = [result.plot("effective_coverage"), result.plot("waiting_time")]
    if gains["stratum"].nunique() > 1:
        charts.append(result.plot_gains())
    budget_cols = [c for c in ("scenario", "additional_effective", "additional_effective_low",
                               "additional_effective_high", "budget_impact", "cost_per_effective") if c in budget]
    tables = [table_view(budget[budget_cols], "Budget impact over the horizon (difference from the current programme)",
                         project)]
    if len(gains):
        tables.append(table_view(gains, "Additional people effectively treated by stratum", project))
    return PanelView(
        key="scenario", title=" vs ".join(result.scenarios),
        intro=" ".join(f"{name}: {text.rstrip('.')}." for name, text in zip(result.scenarios, result.descriptions,
                                                                           strict=True) if text),
        sentences=tuple(sentences),
        charts=tuple(chart_view(c, project, key="scenario", index=i) for i, c in enumerate(charts, start=1)),
        tables=tuple(tables),
        method=("Care-pathway system-dynamics model calibrated to the project's monthly screens, treatment starts, "
                "adequate and effective courses by ABC-SMC; scenarios run from the same posterior draws as the "
                "baseline, so differences carry parameter uncertainty only.",),
        settings={"horizon (months)": str(result.horizon), "posterior draws": str(result.draws),
                  "equity dimension": dimension, **{k: str(v) for k, v in result.settings.items()}},
        notes=("Scenario effects are modelled, not observed.",), threshold=project.disclosure_threshold,
    )


def load_job(settings: Settings, project_id: int, path: str) -> Work:
    """The work of a load job for this workspace's panels and their settings."""
    return functools.partial(load_task, project_id=project_id, path=path, panels=settings.panels,
                             options=settings.panel_options)


def example_job(settings: Settings, project_id: int, path: str, name: str, seed: int) -> Work:
    """The work of an "example programme" job: generate, write into the project, load."""
    return functools.partial(example_task, project_id=project_id, path=path, name=name,
                             persons=settings.example_persons, seed=seed, panels=settings.panels,
                             options=settings.panel_options)


def ensure_loaded_panels(db: Any, project_id: int) -> bool:
    """Whether the project already has evidence panels in the workspace database."""
    with db.session() as s:
        return s.scalar(select(Evidence.id).where(Evidence.project_id == project_id).limit(1)) is not None
