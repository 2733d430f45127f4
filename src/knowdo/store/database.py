"""The project store: one DuckDB file per project, loaded all-or-nothing, with its change log.

This is the only place (with :mod:`knowdo.store.panel`) that talks to DuckDB.
A load replaces every canonical table with the project's validated sources in
a single transaction and, in the same transaction, records:

* ``loads``: one row per load (id, time, whether the files and the tables changed);
* ``provenance``: one row per source file (table, file or URL, SHA-256, rows);
* ``change_log``: per load and table, rows added, removed, corrected and
  unchanged, the new months and the number of new sites
  (:func:`knowdo.ingest.changes.compare_tables`);
* ``change_rows``: the key of every row added or removed and, for each
  corrected value, the column with its old and new value;
* ``arrivals``: when each site-month of each dated table first reached the
  store (the reporting time data-quality timeliness falls back on).

So a load that fails, or a process killed mid-load, leaves the tables and the
log exactly as they were; loading the same files twice gives the same tables
and logs a load with no change.
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
from knowdo.ingest.changes import ROW_COLUMNS, ChangeSummary, compare_tables
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

LOG_DDL = (
    """CREATE TABLE IF NOT EXISTS loads (
        load_id BIGINT, loaded_at TIMESTAMP, knowdo_version VARCHAR, same_files BOOLEAN, changed BOOLEAN)""",
    """CREATE TABLE IF NOT EXISTS change_log (
        load_id BIGINT, table_name VARCHAR, added BIGINT, removed BIGINT, corrected BIGINT, unchanged BIGINT,
        new_periods VARCHAR, new_sites BIGINT)""",
    """CREATE TABLE IF NOT EXISTS change_rows (
        load_id BIGINT, table_name VARCHAR, change VARCHAR, "key" VARCHAR, column_name VARCHAR,
        "before" VARCHAR, "after" VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS arrivals (
        table_name VARCHAR, site_id VARCHAR, period DATE, load_id BIGINT, first_loaded_at TIMESTAMP)""",
)
LOG_TABLES = ("provenance", "loads", "change_log", "change_rows", "arrivals")
# Dated tables whose site-months are logged on arrival, with the column holding the date.
ARRIVAL_DATES = {"encounters": "date", "measures": "date", "population": "period", "aggregates": "period",
                 "costs": "period"}


@dataclass(frozen=True)
class LoadSummary:
    load_id: int
    loaded_at: dt.datetime
    rows: dict[str, int]
    files: tuple[dict[str, Any], ...]
    unchanged: bool
    changes: ChangeSummary | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "load_id": self.load_id,
            "loaded_at": self.loaded_at.isoformat(timespec="seconds"),
            "rows": dict(self.rows),
            "files": list(self.files),
            "unchanged": self.unchanged,
        }
        if self.changes is not None:
            out["changes"] = self.changes.to_dict()
        return out


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
            for ddl in LOG_DDL:
                self._con.execute(ddl)

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
        """Replace the canonical tables with ``data`` in one transaction, logging what changed."""
        fingerprint = sorted((s.table, s.label, s.sha256 or "") for s in data.sources)
        unchanged = fingerprint == self._last_fingerprint()
        con = self._con
        loaded_at = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        try:
            con.execute("BEGIN TRANSACTION")
            load_id = int(con.execute(  # type: ignore[index]
                "SELECT greatest((SELECT coalesce(max(load_id), 0) FROM provenance), "
                "(SELECT coalesce(max(load_id), 0) FROM loads)) + 1").fetchone()[0])
            before = {name: self.table(name) for name in LOAD_ORDER if self.has_table(name)}
            changes = compare_tables(before, data.tables)
            for name in LOAD_ORDER:
                self._replace_table(TABLES[name], data.tables.get(name), project)
            self._log_changes(load_id, loaded_at, changes, same_files=unchanged)
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
        return LoadSummary(load_id, loaded_at, data.row_counts(), tuple(files), unchanged, changes)

    def _log_changes(self, load_id: int, loaded_at: dt.datetime, changes: ChangeSummary, *, same_files: bool) -> None:
        con = self._con
        con.execute("INSERT INTO loads VALUES (?, ?, ?, ?, ?)",
                    [load_id, loaded_at, __version__, same_files, changes.changed])
        for t in changes.tables:
            con.execute("INSERT INTO change_log VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        [load_id, t.table, t.added, t.removed, t.corrected, t.unchanged, ",".join(t.new_periods),
                         t.new_sites])
        if len(changes.rows):
            rows = changes.rows[list(ROW_COLUMNS)].astype("string")
            con.register("incoming_change_rows", rows)
            try:
                con.execute(f"INSERT INTO change_rows SELECT {load_id}, \"table\", change, \"key\", \"column\", "
                            "\"before\", \"after\" FROM incoming_change_rows")
            finally:
                con.unregister("incoming_change_rows")
        for name, column in ARRIVAL_DATES.items():
            if not self.has_table(name):
                continue
            con.execute(
                f"""INSERT INTO arrivals
                SELECT DISTINCT '{name}', n.site_id, CAST(date_trunc('month', n.{quote(column)}) AS DATE), ?, ?
                FROM {quote(name)} n
                WHERE n.{quote(column)} IS NOT NULL AND NOT EXISTS (
                    SELECT 1 FROM arrivals a WHERE a.table_name = '{name}' AND a.site_id = n.site_id
                    AND a.period = CAST(date_trunc('month', n.{quote(column)}) AS DATE))""",
                [load_id, loaded_at])

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
        if name not in TABLES and name not in {"panel", *LOG_TABLES}:
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

    def loads(self) -> pd.DataFrame:
        """One row per load: ``load_id, loaded_at, knowdo_version, same_files, changed``."""
        if not self.has_table("loads"):  # a store written before the change log existed, opened read-only
            return pd.DataFrame(columns=["load_id", "loaded_at", "knowdo_version", "same_files", "changed"])
        return self._con.execute("SELECT * FROM loads ORDER BY load_id").df()

    def change_log(self) -> pd.DataFrame:
        """Per load and table: rows added, removed, corrected, unchanged, new months, new sites; with the time."""
        if not self.has_table("change_log") or not self.has_table("loads"):
            return pd.DataFrame(columns=["load_id", "loaded_at", "table_name", "added", "removed", "corrected",
                                         "unchanged", "new_periods", "new_sites"])
        return self._con.execute(
            "SELECT c.load_id, l.loaded_at, c.table_name, c.added, c.removed, c.corrected, c.unchanged, "
            "c.new_periods, c.new_sites FROM change_log c JOIN loads l USING (load_id) "
            "ORDER BY c.load_id, c.table_name").df()

    def change_rows(self, load_id: int | None = None) -> pd.DataFrame:
        """Every logged change (keys added or removed, values corrected old -> new), for one load or all."""
        if not self.has_table("change_rows"):
            return pd.DataFrame(columns=["load_id", "table_name", "change", "key", "column_name", "before",
                                         "after"])
        where = "" if load_id is None else " WHERE load_id = ?"
        return self._con.execute(f"SELECT * FROM change_rows{where} ORDER BY load_id, table_name, change, \"key\"",
                                 [] if load_id is None else [load_id]).df()

    def arrivals(self) -> pd.DataFrame:
        """When each site-month of each dated table first reached the store (load id and time)."""
        if not self.has_table("arrivals"):
            return pd.DataFrame(columns=["table_name", "site_id", "period", "load_id", "first_loaded_at"])
        return self._con.execute("SELECT * FROM arrivals ORDER BY table_name, site_id, period").df()

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
