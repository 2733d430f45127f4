"""Long panel -> the wide arrays the staggered-DiD estimators work on.

Callaway & Sant'Anna's estimator compares each cohort's outcome change between
two periods with that of a comparison group, so it needs, per unit, the whole
outcome path (a unit x period matrix), the cohort (period of first
treatment) and, with covariates, their values per period. This module checks
the long input once (columns, types, one row per unit and period, a cohort
and cluster that do not change within a unit, a balanced panel), codes the
cohorts the way R ``did`` does (never treated as 0, NaN or inf; a cohort after
the last period counts as never treated; units treated from the first period
on, or with no period before treatment, are dropped and counted), and returns
a frozen :class:`WidePanel`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
import pandas as pd

from knowdo.designs._frames import require_columns, require_frame, require_numeric
from knowdo.errors import ParameterError

Unbalanced = Literal["error", "drop"]
UNBALANCED: tuple[Unbalanced, ...] = ("error", "drop")

DESIGN = "did"


@dataclass(frozen=True)
class WidePanel:
    """A balanced panel as arrays: ``n`` units x ``T`` periods.

    ``cohort`` is the first treated period per unit with ``np.inf`` for never
    treated; ``x`` is ``(n, T, k)`` covariate values (``k`` may be 0);
    ``cluster`` holds integer cluster codes per unit or is ``None``.
    """

    units: np.ndarray
    times: np.ndarray
    cohort: np.ndarray
    y: np.ndarray
    x: np.ndarray
    cluster: np.ndarray | None
    covariates: tuple[str, ...]
    dropped_always_treated: int
    dropped_no_pre_period: int
    dropped_unbalanced: int
    recoded_never_treated: int

    @property
    def n_units(self) -> int:
        return int(self.y.shape[0])

    @property
    def n_periods(self) -> int:
        return int(self.y.shape[1])

    @property
    def groups(self) -> np.ndarray:
        """Treated cohorts, ascending."""
        finite = self.cohort[np.isfinite(self.cohort)]
        return np.unique(finite)


def _unit_codes(units: pd.Series) -> tuple[np.ndarray, Any]:
    """Codes 0..U-1 in sorted order of the unit ids, and the ids (``pd.factorize(sort=True)``).

    Panels usually arrive sorted by unit; then the codes follow from where the id changes, without hashing.
    """
    if units.is_monotonic_increasing:
        values = units.to_numpy()
        starts = np.flatnonzero(np.r_[True, values[1:] != values[:-1]])
        codes = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(values)]))
        return codes, pd.Index(values[starts])
    return pd.factorize(units, sort=True)


def _sorted_grid(units: np.ndarray, t_raw: np.ndarray) -> tuple[Any, np.ndarray] | None:
    """The unit ids and periods if the rows are unit by unit in increasing order, each unit with the same
    increasing periods (the usual layout); else None.

    The same test as :func:`_unit_codes` with :func:`_grid_periods`, done with comparisons of the raw
    columns (numeric ids and periods only) with themselves shifted, which saves several passes over the rows.
    """
    n_rows = len(units)
    if n_rows == 0 or units.dtype.kind not in "iuf" or t_raw.dtype.kind not in "iuf":
        return None
    changes = np.flatnonzero(units[1:] != units[:-1])
    n_t = int(changes[0]) + 1 if len(changes) else n_rows
    if n_rows % n_t:
        return None
    periods = t_raw[:n_t]
    firsts = units[::n_t]
    # The id changes exactly every n_t rows, upwards, and every unit repeats the first unit's periods.
    if not np.array_equal(changes, np.arange(n_t - 1, n_rows - 1, n_t)) or not np.all(firsts[1:] > firsts[:-1]):
        return None
    if not np.all(np.diff(periods) > 0) or not np.array_equal(t_raw[n_t:], t_raw[:-n_t]):
        return None
    return pd.Index(firsts.copy()), periods.astype(float)


def _constant_cohort(g_rows: np.ndarray, n_t: int) -> np.ndarray | None:
    """Each unit's raw cohort value when it is the same in all of the unit's ``n_t`` rows (NaN equal to NaN);
    else None, and the caller checks and codes row by row."""
    if g_rows.dtype.kind not in "iuf":
        return None
    differs = g_rows[1:] != g_rows[:-1]
    differs[n_t - 1 :: n_t] = False  # where one unit's rows end and the next unit's begin
    if g_rows.dtype.kind == "f" and differs.any():
        differs &= ~(np.isnan(g_rows[1:]) & np.isnan(g_rows[:-1]))
    if differs.any():
        return None
    return g_rows[::n_t].astype(float)


def _grid_periods(unit_codes: np.ndarray, n_units: int, t_raw: np.ndarray) -> np.ndarray | None:
    """The periods if the rows are unit by unit, each unit with the same increasing periods; else None."""
    n_rows = len(unit_codes)
    if n_units == 0 or n_rows % n_units:
        return None
    n_t = n_rows // n_units
    periods = t_raw[:n_t]
    if n_t < 1 or not np.all(np.diff(periods) > 0):
        return None
    if not np.all(unit_codes.reshape(n_units, n_t) == np.arange(n_units)[:, None]):
        return None
    if not np.all(t_raw.reshape(n_units, n_t) == periods):
        return None
    return periods.copy()


def _per_unit(
    values: np.ndarray, unit_codes: np.ndarray, unit_values: Any, column: str, grid_periods: int | None
) -> np.ndarray:
    """The one value per unit of ``values`` (numeric codes, inf allowed); raise if it changes within a unit.

    ``grid_periods`` is the number of periods when the rows are unit by unit (a reshape suffices).
    """
    if grid_periods is not None:
        per_row = values.reshape(-1, grid_periods)
        first = per_row[:, 0].copy()
        bad = np.flatnonzero((per_row != first[:, None]).any(axis=1))
    else:
        first = np.empty(len(unit_values), dtype=values.dtype)
        first[unit_codes] = values
        bad = np.unique(unit_codes[values != first[unit_codes]])
    if len(bad):
        raise ParameterError(
            f"{DESIGN}: column {column!r} changes within unit {unit_values[bad[0]]!r} (and {len(bad) - 1} other "
            f"unit(s)); it must be fixed per unit ({column!r} is the unit's first treated period or cluster). "
            "Recode it to one value per unit."
        )
    return first


def _check_cohort_sign(g: np.ndarray, cohort: str) -> None:
    if np.any((g < 0) & np.isfinite(g)):
        raise ParameterError(
            f"{DESIGN}: cohort column {cohort!r} has negative values; it must hold the first treated period, "
            "with 0, NaN or inf for never-treated units."
        )


def _code_cohort(g: np.ndarray) -> np.ndarray:
    """R ``did``'s coding: a positive finite first treated period, or inf for never treated (0, NaN or inf)."""
    return np.where(np.isfinite(g) & (g > 0), g, np.inf)


def build_wide_panel(
    data: pd.DataFrame,
    *,
    outcome: str,
    unit: str,
    time: str,
    cohort: str,
    covariates: Sequence[str] = (),
    cluster: str | None = None,
    anticipation: int = 0,
    unbalanced: Unbalanced = "error",
) -> WidePanel:
    """Validate a long panel and return it as a :class:`WidePanel` (``data`` is not modified).

    Examples
    --------
    >>> df = pd.DataFrame({"id": [1, 1, 2, 2], "t": [1, 2, 1, 2], "g": [2, 2, 0, 0], "y": [0.0, 1.0, 0.0, 0.5]})
    >>> wp = build_wide_panel(df, outcome="y", unit="id", time="t", cohort="g")
    >>> wp.y.shape, wp.cohort.tolist()
    ((2, 2), [2.0, inf])
    """
    frame = require_frame(data, DESIGN)
    covariates = tuple(covariates)
    require_columns(frame, [outcome, unit, time, cohort, *covariates, cluster], DESIGN)
    if pd.api.types.is_datetime64_any_dtype(frame[time]):
        raise ParameterError(
            f"{DESIGN}: time column {time!r} holds dates; code periods as consecutive integers "
            "(e.g. a month index) and the cohort in the same units (did_on_panel does this for the knowdo panel)."
        )
    require_numeric(frame, [outcome, time, cohort, *covariates], DESIGN)
    if frame[time].isna().any():
        raise ParameterError(f"{DESIGN}: time column {time!r} has missing values; drop those rows.")
    if frame[unit].isna().any():
        raise ParameterError(f"{DESIGN}: unit column {unit!r} has missing values; drop those rows.")

    work = frame  # read column by column; never modified
    # Sorted by unit and period with every pair present (the usual layout): the wide arrays are reshapes,
    # and per-unit values are checked on row blocks.
    sorted_grid = _sorted_grid(work[unit].to_numpy(), work[time].to_numpy())
    g_first = None if sorted_grid is None else _constant_cohort(work[cohort].to_numpy(), len(sorted_grid[1]))
    grid_t: int | None  # periods per unit when the rows are unit by unit (a reshape suffices)
    if sorted_grid is not None and g_first is not None:
        # The cohort is fixed within every unit, so the checks and the coding need one value per unit.
        unit_values, time_values = sorted_grid
        unit_codes = np.zeros(0, dtype=np.int64)  # not needed on a grid: rows are reshaped, not scattered
        in_order, grid_t = True, len(time_values)
        _check_cohort_sign(g_first, cohort)
        g_unit = _code_cohort(g_first)
    else:
        g_raw = work[cohort].to_numpy(dtype=float)
        _check_cohort_sign(g_raw, cohort)
        g_code = _code_cohort(g_raw)
        unit_codes, unit_values = _unit_codes(work[unit])
        t_raw = work[time].to_numpy(dtype=float)
        grid = _grid_periods(unit_codes, len(unit_values), t_raw)
        in_order = grid is not None
        time_values = grid if grid is not None else np.sort(pd.unique(t_raw))
        grid_t = len(time_values) if in_order else None
        g_unit = _per_unit(g_code, unit_codes, unit_values, cohort, grid_t)
    cl_unit: np.ndarray | None = None
    if cluster is not None and cluster != unit:
        if work[cluster].isna().any():
            raise ParameterError(f"{DESIGN}: cluster column {cluster!r} has missing values; drop those rows.")
        cl_codes = pd.factorize(work[cluster], sort=True)[0].astype(np.int64)
        cl_unit = _per_unit(cl_codes, unit_codes, unit_values, cluster, grid_t)
    if len(time_values) < 2:
        raise ParameterError(f"{DESIGN}: the data hold {len(time_values)} period(s); DiD needs at least two.")
    n_all, n_t = len(unit_values), len(time_values)
    counts = np.ones(1, dtype=np.int64)
    if not in_order:
        time_codes = np.searchsorted(time_values, t_raw)
        flat = unit_codes.astype(np.int64) * n_t + time_codes
        counts = np.bincount(flat, minlength=n_all * n_t)
    if counts.max() > 1:
        k = int(np.argmax(counts > 1))
        raise ParameterError(
            f"{DESIGN}: more than one row for unit {unit_values[k // n_t]!r} at {time}={time_values[k % n_t]:g}; "
            f"the panel needs one row per ({unit}, {time}). Aggregate or filter the rows first "
            "(a knowdo panel needs one (dimension, stratum) at a time)."
        )

    if in_order:
        y = work[outcome].to_numpy(dtype=float, copy=True).reshape(n_all, n_t)
        x = np.empty((n_all, n_t, len(covariates)))
        for j, name in enumerate(covariates):
            x[:, :, j] = work[name].to_numpy(dtype=float).reshape(n_all, n_t)
    else:
        y = np.full((n_all, n_t), np.nan)
        y[unit_codes, time_codes] = work[outcome].to_numpy(dtype=float)
        x = np.full((n_all, n_t, len(covariates)), np.nan)
        for j, name in enumerate(covariates):
            x[unit_codes, time_codes, j] = work[name].to_numpy(dtype=float)

    with np.errstate(over="ignore", invalid="ignore"):
        all_finite = bool(np.isfinite(y.sum()) and np.isfinite(x.sum()))
    if all_finite:
        # A finite total means every value is finite (a NaN or inf would carry through the sum), the usual
        # case, checked without per-row passes; otherwise (or on overflow) the rows are checked one by one.
        complete = np.ones(n_all, dtype=bool)
    else:
        complete = np.isfinite(y).all(axis=1) & np.isfinite(x).all(axis=(1, 2))
    n_bad = int((~complete).sum())
    if n_bad and unbalanced == "error":
        example = unit_values[int(np.argmax(~complete))]
        raise ParameterError(
            f"{DESIGN}: the panel is unbalanced: {n_bad} of {n_all} unit(s) (e.g. {example!r}) lack a row or a "
            f"finite value of {outcome!r}{' or a covariate' if covariates else ''} in some of the {n_t} periods. "
            "Callaway & Sant'Anna on panel data needs every unit in every period: fill or drop those units, "
            "or pass unbalanced='drop' to drop them."
        )

    t_min, t_max = time_values[0], time_values[-1]
    recoded = np.isfinite(g_unit) & (g_unit > t_max)
    g_unit = np.where(recoded, np.inf, g_unit)
    always = np.isfinite(g_unit) & (g_unit <= t_min)
    # A cohort needs one period before its (anticipation-shifted) start to serve as the base period.
    no_pre = np.isfinite(g_unit) & ~always & (g_unit <= t_min + anticipation)
    keep = complete & ~always & ~no_pre
    if not keep.any():
        raise ParameterError(f"{DESIGN}: no usable units remain after dropping incomplete or always-treated units.")
    everyone = bool(keep.all())  # the usual case: no copies of the wide arrays
    g_kept = g_unit if everyone else g_unit[keep]
    if not np.isfinite(g_kept).any():
        raise ParameterError(
            f"{DESIGN}: no unit is ever treated inside the observed periods (cohort column {cohort!r}); "
            "there is no effect to estimate."
        )
    return WidePanel(
        units=np.asarray(unit_values) if everyone else np.asarray(unit_values)[keep],
        times=time_values,
        cohort=g_kept,
        y=y if everyone else y[keep],
        x=x if everyone else x[keep],
        cluster=None if cl_unit is None else pd.factorize(cl_unit if everyone else cl_unit[keep], sort=True)[0],
        covariates=covariates,
        dropped_always_treated=int((always & complete).sum()),
        dropped_no_pre_period=int((no_pre & complete).sum()),
        dropped_unbalanced=n_bad,
        recoded_never_treated=int((recoded & keep).sum()),
    )


def last_cohort_as_comparison(panel: WidePanel, anticipation: int) -> WidePanel:
    """Without never-treated units, let the last cohort be the comparison group (R ``did``'s rule).

    Periods from the last cohort's start (minus anticipation) on are dropped,
    because no unit is untreated then, and the last cohort is recoded as never
    treated.
    """
    last = float(panel.groups.max())
    keep_t = panel.times < last - anticipation
    if keep_t.sum() < 2:
        raise ParameterError(
            f"{DESIGN}: with no never-treated units the last cohort ({last:g}) is the comparison group, "
            "but fewer than two periods come before it; there is no comparison to make."
        )
    cohort = np.where(panel.cohort == last, np.inf, panel.cohort)
    return replace(panel, times=panel.times[keep_t], cohort=cohort, y=panel.y[:, keep_t], x=panel.x[:, keep_t])
