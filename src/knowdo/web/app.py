"""The workspace application: ``create_app(settings)`` returns the FastAPI app that ``knowdo serve`` runs.

At start-up the app upgrades the workspace database (Alembic), registers the
project folders it finds in the workspace, marks jobs interrupted by a
previous stop as failed, and starts a thread that prepares the chart
libraries. Pages are rendered on the server from Jinja2 templates; a little
plain JavaScript draws the Vega-Lite charts and follows job progress. Every
response carries a strict content security policy and no-store caching for
signed-in pages; errors become a readable page, or JSON under ``/api/``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import jinja2
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.gzip import GZipMiddleware

from knowdo import __version__
from knowdo.config import load_project
from knowdo.errors import KnowdoError
from knowdo.report.embed import CHART_THEME, javascript_bundle, json_for_script
from knowdo.web import services, tasks
from knowdo.web.db import Database
from knowdo.web.jobs import JobRunner
from knowdo.web.routes import api, auth, codesign, codesign_api, pages
from knowdo.web.routes.deps import TEMPLATES, Refused, WebState, is_api, render
from knowdo.web.settings import Settings

log = logging.getLogger("knowdo.web")
STATIC = Path(__file__).resolve().parent / "static"
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
       "connect-src 'self'; font-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; "
       "form-action 'self'")


def create_app(settings: Settings, *, database: Database | None = None, jobs: JobRunner | None = None) -> FastAPI:
    """The workspace app for ``settings`` (tests may pass their own database and job runner)."""
    db = database or Database(settings.database_url)
    runner = jobs or JobRunner(db, settings.job_workers)
    env = _environment()
    templates = Jinja2Templates(env=env)
    panel_body = env.get_template("macros.html").module.panel_body  # type: ignore[attr-defined]

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        prepare(settings, db, runner)
        threading.Thread(target=javascript_bundle, name="knowdo-vega-warmup", daemon=True).start()
        yield
        runner.shutdown(wait=False)

    app = FastAPI(title="knowdo workspace", version=__version__, lifespan=lifespan,
                  description="The shared workspace of a knowdo team: projects, evidence, scenarios, plans and "
                              "comments. Authenticate with a session or `Authorization: Bearer <API token>`.",
                  # The Swagger page loads its scripts from a CDN, which the workspace's CSP (and an offline
                  # deployment) forbids; the schema itself is served for tools and scripts.
                  docs_url=None, redoc_url=None, openapi_url="/api/openapi.json")
    app.state.web = WebState(settings=settings, db=db, jobs=runner, templates=templates,
                             evidence=services.EvidenceCache(lambda panel: str(panel_body(panel))))
    app.include_router(auth.router)
    app.include_router(pages.router)
    app.include_router(api.router)
    app.include_router(codesign.router)
    app.include_router(codesign_api.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    # Level 5: most of level 9's saving on these pages at a fraction of its CPU time.
    app.add_middleware(GZipMiddleware, minimum_size=1024, compresslevel=5)
    app.middleware("http")(_headers)
    app.add_exception_handler(Refused, _refused)  # type: ignore[arg-type]
    app.add_exception_handler(KnowdoError, _knowdo_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _invalid)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    return app


def prepare(settings: Settings, db: Database, runner: JobRunner) -> None:
    """Upgrade the database, register the workspace's projects and recover interrupted jobs."""
    db.upgrade()
    settings.workspace.mkdir(parents=True, exist_ok=True)
    with db.session() as s:
        found = services.discover_projects(s, settings.workspace if settings.discover else None, settings.projects)
        projects = [(p.id, p.path) for p in found]
    interrupted = runner.recover()
    if interrupted:
        log.warning("%d job(s) were interrupted by the last stop and marked failed", interrupted)
    if settings.analyse_on_start:
        for project_id, path in projects:
            if _has_store(path) and not tasks.ensure_loaded_panels(db, project_id):
                runner.submit(project_id=project_id, user_id=None, kind="load", params={"reason": "start-up"},
                              work=tasks.load_job(settings, project_id, path))


def _has_store(path: str) -> bool:
    try:
        return load_project(path).store_path.exists()
    except KnowdoError:
        return False


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)),
                             autoescape=jinja2.select_autoescape(["html"], default=True), trim_blocks=True,
                             lstrip_blocks=True)
    env.filters["script_json"] = json_for_script
    env.filters["label"] = lambda v: str(v).replace("_", " ")
    env.globals["chart_theme"] = json_for_script(CHART_THEME)
    env.globals["asset_version"] = __version__
    return env


async def _headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    response = await call_next(request)
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CSP)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
    headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    if not request.url.path.startswith(("/static/", "/assets/")):
        headers.setdefault("Cache-Control", "no-store")
    if request.url.scheme == "https":
        headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    return response


def _error_page(request: Request, status: int, message: str) -> Response:
    if is_api(request):
        return JSONResponse({"detail": message}, status_code=status)
    return render(request, None, "error.html", {"status": status, "message": message}, status=status)


async def _refused(request: Request, exc: Refused) -> Response:
    if exc.status == 401 and not is_api(request):
        return RedirectResponse(f"/login?next={request.url.path}", status_code=303)
    response = _error_page(request, exc.status, exc.message)
    if exc.status == 401:
        response.headers["WWW-Authenticate"] = "Bearer"
    return response


async def _knowdo_error(request: Request, exc: KnowdoError) -> Response:
    return _error_page(request, 400, str(exc))


async def _invalid(request: Request, exc: RequestValidationError) -> Response:
    if is_api(request):
        return JSONResponse({"detail": _jsonable_errors(exc.errors())}, status_code=422)
    return _error_page(request, 422, "Some of the values sent are not valid: " + "; ".join(
        f"{'.'.join(str(p) for p in e.get('loc', ())[1:])}: {e.get('msg')}" for e in exc.errors()))


def _jsonable_errors(errors: Any) -> list[dict[str, Any]]:
    return [{"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg")), "type": str(e.get("type"))}
            for e in errors]


async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
    return _error_page(request, exc.status_code, str(exc.detail))
