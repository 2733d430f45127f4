"""Read an OMOP CDM database (a DuckDB file or a PostgreSQL schema) as text frames for the OMOP connector.

The store is the only code that opens DuckDB, so the database side of the
OMOP connector lives here; the mapping to canonical tables is
:mod:`knowdo.ingest.omop`. Only the columns the mapping uses are read, cast to
text in SQL so the frames look exactly like a CSV export. DuckDB files are
opened read-only; PostgreSQL is read through SQLAlchemy with psycopg, with
the password taken from ``<auth_env>_PASSWORD`` (default
``KNOWDO_OMOP_PASSWORD``) or libpq's own ``PGPASSWORD``/``~/.pgpass``, never
from the project file.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path

import duckdb
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from knowdo.config import Project, Source
from knowdo.errors import ConfigError, Problem, SchemaError
from knowdo.ingest.canonical import CanonicalFrames
from knowdo.ingest.files import SourceReader
from knowdo.ingest.mapping import load_mapping
from knowdo.ingest.omop import OMOP_COLUMNS, ConceptSets, omop_to_canonical


def _select(table: str, present: list[str], schema: str | None, quote: str = '"') -> str:
    wanted = [c for c in OMOP_COLUMNS[table] if c in present]
    columns = ", ".join(f"CAST({quote}{c}{quote} AS VARCHAR) AS {quote}{c}{quote}" for c in wanted)
    name = f"{quote}{schema}{quote}.{quote}{table}{quote}" if schema else f"{quote}{table}{quote}"
    return f"SELECT {columns} FROM {name}"


def read_omop_duckdb(path: str | Path, *, schema: str | None = None) -> dict[str, pd.DataFrame]:
    """The OMOP tables knowdo uses from a DuckDB file (read-only), as text frames; absent tables are left out."""
    file = Path(path)
    if not file.is_file():
        raise SchemaError([Problem(str(file), "file-missing", "no DuckDB file here")])
    try:
        con = duckdb.connect(str(file), read_only=True)
    except duckdb.Error as exc:
        raise SchemaError([Problem(str(file), "file-format", f"cannot be opened as a DuckDB database: {exc}")]) \
            from None
    try:
        found = con.execute(
            "SELECT table_name, column_name FROM information_schema.columns WHERE (? IS NULL OR table_schema = ?)",
            [schema, schema],
        ).fetchall()
        columns: dict[str, list[str]] = {}
        for table, column in found:
            columns.setdefault(str(table).lower(), []).append(str(column).lower())
        frames = {}
        for table in OMOP_COLUMNS:
            if table in columns:
                frames[table] = con.execute(_select(table, columns[table], schema)).df()
        return frames
    except duckdb.Error as exc:
        raise SchemaError([Problem(str(file), "omop-query", f"reading the OMOP tables failed: {exc}")]) from None
    finally:
        con.close()


def read_omop_postgres(url: str, *, schema: str = "public", env_prefix: str = "KNOWDO_OMOP") -> dict[str, pd.DataFrame]:
    """The OMOP tables knowdo uses from a PostgreSQL schema, as text frames."""
    try:
        target = sa.engine.make_url(url)
    except sa.exc.ArgumentError as exc:
        raise ConfigError(f"{url}: not a database URL ({exc})") from None
    if target.drivername in ("postgresql", "postgres"):
        target = target.set(drivername="postgresql+psycopg")
    password = os.environ.get(f"{env_prefix}_PASSWORD")
    if password:
        target = target.set(password=password)
    shown = target.render_as_string(hide_password=True)
    engine = sa.create_engine(target, pool_pre_ping=True)
    try:
        with engine.connect() as con:
            inspector = sa.inspect(con)
            tables = {t.lower() for t in inspector.get_table_names(schema=schema)}
            frames = {}
            for table in OMOP_COLUMNS:
                if table not in tables:
                    continue
                present = [c["name"].lower() for c in inspector.get_columns(table, schema=schema)]
                frames[table] = pd.read_sql_query(sa.text(_select(table, present, schema)), con)
            return frames
    except SQLAlchemyError as exc:
        cause = getattr(exc, "orig", None)
        message = (str(cause if cause is not None else exc).strip().splitlines() or ["(no message)"])[0]
        raise SchemaError([Problem(shown, "omop-connection",
                                   f"reading the OMOP schema '{schema}' failed: {message}; check the URL, that the "
                                   f"server runs, and {env_prefix}_PASSWORD")]) from None
    finally:
        engine.dispose()


def read_omop_source(source: Source, project: Project) -> CanonicalFrames:
    """Read an ``omop-duckdb`` (``path``) or ``omop-postgres`` (``url``, ``schema``) source into canonical frames."""
    out = CanonicalFrames(source.location)
    try:
        mapping = load_mapping(source.mapping, project.root)
        concepts = ConceptSets().extended(source.options.get("concepts"))
        schema = source.options.get("schema")
        if source.kind == "omop-postgres":
            if not source.url:
                raise ConfigError(f"{source.location}: an omop-postgres source needs url = \"postgresql://...\"")
            tables = read_omop_postgres(source.url, schema=str(schema or "public"),
                                        env_prefix=str(source.options.get("auth_env", "KNOWDO_OMOP")))
        else:
            tables = read_omop_duckdb(source.path, schema=str(schema) if schema else None)
    except ConfigError as exc:
        out.problem("mapping", str(exc))
        return out
    except SchemaError as exc:
        out.problems.extend(exc.problems)
        return out
    out.sha256 = _fingerprint(tables)
    out.tables.update(omop_to_canonical(tables, mapping, concepts, project, out))
    return out


def _fingerprint(tables: Mapping[str, pd.DataFrame]) -> str:
    """A digest of the rows read (a database has no file checksum that means the same)."""
    digest = hashlib.sha256()
    for name in sorted(tables):
        digest.update(name.encode())
        digest.update(pd.util.hash_pandas_object(tables[name].fillna(""), index=False).to_numpy().tobytes())
    return digest.hexdigest()


OMOP_READERS: dict[str, SourceReader] = {"omop-duckdb": read_omop_source, "omop-postgres": read_omop_source}


def write_omop_duckdb(tables: Mapping[str, pd.DataFrame], path: str | Path) -> Path:
    """Write OMOP table frames into a new DuckDB file (an exporter, for tests and moving data between systems)."""
    file = Path(path)
    con = duckdb.connect(str(file))
    try:
        for name, frame in tables.items():
            con.register("incoming", frame)
            con.execute(f'CREATE OR REPLACE TABLE "{name}" AS SELECT * FROM incoming')
            con.unregister("incoming")
    finally:
        con.close()
    return file
