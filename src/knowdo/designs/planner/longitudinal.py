"""Power, cluster-period size, clusters or MDE for longitudinal cluster designs through the GLS engine.

:func:`plan_longitudinal` takes any :class:`~knowdo.designs.planner.engine.Design`
and :class:`~knowdo.designs.planner.engine.CovarianceModel`;
:func:`plan_stepped_wedge` builds both from the parameters a protocol states
(clusters, steps, cluster-period size, p0/p1 or Δ and σ, τ or ICC with CAC,
decay or a cohort), following the R packages' conventions: two-sided normal
power with both tails, τ and σ as SDs, σ² = p̄(1−p̄) for a binary outcome
(swCRTdesign, SteppedPower; designs-and-power.md §0).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Literal

from knowdo.designs._options import check_option
from knowdo.designs.planner.engine import (
    COHORTS,
    Cohort,
    CovarianceModel,
    Design,
    TimeAdjust,
    binomial_sigma,
    cell_sizes,
    treatment_variance,
)
from knowdo.designs.planner.result import PowerResult
from knowdo.designs.planner.solve import check_positive, check_probability, one_missing, solve_increasing, z_power
from knowdo.errors import ParameterError

DEFAULT_ALPHA = 0.05  # two-sided 5%, as swCRTdesign and SteppedPower
Solve = Literal["cluster_period_size", "clusters"]
SOURCES = (
    "Hussey MA, Hughes JP. Contemp Clin Trials 2007;28:182-191",
    "Hooper R, Teerenstra S, de Hoop E, Eldridge S. Stat Med 2016;35:4718-4728",
    "Kasza J, Hemming K, Hooper R, Matthews JNS, Forbes AB. Stat Methods Med Res 2019;28:703-716",
    "Li F, Hughes JP, Hemming K, Taljaard M, Melnick ER, Heagerty PJ. Stat Methods Med Res 2021;30:612-639",
)


def _assumptions(covariance: CovarianceModel, time_adjust: str) -> tuple[str, ...]:
    notes = [
        "variance components known in advance (take them from comparable studies; power is sensitive to them)",
        "analysis by a linear mixed model / GLS with the stated correlation structure and a Wald z-test",
    ]
    if time_adjust == "categorical":
        notes.append("secular trend modelled by period fixed effects")
    elif time_adjust == "none":
        notes.append("no secular trend (a trend would bias the effect and change power)")
    if covariance.cluster_decay < 1:
        notes.append(f"correlation within a cluster decays by {covariance.cluster_decay} per period")
    elif covariance.gamma > 0:
        notes.append("block-exchangeable correlation (cluster autocorrelation below 1)")
    else:
        notes.append("exchangeable correlation within a cluster across periods (Hussey & Hughes)")
    if covariance.cohort == "closed":
        notes.append("the same people are measured every period (closed cohort)")
    notes.append("the intervention effect is immediate and constant over exposure time")
    return tuple(notes)


def plan_longitudinal(
    design: Design,
    covariance: CovarianceModel,
    *,
    effect: float | None,
    cluster_period_size: float | Sequence[float] | None = None,
    power: float | None = None,
    alpha: float = DEFAULT_ALPHA,
    time_adjust: TimeAdjust = "categorical",
    parameters: dict[str, Any] | None = None,
) -> PowerResult:
    """Power of ``design`` (or the common cluster-period size, or the MDE, whichever is left empty).

    Examples
    --------
    >>> d = Design.stepped_wedge(3, 3)
    >>> r = plan_longitudinal(d, CovarianceModel.hussey_hughes(1.0, 0.0), effect=0.2, power=0.8)
    >>> r.parameters["cluster_period_size"], round(r.power, 4)
    (50, 0.8074)
    """
    check_probability("alpha", alpha)
    missing = one_missing(cluster_period_size=cluster_period_size, power=power, effect=effect)
    exact: float | None = None
    if missing == "cluster_period_size":
        assert power is not None and effect is not None
        check_probability("power", power)
        if effect == 0:
            raise ParameterError("the effect is zero; no cluster-period size detects it.")

        target: float = effect

        def power_at(m: float) -> float:
            variance = treatment_variance(design, m, covariance, time_adjust=time_adjust)
            return z_power(target, math.sqrt(variance), alpha)

        exact = solve_increasing(power_at, power, 1.0, 50.0, name="cluster_period_size")
        cluster_period_size = solve_increasing(power_at, power, 1.0, 50.0, name="cluster_period_size", integer=True)
    assert cluster_period_size is not None
    se = math.sqrt(treatment_variance(design, cluster_period_size, covariance, time_adjust=time_adjust))
    if missing == "effect":
        assert power is not None
        check_probability("power", power)
        effect = solve_increasing(lambda e: z_power(e, se, alpha), power, 0.0, 4 * se, name="effect")
    assert effect is not None
    sizes = cell_sizes(design, cluster_period_size)
    n_total = float(sizes[design.observed].sum())
    params: dict[str, Any] = {"clusters": design.clusters, "periods": design.periods, "design": design.name,
                              "cluster_period_size": (cluster_period_size
                                                      if isinstance(cluster_period_size, (int, float))
                                                      else [float(v) for v in sizes.ravel()]),
                              "alpha": alpha, "time_adjust": time_adjust, "covariance": dict(covariance.__dict__)}
    params.update(parameters or {})
    details: dict[str, Any] = {"variance": se**2, "icc": covariance.icc}
    if exact is not None:
        details["cluster_period_size_exact"] = exact
    return PowerResult(
        design=design.name,
        method="GLS variance of the treatment effect (cluster-period means), two-sided Wald z-test",
        power=z_power(effect, se, alpha),
        alpha=alpha,
        effect=effect,
        std_error=se,
        parameters=params,
        solved_for={"cluster_period_size": "sample_size", "power": "power", "effect": "mde"}[missing],
        n=n_total,
        clusters=design.clusters,
        mde=effect if missing == "effect" else None,
        target_power=power,
        details=details,
        assumptions=_assumptions(covariance, time_adjust),
        sources=SOURCES,
    )


def stepped_wedge_covariance(
    *,
    sigma: float | None = None,
    p0: float | None = None,
    p1: float | None = None,
    tau: float | None = None,
    icc: float | None = None,
    cac: float = 1.0,
    decay: float | None = None,
    iac: float = 0.0,
    psi: float = 0.0,
    retention: float = 1.0,
    cohort: Cohort = "cross-sectional",
) -> CovarianceModel:
    """Covariance model from protocol parameters: τ (random-effects SD) or ICC with CAC / decay / IAC.

    For a binary outcome σ_e² = p̄(1−p̄) with τ on the probability scale
    (Hussey & Hughes; swCRTdesign); with an ICC the total variance is p̄(1−p̄).
    """
    check_option("cohort", cohort, COHORTS)
    if (p0 is None) != (p1 is None):
        raise ParameterError("give both p0 and p1 for a binary outcome (p1 is needed for p̄ even when solving).")
    binary = p0 is not None
    if binary and sigma is not None:
        raise ParameterError("give sigma for a continuous outcome or p0/p1 for a binary one, not both.")
    base = binomial_sigma(p0, p1) if binary else sigma  # type: ignore[arg-type]
    if base is None:
        raise ParameterError("a continuous outcome needs sigma (individual-level SD); a binary one p0 and p1.")
    check_positive("sigma", base)
    if (tau is None) == (icc is None):
        raise ParameterError("give exactly one of tau (cluster random-effect SD) or icc.")
    if tau is not None:
        check_positive("tau", tau, allow_zero=True)
        if decay is not None or cac != 1.0 or iac:
            raise ParameterError("with tau use psi/retention for cohorts; cac, decay and iac go with icc.")
        if cohort == "closed":
            return CovarianceModel.closed_cohort(base, tau, psi, retention)
        return CovarianceModel.hussey_hughes(base, tau)
    assert icc is not None
    if decay is not None:
        if cac != 1.0 or iac:
            raise ParameterError("decay replaces cac; give one of them (iac is not supported with decay).")
        return CovarianceModel.discrete_time_decay(icc, decay, sigma=base)
    return CovarianceModel.block_exchangeable(icc, cac, iac, sigma=base, cohort=cohort)


def plan_stepped_wedge(
    *,
    clusters: int | None = None,
    steps: int,
    cluster_period_size: float | None = None,
    baseline_periods: int = 1,
    periods_per_step: int = 1,
    window: tuple[int, int] | None = None,
    delta: float | None = None,
    sigma: float | None = None,
    p0: float | None = None,
    p1: float | None = None,
    tau: float | None = None,
    icc: float | None = None,
    cac: float = 1.0,
    decay: float | None = None,
    iac: float = 0.0,
    psi: float = 0.0,
    retention: float = 1.0,
    cohort: Cohort = "cross-sectional",
    power: float | None = None,
    alpha: float = DEFAULT_ALPHA,
    time_adjust: TimeAdjust = "categorical",
) -> PowerResult:
    """Stepped-wedge power from protocol parameters; with ``power`` and no size (or no clusters) it solves.

    ``clusters`` are spread over ``steps`` sequences as evenly as possible
    (earlier sequences get the extra clusters). ``window=(before, after)``
    makes an incomplete design. Leave ``clusters`` empty with ``power`` to
    find the smallest number of clusters (a multiple of ``steps``).

    Examples
    --------
    >>> r = plan_stepped_wedge(clusters=24, steps=4, cluster_period_size=120, p0=0.05, p1=0.035, tau=0.01)
    >>> round(r.power, 7)
    0.7861896
    """
    check_option("cohort", cohort, COHORTS)
    cov = stepped_wedge_covariance(sigma=sigma, p0=p0, p1=p1, tau=tau, icc=icc, cac=cac, decay=decay, iac=iac,
                                   psi=psi, retention=retention, cohort=cohort)
    effect = (p1 - p0) if p0 is not None and p1 is not None else delta
    params: dict[str, Any] = {"steps": steps, "baseline_periods": baseline_periods,
                              "periods_per_step": periods_per_step, "window": window, "delta": delta, "sigma": sigma,
                              "p0": p0, "p1": p1, "tau": tau, "icc": icc, "cac": cac, "decay": decay, "iac": iac,
                              "psi": psi, "retention": retention, "cohort": cohort}

    def build(n_clusters: int) -> Design:
        if n_clusters < steps:
            raise ParameterError(f"clusters={n_clusters} is fewer than steps={steps}; every step needs a cluster.")
        base, extra = divmod(n_clusters, steps)
        counts = [base + (1 if s < extra else 0) for s in range(steps)]
        design = Design.stepped_wedge(counts, baseline_periods=baseline_periods, periods_per_step=periods_per_step)
        return design.with_window(*window) if window is not None else design

    if clusters is None:
        if power is None or cluster_period_size is None or effect is None:
            raise ParameterError("to solve for clusters give power, cluster_period_size and the effect.")
        check_probability("power", power)

        target: float = effect
        size: float = cluster_period_size

        def power_at(groups: float) -> float:
            design = build(math.ceil(groups) * steps)
            return z_power(target, math.sqrt(treatment_variance(design, size, cov, time_adjust=time_adjust)), alpha)

        groups = int(solve_increasing(power_at, power, 1.0, 8.0, name="clusters per sequence", integer=True,
                                      limit=1e5))
        result = plan_longitudinal(build(groups * steps), cov, effect=effect, cluster_period_size=cluster_period_size,
                                   alpha=alpha, time_adjust=time_adjust, parameters=params)
        return replace(result, solved_for="clusters", target_power=power)
    return plan_longitudinal(build(int(clusters)), cov, effect=effect, cluster_period_size=cluster_period_size,
                             power=power, alpha=alpha, time_adjust=time_adjust, parameters=params)
