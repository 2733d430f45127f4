"""The JSON API under ``/api/``: the workspace's operations for scripts and other tools (schema: ``/api/openapi.json``).

Authenticate with the browser's session (state-changing calls then need the
``X-CSRF-Token`` header) or with a personal API token
(``Authorization: Bearer kdo_...``, made on the account page). The same
authorization table as the pages applies; person-level endpoints answer only
owners and analysts and every read is written to the audit log. Everything
else is disclosure-controlled, as on the pages.
"""

from __future__ import annotations

import datetime as dt
import functools
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi import Path as ApiPath
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from knowdo.config import load_project
from knowdo.errors import KnowdoError
from knowdo.web import adapters, services, tasks
from knowdo.web.models import AuditEvent, Job, User
from knowdo.web.routes.deps import Caller, Refused, access, client_of, state_of
from knowdo.web.routes.pages import start_job
from knowdo.web.security import audit

router = APIRouter(prefix="/api", tags=["api"])
Access = Annotated[Caller, Depends(access)]
Slug = Annotated[str, ApiPath(max_length=64)]
RoleName = Literal["owner", "analyst", "implementer", "community_partner", "viewer"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MeOut(BaseModel):
    id: int
    email: str
    name: str
    handle: str
    is_admin: bool


class ProjectOut(BaseModel):
    slug: str
    name: str
    role: str | None
    loaded: bool
    last_load: dict[str, Any] | None = None


class ProjectDetail(ProjectOut):
    window: list[str] | None = None
    strata: list[dict[str, Any]] = []
    quality: list[dict[str, Any]] = []
    threshold: int | None = None


class ProjectIn(Strict):
    name: str = Field(min_length=1, max_length=200)
    start: dt.date
    end: dt.date
    threshold: int = Field(default=11, ge=1, le=1000)


class PanelOut(BaseModel):
    key: str
    title: str
    intro: str
    sentences: list[str]
    charts: list[dict[str, Any]]
    tables: list[dict[str, Any]]
    method: list[str]
    settings: dict[str, str]
    notes: list[str]
    threshold: int
    computed_at: str


class CommentIn(Strict):
    target: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_:.-]{0,63}$")
    body: str = Field(min_length=1, max_length=5000)


class CommentOut(BaseModel):
    id: int
    target: str
    body: str
    author: str
    handle: str
    created_at: dt.datetime


class RatingIn(Strict):
    target: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_:.-]{0,63}$")
    value: int = Field(ge=1, le=5)


class JobOut(BaseModel):
    id: int
    kind: str
    status: str
    progress: float
    message: str
    error: str | None = None
    result: dict[str, Any] | None = None
    created_at: dt.datetime
    finished_at: dt.datetime | None = None


class PeopleOut(BaseModel):
    total: int
    offset: int
    limit: int
    columns: list[str]
    rows: list[dict[str, Any]]


class ScenarioIn(Strict):
    preset: str | None = Field(default=None, max_length=100)
    name: str = Field(default="", max_length=100)
    parameter: str | None = Field(default=None, max_length=64)
    op: Literal["set", "scale", "add"] = "scale"
    value: float | None = Field(default=None, allow_inf_nan=False, ge=-1e6, le=1e6)
    start: float = Field(default=0.0, ge=0, le=600, allow_inf_nan=False)
    stratum: str | None = Field(default=None, max_length=64)
    description: str = Field(default="", max_length=300)


class ScenarioOptionOut(BaseModel):
    name: str
    description: str


class ScenarioOptionsOut(BaseModel):
    presets: list[ScenarioOptionOut]
    parameters: list[dict[str, Any]]
    strata: list[str]


Bounded = Annotated[float, Field(ge=-1e9, le=1e9, allow_inf_nan=False)]


class PowerIn(Strict):
    design: Literal["individual", "crt", "stepped-wedge"]
    n_per_arm: Annotated[float, Field(gt=0, le=1e7)] | None = None
    p0: Annotated[float, Field(gt=0, lt=1)] | None = None
    p1: Annotated[float, Field(gt=0, lt=1)] | None = None
    delta: Bounded | None = None
    sd: Annotated[float, Field(gt=0, le=1e6)] | None = None
    power: Annotated[float, Field(gt=0, lt=1)] | None = None
    alpha: Annotated[float, Field(gt=0, lt=1)] = 0.05
    icc: Annotated[float, Field(ge=0, lt=1)] | None = None
    clusters_per_arm: Annotated[float, Field(gt=0, le=1e5)] | None = None
    cluster_size: Annotated[float, Field(gt=0, le=1e6)] | None = None
    clusters: Annotated[int, Field(gt=0, le=2000)] | None = None
    steps: Annotated[int, Field(gt=0, le=50)] | None = None
    cluster_period_size: Annotated[float, Field(gt=0, le=1e5)] | None = None


class AdviseIn(Strict):
    name: str = Field(default="Next study", max_length=200)
    outcome: Literal["binary", "continuous"] = "binary"
    baseline: Annotated[float, Field(ge=-1e6, le=1e6, allow_inf_nan=False)] = 0.3
    effect: Annotated[float, Field(ge=-1e6, le=1e6, allow_inf_nan=False)] = 0.05
    sd: Annotated[float, Field(gt=0, le=1e6)] | None = None
    icc: Annotated[float, Field(ge=0, lt=1)] = 0.05
    alpha: Annotated[float, Field(gt=0, lt=1)] = 0.05
    target_power: Annotated[float, Field(gt=0, lt=1)] = 0.8
    unit_kind: str = Field(default="unit", max_length=50)
    units: Annotated[int, Field(ge=1, le=2000)] = 20
    size_per_period: Annotated[float, Field(gt=0, le=1e5)] = 20.0
    randomisable: Literal["individuals", "units", "order", "none"] = "none"
    rollout: Literal["waves", "all-at-once"] = "all-at-once"
    waves: Annotated[int, Field(ge=0, le=50)] = 1
    periods_before: Annotated[int, Field(ge=0, le=240)] = 0
    periods_after: Annotated[int, Field(ge=0, le=240)] = 12
    comparison: bool = False
    comparison_units: Annotated[int, Field(ge=0, le=2000)] = 0
    policy: bool = False
    eligibility_threshold: bool = False


class InviteIn(Strict):
    email: str = Field(min_length=3, max_length=254)
    role: RoleName


class InviteOut(BaseModel):
    email: str
    added: bool
    invitation_url: str | None


class MemberOut(BaseModel):
    user_id: int
    email: str
    name: str
    handle: str
    role: str


class AuditOut(BaseModel):
    id: int
    at: dt.datetime
    user_email: str
    action: str
    target: str
    detail: dict[str, Any]


def _bad(exc: Exception) -> Refused:
    return Refused(422, str(exc))


def _project_out(project: Any, role: str | None) -> dict[str, Any]:
    state = project.state or {}
    return {"slug": project.slug, "name": project.name, "role": role, "loaded": bool(state.get("loaded")),
            "last_load": state.get("last_load")}


@router.get("/me", name="api_me", response_model=MeOut)
def api_me(caller: Access) -> MeOut:
    u = caller.user
    assert u is not None
    return MeOut(id=u.id, email=u.email, name=u.name, handle=u.handle, is_admin=u.is_admin)


@router.get("/projects", name="api_projects", response_model=list[ProjectOut])
def api_projects(request: Request, caller: Access) -> list[dict[str, Any]]:
    web = state_of(request)
    assert caller.user is not None
    with web.db.session() as s:
        user = s.get(User, caller.user.id)
        assert user is not None
        return [_project_out(p, r) for p, r in services.projects_for(s, user)]


@router.post("/projects", name="api_project_create", response_model=ProjectOut, status_code=201)
def api_project_create(request: Request, caller: Access, body: ProjectIn) -> dict[str, Any]:
    web = state_of(request)
    assert caller.user is not None
    try:
        with web.db.session() as s:
            owner = s.get(User, caller.user.id)
            assert owner is not None
            project = services.create_project(s, web.settings.workspace, name=body.name, start=body.start,
                                              end=body.end, threshold=body.threshold, owner=owner)
            audit(s, action="project.created", user=owner, project_id=project.id, target=project.slug,
                  client=client_of(request))
            return _project_out(project, "owner")
    except (KnowdoError, OSError) as exc:
        raise _bad(exc) from None


@router.get("/projects/{slug}", name="api_project", response_model=ProjectDetail)
def api_project(caller: Access, slug: Slug) -> dict[str, Any]:
    project = caller.project
    assert project is not None
    state = project.state or {}
    return {**_project_out(project, caller.role), "window": state.get("window"), "strata": state.get("strata", []),
            "quality": state.get("quality", []), "threshold": state.get("threshold")}


@router.get("/projects/{slug}/evidence", name="api_evidence", response_model=list[PanelOut])
def api_evidence(request: Request, caller: Access, slug: Slug) -> Response:
    web = state_of(request)
    assert caller.project is not None
    with web.db.session() as s:
        # Serialised once per recomputation (the panels were validated when they were built).
        return Response(web.evidence.get(s, caller.project.id).json, media_type="application/json")


@router.get("/projects/{slug}/evidence/{key}", name="api_evidence_panel", response_model=PanelOut)
def api_evidence_panel(
    request: Request, caller: Access, slug: Slug, key: Annotated[str, ApiPath(max_length=64)]
) -> Any:
    web = state_of(request)
    assert caller.project is not None
    with web.db.session() as s:
        found = web.evidence.get(s, caller.project.id).by_key.get(key)
    if found is None:
        raise Refused(404, f"no evidence panel {key!r} in this project (yet)")
    return Response(found, media_type="application/json")


@router.get("/projects/{slug}/comments", name="api_comments", response_model=list[CommentOut])
def api_comments(request: Request, caller: Access, slug: Slug,
                 target: Annotated[str | None, Query(max_length=64)] = None) -> list[dict[str, Any]]:
    web = state_of(request)
    assert caller.project is not None
    with web.db.session() as s:
        rows = services.comments(s, caller.project, target)
        return [{"id": c.id, "target": c.target, "body": c.body, "author": c.author.name, "handle": c.author.handle,
                 "created_at": c.created_at} for c in rows]


@router.post("/projects/{slug}/comments", name="api_comment_create", response_model=CommentOut, status_code=201)
def api_comment_create(request: Request, caller: Access, slug: Slug, body: CommentIn) -> dict[str, Any]:
    web = state_of(request)
    assert caller.project is not None and caller.user is not None
    try:
        with web.db.session() as s:
            user = s.get(User, caller.user.id)
            assert user is not None
            c = services.add_comment(s, caller.project, user, target=body.target, body=body.body)
            return {"id": c.id, "target": c.target, "body": c.body, "author": user.name, "handle": user.handle,
                    "created_at": c.created_at}
    except KnowdoError as exc:
        raise _bad(exc) from None


@router.put("/projects/{slug}/ratings", name="api_rating_set", response_model=dict[str, Any])
def api_rating_set(request: Request, caller: Access, slug: Slug, body: RatingIn) -> dict[str, Any]:
    web = state_of(request)
    assert caller.project is not None and caller.user is not None
    try:
        with web.db.session() as s:
            user = s.get(User, caller.user.id)
            assert user is not None
            services.set_rating(s, caller.project, user, target=body.target, value=body.value)
            s.flush()
            return services.ratings(s, caller.project).get(body.target, {})
    except KnowdoError as exc:
        raise _bad(exc) from None


@router.get("/projects/{slug}/people", name="api_people", response_model=PeopleOut)
def api_people(request: Request, caller: Access, slug: Slug, offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
               limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
    web = state_of(request)
    assert caller.project is not None
    try:
        rows, total = services.read_people(caller.project.path, offset=offset, limit=limit)
    except KnowdoError as exc:
        raise Refused(409, str(exc)) from None
    with web.db.session() as s:
        audit(s, action="person_level.read", user=caller.user, project_id=caller.project.id, target="episodes",
              detail={"view": "api", "offset": offset, "rows": len(rows)}, client=client_of(request))
    records = rows.astype(object).where(rows.notna(), None)
    out = [{k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in r.items()}
           for r in records.to_dict(orient="records")]
    return {"total": total, "offset": offset, "limit": limit, "columns": list(rows.columns), "rows": out}


@router.get("/projects/{slug}/provenance", name="api_provenance", response_model=dict[str, Any])
def api_provenance(caller: Access, slug: Slug) -> dict[str, Any]:
    assert caller.project is not None
    state = caller.project.state or {}
    return {"last_load": state.get("last_load"), "provenance": state.get("provenance", []),
            "warnings": state.get("warnings", [])}


def _job_out(job: Job, detailed: bool) -> dict[str, Any]:
    error = job.error
    if error and not detailed:
        error = "the job failed; an analyst can see why on the data page"
    return {"id": job.id, "kind": job.kind, "status": job.status, "progress": job.progress, "message": job.message,
            "error": error, "result": job.result, "created_at": job.created_at, "finished_at": job.finished_at}


@router.post("/projects/{slug}/load", name="api_load", response_model=JobOut, status_code=202)
def api_load(request: Request, caller: Access, slug: Slug) -> dict[str, Any]:
    web = state_of(request)
    assert caller.project is not None
    job_id = start_job(request, caller, "load", tasks.load_job(web.settings, caller.project.id, caller.project.path),
                       {})
    return _job(request, caller, job_id)


@router.post("/projects/{slug}/example", name="api_example", response_model=JobOut, status_code=202)
def api_example(request: Request, caller: Access, slug: Slug,
                seed: Annotated[int, Query(ge=0, le=2**31)] = 0) -> dict[str, Any]:
    web = state_of(request)
    assert caller.project is not None
    work = tasks.example_job(web.settings, caller.project.id, caller.project.path, caller.project.name, seed)
    job_id = start_job(request, caller, "example", work, {"persons": web.settings.example_persons, "seed": seed})
    return _job(request, caller, job_id)


def _job(request: Request, caller: Caller, job_id: int) -> dict[str, Any]:
    web = state_of(request)
    assert caller.project is not None
    with web.db.session() as s:
        job = s.get(Job, job_id)
    if job is None or job.project_id != caller.project.id:
        raise Refused(404, "there is no such job in this project")
    return _job_out(job, caller.can("data_page"))


@router.get("/projects/{slug}/jobs/{job_id}", name="api_job", response_model=JobOut)
def api_job(request: Request, caller: Access, slug: Slug, job_id: Annotated[int, ApiPath(ge=0, le=2**62)]) -> Any:
    return _job(request, caller, job_id)


@router.get("/projects/{slug}/scenarios", name="api_scenario_options", response_model=ScenarioOptionsOut)
def api_scenario_options(caller: Access, slug: Slug) -> dict[str, Any]:
    assert caller.project is not None
    try:
        project = load_project(caller.project.path)
    except KnowdoError as exc:
        raise Refused(409, str(exc)) from None
    dimension = adapters.scenario_dimension(project)
    return {"presets": [{"name": s.name, "description": s.description} for s in adapters.scenario_options(project)[1:]],
            "parameters": adapters.parameter_choices(), "strata": list(dimension.levels) if dimension else []}


@router.post("/projects/{slug}/scenarios", name="api_scenario_run", response_model=JobOut, status_code=202)
def api_scenario_run(request: Request, caller: Access, slug: Slug, body: ScenarioIn) -> dict[str, Any]:
    web = state_of(request)
    assert caller.project is not None
    scenario: dict[str, Any]
    if body.preset:
        scenario = {"preset": body.preset}
    else:
        if body.parameter is None or body.value is None:
            raise Refused(422, "give a preset, or a parameter and a value for a custom scenario")
        try:
            adapters.custom_scenario(body.name, body.parameter, body.op, body.value, body.start, body.stratum,
                                     body.description)
        except KnowdoError as exc:
            raise _bad(exc) from None
        scenario = body.model_dump(exclude={"preset"})
    job_id = start_job(request, caller, "scenario", functools.partial(
        tasks.scenario_task, path=caller.project.path, scenario=scenario, horizon=web.settings.scenario_horizon,
        draws=web.settings.scenario_draws), {"scenario": scenario})
    return _job(request, caller, job_id)


@router.post("/projects/{slug}/planner/power", name="api_planner_power", response_model=dict[str, Any])
def api_planner_power(caller: Access, slug: Slug, body: PowerIn) -> dict[str, Any]:
    try:
        result = adapters.power(body.design, body.model_dump(exclude={"design"}))
    except (KnowdoError, ValueError, ArithmeticError) as exc:
        raise _bad(exc) from None
    return result.to_dict()


@router.post("/projects/{slug}/planner/advise", name="api_planner_advise", response_model=dict[str, Any])
def api_planner_advise(caller: Access, slug: Slug, body: AdviseIn) -> dict[str, Any]:
    try:
        advice = adapters.advise_plan(body.model_dump())
    except (KnowdoError, ValueError, ArithmeticError) as exc:
        raise _bad(exc) from None
    return advice.to_dict()


@router.get("/projects/{slug}/members", name="api_members", response_model=list[MemberOut])
def api_members(request: Request, caller: Access, slug: Slug) -> list[dict[str, Any]]:
    web = state_of(request)
    assert caller.project is not None
    with web.db.session() as s:
        return [{"user_id": u.id, "email": u.email, "name": u.name, "handle": u.handle, "role": r}
                for u, r in services.members(s, caller.project)]


@router.post("/projects/{slug}/members", name="api_member_invite", response_model=InviteOut, status_code=201)
def api_member_invite(request: Request, caller: Access, slug: Slug, body: InviteIn) -> dict[str, Any]:
    web = state_of(request)
    assert caller.project is not None and caller.user is not None
    try:
        with web.db.session() as s:
            inviter = s.get(User, caller.user.id)
            assert inviter is not None
            outcome = services.invite(s, caller.project, email=body.email, role=body.role, by=inviter)
            audit(s, action="member.invited", user=inviter, project_id=caller.project.id, target=outcome.email,
                  detail={"role": body.role, "existing_account": outcome.added}, client=client_of(request))
    except KnowdoError as exc:
        raise _bad(exc) from None
    url = str(request.url_for("invitation_form", token=outcome.token)) if outcome.token else None
    return {"email": outcome.email, "added": outcome.added, "invitation_url": url}


@router.get("/projects/{slug}/audit", name="api_audit", response_model=list[AuditOut])
def api_audit(request: Request, caller: Access, slug: Slug, offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
              limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[dict[str, Any]]:
    web = state_of(request)
    assert caller.project is not None
    with web.db.session() as s:
        rows = s.scalars(select(AuditEvent).where(AuditEvent.project_id == caller.project.id).order_by(
            AuditEvent.id.desc()).offset(offset).limit(limit)).all()
        return [{"id": e.id, "at": e.at, "user_email": e.user_email, "action": e.action, "target": e.target,
                 "detail": e.detail} for e in rows]
