"""Project pages: overview, evidence dashboard, scenarios, planner, data, people, members, audit, jobs, report."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import FileResponse, RedirectResponse, Response
from sqlalchemy import select

from knowdo.config import load_project
from knowdo.errors import KnowdoError
from knowdo.schema import TABLES
from knowdo.web import adapters, services, tasks
from knowdo.web.authz import ROLE_DESCRIPTIONS, ROLES
from knowdo.web.evidence import table_view
from knowdo.web.jobs import Work
from knowdo.web.models import AuditEvent, Comment, Job, User
from knowdo.web.routes.deps import Caller, Refused, access, client_of, render, safe_next, state_of
from knowdo.web.security import audit

router = APIRouter(prefix="/projects/{slug}")
Access = Annotated[Caller, Depends(access)]
LOAD_KINDS = ("load", "example", "report")
# The report page carries its own inline scripts and styles; this policy lets them run and nothing else.
REPORT_CSP = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data: blob:; "
              "frame-ancestors 'none'; base-uri 'none'; form-action 'none'")


def project_context(request: Request, caller: Caller, **extra: Any) -> dict[str, Any]:
    project = caller.project
    assert project is not None
    nav = [(label, route, f"/projects/{project.slug}{suffix}") for label, route, suffix in (
        ("Overview", "project_overview", ""), ("Evidence", "evidence_page", "/evidence"),
        ("Scenarios", "scenario_page", "/scenarios"), ("Planner", "planner_page", "/planner"),
        ("Data", "data_page", "/data"), ("People", "people_page", "/people"),
        ("Members", "members_page", "/members"), ("Audit log", "audit_page", "/audit"),
        ("Report", "report_export", "/report")) if caller.can(route)]
    return {"project": project, "state": project.state or {}, "nav": nav, "here": request.url.path, **extra}


def start_job(request: Request, caller: Caller, kind: str, work: Work, params: dict[str, Any]) -> int:
    web = state_of(request)
    project = caller.project
    assert project is not None and caller.user is not None
    if kind in LOAD_KINDS and web.jobs.active(project.id, LOAD_KINDS) is not None:
        raise Refused(409, "a load or report export is already running for this project; wait for it to finish")
    job_id = web.jobs.submit(project_id=project.id, user_id=caller.user.id, kind=kind, params=params, work=work)
    with web.db.session() as s:
        audit(s, action=f"job.{kind}", user=caller.user, project_id=project.id, target=str(job_id), detail=params,
              client=client_of(request))
    return job_id


def recent_jobs(request: Request, project_id: int, kinds: tuple[str, ...], limit: int = 5) -> list[Job]:
    with state_of(request).db.session() as s:
        return list(s.scalars(select(Job).where(Job.project_id == project_id, Job.kind.in_(kinds)).order_by(
            Job.id.desc()).limit(limit)).all())


def comments_by_target(request: Request, caller: Caller) -> tuple[dict[str, list[Comment]], dict[str, Any]]:
    web = state_of(request)
    assert caller.project is not None
    with web.db.session() as s:
        rows = services.comments(s, caller.project)
        for c in rows:
            _ = c.author.name  # load the author while the session is open
        rating = services.ratings(s, caller.project)
    grouped: dict[str, list[Comment]] = {}
    for c in rows:
        grouped.setdefault(c.target, []).append(c)
    return grouped, rating


# ---------------------------------------------------------------------------- overview and evidence
@router.get("", name="project_overview", include_in_schema=False)
def project_overview(request: Request, caller: Access) -> Response:
    web = state_of(request)
    assert caller.project is not None and caller.user is not None
    with web.db.session() as s:
        mentions = services.mentions_of(s, caller.project, caller.user)
        for c in mentions:
            _ = c.author.name
        panels = web.evidence.panels(s, caller.project.id)
    jobs = recent_jobs(request, caller.project.id, ("load", "example"), limit=3)
    return render(request, caller, "overview.html", project_context(
        request, caller, mentions=mentions, panels=panels, jobs=jobs))


@router.get("/evidence", name="evidence_page", include_in_schema=False)
def evidence_page(request: Request, caller: Access) -> Response:
    web = state_of(request)
    assert caller.project is not None
    with web.db.session() as s:
        cached = web.evidence.get(s, caller.project.id)
    grouped, rating = comments_by_target(request, caller)
    running = web.jobs.active(caller.project.id, LOAD_KINDS)
    return render(request, caller, "evidence.html", project_context(
        request, caller, panels=cached.panels, bodies=cached.html, comments=grouped, ratings=rating,
        running=running, charts=True))


@router.post("/comments", name="comment_create", include_in_schema=False)
def comment_create(request: Request, caller: Access, target: Annotated[str, Form(max_length=64)] = "",
                   body: Annotated[str, Form(max_length=20_000)] = "",
                   next: Annotated[str, Form(max_length=500)] = "") -> Response:
    web = state_of(request)
    assert caller.project is not None and caller.user is not None
    back = safe_next(next, f"/projects/{caller.project.slug}/evidence")
    try:
        with web.db.session() as s:
            user = s.get(User, caller.user.id)
            assert user is not None
            comment = services.add_comment(s, caller.project, user, target=target, body=body)
            comment_id = comment.id
    except KnowdoError as exc:
        return render(request, caller, "error.html", {"status": 400, "message": str(exc), "back": back}, status=400)
    return RedirectResponse(f"{back}#comment-{comment_id}", status_code=303)


@router.post("/ratings", name="rating_set", include_in_schema=False)
def rating_set(request: Request, caller: Access, target: Annotated[str, Form(max_length=64)] = "",
               value: Annotated[int, Form(ge=1, le=5)] = 3,
               next: Annotated[str, Form(max_length=500)] = "") -> Response:
    web = state_of(request)
    assert caller.project is not None and caller.user is not None
    back = safe_next(next, f"/projects/{caller.project.slug}/evidence")
    try:
        with web.db.session() as s:
            user = s.get(User, caller.user.id)
            assert user is not None
            services.set_rating(s, caller.project, user, target=target, value=value)
    except KnowdoError as exc:
        return render(request, caller, "error.html", {"status": 400, "message": str(exc), "back": back}, status=400)
    return RedirectResponse(back, status_code=303)


# ---------------------------------------------------------------------------- jobs and report
@router.get("/jobs/{job_id}", name="job_page", include_in_schema=False)
def job_page(request: Request, caller: Access, job_id: int) -> Response:
    web = state_of(request)
    assert caller.project is not None
    with web.db.session() as s:
        job = s.get(Job, job_id)
    if job is None or job.project_id != caller.project.id:
        raise Refused(404, "there is no such job in this project")
    return render(request, caller, "job.html", project_context(request, caller, job=job,
                                                               show_error=caller.can("data_page")))


@router.get("/report", name="report_export", include_in_schema=False)
def report_export(request: Request, caller: Access, download: bool = False) -> Response:
    assert caller.project is not None
    file = Path(caller.project.path) / "report" / "index.html"
    if file.exists() and (caller.project.state or {}).get("report"):
        name = f"{caller.project.slug}-report.html"
        headers = {"Content-Security-Policy": REPORT_CSP, "Cache-Control": "no-store"}
        if download:
            return FileResponse(file, media_type="text/html", filename=name, headers=headers)
        return FileResponse(file, media_type="text/html", headers=headers)
    jobs = recent_jobs(request, caller.project.id, ("report",), limit=1)
    return render(request, caller, "report.html", project_context(request, caller, jobs=jobs))


@router.post("/report", name="report_build", include_in_schema=False)
def report_build(request: Request, caller: Access) -> Response:
    assert caller.project is not None
    job_id = start_job(request, caller, "report", functools.partial(
        tasks.report_task, project_id=caller.project.id, path=caller.project.path), {})
    return RedirectResponse(f"/projects/{caller.project.slug}/jobs/{job_id}", status_code=303)


# ---------------------------------------------------------------------------- scenarios and planner
def _scenario_page(request: Request, caller: Caller, *, error: str = "", status: int = 200) -> Response:
    assert caller.project is not None
    options: list[Any] = []
    strata: list[str] = []
    config_error = ""
    try:
        project = load_project(caller.project.path)
        options = adapters.scenario_options(project)[1:]
        dimension = adapters.scenario_dimension(project)
        strata = list(dimension.levels) if dimension is not None else []
    except KnowdoError as exc:
        config_error = str(exc)
    jobs = recent_jobs(request, caller.project.id, ("scenario",), limit=6)
    shown = next((j for j in jobs if j.status == "succeeded"), None)
    job_id = request.query_params.get("job")
    if job_id and job_id.isdigit():
        shown = next((j for j in jobs if j.id == int(job_id)), shown)
    grouped, _ = comments_by_target(request, caller)
    return render(request, caller, "scenarios.html", project_context(
        request, caller, options=options, parameters=adapters.parameter_choices(), strata=strata, jobs=jobs,
        shown=shown, error=error or config_error, charts=True, comments=grouped), status=status)


@router.get("/scenarios", name="scenario_page", include_in_schema=False)
def scenario_page(request: Request, caller: Access) -> Response:
    return _scenario_page(request, caller)


@router.post("/scenarios", name="scenario_run", include_in_schema=False)
def scenario_run(request: Request, caller: Access, preset: Annotated[str, Form(max_length=100)] = "",
                 name: Annotated[str, Form(max_length=100)] = "", parameter: Annotated[str, Form(max_length=64)] = "",
                 op: Annotated[str, Form(max_length=8)] = "scale", value: Annotated[str, Form(max_length=32)] = "",
                 start: Annotated[str, Form(max_length=16)] = "0", stratum: Annotated[str, Form(max_length=64)] = "",
                 description: Annotated[str, Form(max_length=300)] = "") -> Response:
    web = state_of(request)
    assert caller.project is not None
    scenario: dict[str, Any]
    if preset:
        scenario = {"preset": preset}
    else:
        try:
            number, month = float(value), float(start or 0)
            adapters.custom_scenario(name, parameter, op, number, month, stratum or None, description)
        except (ValueError, KnowdoError) as exc:
            message = str(exc) if isinstance(exc, KnowdoError) else "the value and start must be numbers"
            return _scenario_page(request, caller, error=message, status=400)
        scenario = {"name": name, "parameter": parameter, "op": op, "value": number, "start": month,
                    "stratum": stratum or None, "description": description}
    job_id = start_job(request, caller, "scenario", functools.partial(
        tasks.scenario_task, path=caller.project.path, scenario=scenario, horizon=web.settings.scenario_horizon,
        draws=web.settings.scenario_draws), {"scenario": scenario})
    return RedirectResponse(f"/projects/{caller.project.slug}/scenarios?job={job_id}", status_code=303)


PLANNER_FIELDS: dict[str, type] = {
    "name": str, "outcome": str, "baseline": float, "effect": float, "sd": float, "icc": float, "alpha": float,
    "target_power": float, "unit_kind": str, "units": int, "size_per_period": float, "randomisable": str,
    "rollout": str, "waves": int, "periods_before": int, "periods_after": int, "comparison": bool,
    "comparison_units": int, "policy": bool, "eligibility_threshold": bool,
}
POWER_FIELDS: dict[str, type] = {
    "n_per_arm": float, "p0": float, "p1": float, "delta": float, "sd": float, "power": float, "alpha": float,
    "icc": float, "clusters_per_arm": float, "cluster_size": float, "clusters": int, "steps": int,
    "cluster_period_size": float,
}
PLANNER_DEFAULTS = {"name": "Next study", "outcome": "binary", "baseline": 0.35, "effect": 0.1, "icc": 0.05,
                    "alpha": 0.05, "target_power": 0.8, "unit_kind": "clinic", "units": 36, "size_per_period": 3,
                    "randomisable": "order", "rollout": "waves", "waves": 3, "periods_before": 6,
                    "periods_after": 30, "comparison": True, "comparison_units": 12}


def typed_values(form: Any, fields: dict[str, type]) -> dict[str, Any]:
    """Form strings to the planner's types; empty fields are left out; bad numbers raise ValueError."""
    out: dict[str, Any] = {}
    for name, kind in fields.items():
        raw = form.get(name)
        if kind is bool:
            out[name] = raw in ("on", "true", "1", "yes")
            continue
        if raw is None or not isinstance(raw, str) or raw.strip() == "":
            continue
        out[name] = kind(raw.strip()) if kind is not str else raw.strip()[:200]
    return out


def _planner_page(request: Request, caller: Caller, **extra: Any) -> Response:
    status = extra.pop("status", 200)
    context = {"defaults": PLANNER_DEFAULTS, "advice": None, "plan": None, "error": "", "values": {},
               "designs": adapters.POWER_DESIGNS, "charts": True, **extra}
    return render(request, caller, "planner.html", project_context(request, caller, **context), status=status)


@router.get("/planner", name="planner_page", include_in_schema=False)
def planner_page(request: Request, caller: Access) -> Response:
    return _planner_page(request, caller)


@router.post("/planner/advise", name="planner_advise", include_in_schema=False)
async def planner_advise(request: Request, caller: Access) -> Response:
    form = await request.form()
    try:
        values = typed_values(form, PLANNER_FIELDS)
        advice = adapters.advise_plan(values)
    except (ValueError, KnowdoError) as exc:
        return _planner_page(request, caller, error=_message(exc), values=dict(form), status=400)
    assert caller.project is not None
    project = load_project(caller.project.path)
    view = {"verdict": advice.verdict, "table": table_view(advice.to_frame(), "Designs that fit, best first",
                                                           project),
            "rejected": [(r.label, "; ".join(r.reasons)) for r in advice.rejected],
            "top": advice.recommendations[0] if advice.recommendations else None}
    return _planner_page(request, caller, advice=view, values=dict(form))


@router.post("/planner/power", name="planner_power", include_in_schema=False)
async def planner_power(request: Request, caller: Access) -> Response:
    form = await request.form()
    design = str(form.get("design") or "")
    try:
        result = adapters.power(design, typed_values(form, POWER_FIELDS))
    except (ValueError, KnowdoError) as exc:
        return _planner_page(request, caller, error=_message(exc), values=dict(form), status=400)
    return _planner_page(request, caller, plan={"summary": result.summary(), "design": design}, values=dict(form))


def _message(exc: Exception) -> str:
    return str(exc) if isinstance(exc, KnowdoError) else f"a number is not valid: {exc}"


# ---------------------------------------------------------------------------- data and person-level views
def _data_page(request: Request, caller: Caller, *, message: str = "", error: str = "", status: int = 200) -> Response:
    assert caller.project is not None
    jobs = recent_jobs(request, caller.project.id, ("load", "example", "report"), limit=8)
    failed = next((j for j in jobs if j.status == "failed" and j.kind in ("load", "example")), None)
    config = ""
    file = Path(caller.project.path) / "knowdo.toml"
    if file.exists():
        config = file.read_text(encoding="utf-8", errors="replace")[:20_000]
    return render(request, caller, "data.html", project_context(
        request, caller, jobs=jobs, failed=failed, tables=list(TABLES), message=message, error=error,
        config=config), status=status)


@router.get("/data", name="data_page", include_in_schema=False)
def data_page(request: Request, caller: Access) -> Response:
    return _data_page(request, caller)


@router.post("/data/upload", name="data_upload", include_in_schema=False)
async def data_upload(request: Request, caller: Access, table: Annotated[str, Form(max_length=32)] = "",
                      file: Annotated[UploadFile | None, File()] = None) -> Response:
    web = state_of(request)
    assert caller.project is not None
    if file is None:
        return _data_page(request, caller, error="Choose a file to upload.", status=400)
    content = await file.read(web.settings.upload_max_bytes + 1)
    if len(content) > web.settings.upload_max_bytes:
        return _data_page(request, caller, error=f"The file is larger than the limit of "
                          f"{web.settings.upload_max_bytes // 2**20} MB.", status=413)
    try:
        saved = services.save_upload(caller.project.path, table=table, filename=file.filename or "",
                                     content=content)
    except (KnowdoError, UnicodeDecodeError) as exc:
        return _data_page(request, caller, error=str(exc), status=400)
    with web.db.session() as s:
        audit(s, action="data.upload", user=caller.user, project_id=caller.project.id, target=saved,
              detail={"bytes": len(content), "table": table}, client=client_of(request))
    return _data_page(request, caller, message=f"Saved {saved}. Load the data to check and use it.")


@router.post("/data/load", name="data_load", include_in_schema=False)
def data_load(request: Request, caller: Access) -> Response:
    web = state_of(request)
    assert caller.project is not None
    job_id = start_job(request, caller, "load", tasks.load_job(web.settings, caller.project.id, caller.project.path),
                       {})
    return RedirectResponse(f"/projects/{caller.project.slug}/jobs/{job_id}", status_code=303)


@router.post("/data/example", name="data_example", include_in_schema=False)
def data_example(request: Request, caller: Access, seed: Annotated[int, Form(ge=0, le=2**31)] = 0) -> Response:
    web = state_of(request)
    assert caller.project is not None
    work = tasks.example_job(web.settings, caller.project.id, caller.project.path, caller.project.name, seed)
    job_id = start_job(request, caller, "example", work, {"persons": web.settings.example_persons, "seed": seed})
    return RedirectResponse(f"/projects/{caller.project.slug}/jobs/{job_id}", status_code=303)


@router.get("/people", name="people_page", include_in_schema=False)
def people_page(request: Request, caller: Access, page: int = 1) -> Response:
    web = state_of(request)
    assert caller.project is not None
    page = max(1, min(page, 10**6))
    size = web.settings.people_page_size
    try:
        rows, total = services.read_people(caller.project.path, offset=(page - 1) * size, limit=size)
    except KnowdoError as exc:
        return render(request, caller, "people.html", project_context(request, caller, error=str(exc), rows=None,
                                                                      page=page, pages=0, total=0))
    with web.db.session() as s:
        audit(s, action="person_level.read", user=caller.user, project_id=caller.project.id, target="episodes",
              detail={"view": "page", "page": page, "rows": len(rows)}, client=client_of(request))
    records = rows.astype(object).where(rows.notna(), None).to_dict(orient="records")
    return render(request, caller, "people.html", project_context(
        request, caller, error="", columns=list(rows.columns), rows=records, page=page,
        pages=max(1, -(-total // size)), total=total))


# ---------------------------------------------------------------------------- members and audit
def _members_page(request: Request, caller: Caller, *, message: str = "", link: str = "", error: str = "",
                  status: int = 200) -> Response:
    web = state_of(request)
    assert caller.project is not None
    with web.db.session() as s:
        people = services.members(s, caller.project)
    return render(request, caller, "members.html", project_context(
        request, caller, members=people, roles=ROLES, descriptions=ROLE_DESCRIPTIONS, message=message, link=link,
        error=error), status=status)


@router.get("/members", name="members_page", include_in_schema=False)
def members_page(request: Request, caller: Access) -> Response:
    return _members_page(request, caller)


@router.post("/members", name="member_invite", include_in_schema=False)
def member_invite(request: Request, caller: Access, email: Annotated[str, Form(max_length=254)] = "",
                  role: Annotated[str, Form(max_length=32)] = "viewer") -> Response:
    web = state_of(request)
    assert caller.project is not None and caller.user is not None
    try:
        with web.db.session() as s:
            inviter = s.get(User, caller.user.id)
            assert inviter is not None
            outcome = services.invite(s, caller.project, email=email, role=role, by=inviter)
            audit(s, action="member.invited", user=inviter, project_id=caller.project.id, target=outcome.email,
                  detail={"role": role, "existing_account": outcome.added}, client=client_of(request))
    except KnowdoError as exc:
        return _members_page(request, caller, error=str(exc), status=400)
    if outcome.added:
        return _members_page(request, caller, message=f"{outcome.email} was added as {role.replace('_', ' ')}.")
    link = str(request.url_for("invitation_form", token=outcome.token or ""))
    return _members_page(request, caller, link=link, message=f"Send this one-time link to {outcome.email} (valid "
                         f"for {services.INVITATION_DAYS} days). It is shown only once.")


@router.post("/members/{user_id}/role", name="member_role", include_in_schema=False)
def member_role(request: Request, caller: Access, user_id: int,
                role: Annotated[str, Form(max_length=32)] = "") -> Response:
    web = state_of(request)
    assert caller.project is not None
    try:
        with web.db.session() as s:
            services.set_role(s, caller.project, user_id, role)
            audit(s, action="member.role", user=caller.user, project_id=caller.project.id, target=str(user_id),
                  detail={"role": role}, client=client_of(request))
    except KnowdoError as exc:
        return _members_page(request, caller, error=str(exc), status=400)
    return RedirectResponse(f"/projects/{caller.project.slug}/members", status_code=303)


@router.post("/members/{user_id}/remove", name="member_remove", include_in_schema=False)
def member_remove(request: Request, caller: Access, user_id: int) -> Response:
    web = state_of(request)
    assert caller.project is not None
    try:
        with web.db.session() as s:
            services.remove_member(s, caller.project, user_id)
            audit(s, action="member.removed", user=caller.user, project_id=caller.project.id, target=str(user_id),
                  client=client_of(request))
    except KnowdoError as exc:
        return _members_page(request, caller, error=str(exc), status=400)
    return RedirectResponse(f"/projects/{caller.project.slug}/members", status_code=303)


@router.get("/audit", name="audit_page", include_in_schema=False)
def audit_page(request: Request, caller: Access, page: int = 1) -> Response:
    web = state_of(request)
    assert caller.project is not None
    page = max(1, min(page, 10**6))
    with web.db.session() as s:
        events = s.scalars(select(AuditEvent).where(AuditEvent.project_id == caller.project.id).order_by(
            AuditEvent.id.desc()).limit(100).offset((page - 1) * 100)).all()
    return render(request, caller, "audit.html", project_context(request, caller, events=events, page=page))
