"""Person-level outcome flags from the episodes frame.

An episode is one person screened positive. From it we derive, for those who
started treatment, whether they were followed up and their response,
remission, deterioration and PHQ-9 change, and the same at the late
(maintenance) measurement. Flags are 1/0 and NaN where not measured, so a
mean over non-missing values is a rate among those measured.

Rates and means by group and stratum are computed from sufficient statistics
rather than by stacking every participant once per grouping and stratum:
:func:`participant_cells` reduces participants to one row per site ×
district × month × stratum cell holding, for each column, the count of
non-missing values, their sum and their sum of squared deviations from the
cell mean; :func:`rollup_cells` pools the cells into any grouping (counts and
sums add; squared deviations combine by Chan, Golub & LeVeque's parallel
formula, which stays accurate where a raw sum of squares would cancel). Every
estimate and interval here (Wilson for rates, the unclustered t interval of
:func:`~knowdo.outcomes.intervals.grouped_mean` for means) depends on those
pieces alone, so the results equal the stacked computation
(:func:`stack_participants` with :func:`rate_rows` / :func:`mean_rows`) while
the work on millions of episodes is a few integer-keyed bincounts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from knowdo.config import OutcomeDefinitions, Project
from knowdo.outcomes.groups import (
    ALL,
    KEYS,
    Grouping,
    as_float,
    check_columns,
    expand_groups,
    expand_strata,
    period_label,
)
from knowdo.outcomes.intervals import check_level, grouped_mean, wilson_unchecked, z_value
from knowdo.outcomes.results import Unit, make_tidy

EPISODE_COLUMNS = (
    "person_id",
    "site_id",
    "district_id",
    "screen_date",
    "baseline_phq9",
    "started",
    "sessions",
    "followup_phq9",
    "late_followup_phq9",
    "responded",
    "remitted",
    "deteriorated",
)


def strata_present(episodes: pd.DataFrame, project: Project | None) -> tuple[list[str], list[str]]:
    """Equity dimensions of the project found (and not found) as columns of ``episodes``."""
    names = [] if project is None else [s.name for s in project.strata]
    return [n for n in names if n in episodes.columns], [n for n in names if n not in episodes.columns]


def participant_outcomes(
    episodes: pd.DataFrame, definitions: OutcomeDefinitions, dimensions: Sequence[str]
) -> pd.DataFrame:
    """One row per person who started treatment, with numeric outcome columns.

    Columns: ``site_id, district_id, period`` (month of the positive screen),
    the equity dimensions, and ``followed_up, responded, remitted,
    deteriorated, change, sessions, late_measured, late_responded,
    late_remitted, late_change``.
    """
    check_columns(episodes, EPISODE_COLUMNS, "episodes")
    started = as_float(episodes["started"]) == 1.0
    ep = episodes.loc[started]
    baseline = pd.to_numeric(ep["baseline_phq9"], errors="coerce").to_numpy(float)
    followup = pd.to_numeric(ep["followup_phq9"], errors="coerce").to_numpy(float)
    late = pd.to_numeric(ep["late_followup_phq9"], errors="coerce").to_numpy(float)
    fu = ~np.isnan(followup)
    has_late = ~np.isnan(late)
    out = pd.DataFrame(
        {
            "site_id": ep["site_id"].astype(str).to_numpy(),
            "district_id": ep["district_id"].astype(object).to_numpy(),
            "period": pd.to_datetime(ep["screen_date"]).to_numpy(),
        }
    )
    for dim in dimensions:
        out[dim] = ep[dim].to_numpy()
    out["followed_up"] = fu.astype(float)
    for col in ("responded", "remitted", "deteriorated"):
        out[col] = np.where(fu, as_float(ep[col]), np.nan)
    out["change"] = followup - baseline
    out["sessions"] = pd.to_numeric(ep["sessions"], errors="coerce").to_numpy(float)
    out["late_measured"] = has_late.astype(float)
    # Response: at least response_fraction fewer points than baseline; remission: below the cut-off
    # (definitions from knowdo.toml [outcomes], defaults in OutcomeDefinitions).
    with np.errstate(invalid="ignore"):
        late_resp = late <= baseline * (1.0 - definitions.response_fraction)
        late_rem = late < definitions.remission_below
    out["late_responded"] = np.where(has_late & ~np.isnan(baseline), late_resp.astype(float), np.nan)
    out["late_remitted"] = np.where(has_late, late_rem.astype(float), np.nan)
    out["late_change"] = late - baseline
    return out


def stack_participants(frame: pd.DataFrame, by: Sequence[Grouping], dimensions: Sequence[str]) -> pd.DataFrame:
    """Participants stacked once per grouping and stratum (the :data:`KEYS` columns added)."""
    return expand_strata(expand_groups(frame, by), dimensions)


def rate_rows(stack: pd.DataFrame, col: str, *, domain: str, outcome: str, level: float) -> pd.DataFrame:
    """Share of 1s among non-missing ``col`` per group and stratum, with Wilson intervals."""
    g = stack.groupby(KEYS, sort=False)[col].agg(["sum", "count"]).reset_index()
    return _rate_tidy(g, g["sum"], g["count"], domain=domain, outcome=outcome, level=level)


def _rate_tidy(keys: pd.DataFrame, k: Any, n: Any, *, domain: str, outcome: str, level: float) -> pd.DataFrame:
    k_arr = np.asarray(k, dtype=float)
    n_arr = np.asarray(n, dtype=float)
    low, high = wilson_unchecked(k_arr, n_arr, z_value(level))
    with np.errstate(divide="ignore", invalid="ignore"):
        est = np.where(n_arr > 0, k_arr / n_arr, np.nan)
    return make_tidy(
        keys,
        domain=domain,
        outcome=outcome,
        measure="proportion",
        numerator=k_arr,
        denominator=n_arr,
        estimate=est,
        conf_low=low,
        conf_high=high,
        method="wilson",
        unit="people",  # a share of participants: both counts are people
    )


def mean_rows(
    stack: pd.DataFrame,
    col: str,
    *,
    domain: str,
    outcome: str,
    measure: str,
    level: float,
    unit: Unit,
    scale: float = 1.0,
) -> pd.DataFrame:
    """Mean of ``col`` per participant, per group and stratum, with a t interval, optionally divided by ``scale``.

    ``unit`` is what ``col`` sums to (``score`` for PHQ-9 change, ``sessions``); the denominator counts people.
    """
    g = grouped_mean(stack, KEYS, col, level)
    return _mean_tidy(g, domain=domain, outcome=outcome, measure=measure, unit=unit, scale=scale)


def _mean_tidy(g: pd.DataFrame, *, domain: str, outcome: str, measure: str, unit: Unit, scale: float) -> pd.DataFrame:
    return make_tidy(
        g,
        domain=domain,
        outcome=outcome,
        measure=measure,
        numerator=g["numerator"] / scale,
        denominator=g["denominator"],
        estimate=g["estimate"] / scale,
        std_error=g["std_error"] / scale,
        conf_low=g["conf_low"] / scale,
        conf_high=g["conf_high"] / scale,
        method="t",
        unit=unit,
        denominator_unit="people",
    )


@dataclass(frozen=True, eq=False)
class ParticipantCells:
    """Sufficient statistics of participant columns per site × district × month × stratum cell.

    Cell arrays are aligned: ``site``, ``district`` and ``month`` are codes
    into ``site_labels``, ``district_labels`` and ``month_starts`` (-1 where
    the participant's value is missing), ``stratum`` indexes ``strata``
    (``(dimension, level)`` pairs, ``('all', 'all')`` first). ``stats[col]``
    is ``(n, total, m2)``: non-missing count, sum, and sum of squared
    deviations from the cell mean.
    """

    site: np.ndarray
    district: np.ndarray
    month: np.ndarray
    stratum: np.ndarray
    site_labels: np.ndarray
    district_labels: np.ndarray
    month_starts: pd.Index
    strata: tuple[tuple[str, str], ...]
    stats: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]


def _codes(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    return codes.astype(np.int64), np.asarray(uniques, dtype=object)


def participant_cells(frame: pd.DataFrame, dimensions: Sequence[str], columns: Sequence[str]) -> ParticipantCells:
    """Reduce :func:`participant_outcomes` rows to per-cell statistics of ``columns``.

    A person is in the total stratum and, for each dimension in
    ``dimensions`` where their value is known, in that dimension's stratum
    (labelled by the value as text, as :func:`~knowdo.outcomes.groups.expand_strata` does).
    """
    check_columns(frame, ["site_id", "district_id", "period", *dimensions, *columns], "participants")
    site, site_labels = _codes(frame["site_id"].astype(object))
    district, district_labels = _codes(frame["district_id"].astype(object))
    period = pd.DatetimeIndex(pd.to_datetime(frame["period"]))
    month_abs = np.where(period.isna(), -1, period.year.to_numpy() * 12 + period.month.to_numpy() - 1)
    month, month_uniques = pd.factorize(month_abs.astype(np.int64), use_na_sentinel=False)
    month = month.astype(np.int64)
    missing_month = month_uniques == -1
    month_starts = pd.DatetimeIndex(
        pd.to_datetime(
            {"year": np.where(missing_month, 2000, month_uniques // 12), "month": month_uniques % 12 + 1, "day": 1}
        )
    ).where(~missing_month)
    if missing_month.any():
        month = np.where(month == int(np.flatnonzero(missing_month)[0]), -1, month)

    strata: list[tuple[str, str]] = [(ALL, ALL)]
    per_row: list[np.ndarray] = [np.zeros(len(frame), dtype=np.int64)]
    for dim in dimensions:
        codes, uniques = _codes(frame[dim])
        labels = pd.Series(uniques, dtype=object).map(str).to_numpy(dtype=object)
        # distinct values with the same text form one stratum, as in the stacked computation
        label_codes, label_uniques = pd.factorize(labels)
        offset = len(strata)
        strata.extend((dim, str(lbl)) for lbl in label_uniques)
        per_row.append(np.where(codes >= 0, label_codes[np.maximum(codes, 0)] + offset, -1))

    n_district = len(district_labels) + 1
    n_month = len(month_starts) + 1
    base = (site * n_district + (district + 1)) * n_month + (month + 1)
    base_code, base_uniques = pd.factorize(base, use_na_sentinel=False)
    n_strata = len(strata)
    row_parts, key_parts = [], []
    for s_code in per_row:
        keep = np.flatnonzero(s_code >= 0)
        row_parts.append(keep)
        key_parts.append(base_code[keep].astype(np.int64) * n_strata + s_code[keep])
    rows = np.concatenate(row_parts)
    cell, cell_keys = pd.factorize(np.concatenate(key_parts), use_na_sentinel=False)
    n_cells = len(cell_keys)
    cell_base = base_uniques[cell_keys // n_strata]
    out_stats: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for col in columns:
        v = pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=float)[rows]
        ok = ~np.isnan(v)
        w = np.where(ok, v, 0.0)
        n = np.bincount(cell, weights=ok.astype(float), minlength=n_cells)
        total = np.bincount(cell, weights=w, minlength=n_cells)
        with np.errstate(divide="ignore", invalid="ignore"):
            mean = np.where(n > 0, total / n, 0.0)
        dev = np.where(ok, v - mean[cell], 0.0)
        m2 = np.bincount(cell, weights=dev * dev, minlength=n_cells)
        out_stats[col] = (n, total, m2)
    return ParticipantCells(
        site=cell_base // (n_district * n_month),
        district=(cell_base // n_month) % n_district - 1,
        month=cell_base % n_month - 1,
        stratum=(cell_keys % n_strata).astype(np.int64),
        site_labels=site_labels,
        district_labels=district_labels,
        month_starts=month_starts,
        strata=tuple(strata),
        stats=out_stats,
    )


def _group_codes(cells: ParticipantCells, grouping: Grouping) -> tuple[np.ndarray, np.ndarray]:
    """Group code of each cell under ``grouping`` (-1: not in any group) and the group labels."""
    if grouping == "overall":
        return np.zeros(len(cells.site), dtype=np.int64), np.array([ALL], dtype=object)
    if grouping == "site":
        return cells.site, cells.site_labels
    if grouping == "district":
        return cells.district, cells.district_labels
    labels = period_label(pd.Series(cells.month_starts), grouping)
    codes, uniques = pd.factorize(labels, use_na_sentinel=True)
    by_month = np.append(codes.astype(np.int64), -1)  # index -1 (a missing month) maps to no group
    return by_month[cells.month], np.asarray(uniques, dtype=object)


def rollup_cells(cells: ParticipantCells, by: Sequence[Grouping], column: str, level: float) -> pd.DataFrame:
    """Pool cell statistics of ``column`` into every grouping × stratum that has participants.

    Returns the :data:`KEYS` columns and ``numerator`` (sum), ``denominator``
    (non-missing count), ``estimate`` (mean, NaN where the count is 0),
    ``sd``, ``std_error``, ``conf_low`` and ``conf_high`` (the t interval of
    :func:`~knowdo.outcomes.intervals.grouped_mean`).
    """
    check_level(level)
    n_c, total_c, m2_c = cells.stats[column]
    n_strata = len(cells.strata)
    strata_dim = np.array([d for d, _ in cells.strata], dtype=object)
    strata_level = np.array([s for _, s in cells.strata], dtype=object)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_c = np.where(n_c > 0, total_c / n_c, 0.0)
    parts = []
    for grouping in by:
        gcode, glabels = _group_codes(cells, grouping)
        keep = np.flatnonzero(gcode >= 0)
        if keep.size == 0:
            continue
        gid, gkeys = pd.factorize(gcode[keep] * n_strata + cells.stratum[keep], use_na_sentinel=False)
        size = len(gkeys)
        n = np.bincount(gid, weights=n_c[keep], minlength=size)
        total = np.bincount(gid, weights=total_c[keep], minlength=size)
        with np.errstate(divide="ignore", invalid="ignore"):
            mean = np.where(n > 0, total / n, np.nan)
            gap = np.where(n_c[keep] > 0, mean_c[keep] - mean[gid], 0.0)
        m2 = np.bincount(gid, weights=m2_c[keep] + n_c[keep] * gap * gap, minlength=size)
        s_code = gkeys % n_strata
        parts.append(
            pd.DataFrame(
                {
                    "group_type": grouping,
                    "group": glabels[gkeys // n_strata],
                    "stratum_dimension": strata_dim[s_code],
                    "stratum": strata_level[s_code],
                    "numerator": total,
                    "denominator": n,
                    "estimate": mean,
                    "_m2": m2,
                }
            )
        )
    if not parts:
        out = pd.DataFrame({k: pd.Series(dtype=object) for k in KEYS}).assign(
            numerator=np.nan, denominator=np.nan, estimate=np.nan, _m2=np.nan
        )
    else:
        out = pd.concat(parts, ignore_index=True)
    n = out["denominator"].to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        sd = np.where(n >= 2, np.sqrt(np.maximum(out["_m2"].to_numpy(float), 0.0) / (n - 1)), np.nan)
        se = np.where(n >= 2, sd / np.sqrt(n), np.nan)
        t = np.where(n >= 2, stats.t.ppf(0.5 + level / 2.0, np.maximum(n - 1, 1)), np.nan)
    out = out.drop(columns="_m2")
    out["sd"] = sd
    out["std_error"] = se
    out["conf_low"] = out["estimate"] - t * se
    out["conf_high"] = out["estimate"] + t * se
    return out


def cell_rate_rows(
    cells: ParticipantCells, by: Sequence[Grouping], col: str, *, domain: str, outcome: str, level: float
) -> pd.DataFrame:
    """:func:`rate_rows` computed from cell statistics (the same rows and values, without the stack)."""
    g = rollup_cells(cells, by, col, level)
    return _rate_tidy(g, g["numerator"], g["denominator"], domain=domain, outcome=outcome, level=level)


def cell_mean_rows(
    cells: ParticipantCells,
    by: Sequence[Grouping],
    col: str,
    *,
    domain: str,
    outcome: str,
    measure: str,
    level: float,
    unit: Unit,
    scale: float = 1.0,
) -> pd.DataFrame:
    """:func:`mean_rows` computed from cell statistics; groups with no non-missing value are left out, as there."""
    g = rollup_cells(cells, by, col, level)
    g = g.loc[g["denominator"] > 0].reset_index(drop=True)
    return _mean_tidy(g, domain=domain, outcome=outcome, measure=measure, unit=unit, scale=scale)
