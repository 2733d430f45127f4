"""The project commands: demo, run, load, validate and dictionary.

They are the main job of knowdo (the example programme or a user's project, end to end) and the
schema's documentation; the other sub-commands live beside this module, one file per user job.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.status import Status
from rich.table import Table

from knowdo.commands._errors import user_errors as _user_errors
from knowdo.examples import generate_programme, write_project
from knowdo.pipeline import (
    CONSTRAINTS_FILE,
    Progress,
    RunResult,
    load_project_data,
    run_project,
    validate_project,
)
from knowdo.schema import CROSS_TABLE_RULES, TABLES, dictionary_rows

out = Console()
err = Console(stderr=True)


def register(app: typer.Typer) -> None:
    """Add demo, run, load, validate and dictionary to ``app``."""
    for command in (demo, run, load, validate, dictionary):
        app.command()(command)


JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors.")]
ProjectArg = Annotated[Path, typer.Argument(help="Project folder (holding knowdo.toml).")]


@contextmanager
def _progress(quiet: bool) -> Iterator[Progress]:
    if quiet:
        yield lambda _message: None
        return
    with Status("starting", console=err) as status:

        def step(message: str) -> None:
            status.update(message)
            err.log(message)

        yield step


def _print_run(result: RunResult, as_json: bool, quiet: bool) -> None:
    if as_json:
        print(json.dumps({
            "ok": True,
            "report": str(result.report.html),
            "results": str(result.report.json),
            "rows": result.load.rows,
            "panel_source": result.panel_source,
        }, indent=2))
        return
    if quiet:
        return
    table = Table(title=f"{result.project.name}: rows loaded", show_header=True)
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, rows in result.load.rows.items():
        table.add_row(name, f"{rows:,}")
    out.print(table)
    out.print(result.outcomes.summary(), markup=False, highlight=False)
    out.print(f"\nReport: [bold]{result.report.html}[/]\nFigures: {result.report.json}")


def demo(
    directory: Annotated[Path, typer.Option("--dir", help="Folder to write the example project into.")] = Path(
        "demo-project"
    ),
    persons: Annotated[int, typer.Option(help="Approximate number of people screened.")] = 20_000,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same programme).")] = 0,
    fmt: Annotated[str, typer.Option("--format", help="Data file format: csv or parquet.")] = "csv",
    as_json: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Write the example programme as a project, load it and write its report."""
    with _user_errors(as_json), _progress(quiet or as_json) as progress:
        if fmt not in {"csv", "parquet"}:
            raise typer.BadParameter("--format must be csv or parquet")
        progress(f"generating the example programme ({persons:,} people, seed {seed})")
        programme = generate_programme(seed=seed, persons=persons)
        write_project(programme, directory, fmt="parquet" if fmt == "parquet" else "csv")
        constraints = resources.files("knowdo.designs.planner").joinpath("examples/example_programme.toml")
        (directory / CONSTRAINTS_FILE).write_text(constraints.read_text(encoding="utf-8"), encoding="utf-8")
        result = run_project(directory, progress, truth=programme.truth.to_dict())
    _print_run(result, as_json, quiet)


def run(project: ProjectArg, as_json: JsonOption = False, quiet: QuietOption = False) -> None:
    """Validate and load PROJECT, then write PROJECT/report/index.html and results.json."""
    with _user_errors(as_json), _progress(quiet or as_json) as progress:
        result = run_project(project, progress)
    _print_run(result, as_json, quiet)


def load(project: ProjectArg, as_json: JsonOption = False, quiet: QuietOption = False) -> None:
    """Validate PROJECT's sources and load them into its store, all or nothing."""
    with _user_errors(as_json), _progress(quiet or as_json) as progress:
        config, _ = validate_project(project)
        summary = load_project_data(config, progress)
    if as_json:
        print(json.dumps({"ok": True, **summary.to_dict()}, indent=2))
    elif not quiet:
        note = " (same files as the previous load)" if summary.unchanged else ""
        out.print(f"Loaded {sum(summary.rows.values()):,} rows in load {summary.load_id}{note}.")


def validate(project: ProjectArg, as_json: JsonOption = False, quiet: QuietOption = False) -> None:
    """Check PROJECT's sources against the schema without loading them."""
    with _user_errors(as_json):
        _, data = validate_project(project)
    warnings = [w.to_dict() for w in data.warnings]
    if as_json:
        print(json.dumps({"ok": True, "rows": data.row_counts(), "warnings": warnings}, indent=2))
    elif not quiet:
        for warning in data.warnings:
            err.print(f"warning: {warning.where()}: {warning.message}", markup=False)
        out.print(f"OK: {sum(data.row_counts().values()):,} rows in {len(data.tables)} tables pass every rule.")


def dictionary() -> None:
    """Print the data dictionary of the canonical tables (Markdown)."""
    print(render_dictionary())


def render_dictionary() -> str:
    lines = ["# knowdo data dictionary", "", "Generated from `knowdo.schema` by `knowdo dictionary`.", ""]
    for name, table in TABLES.items():
        lines += [f"## `{name}`", "", f"{table.description} Grain: {table.grain}.", ""]
        lines += ["| column | type | required | rules | description |", "|---|---|---|---|---|"]
        for row in dictionary_rows():
            if row.table == name:
                required = "yes" if row.required else ""
                lines.append(f"| `{row.column}` | {row.type} | {required} | {row.rule} | {row.description} |")
        if table.open_columns:
            lines.append("| *(equity columns)* | string | yes | a level declared in `[equity.*]` | stratifiers |")
        lines.append("")
    lines += ["## Rules across tables", ""]
    lines += [f"- **{rule.rule_id}**: {rule.description}" for rule in CROSS_TABLE_RULES]
    return "\n".join(lines) + "\n"
