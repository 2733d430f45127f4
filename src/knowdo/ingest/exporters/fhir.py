"""Canonical tables → FHIR R4: a transaction Bundle, or a Bulk Data export (ndjson + manifest).

Person-level records: this export is for moving data between the user's own
systems (or into a test server), not for publication; it carries no
disclosure control.

Resources written:

* ``Organization`` per facility (``identifier`` = knowdo site id);
* ``Patient`` per person: ``gender`` from the equity dimension of category
  Gender/sex when its levels are FHIR gender codes, ``birthDate`` as the
  year alone (the canonical table holds only the birth year, and a FHIR
  date may be a bare year), ``managingOrganization`` = home site;
* ``Encounter`` per contact: status ``finished``, class ``AMB``
  (v3-ActCode), ``type`` = the knowdo encounter kind in a local code system
  (:data:`ENCOUNTER_TYPE_SYSTEM`), ``period.start``, ``serviceProvider``;
* ``Observation`` per PHQ-9/PHQ-2/GAD-7 administration: the total (LOINC
  44261-6 / 55758-7 / 70274-6, ``valueInteger``, category ``survey``) and,
  with ``items=True``, one Observation per item (answers as LOINC LA codes of
  answer list LL358-3) gathered by a panel Observation (44249-1 / 55757-9 /
  69737-5) through ``hasMember``. Codes come from the connector's own tables
  (:mod:`knowdo.ingest.fhir`), which check their LOINC check digits.

Not written, and why: provider-reported scales (AIM/IAM/FIM have no LOINC
codes); Condition (knowdo has no diagnosis table to export); district
Organizations (the FHIR connector reads every Organization as a facility);
fidelity (no standard Encounter element).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import orjson
import pandas as pd

from knowdo.config import Project, Stratum
from knowdo.errors import ParameterError
from knowdo.ingest.exporters.common import (
    ExportedProject,
    day_text,
    facilities,
    fhir_id,
    person_level,
    prepare_folder,
    sorted_by,
    table,
    write_companions,
    write_project_file,
    write_toml,
)
from knowdo.ingest.fhir import ANSWER_SCORES, ITEM_CODES, LOINC, PANEL_CODES, TOTAL_CODES
from knowdo.schema import ENCOUNTER_TYPES, ITEM_COLUMNS

ENCOUNTER_TYPE_SYSTEM = "urn:knowdo:encounter-type"
SITE_SYSTEM = "urn:knowdo:site"
PERSON_SYSTEM = "urn:knowdo:person"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
FHIR_GENDERS = ("male", "female", "other", "unknown")  # AdministrativeGender value set
FhirLayout = Literal["bundle", "bulk"]

_TOTAL_OF = {name: code for code, name in TOTAL_CODES.items()}
_PANEL_OF = {name: code for code, name in PANEL_CODES.items()}
_ITEM_OF = {(name, number): code for code, (name, number) in ITEM_CODES.items()}
_ITEM_OF.update({("PHQ-2", 1): "44250-9", ("PHQ-2", 2): "44255-8"})  # PHQ-2 asks the first two PHQ-9 questions
_ANSWER_OF = {score: code for code, score in ANSWER_SCORES.items()}
_ANSWER_TEXT = {0: "Not at all", 1: "Several days", 2: "More than half the days", 3: "Nearly every day"}


def sex_stratum(strata: tuple[Stratum, ...] | list[Stratum]) -> Stratum | None:
    """The Gender/sex dimension, when its levels are all FHIR AdministrativeGender codes."""
    for s in strata:
        if s.category == "Gender/sex" and set(s.levels) <= set(FHIR_GENDERS):
            return s
    return None


def fhir_resources(tables: Mapping[str, pd.DataFrame], project: Project, *, items: bool = True) -> list[dict[str, Any]]:
    """The FHIR R4 resources for ``tables``, in a fixed order (type, then id)."""
    person_level(tables)
    sex = sex_stratum(list(project.strata))
    out: list[dict[str, Any]] = []
    for site in facilities(tables).to_dict("records"):
        site_id = str(site["site_id"])
        out.append({
            "resourceType": "Organization", "id": fhir_id(site_id),
            "identifier": [{"system": SITE_SYSTEM, "value": site_id}],
            "active": True, "name": site["name"] if isinstance(site["name"], str) and site["name"] else site_id,
        })
    persons = sorted_by(table(tables, "persons"), ["person_id"])
    for row in persons.to_dict("records"):
        patient: dict[str, Any] = {
            "resourceType": "Patient", "id": fhir_id(row["person_id"]),
            "identifier": [{"system": PERSON_SYSTEM, "value": row["person_id"]}],
        }
        if sex is not None and isinstance(row.get(sex.name), str):
            patient["gender"] = row[sex.name]
        if pd.notna(row.get("birth_year")):
            patient["birthDate"] = f"{int(row['birth_year']):04d}"
        patient["managingOrganization"] = {"reference": f"Organization/{fhir_id(row['home_site_id'])}"}
        out.append(patient)
    encounters = sorted_by(table(tables, "encounters"), ["encounter_id"])
    encounters = encounters.assign(_day=day_text(encounters["date"]))
    for row in encounters.to_dict("records"):
        out.append({
            "resourceType": "Encounter", "id": fhir_id(row["encounter_id"]), "status": "finished",
            "class": {"system": ACT_CODE, "code": "AMB", "display": "ambulatory"},
            "type": [{"coding": [{"system": ENCOUNTER_TYPE_SYSTEM, "code": row["type"]}]}],
            "subject": {"reference": f"Patient/{fhir_id(row['person_id'])}"},
            "period": {"start": row["_day"], "end": row["_day"]},
            "serviceProvider": {"reference": f"Organization/{fhir_id(row['site_id'])}"},
        })
    out.extend(_observations(tables, items=items))
    return out


def _observations(tables: Mapping[str, pd.DataFrame], *, items: bool) -> list[dict[str, Any]]:
    measures = table(tables, "measures")
    scored = measures.loc[measures["instrument"].isin(list(_TOTAL_OF)) & measures["person_id"].notna()]
    scored = sorted_by(scored, ["measure_id"])
    scored = scored.assign(_day=day_text(scored["date"]))
    out: list[dict[str, Any]] = []
    for row in scored.to_dict("records"):
        base = fhir_id(row["measure_id"])
        common: dict[str, Any] = {
            "status": "final",
            "category": [{"coding": [{"system": OBSERVATION_CATEGORY, "code": "survey", "display": "Survey"}]}],
            "subject": {"reference": f"Patient/{fhir_id(row['person_id'])}"},
        }
        if isinstance(row.get("encounter_id"), str):
            common["encounter"] = {"reference": f"Encounter/{fhir_id(row['encounter_id'])}"}
        common["effectiveDateTime"] = row["_day"]
        instrument = row["instrument"]
        members: list[dict[str, Any]] = []
        if items:
            for number, column in enumerate(ITEM_COLUMNS, start=1):
                code = _ITEM_OF.get((instrument, number))
                item = row.get(column)
                if code is None or item is None or pd.isna(item):
                    continue
                answer = int(item)
                item_id = f"{base}-i{number}"[:64]
                members.append({
                    "resourceType": "Observation", "id": item_id, **common,
                    "code": {"coding": [{"system": LOINC, "code": code}]},
                    "valueCodeableConcept": {"coding": [{"system": LOINC, "code": _ANSWER_OF[answer],
                                                         "display": _ANSWER_TEXT[answer]}]},
                })
        total = row.get("total")
        if total is not None and pd.notna(total):
            score: dict[str, Any] = ({"valueInteger": int(total)} if float(total).is_integer()
                                     else {"valueQuantity": {"value": float(total), "unit": "{score}",
                                                             "system": "http://unitsofmeasure.org",
                                                             "code": "{score}"}})
            members.append({"resourceType": "Observation", "id": base, **common,
                            "code": {"coding": [{"system": LOINC, "code": _TOTAL_OF[instrument]}]}, **score})
        if len(members) > 1:
            out.append({"resourceType": "Observation", "id": f"{base}-panel"[:64], **common,
                        "code": {"coding": [{"system": LOINC, "code": _PANEL_OF[instrument]}]},
                        "hasMember": [{"reference": f"Observation/{m['id']}"} for m in members]})
        out.extend(members)
    return out


def transaction_bundle(resources: list[dict[str, Any]]) -> dict[str, Any]:
    """A ``transaction`` Bundle that PUTs each resource at ``Type/id`` (idempotent on a server)."""
    return {
        "resourceType": "Bundle", "type": "transaction",
        "entry": [{"fullUrl": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, r['resourceType'] + '/' + r['id'])}",
                   "resource": r,
                   "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}} for r in resources],
    }


def write_bulk(resources: list[dict[str, Any]], folder: Path, *, transaction_time: str) -> list[str]:
    """One ``<Type>.000.ndjson`` per resource type and the Bulk Data ``manifest.json``; returns file names."""
    by_type: dict[str, list[dict[str, Any]]] = {}
    for r in resources:
        by_type.setdefault(r["resourceType"], []).append(r)
    outputs = []
    names = []
    for kind in sorted(by_type):
        name = f"{kind}.000.ndjson"
        (folder / name).write_bytes(b"".join(orjson.dumps(r, option=orjson.OPT_SORT_KEYS) + b"\n"
                                             for r in by_type[kind]))
        outputs.append({"type": kind, "url": name, "count": len(by_type[kind])})
        names.append(name)
    manifest = {"transactionTime": transaction_time, "request": "knowdo export fhir-bulk",
                "requiresAccessToken": False, "output": outputs, "error": []}
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return [*names, "manifest.json"]


def export_fhir(tables: Mapping[str, pd.DataFrame], project: Project, out_dir: str | Path, *,
                layout: FhirLayout = "bundle", items: bool = True) -> ExportedProject:
    """Write ``tables`` as FHIR R4 (``layout`` ``bundle`` or ``bulk``) in a project folder that reads it back.

    Person-level data, for moving records between the user's own systems.
    """
    if layout not in ("bundle", "bulk"):
        raise ParameterError(f"export_fhir: layout must be 'bundle' or 'bulk', saw {layout!r}")
    resources = fhir_resources(tables, project, items=items)
    root = prepare_folder(out_dir)
    folder = root / "fhir"
    folder.mkdir(exist_ok=True)
    if layout == "bundle":
        (folder / "bundle.json").write_bytes(orjson.dumps(transaction_bundle(resources),
                                                          option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2))
        files = ["fhir/bundle.json"]
        source: dict[str, Any] = {"kind": "fhir-bundle", "path": "fhir/bundle.json"}
    else:
        last = day_text(table(tables, "encounters")["date"]).dropna().max()
        files = [f"fhir/{n}" for n in write_bulk(resources, folder, transaction_time=f"{last}T00:00:00Z")]
        source = {"kind": "fhir-bulk", "path": "fhir"}
    sex = sex_stratum(list(project.strata))
    mapping: dict[str, Any] = {"encounters": {"default": "assess", "by_code": {t: t for t in ENCOUNTER_TYPES}}}
    if sex is not None:
        mapping["strata"] = {sex.name: {"field": "gender", "values": {level: level for level in sex.levels}}}
    write_toml(root / "mapping.toml", mapping)
    source["mapping"] = "mapping.toml"
    kept = [sex] if sex is not None else []
    site_ids = {s: fhir_id(s) for s in facilities(tables)["site_id"]}
    companions = write_companions(root, tables, site_ids=site_ids, strata=[s.name for s in kept])
    write_project_file(root, project, strata=kept, header=_HEADER.format(layout=layout),
                       sources=[source, *({"table": t, "path": p} for t, p in companions)])
    measures = table(tables, "measures")
    return ExportedProject(
        format=f"fhir-{layout}", root=root, files=(*files, "mapping.toml", *(p for _, p in companions)),
        carried=("sites", "persons", "encounters", "measures"), companions=tuple(t for t, _ in companions),
        strata=tuple(s.name for s in kept), site_ids=site_ids,
        skipped={"measures without a LOINC-coded instrument or a person": int(
            (~(measures["instrument"].isin(list(_TOTAL_OF)) & measures["person_id"].notna())).sum())},
    )


_HEADER = """knowdo export (FHIR R4, {layout}): person-level records for moving data between your own systems.
Facilities, persons, encounters and PHQ-9/PHQ-2/GAD-7 scores are in fhir/; rollout, population and costs,
which FHIR has no place for, are in data/. Only the equity dimension FHIR carries (gender) is declared."""
