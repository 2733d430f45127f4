"""FHIR R4 → canonical tables: Bundles and Bulk Data ndjson for measurement-based care.

Reads Organization and Location (``sites``), Patient (``persons``), Encounter
(``encounters``), and the PHQ-9, PHQ-2 and GAD-7 scores (``measures``) held in
Observations (totals 44261-6, 55758-7, 70274-6 and their LOINC item codes,
answers as LOINC LA codes or integers) and in QuestionnaireResponses.
Conditions are checked but have no canonical table yet.

Two paths, by cost:

* **full validation** (the default for Bundles): every resource is parsed by
  the ``fhir.resources`` R4B models (FHIR 4.3, the R4-compatible set; the
  package's default R5 models reject R4 Encounters, whose ``class`` is a
  single Coding), so cardinality, types and required elements are checked;
* **the fast path** (the default for Bulk Data ndjson, ``validate = "fields"``):
  each line is decoded with ``orjson`` and only the fields knowdo uses are
  checked (references, dates, codes, values); full-model parsing costs about
  two orders of magnitude more per resource (see benchmarks/results/ingest.md).

Reading files, folders and servers is :mod:`knowdo.ingest.fhir_sources`.
Both paths check LOINC check digits, keep only ``final``/``amended``/
``corrected`` observations (``entered-in-error`` never counts), and resolve
references written as ``Patient/<id>``, ``urn:uuid:<id>`` (bundle fullUrls)
or conditionally (``Patient?identifier=<system>|<value>``).

An item observation and a total that share subject, encounter and time are
one administration of the instrument, so they become one ``measures`` row; a
QuestionnaireResponse that an Observation is ``derivedFrom`` is the same
administration and is not counted twice.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import pandas as pd
from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from knowdo.config import Project
from knowdo.ingest.canonical import SOURCE_RECORD, CanonicalFrames, text_frame
from knowdo.ingest.mapping import SourceMapping, age_in_years, person_strata

LOINC = "http://loinc.org"
LISTED = 20  # problems listed one by one per rule

# LOINC codes (data-standards.md 2.1; each passes the LOINC mod-10 check digit).
TOTAL_CODES = {"44261-6": "PHQ-9", "55758-7": "PHQ-2", "70274-6": "GAD-7"}
PANEL_CODES = {"44249-1": "PHQ-9", "55757-9": "PHQ-2", "69737-5": "GAD-7"}
ITEM_CODES: dict[str, tuple[str, int]] = {
    **{code: ("PHQ-9", i) for i, code in enumerate(
        ("44250-9", "44255-8", "44259-0", "44254-1", "44251-7", "44258-2", "44252-5", "44253-3", "44260-8"), 1)},
    **{code: ("GAD-7", i) for i, code in enumerate(
        ("69725-0", "68509-9", "69733-4", "69734-2", "69735-9", "69689-8", "69736-7"), 1)},
}
PHQ2_ITEMS = {"44250-9": 1, "44255-8": 2}  # PHQ-2 asks the first two PHQ-9 questions under the same codes
ANSWER_SCORES = {"LA6568-5": 0, "LA6569-3": 1, "LA6570-1": 2, "LA6571-9": 3}  # answer list LL358-3
COUNTED_STATUSES = {"final", "amended", "corrected"}
SKIPPED_ENCOUNTERS = {"entered-in-error", "cancelled", "planned"}
RESOURCE_TYPES = ("Organization", "Location", "Patient", "Encounter", "Observation", "QuestionnaireResponse",
                  "Condition")


@functools.lru_cache(maxsize=4096)  # few distinct codes, checked once each even in a million-line export
def loinc_check_digit_ok(code: str) -> bool:
    """LOINC mod-10 check: digits in odd positions from the right are doubled (data-standards.md 2.1).

    >>> loinc_check_digit_ok("69689-8"), loinc_check_digit_ok("69689-6")
    (True, False)
    """
    body, dash, check = code.partition("-")
    if not dash or not body.isdigit() or len(check) != 1 or not check.isdigit():
        return False
    total = 0
    for position, char in enumerate(reversed(body)):
        digit = int(char)
        if position % 2 == 0:
            digit *= 2
        total += digit // 10 + digit % 10
    return (10 - total % 10) % 10 == int(check)


# --------------------------------------------------------------------------- collecting resources
@dataclass
class Resources:
    """Resources by type, with where each came from and how references resolve.

    Score Observations are kept as compact rows (:class:`ScoreRow`) as they
    arrive, and other Observations are dropped, so a million-line Bulk export
    never sits in memory as a million dicts; ``keep_observations`` also keeps
    the dicts, for full-model validation.
    """

    out: CanonicalFrames | None = None
    score_codes: frozenset[str] = frozenset({*TOTAL_CODES, *ITEM_CODES})
    keep_observations: bool = True
    by_type: dict[str, list[tuple[dict[str, Any], str]]] = field(default_factory=dict)
    full_urls: dict[str, tuple[str, str]] = field(default_factory=dict)
    identifiers: dict[tuple[str, str], str] = field(default_factory=dict)
    observations: list[ScoreRow] = field(default_factory=list)

    def add(self, resource: dict[str, Any], where: str, full_url: str | None = None) -> None:
        kind = resource.get("resourceType")
        rid = resource.get("id")
        if kind == "Observation":
            row = self._score_row(resource, where)
            if row is not None:
                self.observations.append(row)
            if not self.keep_observations:
                return
        self.by_type.setdefault(str(kind), []).append((resource, where))
        if isinstance(rid, str):
            if full_url:
                self.full_urls[full_url] = (str(kind), rid)
            for ident in _items(resource.get("identifier")):
                if isinstance(ident, dict) and ident.get("value") is not None:
                    self.identifiers[(str(kind), f"{ident.get('system', '')}|{ident['value']}")] = rid

    def of(self, kind: str) -> list[tuple[dict[str, Any], str]]:
        return self.by_type.get(kind, [])

    def _score_row(self, resource: dict[str, Any], where: str) -> ScoreRow | None:
        if _text(resource.get("status")) not in COUNTED_STATUSES:
            return None
        out = self.out if self.out is not None else CanonicalFrames("(resources)")
        label = f"{where} (Observation/{resource.get('id')})"
        code = _loinc(resource.get("code"), label, out, "code")
        if code is None or code not in self.score_codes:
            return None
        when = resource.get("effectiveDateTime")
        if when is None and isinstance(resource.get("effectivePeriod"), dict):
            when = resource["effectivePeriod"].get("start")
        derived = tuple(str(r.get("reference")) for r in _items(resource.get("derivedFrom"))
                        if isinstance(r, dict) and isinstance(r.get("reference"), str))
        return ScoreRow(str(resource.get("id")), code, _reference(resource.get("subject")),
                        _reference(resource.get("encounter")), when if isinstance(when, str) else None,
                        _score(resource, label, out), derived, label)

    def resolve(self, reference: Any, kind: str) -> str | None:
        """The id a reference points to, if it is a ``kind`` (literal, urn:uuid or conditional)."""
        ref = reference.get("reference") if isinstance(reference, dict) else reference
        if not isinstance(ref, str):
            return None
        if ref in self.full_urls:
            found_kind, rid = self.full_urls[ref]
            return rid if found_kind == kind else None
        if ref.startswith("urn:uuid:"):
            return ref[len("urn:uuid:"):]
        head, _, rest = ref.partition("?identifier=")
        if rest:
            return self.identifiers.get((kind, rest)) if head.rstrip("/").endswith(kind) else None
        parts = ref.rstrip("/").split("/")
        if len(parts) >= 2 and parts[-2] == kind:
            return parts[-1]
        if len(parts) >= 4 and parts[-4] == kind and parts[-2] == "_history":
            return parts[-3]
        return None


@dataclass(frozen=True, slots=True)
class ScoreRow:
    """The parts of a score Observation that knowdo uses."""

    id: str
    code: str
    subject: str | None
    encounter: str | None
    when: str | None
    score: float | None
    derived_from: tuple[str, ...]
    label: str


def cite(where: str, resource: dict[str, Any]) -> str:
    """Where a resource was read and what it is: ``bundle.json entry[3] (Observation/obs-1)``."""
    return f"{where} ({resource.get('resourceType')}/{resource.get('id')})"


def _items(value: Any) -> list[Any]:
    """A JSON array field, or an empty list when the payload put something else there."""
    return value if isinstance(value, list) else []


def _text(value: Any) -> str | None:
    """A JSON string field, or None when the payload put something else there."""
    return value if isinstance(value, str) else None


def _reference(value: Any) -> str | None:
    ref = value.get("reference") if isinstance(value, dict) else None
    return ref if isinstance(ref, str) else None


def collect_bundle(bundle: Any, where: str, into: Resources, out: CanonicalFrames) -> None:
    """Add a Bundle's entries (nested bundles too), or a lone resource, to ``into``."""
    if not isinstance(bundle, dict) or not isinstance(bundle.get("resourceType"), str):
        out.problem("fhir-shape", "a FHIR resource is a JSON object with a resourceType", record=where)
        return
    if bundle["resourceType"] != "Bundle":
        into.add(bundle, where)
        return
    entries = bundle.get("entry")
    entries = [] if entries is None else entries
    if not isinstance(entries, list):
        out.problem("fhir-shape", "Bundle.entry must be a list", record=where, column="entry")
        return
    for i, entry in enumerate(entries):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        at = f"{where} entry[{i}]"
        if not isinstance(resource, dict):
            out.problem("fhir-shape", "each Bundle entry needs a resource", record=at)
            continue
        if resource.get("resourceType") == "Bundle":
            collect_bundle(resource, at, into, out)
        else:
            into.add(resource, at, entry.get("fullUrl") if isinstance(entry.get("fullUrl"), str) else None)


def collect_ndjson(lines: bytes | Iterable[bytes], name: str, into: Resources, out: CanonicalFrames) -> int:
    """Add every line of an ndjson file (bytes, or an open binary file to stream); returns resources read."""
    count = 0
    listed = 0
    for number, line in enumerate(lines.splitlines() if isinstance(lines, bytes) else lines, start=1):
        if not line.strip():
            continue
        try:
            resource = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            listed += 1
            if listed <= LISTED:
                out.problem("bad-json", f"line is not valid JSON ({exc})", record=f"{name} line {number}")
            continue
        if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
            out.problem("fhir-shape", "each ndjson line is one resource with a resourceType",
                        record=f"{name} line {number}")
            continue
        into.add(resource, f"{name} line {number}")
        count += 1
    return count


# --------------------------------------------------------------------------- validation
def validate_models(resources: Resources, out: CanonicalFrames) -> None:
    """Parse every resource of a type knowdo reads with the R4B models; report pydantic errors."""
    listed = 0
    for kind in RESOURCE_TYPES:
        try:
            model = get_fhir_model_class(kind)
        except KeyError:  # pragma: no cover - every listed type exists in R4B
            continue
        for resource, where in resources.of(kind):
            try:
                model.model_validate(resource)
            except ValidationError as exc:
                for error in exc.errors()[:3]:
                    listed += 1
                    if listed <= LISTED * 5:
                        location = ".".join(str(p) for p in error.get("loc", ()))
                        out.problem("fhir-structure", f"{kind}: {error.get('msg')}",
                                    record=f"{where} ({kind}/{resource.get('id')})", column=location or None,
                                    value=error.get("input") if not isinstance(error.get("input"), dict) else None)


def _codings(concept: Any) -> list[dict[str, Any]]:
    if not isinstance(concept, dict):
        return []
    codings = concept.get("coding")
    return [c for c in codings if isinstance(c, dict)] if isinstance(codings, list) else []


def _loinc(concept: Any, where: str, out: CanonicalFrames, column: str) -> str | None:
    """The first LOINC code of a CodeableConcept, after its check digit passes."""
    for i, coding in enumerate(_codings(concept)):
        if coding.get("system") == LOINC and isinstance(coding.get("code"), str):
            code = coding["code"]
            if code.startswith("LA"):
                return code
            if not loinc_check_digit_ok(code):
                out.problem("loinc-check-digit", "LOINC code fails its mod-10 check digit (a typo in the code?)",
                            record=where, column=f"{column}.coding[{i}].code", value=code)
                return None
            return code
    return None


# --------------------------------------------------------------------------- resources -> canonical tables
def canonical_tables(resources: Resources, mapping: SourceMapping, project: Project,
                     out: CanonicalFrames) -> dict[str, pd.DataFrame]:
    tables: dict[str, pd.DataFrame] = {}
    sites = _sites(resources)
    if sites:
        tables["sites"] = text_frame("sites", pd.DataFrame(sites))
    encounters = _encounters(resources, out)
    measures = _measures(resources, mapping, encounters, out)
    persons = _persons(resources, encounters, measures, mapping, project, out)
    if persons is not None:
        tables["persons"] = persons
    if encounters:
        frame = pd.DataFrame(encounters)
        kinds = mapping.encounters.apply(frame["_code"], frame["person_id"], frame["date"])
        tables["encounters"] = text_frame("encounters", frame.drop(columns=["_code"]).assign(type=kinds))
    if measures:
        tables["measures"] = text_frame("measures", pd.DataFrame(measures).drop(columns=["_key"]))
    return tables


def _sites(resources: Resources) -> list[dict[str, str]]:
    rows = []
    for kind in ("Organization", "Location"):
        for resource, where in resources.of(kind):
            if not isinstance(resource.get("id"), str):
                continue
            parent = resources.resolve(resource.get("partOf"), kind) or ""
            rows.append({"site_id": resource["id"], "name": str(resource.get("name") or ""), "parent_id": parent,
                         "level": "facility", SOURCE_RECORD: cite(where, resource)})
    return rows


def _encounters(resources: Resources, out: CanonicalFrames) -> list[dict[str, Any]]:
    rows = []
    for resource, where in resources.of("Encounter"):
        if _text(resource.get("status")) in SKIPPED_ENCOUNTERS:
            continue
        raw_period = resource.get("period")
        period: dict[str, Any] = raw_period if isinstance(raw_period, dict) else {}
        site = resources.resolve(resource.get("serviceProvider"), "Organization")
        if site is None:
            locations = _items(resource.get("location"))
            first = locations[0].get("location") if locations and isinstance(locations[0], dict) else None
            site = resources.resolve(first, "Location")
        codes = [c.get("code") for t in _items(resource.get("type")) for c in _codings(t)]
        rows.append({
            "encounter_id": resource.get("id"), "person_id": resources.resolve(resource.get("subject"), "Patient"),
            "site_id": site, "date": str(period.get("start") or "")[:10],
            "_code": next((str(c) for c in codes if c is not None), None), SOURCE_RECORD: cite(where, resource),
        })
        if rows[-1]["person_id"] is None:
            out.problem("fhir-reference", "Encounter.subject does not point to a Patient", record=where,
                        column="subject", value=resource.get("subject"))
    return rows


def _score(resource: dict[str, Any], where: str, out: CanonicalFrames) -> float | None:
    if "valueInteger" in resource:
        value = resource["valueInteger"]
    elif isinstance(resource.get("valueQuantity"), dict):
        value = resource["valueQuantity"].get("value")
    elif "valueDecimal" in resource:
        value = resource["valueDecimal"]
    elif "valueCodeableConcept" in resource:
        answer = _loinc(resource["valueCodeableConcept"], where, out, "valueCodeableConcept")
        return float(ANSWER_SCORES[answer]) if answer in ANSWER_SCORES else None
    else:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        out.problem("fhir-value", "a score must be a number", record=where, column="value[x]", value=value)
        return None
    return float(value)


def _measures(resources: Resources, mapping: SourceMapping, encounters: list[dict[str, Any]],
              out: CanonicalFrames) -> list[dict[str, Any]]:
    site_of_encounter = {e["encounter_id"]: e["site_id"] for e in encounters}
    extra_totals = {code: name for code, (name, item) in mapping.instruments.items() if item is None}
    extra_items = {code: (name, item) for code, (name, item) in mapping.instruments.items() if item is not None}
    totals = {**TOTAL_CODES, **extra_totals}
    items = {**ITEM_CODES, **extra_items}
    groups: dict[tuple[str, str, str], dict[str, Any]] = {}
    derived: set[str] = set()
    for row in resources.observations:
        code = row.code
        if code not in totals and code not in items:
            continue
        person = resources.resolve(row.subject, "Patient")
        encounter = resources.resolve(row.encounter, "Encounter")
        when = row.when
        if person is None or when is None:
            out.problem("fhir-reference", "a score Observation needs subject (a Patient) and effectiveDateTime",
                        record=row.label, column="subject" if person is None else "effectiveDateTime")
            continue
        for ref in row.derived_from:
            qr = resources.resolve(ref, "QuestionnaireResponse")
            if qr:
                derived.add(qr)
        key = (person, encounter or "", when)
        group = groups.setdefault(key, {"person": person, "encounter": encounter, "date": when[:10],
                                        "id": None, "totals": {}, "items": {}, "cites": {}})
        if code in totals:
            group["totals"][totals[code]] = row.score
            group["cites"][("total", totals[code])] = row.label
            group["id"] = row.id
        else:
            group["items"][code] = row.score
            group["cites"][code] = row.label
            group["id"] = group["id"] or row.id
    for resource, where in resources.of("QuestionnaireResponse"):
        if _text(resource.get("id")) in derived or _text(resource.get("status")) not in ("completed", "amended"):
            continue
        label = f"{where} (QuestionnaireResponse/{resource.get('id')})"
        person = resources.resolve(resource.get("subject"), "Patient")
        if person is None or not isinstance(resource.get("authored"), str):
            out.problem("fhir-reference", "a QuestionnaireResponse needs subject (a Patient) and authored",
                        record=label)
            continue
        group = {"person": person, "encounter": resources.resolve(resource.get("encounter"), "Encounter"),
                 "date": resource["authored"][:10], "id": resource.get("id"), "totals": {}, "items": {},
                 "cites": {"*": label}}
        for item in _flat_items(resource.get("item")):
            code = str(item.get("linkId", "")).lstrip("/")
            codes = [c.get("code") for c in _codings({"coding": item.get("code")})] if item.get("code") else []
            code = next((c for c in codes if c in items or c in totals), code)
            answers = _items(item.get("answer"))
            answer = answers[0] if answers else None
            if not isinstance(answer, dict):
                continue
            answered: float | None
            if "valueCoding" in answer:
                coding = answer["valueCoding"]
                answered = ANSWER_SCORES.get(str(coding.get("code"))) if isinstance(coding, dict) else None
            else:
                answered = _score(answer, label, out)
            if code in totals:
                group["totals"][totals[code]] = answered
            elif code in items:
                group["items"][code] = answered
        groups[("qr", str(resource.get("id")), "")] = group
    rows = []
    for key, group in groups.items():
        scored = _by_instrument(group)
        for instrument, values in scored.items():
            rows.append({
                "measure_id": f"{group['id']}" if len(scored) == 1 else f"{group['id']}:{instrument}",
                "person_id": group["person"], "site_id": site_of_encounter.get(group["encounter"]),
                "encounter_id": group["encounter"], "date": group["date"], "instrument": instrument,
                **values, "_key": key,
            })
    return rows


def _flat_items(items: Any) -> Iterator[dict[str, Any]]:
    for item in _items(items):
        if isinstance(item, dict):
            yield item
            yield from _flat_items(item.get("item"))


def _by_instrument(group: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Scores by instrument, each citing the resources it was read from (the total's Observation first)."""
    out: dict[str, dict[str, Any]] = {}
    cites: dict[str, list[str]] = {}
    whole = group["cites"].get("*")  # a QuestionnaireResponse: one resource holds every answer
    for name, total in group["totals"].items():
        out.setdefault(name, {})["total"] = total
        cites.setdefault(name, []).append(whole or group["cites"].get(("total", name), ""))
    phq2_only = "PHQ-2" in group["totals"] and "PHQ-9" not in group["totals"]
    for code, score in group["items"].items():
        if phq2_only and code in PHQ2_ITEMS:
            name, number = "PHQ-2", PHQ2_ITEMS[code]
        else:
            name, number = ITEM_CODES.get(code, (None, 0))
        if name is not None:
            out.setdefault(name, {})[f"item_{number}"] = score
            cites.setdefault(name, []).append(whole or group["cites"].get(code, ""))
    for name, values in out.items():
        values[SOURCE_RECORD] = _cite_several(cites[name])
    return out


def _cite_several(labels: list[str]) -> str:
    """The first resource an administration was read from, and how many more went into it."""
    seen = list(dict.fromkeys(label for label in labels if label))
    if len(seen) <= 1:
        return seen[0] if seen else ""
    return f"{seen[0]} and {len(seen) - 1} more Observation(s) of the same administration"


def _persons(resources: Resources, encounters: list[dict[str, Any]], measures: list[dict[str, Any]],
             mapping: SourceMapping, project: Project, out: CanonicalFrames) -> pd.DataFrame | None:
    rows = []
    for resource, where in resources.of("Patient"):
        address = next((a for a in _items(resource.get("address")) if isinstance(a, dict)), {})
        rows.append({
            "person_id": resource.get("id"),
            "home_site_id": resources.resolve(resource.get("managingOrganization"), "Organization"),
            "birthDate": resource.get("birthDate"), "gender": resource.get("gender"),
            "race": _omb(resource, "us-core-race"), "ethnicity": _omb(resource, "us-core-ethnicity"),
            "district": address.get("district"), "state": address.get("state"), "country": address.get("country"),
            SOURCE_RECORD: cite(where, resource),
        })
    if not rows:
        return None
    frame = pd.DataFrame(rows)
    first = pd.DataFrame(encounters + [{"person_id": m["person_id"], "date": m["date"], "site_id": m["site_id"]}
                                       for m in measures], columns=["person_id", "date", "site_id"])
    first = first.sort_values("date").drop_duplicates("person_id").set_index("person_id")
    frame["home_site_id"] = frame["home_site_id"].fillna(frame["person_id"].map(first["site_id"]))
    frame["age"] = age_in_years(frame["birthDate"], frame["person_id"].map(first["date"]))
    strata, problems = person_strata(frame, project.strata, mapping, label=out.origin)
    out.problems.extend(problems)
    frame["birth_year"] = frame["birthDate"].astype("string").str.slice(0, 4)
    return text_frame("persons", pd.concat([frame[["person_id", "home_site_id", "birth_year"]], strata,
                                            frame[[SOURCE_RECORD]]], axis=1))


def _omb(resource: dict[str, Any], name: str) -> str | None:
    for extension in _items(resource.get("extension")):
        if isinstance(extension, dict) and str(extension.get("url", "")).endswith(name):
            for inner in _items(extension.get("extension")):
                if isinstance(inner, dict) and inner.get("url") == "ombCategory":
                    coding = inner.get("valueCoding") or {}
                    return str(coding.get("code")) if isinstance(coding, dict) else None
    return None


def resources_from(items: Iterable[dict[str, Any]], out: CanonicalFrames | None = None) -> Resources:
    """Resources from already-decoded dicts (for exporters and tests)."""
    found = Resources(out=out)
    for i, item in enumerate(items):
        found.add(item, f"#{i}")
    return found
