"""A corpus of malformed inputs: each is rejected with the rule it breaks, located, and loads nothing.

Every case starts from the valid tiny project (tests/tiny_project.py), breaks
one thing, and checks that validation names the file, row, column and rule,
and that a load attempt leaves an already-loaded store exactly as it was.
Rows are numbered as a spreadsheet shows them: the header is row 1.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

import tiny_project
from knowdo.config import load_project
from knowdo.errors import SchemaError
from knowdo.ingest import read_and_validate
from knowdo.store import Store

Frames = dict[str, pd.DataFrame]


@dataclass(frozen=True)
class Case:
    name: str
    rule: str
    file: str
    column: str | None = None
    row: int | None = None
    edit: Callable[[Frames], None] | None = None
    raw: Callable[[Path], None] | None = None  # writes bytes after the frames are written


def _set(table: str, row: int, column: str, value: str) -> Callable[[Frames], None]:
    def edit(frames: Frames) -> None:
        frames[table].loc[row, column] = value

    return edit


def _drop(table: str, column: str) -> Callable[[Frames], None]:
    def edit(frames: Frames) -> None:
        frames[table] = frames[table].drop(columns=[column])

    return edit


def _duplicate(table: str, row: int) -> Callable[[Frames], None]:
    def edit(frames: Frames) -> None:
        frames[table] = pd.concat([frames[table], frames[table].iloc[[row]]], ignore_index=True)

    return edit


def _with_aggregates(value_screened: str, value_positive: str) -> Callable[[Frames], None]:
    def edit(frames: Frames) -> None:
        frames["aggregates"] = pd.DataFrame({
            "site_id": ["D1-C1", "D1-C1"], "period": ["2024-03-01", "2024-03-01"],
            "indicator": ["screened", "positive"], "dimension": ["all", "all"], "stratum": ["all", "all"],
            "value": [value_screened, value_positive],
        })

    return edit


def _write_bytes(name: str, content: bytes) -> Callable[[Path], None]:
    def raw(directory: Path) -> None:
        (directory / "data" / name).write_bytes(content)

    return raw


def _aim_without_provider(frames: Frames) -> None:
    row = {c: "" for c in frames["measures"].columns}
    row.update({"measure_id": "A1", "site_id": "D1-C1", "date": "2024-02-01", "instrument": "AIM", "total": "4",
                "item_1": "4", "item_2": "4", "item_3": "4", "item_4": "4"})
    frames["measures"] = pd.concat([frames["measures"], pd.DataFrame([row])], ignore_index=True)


LATIN1_SITES = "site_id,name,parent_id,level,urbanicity,catchment_population\nD1,Cl\xednica,,district,,\n".encode(
    "latin-1"
)

# Row numbers: data row i of a frame (0-based) is spreadsheet row i + 2.
CASES = [
    Case("missing column", "missing-column", "sites.csv", column="level", edit=_drop("sites", "level")),
    Case("missing equity column", "missing-column", "persons.csv", column="sex", edit=_drop("persons", "sex")),
    Case("text in an integer column", "type", "persons.csv", "birth_year", 3, _set("persons", 1, "birth_year", "abc")),
    Case("fraction in an integer column", "type", "encounters.csv", "session_number", 8,
         _set("encounters", 6, "session_number", "2.5")),
    Case("malformed date", "type", "encounters.csv", "date", 2, _set("encounters", 0, "date", "2024/01/10")),
    Case("impossible calendar date", "type", "encounters.csv", "date", 2, _set("encounters", 0, "date", "2024-02-30")),
    Case("unknown site", "foreign-key", "encounters.csv", "site_id", 5, _set("encounters", 3, "site_id", "NOWHERE")),
    Case("unknown person", "foreign-key", "encounters.csv", "person_id", 3, _set("encounters", 1, "person_id", "P99")),
    Case("unknown provider", "foreign-key", "encounters.csv", "provider_id", 8,
         _set("encounters", 6, "provider_id", "LW9")),
    Case("unknown parent site", "foreign-key", "sites.csv", "parent_id", 3, _set("sites", 1, "parent_id", "D7")),
    Case("unknown encounter on a measure", "foreign-key", "measures.csv", "encounter_id", 2,
         _set("measures", 0, "encounter_id", "X1")),
    Case("duplicate person", "duplicate-key", "persons.csv", "person_id", 8, _duplicate("persons", 0)),
    Case("duplicate encounter", "duplicate-key", "encounters.csv", "encounter_id", 19, _duplicate("encounters", 2)),
    Case("duplicate population cell", "duplicate-key", "population.csv", row=38, edit=_duplicate("population", 5)),
    Case("PHQ-9 item above 3", "item-range", "measures.csv", "item_3", 2, _set("measures", 0, "item_3", "4")),
    Case("PHQ-9 negative item", "item-range", "measures.csv", "item_1", 3, _set("measures", 1, "item_1", "-1")),
    Case("PHQ-9 tenth item", "item-range", "measures.csv", "item_10", 2, _set("measures", 0, "item_10", "1")),
    Case("PHQ-9 total above 27", "total-range", "measures.csv", "total", 2, _set("measures", 0, "total", "30")),
    Case("PHQ-9 total differs from items", "total-equals-items", "measures.csv", "total", 3,
         _set("measures", 1, "total", "13")),
    Case("unknown instrument", "allowed-values", "measures.csv", "instrument", 2,
         _set("measures", 0, "instrument", "BDI")),
    Case("AIM without a provider", "respondent", "measures.csv", "provider_id", 10, _aim_without_provider),
    Case("date before the window", "date-window", "encounters.csv", "date", 2,
         _set("encounters", 0, "date", "2023-12-31")),
    Case("date after the window", "date-window", "population.csv", "period", 2,
         _set("population", 0, "period", "2024-07-01")),
    Case("unknown encounter type", "allowed-values", "encounters.csv", "type", 2,
         _set("encounters", 0, "type", "visit")),
    Case("unknown cadre", "allowed-values", "providers.csv", "cadre", 2, _set("providers", 0, "cadre", "doctor")),
    Case("unknown equity level", "equity-level", "persons.csv", "sex", 4, _set("persons", 2, "sex", "unknown")),
    Case("blank required value", "required", "encounters.csv", "date", 4, _set("encounters", 2, "date", "")),
    Case("fidelity above 1", "range", "encounters.csv", "fidelity", 8, _set("encounters", 6, "fidelity", "1.5")),
    Case("prevalence above 1", "range", "population.csv", "prevalence", 2, _set("population", 0, "prevalence", "1.2")),
    Case("huge population", "range", "population.csv", "population", 2, _set("population", 0, "population", "1e30")),
    Case("negative population", "range", "population.csv", "population", 3, _set("population", 1, "population", "-5")),
    Case("infinite cost", "range", "costs.csv", "amount", 2, _set("costs", 0, "amount", "inf")),
    Case("negative cost", "range", "costs.csv", "amount", 3, _set("costs", 1, "amount", "-100")),
    Case("rollout ends before it starts", "rollout-order", "rollout.csv", "end", 2,
         _set("rollout", 0, "end", "2023-12-31")),
    Case("more screened than the population", "population-bound", "population", "population",
         edit=lambda f: f["population"].__setitem__("population", f["population"]["population"].where(
             ~((f["population"]["site_id"] == "D1-C1") & (f["population"]["dimension"] == "all")), "2"))),
    Case("aggregate count above population", "population-bound", "aggregates.csv", "value", 2,
         _with_aggregates("5000", "10")),
    Case("aggregate sub-count above total", "cascade-order", "aggregates.csv", "value", 2,
         _with_aggregates("10", "20")),
    Case("empty file", "empty-file", "encounters.csv", raw=_write_bytes("encounters.csv", b"")),
    Case("blank lines only", "file-format", "encounters.csv", raw=_write_bytes("encounters.csv", b"\n\n")),
    Case("wrong encoding", "encoding", "sites.csv", raw=_write_bytes("sites.csv", LATIN1_SITES)),
    Case("ragged CSV", "file-format", "costs.csv",
         raw=_write_bytes("costs.csv",
                          b"site_id,period,item,category,amount,currency\nD1-C1,2024-01-01,a,b,1,USD,x,y\n")),
    Case("corrupt parquet", "file-format", "costs.parquet", raw=_write_bytes("costs.parquet", b"PAR1 not parquet")),
]


def _make(directory: Path, case: Case) -> Path:
    frames = tiny_project.tables()
    if case.edit is not None:
        case.edit(frames)
    tiny_project.write(directory, frames)
    if case.file.endswith(".parquet"):
        config = directory / "knowdo.toml"
        config.write_text(config.read_text().replace("data/costs.csv", "data/costs.parquet"))
    if case.raw is not None:
        case.raw(directory)
    return directory


def test_corpus_is_large_enough() -> None:
    assert len(CASES) >= 30


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_is_named_and_loads_nothing(tmp_path: Path, case: Case) -> None:
    directory = tiny_project.write(tmp_path / "project")
    project = load_project(directory)
    with Store.for_project(project) as store:
        store.load(read_and_validate(project), project)
        before = {name: store.table(name) for name in store.row_counts()}
        provenance_before = store.provenance()

    _make(directory, case)
    project = load_project(directory)
    with pytest.raises(SchemaError) as caught:
        data = read_and_validate(project)
        with Store.for_project(project) as store:
            store.load(data, project)
    problems = [p for p in caught.value.problems if p.rule == case.rule]
    assert problems, f"expected rule {case.rule!r}; got {caught.value.report()}"
    located = problems[0]
    assert case.file in located.file
    if case.column is not None:
        assert located.column == case.column
    if case.row is not None:
        assert located.row == case.row
    assert case.rule in caught.value.report()

    with Store.for_project(project, read_only=True) as store:
        for name, frame in before.items():
            pd.testing.assert_frame_equal(store.table(name), frame)
        pd.testing.assert_frame_equal(store.provenance(), provenance_before)


def test_many_problems_are_capped_with_totals(tmp_path: Path) -> None:
    frames = tiny_project.tables()
    frames["population"]["population"] = "-1"
    directory = tiny_project.write(tmp_path / "p", frames)
    with pytest.raises(SchemaError) as caught:
        read_and_validate(load_project(directory))
    report = caught.value.report()
    assert "36 problem(s) found" in report
    assert "Totals by rule: range: 36" in report
    listed = [p for p in caught.value.problems if p.count == 1]
    assert len(listed) == 20
