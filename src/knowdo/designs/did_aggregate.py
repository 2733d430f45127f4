"""Aggregations of ATT(g,t): simple, by group, by calendar time and by event time.

Callaway & Sant'Anna (2021, section 3) summarise the ATT(g,t) by weighted
averages whose weights are cohort shares P(G = g). Every aggregate is a linear
functional of the ATT(g,t) with weights that are themselves estimated, so its
influence function is ``inf @ w`` plus a term for the estimated weights, which
depends on a unit only through its cohort. We therefore carry each aggregate
as a pair ``(w, h)``: ``w`` over cells and ``h`` over cohorts, with influence
function ``inf @ w + h[cohort of unit]``. The analytic standard error and the
multiplier bootstrap (one set of draws for every aggregate) both work on this
pair. Definitions follow R ``did``'s ``aggte`` (2.x), including its
``min_e``/``max_e``/``balance_e`` rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from knowdo.designs.did_attgt import AttGt

AggregationKind = Literal["simple", "group", "calendar", "dynamic"]
AGGREGATIONS: tuple[AggregationKind, ...] = ("simple", "group", "calendar", "dynamic")


@dataclass(frozen=True)
class Linear:
    """Parameters ``estimate[j] = att @ w[:, j]`` with influence function ``inf @ w[:, j] + h[cohort, j]``."""

    keys: np.ndarray
    estimate: np.ndarray
    w: np.ndarray
    h: np.ndarray

    def combine(self, coef: np.ndarray, extra_h: np.ndarray | None = None) -> Linear:
        """One parameter that is ``coef @ estimate`` (plus an extra weight-estimation term)."""
        h = self.h @ coef
        if extra_h is not None:
            h = h + extra_h
        return Linear(
            keys=np.array([np.nan]),
            estimate=np.array([float(self.estimate @ coef)]),
            w=(self.w @ coef)[:, None],
            h=h[:, None],
        )


@dataclass(frozen=True)
class Aggregation:
    """Components (event times, groups or periods) and the overall summary of one aggregation."""

    kind: AggregationKind
    components: Linear
    overall: Linear


@dataclass(frozen=True)
class CohortCoding:
    """Each unit's cohort as an index into ``values`` and the cohort shares ``share`` = P(G = g)."""

    values: np.ndarray
    code: np.ndarray
    share: np.ndarray

    @classmethod
    def from_cohorts(cls, cohort: np.ndarray) -> CohortCoding:
        values, code = np.unique(cohort, return_inverse=True)
        share = np.bincount(code, minlength=len(values)) / len(cohort)
        return cls(values=values, code=code, share=share)

    def index(self, groups: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.values, groups)


def _share_weighted(att: AttGt, coding: CohortCoding, cells: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Cohort-share weighted mean of the chosen cells, with its (w, h) pair.

    The weights are P(G = g_k) / sum_K P(G = g_j); the term for having
    estimated them reduces to ``h[c] = (A[c] - theta N[c]) / S`` where ``A[c]``
    sums the chosen ATT of cohort ``c``, ``N[c]`` counts them and ``S`` sums the
    shares (the same influence function as R did's ``wif``).
    """
    m = len(att.att)
    codes = coding.index(att.plan.group[cells])
    pg = coding.share[codes]
    total = pg.sum()
    values = att.att[cells]
    theta = float(pg @ values / total)
    w = np.zeros(m)
    w[cells] = pg / total
    a = np.bincount(codes, weights=values, minlength=len(coding.values))
    count = np.bincount(codes, minlength=len(coding.values))
    h = (a - theta * count) / total
    return theta, w, h


def _stack(keys: list[float], parts: list[tuple[float, np.ndarray, np.ndarray]], m: int, c: int) -> Linear:
    if not parts:
        return Linear(keys=np.array([]), estimate=np.array([]), w=np.zeros((m, 0)), h=np.zeros((c, 0)))
    return Linear(
        keys=np.asarray(keys, dtype=float),
        estimate=np.array([p[0] for p in parts]),
        w=np.column_stack([p[1] for p in parts]),
        h=np.column_stack([p[2] for p in parts]),
    )


def aggregate(
    att: AttGt,
    coding: CohortCoding,
    kind: AggregationKind,
    *,
    min_e: float = -np.inf,
    max_e: float = np.inf,
    balance_e: int | None = None,
) -> Aggregation:
    """Aggregate ATT(g,t) as R ``did::aggte(type=kind)`` does; cells not estimated are left out."""
    plan = att.plan
    m, c = len(att.att), len(coding.values)
    valid = att.valid
    group, time = plan.group, plan.time
    event = time - group
    post = valid & (group <= time) & (time <= group + max_e)

    if kind == "simple":
        theta, w, h = _share_weighted(att, coding, post)
        lin = Linear(keys=np.array([np.nan]), estimate=np.array([theta]), w=w[:, None], h=h[:, None])
        return Aggregation(kind=kind, components=lin, overall=lin)

    if kind == "group":
        keys: list[float] = []
        parts: list[tuple[float, np.ndarray, np.ndarray]] = []
        for g in np.unique(group):
            cells = post & (group == g)
            if not cells.any():
                continue
            w = np.where(cells, 1.0 / cells.sum(), 0.0)
            keys.append(float(g))
            # Within a group every cell has the same share, so the weights are equal and not estimated.
            parts.append((float(att.att[cells].mean()), w, np.zeros(c)))
        comp = _stack(keys, parts, m, c)
        codes = coding.index(comp.keys)
        pg = coding.share[codes]
        total = pg.sum()
        theta = float(pg @ comp.estimate / total)
        extra = np.zeros(c)
        extra[codes] = (comp.estimate - theta) / total
        return Aggregation(kind=kind, components=comp, overall=comp.combine(pg / total, extra))

    if kind == "calendar":
        keys, parts = [], []
        for t in np.unique(time[time >= group.min()]):
            cells = valid & (time == t) & (group <= time)
            if not cells.any():
                continue
            keys.append(float(t))
            parts.append(_share_weighted(att, coding, cells))
        comp = _stack(keys, parts, m, c)
        q = len(comp.keys)
        return Aggregation(kind=kind, components=comp, overall=comp.combine(np.full(q, 1.0 / q)))

    # dynamic (event study)
    include = np.ones(m, dtype=bool)
    eseq = np.unique(event[valid])
    if balance_e is not None:
        t_first, t_last = float(min(time.min(), plan.base.min())), float(time.max())
        include = (t_last - group) >= balance_e
        eseq = np.unique(event[valid & include])
        eseq = eseq[(eseq <= balance_e) & (eseq >= balance_e - t_last + t_first)]
    eseq = eseq[(eseq >= min_e) & (eseq <= max_e)]
    keys, parts = [], []
    for e in eseq:
        cells = valid & include & (event == e)
        if not cells.any():
            continue
        keys.append(float(e))
        parts.append(_share_weighted(att, coding, cells))
    comp = _stack(keys, parts, m, c)
    nonneg = (comp.keys >= 0).astype(float)
    if nonneg.sum() == 0:
        overall = comp.combine(np.zeros(len(comp.keys)))
        overall = Linear(keys=overall.keys, estimate=np.array([np.nan]), w=overall.w, h=overall.h)
    else:
        overall = comp.combine(nonneg / nonneg.sum())
    return Aggregation(kind="dynamic", components=comp, overall=overall)


def influence(lin: Linear, inf: np.ndarray, coding: CohortCoding) -> np.ndarray:
    """``n x q`` influence functions of the parameters of ``lin``."""
    return inf @ lin.w + lin.h[coding.code]
