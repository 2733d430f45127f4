"""``knowdo export``: write a project's canonical tables in a source system's format.

    knowdo export FORMAT PROJECT_DIR OUT_DIR [--json]

FORMAT is one of ``dhis2-aggregate``, ``dhis2-aggregate-csv``,
``dhis2-tracker``, ``fhir-bundle``, ``fhir-bulk``, ``omop`` or ``redcap``.
OUT_DIR becomes a knowdo project folder that reads the export back through
the matching connector (see :mod:`knowdo.ingest.exporters`), so the data can
be moved into another of the user's systems, or checked by running knowdo on
it. Person-level formats (tracker, FHIR, OMOP, REDCap) copy identifiable
records and are for moving data between the user's own systems only.

DHIS2 aggregate counts are the panel's cascade counts cross-classified by
every equity dimension at once (:func:`cascade_cells`), computed by the same
SQL as the panel, so reading them back gives the same panel counts.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.console import Console

from knowdo.commands._errors import user_errors as _user_errors
from knowdo.config import Project, Stratum, load_project
from knowdo.errors import ParameterError
from knowdo.ingest.exporters import (
    ExportedProject,
    export_dhis2_aggregate,
    export_dhis2_tracker,
    export_fhir,
    export_redcap,
)
from knowdo.ingest.validate import ValidatedData, read_and_validate
from knowdo.schema import AGGREGATE_INDICATORS
from knowdo.store import OMOP_READERS, Store, build_panel, read_panel
from knowdo.store.omop_export import export_omop

out = Console()

FORMATS = ("dhis2-aggregate", "dhis2-aggregate-csv", "dhis2-tracker", "fhir-bundle", "fhir-bulk", "omop", "redcap")
PERSON_LEVEL = ("dhis2-tracker", "fhir-bundle", "fhir-bulk", "omop", "redcap")
_CELL = "knowdo_cell"


def register(app: typer.Typer) -> None:
    """Add the ``export`` command to ``app``."""
    app.command("export")(export)


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise ParameterError(f"export: unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return fmt


def cascade_cells(tables: Mapping[str, pd.DataFrame], project: Project, workdir: str | Path) -> pd.DataFrame:
    """Cascade counts per facility x month x combination of every equity level (long: indicator, value).

    Built by loading the tables into a scratch store under ``workdir`` with
    one equity dimension whose levels are the combinations present, and
    building the panel there, so the counts follow the panel's own
    definitions. Without person-level data, the project's aggregate totals
    (dimension ``all``) are returned, without equity columns.
    """
    persons = tables.get("persons")
    encounters = tables.get("encounters")
    if persons is None or persons.empty or encounters is None or encounters.empty:
        aggregates = tables.get("aggregates")
        if aggregates is None or aggregates.empty:
            raise ParameterError("export: the project has neither person-level records nor aggregate counts")
        totals = aggregates.loc[aggregates["dimension"] == "all", ["site_id", "period", "indicator", "value"]]
        return totals.reset_index(drop=True)
    dims = [s.name for s in project.strata if s.name in persons]
    combos = persons[dims].astype("string").fillna("") if dims else pd.DataFrame(index=persons.index)
    keys = list(combos.itertuples(index=False, name=None))
    distinct = sorted(set(keys))
    code = {key: f"c{i}" for i, key in enumerate(distinct)}
    cell_project = dataclasses.replace(project, strata=(Stratum(_CELL, "Other", False, tuple(code.values())),))
    cell_persons = persons.assign(**{_CELL: [code[k] for k in keys]})
    data = ValidatedData(tables={**tables, "persons": cell_persons}, sources=())
    with Store(Path(workdir) / "cells.duckdb") as store:
        store.load(data, cell_project)
        build_panel(store, cell_project)
        panel = read_panel(store)
    panel = panel.loc[panel["dimension"] == _CELL]
    indicators = [c for c in AGGREGATE_INDICATORS if c in panel]
    long = panel.melt(id_vars=["site_id", "period", "stratum"], value_vars=indicators, var_name="indicator")
    long = long.loc[long["value"].fillna(0) > 0]
    levels = pd.DataFrame([dict(zip(dims, key, strict=True)) for key in distinct], index=list(code.values()))
    long = long.join(levels, on="stratum").drop(columns="stratum")
    return long.sort_values(["site_id", "period", "indicator", *dims], kind="stable").reset_index(drop=True)


def export_project(fmt: str, project: Project, tables: Mapping[str, pd.DataFrame],
                   out_dir: str | Path) -> ExportedProject:
    """Export ``tables`` of ``project`` as ``fmt`` into the project folder ``out_dir``."""
    check_format(fmt)
    if fmt.startswith("dhis2-aggregate"):
        with tempfile.TemporaryDirectory() as scratch:
            cells = cascade_cells(tables, project, scratch)
        return export_dhis2_aggregate(cells, tables, project, out_dir,
                                      encoding="csv" if fmt.endswith("-csv") else "json")
    if fmt == "dhis2-tracker":
        return export_dhis2_tracker(tables, project, out_dir)
    if fmt in ("fhir-bundle", "fhir-bulk"):
        return export_fhir(tables, project, out_dir, layout="bundle" if fmt == "fhir-bundle" else "bulk")
    if fmt == "omop":
        return export_omop(tables, project, out_dir, csv=True)
    return export_redcap(tables, project, out_dir)


def export(
    fmt: Annotated[str, typer.Argument(metavar="FORMAT", help=f"One of: {', '.join(FORMATS)}.")],
    project_dir: Annotated[Path, typer.Argument(help="Project folder (holding knowdo.toml).")],
    out_dir: Annotated[Path, typer.Argument(help="New folder for the export (becomes a knowdo project).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")] = False,
) -> None:
    """Export a project's data as DHIS2, FHIR R4, OMOP CDM 5.4 or REDCap files.

    Person-level formats (dhis2-tracker, fhir-*, omop, redcap) copy individual records: use them only to move
    data between your own systems. DHIS2 aggregate counts are not disclosure-controlled.
    """
    with _user_errors(as_json):
        check_format(fmt)
        project = load_project(project_dir)
        data = read_and_validate(project, readers=OMOP_READERS)
        result = export_project(fmt, project, data.tables, out_dir)
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=1))
        return
    out.print(f"[bold]Exported[/bold] {project.name} as {fmt} to {result.root}")
    out.print(f"  in the format: {', '.join(result.carried)}; beside it as CSV: {', '.join(result.companions) or '-'}")
    out.print(f"  equity dimensions carried: {', '.join(result.strata) or 'none'}")
    for reason, count in result.skipped.items():
        if count:
            out.print(f"  left out: {count} {reason}")
    if fmt in PERSON_LEVEL:
        out.print("[yellow]Person-level records: keep them inside your own systems.[/yellow]")
    out.print(f"Check it with: knowdo ingest {result.root} --check")
