"""DHIS2 tracker exports → persons, encounters and measures.

Reads ``/api/tracker/trackedEntities`` with nested enrollments and events in
the 2.41+ shape (``trackedEntities``), the 2.40 wrapper (``instances``) and
the old ``/api/trackedEntityInstances`` names (``trackedEntityInstance``,
``eventDate``, ``dueDate``, ``enrollmentDate``, ``incidentDate``; endpoints
removed in v42). A tracked entity is a person (home site: its org unit; equity
strata from its attributes through ``[strata]``, with an ``<uid>:age`` at first
event for date-of-birth attributes), each event that happened (not
scheduled, skipped or overdue) an encounter (kind from ``[encounters]
by_code`` keyed by program stage), and each data element named in
``[instruments]`` a score.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from knowdo.config import Stratum
from knowdo.ingest.canonical import CanonicalFrames, text_frame
from knowdo.ingest.mapping import SourceMapping, age_in_years, iso_date, person_strata

# Old (pre-2.41, /api/trackedEntityInstances) field names and their current names.
_OLD_NAMES = {"trackedEntityInstance": "trackedEntity", "eventDate": "occurredAt", "dueDate": "scheduledAt",
              "enrollmentDate": "enrolledAt", "incidentDate": "occurredAt"}


def _items(value: Any) -> list[Any]:
    """A JSON array field, or an empty list when the payload put something else there."""
    return value if isinstance(value, list) else []


def tracked_entities(payload: Any, out: CanonicalFrames) -> list[dict[str, Any]]:
    """The tracked entities of a 2.41+ (``trackedEntities``), 2.40 (``instances``) or old export."""
    if not isinstance(payload, dict):
        out.problem("dhis2-shape", "a tracker export is a JSON object")
        return []
    for key in ("trackedEntities", "instances", "trackedEntityInstances"):
        if key in payload:
            items = payload[key]
            if not isinstance(items, list):
                out.problem("dhis2-shape", f"'{key}' must be a list")
                return []
            return [_renamed(x) if isinstance(x, dict) else x for x in items]
    out.problem("dhis2-shape", "no 'trackedEntities' (2.41+), 'instances' (2.40) or 'trackedEntityInstances' list")
    return []


def _renamed(obj: dict[str, Any]) -> dict[str, Any]:
    renamed = {_OLD_NAMES.get(k, k): v for k, v in obj.items()}
    for key in ("enrollments", "events"):
        if isinstance(renamed.get(key), list):
            renamed[key] = [_renamed(x) if isinstance(x, dict) else x for x in renamed[key]]
    return renamed


def tracker_tables(entities: list[Any], mapping: SourceMapping, strata: Sequence[Stratum],
                   out: CanonicalFrames) -> dict[str, pd.DataFrame]:
    """Persons (with equity strata from attributes), encounters (events) and measures (mapped data values)."""
    persons: list[dict[str, Any]] = []
    attributes: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    scores: list[dict[str, Any]] = []
    for i, te in enumerate(entities):
        where = f"trackedEntities[{i}]"
        if not isinstance(te, dict) or not isinstance(te.get("trackedEntity"), str):
            out.problem("dhis2-shape", "each tracked entity needs a 'trackedEntity' id", record=where)
            continue
        if te.get("deleted") is True:
            continue
        attrs = {str(a.get("attribute")): a.get("value") for a in _items(te.get("attributes")) if isinstance(a, dict)}
        enrollments = [e for e in _items(te.get("enrollments")) if isinstance(e, dict) and e.get("deleted") is not True]
        for j, enrollment in enumerate(enrollments):
            for e in _items(enrollment.get("events")):
                if isinstance(e, dict) and e.get("deleted") is not True and str(e.get("status")) not in ("SCHEDULE",
                                                                                                      "SKIPPED",
                                                                                                      "OVERDUE"):
                    events.append({**e, "_person": te["trackedEntity"], "_where": f"{where}.enrollments[{j}]"})
        first_date = min((str(e.get("occurredAt")) for e in events if e["_person"] == te["trackedEntity"]
                          and e.get("occurredAt")), default=None)
        persons.append({"person_id": te["trackedEntity"], "home_site_id": te.get("orgUnit") or "",
                        "_first": first_date})
        attributes.append(attrs)
    if not persons:
        return {}
    person_frame = pd.DataFrame(persons)
    attr_frame = pd.DataFrame(attributes, index=person_frame.index)
    for uid, value in list(attr_frame.items()):
        birth = iso_date(value.astype("string"))
        if birth.str.fullmatch(r"\d{4}-\d{2}-\d{2}").fillna(False).all() and value.notna().any():
            attr_frame[f"{uid}:age"] = age_in_years(birth, person_frame["_first"])
    strata_frame, problems = person_strata(attr_frame, strata, mapping, label=out.origin)
    out.problems.extend(problems)
    person_frame = pd.concat([person_frame.drop(columns="_first"), strata_frame], axis=1)
    tables = {"persons": text_frame("persons", person_frame)}
    if events:
        ev = pd.DataFrame(events)
        date = iso_date(ev.get("occurredAt", pd.Series([None] * len(ev))).astype("string"))
        kinds = mapping.encounters.apply(ev["programStage"], ev["_person"], date)
        tables["encounters"] = text_frame("encounters", {
            "encounter_id": ev["event"], "person_id": ev["_person"], "site_id": ev["orgUnit"], "date": date,
            "type": kinds,
        })
        for k, event in enumerate(events):
            measures: dict[str, dict[str, Any]] = {}
            for dv in _items(event.get("dataValues")):
                if not isinstance(dv, dict):
                    continue
                found = mapping.instrument_of(str(dv.get("dataElement")))
                if found is None:
                    continue
                instrument, item = found
                row = measures.setdefault(instrument, {
                    "measure_id": f"{event.get('event')}:{instrument}", "person_id": event["_person"],
                    "site_id": event.get("orgUnit"), "encounter_id": event.get("event"), "date": date.iloc[k],
                    "instrument": instrument,
                })
                row["total" if item is None else f"item_{item}"] = dv.get("value")
            scores.extend(measures.values())
    if scores:
        tables["measures"] = text_frame("measures", pd.DataFrame(scores))
    return tables


