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
"""

from __future__ import annotations

import datetime as dt
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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


@dataclass(frozen=True)
class Source:
    table: str
    path: Path


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

    @property
    def store_path(self) -> Path:
        return self.root / self.store_name

    @property
    def report_dir(self) -> Path:
        return self.root / "report"

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
        table = item.get("table") if isinstance(item, dict) else None
        path = item.get("path") if isinstance(item, dict) else None
        if table not in TABLES:
            raise ConfigError(f"{where}: source #{i} names table {table!r}; expected one of {', '.join(TABLES)}")
        if not isinstance(path, str) or not path:
            raise ConfigError(f"{where}: source #{i} ({table}) needs a path")
        sources.append(Source(table=table, path=(root / path)))
    return tuple(sources)


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
