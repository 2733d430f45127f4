"""REDCap flat and EAV exports (files and API) → canonical rows, with the data dictionary's checks.

The example export (data-standards-examples, constructed) has record 1 with a
complete PHQ-9 at baseline (items 2,2,2,2,1,1,2,0,0, total 12) and at month 3
(1,1,0,1,0,1,1,0,0, total 5), and record 2 whose baseline PHQ-9 is incomplete
(phq9_complete = 0: left out with a warning). Both export shapes must give the
same rows.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs

import pandas as pd
import pytest
from ingest_servers import Reply, ScriptedServer

from knowdo.config import Project, parse_project
from knowdo.ingest import validate_sources
from knowdo.ingest.canonical import CanonicalFrames
from knowdo.ingest.files import read_sources
from knowdo.ingest.redcap import parse_choices, read_redcap_source
from knowdo.ingest.remote import ApiClient, Credentials

MAPPING = {
    "strata": {"sex": {"field": "sex", "values": {"1": "female", "2": "male", "3": "other"}}},
    "encounters": {"by_code": {"baseline_arm_1": "screen", "month3_arm_1": "follow-up"}},
}
PERSONS = [("1", "DiszpKrYNg8", "1992", "female"), ("2", "O6uvpzGd5pu", "1985", "male")]
ENCOUNTERS = [("1:baseline_arm_1:phq9:1", "1", "DiszpKrYNg8", "2024-01-09", "screen"),
              ("1:month3_arm_1:phq9:1", "1", "DiszpKrYNg8", "2024-04-02", "follow-up")]
MEASURES = [("1:baseline_arm_1:phq9:1:PHQ-9", "2024-01-09", "PHQ-9", "12", "2", "2", "2", "2", "1", "1", "2", "0", "0"),
            ("1:month3_arm_1:phq9:1:PHQ-9", "2024-04-02", "PHQ-9", "5", "1", "1", "0", "1", "0", "1", "1", "0", "0")]


@pytest.fixture
def examples(shared_dir: Path) -> Path:
    return shared_dir / "domain" / "data-standards-examples"


def _project(root: Path, source: dict[str, object]) -> Project:
    return parse_project({"project": {"start": "2024-01-01", "end": "2024-12-31"},
                          "equity": {"sex": {"category": "Gender/sex", "levels": ["female", "male", "other"]}},
                          "sources": [{"fields": {"site": "facility"}, "mapping": MAPPING, **source}]}, root)


def _rows(frame: pd.DataFrame, columns: list[str]) -> list[tuple[str, ...]]:
    return sorted(tuple(map(str, r)) for r in frame[columns].values.tolist())


def _check(frames: CanonicalFrames) -> None:
    tables = frames.tables
    assert [p.rule for p in frames.problems] == ["redcap-form-status"]
    assert _rows(tables["sites"], ["site_id", "name", "level"]) == [
        ("DiszpKrYNg8", "Ngelehun CHC", "facility"), ("O6uvpzGd5pu", "Bo district hospital", "facility")]
    assert _rows(tables["persons"], ["person_id", "home_site_id", "birth_year", "sex"]) == PERSONS
    assert "dob" not in tables["persons"]  # identifier fields are never copied
    assert _rows(tables["encounters"], ["encounter_id", "person_id", "site_id", "date", "type"]) == ENCOUNTERS
    assert _rows(tables["measures"], ["measure_id", "date", "instrument", "total",
                                      *[f"item_{i}" for i in range(1, 10)]]) == MEASURES


@pytest.mark.parametrize(("kind", "file"), [("redcap-flat", "redcap_export_flat.csv"),
                                            ("redcap-eav", "redcap_export_eav.csv")])
def test_exports_round_trip(kind: str, file: str, examples: Path, tmp_path: Path) -> None:
    project = _project(tmp_path, {"kind": kind, "path": str(examples / file),
                                  "dictionary": str(examples / "redcap_data_dictionary_phq9.csv")})
    _check(read_redcap_source(project.sources[0], project))
    data = validate_sources(read_sources(project), project)
    assert data.row_counts() == {"sites": 2, "persons": 2, "encounters": 2, "measures": 2}


def test_unverified_forms_can_be_counted(examples: Path, tmp_path: Path) -> None:
    project = _project(tmp_path, {"kind": "redcap-flat", "path": str(examples / "redcap_export_flat.csv"),
                                  "dictionary": str(examples / "redcap_data_dictionary_phq9.csv"),
                                  "form_status": [0, 1, 2]})
    frames = read_redcap_source(project.sources[0], project)
    # record 2's incomplete PHQ-9 now counts, and validation says why it cannot load: no total, items missing
    assert len(frames.tables["measures"]) == 3
    with pytest.raises(Exception, match="total is required"):
        validate_sources(read_sources(project), project)


def test_dictionary_rules_catch_bad_values(examples: Path, tmp_path: Path) -> None:
    text = (examples / "redcap_export_flat.csv").read_text().splitlines()
    header = text[0].split(",")
    row = text[1].split(",")
    row[header.index("sex")] = "9"  # not a choice (rule G)
    row[header.index("mh_dx___dep")] = "2"  # checkboxes are 0/1
    text[1] = ",".join(row)
    row = text[2].split(",")
    row[header.index("phq9_date")] = "09/01/2024"  # date_ymd (rule C)
    text[2] = ",".join(row)
    (tmp_path / "flat.csv").write_text("\n".join(text) + "\n")
    project = _project(tmp_path, {"kind": "redcap-flat", "path": "flat.csv",
                                  "dictionary": str(examples / "redcap_data_dictionary_phq9.csv")})
    found = {(p.rule, p.column, p.value) for p in read_redcap_source(project.sources[0], project).errors}
    assert found == {("redcap-choice", "sex", "9"), ("redcap-choice", "mh_dx___dep", "2"),
                     ("redcap-validation", "phq9_date", "09/01/2024")}


def test_api_export_with_token_in_the_form(examples: Path, tmp_path: Path) -> None:
    with ScriptedServer() as server:
        server.route("/api/", Reply(body=(examples / "redcap_export_eav.csv").read_bytes(), content_type="text/csv"),
                     Reply(body=(examples / "redcap_data_dictionary_phq9.csv").read_bytes(), content_type="text/csv"))
        project = _project(tmp_path, {"kind": "redcap-eav", "url": f"{server.url}/api/"})
        client = ApiClient(f"{server.url}/api/", credentials=Credentials(token="ABCDEF"), scheme="form-token")
        frames = read_redcap_source(project.sources[0], project, client=client)
        forms = [parse_qs(s.body.decode()) for s in server.seen]
    assert [f["content"] for f in forms] == [["record"], ["metadata"]]
    assert all(f["token"] == ["ABCDEF"] for f in forms) and forms[0]["type"] == ["eav"]
    _check(frames)


def test_choices() -> None:
    assert parse_choices("0, Not at all | 1, Several days | DEP, Depression, major") == {
        "0": "Not at all", "1": "Several days", "DEP": "Depression, major"}
