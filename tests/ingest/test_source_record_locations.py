"""Schema errors on connector rows name the file or URL and the exact source record they came from.

Each case takes an example payload (data-standards-examples; constructed
values on real DHIS2/LOINC/OMOP codes), breaks one value, and checks that the
validation error cites the record as the source spells it: ``dataValues[7]``,
``line 9`` of a positional CSV, ``rows[2]``, ``organisationUnits[4]``,
``trackedEntities[0].enrollments[0].events[1]``, ``entry[4]
(Observation/obs-phq9-total)``, ``Observation.000.ndjson line 2``, ``record 1,
event month3_arm_1, instrument phq9, instance 1``,
``observation.observation_id=9001``. The record index is found in the payload
itself, so the assertion fails if the connector cites any other record.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest

from knowdo.config import Project, parse_project
from knowdo.errors import Problem, SchemaError
from knowdo.ingest import validate_sources
from knowdo.ingest.canonical import SOURCE_RECORD as SOURCE_RECORD_COLUMN
from knowdo.ingest.files import read_sources
from knowdo.ingest.mapping import CHIS_STRATA
from knowdo.store.omop_source import OMOP_READERS

UNKNOWN_UNIT = "AbCdEfGhIj1"  # a well-formed DHIS2 UID that is in no org-unit export
TRACKER_MAPPING = {
    "strata": {"sex": {"field": "cejWyOfXge6", "values": {"Female": "female", "Male": "male"}, "default": "unknown"},
               "age_band": {"field": "MhAgeYears1", "bands": [[20, 39, "20-39"]], "default": "unknown"}},
    "encounters": {"by_code": {"MhGapAssess": "screen", "MhGapFollow": "follow-up"}},
    "instruments": {"MhPhq9Total": "PHQ-9"},
}
FHIR_MAPPING = {"strata": {"sex": {"field": "gender"}}, "encounters": {"first": "screen"}}
FHIR_EQUITY = {"sex": {"category": "Gender/sex", "levels": ["female", "male", "other", "unknown"]}}
REDCAP_MAPPING = {
    "strata": {"sex": {"field": "sex", "values": {"1": "female", "2": "male", "3": "other"}}},
    "encounters": {"by_code": {"baseline_arm_1": "screen", "month3_arm_1": "follow-up"}},
}
OMOP_MAPPING = {
    "strata": {"sex": {"field": "gender"}},
    "encounters": {"by_code": {"mhgap-initial": "screen", "mhgap-followup": "follow-up"}},
}


@pytest.fixture
def examples(shared_dir: Path) -> Path:
    return shared_dir / "domain" / "data-standards-examples"


def _project(root: Path, sources: list[dict[str, Any]], *, equity: dict[str, Any] | None = None) -> Project:
    if equity is None:
        equity = {name: {"category": "Age" if name == "age_band" else "Gender/sex", "levels": list(levels)}
                  for name, levels in CHIS_STRATA.items()}
    return parse_project({"project": {"name": "t", "start": "2023-01-01", "end": "2025-12-31"}, "equity": equity,
                          "sources": sources}, root)


def _errors(project: Project, readers: Any = None) -> list[Problem]:
    with pytest.raises(SchemaError) as caught:
        validate_sources(read_sources(project, readers=readers), project)
    return [p for p in caught.value.problems if p.severity == "error"]


def _cited(problems: list[Problem], rule: str) -> list[str]:
    found = [p for p in problems if p.rule == rule]
    assert found, f"no {rule} error among {[p.rule for p in problems]}"
    assert all(p.row is None for p in found)  # a connector row has no line of its own to cite
    return [p.file for p in found]


def _dhis2_source(kind: str, path: str, examples: Path, **extra: Any) -> dict[str, Any]:
    return {"kind": kind, "path": path, "mapping": extra.pop("mapping", "chis-mental-health"),
            "org_units": extra.pop("org_units", str(examples / "dhis2_organisationUnits.json")),
            "org_unit_levels": str(examples / "dhis2_organisationUnitLevels.json"), **extra}


def test_dhis2_json_unknown_org_unit_cites_the_data_value(examples: Path, tmp_path: Path) -> None:
    body = json.loads((examples / "dhis2_dataValueSets_export.json").read_text())
    bad = next(i for i, v in enumerate(body["dataValues"]) if v["dataElement"] == "kDMCxCZkyjp")
    body["dataValues"][bad]["orgUnit"] = UNKNOWN_UNIT
    (tmp_path / "dv.json").write_text(json.dumps(body))
    project = _project(tmp_path, [_dhis2_source("dhis2-datavalues", "dv.json", examples)])
    cited = _cited(_errors(project), "foreign-key")
    # kDMCxCZkyjp has one value (combo T9NHeIM5Awi): its 'all', sex and age rows all come from it alone
    assert cited == [f"dv.json [aggregates] dataValues[{bad}]"] * 3


def test_dhis2_summed_cells_cite_their_first_value_and_count_the_rest(examples: Path, tmp_path: Path) -> None:
    body = json.loads((examples / "dhis2_dataValueSets_export.json").read_text())
    moved = [i for i, v in enumerate(body["dataValues"]) if v["dataElement"] == "vXiy7FHtwNM"]
    for i in moved:
        body["dataValues"][i]["orgUnit"] = UNKNOWN_UNIT
    (tmp_path / "dv.json").write_text(json.dumps(body))
    project = _project(tmp_path, [_dhis2_source("dhis2-datavalues", "dv.json", examples)])
    cited = _cited(_errors(project), "foreign-key")
    assert len(moved) == 2  # 14 women + 9 men screened in the example
    # the 'all' and age-band cells sum both values; the sex cells hold one each
    assert sorted(cited) == sorted([f"dv.json [aggregates] dataValues[{moved[0]}] and 1 more data value(s)"] * 2
                                   + [f"dv.json [aggregates] dataValues[{i}]" for i in moved])


def test_dhis2_positional_csv_cites_the_line(examples: Path, tmp_path: Path) -> None:
    lines = (examples / "dhis2_dataValueSets_export.csv").read_text().splitlines()
    lines = lines[:-1]  # without the 2024W5 row, which the connector itself rejects
    bad = next(n for n, line in enumerate(lines, start=1) if line.startswith("kDMCxCZkyjp,"))
    lines[bad - 1] = lines[bad - 1].replace("DiszpKrYNg8", UNKNOWN_UNIT)
    (tmp_path / "dv.csv").write_text("\n".join(lines) + "\n")
    project = _project(tmp_path, [_dhis2_source("dhis2-datavalues", "dv.csv", examples)])
    assert _cited(_errors(project), "foreign-key") == [f"dv.csv [aggregates] line {bad}"] * 3


def test_dhis2_analytics_cites_the_row(examples: Path, tmp_path: Path) -> None:
    body = json.loads((examples / "dhis2_analytics_response.json").read_text())
    bad = len(body["rows"]) - 1
    body["rows"][bad][2] = UNKNOWN_UNIT  # headers dx, pe, ou, value
    (tmp_path / "a.json").write_text(json.dumps(body))
    project = _project(tmp_path, [_dhis2_source("dhis2-analytics", "a.json", examples)])
    assert _cited(_errors(project), "foreign-key") == [f"a.json [aggregates] rows[{bad}]"]


def test_dhis2_org_units_cite_the_unit_and_its_file(examples: Path, tmp_path: Path) -> None:
    units = json.loads((examples / "dhis2_organisationUnits.json").read_text())
    facility = next(u for u in units["organisationUnits"] if u["id"] == "DiszpKrYNg8")
    units["organisationUnits"].append(dict(facility, name="Ngelehun CHC (copy)"))
    (tmp_path / "ou.json").write_text(json.dumps(units))
    copy = len(units["organisationUnits"]) - 1
    project = _project(tmp_path, [_dhis2_source("dhis2-datavalues", str(examples / "dhis2_dataValueSets_import.json"),
                                                examples, org_units="ou.json")])
    assert _cited(_errors(project), "duplicate-key") == [
        f"dhis2_dataValueSets_import.json [sites] ou.json organisationUnits[{copy}]"]


@pytest.mark.parametrize("shape", ["trackedEntities", "instances"])  # 2.41+ and 2.40 list names
def test_dhis2_tracker_cites_the_event(examples: Path, tmp_path: Path, shape: str) -> None:
    body = json.loads((examples / "dhis2_tracker_trackedEntities_nested.json").read_text())
    events = body["trackedEntities"][0]["enrollments"][0]["events"]
    bad = next(k for k, e in enumerate(events) if e["event"] == "MhEvent0002")
    next(dv for dv in events[bad]["dataValues"] if dv["dataElement"] == "MhPhq9Total")["value"] = "40"
    if shape == "instances":
        body = {"instances": body["trackedEntities"]}
    (tmp_path / "te.json").write_text(json.dumps(body))
    project = _project(tmp_path, [_dhis2_source("dhis2-tracker", "te.json", examples, mapping=TRACKER_MAPPING)])
    assert _cited(_errors(project), "total-range") == [f"te.json [measures] {shape}[0].enrollments[0].events[{bad}]"]


def test_fhir_bundle_cites_the_entry_and_resource(examples: Path, tmp_path: Path) -> None:
    bundle = json.loads((examples / "fhir_r4_mbc_bundle_phq9_gad7.json").read_text())
    bad = next(i for i, e in enumerate(bundle["entry"]) if e["resource"].get("id") == "obs-phq9-total")
    bundle["entry"][bad]["resource"]["valueInteger"] = 40
    (tmp_path / "b.json").write_text(json.dumps(bundle))
    project = _project(tmp_path, [{"kind": "fhir-bundle", "path": "b.json", "mapping": FHIR_MAPPING}],
                       equity=FHIR_EQUITY)
    cited = _cited(_errors(project), "total-range")
    # the nine item Observations are the same administration: cited by count after the total's own entry
    assert cited == [f"b.json [measures] b.json entry[{bad}] (Observation/obs-phq9-total) and 9 more "
                     "Observation(s) of the same administration"]


def test_fhir_bulk_ndjson_cites_the_file_and_line(examples: Path, tmp_path: Path) -> None:
    folder = tmp_path / "bulk"
    shutil.copytree(examples / "fhir_bulk_export", folder)
    file = folder / "Observation.000.ndjson"
    lines = file.read_text().splitlines()
    bad = next(n for n, line in enumerate(lines, start=1) if '"id":"obs-phq9-total"' in line.replace(" ", ""))
    resource = json.loads(lines[bad - 1])
    resource["valueInteger"] = 40
    lines[bad - 1] = json.dumps(resource)
    file.write_text("\n".join(lines) + "\n")
    project = _project(tmp_path, [{"kind": "fhir-bulk", "path": "bulk", "mapping": FHIR_MAPPING}], equity=FHIR_EQUITY)
    [cited] = _cited(_errors(project), "total-range")
    assert cited.startswith(f"bulk [measures] Observation.000.ndjson line {bad} (Observation/obs-phq9-total)")


def _redcap_project(examples: Path, tmp_path: Path, column: str, value: str) -> Project:
    export = pd.read_csv(examples / "redcap_export_flat.csv", dtype=str, keep_default_na=False)
    bad = export.index[(export["record_id"] == "1") & (export["redcap_event_name"] == "month3_arm_1")][0]
    export.loc[bad, column] = value
    export.to_csv(tmp_path / "flat.csv", index=False)
    return _project(tmp_path, [{"kind": "redcap-flat", "path": "flat.csv", "mapping": REDCAP_MAPPING,
                                "dictionary": str(examples / "redcap_data_dictionary_phq9.csv"),
                                "fields": {"site": "facility"}}],
                    equity={"sex": {"category": "Gender/sex", "levels": ["female", "male", "other"]}})


def test_redcap_cites_record_event_instrument_instance(examples: Path, tmp_path: Path) -> None:
    # phq9_total is a calc field without min/max in the dictionary: the schema's 0-27 range catches 40
    project = _redcap_project(examples, tmp_path, "phq9_total", "40")
    assert _cited(_errors(project), "total-range") == [
        "flat.csv [measures] record 1, event month3_arm_1, instrument phq9, instance 1"]


def test_redcap_bad_item_cites_the_export_row(examples: Path, tmp_path: Path) -> None:
    # phq9_3 is a radio field with choices 0-3 (REDCap rule G): the connector rejects 5 before the schema sees it
    project = _redcap_project(examples, tmp_path, "phq9_3", "5")
    [problem] = [p for p in _errors(project) if p.rule == "redcap-choice"]
    assert (problem.file, problem.column, problem.value) == (
        f"{tmp_path / 'flat.csv'} record 1, event month3_arm_1, instance 1", "phq9_3", "5")


def test_omop_cites_table_and_id(shared_dir: Path, tmp_path: Path) -> None:
    folder = shared_dir / "domain" / "data-standards-examples" / "omop_cdm54"
    con = duckdb.connect(str(tmp_path / "cdm.duckdb"))
    for csv_file in sorted(folder.glob("*.csv")):
        frame = pd.read_csv(csv_file)
        if csv_file.stem == "observation":
            frame.loc[frame["observation_id"] == 9001, "value_as_number"] = 40  # a PHQ-9 total (concept 3042932)
        con.register("f", frame)
        con.execute(f"CREATE TABLE {csv_file.stem} AS SELECT * FROM f")
        con.unregister("f")
    con.close()
    project = _project(tmp_path, [{"kind": "omop-duckdb", "path": "cdm.duckdb", "mapping": OMOP_MAPPING}],
                       equity={"sex": {"category": "Gender/sex", "levels": ["female", "male"]}})
    cited = _cited(_errors(project, OMOP_READERS), "total-range")
    assert cited == ["cdm.duckdb [measures] observation.observation_id=9001"]


def test_the_citation_column_never_reaches_the_validated_tables(examples: Path, tmp_path: Path) -> None:
    project = _project(tmp_path, [_dhis2_source("dhis2-datavalues", str(examples / "dhis2_dataValueSets_export.json"),
                                                examples)])
    raw = read_sources(project)
    assert all(SOURCE_RECORD_COLUMN in r.frame for r in raw if r.frame is not None)
    data = validate_sources(raw, project)
    assert data.tables and all(SOURCE_RECORD_COLUMN not in frame for frame in data.tables.values())
    assert not any(p.rule == "unknown-column" for p in data.warnings)
