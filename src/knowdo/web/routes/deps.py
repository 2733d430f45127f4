"""Per-request plumbing: who is calling, for which project, with what role, and whether the table allows it.

:func:`access` is the one dependency every route declares. It reads the
route's name, authenticates the caller (session cookie or API token), checks
the CSRF token of state-changing requests made with a cookie, resolves the
project from the URL and the caller's role in it, and asks
:func:`knowdo.web.authz.allowed`. Refusals are :class:`Refused` errors that
the app turns into a redirect to the sign-in page (pages, not signed in), a
401 (API, not signed in) or a 403.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.templating import Jinja2Templates
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from knowdo import __version__
from knowdo.web.authz import ROLE_LABELS, SITE_ROUTES, allowed, principal_for
from knowdo.web.db import Database
from knowdo.web.jobs import JobRunner
from knowdo.web.models import Project, User, WebSession
from knowdo.web.security import CSRF_FIELD, CSRF_HEADER, audit, same, session_user, token_user
from knowdo.web.services import EvidenceCache, role_of
from knowdo.web.settings import Settings

TEMPLATES = Path(__file__).resolve().parents[1] / "templates"
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class Refused(Exception):
    """The caller may not use this route (status 401 or 403), or the project does not exist (404)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Caller:
    """The caller as resolved for one request (plain values: safe to use after the DB session closed)."""

    user: User | None
    via: str  # "session", "token" or "" (anonymous)
    csrf: str  # the token to put in forms: the session's, or the pre-session cookie's
    principal: str
    route: str
    project: Project | None = None
    role: str | None = None

    @property
    def signed_in(self) -> bool:
        return self.user is not None

    @property
    def role_label(self) -> str:
        return ROLE_LABELS.get(self.role or "", "")

    def can(self, route: str) -> bool:
        """Whether this caller may use another route (pages show only the links and forms they may use)."""
        return allowed(route, self.principal)


@dataclass(frozen=True)
class WebState:
    settings: Settings
    db: Database
    jobs: JobRunner
    templates: Jinja2Templates
    evidence: EvidenceCache


def state_of(request: Request) -> WebState:
    found: WebState = request.app.state.web
    return found


def client_of(request: Request) -> str:
    return request.client.host if request.client else ""


def project_user_ids(caller: Caller) -> tuple[int, int]:
    """The project and user ids of a caller that ``access`` resolved for a project route."""
    assert caller.project is not None and caller.user is not None
    return caller.project.id, caller.user.id


def audit_project(request: Request, caller: Caller, action: str, target: str = "",
                  detail: dict[str, Any] | None = None) -> None:
    """Write one audit-log row for an action the caller took in the current project."""
    assert caller.project is not None
    with state_of(request).db.session() as s:
        audit(s, action=action, user=caller.user, project_id=caller.project.id, target=target, detail=detail or {},
              client=client_of(request))


def is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


async def access(request: Request) -> Caller:
    """Authenticate, check CSRF, resolve the project and role, and apply the authorization table."""
    route = getattr(request.scope.get("route"), "name", "") or ""
    web = state_of(request)
    header = request.headers.get(CSRF_HEADER, "")
    submitted = header
    if request.method in UNSAFE and not header and _is_form(request):
        form = await request.form()
        value = form.get(CSRF_FIELD)
        submitted = value if isinstance(value, str) else ""
    return await run_in_threadpool(_resolve, request, web, route, submitted)


def _is_form(request: Request) -> bool:
    kind = request.headers.get("content-type", "")
    return kind.startswith(("application/x-www-form-urlencoded", "multipart/form-data"))


def _resolve(request: Request, web: WebState, route: str, submitted: str) -> Caller:
    settings = web.settings
    slug = request.path_params.get("slug")
    with web.db.session() as s:
        user: User | None = None
        row: WebSession | None = None
        via = ""
        authorization = request.headers.get("authorization", "")
        if authorization.lower().startswith("bearer "):
            user = token_user(s, authorization[7:].strip())
            if user is None:
                raise Refused(401, "the API token is not valid (unknown or revoked)")
            via = "token"
        else:
            cookie = request.cookies.get(settings.session_cookie, "")
            found = session_user(s, cookie, settings) if cookie else None
            if found is not None:
                user, row = found
                via = "session"
        csrf = row.csrf_token if row is not None else request.cookies.get(settings.presession_cookie, "")
        project: Project | None = None
        role: str | None = None
        if slug is not None and route not in SITE_ROUTES:
            project = s.scalar(select(Project).where(Project.slug == slug))
            if project is None:
                if user is None:
                    raise Refused(401, "sign in to continue")
                raise Refused(404, f"there is no project {slug!r} in this workspace")
            if user is not None:
                role = role_of(s, user.id, project.id)
        principal = principal_for(signed_in=user is not None, is_admin=bool(user and user.is_admin), role=role)
        if user is not None:
            s.expunge(user)
        if project is not None:
            s.expunge(project)
    permitted = allowed(route, principal)
    if not permitted and principal == "anonymous":
        raise Refused(401, "sign in to continue")
    if request.method in UNSAFE and via != "token" and (not csrf or not submitted or not same(csrf, submitted)):
        raise Refused(403, "the form's security token is missing or out of date; reload the page and try again")
    if not permitted:
        raise Refused(403, "your role in this project does not allow this" if project else "this needs another role")
    return Caller(user=user, via=via, csrf=csrf, principal=principal, route=route, project=project, role=role)


def render(request: Request, caller: Caller | None, name: str, context: dict[str, Any], status: int = 200) -> Response:
    """A page from the templates, with the caller, the CSRF token and the version in its context."""
    web = state_of(request)
    base = {"me": caller, "csrf": caller.csrf if caller else "", "version": __version__,
            "role_labels": ROLE_LABELS}
    return web.templates.TemplateResponse(request, name, {**base, **context}, status_code=status)


def safe_next(value: str | None, fallback: str) -> str:
    """A local path to go back to after a form (never another site: no scheme, no '//')."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value and len(value) < 500:
        return value
    return fallback
