"""Canonical tables → a REDCap project: flat record export (CSV) and its data dictionary.

Person-level records: this export is for moving data between the user's own
systems (e.g. into a study's REDCap project through the data import tool),
not for publication.

The project is longitudinal: an ``enrolment_arm_1`` event holds each
person's home facility (``site``, a dropdown whose choices are the
facilities) and equity strata (one radio field per dimension, named as the
dimension, so the connector reads them without a mapping); each encounter is
an instance of a repeating event named after its kind (``screen_arm_1``,
``session_arm_1``, ...), holding the instruments scored at it
(``phq9_1``..``phq9_9``, ``phq9_total``, ``phq9_date``; likewise ``phq2_``
and ``gad7_``) with the form marked Complete (2).

What REDCap cannot carry here, and why: encounters without a score (REDCap
records a contact only through the instrument filled in at it), the site of
an encounter when it differs from the person's home site (the connector
takes the home site), providers, session fidelity and districts.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from knowdo.config import Project
from knowdo.ingest.exporters.common import (
    ExportedProject,
    cell_text,
    day_text,
    facilities,
    person_level,
    prepare_folder,
    sorted_by,
    table,
    write_companions,
    write_project_file,
    write_toml,
)
from knowdo.ingest.redcap import DICTIONARY_COLUMNS
from knowdo.schema import ENCOUNTER_TYPES, INSTRUMENTS

FORMS = {"PHQ-9": "phq9", "PHQ-2": "phq2", "GAD-7": "gad7"}  # field prefixes the connector recognises
ENROLMENT_EVENT = "enrolment_arm_1"
COMPLETE = "2"  # REDCap form status: 2 = Complete
ANSWERS = "0, Not at all | 1, Several days | 2, More than half the days | 3, Nearly every day"


def event_name(kind: str) -> str:
    """The REDCap event holding encounters of ``kind`` (unique names are lower case with underscores)."""
    return f"{kind.replace('-', '_')}_arm_1"


def data_dictionary(tables: Mapping[str, pd.DataFrame], project: Project) -> pd.DataFrame:
    """The data dictionary (the 18 designer columns) for :func:`flat_records`."""
    sites = facilities(tables)
    rows: list[dict[str, str]] = [
        _field("record_id", "enrolment", "text", "Record ID"),
        _field("site", "enrolment", "dropdown", "Home facility",
               " | ".join(f"{s}, {_label(n, s)}" for s, n in zip(sites["site_id"], sites["name"], strict=True))),
    ]
    for s in project.strata:
        rows.append(_field(s.name, "enrolment", "radio", s.name.replace("_", " ").capitalize(),
                           " | ".join(f"{level}, {level}" for level in s.levels)))
    rows.append(_field("birth_year", "enrolment", "text", "Year of birth", validation="integer", minimum="1900",
                       maximum="2100"))
    for instrument in _instruments(tables):
        form, spec = FORMS[instrument], INSTRUMENTS[instrument]
        rows.append(_field(f"{form}_date", form, "text", "Date completed", validation="date_ymd"))
        for k in range(1, spec.n_items + 1):
            rows.append(_field(f"{form}_{k}", form, "radio", f"{instrument} item {k}", ANSWERS))
        rows.append(_field(f"{form}_total", form, "text", f"{instrument} total score", validation="integer",
                           minimum=f"{spec.total_min:g}", maximum=f"{spec.total_max:g}"))
    frame = pd.DataFrame(rows, columns=list(DICTIONARY_COLUMNS.values()))
    return frame.rename(columns={v: k for k, v in DICTIONARY_COLUMNS.items()})


def _label(name: Any, site: str) -> str:
    text = name if isinstance(name, str) and name else site
    return text.replace("|", "/")  # '|' separates choices


def _field(name: str, form: str, kind: str, label: str, choices: str = "", *, validation: str = "",
           minimum: str = "", maximum: str = "") -> dict[str, str]:
    row = dict.fromkeys(DICTIONARY_COLUMNS.values(), "")
    row.update(field_name=name, form_name=form, field_type=kind, field_label=label,
               select_choices_or_calculations=choices, text_validation_type_or_show_slider_number=validation,
               text_validation_min=minimum, text_validation_max=maximum)
    return row


def _instruments(tables: Mapping[str, pd.DataFrame]) -> list[str]:
    measures = table(tables, "measures")
    present = set(measures.loc[measures["person_id"].notna(), "instrument"])
    return [i for i in FORMS if i in present]


def flat_records(tables: Mapping[str, pd.DataFrame], project: Project) -> pd.DataFrame:
    """The flat record export (raw values, text cells): an enrolment row per person, a row per scored encounter."""
    person_level(tables)
    instruments = _instruments(tables)
    persons = sorted_by(table(tables, "persons"), ["person_id"])
    rows: list[dict[str, Any]] = []
    for p in persons.to_dict("records"):
        row: dict[str, Any] = {"record_id": p["person_id"], "redcap_event_name": ENROLMENT_EVENT,
                               "site": p["home_site_id"], "birth_year": cell_text(p.get("birth_year")),
                               "enrolment_complete": COMPLETE}
        for s in project.strata:
            row[s.name] = cell_text(p.get(s.name))
        rows.append(row)
    encounters = table(tables, "encounters")
    encounters = encounters.assign(_day=day_text(encounters["date"]))
    encounters = sorted_by(encounters, ["person_id", "type", "_day", "encounter_id"])
    encounters["_instance"] = encounters.groupby(["person_id", "type"]).cumcount() + 1
    measures = table(tables, "measures")
    scored = measures.loc[measures["instrument"].isin(instruments) & measures["encounter_id"].notna()]
    by_encounter: dict[str, list[dict[str, Any]]] = {}
    for record in sorted_by(scored, ["measure_id"]).to_dict("records"):
        by_encounter.setdefault(str(record["encounter_id"]), []).append({str(k): v for k, v in record.items()})
    e: dict[Any, Any]
    for e in encounters.to_dict("records"):
        found = by_encounter.get(str(e["encounter_id"]))
        if not found:
            continue
        row = {"record_id": e["person_id"], "redcap_event_name": event_name(str(e["type"])),
               "redcap_repeat_instance": str(e["_instance"])}
        for m in found:
            form = FORMS[m["instrument"]]
            row[f"{form}_date"] = e["_day"]
            for k in range(1, INSTRUMENTS[m["instrument"]].n_items + 1):
                row[f"{form}_{k}"] = cell_text(m.get(f"item_{k}"))
            row[f"{form}_total"] = cell_text(m.get("total"))
            row[f"{form}_complete"] = COMPLETE
        rows.append(row)
    columns = ["record_id", "redcap_event_name", "redcap_repeat_instrument", "redcap_repeat_instance", "site",
               *(s.name for s in project.strata), "birth_year", "enrolment_complete"]
    for instrument in instruments:
        form = FORMS[instrument]
        columns += [f"{form}_date", *(f"{form}_{k}" for k in range(1, INSTRUMENTS[instrument].n_items + 1)),
                    f"{form}_total", f"{form}_complete"]
    return pd.DataFrame(rows, columns=columns, dtype=object).fillna("")


def _csv_text(frame: pd.DataFrame) -> str:
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
    return buffer.getvalue()


def redcap_skipped(tables: Mapping[str, pd.DataFrame]) -> dict[str, int]:
    encounters = table(tables, "encounters")
    measures = table(tables, "measures")
    scored = set(measures.loc[measures["instrument"].isin(list(FORMS)), "encounter_id"].dropna())
    home = table(tables, "persons").set_index("person_id")["home_site_id"]
    away = encounters["site_id"].ne(encounters["person_id"].map(home))
    return {"encounters without a score": int((~encounters["encounter_id"].isin(scored)).sum()),
            "encounters away from the home site (read back at the home site)": int(away.sum()),
            "measures of other instruments or without a person": int(
                (~(measures["instrument"].isin(list(FORMS)) & measures["person_id"].notna())).sum())}


def export_redcap(tables: Mapping[str, pd.DataFrame], project: Project, out_dir: str | Path) -> ExportedProject:
    """Write ``tables`` as a REDCap flat export and data dictionary in a project folder that reads them back.

    Person-level data, for moving records between the user's own systems.
    """
    records = flat_records(tables, project)
    dictionary = data_dictionary(tables, project)
    root = prepare_folder(out_dir)
    (root / "redcap").mkdir(exist_ok=True)
    (root / "redcap" / "records.csv").write_text(_csv_text(records), encoding="utf-8")
    (root / "redcap" / "dictionary.csv").write_text(_csv_text(dictionary), encoding="utf-8")
    write_toml(root / "mapping.toml", {"encounters": {"default": "assess",
                                                      "by_code": {event_name(t): t for t in ENCOUNTER_TYPES}}})
    companions = write_companions(root, tables, site_ids={}, strata=[s.name for s in project.strata])
    write_project_file(
        root, project, strata=project.strata, header=_HEADER,
        sources=[{"kind": "redcap-flat", "path": "redcap/records.csv", "dictionary": "redcap/dictionary.csv",
                  "fields": {"site": "site"}, "mapping": "mapping.toml"},
                 *({"table": t, "path": p} for t, p in companions)],
    )
    return ExportedProject(
        format="redcap", root=root,
        files=("redcap/records.csv", "redcap/dictionary.csv", "mapping.toml", *(p for _, p in companions)),
        carried=("sites", "persons", "encounters", "measures"), companions=tuple(t for t, _ in companions),
        strata=tuple(s.name for s in project.strata), site_ids={s: s for s in facilities(tables)["site_id"]},
        skipped=redcap_skipped(tables),
    )


_HEADER = """knowdo export (REDCap flat records + data dictionary): person-level records for moving data between
your own systems. Records are in redcap/; rollout, population and costs, which REDCap has no place for, are in
data/."""
