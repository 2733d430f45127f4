"""Person-level outcome flags from the episodes frame.

An episode is one person screened positive. From it we derive, for those who
started treatment, whether they were followed up and their response,
remission, deterioration and PHQ-9 change, and the same at the late
(maintenance) measurement. Flags are 1/0 and NaN where not measured, so a
mean over non-missing values is a rate among those measured.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from knowdo.config import OutcomeDefinitions, Project
from knowdo.outcomes.groups import (
    KEYS,
    Grouping,
    as_float,
    check_columns,
    expand_groups,
    expand_strata,
)
from knowdo.outcomes.intervals import grouped_mean, wilson_unchecked, z_value
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
    k = g["sum"].to_numpy(float)
    n = g["count"].to_numpy(float)
    low, high = wilson_unchecked(k, n, z_value(level))
    with np.errstate(divide="ignore", invalid="ignore"):
        est = np.where(n > 0, k / n, np.nan)
    return make_tidy(
        g,
        domain=domain,
        outcome=outcome,
        measure="proportion",
        numerator=k,
        denominator=n,
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
