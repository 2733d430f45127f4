"""Source mappings: how a system's local codes become knowdo's canonical values.

Routine systems name things locally: a DHIS2 instance has its own data
element and categoryOptionCombo UIDs, a tracker program its own attribute
UIDs, a REDCap project its own field names. The user writes one mapping (a
TOML file, or a table inline in ``knowdo.toml``) that says what each code
means; every connector reads the same :class:`SourceMapping`::

    extends = "chis-mental-health"          # start from a ready mapping (optional)

    [data_elements]                          # aggregate sources: data element -> cascade indicator
    vXiy7FHtwNM = { indicator = "screened", period_type = "Monthly" }

    [category_option_combos]                 # disaggregation -> equity strata (one per dimension)
    T9NHeIM5Awi = { age_band = "20-39", sex = "female" }

    [sites]                                  # org-unit level number -> canonical level
    levels = { "1" = "national", "2" = "district", "4" = "facility" }

    [strata.sex]                             # person-level sources: source field -> equity level
    field = "gender"
    values = { female = "female", male = "male", F = "female", M = "male" }
    default = "unknown"

    [strata.age_band]
    field = "age"
    bands = [[10, 14, "10-14"], [15, 19, "15-19"], [20, 39, "20-39"], [40, 200, "40+"]]

    [encounters]                             # kind of contact, by source code (stage, visit type ...)
    default = "assess"
    first = "screen"
    by_code = { MhGapFollow = "follow-up" }

    [instruments]                            # source codes carrying scores: "PHQ-9" (total) or "PHQ-9:3" (item 3)
    MhPhq9Total = "PHQ-9"

    [providers]
    cadres = { "community health worker" = "lay_worker" }

A ready mapping for the WHO/DHIS2 CHIS "CH - Mental health" module
(:data:`CHIS_MENTAL_HEALTH`) carries the module's real categoryOptionCombo
UIDs (package CH_MEN 1.0.0, DHIS2 2.36.3) and maps its two monthly age x sex
counts onto the cascade: *people assessed for MNS disorders* (CH041a) as
``screened`` and *people with MNS disorders referred* (CH042a) as ``positive``
(detected). The module has no treatment-start, follow-up or outcome count,
and its "receiving services" count (CH043a) is yearly, so it is left out:
aggregates are monthly.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args

import pandas as pd

from knowdo.config import Stratum
from knowdo.errors import ConfigError, Problem
from knowdo.ingest.dhis2_periods import PeriodType
from knowdo.schema import AGGREGATE_INDICATORS, ENCOUNTER_TYPES, INSTRUMENTS, PROVIDER_TYPES, SITE_LEVELS

BUILTIN_NAMES = ("chis-mental-health",)


@dataclass(frozen=True)
class IndicatorRule:
    """A data element counted as a cascade indicator, reported with one period type."""

    indicator: str
    period_type: PeriodType | None = None


@dataclass(frozen=True)
class StratumRule:
    """How a source field becomes the level of one equity dimension."""

    source_field: str
    values: Mapping[str, str] = field(default_factory=dict)
    bands: tuple[tuple[float, float, str], ...] = ()
    default: str | None = None

    def apply(self, raw: pd.Series) -> pd.Series:
        """Map a column of source values to levels (missing where no rule applies and no default)."""
        text = raw.astype("string").str.strip()
        text = text.mask(text == "")
        if self.bands:
            numbers = pd.to_numeric(text, errors="coerce")
            out = pd.Series(pd.NA, index=raw.index, dtype="string")
            for low, high, level in self.bands:
                out = out.mask(numbers.ge(low) & numbers.le(high) & out.isna(), level)
        elif self.values:
            lookup = {str(k): v for k, v in self.values.items()}
            lowered = {str(k).lower(): v for k, v in self.values.items()}
            out = text.map(lambda v: lookup.get(v, lowered.get(v.lower())) if isinstance(v, str) else pd.NA)
            out = out.astype("string")
        else:
            out = text
        if self.default is not None:
            out = out.fillna(self.default)
        return out


@dataclass(frozen=True)
class EncounterRule:
    """Kind of contact: by source code, else ``first`` for a person's first contact, else ``default``."""

    default: str = "assess"
    first: str | None = None
    by_code: Mapping[str, str] = field(default_factory=dict)

    def apply(self, codes: pd.Series, person: pd.Series, date: pd.Series) -> pd.Series:
        out = codes.astype("string").map(lambda c: self.by_code.get(c) if isinstance(c, str) else None)
        out = out.astype("string")
        if self.first is not None:
            order = pd.DataFrame({"person": person.to_numpy(), "date": date.to_numpy()}, index=codes.index)
            rank = order.sort_values(["person", "date"], kind="stable").groupby("person").cumcount()
            is_first = rank.reindex(codes.index).eq(0)
            out = out.mask(out.isna() & is_first, self.first)
        return out.fillna(self.default)


@dataclass(frozen=True)
class SourceMapping:
    """Everything a user says about a source's local codes (see the module docstring)."""

    data_elements: Mapping[str, IndicatorRule] = field(default_factory=dict)
    category_option_combos: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    site_levels: Mapping[int, str] = field(default_factory=dict)
    strata: Mapping[str, StratumRule] = field(default_factory=dict)
    encounters: EncounterRule = field(default_factory=EncounterRule)
    instruments: Mapping[str, tuple[str, int | None]] = field(default_factory=dict)
    cadres: Mapping[str, str] = field(default_factory=dict)
    name: str = "(inline)"

    def merged(self, other: SourceMapping) -> SourceMapping:
        """``other``'s entries on top of this mapping's (used by ``extends``)."""
        return SourceMapping(
            data_elements={**self.data_elements, **other.data_elements},
            category_option_combos={**self.category_option_combos, **other.category_option_combos},
            site_levels={**self.site_levels, **other.site_levels},
            strata={**self.strata, **other.strata},
            encounters=other.encounters if other.encounters != EncounterRule() else self.encounters,
            instruments={**self.instruments, **other.instruments},
            cadres={**self.cadres, **other.cadres},
            name=other.name,
        )

    def instrument_of(self, code: str) -> tuple[str, int | None] | None:
        return self.instruments.get(code)


# --------------------------------------------------------------------------- the CHIS ready mapping
# categoryOptionCombo UIDs of the CHIS "CH - Mental health" module (dhis2-metadata/CHIS_AGG,
# archive/2.36/CH_MEN_AGG-Mental_health/metadata.json, package CH_MEN 1.0.0).
CHIS_AGE_SEX_COMBOS: dict[str, dict[str, str]] = {
    "J2HRxxUq632": {"age_band": "10-14", "sex": "female"},
    "dpc9zLMZLoO": {"age_band": "10-14", "sex": "male"},
    "bnkF8HpCLrr": {"age_band": "10-14", "sex": "other"},
    "Gl6J1SvoDLu": {"age_band": "10-14", "sex": "unknown"},
    "HfBU9IXI8nC": {"age_band": "15-19", "sex": "female"},
    "mZHpRuybIb7": {"age_band": "15-19", "sex": "male"},
    "hGKVjwQgNmF": {"age_band": "15-19", "sex": "other"},
    "TGh2DOwS78m": {"age_band": "15-19", "sex": "unknown"},
    "T9NHeIM5Awi": {"age_band": "20-39", "sex": "female"},
    "TUUDNrDX7L7": {"age_band": "20-39", "sex": "male"},
    "i26arNx8diL": {"age_band": "20-39", "sex": "other"},
    "VuhsizhFD3N": {"age_band": "20-39", "sex": "unknown"},
    "xOXudYm03M6": {"age_band": "40-49", "sex": "female"},
    "V1MPpCmUf4t": {"age_band": "40-49", "sex": "male"},
    "CxCCd2VR6Ma": {"age_band": "40-49", "sex": "other"},
    "zv3falymbYk": {"age_band": "40-49", "sex": "unknown"},
    "rRj4IINDJym": {"age_band": "50-59", "sex": "female"},
    "he4BYAzAAfX": {"age_band": "50-59", "sex": "male"},
    "yaXUisNGWTK": {"age_band": "50-59", "sex": "other"},
    "Uu9Vjflg2RS": {"age_band": "50-59", "sex": "unknown"},
    "DO5tKTy9Vzx": {"age_band": "60-69", "sex": "female"},
    "JbMZodPV4Wc": {"age_band": "60-69", "sex": "male"},
    "Za5p7lF0u5N": {"age_band": "60-69", "sex": "other"},
    "Nh9SoBhTSEk": {"age_band": "60-69", "sex": "unknown"},
    "vszxYqG88e4": {"age_band": "70+", "sex": "female"},
    "w7NYLKLaWuB": {"age_band": "70+", "sex": "male"},
    "tf3Twz5Pify": {"age_band": "70+", "sex": "other"},
    "VeTqbZqqyKD": {"age_band": "70+", "sex": "unknown"},
    "R3JoapCwkz4": {"age_band": "unknown", "sex": "female"},
    "pbUGL3XO9V8": {"age_band": "unknown", "sex": "male"},
    "wf9RqLihjvC": {"age_band": "unknown", "sex": "other"},
    "fRWOnmsMPFp": {"age_band": "unknown", "sex": "unknown"},
}
CHIS_CONDITION_COMBOS: dict[str, dict[str, str]] = {
    "VTe0SNuv6jk": {"condition": "depression"},
    "nXWMtk83RLE": {"condition": "psychoses"},
    "AZ9bVQprSoM": {"condition": "child_adolescent_behavioural"},
    "w3VM2Y8mBAU": {"condition": "dementia"},
    "OZkT3eiXGxj": {"condition": "substance_use"},
    "di98cQfF6NQ": {"condition": "suicide_self_harm"},
}
CHIS_PREGNANCY_COMBOS: dict[str, dict[str, str]] = {
    "qtdaBskpvJU": {"pregnancy": "pregnant"},
    "dJJC0KelmNa": {"pregnancy": "postpartum"},
}
DEFAULT_COMBO = "HllvX50cXC0"  # the "default" categoryOptionCombo, the same UID on every instance (docs, CHIS)

# Equity dimensions the CHIS mapping produces; declare them in knowdo.toml [equity.*] to see them in the panel.
CHIS_STRATA: dict[str, tuple[str, ...]] = {
    "age_band": ("10-14", "15-19", "20-39", "40-49", "50-59", "60-69", "70+", "unknown"),
    "sex": ("female", "male", "other", "unknown"),
}

CHIS_MENTAL_HEALTH = SourceMapping(
    data_elements={
        "vXiy7FHtwNM": IndicatorRule("screened", "Monthly"),  # CH041a People assessed for MNS disorders
        "kDMCxCZkyjp": IndicatorRule("positive", "Monthly"),  # CH042a People with MNS disorders referred
    },
    category_option_combos={
        DEFAULT_COMBO: {},
        **CHIS_AGE_SEX_COMBOS,
        **CHIS_CONDITION_COMBOS,
        **CHIS_PREGNANCY_COMBOS,
    },
    name="chis-mental-health",
)

BUILTIN: dict[str, SourceMapping] = {"chis-mental-health": CHIS_MENTAL_HEALTH}


# --------------------------------------------------------------------------- reading mappings
def load_mapping(spec: str | Mapping[str, Any] | None, root: Path, *, where: str = "knowdo.toml") -> SourceMapping:
    """A mapping from a built-in name, a TOML file (relative to ``root``) or an inline table."""
    if spec is None:
        return SourceMapping()
    if isinstance(spec, str):
        if spec in BUILTIN:
            return BUILTIN[spec]
        file = root / spec
        if not file.is_file():
            raise ConfigError(
                f"{where}: mapping {spec!r} is neither a built-in ({', '.join(BUILTIN_NAMES)}) nor a file "
                f"(looked for {file})"
            )
        try:
            raw = tomllib.loads(file.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{file}: not valid TOML: {exc}") from None
        return parse_mapping(raw, root=file.parent, where=str(file))
    if isinstance(spec, Mapping):
        return parse_mapping(spec, root=root, where=where)
    raise ConfigError(f"{where}: mapping must be a name, a file path or a table, saw {spec!r}")


_KNOWN_KEYS = {
    "extends", "data_elements", "category_option_combos", "sites", "strata", "encounters", "instruments",
    "providers",
}


def parse_mapping(raw: Mapping[str, Any], *, root: Path, where: str) -> SourceMapping:
    unknown = set(raw) - _KNOWN_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown mapping keys {sorted(unknown)}; known: {sorted(_KNOWN_KEYS)}")
    base = SourceMapping()
    if "extends" in raw:
        base = load_mapping(_str(raw["extends"], "extends", where), root, where=where)
    mapping = SourceMapping(
        data_elements=_data_elements(raw.get("data_elements", {}), where),
        category_option_combos=_combos(raw.get("category_option_combos", {}), where),
        site_levels=_site_levels(raw.get("sites", {}), where),
        strata=_strata(raw.get("strata", {}), where),
        encounters=_encounters(raw.get("encounters"), where),
        instruments=_instruments(raw.get("instruments", {}), where),
        cadres=_cadres(raw.get("providers", {}), where),
        name=where,
    )
    return base.merged(mapping)


def _str(value: Any, key: str, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: mapping key {key} must be a non-empty string, saw {value!r}")
    return value


def _table(value: Any, key: str, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: mapping [{key}] must be a table, saw {value!r}")
    return value


def _one_of(value: Any, allowed: Sequence[str], key: str, where: str) -> str:
    if value not in allowed:
        raise ConfigError(f"{where}: mapping {key} = {value!r}; expected one of {', '.join(allowed)}")
    return str(value)


def _data_elements(section: Any, where: str) -> dict[str, IndicatorRule]:
    out: dict[str, IndicatorRule] = {}
    for uid, spec in _table(section, "data_elements", where).items():
        if isinstance(spec, str):
            spec = {"indicator": spec}
        spec = _table(spec, f"data_elements.{uid}", where)
        indicator = _one_of(spec.get("indicator"), AGGREGATE_INDICATORS, f"data_elements.{uid}.indicator", where)
        period_type = spec.get("period_type")
        if period_type is not None:
            period_type = _one_of(period_type, PERIOD_TYPES, f"data_elements.{uid}.period_type", where)
        out[str(uid)] = IndicatorRule(indicator, period_type)  # type: ignore[arg-type]
    return out


def _combos(section: Any, where: str) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for uid, dims in _table(section, "category_option_combos", where).items():
        dims = _table(dims, f"category_option_combos.{uid}", where)
        for dim, level in dims.items():
            if not isinstance(level, str) or not level or dim == "all":
                raise ConfigError(
                    f"{where}: category_option_combos.{uid}.{dim} must be a level name (not 'all'), saw {level!r}"
                )
        out[str(uid)] = {str(k): str(v) for k, v in dims.items()}
    return out


def _site_levels(section: Any, where: str) -> dict[int, str]:
    levels = _table(section, "sites", where).get("levels", {})
    out: dict[int, str] = {}
    for number, level in _table(levels, "sites.levels", where).items():
        try:
            key = int(number)
        except ValueError:
            raise ConfigError(f"{where}: sites.levels keys are level numbers such as \"4\", saw {number!r}") from None
        out[key] = _one_of(level, SITE_LEVELS, f"sites.levels.{number}", where)
    return out


def _strata(section: Any, where: str) -> dict[str, StratumRule]:
    out: dict[str, StratumRule] = {}
    for name, spec in _table(section, "strata", where).items():
        spec = _table(spec, f"strata.{name}", where)
        source_field = _str(spec.get("field"), f"strata.{name}.field", where)
        values = _table(spec.get("values", {}), f"strata.{name}.values", where)
        bands: list[tuple[float, float, str]] = []
        for band in spec.get("bands", []):
            if (
                not isinstance(band, list) or len(band) != 3 or not isinstance(band[2], str)
                or not all(isinstance(x, int | float) and not isinstance(x, bool) for x in band[:2])
            ):
                raise ConfigError(f"{where}: strata.{name}.bands entries are [low, high, \"level\"], saw {band!r}")
            bands.append((float(band[0]), float(band[1]), band[2]))
        default = spec.get("default")
        if default is not None:
            default = _str(default, f"strata.{name}.default", where)
        out[str(name)] = StratumRule(source_field, {str(k): str(v) for k, v in values.items()}, tuple(bands), default)
    return out


def _encounters(section: Any, where: str) -> EncounterRule:
    if section is None:
        return EncounterRule()
    spec = _table(section, "encounters", where)
    default = _one_of(spec.get("default", "assess"), ENCOUNTER_TYPES, "encounters.default", where)
    first = spec.get("first")
    if first is not None:
        first = _one_of(first, ENCOUNTER_TYPES, "encounters.first", where)
    by_code = {
        str(k): _one_of(v, ENCOUNTER_TYPES, f"encounters.by_code.{k}", where)
        for k, v in _table(spec.get("by_code", {}), "encounters.by_code", where).items()
    }
    return EncounterRule(default, first, by_code)


def parse_instrument(value: Any, key: str, where: str) -> tuple[str, int | None]:
    text = _str(value, key, where)
    name, _, item = text.partition(":")
    _one_of(name, tuple(INSTRUMENTS), key, where)
    if not item:
        return name, None
    if not item.isdigit() or not 1 <= int(item) <= INSTRUMENTS[name].n_items:
        raise ConfigError(f"{where}: {key} = {text!r}: {name} items are 1-{INSTRUMENTS[name].n_items}")
    return name, int(item)


def _instruments(section: Any, where: str) -> dict[str, tuple[str, int | None]]:
    return {
        str(code): parse_instrument(value, f"instruments.{code}", where)
        for code, value in _table(section, "instruments", where).items()
    }


def _cadres(section: Any, where: str) -> dict[str, str]:
    cadres = _table(_table(section, "providers", where).get("cadres", {}), "providers.cadres", where)
    return {str(k).lower(): _one_of(v, PROVIDER_TYPES, f"providers.cadres.{k}", where) for k, v in cadres.items()}


PERIOD_TYPES: tuple[str, ...] = get_args(PeriodType)


# --------------------------------------------------------------------------- applying mappings to persons
def person_strata(
    attributes: pd.DataFrame, strata: Sequence[Stratum], mapping: SourceMapping, *, label: str
) -> tuple[pd.DataFrame, list[Problem]]:
    """One column per project equity dimension, from the source's person attributes.

    A dimension with no rule in the mapping is read from a source attribute of
    the same name, if there is one; otherwise it is a problem (the persons
    table needs every declared dimension).
    """
    out = pd.DataFrame(index=attributes.index)
    problems: list[Problem] = []
    for stratum in strata:
        rule = mapping.strata.get(stratum.name)
        if rule is None and stratum.name in attributes:
            rule = StratumRule(stratum.name)
        if rule is None:
            problems.append(Problem(
                label, "stratum-unmapped",
                f"knowdo.toml declares equity dimension '{stratum.name}' but the source mapping has no "
                f"[strata.{stratum.name}] rule naming the source field that holds it",
                column=stratum.name,
            ))
            continue
        if rule.source_field not in attributes:
            problems.append(Problem(
                label, "stratum-unmapped",
                f"[strata.{stratum.name}] reads field '{rule.source_field}', which this source does not provide; "
                f"it provides: {', '.join(map(str, attributes.columns))}",
                column=stratum.name,
            ))
            continue
        out[stratum.name] = rule.apply(attributes[rule.source_field])
    return out, problems


def age_in_years(birth: pd.Series, at: pd.Series) -> pd.Series:
    """Completed years between two date columns (missing where either is missing)."""
    b = pd.to_datetime(birth.astype("string").str.slice(0, 10), format="%Y-%m-%d", errors="coerce")
    a = pd.to_datetime(at.astype("string").str.slice(0, 10), format="%Y-%m-%d", errors="coerce")
    years = a.dt.year - b.dt.year
    before_birthday = (a.dt.month < b.dt.month) | ((a.dt.month == b.dt.month) & (a.dt.day < b.dt.day))
    return (years - before_birthday.astype("Int64")).astype("Int64")


def cadre_of(text: str | None, mapping: SourceMapping) -> str | None:
    """Provider type from a free-text specialty: the mapping first, then common words."""
    if text is None:
        return None
    key = text.strip().lower()
    if key in mapping.cadres:
        return mapping.cadres[key]
    for words, cadre in _CADRE_WORDS:
        if any(w in key for w in words):
            return cadre
    return None


# Common English specialty words; anything else needs [providers.cadres] in the mapping.
_CADRE_WORDS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("psychiatr", "psycholog", "specialist"), "specialist"),
    (("general practi", "family medicine", "family practice", "physician", "doctor"), "gp"),
    (("nurse", "nursing", "midwi"), "nurse"),
    (("community health", "lay ", "lay_", "peer", "volunteer", "health worker", "counsellor", "counselor"),
     "lay_worker"),
)


def iso_date(values: pd.Series) -> pd.Series:
    """Text dates or timestamps (``2024-01-09T09:10:00Z``, ``2024-01-09 00:00:00``) as ``YYYY-MM-DD`` text.

    Unparseable values are kept as they were, so validation reports them.
    """
    text = values.astype("string").str.strip()
    head = text.str.slice(0, 10)
    ok = head.str.fullmatch(r"\d{4}-\d{2}-\d{2}").fillna(False)
    return head.where(ok, text)
