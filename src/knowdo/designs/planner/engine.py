"""One GLS design engine for longitudinal cluster designs.

A design is a clusters × periods matrix of treatment exposure (any pattern:
parallel, parallel with baseline, stepped-wedge, incomplete, crossover,
staggered rollout) with a mask of observed cells. A covariance model gives
the covariance of the cluster-period means for each cluster: exchangeable
(Hussey & Hughes 2007), block-exchangeable with cluster autocorrelation
(Hooper et al. 2016; Girling & Hemming 2016), discrete-time decay (Kasza et
al. 2019), closed and open cohorts with a subject effect and its
autocorrelation (SteppedPower's ``psi`` and ``AR``), and unequal
cluster-period sizes. The variance of the treatment effect is the GLS one,
``[(Σ_i Z_i' V_i⁻¹ Z_i)⁻¹]_θθ`` with ``Z_i = [x_i, period effects]``
(designs-and-power.md §2.1). The closed forms in
:mod:`knowdo.designs.planner.closed_forms` are special cases and are tested
against this engine.

Why our own: no Python package covers these designs (designs-and-power.md §8);
the algebra needs only numpy. Clusters that share treatment row, observed
cells and sizes are computed once and weighted, so large designs stay fast.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import pandas as pd

from knowdo.designs._options import check_option
from knowdo.errors import ParameterError

TimeAdjust = Literal["categorical", "linear", "none"]
TIME_ADJUST: tuple[str, ...] = ("categorical", "linear", "none")
Cohort = Literal["cross-sectional", "closed"]
COHORTS: tuple[str, ...] = ("cross-sectional", "closed")


def _readonly(array: np.ndarray) -> np.ndarray:
    array = np.array(array, copy=True)
    array.setflags(write=False)
    return array


@dataclass(frozen=True, eq=False)
class Design:
    """Treatment exposure (clusters × periods, 0-1) and which cells are observed.

    Examples
    --------
    >>> d = Design.stepped_wedge([6, 6, 6, 6])
    >>> d.clusters, d.periods, int(d.treatment.sum())
    (24, 5, 60)
    """

    treatment: np.ndarray
    observed: np.ndarray
    name: str = "custom"

    def __post_init__(self) -> None:
        x = np.asarray(self.treatment, dtype=float)
        if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 1:
            raise ParameterError(f"treatment must be a clusters x periods matrix; got shape {x.shape}.")
        if not np.all(np.isfinite(x)) or x.min() < 0 or x.max() > 1:
            raise ParameterError("treatment cells must lie in [0, 1] (1 = exposed, fractions for partial exposure).")
        obs = np.asarray(self.observed, dtype=bool)
        if obs.shape != x.shape:
            raise ParameterError(f"observed has shape {obs.shape} but treatment has shape {x.shape}; make them equal.")
        if not obs.any(axis=1).all():
            empty = np.flatnonzero(~obs.any(axis=1)).tolist()
            raise ParameterError(f"clusters {empty} have no observed period; drop them or observe at least one.")
        object.__setattr__(self, "treatment", _readonly(x))
        object.__setattr__(self, "observed", _readonly(obs))

    @property
    def clusters(self) -> int:
        return int(self.treatment.shape[0])

    @property
    def periods(self) -> int:
        return int(self.treatment.shape[1])

    @property
    def cells(self) -> int:
        """Observed cluster-periods."""
        return int(self.observed.sum())

    # ----------------------------------------------------------- constructors
    @classmethod
    def from_matrix(
        cls, treatment: Sequence[Sequence[float]] | np.ndarray, observed: np.ndarray | None = None, name: str = "custom"
    ) -> Design:
        x = np.asarray(treatment, dtype=float)
        obs = np.ones(x.shape, dtype=bool) if observed is None else np.asarray(observed, dtype=bool)
        return cls(x, obs, name)

    @classmethod
    def stepped_wedge(
        cls,
        clusters_per_sequence: int | Sequence[int],
        sequences: int | None = None,
        *,
        baseline_periods: int = 1,
        periods_per_step: int = 1,
    ) -> Design:
        """Standard stepped wedge: every sequence starts in control and crosses over one step after the last.

        ``clusters_per_sequence`` is one count for all sequences (then give
        ``sequences``) or one count per sequence; a zero count leaves a step
        with no crossover (SteppedPower's ``Cl = c(4, 4, 4, 0)``). Periods are
        ``baseline_periods + sequences × periods_per_step``.
        """
        counts = _sequence_counts(clusters_per_sequence, sequences)
        _check_count("baseline_periods", baseline_periods, minimum=1)
        _check_count("periods_per_step", periods_per_step, minimum=1)
        periods = baseline_periods + len(counts) * periods_per_step
        rows = []
        for s, count in enumerate(counts):
            row = np.zeros(periods)
            row[baseline_periods + s * periods_per_step :] = 1.0
            rows += [row] * count
        return cls.from_matrix(np.array(rows), name="stepped-wedge")

    @classmethod
    def parallel(cls, clusters_per_arm: int | tuple[int, int], periods: int = 1) -> Design:
        """Parallel cluster trial: control clusters first, then treated, followed for ``periods``."""
        control, treated = _arms(clusters_per_arm)
        _check_count("periods", periods, minimum=1)
        x = np.vstack([np.zeros((control, periods)), np.ones((treated, periods))])
        return cls.from_matrix(x, name="parallel")

    @classmethod
    def parallel_baseline(
        cls, clusters_per_arm: int | tuple[int, int], baseline_periods: int = 1, follow_up_periods: int = 1
    ) -> Design:
        """Parallel cluster trial with ``baseline_periods`` before treatment starts in the treated arm."""
        control, treated = _arms(clusters_per_arm)
        _check_count("baseline_periods", baseline_periods, minimum=1)
        _check_count("follow_up_periods", follow_up_periods, minimum=1)
        periods = baseline_periods + follow_up_periods
        x = np.zeros((control + treated, periods))
        x[control:, baseline_periods:] = 1.0
        return cls.from_matrix(x, name="parallel-baseline")

    @classmethod
    def crossover(cls, clusters_per_sequence: int | tuple[int, int], periods: int = 2) -> Design:
        """Cluster crossover: sequence AB... and BA..., alternating each period."""
        first, second = _arms(clusters_per_sequence)
        _check_count("periods", periods, minimum=2)
        pattern = np.arange(periods) % 2
        x = np.vstack([np.tile(pattern, (first, 1)), np.tile(1 - pattern, (second, 1))]).astype(float)
        return cls.from_matrix(x, name="crossover")

    @classmethod
    def staggered(cls, start_periods: Sequence[int | None], periods: int) -> Design:
        """Staggered rollout: cluster i is exposed from period ``start_periods[i]`` (0-based; None = never)."""
        _check_count("periods", periods, minimum=2)
        x = np.zeros((len(start_periods), periods))
        for i, start in enumerate(start_periods):
            if start is None:
                continue
            if not 0 <= int(start) <= periods:
                raise ParameterError(f"start_periods[{i}]={start!r} is outside 0..{periods}; use None for never.")
            x[i, int(start) :] = 1.0
        return cls.from_matrix(x, name="staggered")

    # ------------------------------------------------------------- variations
    def with_window(self, before: int, after: int) -> Design:
        """Incomplete design: observe a switching cluster ``before`` periods before and ``after`` from its switch.

        Clusters that never switch keep all periods (SteppedPower's scalar ``incomplete``).
        """
        _check_count("before", before, minimum=0)
        _check_count("after", after, minimum=1)
        obs = np.array(self.observed, copy=True)
        for i in range(self.clusters):
            exposed = np.flatnonzero(self.treatment[i] > 0)
            if len(exposed) == 0:
                continue
            switch = exposed[0]
            keep = np.zeros(self.periods, dtype=bool)
            keep[max(0, switch - before) : switch + after] = True
            obs[i] &= keep
        return replace(self, observed=obs, name=f"{self.name} (incomplete)")

    def to_frame(self) -> pd.DataFrame:
        """Long table ``cluster, period, treatment, observed``."""
        i, j = np.indices(self.treatment.shape)
        return pd.DataFrame(
            {
                "cluster": i.ravel(),
                "period": j.ravel(),
                "treatment": self.treatment.ravel(),
                "observed": self.observed.ravel(),
            }
        )


@dataclass(frozen=True)
class CovarianceModel:
    """Variance components of individual outcomes, as standard deviations (the R packages' convention).

    Model for person k in cluster i, period j:
    ``y = period_j + θ x_ij + C_ij + η_i x_ij + S_ik + e_ijk`` with the cluster
    effect ``C_ij`` having ``Var = τ²`` and ``Cov(C_ij, C_ij') = τ² r^|j−j'|``
    plus an independent cluster-period effect ``γ``; ``η`` a random treatment
    effect; ``S`` a subject effect (SD ``ψ``) correlated ``a^|j−j'|`` across
    periods in a closed cohort; ``e`` the residual (SD ``σ_e``).
    """

    sigma_e: float
    tau: float = 0.0
    gamma: float = 0.0
    eta: float = 0.0
    psi: float = 0.0
    cluster_decay: float = 1.0
    subject_decay: float = 1.0
    cohort: Cohort = "cross-sectional"

    def __post_init__(self) -> None:
        for name in ("sigma_e", "tau", "gamma", "eta", "psi"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ParameterError(f"{name}={value!r} is not accepted; standard deviations must be zero or more.")
        for name in ("cluster_decay", "subject_decay"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0 <= value <= 1):
                raise ParameterError(f"{name}={value!r} is not accepted; an autocorrelation must lie in [0, 1].")
        check_option("cohort", self.cohort, COHORTS)

    # ----------------------------------------------------------- constructors
    @classmethod
    def hussey_hughes(cls, sigma_e: float, tau: float) -> CovarianceModel:
        """Random cluster intercept (exchangeable), the Hussey & Hughes (2007) model."""
        return cls(sigma_e=sigma_e, tau=tau)

    @classmethod
    def block_exchangeable(
        cls, icc: float, cac: float = 1.0, iac: float = 0.0, sigma: float = 1.0, cohort: Cohort = "cross-sectional"
    ) -> CovarianceModel:
        """ICC ρ, cluster autocorrelation CAC and individual autocorrelation IAC (Hooper et al. 2016).

        τ² = ρ·CAC·σ², γ² = ρ(1−CAC)σ², ψ² = (1−ρ)·IAC·σ², σ_e² = (1−ρ)(1−IAC)σ².
        """
        _check_unit("icc", icc)
        _check_unit("cac", cac)
        _check_unit("iac", iac)
        if iac > 0 and cohort != "closed":
            raise ParameterError("iac > 0 describes repeated measures on the same people; pass cohort='closed'.")
        var = sigma**2
        return cls(
            sigma_e=math.sqrt((1 - icc) * (1 - iac) * var),
            tau=math.sqrt(icc * cac * var),
            gamma=math.sqrt(icc * (1 - cac) * var),
            psi=math.sqrt((1 - icc) * iac * var),
            cohort=cohort,
        )

    @classmethod
    def discrete_time_decay(cls, icc: float, decay: float, sigma: float = 1.0) -> CovarianceModel:
        """Corr between people in periods j, j' of one cluster is ρ·r^|j−j'| (Kasza et al. 2019)."""
        _check_unit("icc", icc)
        _check_unit("decay", decay)
        return cls(sigma_e=math.sqrt(1 - icc) * sigma, tau=math.sqrt(icc) * sigma, cluster_decay=decay)

    @classmethod
    def closed_cohort(cls, sigma_e: float, tau: float, psi: float, retention: float = 1.0) -> CovarianceModel:
        """Cohort with a subject effect ψ; ``retention`` < 1 is an open cohort (subject effect AR(1), SteppedPower)."""
        return cls(sigma_e=sigma_e, tau=tau, psi=psi, subject_decay=retention, cohort="closed")

    # ------------------------------------------------------------- properties
    @property
    def total_variance(self) -> float:
        return self.sigma_e**2 + self.tau**2 + self.gamma**2 + self.psi**2

    @property
    def icc(self) -> float:
        """Within-period intracluster correlation (control cells)."""
        total = self.total_variance
        return (self.tau**2 + self.gamma**2) / total if total > 0 else math.nan

    # ------------------------------------------------------------- covariance
    def cluster_covariance(self, treatment_row: np.ndarray, sizes_row: np.ndarray) -> np.ndarray:
        """Covariance (periods × periods) of one cluster's cluster-period means."""
        x = np.asarray(treatment_row, dtype=float)
        m = np.asarray(sizes_row, dtype=float)
        t = len(x)
        lag = np.abs(np.subtract.outer(np.arange(t), np.arange(t)))
        cov = self.tau**2 * (self.cluster_decay**lag if self.cluster_decay < 1 else np.ones((t, t)))
        cov = cov + self.gamma**2 * np.eye(t) + self.eta**2 * np.outer(x, x)
        if self.cohort == "closed" and self.psi > 0:
            # A closed cohort follows the same people: the overlap of two means is min(m, m') people.
            overlap = np.minimum.outer(m, m) / np.multiply.outer(m, m)
            decay = self.subject_decay**lag if self.subject_decay < 1 else np.ones((t, t))
            cov = cov + self.psi**2 * decay * overlap
        else:
            cov = cov + np.diag(self.psi**2 / m)
        return cov + np.diag(self.sigma_e**2 / m)


def binomial_sigma(p0: float, p1: float) -> float:
    """σ_e for a binary outcome: sqrt(p̄(1−p̄)), p̄ = (p0+p1)/2 (Hussey & Hughes 2007; swCRTdesign)."""
    _check_unit("p0", p0, open_ends=True)
    _check_unit("p1", p1, open_ends=True)
    p_bar = (p0 + p1) / 2
    return math.sqrt(p_bar * (1 - p_bar))


def cell_sizes(design: Design, sizes: float | Sequence[float] | np.ndarray) -> np.ndarray:
    """Expand a scalar, a per-cluster vector or a clusters × periods matrix of sizes to a matrix."""
    arr = np.asarray(sizes, dtype=float)
    if arr.ndim == 0:
        arr = np.full(design.treatment.shape, float(arr))
    elif arr.ndim == 1:
        if len(arr) != design.clusters:
            raise ParameterError(f"sizes has {len(arr)} values but the design has {design.clusters} clusters.")
        arr = np.repeat(arr[:, None], design.periods, axis=1)
    elif arr.shape != design.treatment.shape:
        raise ParameterError(f"sizes has shape {arr.shape}; the design is {design.treatment.shape}.")
    if not np.all(np.isfinite(arr[design.observed])) or (arr[design.observed] <= 0).any():
        raise ParameterError("cluster-period sizes must be positive on every observed cell.")
    return np.where(design.observed, arr, 1.0)


def _time_columns(periods: int, time_adjust: str) -> np.ndarray:
    check_option("time_adjust", time_adjust, TIME_ADJUST)
    if time_adjust == "categorical":
        return np.eye(periods)
    if time_adjust == "linear":
        return np.column_stack([np.ones(periods), np.arange(periods, dtype=float)])
    return np.ones((periods, 1))


def information_matrix(
    design: Design,
    sizes: float | Sequence[float] | np.ndarray,
    covariance: CovarianceModel,
    *,
    time_adjust: TimeAdjust = "categorical",
) -> np.ndarray:
    """Σ_i Z_i' V_i⁻¹ Z_i with Z_i = [treatment, time columns] on the observed cells."""
    m = cell_sizes(design, sizes)
    time = _time_columns(design.periods, time_adjust)
    z_full = [np.column_stack([design.treatment[i], time]) for i in range(design.clusters)]
    info = np.zeros((1 + time.shape[1], 1 + time.shape[1]))
    groups: dict[bytes, tuple[int, int]] = {}
    for i in range(design.clusters):
        key = design.treatment[i].tobytes() + design.observed[i].tobytes() + m[i].tobytes()
        first, count = groups.get(key, (i, 0))
        groups[key] = (first, count + 1)
    for first, count in groups.values():
        obs = design.observed[first]
        cov = covariance.cluster_covariance(design.treatment[first], m[first])[np.ix_(obs, obs)]
        z = z_full[first][obs]
        try:
            info += count * (z.T @ np.linalg.solve(cov, z))
        except np.linalg.LinAlgError:
            raise ParameterError(
                "a cluster's covariance matrix is singular; give a positive residual SD (sigma_e) or cluster sizes."
            ) from None
    return info


def treatment_variance(
    design: Design,
    sizes: float | Sequence[float] | np.ndarray,
    covariance: CovarianceModel,
    *,
    time_adjust: TimeAdjust = "categorical",
) -> float:
    """GLS variance of the treatment effect, [(Σ Z'V⁻¹Z)⁻¹]_θθ (designs-and-power.md §2.1).

    Examples
    --------
    >>> d = Design.stepped_wedge([6, 6, 6, 6])
    >>> cov = CovarianceModel.hussey_hughes(sigma_e=binomial_sigma(0.05, 0.035), tau=0.01)
    >>> round(treatment_variance(d, 120, cov) * 1e5, 6)
    2.968231
    """
    info = information_matrix(design, sizes, covariance, time_adjust=time_adjust)
    # Periods nobody observes carry no information; drop their columns.
    keep = np.abs(info).sum(axis=0) > 0
    keep[0] = True
    reduced = info[np.ix_(keep, keep)]
    scale = np.sqrt(np.diag(reduced))
    if np.any(scale == 0):
        raise ParameterError("the treatment effect is not identifiable: no observed cell differs in exposure.")
    normed = reduced / np.outer(scale, scale)
    if np.linalg.cond(normed) > 1e12:
        raise ParameterError(
            "the treatment effect is not identifiable in this design: exposure is collinear with the time "
            "adjustment (e.g. every cluster switches at once with categorical periods). Add control clusters "
            "or periods, or change time_adjust."
        )
    inverse = np.linalg.inv(normed)
    return float(inverse[0, 0] / scale[0] ** 2)


def information_content(
    design: Design,
    sizes: float | Sequence[float] | np.ndarray,
    covariance: CovarianceModel,
    *,
    time_adjust: TimeAdjust = "categorical",
) -> pd.DataFrame:
    """Information content of each observed cell: Var(θ̂ without the cell) / Var(θ̂) (Kasza & Forbes 2019).

    Returns ``cluster, period, treatment, information_content``; cells whose
    removal makes the effect unidentifiable get ``inf``.
    """
    full = treatment_variance(design, sizes, covariance, time_adjust=time_adjust)
    m = cell_sizes(design, sizes)
    rows = []
    for i, j in zip(*np.nonzero(design.observed), strict=True):
        obs = np.array(design.observed, copy=True)
        obs[i, j] = False
        if not obs[i].any():
            ratio = math.inf
        else:
            try:
                reduced = Design(design.treatment, obs, design.name)
                ratio = treatment_variance(reduced, m, covariance, time_adjust=time_adjust) / full
            except ParameterError:
                ratio = math.inf
        rows.append({"cluster": int(i), "period": int(j), "treatment": float(design.treatment[i, j]),
                     "information_content": ratio})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------ helpers
def _sequence_counts(clusters_per_sequence: int | Sequence[int], sequences: int | None) -> list[int]:
    if isinstance(clusters_per_sequence, (int, np.integer)):
        if sequences is None:
            raise ParameterError("give sequences= when clusters_per_sequence is one number.")
        _check_count("sequences", sequences, minimum=1)
        counts = [int(clusters_per_sequence)] * int(sequences)
    else:
        counts = [int(c) for c in clusters_per_sequence]
        if sequences is not None and sequences != len(counts):
            raise ParameterError(f"sequences={sequences} but {len(counts)} counts were given.")
    if not counts or min(counts) < 0 or sum(counts) < 1:
        raise ParameterError(f"clusters per sequence must be counts with at least one cluster; got {counts}.")
    return counts


def _arms(clusters: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(clusters, (int, np.integer)):
        _check_count("clusters_per_arm", int(clusters), minimum=1)
        return int(clusters), int(clusters)
    first, second = clusters
    _check_count("clusters (first arm)", first, minimum=1)
    _check_count("clusters (second arm)", second, minimum=1)
    return int(first), int(second)


def _check_count(name: str, value: int, *, minimum: int) -> None:
    if not isinstance(value, (int, np.integer)) or value < minimum:
        raise ParameterError(f"{name}={value!r} is not accepted; it must be a whole number >= {minimum}.")


def _check_unit(name: str, value: float, *, open_ends: bool = False) -> None:
    ok = (0 < value < 1) if open_ends else (0 <= value <= 1)
    if not (isinstance(value, (int, float)) and math.isfinite(value) and ok):
        bounds = "(0, 1)" if open_ends else "[0, 1]"
        raise ParameterError(f"{name}={value!r} is not accepted; it must lie in {bounds}.")
