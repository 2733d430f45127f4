"""The co-production tools as JSON under ``/api/projects/{slug}/codesign/`` (same rules and audit as the pages).

Barrier ratings, the strategy list (always labelled expert opinion), Proctor
specifications, Delphi studies (a member's view holds the group's feedback
and that member's own ratings, never anyone else's), the logic model, the
StaRI checklist and what the project's data say about its strategies
(disclosure-controlled, computed by a background job).
"""

from __future__ import annotations

import functools
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi import Path as ApiPath
from pydantic import BaseModel, ConfigDict, Field

from knowdo.strategies.assessment import PROGRAMME
from knowdo.web import codesign_services as cs
from knowdo.web.routes.codesign import latest_evidence_job
from knowdo.web.routes.deps import Caller, Refused, access, audit_project, project_user_ids, state_of
from knowdo.web.routes.pages import start_job

router = APIRouter(prefix="/api/projects/{slug}/codesign", tags=["codesign"])
Access = Annotated[Caller, Depends(access)]
Slug = Annotated[str, ApiPath(max_length=64)]
StudyId = Annotated[int, ApiPath(ge=1, le=2**31 - 1)]
Group = Literal["researcher", "implementer", "community_partner", "economist", "lived_experience", "policymaker"]
Text = Annotated[str, Field(max_length=2000)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BarrierRatingIn(Strict):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    cfir_construct: str = Field(alias="construct", min_length=1, max_length=100)
    valence: int = Field(ge=-2, le=2)
    importance: int | None = Field(default=None, ge=1, le=5)
    evidence: str = Field(default="", max_length=5000)
    group: Group = "researcher"
    site: str = Field(default=PROGRAMME, min_length=1, max_length=64)


class SpecificationIn(Strict):
    strategy: str = Field(min_length=1, max_length=200)
    custom: bool = False
    actor: Text = ""
    action: Text = ""
    action_target: Text = ""
    temporality: Text = ""
    dose: Text = ""
    outcome: list[Annotated[str, Field(max_length=40)]] = Field(default_factory=list, max_length=8)
    justification: Text = ""
    barriers: list[Annotated[str, Field(max_length=100)]] = Field(default_factory=list, max_length=67)
    mechanism: Text = ""


class DelphiIn(Strict):
    title: str = Field(min_length=1, max_length=200)
    items: list[Annotated[str, Field(min_length=1, max_length=500)]] = Field(min_length=1, max_length=60)
    rule: Literal["percent", "rand_ucla"] = "percent"
    agree_share: float = Field(default=0.70, gt=0, lt=1)
    against_share: float = Field(default=0.15, gt=0, lt=1)
    drop_on_consensus: bool = True


class DelphiRatingsIn(Strict):
    group: Group = "researcher"
    ratings: dict[str, Annotated[int, Field(ge=1, le=9)] | None] = Field(min_length=1, max_length=60)


class NodeIn(Strict):
    id: str = Field(min_length=1, max_length=64)
    stage: Literal["inputs", "strategies", "mechanisms", "implementation_outcomes", "service_outcomes",
                   "client_outcomes"]
    label: str = Field(min_length=1, max_length=300)
    measure: str | None = Field(default=None, max_length=64)
    strategy: str | None = Field(default=None, max_length=200)
    constructs: list[Annotated[str, Field(max_length=100)]] = Field(default_factory=list, max_length=20)
    note: str = Field(default="", max_length=500)


class LinkIn(Strict):
    source: str = Field(min_length=1, max_length=64)
    target: str = Field(min_length=1, max_length=64)
    note: str = Field(default="", max_length=500)


class LogicModelIn(Strict):
    title: str = Field(default="Logic model", max_length=200)
    nodes: list[NodeIn] = Field(max_length=80)
    links: list[LinkIn] = Field(default_factory=list, max_length=400)


class JobStarted(BaseModel):
    job_id: int


# ---------------------------------------------------------------------------- barriers and strategies
@router.get("/barriers", name="api_barriers")
def api_barriers(request: Request, caller: Access, slug: Slug) -> dict[str, Any]:
    """The team's barrier assessment: spread per construct, stakeholder groups side by side, disagreements."""
    project_id, _ = project_user_ids(caller)
    with state_of(request).db.session() as s:
        return cs.assessment_view(cs.barrier_assessment(s, project_id))


@router.put("/barriers", name="api_barrier_rate")
def api_barrier_rate(request: Request, caller: Access, slug: Slug, body: BarrierRatingIn) -> dict[str, Any]:
    """Record (or replace) your rating of one CFIR 2.0 construct for a site or the programme."""
    project_id, user_id = project_user_ids(caller)
    with state_of(request).db.session() as s:
        row = cs.set_barrier_rating(s, project_id, user_id, construct=body.cfir_construct, valence=body.valence,
                                    importance=body.importance, evidence=body.evidence, group=body.group,
                                    site=body.site)
        out = {"construct": row.construct, "site": row.site, "valence": row.valence, "importance": row.importance,
               "group": row.stakeholder_group}
    audit_project(request, caller, "codesign.barrier_rated", f"{out['site']}:{out['construct']}",
         {"valence": body.valence, "group": body.group})
    return out


@router.get("/strategies", name="api_strategies")
def api_strategies(request: Request, caller: Access, slug: Slug,
                   rule: Annotated[Literal["overall", "any_group"], Query()] = "overall",
                   top: Annotated[int, Query(ge=1, le=67)] = 10,
                   site: Annotated[str | None, Query(max_length=64)] = None) -> dict[str, Any]:
    """Candidate ERIC strategies for the prioritised barriers; every one labelled expert opinion."""
    project_id, _ = project_user_ids(caller)
    with state_of(request).db.session() as s:
        match, ids = cs.strategy_match(s, project_id, rule=rule, top=top, site=site)
    return cs.match_view(match, ids)


@router.get("/specifications", name="api_specifications")
def api_specifications(request: Request, caller: Access, slug: Slug) -> dict[str, Any]:
    """The team's strategies specified on Proctor et al.'s seven dimensions, with what is still blank."""
    project_id, _ = project_user_ids(caller)
    with state_of(request).db.session() as s:
        return cs.specifications(s, project_id).to_dict()


@router.put("/specifications", name="api_specification_save")
def api_specification_save(request: Request, caller: Access, slug: Slug, body: SpecificationIn) -> dict[str, Any]:
    """Add or replace (by strategy name) one strategy's specification."""
    project_id, user_id = project_user_ids(caller)
    with state_of(request).db.session() as s:
        result = cs.save_specification(s, project_id, user_id, body.model_dump()).to_dict()
    audit_project(request, caller, "codesign.strategy_specified", body.strategy)
    return result


# ---------------------------------------------------------------------------- Delphi
@router.get("/delphi", name="api_delphi_list")
def api_delphi_list(request: Request, caller: Access, slug: Slug) -> list[dict[str, Any]]:
    project_id, _ = project_user_ids(caller)
    with state_of(request).db.session() as s:
        return [{"id": d.id, "title": d.title, "state": d.state, "round": d.round, "items": len(d.items),
                 "rule": d.rules.get("rule")} for d in cs.studies(s, project_id)]


@router.post("/delphi", name="api_delphi_create", status_code=201)
def api_delphi_create(request: Request, caller: Access, slug: Slug, body: DelphiIn) -> dict[str, Any]:
    """Start a Delphi study; its consensus rule is fixed now and cannot change later."""
    project_id, user_id = project_user_ids(caller)
    rules = cs.consensus_rules(body.rule, body.agree_share, body.against_share, body.drop_on_consensus)
    with state_of(request).db.session() as s:
        study = cs.create_study(s, project_id, user_id, title=body.title, items=body.items, rules=rules)
        view = cs.study_view(s, study, user_id, caller.role)
    audit_project(request, caller, "codesign.delphi_created", str(view["id"]), {"rule": rules.to_dict()})
    return view


def _get(s: Any, caller: Caller, study_id: int) -> Any:
    project_id, _ = project_user_ids(caller)
    study = cs.get_study(s, project_id, study_id)
    if study is None:
        raise Refused(404, "there is no such Delphi study in this project")
    return study


@router.get("/delphi/{study_id}", name="api_delphi")
def api_delphi(request: Request, caller: Access, slug: Slug, study_id: StudyId) -> dict[str, Any]:
    """Your view of a study: the open round's items with your ratings, the group's feedback of closed rounds."""
    _, user_id = project_user_ids(caller)
    with state_of(request).db.session() as s:
        return cs.study_view(s, _get(s, caller, study_id), user_id, caller.role)


@router.put("/delphi/{study_id}/ratings", name="api_delphi_rate")
def api_delphi_rate(request: Request, caller: Access, slug: Slug, study_id: StudyId,
                    body: DelphiRatingsIn) -> dict[str, Any]:
    """Rate items of the open round (keys are item ids; null = unable to rate)."""
    _, user_id = project_user_ids(caller)
    try:
        ratings = {int(k): v for k, v in body.ratings.items()}
    except ValueError:
        raise Refused(422, "ratings: keys must be item ids (whole numbers)") from None
    with state_of(request).db.session() as s:
        study = _get(s, caller, study_id)
        n = cs.rate(s, study, user_id, group=body.group, ratings=ratings)
        round_no = study.round
        view = cs.study_view(s, study, user_id, caller.role)
    audit_project(request, caller, "codesign.delphi_rated", str(study_id), {"round": round_no, "items": n})
    return view


def _facilitate(request: Request, caller: Caller, study_id: int, action: str) -> dict[str, Any]:
    _, user_id = project_user_ids(caller)
    with state_of(request).db.session() as s:
        study = _get(s, caller, study_id)
        if not cs.is_facilitator(study, user_id, caller.role):
            raise Refused(403, "only the study's facilitator (who created it) or an owner may close or open rounds")
        if action == "close":
            cs.close_round(s, study)
        else:
            cs.next_round(s, study)
        round_no = study.round
        view = cs.study_view(s, study, user_id, caller.role)
    audit_project(request, caller, f"codesign.delphi_{action}", str(study_id), {"round": round_no})
    return view


@router.post("/delphi/{study_id}/close", name="api_delphi_close")
def api_delphi_close(request: Request, caller: Access, slug: Slug, study_id: StudyId) -> dict[str, Any]:
    """Close the open round: every member then sees the group's median and IQR per item."""
    return _facilitate(request, caller, study_id, "close")


@router.post("/delphi/{study_id}/next", name="api_delphi_next")
def api_delphi_next(request: Request, caller: Access, slug: Slug, study_id: StudyId) -> dict[str, Any]:
    """Open the next round with the items still without consensus."""
    return _facilitate(request, caller, study_id, "next")


# ---------------------------------------------------------------------------- logic model, StaRI, evidence
@router.get("/logic-model", name="api_logic_model")
def api_logic_model(request: Request, caller: Access, slug: Slug) -> dict[str, Any]:
    """The logic model: boxes by stage with the measures they point at, arrows, gaps and strategy paths."""
    project_id, _ = project_user_ids(caller)
    with state_of(request).db.session() as s:
        return cs.logic_view(cs.stored_logic_model(s, project_id))


@router.put("/logic-model", name="api_logic_model_save")
def api_logic_model_save(request: Request, caller: Access, slug: Slug, body: LogicModelIn) -> dict[str, Any]:
    """Replace the logic model (validated: known stages and measures, ERIC names, links that run forward)."""
    project_id, user_id = project_user_ids(caller)
    model = cs.model_from_payload(body.model_dump())
    with state_of(request).db.session() as s:
        cs.save_logic_model(s, project_id, user_id, model)
    audit_project(request, caller, "codesign.logic_saved", "logic_model", {"nodes": len(model.nodes)})
    return cs.logic_view(model)


@router.get("/stari", name="api_stari")
def api_stari(request: Request, caller: Access, slug: Slug,
              format: Annotated[Literal["json", "markdown", "html"], Query()] = "json") -> Response:
    """The StaRI checklist, filled where knowdo knows the answer and flagged where the team must write."""
    project_id, _ = project_user_ids(caller)
    assert caller.project is not None
    with state_of(request).db.session() as s:
        checklist = cs.stari_for(s, project_id, caller.project.path)
    if format == "markdown":
        return Response(checklist.to_markdown(), media_type="text/markdown; charset=utf-8")
    if format == "html":
        return Response(checklist.to_html(), media_type="text/html; charset=utf-8",
                        headers={"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"})
    return Response(cs.json_bytes(checklist.to_dict()), media_type="application/json")


@router.get("/strategy-evidence", name="api_strategy_evidence")
def api_strategy_evidence(request: Request, caller: Access, slug: Slug) -> dict[str, Any]:
    """What the project's data say about its strategies (disclosure-controlled), from the latest analysis."""
    project_id, _ = project_user_ids(caller)
    latest, done = latest_evidence_job(request, project_id)
    return {"latest_job": latest.id if latest else None, "status": latest.status if latest else None,
            "view": (done.result or {}).get("view") if done is not None else None}


@router.post("/strategy-evidence", name="api_strategy_evidence_run", status_code=202)
def api_strategy_evidence_run(request: Request, caller: Access, slug: Slug) -> JobStarted:
    """Start the strategy analysis (a background job); follow it at ``/api/projects/{slug}/jobs/{id}``."""
    assert caller.project is not None
    job_id = start_job(request, caller, "strategy_evidence", functools.partial(
        cs.strategy_evidence_task, path=caller.project.path), {})
    return JobStarted(job_id=job_id)
