"""Loading a project folder into its store, and checking that a failed load changes nothing.

Shared by the change-log and append-mode tests, which load the same folder repeatedly.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from knowdo.config import load_project
from knowdo.ingest import read_and_validate
from knowdo.store import LoadSummary, Store

LOG_TABLES = ("loads", "change_log", "change_rows", "arrivals", "provenance")


def load(directory: Path) -> LoadSummary:
    """Validate the project folder and load it into its store, as ``knowdo load`` does."""
    project = load_project(directory)
    with Store.for_project(project) as store:
        return store.load(read_and_validate(project), project)


def snapshot(directory: Path) -> dict[str, pd.DataFrame]:
    """Every data table and change-log table of the project's store."""
    with Store.for_project(load_project(directory), read_only=True) as store:
        return {name: store.table(name) for name in [*store.row_counts(), *LOG_TABLES]}


def assert_unchanged(directory: Path, before: dict[str, pd.DataFrame]) -> None:
    """Every table of the store equals ``before`` (a :func:`snapshot`)."""
    after = snapshot(directory)
    assert before.keys() == after.keys()
    for name in before:
        pd.testing.assert_frame_equal(before[name], after[name], check_like=True)


def assert_failed_log_write_changes_nothing(
    directory: Path, monkeypatch: pytest.MonkeyPatch, before: dict[str, pd.DataFrame]
) -> None:
    """Load ``directory`` with a failure injected after the change log is written: the store still equals
    ``before``."""
    original = Store._log_changes

    def log_then_fail(self: Store, *args: object, **kwargs: object) -> None:
        original(self, *args, **kwargs)  # type: ignore[arg-type]
        raise RuntimeError("disk full")

    monkeypatch.setattr(Store, "_log_changes", log_then_fail)
    with pytest.raises(RuntimeError, match="disk full"):
        load(directory)
    assert_unchanged(directory, before)
