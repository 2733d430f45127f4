"""Canonical tables → DHIS2: organisation units, aggregate dataValueSets (JSON or CSV) and tracker exports.

DHIS2 identifies everything by 11-character UIDs, so every knowdo id gets a
stable UID (a hash of the id; :func:`~knowdo.ingest.exporters.common.stable_uid`)
and org units keep the knowdo site id as their ``code``. The source mapping
that says what each UID means (data elements → cascade indicators,
categoryOptionCombos → equity levels, program stages → encounter kinds,
tracked-entity attributes → equity dimensions, org-unit levels → site
levels) is written beside the payload.

* **Aggregate** (``/api/dataValueSets`` shape): one data element per cascade
  indicator, reported monthly (period ``yyyyMM``) at facilities, disaggregated
  by one categoryOptionCombo per combination of equity levels (the full
  cross-classification: DHIS2 sums a data element over its combos, so
  marginal counts by each dimension separately would be counted twice).
  Zero counts are not written (DHIS2 stores no zeros by default). Aggregates
  carry no follow-up count and no session fidelity. Aggregated counts
  released outside the team still need disclosure control (``knowdo``'s
  publishing step), which this export does not apply.
* **Tracker** (2.41+ ``trackedEntities`` shape, nested enrollments and
  events): person-level records, for moving data between the user's own
  systems. A person is a tracked entity at their home facility with one
  attribute per equity dimension, one enrollment, and one event per
  encounter (program stage = encounter kind) holding the instrument scores
  as data values. Providers and session fidelity are not carried.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from knowdo.config import Project
from knowdo.errors import ParameterError
from knowdo.ingest.exporters.common import (
    ExportedProject,
    cell_text,
    day_text,
    person_level,
    prepare_folder,
    sorted_by,
    stable_uid,
    table,
    unique_ids,
    write_companions,
    write_project_file,
    write_toml,
)
from knowdo.ingest.mapping import DEFAULT_COMBO
from knowdo.schema import AGGREGATE_INDICATORS, ENCOUNTER_TYPES, INSTRUMENTS, SITE_LEVELS

PROGRAM = stable_uid("program", "knowdo mental health")
TRACKED_ENTITY_TYPE = stable_uid("trackedEntityType", "person")
DATA_SET = stable_uid("dataSet", "knowdo cascade monthly")
ORG_UNITS_FILE = "dhis2/organisationUnits.json"
LEVELS_FILE = "dhis2/organisationUnitLevels.json"
CSV_HEADER = ("dataelement", "period", "orgunit", "catoptcombo", "attroptcombo", "value", "storedby", "lastupdated",
              "comment", "followup", "deleted")  # positional /api/dataValueSets.csv columns (data-standards.md 1.2)
Dhis2Encoding = Literal["json", "csv"]


# --------------------------------------------------------------------------- org units
def org_unit_ids(tables: Mapping[str, pd.DataFrame]) -> dict[str, str]:
    """knowdo site id → org unit UID, for every site."""
    return unique_ids("organisationUnit", table(tables, "sites")["site_id"].dropna())


def organisation_units(tables: Mapping[str, pd.DataFrame]) -> tuple[dict[str, Any], dict[str, Any], dict[int, str]]:
    """``/api/organisationUnits`` and ``/api/organisationUnitLevels`` payloads, and level number → site level.

    Level numbers follow the canonical order of the levels present
    (national, region, district, facility), 1 at the top.
    """
    sites = sorted_by(table(tables, "sites"), ["site_id"])
    uid = org_unit_ids(tables)
    present = [level for level in SITE_LEVELS if level in set(sites["level"])]
    number = {level: i for i, level in enumerate(present, start=1)}
    parent = dict(zip(sites["site_id"], sites["parent_id"], strict=True))
    units = []
    for row in sites.to_dict("records"):
        chain = [row["site_id"]]
        while isinstance(parent.get(chain[-1]), str) and parent[chain[-1]] and len(chain) <= len(sites):
            chain.append(parent[chain[-1]])
        unit: dict[str, Any] = {"id": uid[row["site_id"]], "code": row["site_id"],
                                "name": row["name"] if isinstance(row["name"], str) and row["name"] else row["site_id"],
                                "level": number[row["level"]],
                                "path": "/" + "/".join(uid[s] for s in reversed(chain) if s in uid)}
        if isinstance(row["parent_id"], str) and row["parent_id"] in uid:
            unit["parent"] = {"id": uid[row["parent_id"]]}
        units.append(unit)
    levels = {"organisationUnitLevels": [{"level": n, "name": level.capitalize()} for level, n in number.items()]}
    return {"organisationUnits": units}, levels, {n: level for level, n in number.items()}


# --------------------------------------------------------------------------- aggregate data values
def indicator_ids() -> dict[str, str]:
    """Cascade indicator → data element UID."""
    return {name: stable_uid("dataElement", f"indicator:{name}") for name in AGGREGATE_INDICATORS}


def combo_id(levels: Mapping[str, str]) -> str:
    """The categoryOptionCombo UID of one combination of equity levels (the default combo when empty)."""
    if not levels:
        return DEFAULT_COMBO
    return stable_uid("categoryOptionCombo", "|".join(f"{d}={levels[d]}" for d in sorted(levels)))


def data_values(cells: pd.DataFrame, tables: Mapping[str, pd.DataFrame], dimensions: Sequence[str]) -> pd.DataFrame:
    """Data values (dataElement, period, orgUnit, categoryOptionCombo, value) from cross-classified counts.

    ``cells`` has ``site_id``, ``period`` (first day of the month),
    ``indicator``, ``value`` and one column per name in ``dimensions``
    (each row one combination of levels). Zero and missing counts are left out.
    """
    missing = [c for c in ("site_id", "period", "indicator", "value", *dimensions) if c not in cells]
    if missing:
        raise ParameterError(f"data_values: the cells frame lacks column(s) {', '.join(missing)}")
    unknown = sorted(set(cells["indicator"]) - set(AGGREGATE_INDICATORS))
    if unknown:
        raise ParameterError(f"data_values: unknown indicator(s) {unknown}; use {', '.join(AGGREGATE_INDICATORS)}")
    values = cells.loc[pd.to_numeric(cells["value"], errors="coerce").fillna(0) > 0]
    ou = org_unit_ids(tables)
    elements = indicator_ids()
    combos = [combo_id(_levels(dimensions, key)) for key in values[list(dimensions)].itertuples(index=False, name=None)]
    frame = pd.DataFrame({
        "dataElement": values["indicator"].map(elements).to_numpy(),
        "period": pd.to_datetime(values["period"]).dt.strftime("%Y%m").to_numpy(),
        "orgUnit": values["site_id"].map(ou).to_numpy(),
        "categoryOptionCombo": combos,
        "attributeOptionCombo": DEFAULT_COMBO,
        "value": values["value"].astype("int64").astype(str).to_numpy(),
    })
    return sorted_by(frame, ["dataElement", "period", "orgUnit", "categoryOptionCombo"])


def _levels(dimensions: Sequence[str], key: tuple[Any, ...]) -> dict[str, str]:
    """Dimension → level for one combination, leaving out missing levels (a person with no level there)."""
    return {d: str(v) for d, v in zip(dimensions, key, strict=True) if isinstance(v, str) and v}


def data_value_set(values: pd.DataFrame) -> dict[str, Any]:
    """A dataValueSet JSON body (import/export shape) for :func:`data_values`."""
    return {"dataSet": DATA_SET, "dataValues": values.to_dict("records")}


def data_value_csv(values: pd.DataFrame) -> str:
    """The positional ``/api/dataValueSets.csv`` text for :func:`data_values`."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for row in values.itertuples(index=False):
        writer.writerow([row.dataElement, row.period, row.orgUnit, row.categoryOptionCombo,
                         row.attributeOptionCombo, row.value, "", "", "", "false", ""])
    return buffer.getvalue()


def aggregate_mapping(cells: pd.DataFrame, dimensions: Sequence[str], levels: Mapping[int, str]) -> dict[str, Any]:
    """The source mapping for :func:`data_values`: data elements, combos and org-unit levels."""
    combos: dict[str, dict[str, str]] = {DEFAULT_COMBO: {}}
    for key in sorted(set(cells[list(dimensions)].fillna("").astype(str).itertuples(index=False, name=None))):
        named = _levels(dimensions, key)
        combos[combo_id(named)] = named
    return {
        "data_elements": {uid: {"indicator": name, "period_type": "Monthly"} for name, uid in indicator_ids().items()},
        "category_option_combos": combos,
        "sites": {"levels": {str(n): level for n, level in levels.items()}},
    }


def export_dhis2_aggregate(cells: pd.DataFrame, tables: Mapping[str, pd.DataFrame], project: Project,
                           out_dir: str | Path, *, encoding: Dhis2Encoding = "json") -> ExportedProject:
    """Write cross-classified cascade counts as a DHIS2 dataValueSet in a project folder that reads it back.

    ``cells``: see :func:`data_values`; its dimension columns are the
    project's equity dimensions found in it.
    """
    if encoding not in ("json", "csv"):
        raise ParameterError(f"export_dhis2_aggregate: encoding must be 'json' or 'csv', saw {encoding!r}")
    dimensions = [s.name for s in project.strata if s.name in cells]
    values = data_values(cells, tables, dimensions)
    units, levels, numbers = organisation_units(tables)
    root = prepare_folder(out_dir)
    (root / "dhis2").mkdir(exist_ok=True)
    payload = f"dhis2/dataValueSets.{encoding}"
    if encoding == "json":
        (root / payload).write_text(json.dumps(data_value_set(values), indent=1) + "\n", encoding="utf-8")
    else:
        (root / payload).write_text(data_value_csv(values), encoding="utf-8")
    _write_units(root, units, levels)
    write_toml(root / "mapping.toml", aggregate_mapping(cells, dimensions, numbers))
    kept = [s for s in project.strata if s.name in dimensions]
    site_ids = org_unit_ids(tables)
    companions = write_companions(root, tables, site_ids=site_ids, strata=dimensions,
                                  names=("rollout", "population", "costs"))
    write_project_file(
        root, project, strata=kept, header=_AGGREGATE_HEADER,
        sources=[{"kind": "dhis2-datavalues", "path": payload, "org_units": ORG_UNITS_FILE,
                  "org_unit_levels": LEVELS_FILE, "mapping": "mapping.toml"},
                 *({"table": t, "path": p} for t, p in companions)],
    )
    return ExportedProject(
        format=f"dhis2-aggregate-{encoding}", root=root,
        files=(payload, ORG_UNITS_FILE, LEVELS_FILE, "mapping.toml", *(p for _, p in companions)),
        carried=("sites", "aggregates"), companions=tuple(t for t, _ in companions), strata=tuple(dimensions),
        site_ids=site_ids,
    )


def _write_units(root: Path, units: dict[str, Any], levels: dict[str, Any]) -> None:
    (root / ORG_UNITS_FILE).write_text(json.dumps(units, indent=1) + "\n", encoding="utf-8")
    (root / LEVELS_FILE).write_text(json.dumps(levels, indent=1) + "\n", encoding="utf-8")


# --------------------------------------------------------------------------- tracker
def tracker_ids(project: Project, tables: Mapping[str, pd.DataFrame]) -> dict[str, dict[str, str]]:
    """UIDs of the tracker metadata: attributes (by dimension), stages (by kind), data elements (by score)."""
    scores = {f"{name}:total": stable_uid("dataElement", f"{name}:total") for name in _scored(tables)}
    for name in _scored(tables):
        for k in range(1, INSTRUMENTS[name].n_items + 1):
            scores[f"{name}:{k}"] = stable_uid("dataElement", f"{name}:{k}")
    return {
        "attributes": {s.name: stable_uid("trackedEntityAttribute", s.name) for s in project.strata},
        "stages": {kind: stable_uid("programStage", kind) for kind in ENCOUNTER_TYPES},
        "data_elements": scores,
    }


def _scored(tables: Mapping[str, pd.DataFrame]) -> list[str]:
    measures = table(tables, "measures")
    present = set(measures.loc[measures["person_id"].notna() & measures["encounter_id"].notna(), "instrument"])
    return sorted(present & set(INSTRUMENTS))


def tracked_entities(tables: Mapping[str, pd.DataFrame], project: Project) -> dict[str, Any]:
    """A 2.41+ tracker export (``trackedEntities`` with nested enrollments and events)."""
    person_level(tables)
    ids = tracker_ids(project, tables)
    ou = org_unit_ids(tables)
    persons = sorted_by(table(tables, "persons"), ["person_id"])
    encounters = table(tables, "encounters")
    encounters = sorted_by(encounters.assign(_day=day_text(encounters["date"])), ["person_id", "_day", "encounter_id"])
    measures = table(tables, "measures")
    measures = sorted_by(measures.loc[measures["instrument"].isin(_scored(tables)) & measures["encounter_id"].notna()],
                         ["measure_id"])
    values_of: dict[str, list[dict[str, str]]] = {}
    for m in measures.to_dict("records"):
        found = values_of.setdefault(m["encounter_id"], [])
        total = cell_text(m.get("total"))
        if total is not None:
            found.append({"dataElement": ids["data_elements"][f"{m['instrument']}:total"], "value": total})
        for k in range(1, INSTRUMENTS[m["instrument"]].n_items + 1):
            item = cell_text(m.get(f"item_{k}"))
            if item is not None:
                found.append({"dataElement": ids["data_elements"][f"{m['instrument']}:{k}"], "value": item})
    events_of: dict[str, list[dict[str, Any]]] = {}
    for e in encounters.to_dict("records"):
        events_of.setdefault(e["person_id"], []).append({
            "event": stable_uid("event", e["encounter_id"]), "programStage": ids["stages"][e["type"]],
            "program": PROGRAM, "orgUnit": ou[e["site_id"]], "status": "COMPLETED",
            "occurredAt": f"{e['_day']}T00:00:00.000",
            "dataValues": sorted(values_of.get(e["encounter_id"], []), key=lambda v: v["dataElement"]),
        })
    entities = []
    for p in persons.to_dict("records"):
        events = events_of.get(p["person_id"], [])
        first = events[0]["occurredAt"] if events else None
        entities.append({
            "trackedEntity": stable_uid("trackedEntity", p["person_id"]), "trackedEntityType": TRACKED_ENTITY_TYPE,
            "orgUnit": ou[p["home_site_id"]],
            "attributes": [{"attribute": ids["attributes"][s.name], "value": cell_text(p.get(s.name))}
                           for s in project.strata if cell_text(p.get(s.name)) is not None],
            "enrollments": [{"enrollment": stable_uid("enrollment", p["person_id"]), "program": PROGRAM,
                             "orgUnit": ou[p["home_site_id"]], "status": "ACTIVE", "enrolledAt": first,
                             "occurredAt": first, "events": events}],
        })
    return {"trackedEntities": entities}


def tracker_mapping(project: Project, tables: Mapping[str, pd.DataFrame], levels: Mapping[int, str]) -> dict[str, Any]:
    """The source mapping that reads :func:`tracked_entities` back."""
    ids = tracker_ids(project, tables)
    instruments = {uid: (key.removesuffix(":total") if key.endswith(":total") else key)
                   for key, uid in ids["data_elements"].items()}
    return {
        "encounters": {"default": "assess", "by_code": {uid: kind for kind, uid in ids["stages"].items()}},
        "instruments": instruments,
        "strata": {name: {"field": uid} for name, uid in ids["attributes"].items()},
        "sites": {"levels": {str(n): level for n, level in levels.items()}},
    }


def export_dhis2_tracker(tables: Mapping[str, pd.DataFrame], project: Project, out_dir: str | Path) -> ExportedProject:
    """Write ``tables`` as a DHIS2 tracker export and org units in a project folder that reads them back.

    Person-level data, for moving records between the user's own systems.
    """
    payload = tracked_entities(tables, project)
    units, levels, numbers = organisation_units(tables)
    root = prepare_folder(out_dir)
    (root / "dhis2").mkdir(exist_ok=True)
    (root / "dhis2/trackedEntities.json").write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
    _write_units(root, units, levels)
    write_toml(root / "mapping.toml", tracker_mapping(project, tables, numbers))
    site_ids = org_unit_ids(tables)
    companions = write_companions(root, tables, site_ids=site_ids, strata=[s.name for s in project.strata])
    write_project_file(
        root, project, strata=project.strata, header=_TRACKER_HEADER,
        sources=[{"kind": "dhis2-tracker", "path": "dhis2/trackedEntities.json", "org_units": ORG_UNITS_FILE,
                  "org_unit_levels": LEVELS_FILE, "mapping": "mapping.toml"},
                 *({"table": t, "path": p} for t, p in companions)],
    )
    measures = table(tables, "measures")
    carried = measures["instrument"].isin(_scored(tables)) & measures["encounter_id"].notna()
    return ExportedProject(
        format="dhis2-tracker", root=root,
        files=("dhis2/trackedEntities.json", ORG_UNITS_FILE, LEVELS_FILE, "mapping.toml",
               *(p for _, p in companions)),
        carried=("sites", "persons", "encounters", "measures"), companions=tuple(t for t, _ in companions),
        strata=tuple(s.name for s in project.strata), site_ids=site_ids,
        skipped={"measures without a person or an encounter": int((~carried).sum())},
    )


_AGGREGATE_HEADER = """knowdo export (DHIS2 aggregate dataValueSets): monthly cascade counts per facility, disaggregated
by equity levels. Counts are not disclosure-controlled: apply knowdo's publishing rules before releasing them.
Rollout, population and costs, which the data set does not hold, are in data/."""

_TRACKER_HEADER = """knowdo export (DHIS2 tracker): person-level records for moving data between your own systems.
Tracked entities, enrollments and events are in dhis2/; rollout, population and costs are in data/."""
