"""``knowdo serve``: workspace settings from the target, the first administrator, and no default password."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from sqlalchemy import select
from typer.testing import CliRunner

from knowdo.commands import serve as serve_module
from knowdo.web.db import Database
from knowdo.web.models import User
from knowdo.web.security import verify_password


def _cli() -> typer.Typer:
    app = typer.Typer()
    serve_module.register(app)

    @app.callback()
    def _root() -> None:
        """knowdo (test)"""

    return app


def _project(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "knowdo.toml").write_text('[project]\nname = "P"\nstart = 2024-01-01\nend = 2024-12-31\n')
    return folder


def test_settings_for_a_project_or_a_folder_of_projects(tmp_path: Path) -> None:
    project = _project(tmp_path / "projects" / "district")
    one = serve_module.workspace_settings(project)
    assert one.projects == (project.resolve(),) and not one.discover
    assert one.workspace == project.parent.resolve()
    assert one.database_url == f"sqlite:///{project.resolve() / 'knowdo-workspace.sqlite'}"
    many = serve_module.workspace_settings(tmp_path / "projects")
    assert many.discover and many.workspace == (tmp_path / "projects").resolve()
    assert many.database_url.startswith("sqlite:///") and many.cookie_secure


def test_first_run_creates_the_admin_from_the_environment_and_prints_the_url(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    served: dict[str, object] = {}
    monkeypatch.setattr(serve_module.uvicorn, "run", lambda app, **kw: served.update(kw, app=app))
    monkeypatch.setenv(serve_module.ADMIN_EMAIL_ENV, "Boss@Example.org")
    monkeypatch.setenv(serve_module.ADMIN_PASSWORD_ENV, "a long enough first admin password")
    project = _project(tmp_path / "district")
    result = CliRunner().invoke(_cli(), ["serve", str(project), "--port", "8123"])
    assert result.exit_code == 0, result.output
    assert "http://localhost:8123/" in result.output
    assert served["port"] == 8123 and served["host"] == "127.0.0.1"
    db = Database(f"sqlite:///{project / 'knowdo-workspace.sqlite'}")
    with db.session() as s:
        admin = s.scalar(select(User).where(User.is_admin.is_(True)))
        assert admin is not None and admin.email == "boss@example.org"
        assert verify_password(admin.password_hash, "a long enough first admin password")
    # A second run keeps the administrator and does not ask again.
    monkeypatch.delenv(serve_module.ADMIN_PASSWORD_ENV)
    again = CliRunner().invoke(_cli(), ["serve", str(project)])
    assert again.exit_code == 0 and "Created the administrator" not in again.output


def test_no_administrator_and_no_terminal_is_a_readable_error(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(serve_module.uvicorn, "run", lambda app, **kw: pytest.fail("must not serve"))
    monkeypatch.delenv(serve_module.ADMIN_EMAIL_ENV, raising=False)
    monkeypatch.delenv(serve_module.ADMIN_PASSWORD_ENV, raising=False)
    result = CliRunner().invoke(_cli(), ["serve", str(_project(tmp_path / "p"))])
    assert result.exit_code == 1
    assert "KNOWDO_ADMIN_EMAIL" in result.output and "Traceback" not in result.output


def test_a_short_first_password_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(serve_module.uvicorn, "run", lambda app, **kw: pytest.fail("must not serve"))
    monkeypatch.setenv(serve_module.ADMIN_EMAIL_ENV, "boss@example.org")
    monkeypatch.setenv(serve_module.ADMIN_PASSWORD_ENV, "admin")
    result = CliRunner().invoke(_cli(), ["serve", str(_project(tmp_path / "p"))])
    assert result.exit_code == 1 and "at least 15 characters" in result.output
