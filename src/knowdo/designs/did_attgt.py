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
``n x cells`` arrays; with covariates each cell runs its regression and logit
in numpy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from knowdo.designs.did_data import WidePanel

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
    """ATT(g,t) estimates and the ``n x cells`` influence-function matrix.

    ``inf`` is scaled so that the analytic standard error of cell ``k`` is
    ``sqrt(sum(inf[:, k] ** 2)) / n`` (R ``did``'s convention). ``note`` says
    why a cell was not estimated (empty when it was).
    """

    plan: CellPlan
    att: np.ndarray
    inf: np.ndarray
    n_treated: np.ndarray
    n_control: np.ndarray
    note: tuple[str, ...]

    @property
    def valid(self) -> np.ndarray:
        return np.isfinite(self.att)


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


def control_mask(
    panel: WidePanel, plan: CellPlan, control_group: ControlGroup, anticipation: int
) -> np.ndarray:
    """``n x cells`` boolean: unit is in the comparison group of the cell."""
    never = ~np.isfinite(panel.cohort)
    if control_group == "nevertreated":
        return np.repeat(never[:, None], len(plan.group), axis=1)
    later = np.maximum(plan.time, plan.base)
    g = panel.cohort[:, None]
    return never[:, None] | ((g > later[None, :] + anticipation) & (g != plan.group[None, :]))


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
    treated = panel.cohort[:, None] == plan.group[None, :]
    control = control_mask(panel, plan, control_group, anticipation)
    if panel.x.shape[2] == 0:
        return _means_att_gt(panel, plan, treated, control)
    return _covariate_att_gt(panel, plan, treated, control, est_method)


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
    return AttGt(plan=plan, att=att, inf=inf, n_treated=n_t, n_control=n_c, note=notes)


def _covariate_att_gt(
    panel: WidePanel, plan: CellPlan, treated: np.ndarray, control: np.ndarray, est_method: EstMethod
) -> AttGt:
    n = panel.n_units
    m = len(plan.group)
    att = np.full(m, np.nan)
    # Column-major so that writing one cell's influence function is a contiguous write.
    inf = np.zeros((n, m), order="F")
    notes: list[str] = []
    n_t = treated.sum(axis=0)
    n_c = control.sum(axis=0)
    # With time-invariant covariates, cells sharing the treated cohort and comparison set share the
    # propensity-score fit and the comparison units' X'X, so those are computed once per distinct cell.
    invariant = bool(np.all(panel.x == panel.x[:, :1, :]))
    cache: dict[tuple[float, int, bytes], _Shared] = {}
    for k in range(m):
        if plan.reference[k]:
            att[k] = 0.0
            notes.append("")
            continue
        note = _empty_note(int(n_t[k]), int(n_c[k]))
        if note:
            notes.append(note)
            continue
        t_c, t_b = plan.t_idx[k], plan.b_idx[k]
        # R did takes covariates from the earlier of the two periods of the 2x2.
        x_period = 0 if invariant else int(min(t_c, t_b))
        key = (float(plan.group[k]), x_period, np.packbits(control[:, k]).tobytes())
        shared = cache.get(key)
        if shared is None:
            shared = _Shared.build(panel, treated[:, k] | control[:, k], treated[:, k], x_period, est_method)
            cache[key] = shared
        if shared.problem:
            notes.append(shared.problem)
            continue
        rows = shared.rows
        dy = panel.y[rows, t_c] - panel.y[rows, t_b]
        try:
            est, psi = TWO_BY_TWO[est_method](dy, shared)
        except _CellProblem as problem:
            notes.append(str(problem))
            continue
        att[k] = est
        inf[rows, k] = psi * (n / len(rows))
        notes.append("")
    return AttGt(plan=plan, att=att, inf=inf, n_treated=n_t, n_control=n_c, note=tuple(notes))


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
        rows = np.flatnonzero(in_cell)
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


def _control_ols(dy: np.ndarray, s: _Shared) -> tuple[np.ndarray, np.ndarray]:
    """OLS of the change on covariates among comparison units: fitted change and the OLS influence rows."""
    assert s.xtx_inv is not None
    n1 = len(s.d)
    resid_w = (1 - s.d) * dy
    beta = s.xtx_inv @ (s.xmat.T @ resid_w) / n1
    fitted = s.xmat @ beta
    resid = (1 - s.d) * (dy - fitted)
    return fitted, (resid[:, None] * s.xmat) @ s.xtx_inv


def reg_did_panel(dy: np.ndarray, s: _Shared) -> tuple[float, np.ndarray]:
    """Outcome-regression 2x2 DiD (Heckman, Ichimura & Todd 1997) with its influence function."""
    d, xmat = s.d, s.xmat
    fitted, lin_ols = _control_ols(dy, s)
    mean_d = d.mean()
    eta_t = np.mean(d * dy) / mean_d
    eta_c = np.mean(d * fitted) / mean_d
    inf_treat = d * (dy - eta_t) / mean_d
    inf_cont = (d * (fitted - eta_c) + lin_ols @ (d[:, None] * xmat).mean(axis=0)) / mean_d
    return float(eta_t - eta_c), inf_treat - inf_cont


def ipw_did_panel(dy: np.ndarray, s: _Shared) -> tuple[float, np.ndarray]:
    """Standardised (Hajek) inverse-probability-weighted 2x2 DiD (Abadie 2005) with its influence function."""
    assert s.ps is not None and s.keep is not None and s.lin_ps is not None
    d, xmat, p = s.d, s.xmat, s.ps
    w_t = s.keep * d
    w_c = s.keep * p * (1 - d) / (1 - p)
    eta_t = np.mean(w_t * dy) / w_t.mean()
    eta_c = np.mean(w_c * dy) / w_c.mean()
    inf_treat = w_t * (dy - eta_t) / w_t.mean()
    m2 = ((w_c * (dy - eta_c))[:, None] * xmat).mean(axis=0)
    inf_cont = (w_c * (dy - eta_c) + s.lin_ps @ m2) / w_c.mean()
    return float(eta_t - eta_c), inf_treat - inf_cont


def dr_did_panel(dy: np.ndarray, s: _Shared) -> tuple[float, np.ndarray]:
    """Doubly robust 2x2 DiD (Sant'Anna & Zhao 2020, panel) with its influence function."""
    assert s.ps is not None and s.keep is not None and s.lin_ps is not None
    d, xmat, p = s.d, s.xmat, s.ps
    fitted, lin_ols = _control_ols(dy, s)
    w_t = s.keep * d
    w_c = s.keep * p * (1 - d) / (1 - p)
    resid = dy - fitted
    eta_t = np.mean(w_t * resid) / w_t.mean()
    eta_c = np.mean(w_c * resid) / w_c.mean()
    inf_treat = (w_t * (resid - eta_t) - lin_ols @ (w_t[:, None] * xmat).mean(axis=0)) / w_t.mean()
    m2 = ((w_c * (resid - eta_c))[:, None] * xmat).mean(axis=0)
    m3 = (w_c[:, None] * xmat).mean(axis=0)
    inf_cont = (w_c * (resid - eta_c) + s.lin_ps @ m2 - lin_ols @ m3) / w_c.mean()
    return float(eta_t - eta_c), inf_treat - inf_cont


TWO_BY_TWO = {"reg": reg_did_panel, "ipw": ipw_did_panel, "dr": dr_did_panel}
