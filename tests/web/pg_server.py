"""A throwaway PostgreSQL server for the web tests, reusing the ingest tests' loopback cluster helper.

The helper lives in ``tests/ingest/ingest_servers.py``; it is loaded by path
(the test folders are not packages) so both suites start servers the same
way. Under ``CI=true`` a missing PostgreSQL is a failure; elsewhere the
PostgreSQL tests are skipped with the reason.
"""

from __future__ import annotations

import contextlib
import importlib.util
import itertools
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import psycopg
import pytest

HELPER = Path(__file__).resolve().parents[1] / "ingest" / "ingest_servers.py"
_names = itertools.count(1)


def _helper() -> ModuleType:
    found = sys.modules.get("ingest_servers")
    if found is not None:
        return found
    spec = importlib.util.spec_from_file_location("ingest_servers", HELPER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["ingest_servers"] = module
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def running_postgres() -> Iterator[str]:
    """Yield the base URL (``postgresql://user@127.0.0.1:port``) of a fresh server; stop it afterwards."""
    helper = _helper()
    if helper.postgres_bin() is None:
        if os.environ.get("CI") == "true":
            pytest.fail("PostgreSQL (Debian package postgresql) must be installed under CI")
        pytest.skip("PostgreSQL server binaries (Debian package postgresql) are not installed")
    base = Path(tempfile.mkdtemp(prefix="knowdo-web-pg-"))
    base.chmod(0o755)  # the server runs as 'postgres' when the tests run as root
    try:
        with helper.postgres_cluster(base) as cluster:
            yield f"postgresql://{cluster.user}@{cluster.host}:{cluster.port}"
    finally:
        shutil.rmtree(base, ignore_errors=True)


def fresh_database(server: str) -> str:
    """Create an empty database on ``server`` and return its URL."""
    name = f"knowdo_web_{os.getpid()}_{next(_names)}"
    with psycopg.connect(f"{server}/postgres", autocommit=True) as con:
        con.execute(f'CREATE DATABASE "{name}"')
    return f"{server}/{name}"
