"""``knowdo equity``: HEAT Plus tables in, measures out as JSON; projects through disclosure control."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from knowdo.commands.equity import register
from knowdo.config import load_project
from knowdo.equity import read_heat_csv
from knowdo.pipeline import load_project_data
from knowdo.store import Store, build_panel

runner = CliRunner()


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer()
    register(app)

    @app.command("noop")
    def noop() -> None:  # a second command keeps typer from collapsing the app into one command
        """Nothing."""

    return app


def heat_csv(path: Path) -> Path:
    # ordered dimension y = 20, 30, 50: D = 50 - 20 = 30 (test_heat_measures.py shows the arithmetic)
    pd.DataFrame({
        "setting": "Country", "date": "2024", "source": "survey", "indicator_abbr": "cov", "indicator_name": "Coverage",
        "dimension": "wealth", "subgroup": ["Q1", "Q2", "Q3"], "estimate": [20.0, 30.0, 50.0], "se": [2.0, 3.0, 4.0],
        "population": [100, 200, 100], "favourable_indicator": 1, "ordered_dimension": 1, "subgroup_order": [1, 2, 3],
        "reference_subgroup": 0, "indicator_scale": 100, "setting_average": 32.5,
    }).to_csv(path, index=False)
    return path


def test_heat_file_to_json(app: typer.Typer, tmp_path: Path) -> None:
    result = runner.invoke(app, ["equity", "--heat", str(heat_csv(tmp_path / "h.csv")), "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    measures = {m["measure"]: m for m in payload["measures"]}
    assert measures["D"]["estimate"] == pytest.approx(30.0)
    assert set(measures) == {"D", "R", "ACI", "RCI", "SII", "RII", "PAR", "PAF"}  # the ordered set
    reasons = {(r["measure"], r["note"]) for r in payload["not_applicable"]}
    assert ("BGV", "needs a non-ordered dimension") in reasons


def test_heat_file_text_and_export(app: typer.Typer, tmp_path: Path) -> None:
    out = tmp_path / "back.csv"
    result = runner.invoke(app, ["equity", "--heat", str(heat_csv(tmp_path / "h.csv")), "--measure", "D",
                                 "--export", str(out)])
    assert result.exit_code == 0, result.output
    assert "WHO HEAT summary measures" in result.stdout
    assert len(read_heat_csv(out)) == 3


def test_user_errors_exit_1_with_a_message(app: typer.Typer, tmp_path: Path) -> None:
    result = runner.invoke(app, ["equity", "--json"])
    assert result.exit_code == 1
    assert "either a PROJECT" in json.loads(result.stdout)["message"]
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"indicator_abbr": ["x"], "dimension": ["d"], "subgroup": ["a"], "estimate": [1.0]}).to_csv(bad)
    result = runner.invoke(app, ["equity", "--heat", str(bad), "--json"])
    assert result.exit_code == 1
    assert "favourable_indicator" in json.loads(result.stdout)["message"]
    result = runner.invoke(app, ["equity", "--heat", str(tmp_path / "missing.csv")])
    assert result.exit_code == 1


def test_project_form_hides_small_cells(app: typer.Typer, tiny_dir: Path) -> None:
    project = load_project(tiny_dir)
    load_project_data(project)
    with Store.for_project(project) as store:
        build_panel(store, project)
    result = runner.invoke(app, ["equity", str(tiny_dir), "--outcome", "treatment_start", "--dimension", "sex",
                                 "--period", "all", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    # six people: every count is under the threshold of 11, so nothing is shown and no measure is published
    assert all(row["estimate"] is None for row in payload["subgroups"])
    assert payload["measures"] == []
    result = runner.invoke(app, ["equity", str(tiny_dir), "--outcome", "nonsense", "--json"])
    assert result.exit_code == 1 and "unknown outcome" in json.loads(result.stdout)["message"]


def test_project_without_panel_says_what_to_do(app: typer.Typer, tiny_dir: Path) -> None:
    project = load_project(tiny_dir)
    load_project_data(project)
    result = runner.invoke(app, ["equity", str(tiny_dir), "--json"])
    assert result.exit_code == 1
    assert "knowdo run" in json.loads(result.stdout)["message"]
