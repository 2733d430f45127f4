"""FHIR R4 Bundle and Bulk Data → canonical rows, checked against rows written out from the example payloads.

The example bundle (data-standards-examples, constructed, validated with
fhir.resources R4B) holds one PHQ-9 administration with items 2,2,2,2,1,1,2,0,0
(LA6570-1 = 2, LA6569-3 = 1, LA6568-5 = 0; answer list LL358-3) and total 12,
and a GAD-7 total of 8 given as valueQuantity. LOINC check digits: the GAD-7
irritability item is 69689-8; the mistyped 69689-6 found in the wild fails
(data-standards.md 2.1).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from ingest_servers import Reply, ScriptedServer

from knowdo.config import Project, parse_project
from knowdo.ingest import validate_sources
from knowdo.ingest.fhir import ITEM_CODES, PANEL_CODES, TOTAL_CODES, loinc_check_digit_ok
from knowdo.ingest.fhir_sources import read_fhir_source
from knowdo.ingest.files import read_sources
from knowdo.ingest.remote import ApiClient, Credentials

MAPPING = {"strata": {"sex": {"field": "gender"}}, "encounters": {"first": "screen"}}
ITEMS = ["2", "2", "2", "2", "1", "1", "2", "0", "0"]
MEASURE_COLUMNS = ["measure_id", "person_id", "site_id", "encounter_id", "date", "instrument", "total"]


@pytest.fixture
def examples(shared_dir: Path) -> Path:
    return shared_dir / "domain" / "data-standards-examples"


def _project(root: Path, sources: list[dict[str, object]]) -> Project:
    return parse_project({"project": {"start": "2024-01-01", "end": "2024-12-31"},
                          "equity": {"sex": {"category": "Gender/sex", "levels": ["female", "male", "other",
                                                                                  "unknown"]}},
                          "sources": sources}, root)


def _check_example_rows(tables: dict[str, pd.DataFrame]) -> None:
    sites, persons, encounters, measures = (tables[t] for t in ("sites", "persons", "encounters", "measures"))
    assert sites[["site_id", "name", "level"]].values.tolist() == [["org-ngelehun", "Ngelehun CHC", "facility"]]
    assert persons[["person_id", "home_site_id", "birth_year", "sex"]].values.tolist() == [
        ["pt-001", "org-ngelehun", "1992", "female"]]
    assert encounters[["encounter_id", "person_id", "site_id", "date", "type"]].values.tolist() == [
        ["enc-001", "pt-001", "org-ngelehun", "2024-01-09", "screen"]]
    rows = measures.sort_values("instrument")
    assert rows[MEASURE_COLUMNS].values.tolist() == [
        ["obs-gad7-total", "pt-001", "org-ngelehun", "enc-001", "2024-01-09", "GAD-7", "8"],
        ["obs-phq9-total", "pt-001", "org-ngelehun", "enc-001", "2024-01-09", "PHQ-9", "12"]]
    phq9 = rows[rows["instrument"] == "PHQ-9"]
    assert phq9[[f"item_{i}" for i in range(1, 10)]].values.tolist() == [ITEMS]


def test_loinc_check_digits() -> None:
    for code in [*TOTAL_CODES, *PANEL_CODES, *ITEM_CODES, "69722-7", "69726-8", "89204-2"]:
        assert loinc_check_digit_ok(code), code
    for code in ["69689-6", "44261-7", "4426-16", "44261", "abcde-1", "44261-66"]:
        assert not loinc_check_digit_ok(code), code


def test_bundle_with_full_validation(examples: Path, tmp_path: Path) -> None:
    project = _project(tmp_path, [{"kind": "fhir-bundle", "path": str(examples / "fhir_r4_mbc_bundle_phq9_gad7.json"),
                                   "mapping": MAPPING}])
    frames = read_fhir_source(project.sources[0], project)
    assert frames.problems == []
    _check_example_rows(frames.tables)
    # the QuestionnaireResponse is what the total was derived from: not a second PHQ-9
    assert len(frames.tables["measures"]) == 2


def test_bulk_ndjson_fast_path_gives_the_same_rows(examples: Path, tmp_path: Path) -> None:
    project = _project(tmp_path, [{"kind": "fhir-bulk", "path": str(examples / "fhir_bulk_export"),
                                   "mapping": MAPPING}])
    frames = read_fhir_source(project.sources[0], project)
    assert frames.problems == []
    _check_example_rows(frames.tables)
    data = validate_sources(read_sources(project), project)
    assert data.row_counts() == {"sites": 1, "persons": 1, "encounters": 1, "measures": 2}


def _write_bundle(path: Path, examples: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    bundle = json.loads((examples / "fhir_r4_mbc_bundle_phq9_gad7.json").read_text())
    edit(bundle)
    path.write_text(json.dumps(bundle))


def _resource(bundle: dict[str, Any], rid: str) -> dict[str, Any]:
    return next(e["resource"] for e in bundle["entry"] if e["resource"]["id"] == rid)


def test_wrong_loinc_check_digit_is_located(examples: Path, tmp_path: Path) -> None:
    def edit(bundle: dict[str, Any]) -> None:
        _resource(bundle, "obs-gad7-total")["code"]["coding"][0]["code"] = "70274-5"

    _write_bundle(tmp_path / "b.json", examples, edit)
    project = _project(tmp_path, [{"kind": "fhir-bundle", "path": "b.json", "mapping": MAPPING}])
    frames = read_fhir_source(project.sources[0], project)
    [problem] = frames.problems
    assert problem.rule == "loinc-check-digit" and problem.value == "70274-5"
    assert "Observation/obs-gad7-total" in problem.file and problem.column == "code.coding[0].code"


def test_structural_errors_come_from_the_r4b_models(examples: Path, tmp_path: Path) -> None:
    def edit(bundle: dict[str, Any]) -> None:
        _resource(bundle, "enc-001")["status"] = 7
        _resource(bundle, "pt-001")["birthDate"] = "14 May 1992"

    _write_bundle(tmp_path / "b.json", examples, edit)
    project = _project(tmp_path, [{"kind": "fhir-bundle", "path": "b.json", "mapping": MAPPING}])
    frames = read_fhir_source(project.sources[0], project)
    found = {(p.rule, p.column) for p in frames.errors}
    assert ("fhir-structure", "status") in found and ("fhir-structure", "birthDate") in found
    assert any("Encounter/enc-001" in p.file for p in frames.errors)


def test_entered_in_error_and_r5_style_class(examples: Path, tmp_path: Path) -> None:
    def edit(bundle: dict[str, Any]) -> None:
        _resource(bundle, "obs-gad7-total")["status"] = "entered-in-error"

    _write_bundle(tmp_path / "b.json", examples, edit)
    project = _project(tmp_path, [{"kind": "fhir-bundle", "path": "b.json", "mapping": MAPPING}])
    frames = read_fhir_source(project.sources[0], project)
    assert frames.problems == [] and frames.tables["measures"]["instrument"].tolist() == ["PHQ-9"]

    def r5(bundle: dict[str, Any]) -> None:  # R5 writes Encounter.class as a list; R4 data must not
        resource = _resource(bundle, "enc-001")
        resource["class"] = [resource["class"]]

    _write_bundle(tmp_path / "b5.json", examples, r5)
    project = _project(tmp_path, [{"kind": "fhir-bundle", "path": "b5.json", "mapping": MAPPING}])
    assert any(p.rule == "fhir-structure" and p.column and p.column.startswith("class")
               for p in read_fhir_source(project.sources[0], project).errors)


def test_conditional_and_urn_references(examples: Path, tmp_path: Path) -> None:
    def edit(bundle: dict[str, Any]) -> None:
        for entry in bundle["entry"]:
            resource = entry["resource"]
            if resource["resourceType"] == "Observation":
                resource["subject"] = {"reference": "Patient?identifier=urn:example:clinic-mrn|MRN-0001"}
                resource["encounter"] = {"reference": "urn:uuid:enc-001"}

    _write_bundle(tmp_path / "b.json", examples, edit)
    project = _project(tmp_path, [{"kind": "fhir-bundle", "path": "b.json", "mapping": MAPPING}])
    frames = read_fhir_source(project.sources[0], project)
    assert frames.problems == []
    _check_example_rows(frames.tables)


def test_bulk_manifest_count_mismatch_and_bad_line(examples: Path, tmp_path: Path) -> None:
    folder = tmp_path / "bulk"
    folder.mkdir()
    for file in (examples / "fhir_bulk_export").iterdir():
        (folder / file.name).write_bytes(file.read_bytes())
    with (folder / "Observation.000.ndjson").open("a") as handle:
        handle.write('{"resourceType": "Observation", "id": \n')
    project = _project(tmp_path, [{"kind": "fhir-bulk", "path": "bulk", "mapping": MAPPING}])
    frames = read_fhir_source(project.sources[0], project)
    rules = {(p.rule, p.severity, p.file.rsplit(" ", 2)[-2:][0]) for p in frames.problems}
    assert ("bad-json", "error", "line") in rules
    assert any(p.rule == "bad-json" and p.file.endswith("Observation.000.ndjson line 13") for p in frames.problems)


def test_bulk_export_over_http_with_bearer_token(examples: Path, tmp_path: Path) -> None:
    folder = examples / "fhir_bulk_export"
    with ScriptedServer() as server:
        manifest = json.loads((folder / "manifest.json").read_text())
        for item in manifest["output"]:
            name = item["url"].rsplit("/", 1)[-1]
            item["url"] = f"{server.url}/bulk/{name}"
            ndjson = Reply(body=(folder / name).read_bytes(), content_type="application/fhir+ndjson")
            server.route(f"/bulk/{name}", ndjson)
        server.route("/fhir/$export", Reply(202, b"", headers={"Content-Location": f"{server.url}/status/1"}))
        server.route("/status/1", Reply(202, b"", headers={"Retry-After": "0"}),
                     Reply(body=json.dumps(manifest).encode()))
        project = _project(tmp_path, [{"kind": "fhir-bulk", "url": f"{server.url}/fhir/$export", "mapping": MAPPING}])
        client = ApiClient(server.url, credentials=Credentials(token="bulk-token"), scheme="bearer", backoff=0.01)
        frames = read_fhir_source(project.sources[0], project, client=client)
        assert server.asked("/fhir/$export")[0].headers["Prefer"] == "respond-async"
        assert all(s.headers["Authorization"] == "Bearer bulk-token" for s in server.seen)
        assert len(server.asked("/status/1")) == 2
    assert frames.problems == []
    _check_example_rows(frames.tables)


def test_search_bundles_are_followed_page_by_page(examples: Path, tmp_path: Path) -> None:
    bundle = json.loads((examples / "fhir_r4_mbc_bundle_phq9_gad7.json").read_text())
    entries = bundle["entry"]
    with ScriptedServer() as server:
        first = {"resourceType": "Bundle", "type": "searchset", "entry": entries[:5],
                 "link": [{"relation": "next", "url": f"{server.url}/fhir/page2"}]}
        second = {"resourceType": "Bundle", "type": "searchset", "entry": entries[5:], "link": []}
        server.route("/fhir/Observation", Reply(body=json.dumps(first).encode()))
        server.route("/fhir/page2", Reply(body=json.dumps(second).encode()))
        project = _project(tmp_path, [{"kind": "fhir-bundle", "url": f"{server.url}/fhir/Observation",
                                       "mapping": MAPPING}])
        client = ApiClient(server.url, credentials=Credentials(), scheme="bearer", retries=0)
        frames = read_fhir_source(project.sources[0], project, client=client)
        assert [s.path for s in server.seen] == ["/fhir/Observation", "/fhir/page2"]
    assert frames.problems == []
    _check_example_rows(frames.tables)
