"""Read ``knowdo.toml`` into a typed, frozen :class:`Project`.

A project is a folder holding ``knowdo.toml`` and its data files. The file
names the project window, the data sources (one file per canonical table),
the equity strata with their PROGRESS-Plus category and order, the outcome
definitions and the disclosure threshold. Everything downstream receives a
``Project``, never the raw TOML.

Example::

    [project]
    name = "Example district programme"
    start = 2023-01-01
    end = 2025-12-31

    [disclosure]
    threshold = 11

    [outcomes]
    adequate_sessions = 6

    [[sources]]
    table = "sites"
    path = "data/sites.csv"

    [equity.wealth_quintile]
    category = "Socioeconomic status"
    ordered = true
    levels = ["Q1", "Q2", "Q3", "Q4", "Q5"]

An optional ``[engine]`` section computes the episode table and the panel
where the canonical tables live (PostgreSQL or Spark) instead of in the
project's DuckDB store; see ``docs/engines.md``.
"""

from __future__ import annotations

import datetime as dt
import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, cast, get_args

from knowdo.errors import ConfigError
from knowdo.schema import TABLES

CONFIG_NAME = "knowdo.toml"

# PROGRESS-Plus (O'Neill et al., J Clin Epidemiol 2014;67:56-64).
PROGRESS_PLUS = (
    "Place of residence",
    "Race/ethnicity/culture/language",
    "Occupation",
    "Gender/sex",
    "Religion",
    "Education",
    "Socioeconomic status",
    "Social capital",
    "Age",
    "Disability",
    "Sexual orientation",
    "Other",
)


@dataclass(frozen=True)
class Stratum:
    """One equity dimension: a column of ``persons`` and its levels."""

    name: str
    category: str
    ordered: bool
    levels: tuple[str, ...]
    reference: str | None = None  # the advantaged or comparison level, when one is named


@dataclass(frozen=True)
class OutcomeDefinitions:
    """Cascade and outcome cut-offs; defaults follow frameworks.md section 7."""

    positive_threshold: int = 10  # PHQ-9 >= 10 is the usual positive screen (Kroenke 2001)
    adequate_sessions: int = 6  # planned dose of Friendship Bench PST (Chibanda 2016)
    response_fraction: float = 0.5  # response = >= 50% reduction from baseline PHQ-9
    remission_below: int = 5  # remission = PHQ-9 < 5
    start_window_days: int = 90  # treatment start counted if within 90 days of the positive screen
    maintenance_months: int = 6  # RE-AIM maintenance: >= 6 months after support/last contact (Glasgow 2019)


SourceKind = Literal[
    "csv",
    "dhis2-datavalues",
    "dhis2-analytics",
    "dhis2-tracker",
    "fhir-bundle",
    "fhir-bulk",
    "omop-duckdb",
    "omop-postgres",
    "redcap-flat",
    "redcap-eav",
]
SOURCE_KINDS: tuple[str, ...] = get_args(SourceKind)
# How a load treats a source's tables: "replace" swaps the stored table for the pull; "append" merges the
# pull into it by the table's key (new keys added, changed values corrected, keys absent from the pull kept).
LoadMode = Literal["replace", "append"]
LOAD_MODES: tuple[str, ...] = get_args(LoadMode)
# Keys a [[sources]] entry may carry besides kind/table/path/url/mapping; each connector documents its own.
SOURCE_OPTION_KEYS = (
    "org_units",
    "org_unit_levels",
    "dictionary",
    "schema",
    "query",
    "auth_env",
    "timeout",
    "retries",
    "page_size",
    "credentials",
    "concepts",
    "validate",
    "fields",
    "form_status",
)


@dataclass(frozen=True)
class Source:
    """One entry of ``[[sources]]``.

    ``kind = "csv"`` (the default) is one CSV or Parquet file holding one
    canonical ``table``. Every other kind is a connector reading a system's
    own export (``path``) or its live API (``url``) into several canonical
    tables; ``mapping`` names a built-in mapping, a mapping file or an inline
    table (see :mod:`knowdo.ingest.mapping`); ``options`` holds the
    connector's other keys (paths in it are relative to the project folder).
    ``mode`` is how a load treats the tables this source gives: ``"replace"``
    (the default) swaps the stored table for them; ``"append"`` merges them
    into it by the table's key, so a pull of the latest month adds that month
    and keeps the earlier ones (see :meth:`knowdo.store.Store.load`).
    Secrets never go here: API credentials are read from environment
    variables or a user-level file outside the project (``auth_env``,
    ``credentials``).
    """

    table: str
    path: Path
    kind: SourceKind = "csv"
    url: str | None = None
    mapping: str | dict[str, Any] | None = field(default=None, hash=False)
    options: dict[str, Any] = field(default_factory=dict, hash=False)
    mode: LoadMode = "replace"

    @property
    def location(self) -> str:
        """The file or URL, as error messages name it."""
        return self.url if self.url else str(self.path)


EngineKind = Literal["duckdb", "postgres", "spark"]
ENGINE_KINDS: tuple[str, ...] = get_args(EngineKind)
ENGINE_KEYS = ("kind", "url_env", "path", "schema", "master", "tables", "conf")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class EngineSettings:
    """The optional ``[engine]`` section: which engine computes the panel, and where its tables are.

    ``url_env`` names the environment variable holding a PostgreSQL URL
    (the URL, with its password, never goes in the project folder);
    ``path`` is a DuckDB file (default: the project store); ``schema`` is the
    PostgreSQL schema or Spark database holding the canonical tables;
    ``master`` the Spark master URL; ``tables`` renames canonical tables to
    the engine's own names; ``conf`` holds extra Spark settings.
    """

    kind: EngineKind = "duckdb"
    url_env: str | None = None
    path: Path | None = None
    schema: str | None = None
    master: str | None = None
    tables: dict[str, str] = field(default_factory=dict, hash=False)
    conf: dict[str, str] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class Project:
    """A project folder and everything its ``knowdo.toml`` says."""

    root: Path
    name: str
    start: dt.date
    end: dt.date
    sources: tuple[Source, ...]
    strata: tuple[Stratum, ...]
    outcomes: OutcomeDefinitions = field(default_factory=OutcomeDefinitions)
    disclosure_threshold: int = 11  # CMS / PCORnet convention: cells 1-10 not shown (data-standards.md section 7)
    disclosure_rounding: int | None = None
    store_name: str = "knowdo.duckdb"
    engine: EngineSettings | None = None  # None: the panel is built in the project store (DuckDB)

    @property
    def store_path(self) -> Path:
        return self.root / self.store_name

    @property
    def report_dir(self) -> Path:
        return self.root / "report"

    @property
    def starts_complete_through(self) -> dt.date:
        """First day of the last month whose treatment starts are fully observed.

        A screen counts as started if treatment begins within ``start_window_days``; screens in the last
        ``ceil(start_window_days / 30)`` months have not had that whole window inside the data, so effect
        estimates on starts stop before them.
        """
        months = -(-self.outcomes.start_window_days // 30)  # 90 days -> 3 months
        last = self.end.year * 12 + self.end.month - 1 - months
        return dt.date(last // 12, last % 12 + 1, 1)

    def stratum(self, name: str) -> Stratum:
        for s in self.strata:
            if s.name == name:
                return s
        known = ", ".join(s.name for s in self.strata)
        raise ConfigError(f"no equity dimension {name!r} in {CONFIG_NAME}; known: {known}")


def load_project(path: str | Path) -> Project:
    """Read a project folder (or its ``knowdo.toml``) into a :class:`Project`."""
    path = Path(path)
    file = path if path.is_file() else path / CONFIG_NAME
    if not file.exists():
        raise ConfigError(f"{file}: not found. A project folder needs a {CONFIG_NAME} (try `knowdo demo`).")
    try:
        raw = tomllib.loads(file.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{file}: not valid TOML: {exc}") from None
    return parse_project(raw, file.parent, where=str(file))


def parse_project(raw: dict[str, Any], root: Path, *, where: str = CONFIG_NAME) -> Project:
    project = _section(raw, "project", where)
    start = _date(project, "start", where)
    end = _date(project, "end", where)
    if start > end:
        raise ConfigError(f"{where}: [project] start {start} is after end {end}")
    disclosure = raw.get("disclosure", {})
    threshold = disclosure.get("threshold", 11)
    rounding = disclosure.get("round_to")
    if not isinstance(threshold, int) or threshold < 1:
        raise ConfigError(f"{where}: [disclosure] threshold must be a positive integer, saw {threshold!r}")
    if rounding is not None and (not isinstance(rounding, int) or rounding < 1):
        raise ConfigError(f"{where}: [disclosure] round_to must be a positive integer, saw {rounding!r}")
    return Project(
        root=root,
        name=str(project.get("name", root.name)),
        start=start,
        end=end,
        sources=_sources(raw.get("sources", []), root, where),
        strata=_strata(raw.get("equity", {}), where),
        outcomes=_outcomes(raw.get("outcomes", {}), where),
        disclosure_threshold=threshold,
        disclosure_rounding=rounding,
        store_name=str(project.get("store", "knowdo.duckdb")),
        engine=_engine(raw.get("engine"), root, where),
    )


def _section(raw: dict[str, Any], name: str, where: str) -> dict[str, Any]:
    value = raw.get(name)
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: missing [{name}] section")
    return value


def _date(section: dict[str, Any], key: str, where: str) -> dt.date:
    value = section.get(key)
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    raise ConfigError(f"{where}: [project] {key} must be a date such as 2024-01-01, saw {value!r}")


def _sources(items: Any, root: Path, where: str) -> tuple[Source, ...]:
    if not isinstance(items, list):
        raise ConfigError(f"{where}: [[sources]] must be an array of tables")
    sources = []
    for i, item in enumerate(items, start=1):
        if not isinstance(item, dict):
            raise ConfigError(f"{where}: source #{i} must be a table")
        kind = item.get("kind", "csv")
        if kind not in SOURCE_KINDS:
            raise ConfigError(f"{where}: source #{i} has kind {kind!r}; expected one of {', '.join(SOURCE_KINDS)}")
        source = _file_source(item, i, root, where) if kind == "csv" else \
            _connector_source(item, kind, i, root, where)
        sources.append(replace(source, mode=_load_mode(item, i, where)))
    return tuple(sources)


def _load_mode(item: dict[str, Any], i: int, where: str) -> LoadMode:
    mode = item.get("mode", "replace")
    if mode not in LOAD_MODES:
        raise ConfigError(
            f"{where}: source #{i} has mode {mode!r}; expected one of {', '.join(LOAD_MODES)} "
            '("append" merges each pull into the stored tables by key; "replace", the default, swaps them)'
        )
    return cast(LoadMode, mode)


def _file_source(item: dict[str, Any], i: int, root: Path, where: str) -> Source:
    table = item.get("table")
    path = item.get("path")
    if table not in TABLES:
        raise ConfigError(f"{where}: source #{i} names table {table!r}; expected one of {', '.join(TABLES)}")
    if not isinstance(path, str) or not path:
        raise ConfigError(f"{where}: source #{i} ({table}) needs a path")
    return Source(table=table, path=(root / path))


def _connector_source(item: dict[str, Any], kind: SourceKind, i: int, root: Path, where: str) -> Source:
    known = {"kind", "path", "url", "mapping", "table", "mode", *SOURCE_OPTION_KEYS}
    unknown = set(item) - known
    if unknown:
        raise ConfigError(f"{where}: source #{i} ({kind}) has unknown keys {sorted(unknown)}; known: {sorted(known)}")
    path, url = item.get("path"), item.get("url")
    if (path is None) == (url is None):
        raise ConfigError(f"{where}: source #{i} ({kind}) needs exactly one of path (an export) or url (a server)")
    if path is not None and (not isinstance(path, str) or not path):
        raise ConfigError(f"{where}: source #{i} ({kind}) path must be a non-empty string, saw {path!r}")
    if url is not None and (not isinstance(url, str) or not url.startswith(("http://", "https://", "postgresql"))):
        raise ConfigError(f"{where}: source #{i} ({kind}) url must start with http(s):// or postgresql, saw {url!r}")
    if isinstance(url, str) and "@" in url.split("//", 1)[-1].split("/", 1)[0] and ":" in url.split("//", 1)[-1]:
        userinfo = url.split("//", 1)[-1].split("@", 1)[0]
        if ":" in userinfo:
            raise ConfigError(
                f"{where}: source #{i} ({kind}) url carries a password; remove it and set it in the environment "
                "variable named by auth_env (secrets never go in the project folder)"
            )
    mapping = item.get("mapping")
    if mapping is not None and not isinstance(mapping, str | dict):
        raise ConfigError(f"{where}: source #{i} ({kind}) mapping must be a name, a file or a table, saw {mapping!r}")
    options = {k: v for k, v in item.items() if k in SOURCE_OPTION_KEYS}
    query = options.get("query", {})
    if not isinstance(query, dict):
        raise ConfigError(f"{where}: source #{i} ({kind}) query must be a table of request parameters")
    secrets = sorted(k for k in query if k.lower() in {"token", "password", "api_key", "access_token"})
    if secrets:
        raise ConfigError(f"{where}: source #{i} ({kind}) query carries {secrets}; secrets never go in the project "
                          "folder: set them in the environment variables named by auth_env")
    return Source(
        table=str(item.get("table", "")),
        path=root / path if isinstance(path, str) else root,
        kind=kind,
        url=url,
        mapping=mapping,
        options=options,
    )


def _strata(section: Any, where: str) -> tuple[Stratum, ...]:
    if not isinstance(section, dict):
        raise ConfigError(f"{where}: [equity] must be a table of dimensions")
    strata = []
    for name, spec in section.items():
        if not isinstance(spec, dict):
            raise ConfigError(f"{where}: [equity.{name}] must be a table")
        category = spec.get("category", "Other")
        if category not in PROGRESS_PLUS:
            raise ConfigError(
                f"{where}: [equity.{name}] category {category!r} is not a PROGRESS-Plus category; "
                f"use one of: {', '.join(PROGRESS_PLUS)}"
            )
        levels = spec.get("levels")
        if not isinstance(levels, list) or not levels or not all(isinstance(v, str) for v in levels):
            raise ConfigError(f"{where}: [equity.{name}] levels must be a non-empty list of strings")
        reference = spec.get("reference")
        if reference is not None and reference not in levels:
            raise ConfigError(f"{where}: [equity.{name}] reference {reference!r} is not one of its levels")
        strata.append(
            Stratum(
                name=name,
                category=category,
                ordered=bool(spec.get("ordered", False)),
                levels=tuple(levels),
                reference=reference,
            )
        )
    return tuple(strata)


def _outcomes(section: Any, where: str) -> OutcomeDefinitions:
    if not isinstance(section, dict):
        raise ConfigError(f"{where}: [outcomes] must be a table")
    defaults = OutcomeDefinitions()
    known = set(defaults.__dataclass_fields__)
    unknown = set(section) - known
    if unknown:
        raise ConfigError(f"{where}: [outcomes] has unknown keys {sorted(unknown)}; known: {sorted(known)}")
    values: dict[str, Any] = {}
    for key, value in section.items():
        expected = type(getattr(defaults, key))
        if expected is float and isinstance(value, int):
            value = float(value)
        if not isinstance(value, expected) or isinstance(value, bool):
            raise ConfigError(f"{where}: [outcomes] {key} must be {expected.__name__}, saw {value!r}")
        values[key] = value
    return OutcomeDefinitions(**values)


def _engine(section: Any, root: Path, where: str) -> EngineSettings | None:
    if section is None:
        return None
    if not isinstance(section, dict):
        raise ConfigError(f"{where}: [engine] must be a table")
    unknown = set(section) - set(ENGINE_KEYS)
    if "url" in unknown:
        raise ConfigError(f"{where}: [engine] has a url; put the connection URL in an environment variable and name "
                          "that variable with url_env (credentials never go in the project folder)")
    if unknown:
        raise ConfigError(f"{where}: [engine] has unknown keys {sorted(unknown)}; known: {list(ENGINE_KEYS)}")
    kind = section.get("kind", "duckdb")
    if kind not in ENGINE_KINDS:
        raise ConfigError(f"{where}: [engine] kind {kind!r} is not known; use one of {', '.join(ENGINE_KINDS)}")
    for key in ("url_env", "path", "schema", "master"):
        value = section.get(key)
        if value is not None and (not isinstance(value, str) or not value):
            raise ConfigError(f"{where}: [engine] {key} must be a non-empty string, saw {value!r}")
    url_env = section.get("url_env")
    if url_env is not None and not _ENV_NAME.match(url_env):
        raise ConfigError(f"{where}: [engine] url_env must name an environment variable (such as KNOWDO_PG_URL), "
                          f"saw {url_env!r}")
    if kind == "postgres" and url_env is None:
        raise ConfigError(f"{where}: [engine] kind 'postgres' needs url_env, the name of the environment variable "
                          "holding the connection URL")
    tables = section.get("tables", {})
    if not isinstance(tables, dict) or not all(isinstance(v, str) and v for v in tables.values()):
        raise ConfigError(f"{where}: [engine.tables] must map canonical table names to table names, saw {tables!r}")
    strange = sorted(set(tables) - set(TABLES))
    if strange:
        raise ConfigError(f"{where}: [engine.tables] names {strange}, which are not canonical tables; "
                          f"known: {', '.join(TABLES)}")
    conf = section.get("conf", {})
    if not isinstance(conf, dict):
        raise ConfigError(f"{where}: [engine.conf] must be a table of engine settings, saw {conf!r}")
    path = section.get("path")
    return EngineSettings(
        kind=kind,
        url_env=url_env,
        path=root / path if isinstance(path, str) else None,
        schema=section.get("schema"),
        master=section.get("master"),
        tables={str(k): str(v) for k, v in tables.items()},
        conf={str(k): str(v) for k, v in conf.items()},
    )
