"""The complexity lens on the example programme: calibration recovers the generator's identifiable truths.

Truths (knowdo.examples): the usual-care start share is ``usual_care_start`` = 0.35
of positive screens (in the model: acceptance x P(start before leaving the list) =
acceptance x 2 / (2 + 1/9) with the default admin delay and patience); the
screen-positive rate per person in need at untreated sites comes from the
truth's expected cell counts. Capacity never binds in the generator, so burnout
must be reported as not identified.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from knowdo.commands.simulate import register, scheduler_address
from knowdo.complexity.section import ScenarioReport, scenario_section
from knowdo.config import Project, load_project
from knowdo.examples import ExampleProgramme, generate_programme, write_project
from knowdo.pipeline import load_project_data
from knowdo.store import Store, build_panel, read_panel

START_GIVEN_ACCEPTED = 2.0 / (2.0 + 1.0 / 9.0)  # 1/admin_delay over (1/admin_delay + 1/patience), defaults 0.5 and 9


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> tuple[ExampleProgramme, Project, pd.DataFrame]:
    programme = generate_programme(seed=0, persons=12_000)
    folder = write_project(programme, tmp_path_factory.mktemp("example"))
    project = load_project(folder)
    load_project_data(project)
    with Store.for_project(project) as store:
        build_panel(store, project)
        panel = read_panel(store)
    return programme, project, panel


@pytest.fixture(scope="module")
def report(example: tuple[ExampleProgramme, Project, pd.DataFrame]) -> ScenarioReport:
    _, project, panel = example
    return scenario_section(panel, project, draws=30, horizon=12, particles=150, sobol_n=64, seed=1)


def test_calibration_recovers_the_generators_identifiable_parameters(example, report: ScenarioReport) -> None:
    programme, _, panel = example
    est = report.calibration.estimates.set_index("parameter")
    usual = programme.truth.parameters.usual_care_start
    lo, hi = est.loc["acceptance_specialist", ["conf_low", "conf_high"]] * START_GIVEN_ACCEPTED
    assert lo <= usual <= hi
    cells = programme.truth.cells
    untreated = cells[(cells["outcome"] == "positive_per_1000") & (cells["dimension"] == "all")
                      & cells["event_time"].isna()]
    positives = float((untreated["expected"] * untreated["population"]).sum() / 1000)
    keys = untreated[["site_id", "period"]].astype({"period": "datetime64[us]"})
    rows = panel[panel["dimension"] == "all"].merge(keys, on=["site_id", "period"])
    truth_detection = positives / float(rows["need"].sum())
    assert est.loc["detection", "conf_low"] <= truth_detection <= est.loc["detection", "conf_high"]
    assert est.loc["burnout_lay", "identified"] == "not identified"
    assert report.dimension == "wealth_quintile"


def test_section_serialises_draws_charts_and_speaks(report: ScenarioReport) -> None:
    payload = json.loads(json.dumps(report.to_dict()))
    assert payload["scenarios"]["scenarios"][0] == "Current programme"
    assert {r["stratum"] for r in payload["scenarios"]["gains"]} == {"Q1", "Q2", "Q3", "Q4", "Q5"}
    sentences = report.sentences()
    assert any("held-out months" in s for s in sentences)
    assert any("cannot pin down burnout_lay" in s for s in sentences)
    assert any("Who gains" in s for s in sentences)
    charts = report.charts()
    assert len(charts) >= 8 and all(c.to_dict() for c in charts)
    assert np.isfinite(report.adoption_fit["external"])


def test_cli_simulate_runs_scenarios_from_toml(example, tmp_path: Path) -> None:
    _, project, _ = example
    plans = tmp_path / "plans.toml"
    plans.write_text('[[scenario]]\nname = "SMS reminders"\n[[scenario.change]]\nparameter = "dropout_lay"\n'
                     'op = "scale"\nvalue = 0.8\n', encoding="utf-8")
    app = typer.Typer()
    register(app)
    app.command("noop")(lambda: None)  # a second command keeps typer's sub-command parsing
    runner = CliRunner()
    result = runner.invoke(app, ["simulate", str(project.root), "--scenario", str(plans), "--draws", "10",
                                 "--horizon", "6", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["ok"] and payload["scenarios"]["scenarios"] == ["Current programme", "SMS reminders"]
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "knowdo.toml").write_text((project.root / "knowdo.toml").read_text(encoding="utf-8"), encoding="utf-8")
    missing = runner.invoke(app, ["simulate", str(empty), "--json"])
    assert missing.exit_code == 1 and "no project store" in json.loads(missing.stdout)["message"]
    text = runner.invoke(app, ["simulate", str(empty)])
    assert text.exit_code == 1 and "StoreError" in text.output
    with (empty / "knowdo.toml").open("a", encoding="utf-8") as handle:
        handle.write('\n[simulation]\nscheduler = "tcp://scheduler.example:8786"\n')
    assert scheduler_address(load_project(empty)) == "tcp://scheduler.example:8786"
    assert scheduler_address(project) is None
