"""Small helpers shared by :mod:`knowdo.strategies` and :mod:`knowdo.codesign`: option checks and JSON.

``check_option`` mirrors the designs' helper of the same name so that a
wrong string option reads the same everywhere; ``jsonable`` turns result
contents into plain JSON (NaN and infinities become ``None``).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from knowdo.errors import ParameterError


def check_option(name: str, value: object, allowed: Sequence[str]) -> str:
    """Return ``value`` if it is one of ``allowed``, else raise ParameterError naming them.

    >>> check_option("rule", "percent", ("percent", "rand_ucla"))
    'percent'
    """
    if not isinstance(value, str) or value not in allowed:
        choices = ", ".join(repr(a) for a in allowed)
        raise ParameterError(f"{name}={value!r} is not accepted; use one of {choices}.")
    return value


def jsonable(value: Any) -> Any:
    """Plain JSON types for ``value`` (frames become lists of records; NaN, NaT and NA become None)."""
    if value is None or isinstance(value, str | bool):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        f = float(value)
        return f if math.isfinite(f) else None
    if isinstance(value, pd.DataFrame):
        return [jsonable(r) for r in value.to_dict(orient="records")]
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset | np.ndarray | pd.Series):
        items = value.tolist() if isinstance(value, np.ndarray | pd.Series) else list(value)
        return [jsonable(v) for v in items]
    if value is pd.NaT or value is pd.NA:
        return None
    if isinstance(value, pd.Timestamp):
        return value.date().isoformat() if value == value.normalize() else value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return str(value)


def require_columns(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    """Raise ParameterError naming the columns ``frame`` lacks."""
    if not isinstance(frame, pd.DataFrame):
        raise ParameterError(f"{what}: expected a pandas DataFrame; saw {type(frame).__name__}")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ParameterError(
            f"{what}: missing column(s) {', '.join(missing)}; the table has {', '.join(map(str, frame.columns))}."
        )
