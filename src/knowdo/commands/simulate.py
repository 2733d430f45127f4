"""``knowdo simulate``: calibrate the care-pathway model to a project and compare scale-up scenarios.

    knowdo simulate PROJECT                                   the default scenarios
    knowdo simulate PROJECT --scenario plans.toml --draws 200 the baseline plus the file's scenarios
    knowdo simulate PROJECT --scheduler tcp://host:8786       ABC and Sobol batches on a Dask cluster

The project's store must hold its data (``knowdo load PROJECT`` or ``knowdo
run PROJECT``); the panel is built if it is missing. ``--json`` prints the
whole result as JSON on stdout. A scheduler can also be named in
``knowdo.toml`` as ``[simulation] scheduler = "tcp://..."``.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from knowdo.commands._errors import user_errors as _user_errors
from knowdo.complexity.results import rows
from knowdo.complexity.scenarios import Scenario, baseline, load_scenarios
from knowdo.complexity.section import ScenarioReport, scenario_section
from knowdo.complexity.sweep import Sweep
from knowdo.config import CONFIG_NAME, Project, load_project
from knowdo.errors import StoreError
from knowdo.store import Store, build_panel, read_panel

out = Console()
err = Console(stderr=True)


def register(app: typer.Typer) -> None:
    """Add the ``simulate`` command to ``app``."""
    app.command("simulate")(simulate)


def read_project_panel(project: Project) -> pd.DataFrame:
    """The project's analysis panel from its store, built when the data are loaded but the panel is not."""
    if not project.store_path.exists():
        raise StoreError(f"{project.store_path}: no project store yet; load the data first with "
                         f"`knowdo load {project.root}` (or `knowdo run`).")
    with Store.for_project(project) as store:
        if not store.has_table("panel"):
            if not store.row_counts():
                raise StoreError(f"{project.store_path}: the store holds no data; run `knowdo load {project.root}`.")
            build_panel(store, project)
        return read_panel(store)


def scheduler_address(project: Project) -> str | None:
    """``[simulation] scheduler`` from the project's knowdo.toml, if any."""
    raw = tomllib.loads((project.root / CONFIG_NAME).read_text(encoding="utf-8"))
    value = raw.get("simulation", {}).get("scheduler")
    return str(value) if value else None


def simulate(
    project_dir: Annotated[Path, typer.Argument(metavar="PROJECT", help="Project folder (holding knowdo.toml).")],
    scenario: Annotated[list[Path] | None, typer.Option(
        "--scenario", help="TOML file of [[scenario]] tables; repeat for several files.")] = None,
    draws: Annotated[int, typer.Option(help="Posterior draws per scenario.")] = 100,
    horizon: Annotated[int, typer.Option(help="Months to project after the data.")] = 36,
    dimension: Annotated[str | None, typer.Option(help="Equity dimension whose strata get their own stocks.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of every random draw.")] = 0,
    scheduler: Annotated[str | None, typer.Option(
        help="Dask scheduler address (overrides [simulation] scheduler in knowdo.toml).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")] = False,
) -> None:
    """Calibrate the care-pathway model to PROJECT and compare scale-up scenarios."""
    with _user_errors(as_json):
        project = load_project(project_dir)
        scenarios: list[Scenario] | None = None
        if scenario:
            scenarios = [baseline()]
            for file in scenario:
                scenarios += load_scenarios(file)
        panel = read_project_panel(project)
        address = scheduler or scheduler_address(project)
        sweep = Sweep(address=address) if address else None
        try:
            report = scenario_section(panel, project, dimension=dimension, scenarios=scenarios, horizon=horizon,
                                      draws=draws, seed=seed, sweep=sweep)
        finally:
            if sweep is not None:
                sweep.close()
    if as_json:
        print(json.dumps({"ok": True, **report.to_dict()}))
    else:
        _print(report)


def _print(report: ScenarioReport) -> None:
    out.print(f"[bold]Scale-up scenarios: {report.project}[/] (strata: {report.dimension})")
    table = Table("Scenario", "More effectively treated", "Budget impact (USD)", "USD per extra person")
    for r in rows(report.scenarios.budget):
        per = "n/a" if pd.isna(r.cost_per_effective) else f"{r.cost_per_effective:,.0f}"
        table.add_row(r.scenario, f"{r.additional_effective:+,.0f} ({r.additional_effective_low:+,.0f} to "
                      f"{r.additional_effective_high:+,.0f})", f"{r.budget_impact:+,.0f}", per)
    out.print(table)
    for sentence in report.sentences():
        out.print(f"- {sentence}", markup=False, highlight=False)
