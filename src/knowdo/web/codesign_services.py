"""The workspace's co-production tools: storage and views around :mod:`knowdo.strategies` and :mod:`knowdo.codesign`.

The core computes (barrier aggregation, strategy matching, Delphi consensus,
logic-model checks, the StaRI checklist, strategy associations); this module
keeps what members enter in the workspace database and hands it to the core:

* barrier ratings, one row per member x site x construct (re-rating replaces);
* documents kept whole as JSON (:class:`~knowdo.web.models.CodesignDocument`):
  the CFIR-ERIC matching workbook's endorsements, the strategy
  specifications, the logic model and the StaRI settings;
* Delphi studies with their items and ratings. A member's rating is stored
  with who gave it only to stop double votes and to show that member their
  own previous rating; views for everyone else hold the group's median,
  quartiles and counts, never one member's rating or name.

What the data say about strategies is computed by a background job
(:func:`strategy_evidence_task`) and stored only after the disclosure rule
(:func:`knowdo.report.publish.suppress_frame`) has been applied to every
count in it. Errors are :class:`~knowdo.errors.ParameterError` with a message
for the person at the form; the routes turn them into a 400 page or JSON.
"""

from __future__ import annotations

import csv
import io
import json
import math
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from knowdo.codesign.logic_model import (
    MEASURES,
    STAGE_LABELS,
    STAGES,
    Link,
    LogicModel,
    Node,
    logic_model,
    logic_model_from_rollout,
)
from knowdo.codesign.priorities import CONSENSUS_RULES, SCALE, ConsensusRules, DelphiResult, summarise_delphi
from knowdo.codesign.stari import StariChecklist, stari_checklist
from knowdo.config import Project as ProjectConfig
from knowdo.config import load_project
from knowdo.errors import KnowdoError, ParameterError, StoreError
from knowdo.report import suppress_frame
from knowdo.report.publish import frame_records
from knowdo.report.publish import jsonable as leaf
from knowdo.store import Store, read_panel, read_providers
from knowdo.strategies.assessment import (
    PROGRAMME,
    STAKEHOLDER_GROUPS,
    BarrierAssessment,
    assess_barriers,
    ratings_frame,
)
from knowdo.strategies.evidence import DEFINITIONS, SCALES, StrategyEvidence, strategy_evidence
from knowdo.strategies.matching import MatchingWorkbook, StrategyMatch, match_strategies, read_matching_workbook
from knowdo.strategies.specification import SpecificationSet, specification_set, specify
from knowdo.strategies.vocabularies import PROCTOR_FIELDS, load_vocabulary
from knowdo.web.jobs import JobContext, project_lock
from knowdo.web.models import BarrierRating, CodesignDocument, DelphiItem, DelphiRating, DelphiStudy, utcnow

# The stakeholder group a member's ratings default to, by project role (the member can choose another).
GROUP_BY_ROLE = {"owner": "researcher", "analyst": "researcher", "implementer": "implementer",
                 "community_partner": "community_partner", "viewer": "researcher"}
DOCUMENT_KINDS = ("workbook", "specifications", "logic_model", "stari")
WORKBOOK_SUFFIXES = (".xlsx", ".xlsm", ".csv")
MAX_DELPHI_ITEMS = 60  # own convention: a Delphi round longer than this loses its raters
MAX_NODES = 80  # own convention: a logic model past this is no longer a picture anyone reads
STUDY_STATES = ("open", "closed")
EXPERT_OPINION_LABEL = "Expert opinion, not evidence of effectiveness"


def jsonable(value: Any) -> Any:
    """Plain JSON for a result's parts: frames become records, mappings and lists are walked, NaN becomes None."""
    if isinstance(value, pd.DataFrame):
        return frame_records(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return leaf(value)


# ---------------------------------------------------------------------------- documents
def document(session: Session, project_id: int, kind: str) -> dict[str, Any] | None:
    """The payload of one co-design document, or None when nobody has saved it."""
    row = session.scalar(select(CodesignDocument).where(CodesignDocument.project_id == project_id,
                                                        CodesignDocument.kind == kind))
    return dict(row.payload) if row is not None else None


def save_document(session: Session, project_id: int, kind: str, payload: dict[str, Any], user_id: int | None) -> None:
    if kind not in DOCUMENT_KINDS:
        raise ParameterError(f"document kind {kind!r} is not known; use one of {', '.join(DOCUMENT_KINDS)}")
    row = session.scalar(select(CodesignDocument).where(CodesignDocument.project_id == project_id,
                                                        CodesignDocument.kind == kind))
    if row is None:
        session.add(CodesignDocument(project_id=project_id, kind=kind, payload=payload, updated_at=utcnow(),
                                     updated_by=user_id))
    else:
        row.payload = payload
        row.updated_at = utcnow()
        row.updated_by = user_id


# ---------------------------------------------------------------------------- barrier assessment
def check_group(group: str) -> str:
    if group not in STAKEHOLDER_GROUPS:
        raise ParameterError(f"stakeholder group {group!r} is not offered here; use one of "
                             f"{', '.join(STAKEHOLDER_GROUPS)}")
    return group


def set_barrier_rating(session: Session, project_id: int, user_id: int, *, construct: str, valence: int,
                       importance: int | None, evidence: str, group: str, site: str = PROGRAMME) -> BarrierRating:
    """Record (or replace) a member's rating of one CFIR 2.0 construct for a site or the programme."""
    check_group(group)
    site = (site or PROGRAMME).strip()[:64] or PROGRAMME
    one = ratings_frame(pd.DataFrame([{"member": f"m{user_id}", "group": group, "construct": construct,
                                       "valence": valence, "importance": importance, "evidence": evidence[:5000],
                                       "site": site}]))
    construct_id = str(one.loc[0, "construct"])
    row = session.scalar(select(BarrierRating).where(
        BarrierRating.project_id == project_id, BarrierRating.user_id == user_id, BarrierRating.site == site,
        BarrierRating.construct == construct_id))
    if row is None:
        row = BarrierRating(project_id=project_id, user_id=user_id, site=site, construct=construct_id)
        session.add(row)
    row.stakeholder_group = group
    row.valence = int(valence)
    row.importance = int(importance) if importance is not None else None
    row.evidence = evidence.strip()[:5000]
    row.updated_at = utcnow()
    session.flush()
    return row


def barrier_frame(session: Session, project_id: int) -> pd.DataFrame:
    """All ratings of the project as the core's ratings table (members coded, never named)."""
    rows = session.scalars(select(BarrierRating).where(BarrierRating.project_id == project_id)
                           .order_by(BarrierRating.id)).all()
    return pd.DataFrame([{"member": f"m{r.user_id}", "group": r.stakeholder_group, "construct": r.construct,
                          "valence": r.valence, "importance": r.importance, "evidence": r.evidence, "site": r.site}
                         for r in rows], columns=["member", "group", "construct", "valence", "importance",
                                                  "evidence", "site"])


def barrier_assessment(session: Session, project_id: int) -> BarrierAssessment | None:
    frame = barrier_frame(session, project_id)
    return assess_barriers(frame) if len(frame) else None


def my_barrier_ratings(session: Session, project_id: int, user_id: int) -> list[BarrierRating]:
    return list(session.scalars(select(BarrierRating).where(
        BarrierRating.project_id == project_id, BarrierRating.user_id == user_id).order_by(
        BarrierRating.site, BarrierRating.construct)).all())


def assessment_view(assessment: BarrierAssessment | None) -> dict[str, Any]:
    """What every member sees: per construct the spread, each stakeholder group side by side, the disagreements,
    the priorities and the free-text evidence labelled by group (not by member)."""
    if assessment is None:
        return {"constructs": [], "groups": [], "side_by_side": [], "group_names": [], "priorities": [],
                "disagreements": [], "evidence": [], "n_ratings": 0, "n_members": 0, "settings": {}}
    side = assessment.side_by_side()
    group_names = sorted(str(g) for g in assessment.groups["group"].unique())
    evidence = assessment.evidence()[["site", "construct", "group", "valence", "evidence"]]
    names = {c.id: c.label for c in load_vocabulary().cfir2}
    evidence = evidence.assign(name=evidence["construct"].map(names))
    return {
        "constructs": jsonable(assessment.constructs),
        "groups": jsonable(assessment.groups),
        "side_by_side": jsonable(side),
        "group_names": group_names,
        "priorities": jsonable(assessment.priorities()),
        "disagreements": jsonable(assessment.disagreements()),
        "evidence": jsonable(evidence),
        "n_ratings": len(assessment.ratings),
        "n_members": int(assessment.ratings["member"].nunique()),
        "settings": jsonable(dict(assessment.settings)),
    }


def construct_choices() -> list[dict[str, str]]:
    """CFIR 2.0 constructs and sub-constructs a member can rate, with their domain and definition."""
    vocab = load_vocabulary()
    domains = {c.id: c.label for c in vocab.constructs(kind="domain")}
    return [{"id": c.id, "label": c.label, "kind": c.kind, "domain": domains.get(c.domain, c.domain),
             "definition": c.definition} for c in vocab.cfir2 if c.kind != "domain"]


# ---------------------------------------------------------------------------- strategy matching
def save_workbook(session: Session, project_id: int, user_id: int | None, *, filename: str,
                  content: bytes) -> MatchingWorkbook:
    """Read the official CFIR-ERIC matching workbook (or a CSV export) and keep its endorsement matrix."""
    suffix = Path(filename or "").suffix.lower()
    if suffix not in WORKBOOK_SUFFIXES:
        raise ParameterError(f"the matching workbook {filename!r} should be an Excel (.xlsx, .xlsm) or CSV file")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"workbook{suffix}"
        path.write_bytes(content)
        book = read_matching_workbook(path)
    payload = {"source": Path(filename).name[:200], "sheet": book.sheet, "orientation": book.orientation,
               "unrecognised": list(book.unrecognised),
               "endorsements": jsonable(book.endorsements[["barrier", "barrier_name", "strategy", "number",
                                                           "percent"]])}
    save_document(session, project_id, "workbook", payload, user_id)
    return book


def stored_workbook(payload: Mapping[str, Any] | None) -> MatchingWorkbook | None:
    if not payload:
        return None
    frame = pd.DataFrame(payload["endorsements"], columns=["barrier", "barrier_name", "strategy", "number", "percent"])
    frame["percent"] = pd.to_numeric(frame["percent"]).astype(float)
    return MatchingWorkbook(frame, str(payload.get("source", "workbook")), str(payload.get("sheet", "")),
                            payload.get("orientation", "strategies_in_rows"),
                            tuple(payload.get("unrecognised", ())))


def strategy_match(session: Session, project_id: int, *, rule: str = "overall", top: int | None = 10,
                   site: str | None = None) -> tuple[StrategyMatch | None, list[str]]:
    """Candidate ERIC strategies for the assessment's prioritised barriers (None when no barrier is rated yet)."""
    assessment = barrier_assessment(session, project_id)
    if assessment is None:
        return None, []
    ids = assessment.barrier_ids(rule=rule, top=top, site=site or None)  # type: ignore[arg-type]
    if not ids:
        return None, []
    book = stored_workbook(document(session, project_id, "workbook"))
    if book is not None:
        try:
            return match_strategies(ids, workbook=book), ids
        except ParameterError as exc:
            # An incomplete workbook must not hide the list: fall back to the clusters and say why.
            match = match_strategies(ids)
            note = f"{match.note} The uploaded workbook could not be used for these barriers: {exc}"
            return replace(match, note=note), ids
    return match_strategies(ids), ids


def match_view(match: StrategyMatch | None, barriers: Sequence[str]) -> dict[str, Any]:
    """The match as plain data: every strategy row carries the expert-opinion label."""
    if match is None:
        return {"mode": None, "barriers": [], "strategies": [], "clusters": [], "unmatched": [], "note": "",
                "label": EXPERT_OPINION_LABEL, "cfir1_barriers": []}
    names = {c.id: c.label for c in load_vocabulary().cfir2}
    table = match.table.assign(label=EXPERT_OPINION_LABEL)
    clusters = []
    for number, part in table.sort_values(["cluster", "number"]).groupby("cluster", sort=True):
        clusters.append({"number": int(str(number)), "name": str(part["cluster_name"].iloc[0]),
                         "strategies": jsonable(part[["number", "strategy", "definition", "cumulative_percent",
                                                      "n_level1", "n_level2", "endorsed"]])})
    return {"mode": match.mode, "barriers": [{"id": b, "name": names.get(b, b)} for b in barriers],
            "strategies": jsonable(table), "clusters": clusters, "unmatched": list(match.unmatched),
            "note": match.note, "label": EXPERT_OPINION_LABEL, "cfir1_barriers": jsonable(match.cfir1_barriers),
            "settings": jsonable(dict(match.settings))}


# ---------------------------------------------------------------------------- specifications
def specifications(session: Session, project_id: int) -> SpecificationSet:
    payload = document(session, project_id, "specifications") or {}
    rows = payload.get("items", [])
    if not rows:
        return SpecificationSet(())
    return specification_set(pd.DataFrame(rows))


def save_specification(session: Session, project_id: int, user_id: int | None, values: Mapping[str, Any]
                       ) -> SpecificationSet:
    """Add or replace (by strategy name) one strategy's Proctor specification."""
    clean = {k: v for k, v in values.items() if k in (*PROCTOR_FIELDS, "barriers", "mechanism")}
    spec = specify(str(values.get("strategy", "")), custom=bool(values.get("custom", False)), **clean)
    current = [s for s in specifications(session, project_id).specifications if s.strategy != spec.strategy]
    current.append(spec)
    save_document(session, project_id, "specifications", {"items": _spec_rows(current)}, user_id)
    return SpecificationSet(tuple(current))


def remove_specification(session: Session, project_id: int, user_id: int | None, strategy: str) -> None:
    current = [s for s in specifications(session, project_id).specifications if s.strategy != strategy]
    save_document(session, project_id, "specifications", {"items": _spec_rows(current)}, user_id)


def _spec_rows(specs: Sequence[Any]) -> list[dict[str, Any]]:
    rows = []
    for s in specs:
        row = {k: v for k, v in asdict(s).items() if k not in ("cluster",)}
        row["outcome"] = "; ".join(s.outcome)
        row["barriers"] = "; ".join(s.barriers)
        rows.append(row)
    return rows


# ---------------------------------------------------------------------------- logic model
def stored_logic_model(session: Session, project_id: int) -> LogicModel | None:
    payload = document(session, project_id, "logic_model")
    if not payload or not payload.get("nodes"):
        return None
    return model_from_payload(payload)


def model_from_payload(payload: Mapping[str, Any]) -> LogicModel:
    """Validate a logic model given as ``{"title", "nodes": [...], "links": [...]}`` (the API's shape)."""
    nodes_in = payload.get("nodes") or []
    links_in = payload.get("links") or []
    if not isinstance(nodes_in, list) or not isinstance(links_in, list):
        raise ParameterError("logic model: 'nodes' and 'links' must be lists")
    if len(nodes_in) > MAX_NODES:
        raise ParameterError(f"logic model: at most {MAX_NODES} nodes; saw {len(nodes_in)}")
    nodes = []
    for n in nodes_in:
        if not isinstance(n, Mapping):
            raise ParameterError("logic model: each node must be an object with id, stage and label")
        constructs = n.get("constructs") or ()
        if isinstance(constructs, str):
            constructs = tuple(c.strip() for c in constructs.split(";") if c.strip())
        nodes.append(Node(str(n.get("id", "")), str(n.get("stage", "")), str(n.get("label", ""))[:300],  # type: ignore[arg-type]
                          n.get("measure") or None, n.get("strategy") or None, tuple(str(c) for c in constructs),
                          str(n.get("note") or "")[:500]))
    links = []
    for link in links_in:
        if not isinstance(link, Mapping):
            raise ParameterError("logic model: each link must be an object with source and target")
        links.append(Link(str(link.get("source", "")), str(link.get("target", "")), str(link.get("note") or "")))
    return logic_model(nodes, links, title=str(payload.get("title") or "Logic model")[:200])


def save_logic_model(session: Session, project_id: int, user_id: int | None, model: LogicModel) -> None:
    payload = {"title": model.title, "nodes": [jsonable(asdict(n)) for n in model.nodes],
               "links": [asdict(link) for link in model.links]}
    save_document(session, project_id, "logic_model", payload, user_id)


def add_node(session: Session, project_id: int, user_id: int | None, *, stage: str, label: str,
             measure: str | None = None, strategy: str | None = None) -> LogicModel:
    current = stored_logic_model(session, project_id)
    nodes = list(current.nodes) if current else []
    links = list(current.links) if current else []
    taken = {n.id for n in nodes}
    k = len(nodes) + 1
    while f"n{k}" in taken:
        k += 1
    if not label.strip():
        raise ParameterError("logic model: give the box a label")
    nodes.append(Node(f"n{k}", stage, label.strip()[:300], measure or None, strategy or None))  # type: ignore[arg-type]
    model = logic_model(nodes, links, title=current.title if current else "Logic model")
    save_logic_model(session, project_id, user_id, model)
    return model


def add_link(session: Session, project_id: int, user_id: int | None, *, source: str, target: str) -> LogicModel:
    current = stored_logic_model(session, project_id)
    if current is None:
        raise ParameterError("logic model: add boxes before linking them")
    model = logic_model(current.nodes, [*current.links, Link(source, target)], title=current.title)
    save_logic_model(session, project_id, user_id, model)
    return model


def remove_part(session: Session, project_id: int, user_id: int | None, *, node: str = "", source: str = "",
                target: str = "") -> LogicModel | None:
    """Remove a box (with its arrows) or one arrow."""
    current = stored_logic_model(session, project_id)
    if current is None:
        return None
    nodes = [n for n in current.nodes if n.id != node]
    links = [link for link in current.links if node not in (link.source, link.target)
             and not (link.source == source and link.target == target)]
    model = logic_model(nodes, links, title=current.title)
    save_logic_model(session, project_id, user_id, model)
    return model


def read_store_tables(path: str, names: Sequence[str]) -> dict[str, pd.DataFrame]:
    """Canonical tables of a project's store (only those present), read under the project's store lock."""
    project = load_project(path)
    tables: dict[str, pd.DataFrame] = {}
    if not project.store_path.exists():
        return tables
    with project_lock(str(project.root.resolve())), Store.for_project(project, read_only=True) as store:
        for name in names:
            if name == "providers":
                if store.has_table("providers") and store.has_table("encounters"):
                    tables[name] = read_providers(store)
            elif name == "panel":
                if store.has_table("panel"):
                    tables[name] = read_panel(store)
            elif store.has_table(name):
                tables[name] = store.table(name)
    return tables


def draft_logic_model(session: Session, project_id: int, user_id: int | None, path: str) -> LogicModel:
    """Replace the logic model with a draft from the rollout table and the saved specifications."""
    tables = read_store_tables(path, ("rollout",))
    if "rollout" not in tables or tables["rollout"].empty:
        raise StoreError("the project has no rollout table yet: an analyst must load the data first")
    specs = specifications(session, project_id)
    model = logic_model_from_rollout(tables["rollout"], specifications=specs if specs.specifications else None)
    save_logic_model(session, project_id, user_id, model)
    return model


def logic_view(model: LogicModel | None) -> dict[str, Any]:
    """Stages as columns of boxes (with each measure's label and where knowdo computes it), arrows, gaps, paths."""
    if model is None:
        return {"title": "Logic model", "stages": [{"id": s, "label": STAGE_LABELS[s], "nodes": []} for s in STAGES],
                "links": [], "gaps": [], "paths": [], "n_nodes": 0}
    stages = []
    for s in STAGES:
        nodes = []
        for n in model.nodes:
            if n.stage != s:
                continue
            measure = MEASURES.get(n.measure) if n.measure else None
            nodes.append({"id": n.id, "label": n.label, "strategy": n.strategy, "constructs": list(n.constructs),
                          "measure": n.measure, "measure_label": measure.label if measure else "",
                          "measure_source": measure.source if measure else "", "note": n.note})
        stages.append({"id": s, "label": STAGE_LABELS[s], "nodes": nodes})
    labels = {n.id: n.label for n in model.nodes}
    links = [{"source": link.source, "target": link.target, "source_label": labels[link.source],
              "target_label": labels[link.target]} for link in model.links]
    return {"title": model.title, "stages": stages, "links": links, "gaps": jsonable(model.gaps()),
            "paths": jsonable(model.paths()), "n_nodes": len(model.nodes), "mermaid": model.to_mermaid()}


# ---------------------------------------------------------------------------- StaRI
def stari_settings(session: Session, project_id: int) -> dict[str, Any]:
    return document(session, project_id, "stari") or {"design": "", "hybrid_type": None}


def save_stari_settings(session: Session, project_id: int, user_id: int | None, *, design: str,
                        hybrid_type: int | None) -> None:
    if hybrid_type is not None and hybrid_type not in (1, 2, 3):
        raise ParameterError(f"hybrid type must be 1, 2 or 3 (Curran et al. 2012) or empty; saw {hybrid_type!r}")
    save_document(session, project_id, "stari", {"design": design.strip()[:500], "hybrid_type": hybrid_type},
                  user_id)


def project_config(path: str) -> ProjectConfig | None:
    try:
        return load_project(path)
    except KnowdoError:
        return None


def stari_for(session: Session, project_id: int, path: str) -> StariChecklist:
    """The project's StaRI checklist from its configuration, its aggregate tables and what the team entered.

    Only tables that describe sites, rollout and costs are read; person-level
    tables are left out, so every member may download the checklist.
    """
    settings = stari_settings(session, project_id)
    config = project_config(path)
    tables = read_store_tables(path, ("sites", "rollout", "costs")) if config is not None else {}
    specs = specifications(session, project_id)
    return stari_checklist(project=config, tables=tables, design=settings.get("design") or None,
                           hybrid_type=settings.get("hybrid_type"), assessment=barrier_assessment(session, project_id),
                           specifications=specs if specs.specifications else None,
                           logic=stored_logic_model(session, project_id))


# ---------------------------------------------------------------------------- Delphi
def consensus_rules(rule: str, agree_share: float, against_share: float, drop_on_consensus: bool = True
                    ) -> ConsensusRules:
    if rule not in CONSENSUS_RULES:
        raise ParameterError(f"consensus rule {rule!r} is not known; use one of {', '.join(CONSENSUS_RULES)}")
    return ConsensusRules(rule=rule, agree_share=agree_share, against_share=against_share,
                          drop_on_consensus=drop_on_consensus)


def rules_of(study: DelphiStudy) -> ConsensusRules:
    r = study.rules
    return ConsensusRules(rule=r["rule"], agree_share=float(r["agree_share"]), against_share=float(r["against_share"]),
                          strict_against=bool(r.get("strict_against", True)),
                          drop_on_consensus=bool(r.get("drop_on_consensus", True)))


def create_study(session: Session, project_id: int, user_id: int | None, *, title: str, items: Sequence[str],
                 rules: ConsensusRules) -> DelphiStudy:
    """A new Delphi study, round 1 open, with its consensus rules fixed now."""
    texts = [t.strip()[:500] for t in items if t and t.strip()]
    texts = list(dict.fromkeys(texts))
    if not title.strip():
        raise ParameterError("Delphi: give the study a title")
    if not texts:
        raise ParameterError("Delphi: give at least one item to rate (one per line)")
    if len(texts) > MAX_DELPHI_ITEMS:
        raise ParameterError(f"Delphi: at most {MAX_DELPHI_ITEMS} items per study; saw {len(texts)}")
    study = DelphiStudy(project_id=project_id, title=title.strip()[:200], rules=asdict(rules), state="open", round=1,
                        rounds=[], created_by=user_id, created_at=utcnow())
    session.add(study)
    session.flush()
    for position, text in enumerate(texts, start=1):
        session.add(DelphiItem(study_id=study.id, text=text, position=position))
    session.flush()
    ids = [i.id for i in session.scalars(select(DelphiItem).where(DelphiItem.study_id == study.id)
                                         .order_by(DelphiItem.position)).all()]
    study.rounds = [ids]
    return study


def get_study(session: Session, project_id: int, study_id: int) -> DelphiStudy | None:
    study = session.get(DelphiStudy, study_id)
    return study if study is not None and study.project_id == project_id else None


def studies(session: Session, project_id: int) -> list[DelphiStudy]:
    return list(session.scalars(select(DelphiStudy).where(DelphiStudy.project_id == project_id)
                                .order_by(DelphiStudy.id.desc())).all())


def is_facilitator(study: DelphiStudy, user_id: int, role: str | None) -> bool:
    """The member who created the study facilitates it; the project's owners may stand in."""
    return study.created_by == user_id or role == "owner"


def current_items(session: Session, study: DelphiStudy) -> list[DelphiItem]:
    ids = study.rounds[study.round - 1] if study.rounds and len(study.rounds) >= study.round else []
    items = {i.id: i for i in session.scalars(select(DelphiItem).where(DelphiItem.study_id == study.id)).all()}
    return [items[i] for i in ids if i in items]


def rate(session: Session, study: DelphiStudy, user_id: int, *, group: str, ratings: Mapping[int, int | None]
         ) -> int:
    """Record a member's ratings (1-9, None = unable to rate) for items of the open round; returns how many."""
    if study.state != "open":
        raise ParameterError(f"Delphi round {study.round} is closed; wait for the facilitator to open the next round")
    check_group(group)
    allowed = {i.id for i in current_items(session, study)}
    unknown = sorted(set(ratings) - allowed)
    if unknown:
        raise ParameterError(f"Delphi: item(s) {unknown} are not rated in round {study.round}")
    for item_id, value in ratings.items():
        if value is not None and (not isinstance(value, int) or not SCALE[0] <= value <= SCALE[1]):
            raise ParameterError(f"Delphi: ratings run from {SCALE[0]} to {SCALE[1]}; saw {value!r} for item {item_id}")
    for item_id, value in ratings.items():
        row = session.scalar(select(DelphiRating).where(DelphiRating.item_id == item_id,
                                                        DelphiRating.round == study.round,
                                                        DelphiRating.user_id == user_id))
        if row is None:
            row = DelphiRating(study_id=study.id, item_id=item_id, round=study.round, user_id=user_id)
            session.add(row)
        row.rating = value
        row.stakeholder_group = group
        row.created_at = utcnow()
    session.flush()
    return len(ratings)


def close_round(session: Session, study: DelphiStudy) -> None:
    if study.state != "open":
        raise ParameterError(f"Delphi round {study.round} is already closed")
    study.state = "closed"


def next_round(session: Session, study: DelphiStudy) -> list[int]:
    """Open the next round with the items still without consensus (or all, when the rules keep them)."""
    if study.state != "closed":
        raise ParameterError(f"close Delphi round {study.round} before opening the next one")
    rules = rules_of(study)
    ids = [i.id for i in current_items(session, study)]
    result = delphi_result(session, study)
    settled: set[int] = set()
    if result is not None and rules.drop_on_consensus:
        rows = result.items.loc[result.items["round"] == study.round]
        settled = {int(r) for r, s in zip(rows["item"], rows["settled"], strict=True) if bool(s)}
    keep = [i for i in ids if i not in settled]
    if not keep:
        raise ParameterError("every item reached consensus; the Delphi is complete")
    study.rounds = [*study.rounds, keep]
    study.round = study.round + 1
    study.state = "open"
    return keep


def last_closed_round(study: DelphiStudy) -> int:
    return study.round if study.state == "closed" else study.round - 1


def delphi_result(session: Session, study: DelphiStudy) -> DelphiResult | None:
    """The consensus summary of every closed round (an open round's ratings are not summarised)."""
    last = last_closed_round(study)
    if last < 1:
        return None
    rows = session.execute(select(DelphiRating.round, DelphiRating.item_id, DelphiRating.user_id,
                                  DelphiRating.rating, DelphiRating.stakeholder_group).where(
        DelphiRating.study_id == study.id, DelphiRating.round <= last)).all()
    if not rows:
        return None
    votes = pd.DataFrame([{"round": r[0], "item": str(r[1]), "participant": f"p{r[2]}",
                           "rating": r[3] if r[3] is not None else None, "group": r[4] or ""} for r in rows])
    return summarise_delphi(votes, rules_of(study))


def respondents(session: Session, study: DelphiStudy) -> int:
    """How many members have rated at least one item in the current round (a count, never who)."""
    return int(session.scalar(select(func.count(func.distinct(DelphiRating.user_id))).where(
        DelphiRating.study_id == study.id, DelphiRating.round == study.round)) or 0)


def own_ratings(session: Session, study: DelphiStudy, user_id: int, round_no: int) -> dict[int, int | None]:
    rows = session.execute(select(DelphiRating.item_id, DelphiRating.rating).where(
        DelphiRating.study_id == study.id, DelphiRating.round == round_no, DelphiRating.user_id == user_id)).all()
    return {int(r[0]): r[1] for r in rows}


FEEDBACK_FIELDS = ("n", "median", "q1", "q3", "iqr", "share_high", "share_low", "status")


def study_view(session: Session, study: DelphiStudy, user_id: int, role: str | None) -> dict[str, Any]:
    """One member's view: the open round's items with their own ratings, and the group's feedback per closed round
    (median, IQR, counts per score, status) with the member's own rating beside it; nobody else's."""
    items = {i.id: i.text for i in study.items}
    rules = rules_of(study)
    result = delphi_result(session, study)
    feedback = []
    if result is not None:
        for round_no in result.rounds:
            frame = result.feedback(round_no)
            mine = own_ratings(session, study, user_id, round_no)
            rows = []
            for r in frame.to_dict(orient="records"):
                item_id = int(r["item"])
                rows.append({"item_id": item_id, "text": items.get(item_id, ""),
                             **{k: jsonable(r[k]) for k in FEEDBACK_FIELDS},
                             "counts": [int(r[f"n_{s}"]) for s in range(SCALE[0], SCALE[1] + 1)],
                             "your_rating": mine.get(item_id)})
            feedback.append({"round": round_no, "items": rows})
    last = result.final() if result is not None else None
    final = []
    if last is not None:
        for r in last.to_dict(orient="records"):
            final.append({"item_id": int(r["item"]), "text": items.get(int(r["item"]), ""), "round": int(r["round"]),
                          "status": r["status"], "median": jsonable(r["median"]), "q1": jsonable(r["q1"]),
                          "q3": jsonable(r["q3"])})
    current = current_items(session, study)
    mine_now = own_ratings(session, study, user_id, study.round)
    return {
        "id": study.id, "title": study.title, "state": study.state, "round": study.round,
        "rules": rules.to_dict(), "scale": list(SCALE),
        "items": [{"id": i.id, "text": i.text, "your_rating": mine_now.get(i.id),
                   "rated": i.id in mine_now} for i in current],
        "respondents": respondents(session, study), "feedback": feedback, "final": final,
        "facilitator": is_facilitator(study, user_id, role),
        "complete": study.state == "closed" and result is not None and not _unsettled(result, study),
    }


def _unsettled(result: DelphiResult, study: DelphiStudy) -> list[str]:
    rows = result.items.loc[result.items["round"] == study.round]
    if rules_of(study).drop_on_consensus:
        rows = rows.loc[~rows["settled"].astype(bool)]
    return rows["item"].tolist()


def export_csv(session: Session, study: DelphiStudy) -> str:
    """Every closed round's items with n, median, quartiles, shares, counts per score and status (no raters)."""
    result = delphi_result(session, study)
    items = {i.id: i.text for i in study.items}
    out = io.StringIO()
    columns = ["round", "item_id", "item", "n", "n_abstained", "median", "q1", "q3", "iqr", "share_high",
               "share_low", "disagreement_index", "status", *(f"n_{s}" for s in range(SCALE[0], SCALE[1] + 1))]
    writer = csv.writer(out)
    writer.writerow([*columns, "rule"])
    if result is not None:
        for r in result.items.to_dict(orient="records"):
            row = {**r, "item_id": r["item"], "item": items.get(int(r["item"]), "")}
            writer.writerow([_cell(row[c]) for c in columns] + [result.rules.rule])
    return out.getvalue()


def _cell(value: Any) -> Any:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:g}"
    return value


# ---------------------------------------------------------------------------- what the data say
def strategy_evidence_task(ctx: JobContext, path: str) -> dict[str, Any]:
    """Estimate the strategies' associations from the store and keep only their disclosure-controlled view."""
    project = load_project(path)
    ctx.progress(0.05, "reading the rollout, encounters and providers")
    tables = read_store_tables(path, ("rollout", "encounters", "providers", "panel"))
    if "rollout" not in tables:
        raise StoreError("the project has no rollout table yet: an analyst must load the data first")
    ctx.progress(0.3, "estimating adoption, fidelity and reach associations")
    result = strategy_evidence(tables)
    ctx.progress(0.9, "applying disclosure control")
    return {"view": evidence_view(result, project)}


EVIDENCE_DEPENDENTS = ("estimate", "std_error", "statistic", "p_value", "conf_low", "conf_high")
CONFIGURATION_COUNTS = ("n_sites", "n_with", "n_high", "n_high_with")


def published_estimates(result: StrategyEvidence, project: ProjectConfig) -> pd.DataFrame:
    """The estimates after the disclosure rule: ``n_obs`` counts providers (adoption), provider-months (fidelity)
    or site-months (reach); the first two fall under the rule, and an estimate resting on a small count is
    blanked with it."""
    frame = result.estimates.copy()
    frame["unit"] = ["sites" if o == "reach" else "providers" for o in frame["outcome"]]
    out = suppress_frame(frame, threshold=project.disclosure_threshold, rounding=project.disclosure_rounding,
                         count_columns=("n_obs",), dependent_columns=EVIDENCE_DEPENDENTS).frame
    return out.drop(columns=["unit"])


def published_configurations(result: StrategyEvidence, project: ProjectConfig) -> pd.DataFrame:
    """The configurational table after the disclosure rule (its counts are of sites, which the rule leaves shown)."""
    frame = result.configurations.assign(unit="sites")
    out = suppress_frame(frame, threshold=project.disclosure_threshold, rounding=project.disclosure_rounding,
                         count_columns=CONFIGURATION_COUNTS, dependent_columns=("consistency", "coverage")).frame
    return out.drop(columns=["unit"])


def evidence_view(result: StrategyEvidence, project: ProjectConfig) -> dict[str, Any]:
    """Sentences, tables and caveats, every figure taken from the published (disclosure-controlled) frames."""
    estimates = published_estimates(result, project)
    configurations = published_configurations(result, project)
    level = float(result.settings.get("level", 0.95))
    sentences = []
    for r in estimates.loc[estimates["term"] == "main"].to_dict(orient="records"):
        if not bool(r["estimable"]):
            sentences.append(f"{r['strategy']} and {r['outcome']}: not estimable ({r['note']}).")
        elif r.get("estimate") is None or pd.isna(r.get("estimate")):
            sentences.append(f"{r['strategy']} and {r['outcome']}: withheld for privacy (too few people).")
        else:
            digits = 3 if r["outcome"] == "fidelity" else 2
            sentences.append(f"{r['strategy']} and {r['outcome']}: {SCALES[str(r['outcome'])]} "
                             f"{r['estimate']:.{digits}f} ({level:.0%} CI {r['conf_low']:.{digits}f} to "
                             f"{r['conf_high']:.{digits}f}), from {int(r['n_sites_contrast'])} site(s) with a "
                             "contrast.")
    shown = ["outcome", "strategy", "term", "scale", "estimate", "conf_low", "conf_high", "p_value", "n_obs",
             "n_sites", "n_sites_contrast", "estimable", "design", "note", "suppressed"]
    return {
        "sentences": sentences,
        "estimates": jsonable(estimates[[c for c in shown if c in estimates.columns]]),
        "configurations": jsonable(configurations),
        "caveats": list(result.caveats), "notes": list(result.notes),
        "scales": dict(SCALES), "definitions": dict(DEFINITIONS),
        "settings": jsonable(dict(result.settings)), "threshold": project.disclosure_threshold,
    }


def json_bytes(value: Any) -> bytes:
    """Strict JSON (no NaN) as UTF-8 bytes, for responses built from ``to_dict()`` results."""
    return json.dumps(jsonable(value), ensure_ascii=False, allow_nan=False).encode("utf-8")


def delete_project_codesign(session: Session, project_id: int) -> None:
    """Remove every co-design record of a project (used by tests and by project removal)."""
    for model in (BarrierRating, CodesignDocument, DelphiStudy):
        session.execute(delete(model).where(model.project_id == project_id))
