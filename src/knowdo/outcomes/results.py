"""The shared shape of outcome results.

Every outcome result (:class:`~knowdo.outcomes.cascade.Cascade`,
:class:`~knowdo.outcomes.reaim.ReAim`, :class:`~knowdo.outcomes.proctor.Proctor`,
:class:`~knowdo.outcomes.perceptions.Perceptions`) is a frozen dataclass
around one tidy table, the single source of its numbers. ``to_frame()``
returns a copy of it; ``to_dict()`` serialises it; ``summary()`` and
``plot()`` read from it.

Tidy columns (:data:`TIDY_COLUMNS`):

``domain``
    the framework dimension (``cascade``, ``reach`` ... ``maintenance``,
    ``proctor``, ``perceptions``);
``outcome`` and ``measure``
    what is estimated and in which form (``started`` / ``conditional``);
``group_type`` and ``group``
    the grouping (``overall``, ``site``, ``district``, ``month``, ``quarter``,
    ``year``) and its label;
``stratum_dimension`` and ``stratum``
    the equity dimension and level (``all`` / ``all`` for the total);
``numerator``, ``denominator``, ``estimate``, ``std_error``, ``conf_low``, ``conf_high``
    the numbers (``std_error`` is empty for Wilson intervals);
``method``
    how the interval was computed;
``unit`` and ``denominator_unit``
    what the numerator and the denominator count or sum (:data:`UNITS`):
    ``people`` (persons, or an estimate of persons such as need),
    ``providers`` (staff), ``sessions`` (contacts between a provider and a
    person), ``sites``, ``score`` (a sum of scale or fidelity scores) or
    ``money``. The outcome that builds a row knows what it counts, so it says
    so here; whoever publishes the row decides from it which counts fall
    under the disclosure rule (people, providers and sessions do; sites,
    score sums and money do not).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, get_args

import numpy as np
import pandas as pd

from knowdo.errors import ParameterError
from knowdo.outcomes.groups import ALL, KEYS

Unit = Literal["people", "providers", "sessions", "sites", "score", "money"]
UNITS: tuple[Unit, ...] = get_args(Unit)

TIDY_COLUMNS = (
    "domain",
    "outcome",
    "measure",
    "group_type",
    "group",
    "stratum_dimension",
    "stratum",
    "numerator",
    "denominator",
    "estimate",
    "std_error",
    "conf_low",
    "conf_high",
    "method",
    "unit",
    "denominator_unit",
)
_NUMBER_COLUMNS = ("numerator", "denominator", "estimate", "std_error", "conf_low", "conf_high")


def check_unit(unit: str, name: str = "unit") -> Unit:
    """Return ``unit`` when it is one of :data:`UNITS`; raise :class:`ParameterError` otherwise."""
    for known in UNITS:
        if unit == known:
            return known
    raise ParameterError(f"'{name}' must be one of {', '.join(UNITS)} (got {unit!r}).")


def empty_tidy() -> pd.DataFrame:
    """A tidy table with no rows and the right column types."""
    data: dict[str, pd.Series] = {}
    for c in TIDY_COLUMNS:
        data[c] = pd.Series(dtype=float) if c in _NUMBER_COLUMNS else pd.Series(dtype=object)
    return pd.DataFrame(data)


def make_tidy(
    keys: pd.DataFrame,
    *,
    domain: str,
    outcome: str,
    measure: str,
    numerator: Any,
    denominator: Any,
    estimate: Any,
    conf_low: Any = np.nan,
    conf_high: Any = np.nan,
    std_error: Any = np.nan,
    method: Any = "",
    unit: Unit,
    denominator_unit: Unit | None = None,
) -> pd.DataFrame:
    """Build tidy rows from a frame holding the :data:`KEYS` columns and aligned values.

    ``unit`` says what the numerator counts or sums and ``denominator_unit``
    what the denominator counts (the same as ``unit`` when not given).
    """
    n = len(keys)
    unit = check_unit(unit)
    denominator_unit = unit if denominator_unit is None else check_unit(denominator_unit, "denominator_unit")

    def col(value: Any) -> np.ndarray:
        arr = np.asarray(value.to_numpy() if isinstance(value, pd.Series) else value, dtype=float)
        return np.broadcast_to(arr, (n,)).astype(float) if arr.ndim == 0 else arr.astype(float)

    out = pd.DataFrame(
        {
            "domain": domain,
            "outcome": outcome,
            "measure": measure,
            **{k: keys[k].astype(str).to_numpy(dtype=object) for k in KEYS},
            "numerator": col(numerator),
            "denominator": col(denominator),
            "estimate": col(estimate),
            "std_error": col(std_error),
            "conf_low": col(conf_low),
            "conf_high": col(conf_high),
            "method": np.asarray(method.to_numpy() if isinstance(method, pd.Series) else method, dtype=object)
            if not isinstance(method, str)
            else method,
            "unit": unit,
            "denominator_unit": denominator_unit,
        },
        index=range(n),
    )
    return out[list(TIDY_COLUMNS)]


def concat_tidy(parts: list[pd.DataFrame]) -> pd.DataFrame:
    parts = [p for p in parts if not p.empty]
    if not parts:
        return empty_tidy()
    out = pd.concat(parts, ignore_index=True)
    for c in TIDY_COLUMNS:
        out[c] = out[c].astype(float) if c in _NUMBER_COLUMNS else out[c].astype(object)
    return out


def json_safe(value: Any) -> Any:
    """Convert ``value`` to plain JSON types (str, int, float, None, list, dict); NaN and infinities become None."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool | np.bool_):
        return int(bool(value))
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        f = float(value)
        return f if math.isfinite(f) else None
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset | np.ndarray | pd.Series):
        return [json_safe(v) for v in (value.tolist() if isinstance(value, np.ndarray | pd.Series) else value)]
    if value is pd.NaT or value is pd.NA:
        return None
    if isinstance(value, pd.Timestamp | dt.date | dt.datetime):
        return value.isoformat()[:10] if isinstance(value, dt.date) and not _has_time(value) else value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: json_safe(getattr(value, f.name)) for f in dataclasses.fields(value)}
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return str(value)


def _has_time(value: dt.date) -> bool:
    return isinstance(value, dt.datetime) and (value.hour, value.minute, value.second, value.microsecond) != (
        0,
        0,
        0,
        0,
    )


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows of ``frame`` as JSON-safe dicts."""
    out = json_safe(frame.to_dict(orient="records"))
    assert isinstance(out, list)
    return out


@dataclass(frozen=True, kw_only=True, eq=False)
class OutcomeResult:
    """Base of every outcome result: a tidy table plus the settings that produced it."""

    kind: ClassVar[str] = "outcome"

    table: pd.DataFrame
    level: float
    notes: tuple[str, ...] = ()

    def to_frame(self) -> pd.DataFrame:
        """The tidy table (a copy; changing it does not change the result)."""
        return self.table.copy()

    def tidy(self) -> pd.DataFrame:
        """Alias of :meth:`to_frame`."""
        return self.to_frame()

    def settings(self) -> dict[str, Any]:
        """The definitions and thresholds the result was computed with."""
        return {}

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form: ``kind``, ``level``, ``settings``, ``notes`` and ``rows`` (the tidy table)."""
        return {
            "kind": self.kind,
            "level": float(self.level),
            "settings": json_safe(self.settings()),
            "notes": list(self.notes),
            "rows": records(self.table),
        }

    def select(
        self,
        outcome: str | None = None,
        measure: str | None = None,
        *,
        domain: str | None = None,
        group_type: str | None = "overall",
        group: str | None = None,
        stratum_dimension: str | None = ALL,
        stratum: str | None = None,
    ) -> pd.DataFrame:
        """Rows of the tidy table matching every argument given (``None`` matches anything)."""
        t = self.table
        mask = pd.Series(True, index=t.index)
        for col, val in (
            ("domain", domain),
            ("outcome", outcome),
            ("measure", measure),
            ("group_type", group_type),
            ("group", group),
            ("stratum_dimension", stratum_dimension),
            ("stratum", stratum),
        ):
            if val is not None:
                mask &= t[col] == val
        return t.loc[mask].reset_index(drop=True)

    def value(
        self,
        outcome: str,
        measure: str,
        *,
        group_type: str = "overall",
        group: str = ALL,
        stratum_dimension: str = ALL,
        stratum: str = ALL,
        column: str = "estimate",
    ) -> float:
        """One number from the tidy table (NaN when the row is absent)."""
        rows = self.select(
            outcome,
            measure,
            group_type=group_type,
            group=group,
            stratum_dimension=stratum_dimension,
            stratum=stratum,
        )
        if rows.empty:
            return float("nan")
        return float(rows[column].iloc[0])


def pct(value: float, digits: int = 1) -> str:
    """``0.1234`` → ``12.3%``; missing → ``n/a``."""
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{100 * value:.{digits}f}%"


def pct_ci(row: Mapping[str, Any] | pd.Series, digits: int = 1) -> str:
    """``12.3% (10.1–14.8%)`` from a tidy row."""
    est = pct(float(row["estimate"]), digits)
    low, high = float(row["conf_low"]), float(row["conf_high"])
    if math.isfinite(low) and math.isfinite(high):
        return f"{est} ({100 * low:.{digits}f}–{100 * high:.{digits}f}%)"
    return est


def num(value: float, digits: int = 0) -> str:
    """Thousands-separated number; missing → ``n/a``."""
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value:,.{digits}f}"


def num_ci(row: Mapping[str, Any] | pd.Series, digits: int = 1) -> str:
    """``4.2 (3.1 to 5.3)`` from a tidy row."""
    est = num(float(row["estimate"]), digits)
    low, high = float(row["conf_low"]), float(row["conf_high"])
    if math.isfinite(low) and math.isfinite(high):
        return f"{est} ({low:,.{digits}f} to {high:,.{digits}f})"
    return est


def level_text(level: float) -> str:
    return f"{100 * level:g}%"
