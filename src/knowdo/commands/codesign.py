"""``knowdo strategies``, ``knowdo delphi``, ``knowdo stari``, ``knowdo logic-model``: the co-production tools.

    knowdo strategies list [--cluster 2] [--json]
    knowdo strategies constructs [--framework cfir1] [--json]
    knowdo strategies assess ratings.csv [--json]
    knowdo strategies match --barriers barriers.csv [--workbook CFIR-ERIC.xlsx] [--top 20] [--json]
    knowdo strategies evidence PROJECT [--json]
    knowdo delphi summarise votes.csv [--rule rand_ucla] [--json]
    knowdo delphi rank rankings.csv [--method mean_rank] [--json]
    knowdo stari PROJECT [--design "..."] [--hybrid-type 2] [--format html] [--out stari.html] [--json]
    knowdo logic-model PROJECT [--mermaid] [--json]

``--barriers`` takes a CSV with a ``construct`` column (CFIR 2.0 names or
ids), or members' ratings (``member, group, construct, valence``, optional
``importance, evidence, site``), which are assessed and prioritised first.
Strategy lists always carry the expert-opinion caveat. The PROJECT commands
read the project's store (``knowdo run`` builds it).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from knowdo.codesign.logic_model import logic_model_from_rollout
from knowdo.codesign.priorities import CONSENSUS_RULES, RANK_METHODS, ConsensusRules, rank_items, summarise_delphi
from knowdo.codesign.stari import stari_checklist
from knowdo.commands._errors import user_errors as _user_errors
from knowdo.config import Project, load_project
from knowdo.errors import ParameterError, StoreError
from knowdo.store import Store, read_panel, read_providers
from knowdo.strategies._common import check_option
from knowdo.strategies.assessment import PRIORITY_RULES, assess_barriers
from knowdo.strategies.evidence import strategy_evidence
from knowdo.strategies.matching import match_strategies
from knowdo.strategies.vocabularies import load_vocabulary

out = Console()
err = Console(stderr=True)

strategies_app = typer.Typer(help="CFIR 2.0 barriers, ERIC strategies, strategy matching and what the data say.",
                             no_args_is_help=True)
delphi_app = typer.Typer(help="Delphi rounds and group ranking.", no_args_is_help=True)
FORMATS = ("markdown", "html", "json")


def register(app: typer.Typer) -> None:
    """Add ``strategies``, ``delphi``, ``stari`` and ``logic-model`` to ``app``."""
    app.add_typer(strategies_app, name="strategies")
    app.add_typer(delphi_app, name="delphi")
    app.command("stari")(stari)
    app.command("logic-model")(logic_model_command)


def _emit(payload: dict[str, Any]) -> None:
    print(json.dumps({"ok": True, **payload}, indent=2))


def _read_csv(path: Path, what: str) -> pd.DataFrame:
    if not path.is_file():
        raise ParameterError(f"{what} file {str(path)!r} does not exist.")
    try:
        return pd.read_csv(path, dtype=object, keep_default_na=False).replace("", None)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise ParameterError(f"{what} file {str(path)!r} is not a readable CSV: {exc}") from None


def _table(title: str, frame: pd.DataFrame, columns: list[str]) -> Table:
    table = Table(title=title)
    for c in columns:
        table.add_column(c)
    for row in frame[columns].itertuples(index=False):
        table.add_row(*("" if pd.isna(v) else (f"{v:.3g}" if isinstance(v, float) else str(v)) for v in row))
    return table


# ---------------------------------------------------------------------------- strategies
@strategies_app.command("list")
def list_strategies(
    cluster: Annotated[str | None, typer.Option(help="Only this ERIC cluster (number or name).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")] = False,
) -> None:
    """List the 73 ERIC strategies by cluster."""
    with _user_errors(as_json):
        vocab = load_vocabulary()
        frame = vocab.strategies_frame()
        if cluster is not None:
            frame = frame.loc[frame["cluster"] == vocab.cluster(cluster).number]
        if as_json:
            _emit({"clusters": [c.__dict__ for c in vocab.clusters], "strategies": frame.to_dict(orient="records"),
                   "note": "ERIC is a vocabulary agreed by experts, not evidence of effectiveness."})
            return
        out.print(_table("ERIC strategies (Powell et al. 2015) in Waltz et al.'s 9 clusters", frame,
                         ["number", "cluster_name", "name"]))


@strategies_app.command("constructs")
def list_constructs(
    framework: Annotated[str, typer.Option(help="cfir2 (48 constructs, 19 sub-constructs) or cfir1 (39 barriers).")
                         ] = "cfir2",
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")] = False,
) -> None:
    """List CFIR 2.0 constructs, or the 39 CFIR 1.0 barriers of the matching tool with their crosswalk."""
    with _user_errors(as_json):
        check_option("framework", framework, ("cfir2", "cfir1"))
        vocab = load_vocabulary()
        frame = vocab.constructs_frame() if framework == "cfir2" else vocab.barriers_frame()
        if as_json:
            _emit({"framework": framework, "constructs": frame.where(frame.notna(), None).to_dict(orient="records")})
            return
        columns = ["id", "kind", "domain", "label"] if framework == "cfir2" else ["id", "domain", "name", "cfir2"]
        out.print(_table(f"{framework.upper()} constructs", frame, columns))


@strategies_app.command("assess")
def assess(
    ratings: Annotated[Path, typer.Argument(
        help="CSV: member, group, construct, valence[, importance, evidence, site].")],
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")] = False,
) -> None:
    """Aggregate a CFIR 2.0 barrier assessment, stakeholder groups side by side."""
    with _user_errors(as_json):
        result = assess_barriers(_read_csv(ratings, "ratings"))
        if as_json:
            _emit(result.to_dict())
            return
        out.print(result.summary(), markup=False, highlight=False)


@strategies_app.command("match")
def match(
    barriers: Annotated[Path, typer.Option("--barriers", help="CSV with a 'construct' column, or members' ratings.")],
    workbook: Annotated[Path | None, typer.Option(help="The CFIR-ERIC matching workbook (cfirguide.org).")] = None,
    top: Annotated[int | None, typer.Option(help="With ratings: match only the top N prioritised barriers.")] = None,
    rule: Annotated[str, typer.Option(help="With ratings: 'overall' or 'any_group' barriers.")] = "overall",
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")] = False,
) -> None:
    """List candidate ERIC strategies for the prioritised barriers (expert opinion, not evidence)."""
    with _user_errors(as_json):
        check_option("rule", rule, PRIORITY_RULES)
        frame = _read_csv(barriers, "barriers")
        if "valence" in frame.columns:
            ids = assess_barriers(frame).barrier_ids(rule=rule, top=top)  # type: ignore[arg-type]
            if not ids:
                raise ParameterError(f"{barriers}: no construct is rated a barrier under rule {rule!r}.")
        else:
            if "construct" not in frame.columns:
                raise ParameterError(f"{barriers}: needs a 'construct' column (or members' ratings with 'valence').")
            ids = [str(c) for c in frame["construct"].dropna()]
        result = match_strategies(ids, workbook=workbook)
        if as_json:
            _emit(result.to_dict())
            return
        out.print(result.summary(), markup=False, highlight=False)


def _project_tables(folder: Path) -> tuple[Project, dict[str, pd.DataFrame]]:
    project = load_project(folder)
    tables: dict[str, pd.DataFrame] = {}
    if not project.store_path.exists():
        return project, tables
    with Store.for_project(project, read_only=True) as store:
        for name in ("sites", "persons", "rollout", "encounters", "costs"):
            if store.has_table(name):
                tables[name] = store.table(name)
        if store.has_table("providers") and store.has_table("encounters"):
            tables["providers"] = read_providers(store)
        if store.has_table("panel"):
            tables["panel"] = read_panel(store)
    return project, tables


@strategies_app.command("evidence")
def evidence(
    project: Annotated[Path, typer.Argument(help="Project folder (holding knowdo.toml).")],
    level: Annotated[float, typer.Option(help="Confidence level.")] = 0.95,
    combinations: Annotated[bool, typer.Option("--combinations", help="Also estimate strategy pairs.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")] = False,
) -> None:
    """What the project's data say about its strategies: adoption, fidelity and reach associations."""
    with _user_errors(as_json):
        _, tables = _project_tables(project)
        if "rollout" not in tables:
            raise StoreError(f"{project}: no rollout table in the store; run `knowdo run {project}` first.")
        result = strategy_evidence(tables, level=level, combinations=combinations)
        if as_json:
            _emit(result.to_dict())
            return
        out.print(result.summary(), markup=False, highlight=False)


# ---------------------------------------------------------------------------- delphi
@delphi_app.command("summarise")
def delphi_summarise(
    votes: Annotated[Path, typer.Argument(help="CSV: round, item, participant, rating[, group, comment].")],
    rule: Annotated[str, typer.Option(help=f"Consensus rule: {', '.join(CONSENSUS_RULES)}.")] = "percent",
    agree: Annotated[float, typer.Option(help="Share rating 7-9 needed (percent rule).")] = 0.70,
    against: Annotated[float, typer.Option(help="Share rating 1-3 that blocks consensus (percent rule).")] = 0.15,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")] = False,
) -> None:
    """Summarise Delphi rounds: median, IQR and consensus per item under rules fixed up front."""
    with _user_errors(as_json):
        check_option("rule", rule, CONSENSUS_RULES)
        result = summarise_delphi(_read_csv(votes, "votes"),
                                  ConsensusRules(rule=rule, agree_share=agree, against_share=against))  # type: ignore[arg-type]
        if as_json:
            _emit(result.to_dict())
            return
        out.print(result.summary(), markup=False, highlight=False)


@delphi_app.command("rank")
def delphi_rank(
    rankings: Annotated[Path, typer.Argument(help="CSV: participant, item, rank (1 = first).")],
    method: Annotated[str, typer.Option(help=f"{', '.join(RANK_METHODS)}.")] = "borda",
    top: Annotated[int | None, typer.Option(help="How many items each member ranked (default: largest rank).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")] = False,
) -> None:
    """Combine members' rankings (nominal group technique) into a group order."""
    with _user_errors(as_json):
        check_option("method", method, RANK_METHODS)
        result = rank_items(_read_csv(rankings, "rankings"), method=method, top=top)  # type: ignore[arg-type]
        if as_json:
            _emit(result.to_dict())
            return
        out.print(result.summary(), markup=False, highlight=False)


# ---------------------------------------------------------------------------- stari / logic model
def stari(
    project: Annotated[Path, typer.Argument(help="Project folder (holding knowdo.toml).")],
    design: Annotated[str | None, typer.Option(help="The study design in a sentence.")] = None,
    hybrid_type: Annotated[int | None, typer.Option(help="Hybrid type 1, 2 or 3 (Curran et al. 2012).")] = None,
    answers: Annotated[Path | None, typer.Option(help="JSON file of the team's text by item number.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="markdown, html or json (for --out).")] = "markdown",
    out_file: Annotated[Path | None, typer.Option("--out", help="Write the checklist here.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")] = False,
) -> None:
    """Generate the StaRI checklist: filled from the project where knowdo knows, flagged where the team writes."""
    with _user_errors(as_json):
        check_option("format", fmt, FORMATS)
        config, tables = _project_tables(project)
        team = _answers(answers) if answers is not None else None
        evidence_result = None
        if "rollout" in tables and (tables["rollout"]["kind"] == "strategy").any() and "encounters" in tables:
            evidence_result = strategy_evidence(tables)
        logic = logic_model_from_rollout(tables["rollout"]) if "rollout" in tables else None
        checklist = stari_checklist(project=config, tables=tables, design=design, hybrid_type=hybrid_type,
                                    evidence=evidence_result, logic=logic, answers=team)
        text = {"markdown": checklist.to_markdown, "html": checklist.to_html,
                "json": lambda: json.dumps(checklist.to_dict(), indent=2)}[fmt]()
        if out_file is not None:
            out_file.write_text(text, encoding="utf-8")
        if as_json:
            _emit({**checklist.to_dict(), "written": str(out_file) if out_file else None})
            return
        if out_file is None:
            print(text)
        else:
            out.print(checklist.summary(), markup=False, highlight=False)
            out.print(f"Checklist written to [bold]{out_file}[/]")


def _answers(path: Path) -> dict[int, Any]:
    if not path.is_file():
        raise ParameterError(f"answers file {str(path)!r} does not exist.")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ParameterError(f"answers file {str(path)!r} is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise ParameterError(f"answers file {str(path)!r}: expected an object of item number -> text.")
    try:
        return {int(k): v for k, v in raw.items()}
    except ValueError:
        raise ParameterError(f"answers file {str(path)!r}: keys must be item numbers 1-27.") from None


def logic_model_command(
    project: Annotated[Path, typer.Argument(help="Project folder (holding knowdo.toml).")],
    mermaid: Annotated[bool, typer.Option("--mermaid", help="Print a Mermaid flowchart.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")] = False,
) -> None:
    """Draft a logic model from the project's rollout table, with what the data say about each link."""
    with _user_errors(as_json):
        _, tables = _project_tables(project)
        if "rollout" not in tables:
            raise StoreError(f"{project}: no rollout table in the store; run `knowdo run {project}` first.")
        model = logic_model_from_rollout(tables["rollout"])
        links = model.link_evidence(strategy_evidence(tables)) if "encounters" in tables else None
        if as_json:
            _emit({**model.to_dict(), "link_evidence": None if links is None else
                   json.loads(links.to_json(orient="records"))})
            return
        out.print(model.to_mermaid() if mermaid else model.summary(), markup=False, highlight=False)
