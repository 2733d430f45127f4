"""``knowdo ingest``: read a project's sources (files, DHIS2, FHIR, OMOP, REDCap) and load them.

    knowdo ingest PROJECT            read every [[sources]] entry, validate, load the store
    knowdo ingest PROJECT --check    read and validate only; show what each source gave
    knowdo ingest PROJECT --json     the same, as JSON on stdout

Aggregate counts also get the WHO/DHIS2-style data-quality checks
(completeness, timeliness, outliers at 2 and 3 SD, consistency); see
:mod:`knowdo.ingest.quality`. The new tables are compared with the store's, by
each table's key, and "what changed since the last load" is printed: rows
added, corrected (old -> new) and removed, and new months. A load writes the
same comparison to the store's change log in the load's own transaction;
``--check`` only previews it. Pulling the same data again changes nothing and
is logged as a load with no change.

Sources with ``mode = "append"`` in ``knowdo.toml`` (a DHIS2 request for the
latest month, say) are merged into the stored tables by key instead of
replacing them: new keys are added, changed values corrected, and stored rows
the pull does not mention kept; the merged tables are checked against the
schema again before anything is written (``--check`` previews the merge).

Every source is read through its connector (OMOP databases through the
store), validated against the canonical schema, and loaded all-or-nothing;
a problem anywhere prints the located report and exits with status 1,
leaving the store as it was.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from knowdo.commands._errors import user_errors as _user_errors
from knowdo.config import load_project
from knowdo.ingest.changes import compare_tables
from knowdo.ingest.files import read_sources
from knowdo.ingest.quality import data_quality, loaded_data_quality
from knowdo.ingest.validate import validate_sources
from knowdo.store import Store
from knowdo.store.database import append_tables
from knowdo.store.omop_source import OMOP_READERS

out = Console()
err = Console(stderr=True)


def register(app: typer.Typer) -> None:
    """Add the ``ingest`` command to ``app``."""
    app.command("ingest")(ingest)


def ingest(
    project_dir: Annotated[Path, typer.Argument(help="Project folder (holding knowdo.toml).")],
    check: Annotated[bool, typer.Option("--check", help="Read and validate only; do not load.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")] = False,
) -> None:
    """Read every source of a project through its connector, validate it, and load the store."""
    with _user_errors(as_json):
        project = load_project(project_dir)
        raw = read_sources(project, readers=OMOP_READERS)
        data = validate_sources(raw, project)
        sources = [{"source": r.label, "table": r.table, "rows": 0 if r.frame is None else len(r.frame),
                    "sha256": r.sha256} for r in raw]
        warnings = [p.to_dict() for p in data.warnings]  # the connectors' and the schema's
        result: dict[str, Any] = {"ok": True, "checked_only": check, "sources": sources, "warnings": warnings,
                                  "rows": data.row_counts()}
        appended = sorted(append_tables(project, raw))
        if appended:
            result["appended"] = appended
        aggregates = data.tables.get("aggregates")
        quality = None
        if check:
            if project.store_path.exists():
                with Store.for_project(project, read_only=True) as store:
                    changes = store.preview(data, project)
            else:
                changes = compare_tables({}, data.tables)
            if aggregates is not None and len(aggregates):
                facilities = None
                if "sites" in data.tables:
                    sites = data.tables["sites"]
                    facilities = sorted(sites.loc[sites["level"] == "facility", "site_id"])
                quality = data_quality(aggregates, start=project.start, end=project.end, sites=facilities)
        else:
            with Store.for_project(project) as store:
                summary = store.load(data, project)
                changes = summary.changes if summary.changes is not None else compare_tables({}, {})
                if aggregates is not None and len(aggregates):
                    # the stored tables, not the pull: an appended pull may hold only the latest month
                    quality = loaded_data_quality(
                        start=project.start, end=project.end, sites=store.table("sites"),
                        arrivals=store.arrivals(), loads=store.loads(), aggregates=store.table("aggregates"))
            result["load"] = summary.to_dict()
        result["changes"] = changes.to_dict()
        if quality is not None:
            result["data_quality"] = quality.to_dict()
    if as_json:
        print(json.dumps(result, indent=2, default=str))
        return
    table = Table(title=f"{project.name}: sources read")
    for column in ("source", "table", "rows"):
        table.add_column(column, justify="right" if column == "rows" else "left")
    for item in sources:
        table.add_row(str(item["source"]), str(item["table"]), f"{item['rows']:,}")
    out.print(table)
    for warning in data.warnings:
        seen = f" (saw {warning.value!r})" if warning.value is not None else ""
        out.print(f"warning: {warning.where()}: [{warning.rule}] {warning.message}{seen}", markup=False,
                  highlight=False, style="yellow")
    out.print(changes.summary(), markup=False, highlight=False)
    if quality is not None:
        out.print("Data quality (WHO DQ Tool and DHIS2 thresholds):", markup=False, highlight=False)
        out.print(quality.summary(), markup=False, highlight=False)
    if check:
        out.print("[green]All sources pass the schema.[/] Nothing was loaded (--check).")
    else:
        load = result["load"]
        note = " (same files as the last load)" if load["unchanged"] else ""
        if load.get("appended"):
            note += f"; merged by key into {', '.join(load['appended'])}"
        out.print(f"[green]Loaded[/] load #{load['load_id']} into {project.store_path.name}{note}.")
