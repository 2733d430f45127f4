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

Tables fed by sources with ``mode = "append"`` are not replaced but upserted
by their key (:func:`knowdo.ingest.changes.merge_tables`): rows of new keys
are added, rows whose values changed are corrected (logged old -> new), and
stored rows the pull does not mention are kept, not logged as removed. This
is how a routine system is pulled month by month (a DHIS2 request for the
latest period only). The merged tables, not just the pull, are validated
again against every rule of the schema, cross-table ones included (a kept
row must still find its site; a corrected sub-count must not exceed a kept
total), inside the load's transaction, before anything is written.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import duckdb
import pandas as pd

from knowdo import __version__
from knowdo.config import CONFIG_NAME, Project, Source
from knowdo.errors import ConfigError, StoreError
from knowdo.ingest.changes import ROW_COLUMNS, ChangeSummary, compare_tables, merge_tables
from knowdo.ingest.files import RawSource
from knowdo.ingest.validate import ValidatedData, expected_columns, validate_sources
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
    appended: tuple[str, ...] = ()  # tables merged into the store by key rather than replaced

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
        if self.appended:
            out["appended"] = list(self.appended)
        return out


def _gave(source: Source, raw: RawSource) -> bool:
    """Whether ``raw`` was read from ``source`` (connectors keep the source's path, servers their URL)."""
    if raw.path != source.path:
        return False
    if source.kind == "csv":
        return raw.table == source.table
    if source.url is not None and source.url.startswith(("http://", "https://")):
        return raw.origin is not None and raw.origin.startswith(source.url)
    return True


def append_tables(project: Project, sources: Iterable[RawSource]) -> frozenset[str]:
    """The canonical tables that the project's ``mode = "append"`` sources feed.

    A table fed by an append source and a replace source at once has no
    sensible load, so that is a :class:`~knowdo.errors.ConfigError`.
    """
    where = project.root / CONFIG_NAME
    modes: dict[str, set[str]] = {}
    for raw in sources:
        owners = [(i, s) for i, s in enumerate(project.sources, start=1) if _gave(s, raw)]
        found = {s.mode for _, s in owners}
        if len(found) > 1:
            numbers = ", ".join(f"#{i} ({s.mode})" for i, s in owners)
            raise ConfigError(f"{where}: sources {numbers} read from the same place ({raw.label}) with different "
                              "modes, so their tables cannot be told apart; give them the same mode")
        modes.setdefault(raw.table, set()).update(found or {"replace"})
    mixed = sorted(table for table, found in modes.items() if len(found) > 1)
    if mixed:
        raise ConfigError(f"{where}: table(s) {', '.join(mixed)} are fed by sources with mode \"append\" and by "
                          "sources with mode \"replace\"; a table is either merged by key or replaced as a whole, "
                          "so give every source of each such table the same mode")
    return frozenset(table for table, found in modes.items() if found == {"append"})


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
    def load(self, data: ValidatedData, project: Project, *, append: Collection[str] | None = None) -> LoadSummary:
        """Load ``data`` in one transaction, logging what changed; replaced tables are swapped, appended merged.

        ``append`` names the tables to merge into the store by key; by default
        those fed by the project's ``mode = "append"`` sources
        (:func:`append_tables`). A merged result that breaks the schema raises
        :class:`~knowdo.errors.SchemaError` and leaves the store as it was.
        """
        appended = append_tables(project, data.sources) if append is None else frozenset(append)
        unknown = sorted(set(appended) - set(TABLES))
        if unknown:
            raise StoreError(f"cannot append to {unknown}: not canonical tables; known: {', '.join(TABLES)}")
        fingerprint = sorted((s.table, s.label, s.sha256 or "") for s in data.sources)
        unchanged = fingerprint == self._last_fingerprint()
        con = self._con
        loaded_at = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        try:
            con.execute("BEGIN TRANSACTION")
            load_id = int(con.execute(  # type: ignore[index]
                "SELECT greatest((SELECT coalesce(max(load_id), 0) FROM provenance), "
                "(SELECT coalesce(max(load_id), 0) FROM loads)) + 1").fetchone()[0])
            before = self._stored_tables()
            after = self._final_tables(before, data, project, appended)
            changes = compare_tables(before, after)
            for name in LOAD_ORDER:
                self._replace_table(TABLES[name], after.get(name), project)
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
        return LoadSummary(load_id, loaded_at, data.row_counts(), tuple(files), unchanged, changes,
                           tuple(name for name in LOAD_ORDER if name in appended))

    def preview(self, data: ValidatedData, project: Project, *, append: Collection[str] | None = None
                ) -> ChangeSummary:
        """What :meth:`load` would change, without writing (works on a read-only store)."""
        appended = append_tables(project, data.sources) if append is None else frozenset(append)
        before = self._stored_tables()
        return compare_tables(before, self._final_tables(before, data, project, appended))

    def _stored_tables(self) -> dict[str, pd.DataFrame]:
        return {name: self.table(name) for name in LOAD_ORDER if self.has_table(name)}

    def _final_tables(self, before: dict[str, pd.DataFrame], data: ValidatedData, project: Project,
                      appended: frozenset[str]) -> dict[str, pd.DataFrame]:
        """The tables the load leaves: the pull, with appended tables merged into the stored ones and re-checked.

        Every table goes through validation again, not only the merged ones:
        a replaced table (sites) must still hold what kept rows refer to.
        """
        if not appended or not any(name in before for name in appended):
            return dict(data.tables)  # nothing stored to merge with: the pull, already validated, is the result
        merged = merge_tables(before, data.tables, appended)
        sources = [RawSource(name, self.path, frame, None,
                             origin=f"{name} (stored rows merged with this load)" if name in appended else
                             f"{name} (this load)")
                   for name, frame in merged.items()]
        return validate_sources(sources, project).tables

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
