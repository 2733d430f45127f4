"""Run the episode table and the panel on the engine where the data live: DuckDB, PostgreSQL or Spark.

A project whose canonical tables sit in a warehouse (PostgreSQL) or a
cluster (Spark) names that engine in ``[engine]`` of ``knowdo.toml``; the
episode and panel queries (:mod:`knowdo.store.engine_panel`, written once in
Ibis) then run there, and only the panel, one row per facility x month x
stratum, and the episode table come back. They are written into the
project's DuckDB store, so every analysis reads them exactly as when the
panel is built locally by :func:`knowdo.store.build_panel`.

Connection URLs carry credentials, so they are read from the environment
variable that ``url_env`` names, never from the project folder.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import ibis
import ibis.expr.datatypes as dtypes
import pandas as pd
import pyarrow as pa
from ibis.common.exceptions import TableNotFound

from knowdo.config import EngineSettings, Project
from knowdo.errors import ConfigError, ParameterError, StoreError
from knowdo.schema import PANEL_COLUMNS, TABLES
from knowdo.store.database import Store
from knowdo.store.engine_panel import CanonicalTables, episodes_expr, panel_expr

PanelSource = Literal["auto", "persons", "aggregates"]
PANEL_SOURCES: tuple[str, ...] = get_args(PanelSource)
IBIS_TYPES = {"string": "string", "integer": "int64", "float": "float64", "date": "date"}
REQUIRED_TABLES = ("sites", "persons", "encounters", "measures", "rollout", "population", "costs")
SPARK_MASTER = "local[*]"  # Spark's own default for a single machine: one worker thread per core
EPISODE_DATES = ("screen_date", "start_date", "last_contact_date", "followup_date")
POSTGRES_SCHEMES = re.compile(r"^postgresql(\+\w+)?://")  # SQLAlchemy-style spellings of the same URL
EPISODE_FLAGS = ("responded", "remitted", "deteriorated")


def _check_source(source: str) -> None:
    if source not in PANEL_SOURCES:
        raise ParameterError(f"source={source!r} is not known; use one of {', '.join(PANEL_SOURCES)}")


def canonical_schema(name: str, project: Project) -> ibis.Schema:
    """The Ibis schema of a canonical table (with the project's equity columns on ``persons``)."""
    if name not in TABLES:
        raise ParameterError(f"no canonical table {name!r}; tables: {', '.join(TABLES)}")
    table = TABLES[name]
    fields = {c.name: IBIS_TYPES[c.type] for c in table.columns}
    if table.open_columns:
        fields.update({s.name: "string" for s in project.strata})
    return ibis.schema(fields)


def _arrow(frame: pd.DataFrame, schema: ibis.Schema, name: str) -> pa.Table:
    arrays = []
    for column, dtype in schema.items():
        if column not in frame.columns:
            raise ParameterError(f"table {name!r} has no column {column!r}; it needs {', '.join(schema.names)}")
        values = frame[column]
        target = dtypes.dtype(dtype).to_pyarrow()
        if target == pa.date32():
            values = pd.to_datetime(values)
        arrays.append(pa.array(values, from_pandas=True).cast(target))
    return pa.table(arrays, names=list(schema.names))


def upload_tables(
    backend: ibis.BaseBackend,
    frames: Mapping[str, pd.DataFrame],
    project: Project,
    *,
    temp: bool = False,
    database: str | None = None,
) -> None:
    """Create the canonical tables on ``backend`` from data frames, with the canonical column types.

    For moving a project's data to a warehouse or a cluster (and for tests);
    an existing table of the same name is replaced. ``temp=True`` keeps them
    for this connection only (on Spark: temporary views, since Ibis cannot
    create temporary Spark tables).
    """
    options = {"database": database} if database else {}
    for name, frame in frames.items():
        schema = canonical_schema(name, project)
        data = _arrow(frame, schema, name)
        if temp and backend.name == "pyspark":
            # Ibis hands Spark a pandas frame, where a missing float would arrive as NaN (a value to Spark, not
            # NULL); Python objects keep None as NULL
            rows = pd.DataFrame({c: pd.Series(data[c].to_pylist(), dtype=object) for c in schema.names})
            backend.create_view(name, ibis.memtable(rows, schema=schema), overwrite=True, **options)
        else:
            backend.create_table(name, data, schema=schema, overwrite=True, temp=temp, **options)


def engine_tables(
    backend: ibis.BaseBackend, *, tables: Mapping[str, str] | None = None, database: str | None = None
) -> CanonicalTables:
    """The canonical tables on ``backend``; ``tables`` maps canonical names to the engine's own names."""
    names = dict(tables or {})
    strange = sorted(set(names) - set(TABLES))
    if strange:
        raise ParameterError(f"tables= names {strange}, which are not canonical tables; known: {', '.join(TABLES)}")

    def table(name: str) -> ibis.Table | None:
        # asking for each table rather than listing them: Ibis 12's DuckDB list_tables fails on DuckDB 2
        try:
            return backend.table(names.get(name, name), database=database)
        except TableNotFound:
            return None

    found = {name: table(name) for name in (*REQUIRED_TABLES, "aggregates")}
    missing = [names.get(n, n) for n in REQUIRED_TABLES if found[n] is None]
    if missing:
        where = f" in {database!r}" if database else ""
        raise StoreError(f"{backend.name}: tables {missing} are missing{where}; load the canonical tables there "
                         "first, or map their names in [engine.tables]")
    return CanonicalTables(**found)


def _source(t: CanonicalTables, source: str) -> str:
    if source != "auto":
        return source
    if int(t.encounters.count().to_pandas()) > 0:
        return "persons"
    if t.aggregates is not None and int(t.aggregates.count().to_pandas()) > 0:
        return "aggregates"
    return "persons"


def _conform_panel(frame: pd.DataFrame) -> pd.DataFrame:
    """Give the engine's result the panel's column types, whatever its driver returned."""
    frame = frame.copy()
    for column in PANEL_COLUMNS:
        values = frame[column.name]
        if column.type == "date":
            frame[column.name] = pd.to_datetime(values).astype("datetime64[us]")
        elif column.type == "integer":
            frame[column.name] = values.astype("Int64") if values.isna().any() else values.astype("int64")
        elif column.type == "float":
            frame[column.name] = values.astype("float64")
        else:
            frame[column.name] = values.astype("str").where(values.notna(), None)
    key = ["site_id", "period", "dimension", "stratum"]
    return frame.sort_values(key, kind="stable").reset_index(drop=True)


@dataclass(frozen=True)
class EngineResult:
    """What an engine computed: the panel (sorted by its key), the episode table and the source used.

    ``episodes`` is empty for an aggregate source, which has no person-level data.
    """

    panel: pd.DataFrame
    episodes: pd.DataFrame
    source: str
    engine: str


def compute_on_engine(
    backend: ibis.BaseBackend,
    *,
    project: Project,
    tables: Mapping[str, str] | None = None,
    database: str | None = None,
    source: PanelSource = "auto",
) -> EngineResult:
    """Compute the episode table and the panel on ``backend``, materialising the episodes there once.

    The same rows and values as :func:`knowdo.store.build_panel` on the same
    canonical tables. ``source='auto'`` uses the encounters when there are
    any, else the aggregate counts; ``tables`` maps canonical names to the
    engine's own table names; ``database`` is the PostgreSQL schema or Spark
    database holding them.
    """
    _check_source(source)
    t = engine_tables(backend, tables=tables, database=database)
    used = _source(t, source)
    if used == "aggregates":
        panel = _conform_panel(backend.execute(panel_expr(t, project, source=used)))
        return EngineResult(panel, pd.DataFrame(), used, backend.name)
    # the episodes feed three counts and the episode table: a temporary table (or a cached Spark frame) on the engine
    with episodes_expr(t, project).cache() as episodes:
        panel = _conform_panel(backend.execute(panel_expr(t, project, source=used, episodes=episodes)))
        frame = _conform_episodes(backend.execute(episodes.order_by(["person_id", "episode_no"])))
    return EngineResult(panel, frame, used, backend.name)


def panel_on_engine(
    backend: ibis.BaseBackend,
    *,
    project: Project,
    tables: Mapping[str, str] | None = None,
    database: str | None = None,
    source: PanelSource = "auto",
) -> pd.DataFrame:
    """The analysis panel computed on ``backend`` (see :func:`compute_on_engine`), sorted by its key."""
    return compute_on_engine(backend, project=project, tables=tables, database=database, source=source).panel


def episodes_on_engine(
    backend: ibis.BaseBackend,
    *,
    project: Project,
    tables: Mapping[str, str] | None = None,
    database: str | None = None,
) -> pd.DataFrame:
    """The episode table computed on ``backend`` (one row per positive screen), sorted by person and episode."""
    t = engine_tables(backend, tables=tables, database=database)
    return _conform_episodes(backend.execute(episodes_expr(t, project).order_by(["person_id", "episode_no"])))


def _conform_episodes(frame: pd.DataFrame) -> pd.DataFrame:
    """Give the engine's episodes the store's column types (Spark numbers episodes with 32-bit integers)."""
    frame = frame.astype({"episode_no": "int64", "sessions": "int64", "baseline_phq9": "float64",
                          "followup_phq9": "float64", "late_followup_phq9": "float64"})
    for column in EPISODE_DATES:
        frame[column] = pd.to_datetime(frame[column]).astype("datetime64[us]")
    for column in EPISODE_FLAGS:  # unknown when there is no follow-up score
        frame[column] = frame[column].astype("boolean")
    return frame.reset_index(drop=True)


def connect_engine(project: Project) -> ibis.BaseBackend:
    """Connect to the engine named in the project's ``[engine]`` section (DuckDB store when there is none)."""
    settings = project.engine or EngineSettings()
    if settings.kind == "duckdb":
        path = settings.path or project.store_path
        if not Path(path).exists():
            raise StoreError(f"{path}: no DuckDB file to compute the panel in; load the project first")
        return ibis.duckdb.connect(str(path), read_only=True)
    if settings.kind == "postgres":
        variable = settings.url_env or ""
        url = os.environ.get(variable)
        if not url:
            raise ConfigError(f"[engine] url_env names {variable!r}, but that environment variable is not set; "
                              "set it to the PostgreSQL URL, e.g. postgresql://user:password@host:5432/database")
        try:
            return ibis.connect(POSTGRES_SCHEMES.sub("postgres://", url, count=1))
        except Exception as exc:  # the driver's own error class differs by version; report it at this boundary
            host = url.split("@")[-1]
            raise StoreError(f"[engine] cannot connect to PostgreSQL at {host}: {type(exc).__name__}: {exc}") from None
    return ibis.pyspark.connect(_spark_session(settings))


def _spark_session(settings: EngineSettings) -> object:
    try:  # an optional extra (a JVM and several hundred MB): imported only when a project asks for Spark
        from pyspark.sql import SparkSession
    except ImportError:
        raise ConfigError("[engine] kind 'spark' needs PySpark: pip install 'knowdo[spark]' (and Java 17+)") from None
    builder = SparkSession.builder.master(settings.master or SPARK_MASTER).appName("knowdo")
    # Arrow moves data between pandas and the JVM without a Python worker per row; [engine.conf] may override it
    builder = builder.config("spark.sql.execution.arrow.pyspark.enabled", "true")
    for key, value in settings.conf.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def build_panel_on_engine(store: Store, project: Project, backend: ibis.BaseBackend | None = None) -> str:
    """Compute episodes and panel on the project's engine and write both into ``store``; return the source used.

    The counterpart of :func:`knowdo.store.build_panel` for ``[engine]``
    projects: afterwards :func:`knowdo.store.read_panel` and
    :func:`knowdo.store.read_episodes` read the engine's results.
    """
    settings = project.engine or EngineSettings()
    backend = backend or connect_engine(project)
    result = compute_on_engine(backend, project=project, tables=settings.tables, database=settings.schema)
    con = store.connection
    registered = ["engine_panel"]
    con.register("engine_panel", result.panel)
    try:
        store.execute("CREATE OR REPLACE TABLE panel AS SELECT * REPLACE (CAST(period AS DATE) AS period, "
                      "CAST(first_treated AS DATE) AS first_treated) FROM engine_panel")
        if result.source == "persons":
            registered.append("engine_episodes")
            con.register("engine_episodes", result.episodes)
            dates = ", ".join(f"CAST({c} AS DATE) AS {c}" for c in EPISODE_DATES)
            store.execute(f"CREATE OR REPLACE TABLE episodes AS SELECT * REPLACE ({dates}) FROM engine_episodes")
    finally:
        for name in registered:
            con.unregister(name)
    return result.source
