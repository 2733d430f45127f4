"""``knowdo export``: writes a project folder that ``knowdo ingest --check`` accepts; user errors exit 1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from knowdo.commands.export import register as register_export
from knowdo.commands.ingest import register as register_ingest
from knowdo.examples import generate_programme, write_project


@pytest.fixture(scope="module")
def project_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_project(generate_programme(seed=7, persons=150), tmp_path_factory.mktemp("project"))


def _app() -> typer.Typer:
    app = typer.Typer()
    register_export(app)
    register_ingest(app)
    return app


@pytest.mark.parametrize("fmt", ["dhis2-tracker", "omop"])
def test_export_then_ingest_check(project_dir: Path, tmp_path: Path, fmt: str) -> None:
    runner = CliRunner()
    target = tmp_path / "out"
    result = runner.invoke(_app(), ["export", fmt, str(project_dir), str(target), "--json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["format"] == fmt
    assert all((target / f).is_file() for f in record["files"])
    check = runner.invoke(_app(), ["ingest", str(target), "--check", "--json"])
    assert check.exit_code == 0, check.output


def test_text_output_warns_about_person_level_records(project_dir: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(_app(), ["export", "redcap", str(project_dir), str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    assert "Person-level records" in result.stdout
    assert "knowdo ingest" in result.stdout


def test_unknown_format_is_a_readable_error(project_dir: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(_app(), ["export", "hl7v2", str(project_dir), str(tmp_path / "x"), "--json"])
    assert result.exit_code == 1
    message = json.loads(result.stdout)
    assert message["ok"] is False and "hl7v2" in message["message"] and "fhir-bulk" in message["message"]


def test_never_overwrites_a_project(project_dir: Path) -> None:
    result = CliRunner().invoke(_app(), ["export", "fhir-bulk", str(project_dir), str(project_dir)])
    assert result.exit_code == 1
    assert "never overwrites" in result.output
