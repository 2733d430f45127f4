"""Disclosure control for every published table: primary and complementary suppression, and its proof.

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
from dataclasses import dataclass
from typing import Any, Literal

import altair as alt
import numpy as np
import pandas as pd
from scipy import optimize, sparse

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


# =========================================================================== complementary suppression
#
# Primary suppression alone is not enough when totals are published: a row
# holding one blanked cell gives it away by subtraction. protect_table adds
# complementary (secondary) suppressions until every published equation
# (each margin equals the sum of its parts, along rows, columns and every
# hierarchy level) holds either no or at least two hidden cells, then proves
# with linear programming that no hidden cell is pinned to a single value by
# what is released (audit_recoverability). Where the proof fails, it hides one
# more cell next to the exposed one and repeats. This is the
# suppress-until-stable-then-audit procedure data-standards.md section 7
# describes (R rmoriedata::cellsupp, sdcTable::protectTable); written here
# because the Python options either change the published totals (acro) or
# need the tau-Argus binary (piargus).

TOTAL = "Total"  # label of margin rows and columns in a protected table
Status = Literal["released", "primary", "complementary"]
_MAX_ROUNDS = 1000  # each round hides at least one more cell, so this bounds any table under 1,000 cells


@dataclass(frozen=True)
class _Structure:
    """Cells of a table with all its margins, and the equations linking them (parent = sum of children)."""

    keys: pd.DataFrame  # one row per cell: the row and column key columns (TOTAL in margins)
    is_margin: np.ndarray
    equations: tuple[np.ndarray, ...]  # each: cell indices, parent first
    matrix: sparse.csr_matrix  # equations as rows: +1 parent, -1 children


def _nodes(frame: pd.DataFrame, names: Sequence[str]) -> list[tuple[str, ...]]:
    """Leaf key tuples present in ``frame`` plus every subtotal and the total (TOTAL padding)."""
    leaves = sorted({tuple(map(str, t)) for t in frame[list(names)].itertuples(index=False)})
    nodes: set[tuple[str, ...]] = set(leaves)
    depth = len(names)
    for leaf in leaves:
        for level in range(depth):
            nodes.add(leaf[:level] + (TOTAL,) * (depth - level))
    return sorted(nodes, key=lambda t: tuple((x == TOTAL, x) for x in t))


def _children(nodes: list[tuple[str, ...]]) -> dict[tuple[str, ...], list[tuple[str, ...]]]:
    """Map each non-leaf node to the nodes one level below it."""
    out: dict[tuple[str, ...], list[tuple[str, ...]]] = {}
    for node in nodes:
        depth = sum(x != TOTAL for x in node)
        if depth == 0:
            continue
        parent = node[: depth - 1] + (TOTAL,) * (len(node) - depth + 1)
        if node[depth:] == (TOTAL,) * (len(node) - depth):
            out.setdefault(parent, []).append(node)
    return out


def _structure(frame: pd.DataFrame, rows: Sequence[str], columns: Sequence[str]) -> _Structure:
    row_nodes, col_nodes = _nodes(frame, rows), _nodes(frame, columns)
    index = {(r, c): i for i, (r, c) in enumerate((r, c) for r in row_nodes for c in col_nodes)}
    keys = pd.DataFrame([r + c for r in row_nodes for c in col_nodes], columns=[*rows, *columns])
    is_margin = np.array([TOTAL in r or TOTAL in c for r in row_nodes for c in col_nodes])
    equations: list[np.ndarray] = []
    for parent, kids in _children(row_nodes).items():
        for c in col_nodes:
            equations.append(np.array([index[(parent, c)]] + [index[(k, c)] for k in kids]))
    for parent, kids in _children(col_nodes).items():
        for r in row_nodes:
            equations.append(np.array([index[(r, parent)]] + [index[(r, k)] for k in kids]))
    data, row_idx, col_idx = [], [], []
    for e, cells in enumerate(equations):
        data += [1.0] + [-1.0] * (len(cells) - 1)
        row_idx += [e] * len(cells)
        col_idx += list(cells)
    matrix = sparse.csr_matrix((data, (row_idx, col_idx)), shape=(len(equations), len(keys)))
    return _Structure(keys, is_margin, tuple(equations), matrix)


def _check_keys(frame: pd.DataFrame, rows: Sequence[str], columns: Sequence[str], value: str) -> None:
    missing = [c for c in [*rows, *columns, value] if c not in frame.columns]
    if missing:
        raise ParameterError(f"protect_table: columns {missing} are not in the table ({list(frame.columns)}).")
    if not rows or not columns:
        raise ParameterError("protect_table: give at least one row key and one column key.")
    for name in [*rows, *columns]:
        if (frame[name].astype(str) == TOTAL).any():
            raise ParameterError(f"protect_table: column {name!r} already holds {TOTAL!r}; pass the inner cells only.")


def _names(arg: str | Sequence[str]) -> tuple[str, ...]:
    return (arg,) if isinstance(arg, str) else tuple(arg)


@dataclass(frozen=True)
class RecoverabilityAudit:
    """For each hidden cell, the smallest and largest value consistent with everything released.

    A cell is *determined* when its feasible range holds a single whole
    number: counts are integers, so a range of [3.0, 3.6] gives the cell away.
    ``witnesses`` (kept on request) holds, per hidden cell, two complete tables
    consistent with the release that reach the lower and the upper bound:
    the proof, checkable without trusting the solver.
    """

    cells: pd.DataFrame  # keys, lower, upper, determined
    equations: int
    rank: int
    witnesses: pd.DataFrame | None = None  # keys, cell, bound ('lower'/'upper'), value

    @property
    def ok(self) -> bool:
        return not bool(self.cells["determined"].any()) if len(self.cells) else True

    def summary(self) -> str:
        if not len(self.cells):
            return "recoverability audit: nothing hidden."
        bad = int(self.cells["determined"].sum())
        narrowest = (self.cells["upper"] - self.cells["lower"]).min()
        return (f"recoverability audit: {len(self.cells)} hidden cell(s), {bad} determined by the release; "
                f"narrowest feasible range {narrowest:g} ({self.equations} published equations, rank {self.rank}).")

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "equations": self.equations, "rank": self.rank, "cells": _records(self.cells)}


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    out = []
    for rec in frame.to_dict(orient="records"):
        out.append({str(k): (None if isinstance(v, float) and not np.isfinite(v) else
                             (v.item() if isinstance(v, np.generic) else v)) for k, v in rec.items()})
    return out


def _bounds_and_witnesses(
    structure: _Structure,
    lower: np.ndarray,
    upper: np.ndarray,
    hidden: np.ndarray,
    keep_witnesses: bool,
) -> tuple[np.ndarray, np.ndarray, list[tuple[int, str, np.ndarray]]]:
    """Min and max of each hidden cell subject to the equations and each cell's known bounds."""
    n = len(structure.keys)
    bounds = [(float(lo_), float(up_) if np.isfinite(up_) else None) for lo_, up_ in zip(lower, upper, strict=True)]
    zeros = np.zeros(structure.matrix.shape[0])
    lo = np.full(n, np.nan)
    hi = np.full(n, np.nan)
    witnesses: list[tuple[int, str, np.ndarray]] = []
    for k in np.flatnonzero(hidden):
        cost = np.zeros(n)
        for sign, store, label in ((1.0, lo, "lower"), (-1.0, hi, "upper")):
            cost[k] = sign
            res = optimize.linprog(cost, A_eq=structure.matrix, b_eq=zeros, bounds=bounds, method="highs")
            if res.status == 3:  # unbounded: no finite upper limit
                store[k] = np.inf if sign < 0 else -np.inf
                continue
            if res.status != 0:
                raise ParameterError(f"audit_recoverability: the released figures are inconsistent ({res.message}).")
            store[k] = sign * res.fun
            if keep_witnesses:
                witnesses.append((int(k), label, res.x.copy()))
    return lo, hi, witnesses


def _determined(lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """True where [lower, upper] holds at most one whole number (counts are integers)."""
    eps = 1e-7
    with np.errstate(invalid="ignore"):
        count = np.floor(upper + eps) - np.ceil(lower - eps) + 1
    return np.isfinite(count) & (count <= 1)


def audit_recoverability(
    table: pd.DataFrame,
    *,
    rows: str | Sequence[str],
    columns: str | Sequence[str],
    value: str,
    rounding: int | None = None,
    keep_witnesses: bool = False,
) -> RecoverabilityAudit:
    """Prove that no hidden cell of a published table can be worked out from what is shown.

    ``table`` is the table as published: every cell including the margins
    (labelled ``"Total"`` in the key columns, as :func:`protect_table` writes
    them), with ``value`` missing (NaN) where a cell is hidden. For each hidden
    cell two linear programmes find its smallest and largest value such that
    every margin equals the sum of its parts, every shown cell keeps its
    value (within +/- rounding/2 when figures were rounded) and no count is
    negative. The cell is safe when that range holds more than one whole number.

    Examples
    --------
    >>> t = pd.DataFrame({"r": ["a", "a", "b", "b"], "c": ["x", "y", "x", "y"], "n": [3, 40, 50, 60]})
    >>> p = protect_table(t, rows="r", columns="c", value="n", threshold=11)
    >>> audit_recoverability(p.table, rows="r", columns="c", value="n").ok
    True
    """
    rows_, columns_ = _names(rows), _names(columns)
    missing = [c for c in [*rows_, *columns_, value] if c not in table.columns]
    if missing:
        raise ParameterError(f"audit_recoverability: columns {missing} are not in the table ({list(table.columns)}).")
    inner = table
    for name in [*rows_, *columns_]:
        inner = inner[inner[name].astype(str) != TOTAL]
    structure = _structure(inner, rows_, columns_)
    published = table.assign(**{n: table[n].astype(str) for n in [*rows_, *columns_]})
    merged = structure.keys.merge(published[[*rows_, *columns_, value]], on=[*rows_, *columns_], how="left")
    shown = pd.to_numeric(merged[value], errors="coerce").to_numpy(dtype=float)
    hidden = ~np.isfinite(shown)
    half = (rounding or 0) / 2.0
    lower = np.where(hidden, 0.0, np.maximum(shown - half, 0.0))
    upper = np.where(hidden, np.inf, shown + half)
    lo, hi, found = _bounds_and_witnesses(structure, lower, upper, hidden, keep_witnesses)
    cells = structure.keys[hidden].copy()
    cells["lower"] = lo[hidden]
    cells["upper"] = hi[hidden]
    cells["determined"] = _determined(lo[hidden], hi[hidden])
    witnesses = None
    if keep_witnesses:
        parts = []
        for k, label, x in found:
            part = structure.keys.copy()
            part["cell"] = k
            part["bound"] = label
            part[value] = x
            parts.append(part)
        witnesses = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    rank = int(np.linalg.matrix_rank(structure.matrix.toarray())) if structure.matrix.shape[0] else 0
    return RecoverabilityAudit(cells.reset_index(drop=True), structure.matrix.shape[0], rank, witnesses)


@dataclass(frozen=True)
class ProtectedTable:
    """A table with its margins, ready to publish: small cells and what would reveal them hidden.

    ``table`` has the key columns (margins labelled ``"Total"``), the value
    (NaN where hidden, rounded when asked) and ``status``: ``released``,
    ``primary`` (a small count) or ``complementary`` (hidden to protect a small
    count). ``audit`` is the recoverability proof on exactly what is published.
    """

    table: pd.DataFrame
    rows: tuple[str, ...]
    columns: tuple[str, ...]
    value: str
    threshold: int
    rounding: int | None
    rounds: int
    audit: RecoverabilityAudit

    @property
    def hidden(self) -> int:
        return int((self.table["status"] != "released").sum())

    def to_frame(self) -> pd.DataFrame:
        return self.table.copy()

    def tidy(self) -> pd.DataFrame:
        return self.to_frame()

    def wide(self) -> pd.DataFrame:
        """Rows by columns, as a reader sees the published table."""
        return self.table.pivot_table(index=list(self.rows), columns=list(self.columns), values=self.value,
                                      aggfunc="first", dropna=False, sort=False)

    def summary(self) -> str:
        status = self.table["status"].value_counts()
        return (f"{len(self.table)} cells published with margins; {status.get('primary', 0)} primary and "
                f"{status.get('complementary', 0)} complementary suppressions (threshold {self.threshold}"
                f"{', rounded to ' + str(self.rounding) if self.rounding else ''}; {self.rounds} round(s)). "
                + self.audit.summary())

    def to_dict(self) -> dict[str, Any]:
        return {"threshold": self.threshold, "rounding": self.rounding, "rows": list(self.rows),
                "columns": list(self.columns), "value": self.value, "cells": _records(self.table),
                "audit": self.audit.to_dict()}

    def plot(self) -> alt.Chart:
        """Grid of the published table, coloured by what was hidden and why."""
        data = self.table.copy()
        data["row"] = data[list(self.rows)].astype(str).agg(" / ".join, axis=1)
        data["column"] = data[list(self.columns)].astype(str).agg(" / ".join, axis=1)
        base = alt.Chart(data).encode(x=alt.X("column:N", sort=None, title=None),
                                      y=alt.Y("row:N", sort=None, title=None))
        cells = base.mark_rect().encode(color=alt.Color("status:N", title="cell"))
        text = base.mark_text().encode(text=alt.Text(f"{self.value}:Q", format=",.0f"))
        return cells + text


def _pick(candidates: np.ndarray, values: np.ndarray, is_margin: np.ndarray) -> int:
    """The cell to hide next: an inner cell before a margin, a non-zero before a zero, then the smallest."""
    order = np.lexsort((values[candidates], values[candidates] == 0, is_margin[candidates]))
    return int(candidates[order[0]])


def protect_table(
    table: pd.DataFrame,
    *,
    rows: str | Sequence[str],
    columns: str | Sequence[str],
    value: str,
    threshold: int = DEFAULT_THRESHOLD,
    rounding: int | None = None,
) -> ProtectedTable:
    """Add margins to a table of counts and hide small cells so that none can be recovered.

    Parameters
    ----------
    table
        Inner cells only: one row per combination of the ``rows`` and
        ``columns`` keys, with the count in ``value``. Combinations absent from
        the table count as zero.
    rows, columns
        Key column(s). Several columns form a hierarchy, outer first (e.g.
        ``["district", "facility"]``): subtotals are published at every level.
    value
        The count column.
    threshold
        Smallest count that may be shown; any cell (margins included) holding
        ``1 .. threshold - 1`` is hidden (primary suppression).
    rounding
        When set, released counts are rounded to the nearest multiple.

    Returns
    -------
    ProtectedTable
        With every margin, a ``status`` per cell and the recoverability audit.

    Examples
    --------
    >>> t = pd.DataFrame({"r": ["a", "a", "b", "b"], "c": ["x", "y", "x", "y"], "n": [3, 40, 50, 60]})
    >>> p = protect_table(t, rows="r", columns="c", value="n", threshold=11)
    >>> p.table.set_index(["r", "c"])["status"].to_dict()[("a", "x")], p.hidden
    ('primary', 4)
    """
    rows_, columns_ = _names(rows), _names(columns)
    if not isinstance(table, pd.DataFrame):
        raise ParameterError(f"protect_table: 'table' must be a pandas DataFrame; got {type(table).__name__}.")
    if threshold < 1:
        raise ParameterError(f"protect_table: threshold must be at least 1, saw {threshold}.")
    if rounding is not None and rounding < 1:
        raise ParameterError(f"protect_table: rounding must be a positive integer, saw {rounding}.")
    _check_keys(table, rows_, columns_, value)
    if table.duplicated([*rows_, *columns_]).any():
        raise ParameterError(f"protect_table: more than one row per {[*rows_, *columns_]} combination.")
    counts = pd.to_numeric(table[value], errors="coerce")
    if counts.isna().any() or (counts < 0).any():
        raise ParameterError(
            f"protect_table: {value!r} must hold non-negative counts; saw {table[value].tolist()[:5]}."
        )
    inner = table[[*rows_, *columns_]].astype(str).assign(**{value: counts.astype(float)})
    structure = _structure(inner, rows_, columns_)
    values = _fill_margins(structure, inner, rows_, columns_, value)
    primary = (values > 0) & (values < threshold)
    hidden = primary.copy()
    shown = np.round(values / rounding) * rounding if rounding else values
    rounds = 0
    while True:
        rounds += 1
        if any(hidden[cells].sum() == 1 for cells in structure.equations):
            for cells in structure.equations:
                if hidden[cells].sum() == 1:
                    free = cells[~hidden[cells]]
                    hidden[_pick(free, values, structure.is_margin)] = True
            continue
        published = structure.keys.copy()
        published[value] = np.where(hidden, np.nan, shown)
        published["status"] = np.where(primary, "primary", np.where(hidden, "complementary", "released"))
        audit = audit_recoverability(published, rows=rows_, columns=columns_, value=value, rounding=rounding)
        if audit.ok or rounds >= _MAX_ROUNDS:
            break
        added = False
        exposed = audit.cells[audit.cells["determined"]]
        for key in exposed[[*rows_, *columns_]].itertuples(index=False):
            k = int(np.flatnonzero((structure.keys[[*rows_, *columns_]] == pd.Series(key, index=[*rows_, *columns_]))
                                   .all(axis=1).to_numpy())[0])
            near = np.unique(np.concatenate([c for c in structure.equations if k in c]))
            free = near[~hidden[near]]
            if free.size:
                hidden[_pick(free, values, structure.is_margin)] = True
                added = True
        if not added:  # nothing left to hide next to the exposed cells: report it through the audit
            break
    return ProtectedTable(published, rows_, columns_, value, threshold, rounding, rounds, audit)


def _fill_margins(
    structure: _Structure, inner: pd.DataFrame, rows: Sequence[str], columns: Sequence[str], value: str
) -> np.ndarray:
    """Cell values with every margin computed from the inner cells (absent inner cells are zero)."""
    names = [*rows, *columns]
    merged = structure.keys.merge(inner, on=names, how="left")
    values = merged[value].fillna(0.0).to_numpy(dtype=float, copy=True)
    leaves = structure.keys[~structure.is_margin].assign(_v=values[~structure.is_margin])
    margins = structure.keys[structure.is_margin]
    # Group the leaves by each pattern of TOTAL positions once, then look every margin up.
    patterns = margins[names] == TOTAL
    for pattern, group in margins.groupby([patterns[n] for n in names], sort=False):
        kept = [n for n, is_total in zip(names, pattern, strict=True) if not is_total]
        if kept:
            sums = leaves.groupby(kept)["_v"].sum()
            index = pd.MultiIndex.from_frame(group[kept]) if len(kept) > 1 else pd.Index(group[kept[0]])
            values[group.index.to_numpy()] = sums.reindex(index).fillna(0.0).to_numpy(dtype=float)
        else:
            values[group.index.to_numpy()] = leaves["_v"].sum()
    return values
