"""DHIS2 → canonical tables: data values, analytics, the org-unit tree and tracker records.

Aggregate data (``/api/dataValueSets`` as JSON or positional CSV, and
``/api/analytics`` responses in both ``metaData`` shapes) become the
``aggregates`` table: each data element the mapping names becomes a cascade
indicator, each categoryOptionCombo a set of equity levels, and the counts are
summed to the month and to one row per (dimension, level) plus the ``all``
total, because the panel's grain is site x month x one stratum at a time.
The organisation-unit hierarchy becomes ``sites``; tracker exports become
``persons``, ``encounters`` and ``measures`` (:mod:`knowdo.ingest.dhis2_tracker`).

The checks DHIS2 itself applies on import are applied here too and reported
per data value (file or URL, record, field): UID format, period syntax and
period type against the data set's, value type (whole, non-negative counts),
categoryOptionCombos the mapping knows, duplicates. Blank and soft-deleted
values are skipped, as DHIS2 does not store them.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from knowdo.config import Project, Source
from knowdo.errors import ConfigError, Problem, SchemaError
from knowdo.ingest.canonical import SOURCE_RECORD, CanonicalFrames, sha256_bytes, sha256_files, text_frame
from knowdo.ingest.dhis2_http import (
    DEFAULT_PAGE_SIZE,
    analytics,
    data_value_sets,
    dhis2_client,
    organisation_unit_levels,
    organisation_units,
)
from knowdo.ingest.dhis2_http import tracked_entities as http_tracked_entities
from knowdo.ingest.dhis2_periods import PeriodFormatError, parse_period
from knowdo.ingest.dhis2_tracker import tracked_entities, tracker_list_key, tracker_tables
from knowdo.ingest.mapping import SourceMapping, load_mapping
from knowdo.ingest.remote import DEFAULT_RETRIES, DEFAULT_TIMEOUT, ApiClient

UID_PATTERN = r"[A-Za-z][A-Za-z0-9]{10}"  # DHIS2 maintenance docs: 11 characters, first a letter
LISTED = 20  # problems listed one by one per rule; the rest are counted

# Positional CSV columns of /api/dataValueSets.csv (the header row is ignored, as DHIS2 does on import).
CSV_COLUMNS = (
    "dataElement", "period", "orgUnit", "categoryOptionCombo", "attributeOptionCombo", "value",
    "storedBy", "lastUpdated", "comment", "followup", "deleted",
)
VALUE_COLUMNS = ("dataElement", "period", "orgUnit", "categoryOptionCombo", "attributeOptionCombo", "value", "deleted")


# --------------------------------------------------------------------------- reading payloads
def data_values_from_json(payload: Any, out: CanonicalFrames) -> pd.DataFrame:
    """The ``dataValues`` of a dataValueSet (export or import body) as a long text frame.

    Set-level ``period``/``orgUnit``/``attributeOptionCombo`` fill values that do not repeat them.
    """
    if not isinstance(payload, dict):
        out.problem("dhis2-shape", "a dataValueSet is a JSON object with a 'dataValues' list",
                    value=type(payload).__name__)
        return _empty_values()
    if "dataValueSets" in payload and "dataValues" not in payload:  # several sets in one export
        sets = payload.get("dataValueSets")
        if not isinstance(sets, list):
            out.problem("dhis2-shape", "'dataValueSets' must be a list of dataValueSets")
            return _empty_values()
        frames = [data_values_from_json(s, out) for s in sets]
        return pd.concat(frames, ignore_index=True) if frames else _empty_values()
    values = payload.get("dataValues")
    if values is None:
        values = []
    if not isinstance(values, list):
        out.problem("dhis2-shape", "'dataValues' must be a list", column="dataValues", value=type(values).__name__)
        return _empty_values()
    good = [v for v in values if isinstance(v, dict)]
    for i, v in enumerate(values):
        if not isinstance(v, dict) and len(out.problems) < LISTED:
            out.problem("dhis2-shape", "each data value must be a JSON object", record=f"dataValues[{i}]",
                        value=v)
    frame = pd.DataFrame.from_records(good) if good else pd.DataFrame()
    frame["_record"] = [i for i, v in enumerate(values) if isinstance(v, dict)]
    frame.attrs["record"] = frame.attrs["location"] = "dataValues[{}]"
    for key in ("period", "orgUnit", "attributeOptionCombo"):
        default = payload.get(key)
        if default is not None and not isinstance(default, str):
            out.problem("dhis2-shape", f"the set-level '{key}' must be a string", column=key, value=default)
            default = None
        if key not in frame:
            frame[key] = default
        elif default is not None:
            frame[key] = frame[key].where(frame[key].notna(), default)
    return _normalise_values(frame)


def data_values_from_csv(text: str | bytes, out: CanonicalFrames) -> pd.DataFrame:
    """Rows of a positional dataValueSets CSV (header ignored) as a long text frame.

    Read with pyarrow's multi-threaded CSV reader into Arrow-backed strings,
    so ten million data values fit in memory and parse in seconds.
    """
    data = text.encode("utf-8") if isinstance(text, str) else text
    if not data.strip():
        out.problem("empty-file", "the CSV has no header and no rows")
        return _empty_values()
    first = data.split(b"\n", 1)[0]
    try:
        header = next(csv.reader([first.decode("utf-8-sig")]), [])
    except (csv.Error, UnicodeDecodeError) as exc:
        out.problem("file-format", f"the header line cannot be read: {exc}")
        return _empty_values()
    width = len(header)
    if width < 6:
        out.problem("dhis2-csv-columns", "a dataValueSets CSV has at least 6 positional columns (dataelement, "
                    "period, orgunit, catoptcombo, attroptcombo, value)", row=1,
                    value=first[:60].decode(errors="replace"))
        return _empty_values()
    names = [*CSV_COLUMNS, *(f"extra_{i}" for i in range(width - len(CSV_COLUMNS)))][:width]
    ragged: list[int] = []

    def skip(row: pa_csv.InvalidRow) -> str:
        ragged.append(row.number if row.number is not None else -1)
        return "skip"

    try:
        table = pa_csv.read_csv(
            io.BytesIO(data),
            read_options=pa_csv.ReadOptions(column_names=names, skip_rows=1, block_size=1 << 24),
            parse_options=pa_csv.ParseOptions(invalid_row_handler=skip),
            convert_options=pa_csv.ConvertOptions(column_types={n: pa.string() for n in names},
                                                  strings_can_be_null=False, quoted_strings_can_be_null=False),
        )
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        out.problem("file-format", f"cannot be parsed as CSV: {exc}")
        return _empty_values()
    for line in ragged[:LISTED]:
        out.problem("dhis2-csv-columns", f"the row does not have the header's {width} positional columns",
                    row=line if line > 0 else None)
    if ragged:
        return _empty_values()
    keep = [n for n in VALUE_COLUMNS if n in names]
    columns = {}
    for name in keep:
        column = pc.utf8_trim_whitespace(table.column(name))
        columns[name] = column if name == "value" else column.dictionary_encode()
    frame = pa.table(columns).to_pandas(types_mapper={pa.string(): pd.StringDtype("pyarrow")}.get)
    frame["_record"] = np.arange(2, len(frame) + 2)
    frame.attrs["record"] = "row {}"
    frame.attrs["location"] = "line {}"  # the file's line number (header = 1), as an editor shows it
    return _normalise_values(frame)


def data_values_from_analytics(payload: Any, out: CanonicalFrames) -> pd.DataFrame:
    """Rows of an ``/api/analytics`` response as data values (columns found by header name).

    ``dx`` items written as data element operands (``de.coc``) carry their
    categoryOptionCombo; a ``co`` dimension column does too; otherwise the
    value is the data element total (default combo).
    """
    if not isinstance(payload, dict) or not isinstance(payload.get("headers"), list) \
            or not isinstance(payload.get("rows"), list):
        out.problem("dhis2-shape", "an analytics response is a JSON object with 'headers' and 'rows' lists")
        return _empty_values()
    names = [h.get("name") if isinstance(h, dict) else None for h in payload["headers"]]
    missing = [n for n in ("dx", "pe", "ou", "value") if n not in names]
    if missing:
        out.problem("dhis2-shape", f"the analytics headers lack {', '.join(missing)} (ask for dimension=dx, pe "
                    "and ou)", column="headers", value=",".join(str(n) for n in names))
        return _empty_values()
    rows = payload["rows"]
    good = [r for r in rows if isinstance(r, list) and len(r) == len(names)]
    for i, r in enumerate(rows):
        if not (isinstance(r, list) and len(r) == len(names)):
            out.problem("dhis2-shape", f"each analytics row is a list of {len(names)} strings", record=f"rows[{i}]",
                        value=r)
            break
    frame = pd.DataFrame(good, columns=names) if good else pd.DataFrame(columns=names)
    frame["_record"] = [i for i, r in enumerate(rows) if isinstance(r, list) and len(r) == len(names)]
    dx = frame["dx"].astype("string")
    element = dx.str.split(".").str[0]
    combo = dx.str.split(".").str[1]
    result = pd.DataFrame({
        "dataElement": element,
        "period": frame["pe"],
        "orgUnit": frame["ou"],
        "categoryOptionCombo": frame.get("co", combo),
        "attributeOptionCombo": frame.get("ao", None),
        "value": frame["value"],
        "_record": frame["_record"],
    })
    result.attrs["record"] = result.attrs["location"] = "rows[{}]"
    return _normalise_values(result)


def _empty_values() -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series(dtype=pd.StringDtype("pyarrow")) for c in VALUE_COLUMNS})
    frame["_record"] = pd.Series(dtype="int64")
    return frame


def _normalise_values(frame: pd.DataFrame) -> pd.DataFrame:
    """Text columns (Arrow-backed strings, stripped, missing as NA) and an integer record position."""
    out = pd.DataFrame(index=frame.index)
    for column in VALUE_COLUMNS:
        raw = frame[column] if column in frame else pd.Series([None] * len(frame), index=frame.index, dtype=object)
        if not isinstance(raw.dtype, pd.StringDtype | pd.CategoricalDtype):
            raw = raw.map(lambda v: None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v))
        if not isinstance(raw.dtype, pd.CategoricalDtype):
            raw = raw.astype(pd.StringDtype("pyarrow")).str.strip()
            if column != "value":
                raw = raw.astype("category")
        if column != "value":
            raw = raw.cat.remove_categories([""]) if "" in raw.cat.categories else raw
        out[column] = raw
    fallback = pd.Series(np.arange(len(frame)), index=frame.index)
    records = pd.to_numeric(frame["_record"], errors="coerce") if "_record" in frame else fallback
    out["_record"] = records.fillna(fallback).astype("int64")
    out = out.reset_index(drop=True)
    out.attrs["record"] = frame.attrs.get("record", "#{}")
    out.attrs["location"] = frame.attrs.get("location", out.attrs["record"])
    return out


# --------------------------------------------------------------------------- data values -> aggregates
def aggregates_from_values(values: pd.DataFrame, mapping: SourceMapping, out: CanonicalFrames,
                           *, default_combo: str = "HllvX50cXC0") -> pd.DataFrame:
    """Mapped data values summed to site x month x indicator x (dimension, stratum), as text cells.

    Identifier columns are categorical, so every per-value lookup is a
    lookup per distinct code (a few hundred), not per value (millions).
    """
    template = values.attrs.get("record", "#{}")
    location = values.attrs.get("location", template)
    empty = text_frame("aggregates", {c: [] for c in ("site_id", "period", "indicator", "dimension", "stratum",
                                                       "value", SOURCE_RECORD)})
    if values.empty:
        return empty
    values = values.loc[~values["deleted"].isin(["true", "True", "TRUE"])]
    blank = (values["value"].isna() | values["value"].eq("")).to_numpy()
    for record in values.loc[blank, "_record"].head(LISTED):
        out.problem("blank-value", "blank data value skipped (DHIS2 stores no blank values)",
                    record=template.format(record), column="value", severity="warning")
    values = values.loc[~blank]
    mapped = values["dataElement"].isin(list(mapping.data_elements)).to_numpy()
    skipped = values.loc[~mapped, "dataElement"].dropna().unique()
    if len(skipped):
        out.problem("unmapped-data-element",
                    f"{int((~mapped).sum())} value(s) of {len(skipped)} data element(s) the mapping does not name "
                    "were skipped", value=", ".join(sorted(map(str, skipped))[:5]), severity="warning")
    values = values.loc[mapped]
    values = values.assign(categoryOptionCombo=lookup(values["categoryOptionCombo"], {}, default=default_combo,
                                                      keep=True).astype("category"))
    _check_uids(values, out, template)
    periods = _parse_periods(values, mapping, out, template)
    combos = values["categoryOptionCombo"]
    known = set(mapping.category_option_combos) | {default_combo}
    unknown = ~combos.isin(list(known)).to_numpy()
    _list(out, values.loc[unknown], template, "dhis2-unmapped-combo",
          "categoryOptionCombo not in the mapping; add it under [category_option_combos] with its equity levels "
          "(or {} for none)", "categoryOptionCombo")
    numbers = pd.to_numeric(values["value"], errors="coerce").astype("float64").to_numpy()
    with np.errstate(invalid="ignore"):
        bad_value = np.isnan(numbers) | (numbers < 0) | (numbers != np.floor(numbers)) | (numbers > 2**53)
    _list(out, values.loc[bad_value], template, "dhis2-value-type",
          "counts must be whole numbers >= 0 (value type INTEGER_ZERO_OR_POSITIVE)", "value")
    key = ["dataElement", "period", "orgUnit", "categoryOptionCombo", "attributeOptionCombo"]
    dup = values.duplicated(subset=key, keep="first").to_numpy()
    _list(out, values.loc[dup], template, "duplicate-key", "another data value has the same data element, period, "
          "org unit and category/attribute option combos", "dataElement")
    ok = ~(unknown | bad_value | dup) & periods.notna().to_numpy()
    if not ok.any():
        return empty
    indicators = {d: r.indicator for d, r in mapping.data_elements.items()}
    cells = pd.DataFrame({
        "site_id": values.loc[ok, "orgUnit"].astype("category"),
        "period": periods.loc[ok].astype("category"),
        "indicator": lookup(values.loc[ok, "dataElement"], indicators).astype("category"),
        "combo": combos.loc[ok],
        "value": numbers[ok].astype("int64"),
        "first": values.loc[ok, "_record"].to_numpy(),
        "n": np.ones(int(ok.sum()), dtype="int64"),
    })
    # Each summed cell keeps its first data value's position and how many were summed, to cite them.
    totals = {"value": ("value", "sum"), "first": ("first", "min"), "n": ("n", "sum")}
    cells = cells.groupby(["site_id", "period", "indicator", "combo"], observed=True, sort=False).agg(**totals) \
        .reset_index()
    keys = ["site_id", "period", "indicator"]
    parts = [cells.groupby(keys, observed=True).agg(**totals).reset_index().assign(dimension="all", stratum="all")]
    dimensions = sorted({d for dims in mapping.category_option_combos.values() for d in dims})
    for dimension in dimensions:
        level = lookup(cells["combo"], {c: dims.get(dimension) for c, dims in mapping.category_option_combos.items()})
        has = level.notna().to_numpy()
        if has.any():
            part = cells.loc[has, [*keys, "value", "first", "n"]].assign(dimension=dimension,
                                                                          stratum=level[has].to_numpy())
            parts.append(part.groupby([*keys, "dimension", "stratum"], observed=True).agg(**totals).reset_index())
    frame = pd.concat([p.astype({k: object for k in keys}) for p in parts], ignore_index=True)
    frame[SOURCE_RECORD] = cite_records(location, frame["first"], frame["n"], noun="data value")
    frame = frame[["site_id", "period", "indicator", "dimension", "stratum", "value", SOURCE_RECORD]]
    return text_frame("aggregates", frame.sort_values(["site_id", "period", "indicator", "dimension", "stratum"]))


def cite_records(template: str, first: pd.Series, count: pd.Series, *, noun: str) -> pd.Series:
    """``dataValues[3]``, or ``dataValues[3] and 2 more data value(s)`` for a sum: built column-wise, not per row."""
    head, _, tail = template.partition("{}")
    text = head + first.astype("int64").astype(str) + tail
    more = count.astype("int64") - 1
    return text.where(more.le(0), text + " and " + more.astype(str) + f" more {noun}(s)").astype(object)


def lookup(series: pd.Series, table: Mapping[str, Any], *, default: Any = None, keep: bool = False) -> pd.Series:
    """``table[value]`` for each value, looked up once per distinct value (``keep``: unlisted values stay)."""
    if not isinstance(series.dtype, pd.CategoricalDtype):
        series = series.astype("category")
    categories = list(series.cat.categories)
    mapped = [table.get(c, c if keep else default) for c in categories]
    choices = np.array([*mapped, default], dtype=object)
    return pd.Series(choices[series.cat.codes.to_numpy()], index=series.index)


def _check_uids(values: pd.DataFrame, out: CanonicalFrames, template: str) -> None:
    for column in ("dataElement", "orgUnit", "categoryOptionCombo", "attributeOptionCombo"):
        text = values[column]
        ok = text.str.fullmatch(UID_PATTERN).fillna(False).astype(bool)
        bad = text.notna() & ~ok
        if column in ("dataElement", "orgUnit"):
            bad = bad | text.isna()
        _list(out, values.loc[bad], template, "dhis2-uid",
              "a DHIS2 UID is 11 letters or digits, starting with a letter", column)


def _parse_periods(values: pd.DataFrame, mapping: SourceMapping, out: CanonicalFrames, template: str) -> pd.Series:
    """Each value's month (``YYYY-MM-01``), or NA where its period is invalid; each distinct period is parsed once."""
    kinds: dict[str, str] = {}
    months: dict[str, str] = {}
    spans: dict[str, bool] = {}
    errors: dict[str, str] = {}
    for text in values["period"].dropna().unique():
        try:
            found = parse_period(str(text))
        except PeriodFormatError as exc:
            errors[str(text)] = str(exc)
            continue
        kinds[str(text)] = found.type
        months[str(text)] = found.month.isoformat()
        spans[str(text)] = not found.within_one_month()
    period = values["period"]
    kind = lookup(period, kinds)
    is_period = kind.notna().to_numpy()
    expected = lookup(values["dataElement"],
                      {de: rule.period_type for de, rule in mapping.data_elements.items() if rule.period_type})
    wrong_type = is_period & expected.notna().to_numpy() & (kind != expected).to_numpy()
    long = is_period & ~wrong_type & lookup(period, spans, default=False).astype(bool).to_numpy()
    records = values["_record"].to_numpy()
    for mask, rule in ((wrong_type, "dhis2-period-type"), (long, "period-grain"), (~is_period, "dhis2-period")):
        positions = np.flatnonzero(mask)
        for i in positions[:LISTED]:
            text = period.iloc[i]
            if rule == "dhis2-period-type":
                message = (f"period type {kind.iloc[i]} is not valid for data element {values['dataElement'].iloc[i]} "
                           f"(its data set is {expected.iloc[i]})")
            elif rule == "period-grain":
                message = (f"a {kind.iloc[i]} period spans several months; aggregates are monthly, so export this "
                           "data set monthly (or map a monthly data element)")
            else:
                message = errors.get(str(text), "a period is required") if not pd.isna(text) else "a period is required"
            out.problem(rule, message, record=template.format(records[i]), column="period",
                        value=None if pd.isna(text) else text)
        if len(positions) > LISTED:
            out.problems.append(Problem(out.origin, rule, f"{len(positions) - LISTED} more value(s) break this rule",
                                        column="period", count=len(positions) - LISTED))
    month = lookup(period, months)
    return month.where(pd.Series(is_period & ~wrong_type & ~long, index=month.index))


def _list(out: CanonicalFrames, bad: pd.DataFrame, template: str, rule: str, message: str, column: str) -> None:
    for _, row in bad.head(LISTED).iterrows():
        value = row[column]
        out.problem(rule, message, record=template.format(row["_record"]), column=column,
                    value=None if pd.isna(value) else value)
    if len(bad) > LISTED:
        out.problems.append(Problem(out.origin, rule, f"{len(bad) - LISTED} more value(s) break this rule: {message}",
                                    column=column, count=len(bad) - LISTED))


# --------------------------------------------------------------------------- organisation units -> sites
def sites_from_org_units(payload: Any, mapping: SourceMapping, out: CanonicalFrames,
                         *, levels: Any = None, where: str | None = None) -> pd.DataFrame:
    """``/api/organisationUnits`` (with ``level``, ``path``, ``parent``) as the ``sites`` table.

    Level numbers become canonical levels through ``[sites] levels`` in the
    mapping, else through the level names of ``/api/filledOrganisationUnitLevels``
    (National, Region, District, Facility), else the deepest level is taken as
    ``facility``. Units at levels without a canonical name are left out, and
    their children hang from the nearest ancestor that is kept. ``where``
    names the file or endpoint the units came from when it is not the source's own.
    """
    cite = f"{where} " if where else ""
    units = payload.get("organisationUnits") if isinstance(payload, dict) else payload
    if not isinstance(units, list):
        out.problem("dhis2-shape", "organisation units are a JSON list, or an object with 'organisationUnits'")
        return text_frame("sites", {"site_id": [], "name": [], "parent_id": [], "level": []})
    records = []
    for i, unit in enumerate(units):
        if not isinstance(unit, dict) or not isinstance(unit.get("id"), str):
            out.problem("dhis2-shape", "each organisation unit needs an 'id'", record=f"organisationUnits[{i}]")
            continue
        level = unit.get("level")
        raw_path = unit.get("path")
        path = raw_path if isinstance(raw_path, str) else ""
        if not isinstance(level, int):
            level = len([p for p in path.split("/") if p]) or None
        parent = unit.get("parent")
        parent_id = parent.get("id") if isinstance(parent, dict) else None
        ancestors = [p for p in path.split("/") if p][:-1] if path else ([parent_id] if parent_id else [])
        records.append({"id": unit["id"], "name": unit.get("name"), "level": level, "ancestors": ancestors,
                        "opening": unit.get("openingDate"), "record": f"{cite}organisationUnits[{i}]"})
    names = _level_names(levels)
    numbers = sorted({r["level"] for r in records if isinstance(r["level"], int)})
    canonical: dict[int, str] = {}
    for number in numbers:
        if number in mapping.site_levels:
            canonical[number] = mapping.site_levels[number]
        elif names.get(number, "").lower() in ("national", "region", "district", "facility"):
            canonical[number] = names[number].lower()
    if not mapping.site_levels and numbers and "facility" not in canonical.values():
        canonical[numbers[-1]] = "facility"
    kept = {r["id"] for r in records if r["level"] in canonical}
    rows = []
    for r in records:
        if r["level"] not in canonical:
            continue
        parent = next((a for a in reversed(r["ancestors"]) if a in kept), None)
        rows.append({"site_id": r["id"], "name": r["name"] or "", "parent_id": parent or "",
                     "level": canonical[r["level"]], SOURCE_RECORD: r["record"]})
    dropped = len(records) - len(rows)
    if dropped:
        skipped = sorted({f"{n} ({names.get(n, 'unnamed')})" for n in numbers if n not in canonical})
        out.problem("dhis2-level-skipped", f"{dropped} organisation unit(s) at level(s) {', '.join(skipped)} have no "
                    "canonical level and were left out; name them in the mapping's [sites] levels to keep them",
                    severity="warning")
    return text_frame("sites", pd.DataFrame(rows, columns=["site_id", "name", "parent_id", "level", SOURCE_RECORD]))


def _level_names(levels: Any) -> dict[int, str]:
    items = levels.get("organisationUnitLevels") if isinstance(levels, dict) else levels
    if not isinstance(items, list):
        return {}
    return {i["level"]: str(i.get("name", "")) for i in items
            if isinstance(i, dict) and isinstance(i.get("level"), int)}


def load_json_bytes(data: bytes, out: CanonicalFrames) -> Any:
    try:
        return json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        at = f" at character {exc.pos}" if isinstance(exc, json.JSONDecodeError) else ""
        out.problem("bad-json", f"not valid JSON{at} (truncated or not JSON): {exc}")
        return None


# --------------------------------------------------------------------------- one [[sources]] entry
def read_dhis2_source(source: Source, project: Project, *, client: ApiClient | None = None) -> CanonicalFrames:
    """Read a ``dhis2-datavalues``, ``dhis2-analytics`` or ``dhis2-tracker`` source into canonical frames.

    From a file (``path``: JSON, or CSV for data values) or a server (``url``,
    with ``query`` parameters; the project window fills ``startDate`` and
    ``endDate`` when the query names no period). ``org_units`` (and
    ``org_unit_levels``) name export files for the ``sites`` table; a server
    source fetches them unless ``org_units = false``.
    """
    out = CanonicalFrames(source.location)
    try:
        mapping = load_mapping(source.mapping, project.root)
    except ConfigError as exc:
        out.problem("mapping", str(exc))
        return out
    options = source.options
    try:
        if source.url:
            own = client is None
            client = client or dhis2_client(
                source.url, env_prefix=str(options.get("auth_env", "KNOWDO_DHIS2")), project_root=project.root,
                timeout=float(options.get("timeout", DEFAULT_TIMEOUT)),
                retries=int(options.get("retries", DEFAULT_RETRIES)),
            )
            try:
                payload, units, levels = _fetch(source, project, client)
            finally:
                if own:
                    client.close()
            out.sha256 = sha256_bytes(json.dumps([payload, units, levels], sort_keys=True).encode())
        else:
            payload, units, levels = _read_files(source, project, out)
    except SchemaError as exc:
        out.problems.extend(exc.problems)
        return out
    if payload is None:
        return out
    if source.kind == "dhis2-tracker":
        out.tables.update(tracker_tables(tracked_entities(payload, out), mapping, project.strata, out,
                                         key=tracker_list_key(payload)))
    else:
        if source.kind == "dhis2-analytics":
            values = data_values_from_analytics(payload, out)
        elif isinstance(payload, str):
            values = data_values_from_csv(payload, out)
        else:
            values = data_values_from_json(payload, out)
        out.tables["aggregates"] = aggregates_from_values(values, mapping, out)
    if units is not None:
        units_file = source.options.get("org_units")
        # the units come from their own file (or endpoint), so each site cites it
        where = "organisationUnits.json" if source.url else Path(units_file).name if isinstance(units_file, str) \
            else None
        out.tables["sites"] = sites_from_org_units(units, mapping, out, levels=levels, where=where)
    return out


def _read_files(source: Source, project: Project, out: CanonicalFrames) -> tuple[Any, Any, Any]:
    path = source.path
    if not path.is_file():
        out.problem("file-missing", f"file not found at {path}")
        return None, None, None
    data = path.read_bytes()
    files = [path]
    payload: Any
    if path.suffix.lower() == ".csv":
        try:
            payload = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            out.problem("encoding", f"not valid UTF-8 near byte {exc.start}; re-save the file as UTF-8")
            return None, None, None
    else:
        payload = load_json_bytes(data, out)
    units = levels = None
    for key in ("org_units", "org_unit_levels"):
        name = source.options.get(key)
        if not isinstance(name, str):
            continue
        file = project.root / name
        if not file.is_file():
            out.problem("file-missing", f"{key} file not found at {file}", column=key)
            continue
        files.append(file)
        side = CanonicalFrames(str(file.name))
        loaded = load_json_bytes(file.read_bytes(), side)
        out.problems.extend(side.problems)
        if key == "org_units":
            units = loaded
        else:
            levels = loaded
    out.sha256 = sha256_files(files)
    return payload, units, levels


def _fetch(source: Source, project: Project, client: ApiClient) -> tuple[Any, Any, Any]:
    query = dict(source.options.get("query") or {})
    page_size = int(source.options.get("page_size", DEFAULT_PAGE_SIZE))
    if source.kind == "dhis2-datavalues":
        if not {"period", "startDate", "lastUpdated", "lastUpdatedDuration"} & set(query):
            query.update(startDate=project.start.isoformat(), endDate=project.end.isoformat())
        payload = data_value_sets(client, query)
    elif source.kind == "dhis2-analytics":
        payload = analytics(client, query)
    else:
        payload = http_tracked_entities(client, query, page_size=page_size)
    units = levels = None
    if source.options.get("org_units", True) is not False:
        units = organisation_units(client, page_size=page_size)
        levels = organisation_unit_levels(client)
    return payload, units, levels
