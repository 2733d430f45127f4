"""Group-time average treatment effects ATT(g,t) with their influence functions.

Callaway & Sant'Anna (2021, J. Econometrics 225(2)) estimate one 2x2
difference-in-differences per cohort ``g`` and period ``t``: the change in the
outcome of cohort ``g`` between a base period and ``t`` against the change in a
comparison group (never treated, or not yet treated by the later of the two
periods plus the anticipation window). Each 2x2 uses one of Sant'Anna & Zhao's
(2020, J. Econometrics 219(1)) panel estimators: outcome regression (``reg``),
standardised inverse probability weighting (``ipw``) or doubly robust
(``dr``); their influence functions, rescaled to the whole sample by
``n / n_cell`` as R ``did`` does, give analytic standard errors and feed the
multiplier bootstrap and every aggregation.

Without covariates the three estimators coincide and every cell is a pair of
group means, so all cells are computed at once as column operations on
``n x cells`` arrays. With covariates, the cells that share a treated cohort,
a comparison set and the covariates' period share one logit and one
comparison-group regression design, so they are estimated together: the outcome
changes of all those cells form one matrix and each estimator is a handful of
matrix products (one batch per cohort with never-treated comparisons and
time-invariant covariates).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Literal

import numpy as np

from knowdo.designs.did_data import WidePanel
from knowdo.designs.did_inference import CohortInfluence, dense_influence, split_by_cohort

ControlGroup = Literal["nevertreated", "notyettreated"]
EstMethod = Literal["dr", "reg", "ipw"]
BasePeriod = Literal["varying", "universal"]
CONTROL_GROUPS: tuple[ControlGroup, ...] = ("nevertreated", "notyettreated")
EST_METHODS: tuple[EstMethod, ...] = ("dr", "reg", "ipw")
BASE_PERIODS: tuple[BasePeriod, ...] = ("varying", "universal")

# Propensity scores are capped below 1 and comparison units with scores at or
# above 0.995 get no weight: DRDID's drdid_panel / std_ipw_did_panel defaults.
PS_CAP = 1 - 1e-6
PS_TRIM = 0.995
# A cell whose preliminary propensity score reaches 0.999 is not estimated
# (overlap fails): R did's check before calling DRDID.
PS_OVERLAP = 0.999
# Newton steps for the logit stop when no coefficient moves more than this.
LOGIT_TOL = 1e-12
LOGIT_MAX_ITER = 100


@dataclass(frozen=True)
class CellPlan:
    """Which 2x2 comparison each ATT(g,t) is: group, period, base period and post flag."""

    group: np.ndarray
    time: np.ndarray
    base: np.ndarray
    t_idx: np.ndarray
    b_idx: np.ndarray
    post: np.ndarray
    reference: np.ndarray  # universal base period: the cell that is the base itself (ATT fixed at 0)


@dataclass(frozen=True)
class AttGt:
    """ATT(g,t) estimates and their influence functions, stored cohort by cohort.

    ``cohorts[c]`` holds the influence rows of the units of the ``c``-th
    cohort (ascending cohort, never treated last) over the cells they enter;
    :attr:`inf` is the same as one ``n x cells`` matrix, scaled so that the
    analytic standard error of cell ``k`` is ``sqrt(sum(inf[:, k] ** 2)) / n``
    (R ``did``'s convention). ``note`` says why a cell was not estimated (empty when it was).
    """

    plan: CellPlan
    att: np.ndarray
    cohorts: tuple[CohortInfluence, ...]
    n_units: int
    n_treated: np.ndarray
    n_control: np.ndarray
    note: tuple[str, ...]

    @property
    def valid(self) -> np.ndarray:
        return np.isfinite(self.att)

    @cached_property
    def inf(self) -> np.ndarray:
        """The dense ``n x cells`` influence matrix (built on demand: the unclustered path never needs it)."""
        return dense_influence(self.cohorts, self.n_units, len(self.att))


def plan_cells(times: np.ndarray, groups: np.ndarray, anticipation: int, base_period: BasePeriod) -> CellPlan:
    """List the ATT(g,t) cells in R ``did``'s order (by group, then period)."""
    rows: list[tuple[float, float, float, int, int, bool, bool]] = []
    first = 1 if base_period == "varying" else 0
    for g in groups:
        pre = np.flatnonzero(times + anticipation < g)
        pret_g = int(pre[-1])
        for c in range(first, len(times)):
            post = bool(g <= times[c])
            b = pret_g if base_period == "universal" or post else c - 1
            rows.append((float(g), float(times[c]), float(times[b]), c, b, post, b == c))
    arr = list(zip(*rows, strict=True))
    return CellPlan(
        group=np.array(arr[0], dtype=float),
        time=np.array(arr[1], dtype=float),
        base=np.array(arr[2], dtype=float),
        t_idx=np.array(arr[3], dtype=np.int64),
        b_idx=np.array(arr[4], dtype=np.int64),
        post=np.array(arr[5], dtype=bool),
        reference=np.array(arr[6], dtype=bool),
    )


def _in_control(
    cohort: np.ndarray, group: np.ndarray, later: np.ndarray, control_group: ControlGroup, anticipation: int
) -> np.ndarray:
    """Whether units of ``cohort`` compare with cells of ``group`` whose later period is ``later`` (broadcasts)."""
    never = ~np.isfinite(cohort)
    if control_group == "nevertreated":
        return np.broadcast_to(never, np.broadcast_shapes(cohort.shape, group.shape))
    return never | ((cohort > later + anticipation) & (cohort != group))


def control_mask(
    panel: WidePanel, plan: CellPlan, control_group: ControlGroup, anticipation: int
) -> np.ndarray:
    """``n x cells`` boolean: unit is in the comparison group of the cell."""
    later = np.maximum(plan.time, plan.base)
    mask = _in_control(panel.cohort[:, None], plan.group[None, :], later[None, :], control_group, anticipation)
    return np.array(mask)


def estimate_att_gt(
    panel: WidePanel,
    *,
    control_group: ControlGroup,
    est_method: EstMethod,
    anticipation: int,
    base_period: BasePeriod,
) -> AttGt:
    """Every ATT(g,t) of the panel with its influence function."""
    plan = plan_cells(panel.times, panel.groups, anticipation, base_period)
    if panel.x.shape[2] == 0:
        treated = panel.cohort[:, None] == plan.group[None, :]
        control = control_mask(panel, plan, control_group, anticipation)
        return _means_att_gt(panel, plan, treated, control)
    return _covariate_att_gt(panel, plan, control_group, anticipation, est_method)


def _time_invariant(x: np.ndarray) -> bool:
    """Whether every unit's covariates are the same in all periods (``x`` is units x periods x k).

    Compares each period with the one before on the flat array (one fast pass) and ignores the pairs
    that straddle two units; equivalent to ``np.all(x == x[:, :1, :])`` for finite values.
    """
    _, n_t, k = x.shape
    flat = x.ravel()
    step = flat[k:] != flat[:-k]
    for j in range(k):
        step[n_t * k - k + j :: n_t * k] = False  # last period of one unit against the first of the next
    return not step.any()


def _empty_note(n_treated: int, n_control: int) -> str:
    if n_treated == 0:
        return "no treated units"
    if n_control == 0:
        return "no comparison units"
    return ""


def _means_att_gt(panel: WidePanel, plan: CellPlan, treated: np.ndarray, control: np.ndarray) -> AttGt:
    """No covariates: ATT(g,t) = mean change of cohort g - mean change of the comparison group."""
    n = panel.n_units
    dy = panel.y[:, plan.t_idx] - panel.y[:, plan.b_idx]
    n_t = treated.sum(axis=0)
    n_c = control.sum(axis=0)
    ok = (n_t > 0) & (n_c > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_t = np.where(treated, dy, 0.0).sum(axis=0) / n_t
        mean_c = np.where(control, dy, 0.0).sum(axis=0) / n_c
        # psi_i = n * [D_i (dY_i - mean_t) / n_t - C_i (dY_i - mean_c) / n_c]
        inf = np.where(treated, (dy - mean_t) * (n / n_t), 0.0) - np.where(control, (dy - mean_c) * (n / n_c), 0.0)
    att = np.where(ok, mean_t - mean_c, np.nan)
    att[plan.reference] = 0.0
    inf[:, ~ok | plan.reference] = 0.0
    notes = tuple(
        "" if plan.reference[k] else _empty_note(int(n_t[k]), int(n_c[k])) for k in range(len(plan.group))
    )
    values, code = np.unique(panel.cohort, return_inverse=True)
    cohorts = split_by_cohort(inf, code, len(values))
    return AttGt(plan=plan, att=att, cohorts=cohorts, n_units=n, n_treated=n_t, n_control=n_c, note=notes)


def _covariate_att_gt(
    panel: WidePanel, plan: CellPlan, control_group: ControlGroup, anticipation: int, est_method: EstMethod
) -> AttGt:
    n = panel.n_units
    m = len(plan.group)
    att = np.full(m, np.nan)
    notes = [""] * m
    # Group sizes per cell from the cohort counts (no n x cells masks).
    values, code, counts = np.unique(panel.cohort, return_inverse=True, return_counts=True)
    later = np.maximum(plan.time, plan.base)
    n_t = (values[:, None] == plan.group[None, :]).T @ counts
    n_c = _in_control(values[:, None], plan.group[None, :], later[None, :], control_group, anticipation).T @ counts
    # The comparison set depends on the cell only through its group and, for not-yet-treated, the later period.
    control_key = later if control_group == "notyettreated" else np.zeros(m)
    # With time-invariant covariates, cells sharing the treated cohort and comparison set share the
    # propensity-score fit and the comparison units' X'X; those cells are also estimated together,
    # as columns of one outcome-change matrix, so the work is one set of matrix products per fit.
    invariant = _time_invariant(panel.x)
    batches: dict[tuple[float, int, float], list[int]] = {}
    for k in range(m):
        if plan.reference[k]:
            att[k] = 0.0
            continue
        note = _empty_note(int(n_t[k]), int(n_c[k]))
        if note:
            notes[k] = note
            continue
        # R did takes covariates from the earlier of the two periods of the 2x2.
        x_period = 0 if invariant else int(min(plan.t_idx[k], plan.b_idx[k]))
        key = (float(plan.group[k]), x_period, float(control_key[k]))
        batches.setdefault(key, []).append(k)
    # Influence rows go straight into one block per cohort, over the cells of the batches the cohort
    # enters: an n x cells matrix would be mostly zeros (a unit enters only its cohort's cells and
    # those it is a comparison for) and costs more to fill and to read back than the estimation.
    rows_of = _CohortRows(code, len(values))
    estimated: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (rows, cells, scaled psi) per batch
    for (_, x_period, _), cells in batches.items():
        first = cells[0]
        treated = panel.cohort == plan.group[first]
        control = _in_control(panel.cohort, plan.group[first], later[first], control_group, anticipation)
        shared = _Shared.build(panel, treated | control, treated, x_period, est_method)
        if shared.problem:
            for k in cells:
                notes[k] = shared.problem
            continue
        ks = np.asarray(cells)
        rows = shared.rows
        # One gather of both periods' columns, then a subtraction of its halves: about 3x faster
        # than two separate column gathers.
        both = panel.y[rows][:, np.r_[plan.t_idx[ks], plan.b_idx[ks]]]
        dy = np.subtract(both[:, : len(ks)], both[:, len(ks) :])
        est, psi = TWO_BY_TWO[est_method](dy, shared)
        att[ks] = est
        psi *= n / len(rows)
        estimated.append((rows, ks, psi))
    cohorts = rows_of.blocks(estimated)
    return AttGt(plan=plan, att=att, cohorts=cohorts, n_units=n, n_treated=n_t, n_control=n_c, note=tuple(notes))


class _CohortRows:
    """Scatters the influence rows of each estimated batch into one dense block per cohort."""

    def __init__(self, code: np.ndarray, n_cohorts: int) -> None:
        self.code = code
        self.n_cohorts = n_cohorts
        self.units = [np.flatnonzero(code == c) for c in range(n_cohorts)]
        # Each unit's row within its cohort's block (units stay in ascending order, as the batches list them).
        self.position = np.empty(len(code), dtype=np.int64)
        for members in self.units:
            self.position[members] = np.arange(len(members))

    def blocks(self, estimated: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> tuple[CohortInfluence, ...]:
        """One :class:`CohortInfluence` per cohort from ``(rows, cells, psi)`` of every estimated batch."""
        pieces: list[list[tuple[np.ndarray | slice, np.ndarray, np.ndarray]]] = [[] for _ in range(self.n_cohorts)]
        for rows, ks, psi in estimated:
            row_code = self.code[rows]
            # Rows come treated first, then comparison units, each ascending: a cohort is usually one run
            # of all its units (copied as a slice); not-yet-treated comparison units of several cohorts
            # interleave, and those rows are placed by their position in the cohort.
            bounds = np.flatnonzero(row_code[1:] != row_code[:-1]) + 1
            starts, ends = np.r_[0, bounds], np.r_[bounds, len(rows)]
            for c in np.unique(row_code[starts]):
                runs = np.flatnonzero(row_code[starts] == c)
                if len(runs) == 1 and ends[runs[0]] - starts[runs[0]] == len(self.units[c]):
                    pieces[c].append((slice(None), ks, psi[starts[runs[0]] : ends[runs[0]]]))
                else:
                    mine = row_code == c
                    pieces[c].append((self.position[rows[mine]], ks, psi[mine]))
        out = []
        for c, parts in enumerate(pieces):
            cells = np.unique(np.concatenate([ks for _, ks, _ in parts])) if parts else np.zeros(0, dtype=np.int64)
            block = CohortInfluence.empty(self.units[c], cells)
            values = block.values
            for where, ks, part in parts:
                cols = np.searchsorted(cells, ks)
                if isinstance(where, slice) and np.all(np.diff(cols) == 1):
                    values[:, cols[0] : cols[-1] + 1] = part
                else:
                    values[np.ix_(np.arange(len(self.units[c]))[where], cols)] = part
            out.append(block)
        return tuple(out)


class _CellProblem(Exception):
    """A 2x2 cell cannot be estimated (overlap fails, singular regression, logit diverges)."""


def _logit(xmat: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Maximum-likelihood logit by Newton-Raphson: fitted probabilities and inv(X' W X)."""
    beta = np.zeros(xmat.shape[1])
    for _ in range(LOGIT_MAX_ITER):
        p = 1.0 / (1.0 + np.exp(-(xmat @ beta)))
        w = p * (1 - p)
        hess = (xmat * w[:, None]).T @ xmat
        try:
            step = np.linalg.solve(hess, xmat.T @ (d - p))
        except np.linalg.LinAlgError as err:
            raise _CellProblem("propensity-score logit is singular") from err
        beta = beta + step
        if not np.all(np.isfinite(beta)):
            raise _CellProblem("propensity-score logit diverged (perfect separation)")
        if np.max(np.abs(step)) < LOGIT_TOL:
            break
    else:
        raise _CellProblem("propensity-score logit did not converge")
    p = 1.0 / (1.0 + np.exp(-(xmat @ beta)))
    hess = (xmat * (p * (1 - p))[:, None]).T @ xmat
    return p, np.linalg.inv(hess)


@dataclass(frozen=True)
class _Shared:
    """What the 2x2 estimators of one cell need apart from the outcome change.

    ``ps``/``lin_ps`` (propensity score, trimming and its influence rows) for
    ``dr``/``ipw``; ``xtx_inv`` (inverse of the comparison units' X'X / n) for ``dr``/``reg``.
    ``rows`` lists the treated units first.
    """

    rows: np.ndarray
    d: np.ndarray
    xmat: np.ndarray
    ps: np.ndarray | None = None
    keep: np.ndarray | None = None
    lin_ps: np.ndarray | None = None
    xtx_inv: np.ndarray | None = None
    problem: str = ""

    @classmethod
    def build(
        cls, panel: WidePanel, in_cell: np.ndarray, treated: np.ndarray, x_period: int, est_method: EstMethod
    ) -> _Shared:
        # Treated units first, so the treated and comparison parts of a cell are slices.
        rows = np.r_[np.flatnonzero(in_cell & treated), np.flatnonzero(in_cell & ~treated)]
        d = treated[rows].astype(float)
        xmat = np.column_stack([np.ones(len(rows)), panel.x[rows, x_period, :]])
        try:
            ps = keep = lin_ps = xtx_inv = None
            if est_method in ("dr", "ipw"):
                p, hess_inv = _logit(xmat, d)
                if p.max() >= PS_OVERLAP:
                    raise _CellProblem(f"overlap fails: a propensity score reaches {PS_OVERLAP}")
                ps = np.minimum(p, PS_CAP)
                keep = np.ones_like(ps)
                keep[d == 0] = (ps[d == 0] < PS_TRIM).astype(float)
                lin_ps = ((d - ps)[:, None] * xmat) @ (hess_inv * len(rows))
            if est_method in ("dr", "reg"):
                xc = xmat[d == 0]
                xtx = xc.T @ xc
                if np.linalg.cond(xtx) > 1 / np.finfo(float).eps:
                    raise _CellProblem("too few comparison units for the outcome regression")
                xtx_inv = np.linalg.inv(xtx / len(rows))
        except _CellProblem as problem:
            return cls(rows=rows, d=d, xmat=xmat, problem=str(problem))
        return cls(rows=rows, d=d, xmat=xmat, ps=ps, keep=keep, lin_ps=lin_ps, xtx_inv=xtx_inv)


# The 2x2 estimators below take the outcome changes of several cells at once (``dy`` is rows x cells,
# one column per cell sharing the same fit) and return one estimate and one influence column per cell.


def _control_ols(dy: np.ndarray, s: _Shared) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """OLS of each change column on covariates among comparison units.

    Returns the fitted changes, the masked OLS residuals ``r`` and ``q = X (X'X/n)^-1``: the
    OLS influence rows of cell ``k`` are ``r[:, k, None] * q``, so their product with a vector
    ``v`` is ``r[:, k] * (q @ v)``.
    """
    assert s.xtx_inv is not None
    n1 = len(s.d)
    control = (1 - s.d)[:, None]
    beta = s.xtx_inv @ (s.xmat.T @ (control * dy)) / n1
    fitted = s.xmat @ beta
    return fitted, control * (dy - fitted), s.xmat @ s.xtx_inv


def reg_did_panel(dy: np.ndarray, s: _Shared) -> tuple[np.ndarray, np.ndarray]:
    """Outcome-regression 2x2 DiD (Heckman, Ichimura & Todd 1997) with its influence function."""
    d, xmat = s.d, s.xmat
    fitted, ols_resid, q = _control_ols(dy, s)
    dcol = d[:, None]
    mean_d = d.mean()
    eta_t = np.mean(dcol * dy, axis=0) / mean_d
    eta_c = np.mean(dcol * fitted, axis=0) / mean_d
    inf_treat = dcol * (dy - eta_t) / mean_d
    lin_ols = ols_resid * (q @ (dcol * xmat).mean(axis=0))[:, None]
    inf_cont = (dcol * (fitted - eta_c) + lin_ols) / mean_d
    return eta_t - eta_c, inf_treat - inf_cont


def ipw_did_panel(dy: np.ndarray, s: _Shared) -> tuple[np.ndarray, np.ndarray]:
    """Standardised (Hajek) inverse-probability-weighted 2x2 DiD (Abadie 2005) with its influence function."""
    assert s.ps is not None and s.keep is not None and s.lin_ps is not None
    d, xmat, p = s.d, s.xmat, s.ps
    w_t = (s.keep * d)[:, None]
    w_c = (s.keep * p * (1 - d) / (1 - p))[:, None]
    eta_t = np.mean(w_t * dy, axis=0) / w_t.mean()
    eta_c = np.mean(w_c * dy, axis=0) / w_c.mean()
    inf_treat = w_t * (dy - eta_t) / w_t.mean()
    dev_c = w_c * (dy - eta_c)
    m2 = xmat.T @ dev_c / len(d)
    inf_cont = (dev_c + s.lin_ps @ m2) / w_c.mean()
    return eta_t - eta_c, inf_treat - inf_cont


def dr_did_panel(dy: np.ndarray, s: _Shared) -> tuple[np.ndarray, np.ndarray]:
    """Doubly robust 2x2 DiD (Sant'Anna & Zhao 2020, panel) with its influence function.

    Written on the treated rows (weight 1, no comparison weight) and the comparison rows
    (propensity odds weights) separately, which halves the work of the single formula.
    """
    assert s.ps is not None and s.keep is not None and s.lin_ps is not None and s.xtx_inv is not None
    d, xmat, p = s.d, s.xmat, s.ps
    n1 = len(d)
    nt = int(d.sum())
    tr, co = slice(0, nt), slice(nt, n1)
    x_c = xmat[co]
    beta = s.xtx_inv @ (x_c.T @ dy[co]) / n1
    resid_t = dy[tr] - xmat[tr] @ beta
    resid_c = x_c @ beta
    np.subtract(dy[co], resid_c, out=resid_c)
    w_c = (s.keep * p / (1 - p))[co]
    mw_t, mw_c = nt / n1, w_c.sum() / n1
    eta_t = resid_t.mean(axis=0)
    eta_c = w_c @ resid_c / w_c.sum()
    dev_c = resid_c - eta_c
    dev_c *= w_c[:, None]
    m2 = x_c.T @ dev_c / n1
    lin_ps_m2 = s.lin_ps @ m2
    # OLS influence terms live on comparison rows only: r * (X (X'X/n)^-1 (m3/mw_c - m1/mw_t)).
    m1 = xmat[tr].sum(axis=0) / n1
    m3 = w_c @ x_c / n1
    q = x_c @ (s.xtx_inv @ (m3 / mw_c - m1 / mw_t))
    # inf[tr] = (resid_t - eta_t) / mw_t - lin_ps_m2[tr] / mw_c and
    # inf[co] = resid_c * q - (dev_c + lin_ps_m2[co]) / mw_c, written in place: the same operations
    # in the same order (the same bits), without a temporary per step on arrays of rows x cells.
    inf = np.empty_like(dy)
    out_t, out_c = inf[tr], inf[co]
    np.subtract(resid_t, eta_t, out=out_t)
    out_t /= mw_t
    ps_t = lin_ps_m2[tr]
    ps_t /= mw_c
    out_t -= ps_t
    np.multiply(resid_c, q[:, None], out=out_c)
    dev_c += lin_ps_m2[co]
    dev_c /= mw_c
    out_c -= dev_c
    return eta_t - eta_c, inf


TWO_BY_TWO = {"reg": reg_did_panel, "ipw": ipw_did_panel, "dr": dr_did_panel}
