"""``knowdo equity``: WHO HEAT summary measures from a HEAT Plus table or from a project.

    knowdo equity --heat data.csv --json
    knowdo equity PROJECT --outcome treatment_start --dimension wealth_quintile --json
    knowdo equity PROJECT --outcome reach --export heat_plus.csv

The first form computes every applicable measure of the 21 for each
indicator x dimension of a HEAT Plus table. The second builds the same table
from the project's analysis panel (which ``knowdo run`` creates), applies the
project's disclosure control (small subgroups and what would reveal them are
hidden; measures summarising a hidden subgroup are withheld) and can export
the protected table for upload to HEAT Plus.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from knowdo.commands._errors import user_errors as _user_errors
from knowdo.config import load_project
from knowdo.equity.common import jsonable
from knowdo.equity.heat import HeatResult, heat_measures
from knowdo.equity.heat_ci import DEFAULT_DRAWS, DEFAULT_SEED
from knowdo.equity.heat_table import heat_table_from_panel, read_heat_csv, write_heat_csv
from knowdo.equity.section import protect_subgroups, withhold_measures
from knowdo.equity.strata import DEFAULT_INDICATOR_NAMES, indicator_specs, project_dimensions
from knowdo.errors import ParameterError, StoreError
from knowdo.store import Store, read_panel

out = Console()
err = Console(stderr=True)


def register(app: typer.Typer) -> None:
    """Add the ``equity`` command to ``app``."""
    app.command("equity")(equity)


def equity(
    project: Annotated[Path | None, typer.Argument(help="Project folder (holding knowdo.toml).")] = None,
    heat: Annotated[Path | None, typer.Option("--heat", help="A HEAT Plus CSV to measure instead of a project.")] = (
        None
    ),
    outcome: Annotated[list[str] | None, typer.Option(
        "--outcome", help=f"Outcome(s) to measure (project form): {', '.join(DEFAULT_INDICATOR_NAMES)}.")] = None,
    dimension: Annotated[list[str] | None, typer.Option(
        "--dimension", help="Equity dimension(s) from knowdo.toml (project form; default all).")] = None,
    period: Annotated[str, typer.Option(help="Pool months by month, quarter, year or all.")] = "year",
    measure: Annotated[list[str] | None, typer.Option(
        "--measure", help="Measure code(s), e.g. D, SII; default all 21.")] = None,
    draws: Annotated[int, typer.Option(help="Simulation draws for the simulation intervals.")] = DEFAULT_DRAWS,
    seed: Annotated[int, typer.Option(help="Seed of the simulation draws.")] = DEFAULT_SEED,
    linear: Annotated[bool, typer.Option("--linear", help="Linear instead of logistic SII/RII model.")] = False,
    export: Annotated[Path | None, typer.Option("--export", help="Write the (protected) HEAT Plus table here.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")] = False,
) -> None:
    """Compute the WHO HEAT inequality measures from a HEAT Plus table or a project."""
    with _user_errors(as_json):
        if (project is None) == (heat is None):
            raise ParameterError("give either a PROJECT folder or --heat FILE.csv (one of them).")
        settings: dict[str, Any] = {"draws": draws, "seed": seed, "sii_model": "linear" if linear else "logistic"}
        if measure:
            settings["measures"] = measure
        if heat is not None:
            table = read_heat_csv(heat)
            result = heat_measures(table, **settings)
            payload = {"ok": True, "source": str(heat), **result.to_dict()}
            payload.pop("subgroups", None)
            if export is not None:
                write_heat_csv(table, export)
        else:
            assert project is not None
            result, published = _from_project(project, outcome or [], dimension, period, settings)
            payload = {"ok": True, "source": str(project), "subgroups": jsonable(published),
                       **{k: v for k, v in result.to_dict().items() if k != "subgroups"}}
            if export is not None:
                write_heat_csv(published, export)
        if as_json:
            print(json.dumps(payload, indent=2))
        else:
            _print(result)
            if export is not None:
                out.print(f"HEAT Plus table written to [bold]{export}[/]")


def _from_project(
    folder: Path, outcomes: list[str], dimensions: list[str] | None, period: str, settings: dict[str, Any]
) -> tuple[HeatResult, pd.DataFrame]:
    project = load_project(folder)
    specs = indicator_specs(outcomes or DEFAULT_INDICATOR_NAMES)
    dims = project_dimensions(project, dimensions or None)
    if not dims:
        raise ParameterError(f"{folder}: knowdo.toml declares no equity dimension under [equity.<name>].")
    with Store.for_project(project, read_only=True) as store:
        if not store.has_table("panel"):
            raise StoreError(f"{project.store_path}: no analysis panel yet; run `knowdo run {folder}` first.")
        panel = read_panel(store)
    missing = [c for s in specs for c in (s.numerator, s.denominator) if c not in panel.columns]
    if missing:
        raise ParameterError(f"the panel has no column(s) {sorted(set(missing))} needed by the outcome(s).")
    table = heat_table_from_panel(panel, dims, specs, period=period, setting=project.name)  # type: ignore[arg-type]
    published, _ = protect_subgroups(table, specs, project.disclosure_threshold, project.disclosure_rounding)
    full = heat_measures(table.drop(columns=["numerator", "denominator"]), **settings)
    result = withhold_measures(full, published)
    return result, result.subgroups


def _print(result: HeatResult) -> None:
    tidy = result.tidy()
    table = Table(title="WHO HEAT summary measures", show_header=True)
    for column in ("indicator", "dimension", "period", "measure", "estimate", "95% CI", "method"):
        table.add_column(column, justify="right" if column in ("estimate",) else "left")
    for rec in tidy.itertuples(index=False):
        table.add_row(str(rec.indicator_abbr), str(rec.dimension), str(rec.date), str(rec.measure),
                      f"{rec.estimate:.4g}", f"[{rec.conf_low:.4g}, {rec.conf_high:.4g}]", str(rec.ci_method))
    out.print(table)
    withheld = result.measures[~result.measures["applicable"]]
    if len(withheld):
        out.print(f"{len(withheld)} measure(s) not applicable or withheld; --json lists why.")
