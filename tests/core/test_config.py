"""knowdo.toml parsing: good files become a Project, bad ones a ConfigError that says what to fix."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from pathlib import Path

import pytest

import tiny_project
from knowdo.config import load_project
from knowdo.errors import ConfigError


def test_tiny_project_reads(tiny_dir: Path) -> None:
    project = load_project(tiny_dir)
    assert project.start == dt.date(2024, 1, 1) and project.end == dt.date(2024, 6, 30)
    assert project.disclosure_threshold == 11
    assert project.stratum("sex").levels == ("female", "male")
    assert project.outcomes.adequate_sessions == 6 and project.outcomes.positive_threshold == 10
    assert {s.table for s in project.sources} >= {"sites", "persons", "encounters"}


@pytest.mark.parametrize(
    ("replace", "by", "message"),
    [
        ("start = 2024-01-01", "start = 2025-01-01", "after end"),
        ("start = 2024-01-01", "start = 'soon'", "must be a date"),
        ("threshold = 11", "threshold = 0", "positive integer"),
        ("adequate_sessions = 6", "adequate_sessions = 'six'", "must be int"),
        ("adequate_sessions = 6", "sessions_wanted = 6", "unknown keys"),
        ('category = "Gender/sex"', 'category = "Gender"', "PROGRESS-Plus"),
        ('levels = ["female", "male"]', "levels = []", "levels"),
        ('table = "sites"', 'table = "clinics"', "expected one of"),
        ("[project]", "[projekt]", "missing [project]"),
        ("end = 2024-06-30", "end = 2024-06-30\nend = 2024-07-01", "not valid TOML"),
    ],
)
def test_bad_config_is_explained(tiny_dir: Path, replace: str, by: str, message: str) -> None:
    file = tiny_dir / "knowdo.toml"
    text = file.read_text()
    assert replace in text
    file.write_text(text.replace(replace, by, 1))
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_project(tiny_dir)


def test_missing_project_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="knowdo demo"):
        load_project(tmp_path)


def test_reference_level_must_exist(tmp_path: Path) -> None:
    directory = tiny_project.write(tmp_path / "p", extra_config="")
    file = directory / "knowdo.toml"
    file.write_text(file.read_text().replace('ordered = false', 'ordered = false\nreference = "other"'))
    with pytest.raises(ConfigError, match="reference"):
        load_project(directory)


def test_starts_are_complete_through_the_window_before_the_end(tiny_dir: Path) -> None:
    project = load_project(tiny_dir)
    # end 2024-06-30 with the default 90-day start window: screens from April on may still start.
    assert project.starts_complete_through == dt.date(2024, 3, 1)
    longer = dataclasses.replace(project, outcomes=dataclasses.replace(project.outcomes, start_window_days=100))
    assert longer.starts_complete_through == dt.date(2024, 2, 1)  # 100 days need a fourth month
