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
from knowdo.ingest.canonical import SOURCE_RECORD, CanonicalFrames, text_frame
from knowdo.ingest.mapping import SourceMapping, age_in_years, iso_date, person_strata

ENTITY_KEYS = ("trackedEntities", "instances", "trackedEntityInstances")  # 2.41+, 2.40, pre-2.40 list names

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
    for key in ENTITY_KEYS:
        if key in payload:
            items = payload[key]
            if not isinstance(items, list):
                out.problem("dhis2-shape", f"'{key}' must be a list")
                return []
            return [_renamed(x) if isinstance(x, dict) else x for x in items]
    out.problem("dhis2-shape", "no 'trackedEntities' (2.41+), 'instances' (2.40) or 'trackedEntityInstances' list")
    return []


def tracker_list_key(payload: Any) -> str:
    """The name the export gives its list of tracked entities, for citing records as the file spells them."""
    found = next((k for k in ENTITY_KEYS if k in payload), None) if isinstance(payload, dict) else None
    return found or ENTITY_KEYS[0]


def _renamed(obj: dict[str, Any]) -> dict[str, Any]:
    renamed = {_OLD_NAMES.get(k, k): v for k, v in obj.items()}
    for key in ("enrollments", "events"):
        if isinstance(renamed.get(key), list):
            renamed[key] = [_renamed(x) if isinstance(x, dict) else x for x in renamed[key]]
    return renamed


def tracker_tables(entities: list[Any], mapping: SourceMapping, strata: Sequence[Stratum],
                   out: CanonicalFrames, *, key: str = ENTITY_KEYS[0]) -> dict[str, pd.DataFrame]:
    """Persons (with equity strata from attributes), encounters (events) and measures (mapped data values).

    Each row cites its record as the export spells it (``key`` is the list's
    name): ``trackedEntities[0]`` for a person,
    ``trackedEntities[0].enrollments[1].events[2]`` for an event and its scores.
    """
    persons: list[dict[str, Any]] = []
    attributes: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    scores: list[dict[str, Any]] = []
    for i, te in enumerate(entities):
        where = f"{key}[{i}]"
        if not isinstance(te, dict) or not isinstance(te.get("trackedEntity"), str):
            out.problem("dhis2-shape", "each tracked entity needs a 'trackedEntity' id", record=where)
            continue
        if te.get("deleted") is True:
            continue
        attrs = {str(a.get("attribute")): a.get("value") for a in _items(te.get("attributes")) if isinstance(a, dict)}
        for j, enrollment in enumerate(_items(te.get("enrollments"))):
            if not isinstance(enrollment, dict) or enrollment.get("deleted") is True:
                continue
            for k, e in enumerate(_items(enrollment.get("events"))):
                if isinstance(e, dict) and e.get("deleted") is not True and str(e.get("status")) not in ("SCHEDULE",
                                                                                                      "SKIPPED",
                                                                                                      "OVERDUE"):
                    events.append({**e, "_person": te["trackedEntity"],
                                   "_where": f"{where}.enrollments[{j}].events[{k}]"})
        first_date = min((str(e.get("occurredAt")) for e in events if e["_person"] == te["trackedEntity"]
                          and e.get("occurredAt")), default=None)
        persons.append({"person_id": te["trackedEntity"], "home_site_id": te.get("orgUnit") or "",
                        "_first": first_date, SOURCE_RECORD: where})
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
    person_frame = pd.concat([person_frame.drop(columns=["_first", SOURCE_RECORD]), strata_frame,
                              person_frame[[SOURCE_RECORD]]], axis=1)
    tables = {"persons": text_frame("persons", person_frame)}
    if events:
        ev = pd.DataFrame(events)
        date = iso_date(ev.get("occurredAt", pd.Series([None] * len(ev))).astype("string"))
        kinds = mapping.encounters.apply(ev["programStage"], ev["_person"], date)
        tables["encounters"] = text_frame("encounters", {
            "encounter_id": ev["event"], "person_id": ev["_person"], "site_id": ev["orgUnit"], "date": date,
            "type": kinds, SOURCE_RECORD: ev["_where"],
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
                    "instrument": instrument, SOURCE_RECORD: event["_where"],
                })
                row["total" if item is None else f"item_{item}"] = dv.get("value")
            scores.extend(measures.values())
    if scores:
        tables["measures"] = text_frame("measures", pd.DataFrame(scores))
    return tables


