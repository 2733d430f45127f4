"""The ``knowdo`` command: one sub-command per user job.

    knowdo demo [--dir D] [--persons N] [--seed S]   write, load and report the example programme
    knowdo run PROJECT                                 load a project and write PROJECT/report/
    knowdo validate PROJECT                            check the sources without loading
    knowdo load PROJECT                                validate and load into the store only
    knowdo dictionary                                  print the data dictionary (Markdown)
    knowdo plan DESIGN ... | knowdo plan advise        power, sample size, design advice
    knowdo estimate DESIGN --data F.csv ... [--json]   one estimator on a tidy CSV
    knowdo equity PROJECT | --heat FILE.csv             WHO HEAT inequality measures
    knowdo simulate PROJECT [--scenario F.toml]        calibrated scale-up scenarios
    knowdo ingest PROJECT [--check]                    what changed + data quality, then load
    knowdo export FORMAT PROJECT OUT                   the project's tables in a source format
    knowdo serve PROJECT_OR_DIR                        the shared web workspace
    knowdo strategies | delphi | logic-model | stari   co-production tools (CFIR 2.0, ERIC, StaRI)

User errors (a bad project file, data breaking the schema) print one
readable report and exit with status 1; ``--json`` prints machine-readable
output instead and ``--quiet`` prints nothing but errors.

Each sub-command's module (``knowdo.commands.*``) is imported only when that command runs:
the estimators, the web app and the simulation stack together take seconds to import, which
``knowdo --help`` and every quick command would otherwise pay.
"""

from __future__ import annotations

import importlib
import sys
from typing import Annotated, Any

import typer
from typer import _click as click  # typer ships its own click; its groups take these types
from typer.core import TyperCommand, TyperGroup

from knowdo import __version__

# command name -> (module holding its ``register``, one-line help shown by ``knowdo --help``)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("knowdo.commands.project", "Write the example programme as a project, load it and write its report."),
    "run": ("knowdo.commands.project", "Validate and load PROJECT, then write its report."),
    "load": ("knowdo.commands.project", "Validate PROJECT's sources and load them into its store, all or nothing."),
    "validate": ("knowdo.commands.project", "Check PROJECT's sources against the schema without loading them."),
    "dictionary": ("knowdo.commands.project", "Print the data dictionary of the canonical tables (Markdown)."),
    "ingest": ("knowdo.commands.ingest", "Show what changed since the last load and the data quality, then load."),
    "export": ("knowdo.commands.export", "Write a project's tables in a source format (DHIS2, FHIR, OMOP, REDCap)."),
    "estimate": ("knowdo.commands.estimate", "Run one design's estimator on a tidy CSV."),
    "equity": ("knowdo.commands.equity", "WHO HEAT inequality measures from a project or a HEAT Plus table."),
    "simulate": ("knowdo.commands.simulate", "Calibrated scale-up scenarios for a project."),
    "plan": ("knowdo.commands.plan", "Power, sample size and design advice for the next study."),
    "strategies": ("knowdo.commands.codesign", "CFIR 2.0 barriers, ERIC strategies, matching and strategy evidence."),
    "delphi": ("knowdo.commands.codesign", "Delphi rounds and ranking exercises."),
    "logic-model": ("knowdo.commands.codesign", "A logic model linked to the project's measures."),
    "stari": ("knowdo.commands.codesign", "The StaRI reporting checklist for the project's study."),
    "serve": ("knowdo.commands.serve", "The shared web workspace."),
}


def load_command(name: str) -> click.Command:
    """Import the module behind ``name`` and return its click command."""
    module = importlib.import_module(COMMANDS[name][0])
    holder = typer.Typer()
    module.register(holder)
    return typer.main.get_group(holder).commands[name]


class LazyGroup(TyperGroup):
    """The root group: lists commands from ``COMMANDS`` and imports one only to run it."""

    resolving = False

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        if self.resolving:
            return load_command(cmd_name)
        # listing for help: a stand-in carrying the one-line help, so nothing heavy is imported
        return TyperCommand(cmd_name, help=COMMANDS[cmd_name][1])

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        self.resolving = True
        try:
            return super().resolve_command(ctx, args)
        finally:
            self.resolving = False


app = typer.Typer(
    cls=LazyGroup,
    add_completion=False,
    no_args_is_help=True,
    help="knowdo: actionable evidence for closing the mental health know-do gap.",
)


@app.callback(invoke_without_command=True)
def _root(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    if version:
        print(__version__)
        raise typer.Exit()


def main(argv: list[str] | None = None) -> Any:
    return app(args=argv if argv is not None else sys.argv[1:], prog_name="knowdo")
