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
from scipy import linalg, optimize, sparse
from scipy.sparse import csgraph

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
AUDIT_LIMIT = 60  # own setting: about 120 small linear programmes per group keeps a report build in seconds
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


# =========================================================================== linked tables as one system of cells
#
# Published outcome tables are not one two-way grid: the same count appears
# under several equity dimensions (each summing to the same "all" row), under
# places (sites and districts summing to the programme) and under several
# measures. protect_cells works on any such system: a vector of cells and the
# equations linking them (parent = sum of children + a known offset). The
# offset absorbs margins that are not exactly additive (a person counted in
# two strata, an estimated denominator); it is treated as known to the reader,
# the cautious assumption. ``ties`` hides cells together (the numerator and
# denominator of one row; the same count shown under two measures), so hiding
# one copy never leaves another in view.


@dataclass(frozen=True)
class CellProtection:
    """Which cells of a linked system are hidden, why, and the proof that none can be solved back.

    ``lower``/``upper`` hold, for each hidden cell, the smallest and largest
    value consistent with everything released (NaN for released cells);
    ``determined`` flags hidden cells whose range holds at most one whole number.
    """

    hidden: np.ndarray
    primary: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    determined: np.ndarray
    rounds: int
    unaudited: np.ndarray  # hidden cells in groups too large for the solver: protected by the two-per-line rule only

    @property
    def ok(self) -> bool:
        return not bool(self.determined.any())

    @property
    def complementary(self) -> np.ndarray:
        return self.hidden & ~self.primary

    def summary(self) -> str:
        return (f"{int(self.primary.sum())} primary and {int(self.complementary.sum())} complementary suppressions "
                f"in {len(self.hidden)} linked cells; {int(self.determined.sum())} hidden cell(s) determined by the "
                f"release ({self.rounds} round(s)).")


def _incidence(n: int, equations: Sequence[np.ndarray]) -> sparse.csr_matrix:
    """Equations x cells, 1 where a cell takes part in an equation (parent or child)."""
    rows = np.concatenate([np.full(len(e), i) for i, e in enumerate(equations)]) if equations else np.zeros(0, int)
    cols = np.concatenate(list(equations)) if equations else np.zeros(0, int)
    return sparse.csr_matrix((np.ones(len(cols)), (rows, cols)), shape=(len(equations), n))


def _signed(n: int, equations: Sequence[np.ndarray]) -> sparse.csr_matrix:
    """Equations x cells, +1 for the parent and -1 for each child."""
    data, rows, cols = [], [], []
    for i, cells in enumerate(equations):
        data += [1.0] + [-1.0] * (len(cells) - 1)
        rows += [i] * len(cells)
        cols += list(cells)
    return sparse.csr_matrix((data, (rows, cols)), shape=(len(equations), n))


def equation_offsets(values: np.ndarray, equations: Sequence[np.ndarray]) -> np.ndarray:
    """For each equation, parent minus the sum of its children (zero where the margin is exactly additive)."""
    return np.asarray(_signed(len(values), equations) @ np.asarray(values, dtype=float), dtype=float)


def _blocks(
    signed: sparse.csr_matrix, offsets: np.ndarray, shown: np.ndarray, half: float
) -> list[tuple[np.ndarray, np.ndarray, sparse.csr_matrix, np.ndarray, list[tuple[float, float | None]]]]:
    """Independent linear systems to solve: (variables, hidden cells to bound, A, b, bounds)."""
    hidden = ~np.isfinite(shown)
    if half:
        # Rounded releases are intervals that other equations narrow further: solve the whole system at once.
        every = np.arange(len(shown))
        bounds = [(0.0, None) if hidden[i] else (max(shown[i] - half, 0.0), shown[i] + half) for i in every]
        return [(every, np.flatnonzero(hidden), signed, offsets, bounds)]
    hidden_idx = np.flatnonzero(hidden)
    touching = np.flatnonzero(np.asarray(abs(signed) @ hidden.astype(float)).ravel() > 0)
    sub = abs(signed[touching][:, hidden_idx])
    count, labels = csgraph.connected_components((sub.T @ sub).tocsr(), directed=False)
    known = np.where(hidden, 0.0, shown)
    out: list[tuple[np.ndarray, np.ndarray, sparse.csr_matrix, np.ndarray, list[tuple[float, float | None]]]] = []
    for g in range(count):
        members = hidden_idx[labels == g]
        eq = touching[np.asarray(sub[:, labels == g].sum(axis=1)).ravel() > 0]
        block = signed[eq]
        # Released cells are constants: move them to the right-hand side.
        free: list[tuple[float, float | None]] = [(0.0, None)] * len(members)
        out.append((members, members, block[:, members], offsets[eq] - block @ known, free))
    return out


def _one_equation(variables: np.ndarray, a: sparse.csr_matrix, b: float, lower: np.ndarray, upper: np.ndarray) -> None:
    """Closed-form ranges when the hidden cells meet in one equation: sum of +/-x = b with every x >= 0."""
    coef = np.asarray(a.todense()).ravel()
    for i, cell in enumerate(variables):
        sign = coef[i]
        rest = np.delete(coef, i) * sign  # the equation scaled so that x_i has coefficient +1
        rhs = b * sign
        # x_i = rhs - sum(rest_j x_j): a partner of the same sign can absorb any amount, one of the other sign
        # can add without limit.
        lower[cell] = 0.0 if (rest > 0).any() else max(rhs, 0.0)
        upper[cell] = np.inf if (rest < 0).any() else rhs


def cell_bounds(
    shown: np.ndarray,
    equations: Sequence[np.ndarray],
    offsets: np.ndarray,
    *,
    rounding: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Smallest and largest value of each hidden (NaN) cell consistent with the released cells and equations.

    Each hidden cell's range comes from two linear programmes over the
    connected group of hidden cells it belongs to (released cells are
    constants, or intervals of +/- rounding/2 when figures were rounded;
    counts are not negative). Released cells get NaN.
    """
    shown = np.asarray(shown, dtype=float)
    n = len(shown)
    lower = np.full(n, np.nan)
    upper = np.full(n, np.nan)
    if np.isfinite(shown).all():
        return lower, upper
    signed = _signed(n, equations)
    for variables, targets, a, b, bounds in _blocks(signed, np.asarray(offsets, dtype=float), shown,
                                                     (rounding or 0) / 2.0):
        lower[targets], upper[targets] = _solve_block(variables, targets, a, b, bounds, closed_form=not rounding)
    return lower, upper


def _solve_block(
    variables: np.ndarray,
    targets: np.ndarray,
    a: sparse.csr_matrix,
    b: np.ndarray,
    bounds: list[tuple[float, float | None]],
    *,
    closed_form: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Min and max of each target cell over {x : a x = b, x within bounds}."""
    lower = np.full(len(targets), np.nan)
    upper = np.full(len(targets), np.nan)
    position = {int(v): i for i, v in enumerate(variables)}
    if a.shape[0] == 1 and closed_form:
        low, up = np.full(len(variables), np.nan), np.full(len(variables), np.nan)
        _one_equation(np.arange(len(variables)), a, float(b[0]), low, up)
        where = [position[int(t)] for t in targets]
        return low[where], up[where]
    for t, cell in enumerate(targets):
        cost = np.zeros(len(variables))
        for sign, store in ((1.0, lower), (-1.0, upper)):
            cost[position[int(cell)]] = sign
            res = optimize.linprog(cost, A_eq=a, b_eq=b, bounds=bounds, method="highs")
            if res.status == 3:  # unbounded: no finite upper limit
                store[t] = np.inf if sign < 0 else -np.inf
            elif res.status != 0:
                raise ParameterError(f"cell_bounds: the released figures are inconsistent ({res.message}).")
            else:
                store[t] = sign * res.fun
    return lower, upper


def _movable(truth: np.ndarray, a: np.ndarray) -> np.ndarray:
    """Hidden cells the truth can be moved by a whole count along one null direction of ``a``, staying >= 0.

    A sufficient test of safety that needs no solver: if ``d`` solves
    ``a @ d = 0`` with ``d_k = 1``, then ``truth + t d`` is consistent with
    the release for every ``t`` keeping all cells non-negative; a step of 1
    either way shows the cell holds two possible whole numbers.
    """
    if a.shape[0] == 0:
        return np.ones(len(truth), dtype=bool)
    null = linalg.null_space(a)
    out = np.zeros(len(truth), dtype=bool)
    for d in null.T:
        steps = np.abs(d) > 1e-9
        for k in np.flatnonzero(steps & ~out):
            e = d / d[k]
            up = np.min(truth[e < -1e-12] / -e[e < -1e-12], initial=np.inf)
            down = np.min(truth[e > 1e-12] / e[e > 1e-12], initial=np.inf)
            out[k] = max(up, down) >= 1 - 1e-9
    return out


def _bounds_where_needed(
    shown: np.ndarray,
    values: np.ndarray,
    equations: Sequence[np.ndarray],
    offsets: np.ndarray,
    sensitive: np.ndarray,
    cache: dict[tuple[int, ...], tuple[np.ndarray, np.ndarray]],
    audit_limit: int,
    unaudited: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Feasible ranges of the hidden sensitive cells: solver only where the null-direction test cannot show safety.

    Cells shown safe get the range [truth - 1, truth + 1] (enough for the
    whole-number test); other hidden cells get NaN (not checked). Groups of
    hidden cells already checked in an earlier round come from ``cache``.
    """
    n = len(shown)
    lower = np.full(n, np.nan)
    upper = np.full(n, np.nan)
    if np.isfinite(shown).all():
        return lower, upper
    signed = _signed(n, equations)
    for members, _, a, b, _ in _blocks(signed, offsets, shown, 0.0):
        targets = members[sensitive[members]]
        if not targets.size:
            continue
        key = tuple(int(m) for m in members)
        if key not in cache:
            truth = values[members]
            if len(members) > audit_limit:
                # Too large to prove cell by cell here: every equation already holds two or more hidden cells.
                cache[key] = (np.full(len(targets), -np.inf), np.full(len(targets), np.inf))
                unaudited[targets] = True
            else:
                local = np.flatnonzero(sensitive[members])
                safe = (_movable(truth, a.toarray())[local] if a.shape[0] > 1
                        else np.zeros(len(targets), dtype=bool))
                lo, hi = values[targets] - 1.0, values[targets] + 1.0
                if not safe.all():
                    found_lo, found_hi = _solve_block(members, targets[~safe], a, b, [(0.0, None)] * len(members))
                    lo[~safe], hi[~safe] = found_lo, found_hi
                cache[key] = (lo, hi)
        lower[targets], upper[targets] = cache[key]
    return lower, upper


def _close_ties(hidden: np.ndarray, ties: np.ndarray | None) -> np.ndarray:
    if ties is None:
        return hidden
    groups = np.zeros(int(ties.max()) + 1 if len(ties) else 0, dtype=bool)
    groups[ties[hidden]] = True
    return hidden | groups[ties]


def protect_cells(
    values: np.ndarray,
    equations: Sequence[np.ndarray],
    *,
    primary: np.ndarray,
    ties: np.ndarray | None = None,
    fixed: np.ndarray | None = None,
    rounding: int | None = None,
    audit_limit: int = AUDIT_LIMIT,
    sensitive: np.ndarray | None = None,
) -> CellProtection:
    """Complementary suppression on a linked system of cells, then the proof that nothing hidden can be solved.

    Parameters
    ----------
    values
        True value of every cell.
    equations
        Each an array of cell indices, the margin (parent) first, then its parts.
    primary
        Cells hidden by the primary rule (small counts and what goes with them).
    ties
        Optional group label per cell: a hidden cell hides its whole group.
    fixed
        Cells that are published whatever happens (e.g. a total shown in
        another table); never chosen for complementary suppression.
    rounding
        Base to which released counts are rounded, if any.
    sensitive
        Cells that must not be recoverable (default: the primary cells
        holding a non-zero count). A hidden zero, or a large count hidden
        only to protect a neighbour, may be pinned down without disclosing
        anyone.
    audit_limit
        Largest group of linked hidden cells proved by linear programming.
        Larger groups (hundreds of small site-by-stratum cells) keep the
        rule that every published equation holds none or at least two
        hidden cells and are listed in ``unaudited``; prove such a table with
        :func:`audit_recoverability` when it is published whole.

    Examples
    --------
    >>> eqs = [np.array([0, 1, 2, 3])]  # total = a + b + c
    >>> p = protect_cells(np.array([60.0, 3.0, 27.0, 30.0]), eqs, primary=np.array([False, True, False, False]))
    >>> p.hidden.tolist(), p.ok
    ([False, True, True, False], True)
    """
    values = np.asarray(values, dtype=float)
    n = len(values)
    equations = [np.asarray(e, dtype=int) for e in equations]
    fixed = np.zeros(n, dtype=bool) if fixed is None else np.asarray(fixed, dtype=bool)
    primary = _close_ties(np.asarray(primary, dtype=bool), ties)
    # Only a small non-zero count identifies someone; a hidden zero or a large complementary cell may be bounded.
    sensitive = primary & (values > 0) if sensitive is None else np.asarray(sensitive, dtype=bool)
    hidden = primary.copy()
    offsets = equation_offsets(values, equations)
    incidence = _incidence(n, equations)
    is_margin = np.zeros(n, dtype=bool)
    for e in equations:
        is_margin[e[0]] = True
    rounds = 0
    cache: dict[tuple[int, ...], tuple[np.ndarray, np.ndarray]] = {}
    unaudited = np.zeros(n, dtype=bool)
    while True:
        rounds += 1
        counts = np.asarray(incidence @ hidden.astype(float)).ravel()
        added = False
        for i in np.flatnonzero(counts == 1):
            cells = equations[i]
            if hidden[cells].sum() != 1:  # an earlier pick in this pass already fixed it
                continue
            free = cells[~hidden[cells] & ~fixed[cells]]
            if free.size:
                hidden[_pick(free, values, is_margin)] = True
                hidden = _close_ties(hidden, ties)
                added = True
        if added and rounds < _MAX_ROUNDS:
            continue
        shown = np.where(hidden, np.nan, np.round(values / rounding) * rounding if rounding else values)
        if rounding and n <= audit_limit:
            lower, upper = cell_bounds(shown, equations, offsets, rounding=rounding)
        else:
            lower, upper = _bounds_where_needed(shown, values, equations, offsets, sensitive, cache, audit_limit,
                                                unaudited)
        determined = hidden & sensitive & _determined(lower, upper)
        if not determined.any() or rounds >= _MAX_ROUNDS:
            break
        for k in np.flatnonzero(determined):
            near = np.unique(np.concatenate([e for e in equations if k in e]))
            free = near[~hidden[near] & ~fixed[near]]
            if free.size:
                hidden[_pick(free, values, is_margin)] = True
                added = True
        hidden = _close_ties(hidden, ties)
        if not added:
            break
    unaudited &= hidden
    return CellProtection(hidden, primary, lower, upper, determined, rounds, unaudited)
