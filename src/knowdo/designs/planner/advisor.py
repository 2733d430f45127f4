"""Design advisor: from a programme's constraints to a ranked list of credible evaluation designs.

The user states what they can and cannot do (can units, individuals or only
the rollout order be randomised? how many units of what size? all at once
or in waves? how many periods of routine data before and after? is it a
policy? is there comparison data? what outcome and effect?) in a TOML file.
The advisor checks each design's preconditions, computes its power for the
stated effect with the planner, lists its key assumptions, threats to
validity, the knowdo estimator that would analyse it and the method's
source, and ranks the feasible ones: adequately powered first, then by
strength of design (randomised > quasi-experimental with comparison >
single series), then by power. When nothing is feasible it says so plainly.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import altair as alt
import pandas as pd

from knowdo.designs._options import check_option
from knowdo.designs.effect import _jsonable
from knowdo.designs.planner.cluster import Baseline, plan_crt
from knowdo.designs.planner.engine import CovarianceModel, Design
from knowdo.designs.planner.individual import plan_individual
from knowdo.designs.planner.its_power import plan_its
from knowdo.designs.planner.longitudinal import plan_longitudinal, plan_stepped_wedge
from knowdo.designs.planner.result import PowerResult
from knowdo.errors import ConfigError, KnowdoError, ParameterError

RANDOMISABLE: tuple[str, ...] = ("individuals", "units", "order", "none")
ROLLOUTS: tuple[str, ...] = ("waves", "all-at-once")
OUTCOMES: tuple[str, ...] = ("binary", "continuous")
ITS_RECOMMENDED_POINTS = 12  # 12 points before and after for monthly data (Wagner et al. 2002)
ITS_MINIMUM_POINTS = 3  # fewest points per segment that still identify a level and a slope
SYNTH_MIN_PRE = 5  # fewer pre-periods cannot judge the pre-intervention fit (Abadie et al. 2010, 2015)
MIN_CLUSTERS_PER_ARM = 4  # fewer clusters per arm gives unstable cluster-level inference (Hayes & Moulton 2017)
ADEQUATE_POWER = 0.8  # conventional target (Cohen 1988)
MINIMUM_USEFUL_POWER = 0.5  # below this a null result is uninformative; stated as our own threshold

SOURCES = {
    "individual-rct": "standard two-sample formulas; CONSORT 2010 (Schulz et al., BMJ 2010;340:c332)",
    "parallel-crt": "Donner & Klar 2000; Eldridge, Ashby & Kerry, IJE 2006;35:1292; Teerenstra et al., "
                    "Stat Med 2012;31:2169",
    "stepped-wedge": "Hussey & Hughes, Contemp Clin Trials 2007;28:182; Hemming et al., BMJ 2015;350:h391",
    "staggered-did": "Borusyak, Jaravel & Spiess, Rev Econ Stud 2024;91:3253; Callaway & Sant'Anna, "
                     "J Econometrics 2021;225:200; Goodman-Bacon, J Econometrics 2021;225:254",
    "did": "Bertrand, Duflo & Mullainathan, QJE 2004;119:249; McKenzie, J Dev Econ 2012;99:210",
    "synthetic-control": "Abadie, Diamond & Hainmueller, JASA 2010;105:493",
    "its": "Wagner et al., J Clin Pharm Ther 2002;27:299; Bernal, Cummins & Gasparrini, IJE 2017;46:348",
    "regression-discontinuity": "Imbens & Lemieux, J Econometrics 2008;142:615; Cattaneo, Idrobo & Titiunik 2020",
}
ESTIMATORS = {
    "individual-rct": "two-sample comparison (no dedicated knowdo estimator)",
    "parallel-crt": "knowdo.designs.cluster_trials.ClusterTrial (cluster_rct)",
    "stepped-wedge": "knowdo.designs.cluster_trials.ClusterTrial (stepped_wedge, with period)",
    "staggered-did": "knowdo.designs.imputation.ImputationDiD (with knowdo.designs.did.CallawaySantAnna as a check)",
    "did": "knowdo.designs.did.CallawaySantAnna",
    "synthetic-control": "knowdo.designs.synth.SyntheticControl",
    "its": "knowdo.designs.its.InterruptedTimeSeries",
    "regression-discontinuity": "knowdo.designs.rd.RegressionDiscontinuity",
}
TIERS = {"individual-rct": 1, "parallel-crt": 1, "stepped-wedge": 2, "staggered-did": 3, "did": 3,
         "synthetic-control": 3, "regression-discontinuity": 3, "its": 4}


@dataclass(frozen=True)
class Constraints:
    """What a programme can and cannot do, read from a constraints TOML file (see :func:`load_constraints`)."""

    name: str = "programme"
    outcome: str = "binary"
    baseline: float = 0.3
    effect: float = 0.05
    sd: float | None = None
    icc: float = 0.05
    cac: float = 1.0
    alpha: float = 0.05
    target_power: float = ADEQUATE_POWER
    unit_kind: str = "unit"
    units: int = 20
    size_per_period: float = 20.0
    randomisable: str = "none"
    rollout: str = "all-at-once"
    waves: int = 1
    periods_before: int = 0
    periods_after: int = 12
    period: str = "month"
    comparison: bool = False
    comparison_units: int = 0
    autocorrelation: float = 0.0
    series_sd: float | None = None
    policy: bool = False
    eligibility_threshold: bool = False

    def __post_init__(self) -> None:
        check_option("outcome", self.outcome, OUTCOMES)
        check_option("randomisable", self.randomisable, RANDOMISABLE)
        check_option("rollout", self.rollout, ROLLOUTS)
        if self.outcome == "binary" and not 0 < self.baseline < 1:
            raise ParameterError(f"baseline={self.baseline!r}: a binary outcome needs a baseline proportion in (0, 1).")
        if self.outcome == "binary" and not 0 < self.baseline + self.effect < 1:
            raise ParameterError("baseline + effect must stay inside (0, 1) for a binary outcome.")
        if self.outcome == "continuous" and (self.sd is None or self.sd <= 0):
            raise ParameterError("a continuous outcome needs sd (the individual-level standard deviation).")
        if self.effect == 0:
            raise ParameterError("effect=0: state the smallest effect worth detecting.")
        for name in ("units", "waves", "periods_before", "periods_after", "comparison_units"):
            if getattr(self, name) < 0:
                raise ParameterError(f"{name}={getattr(self, name)!r} must be zero or more.")
        if self.units < 1 or self.size_per_period <= 0:
            raise ParameterError("units must be at least 1 and size_per_period positive.")

    @property
    def sigma(self) -> float:
        """Individual-level SD on the analysis scale (binary: sqrt(p̄(1−p̄)))."""
        if self.outcome == "binary":
            p_bar = self.baseline + self.effect / 2
            return math.sqrt(p_bar * (1 - p_bar))
        assert self.sd is not None
        return self.sd

    @property
    def can_randomise(self) -> str:
        return "none" if self.policy else self.randomisable


TOML_LAYOUT = {
    "study": ("name", "outcome", "baseline", "effect", "sd", "icc", "cac", "alpha", "target_power"),
    "units": ("unit_kind", "units", "size_per_period", "randomisable", "rollout", "waves"),
    "data": ("periods_before", "periods_after", "period", "comparison", "comparison_units", "autocorrelation",
             "series_sd"),
    "intervention": ("policy", "eligibility_threshold"),
}
TOML_ALIASES = {("units", "kind"): "unit_kind", ("units", "count"): "units"}


def load_constraints(path: str | Path) -> Constraints:
    """Read a constraints TOML file (tables ``[study]``, ``[units]``, ``[data]``, ``[intervention]``)."""
    file = Path(path)
    try:
        raw = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{file}: the constraints file does not exist; pass the path of a TOML file.") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: not valid TOML ({exc}); fix the syntax.") from None
    return constraints_from_mapping(raw, source=str(file))


def constraints_from_mapping(raw: Mapping[str, Any], source: str = "constraints") -> Constraints:
    values: dict[str, Any] = {}
    known = {f.name for f in fields(Constraints)}
    for table, content in raw.items():
        if table not in TOML_LAYOUT or not isinstance(content, Mapping):
            raise ConfigError(f"{source}: unknown table [{table}]; use {', '.join(f'[{t}]' for t in TOML_LAYOUT)}.")
        for key, value in content.items():
            name = TOML_ALIASES.get((table, key), key)
            if name not in known or name not in TOML_LAYOUT[table]:
                allowed = sorted(set(TOML_LAYOUT[table]) | {k for (t, k) in TOML_ALIASES if t == table})
                raise ConfigError(f"{source}: [{table}] has an unknown key {key!r}; allowed: {', '.join(allowed)}.")
            values[name] = value
    try:
        return Constraints(**values)
    except (TypeError, ParameterError) as exc:
        raise ConfigError(f"{source}: {exc}") from None


@dataclass(frozen=True)
class Recommendation:
    """One candidate design: feasible or not (and why), its power, assumptions, threats, estimator and source."""

    design: str
    label: str
    feasible: bool
    estimator: str
    source: str
    tier: int
    power: float | None = None
    plan: PowerResult | None = None
    reasons: tuple[str, ...] = ()
    assumptions: tuple[str, ...] = ()
    threats: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"design": self.design, "label": self.label, "feasible": self.feasible, "estimator": self.estimator,
                "source": self.source, "tier": self.tier, "power": _jsonable(self.power),
                "plan": self.plan.to_dict() if self.plan is not None else None, "reasons": list(self.reasons),
                "assumptions": list(self.assumptions), "threats": list(self.threats), "notes": list(self.notes)}


@dataclass(frozen=True)
class Advice:
    """The advisor's answer: ranked feasible designs, the rejected ones with reasons, and a plain verdict."""

    constraints: Constraints
    recommendations: tuple[Recommendation, ...]
    rejected: tuple[Recommendation, ...]
    verdict: str
    credible: bool = field(default=True)

    def to_frame(self) -> pd.DataFrame:
        rows = [{"rank": i + 1, "design": r.design, "label": r.label, "power": r.power, "estimator": r.estimator,
                 "tier": r.tier, "source": r.source} for i, r in enumerate(self.recommendations)]
        return pd.DataFrame(rows, columns=["rank", "design", "label", "power", "estimator", "tier", "source"])

    def tidy(self) -> pd.DataFrame:
        return self.to_frame()

    def summary(self) -> str:
        c = self.constraints
        lines = [f"Design advice for {c.name}: {self.verdict}", ""]
        for i, rec in enumerate(self.recommendations, 1):
            power = "power not computed analytically" if rec.power is None else f"power {rec.power:.2f}"
            lines.append(f"{i}. {rec.label} ({power}); estimator {rec.estimator}")
            lines += [f"     assumes: {a}" for a in rec.assumptions]
            lines += [f"     threat: {t}" for t in rec.threats]
            lines += [f"     note: {n}" for n in rec.notes]
            lines.append(f"     source: {rec.source}")
        if self.rejected:
            lines.append("")
            lines.append("Not feasible here:")
            for rec in self.rejected:
                lines.append(f"  - {rec.label}: " + "; ".join(rec.reasons))
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "credible": self.credible,
                "constraints": _jsonable(self.constraints.__dict__),
                "recommendations": [r.to_dict() for r in self.recommendations],
                "rejected": [r.to_dict() for r in self.rejected]}

    def to_results(self) -> dict[str, Any]:
        """The advice as a results-dictionary entry for the report's "Study plan" section.

        ``summary`` is the verdict, ``designs`` the ranked table (records),
        ``notes`` the assumptions and threats of the top design and the
        rejected designs with their reasons.
        """
        notes: list[str] = []
        if self.recommendations:
            top = self.recommendations[0]
            notes += [f"{top.label} assumes: {a}" for a in top.assumptions]
            notes += [f"{top.label} threat: {t}" for t in top.threats]
        notes += [f"Not feasible: {r.label} ({'; '.join(r.reasons)})" for r in self.rejected]
        return {"summary": self.verdict, "designs": _jsonable(self.to_frame()), "notes": notes}

    def plot(self) -> alt.Chart:
        table = self.to_frame().assign(power=lambda d: d["power"].fillna(0.0))
        bars = alt.Chart(table).mark_bar().encode(
            y=alt.Y("label:N", sort=None, title=None),
            x=alt.X("power:Q", scale=alt.Scale(domain=[0, 1]), title=f"power for effect {self.constraints.effect:g}"),
            tooltip=["label", "power", "estimator", "source"],
        )
        rule = alt.Chart(pd.DataFrame({"x": [self.constraints.target_power]})).mark_rule(strokeDash=[4, 4]).encode(
            x="x:Q")
        return (bars + rule).properties(title=f"Feasible designs for {self.constraints.name}")


# ----------------------------------------------------------------- candidates
def _binary_args(c: Constraints) -> dict[str, Any]:
    if c.outcome == "binary":
        return {"p0": c.baseline, "p1": c.baseline + c.effect}
    return {"delta": c.effect, "sd": c.sd}


def _individual(c: Constraints) -> Recommendation:
    reasons = [] if c.can_randomise == "individuals" else ["individuals cannot be randomised"]
    rec = Recommendation("individual-rct", "Individually randomised trial", not reasons, ESTIMATORS["individual-rct"],
                         SOURCES["individual-rct"], TIERS["individual-rct"], reasons=tuple(reasons))
    if reasons:
        return rec
    people = c.units * c.size_per_period * max(c.periods_after, 1)
    plan = plan_individual(n_per_arm=people / 2, alpha=c.alpha, **_binary_args(c))
    return _with_plan(rec, plan,
                      assumptions=("people in the same clinic do not influence each other's outcomes",),
                      threats=("contamination: staff deliver both arms in one clinic, diluting the effect",
                               "clustering by clinic or provider is ignored in this calculation"))


def _parallel_crt(c: Constraints) -> Recommendation:
    reasons = []
    if c.can_randomise not in ("units", "individuals"):
        reasons.append("units cannot be randomised to arms")
    if c.units < 2 * MIN_CLUSTERS_PER_ARM:
        reasons.append(f"{c.units} units leave fewer than {MIN_CLUSTERS_PER_ARM} per arm")
    rec = Recommendation("parallel-crt", "Parallel cluster randomised trial", not reasons, ESTIMATORS["parallel-crt"],
                         SOURCES["parallel-crt"], TIERS["parallel-crt"], reasons=tuple(reasons))
    if reasons:
        return rec
    size = c.size_per_period * max(c.periods_after, 1)
    baseline: Baseline = "ancova" if c.periods_before >= 1 else "none"
    plan = plan_crt(icc=c.icc, clusters_per_arm=c.units // 2, cluster_size=size, test="t", baseline=baseline,
                    cac=c.cac, alpha=c.alpha, **_crt_args(c))
    notes = ("baseline period used as a covariate (ANCOVA)",) if baseline == "ancova" else ()
    return _with_plan(rec, plan, assumptions=("clusters randomised; analysis accounts for clustering",),
                      threats=("half of the units wait for the whole study (acceptability)",
                               "few clusters: chance imbalance; use restricted randomisation"), notes=notes)


def _crt_args(c: Constraints) -> dict[str, Any]:
    return {"p0": c.baseline, "p1": c.baseline + c.effect} if c.outcome == "binary" else {"delta": c.effect, "sd": c.sd}


def _stepped_wedge(c: Constraints) -> Recommendation:
    reasons = []
    if c.can_randomise == "none":
        reasons.append("neither units nor the rollout order can be randomised")
    if c.rollout != "waves" or c.waves < 2:
        reasons.append("rollout is not in two or more waves")
    if c.units < max(c.waves, 2):
        reasons.append("fewer units than waves")
    total = c.periods_before + c.periods_after
    if c.waves >= 2 and total < c.waves + 1:
        reasons.append(f"{total} periods cannot hold a baseline plus {c.waves} steps")
    rec = Recommendation("stepped-wedge", "Stepped-wedge cluster randomised trial (randomised rollout order)",
                         not reasons, ESTIMATORS["stepped-wedge"], SOURCES["stepped-wedge"], TIERS["stepped-wedge"],
                         reasons=tuple(reasons))
    if reasons:
        return rec
    length = total // (c.waves + 1)
    size = c.size_per_period * length
    args = _binary_args(c) if c.outcome == "binary" else {"delta": c.effect, "sigma": c.sd}
    plan = plan_stepped_wedge(clusters=c.units, steps=c.waves, cluster_period_size=size, icc=c.icc, cac=c.cac,
                              alpha=c.alpha, **args)
    return _with_plan(
        rec, plan,
        assumptions=(f"{c.waves + 1} periods of {length} {c.period}s each, {size:g} people per unit-period",
                     "secular trends are common to all units (period effects)", "immediate, constant effect"),
        threats=("time-varying confounding if the rollout order is not kept as randomised",
                 "lower cluster autocorrelation than assumed cuts power (set cac)"))


def _staggered_did(c: Constraints) -> Recommendation:
    reasons = []
    if c.rollout != "waves" or c.waves < 2:
        reasons.append("rollout is not staggered in waves")
    if c.periods_before < 2:
        reasons.append("fewer than 2 pre-periods: parallel trends cannot be checked")
    rec = Recommendation("staggered-did", "Staggered difference-in-differences (non-randomised rollout)",
                         not reasons, ESTIMATORS["staggered-did"], SOURCES["staggered-did"], TIERS["staggered-did"],
                         reasons=tuple(reasons))
    if reasons:
        return rec
    starts = _wave_starts(c)
    design = Design.staggered(starts + [None] * (c.comparison_units if c.comparison else 0),
                              c.periods_before + c.periods_after)
    cov = CovarianceModel.block_exchangeable(c.icc, c.cac, sigma=c.sigma)
    try:
        plan = plan_longitudinal(design, cov, effect=c.effect, cluster_period_size=c.size_per_period, alpha=c.alpha)
    except KnowdoError as exc:
        return _infeasible(rec, str(exc))
    return _with_plan(
        rec, plan,
        assumptions=("parallel trends between earlier- and later-treated (and never-treated) units",
                     "no anticipation before each unit's start"),
        threats=("rollout order chosen for reasons linked to the outcome (readiness, performance)",
                 "co-interventions timed with the waves"),
        notes=("power from the GLS engine with period effects; Callaway-Sant'Anna uses only clean comparisons, "
               "so treat this as an upper bound",))


def _did(c: Constraints) -> Recommendation:
    reasons = []
    if not c.comparison or c.comparison_units < 1:
        reasons.append("no comparison units")
    if c.periods_before < 1:
        reasons.append("no pre-period data")
    rec = Recommendation("did", "Difference-in-differences with comparison units (controlled before-after)",
                         not reasons, ESTIMATORS["did"], SOURCES["did"], TIERS["did"], reasons=tuple(reasons))
    if reasons:
        return rec
    design = Design.parallel_baseline((c.comparison_units, c.units), c.periods_before, max(c.periods_after, 1))
    cov = CovarianceModel.block_exchangeable(c.icc, c.cac, sigma=c.sigma)
    plan = plan_longitudinal(design, cov, effect=c.effect, cluster_period_size=c.size_per_period, alpha=c.alpha)
    threats = ["selection: treated units chosen for reasons linked to outcome trends",
               "serial correlation: cluster standard errors by unit (Bertrand et al. 2004)"]
    if c.periods_before < 2:
        threats.append("a single pre-period cannot test parallel trends")
    return _with_plan(rec, plan, assumptions=("parallel trends without the programme",),
                      threats=tuple(threats))


def _synthetic_control(c: Constraints) -> Recommendation:
    reasons = []
    if not c.comparison or c.comparison_units < 2:
        reasons.append("no pool of comparison units (donors)")
    if c.periods_before < SYNTH_MIN_PRE:
        reasons.append(f"fewer than {SYNTH_MIN_PRE} pre-periods to fit the synthetic control")
    rec = Recommendation("synthetic-control", "Synthetic control (treated units vs a weighted donor pool)",
                         not reasons, ESTIMATORS["synthetic-control"], SOURCES["synthetic-control"],
                         TIERS["synthetic-control"], reasons=tuple(reasons))
    if reasons:
        return rec
    smallest_p = 1 / (c.comparison_units + 1)
    notes = [f"placebo (permutation) inference: the smallest attainable p-value is 1/{c.comparison_units + 1} = "
             f"{smallest_p:.3f}"]
    if smallest_p > c.alpha:
        return _infeasible(rec, f"with {c.comparison_units} donors no result can reach p < {c.alpha:g} by placebo "
                                "inference; add donors or use DiD")
    notes.append("no analytic power: use knowdo.designs.planner.simulate_power with the synthetic-control estimator")
    return Recommendation(**{**rec.__dict__, "notes": tuple(notes),
                             "assumptions": ("the treated units lie within the convex hull of the donors' "
                                             "pre-period outcomes",),
                             "threats": ("donors affected by the programme (spillover)", "poor pre-period fit")})


def _its(c: Constraints) -> Recommendation:
    reasons = []
    if c.periods_before < ITS_MINIMUM_POINTS or c.periods_after < ITS_MINIMUM_POINTS:
        reasons.append(f"fewer than {ITS_MINIMUM_POINTS} periods before or after")
    rec = Recommendation("its", "Interrupted time series (single group)", not reasons, ESTIMATORS["its"],
                         SOURCES["its"], TIERS["its"], reasons=tuple(reasons))
    if reasons:
        return rec
    if c.series_sd is not None:
        sigma = c.series_sd
        noise = "as stated"
    else:
        people = c.units * c.size_per_period
        sigma = c.sigma / math.sqrt(people)
        noise = "sampling noise only (optimistic; state series_sd from past data)"
    plan = plan_its(pre=c.periods_before, post=c.periods_after, sigma=sigma, phi=c.autocorrelation, effect=c.effect,
                    alpha=c.alpha)
    threats = ["history: any co-occurring change is confounded with the programme"]
    if c.rollout == "waves":
        threats.append("with waves, the series mixes units at different exposure times (use staggered DiD)")
    if min(c.periods_before, c.periods_after) < ITS_RECOMMENDED_POINTS:
        threats.append(f"fewer than {ITS_RECOMMENDED_POINTS} points either side (Wagner et al. 2002)")
    return _with_plan(rec, plan, assumptions=(f"series noise: {noise}",),
                      threats=tuple(threats))


def _regression_discontinuity(c: Constraints) -> Recommendation:
    reasons = [] if c.eligibility_threshold else ["no eligibility threshold on a continuous score"]
    rec = Recommendation("regression-discontinuity", "Regression discontinuity at the eligibility threshold",
                         not reasons, ESTIMATORS["regression-discontinuity"], SOURCES["regression-discontinuity"],
                         TIERS["regression-discontinuity"], reasons=tuple(reasons))
    if reasons:
        return rec
    return Recommendation(**{**rec.__dict__,
                             "assumptions": ("no manipulation of the score around the threshold",),
                             "threats": ("effect is local to people near the threshold",),
                             "notes": ("power needs the score's distribution: use rdpower or simulate_power",)})


def _wave_starts(c: Constraints) -> list[int | None]:
    """Evenly spaced wave starts after the pre-period; units split over waves as evenly as possible."""
    spacing = max(1, c.periods_after // (c.waves + 1)) if c.waves >= 1 else 1
    base, extra = divmod(c.units, max(c.waves, 1))
    starts: list[int | None] = []
    for w in range(max(c.waves, 1)):
        starts += [c.periods_before + w * spacing] * (base + (1 if w < extra else 0))
    return starts


def _with_plan(rec: Recommendation, plan: PowerResult, *, assumptions: tuple[str, ...] = (),
               threats: tuple[str, ...] = (), notes: tuple[str, ...] = ()) -> Recommendation:
    return Recommendation(**{**rec.__dict__, "power": plan.power, "plan": plan,
                             "assumptions": assumptions + plan.assumptions[:2], "threats": threats, "notes": notes})


def _infeasible(rec: Recommendation, reason: str) -> Recommendation:
    return Recommendation(**{**rec.__dict__, "feasible": False, "reasons": (*rec.reasons, reason)})


CANDIDATES = (_individual, _parallel_crt, _stepped_wedge, _staggered_did, _did, _synthetic_control, _its,
              _regression_discontinuity)


def advise(constraints: Constraints) -> Advice:
    """Feasible designs for ``constraints``, ranked, with the rejected ones and a verdict.

    Examples
    --------
    >>> c = Constraints(units=2, periods_before=1, periods_after=1)
    >>> advise(c).credible
    False
    """
    candidates = [make(constraints) for make in CANDIDATES]
    feasible = [r for r in candidates if r.feasible]
    rejected = tuple(r for r in candidates if not r.feasible)
    target = constraints.target_power

    def key(rec: Recommendation) -> tuple[int, int, float]:
        adequate = rec.power is not None and rec.power >= target
        return (0 if adequate else 1, rec.tier, -(rec.power if rec.power is not None else 0.0))

    ranked = tuple(sorted(feasible, key=key))
    if not ranked:
        verdict = ("no credible design exists under these constraints: "
                   + "; ".join(sorted({reason for r in rejected for reason in r.reasons})) + ". "
                   "Consider collecting more pre-period data, finding comparison units or randomising the rollout.")
        return Advice(constraints, (), rejected, verdict, credible=False)
    powers = [r.power for r in ranked if r.power is not None]
    best = max(powers, default=None)
    if best is not None and best >= target:
        verdict = (f"{sum(p >= target for p in powers)} design(s) reach power {target:g}; "
                   "the first listed is the strongest of them.")
        credible = True
    elif best is not None and best >= MINIMUM_USEFUL_POWER:
        verdict = (f"feasible designs exist but none reaches power {target:g} for an effect of "
                   f"{constraints.effect:g}; the best reaches {best:.2f}. Add units, periods or people per period.")
        credible = True
    elif powers:
        verdict = (f"no credible design for an effect of {constraints.effect:g}: the best power is {best:.2f}, so a "
                   "null result would be uninformative. Plan for a larger effect, more units or a longer series.")
        credible = False
    else:
        verdict = "feasible designs exist but their power needs simulation (see the notes)."
        credible = True
    return Advice(constraints, ranked, rejected, verdict, credible=credible)


def advise_file(path: str | Path) -> Advice:
    """Read a constraints TOML file and advise."""
    return advise(load_constraints(path))
