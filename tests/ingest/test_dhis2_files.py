"""DHIS2 exports → canonical rows, checked against rows written out by hand from the example payloads.

Payloads: ../shared/domain/data-standards-examples (README: CHIS UIDs are real,
values constructed). Expected counts are sums of the payload values, e.g.
CH041a assessed at Ngelehun CHC in 202401 = 14 (20-39 F) + 9 (20-39 M) = 23,
which is also the value the example analytics response reports for Bo.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from knowdo.config import Project, parse_project
from knowdo.errors import SchemaError
from knowdo.ingest import validate_sources
from knowdo.ingest.canonical import CanonicalFrames
from knowdo.ingest.dhis2 import read_dhis2_source, sites_from_org_units
from knowdo.ingest.dhis2_tracker import tracked_entities, tracker_tables
from knowdo.ingest.files import read_sources
from knowdo.ingest.mapping import CHIS_MENTAL_HEALTH, CHIS_STRATA, parse_mapping
from knowdo.store import Store

AGGREGATE_ROWS = [  # site, month, indicator, dimension, stratum, value
    ("DiszpKrYNg8", "2024-01-01", "positive", "age_band", "20-39", "4"),
    ("DiszpKrYNg8", "2024-01-01", "positive", "all", "all", "4"),
    ("DiszpKrYNg8", "2024-01-01", "positive", "sex", "female", "4"),
    ("DiszpKrYNg8", "2024-01-01", "screened", "age_band", "20-39", "23"),
    ("DiszpKrYNg8", "2024-01-01", "screened", "all", "all", "23"),
    ("DiszpKrYNg8", "2024-01-01", "screened", "sex", "female", "14"),
    ("DiszpKrYNg8", "2024-01-01", "screened", "sex", "male", "9"),
]
SITE_ROWS = [  # Chiefdom level (3) has no canonical level: the facility hangs from the district
    ("ImspTQPwCqd", "Sierra Leone", "", "national"),
    ("O6uvpzGd5pu", "Bo", "ImspTQPwCqd", "district"),
    ("DiszpKrYNg8", "Ngelehun CHC", "O6uvpzGd5pu", "facility"),
]


def _project(root: Path, sources: list[dict[str, object]], strata: bool = True) -> Project:
    equity = {name: {"category": "Age" if name == "age_band" else "Gender/sex", "levels": list(levels)}
              for name, levels in CHIS_STRATA.items()} if strata else {}
    raw = {"project": {"name": "t", "start": "2023-01-01", "end": "2025-12-31"}, "equity": equity,
           "sources": sources}
    return parse_project(raw, root)


def _rows(frame: pd.DataFrame, columns: list[str]) -> list[tuple[str, ...]]:
    return sorted(tuple(str(v) for v in r) for r in frame[columns].itertuples(index=False))


@pytest.fixture
def examples(shared_dir: Path) -> Path:
    return shared_dir / "domain" / "data-standards-examples"


def test_datavalues_json_round_trip_and_load(examples: Path, tmp_path: Path) -> None:
    project = _project(tmp_path, [{
        "kind": "dhis2-datavalues", "path": str(examples / "dhis2_dataValueSets_export.json"),
        "mapping": "chis-mental-health", "org_units": str(examples / "dhis2_organisationUnits.json"),
        "org_unit_levels": str(examples / "dhis2_organisationUnitLevels.json"),
    }])
    raw = read_sources(project)
    assert [r.table for r in raw] == ["sites", "aggregates"]
    assert raw[0].label == "dhis2_dataValueSets_export.json [sites]"
    data = validate_sources(raw, project)
    assert _rows(data.tables["aggregates"].astype({"period": str}).assign(period=lambda f: f["period"].str[:10]),
                 ["site_id", "period", "indicator", "dimension", "stratum", "value"]) == AGGREGATE_ROWS
    site_columns = ["site_id", "name", "parent_id", "level"]
    assert _rows(data.tables["sites"][site_columns].fillna(""), site_columns) == sorted(SITE_ROWS)
    with Store(tmp_path / "k.duckdb") as store:
        summary = store.load(data, project)
        assert summary.rows["aggregates"] == 7 and store.row_counts()["sites"] == 3
        provenance = store.provenance()
        assert set(provenance["file"]) == {"dhis2_dataValueSets_export.json [sites]",
                                           "dhis2_dataValueSets_export.json [aggregates]"}


def test_import_body_gives_the_same_rows(examples: Path, tmp_path: Path) -> None:
    body = str(examples / "dhis2_dataValueSets_import.json")
    project = _project(tmp_path, [{"kind": "dhis2-datavalues", "path": body, "mapping": "chis-mental-health"}])
    frames = read_dhis2_source(project.sources[0], project)
    assert frames.errors == []
    assert _rows(frames.tables["aggregates"], ["site_id", "period", "indicator", "dimension", "stratum", "value"]) \
        == AGGREGATE_ROWS


def test_positional_csv_flags_the_wrong_period_type(examples: Path, tmp_path: Path) -> None:
    # The CSV carries the 8 JSON values, a blank value (202402) and 2024W5 in the Monthly set (row 11).
    project = _project(tmp_path, [{"kind": "dhis2-datavalues", "path": str(examples / "dhis2_dataValueSets_export.csv"),
                                   "mapping": "chis-mental-health"}])
    frames = read_dhis2_source(project.sources[0], project)
    [error] = frames.errors
    assert (error.rule, error.row, error.column, error.value) == ("dhis2-period-type", 11, "period", "2024W5")
    assert "Monthly" in error.message and "vXiy7FHtwNM" in error.message
    warnings = {p.rule: p for p in frames.problems if p.severity == "warning"}
    assert warnings["blank-value"].row == 10
    with pytest.raises(SchemaError, match=r"row 11, column 'period'.*dhis2-period-type"):
        validate_sources(read_sources(project), project)


def test_positional_csv_without_the_bad_row_matches_json(examples: Path, tmp_path: Path) -> None:
    lines = (examples / "dhis2_dataValueSets_export.csv").read_text().splitlines()
    # A different header spelling (docs: strby/lstupd/cmt) must not matter: columns are positional.
    lines[0] = "de,pe,ou,coc,aoc,value,strby,lstupd,cmt,flwup"
    file = tmp_path / "dv.csv"
    file.write_text("\n".join(lines[:-1]) + "\n")
    project = _project(tmp_path, [{"kind": "dhis2-datavalues", "path": "dv.csv", "mapping": "chis-mental-health"}])
    frames = read_dhis2_source(project.sources[0], project)
    assert frames.errors == []
    assert _rows(frames.tables["aggregates"], ["site_id", "period", "indicator", "dimension", "stratum", "value"]) \
        == AGGREGATE_ROWS


def test_analytics_current_and_legacy_metadata(examples: Path, tmp_path: Path) -> None:
    payload = json.loads((examples / "dhis2_analytics_response.json").read_text())
    legacy = dict(payload, metaData={"pe": ["202401", "202402"], "ou": ["O6uvpzGd5pu"],
                                     "names": {"vXiy7FHtwNM": "CH041a"}})
    # Columns are found by header name, not position.
    order = [2, 0, 3, 1]
    shuffled = dict(payload, headers=[payload["headers"][i] for i in order],
                    rows=[[r[i] for i in order] for r in payload["rows"]])
    expected = [("O6uvpzGd5pu", "2024-01-01", "screened", "all", "all", "23"),
                ("O6uvpzGd5pu", "2024-02-01", "screened", "all", "all", "31")]
    for i, body in enumerate((payload, legacy, shuffled)):
        file = tmp_path / f"a{i}.json"
        file.write_text(json.dumps(body))
        project = _project(tmp_path, [{"kind": "dhis2-analytics", "path": file.name, "mapping": "chis-mental-health"}])
        frames = read_dhis2_source(project.sources[0], project)
        assert frames.errors == []
        assert _rows(frames.tables["aggregates"], ["site_id", "period", "indicator", "dimension", "stratum",
                                                   "value"]) == expected
        # the indicator (82.1 %) is not a mapped count: skipped with a warning, not summed
        assert any(p.rule == "unmapped-data-element" and "vHVTpWKlPDk" in str(p.value) for p in frames.problems)


def test_org_unit_levels_from_mapping_keep_chiefdoms(examples: Path) -> None:
    units = json.loads((examples / "dhis2_organisationUnits.json").read_text())
    mapping = parse_mapping({"sites": {"levels": {"1": "national", "2": "region", "3": "district",
                                                  "4": "facility"}}}, root=Path("."), where="m")
    out = CanonicalFrames("ou.json")
    sites = sites_from_org_units(units, mapping, out)
    assert _rows(sites, ["site_id", "parent_id", "level"]) == sorted([
        ("ImspTQPwCqd", "", "national"), ("O6uvpzGd5pu", "ImspTQPwCqd", "region"),
        ("YuQRtpLP10I", "O6uvpzGd5pu", "district"), ("DiszpKrYNg8", "YuQRtpLP10I", "facility")])
    assert out.problems == []


TRACKER_MAPPING = {
    "strata": {"sex": {"field": "cejWyOfXge6", "values": {"Female": "female", "Male": "male"}, "default": "unknown"},
               "age_band": {"field": "MhAgeYears1", "bands": [[10, 14, "10-14"], [15, 19, "15-19"], [20, 39, "20-39"],
                                                                [40, 49, "40-49"], [50, 200, "70+"]],
                            "default": "unknown"}},
    "encounters": {"by_code": {"MhGapAssess": "screen", "MhGapFollow": "follow-up"}},
    "instruments": {"MhPhq9Total": "PHQ-9"},
}


def test_tracker_2_41_and_2_40_shapes(examples: Path, tmp_path: Path) -> None:
    payload = json.loads((examples / "dhis2_tracker_trackedEntities_nested.json").read_text())
    old = {"instances": [{("trackedEntityInstance" if k == "trackedEntity" else k): v
                          for k, v in te.items()} for te in payload["trackedEntities"]]}
    project = _project(tmp_path, [])
    mapping = parse_mapping(TRACKER_MAPPING, root=tmp_path, where="m")
    for body in (payload, old):
        out = CanonicalFrames("tracker.json")
        tables = tracker_tables(tracked_entities(body, out), mapping, project.strata, out)
        assert out.problems == []
        assert _rows(tables["persons"], ["person_id", "home_site_id", "age_band", "sex"]) == [
            ("PQfMcpmXeFE", "DiszpKrYNg8", "20-39", "female")]
        assert _rows(tables["encounters"], ["encounter_id", "person_id", "site_id", "date", "type"]) == [
            ("MhEvent0001", "PQfMcpmXeFE", "DiszpKrYNg8", "2024-01-09", "screen"),
            ("MhEvent0002", "PQfMcpmXeFE", "DiszpKrYNg8", "2024-03-07", "follow-up")]
        assert _rows(tables["measures"], ["measure_id", "encounter_id", "date", "instrument", "total"]) == [
            ("MhEvent0001:PHQ-9", "MhEvent0001", "2024-01-09", "PHQ-9", "17"),
            ("MhEvent0002:PHQ-9", "MhEvent0002", "2024-03-07", "PHQ-9", "9")]


def test_tracker_source_validates_and_loads(examples: Path, tmp_path: Path) -> None:
    project = _project(tmp_path, [
        {"kind": "dhis2-tracker", "path": str(examples / "dhis2_tracker_trackedEntities_nested.json"),
         "mapping": TRACKER_MAPPING, "org_units": str(examples / "dhis2_organisationUnits.json"),
         "org_unit_levels": str(examples / "dhis2_organisationUnitLevels.json")}])
    data = validate_sources(read_sources(project), project)
    assert data.row_counts() == {"sites": 3, "persons": 1, "encounters": 2, "measures": 2}
    with Store(tmp_path / "k.duckdb") as store:
        store.load(data, project)
        totals = store.query("SELECT total FROM measures ORDER BY date")["total"].tolist()
    assert totals == [17.0, 9.0]


def test_unmapped_combo_and_bad_values_are_located(tmp_path: Path) -> None:
    body = {"dataValues": [
        {"dataElement": "vXiy7FHtwNM", "period": "202401", "orgUnit": "DiszpKrYNg8",
         "categoryOptionCombo": "ZZZZZZZZZZZ", "value": "3"},
        {"dataElement": "vXiy7FHtwNM", "period": "202401", "orgUnit": "DiszpKrYNg8",
         "categoryOptionCombo": "T9NHeIM5Awi", "value": "2.5"},
        {"dataElement": "vXiy7FHtwNM", "period": "202413", "orgUnit": "DiszpKrYNg8",
         "categoryOptionCombo": "TUUDNrDX7L7", "value": "1"},
        {"dataElement": "vXiy7FHtwNM", "period": "202401", "orgUnit": "bad uid",
         "categoryOptionCombo": "TUUDNrDX7L7", "value": "1"},
    ]}
    file = tmp_path / "dv.json"
    file.write_text(json.dumps(body))
    project = _project(tmp_path, [{"kind": "dhis2-datavalues", "path": "dv.json", "mapping": "chis-mental-health"}])
    frames = read_dhis2_source(project.sources[0], project)
    found = {(p.rule, p.file.rsplit(" ", 1)[-1], p.column) for p in frames.errors}
    assert found == {("dhis2-unmapped-combo", "dataValues[0]", "categoryOptionCombo"),
                     ("dhis2-value-type", "dataValues[1]", "value"),
                     ("dhis2-period", "dataValues[2]", "period"),
                     ("dhis2-uid", "dataValues[3]", "orgUnit")}


def test_chis_mapping_uses_the_modules_real_uids(examples: Path) -> None:
    combos = pd.read_csv(examples / "dhis2_chis_mental_health_category_option_combos.csv", dtype=str)
    names = dict(zip(combos["uid"], combos["name"], strict=True))
    for uid, dims in CHIS_MENTAL_HEALTH.category_option_combos.items():
        assert uid in names, uid
        if "sex" in dims:
            age, sex = (part.strip() for part in names[uid].split(","))
            assert age.startswith(dims["age_band"].replace("unknown", "Unknown").replace("70+", "70+"))
            assert sex.lower().startswith(dims["sex"])
    elements = pd.read_csv(examples / "dhis2_chis_mental_health_data_elements.csv", dtype=str).set_index("uid")
    for uid, rule in CHIS_MENTAL_HEALTH.data_elements.items():
        assert elements.loc[uid, "dataSets"] == "CH_MEN_MONTHLY" and rule.period_type == "Monthly"
