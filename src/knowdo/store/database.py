"""The project store: one DuckDB file per project, loaded all-or-nothing.

This is the only place (with :mod:`knowdo.store.panel`) that talks to DuckDB.
A load replaces every canonical table with the project's validated sources in
a single transaction and appends one provenance record per source file, so a
load that fails, or a process killed mid-load, leaves the store exactly as it
was, and loading the same files twice gives the same tables.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import duckdb
import pandas as pd

from knowdo import __version__
from knowdo.config import Project
from knowdo.errors import StoreError
from knowdo.ingest.validate import ValidatedData, expected_columns
from knowdo.schema import LOAD_ORDER, TABLES, Table

SQL_TYPES = {"string": "VARCHAR", "integer": "BIGINT", "float": "DOUBLE", "date": "DATE"}

PROVENANCE_DDL = """
CREATE TABLE IF NOT EXISTS provenance (
    load_id BIGINT,
    loaded_at TIMESTAMP,
    table_name VARCHAR,
    file VARCHAR,
    sha256 VARCHAR,
    rows BIGINT,
    knowdo_version VARCHAR
)
"""


@dataclass(frozen=True)
class LoadSummary:
    load_id: int
    loaded_at: dt.datetime
    rows: dict[str, int]
    files: tuple[dict[str, Any], ...]
    unchanged: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "load_id": self.load_id,
            "loaded_at": self.loaded_at.isoformat(timespec="seconds"),
            "rows": dict(self.rows),
            "files": list(self.files),
            "unchanged": self.unchanged,
        }


def quote(identifier: str) -> str:
    """Quote an SQL identifier (equity column names come from the project file)."""
    return '"' + identifier.replace('"', '""') + '"'


def table_ddl(table: Table, project: Project) -> str:
    columns = [f"{quote(c.name)} {SQL_TYPES[c.type]}" for c in table.columns]
    if table.open_columns:
        columns += [f"{quote(s.name)} VARCHAR" for s in project.strata]
    key = ", ".join(quote(k) for k in table.key)
    return f"CREATE TABLE {quote(table.name)} ({', '.join(columns)}, PRIMARY KEY ({key}))"


def _select_typed(table: Table, project: Project, source: str) -> str:
    parts = [f"CAST({quote(c.name)} AS {SQL_TYPES[c.type]}) AS {quote(c.name)}" for c in table.columns]
    if table.open_columns:
        parts += [f"CAST({quote(s.name)} AS VARCHAR) AS {quote(s.name)}" for s in project.strata]
    return f"SELECT {', '.join(parts)} FROM {source}"


class Store:
    """A project's DuckDB file.

    Use as a context manager; every method reads or writes through one
    connection. ``read_only=True`` lets several readers share the file.
    """

    def __init__(self, path: str | Path, *, read_only: bool = False) -> None:
        self.path = Path(path)
        if read_only and not self.path.exists():
            raise StoreError(f"{self.path}: no store yet; load the project first (`knowdo run` loads it).")
        try:
            self._con = duckdb.connect(str(self.path), read_only=read_only)
        except duckdb.Error as exc:
            raise StoreError(f"{self.path}: cannot open the project store: {exc}") from None
        if not read_only:
            self._con.execute(PROVENANCE_DDL)

    @classmethod
    def for_project(cls, project: Project, *, read_only: bool = False) -> Store:
        return cls(project.store_path, read_only=read_only)

    def __enter__(self) -> Store:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._con.close()

    @property
    def connection(self) -> duckdb.DuckDBPyConnection:
        return self._con

    # ------------------------------------------------------------------ loading
    def load(self, data: ValidatedData, project: Project) -> LoadSummary:
        """Replace the canonical tables with ``data`` in one transaction."""
        fingerprint = sorted((s.table, s.label, s.sha256 or "") for s in data.sources)
        unchanged = fingerprint == self._last_fingerprint()
        con = self._con
        loaded_at = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        try:
            con.execute("BEGIN TRANSACTION")
            load_id = int(con.execute("SELECT coalesce(max(load_id), 0) + 1 FROM provenance").fetchone()[0])  # type: ignore[index]
            for name in LOAD_ORDER:
                self._replace_table(TABLES[name], data.tables.get(name), project)
            files = []
            for source in data.sources:
                rows = 0 if source.frame is None else len(source.frame)
                con.execute(
                    "INSERT INTO provenance VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [load_id, loaded_at, source.table, source.label, source.sha256, rows, __version__],
                )
                files.append({"table": source.table, "file": source.label, "sha256": source.sha256, "rows": rows})
            con.execute("DROP TABLE IF EXISTS panel")
            con.execute("COMMIT")
        except duckdb.Error as exc:
            con.execute("ROLLBACK")
            raise StoreError(f"{self.path}: the load failed and was rolled back; the store is unchanged ({exc})") \
                from None
        except BaseException:
            con.execute("ROLLBACK")
            raise
        return LoadSummary(load_id, loaded_at, data.row_counts(), tuple(files), unchanged)

    def _replace_table(self, table: Table, frame: pd.DataFrame | None, project: Project) -> None:
        con = self._con
        con.execute(f"DROP TABLE IF EXISTS {quote(table.name)}")
        con.execute(table_ddl(table, project))
        if frame is None or frame.empty:
            return
        view = f"incoming_{table.name}"
        con.register(view, frame[expected_columns(table, project)])
        try:
            con.execute(f"INSERT INTO {quote(table.name)} {_select_typed(table, project, view)}")
        finally:
            con.unregister(view)

    def _last_fingerprint(self) -> list[tuple[str, str, str]]:
        rows = self._con.execute(
            "SELECT table_name, file, coalesce(sha256, '') FROM provenance "
            "WHERE load_id = (SELECT max(load_id) FROM provenance) ORDER BY 1, 2, 3"
        ).fetchall()
        return [(str(a), str(b), str(c)) for a, b, c in rows]

    # ------------------------------------------------------------------ reading
    def has_table(self, name: str) -> bool:
        found = self._con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [name]
        ).fetchone()
        return bool(found and found[0])

    def table(self, name: str) -> pd.DataFrame:
        """A canonical table as a DataFrame (for in-process analyses only)."""
        if name not in TABLES and name not in {"panel", "provenance"}:
            raise StoreError(f"no table {name!r} in the store; tables: {', '.join(TABLES)}")
        if not self.has_table(name):
            raise StoreError(f"{self.path}: table {name!r} has not been loaded yet")
        return self._con.execute(f"SELECT * FROM {quote(name)}").df()

    def row_counts(self) -> dict[str, int]:
        counts = {}
        for name in TABLES:
            if self.has_table(name):
                found = self._con.execute(f"SELECT count(*) FROM {quote(name)}").fetchone()
                counts[name] = int(found[0]) if found else 0
        return counts

    def provenance(self) -> pd.DataFrame:
        return self._con.execute("SELECT * FROM provenance ORDER BY load_id, table_name, file").df()

    def query(self, sql: str, parameters: list[Any] | None = None) -> pd.DataFrame:
        """Run a read query (used by the panel builder and by tests)."""
        try:
            return self._con.execute(sql, parameters or []).df()
        except duckdb.Error as exc:
            raise StoreError(f"{self.path}: query failed: {exc}") from None

    def execute(self, sql: str, parameters: list[Any] | None = None) -> None:
        try:
            self._con.execute(sql, parameters or [])
        except duckdb.Error as exc:
            raise StoreError(f"{self.path}: statement failed: {exc}") from None
