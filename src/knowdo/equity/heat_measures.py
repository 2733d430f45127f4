"""The 21 WHO HEAT summary measures of inequality, computed for many indicators at once.

Formulas, applicability and direction rules follow frameworks.md section 4.1
(WHO's healthequal reference package, Hosseinpoor et al. 2016, Schlotheuber &
Hosseinpoor 2022). The code is written from the formulas, not ported.

Everything works on a :class:`Batch`: ``G`` sets (one indicator x dimension x
setting x period each) of up to ``J`` subgroups, held as ``(G, J)`` arrays with
absent subgroups masked. Each measure is one vectorised expression over all
sets, so 18,000 sets cost about as much as a handful. The SII/RII models are
fitted by a batched Newton (IRLS) solver for the same reason: one statsmodels
GLM per set would take minutes for a project panel; the solver
(:mod:`knowdo.equity.heat_fit`) is checked against statsmodels in the tests.

Direction rules (D, R), from the HEAT application:

* ordered dimension: favourable -> most advantaged minus least advantaged;
  adverse -> least advantaged minus most advantaged;
* non-ordered, no reference: highest minus lowest estimate;
* non-ordered, with a reference: favourable -> reference minus the lowest other
  subgroup; adverse -> the highest other subgroup minus the reference.

(healthequal's help page words the non-ordered adverse cases as "lowest minus
highest" and "lowest minus reference"; the HEAT application computes the
rules above, which keep D >= 0 whenever the reference is the best performer.
We follow the application, which is what HEAT Plus users see.)

Where knowdo departs from the reference code on purpose:

* MLD and TI are reported x1000 and so are their standard errors (the
  reference scales only the estimate, giving intervals ~1000x too narrow);
* PAF is reported x100 and so is its Walter standard error (same fault);
* the SII/RII logistic model weights each subgroup by its population once
  (binomial counts), where the reference passes the population both as counts
  and as prior weights;
* IDISW's simulation divides by the simulated mean, not the original mean.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import special

from knowdo.equity.heat_fit import hc1_sandwich, newton_logit

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

MEASURE_CODES = (
    "D", "R", "ACI", "RCI", "SII", "RII", "BGV", "BGSD", "COV", "IDISU", "IDISW",
    "MDBU", "MDBW", "MDMU", "MDMW", "MDRU", "MDRW", "MLD", "TI", "PAR", "PAF",
)  # fmt: skip

SiiModel = Literal["logistic", "linear"]
RciCorrection = Literal["none", "wagstaff", "erreygers"]

Applies = Literal["any", "ordered", "non-ordered"]
CiMethod = Literal["analytic", "simulation"]


@dataclass(frozen=True)
class MeasureInfo:
    """What one HEAT measure is, where it applies and how its interval is computed."""

    code: str
    name: str
    absolute: bool
    applies: Applies
    min_subgroups: int
    ci: CiMethod
    multiplier: float = 1.0  # reporting multiplier (x100 for %, x1000 for MLD/TI)
    needs_population: bool = True
    needs_reference: bool = False
    log_scale: bool = False  # a ratio: 1 means equality, shown on a log axis
    weighted: bool = True


MEASURES: dict[str, MeasureInfo] = {
    m.code: m
    for m in (
        MeasureInfo("D", "Difference", True, "any", 2, "analytic", needs_population=False, weighted=False),
        MeasureInfo("R", "Ratio", False, "any", 2, "analytic", needs_population=False, log_scale=True,
                    weighted=False),
        MeasureInfo("ACI", "Absolute concentration index", True, "ordered", 3, "analytic"),
        MeasureInfo("RCI", "Relative concentration index", False, "ordered", 3, "analytic", multiplier=100.0),
        MeasureInfo("SII", "Slope index of inequality", True, "ordered", 3, "analytic"),
        MeasureInfo("RII", "Relative index of inequality", False, "ordered", 3, "analytic", log_scale=True),
        MeasureInfo("BGV", "Between-group variance", True, "non-ordered", 3, "analytic"),
        MeasureInfo("BGSD", "Between-group standard deviation", True, "non-ordered", 3, "simulation"),
        MeasureInfo("COV", "Coefficient of variation", False, "non-ordered", 3, "simulation", multiplier=100.0),
        MeasureInfo("IDISU", "Index of disparity (unweighted)", False, "non-ordered", 3, "simulation",
                    multiplier=100.0, needs_population=False, weighted=False),
        MeasureInfo("IDISW", "Index of disparity (weighted)", False, "non-ordered", 3, "simulation",
                    multiplier=100.0),
        MeasureInfo("MDBU", "Mean difference from best performing subgroup (unweighted)", True, "non-ordered", 3,
                    "simulation", needs_population=False, weighted=False),
        MeasureInfo("MDBW", "Mean difference from best performing subgroup (weighted)", True, "non-ordered", 3,
                    "simulation"),
        MeasureInfo("MDMU", "Mean difference from mean (unweighted)", True, "non-ordered", 3, "simulation",
                    needs_population=False, weighted=False),
        MeasureInfo("MDMW", "Mean difference from mean (weighted)", True, "non-ordered", 3, "simulation"),
        MeasureInfo("MDRU", "Mean difference from reference point (unweighted)", True, "non-ordered", 3,
                    "simulation", needs_population=False, needs_reference=True, weighted=False),
        MeasureInfo("MDRW", "Mean difference from reference point (weighted)", True, "non-ordered", 3,
                    "simulation", needs_reference=True),
        MeasureInfo("MLD", "Mean log deviation", False, "non-ordered", 3, "analytic", multiplier=1000.0),
        MeasureInfo("TI", "Theil index", False, "non-ordered", 3, "analytic", multiplier=1000.0),
        MeasureInfo("PAR", "Population attributable risk", True, "any", 2, "analytic"),
        MeasureInfo("PAF", "Population attributable fraction", False, "any", 2, "analytic", multiplier=100.0),
    )
}
SIMULATED = tuple(c for c, m in MEASURES.items() if m.ci == "simulation")

MAX_MISSING_SHARE = 0.15  # healthequal refuses when more than 15% of subgroup estimates are missing (section 4.1)


@dataclass(frozen=True)
class Batch:
    """``G`` sets of up to ``J`` subgroups, padded; subgroups sorted by HEAT subgroup order within a set."""

    est: FloatArray  # (G, J) subgroup estimates on the indicator's scale
    se: FloatArray  # (G, J)
    pop: FloatArray  # (G, J)
    present: BoolArray  # (G, J) subgroup has an estimate
    ref: BoolArray  # (G, J) reference subgroup flag
    ordered: BoolArray  # (G,)
    favourable: BoolArray  # (G,)
    scale: FloatArray  # (G,)
    setting_average: FloatArray  # (G,)
    missing_share: FloatArray  # (G,) share of subgroups whose estimate is missing

    @property
    def size(self) -> int:
        return int(self.est.shape[0])

    def take(self, index: npt.NDArray[np.intp]) -> Batch:
        """The sub-batch of the sets at ``index``."""
        return Batch(*(getattr(self, f)[index] for f in self.__dataclass_fields__))


@dataclass(frozen=True)
class Computed:
    """Point estimate, standard error (on the reported scale) and applicability of one measure for every set."""

    estimate: FloatArray
    std_error: FloatArray  # for R and RII: SE of the natural log of the ratio
    reason: npt.NDArray[np.object_]  # '' when the measure applies, else why not


# --------------------------------------------------------------------------- shared quantities
@dataclass(frozen=True)
class _Base:
    n: npt.NDArray[np.int64]
    y: FloatArray  # estimates with absent cells zeroed
    s: FloatArray  # se with absent cells zeroed
    p: FloatArray  # population shares (0 when absent)
    pops_ok: BoolArray
    se_ok: BoolArray
    wmean: FloatArray  # population-weighted mean
    mu: FloatArray  # weighted mean, or the setting average when populations are missing
    has_ref: BoolArray
    i_ref: npt.NDArray[np.intp]
    i_lo: npt.NDArray[np.intp]  # least advantaged (lowest order) present subgroup
    i_hi: npt.NDArray[np.intp]  # most advantaged (highest order) present subgroup
    i_min: npt.NDArray[np.intp]
    i_max: npt.NDArray[np.intp]
    best: FloatArray


def _row(values: FloatArray, index: npt.NDArray[np.intp]) -> FloatArray:
    return np.take_along_axis(values, index[:, None], axis=1)[:, 0]


def _base(b: Batch) -> _Base:
    present = b.present
    n = present.sum(axis=1)
    y = np.where(present, b.est, 0.0)
    s = np.where(present, b.se, 0.0)
    pop = np.where(present, b.pop, 0.0)
    pops_ok = np.all(~present | (np.isfinite(b.pop) & (b.pop >= 0)), axis=1) & (np.nansum(pop, axis=1) > 0)
    se_ok = np.all(~present | (np.isfinite(b.se) & (b.se >= 0)), axis=1)
    total = np.where(pops_ok, pop.sum(axis=1), 1.0)
    p = np.where(pops_ok[:, None], np.nan_to_num(pop) / total[:, None], 0.0)
    wmean = np.where(pops_ok, (p * y).sum(axis=1), np.nan)
    mu = np.where(pops_ok, wmean, b.setting_average)
    has_ref = (b.ref & present).sum(axis=1) == 1
    i_ref = np.argmax(b.ref & present, axis=1)
    i_lo = np.argmax(present, axis=1)
    i_hi = present.shape[1] - 1 - np.argmax(present[:, ::-1], axis=1)
    i_min = np.argmin(np.where(present, b.est, np.inf), axis=1)
    i_max = np.argmax(np.where(present, b.est, -np.inf), axis=1)
    best = np.where(b.favourable, _row(b.est, i_max), _row(b.est, i_min))
    return _Base(n, y, s, p, pops_ok, se_ok, wmean, mu, has_ref, i_ref, i_lo, i_hi, i_min, i_max, best)


def _reasons(b: Batch, base: _Base, info: MeasureInfo, force: bool) -> npt.NDArray[np.object_]:
    """Why a measure does not apply to each set ('' when it does), first failing rule first."""
    reason = np.full(b.size, "", dtype=object)

    def rule(failed: BoolArray, text: str) -> None:
        reason[(reason == "") & failed] = text

    if not force:
        rule(b.missing_share > MAX_MISSING_SHARE, "more than 15% of subgroup estimates are missing")
    if info.applies == "ordered":
        rule(~b.ordered, "needs an ordered dimension")
    elif info.applies == "non-ordered":
        rule(b.ordered, "needs a non-ordered dimension")
    if info.min_subgroups == 2:
        rule(base.n < 2, "needs at least two subgroups")
    else:
        rule(base.n < info.min_subgroups, "needs more than two subgroups")
    if info.needs_population:
        rule(~base.pops_ok, "needs subgroup populations")
    if info.needs_reference:
        rule(~base.has_ref, "needs one reference subgroup")
    if info.code in ("IDISU", "MDMU"):
        rule(~np.isfinite(base.mu), "needs subgroup populations or a setting average")
    return reason


# --------------------------------------------------------------------------- simple measures
def _pair(b: Batch, base: _Base) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Indices (y1, y2) of the two subgroups D and R compare, by HEAT's direction rules."""
    fav = b.favourable
    # Ordered: most advantaged vs least advantaged, oriented by favourable/adverse.
    o1 = np.where(fav, base.i_hi, base.i_lo)
    o2 = np.where(fav, base.i_lo, base.i_hi)
    # Non-ordered with a reference: compare the reference with the worst other subgroup.
    others = b.present & ~(b.ref & b.present)
    min_other = np.argmin(np.where(others, b.est, np.inf), axis=1)
    max_other = np.argmax(np.where(others, b.est, -np.inf), axis=1)
    r1 = np.where(fav, base.i_ref, max_other)
    r2 = np.where(fav, min_other, base.i_ref)
    n1 = np.where(base.has_ref, r1, base.i_max)
    n2 = np.where(base.has_ref, r2, base.i_min)
    return np.where(b.ordered, o1, n1), np.where(b.ordered, o2, n2)


def difference_and_ratio(b: Batch, base: _Base) -> tuple[Computed, Computed]:
    i1, i2 = _pair(b, base)
    y1, y2 = _row(b.est, i1), _row(b.est, i2)
    s1, s2 = _row(b.se, i1), _row(b.se, i2)
    d = y1 - y2
    d_se = np.sqrt(s1**2 + s2**2)
    with np.errstate(divide="ignore", invalid="ignore"):
        ok = (y1 > 0) & (y2 > 0)
        r = np.where(ok, y1 / y2, np.nan)
        r_se = np.where(ok, np.sqrt((s1 / y1) ** 2 + (s2 / y2) ** 2), np.nan)
    r_reason = np.where(ok, "", "needs positive estimates in both subgroups compared").astype(object)
    return Computed(d, d_se, np.full(b.size, "", dtype=object)), Computed(r, r_se, r_reason)


# --------------------------------------------------------------------------- ordered measures
def _ranks(b: Batch, base: _Base) -> FloatArray:
    """HEAT relative rank: cumulative population share up to the subgroup's midpoint (0 = most disadvantaged)."""
    cum = np.cumsum(base.p, axis=1)
    return np.where(b.present, cum - base.p / 2.0, 0.0)


def concentration_indices(
    b: Batch, base: _Base, correction: RciCorrection = "none"
) -> tuple[Computed, Computed]:
    """ACI and RCI by the convenient (weighted least squares) regression with its model SE, as HEAT does."""
    x = _ranks(b, base)
    p = base.p
    xbar = (p * x).sum(axis=1)
    dx = np.where(b.present, x - xbar[:, None], 0.0)
    sxx = (p * dx**2).sum(axis=1)  # weighted variance of the rank
    lhs = 2.0 * sxx[:, None] * base.y  # transformed outcome: ACI is its slope on the rank
    lbar = (p * lhs).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = (p * dx * (lhs - lbar[:, None])).sum(axis=1) / sxx
        resid = np.where(b.present, lhs - lbar[:, None] - slope[:, None] * dx, 0.0)
        df = base.n - 2
        s2 = (p * resid**2).sum(axis=1) / df  # residual variance of the population-weighted fit
        aci_se = np.where(df > 0, np.sqrt(s2 / sxx), np.nan)
        mu = base.wmean
        rci = slope / mu
        rci_se = aci_se / np.abs(mu)
        if correction == "wagstaff":
            factor = 1.0 / (1.0 - mu / b.scale)
            rci, rci_se = rci * factor, rci_se * np.abs(factor)
        elif correction == "erreygers":
            rci, rci_se = 4.0 * slope / b.scale, 4.0 * aci_se / b.scale
    rci_reason = np.where(mu > 0, "", "needs a positive mean").astype(object)
    return (
        Computed(slope, aci_se, np.full(b.size, "", dtype=object)),
        Computed(rci * 100.0, rci_se * 100.0, rci_reason),
    )


def slope_indices(b: Batch, base: _Base, model: SiiModel = "logistic") -> tuple[Computed, Computed]:
    """SII and RII from a population-weighted regression of the estimate on relative rank (HC1 SEs)."""
    g = b.size
    sii = np.full(g, np.nan)
    sii_se = np.full(g, np.nan)
    rii = np.full(g, np.nan)
    rii_se = np.full(g, np.nan)
    reason = np.full(g, "", dtype=object)
    x_all = _ranks(b, base)
    y_all = np.where(b.present, b.est / b.scale[:, None], 0.0)
    in_range = np.all(~b.present | ((y_all >= 0.0) & (y_all <= 1.0)), axis=1)
    candidates = b.ordered & base.pops_ok & (base.n >= 3)
    if model == "logistic":
        reason[candidates & ~in_range] = (
            "estimates fall outside 0..scale; set the indicator scale or use the linear model"
        )
        fit = np.flatnonzero(candidates & in_range)
    else:
        fit = np.flatnonzero(candidates)
    if fit.size:
        x = x_all[fit]
        y = y_all[fit]
        w = base.p[fit]
        n = base.n[fit]
        scale = b.scale[fit]
        if model == "logistic":
            start = special.logit(np.clip((w * y).sum(axis=1), 1e-6, 1 - 1e-6))
            a, slope, prob, info, ok = newton_logit(y, w, x, start)
            cov = hc1_sandwich(info, w * (y - prob), x, n)
            p1, p0 = special.expit(a + slope), special.expit(a)
            q1, q0 = p1 * (1 - p1), p0 * (1 - p0)
            g0, g1 = q1 - q0, q1  # gradient of p1 - p0 in (a, b)
            var_d = g0**2 * cov[:, 0] + 2 * g0 * g1 * cov[:, 1] + g1**2 * cov[:, 2]
            h0, h1 = p0 - p1, 1.0 - p1  # gradient of ln p1 - ln p0 in (a, b)
            var_l = h0**2 * cov[:, 0] + 2 * h0 * h1 * cov[:, 1] + h1**2 * cov[:, 2]
            top, bottom = p1, p0
        else:
            xbar = (w * x).sum(axis=1)
            ybar = (w * y).sum(axis=1)
            dx = np.where(b.present[fit], x - xbar[:, None], 0.0)
            sxx = (w * dx**2).sum(axis=1)
            with np.errstate(divide="ignore", invalid="ignore"):
                slope = (w * dx * (y - ybar[:, None])).sum(axis=1) / sxx
            a = ybar - slope * xbar
            resid = np.where(b.present[fit], y - a[:, None] - slope[:, None] * x, 0.0)
            info = np.stack([w.sum(axis=1), (w * x).sum(axis=1), (w * x * x).sum(axis=1)], axis=1)
            cov = hc1_sandwich(info, w * resid, x, n)
            ok = np.isfinite(slope)
            var_d = cov[:, 2]
            top, bottom = a + slope, a
            with np.errstate(divide="ignore", invalid="ignore"):
                h0, h1 = 1.0 / top - 1.0 / bottom, 1.0 / top
            var_l = h0**2 * cov[:, 0] + 2 * h0 * h1 * cov[:, 1] + h1**2 * cov[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            positive = (top > 0) & (bottom > 0)
            sii[fit] = np.where(ok, (top - bottom) * scale, np.nan)
            sii_se[fit] = np.where(ok, np.sqrt(var_d) * scale, np.nan)
            rii[fit] = np.where(ok & positive, top / bottom, np.nan)
            rii_se[fit] = np.where(ok & positive, np.sqrt(var_l), np.nan)
        sub = reason[fit]
        sub[~ok] = "the regression did not converge"
        reason[fit] = sub
    rii_reason = reason.copy()
    rii_reason[(rii_reason == "") & candidates & ~np.isfinite(rii)] = "needs positive fitted values at both ends"
    return Computed(sii, sii_se, reason), Computed(rii, rii_se, rii_reason)


# --------------------------------------------------------------------------- non-ordered measures
def between_group_variance(b: Batch, base: _Base) -> Computed:
    """BGV = sum p_j (y_j - mu)^2 with the exact normal-theory SE (Ahn 2018; frameworks.md section 4.1)."""
    p, y, s, mu = base.p, base.y, base.s, base.wmean
    dev = np.where(b.present, y - mu[:, None], 0.0)
    bgv = (p * dev**2).sum(axis=1)
    ps2 = p**2 * s**2
    var = 4.0 * (ps2 * dev**2).sum(axis=1) + 2.0 * (
        ps2.sum(axis=1) ** 2 - (ps2**2).sum(axis=1) + (p**2 * (1 - p) ** 2 * s**4).sum(axis=1)
    )
    return Computed(bgv, np.sqrt(var), np.full(b.size, "", dtype=object))


def entropy_measures(b: Batch, base: _Base) -> tuple[Computed, Computed]:
    """MLD and Theil index, both x1000, with delta-method SEs scaled by the same 1000."""
    p, mu = base.p, base.wmean
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(b.present, base.y / mu[:, None], 1.0)
        positive = np.all(~b.present | (b.est > 0), axis=1) & (mu > 0)
        nonneg = np.all(~b.present | (b.est >= 0), axis=1) & (mu > 0)
        log_r = np.log(np.where(r > 0, r, 1.0))
        mld = (p * -log_r).sum(axis=1)
        mld_grad = p * (1.0 - 1.0 / r) / mu[:, None]
        mld_se = np.sqrt((np.where(b.present, mld_grad, 0.0) ** 2 * base.s**2).sum(axis=1))
        rlr = np.where(r > 0, r * log_r, 0.0)  # r ln r -> 0 as r -> 0
        ti = (p * rlr).sum(axis=1)
        centre = (p * r * (1.0 + log_r)).sum(axis=1)
        ti_grad = p * (1.0 + log_r - centre[:, None]) / mu[:, None]
        ti_se = np.sqrt((np.where(b.present, ti_grad, 0.0) ** 2 * base.s**2).sum(axis=1))
    mld_reason = np.where(positive, "", "needs positive estimates in every subgroup").astype(object)
    ti_reason = np.where(nonneg, "", "needs non-negative estimates and a positive mean").astype(object)
    return (
        Computed(np.where(positive, mld * 1000.0, np.nan), np.where(positive, mld_se * 1000.0, np.nan), mld_reason),
        Computed(np.where(nonneg, ti * 1000.0, np.nan), np.where(nonneg, ti_se * 1000.0, np.nan), ti_reason),
    )


def population_attributable(b: Batch, base: _Base) -> tuple[Computed, Computed]:
    """PAR and PAF (x100), truncated at 0 in the direction HEAT sets, with Walter (1978) SEs."""
    fav = b.favourable
    i_ref = np.where(base.has_ref, base.i_ref, np.where(b.ordered, base.i_hi, np.where(fav, base.i_max, base.i_min)))
    y_ref = _row(b.est, i_ref)
    mu = base.mu
    par = y_ref - mu
    par = np.where(fav & (par < 0), 0.0, par)
    par = np.where(~fav & (par > 0), 0.0, par)
    with np.errstate(divide="ignore", invalid="ignore"):
        paf = 100.0 * par / mu
        total = np.where(b.present, np.nan_to_num(b.pop), 0.0).sum(axis=1)
        n_ref = _row(np.nan_to_num(b.pop), i_ref)
        c = (y_ref / b.scale) * n_ref
        d = n_ref - c
        a = (mu / b.scale) * total - c
        bb = total - a - n_ref
        n_tot = a + bb + c + d
        var = c * n_tot * (a * d * (n_tot - c) + bb * c**2) / ((a + c) ** 3 * (c + d) ** 3)
        se_frac = np.sqrt(np.where(var >= 0, var, np.nan))
    reason = np.where(mu > 0, "", "needs a positive mean").astype(object)
    empty = np.full(b.size, "", dtype=object)
    return Computed(par, se_frac * np.abs(mu), empty), Computed(paf, 100.0 * se_frac, reason)


def simulation_inputs(b: Batch, base: _Base) -> tuple[FloatArray, FloatArray]:
    """The reference value of MDR (the reference subgroup's estimate) and of MDB (the best estimate)."""
    return _row(b.est, base.i_ref), base.best


def compute_point_measures(
    b: Batch,
    codes: tuple[str, ...],
    *,
    sii_model: SiiModel = "logistic",
    rci_correction: RciCorrection = "none",
    force: bool = False,
) -> dict[str, Computed]:
    """Every requested measure's estimate, analytic SE (NaN for simulation measures) and applicability."""
    base = _base(b)
    out: dict[str, Computed] = {}
    nan = np.full(b.size, np.nan)
    if "D" in codes or "R" in codes:
        out["D"], out["R"] = difference_and_ratio(b, base)
    if "ACI" in codes or "RCI" in codes:
        out["ACI"], out["RCI"] = concentration_indices(b, base, rci_correction)
    if "SII" in codes or "RII" in codes:
        out["SII"], out["RII"] = slope_indices(b, base, sii_model)
    if "BGV" in codes:
        out["BGV"] = between_group_variance(b, base)
    if "MLD" in codes or "TI" in codes:
        out["MLD"], out["TI"] = entropy_measures(b, base)
    if "PAR" in codes or "PAF" in codes:
        out["PAR"], out["PAF"] = population_attributable(b, base)
    ref_value, best = simulation_inputs(b, base)
    mu_sim = np.where(base.pops_ok, base.wmean, base.mu)
    for code in codes:
        if code in SIMULATED:
            y = np.where(b.present, b.est, 0.0)
            value = dispersion(code, y, b.present, base.p, base.n.astype(float), mu_sim, best, ref_value)
            reason = np.full(b.size, "", dtype=object)
            if code in ("COV", "IDISU", "IDISW"):
                reason[~(mu_sim > 0)] = "needs a positive mean"
            out[code] = Computed(value, nan.copy(), reason)
    result: dict[str, Computed] = {}
    for code in codes:
        computed = out[code]
        reason = _reasons(b, base, MEASURES[code], force)
        reason = np.where(reason == "", computed.reason, reason).astype(object)
        ok = reason == ""
        result[code] = Computed(
            np.where(ok, computed.estimate, np.nan), np.where(ok, computed.std_error, np.nan), reason
        )
    return result


def simulate_measures(
    b: Batch,
    codes: tuple[str, ...],
    draws_of: FloatArray,
) -> dict[str, FloatArray]:
    """Recompute each simulation measure on every draw: ``draws_of`` has shape ``(G, B, J)``; returns ``(G, B)``.

    The mean, the best subgroup and the reference value are recomputed from each
    draw (the reference code keeps the original mean for IDISW; see module docstring).
    """
    base = _base(b)
    present = b.present[:, None, :]
    p = base.p[:, None, :]
    y = np.where(present, draws_of, 0.0)
    mu_draw = np.where(base.pops_ok[:, None], (p * y).sum(axis=-1), b.setting_average[:, None])
    best_draw = np.where(
        b.favourable[:, None],
        np.where(present, draws_of, -np.inf).max(axis=-1),
        np.where(present, draws_of, np.inf).min(axis=-1),
    )
    ref_draw = np.take_along_axis(draws_of, base.i_ref[:, None, None], axis=-1)[..., 0]
    out: dict[str, FloatArray] = {}
    for code in codes:
        out[code] = dispersion(code, y, present, p, base.n[:, None].astype(float), mu_draw, best_draw, ref_draw)
    return out


def dispersion(
    code: str,
    y: FloatArray,
    present: BoolArray,
    p: FloatArray,
    count: FloatArray,
    mu: FloatArray,
    best: FloatArray,
    ref: FloatArray,
) -> FloatArray:
    """One simulation-CI measure from estimates ``y`` shaped ``(..., J)``.

    ``mu``, ``best``, ``ref`` and ``count`` have the shape of ``y`` without its
    last axis (or broadcast to it), so the same formula serves the point
    estimate (``(G, J)``) and the draws (``(G, B, J)``).
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        if code in ("BGSD", "COV"):
            bgsd = np.sqrt((p * np.where(present, (y - mu[..., None]) ** 2, 0.0)).sum(axis=-1))
            return bgsd if code == "BGSD" else 100.0 * bgsd / mu
        absdev = np.where(present, np.abs(y - mu[..., None]), 0.0)
        if code == "IDISU":
            return 100.0 * absdev.sum(axis=-1) / count / mu
        if code == "IDISW":
            return 100.0 * (p * absdev).sum(axis=-1) / mu
        if code == "MDMU":
            return absdev.sum(axis=-1) / count
        if code == "MDMW":
            return (p * absdev).sum(axis=-1)
        target = best if code in ("MDBU", "MDBW") else ref
        gap = np.where(present, np.abs(y - target[..., None]), 0.0)
        if code in ("MDBU", "MDRU"):
            return gap.sum(axis=-1) / count
        if code in ("MDBW", "MDRW"):
            return (p * gap).sum(axis=-1)
    raise ValueError(f"not a simulation measure: {code}")
