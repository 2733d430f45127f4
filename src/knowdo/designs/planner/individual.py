"""Individually randomised two-arm trials: power, size per arm or minimum detectable effect.

n per arm = 2σ²(z_{1−α/2}+z_{1−β})²/Δ² for means and
[p0(1−p0)+p1(1−p1)](z+z)²/(p1−p0)² for proportions (designs-and-power.md §1),
with an optional noncentral-t test for means (R ``power.t.test``). The other
designs build on these numbers (cluster design effects, SMART inflation).
statsmodels' ``NormalIndPower``/``TTestIndPower`` give the same numbers for
means; this module adds proportions, unequal allocation and the shared
:class:`PowerResult` and solver.
"""

from __future__ import annotations

import math
from typing import Literal

from knowdo.designs._options import check_option
from knowdo.designs.planner.result import PowerResult
from knowdo.designs.planner.solve import (
    check_positive,
    check_probability,
    one_missing,
    solve_increasing,
    t_power,
    z_power,
)
from knowdo.errors import ParameterError

Test = Literal["z", "t"]
TESTS: tuple[str, ...] = ("z", "t")
DEFAULT_ALPHA = 0.05  # two-sided 5%, the convention of every R package in designs-and-power.md
SOURCES = ("standard two-sample formulas (e.g. Chow, Shao & Wang, Sample Size Calculations in Clinical Research)",)


def _power(effect: float, n1: float, ratio: float, *, sd: float | None, p0: float | None, test: str,
           alpha: float) -> tuple[float, float]:
    n2 = ratio * n1
    if p0 is None:
        assert sd is not None
        se = sd * math.sqrt(1 / n1 + 1 / n2)
    else:
        p1 = p0 + effect
        if not 0 < p1 < 1:
            return (1.0, 0.0) if abs(effect) > 0 else (alpha, math.inf)
        se = math.sqrt(p0 * (1 - p0) / n1 + p1 * (1 - p1) / n2)
    if test == "t":
        return t_power(effect, se, n1 + n2 - 2, alpha), se
    return z_power(effect, se, alpha), se


def plan_individual(
    *,
    delta: float | None = None,
    sd: float | None = None,
    p0: float | None = None,
    p1: float | None = None,
    n_per_arm: float | None = None,
    power: float | None = None,
    alpha: float = DEFAULT_ALPHA,
    test: Test = "z",
    allocation_ratio: float = 1.0,
) -> PowerResult:
    """Power, size per arm (control arm when allocation is unequal) or MDE of a two-arm trial.

    Give ``delta`` and ``sd`` for a continuous outcome or ``p0`` and ``p1`` for
    a binary one; leave exactly one of the size, ``power`` and the effect
    (``delta`` or ``p1``) empty to solve for it.

    Examples
    --------
    >>> r = plan_individual(delta=4, sd=5, power=0.8)
    >>> r.parameters["n_per_arm"], round(r.details["n_per_arm_exact"], 2)
    (25, 24.53)
    """
    check_option("test", test, TESTS)
    check_probability("alpha", alpha)
    check_positive("allocation_ratio", allocation_ratio)
    binary = p0 is not None
    if binary:
        check_probability("p0", p0)  # type: ignore[arg-type]
        if delta is not None or sd is not None:
            raise ParameterError("give either delta and sd (continuous) or p0 and p1 (binary), not both.")
        effect = None if p1 is None else check_probability("p1", p1) - p0  # type: ignore[operator]
    else:
        if sd is None:
            raise ParameterError("a continuous outcome needs sd (the outcome standard deviation); or give p0/p1.")
        check_positive("sd", sd)
        effect = delta
    missing = one_missing(size=n_per_arm, power=power, effect=effect)

    def power_at(e: float, n1: float) -> float:
        return _power(e, n1, allocation_ratio, sd=sd, p0=p0, test=test, alpha=alpha)[0]

    exact: float | None = None
    if missing == "size":
        assert effect is not None and power is not None
        check_probability("power", power)
        if effect == 0:
            raise ParameterError("the effect is zero; no sample size detects it.")
        target: float = effect
        exact = solve_increasing(lambda n: power_at(target, n), power, 2.0, 100.0, name="n_per_arm")
        n1 = float(solve_increasing(lambda n: power_at(target, n), power, 2.0, 100.0, name="n_per_arm",
                                    integer=True))
    else:
        assert n_per_arm is not None
        n1 = check_positive("n_per_arm", n_per_arm)
    if missing == "effect":
        assert power is not None
        check_probability("power", power)
        upper = (1 - p0) if binary else 10 * sd * math.sqrt(2 / n1)  # type: ignore[operator]
        effect = solve_increasing(lambda e: power_at(e, n1), power, 0.0, upper * 0.5, name="effect",
                                  limit=upper if binary else 1e7)
    assert effect is not None
    achieved, se = _power(effect, n1, allocation_ratio, sd=sd, p0=p0, test=test, alpha=alpha)
    n1_out: float = int(n1) if float(n1).is_integer() else n1
    p1_out = None if p0 is None else p0 + effect
    params = {"outcome": "binary" if binary else "continuous", "delta": effect if not binary else None, "sd": sd,
              "p0": p0, "p1": p1_out, "n_per_arm": n1_out, "alpha": alpha, "test": test,
              "allocation_ratio": allocation_ratio}
    details: dict[str, float] = {"n_second_arm": allocation_ratio * n1}
    if exact is not None:
        details["n_per_arm_exact"] = exact
    return PowerResult(
        design="individual-rct",
        method=f"two-sample {'noncentral t' if test == 't' else 'z'} test, "
               f"{'unpooled proportions' if binary else 'means'}",
        power=achieved,
        alpha=alpha,
        effect=effect,
        std_error=se,
        parameters=params,
        solved_for={"size": "sample_size", "power": "power", "effect": "mde"}[missing],
        n=n1 * (1 + allocation_ratio),
        mde=effect if missing == "effect" else None,
        target_power=power,
        details=details,
        assumptions=("individuals are independent (no clustering by clinic or provider)",
                     "outcome variance as stated, equal in both arms" if not binary else
                     "normal approximation to the difference in proportions"),
        sources=SOURCES,
    )
