"""The authorization matrix: every route x every principal, expected outcomes generated from knowdo.web.authz.RULES.

For each route the test builds a valid request (valid CSRF token, valid body,
fresh session) and sends it as each principal: anonymous, signed in without
a role, site administrator without a role, and each of the five project
roles. The expected outcome comes from the one table in the code:

* allowed -> the route's success status (never 401 or 403);
* refused, anonymous -> 401 (API) or a redirect to the sign-in page (pages);
* refused, signed in -> 403.

Jobs started by allowed requests are recorded, not run (RecordingJobs), so the
matrix checks who may start them without loading data hundreds of times. The
same matrix runs against SQLite and PostgreSQL (``backend_url``).
"""

from __future__ import annotations

import datetime as dt
import io
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codesign_calls import calls as codesign_calls
from sqlalchemy import select
from web_support import PASSWORD, SLUG, WebEnv, backend_url, postgres_server, web_env  # noqa: F401

from knowdo.web.app import create_app
from knowdo.web.authz import PERSON_LEVEL, PERSON_LEVEL_ROUTES, PRINCIPALS, RULES, allowed
from knowdo.web.models import ApiToken, Invitation, Job, Membership, utcnow
from knowdo.web.security import digest, new_token
from knowdo.web.settings import Settings

P = f"/projects/{SLUG}"
_emails = itertools.count(1)


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    ok: tuple[int, ...]
    form: dict[str, Any] | None = None
    json: dict[str, Any] | None = None
    files: dict[str, Any] | None = None


Build = Callable[[WebEnv, str], Call]


def _invitation(env: WebEnv) -> str:
    token = new_token()
    with env.db.session() as s:
        s.add(Invitation(token_hash=digest(token), email=f"invitee{next(_emails)}@example.org",
                         project_id=env.project_id, role="viewer", expires_at=_later()))
    return token


def _later() -> dt.datetime:
    return utcnow() + dt.timedelta(days=1)


def _throwaway_member(env: WebEnv) -> int:
    return env.add_user(f"member{next(_emails)}@example.org", role="viewer")


def _token_of(env: WebEnv, principal: str) -> int:
    if principal == "anonymous":
        return 1
    with env.db.session() as s:
        token = ApiToken(user_id=env.users[principal], name="matrix", token_hash=digest(new_token()), prefix="kdo_x")
        s.add(token)
        s.flush()
        return token.id


def _job(env: WebEnv) -> int:
    with env.db.session() as s:
        job = Job(project_id=env.project_id, kind="load", status="succeeded", progress=1.0, message="", params={})
        s.add(job)
        s.flush()
        return job.id


def _login_user(env: WebEnv) -> str:
    email = f"login{next(_emails)}@example.org"
    env.add_user(email)
    return email


SCENARIO = {"preset": "SMS reminders"}
ADVICE = {"name": "Trial", "outcome": "binary", "baseline": "0.35", "effect": "0.1", "icc": "0.05", "units": "36",
          "size_per_period": "3", "randomisable": "order", "rollout": "waves", "waves": "3", "periods_before": "6",
          "periods_after": "30", "comparison": "on", "comparison_units": "12", "unit_kind": "clinic"}
POWER = {"design": "individual", "p0": "0.35", "p1": "0.45", "power": "0.8"}
SITES_CSV = b"site_id,parent_id,level,name,urbanicity,catchment_population\n"

# route name -> how to call it validly (for a given principal)
CALLS: dict[str, Build] = {
    "health": lambda env, p: Call("GET", "/healthz", (200,)),
    "static": lambda env, p: Call("GET", "/static/app.css", (200,)),
    "vega_bundle": lambda env, p: Call("GET", "/assets/vega.js", (200,)),
    "login_form": lambda env, p: Call("GET", "/login", (200,)),
    "login": lambda env, p: Call("POST", "/login", (303,), form={"email": _login_user(env), "password": PASSWORD}),
    "invitation_form": lambda env, p: Call("GET", f"/invite/{_invitation(env)}", (200,)),
    "invitation_accept": lambda env, p: Call("POST", f"/invite/{_invitation(env)}", (303,), form={
        "name": "New Person", "password": PASSWORD, "confirm": PASSWORD}),
    "home": lambda env, p: Call("GET", "/", (303,)),
    "logout": lambda env, p: Call("POST", "/logout", (303,), form={}),
    "logout_everywhere": lambda env, p: Call("POST", "/logout/everywhere", (303,), form={}),
    "account": lambda env, p: Call("GET", "/account", (200,)),
    "account_password": lambda env, p: Call("POST", "/account/password", (303,), form={
        "current": PASSWORD, "new": PASSWORD, "confirm": PASSWORD}),
    "token_create": lambda env, p: Call("POST", "/account/tokens", (201,), form={"name": "script"}),
    "token_revoke": lambda env, p: Call("POST", f"/account/tokens/{_token_of(env, p)}/revoke", (303,), form={}),
    "project_list": lambda env, p: Call("GET", "/projects", (200,)),
    "project_create": lambda env, p: Call("POST", "/projects", (303,), form={
        "name": f"New project {next(_emails)}", "start": "2024-01-01", "end": "2024-12-31", "threshold": "11"}),
    "project_overview": lambda env, p: Call("GET", P, (200,)),
    "evidence_page": lambda env, p: Call("GET", f"{P}/evidence", (200,)),
    "report_export": lambda env, p: Call("GET", f"{P}/report", (200,)),
    "report_build": lambda env, p: Call("POST", f"{P}/report", (303,), form={}),
    "job_page": lambda env, p: Call("GET", f"{P}/jobs/{_job(env)}", (200,)),
    "comment_create": lambda env, p: Call("POST", f"{P}/comments", (303,), form={
        "target": "evidence:cascade", "body": "Is the detection gap the same in every district?"}),
    "rating_set": lambda env, p: Call("POST", f"{P}/ratings", (303,), form={"target": "evidence:reaim", "value": "4"}),
    "scenario_page": lambda env, p: Call("GET", f"{P}/scenarios", (200,)),
    "scenario_run": lambda env, p: Call("POST", f"{P}/scenarios", (303,), form=SCENARIO),
    "planner_page": lambda env, p: Call("GET", f"{P}/planner", (200,)),
    "planner_advise": lambda env, p: Call("POST", f"{P}/planner/advise", (200,), form=ADVICE),
    "planner_power": lambda env, p: Call("POST", f"{P}/planner/power", (200,), form=POWER),
    "data_page": lambda env, p: Call("GET", f"{P}/data", (200,)),
    "data_upload": lambda env, p: Call("POST", f"{P}/data/upload", (200,), form={"table": "costs"},
                                       files={"file": ("costs.csv", io.BytesIO(SITES_CSV), "text/csv")}),
    "data_load": lambda env, p: Call("POST", f"{P}/data/load", (303,), form={}),
    "data_example": lambda env, p: Call("POST", f"{P}/data/example", (303,), form={"seed": "1"}),
    "people_page": lambda env, p: Call("GET", f"{P}/people", (200,)),
    "members_page": lambda env, p: Call("GET", f"{P}/members", (200,)),
    "member_invite": lambda env, p: Call("POST", f"{P}/members", (200,), form={
        "email": f"invited{next(_emails)}@example.org", "role": "implementer"}),
    "member_role": lambda env, p: Call("POST", f"{P}/members/{_throwaway_member(env)}/role", (303,),
                                       form={"role": "implementer"}),
    "member_remove": lambda env, p: Call("POST", f"{P}/members/{_throwaway_member(env)}/remove", (303,), form={}),
    "audit_page": lambda env, p: Call("GET", f"{P}/audit", (200,)),
    "api_me": lambda env, p: Call("GET", "/api/me", (200,)),
    "api_projects": lambda env, p: Call("GET", "/api/projects", (200,)),
    "api_project_create": lambda env, p: Call("POST", "/api/projects", (201,), json={
        "name": f"API project {next(_emails)}", "start": "2024-01-01", "end": "2024-12-31"}),
    "api_project": lambda env, p: Call("GET", f"/api{P}", (200,)),
    "api_evidence": lambda env, p: Call("GET", f"/api{P}/evidence", (200,)),
    "api_evidence_panel": lambda env, p: Call("GET", f"/api{P}/evidence/cascade", (200,)),
    "api_comments": lambda env, p: Call("GET", f"/api{P}/comments", (200,)),
    "api_comment_create": lambda env, p: Call("POST", f"/api{P}/comments", (201,), json={
        "target": "evidence:equity", "body": "Thank you, this helps @owner."}),
    "api_rating_set": lambda env, p: Call("PUT", f"/api{P}/ratings", (200,), json={"target": "evidence:equity",
                                                                                   "value": 5}),
    "api_people": lambda env, p: Call("GET", f"/api{P}/people?limit=5", (200,)),
    "api_provenance": lambda env, p: Call("GET", f"/api{P}/provenance", (200,)),
    "api_load": lambda env, p: Call("POST", f"/api{P}/load", (202,), json={}),
    "api_example": lambda env, p: Call("POST", f"/api{P}/example", (202,), json={}),
    "api_job": lambda env, p: Call("GET", f"/api{P}/jobs/{_job(env)}", (200,)),
    "api_scenario_options": lambda env, p: Call("GET", f"/api{P}/scenarios", (200,)),
    "api_scenario_run": lambda env, p: Call("POST", f"/api{P}/scenarios", (202,), json=SCENARIO),
    "api_planner_advise": lambda env, p: Call("POST", f"/api{P}/planner/advise", (200,), json={"units": 36}),
    "api_planner_power": lambda env, p: Call("POST", f"/api{P}/planner/power", (200,), json={
        "design": "crt", "icc": 0.05, "clusters_per_arm": 12, "cluster_size": 20, "p0": 0.35, "p1": 0.45}),
    "api_members": lambda env, p: Call("GET", f"/api{P}/members", (200,)),
    "api_member_invite": lambda env, p: Call("POST", f"/api{P}/members", (201,), json={
        "email": f"api-invited{next(_emails)}@example.org", "role": "viewer"}),
    "api_audit": lambda env, p: Call("GET", f"/api{P}/audit", (200,)),
    **codesign_calls(Call),
}


def route_names(routes: Any) -> list[str]:
    """Names of every route, looking inside included routers."""
    names = []
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            names += route_names(inner.routes)
        elif getattr(route, "name", None):
            names.append(route.name)
    return names


def expected(route: str, principal: str, call: Call) -> tuple[int, ...]:
    if allowed(route, principal):
        return call.ok
    if principal == "anonymous":
        return (401,) if call.path.startswith("/api/") else (303,)
    return (403,)


def send(env: WebEnv, principal: str, call: Call) -> Any:
    cookies, csrf = env.session_for(principal)
    env.client.cookies.clear()
    for name, value in cookies.items():
        env.client.cookies.set(name, value)
    headers = {"X-CSRF-Token": csrf} if call.json is not None or call.method in ("PUT", "DELETE") else {}
    form = None if call.form is None else {**call.form, "csrf_token": csrf}
    if call.files is not None and form is not None:
        return env.client.request(call.method, call.path, data=form, files=call.files, headers=headers,
                                  follow_redirects=False)
    return env.client.request(call.method, call.path, data=form, json=call.json, headers=headers,
                              follow_redirects=False)


def test_every_route_of_the_app_is_in_the_table_and_back(tmp_path: Path) -> None:
    names = set(route_names(create_app(Settings(workspace=tmp_path)).routes))
    docs = {"openapi"}
    assert names - docs == set(RULES), "every route needs a row in knowdo.web.authz.RULES, and no row may be stale"
    assert set(CALLS) == set(RULES), "the matrix needs a valid call for every route"


def test_person_level_routes_refuse_everyone_but_owner_and_analyst() -> None:
    assert {"people_page", "api_people"} <= PERSON_LEVEL_ROUTES
    for route in PERSON_LEVEL_ROUTES:
        assert RULES[route] == PERSON_LEVEL
        assert [p for p in PRINCIPALS if allowed(route, p)] == ["owner", "analyst"]


def test_authorization_matrix(tmp_path: Path, backend_url: str) -> None:  # noqa: F811
    failures = []
    checked = 0
    with web_env(tmp_path, backend_url) as env:
        for route, build in CALLS.items():
            for principal in PRINCIPALS:
                call = build(env, principal)
                response = send(env, principal, call)
                want = expected(route, principal, call)
                checked += 1
                if response.status_code not in want:
                    failures.append(f"{route} as {principal}: {response.status_code}, expected {want}: "
                                    f"{response.text[:150]!r}")
                elif (response.status_code == 303 and principal == "anonymous" and not allowed(route, principal)
                      and not response.headers["location"].startswith("/login")):
                    failures.append(f"{route} as anonymous redirected to {response.headers['location']}")
        with env.db.session() as s:
            members = s.scalars(select(Membership.role).where(Membership.project_id == env.project_id)).all()
    assert checked == len(RULES) * len(PRINCIPALS)
    assert not failures, "\n".join(failures)
    assert "owner" in members  # the matrix never left the project without an owner
