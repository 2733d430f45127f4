"""OMOP CDM 5.4 → canonical tables, through concept sets the user can extend.

The store reads the OMOP tables (from a DuckDB file or a PostgreSQL schema;
see :mod:`knowdo.store.omop_source`) as text frames; this module maps them:

* ``care_site`` → ``sites`` (facilities); ``provider`` → ``providers`` (cadre
  from the specialty text, or ``[providers] cadres`` in the mapping);
* ``person`` → ``persons``, with gender, race and ethnicity concept ids turned
  into words (``gender``, ``race``, ``ethnicity``; the ``*_source_value``
  columns are offered too, as LMIC data usually leave the US race concepts at
  0) and an ``age`` at first visit for ``[strata]`` rules;
* ``visit_occurrence`` → ``encounters`` (kind from ``[encounters] by_code``,
  keyed by ``visit_source_value``);
* ``observation`` and ``measurement`` rows whose concept is a score concept
  → ``measures``. PHQ-9, PHQ-2 and GAD-7 totals are LOINC "survey" concepts
  with domain Observation, so both tables are searched; rows without
  ``value_as_number`` (as in the Eunomia Synthea27Nj sample, where none carry
  one) are skipped and counted in a warning, not loaded as empty scores.

Concept ids are from the OMOP vocabulary (v5.0 09-APR-22, data-standards.md
section 3). A source extends the sets with ``concepts = { scores = {
"36305244" = "PHQ-9" }, gender = { "8551" = "unknown" } }``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from knowdo.config import Project
from knowdo.errors import ConfigError
from knowdo.ingest.canonical import SOURCE_RECORD, CanonicalFrames, text_frame
from knowdo.ingest.mapping import SourceMapping, age_in_years, cadre_of, iso_date, person_strata
from knowdo.schema import INSTRUMENTS

# Columns knowdo reads from each OMOP table (CDM 5.4 DDL names).
OMOP_COLUMNS: dict[str, tuple[str, ...]] = {
    "person": ("person_id", "gender_concept_id", "year_of_birth", "month_of_birth", "day_of_birth",
               "birth_datetime", "race_concept_id", "ethnicity_concept_id", "location_id", "care_site_id",
               "gender_source_value", "race_source_value", "ethnicity_source_value"),
    "care_site": ("care_site_id", "care_site_name", "location_id", "care_site_source_value"),
    "location": ("location_id", "city", "county", "state", "location_source_value"),
    "provider": ("provider_id", "provider_name", "specialty_concept_id", "care_site_id", "specialty_source_value"),
    "visit_occurrence": ("visit_occurrence_id", "person_id", "visit_concept_id", "visit_start_date",
                         "provider_id", "care_site_id", "visit_source_value"),
    "condition_occurrence": ("condition_occurrence_id", "person_id", "condition_concept_id", "condition_start_date",
                             "visit_occurrence_id", "condition_source_value"),
    "observation": ("observation_id", "person_id", "observation_concept_id", "observation_date", "value_as_number",
                    "visit_occurrence_id", "provider_id", "observation_source_value"),
    "measurement": ("measurement_id", "person_id", "measurement_concept_id", "measurement_date", "value_as_number",
                    "visit_occurrence_id", "provider_id", "measurement_source_value"),
}
REQUIRED_TABLES = ("person",)


@dataclass(frozen=True)
class ConceptSets:
    """OMOP concept ids knowdo understands, by meaning (extend with :meth:`extended`)."""

    scores: Mapping[str, str] = field(default_factory=lambda: {
        "3042932": "PHQ-9",  # LOINC 44261-6 PHQ-9 total score
        "40758879": "PHQ-2",  # LOINC 55758-7 PHQ-2 total score
        "42868746": "GAD-7",  # LOINC 70274-6 GAD-7 total score
    })
    gender: Mapping[str, str] = field(default_factory=lambda: {"8507": "male", "8532": "female"})
    race: Mapping[str, str] = field(default_factory=lambda: {
        "8527": "white", "8516": "black", "8515": "asian", "8657": "american_indian_alaska_native",
        "8557": "native_hawaiian_pacific_islander",
    })
    ethnicity: Mapping[str, str] = field(default_factory=lambda: {"38003563": "hispanic",
                                                                   "38003564": "not_hispanic"})
    depression: frozenset[str] = frozenset({"440383", "4152280", "4282096"})  # SNOMED 35489007, 370143000, 36923009
    anxiety: frozenset[str] = frozenset({"4214746"})  # SNOMED 80583007 severe anxiety (panic)

    def extended(self, spec: Any, *, where: str = "knowdo.toml") -> ConceptSets:
        if spec is None:
            return self
        if not isinstance(spec, Mapping):
            example = '{ scores = { "36305244" = "PHQ-9" } }'
            raise ConfigError(f"{where}: concepts must be a table such as {example}")
        unknown = set(spec) - {"scores", "gender", "race", "ethnicity", "depression", "anxiety"}
        if unknown:
            raise ConfigError(f"{where}: concepts has unknown sets {sorted(unknown)}")
        scores = {str(k): str(v) for k, v in (spec.get("scores") or {}).items()}
        bad = {k: v for k, v in scores.items() if v not in INSTRUMENTS}
        if bad:
            raise ConfigError(f"{where}: concepts.scores names unknown instruments {bad}; use {', '.join(INSTRUMENTS)}")
        return ConceptSets(
            scores={**self.scores, **scores},
            gender={**self.gender, **{str(k): str(v) for k, v in (spec.get("gender") or {}).items()}},
            race={**self.race, **{str(k): str(v) for k, v in (spec.get("race") or {}).items()}},
            ethnicity={**self.ethnicity, **{str(k): str(v) for k, v in (spec.get("ethnicity") or {}).items()}},
            depression=self.depression | {str(c) for c in spec.get("depression") or []},
            anxiety=self.anxiety | {str(c) for c in spec.get("anxiety") or []},
        )


def _text(frame: pd.DataFrame, column: str) -> pd.Series:
    if column not in frame:
        return pd.Series([pd.NA] * len(frame), index=frame.index, dtype="string")
    values = frame[column].astype("string").str.strip()
    values = values.mask(values.eq("") | values.str.lower().eq("nan") | values.str.lower().eq("none"))
    return values.str.replace(r"\.0$", "", regex=True)


def _cite(frame: pd.DataFrame, table: str, id_column: str) -> pd.Series:
    """Each row's source record as ``table.id_column=value`` (``visit_occurrence.visit_occurrence_id=7``)."""
    return (f"{table}.{id_column}=" + _text(frame, id_column).fillna("")).astype(object)


def omop_to_canonical(tables: Mapping[str, pd.DataFrame], mapping: SourceMapping, concepts: ConceptSets,
                      project: Project, out: CanonicalFrames) -> dict[str, pd.DataFrame]:
    """Canonical frames (text cells) from OMOP table frames read by the store."""
    missing = [t for t in REQUIRED_TABLES if t not in tables]
    if missing:
        out.problem("omop-table", f"the database has no {', '.join(missing)} table (is this an OMOP CDM schema?)")
        return {}
    result: dict[str, pd.DataFrame] = {}
    visits = tables.get("visit_occurrence", pd.DataFrame(columns=OMOP_COLUMNS["visit_occurrence"]))
    visit_site = dict(zip(_text(visits, "visit_occurrence_id"), _text(visits, "care_site_id"), strict=True))
    person = tables["person"]
    person_ids = _text(person, "person_id")
    person_site = dict(zip(person_ids, _text(person, "care_site_id"), strict=True))

    if "care_site" in tables:
        sites = tables["care_site"]
        result["sites"] = text_frame("sites", {
            "site_id": _text(sites, "care_site_id"), "name": _text(sites, "care_site_name").fillna(""),
            "parent_id": "", "level": "facility", SOURCE_RECORD: _cite(sites, "care_site", "care_site_id")})

    if "provider" in tables and len(tables["provider"]):
        providers = tables["provider"]
        specialty = _text(providers, "specialty_source_value")
        cadre = specialty.map(lambda s: cadre_of(s, mapping) if isinstance(s, str) else None)
        for pid, text in zip(_text(providers, "provider_id")[cadre.isna()], specialty[cadre.isna()], strict=True):
            out.problem("omop-provider-cadre", "no cadre for this specialty; add it to the mapping's [providers] "
                        "cadres (specialist, gp, nurse or lay_worker)", record=f"provider {pid}",
                        column="specialty_source_value", value=text)
        result["providers"] = text_frame("providers", {
            "provider_id": _text(providers, "provider_id"), "site_id": _text(providers, "care_site_id"),
            "cadre": cadre, SOURCE_RECORD: _cite(providers, "provider", "provider_id")})

    measures = _scores(tables, concepts, visit_site, person_site, out)

    first = pd.concat([
        pd.DataFrame({"person_id": _text(visits, "person_id"), "date": iso_date(_text(visits, "visit_start_date")),
                      "site": _text(visits, "care_site_id")}),
        measures[["person_id", "date", "site_id"]].rename(columns={"site_id": "site"}),
    ]).dropna(subset=["person_id"]).sort_values("date").drop_duplicates("person_id").set_index("person_id")
    birth = _birth_dates(person)
    attributes = pd.DataFrame({
        "gender": _text(person, "gender_concept_id").map(concepts.gender),
        "race": _text(person, "race_concept_id").map(concepts.race),
        "ethnicity": _text(person, "ethnicity_concept_id").map(concepts.ethnicity),
        "gender_source_value": _text(person, "gender_source_value"),
        "race_source_value": _text(person, "race_source_value"),
        "ethnicity_source_value": _text(person, "ethnicity_source_value"),
        "age": age_in_years(birth, person_ids.map(first["date"])),
    }).reset_index(drop=True)
    strata, problems = person_strata(attributes, project.strata, mapping, label=out.origin)
    out.problems.extend(problems)
    home = _text(person, "care_site_id").fillna(person_ids.map(first["site"]))
    result["persons"] = text_frame("persons", pd.concat([pd.DataFrame({
        "person_id": person_ids, "home_site_id": home, "birth_year": _text(person, "year_of_birth"),
        SOURCE_RECORD: _cite(person, "person", "person_id"),
    }).reset_index(drop=True), strata], axis=1))

    if len(visits):
        date = iso_date(_text(visits, "visit_start_date"))
        kinds = mapping.encounters.apply(_text(visits, "visit_source_value"), _text(visits, "person_id"), date)
        frame = {"encounter_id": _text(visits, "visit_occurrence_id"), "person_id": _text(visits, "person_id"),
                 "site_id": _text(visits, "care_site_id"), "date": date, "type": kinds,
                 SOURCE_RECORD: _cite(visits, "visit_occurrence", "visit_occurrence_id")}
        if "providers" in result:
            frame["provider_id"] = _text(visits, "provider_id")
        result["encounters"] = text_frame("encounters", frame)
    if len(measures):
        result["measures"] = text_frame("measures", measures)
    return result


def _birth_dates(person: pd.DataFrame) -> pd.Series:
    stamp = iso_date(_text(person, "birth_datetime"))
    year = _text(person, "year_of_birth")
    month = _text(person, "month_of_birth").fillna("7").str.zfill(2)  # mid-year when only the year is known
    day = _text(person, "day_of_birth").fillna("1").str.zfill(2)
    built = year + "-" + month + "-" + day
    return stamp.fillna(built)


def _scores(tables: Mapping[str, pd.DataFrame], concepts: ConceptSets, visit_site: dict[Any, Any],
            person_site: dict[Any, Any], out: CanonicalFrames) -> pd.DataFrame:
    parts = []
    for table, prefix in (("observation", "observation"), ("measurement", "measurement")):
        if table not in tables:
            continue
        frame = tables[table]
        concept = _text(frame, f"{prefix}_concept_id")
        is_score = concept.isin(list(concepts.scores))
        if not is_score.any():
            continue
        rows = frame.loc[is_score]
        value = pd.to_numeric(_text(rows, "value_as_number"), errors="coerce")
        empty = value.isna()
        if empty.any():
            out.problem("omop-missing-value", f"{int(empty.sum())} {table} score row(s) have no value_as_number and "
                        "were skipped", record=table, column="value_as_number", severity="warning")
        rows = rows.loc[~empty]
        visit = _text(rows, "visit_occurrence_id")
        person = _text(rows, "person_id")
        parts.append(pd.DataFrame({
            "measure_id": f"{table}:" + _text(rows, f"{prefix}_id"),
            "person_id": person,
            "site_id": visit.map(visit_site).fillna(person.map(person_site)),
            "encounter_id": visit,
            "date": iso_date(_text(rows, f"{prefix}_date")),
            "instrument": _text(rows, f"{prefix}_concept_id").map(concepts.scores),
            "total": value.loc[~empty],
            SOURCE_RECORD: _cite(rows, table, f"{prefix}_id"),
        }))
    if not parts:
        return pd.DataFrame(columns=["measure_id", "person_id", "site_id", "encounter_id", "date", "instrument",
                                     "total", SOURCE_RECORD])
    return pd.concat(parts, ignore_index=True)
