"""Small helpers shared by the equity modules: option checking and JSON conversion.

One place lists the allowed values of every string option (``check_option``),
so each error message names the parameter, the value seen and what is allowed.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from knowdo.errors import ParameterError

# 95% is the reporting convention of WHO HEAT and of the StaRI literature (frameworks.md sections 4 and 6).
DEFAULT_LEVEL = 0.95


def check_option(name: str, value: object, allowed: Iterable[str]) -> str:
    """Return ``value`` when it is one of ``allowed``; otherwise raise a :class:`ParameterError` listing them."""
    options = tuple(allowed)
    if not isinstance(value, str) or value not in options:
        raise ParameterError(f"'{name}' must be one of {', '.join(map(repr, options))}; got {value!r}.")
    return value


def check_level(level: float) -> float:
    """Return ``level`` when it lies strictly between 0 and 1."""
    if isinstance(level, bool) or not isinstance(level, int | float) or not 0.0 < float(level) < 1.0:
        raise ParameterError(f"'level' must be a number between 0 and 1, such as 0.95; got {level!r}.")
    return float(level)


def check_positive_int(name: str, value: object, minimum: int = 1) -> int:
    """Return ``value`` when it is an integer of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or int(value) < minimum:
        raise ParameterError(f"'{name}' must be an integer of at least {minimum}; got {value!r}.")
    return int(value)


def check_frame(frame: object, required: Iterable[str], name: str) -> pd.DataFrame:
    """Raise :class:`ParameterError` unless ``frame`` is a DataFrame holding every ``required`` column."""
    if not isinstance(frame, pd.DataFrame):
        raise ParameterError(f"'{name}' must be a pandas DataFrame; got {type(frame).__name__}.")
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise ParameterError(
            f"'{name}' is missing column(s) {', '.join(missing)}; it has {', '.join(map(str, frame.columns))}."
        )
    return frame


def jsonable(value: Any) -> Any:
    """Convert numpy/pandas values to plain JSON types; NaN and NaT become ``None``."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, pd.DataFrame):
        return [jsonable(r) for r in value.to_dict(orient="records")]
    if isinstance(value, list | tuple | np.ndarray | pd.Series):
        return [jsonable(v) for v in list(value)]
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return None if not math.isfinite(float(value)) else float(value)
    if value is None or value is pd.NaT or value is pd.NA:
        return None
    if isinstance(value, pd.Timestamp | dt.date):
        return value.isoformat()
    if isinstance(value, str | int):
        return value
    return str(value)
