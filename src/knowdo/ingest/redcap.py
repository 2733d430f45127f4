"""REDCap → canonical tables: flat and EAV record exports read with their data dictionary.

The data dictionary (either header spelling: the 18 designer columns, or the
API's snake_case ``content=metadata``) says what each field is, so:

* EAV exports (one data point per row) are pivoted to the flat shape (one row
  per record x event x repeat instance), and both go through one path;
* checkbox fields arrive as ``<field>___<code>`` 0/1 columns and are checked
  against the field's choices;
* ``<form>_complete`` (0 Incomplete, 1 Unverified, 2 Complete) decides which
  instrument rows count: only complete forms by default (``form_status``);
* the REDCap data-quality rules that the dictionary makes checkable are
  applied: choice values not in the list (rule G), validation types
  ``integer``/``number``/``date_ymd`` (C) and min/max (D);
* fields flagged ``identifier = y`` are never copied: a date of birth only
  yields a birth year and an age band.

Mapping to canonical tables: the record is the person; ``fields.site`` (or
the data access group) is the home site, and the site field's choices are
the ``sites``; every record x event x instance row that holds a complete
instrument is an encounter (its kind from ``[encounters] by_code`` keyed by
event name); scores come from fields named ``phq9_1..phq9_9``/``phq9_total``
(likewise ``phq2_``, ``gad7_``) unless ``[instruments]`` in the mapping names
them; the assessment date from ``fields.date`` or a ``<form>_date`` field.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from knowdo.config import Project, Source
from knowdo.errors import ConfigError, SchemaError
from knowdo.ingest.canonical import SOURCE_RECORD, CanonicalFrames, sha256_bytes, sha256_files, text_frame
from knowdo.ingest.mapping import SourceMapping, age_in_years, load_mapping, person_strata
from knowdo.ingest.remote import DEFAULT_RETRIES, DEFAULT_TIMEOUT, ApiClient, find_credentials

LISTED = 20
DEFAULT_FORM_STATUS = (2,)  # REDCap form status 2 = Complete; 1 (Unverified) is opt-in
KEY_COLUMNS = ("redcap_event_name", "redcap_repeat_instrument", "redcap_repeat_instance")

# The designer CSV header and the API's names for the same dictionary columns.
DICTIONARY_COLUMNS = {
    "Variable / Field Name": "field_name",
    "Form Name": "form_name",
    "Section Header": "section_header",
    "Field Type": "field_type",
    "Field Label": "field_label",
    "Choices, Calculations, OR Slider Labels": "select_choices_or_calculations",
    "Field Note": "field_note",
    "Text Validation Type OR Show Slider Number": "text_validation_type_or_show_slider_number",
    "Text Validation Min": "text_validation_min",
    "Text Validation Max": "text_validation_max",
    "Identifier?": "identifier",
    "Branching Logic (Show field only if...)": "branching_logic",
    "Required Field?": "required_field",
    "Custom Alignment": "custom_alignment",
    "Question Number (surveys only)": "question_number",
    "Matrix Group Name": "matrix_group_name",
    "Matrix Ranking?": "matrix_ranking",
    "Field Annotation": "field_annotation",
}
_AUTO_INSTRUMENT = re.compile(r"^(phq9|phq2|gad7)_(\d+|total|score)$", re.IGNORECASE)
_AUTO_NAMES = {"phq9": "PHQ-9", "phq2": "PHQ-2", "gad7": "GAD-7"}


@dataclass(frozen=True)
class Field:
    name: str
    form: str
    type: str
    choices: dict[str, str]
    validation: str
    minimum: str
    maximum: str
    identifier: bool


def read_dictionary(text: str, out: CanonicalFrames) -> dict[str, Field]:
    """A REDCap data dictionary (designer CSV or API metadata CSV), keyed by field name."""
    frame = _csv(text, out, "data dictionary")
    if frame is None:
        return {}
    frame = frame.rename(columns=DICTIONARY_COLUMNS)
    missing = [c for c in ("field_name", "form_name", "field_type") if c not in frame]
    if missing:
        out.problem("redcap-dictionary", f"the data dictionary lacks {', '.join(missing)}", record="data dictionary",
                    value=",".join(frame.columns[:6]))
        return {}
    fields = {}
    for _, row in frame.iterrows():
        name = str(row["field_name"]).strip()
        fields[name] = Field(
            name=name, form=str(row["form_name"]).strip(), type=str(row["field_type"]).strip(),
            choices=parse_choices(str(row.get("select_choices_or_calculations", "")))
            if str(row["field_type"]).strip() in ("radio", "dropdown", "checkbox") else {},
            validation=str(row.get("text_validation_type_or_show_slider_number", "")).strip(),
            minimum=str(row.get("text_validation_min", "")).strip(),
            maximum=str(row.get("text_validation_max", "")).strip(),
            identifier=str(row.get("identifier", "")).strip().lower() == "y",
        )
    return fields


def parse_choices(text: str) -> dict[str, str]:
    """``"0, Not at all | 1, Several days"`` → ``{"0": "Not at all", "1": "Several days"}``."""
    choices = {}
    for part in text.split("|"):
        code, sep, label = part.partition(",")
        if sep and code.strip():
            choices[code.strip()] = label.strip()
    return choices


def _csv(text: str, out: CanonicalFrames, what: str) -> pd.DataFrame | None:
    try:
        rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    except csv.Error as exc:
        out.problem("file-format", f"the {what} cannot be parsed as CSV: {exc}", record=what)
        return None
    if not rows or not rows[0]:
        out.problem("empty-file", f"the {what} is empty", record=what)
        return None
    header = [h.strip() for h in rows[0]]
    ragged = [i for i, r in enumerate(rows[1:], start=2) if r and len(r) != len(header)]
    for line in ragged[:LISTED]:
        out.problem("file-format", f"row {line} of the {what} has {len(rows[line - 1])} fields but the header has "
                    f"{len(header)}", record=what)
    if ragged:
        return None
    return pd.DataFrame([r for r in rows[1:] if r], columns=header, dtype=object)


def eav_to_flat(eav: pd.DataFrame, fields: Mapping[str, Field], out: CanonicalFrames) -> pd.DataFrame | None:
    """One row per record x event x repeat instance, one column per field (as the flat export has)."""
    record_column = "record" if "record" in eav else ("record_id" if "record_id" in eav else None)
    if record_column is None or "field_name" not in eav or "value" not in eav:
        out.problem("redcap-eav", "an EAV export has columns record, field_name and value", record="export",
                    value=",".join(eav.columns[:6]))
        return None
    keys = [record_column] + [c for c in KEY_COLUMNS if c in eav]
    frame = eav.copy()
    for column in keys:
        frame[column] = frame[column].fillna("")
    dup = frame.duplicated(subset=[*keys, "field_name"], keep="first")
    for i in frame.index[dup][:LISTED]:
        out.problem("duplicate-key", "the same field appears twice for one record, event and instance",
                    record=f"row {int(i) + 2}", column="field_name", value=frame.at[i, "field_name"])
    if dup.any():
        return None
    wide = frame.pivot(index=keys, columns="field_name", values="value").reset_index()
    wide.columns.name = None
    record_field = next(iter(fields), "record_id")
    return wide.rename(columns={record_column: record_field})


def check_values(flat: pd.DataFrame, fields: Mapping[str, Field], out: CanonicalFrames) -> None:
    """REDCap data-quality rules C, D and G from the dictionary, plus fields the dictionary lacks."""
    checkbox = {f"{f.name}___{code.lower()}": (f, code) for f in fields.values() if f.type == "checkbox"
                for code in f.choices}
    for column in flat.columns:
        if column in KEY_COLUMNS or column == "redcap_data_access_group" or column.endswith("_complete"):
            continue
        values = flat[column].fillna("").astype(str).str.strip()
        present = values.ne("")
        rows = flat.index[present]
        if column in checkbox:
            bad = present & ~values.isin(["0", "1"])
            _flag(out, flat, bad, column, "redcap-choice", "checkbox columns hold 0 or 1")
            continue
        spec = fields.get(column)
        if spec is None:
            if column.endswith(("_timestamp",)) or column == "redcap_survey_identifier":
                continue
            if len(rows):
                out.problem("redcap-unknown-field", "not in the data dictionary; ignored", column=column,
                            severity="warning")
            continue
        if spec.choices and spec.type in ("radio", "dropdown"):
            _flag(out, flat, present & ~values.isin(list(spec.choices)), column, "redcap-choice",
                  f"not one of the field's choices ({', '.join(spec.choices)})")
        if spec.validation in ("integer", "number") or spec.type == "calc":
            numbers = pd.to_numeric(values.where(present), errors="coerce")
            bad = present & numbers.isna()
            if spec.validation == "integer":
                bad = bad | (present & numbers.notna() & (numbers != numbers.round()))
            _flag(out, flat, bad, column, "redcap-validation", f"must be {spec.validation or 'a number'}")
            for bound, compare in ((spec.minimum, numbers.lt), (spec.maximum, numbers.gt)):
                if bound:
                    limit = pd.to_numeric(pd.Series([bound]), errors="coerce").iloc[0]
                    if pd.notna(limit):
                        _flag(out, flat, compare(limit).fillna(False), column, "redcap-range",
                              f"outside the field's range [{spec.minimum or '-'}, {spec.maximum or '-'}]")
        if spec.validation.startswith("date_ymd"):
            parsed = pd.to_datetime(values.where(present), format="%Y-%m-%d", errors="coerce")
            _flag(out, flat, present & parsed.isna(), column, "redcap-validation", "must be a date YYYY-MM-DD")


def _flag(out: CanonicalFrames, flat: pd.DataFrame, bad: pd.Series, column: str, rule: str, message: str) -> None:
    listed = flat.index[bad.to_numpy()][:LISTED]
    if not len(listed):
        return
    rows = flat.loc[listed]
    head, tail = _row_citations(rows, rows[flat.columns[0]].fillna("").astype(str))
    for i in listed:
        out.problem(rule, message, record=f"{head.at[i]}{tail.at[i]}", column=column, value=flat.at[i, column])


def canonical_tables(flat: pd.DataFrame, fields: Mapping[str, Field], mapping: SourceMapping, project: Project,
                     options: Mapping[str, Any], out: CanonicalFrames) -> dict[str, pd.DataFrame]:
    record_field = next(iter(fields), flat.columns[0])
    if record_field not in flat:
        record_field = flat.columns[0]
    names = dict(options.get("fields") or {})
    site_field = names.get("site") or ("redcap_data_access_group" if "redcap_data_access_group" in flat else None)
    if site_field is None or site_field not in flat:
        out.problem("redcap-fields", "say which field holds the facility: fields = { site = \"<field>\" } in the "
                    "source (or export data access groups)", column="fields.site")
        return {}
    flat = flat.fillna("")
    for column in KEY_COLUMNS:
        if column not in flat:
            flat[column] = ""
    record = flat[record_field].astype(str)
    head, tail = _row_citations(flat, record)
    site_rows = flat[site_field].astype(str).str.strip()
    home = site_rows.where(site_rows.ne("")).groupby(record).first()
    tables: dict[str, pd.DataFrame] = {}
    site_spec = fields.get(site_field)
    if site_spec is not None and site_spec.choices:
        tables["sites"] = text_frame("sites", pd.DataFrame({
            "site_id": list(site_spec.choices), "name": list(site_spec.choices.values()),
            "parent_id": "", "level": "facility",
            SOURCE_RECORD: [f"data dictionary, field {site_field}, choice {code}" for code in site_spec.choices]}))
    instruments = _instrument_fields(fields, mapping)
    status = tuple(int(s) for s in options.get("form_status", DEFAULT_FORM_STATUS))
    rows = []
    skipped = 0
    for i in flat.index:
        by_instrument: dict[str, dict[str, str]] = {}
        forms: set[str] = set()
        form_of: dict[str, str] = {}
        for column, (instrument, item) in instruments.items():
            value = str(flat.at[i, column]).strip() if column in flat else ""
            if value:
                by_instrument.setdefault(instrument, {})["total" if item is None else f"item_{item}"] = value
                forms.add(fields[column].form if column in fields else "")
                form_of.setdefault(instrument, fields[column].form if column in fields else "")
        if not by_instrument:
            continue
        complete = [str(flat.at[i, f"{form}_complete"]).strip() for form in forms if f"{form}_complete" in flat]
        if complete and not all(c.isdigit() and int(c) in status for c in complete):
            skipped += 1
            continue
        date_field = names.get("date") or next((f"{form}_date" for form in sorted(forms)
                                                if f"{form}_date" in flat), None)
        date = str(flat.at[i, date_field]).strip() if date_field else ""
        encounter = ":".join(str(x) for x in (record.iloc[i], flat.at[i, "redcap_event_name"],
                                              flat.at[i, "redcap_repeat_instrument"],
                                              flat.at[i, "redcap_repeat_instance"]) if str(x))
        repeating = str(flat.at[i, "redcap_repeat_instrument"]).strip()
        for instrument, values in by_instrument.items():
            form = repeating or form_of.get(instrument, "")
            rows.append({"measure_id": f"{encounter}:{instrument}", "person_id": record.iloc[i],
                         "site_id": home.get(record.iloc[i], ""), "encounter_id": encounter, "date": date,
                         "instrument": instrument, "_event": flat.at[i, "redcap_event_name"], **values,
                         SOURCE_RECORD: f"{head.iloc[i]}, instrument {form}{tail.iloc[i]}" if form
                         else f"{head.iloc[i]}{tail.iloc[i]}",
                         "_row": f"{head.iloc[i]}{tail.iloc[i]}"})
    if skipped:
        out.problem("redcap-form-status", f"{skipped} instrument row(s) whose form is not complete (status not in "
                    f"{list(status)}) were left out; set form_status = [1, 2] to count unverified forms",
                    severity="warning")
    persons = pd.DataFrame({"person_id": record.drop_duplicates().to_numpy()})
    persons[SOURCE_RECORD] = "record " + persons["person_id"]
    persons["home_site_id"] = persons["person_id"].map(home)
    attributes = _person_attributes(flat, record, fields, names, rows)
    strata, problems = person_strata(attributes.reindex(persons["person_id"]).reset_index(drop=True),
                                     project.strata, mapping, label=out.origin)
    out.problems.extend(problems)
    birth = attributes.reindex(persons["person_id"])["birth_date"] if "birth_date" in attributes else None
    persons["birth_year"] = birth.astype("string").str.slice(0, 4).to_numpy() if birth is not None else ""
    tables["persons"] = text_frame("persons", pd.concat([persons.drop(columns=SOURCE_RECORD), strata,
                                                         persons[[SOURCE_RECORD]]], axis=1))
    if rows:
        measures = pd.DataFrame(rows)
        encounters = measures.drop_duplicates("encounter_id")
        kinds = mapping.encounters.apply(encounters["_event"], encounters["person_id"], encounters["date"])
        tables["encounters"] = text_frame("encounters", {
            "encounter_id": encounters["encounter_id"], "person_id": encounters["person_id"],
            "site_id": encounters["site_id"], "date": encounters["date"], "type": kinds,
            SOURCE_RECORD: encounters["_row"]})
        tables["measures"] = text_frame("measures", measures.drop(columns=["_event", "_row"]))
    return tables


def _row_citations(flat: pd.DataFrame, record: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Each export row as REDCap names it, split around the instrument: ``record 3, event baseline_arm_1`` and
    ``, instance 2`` (parts the project does not use are left out), built column-wise."""
    blank = pd.Series("", index=flat.index)
    head = "record " + record
    event = flat.get("redcap_event_name", blank).fillna("").astype(str).str.strip()
    head = head.where(event.eq(""), head + ", event " + event)
    instance = flat.get("redcap_repeat_instance", blank).fillna("").astype(str).str.strip()
    tail = blank.where(instance.eq(""), ", instance " + instance)
    return head, tail


def _instrument_fields(fields: Mapping[str, Field], mapping: SourceMapping) -> dict[str, tuple[str, int | None]]:
    if mapping.instruments:
        return dict(mapping.instruments)
    found: dict[str, tuple[str, int | None]] = {}
    for name in fields:
        match = _AUTO_INSTRUMENT.match(name)
        if match:
            part = match[2].lower()
            found[name] = (_AUTO_NAMES[match[1].lower()], None if part in ("total", "score") else int(part))
    return found


def _person_attributes(flat: pd.DataFrame, record: pd.Series, fields: Mapping[str, Field],
                       names: Mapping[str, str], rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Per person: each non-identifier field's first value and its choice label; birth date → age."""
    columns = [c for c in flat.columns if c in fields and not fields[c].identifier] + [
        c for c in flat.columns if "___" in c]
    first = flat[columns].replace("", pd.NA).groupby(record).first()
    for column in list(first.columns):
        spec = fields.get(column)
        if spec is not None and spec.choices:
            first[f"{column}:label"] = first[column].map(spec.choices)
    birth_field = names.get("birth_date") or next(
        (f.name for f in fields.values() if f.validation.startswith("date") and f.name in ("dob", "birth_date",
                                                                                          "date_of_birth")), None)
    if birth_field and birth_field in flat:
        birth = flat[birth_field].replace("", pd.NA).groupby(record).first()
        first["birth_date"] = birth
        dates = pd.DataFrame(rows, columns=["person_id", "date"]) if rows else pd.DataFrame(
            columns=["person_id", "date"])
        when = dates[dates["date"].ne("")].groupby("person_id")["date"].min()
        first["age"] = age_in_years(birth, when.reindex(birth.index)).to_numpy()
    return first


# --------------------------------------------------------------------------- one [[sources]] entry
def read_redcap_source(source: Source, project: Project, *, client: ApiClient | None = None) -> CanonicalFrames:
    """Read a ``redcap-flat`` or ``redcap-eav`` source: an export file with ``dictionary``, or the API (``url``)."""
    out = CanonicalFrames(source.location)
    try:
        mapping = load_mapping(source.mapping, project.root)
    except ConfigError as exc:
        out.problem("mapping", str(exc))
        return out
    try:
        records_text, dictionary_text = (_fetch(source, project, client) if source.url
                                         else _read_files(source, project, out))
    except SchemaError as exc:
        out.problems.extend(exc.problems)
        return out
    if records_text is None or dictionary_text is None:
        return out
    if source.url:
        out.sha256 = sha256_bytes((records_text + dictionary_text).encode())
    fields = read_dictionary(dictionary_text, out)
    export = _csv(records_text, out, "record export")
    if not fields or export is None:
        return out
    flat = eav_to_flat(export, fields, out) if source.kind == "redcap-eav" else export
    if flat is None:
        return out
    check_values(flat, fields, out)
    if out.errors:
        return out
    out.tables.update(canonical_tables(flat.reset_index(drop=True), fields, mapping, project, source.options, out))
    return out


def _read_files(source: Source, project: Project, out: CanonicalFrames) -> tuple[str | None, str | None]:
    dictionary = source.options.get("dictionary")
    if not isinstance(dictionary, str):
        out.problem("redcap-dictionary", "a REDCap export needs its data dictionary: dictionary = \"<file>.csv\"",
                    column="dictionary")
        return None, None
    files = [source.path, project.root / dictionary]
    texts = []
    for file in files:
        if not file.is_file():
            out.problem("file-missing", f"file not found at {file}")
            return None, None
        try:
            texts.append(file.read_bytes().decode("utf-8-sig"))
        except UnicodeDecodeError as exc:
            out.problem("encoding", f"{file.name}: not valid UTF-8 near byte {exc.start}")
            return None, None
    out.sha256 = sha256_files(files)
    return texts[0], texts[1]


def _fetch(source: Source, project: Project, client: ApiClient | None) -> tuple[str, str]:
    assert source.url is not None
    env = str(source.options.get("auth_env", "KNOWDO_REDCAP"))
    own = client is None
    if client is None:
        credentials = find_credentials(source.url, env_prefix=env, project_root=project.root)
        client = ApiClient(source.url, credentials=credentials, scheme="form-token", env_hint=env,
                           timeout=float(source.options.get("timeout", DEFAULT_TIMEOUT)),
                           retries=int(source.options.get("retries", DEFAULT_RETRIES)))
    kind = "eav" if source.kind == "redcap-eav" else "flat"
    try:
        records = client.post_form("", {"content": "record", "format": "csv", "type": kind, "rawOrLabel": "raw",
                                        "exportDataAccessGroups": "true"})
        metadata = client.post_form("", {"content": "metadata", "format": "csv"})
    finally:
        if own:
            client.close()
    return records.text, metadata.text
