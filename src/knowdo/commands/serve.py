"""``knowdo serve``: run the shared web workspace for a project or a folder of projects.

    knowdo serve demo-project                      one project (new projects are created beside it)
    knowdo serve projects/ --port 8080             every sub-folder holding a knowdo.toml
    knowdo serve projects/ --database-url postgresql://knowdo@db/knowdo

The first run creates the first administrator from ``KNOWDO_ADMIN_EMAIL``
and ``KNOWDO_ADMIN_PASSWORD`` or, when they are not set, from a prompt;
there is no default password. Accounts, memberships, comments and the audit
log live in SQLite (in the project's folder, or in the folder of projects)
unless ``--database-url`` names a PostgreSQL database. Behind a reverse proxy that terminates TLS, pass
``--forwarded-allow-ips`` with the proxy's address so the app sees the
client's address and the https scheme.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer
import uvicorn
from rich.console import Console
from sqlalchemy import select

from knowdo.config import CONFIG_NAME
from knowdo.errors import KnowdoError
from knowdo.web.app import create_app
from knowdo.web.db import Database
from knowdo.web.models import User
from knowdo.web.security import create_user
from knowdo.web.settings import SQLITE_NAME, Settings

out = Console()
err = Console(stderr=True)
ADMIN_EMAIL_ENV = "KNOWDO_ADMIN_EMAIL"
ADMIN_PASSWORD_ENV = "KNOWDO_ADMIN_PASSWORD"


def register(app: typer.Typer) -> None:
    """Add the ``serve`` command to ``app``."""
    app.command("serve")(serve)


def workspace_settings(target: Path, *, database_url: str = "", secure_cookies: bool = True,
                       example_persons: int = 20_000) -> Settings:
    """Settings for ``knowdo serve TARGET``: a project folder, or a folder of projects."""
    target = target.resolve()
    if (target / CONFIG_NAME).exists():
        # One project: its accounts database lives in its folder; projects created in the workspace go beside it.
        url = database_url or f"sqlite:///{target / SQLITE_NAME}"
        return Settings(workspace=target.parent, database_url=url, cookie_secure=secure_cookies,
                        projects=(target,), discover=False, example_persons=example_persons)
    if target.exists() and not target.is_dir():
        raise KnowdoError(f"{target}: not a folder; give a project folder (with {CONFIG_NAME}) or a folder of them")
    return Settings(workspace=target, database_url=database_url, cookie_secure=secure_cookies,
                    example_persons=example_persons)


def ensure_admin(database: Database, *, interactive: bool) -> str | None:
    """Create the first administrator when there is none; returns their e-mail when one was created."""
    with database.session() as s:
        if s.scalar(select(User.id).where(User.is_admin.is_(True)).limit(1)) is not None:
            return None
    email = os.environ.get(ADMIN_EMAIL_ENV, "").strip()
    password = os.environ.get(ADMIN_PASSWORD_ENV, "")
    if not email or not password:
        if not interactive:
            raise KnowdoError(f"this workspace has no administrator yet: set {ADMIN_EMAIL_ENV} and "
                              f"{ADMIN_PASSWORD_ENV} for the first run, or run it in a terminal to be asked")
        out.print("This workspace has no administrator yet; create one.")
        email = email or typer.prompt("Administrator e-mail")
        password = typer.prompt("Password (15 characters or more)", hide_input=True, confirmation_prompt=True)
    with database.session() as s:
        user = create_user(s, email=email, name=email.split("@", 1)[0], password=password, is_admin=True)
        return user.email


def serve(
    target: Annotated[Path, typer.Argument(metavar="PROJECT_OR_DIR",
                                           help="A project folder (with knowdo.toml) or a folder of projects.")],
    host: Annotated[str, typer.Option(help="Address to listen on (127.0.0.1: this machine only).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    database_url: Annotated[str, typer.Option(
        "--database-url", help="SQLAlchemy URL of the accounts database (default: SQLite beside the projects).",
        envvar="KNOWDO_DATABASE_URL")] = "",
    forwarded_allow_ips: Annotated[str, typer.Option(
        help="Addresses of a trusted reverse proxy whose X-Forwarded-* headers are believed.")] = "127.0.0.1",
    insecure_cookies: Annotated[bool, typer.Option(
        "--insecure-cookies", help="Send cookies over plain HTTP on other addresses than localhost (testing only).")]
    = False,
) -> None:
    """Run the shared web workspace: accounts, roles, projects and the evidence dashboard."""
    try:
        settings = workspace_settings(target, database_url=database_url, secure_cookies=not insecure_cookies)
        database = Database(settings.database_url)
        database.upgrade()
        created = ensure_admin(database, interactive=sys.stdin.isatty())
    except KnowdoError as exc:
        err.print(f"[bold red]{type(exc).__name__}:[/] ", end="")
        err.print(str(exc), markup=False, highlight=False)
        raise typer.Exit(1) from None
    if created:
        out.print(f"Created the administrator {created}.", markup=False)
    shown = "localhost" if host in ("127.0.0.1", "::1") else host
    out.print(f"knowdo workspace for {target}: http://{shown}:{port}/  (stop with Ctrl+C)", markup=False,
              highlight=False)
    app = create_app(settings, database=database)
    # Keep-alive 30 s (uvicorn's 5 s closes connections between a reader's clicks, and a request racing the
    # close fails); proxies usually keep theirs at 60 s or more.
    uvicorn.run(app, host=host, port=port, proxy_headers=True, forwarded_allow_ips=forwarded_allow_ips,
                log_level="info", timeout_keep_alive=30)
