"""Canonical tables → OMOP CDM 5.4 tables (frames, CSV, and a DuckDB file through the store).

Person-level records: this export is for moving data between the user's own
systems (or into a research network's OMOP instance), not for publication.

Tables written (CDM 5.4 DDL column names; ids are integers numbered in the
sorted order of knowdo's ids, which are kept in the ``*_source_value``
columns):

* ``care_site`` per facility; ``location`` is not written (knowdo holds no
  addresses);
* ``person``: ``gender_concept_id`` 8532/8507 from the Gender/sex dimension
  (0 with the level in ``gender_source_value`` otherwise), ``year_of_birth``,
  race and ethnicity 0 (no US OMB categories in knowdo's strata), home site
  as ``care_site_id``;
* ``observation_period`` per person, first to last contact;
* ``provider`` with the cadre as ``specialty_source_value`` in words the
  connector maps back;
* ``visit_occurrence`` per encounter: outpatient visit (9202), type EHR
  (32817), the knowdo encounter kind as ``visit_source_value``;
* ``observation`` per PHQ-9/PHQ-2/GAD-7 total (LOINC survey concepts
  3042932, 40758879, 42868746, domain Observation; data-standards.md section
  3), ``value_as_number`` = the total.

Item scores are not written (the item LOINC concepts are not in the concept
sets knowdo ships); nor are provider-reported scales, equity dimensions
other than sex, districts (care sites have no parent), or session fidelity.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from knowdo.config import Project, Stratum
from knowdo.ingest.exporters.common import (
    ExportedProject,
    day_text,
    facilities,
    person_level,
    sorted_by,
    table,
)
from knowdo.ingest.omop import ConceptSets

GENDER_CONCEPTS = {"female": 8532, "male": 8507}  # OMOP Gender vocabulary (data-standards.md section 3)
OUTPATIENT_VISIT = 9202  # Visit: Outpatient
EHR_TYPE = 32817  # Type Concept "EHR"
NO_MATCHING_CONCEPT = 0
# Words the connector's cadre matcher (knowdo.ingest.mapping.cadre_of) reads back as each provider type.
CADRE_WORDS = {"specialist": "psychiatry specialist", "gp": "general practitioner", "nurse": "nurse",
               "lay_worker": "lay health worker"}
SCORE_CONCEPTS = {name: int(concept) for concept, name in ConceptSets().scores.items()}


def sex_stratum(strata: tuple[Stratum, ...] | list[Stratum]) -> Stratum | None:
    """The Gender/sex dimension, when OMOP gender concepts cover its levels."""
    for s in strata:
        if s.category == "Gender/sex" and set(s.levels) <= set(GENDER_CONCEPTS):
            return s
    return None


def _numbering(values: pd.Series) -> dict[str, int]:
    return {v: i for i, v in enumerate(sorted(set(values.dropna())), start=1)}


def omop_tables(tables: Mapping[str, pd.DataFrame], project: Project) -> dict[str, pd.DataFrame]:
    """OMOP CDM 5.4 frames for ``tables`` (deterministic integer ids, rows in id order)."""
    person_level(tables)
    sex = sex_stratum(list(project.strata))
    sites = facilities(tables)
    site_no = _numbering(sites["site_id"])
    persons = sorted_by(table(tables, "persons"), ["person_id"])
    person_no = _numbering(persons["person_id"])
    encounters = sorted_by(table(tables, "encounters"), ["encounter_id"])
    visit_no = _numbering(encounters["encounter_id"])
    providers = sorted_by(table(tables, "providers"), ["provider_id"])
    provider_no = _numbering(providers["provider_id"])

    out: dict[str, pd.DataFrame] = {}
    out["care_site"] = pd.DataFrame({
        "care_site_id": sites["site_id"].map(site_no).astype("int64"),
        "care_site_name": sites["name"].fillna(sites["site_id"]),
        "place_of_service_concept_id": NO_MATCHING_CONCEPT,
        "location_id": pd.array([None] * len(sites), dtype="Int64"),
        "care_site_source_value": sites["site_id"],
        "place_of_service_source_value": pd.array([None] * len(sites), dtype="string"),
    })
    level = persons[sex.name] if sex is not None else pd.Series([None] * len(persons), dtype=object)
    out["person"] = pd.DataFrame({
        "person_id": persons["person_id"].map(person_no).astype("int64"),
        "gender_concept_id": level.map(GENDER_CONCEPTS).fillna(NO_MATCHING_CONCEPT).astype("int64"),
        "year_of_birth": pd.to_numeric(persons["birth_year"]).astype("Int64"),
        "race_concept_id": NO_MATCHING_CONCEPT,
        "ethnicity_concept_id": NO_MATCHING_CONCEPT,
        "care_site_id": persons["home_site_id"].map(site_no).astype("Int64"),
        "person_source_value": persons["person_id"],
        "gender_source_value": level.astype("string"),
    })
    days = encounters.assign(_day=day_text(encounters["date"]))
    span = days.groupby("person_id")["_day"].agg(["min", "max"]).reindex(persons["person_id"])
    out["observation_period"] = pd.DataFrame({
        "observation_period_id": range(1, len(persons) + 1),
        "person_id": out["person"]["person_id"].to_numpy(),
        "observation_period_start_date": span["min"].to_numpy(),
        "observation_period_end_date": span["max"].to_numpy(),
        "period_type_concept_id": EHR_TYPE,
    }).dropna(subset=["observation_period_start_date"])
    out["provider"] = pd.DataFrame({
        "provider_id": providers["provider_id"].map(provider_no).astype("int64"),
        "provider_name": pd.array([None] * len(providers), dtype="string"),
        "specialty_concept_id": NO_MATCHING_CONCEPT,
        "care_site_id": providers["site_id"].map(site_no).astype("Int64"),
        "provider_source_value": providers["provider_id"],
        "specialty_source_value": providers["cadre"].map(CADRE_WORDS),
    })
    provider = encounters["provider_id"] if "provider_id" in encounters else pd.Series([None] * len(encounters))
    out["visit_occurrence"] = pd.DataFrame({
        "visit_occurrence_id": encounters["encounter_id"].map(visit_no).astype("int64"),
        "person_id": encounters["person_id"].map(person_no).astype("Int64"),
        "visit_concept_id": OUTPATIENT_VISIT,
        "visit_start_date": days["_day"],
        "visit_end_date": days["_day"],
        "visit_type_concept_id": EHR_TYPE,
        "provider_id": provider.map(provider_no).astype("Int64"),
        "care_site_id": encounters["site_id"].map(site_no).astype("Int64"),
        "visit_source_value": encounters["type"],
    })
    measures = table(tables, "measures")
    scored = measures.loc[measures["instrument"].isin(list(SCORE_CONCEPTS)) & measures["person_id"].notna()
                          & measures["total"].notna()]
    scored = sorted_by(scored, ["measure_id"])
    out["observation"] = pd.DataFrame({
        "observation_id": range(1, len(scored) + 1),
        "person_id": scored["person_id"].map(person_no).astype("Int64").to_numpy(),
        "observation_concept_id": scored["instrument"].map(SCORE_CONCEPTS).astype("int64").to_numpy(),
        "observation_date": day_text(scored["date"]).to_numpy(),
        "observation_type_concept_id": EHR_TYPE,
        "value_as_number": scored["total"].astype(float).to_numpy(),
        "visit_occurrence_id": scored["encounter_id"].map(visit_no).astype("Int64").to_numpy(),
        "observation_source_value": scored["measure_id"].to_numpy(),
    })
    return out


def write_omop_csv(frames: Mapping[str, pd.DataFrame], folder: str | Path) -> list[Path]:
    """One ``<table>.csv`` per OMOP table (the layout of the OHDSI Eunomia CSV datasets)."""
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in sorted(frames):
        path = root / f"{name}.csv"
        frames[name].to_csv(path, index=False, lineterminator="\n")
        paths.append(path)
    return paths


def omop_site_ids(tables: Mapping[str, pd.DataFrame]) -> dict[str, str]:
    """knowdo site id → care_site_id (as text), as :func:`omop_tables` numbers them."""
    return {site: str(number) for site, number in _numbering(facilities(tables)["site_id"]).items()}


def omop_mapping(project: Project) -> dict[str, Any]:
    """The source mapping that reads an :func:`omop_tables` export back (encounter kinds, sex)."""
    mapping: dict[str, Any] = {"encounters": {"default": "assess",
                                              "by_code": {t: t for t in ("screen", "assess", "session", "referral",
                                                                         "follow-up")}}}
    sex = sex_stratum(list(project.strata))
    if sex is not None:
        mapping["strata"] = {sex.name: {"field": "gender"}}
    return mapping


def omop_skipped(tables: Mapping[str, pd.DataFrame]) -> dict[str, int]:
    measures = table(tables, "measures")
    carried = measures["instrument"].isin(list(SCORE_CONCEPTS)) & measures["person_id"].notna() \
        & measures["total"].notna()
    return {"measures without an OMOP score concept, a person or a total": int((~carried).sum())}


__all__ = ["ExportedProject", "omop_mapping", "omop_site_ids", "omop_skipped", "omop_tables", "write_omop_csv"]
