"""The core commands: readable errors, JSON output, and the data dictionary kept in step with the schema."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import tiny_project
from knowdo.commands.project import render_dictionary

REPO = Path(__file__).resolve().parents[2]


def _knowdo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "knowdo", *args], capture_output=True, text=True, timeout=300)


def test_dictionary_in_docs_is_generated_from_the_schema() -> None:
    assert (REPO / "docs" / "data-dictionary.md").read_text(encoding="utf-8") == render_dictionary() + "\n"


def test_validate_reports_bad_data_without_a_traceback(tmp_path: Path) -> None:
    frames = tiny_project.tables()
    frames["encounters"].loc[3, "site_id"] = "NOWHERE"
    directory = tiny_project.write(tmp_path / "p", frames)
    result = _knowdo("validate", str(directory))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr + result.stdout
    assert "encounters.csv, row 5, column 'site_id': [foreign-key]" in result.stderr
    as_json = _knowdo("validate", str(directory), "--json")
    assert as_json.returncode == 1
    problems = json.loads(as_json.stdout)["problems"]
    assert problems[0]["rule"] == "foreign-key" and problems[0]["row"] == 5


def test_validate_and_load_good_project(tmp_path: Path) -> None:
    directory = tiny_project.write(tmp_path / "p")
    result = _knowdo("validate", str(directory), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["rows"]["encounters"] == 17
    loaded = _knowdo("load", str(directory), "--json")
    assert loaded.returncode == 0, loaded.stderr
    assert json.loads(loaded.stdout)["rows"]["persons"] == 6


def test_missing_project_is_explained(tmp_path: Path) -> None:
    result = _knowdo("run", str(tmp_path / "nowhere"))
    assert result.returncode == 1
    assert "knowdo.toml" in result.stderr and "Traceback" not in result.stderr


def test_every_listed_command_loads_under_its_name() -> None:
    from knowdo.cli import COMMANDS, load_command

    for name in COMMANDS:
        assert load_command(name).name == name


def test_help_lists_every_command_without_importing_them() -> None:
    probe = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from knowdo.cli import COMMANDS, app\n"
        "result = CliRunner().invoke(app, ['--help'])\n"
        "assert result.exit_code == 0, result.output\n"
        "missing = [name for name in COMMANDS if name not in result.output]\n"
        "heavy = [m for m in ('knowdo.pipeline', 'knowdo.designs', 'knowdo.web', 'pandas') if m in sys.modules]\n"
        "print(missing, heavy)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[] []"
