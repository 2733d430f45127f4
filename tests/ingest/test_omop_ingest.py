"""OMOP CDM 5.4 → canonical rows, from a DuckDB file and from a real PostgreSQL server on loopback.

The example tables (data-standards-examples/omop_cdm54, constructed; concept
ids from the OMOP vocabulary v5.0) hold two people: person 1 with PHQ-9 17 then
9 and GAD-7 11, person 2 with PHQ-2 4 and a PHQ-9 row without value_as_number
(skipped with a warning, as in the Eunomia sample). Ages: person 1 born
1992-05-14 is 31 on 2024-01-09; person 2 has only a birth year (1985), taken
as 1 July, so 38 on 2024-01-15.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import pandas as pd
import pytest
import sqlalchemy as sa
from ingest_servers import Cluster, throwaway_postgres

from knowdo.config import Project, parse_project
from knowdo.ingest import validate_sources
from knowdo.ingest.canonical import CanonicalFrames
from knowdo.ingest.files import read_sources
from knowdo.store import Store
from knowdo.store.omop_source import OMOP_READERS, read_omop_source

MAPPING = {
    "strata": {"sex": {"field": "gender"},
               "age_band": {"field": "age", "bands": [[18, 29, "18-29"], [30, 200, "30+"]]}},
    "encounters": {"by_code": {"mhgap-initial": "screen", "mhgap-followup": "follow-up"}},
}
EXPECTED = {
    "sites": [("10", "Ngelehun CHC", "facility")],
    "providers": [("100", "10", "lay_worker")],
    "persons": [("1", "10", "1992", "30+", "female"), ("2", "10", "1985", "30+", "male")],
    "encounters": [("1001", "1", "10", "2024-01-09", "screen", "100"),
                   ("1002", "1", "10", "2024-03-07", "follow-up", "100"),
                   ("1003", "2", "10", "2024-01-15", "screen", "100")],
    "measures": [("observation:9001", "1", "10", "1001", "2024-01-09", "PHQ-9", "17"),
                 ("observation:9002", "1", "10", "1001", "2024-01-09", "GAD-7", "11"),
                 ("observation:9003", "1", "10", "1002", "2024-03-07", "PHQ-9", "9"),
                 ("observation:9004", "2", "10", "1003", "2024-01-15", "PHQ-2", "4")],
}
COLUMNS = {
    "sites": ["site_id", "name", "level"],
    "providers": ["provider_id", "site_id", "cadre"],
    "persons": ["person_id", "home_site_id", "birth_year", "age_band", "sex"],
    "encounters": ["encounter_id", "person_id", "site_id", "date", "type", "provider_id"],
    "measures": ["measure_id", "person_id", "site_id", "encounter_id", "date", "instrument", "total"],
}


def _project(root: Path, source: dict[str, object]) -> Project:
    return parse_project({
        "project": {"start": "2024-01-01", "end": "2024-12-31"},
        "equity": {"age_band": {"category": "Age", "levels": ["18-29", "30+"]},
                   "sex": {"category": "Gender/sex", "levels": ["female", "male"]}},
        "sources": [{**source, "mapping": MAPPING}]}, root)


def _tables(shared_dir: Path) -> dict[str, pd.DataFrame]:
    folder = shared_dir / "domain" / "data-standards-examples" / "omop_cdm54"
    frames = {}
    for file in sorted(folder.glob("*.csv")):
        frame = pd.read_csv(file)
        for column in frame.columns:
            if column.endswith("_date"):
                frame[column] = pd.to_datetime(frame[column])
        frames[file.stem] = frame
    return frames


def _check(frames: CanonicalFrames) -> None:
    problems = frames.problems
    assert [(p.rule, p.severity) for p in problems] == [("omop-missing-value", "warning")]
    for table, rows in EXPECTED.items():
        got = frames.tables[table][COLUMNS[table]]
        assert sorted(map(tuple, got.astype(str).values.tolist())) == sorted(rows), table


def test_omop_from_duckdb(shared_dir: Path, tmp_path: Path) -> None:
    file = tmp_path / "cdm.duckdb"
    con = duckdb.connect(str(file))
    for name, frame in _tables(shared_dir).items():
        con.register("f", frame)
        con.execute(f"CREATE TABLE {name} AS SELECT * FROM f")
        con.unregister("f")
    con.close()
    project = _project(tmp_path, {"kind": "omop-duckdb", "path": "cdm.duckdb"})
    _check(read_omop_source(project.sources[0], project))
    data = validate_sources(read_sources(project, readers=OMOP_READERS), project)
    with Store(tmp_path / "k.duckdb") as store:
        store.load(data, project)
        assert store.row_counts()["measures"] == 4


def test_omop_needs_the_store_readers(tmp_path: Path) -> None:
    project = _project(tmp_path, {"kind": "omop-duckdb", "path": "missing.duckdb"})
    [raw] = read_sources(project)
    assert raw.problems[0].rule == "source-kind"
    [raw] = read_sources(project, readers=OMOP_READERS)
    assert raw.problems[0].rule == "file-missing"


@pytest.fixture(scope="module")
def postgres() -> Iterator[Cluster]:
    with throwaway_postgres() as cluster:
        yield cluster


def test_omop_from_postgresql(postgres: Cluster, shared_dir: Path, tmp_path: Path) -> None:
    engine = sa.create_engine(postgres.url().replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as con:
        con.execute(sa.text("CREATE SCHEMA IF NOT EXISTS cdm"))
        for name, frame in _tables(shared_dir).items():
            frame.to_sql(name, con, schema="cdm", index=False, if_exists="replace")
    engine.dispose()
    project = _project(tmp_path, {"kind": "omop-postgres", "url": postgres.url(), "schema": "cdm"})
    _check(read_omop_source(project.sources[0], project))


def test_postgresql_failures_are_located(postgres: Cluster, tmp_path: Path) -> None:
    wrong_db = postgres.url("no_such_database")
    project = _project(tmp_path, {"kind": "omop-postgres", "url": wrong_db})
    [problem] = read_omop_source(project.sources[0], project).problems
    assert problem.rule == "omop-connection" and "no_such_database" in problem.file
    project = _project(tmp_path, {"kind": "omop-postgres", "url": postgres.url(), "schema": "empty"})
    [problem] = read_omop_source(project.sources[0], project).problems
    assert problem.rule == "omop-table"
