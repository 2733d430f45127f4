"""The workspace database on PostgreSQL and SQLite: migrations match the models, triggers guard the audit log.

The authorization matrix and the security tests also run on both backends
(their ``backend_url`` fixture); this module adds what is specific to the
database: the Alembic migration creates exactly the tables and columns of
the models (autogenerate finds nothing to change), the append-only triggers
(including TRUNCATE on PostgreSQL), and a load job run end to end with the
workspace on PostgreSQL.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from pg_server import fresh_database
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from web_support import SLUG, backend_url, postgres_server, web_env  # noqa: F401

from knowdo.web.db import Database
from knowdo.web.models import AuditEvent, Base, Evidence, Job


def test_migrations_create_exactly_the_models(backend_url: str) -> None:  # noqa: F811
    db = Database(backend_url)
    db.upgrade()
    db.upgrade()  # a second upgrade is a no-op
    with db.engine.connect() as con:
        diff = compare_metadata(MigrationContext.configure(con), Base.metadata)
    db.dispose()
    assert diff == [], f"the migration and the models disagree: {diff}"
    assert set(Database(backend_url).tables()) >= {t.name for t in Base.metadata.sorted_tables}


def test_audit_log_refuses_update_delete_and_truncate(postgres_server: str) -> None:  # noqa: F811
    db = Database(fresh_database(postgres_server))
    db.upgrade()
    with db.session() as s:
        s.add(AuditEvent(action="person_level.read", user_email="a@example.org", target="episodes", detail={},
                         client=""))
    for statement in ("UPDATE audit_log SET target = 'x'", "DELETE FROM audit_log", "TRUNCATE audit_log"):
        with pytest.raises(DBAPIError, match="append-only"), db.engine.begin() as con:
            con.execute(text(statement))
    with db.session() as s:
        assert s.scalar(select(AuditEvent.target)) == "episodes"
    db.dispose()


def test_a_load_job_runs_with_the_workspace_on_postgresql(tmp_path: Path, postgres_server: str) -> None:  # noqa: F811
    with web_env(tmp_path, fresh_database(postgres_server), jobs="inline") as env:
        csrf = env.sign_in("analyst")
        response = env.client.post(f"/projects/{SLUG}/data/load", data={"csrf_token": csrf}, follow_redirects=False)
        assert response.status_code == 303
        with env.db.session() as s:
            job = s.scalars(select(Job).order_by(Job.id.desc())).first()
            assert job is not None and job.status == "succeeded", job.error if job else None
            keys = set(s.scalars(select(Evidence.key).where(Evidence.project_id == env.project_id)).all())
        assert keys == {"cascade", "reaim"}  # the workspace's panels setting, recomputed from the store
        page = env.client.get(f"/projects/{SLUG}/evidence")
        assert page.status_code == 200 and "Care cascade" in page.text
