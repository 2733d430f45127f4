"""Co-production pages: barrier assessment, strategy matching and specification, Delphi, logic model, StaRI, and
what the project's data say about its strategies.

Each page lays out what :mod:`knowdo.web.codesign_services` read from the
workspace database and the core computed; forms post back here (with the
CSRF token) and every change is written to the audit log. Who may use each
route is in :data:`knowdo.web.authz.RULES`; closing and opening Delphi rounds
is further limited to the study's facilitator or an owner.
"""

from __future__ import annotations

import functools
from typing import Annotated, Any

import pandas as pd
from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select

from knowdo.codesign.logic_model import MEASURES, STAGE_LABELS, STAGES
from knowdo.codesign.priorities import CONSENSUS_RULES
from knowdo.errors import KnowdoError, ParameterError
from knowdo.strategies.assessment import IMPORTANCE_RANGE, PRIORITY_RULES, PROGRAMME, STAKEHOLDER_GROUPS, VALENCE_RANGE
from knowdo.strategies.specification import IMPLEMENTATION_OUTCOMES
from knowdo.strategies.vocabularies import load_vocabulary
from knowdo.web import codesign_services as cs
from knowdo.web.evidence import table_view
from knowdo.web.models import Job
from knowdo.web.routes.deps import Caller, Refused, access, audit_project, project_user_ids, render, state_of
from knowdo.web.routes.pages import project_context, start_job

router = APIRouter(prefix="/projects/{slug}/codesign")
Access = Annotated[Caller, Depends(access)]
TOOLS = (("Overview", "codesign_home", ""), ("Barriers", "barrier_page", "/barriers"),
         ("Strategies", "strategy_page", "/strategies"), ("Specifications", "specification_page", "/specifications"),
         ("Delphi", "delphi_list", "/delphi"), ("Logic model", "logic_page", "/logic-model"),
         ("StaRI", "stari_page", "/stari"), ("What the data say", "strategy_evidence_page", "/evidence"))
UPLOAD_LIMIT = 10 * 2**20  # the official matching workbook is well under 1 MB; 10 MB leaves room for copies


def codesign_context(request: Request, caller: Caller, **extra: Any) -> dict[str, Any]:
    assert caller.project is not None
    base = f"/projects/{caller.project.slug}/codesign"
    tools = [(label, f"{base}{suffix}") for label, route, suffix in TOOLS if caller.can(route)]
    return project_context(request, caller, tools=tools, base=base, **extra)


def _back(caller: Caller, suffix: str) -> RedirectResponse:
    assert caller.project is not None
    return RedirectResponse(f"/projects/{caller.project.slug}/codesign{suffix}", status_code=303)


def _int_or_none(value: str) -> int | None:
    value = (value or "").strip()
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise ParameterError(f"expected a whole number; saw {value!r}") from None


# ---------------------------------------------------------------------------- overview
@router.get("", name="codesign_home", include_in_schema=False)
def codesign_home(request: Request, caller: Access) -> Response:
    project_id, _ = project_user_ids(caller)
    with state_of(request).db.session() as s:
        frame = cs.barrier_frame(s, project_id)
        counts = {"ratings": len(frame), "raters": int(frame["member"].nunique()) if len(frame) else 0,
                  "specifications": len(cs.specifications(s, project_id).specifications),
                  "studies": len(cs.studies(s, project_id)),
                  "nodes": len((cs.document(s, project_id, "logic_model") or {}).get("nodes", [])),
                  "workbook": cs.document(s, project_id, "workbook") is not None}
    return render(request, caller, "codesign_home.html", codesign_context(request, caller, counts=counts))


# ---------------------------------------------------------------------------- barriers
def _barrier_page(request: Request, caller: Caller, *, error: str = "", status: int = 200) -> Response:
    project_id, user_id = project_user_ids(caller)
    with state_of(request).db.session() as s:
        view = cs.assessment_view(cs.barrier_assessment(s, project_id))
        mine = cs.my_barrier_ratings(s, project_id, user_id)
    return render(request, caller, "codesign_barriers.html", codesign_context(
        request, caller, view=view, mine=mine, constructs=cs.construct_choices(), groups=STAKEHOLDER_GROUPS,
        default_group=cs.GROUP_BY_ROLE.get(caller.role or "", "researcher"), valences=range(VALENCE_RANGE[1],
                                                                                              VALENCE_RANGE[0] - 1, -1),
        importances=range(IMPORTANCE_RANGE[0], IMPORTANCE_RANGE[1] + 1), programme=PROGRAMME, error=error),
        status=status)


@router.get("/barriers", name="barrier_page", include_in_schema=False)
def barrier_page(request: Request, caller: Access) -> Response:
    return _barrier_page(request, caller)


@router.post("/barriers", name="barrier_rate", include_in_schema=False)
def barrier_rate(request: Request, caller: Access, cfir: Annotated[str, Form(max_length=100)] = "",
                 valence: Annotated[str, Form(max_length=4)] = "", importance: Annotated[str, Form(max_length=4)] = "",
                 evidence: Annotated[str, Form(max_length=5000)] = "",
                 group: Annotated[str, Form(max_length=32)] = "researcher",
                 site: Annotated[str, Form(max_length=64)] = PROGRAMME) -> Response:
    project_id, user_id = project_user_ids(caller)
    try:
        value = _int_or_none(valence)
        if value is None:
            raise ParameterError("choose a valence from -2 (strong barrier) to +2 (strong facilitator)")
        with state_of(request).db.session() as s:
            row = cs.set_barrier_rating(s, project_id, user_id, construct=cfir, valence=value,
                                        importance=_int_or_none(importance), evidence=evidence, group=group,
                                        site=site)
            target = f"{row.site}:{row.construct}"
    except KnowdoError as exc:
        return _barrier_page(request, caller, error=str(exc), status=400)
    audit_project(request, caller, "codesign.barrier_rated", target, {"valence": value, "group": group})
    return _back(caller, "/barriers#mine")


# ---------------------------------------------------------------------------- strategies
def _strategy_page(request: Request, caller: Caller, *, rule: str = "overall", top: int = 10, site: str = "",
                   error: str = "", message: str = "", status: int = 200) -> Response:
    project_id, user_id = project_user_ids(caller)
    with state_of(request).db.session() as s:
        try:
            match, ids = cs.strategy_match(s, project_id, rule=rule, top=top, site=site or None)
            view = cs.match_view(match, ids)
        except KnowdoError as exc:
            view, error, status = cs.match_view(None, []), error or str(exc), 400
        workbook = cs.document(s, project_id, "workbook")
        sites = sorted({r.site for r in cs.my_barrier_ratings(s, project_id, user_id)} | {PROGRAMME})
    return render(request, caller, "codesign_strategies.html", codesign_context(
        request, caller, view=view, rule=rule, rules=PRIORITY_RULES, top=top, site=site, sites=sites,
        workbook=workbook, error=error, message=message), status=status)


@router.get("/strategies", name="strategy_page", include_in_schema=False)
def strategy_page(request: Request, caller: Access, rule: str = "overall", top: int = 10, site: str = "") -> Response:
    if rule not in PRIORITY_RULES:
        rule = "overall"
    return _strategy_page(request, caller, rule=rule, top=max(1, min(top, 48)), site=site[:64])


@router.post("/strategies/workbook", name="workbook_upload", include_in_schema=False)
async def workbook_upload(request: Request, caller: Access,
                          file: Annotated[UploadFile | None, File()] = None) -> Response:
    project_id, user_id = project_user_ids(caller)
    if file is None or not file.filename:
        return _strategy_page(request, caller, error="Choose the CFIR-ERIC matching workbook to upload.", status=400)
    content = await file.read(UPLOAD_LIMIT + 1)
    if len(content) > UPLOAD_LIMIT:
        return _strategy_page(request, caller, error="The file is larger than 10 MB; is it the matching workbook?",
                              status=413)
    try:
        with state_of(request).db.session() as s:
            book = cs.save_workbook(s, project_id, user_id, filename=file.filename, content=content)
    except KnowdoError as exc:
        return _strategy_page(request, caller, error=str(exc), status=400)
    audit_project(request, caller, "codesign.workbook_uploaded", file.filename[:200],
         {"barriers": len(book.barriers), "rows": len(book.endorsements)})
    return _strategy_page(request, caller, message=f"Read {len(book.barriers)} barriers from {file.filename}.")


# ---------------------------------------------------------------------------- specifications
def _specification_page(request: Request, caller: Caller, *, error: str = "", chosen: str = "",
                        status: int = 200) -> Response:
    project_id, _ = project_user_ids(caller)
    vocab = load_vocabulary()
    with state_of(request).db.session() as s:
        specs = cs.specifications(s, project_id)
    return render(request, caller, "codesign_specifications.html", codesign_context(
        request, caller, specs=specs.specifications, fields=vocab.specification_fields, strategies=vocab.strategies,
        outcomes=IMPLEMENTATION_OUTCOMES, chosen=chosen, error=error), status=status)


@router.get("/specifications", name="specification_page", include_in_schema=False)
def specification_page(request: Request, caller: Access, strategy: str = "") -> Response:
    return _specification_page(request, caller, chosen=strategy[:200])


@router.post("/specifications", name="specification_save", include_in_schema=False)
async def specification_save(request: Request, caller: Access) -> Response:
    project_id, user_id = project_user_ids(caller)
    form = await request.form()
    values: dict[str, Any] = {k: str(form.get(k) or "")[:2000] for k in (
        "strategy", "actor", "action", "action_target", "temporality", "dose", "justification", "mechanism")}
    values["outcome"] = [str(v) for v in form.getlist("outcome")][:8]
    values["custom"] = form.get("custom") in ("on", "true", "1")
    try:
        with state_of(request).db.session() as s:
            cs.save_specification(s, project_id, user_id, values)
    except KnowdoError as exc:
        return _specification_page(request, caller, error=str(exc), chosen=values["strategy"], status=400)
    audit_project(request, caller, "codesign.strategy_specified", values["strategy"][:200])
    return _back(caller, "/specifications")


@router.post("/specifications/remove", name="specification_remove", include_in_schema=False)
def specification_remove(request: Request, caller: Access,
                         strategy: Annotated[str, Form(max_length=200)] = "") -> Response:
    project_id, user_id = project_user_ids(caller)
    with state_of(request).db.session() as s:
        cs.remove_specification(s, project_id, user_id, strategy)
    audit_project(request, caller, "codesign.specification_removed", strategy)
    return _back(caller, "/specifications")


# ---------------------------------------------------------------------------- Delphi
def _delphi_list(request: Request, caller: Caller, *, error: str = "", status: int = 200) -> Response:
    project_id, _ = project_user_ids(caller)
    with state_of(request).db.session() as s:
        found = [(d, len(d.items)) for d in cs.studies(s, project_id)]
    return render(request, caller, "codesign_delphi_list.html", codesign_context(
        request, caller, studies=found, rules=CONSENSUS_RULES, error=error), status=status)


@router.get("/delphi", name="delphi_list", include_in_schema=False)
def delphi_list(request: Request, caller: Access) -> Response:
    return _delphi_list(request, caller)


@router.post("/delphi", name="delphi_create", include_in_schema=False)
def delphi_create(request: Request, caller: Access, title: Annotated[str, Form(max_length=200)] = "",
                  items: Annotated[str, Form(max_length=30_000)] = "",
                  rule: Annotated[str, Form(max_length=16)] = "percent",
                  agree_share: Annotated[float, Form(gt=0, lt=1)] = 0.70,
                  against_share: Annotated[float, Form(gt=0, lt=1)] = 0.15,
                  keep_settled: Annotated[str, Form(max_length=8)] = "") -> Response:
    project_id, user_id = project_user_ids(caller)
    try:
        rules = cs.consensus_rules(rule, agree_share, against_share, drop_on_consensus=keep_settled != "on")
        with state_of(request).db.session() as s:
            study = cs.create_study(s, project_id, user_id, title=title, items=items.splitlines(), rules=rules)
            study_id = study.id
    except KnowdoError as exc:
        return _delphi_list(request, caller, error=str(exc), status=400)
    audit_project(request, caller, "codesign.delphi_created", str(study_id), {"rule": rules.to_dict()})
    return _back(caller, f"/delphi/{study_id}")


def _delphi_page(request: Request, caller: Caller, study_id: int, *, error: str = "", status: int = 200) -> Response:
    project_id, user_id = project_user_ids(caller)
    with state_of(request).db.session() as s:
        study = cs.get_study(s, project_id, study_id)
        if study is None:
            raise Refused(404, "there is no such Delphi study in this project")
        view = cs.study_view(s, study, user_id, caller.role)
    return render(request, caller, "codesign_delphi.html", codesign_context(
        request, caller, study=view, groups=STAKEHOLDER_GROUPS,
        default_group=cs.GROUP_BY_ROLE.get(caller.role or "", "researcher"), error=error), status=status)


@router.get("/delphi/{study_id}", name="delphi_page", include_in_schema=False)
def delphi_page(request: Request, caller: Access, study_id: int) -> Response:
    return _delphi_page(request, caller, study_id)


@router.post("/delphi/{study_id}/ratings", name="delphi_rate", include_in_schema=False)
async def delphi_rate(request: Request, caller: Access, study_id: int) -> Response:
    project_id, user_id = project_user_ids(caller)
    form = await request.form()
    ratings: dict[int, int | None] = {}
    for key, value in form.multi_items():
        if key.startswith("item-") and key[5:].isdigit():
            text = str(value).strip()
            ratings[int(key[5:])] = int(text) if text.isdigit() else None
    try:
        with state_of(request).db.session() as s:
            study = cs.get_study(s, project_id, study_id)
            if study is None:
                raise Refused(404, "there is no such Delphi study in this project")
            n = cs.rate(s, study, user_id, group=str(form.get("group") or "researcher"), ratings=ratings)
            round_no = study.round
    except KnowdoError as exc:
        return _delphi_page(request, caller, study_id, error=str(exc), status=400)
    audit_project(request, caller, "codesign.delphi_rated", str(study_id), {"round": round_no, "items": n})
    return _back(caller, f"/delphi/{study_id}")


def _facilitate(request: Request, caller: Caller, study_id: int, action: str) -> Response:
    project_id, user_id = project_user_ids(caller)
    try:
        with state_of(request).db.session() as s:
            study = cs.get_study(s, project_id, study_id)
            if study is None:
                raise Refused(404, "there is no such Delphi study in this project")
            if not cs.is_facilitator(study, user_id, caller.role):
                raise Refused(403, "only the study's facilitator (who created it) or an owner may close or open rounds")
            if action == "close":
                cs.close_round(s, study)
            else:
                cs.next_round(s, study)
            round_no = study.round
    except KnowdoError as exc:
        return _delphi_page(request, caller, study_id, error=str(exc), status=400)
    audit_project(request, caller, f"codesign.delphi_{action}", str(study_id), {"round": round_no})
    return _back(caller, f"/delphi/{study_id}")


@router.post("/delphi/{study_id}/close", name="delphi_close", include_in_schema=False)
def delphi_close(request: Request, caller: Access, study_id: int) -> Response:
    return _facilitate(request, caller, study_id, "close")


@router.post("/delphi/{study_id}/next", name="delphi_next", include_in_schema=False)
def delphi_next(request: Request, caller: Access, study_id: int) -> Response:
    return _facilitate(request, caller, study_id, "next")


@router.get("/delphi/{study_id}/export.csv", name="delphi_export", include_in_schema=False)
def delphi_export(request: Request, caller: Access, study_id: int) -> Response:
    project_id, _ = project_user_ids(caller)
    with state_of(request).db.session() as s:
        study = cs.get_study(s, project_id, study_id)
        if study is None:
            raise Refused(404, "there is no such Delphi study in this project")
        text = cs.export_csv(s, study)
    return Response(text, media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="delphi-{study_id}.csv"'})


# ---------------------------------------------------------------------------- logic model
def _logic_page(request: Request, caller: Caller, *, error: str = "", status: int = 200) -> Response:
    project_id, _ = project_user_ids(caller)
    with state_of(request).db.session() as s:
        view = cs.logic_view(cs.stored_logic_model(s, project_id))
    return render(request, caller, "codesign_logic.html", codesign_context(
        request, caller, view=view, stages=[(s, STAGE_LABELS[s]) for s in STAGES], measures=list(MEASURES.values()),
        strategies=load_vocabulary().strategies, error=error), status=status)


@router.get("/logic-model", name="logic_page", include_in_schema=False)
def logic_page(request: Request, caller: Access) -> Response:
    return _logic_page(request, caller)


def _logic_change(request: Request, caller: Caller, action: str, change: Any, detail: dict[str, Any]) -> Response:
    project_id, user_id = project_user_ids(caller)
    try:
        with state_of(request).db.session() as s:
            change(s, project_id, user_id)
    except KnowdoError as exc:
        return _logic_page(request, caller, error=str(exc), status=400)
    audit_project(request, caller, f"codesign.logic_{action}", "logic_model", detail)
    return _back(caller, "/logic-model")


@router.post("/logic-model/nodes", name="logic_node_add", include_in_schema=False)
def logic_node_add(request: Request, caller: Access, stage: Annotated[str, Form(max_length=32)] = "",
                   label: Annotated[str, Form(max_length=300)] = "", measure: Annotated[str, Form(max_length=64)] = "",
                   strategy: Annotated[str, Form(max_length=200)] = "") -> Response:
    return _logic_change(request, caller, "node", functools.partial(
        _call_add_node, stage=stage, label=label, measure=measure, strategy=strategy), {"stage": stage})


def _call_add_node(s: Any, project_id: int, user_id: int, **kw: str) -> None:
    cs.add_node(s, project_id, user_id, stage=kw["stage"], label=kw["label"], measure=kw["measure"] or None,
                strategy=kw["strategy"] or None)


@router.post("/logic-model/links", name="logic_link_add", include_in_schema=False)
def logic_link_add(request: Request, caller: Access, source: Annotated[str, Form(max_length=64)] = "",
                   target: Annotated[str, Form(max_length=64)] = "") -> Response:
    return _logic_change(request, caller, "link", lambda s, p, u: cs.add_link(s, p, u, source=source, target=target),
                         {"source": source, "target": target})


@router.post("/logic-model/remove", name="logic_remove", include_in_schema=False)
def logic_remove(request: Request, caller: Access, node: Annotated[str, Form(max_length=64)] = "",
                 source: Annotated[str, Form(max_length=64)] = "",
                 target: Annotated[str, Form(max_length=64)] = "") -> Response:
    return _logic_change(request, caller, "remove", lambda s, p, u: cs.remove_part(
        s, p, u, node=node, source=source, target=target), {"node": node, "source": source, "target": target})


@router.post("/logic-model/draft", name="logic_draft", include_in_schema=False)
def logic_draft(request: Request, caller: Access) -> Response:
    assert caller.project is not None
    path = caller.project.path
    return _logic_change(request, caller, "draft", lambda s, p, u: cs.draft_logic_model(s, p, u, path), {})


# ---------------------------------------------------------------------------- StaRI
@router.get("/stari", name="stari_page", include_in_schema=False)
def stari_page(request: Request, caller: Access) -> Response:
    return _stari_page(request, caller)


def _stari_page(request: Request, caller: Caller, *, error: str = "", status: int = 200) -> Response:
    project_id, _ = project_user_ids(caller)
    assert caller.project is not None
    with state_of(request).db.session() as s:
        settings = cs.stari_settings(s, project_id)
        checklist = cs.stari_for(s, project_id, caller.project.path)
    return render(request, caller, "codesign_stari.html", codesign_context(
        request, caller, settings=settings, checklist=checklist, counts=checklist.counts(), error=error),
        status=status)


@router.post("/stari", name="stari_settings", include_in_schema=False)
def stari_settings(request: Request, caller: Access, design: Annotated[str, Form(max_length=500)] = "",
                   hybrid_type: Annotated[str, Form(max_length=2)] = "") -> Response:
    project_id, user_id = project_user_ids(caller)
    try:
        with state_of(request).db.session() as s:
            cs.save_stari_settings(s, project_id, user_id, design=design, hybrid_type=_int_or_none(hybrid_type))
    except KnowdoError as exc:
        return _stari_page(request, caller, error=str(exc), status=400)
    audit_project(request, caller, "codesign.stari_settings", "stari", {"hybrid_type": hybrid_type})
    return _back(caller, "/stari")


@router.get("/stari/download", name="stari_download", include_in_schema=False)
def stari_download(request: Request, caller: Access, format: str = "markdown") -> Response:
    project_id, _ = project_user_ids(caller)
    assert caller.project is not None
    with state_of(request).db.session() as s:
        checklist = cs.stari_for(s, project_id, caller.project.path)
    slug = caller.project.slug
    if format == "html":
        return Response(checklist.to_html(), media_type="text/html; charset=utf-8", headers={
            "Content-Disposition": f'attachment; filename="{slug}-stari.html"',
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"})
    return Response(checklist.to_markdown(), media_type="text/markdown; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="{slug}-stari.md"'})


# ---------------------------------------------------------------------------- what the data say
def latest_evidence_job(request: Request, project_id: int) -> tuple[Job | None, Job | None]:
    """The newest strategy-evidence job, and the newest one that succeeded (whose view the page shows)."""
    with state_of(request).db.session() as s:
        jobs = s.scalars(select(Job).where(Job.project_id == project_id, Job.kind == "strategy_evidence")
                         .order_by(Job.id.desc()).limit(20)).all()
    done = next((j for j in jobs if j.status == "succeeded" and (j.result or {}).get("view")), None)
    return (jobs[0] if jobs else None), done


@router.get("/evidence", name="strategy_evidence_page", include_in_schema=False)
def strategy_evidence_page(request: Request, caller: Access) -> Response:
    project_id, _ = project_user_ids(caller)
    assert caller.project is not None
    latest, done = latest_evidence_job(request, project_id)
    view = (done.result or {}).get("view") if done is not None else None
    tables = []
    config = cs.project_config(caller.project.path)
    if view is not None and config is not None:
        estimates = pd.DataFrame(view["estimates"])
        if len(estimates):
            tables.append(table_view(estimates.drop(columns=["suppressed"], errors="ignore"),
                                     "Strategies and implementation outcomes (associations in the project's data)",
                                     config, count_columns=("n_obs",)))
        configurations = pd.DataFrame(view["configurations"])
        if len(configurations):
            tables.append(table_view(configurations.drop(columns=["suppressed"], errors="ignore"),
                                     "Which strategies high-performing sites had in common (counts of sites)",
                                     config, count_columns=()))
    return render(request, caller, "codesign_evidence.html", codesign_context(
        request, caller, latest=latest, done=done, view=view, tables=tables))


@router.post("/evidence", name="strategy_evidence_run", include_in_schema=False)
def strategy_evidence_run(request: Request, caller: Access) -> Response:
    assert caller.project is not None
    job_id = start_job(request, caller, "strategy_evidence", functools.partial(
        cs.strategy_evidence_task, path=caller.project.path), {})
    return _back(caller, f"/evidence?job={job_id}")
