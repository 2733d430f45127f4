"""Reusable building blocks of the care-pathway model: its parameters, its flows and its diagram.

The published mental-health system-dynamics models share one structure
(complexity.md section 0): stocks of people by illness and service state,
flows limited by capacity as ``MIN(demand, capacity)``, and a few recurring
loops. Each block below is one of those pieces written as a pure,
vectorised numpy function, so that :mod:`knowdo.complexity.pathway` (and a
user's own model) can assemble them:

* **need**: incidence into untreated need and remission without care;
* **help-seeking and detection**: a base detection rate plus the programme's
  screening uplift, weighted by programme maturity (a first-order smooth of
  rollout coverage, the SD form of a ramp) and damped by the expected wait
  (loop B1, waits discourage help-seeking);
* **capacity-constrained starts**: ``MIN(demand, free capacity)`` per cadre,
  shared between strata by water-filling on priority weights;
* **treatment**: completion after a course whose length grows with the wait
  (untreated need worsens), dropout raised by the wait (B2), recovery;
* **relapse**: recovered people relapse into need (R2, the revolving door) or
  recover for good;
* **workforce**: two cadres (specialist, lay counsellor), each a training
  pipeline and an active stock; gap-closing hiring (B3); attrition raised by
  waiting-list pressure (R1, burnout); lay counsellors work only as far as
  specialists can supervise them.

Array shapes put the batch last, so every numpy inner loop runs over the
``B`` runs (scenarios x draws): per-stratum quantities are ``(S, B)``,
per-cadre ones ``(C, 1, B)``, per cadre and stratum ``(C, S, B)``, with
``C = 2`` cadres and ``S`` equity strata.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

CADRES = ("specialist", "lay")
Kind = Literal["scalar", "stratum", "cadre"]


@dataclass(frozen=True)
class ParameterSpec:
    """One model parameter: default, plausible range (a default prior), unit and source.

    ``kind='cadre'`` parameters exist once per cadre, as ``<name>_specialist``
    and ``<name>_lay``; ``kind='stratum'`` parameters may take one value per
    equity stratum.
    """

    name: str
    default: float
    low: float
    high: float
    unit: str
    source: str
    kind: Kind = "scalar"
    block: str = ""


def _p(name: str, default: float, low: float, high: float, unit: str, source: str, kind: Kind,
       block: str) -> ParameterSpec:
    return ParameterSpec(name, default, low, high, unit, source, kind, block)


_CM = "complexity.md section 2.1 baseline"
_EX = "knowdo example programme parameters (frameworks.md section 7)"
_SYN = "synthetic default; set from your own data"

# Cadre parameters are listed as (name, specialist default, lay default, low, high).
PARAMETER_SPECS: tuple[ParameterSpec, ...] = (
    # --- need
    _p("prevalence", 0.14, 0.02, 0.35, "share of adults", "frameworks.md section 7 (LMIC 11-17%)", "stratum", "need"),
    _p("remission", 0.02, 0.005, 0.05, "per month", f"natural remission, {_CM}", "scalar", "need"),
    _p("incidence_scale", 1.0, 0.5, 2.0, "x equilibrium incidence",
       "1 keeps untreated need at its no-care equilibrium (incidence = prev/(1-prev) x remission)", "stratum", "need"),
    # --- help-seeking and detection
    _p("detection", 0.01, 0.001, 0.05, "per untreated person-month",
       "screen-positive rate without the programme: 2-5% of ~1.2 visits a year screened (frameworks.md 5.5, 7)",
       "stratum", "detection"),
    _p("screening_uplift", 0.02, 0.0, 0.1, "per untreated person-month at full maturity",
       "programme screening toward 25% of visits (example programme; frameworks.md section 7)", "stratum", "detection"),
    _p("ramp_months", 6.0, 1.0, 24.0, "months", "ramp time constant of the example programme", "scalar", "detection"),
    _p("coverage_floor", 0.0, 0.0, 1.0, "share of population", "0: rollout coverage comes from the data",
       "stratum", "detection"),
    _p("wait_help_seeking", 6.0, 1.0, 24.0, "months",
       f"help-seeking / (1 + expected wait / 6), {_CM}", "scalar", "detection"),
    _p("offer", 0.65, 0.1, 1.0, "share", "share of people detected at delivering sites offered lay care "
       "(example programme adoption 0.65)", "stratum", "pathway"),
    _p("admin_delay", 0.5, 0.25, 2.0, "months", _CM, "scalar", "pathway"),
    _p("patience", 9.0, 2.0, 24.0, "months", f"mean time before leaving the waiting list, {_CM}", "scalar", "pathway"),
    _p("priority", 1.0, 0.25, 4.0, "weight", "equal priority for every stratum", "stratum", "pathway"),
    _p("wait_dropout", 0.1, 0.0, 0.5, "x dropout per month waited",
       "waits raise disengagement (Occhipinti et al. 2021 trade-off); synthetic strength", "scalar", "treatment"),
    _p("worsening", 0.05, 0.0, 0.3, "x course length per month waited",
       "untreated need worsens (Skinner et al. 2023 vicious cycle); synthetic strength", "scalar", "treatment"),
    _p("dropout_ratio", 1.0, 0.5, 2.0, "x dropout", "equal dropout in every stratum", "stratum", "treatment"),
    _p("acceptance_ratio", 1.0, 0.5, 1.5, "x acceptance", "equal acceptance in every stratum", "stratum", "pathway"),
    _p("relapse", 0.02, 0.005, 0.05, "per month", _CM, "scalar", "relapse"),
    _p("sustained_recovery", 24.0, 6.0, 60.0, "months", _CM, "scalar", "relapse"),
    _p("supervision_time", 0.05, 0.01, 0.2, "specialist FTE per lay FTE",
       "weekly supervision, ~2 h of a 40-h week (Friendship Bench, frameworks.md section 7)", "scalar", "workforce"),
    _p("supervision_share", 0.5, 0.1, 1.0, "share of specialist time", _SYN, "scalar", "workforce"),
)
CADRE_SPECS: tuple[tuple[str, float, float, float, float, str, str, str], ...] = (
    # name, specialist, lay, low, high, unit, source, block
    ("acceptance", 0.35, 0.8, 0.05, 1.0, "share", "usual-care start 0.35 and PST acceptance 0.8 (example programme)",
     "pathway"),
    ("duration", 4.0, 1.5, 0.5, 12.0, "months", f"specialist {_CM}; lay: 6 weekly PST sessions (frameworks.md 7)",
     "treatment"),
    ("dropout", 0.08, 0.99, 0.0, 2.0, "per month",
     f"specialist {_CM}; lay: 0.22 per weekly session = -4 ln(0.78) per month (example programme)", "treatment"),
    ("recovery", 0.5, 0.6, 0.1, 0.9, "share of completers", f"specialist IAPT-like 0.5 ({_CM}); lay 0.6 full-course "
     "PST response (example programme)", "treatment"),
    ("sessions_per_month", 1.0, 4.0, 0.5, 8.0, "sessions", "lay: weekly PST (frameworks.md 7); specialist: monthly "
     "review (synthetic)", "treatment"),
    ("posts", 240.0, 0.0, 0.0, 1000.0, "FTE", f"specialist target workforce 240 FTE per 500,000 adults ({_CM}); "
     "lay posts come from posts_per_1000", "workforce"),
    ("posts_per_1000", 0.0, 2.5, 0.0, 10.0, "FTE per 1,000 adults covered",
     "3-5 lay workers per clinic of ~1,500 adults (example programme)", "workforce"),
    ("caseload", 20.0, 10.0, 2.0, 60.0, "clients per FTE", f"specialist {_CM}; lay: 40 sessions a month at 4 per "
     "client (example programme)", "workforce"),
    ("hiring_delay", 6.0, 2.0, 0.5, 24.0, "months", f"specialist {_CM}; lay synthetic", "workforce"),
    ("training_delay", 12.0, 1.0, 0.25, 36.0, "months", "lay: 3-5 day mhGAP-style course plus supervised practice "
     "(frameworks.md 7); specialist synthetic", "workforce"),
    ("training_capacity", 1e9, 1e9, 0.0, 1e9, "trainees per month", "unlimited unless a scenario caps it",
     "workforce"),
    ("attrition", 0.01, 0.015, 0.0, 0.1, "per month", f"specialist {_CM}; lay 0.015 (example programme)",
     "workforce"),
    ("burnout", 0.5, 0.5, 0.0, 3.0, "x attrition per unit of waiting-list pressure", f"burnout sensitivity, {_CM}",
     "workforce"),
    ("salary", 800.0, 40.0, 0.0, 1e5, "USD per FTE-month", "lay stipend 40 (example programme); specialist "
     "synthetic", "cost"),
    ("training_cost", 2000.0, 150.0, 0.0, 1e5, "USD per person trained", "lay 150 (example programme); "
     "specialist synthetic", "cost"),
    ("session_cost", 0.0, 1.5, 0.0, 100.0, "USD per session", "lay 1.5 (example programme)", "cost"),
)
for _name, _sp, _lay, _lo, _hi, _unit, _src, _blk in CADRE_SPECS:
    PARAMETER_SPECS = (
        *PARAMETER_SPECS,
        ParameterSpec(f"{_name}_specialist", _sp, _lo, _hi, _unit, _src, "cadre", _blk),
        ParameterSpec(f"{_name}_lay", _lay, _lo, _hi, _unit, _src, "cadre", _blk),
    )
SPECS: dict[str, ParameterSpec] = {s.name: s for s in PARAMETER_SPECS}
CADRE_NAMES = tuple(c[0] for c in CADRE_SPECS)

WAIT_FLOOR = 1e-3  # people per month: below this, starts count as none when computing the expected wait
CAPACITY_FLOOR = 1.0  # client slots: pressure = waiting list / MAX(capacity, 1), as in complexity.md section 2.1


# --------------------------------------------------------------------------- blocks
def smooth_rate(level: FloatArray, target: FloatArray, tau: FloatArray) -> FloatArray:
    """First-order smooth (Vensim SMOOTH): the rate moving ``level`` toward ``target`` with time constant ``tau``."""
    return (target - level) / tau


def need_flows(well: FloatArray, untreated: FloatArray, incidence: FloatArray,
               remission: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Incidence (well -> untreated) and natural remission (untreated -> well)."""
    return incidence * well, remission * untreated


def detection_flow(untreated: FloatArray, base: FloatArray, uplift: FloatArray, maturity: FloatArray,
                   wait: FloatArray, wait_scale: FloatArray) -> FloatArray:
    """People detected (screen positive or seeking help) per month; longer waits discourage help-seeking (B1)."""
    return (base + uplift * maturity) * untreated / (1.0 + wait / wait_scale)


def expected_wait(queue: FloatArray, starts: FloatArray) -> FloatArray:
    """Expected wait in months: waiting list / MAX(starts, floor) (Little's law on the current rates)."""
    return queue / np.maximum(starts, WAIT_FLOOR)


def cadre_capacity(workforce: FloatArray, caseload: FloatArray, supervision_time: FloatArray,
                   supervision_share: FloatArray) -> FloatArray:
    """Client slots of each cadre ``(C, 1, B)``.

    Lay counsellors deliver only as far as specialists can supervise them;
    supervision time comes out of specialists' direct care.
    """
    specialist = workforce[0]
    supervised = np.minimum(workforce[1], supervision_share * specialist / supervision_time)
    direct = specialist - supervision_time * supervised
    return np.stack([direct * caseload[0], supervised * caseload[1]])


def water_fill(demand: FloatArray, priority: FloatArray, total: FloatArray) -> FloatArray:
    """Share ``total`` among strata: stratum s gets ``demand_s * MIN(1, theta * priority_s)``.

    ``theta`` is chosen so the shares add up to ``total`` (everyone is served
    when ``total`` covers all demand). With equal priorities this is
    proportional rationing; a higher priority fills a stratum first. Strata
    are axis 1: ``demand`` and ``priority`` are ``(C, S, B)``, ``total`` is ``(C, 1, B)``.
    """
    n = demand.shape[1]
    want = demand.sum(axis=1, keepdims=True)
    if n == 1:
        return np.minimum(demand, total)
    order = np.argsort(-priority, axis=1, kind="stable")
    p = np.take_along_axis(priority, order, axis=1)
    a = np.take_along_axis(demand, order, axis=1)
    head = np.cumsum(a, axis=1) - a  # demand of the strata ranked above k
    tail = np.flip(np.cumsum(np.flip(a * p, axis=1), axis=1), axis=1)  # sum over j >= k of a_j p_j
    theta = np.zeros(total.shape)
    found = np.zeros(total.shape, dtype=bool)
    with np.errstate(divide="ignore", invalid="ignore"):
        for k in range(n):
            t = (total - head[:, k : k + 1]) / tail[:, k : k + 1]
            upper_ok = t * p[:, k : k + 1] <= 1.0 + 1e-12
            lower_ok = True if k == 0 else t * p[:, k - 1 : k] >= 1.0 - 1e-12
            ok = ~found & upper_ok & lower_ok & np.isfinite(t)
            theta = np.where(ok, t, theta)
            found |= ok
    share = np.minimum(1.0, np.maximum(theta, 0.0) * priority)
    return np.where(total >= want, demand, demand * share)


def capacity_starts(queue: FloatArray, in_treatment: FloatArray, slots: FloatArray, admin_delay: FloatArray,
                    priority: FloatArray, uniform_priority: bool) -> FloatArray:
    """Treatment starts per month ``(C, S, B)``: MIN(demand, free capacity), shared by priority."""
    demand = queue / admin_delay
    single = queue.shape[1] == 1
    occupied = in_treatment if single else in_treatment.sum(axis=1, keepdims=True)
    free = np.maximum(0.0, slots - occupied) / admin_delay
    if single:
        return np.minimum(demand, free)
    want = demand.sum(axis=1, keepdims=True)
    total = np.minimum(want, free)
    if uniform_priority:
        with np.errstate(divide="ignore", invalid="ignore"):
            share = np.where(want > 0, total / want, 0.0)
        return demand * share
    return water_fill(demand, np.broadcast_to(priority, demand.shape), total)


@dataclass(frozen=True)
class TreatmentExits:
    completed: FloatArray
    dropped: FloatArray


def treatment_exits(in_treatment: FloatArray, wait: FloatArray, duration: FloatArray, dropout: FloatArray,
                    worsening: FloatArray, wait_dropout: FloatArray, dt: float) -> TreatmentExits:
    """Completion (course length grows with the wait) and dropout (raised by the wait, B2), capped at the stock."""
    length = duration * (1.0 + worsening * wait)
    complete_rate = 1.0 / length
    drop_rate = dropout * (1.0 + wait_dropout * wait)
    total = complete_rate + drop_rate
    scale = np.minimum(1.0, (1.0 / dt) / total)  # never take more than the stock in one step
    return TreatmentExits(in_treatment * complete_rate * scale, in_treatment * drop_rate * scale)


@dataclass(frozen=True)
class WorkforceFlows:
    intake: FloatArray
    graduated: FloatArray
    attrition: FloatArray


def workforce_flows(trainees: FloatArray, active: FloatArray, target: FloatArray, hiring_delay: FloatArray,
                    training_delay: FloatArray, training_capacity: FloatArray, attrition: FloatArray,
                    burnout: FloatArray, pressure: FloatArray) -> WorkforceFlows:
    """Gap-closing recruitment into training (B3), graduation after the training delay, burnout attrition (R1)."""
    gap = np.maximum(0.0, target - active - trainees)
    intake = np.minimum(gap / hiring_delay, training_capacity)
    return WorkforceFlows(intake, trainees / training_delay, active * attrition * (1.0 + burnout * pressure))


# --------------------------------------------------------------------------- diagram
@dataclass(frozen=True)
class DiagramStock:
    name: str
    label: str
    x: float
    y: float
    group: str


@dataclass(frozen=True)
class DiagramFlow:
    source: str
    target: str
    label: str
    loop: str = ""


DIAGRAM_STOCKS: tuple[DiagramStock, ...] = (
    DiagramStock("well", "Well", 0, 2, "people"),
    DiagramStock("untreated", "Untreated need", 1, 2, "people"),
    DiagramStock("waiting_specialist", "Waiting (specialist)", 2, 2.6, "people"),
    DiagramStock("waiting_lay", "Waiting (lay)", 2, 1.4, "people"),
    DiagramStock("treatment_specialist", "In treatment (specialist)", 3, 2.6, "people"),
    DiagramStock("treatment_lay", "In treatment (lay)", 3, 1.4, "people"),
    DiagramStock("recovered", "Recovered", 4, 2, "people"),
    DiagramStock("trainees_specialist", "Specialists in training", 2, 0, "workforce"),
    DiagramStock("workforce_specialist", "Specialists", 3, 0, "workforce"),
    DiagramStock("trainees_lay", "Lay counsellors in training", 2, -0.8, "workforce"),
    DiagramStock("workforce_lay", "Lay counsellors", 3, -0.8, "workforce"),
)
DIAGRAM_FLOWS: tuple[DiagramFlow, ...] = (
    DiagramFlow("well", "untreated", "incidence"),
    DiagramFlow("untreated", "well", "natural remission"),
    DiagramFlow("untreated", "waiting_specialist", "detected, accepts usual care", "B1 waits deter help-seeking"),
    DiagramFlow("untreated", "waiting_lay", "detected, accepts lay care", "B1 waits deter help-seeking"),
    DiagramFlow("waiting_specialist", "untreated", "reneging", "B2"),
    DiagramFlow("waiting_lay", "untreated", "reneging", "B2"),
    DiagramFlow("waiting_specialist", "treatment_specialist", "starts = MIN(demand, capacity)"),
    DiagramFlow("waiting_lay", "treatment_lay", "starts = MIN(demand, supervised capacity)"),
    DiagramFlow("treatment_specialist", "recovered", "recovery"),
    DiagramFlow("treatment_lay", "recovered", "recovery"),
    DiagramFlow("treatment_specialist", "untreated", "dropout / no response", "B2 waits raise dropout"),
    DiagramFlow("treatment_lay", "untreated", "dropout / no response", "B2 waits raise dropout"),
    DiagramFlow("recovered", "untreated", "relapse", "R2 revolving door"),
    DiagramFlow("recovered", "well", "sustained recovery"),
    DiagramFlow("trainees_specialist", "workforce_specialist", "graduation", "B3 gap-closing hiring"),
    DiagramFlow("trainees_lay", "workforce_lay", "graduation", "B3 gap-closing hiring"),
)
DIAGRAM_LOOPS = (
    "B1: long waits discourage help-seeking",
    "B2: long waits raise reneging and dropout",
    "B3: hiring closes the gap to the target workforce",
    "R1: waiting-list pressure -> burnout -> attrition -> less capacity -> longer lists",
    "R2: relapse returns recovered people to need (revolving door)",
    "R3: untreated need worsens: longer waits lengthen courses and use up capacity",
)


def equilibrium_incidence(prevalence: FloatArray, remission: FloatArray) -> FloatArray:
    """Incidence that holds untreated need at ``prevalence`` without care: prev / (1 - prev) x remission."""
    return prevalence / (1.0 - prevalence) * remission


def per_session_to_monthly(dropout_per_session: float, sessions_per_month: float) -> float:
    """Monthly dropout hazard from a per-session dropout probability: -ln(1 - p) x sessions a month."""
    return -math.log(1.0 - dropout_per_session) * sessions_per_month
