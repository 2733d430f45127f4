"""Power kernels and the root finder that turns any power function into a size or an MDE.

Every planner function computes power from a standard error; solving for the
number of clusters, the cluster size or the minimum detectable effect is the
same problem each time (find where an increasing power curve crosses the
target), so it lives here once. The root finder is scipy's Brent method with
an expanding bracket; integer sizes are the smallest integer reaching the
target.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from scipy import optimize, stats

from knowdo.errors import ParameterError


def z_power(effect: float, std_error: float, alpha: float = 0.05, two_sided: bool = True) -> float:
    """Power of a Wald z-test: Φ(|θ|/SE − z) plus, two-sided, the far tail Φ(−|θ|/SE − z).

    The far tail follows swCRTdesign and SteppedPower (designs-and-power.md §2.1).

    Examples
    --------
    >>> round(z_power(0.5, 0.2), 4)
    0.7054
    """
    if std_error <= 0 or not math.isfinite(std_error):
        raise ParameterError(f"the standard error must be positive and finite; got {std_error!r}.")
    shift = abs(effect) / std_error
    if not two_sided:
        return float(stats.norm.cdf(shift - stats.norm.isf(alpha)))
    z = stats.norm.isf(alpha / 2)
    return float(stats.norm.cdf(shift - z) + stats.norm.cdf(-shift - z))


def t_power(effect: float, std_error: float, df: float, alpha: float = 0.05, noncentral: bool = True) -> float:
    """Power of a two-sided t-test with ``df`` degrees of freedom.

    ``noncentral=True`` uses the noncentral t (clusterPower ``cpa.normal``:
    1 − F_{t,df,ncp}(t_{1−α/2})); otherwise a shifted central t on both tails
    (SteppedPower's degrees-of-freedom heuristics).
    """
    if df <= 0:
        raise ParameterError(f"degrees of freedom must be positive; got {df!r}. Add clusters or use a z-test.")
    ncp = abs(effect) / std_error
    crit = stats.t.isf(alpha / 2, df)
    if noncentral:
        return float(stats.nct.sf(crit, df, ncp))
    return float(stats.t.cdf(ncp - crit, df) + stats.t.cdf(-ncp - crit, df))


def z_mde(std_error: float, alpha: float = 0.05, power: float = 0.8, two_sided: bool = True) -> float:
    """Smallest |θ| a Wald z-test detects with ``power`` (both tails counted)."""
    return solve_increasing(lambda e: z_power(e, std_error, alpha, two_sided), power, 0.0, 10 * std_error, name="mde")


def check_probability(name: str, value: float, *, open_low: bool = True, open_high: bool = True) -> float:
    """Return ``value`` if it is a probability in (0, 1) (or with closed ends as asked)."""
    low_ok = value > 0 if open_low else value >= 0
    high_ok = value < 1 if open_high else value <= 1
    if not (isinstance(value, (int, float)) and math.isfinite(value) and low_ok and high_ok):
        bounds = ("(" if open_low else "[") + "0, 1" + (")" if open_high else "]")
        raise ParameterError(f"{name}={value!r} is not accepted; it must lie in {bounds}.")
    return float(value)


def check_positive(name: str, value: float, *, allow_zero: bool = False) -> float:
    ok = value >= 0 if allow_zero else value > 0
    if not (isinstance(value, (int, float)) and math.isfinite(value) and ok):
        what = "zero or more" if allow_zero else "positive"
        raise ParameterError(f"{name}={value!r} is not accepted; it must be {what}.")
    return float(value)


def one_missing(**values: object) -> str:
    """Name the one argument left as ``None`` (the quantity to solve for), or raise."""
    missing = [k for k, v in values.items() if v is None]
    if len(missing) != 1:
        given = ", ".join(values)
        raise ParameterError(
            f"leave exactly one of {given} empty (None) to solve for it; {len(missing)} are empty "
            f"({', '.join(missing) or 'none'})."
        )
    return missing[0]


def solve_increasing(
    fn: Callable[[float], float],
    target: float,
    low: float,
    high: float,
    *,
    name: str,
    integer: bool = False,
    limit: float = 1e7,
) -> float:
    """Find x in [low, ∞) with fn(x) = target for an increasing fn (smallest integer if asked).

    The bracket doubles from ``high`` until fn reaches the target or ``limit``
    is passed; then Brent's method finds the crossing.
    """
    f_low = fn(low)
    if f_low >= target:
        return math.ceil(low) if integer else low
    hi = max(high, low + 1e-9)
    while fn(hi) < target:
        if hi > limit:
            raise ParameterError(
                f"no {name} up to {limit:g} reaches the target {target:g}; the target cannot be met with "
                "these parameters (check the effect, the variance components and the design)."
            )
        hi = low + 2 * (hi - low) if hi > low else hi * 2
    root = optimize.brentq(lambda x: fn(x) - target, low, hi, xtol=1e-10, rtol=1e-12)
    if not integer:
        return float(root)
    value = max(math.ceil(root - 1e-9), math.ceil(low))
    while fn(value) < target:
        value += 1
    return value
