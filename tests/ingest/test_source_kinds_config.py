"""``[[sources]]`` kinds in knowdo.toml: connectors parse, old CSV entries keep working, mistakes are explained."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from knowdo.config import SOURCE_KINDS, Project, parse_project
from knowdo.errors import ConfigError
from knowdo.ingest.mapping import CHIS_MENTAL_HEALTH, load_mapping

BASE = {"project": {"start": "2024-01-01", "end": "2024-12-31"}}


def _parse(tmp_path: Path, *sources: dict[str, object]) -> Project:
    return parse_project({**BASE, "sources": list(sources)}, tmp_path)


def test_csv_is_the_default_kind(tmp_path: Path) -> None:
    project = _parse(tmp_path, {"table": "sites", "path": "data/sites.csv"})
    [source] = project.sources
    assert (source.kind, source.table, source.path) == ("csv", "sites", tmp_path / "data/sites.csv")


def test_connector_sources(tmp_path: Path) -> None:
    project = _parse(
        tmp_path,
        {"kind": "dhis2-datavalues", "url": "https://dhis2.example.org", "mapping": "chis-mental-health",
         "query": {"dataSet": "RoS1js1RRjt", "orgUnit": "ImspTQPwCqd", "children": True}, "auth_env": "MOH_DHIS2"},
        {"kind": "fhir-bulk", "path": "exports/bulk", "mapping": {"strata": {"sex": {"field": "gender"}}}},
        {"kind": "omop-postgres", "url": "postgresql://reader@db.example.org/cdm", "schema": "cdm54"},
        {"kind": "redcap-eav", "path": "redcap/eav.csv", "dictionary": "redcap/dictionary.csv",
         "fields": {"site": "facility"}},
    )
    kinds = [s.kind for s in project.sources]
    assert kinds == ["dhis2-datavalues", "fhir-bulk", "omop-postgres", "redcap-eav"]
    dhis2, bulk, omop, redcap = project.sources
    assert dhis2.location == "https://dhis2.example.org" and dhis2.options["auth_env"] == "MOH_DHIS2"
    assert bulk.path == tmp_path / "exports/bulk" and omop.options["schema"] == "cdm54"
    assert redcap.options["dictionary"] == "redcap/dictionary.csv"
    assert load_mapping(dhis2.mapping, tmp_path) is CHIS_MENTAL_HEALTH
    assert set(SOURCE_KINDS) >= {"csv", "dhis2-tracker", "fhir-bundle", "omop-duckdb", "redcap-flat"}


@pytest.mark.parametrize(("source", "message"), [
    ({"kind": "hl7v2", "path": "x"}, "expected one of"),
    ({"kind": "fhir-bundle"}, "exactly one of path"),
    ({"kind": "fhir-bundle", "path": "a", "url": "https://b"}, "exactly one of path"),
    ({"kind": "fhir-bundle", "url": "ftp://b"}, "must start with http"),
    ({"kind": "fhir-bundle", "path": "a", "colour": "red"}, "unknown keys ['colour']"),
    ({"kind": "dhis2-datavalues", "url": "https://u", "query": {"token": "x"}}, "secrets never go"),
    ({"kind": "omop-postgres", "url": "postgresql://me:secret@db/cdm"}, "carries a password"),
])
def test_bad_sources_are_explained(tmp_path: Path, source: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        _parse(tmp_path, source)


@pytest.mark.parametrize(("mapping", "message"), [
    ({"data_elements": {"abc": "treated"}}, "expected one of screened"),
    ({"data_elements": {"abc": {"indicator": "screened", "period_type": "Fortnightly"}}}, "expected one of Daily"),
    ({"category_option_combos": {"abc": {"sex": 3}}}, "must be a level name"),
    ({"sites": {"levels": {"four": "facility"}}}, "level numbers"),
    ({"instruments": {"q1": "PHQ-9:10"}}, "items are 1-9"),
    ({"instruments": {"q1": "BDI"}}, "expected one of PHQ-9"),
    ({"strata": {"sex": {"field": "g", "bands": [[1, "x"]]}}}, "bands entries"),
    ({"encounters": {"default": "visit"}}, "expected one of screen"),
    ({"extends": "no-such-mapping"}, "neither a built-in"),
    ({"colour": 1}, "unknown mapping keys"),
])
def test_bad_mappings_are_explained(tmp_path: Path, mapping: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_mapping(mapping, tmp_path)


def test_mapping_file_extends_the_ready_mapping(tmp_path: Path) -> None:
    (tmp_path / "local.toml").write_text(
        'extends = "chis-mental-health"\n[data_elements]\nSUmQs6C8TlN = { indicator = "started", '
        'period_type = "Yearly" }\n')
    mapping = load_mapping("local.toml", tmp_path)
    assert mapping.data_elements["SUmQs6C8TlN"].indicator == "started"
    assert mapping.data_elements["vXiy7FHtwNM"].indicator == "screened"
    assert mapping.category_option_combos["T9NHeIM5Awi"] == {"age_band": "20-39", "sex": "female"}
