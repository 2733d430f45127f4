"""Shared fixtures: the hand-computable tiny project and the shared reference folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import tiny_project

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts"


@pytest.fixture
def tiny_dir(tmp_path: Path) -> Path:
    """A freshly written copy of the tiny project (see tests/tiny_project.py)."""
    return tiny_project.write(tmp_path / "tiny")


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The shared reference folder (../shared), or KNOWDO_SHARED_DIR."""
    path = Path(os.environ.get("KNOWDO_SHARED_DIR", REPO.parent / "shared"))
    if not path.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"the shared reference folder {path} is missing under CI")
        pytest.skip(f"the shared reference folder {path} is not present in this clone")
    return path
