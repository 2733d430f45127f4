"""Shared set-up for the web tests: a workspace with one loaded example project and a user per principal.

Building the example project's evidence (load, outcomes, panels) is the slow
part, so it is done once per test process (:func:`example_evidence`) and
copied into each fresh workspace: the project folder with its DuckDB store,
the project's overview state and its evidence panels. Users are created with
one pre-computed argon2 hash and signed in by creating sessions directly, so
a test pays for password hashing only where it tests it.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pg_server
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from knowdo.examples import generate_programme, write_project
from knowdo.web.app import create_app
from knowdo.web.db import Database
from knowdo.web.jobs import JobContext, JobRunner
from knowdo.web.models import Evidence, Job, Membership, Project, User, utcnow
from knowdo.web.security import HASHER, start_session
from knowdo.web.services import register_project
from knowdo.web.settings import Settings
from knowdo.web.tasks import load_task

PASSWORD = "correct horse battery staple"
EXAMPLE_PERSONS = 1_000  # small enough to load in seconds, large enough that some cells are suppressed
PANELS = ("cascade", "reaim", "equity", "effects", "proctor", "perceptions")
ROLES = ("owner", "analyst", "implementer", "community_partner", "viewer")
PRINCIPALS = ("anonymous", "user", "admin", *ROLES)
SLUG = "example"


@functools.cache
def password_hash() -> str:
    return HASHER.hash(PASSWORD)


@dataclass(frozen=True)
class Evidenced:
    folder: Path
    state: dict[str, Any]
    panels: list[dict[str, Any]]


class InlineJobs(JobRunner):
    """Runs jobs in the calling thread, so a test sees the finished job as soon as the request returns."""

    def submit(self, *, project_id: int, user_id: int | None, kind: str, params: dict[str, Any], work: Any) -> int:
        with self.db.session() as s:
            job = Job(project_id=project_id, user_id=user_id, kind=kind, status="queued", progress=0.0, message="",
                      params=params)
            s.add(job)
            s.flush()
            job_id = job.id
        self._run(job_id, work)
        return job_id


class RecordingJobs(JobRunner):
    """Records jobs as finished without running them (for the authorization matrix, which tests who may start them)."""

    def submit(self, *, project_id: int, user_id: int | None, kind: str, params: dict[str, Any], work: Any) -> int:
        with self.db.session() as s:
            job = Job(project_id=project_id, user_id=user_id, kind=kind, status="succeeded", progress=1.0,
                      message="recorded", params=params, finished_at=utcnow())
            s.add(job)
            s.flush()
            return job.id


@functools.cache
def example_evidence() -> Evidenced:
    """The example programme, loaded, with every evidence panel computed: once per test run.

    Under pytest-xdist the workers of one run share the result through a folder named after the run's id
    (``PYTEST_XDIST_TESTRUNUID``), built by whichever worker takes the lock first.
    """
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if not run:
        return _build_evidence(Path(tempfile.mkdtemp(prefix="knowdo-web-example-")))
    shared = Path(tempfile.gettempdir()) / f"knowdo-web-evidence-{run}"
    shared.mkdir(exist_ok=True)
    with (shared / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = shared / "evidence.json"
        if not done.exists():
            built = _build_evidence(shared)
            done.write_text(json.dumps({"state": built.state, "panels": built.panels}), encoding="utf-8")
        saved = json.loads(done.read_text(encoding="utf-8"))
    return Evidenced(shared / SLUG, saved["state"], saved["panels"])


def _build_evidence(root: Path) -> Evidenced:
    folder = root / SLUG
    write_project(generate_programme(seed=3, persons=EXAMPLE_PERSONS), folder, name="Example programme")
    db = Database(f"sqlite:///{root / 'build.sqlite'}")
    db.upgrade()
    with db.session() as s:
        project = register_project(s, folder)
        project_id = project.id
    load_task(JobContext(0, db), project_id, str(folder), PANELS)
    with db.session() as s:
        row = s.get(Project, project_id)
        assert row is not None
        panels = [dict(e.payload) for e in s.scalars(select(Evidence).where(Evidence.project_id == project_id))]
        state = dict(row.state)
    db.dispose()
    return Evidenced(folder, state, panels)


@dataclass
class WebEnv:
    """A running app (TestClient) with the example project and one user per principal."""

    app: Any
    client: TestClient
    db: Database
    settings: Settings
    project_id: int
    users: dict[str, int] = field(default_factory=dict)

    def user(self, principal: str) -> User:
        with self.db.session() as s:
            user = s.get(User, self.users[principal])
            assert user is not None
            s.expunge(user)
            return user

    def add_user(self, email: str, *, role: str | None = None, admin: bool = False) -> int:
        with self.db.session() as s:
            handle = re.sub(r"[^a-z0-9._-]", "", email.split("@")[0])
            user = User(email=email, handle=handle, name=email.split("@")[0].replace(".", " ").title(),
                        password_hash=password_hash(), is_admin=admin, disabled=False)
            s.add(user)
            s.flush()
            if role is not None:
                s.add(Membership(user_id=user.id, project_id=self.project_id, role=role))
            return user.id

    def session_for(self, principal: str) -> tuple[dict[str, str], str]:
        """Cookies and the CSRF token of a fresh session for ``principal`` (anonymous: a pre-session cookie)."""
        if principal == "anonymous":
            token = "anonymous-presession-token-for-tests"
            return {self.settings.presession_cookie: token}, token
        with self.db.session() as s:
            user = s.get(User, self.users[principal])
            assert user is not None
            issued = start_session(s, user, self.settings, client="testclient")
        return {self.settings.session_cookie: issued.token}, issued.csrf

    def sign_in(self, principal: str) -> str:
        """Put a fresh session for ``principal`` in the client's cookie jar; returns its CSRF token."""
        self.client.cookies.clear()
        cookies, csrf = self.session_for(principal)
        for name, value in cookies.items():
            self.client.cookies.set(name, value)
        return csrf


@contextlib.contextmanager
def web_env(workspace: Path, database_url: str = "", *, jobs: str = "recording") -> Iterator[WebEnv]:
    """A fresh workspace: the example project (copied with its store and evidence) and a user per principal."""
    evidenced = example_evidence()
    folder = workspace / SLUG
    shutil.copytree(evidenced.folder, folder)
    settings = Settings(workspace=workspace, database_url=database_url, example_persons=EXAMPLE_PERSONS,
                        panels=("cascade", "reaim"), scenario_draws=20, analyse_on_start=False)
    db = Database(settings.database_url)
    runner: JobRunner = {"recording": RecordingJobs, "inline": InlineJobs, "threads": JobRunner}[jobs](db, 1)
    app = create_app(settings, database=db, jobs=runner)
    with TestClient(app, base_url="https://testserver") as client:
        with db.session() as s:
            project = s.scalar(select(Project).where(Project.path == str(folder.resolve())))
            assert project is not None, "the workspace should have registered the example project"
            project.slug = SLUG
            project.state = dict(evidenced.state)
            for payload in evidenced.panels:
                s.add(Evidence(project_id=project.id, key=payload["key"], payload=payload, load_id=1))
            project_id = project.id
        env = WebEnv(app, client, db, settings, project_id)
        env.users["admin"] = env.add_user("admin@example.org", admin=True)
        env.users["user"] = env.add_user("outsider@example.org")
        for role in ROLES:
            env.users[role] = env.add_user(f"{role.replace('_', '.')}@example.org", role=role)
        yield env
    db.dispose()


def csrf_from(html: str) -> str:
    found = re.search(r'name="csrf-token" content="([^"]*)"', html) or re.search(
        r'name="csrf_token" value="([^"]*)"', html)
    assert found, "the page should carry a CSRF token"
    return found.group(1)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    with pg_server.running_postgres() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The workspace database URL: SQLite in the test's folder, or a fresh database on the test PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'workspace.sqlite'}"
    server = request.getfixturevalue("postgres_server")
    return pg_server.fresh_database(server)
