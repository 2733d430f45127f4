"""Check raw source frames against the canonical schema and type them.

Every rule lives in :mod:`knowdo.schema`; this module only applies them,
vectorised over whole columns, and names each broken rule with the file,
row (spreadsheet numbering: header = 1), column and value. A table gets typed
columns only when it passes; :func:`validate_sources` raises one
:class:`~knowdo.errors.SchemaError` carrying every problem of every file.

Rows that a connector (DHIS2, FHIR, OMOP, REDCap) made have no line in any
file the user could open, so their problems cite the source record instead:
the file or URL, then the record the connector names in an optional
``_source_record`` column (``dataValues[12]``, ``Observation/obs-1``) or,
failing that, the row's key as the source spelled it (``person_id=P1``), and
the field. Connector warnings are kept with the schema's own warnings in
:attr:`ValidatedData.warnings`, never dropped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from knowdo.config import Project
from knowdo.errors import Problem, SchemaError
from knowdo.ingest.canonical import SOURCE_RECORD
from knowdo.ingest.files import RawSource, SourceReader, read_sources
from knowdo.schema import INSTRUMENTS, ITEM_COLUMNS, LOAD_ORDER, TABLES, Column, Table

LISTED_PER_RULE = 20  # rows listed one by one per file, column and rule; the rest are counted
ROW_COLUMN = "_row"
FILE_COLUMN = "_file"
RECORD_COLUMN = "_record_ref"  # where a connector's row came from; None for rows of the user's own files
HIDDEN_COLUMNS = (ROW_COLUMN, FILE_COLUMN, RECORD_COLUMN)


@dataclass
class _Findings:
    problems: list[Problem] = field(default_factory=list)

    def add(self, problem: Problem) -> None:
        self.problems.append(problem)

    def rows(
        self,
        frame: pd.DataFrame,
        mask: np.ndarray | pd.Series,
        *,
        rule: str,
        message: str,
        column: str | None = None,
        value_column: str | None = None,
    ) -> None:
        """Record the rows of ``frame`` where ``mask`` holds (listing the first few)."""
        mask = np.asarray(mask, dtype=bool)
        n_bad = int(mask.sum())
        if n_bad == 0:
            return
        bad = frame.loc[mask].head(LISTED_PER_RULE)
        shown_col = value_column or column
        for _, record in bad.iterrows():
            value = None
            if shown_col is not None and shown_col in record.index:
                value = _show(record[shown_col])
            source_record = record.get(RECORD_COLUMN)
            located = isinstance(source_record, str) and bool(source_record)
            self.add(
                Problem(
                    file=f"{record[FILE_COLUMN]} {source_record}" if located else str(record[FILE_COLUMN]),
                    rule=rule,
                    message=message,
                    row=None if located else int(record[ROW_COLUMN]),
                    column=column,
                    value=value,
                )
            )
        if n_bad > len(bad):
            files = ", ".join(sorted(set(map(str, frame.loc[mask, FILE_COLUMN]))))
            self.add(
                Problem(
                    file=files,
                    rule=rule,
                    message=f"{n_bad - len(bad)} more row(s) break this rule: {message}",
                    column=column,
                    count=n_bad - len(bad),
                )
            )


def _show(value: object) -> str:
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass(frozen=True)
class ValidatedData:
    """Typed canonical tables ready for the store, with the sources they came from."""

    tables: dict[str, pd.DataFrame]
    sources: tuple[RawSource, ...]
    warnings: tuple[Problem, ...] = ()

    def row_counts(self) -> dict[str, int]:
        return {name: len(frame) for name, frame in self.tables.items()}


def read_and_validate(project: Project, *, readers: Mapping[str, SourceReader] | None = None) -> ValidatedData:
    """Read every source of ``project`` and validate it; raise SchemaError on any error.

    ``readers`` adds connectors by source kind (the store's OMOP database readers).
    """
    return validate_sources(read_sources(project, readers=readers), project)


def validate_sources(sources: Iterable[RawSource], project: Project) -> ValidatedData:
    sources = tuple(sources)
    findings = _Findings()
    warnings: list[Problem] = []
    by_table: dict[str, list[pd.DataFrame]] = {}
    for source in sources:
        for problem in source.problems:
            (findings.problems if problem.severity == "error" else warnings).append(problem)
        if source.frame is None:
            continue
        frame = source.frame.copy()
        frame[ROW_COLUMN] = np.arange(2, len(frame) + 2)
        frame[FILE_COLUMN] = source.label
        frame[RECORD_COLUMN] = _source_records(frame, source) if source.origin is not None else None
        by_table.setdefault(source.table, []).append(frame)

    typed: dict[str, pd.DataFrame] = {}
    for name in LOAD_ORDER:
        frames = by_table.get(name)
        if not frames:
            continue
        table = TABLES[name]
        parts = [_type_table(f, table, project, findings, warnings) for f in frames]
        if any(p is None for p in parts):
            continue
        combined = pd.concat([p for p in parts if p is not None], ignore_index=True)
        _check_keys(combined, table, findings)
        typed[name] = combined

    _check_cross_table(typed, project, findings)
    errors = [p for p in findings.problems if p.severity == "error"]
    if errors:
        raise SchemaError(errors)
    clean = {name: frame.drop(columns=list(HIDDEN_COLUMNS)) for name, frame in typed.items()}
    return ValidatedData(clean, sources, tuple(warnings))


def _source_records(frame: pd.DataFrame, source: RawSource) -> pd.Series:
    """Each connector row's source record: the connector's own name for it, else its key as read."""
    if SOURCE_RECORD in frame.columns:
        named = frame[SOURCE_RECORD].astype("string").fillna("").astype(str)
        if (named != "").all():
            return named
    key = [c for c in TABLES[source.table].key if c in frame.columns] if source.table in TABLES else []
    if not key:
        return pd.Series([f"record {i}" for i in range(1, len(frame) + 1)], index=frame.index, dtype=object)
    text = "record " + key[0] + "=" + frame[key[0]].astype("string").fillna("").astype(str)
    for column in key[1:]:
        text = text + ", " + column + "=" + frame[column].astype("string").fillna("").astype(str)
    if SOURCE_RECORD in frame.columns:  # keep the connector's names where it gave them
        named = frame[SOURCE_RECORD].astype("string").fillna("").astype(str)
        text = text.where(named == "", named)
    return text.astype(object)


def expected_columns(table: Table, project: Project) -> list[str]:
    columns = list(table.column_names)
    if table.open_columns:
        columns += [s.name for s in project.strata]
    return columns


def _type_table(
    frame: pd.DataFrame, table: Table, project: Project, findings: _Findings, warnings: list[Problem]
) -> pd.DataFrame | None:
    label = str(frame[FILE_COLUMN].iloc[0]) if len(frame) else "(empty)"
    present = set(frame.columns)
    required = list(table.required_columns)
    if table.open_columns:
        required += [s.name for s in project.strata]
    missing = [c for c in required if c not in present]
    for name in missing:
        findings.add(
            Problem(label, "missing-column", f"required column of table '{table.name}' is missing", column=name)
        )
    if missing:
        return None
    known = set(expected_columns(table, project)) | {*HIDDEN_COLUMNS, SOURCE_RECORD}
    for name in sorted(present - known):
        warnings.append(
            Problem(label, "unknown-column", f"not a column of '{table.name}'; it is ignored", column=name,
                    severity="warning")
        )
    out = pd.DataFrame({c: frame[c].to_numpy() for c in HIDDEN_COLUMNS})
    before = len(findings.problems)
    for column in table.columns:
        raw: pd.Series = (
            frame[column.name] if column.name in present else pd.Series([None] * len(frame), dtype=object)
        )
        out[column.name] = _type_column(frame, raw, column, findings)
    if table.open_columns:
        for stratum in project.strata:
            values = _text(frame[stratum.name])
            bad = values.notna() & ~values.isin(stratum.levels)
            findings.rows(
                frame, bad.to_numpy() | values.isna().to_numpy(), rule="equity-level",
                message=f"'{stratum.name}' must be one of {', '.join(stratum.levels)} (declared in knowdo.toml)",
                column=stratum.name,
            )
            out[stratum.name] = values
    if len(findings.problems) > before:
        return None
    return out


def _text(raw: pd.Series) -> pd.Series:
    values = raw.astype("string").str.strip()
    return values.mask(values == "")


def _type_column(frame: pd.DataFrame, raw: pd.Series, column: Column, findings: _Findings) -> pd.Series:
    text = _text(raw) if raw.dtype == object or pd.api.types.is_string_dtype(raw) else None
    blank = text.isna() if text is not None else raw.isna()
    if column.required:
        findings.rows(frame, blank, rule="required", message="a value is required", column=column.name)
    typed: pd.Series
    if column.type == "string":
        typed = text if text is not None else raw.astype("string")
        if column.allowed:
            bad = typed.notna() & ~typed.isin(column.allowed)
            findings.rows(frame, bad, rule="allowed-values", column=column.name,
                          message=f"must be one of {', '.join(column.allowed)}")
        return typed.astype(object).where(typed.notna(), None)
    if column.type == "date":
        source = text if text is not None else raw
        typed = pd.to_datetime(source, format="%Y-%m-%d", errors="coerce") if text is not None else \
            pd.to_datetime(source, errors="coerce")
        findings.rows(frame, typed.isna() & ~blank, rule="type", column=column.name,
                      message="must be a date written YYYY-MM-DD")
        return typed.astype("datetime64[us]")
    numbers = pd.to_numeric(text if text is not None else raw, errors="coerce")
    not_number = numbers.isna() & ~blank
    if column.type == "integer":
        with np.errstate(invalid="ignore"):
            fractional = numbers.notna() & (np.floor(numbers) != numbers)
        findings.rows(frame, not_number | fractional, rule="type", column=column.name,
                      message="must be a whole number")
        numbers = numbers.where(~fractional)
    else:
        findings.rows(frame, not_number, rule="type", column=column.name, message="must be a number")
    numbers = numbers.astype(float)
    finite = np.isfinite(numbers) | numbers.isna()
    findings.rows(frame, ~finite, rule="range", column=column.name, message="must be a finite number")
    if column.minimum is not None:
        findings.rows(frame, numbers < column.minimum, rule="range", column=column.name,
                      message=f"must be at least {column.minimum:g}")
    if column.maximum is not None:
        findings.rows(frame, numbers > column.maximum, rule="range", column=column.name,
                      message=f"must be at most {column.maximum:g}")
    if column.type == "integer":
        safe = numbers.where(np.isfinite(numbers) & (numbers.abs() < 2**62))
        return safe.astype("Int64")
    return numbers


def _check_keys(frame: pd.DataFrame, table: Table, findings: _Findings) -> None:
    key = list(table.key)
    duplicated = frame.duplicated(subset=key, keep="first").to_numpy()
    findings.rows(frame, duplicated, rule="duplicate-key", column=", ".join(key), value_column=key[0],
                  message=f"another row has the same key ({', '.join(key)})")


def _check_cross_table(typed: dict[str, pd.DataFrame], project: Project, findings: _Findings) -> None:
    for name, frame in typed.items():
        table = TABLES[name]
        for fk in table.foreign_keys:
            target = typed.get(fk.table)
            known = set(target[fk.target].dropna()) if target is not None else set()
            values = frame[fk.column]
            bad = values.notna() & ~values.isin(known)
            findings.rows(frame, bad, rule="foreign-key", column=fk.column,
                          message=f"no such {fk.target} in {fk.table}")
        _check_window(frame, table, project, findings)
    if "measures" in typed:
        _check_scores(typed["measures"], findings)
    if "rollout" in typed:
        rollout = typed["rollout"]
        findings.rows(rollout, rollout["end"].notna() & (rollout["end"] < rollout["start"]), rule="rollout-order",
                      column="end", message="end is before start")
    _check_population_bounds(typed, findings)
    if "aggregates" in typed:
        _check_cascade_order(typed["aggregates"], findings)


def _check_window(frame: pd.DataFrame, table: Table, project: Project, findings: _Findings) -> None:
    start = pd.Timestamp(project.start)
    end = pd.Timestamp(project.end)
    for column in table.date_columns_in_window:
        values = frame[column]
        outside = values.notna() & ((values < start) | (values > end))
        findings.rows(frame, outside, rule="date-window", column=column,
                      message=f"outside the project window {project.start} to {project.end}")


def _check_scores(measures: pd.DataFrame, findings: _Findings) -> None:
    for name, instrument in INSTRUMENTS.items():
        rows = measures["instrument"].eq(name).to_numpy()
        if not rows.any():
            continue
        subset = measures.loc[rows]
        items = [c for c in ITEM_COLUMNS[: instrument.n_items]]
        for column in items:
            values = subset[column].astype(float)
            bad = (values < instrument.item_min) | (values > instrument.item_max)
            findings.rows(subset, bad, rule="item-range", column=column,
                          message=f"{name} items lie in {instrument.item_min}-{instrument.item_max}")
        for column in ITEM_COLUMNS[instrument.n_items :]:
            findings.rows(subset, subset[column].notna(), rule="item-range", column=column,
                          message=f"{name} has only {instrument.n_items} items")
        total = subset["total"].astype(float)
        findings.rows(subset, (total < instrument.total_min) | (total > instrument.total_max), rule="total-range",
                      column="total",
                      message=f"{name} total lies in {instrument.total_min:g}-{instrument.total_max:g}")
        item_values = subset[items].astype(float)
        complete = item_values.notna().all(axis=1)
        scored = item_values.sum(axis=1) if instrument.scoring == "sum" else item_values.mean(axis=1)
        mismatch = complete & total.notna() & ((scored - total).abs() > 0.01)
        findings.rows(subset, mismatch, rule="total-equals-items", column="total",
                      message=f"{name} total must equal the item {instrument.scoring}")
        findings.rows(subset, total.isna() & ~complete, rule="required", column="total",
                      message="a total is required when the items are incomplete")
        provider_rated = name in {"AIM", "IAM", "FIM"}
        respondent = subset["provider_id"] if provider_rated else subset["person_id"]
        who = "provider_id" if provider_rated else "person_id"
        findings.rows(subset, respondent.isna(), rule="respondent", column=who,
                      message=f"{name} needs a {who.replace('_id', '')}")


def _month(values: pd.Series) -> pd.Series:
    return values.dt.to_period("M").dt.to_timestamp()


def _check_population_bounds(typed: dict[str, pd.DataFrame], findings: _Findings) -> None:
    population = typed.get("population")
    if population is None:
        return
    totals = population[(population["dimension"] == "all") & (population["stratum"] == "all")]
    totals = totals.assign(period=_month(totals["period"]))[["site_id", "period", "population"]]
    encounters = typed.get("encounters")
    if encounters is not None:
        screens = encounters[encounters["type"] == "screen"]
        screened = (
            screens.assign(period=_month(screens["date"]))
            .groupby(["site_id", "period"])["person_id"].nunique().rename("screened").reset_index()
        )
        joined = totals.merge(screened, on=["site_id", "period"], how="inner")
        over = joined[joined["screened"] > joined["population"]]
        for _, record in over.head(LISTED_PER_RULE).iterrows():
            findings.add(Problem("population", "population-bound",
                                 f"site {record['site_id']} in {record['period']:%Y-%m}: {record['screened']} people "
                                 f"screened but a population of {record['population']}", column="population"))
    aggregates = typed.get("aggregates")
    if aggregates is not None:
        cells = population.assign(period=_month(population["period"]))
        joined = aggregates.assign(period=_month(aggregates["period"])).merge(
            cells[["site_id", "period", "dimension", "stratum", "population"]],
            on=["site_id", "period", "dimension", "stratum"], how="left")
        people = joined["indicator"] != "sessions"
        findings.rows(joined, people & joined["population"].notna() & (joined["value"] > joined["population"]),
                      rule="population-bound", column="value",
                      message="a count exceeds the population it is drawn from")


CASCADE_PAIRS = (
    ("positive", "screened"),
    ("started", "positive"),
    ("adequate", "started"),
    ("effective", "adequate"),
    ("responded", "started"),
    ("remitted", "started"),
)


def _check_cascade_order(aggregates: pd.DataFrame, findings: _Findings) -> None:
    key = ["site_id", "period", "dimension", "stratum"]
    wide = aggregates.pivot_table(index=key, columns="indicator", values="value", aggfunc="sum")
    rows = aggregates.drop_duplicates(subset=key).set_index(key)[list(HIDDEN_COLUMNS)]
    wide = wide.join(rows).reset_index()
    for sub, total in CASCADE_PAIRS:
        if sub in wide and total in wide:
            bad = wide[sub].notna() & wide[total].notna() & (wide[sub] > wide[total])
            findings.rows(wide, bad, rule="cascade-order", column="value", value_column=sub,
                          message=f"'{sub}' exceeds '{total}' for the same site, month and stratum")

