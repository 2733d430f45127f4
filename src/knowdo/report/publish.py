"""Small-cell suppression applied to everything the report publishes.

The rule itself lives in :func:`knowdo.equity.disclosure.suppress_table`; this
module applies it to the two shapes a report handles:

* tidy frames shown as tables or drawn as charts (:func:`suppress_frame`, which
  also returns which cells it blanked, so the page can mark them), and
* the nested results dictionary written to ``results.json``
  (:func:`publishable_results`), where every record that carries a count is
  passed through the same rule.

A record is any mapping with at least one count key (:data:`COUNT_KEYS`)
holding a number. Its dependent keys (:data:`DEPENDENT_KEYS`: the estimate and
its interval) are blanked with the counts, and it gains ``suppressed: true``.

Which counts the rule applies to is decided here, once, from what each count
counts. Outcome rows say so in their ``unit`` (the numerator's) and
``denominator_unit`` columns (see :mod:`knowdo.outcomes.results`). The rule
protects people: counts of people, of providers (staff, few enough to be
named) and of sessions (each a contact with one person) fall under it; counts
of sites, sums of scores and sums of money do not (:data:`NOT_PERSON_UNITS`),
so a small number of them is shown. A count whose unit is missing or unknown
is treated as a count of people. When any protected count of a row is
blanked, the whole row is blanked, its other counts included.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.sparse import csgraph

from knowdo.equity.disclosure import protect_cells, suppress_table
from knowdo.outcomes import OutcomeSet, Unit
from knowdo.schema import PANEL_COUNT_COLUMNS

# Counts that describe people or contacts and so fall under the disclosure rule.
COUNT_KEYS: tuple[str, ...] = ("numerator", "denominator", "n", "count", *PANEL_COUNT_COLUMNS)
# Figures computed from those counts; they reveal the count, so they go with it.
DEPENDENT_KEYS: tuple[str, ...] = ("estimate", "conf_low", "conf_high", "std_error")
SUPPRESSED = "suppressed"
# What the numerator (and every other count of a record) counts, and what the denominator counts.
UNIT_KEY = "unit"
DENOMINATOR_UNIT_KEY = "denominator_unit"
UNIT_KEYS: tuple[str, ...] = (UNIT_KEY, DENOMINATOR_UNIT_KEY)
# Units whose counts cannot identify a person: the disclosure rule (data-standards.md section 7) protects
# people, and a count of clinics, a sum of fidelity or scale scores, or an amount of money is not a count of
# people. Everything else (people, providers, sessions, or no unit at all) falls under the rule.
NOT_PERSON_UNITS: frozenset[Unit] = frozenset({"sites", "score", "money"})


@dataclass(frozen=True)
class SuppressedFrame:
    """A frame after suppression, with a same-shaped mask of the cells it blanked."""

    frame: pd.DataFrame
    blanked: pd.DataFrame
    count_columns: tuple[str, ...]
    dependent_columns: tuple[str, ...]


def count_columns_of(columns: Sequence[str]) -> tuple[str, ...]:
    """The columns among ``columns`` that hold counts under the disclosure rule."""
    return tuple(c for c in columns if c in COUNT_KEYS)


def dependent_columns_of(columns: Sequence[str]) -> tuple[str, ...]:
    """The columns among ``columns`` derived from counts (estimates and intervals)."""
    return tuple(c for c in columns if c in DEPENDENT_KEYS)


def protected_counts(frame: pd.DataFrame, count_columns: Sequence[str]) -> pd.DataFrame:
    """For each count column of ``frame``, whether each row's count falls under the disclosure rule.

    ``denominator`` is judged by ``denominator_unit`` (or ``unit`` where that
    is missing), every other count by ``unit``. A count is protected unless its
    unit is one of :data:`NOT_PERSON_UNITS`; a frame without unit columns has
    every count protected.

    Examples
    --------
    >>> f = pd.DataFrame({"numerator": [3, 3], "denominator": [40, 5], "unit": ["sites", "money"],
    ...                   "denominator_unit": ["sites", "people"]})
    >>> protected_counts(f, ["numerator", "denominator"]).to_dict("list")
    {'numerator': [False, False], 'denominator': [False, True]}
    """
    missing = pd.Series(pd.NA, index=frame.index, dtype=object)
    unit = frame[UNIT_KEY].astype(object) if UNIT_KEY in frame.columns else missing
    denominator_unit = frame[DENOMINATOR_UNIT_KEY].astype(object) if DENOMINATOR_UNIT_KEY in frame.columns else missing
    denominator_unit = denominator_unit.where(denominator_unit.notna(), unit)
    out = pd.DataFrame(index=frame.index)
    for column in count_columns:
        units = denominator_unit if column == "denominator" else unit
        out[column] = ~units.isin(NOT_PERSON_UNITS).to_numpy(dtype=bool)
    return out


def suppress_frame(
    frame: pd.DataFrame,
    *,
    threshold: int,
    rounding: int | None = None,
    count_columns: Sequence[str] | None = None,
    dependent_columns: Sequence[str] | None = None,
) -> SuppressedFrame:
    """Apply the disclosure rule to ``frame`` and record which cells were blanked.

    Count and dependent columns default to the known names present in the
    frame. A frame with no count column is returned unchanged (nothing in it
    can be a small cell). An existing ``suppressed`` column is kept and
    combined with the new one, so suppressing twice changes nothing. Only
    counts of people are tested against the threshold (and rounded); counts of
    sites, score sums and money are left as they are unless their row is
    suppressed (see :func:`protected_counts`).

    Examples
    --------
    >>> import pandas as pd
    >>> f = pd.DataFrame({"numerator": [4, 40], "denominator": [50, 80], "estimate": [0.08, 0.5]})
    >>> out = suppress_frame(f, threshold=11)
    >>> out.frame["suppressed"].tolist()
    [True, False]
    """
    counts = tuple(count_columns) if count_columns is not None else count_columns_of(list(frame.columns))
    dependents = (
        tuple(dependent_columns) if dependent_columns is not None else dependent_columns_of(list(frame.columns))
    )
    dependents = tuple(c for c in dependents if c in frame.columns)
    if not counts:
        mask = pd.DataFrame(False, index=frame.index, columns=frame.columns)
        return SuppressedFrame(frame.copy(), mask, counts, dependents)
    before = frame.drop(columns=[SUPPRESSED]) if SUPPRESSED in frame.columns else frame
    for column in counts:
        if column in before.columns:
            before = before.assign(**{column: pd.to_numeric(before[column], errors="coerce")})
    present = [c for c in counts if c in before.columns]
    protected = protected_counts(before, present)
    # The rule sees only the counts of people; the others are put back afterwards, unrounded.
    probe = before.assign(**{c: before[c].where(protected[c]) for c in present})
    after = suppress_table(
        probe,
        count_columns=list(counts),
        threshold=threshold,
        rounding=rounding,
        dependent_columns=list(dependents),
    )
    primary = after[SUPPRESSED].to_numpy(dtype=bool)
    if SUPPRESSED in frame.columns:
        primary = primary | frame[SUPPRESSED].fillna(False).astype(bool).to_numpy()
    extra = complementary_rows(before, protected, primary, present, threshold=threshold, rounding=rounding) & ~primary
    if extra.any():
        for column in [*counts, *dependents]:
            if column in after.columns:
                after[column] = after[column].astype(float).where(~extra)
        after[SUPPRESSED] = after[SUPPRESSED].to_numpy(dtype=bool) | extra
    hidden = after[SUPPRESSED].to_numpy(dtype=bool)
    for column in present:
        keep = protected[column].to_numpy() | hidden
        after[column] = after[column].where(keep, before[column])
    was = frame[SUPPRESSED].fillna(False).astype(bool) if SUPPRESSED in frame.columns else False
    after[SUPPRESSED] = after[SUPPRESSED].astype(bool) | was
    shared = [c for c in after.columns if c in frame.columns and c != SUPPRESSED]
    blanked = pd.DataFrame(False, index=after.index, columns=after.columns)
    blanked[shared] = frame[shared].notna().to_numpy() & after[shared].isna().to_numpy()
    # A row already marked suppressed upstream keeps its blanks marked as such.
    prior = after[SUPPRESSED].to_numpy()
    for column in (*counts, *dependents):
        if column in after.columns:
            blanked[column] = blanked[column].to_numpy() | (prior & after[column].isna().to_numpy())
    return SuppressedFrame(after, blanked, counts, dependents)


# ---------------------------------------------------------------------------- complementary suppression
# Keys naming what a row measures (a "series"); rows of one series at one place split by equity strata.
SERIES_KEYS: tuple[str, ...] = ("result", "domain", "outcome", "measure", "label", "period", "indicator")
ALL = "all"
# Level of a place row -> level of the row its count adds up to (sites and districts each cover the programme).
PLACE_PARENTS: dict[str, str] = {"district": "overall", "site": "overall", "district_month": "month",
                                 "site_month": "month"}


@dataclass(frozen=True)
class CountSystem:
    """The counts of a tidy table as one linked system of cells, ready for :func:`protect_cells`.

    Cells ``0 .. len(rows) - 1`` are counts shown in the table (row ``rows[k]``,
    column ``columns[k]``); the others are *implied* margins: totals a reader
    can get elsewhere (the "all" row of another table, the sum of the sites)
    that the table itself does not show, taken as the sum of their parts.
    """

    values: np.ndarray
    rows: np.ndarray
    columns: tuple[str, ...]
    equations: tuple[np.ndarray, ...]
    ties: np.ndarray
    implied: np.ndarray
    hidden: np.ndarray  # cells already blanked (value unknown) or hidden by the primary rule


def count_system(
    frame: pd.DataFrame,
    protected: pd.DataFrame,
    hidden_rows: np.ndarray,
    count_columns: Sequence[str],
    *,
    threshold: int,
) -> CountSystem:
    """Cells and margin equations of a tidy outcome table (see :func:`complementary_rows`)."""
    keys = [c for c in SERIES_KEYS if c in frame.columns]
    has_strata = {"stratum_dimension", "stratum"} <= set(frame.columns)
    has_places = "group" in frame.columns
    data = frame.reset_index(drop=True)
    named = [*keys, "stratum_dimension", "stratum", "group", "group_type"]
    text = {c: np.asarray(data[c].astype(str).to_numpy(dtype=object)) for c in named if c in data.columns}
    values: list[float] = []
    rows: list[int] = []
    columns: list[str] = []
    hidden: list[bool] = []
    cell_of: dict[tuple[int, str], int] = {}
    series_id = _joined(data, keys)
    for column in count_columns:
        numbers = pd.to_numeric(data[column], errors="coerce").to_numpy(dtype=float)
        mask = protected[column].to_numpy(dtype=bool, copy=True)
        finite = np.isfinite(numbers)
        # A series with a fractional figure in this column holds estimates (need from prevalence, score sums),
        # not counts of people: it is not part of the system.
        fractional = finite & (np.abs(numbers - np.round(numbers)) > 1e-9)
        mask &= ~pd.Series(series_id).isin(set(series_id[fractional])).to_numpy()
        for i in np.flatnonzero(mask & (finite | hidden_rows)).tolist():
            cell_of[(int(i), column)] = len(values)
            values.append(float(numbers[i]) if finite[i] else np.nan)
            rows.append(int(i))
            columns.append(column)
            # A count blanked only because its row went (a large denominator) is taken as known to the reader:
            # it may be shown under another measure. Only small counts and unknown blanks start hidden.
            hidden.append(not finite[i] or 0 < numbers[i] < threshold)
    shown_cells = len(values)
    kinds = tuple(dict.fromkeys(columns))
    equations: list[np.ndarray] = []
    implied: list[bool] = [False] * shown_cells

    def series(i: int) -> tuple[str, ...]:
        return tuple(text[c][i] for c in keys)

    def add_line(parent: int | None, children: list[int], column: str) -> None:
        kids = [cell_of[(c, column)] for c in children if (c, column) in cell_of]
        if not kids:
            return
        if parent is not None and (parent, column) in cell_of:
            head = cell_of[(parent, column)]
        else:
            # The margin is published elsewhere (another table, or the reader can add the parts): imply it.
            head = len(values)
            values.append(float(sum(values[k] for k in kids)))  # NaN when a part is unknown: left out later
            implied.append(True)
            hidden.append(False)
        equations.append(np.array([head, *kids]))

    lines: dict[tuple[Any, ...], tuple[list[int], list[int]]] = {}
    n = len(data)
    if has_strata:
        dims = text["stratum_dimension"]
        place = [tuple(text[c][i] for c in ("group_type", "group") if c in text) for i in range(n)]
        for i in range(n):
            base = (series(i), place[i])
            if dims[i] == ALL:
                lines.setdefault(("strata", base, None), ([], []))[0].append(i)
            else:
                lines.setdefault(("strata", base, dims[i]), ([], []))[1].append(i)
        totals = {k[1]: v[0] for k, v in lines.items() if k[2] is None}
        for key, (_, children) in list(lines.items()):
            if key[2] is not None:
                found = totals.get(key[1])
                parent = found[0] if found else None
                for column in kinds:
                    add_line(parent, children, column)
    if has_places:
        level = text["group_type"] if "group_type" in text else np.where(text["group"] == ALL, "overall", "place")
        cut = [tuple(text[c][i] for c in ("stratum_dimension", "stratum") if c in text) for i in range(n)]
        parents: dict[tuple[Any, ...], int] = {}
        children_of: dict[tuple[Any, ...], list[int]] = {}
        for i in range(n):
            if level[i] in PLACE_PARENTS or level[i] == "place":
                above = PLACE_PARENTS.get(str(level[i]), "overall")
                children_of.setdefault((series(i), cut[i], above, level[i]), []).append(i)
            else:
                parents.setdefault((series(i), cut[i], level[i]), i)
        for (ser, where, above, _), children in children_of.items():
            for column in kinds:
                add_line(parents.get((ser, where, above)), children, column)
    ties = _tie_labels(data, rows, columns, values[:shown_cells], len(values))
    return CountSystem(np.asarray(values, dtype=float), np.asarray(rows, dtype=int), tuple(columns),
                       tuple(equations), ties, np.asarray(implied, dtype=bool), np.asarray(hidden, dtype=bool))


def _joined(data: pd.DataFrame, columns: Sequence[str]) -> np.ndarray:
    """One text key per row from several columns (vectorised; a row-wise join is slow on large frames)."""
    out = np.full(len(data), "", dtype=object)
    for column in columns:
        out = out + "|" + data[column].astype(str).to_numpy(dtype=object)
    return out


def _tie_labels(data: pd.DataFrame, rows: list[int], columns: list[str], values: list[float], total: int) -> np.ndarray:
    """Cells hidden together: equal non-zero counts at one place and stratum (one count under two measures)."""
    shown = len(rows)
    if not shown:
        return np.arange(total)
    where = [c for c in ("group_type", "group", "period", "stratum_dimension", "stratum") if c in data.columns]
    location = _joined(data, where)
    frame = pd.DataFrame({"cell": np.arange(shown), "row": rows, "value": values,
                          "where": location[np.asarray(rows, dtype=int)]})
    # Link every non-zero count to the first cell holding the same count at the same place and stratum.
    same = frame[np.isfinite(frame["value"]) & (frame["value"] != 0)]
    first_of_value = same.groupby(["where", "value"])["cell"].transform("first").to_numpy()
    edges = [(first_of_value, same["cell"].to_numpy())]
    a = np.concatenate([e[0] for e in edges]).astype(int)
    b = np.concatenate([e[1] for e in edges]).astype(int)
    graph = sparse.coo_matrix((np.ones(len(a)), (a, b)), shape=(total, total))
    return csgraph.connected_components(graph, directed=False)[1]


def complementary_rows(
    frame: pd.DataFrame,
    protected: pd.DataFrame,
    hidden_rows: np.ndarray,
    count_columns: Sequence[str],
    *,
    threshold: int,
    rounding: int | None = None,
) -> np.ndarray:
    """Rows to blank besides ``hidden_rows`` so that no blanked count can be worked out from the table.

    The margins a tidy outcome table carries are read from its columns: within
    one series (outcome, measure, period, ...) at one place, the strata of each
    equity dimension add up to the ``all`` row; at one stratum, sites and
    districts each add up to the programme (``group_type``), or, in a table of
    places without levels, the places add up to their total. A margin the
    table does not show is implied (it is published in another table or can be
    added up). :func:`knowdo.equity.disclosure.protect_cells` then hides more
    rows until every such equation holds no or at least two hidden cells and
    a linear-programming audit finds no small hidden count pinned to one
    value. Equal counts at the same place and stratum are hidden together
    (one count shown under two measures); a row with any hidden count is
    blanked whole, and its other counts are taken as known to the reader (they
    may be shown in another row). Monthly, quarterly and yearly rows are
    protected within their own strata, not against each other: counts of
    distinct people over months do not add up to the year.
    """
    hidden_rows = np.asarray(hidden_rows, dtype=bool)
    if not count_columns or not ({"stratum_dimension", "stratum"} <= set(frame.columns) or "group" in frame.columns):
        return hidden_rows.copy()
    system = count_system(frame, protected, hidden_rows, count_columns, threshold=threshold)
    if not system.equations:
        return hidden_rows.copy()
    # Cells whose value is already unknown (blanked upstream) cannot be checked: their equations are left out.
    unknown = ~np.isfinite(system.values)
    equations = [e for e in system.equations if not unknown[e].any()]
    values = np.where(unknown, 0.0, system.values)
    sensitive = system.hidden & (values > 0) & (values < threshold)
    result = protect_cells(values, equations, primary=system.hidden, ties=system.ties, fixed=system.implied,
                           rounding=rounding, sensitive=sensitive)
    out = hidden_rows.copy()
    shown = len(system.rows)
    out[system.rows[result.hidden[:shown]]] = True
    return out


def protect_outcomes(outcomes: OutcomeSet, *, threshold: int, rounding: int | None = None) -> OutcomeSet:
    """The outcome results with each whole tidy table suppressed once (primary and complementary).

    Build the report's sections, ``results.json``, charts and web views from
    this set, not from the raw one: each output then cuts its tables from
    the same protected table, so no output shows a count another withholds
    (a cut protected on its own could choose other complements, and the two
    together would give a hidden cell away). Suppressing the cuts again only
    hides more.
    """
    def protect(result: Any) -> Any:
        return dataclasses.replace(result, table=suppress_frame(result.to_frame(), threshold=threshold,
                                                                rounding=rounding).frame)

    return dataclasses.replace(outcomes, cascade=protect(outcomes.cascade), reaim=protect(outcomes.reaim),
                               proctor=protect(outcomes.proctor), perceptions=protect(outcomes.perceptions),
                               trends=protect(outcomes.trends))


def publishable_results(results: Mapping[str, Any], threshold: int, *, rounding: int | None = None) -> dict[str, Any]:
    """Return a JSON-ready copy of ``results`` with every small cell suppressed.

    The dictionary is walked to any depth. Lists of records and single
    records that carry a count (numerator, denominator, n, count or a cascade
    count) go through the same rule as the report's tables: a count from 1 to
    ``threshold - 1`` is blanked (``null``), so are the record's estimate and
    confidence limits, and the record gains ``"suppressed": true``. Numbers
    that are not finite become ``null``; dates become ISO strings; numpy
    scalars become Python numbers. The input is not modified.

    Examples
    --------
    >>> out = publishable_results({"reaim": {"reach": {"numerator": 3, "denominator": 90, "estimate": 0.033}}}, 11)
    >>> out["reaim"]["reach"]
    {'numerator': None, 'denominator': None, 'estimate': None, 'suppressed': True}
    """
    walked = _walk(results, threshold, rounding)
    assert isinstance(walked, dict)
    return walked


def is_record(value: Any) -> bool:
    """Whether ``value`` is a mapping carrying at least one numeric count key."""
    return isinstance(value, Mapping) and any(_is_number(value.get(k)) for k in COUNT_KEYS)


def is_record_list(value: Any) -> bool:
    """Whether ``value`` is a non-empty list of mappings, at least one of them a record."""
    return (
        isinstance(value, list | tuple)
        and len(value) > 0
        and all(isinstance(v, Mapping) for v in value)
        and any(is_record(v) for v in value)
    )


def jsonable(value: Any) -> Any:
    """Convert one leaf value to something ``json.dumps(allow_nan=False)`` accepts."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        number = float(value)
        return number if math.isfinite(number) else None
    if value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, dt.date | dt.datetime | dt.time):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.ndarray):
        return [jsonable(v) for v in value.tolist()]
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return str(value)


def records_frame(records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """A frame from a list of record mappings, keeping the key order of first appearance."""
    columns: dict[str, None] = {}
    for record in records:
        columns.update(dict.fromkeys(record))
    return pd.DataFrame.from_records([dict(r) for r in records], columns=list(columns))


def frame_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """JSON-ready records from a frame (non-finite numbers become ``None``)."""
    return [{str(k): jsonable(v) for k, v in row.items()} for row in frame.to_dict(orient="records")]


def _walk(value: Any, threshold: int, rounding: int | None) -> Any:
    kind = type(value)
    if value is None or kind is str or kind is bool or kind is int:
        return value  # the common leaves, answered before the slower abstract-type checks
    if kind is float:
        return value if math.isfinite(value) else None
    if is_record_list(value):
        return _suppress_records(value, threshold, rounding)
    if is_record(value):
        return _suppress_records([value], threshold, rounding)[0]
    if isinstance(value, Mapping):
        return {str(k): _walk(v, threshold, rounding) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_walk(v, threshold, rounding) for v in value]
    if isinstance(value, pd.DataFrame):
        return _walk(frame_records(value), threshold, rounding)
    return jsonable(value)


def _suppress_records(records: Sequence[Mapping[str, Any]], threshold: int, rounding: int | None) -> list[Any]:
    """Suppress a list of records column-wise, keeping each record's own keys (no keys added from others)."""
    frame = records_frame(records)
    done = suppress_frame(frame, threshold=threshold, rounding=rounding).frame
    columns: dict[str, list[Any]] = {}
    for column in frame.columns:
        values = done[column]
        if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            numbers = values.to_numpy(dtype=float)
            finite = np.isfinite(numbers)
            whole = _whole_numbers(frame[column])
            columns[column] = [
                (int(x) if whole else float(x)) if ok else None for x, ok in zip(numbers, finite, strict=True)
            ]
        else:
            columns[column] = [_walk(v, threshold, rounding) for v in values.tolist()]
    flags = done[SUPPRESSED].astype(bool).tolist()
    out: list[Any] = []
    for i, original in enumerate(records):
        kept = {str(k): columns[k][i] for k in original}
        kept[SUPPRESSED] = flags[i]
        out.append(kept)
    return out


def _whole_numbers(values: pd.Series) -> bool:
    """Whether a column's numbers were all integers (so blanks turning it to floats are undone)."""
    present = [v for v in values.tolist() if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return bool(present) and all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in present)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool | np.bool_)
