"""Malformed payloads for every connector: no unhandled exception, only located problems.

Property: whatever the bytes, a connector returns canonical frames and
problems (each naming the file or URL, and the record where there is one), and
validating what it returns either succeeds or raises SchemaError. Inputs are
random JSON built from each format's own keys, and the example payloads with
one value replaced at random.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from knowdo.config import Project, Source, parse_project
from knowdo.errors import SchemaError
from knowdo.ingest import validate_sources
from knowdo.ingest.canonical import CanonicalFrames
from knowdo.ingest.dhis2 import (
    aggregates_from_values,
    data_values_from_analytics,
    data_values_from_csv,
    data_values_from_json,
    sites_from_org_units,
)
from knowdo.ingest.dhis2_tracker import tracked_entities, tracker_tables
from knowdo.ingest.fhir import Resources, canonical_tables, collect_bundle, collect_ndjson
from knowdo.ingest.files import raw_sources
from knowdo.ingest.mapping import CHIS_MENTAL_HEALTH, parse_mapping
from knowdo.ingest.omop import ConceptSets, omop_to_canonical
from knowdo.ingest.redcap import canonical_tables as redcap_tables
from knowdo.ingest.redcap import check_values, eav_to_flat, read_dictionary

KEYS = ["dataValues", "dataElement", "period", "orgUnit", "value", "categoryOptionCombo", "attributeOptionCombo",
        "deleted", "headers", "rows", "name", "organisationUnits", "level", "path", "parent", "id",
        "trackedEntities", "trackedEntity", "enrollments", "events", "event", "occurredAt", "programStage",
        "attributes", "attribute", "resourceType", "entry", "resource", "fullUrl", "code", "coding", "system",
        "subject", "reference", "encounter", "effectiveDateTime", "valueInteger", "valueQuantity", "status",
        "valueCodeableConcept", "item", "linkId", "answer", "birthDate", "gender", "period", "start"]
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-5, 10**12), st.floats(allow_nan=True),
                    st.sampled_from(["202401", "2024W5", "2024W99", "T9NHeIM5Awi", "vXiy7FHtwNM", "DiszpKrYNg8",
                                     "Patient/pt-001", "44261-6", "69689-6", "LA6570-1", "http://loinc.org", "final",
                                     "Observation", "Patient", "Encounter", "Bundle", "", "-1", "1e400", "2024-13-45"]),
                    st.text(max_size=12))
JSON = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(KEYS), inner, max_size=6)), max_leaves=25)
# Raised for the recorded study (docs/studies/ingest-fuzz.md); kept small by default because each example
# also runs full schema validation, which costs ~0.5 s for OMOP and REDCap frames on a 2-core machine.
EXAMPLES = int(os.environ.get("KNOWDO_FUZZ_EXAMPLES", "12"))
SLOW_EXAMPLES = int(os.environ.get("KNOWDO_FUZZ_EXAMPLES", "5"))
HEALTH = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=HEALTH)
FUZZ_SLOW = settings(max_examples=SLOW_EXAMPLES, deadline=None, suppress_health_check=HEALTH)

STRATA = {"sex": {"category": "Gender/sex", "levels": ["female", "male", "other", "unknown"]}}
MAPPING = parse_mapping({
    "extends": "chis-mental-health",
    "strata": {"sex": {"field": "gender", "values": {"female": "female", "male": "male"}, "default": "unknown"}},
    "instruments": {"MhPhq9Total": "PHQ-9"},
}, root=Path("."), where="fuzz")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    return parse_project({"project": {"start": "2020-01-01", "end": "2030-12-31"}, "equity": STRATA},
                         tmp_path_factory.mktemp("fuzz"))


@pytest.fixture(scope="module")
def examples(shared_dir: Path) -> Path:
    return shared_dir / "domain" / "data-standards-examples"


@pytest.fixture(scope="module")
def omop_tables(examples: Path) -> dict[str, pd.DataFrame]:
    return {f.stem: pd.read_csv(f, dtype=str, keep_default_na=False)
            for f in sorted((examples / "omop_cdm54").glob("*.csv"))}


@pytest.fixture(scope="module")
def redcap_inputs(examples: Path) -> tuple[dict[str, Any], pd.DataFrame]:
    dictionary = read_dictionary((examples / "redcap_data_dictionary_phq9.csv").read_text(), CanonicalFrames("d"))
    return dictionary, pd.read_csv(examples / "redcap_export_eav.csv", dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def bundle(examples: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((examples / "fhir_r4_mbc_bundle_phq9_gad7.json").read_text())
    return loaded


def _settle(out: CanonicalFrames, project: Project) -> None:
    """Every problem names where; the frames either validate or raise SchemaError."""
    for problem in out.problems:
        assert problem.file.startswith(out.origin) and problem.rule and problem.message
    source = Source("sites", project.root / "x", kind="fhir-bundle")
    try:
        validate_sources(raw_sources(source, out), project)
    except SchemaError as exc:
        assert exc.problems


def _mutate(document: Any, data: st.DataObject) -> Any:
    document = copy.deepcopy(document)
    node = document
    for _ in range(data.draw(st.integers(0, 6))):
        children = list(node.items()) if isinstance(node, dict) else list(enumerate(node)) if isinstance(node, list) \
            else []
        containers = [(k, v) for k, v in children if isinstance(v, dict | list) and v]
        if not containers:
            break
        _, node = data.draw(st.sampled_from(containers))
    if isinstance(node, dict) and node:
        node[data.draw(st.sampled_from(sorted(node)))] = data.draw(JSON)
    elif isinstance(node, list) and node:
        node[data.draw(st.integers(0, len(node) - 1))] = data.draw(JSON)
    return document


@FUZZ
@given(payload=JSON)
def test_dhis2_random_json(payload: Any, project: Project) -> None:
    for reader in (data_values_from_json, data_values_from_analytics):
        out = CanonicalFrames("dv.json")
        out.tables["aggregates"] = aggregates_from_values(reader(payload, out), CHIS_MENTAL_HEALTH, out)
        out.tables["sites"] = sites_from_org_units(payload, CHIS_MENTAL_HEALTH, out)
        _settle(out, project)
    out = CanonicalFrames("te.json")
    out.tables.update(tracker_tables(tracked_entities(payload, out), MAPPING, project.strata, out))
    _settle(out, project)


@FUZZ
@given(data=st.data())
def test_dhis2_mutated_examples(data: st.DataObject, examples: Path, project: Project) -> None:
    name = data.draw(st.sampled_from(["dataValueSets_export", "analytics_response", "tracker_trackedEntities_nested",
                                      "organisationUnits"]))
    payload = _mutate(json.loads((examples / f"dhis2_{name}.json").read_text()), data)
    out = CanonicalFrames(f"{name}.json")
    if name == "tracker_trackedEntities_nested":
        out.tables.update(tracker_tables(tracked_entities(payload, out), MAPPING, project.strata, out))
    elif name == "organisationUnits":
        out.tables["sites"] = sites_from_org_units(payload, CHIS_MENTAL_HEALTH, out)
    else:
        reader = data_values_from_analytics if name == "analytics_response" else data_values_from_json
        out.tables["aggregates"] = aggregates_from_values(reader(payload, out), CHIS_MENTAL_HEALTH, out)
    _settle(out, project)


@FUZZ
@given(tokens=st.lists(st.sampled_from([*"abW0129,\n\"\r ", "vXiy7FHtwNM", "T9NHeIM5Awi", "202401", ",,,,,"]),
                      max_size=120))
def test_dhis2_random_csv(tokens: list[str], project: Project) -> None:
    text = "".join(tokens)
    out = CanonicalFrames("dv.csv")
    out.tables["aggregates"] = aggregates_from_values(data_values_from_csv(text, out), CHIS_MENTAL_HEALTH, out)
    _settle(out, project)


@FUZZ_SLOW
@given(data=st.data())
def test_fhir_mutated_bundle_and_lines(data: st.DataObject, bundle: dict[str, Any], project: Project) -> None:
    bundle = _mutate(bundle, data)
    out = CanonicalFrames("bundle.json")
    resources = Resources(out=out)
    collect_bundle(bundle, "bundle.json", resources, out)
    if not out.errors:
        out.tables.update(canonical_tables(resources, MAPPING, project, out))
    _settle(out, project)
    lines = b"\n".join(json.dumps(data.draw(JSON)).encode()[: data.draw(st.integers(0, 200))] for _ in range(3))
    out = CanonicalFrames("Observation.000.ndjson")
    resources = Resources(out=out, keep_observations=False)
    collect_ndjson(lines, "Observation.000.ndjson", resources, out)
    out.tables.update(canonical_tables(resources, MAPPING, project, out))
    _settle(out, project)


@FUZZ_SLOW
@given(data=st.data())
def test_redcap_mutated_exports(data: st.DataObject, redcap_inputs: tuple[dict[str, Any], pd.DataFrame],
                                project: Project) -> None:
    dictionary, eav = redcap_inputs[0], redcap_inputs[1].copy()
    for _ in range(data.draw(st.integers(1, 4))):
        row = data.draw(st.integers(0, len(eav) - 1))
        column = data.draw(st.sampled_from(list(eav.columns)))
        eav.iat[row, eav.columns.get_loc(column)] = data.draw(st.sampled_from(["", "x", "-3", "99", "2024-99-01",
                                                                               "phq9_1", "1"]))
    out = CanonicalFrames("eav.csv")
    flat = eav_to_flat(eav, dictionary, out)
    if flat is not None:
        check_values(flat, dictionary, out)
        if not out.errors:
            out.tables.update(redcap_tables(flat, dictionary, parse_mapping(
                {"strata": {"sex": {"field": "sex", "values": {"1": "female", "2": "male"}, "default": "unknown"}}},
                root=Path("."), where="m"), project, {"fields": {"site": "facility"}}, out))
    _settle(out, project)


@FUZZ_SLOW
@given(data=st.data())
def test_omop_random_cells(data: st.DataObject, omop_tables: dict[str, pd.DataFrame], project: Project) -> None:
    tables = {name: frame.copy() for name, frame in omop_tables.items()}
    for _ in range(data.draw(st.integers(1, 5))):
        name = data.draw(st.sampled_from(sorted(tables)))
        frame = tables[name]
        frame.iat[data.draw(st.integers(0, len(frame) - 1)), data.draw(st.integers(0, frame.shape[1] - 1))] = \
            data.draw(st.sampled_from(["", "abc", "-1", "3042932", "8532", "1e308", "2024-02-30", "0"]))
    out = CanonicalFrames("cdm.duckdb")
    out.tables.update(omop_to_canonical(tables, MAPPING, ConceptSets(), project, out))
    _settle(out, project)
