"""``knowdo ingest``: reads connector sources, loads all-or-nothing, explains failures (exit 1).

Also the validation it runs: rows a connector made are located by their source record, and the
connector's warnings reach the user.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from knowdo.commands.ingest import register
from knowdo.config import Project
from knowdo.errors import Problem, SchemaError
from knowdo.ingest import RawSource
from knowdo.ingest.mapping import CHIS_STRATA
from knowdo.ingest.validate import validate_sources

app = typer.Typer()
register(app)
app.command("noop", hidden=True)(lambda: None)  # a second command keeps typer from flattening 'ingest'


def _write(root: Path, examples: Path, data_file: str) -> Path:
    root.mkdir()
    equity = "".join(f'[equity.{name}]\ncategory = "{"Age" if name == "age_band" else "Gender/sex"}"\n'
                     f"levels = {json.dumps(list(levels))}\n" for name, levels in CHIS_STRATA.items())
    (root / "knowdo.toml").write_text(f"""
[project]
name = "CHIS"
start = 2023-01-01
end = 2025-12-31

{equity}
[[sources]]
kind = "dhis2-datavalues"
path = "{examples / data_file}"
mapping = "chis-mental-health"
org_units = "{examples / 'dhis2_organisationUnits.json'}"
org_unit_levels = "{examples / 'dhis2_organisationUnitLevels.json'}"
""")
    return root


def test_ingest_loads_and_reports(shared_dir: Path, tmp_path: Path) -> None:
    examples = shared_dir / "domain" / "data-standards-examples"
    project = _write(tmp_path / "p", examples, "dhis2_dataValueSets_export.json")
    runner = CliRunner()
    checked = runner.invoke(app, ["ingest", str(project), "--check", "--json"])
    assert checked.exit_code == 0, checked.output
    body = json.loads(checked.stdout)
    assert body["rows"] == {"sites": 3, "aggregates": 7} and "load" not in body
    # one month of 36 reported by the one facility, for each of the two indicators
    completeness = body["data_quality"]["completeness"]
    assert [(c["site_id"], c["reported"], c["expected"]) for c in completeness] == [
        ("DiszpKrYNg8", 1, 36), ("DiszpKrYNg8", 1, 36)]
    assert not (project / "knowdo.duckdb").exists()
    loaded = runner.invoke(app, ["ingest", str(project), "--json"])
    assert loaded.exit_code == 0 and json.loads(loaded.stdout)["load"]["load_id"] == 1
    again = runner.invoke(app, ["ingest", str(project)])
    assert again.exit_code == 0 and "same files as the last load" in again.stdout
    assert "No change since the last load." in again.stdout


def test_a_corrected_value_and_a_new_month_are_reported(shared_dir: Path, tmp_path: Path) -> None:
    examples = shared_dir / "domain" / "data-standards-examples"
    body = json.loads((examples / "dhis2_dataValueSets_export.json").read_text())
    data = tmp_path / "pull.json"
    data.write_text(json.dumps(body))
    project = _write(tmp_path / "p", tmp_path, "pull.json")
    (project / "knowdo.toml").write_text((project / "knowdo.toml").read_text().replace(
        f'"{tmp_path / "dhis2_organisationUnits.json"}"', f'"{examples / "dhis2_organisationUnits.json"}"').replace(
        f'"{tmp_path / "dhis2_organisationUnitLevels.json"}"', f'"{examples / "dhis2_organisationUnitLevels.json"}"'))
    runner = CliRunner()
    assert runner.invoke(app, ["ingest", str(project)]).exit_code == 0
    body["dataValues"][0]["value"] = "15"  # 20-39 female assessed: 14 corrected to 15
    body["dataValues"].append(dict(body["dataValues"][1], period="202402", value="5"))
    data.write_text(json.dumps(body))
    result = runner.invoke(app, ["ingest", str(project), "--json"])
    assert result.exit_code == 0, result.output
    changes = {t["table"]: t for t in json.loads(result.stdout)["changes"]["tables"]}
    aggregates = changes["aggregates"]
    # corrected: screened all 23->24, female 14->15, age 20-39 23->24; added for 2024-02: all, male, age 20-39
    assert (aggregates["corrected"], aggregates["added"], aggregates["removed"]) == (3, 3, 0)
    assert aggregates["new_periods"] == ["2024-02"]
    assert not changes["sites"]["added"] and not changes["sites"]["corrected"]


def test_ingest_failure_is_located(shared_dir: Path, tmp_path: Path) -> None:
    examples = shared_dir / "domain" / "data-standards-examples"
    project = _write(tmp_path / "p", examples, "dhis2_dataValueSets_export.csv")
    result = CliRunner().invoke(app, ["ingest", str(project), "--json"])
    assert result.exit_code == 1
    [problem] = json.loads(result.stdout)["problems"]
    assert (problem["rule"], problem["row"], problem["value"]) == ("dhis2-period-type", 11, "2024W5")
    text = CliRunner().invoke(app, ["ingest", str(project)])
    assert text.exit_code == 1 and "nothing was loaded" in text.stderr


def test_connector_rows_are_located_by_source_record_and_warnings_kept(tmp_path: Path) -> None:
    project = Project(root=tmp_path, name="t", start=dt.date(2024, 1, 1), end=dt.date(2024, 12, 31), sources=(),
                      strata=())
    sites = pd.DataFrame({"site_id": ["A", "B"], "level": ["facility", "hospital"],
                          "_source_record": ["organisationUnits[0]", "organisationUnits[1]"]})
    warning = Problem("ou.json organisationUnits[2]", "no-level", "skipped", severity="warning")
    source = RawSource("sites", tmp_path / "ou.json", sites, "0" * 64, (warning,), origin="ou.json [sites]")
    with pytest.raises(SchemaError) as caught:
        validate_sources([source], project)
    [problem] = caught.value.problems
    # the connector's own record, not line 3 of a file that does not exist
    assert (problem.file, problem.row, problem.column) == ("ou.json [sites] organisationUnits[1]", None, "level")
    keyed = RawSource("sites", tmp_path / "ou.json", sites.drop(columns="_source_record").iloc[:1], "0" * 64,
                      (warning,), origin="ou.json [sites]")
    data = validate_sources([keyed], project)
    assert data.warnings == (warning,)  # the connector's warning is kept, once
    bad = keyed.frame.assign(level="hospital")  # type: ignore[union-attr]
    with pytest.raises(SchemaError) as caught:
        validate_sources([RawSource("sites", keyed.path, bad, None, origin="ou.json [sites]")], project)
    assert caught.value.problems[0].file == "ou.json [sites] record site_id=A"


def test_data_quality_after_an_appended_pull_counts_the_stored_months(shared_dir: Path, tmp_path: Path) -> None:
    examples = shared_dir / "domain" / "data-standards-examples"
    body = json.loads((examples / "dhis2_dataValueSets_export.json").read_text())
    first_month = {v["period"] for v in body["dataValues"]}
    assert len(first_month) == 1  # the example pull holds one month; the second pull below holds only the next
    data = tmp_path / "pull.json"
    data.write_text(json.dumps(body))
    project = _write(tmp_path / "p", tmp_path, "pull.json")
    config = project / "knowdo.toml"
    config.write_text(config.read_text().replace(
        f'"{tmp_path / "dhis2_organisationUnits.json"}"', f'"{examples / "dhis2_organisationUnits.json"}"').replace(
        f'"{tmp_path / "dhis2_organisationUnitLevels.json"}"', f'"{examples / "dhis2_organisationUnitLevels.json"}"')
        + 'mode = "append"\n')
    runner = CliRunner()
    assert runner.invoke(app, ["ingest", str(project)]).exit_code == 0
    body["dataValues"] = [dict(v, period="202402") for v in body["dataValues"]]
    data.write_text(json.dumps(body))
    result = runner.invoke(app, ["ingest", str(project), "--json"])
    assert result.exit_code == 0, result.output
    completeness = json.loads(result.stdout)["data_quality"]["completeness"]
    # the pull alone has one month per series; the stored (merged) table has two
    assert [(c["reported"], c["expected"]) for c in completeness] == [(2, 36), (2, 36)]
