"""The store's change log: every load records what it added, removed and corrected, transactionally.

Expected figures are counted by hand from tests/tiny_project.py (6 persons,
2 clinics x 6 months x 3 population cells = 36 population rows, 3 cost rows).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from load_support import assert_failed_log_write_changes_nothing, load, snapshot

import tiny_project
from knowdo.config import load_project
from knowdo.store import Store


def _without_june() -> dict[str, pd.DataFrame]:
    frames = tiny_project.tables()
    frames["population"] = frames["population"][frames["population"]["period"] != "2024-06-01"]
    return frames


def test_same_pull_twice_logs_no_change(tmp_path: Path) -> None:
    directory = tiny_project.write(tmp_path / "p", _without_june())
    first = load(directory)
    second = load(directory)
    assert first.changes is not None and first.changes.changed
    assert second.changes is not None and not second.changes.changed and second.unchanged
    assert second.changes.summary() == "No change since the last load."
    with Store.for_project(load_project(directory), read_only=True) as store:
        loads = store.loads()
        log = store.change_log().set_index(["load_id", "table_name"])
        assert store.change_rows(load_id=2).empty
        assert len(store.change_rows(load_id=1)) == sum(store.row_counts().values())  # every key added once
    assert loads["changed"].tolist() == [True, False]
    assert log.loc[(1, "population"), "added"] == 30  # 2 clinics x 5 months x 3 cells
    assert log.loc[(1, "population"), "new_periods"] == "2024-01,2024-02,2024-03,2024-04,2024-05"
    assert log.loc[(2, "population"), ["added", "removed", "corrected", "unchanged"]].tolist() == [0, 0, 0, 30]
    assert (log.xs(2, level="load_id")[["added", "removed", "corrected"]] == 0).all().all()


def test_new_month_correction_and_removal_are_logged(tmp_path: Path) -> None:
    directory = tiny_project.write(tmp_path / "p", _without_june())
    load(directory)
    frames = tiny_project.tables()  # June's population arrives
    frames["persons"].loc[frames["persons"]["person_id"] == "P2", "birth_year"] = "1976"  # corrected 1975 -> 1976
    frames["costs"] = frames["costs"].iloc[:2]  # the February stipends row is withdrawn
    tiny_project.write(directory, frames)
    summary = load(directory)
    assert summary.changes is not None
    by_table = {t.table: t for t in summary.changes.tables}
    assert (by_table["population"].added, by_table["population"].new_periods) == (6, ("2024-06",))
    assert (by_table["persons"].corrected, by_table["persons"].unchanged) == (1, 5)
    assert by_table["costs"].removed == 1
    with Store.for_project(load_project(directory), read_only=True) as store:
        rows = store.change_rows(load_id=2)
        persons = store.table("persons").set_index("person_id")
        arrivals = store.arrivals()
    corrected = rows[rows["change"] == "corrected"]
    assert corrected[["table_name", "key", "column_name", "before", "after"]].values.tolist() == [
        ["persons", "P2", "birth_year", "1975", "1976"]]
    assert rows.loc[rows["change"] == "removed", "key"].tolist() == ["D1-C1, 2024-02-01, stipends"]
    assert int(persons.loc["P2", "birth_year"]) == 1976  # the corrected value replaced the old one
    june = arrivals[(arrivals["table_name"] == "population") & (arrivals["period"] == pd.Timestamp("2024-06-01"))]
    january = arrivals[(arrivals["table_name"] == "population") & (arrivals["period"] == pd.Timestamp("2024-01-01"))]
    assert set(june["load_id"]) == {2} and set(january["load_id"]) == {1}  # first arrival is kept


def test_failed_load_leaves_tables_and_log_as_they_were(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    directory = tiny_project.write(tmp_path / "p", _without_june())
    load(directory)
    before = snapshot(directory)
    tiny_project.write(directory, tiny_project.tables())
    assert_failed_log_write_changes_nothing(directory, monkeypatch, before)
