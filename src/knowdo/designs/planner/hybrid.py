"""Hybrid type 2 effectiveness-implementation studies: power for two co-primary outcomes.

Curran et al. (Med Care 2012;50:217) define type 2 studies with co-primary
clinical and implementation outcomes. There is no special sample-size
theory beyond the underlying design (designs-and-power.md §3), but two
choices matter. If **both** outcomes must succeed, the power is
P(Z₁ > c, Z₂ > c) under a bivariate normal with the correlation of the two
test statistics: with 0.80 on each it is well below 0.80. If **either**
suffices, α is split (Bonferroni, α/2 each) and the power is
P(Z₁ > c' or Z₂ > c'). Each outcome is planned with its own design (an
implementation outcome measured per clinic gets its power from the number
of clinics only), passed here as two :class:`PowerResult`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import numpy as np
from scipy import stats

from knowdo.designs._options import check_option
from knowdo.designs.planner.result import PowerResult
from knowdo.designs.planner.solve import check_probability, solve_increasing
from knowdo.errors import ParameterError

Rule = Literal["both", "either"]
RULES: tuple[str, ...] = ("both", "either")
SOURCES = (
    "Curran GM, Bauer M, Mittman B, Pyne JM, Stetler C. Med Care 2012;50:217-226",
    "Landes SJ, McBain SA, Curran GM. Psychiatry Res 2019;280:112513",
)


def co_primary_power(noncentrality: tuple[float, float], correlation: float, alpha: float = 0.05,
                     rule: Rule = "both") -> float:
    """Power for two one-directional tests with standardised shifts |θ_k|/SE_k and correlated statistics.

    Examples
    --------
    >>> shift = 1.959964 + 0.841621  # 0.80 power each at two-sided 5%
    >>> round(co_primary_power((shift, shift), 0.0), 3), round(co_primary_power((shift, shift), 0.5), 3)
    (0.64, 0.687)
    """
    check_option("rule", rule, RULES)
    check_probability("alpha", alpha)
    if not -1 < correlation < 1:
        raise ParameterError(f"correlation={correlation!r} must lie strictly between -1 and 1.")
    d1, d2 = (abs(float(d)) for d in noncentrality)
    cov = np.array([[1.0, correlation], [correlation, 1.0]])
    if rule == "both":
        c = stats.norm.isf(alpha / 2)
        # P(Z1 > c, Z2 > c) = P(-Z1 < -c, -Z2 < -c) with Z_k ~ N(d_k, 1).
        return float(stats.multivariate_normal(mean=[-d1, -d2], cov=cov).cdf([-c, -c]))
    c = stats.norm.isf(alpha / 4)
    neither = stats.multivariate_normal(mean=[d1, d2], cov=cov).cdf([c, c])
    return float(1 - neither)


def plan_hybrid_type2(
    clinical: PowerResult, implementation: PowerResult, *, correlation: float = 0.0, rule: Rule = "both",
    alpha: float = 0.05,
) -> PowerResult:
    """Joint power of a type 2 hybrid from the plans of its two co-primary outcomes.

    Each plan must carry its effect and standard error (every analytic
    planner result does). ``correlation`` is between the two test statistics;
    when the outcomes are measured at different levels (patients vs clinics),
    a small value is usually right.
    """
    shifts = []
    for name, plan in (("clinical", clinical), ("implementation", implementation)):
        if plan.effect is None or plan.std_error is None or plan.std_error <= 0:
            raise ParameterError(f"the {name} plan has no effect and standard error; plan it analytically first.")
        shifts.append(abs(plan.effect) / plan.std_error)
    joint = co_primary_power((shifts[0], shifts[1]), correlation, alpha, rule)
    return PowerResult(
        design="hybrid-type-2",
        method=("both co-primary outcomes significant (bivariate normal)" if rule == "both"
                else "either outcome significant, alpha split in two (Bonferroni)"),
        power=joint,
        alpha=alpha,
        effect=None,
        parameters={"correlation": correlation, "rule": rule, "alpha": alpha,
                    "clinical": clinical.to_dict(), "implementation": implementation.to_dict()},
        n=max(v for v in (clinical.n, implementation.n, 0.0) if v is not None) or None,
        clusters=max((v for v in (clinical.clusters, implementation.clusters) if v is not None), default=None),
        details={"power_clinical": clinical.power, "power_implementation": implementation.power,
                 "shift_clinical": shifts[0], "shift_implementation": shifts[1]},
        assumptions=(
            "the two test statistics are jointly normal with the stated correlation",
            "implementation outcomes measured per clinic are powered by the number of clinics, not patients",
        ),
        sources=SOURCES,
    )


def solve_hybrid_size(
    make_plans: Callable[[int], tuple[PowerResult, PowerResult]], target: float = 0.8, *, correlation: float = 0.0,
    rule: Rule = "both", alpha: float = 0.05, low: int = 2, high: int = 20,
) -> tuple[int, PowerResult]:
    """Smallest size s (clusters, people: whatever ``make_plans`` takes) reaching the joint target power."""
    check_probability("target", target)

    def joint(size: float) -> float:
        clinical, implementation = make_plans(math.ceil(size))
        return plan_hybrid_type2(clinical, implementation, correlation=correlation, rule=rule, alpha=alpha).power

    size = int(solve_increasing(joint, target, float(low), float(high), name="size", integer=True, limit=1e6))
    clinical, implementation = make_plans(size)
    return size, plan_hybrid_type2(clinical, implementation, correlation=correlation, rule=rule, alpha=alpha)
