"""Primary small-cell suppression for every published table.

A count between 1 and ``threshold - 1`` could identify someone, so it is
blanked, and so is every figure derived from it in the same row (a rate, its
confidence limits). Zeros are shown: a zero count is not disclosive under the
CMS/PCORnet convention this default follows (data-standards.md section 7).
Optional rounding to a base (5 under the NHS convention) is applied to the
counts that survive.

Written here rather than taken from ``acro``: acro recomputes margins without
the suppressed cells (changing published totals) and works on its own
crosstab objects, while knowdo suppresses tidy frames whose rows are already
computed estimates.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from knowdo.errors import ParameterError

DEFAULT_THRESHOLD = 11  # CMS / PCORnet: cells 1-10 are not shown (data-standards.md section 7)


def suppress_table(
    frame: pd.DataFrame,
    *,
    count_columns: Sequence[str],
    threshold: int = DEFAULT_THRESHOLD,
    rounding: int | None = None,
    dependent_columns: Sequence[str] = (),
) -> pd.DataFrame:
    """Return a copy of ``frame`` with small counts and what depends on them blanked.

    Parameters
    ----------
    frame
        A tidy table about to be published.
    count_columns
        Columns holding counts of people (numerators and denominators).
    threshold
        Smallest count that may be shown; counts in ``1 .. threshold - 1`` are blanked.
    rounding
        When set, surviving counts are rounded to the nearest multiple.
    dependent_columns
        Columns derived from the counts (estimates, limits), blanked in any row
        where a count was blanked.

    Examples
    --------
    >>> t = pd.DataFrame({"numerator": [3, 40], "denominator": [50, 80], "estimate": [0.06, 0.5]})
    >>> out = suppress_table(t, count_columns=["numerator", "denominator"], dependent_columns=["estimate"])
    >>> out["estimate"].tolist()
    [nan, 0.5]
    """
    if threshold < 1:
        raise ParameterError(f"threshold must be at least 1, saw {threshold}")
    if rounding is not None and rounding < 1:
        raise ParameterError(f"rounding must be a positive integer, saw {rounding}")
    missing = [c for c in [*count_columns, *dependent_columns] if c not in frame.columns]
    if missing:
        raise ParameterError(f"suppress_table: columns {missing} are not in the table ({list(frame.columns)})")
    out = frame.copy()
    small = np.zeros(len(out), dtype=bool)
    for column in count_columns:
        values = pd.to_numeric(out[column], errors="coerce").to_numpy(dtype=float)
        small |= (values > 0) & (values < threshold)
    for column in [*count_columns, *dependent_columns]:
        out[column] = out[column].astype(float).where(~small)
    if rounding:
        for column in count_columns:
            out[column] = (out[column] / rounding).round() * rounding
    out["suppressed"] = small
    return out
