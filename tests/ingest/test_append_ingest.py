"""Append-mode loads: a source with ``mode = "append"`` is upserted into the store by key, not swapped in.

Expected figures are counted by hand from tests/tiny_project.py: population
has 2 clinics x 3 cells (all, female, male) = 6 rows a month, so a pull of
January-March is 18 rows and April-June another 18; D1-C1's 'all' cell is
1000 people every month.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import typer
from load_support import LOG_TABLES, assert_failed_log_write_changes_nothing, load, snapshot
from typer.testing import CliRunner

import tiny_project
from knowdo.commands.ingest import register
from knowdo.config import load_project, parse_project
from knowdo.errors import ConfigError, SchemaError
from knowdo.ingest import read_and_validate
from knowdo.store import Store
from knowdo.store.database import append_tables

FIRST_QUARTER = ("2024-01-01", "2024-02-01", "2024-03-01")

app = typer.Typer()
register(app)
app.command("noop", hidden=True)(lambda: None)  # a second command keeps typer from flattening 'ingest'


def _write(directory: Path, frames: dict[str, pd.DataFrame], *, append: tuple[str, ...] = ("population",)) -> Path:
    """The tiny project with ``frames``; the sources of the ``append`` tables get ``mode = "append"``."""
    tiny_project.write(directory, frames)
    config = directory / "knowdo.toml"
    text = config.read_text(encoding="utf-8")
    for name in append:
        entry = f'table = "{name}"\npath = "data/{name}.csv"\n'
        assert entry in text
        text = text.replace(entry, entry + 'mode = "append"\n')
    config.write_text(text, encoding="utf-8")
    return directory


def _months(months: tuple[str, ...], frames: dict[str, pd.DataFrame] | None = None) -> dict[str, pd.DataFrame]:
    frames = tiny_project.tables() if frames is None else frames
    frames["population"] = frames["population"][frames["population"]["period"].isin(months)].reset_index(drop=True)
    return frames


def _second_quarter() -> tuple[str, ...]:
    return ("2024-04-01", "2024-05-01", "2024-06-01")


def _population(directory: Path) -> pd.DataFrame:
    with Store.for_project(load_project(directory), read_only=True) as store:
        return store.table("population")


def _log(directory: Path) -> pd.DataFrame:
    with Store.for_project(load_project(directory), read_only=True) as store:
        return store.change_log().set_index(["load_id", "table_name"])


def test_two_monthly_pulls_give_the_union(tmp_path: Path) -> None:
    directory = _write(tmp_path / "p", _months(FIRST_QUARTER))
    first = load(directory)
    _write(directory, _months(_second_quarter()))
    second = load(directory)
    assert first.appended == ("population",) and second.to_dict()["appended"] == ["population"]
    population = _population(directory)
    assert len(population) == 36  # 18 + 18, nothing dropped
    months = sorted(population["period"].dt.strftime("%Y-%m-%d").unique())
    assert months == sorted([*FIRST_QUARTER, *_second_quarter()])
    assert not population.duplicated(["site_id", "period", "dimension", "stratum"]).any()
    log = _log(directory)
    assert log.loc[(2, "population"), ["added", "removed", "corrected", "unchanged"]].tolist() == [18, 0, 0, 18]
    assert log.loc[(2, "population"), "new_periods"] == "2024-04,2024-05,2024-06"
    assert (log.xs(2, level="load_id").drop(index="population")[["added", "removed", "corrected"]] == 0).all().all()
    with Store.for_project(load_project(directory), read_only=True) as store:
        rows = store.change_rows(load_id=2)
        arrivals = store.arrivals()
    assert set(rows["change"]) == {"added"} and len(rows) == 18
    population_arrivals = arrivals[arrivals["table_name"] == "population"].set_index("period")["load_id"]
    assert population_arrivals.loc[pd.Timestamp("2024-01-01")].tolist() == [1, 1]  # two clinics, first load
    assert population_arrivals.loc[pd.Timestamp("2024-06-01")].tolist() == [2, 2]


def test_same_pull_twice_adds_nothing(tmp_path: Path) -> None:
    directory = _write(tmp_path / "p", _months(FIRST_QUARTER))
    load(directory)
    _write(directory, _months(_second_quarter()))
    load(directory)
    before = snapshot(directory)
    again = load(directory)  # the April-June pull re-run
    assert again.unchanged and again.changes is not None and not again.changes.changed
    assert again.changes.summary() == "No change since the last load."
    after = snapshot(directory)
    for name in before:
        if name not in LOG_TABLES:
            pd.testing.assert_frame_equal(before[name], after[name], check_like=True)
    log = _log(directory)
    assert log.loc[(3, "population"), ["added", "removed", "corrected", "unchanged"]].tolist() == [0, 0, 0, 36]
    assert after["loads"]["changed"].tolist() == [True, True, False]
    assert after["change_rows"]["load_id"].eq(3).sum() == 0


def test_corrected_value_replaces_the_old_one_and_is_logged(tmp_path: Path) -> None:
    directory = _write(tmp_path / "p", _months(FIRST_QUARTER))
    load(directory)
    frames = _months(("2024-03-01", *_second_quarter()))  # the April-June pull also resends March...
    population = frames["population"]
    march_total = (population["site_id"] == "D1-C1") & (population["period"] == "2024-03-01") & \
        (population["dimension"] == "all")
    assert march_total.sum() == 1
    population.loc[march_total, "population"] = "1010"  # ...with one value corrected 1000 -> 1010
    _write(directory, frames)
    summary = load(directory)
    assert summary.changes is not None
    change = {t.table: t for t in summary.changes.tables}["population"]
    # 18 new (April-June), 1 corrected, 5 March rows resent unchanged + 12 January-February rows kept
    assert (change.added, change.corrected, change.removed, change.unchanged) == (18, 1, 0, 17)
    with Store.for_project(load_project(directory), read_only=True) as store:
        rows = store.change_rows(load_id=2)
        stored = store.table("population")
    corrected = rows[rows["change"] == "corrected"]
    assert corrected[["table_name", "key", "column_name", "before", "after"]].values.tolist() == [
        ["population", "D1-C1, 2024-03-01, all, all", "population", "1000", "1010"]]
    assert len(stored) == 36
    cell = stored[(stored["site_id"] == "D1-C1") & (stored["period"] == pd.Timestamp("2024-03-01"))
                  & (stored["dimension"] == "all")]
    assert cell["population"].tolist() == [1010]


def _aggregates(values: dict[str, int]) -> pd.DataFrame:
    return pd.DataFrame({"site_id": "D1-C1", "period": "2024-01-01", "indicator": list(values),
                         "dimension": "all", "stratum": "all", "value": [str(v) for v in values.values()]})


def test_failing_append_leaves_store_and_log_unchanged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    frames = _months(FIRST_QUARTER)
    frames["aggregates"] = _aggregates({"screened": 5, "positive": 3})
    directory = _write(tmp_path / "p", frames, append=("population", "aggregates"))
    load(directory)
    before = snapshot(directory)

    # A bad row in the pull itself: stopped by validation before the store is opened.
    bad = _months(_second_quarter())
    bad["aggregates"] = _aggregates({"positive": 3})
    bad["population"].loc[0, "population"] = "-5"
    _write(directory, bad, append=("population", "aggregates"))
    with pytest.raises(SchemaError, match="at least 0"):
        load(directory)

    # A pull that passes alone but not once merged: 7 positive in a cell where the store keeps 5 screened.
    merged_bad = _months(_second_quarter())
    merged_bad["aggregates"] = _aggregates({"positive": 7})
    _write(directory, merged_bad, append=("population", "aggregates"))
    project = load_project(directory)
    data = read_and_validate(project)  # the pull alone passes every rule
    with Store.for_project(project) as store, pytest.raises(SchemaError) as caught:
        store.load(data, project)
    assert [p.rule for p in caught.value.problems] == ["cascade-order"]
    assert "stored rows merged" in caught.value.problems[0].file

    # A failure while writing the merged tables and the log: rolled back.
    good = _months(_second_quarter())
    good["aggregates"] = _aggregates({"positive": 4})
    _write(directory, good, append=("population", "aggregates"))
    assert_failed_log_write_changes_nothing(directory, monkeypatch, before)


def test_replace_mode_still_swaps_the_table(tmp_path: Path) -> None:
    directory = _write(tmp_path / "p", _months(FIRST_QUARTER), append=())
    first = load(directory)
    _write(directory, _months(_second_quarter()), append=())
    second = load(directory)
    assert first.appended == () and "appended" not in second.to_dict()
    population = _population(directory)
    assert sorted(population["period"].dt.strftime("%Y-%m-%d").unique()) == list(_second_quarter())
    log = _log(directory)
    assert log.loc[(2, "population"), ["added", "removed", "corrected", "unchanged"]].tolist() == [18, 18, 0, 0]


def test_mode_is_read_and_checked_in_the_project_file(tmp_path: Path) -> None:
    directory = _write(tmp_path / "p", _months(FIRST_QUARTER))
    project = load_project(directory)
    modes = {s.table: s.mode for s in project.sources}
    assert modes["population"] == "append" and modes["sites"] == "replace"
    raw = {"project": {"start": "2024-01-01", "end": "2024-06-30"},
           "sources": [{"table": "population", "path": "p.csv", "mode": "upsert"}]}
    with pytest.raises(ConfigError, match=r"source #1 has mode 'upsert'; expected one of replace, append"):
        parse_project(raw, tmp_path)
    connector = {"project": {"start": "2024-01-01", "end": "2024-06-30"},
                 "sources": [{"kind": "dhis2-datavalues", "path": "dv.json", "mode": "append"}]}
    assert parse_project(connector, tmp_path).sources[0].mode == "append"


def test_a_table_fed_in_both_modes_is_refused(tmp_path: Path) -> None:
    directory = _write(tmp_path / "p", _months(FIRST_QUARTER))
    config = directory / "knowdo.toml"
    extra = _months(_second_quarter())["population"]
    extra.to_csv(directory / "data" / "population_q2.csv", index=False)
    config.write_text(config.read_text(encoding="utf-8")
                      + '\n[[sources]]\ntable = "population"\npath = "data/population_q2.csv"\n', encoding="utf-8")
    project = load_project(directory)
    data = read_and_validate(project)
    with pytest.raises(ConfigError, match="population are fed by sources with mode"):
        append_tables(project, data.sources)


def test_ingest_command_previews_and_loads_the_merge(tmp_path: Path) -> None:
    runner = CliRunner()
    directory = _write(tmp_path / "p", _months(FIRST_QUARTER))
    assert runner.invoke(app, ["ingest", str(directory), "--json"]).exit_code == 0
    _write(directory, _months(_second_quarter()))
    checked = runner.invoke(app, ["ingest", str(directory), "--check", "--json"])
    assert checked.exit_code == 0, checked.output
    preview = {t["table"]: t for t in json.loads(checked.stdout)["changes"]["tables"]}
    assert (preview["population"]["added"], preview["population"]["removed"]) == (18, 0)
    loaded = runner.invoke(app, ["ingest", str(directory)])
    assert loaded.exit_code == 0, loaded.output
    assert "merged by key into population" in loaded.stdout
    assert "population: 18 added, 0 corrected, 0 removed" in loaded.stdout
    assert len(_population(directory)) == 36
