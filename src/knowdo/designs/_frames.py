"""Input checks and equity splits shared by the non-DiD designs.

Every design validates its data the same way (a DataFrame, the named columns
present, no missing values where a value is needed) and reports problems as
:class:`~knowdo.errors.ParameterError` naming the design, the column and what
to do. Designs also share the equity convention of the analysis panel: rows
with ``dimension == "all"`` carry the whole population and the other
``(dimension, stratum)`` rows carry one stratum each; person-level data are
split by stratifier columns instead.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd

from knowdo.designs.effect import STRATA_COLUMNS, Effect
from knowdo.errors import KnowdoError, ParameterError

DIMENSION = "dimension"
STRATUM = "stratum"
ALL = "all"


def require_frame(data: object, design: str) -> pd.DataFrame:
    """Return ``data`` if it is a non-empty DataFrame, else raise ParameterError."""
    if not isinstance(data, pd.DataFrame):
        raise ParameterError(
            f"{design}: data must be a pandas DataFrame, got {type(data).__name__}; "
            "read the panel with knowdo.store or pass a tidy DataFrame."
        )
    if data.empty:
        raise ParameterError(f"{design}: data has no rows; pass the rows to analyse.")
    return data


def require_columns(data: pd.DataFrame, columns: Iterable[str | None], design: str) -> None:
    """Raise ParameterError listing every named column that ``data`` lacks."""
    wanted = [c for c in columns if c is not None]
    missing = [c for c in wanted if c not in data.columns]
    if missing:
        have = ", ".join(map(str, list(data.columns)[:20]))
        raise ParameterError(
            f"{design}: column(s) {', '.join(repr(m) for m in missing)} not found in the data "
            f"(columns present: {have}); name existing columns in the settings."
        )


def require_complete(data: pd.DataFrame, columns: Iterable[str | None], design: str) -> None:
    """Raise ParameterError if any named column holds missing values."""
    for column in (c for c in columns if c is not None):
        n_missing = int(data[column].isna().sum())
        if n_missing:
            raise ParameterError(
                f"{design}: column {column!r} has {n_missing} missing value(s); "
                "drop or impute those rows before fitting."
            )


def require_numeric(data: pd.DataFrame, columns: Iterable[str | None], design: str) -> None:
    """Raise ParameterError if a named column is neither numeric nor boolean."""
    for column in (c for c in columns if c is not None):
        if not pd.api.types.is_numeric_dtype(data[column]):
            raise ParameterError(
                f"{design}: column {column!r} must be numeric, got dtype {data[column].dtype}; "
                "convert it (e.g. pd.to_numeric) before fitting."
            )


def require_binary(data: pd.DataFrame, column: str, design: str) -> None:
    """Raise ParameterError unless ``column`` holds only 0 and 1 (both present)."""
    values = set(pd.unique(data[column].dropna().astype(float)))
    if not values <= {0.0, 1.0} or len(values) < 2:
        raise ParameterError(
            f"{design}: column {column!r} must be coded 0/1 with both values present, "
            f"saw {sorted(values)[:6]}; recode it."
        )


def check_level(level: float, design: str) -> float:
    """Return the confidence level if it lies strictly between 0.5 and 1."""
    if not isinstance(level, (int, float)) or not 0.5 < float(level) < 1:
        raise ParameterError(f"{design}: level={level!r} must be a number between 0.5 and 1, e.g. 0.95.")
    return float(level)


def has_panel_strata(data: pd.DataFrame) -> bool:
    """True when the data follow the panel's (dimension, stratum) convention."""
    return DIMENSION in data.columns and STRATUM in data.columns


def headline_rows(data: pd.DataFrame) -> pd.DataFrame:
    """The whole-population rows: ``dimension == 'all'`` in a panel, else all rows."""
    if not has_panel_strata(data):
        return data
    rows = data[data[DIMENSION].astype(str) == ALL]
    if rows.empty:
        dims = sorted(map(str, pd.unique(data[DIMENSION])))[:8]
        raise ParameterError(
            f"the panel has no rows with {DIMENSION} == 'all' (dimensions seen: {dims}); "
            "include the whole-population rows, or filter to one stratum and drop the dimension/stratum columns."
        )
    return rows


def panel_strata(data: pd.DataFrame) -> Iterator[tuple[str, str, pd.DataFrame]]:
    """Yield ``(dimension, stratum, rows)`` for every stratum row set of a panel."""
    if not has_panel_strata(data):
        return
    rest = data[data[DIMENSION].astype(str) != ALL]
    for (dim, stratum), rows in rest.groupby([DIMENSION, STRATUM], sort=True, observed=True):
        yield str(dim), str(stratum), rows


def column_strata(data: pd.DataFrame, columns: Sequence[str]) -> Iterator[tuple[str, str, pd.DataFrame]]:
    """Yield ``(column, level, rows)`` for each level of each stratifier column."""
    for column in columns:
        for level, rows in data.groupby(column, sort=True, observed=True, dropna=True):
            yield str(column), str(level), rows


def headline_and_strata(
    frame: pd.DataFrame, strata: Sequence[str] | None, design: str
) -> tuple[pd.DataFrame, list[tuple[str, str, pd.DataFrame]]]:
    """The rows of the headline estimate and the ``(dimension, stratum, rows)`` groups of the equity split.

    With ``strata`` (stratifier columns of person- or unit-level data) the headline uses every row and each
    level of each column is a group; a knowdo panel gives its ``dimension == 'all'`` rows as the headline
    and every other (dimension, stratum) as a group, both without the two label columns; other data have
    no groups.
    """
    if isinstance(strata, str):
        raise ParameterError(f"{design}: strata={strata!r} must be a list of column names, e.g. [{strata!r}].")
    if strata:
        require_columns(frame, strata, design)
        return frame, list(column_strata(frame, list(strata)))
    if has_panel_strata(frame):
        labels = [DIMENSION, STRATUM]
        return headline_rows(frame).drop(columns=labels), [
            (d, s, rows.drop(columns=labels)) for d, s, rows in panel_strata(frame)
        ]
    return frame, []


def strata_table(
    groups: Iterable[tuple[str, str, pd.DataFrame]],
    fit_one: Callable[[pd.DataFrame], Effect],
    count: Callable[[pd.DataFrame], int],
) -> pd.DataFrame:
    """Fit one design per stratum and collect the STRATA_COLUMNS table.

    A stratum too small or degenerate for the design gets a row with missing
    estimates and its reason in ``note`` rather than stopping the whole fit:
    the equity table should show where evidence is thin, not hide it.
    """
    rows: list[dict[str, Any]] = []
    for dim, stratum, part in groups:
        row: dict[str, Any] = {"dimension": dim, "stratum": stratum, "n": count(part), "note": ""}
        try:
            eff = fit_one(part)
            row.update(
                estimate=eff.estimate,
                std_error=eff.std_error,
                conf_low=eff.conf_low,
                conf_high=eff.conf_high,
                p_value=eff.p_value,
            )
        except (KnowdoError, np.linalg.LinAlgError, ValueError) as err:
            row.update(estimate=math.nan, std_error=math.nan, conf_low=math.nan, conf_high=math.nan,
                       p_value=math.nan, note=str(err)[:200])
        rows.append(row)
    return pd.DataFrame(rows, columns=[*STRATA_COLUMNS, "note"])


def kish_ess(weights: np.ndarray) -> float:
    """Kish's effective sample size (sum w)^2 / sum w^2."""
    w = np.asarray(weights, dtype=float)
    denom = float(np.sum(w**2))
    return float(np.sum(w) ** 2 / denom) if denom > 0 else math.nan
