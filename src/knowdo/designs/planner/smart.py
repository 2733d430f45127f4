"""Sample size and power for SMARTs (sequential multiple assignment randomised trials), designs I-III.

Primary aim: compare two embedded adaptive interventions that start with
different first-stage treatments, analysed by weighting and replication
(Murphy, Stat Med 2005;24:1455; Oetting et al. 2011). Continuous, standardised
effect δ: N = 4(z_{1−α/2}+z_{1−β})²/δ² × IF, with IF = 2 (design I, everyone
re-randomised), 2 − r (II, non-responders only), (3 − r)/2 (III,
non-responders to one first-stage arm), times (1 − ρ²) for a longitudinal
outcome with three waves (conservative) or the exact factors of Seewald et
al. (SMMR 2020;29:1891, companion code ``rmSMARTsize``).
Binary: N = (z+z)²/(log OR)² × [A/(p₁q₁) + B/(p₂q₂)] with A, B the inverse
randomisation-probability weights (Kidwell et al., J Appl Stat 2018;45:1628).
Clustered SMART (NeCamp, Kilbourne & Almirall, SMMR 2017;26:1572): clusters
= individual N × DE_c / m; the design IF carries over (check the paper for
your design before relying on it). Pilot SMART (Almirall et al., Stat Med
2012;31:1887): smallest N giving every non-responder cell a minimum count
with high probability.
"""

from __future__ import annotations

import math
from typing import Literal

from scipy import stats

from knowdo.designs._options import check_option
from knowdo.designs.planner.result import PowerResult
from knowdo.designs.planner.solve import check_positive, check_probability, one_missing, solve_increasing, z_power
from knowdo.errors import ParameterError

SmartDesign = Literal["I", "II", "III"]
SMART_DESIGNS: tuple[str, ...] = ("I", "II", "III")
Aim = Literal["embedded", "first-stage", "second-stage"]
AIMS: tuple[str, ...] = ("embedded", "first-stage", "second-stage")
Longitudinal = Literal["none", "conservative", "exact"]
LONGITUDINAL: tuple[str, ...] = ("none", "conservative", "exact")
DEFAULT_ALPHA = 0.05  # two-sided (Seewald et al. 2020; SMARTsize app)
SOURCES = (
    "Oetting AI, Levy JA, Weiss RD, Murphy SA. In: Causality and Psychopathology, OUP 2011",
    "Seewald NJ, Kidwell KM, Nahum-Shani I, Wu T, McKay JR, Almirall D. Stat Methods Med Res 2020;29:1891",
)
BINARY_SOURCE = "Kidwell KM, Seewald NJ, Tran Q, Kasari C, Almirall D. J Appl Stat 2018;45:1628"
CLUSTER_SOURCE = "NeCamp T, Kilbourne A, Almirall D. Stat Methods Med Res 2017;26:1572"


def inflation_factor(design: SmartDesign, response_rate: float, response_rate_other: float | None = None) -> float:
    """SMART inflation over a two-arm trial for comparing two embedded AIs.

    Design II with two first-stage response rates uses their mean IF,
    ((2−r₁)+(2−r₀))/2 (rmSMARTsize).

    Examples
    --------
    >>> inflation_factor("I", 0.4), inflation_factor("II", 0.4), inflation_factor("III", 0.4)
    (2.0, 1.6, 1.3)
    """
    check_option("design", design, SMART_DESIGNS)
    r1 = check_probability("response_rate", response_rate, open_low=False, open_high=False)
    r0 = r1 if response_rate_other is None else check_probability("response_rate_other", response_rate_other,
                                                                    open_low=False, open_high=False)
    if design == "I":
        return 2.0
    if design == "II":
        return ((2 - r1) + (2 - r0)) / 2
    return (3 - r1) / 2


def longitudinal_factor(design: SmartDesign, rho: float, response_rate: float, kind: Longitudinal) -> float:
    """Deflation for a 3-wave longitudinal outcome with exchangeable correlation ρ (Seewald et al. 2020)."""
    check_option("longitudinal", kind, LONGITUDINAL)
    if kind == "none":
        return 1.0
    check_probability("rho", rho, open_low=False)
    if kind == "conservative":
        return 1 - rho**2
    r = response_rate
    if design == "I":
        return (1 - rho**2) - (1 - rho) * rho**2 / (2 * (1 + rho))
    if design == "II":
        return (1 - rho) * (2 * rho + 1) / (1 + rho) + (1 - rho) / (1 + rho) * rho**2 / (2 - r)
    return ((3 - r) * (1 + 2 * rho) + 2 * rho**2) * (1 - rho) / ((3 - r) * (1 + rho))


def _weights(design: str, response_rate: float) -> float:
    """A (or B) of Kidwell et al.: E[W²·consistent] for one embedded AI, π₁ = 1/2, π₂ = 1/2."""
    r = response_rate
    second_responders = 0.5 if design == "I" else 1.0
    return r / (0.5 * second_responders) + (1 - r) / (0.5 * 0.5)


def plan_smart(
    *,
    design: SmartDesign = "II",
    response_rate: float,
    response_rate_other: float | None = None,
    delta: float | None = None,
    p1: float | None = None,
    p2: float | None = None,
    n: float | None = None,
    power: float | None = None,
    alpha: float = DEFAULT_ALPHA,
    aim: Aim = "embedded",
    longitudinal: Longitudinal = "none",
    rho: float = 0.0,
    cluster_size: float | None = None,
    icc: float = 0.0,
) -> PowerResult:
    """Total N (or clusters), power or standardised MDE of a two-stage SMART.

    Continuous outcome: give the standardised effect ``delta`` (Cohen's d).
    Binary: give ``p1`` and ``p2``, the success probabilities of the two
    embedded AIs (the effect is their log odds ratio). For design III,
    ``response_rate`` is the response rate of the arm whose non-responders
    are re-randomised. With ``cluster_size`` the result is a clustered SMART
    and ``n`` counts individuals (clusters = n/m).

    Examples
    --------
    >>> plan_smart(design="II", response_rate=0.4, delta=0.3, power=0.8).n
    559.0
    """
    check_option("design", design, SMART_DESIGNS)
    check_option("aim", aim, AIMS)
    check_probability("alpha", alpha)
    r = check_probability("response_rate", response_rate, open_low=False, open_high=False)
    binary = p1 is not None or p2 is not None
    if binary and (delta is not None or aim != "embedded" or longitudinal != "none"):
        raise ParameterError("binary SMART sizing covers comparing two embedded AIs (aim='embedded') only; "
                             "give p1 and p2 without delta or a longitudinal correction.")
    if binary:
        if p1 is None:
            raise ParameterError("a binary SMART needs p1 (and p2 unless solving for it).")
        check_probability("p1", p1)
        effect = None if p2 is None else math.log(check_probability("p2", p2) / (1 - p2)) - math.log(p1 / (1 - p1))
    else:
        effect = delta
    missing = one_missing(n=n, power=power, effect=effect)
    de_c = 1.0
    if cluster_size is not None:
        check_positive("cluster_size", cluster_size)
        check_probability("icc", icc, open_low=False)
        de_c = 1 + (cluster_size - 1) * icc

    if aim == "first-stage":
        factor = 1.0
    elif aim == "second-stage":
        if r >= 1:
            raise ParameterError("response_rate=1 leaves no non-responders to compare at the second stage.")
        factor = 1 / (1 - r)
    else:
        factor = inflation_factor(design, r, response_rate_other)
    factor *= longitudinal_factor(design, rho, r, longitudinal) * de_c

    def variance_n(e: float) -> float:
        """N × Var(effect estimate)."""
        if not binary:
            return 4 * factor
        assert p1 is not None
        q2 = 1 / (1 + math.exp(-(math.log(p1 / (1 - p1)) + e)))
        r_other = r if response_rate_other is None else response_rate_other
        a = _weights(design, r)
        # Design III: the other first-stage arm is never re-randomised, so everyone there has weight 2.
        b = 1 / 0.5 if design == "III" else _weights(design, r_other)
        return (a / (p1 * (1 - p1)) + b / (q2 * (1 - q2))) * de_c

    z_sum = stats.norm.isf(alpha / 2)
    if missing == "n":
        assert power is not None and effect is not None
        check_probability("power", power)
        if effect == 0:
            raise ParameterError("the effect is zero; no SMART size detects it.")
        exact = float((z_sum + stats.norm.ppf(power)) ** 2 * variance_n(effect) / effect**2)
        n = float(math.ceil(exact - 1e-9))
    else:
        assert n is not None
        check_positive("n", n)
        exact = None
    assert n is not None
    if missing == "effect":
        assert power is not None
        check_probability("power", power)
        effect = solve_increasing(lambda e: z_power(e, math.sqrt(variance_n(e) / n), alpha), power, 0.0, 1.0,
                                  name="effect")
    assert effect is not None
    se = math.sqrt(variance_n(effect) / n)
    achieved = z_power(effect, se, alpha)
    sources = list(SOURCES) + ([BINARY_SOURCE] if binary else []) + ([CLUSTER_SOURCE] if cluster_size else [])
    details: dict[str, float] = {"inflation_factor": factor / de_c, "design_effect_clusters": de_c}
    if exact is not None:
        details["n_exact"] = exact
    return PowerResult(
        design=f"smart-{design}" + ("-clustered" if cluster_size else ""),
        method=("weighted-and-replicated comparison of two embedded adaptive interventions"
                if aim == "embedded" else f"{aim} comparison")
        + ("; log odds ratio" if binary else "; standardised mean"),
        power=achieved,
        alpha=alpha,
        effect=effect,
        std_error=se,
        parameters={"design": design, "response_rate": r, "response_rate_other": response_rate_other,
                    "delta": delta, "p1": p1, "p2": p2, "n": n, "aim": aim, "longitudinal": longitudinal, "rho": rho,
                    "cluster_size": cluster_size, "icc": icc, "alpha": alpha},
        solved_for={"n": "sample_size", "power": "power", "effect": "mde"}[missing],
        n=n,
        clusters=math.ceil(n / cluster_size) if cluster_size else None,
        mde=effect if missing == "effect" else None,
        target_power=power,
        details=details,
        assumptions=(
            "first- and second-stage randomisation 1:1",
            "response rate as stated (it drives the weights)",
            "normal approximation (z-test) to the weighted estimator",
        ) + (("the clustered IF is the individual one times DE_c; check NeCamp et al. for your design",)
             if cluster_size else ()),
        sources=tuple(sources),
    )


def pilot_smart_size(min_per_cell: int, response_rate: float, probability: float = 0.8, design: SmartDesign = "II",
                     max_n: int = 10_000) -> int:
    """Smallest N such that every non-responder cell has ≥ ``min_per_cell`` people with ``probability``.

    Each non-responder cell holds a person with probability (1 − r)/4
    (1:1 at both stages); the cell count is binomial (Almirall et al. 2012).
    Cells are treated as independent, so the joint probability is the
    product (slightly conservative).

    Examples
    --------
    >>> pilot_smart_size(3, 0.4, 0.8)
    40
    """
    check_option("design", design, SMART_DESIGNS)
    check_probability("response_rate", response_rate, open_low=False)
    check_probability("probability", probability)
    cell = (1 - response_rate) / 4
    cells = 4
    for n in range(min_per_cell, max_n + 1):
        if stats.binom.sf(min_per_cell - 1, n, cell) ** cells >= probability:
            return n
    raise ParameterError(f"no N up to {max_n} meets the pilot target; lower min_per_cell or probability.")
