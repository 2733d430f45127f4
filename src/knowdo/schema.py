"""The canonical tables, defined once.

Every other part of knowdo reads these definitions: validation
(:mod:`knowdo.ingest.validate`) checks data against them, the store creates
its DuckDB tables from them, and the data dictionary in ``docs/`` is generated
from them (``knowdo dictionary``). Equity stratifier columns of ``persons`` are
project-specific and come from ``knowdo.toml`` (see :mod:`knowdo.config`), so
they are not listed here.

The analysis panel's columns are defined here too (:data:`PANEL_COLUMNS`),
because the store builds it and every analysis reads it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

ColumnType = Literal["string", "integer", "float", "date"]

ENCOUNTER_TYPES = ("screen", "assess", "session", "referral", "follow-up")
PROVIDER_TYPES = ("specialist", "gp", "nurse", "lay_worker")
SITE_LEVELS = ("national", "region", "district", "facility")
URBANICITY = ("urban", "rural")
ROLLOUT_KINDS = ("intervention", "strategy")
COST_CATEGORIES = ("implementation", "delivery")
AGGREGATE_INDICATORS = (
    "screened",
    "positive",
    "started",
    "adequate",
    "responded",
    "remitted",
    "effective",
    "sessions",
)

# Item ranges and totals of the instruments the measures table accepts.
# PHQ-9/PHQ-2/GAD-7: items 0-3, totals are item sums (Kroenke & Spitzer scoring).
# AIM/IAM/FIM: 4 items on 1-5, score is the item mean (Weiner et al. 2017).
# WHODAS 2.0 12-item simple scoring: items 1-5 (none..extreme), total 12-60.


@dataclass(frozen=True)
class Instrument:
    name: str
    n_items: int
    item_min: int
    item_max: int
    total_min: float
    total_max: float
    scoring: Literal["sum", "mean"]


INSTRUMENTS: dict[str, Instrument] = {
    i.name: i
    for i in (
        Instrument("PHQ-9", 9, 0, 3, 0, 27, "sum"),
        Instrument("PHQ-2", 2, 0, 3, 0, 6, "sum"),
        Instrument("GAD-7", 7, 0, 3, 0, 21, "sum"),
        Instrument("AIM", 4, 1, 5, 1, 5, "mean"),
        Instrument("IAM", 4, 1, 5, 1, 5, "mean"),
        Instrument("FIM", 4, 1, 5, 1, 5, "mean"),
        Instrument("WHODAS-12", 12, 1, 5, 12, 60, "sum"),
    )
}
MAX_ITEMS = max(i.n_items for i in INSTRUMENTS.values())
ITEM_COLUMNS = tuple(f"item_{k}" for k in range(1, MAX_ITEMS + 1))


@dataclass(frozen=True)
class Column:
    name: str
    type: ColumnType
    description: str
    required: bool = True
    allowed: tuple[str, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None


@dataclass(frozen=True)
class ForeignKey:
    column: str
    table: str
    target: str


@dataclass(frozen=True)
class Table:
    name: str
    grain: str
    description: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    foreign_keys: tuple[ForeignKey, ...] = ()
    date_columns_in_window: tuple[str, ...] = ()
    open_columns: bool = False  # persons: equity columns come from the project file

    def column(self, name: str) -> Column:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(f"table {self.name!r} has no column {name!r}")

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def required_columns(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.required)


def _items() -> tuple[Column, ...]:
    return tuple(
        Column(name, "integer", "item score (range by instrument)", required=False)
        for name in ITEM_COLUMNS
    )


SITES = Table(
    name="sites",
    grain="one row per facility or area",
    description="Facilities and the areas that contain them (a district is a site with level 'district').",
    columns=(
        Column("site_id", "string", "site identifier"),
        Column("name", "string", "display name", required=False),
        Column("parent_id", "string", "the containing area's site_id (empty at the top)", required=False),
        Column("level", "string", "level in the hierarchy", allowed=SITE_LEVELS),
        Column("urbanicity", "string", "urban or rural setting", required=False, allowed=URBANICITY),
        Column(
            "catchment_population",
            "integer",
            "adults in the catchment area",
            required=False,
            minimum=0,
            maximum=1e9,
        ),
    ),
    key=("site_id",),
    foreign_keys=(ForeignKey("parent_id", "sites", "site_id"),),
)

PERSONS = Table(
    name="persons",
    grain="one row per person",
    description="People who had any contact with the programme, with their equity stratifiers "
    "(the stratifier columns are declared in knowdo.toml [equity.*]).",
    columns=(
        Column("person_id", "string", "pseudonymous person identifier"),
        Column("home_site_id", "string", "facility the person is registered at"),
        Column("birth_year", "integer", "year of birth", required=False, minimum=1900, maximum=2100),
    ),
    key=("person_id",),
    foreign_keys=(ForeignKey("home_site_id", "sites", "site_id"),),
    open_columns=True,
)

PROVIDERS = Table(
    name="providers",
    grain="one row per provider",
    description="Delivery agents: specialists, GPs, nurses and lay workers.",
    columns=(
        Column("provider_id", "string", "provider identifier"),
        Column("site_id", "string", "facility where the provider works"),
        Column("cadre", "string", "provider type", allowed=PROVIDER_TYPES),
        Column("trained_date", "date", "date trained in the intervention", required=False),
        Column("left_date", "date", "date the provider left", required=False),
    ),
    key=("provider_id",),
    foreign_keys=(ForeignKey("site_id", "sites", "site_id"),),
    date_columns_in_window=("trained_date", "left_date"),
)

ENCOUNTERS = Table(
    name="encounters",
    grain="one row per contact",
    description="Contacts between a person and the service.",
    columns=(
        Column("encounter_id", "string", "encounter identifier"),
        Column("person_id", "string", "who"),
        Column("site_id", "string", "where"),
        Column("date", "date", "when"),
        Column("type", "string", "kind of contact", allowed=ENCOUNTER_TYPES),
        Column("provider_type", "string", "cadre of the provider", required=False, allowed=PROVIDER_TYPES),
        Column("provider_id", "string", "provider seen", required=False),
        Column("intervention", "string", "intervention delivered (e.g. PST)", required=False),
        Column("session_number", "integer", "1-based session count", required=False, minimum=1, maximum=1000),
        Column("fidelity", "float", "share of protocol components delivered", required=False, minimum=0, maximum=1),
    ),
    key=("encounter_id",),
    foreign_keys=(
        ForeignKey("person_id", "persons", "person_id"),
        ForeignKey("site_id", "sites", "site_id"),
        ForeignKey("provider_id", "providers", "provider_id"),
    ),
    date_columns_in_window=("date",),
)

MEASURES = Table(
    name="measures",
    grain="one row per completed instrument",
    description="Scores from PHQ-9, PHQ-2, GAD-7, WHODAS-12 (persons) and AIM/IAM/FIM (providers).",
    columns=(
        Column("measure_id", "string", "measure identifier"),
        Column("person_id", "string", "respondent, for patient-reported instruments", required=False),
        Column("provider_id", "string", "respondent, for AIM/IAM/FIM", required=False),
        Column("site_id", "string", "where it was completed"),
        Column("encounter_id", "string", "encounter it belongs to", required=False),
        Column("date", "date", "when"),
        Column("instrument", "string", "instrument name", allowed=tuple(INSTRUMENTS)),
        Column("total", "float", "total (sum) or mean score, by instrument", required=False),
        *_items(),
    ),
    key=("measure_id",),
    foreign_keys=(
        ForeignKey("person_id", "persons", "person_id"),
        ForeignKey("provider_id", "providers", "provider_id"),
        ForeignKey("site_id", "sites", "site_id"),
        ForeignKey("encounter_id", "encounters", "encounter_id"),
    ),
    date_columns_in_window=("date",),
)

ROLLOUT = Table(
    name="rollout",
    grain="one row per site x intervention or strategy x start",
    description="When each site started (and stopped) the intervention and each implementation "
    "strategy (named with ERIC terms).",
    columns=(
        Column("site_id", "string", "site"),
        Column("kind", "string", "the intervention itself or a supporting strategy", allowed=ROLLOUT_KINDS),
        Column("name", "string", "intervention name or ERIC strategy name"),
        Column("start", "date", "first day"),
        Column("end", "date", "last day of support (empty if ongoing)", required=False),
    ),
    key=("site_id", "kind", "name", "start"),
    foreign_keys=(ForeignKey("site_id", "sites", "site_id"),),
    date_columns_in_window=("start",),
)

POPULATION = Table(
    name="population",
    grain="one row per site x month x stratum",
    description="Denominators: adults in the catchment and the estimated prevalence of need. "
    "dimension 'all' / stratum 'all' holds the total.",
    columns=(
        Column("site_id", "string", "site"),
        Column("period", "date", "first day of the month"),
        Column("dimension", "string", "equity dimension, or 'all'"),
        Column("stratum", "string", "level of the dimension, or 'all'"),
        Column("population", "integer", "adults in the catchment", minimum=0, maximum=1e9),
        Column("prevalence", "float", "estimated proportion with the condition", required=False, minimum=0, maximum=1),
    ),
    key=("site_id", "period", "dimension", "stratum"),
    foreign_keys=(ForeignKey("site_id", "sites", "site_id"),),
    date_columns_in_window=("period",),
)

AGGREGATES = Table(
    name="aggregates",
    grain="one row per site x month x indicator x stratum",
    description="Counts for aggregate-only sources (DHIS2 data values).",
    columns=(
        Column("site_id", "string", "site"),
        Column("period", "date", "first day of the month"),
        Column("indicator", "string", "cascade indicator", allowed=AGGREGATE_INDICATORS),
        Column("dimension", "string", "equity dimension, or 'all'"),
        Column("stratum", "string", "level of the dimension, or 'all'"),
        Column("value", "integer", "count", minimum=0, maximum=1e9),
    ),
    key=("site_id", "period", "indicator", "dimension", "stratum"),
    foreign_keys=(ForeignKey("site_id", "sites", "site_id"),),
    date_columns_in_window=("period",),
)

COSTS = Table(
    name="costs",
    grain="one row per site x month x cost item",
    description="Implementation and delivery costs.",
    columns=(
        Column("site_id", "string", "site"),
        Column("period", "date", "first day of the month"),
        Column("item", "string", "cost item (e.g. training, supervision, lay worker stipends)"),
        Column("category", "string", "implementation or delivery", allowed=COST_CATEGORIES),
        Column("amount", "float", "amount", minimum=0, maximum=1e12),
        Column("currency", "string", "ISO 4217 code", required=False),
    ),
    key=("site_id", "period", "item"),
    foreign_keys=(ForeignKey("site_id", "sites", "site_id"),),
    date_columns_in_window=("period",),
)

TABLES: dict[str, Table] = {
    t.name: t for t in (SITES, PERSONS, PROVIDERS, ENCOUNTERS, MEASURES, ROLLOUT, POPULATION, AGGREGATES, COSTS)
}

# Load order: a table comes after every table its foreign keys point to.
LOAD_ORDER: tuple[str, ...] = (
    "sites",
    "persons",
    "providers",
    "encounters",
    "measures",
    "rollout",
    "population",
    "aggregates",
    "costs",
)


@dataclass(frozen=True)
class PanelColumn:
    name: str
    type: ColumnType
    description: str


PANEL_KEY = ("site_id", "period", "dimension", "stratum")

# Cascade counts are attributed to the month of the episode's positive
# screen, so each stage is a subset of the one before it within a row
# (screened >= positive >= started >= adequate >= effective).
PANEL_COLUMNS: tuple[PanelColumn, ...] = (
    PanelColumn("site_id", "string", "facility"),
    PanelColumn("district_id", "string", "the facility's parent area"),
    PanelColumn("period", "date", "first day of the month"),
    PanelColumn("dimension", "string", "equity dimension, or 'all'"),
    PanelColumn("stratum", "string", "level of the dimension, or 'all'"),
    PanelColumn("population", "integer", "adults in the catchment"),
    PanelColumn("need", "float", "estimated adults with depression (population x prevalence)"),
    PanelColumn("screened", "integer", "people screened (PHQ-9) this month"),
    PanelColumn("positive", "integer", "of those, screened positive (PHQ-9 >= threshold)"),
    PanelColumn("started", "integer", "of those, started treatment within the start window"),
    PanelColumn("adequate", "integer", "of those, received >= the adequate number of sessions"),
    PanelColumn("followed_up", "integer", "of those who started, with a follow-up PHQ-9"),
    PanelColumn("responded", "integer", "of those who started, follow-up PHQ-9 <= half of baseline"),
    PanelColumn("remitted", "integer", "of those who started, follow-up PHQ-9 below the remission cut-off"),
    PanelColumn("effective", "integer", "adequate and responded (effective coverage numerator)"),
    PanelColumn("sessions", "integer", "treatment sessions delivered this month"),
    PanelColumn("fidelity_sum", "float", "sum of session fidelity scores this month"),
    PanelColumn("fidelity_n", "integer", "sessions with a fidelity score this month"),
    PanelColumn("cost", "float", "implementation + delivery cost this month (site totals, 'all' rows only)"),
    PanelColumn("treated", "integer", "1 if the site was delivering the intervention this month"),
    PanelColumn("first_treated", "date", "month the site's intervention started (empty if never)"),
    PanelColumn("event_time", "integer", "months since the site's start (empty if never treated)"),
)
PANEL_COLUMN_NAMES = tuple(c.name for c in PANEL_COLUMNS)
PANEL_COUNT_COLUMNS = (
    "screened",
    "positive",
    "started",
    "adequate",
    "followed_up",
    "responded",
    "remitted",
    "effective",
    "sessions",
)


@dataclass(frozen=True)
class DictionaryRow:
    table: str
    column: str
    type: str
    required: bool
    rule: str
    description: str


def dictionary_rows() -> Iterator[DictionaryRow]:
    """Yield one row per column of every canonical table (for the data dictionary)."""
    for table in TABLES.values():
        for col in table.columns:
            rules: list[str] = []
            if col.name in table.key:
                rules.append("key" if len(table.key) == 1 else f"part of key ({', '.join(table.key)})")
            if col.allowed:
                rules.append("one of " + ", ".join(col.allowed))
            if col.minimum is not None or col.maximum is not None:
                rules.append(f"range [{_fmt(col.minimum)}, {_fmt(col.maximum)}]")
            for fk in table.foreign_keys:
                if fk.column == col.name:
                    rules.append(f"must exist in {fk.table}.{fk.target}")
            if col.name in table.date_columns_in_window:
                rules.append("inside the project window")
            yield DictionaryRow(table.name, col.name, col.type, col.required, "; ".join(rules), col.description)


def _fmt(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:g}"


@dataclass(frozen=True)
class CrossTableRule:
    rule_id: str
    description: str


CROSS_TABLE_RULES: tuple[CrossTableRule, ...] = (
    CrossTableRule("foreign-key", "every referenced person, site, provider and encounter exists"),
    CrossTableRule("date-window", "dates fall inside the project window [project.start, project.end]"),
    CrossTableRule("item-range", "item scores lie in the instrument's range (PHQ-9: 0-3)"),
    CrossTableRule("total-range", "totals lie in the instrument's range (PHQ-9: 0-27)"),
    CrossTableRule("total-equals-items", "when all items are present, the total equals their sum (or mean)"),
    CrossTableRule("duplicate-key", "no two rows share a key"),
    CrossTableRule("rollout-order", "rollout start <= end"),
    CrossTableRule("population-bound", "population >= any count drawn from it (people screened, aggregate counts)"),
    CrossTableRule("cascade-order", "aggregate sub-counts do not exceed their totals (positive <= screened ...)"),
    CrossTableRule("equity-level", "equity stratifiers take a level declared in knowdo.toml"),
    CrossTableRule("respondent", "a measure has a person (patient instruments) or a provider (AIM/IAM/FIM)"),
)

