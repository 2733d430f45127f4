"""The co-production commands on a fresh Typer app, on files and on a loaded example project."""

from __future__ import annotations

import json
from pathlib import Path

import openpyxl
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from knowdo.commands.codesign import register
from knowdo.config import load_project
from knowdo.examples import generate_programme, write_project
from knowdo.ingest import read_and_validate
from knowdo.store import Store, build_panel
from knowdo.strategies.evidence import strategy_evidence

runner = CliRunner()


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, pd.DataFrame]]:
    programme = generate_programme(seed=5, persons=5_000)
    folder = write_project(programme, tmp_path_factory.mktemp("example"), fmt="parquet")
    config = load_project(folder)
    with Store.for_project(config) as store:
        store.load(read_and_validate(config), config)
        build_panel(store, config)
    return folder, programme.tables


def invoke(app: typer.Typer, *args: str) -> dict:  # type: ignore[type-arg]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["ok"] is True
    return payload


def test_list_and_constructs(app: typer.Typer) -> None:
    assert len(invoke(app, "strategies", "list")["strategies"]) == 73
    assert [s["name"] for s in invoke(app, "strategies", "list", "--cluster", "2")["strategies"]] == [
        "Facilitation", "Provide local technical assistance", "Provide clinical supervision",
        "Centralize technical assistance"]
    assert len(invoke(app, "strategies", "constructs", "--framework", "cfir1")["constructs"]) == 39
    text = runner.invoke(app, ["strategies", "list"])
    assert text.exit_code == 0 and "Facilitation" in text.stdout


def ratings_csv(path: Path) -> Path:
    pd.DataFrame({"member": ["a", "b", "c"], "group": ["researcher", "implementer", "community_partner"],
                  "construct": ["Innovation Cost"] * 3, "valence": [-2, -1, -2], "importance": [5, 4, 5],
                  "evidence": ["", "sessions cost transport money", ""]}).to_csv(path, index=False)
    return path


def workbook(path: Path) -> Path:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["ERIC strategy", "Cost", "Complexity", "Planning"])
    for name, values in {"Access new funding": [0.6, 0.05, 0.08], "Facilitation": [0.1, 0.3, 0.23],
                         "Tailor strategies": [0.2, 0.27, 0.12], "Promote adaptability": [0.05, 0.4, 0.0],
                         "Use other payment schemes": [0.3, 0.0, 0.0]}.items():
        sheet.append([name, *values])
    book.save(path)
    return path


def test_assess_and_match(app: typer.Typer, tmp_path: Path) -> None:
    ratings = ratings_csv(tmp_path / "ratings.csv")
    assessed = invoke(app, "strategies", "assess", str(ratings))
    assert assessed["priorities"][0]["construct"] == "innovation_cost"
    matched = invoke(app, "strategies", "match", "--barriers", str(ratings), "--workbook",
                     str(workbook(tmp_path / "tool.xlsx")))
    assert matched["mode"] == "workbook" and matched["strategies"][0]["strategy"] == "Access new funding"
    assert matched["strategies"][0]["n_level1"] == 1 and "not evidence of effectiveness" in matched["note"]
    pd.DataFrame({"construct": ["Critical Incidents", "Available Resources"]}).to_csv(tmp_path / "b.csv", index=False)
    listed = invoke(app, "strategies", "match", "--barriers", str(tmp_path / "b.csv"))
    assert listed["mode"] == "by_cluster" and listed["unmatched"] == ["Critical Incidents"]


def test_user_errors_exit_1_with_a_message(app: typer.Typer, tmp_path: Path) -> None:
    result = runner.invoke(app, ["strategies", "match", "--barriers", str(tmp_path / "nope.csv"), "--json"])
    assert result.exit_code == 1
    assert json.loads(result.stdout) == {"ok": False, "error": "ParameterError",
                                         "message": f"barriers file {str(tmp_path / 'nope.csv')!r} does not exist."}
    text = runner.invoke(app, ["strategies", "evidence", str(tmp_path)])
    assert text.exit_code == 1 and "ConfigError" in text.output


def test_delphi_commands(app: typer.Typer, tmp_path: Path) -> None:
    pd.DataFrame({"round": 1, "item": "Q1", "participant": list("abcdefghij"),
                  "rating": [9, 8, 8, 7, 7, 7, 7, 5, 4, 2]}).to_csv(tmp_path / "votes.csv", index=False)
    out = invoke(app, "delphi", "summarise", str(tmp_path / "votes.csv"))
    assert out["final"][0]["status"] == "consensus_in" and out["rules"]["rule"] == "percent"
    rand = invoke(app, "delphi", "summarise", str(tmp_path / "votes.csv"), "--rule", "rand_ucla")
    assert rand["final"][0]["status"] in {"appropriate", "uncertain"}
    pd.DataFrame({"participant": ["a", "a", "b", "b"], "item": ["X", "Y", "X", "Y"], "rank": [1, 2, 1, 2]}).to_csv(
        tmp_path / "ranks.csv", index=False)
    ranked = invoke(app, "delphi", "rank", str(tmp_path / "ranks.csv"))
    assert [r["item"] for r in ranked["items"]] == ["X", "Y"]
    bad = runner.invoke(app, ["delphi", "summarise", str(tmp_path / "votes.csv"), "--rule", "vibes"])
    assert bad.exit_code == 1 and "rule='vibes'" in bad.output


def test_project_commands(app: typer.Typer, project: tuple[Path, dict[str, pd.DataFrame]], tmp_path: Path) -> None:
    folder, tables = project
    from_store = invoke(app, "strategies", "evidence", str(folder))
    # the store path (panel, providers with sessions_delivered) gives the same estimates as the raw tables
    raw = strategy_evidence(tables).estimates
    store_est = pd.DataFrame(from_store["estimates"])
    pd.testing.assert_series_equal(store_est["estimate"].astype(float), raw["estimate"].astype(float),
                                   check_names=False, rtol=1e-6)
    html = tmp_path / "stari.html"
    stari = invoke(app, "stari", str(folder), "--design", "staggered rollout", "--hybrid-type", "2", "--format", "html",
                   "--out", str(html))
    filled = {i["number"] for i in stari["items"] if i["status"] == "filled"}
    assert filled == {6, 8, 11, 13, 16, 17, 20}  # design, sites, outcomes, economics, strata, characteristics, costs
    assert html.read_text().startswith("<!DOCTYPE html>")
    model = invoke(app, "logic-model", str(folder))
    assert any(link["evidence"] == "estimate" for link in model["link_evidence"])
    mermaid = runner.invoke(app, ["logic-model", str(folder), "--mermaid"])
    assert mermaid.exit_code == 0 and mermaid.stdout.startswith("flowchart LR")
