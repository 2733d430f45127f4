"""The care-pathway system-dynamics model, assembled from :mod:`knowdo.complexity.blocks` and integrated in arrays.

Stocks, per equity stratum: well, untreated need, waiting for each cadre,
in treatment with each cadre, recovered (people are conserved: no flow
creates or destroys anyone); programme maturity per stratum; and per cadre
a training pipeline and an active workforce. Each stratum has its own stocks
and its own rates; strata share the cadres' capacity, so a scenario shows who
gains.

Integration is Euler with step ``dt`` (0.25 month by default, as in the
published benchmark model, complexity.md section 2.1), saved monthly. Every
run of a batch (scenarios x parameter draws) is one row of the arrays, so a
10,000-run sweep is one pass of the time loop over ``(10000, ...)`` arrays.
PySD interprets the same equations one run at a time; see
:mod:`knowdo.complexity.pysd_bridge` for running a user's Vensim model.

Time-varying inputs: ``coverage`` is the share of each stratum's adults living
where the programme delivers, by month (piecewise constant; held at its last
value beyond the data). Scenario edits are :class:`Change` objects applied
from a month onwards.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from knowdo.complexity.blocks import (
    CADRE_NAMES,
    CAPACITY_FLOOR,
    SPECS,
    WAIT_FLOOR,
    FloatArray,
    cadre_capacity,
    capacity_starts,
    detection_flow,
    equilibrium_incidence,
    need_flows,
    smooth_rate,
    treatment_exits,
    workforce_flows,
)
from knowdo.complexity.results import PathwayRun
from knowdo.equity.common import check_option
from knowdo.errors import ParameterError

Op = Literal["set", "scale", "add"]
Record = Literal["all", "stocks", "final"]
RECORDS: tuple[str, ...] = ("all", "stocks", "final")
OPS: tuple[str, ...] = ("set", "scale", "add")
ParamValue = float | int | Sequence[float] | np.ndarray | Mapping[str, float]
DEFAULT_DT = 0.25  # months; Euler step of the published benchmark model (complexity.md section 2.1)

_POSITIVE = (
    "ramp_months", "wait_help_seeking", "admin_delay", "patience", "sustained_recovery", "supervision_time",
    "duration_specialist", "duration_lay", "hiring_delay_specialist", "hiring_delay_lay",
    "training_delay_specialist", "training_delay_lay", "priority",
)  # fmt: skip


@dataclass(frozen=True)
class Change:
    """One scenario edit: from month ``start`` of the run on, ``parameter`` is set, scaled or shifted by ``value``.

    ``stratum`` limits the edit to one equity stratum (per-stratum parameters only).

    Examples
    --------
    >>> Change("posts_per_1000_lay", 2.0, op="scale", start=0)
    Change(parameter='posts_per_1000_lay', value=2.0, op='scale', start=0.0, stratum=None)
    """

    parameter: str
    value: float
    op: Op = "set"
    start: float = 0.0
    stratum: str | None = None

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise ParameterError(f"Change({self.parameter!r}): op must be one of {', '.join(OPS)}; saw {self.op!r}")
        if self.parameter not in SPECS:
            raise ParameterError(f"Change: unknown parameter {self.parameter!r}; known: {', '.join(SPECS)}")
        if self.stratum is not None and SPECS[self.parameter].kind != "stratum":
            raise ParameterError(
                f"Change({self.parameter!r}): only per-stratum parameters take a stratum; saw stratum={self.stratum!r}"
            )
        object.__setattr__(self, "value", float(self.value))
        object.__setattr__(self, "start", float(self.start))


def resolve_parameters(params: Mapping[str, ParamValue] | None, strata: Sequence[str],
                       runs: int | None = None) -> tuple[dict[str, FloatArray], int]:
    """Every parameter as a float array: ``(B, 1)`` for scalars and cadre parameters, ``(B, S)`` per stratum.

    A value may be a number (all runs), a 1-D array (one per run), a 2-D array
    ``(runs, strata)`` or a mapping ``{stratum: value}`` (per-stratum parameters).
    """
    params = dict(params or {})
    unknown = sorted(set(params) - set(SPECS))
    if unknown:
        raise ParameterError(f"unknown model parameter(s) {', '.join(unknown)}; known: {', '.join(SPECS)}")
    s = len(strata)
    arrays: dict[str, np.ndarray] = {}
    sizes = {1} if runs is None else {runs}
    for name, value in params.items():
        spec = SPECS[name]
        if isinstance(value, Mapping):
            if spec.kind != "stratum":
                raise ParameterError(f"parameter {name!r} is not per stratum; give a number or one value per run")
            missing = sorted(set(value) - set(strata))
            if missing:
                raise ParameterError(f"parameter {name!r}: unknown strata {missing}; the model has {list(strata)}")
            row = np.array([float(value.get(k, spec.default)) for k in strata])[None, :]
            arrays[name] = row
            continue
        arr = np.asarray(value, dtype=float)
        if arr.ndim == 0:
            arr = arr.reshape(1, 1)
        elif arr.ndim == 1:
            arr = arr[:, None]
            sizes.add(arr.shape[0])
        elif arr.ndim == 2:
            if spec.kind != "stratum" and arr.shape[1] != 1:
                raise ParameterError(f"parameter {name!r} is not per stratum; saw an array of shape {arr.shape}")
            if arr.shape[1] not in (1, s):
                raise ParameterError(f"parameter {name!r}: second axis must be 1 or {s} strata; saw {arr.shape}")
            sizes.add(arr.shape[0])
        else:
            raise ParameterError(f"parameter {name!r}: at most 2 dimensions (runs, strata); saw shape {arr.shape}")
        arrays[name] = arr
    sizes.discard(1)
    if len(sizes) > 1:
        raise ParameterError(f"parameters disagree on the number of runs: {sorted(sizes)}")
    b = sizes.pop() if sizes else 1
    out: dict[str, FloatArray] = {}
    for name, spec in SPECS.items():
        width = s if spec.kind == "stratum" else 1
        arr = arrays.get(name, np.array([[spec.default]]))
        if arr.shape[0] not in (1, b):
            raise ParameterError(f"parameter {name!r} has {arr.shape[0]} runs; expected 1 or {b}")
        full = np.broadcast_to(arr, (b, width)).astype(float).copy()
        _check_values(name, full)
        out[name] = full
    return out, b


def _check_values(name: str, values: np.ndarray) -> None:
    if not np.all(np.isfinite(values)):
        raise ParameterError(f"parameter {name!r} must be finite; saw {values[~np.isfinite(values)][:3]}")
    if name in _POSITIVE and np.any(values <= 0):
        raise ParameterError(f"parameter {name!r} must be positive; saw {float(values.min())}")
    if np.any(values < 0):
        raise ParameterError(f"parameter {name!r} must be non-negative; saw {float(values.min())}")
    if name == "prevalence" and np.any(values >= 1):
        raise ParameterError(f"parameter 'prevalence' must be below 1; saw {float(values.max())}")


@dataclass
class _Arrays:
    """Block-ready parameter arrays in batch-last layout, rebuilt whenever a change takes effect.

    ``v`` maps each parameter to ``(1, B)`` (scalar, cadre) or ``(S, B)`` (per stratum).
    """

    v: dict[str, FloatArray]
    dt: float

    def __post_init__(self) -> None:
        v = self.v
        self.incidence = equilibrium_incidence(v["prevalence"], v["remission"]) * v["incidence_scale"]
        self.cadre = {n: np.stack([v[f"{n}_specialist"], v[f"{n}_lay"]]) for n in CADRE_NAMES}  # (C, 1, B)
        self.uniform_priority = bool(np.all(v["priority"] == v["priority"][:1]))
        self.acceptance = np.minimum(1.0, self.cadre["acceptance"] * v["acceptance_ratio"][None])
        self.dropout = self.cadre["dropout"] * v["dropout_ratio"][None]
        self.q_scale = np.minimum(1.0, (1.0 / self.dt) / (1.0 / v["admin_delay"] + 1.0 / v["patience"]))


@dataclass(frozen=True)
class _Event:
    step: int
    parameter: str
    op: str
    values: FloatArray  # (B,) NaN where the run is not affected
    column: int | None


class CarePathway:
    """The care-pathway model for one population split into equity strata.

    Parameters
    ----------
    strata
        Labels of the equity strata (``("all",)`` for none).
    population
        Adults in each stratum.
    dt
        Euler step in months; ``1 / dt`` must be a whole number.
    warmup
        Months simulated before month 0 without the programme (and not saved),
        so the usual-care stocks start near their equilibrium.

    Examples
    --------
    >>> model = CarePathway(population=[500_000])
    >>> run = model.run(months=12)
    >>> run.stocks["untreated"].shape
    (1, 13, 1)
    """

    def __init__(self, *, strata: Sequence[str] = ("all",), population: Sequence[float] | np.ndarray = (500_000.0,),
                 dt: float = DEFAULT_DT, warmup: int = 0) -> None:
        self.strata = tuple(strata)
        self.population = population
        self.dt = dt
        self.warmup = warmup

    def _validated(self) -> tuple[np.ndarray, int]:
        pop = np.asarray(self.population, dtype=float).reshape(-1)
        if len(self.strata) == 0 or len(set(self.strata)) != len(self.strata):
            raise ParameterError(f"CarePathway: strata must be distinct labels; saw {self.strata!r}")
        if pop.shape != (len(self.strata),) or not np.all(np.isfinite(pop)) or np.any(pop <= 0):
            raise ParameterError(
                f"CarePathway: population needs one positive number per stratum ({len(self.strata)}); saw {pop!r}"
            )
        per_month = 1.0 / self.dt if self.dt > 0 else 0.0
        if not self.dt > 0 or abs(per_month - round(per_month)) > 1e-9:
            raise ParameterError(f"CarePathway: 1 / dt must be a whole number of steps a month; saw dt={self.dt!r}")
        if not isinstance(self.warmup, int) or self.warmup < 0:
            raise ParameterError(f"CarePathway: warmup must be a non-negative whole number of months; "
                                 f"saw {self.warmup!r}")
        return pop, round(per_month)

    def run(
        self,
        params: Mapping[str, ParamValue] | None = None,
        *,
        months: int,
        coverage: np.ndarray | Sequence[Sequence[float]] | None = None,
        changes: Sequence[Change] | Sequence[Sequence[Change]] = (),
        scenario_index: np.ndarray | Sequence[int] | None = None,
        runs: int | None = None,
        record: Record = "all",
    ) -> PathwayRun:
        """Integrate ``months`` months for every run of the batch.

        Parameters
        ----------
        params
            Parameter values (see :data:`knowdo.complexity.blocks.SPECS`); arrays give one value per run.
        months
            Months to save after the warm-up.
        coverage
            ``(months_in, S)`` or ``(B, months_in, S)`` share of each stratum's adults where the
            programme delivers; held at its last month afterwards. ``None`` means no programme.
        changes
            Scenario edits for every run, or one list per scenario with ``scenario_index`` giving
            each run's scenario.
        runs
            Batch size when no parameter array fixes it.
        record
            ``'all'`` monthly stocks and flows; ``'stocks'`` monthly stocks only (faster);
            ``'final'`` only the stocks at month 0 and at the end (``stocks[...][:, 1]``), for large
            sweeps that need end states (little memory).
        """
        pop, per_month = self._validated()
        if not isinstance(months, int | np.integer) or months < 1:
            raise ParameterError(f"CarePathway.run: months must be a positive whole number; saw {months!r}")
        values, b = resolve_parameters(params, self.strata, runs)
        if runs is not None and b != runs:
            raise ParameterError(f"CarePathway.run: runs={runs} but the parameters hold {b} runs")
        cov = self._coverage(coverage, b)
        events = self._events(changes, scenario_index, b, per_month)
        check_option("record", record, RECORDS)
        return _integrate(values, pop, cov, int(months), self.dt, per_month, self.warmup, events, self.strata,
                          record)

    def _coverage(self, coverage: Any, b: int) -> FloatArray:
        s = len(self.strata)
        if coverage is None:
            return np.zeros((1, 1, s))
        cov = np.asarray(coverage, dtype=float)
        if cov.ndim == 2:
            cov = cov[None]
        if cov.ndim != 3 or cov.shape[2] != s or cov.shape[0] not in (1, b) or cov.shape[1] < 1:
            raise ParameterError(
                f"CarePathway.run: coverage must be (months, {s}) or ({b}, months, {s}); saw shape {cov.shape}"
            )
        if not np.all(np.isfinite(cov)) or cov.min() < 0 or cov.max() > 1:
            raise ParameterError("CarePathway.run: coverage must be shares between 0 and 1")
        return cov

    def _events(self, changes: Any, scenario_index: Any, b: int, per_month: int) -> list[_Event]:
        changes = list(changes)
        if not changes:
            return []
        nested = all(isinstance(c, list | tuple) for c in changes)
        if nested:
            if scenario_index is None:
                raise ParameterError("CarePathway.run: per-scenario changes need scenario_index (one per run)")
            index = np.asarray(scenario_index, dtype=int).reshape(-1)
            if index.shape != (b,) or index.min() < 0 or index.max() >= len(changes):
                raise ParameterError(
                    f"CarePathway.run: scenario_index must hold {b} values in [0, {len(changes)}); saw {index!r}"
                )
            groups = [(list(c), index == j) for j, c in enumerate(changes)]
        else:
            groups = [(changes, np.ones(b, dtype=bool))]
        events = []
        for items, rows in groups:
            for change in items:
                if not isinstance(change, Change):
                    raise ParameterError(f"CarePathway.run: changes must be Change objects; saw {change!r}")
                column = None
                if change.stratum is not None:
                    if change.stratum not in self.strata:
                        raise ParameterError(
                            f"Change({change.parameter!r}): stratum {change.stratum!r} not in {list(self.strata)}"
                        )
                    column = self.strata.index(change.stratum)
                step = max(0, int(np.ceil(change.start * per_month - 1e-9)))
                vals = np.where(rows, change.value, np.nan)
                events.append(_Event(step, change.parameter, change.op, vals, column))
        events.sort(key=lambda e: e.step)
        return events


def _apply(values: dict[str, FloatArray], event: _Event) -> None:
    current = values[event.parameter]
    cols = slice(None) if event.column is None else slice(event.column, event.column + 1)
    target = current[:, cols]
    v = event.values[:, None]
    hit = np.isfinite(v)
    if event.op == "set":
        new = np.where(hit, v, target)
    elif event.op == "scale":
        new = np.where(hit, target * np.where(hit, v, 1.0), target)
    else:
        new = np.where(hit, target + np.where(hit, v, 0.0), target)
    _check_values(event.parameter, new)
    current[:, cols] = new


def _integrate(values: dict[str, FloatArray], pop: np.ndarray, cov_in: FloatArray, months: int, dt: float,
               per_month: int, warmup: int, events: list[_Event], strata: tuple[str, ...],
               record: Record = "all") -> PathwayRun:
    b, s = values["prevalence"].shape[0], len(strata)
    v = {k: np.ascontiguousarray(x.T) for k, x in values.items()}  # batch last: (1, B) or (S, B)
    a = _Arrays(v, dt)
    cov_t = np.ascontiguousarray(np.moveaxis(cov_in, 0, -1))  # (months_in, S, 1 or B)
    n = np.broadcast_to(pop[:, None], (s, b))
    untreated = n * v["prevalence"]
    well = n - untreated
    waiting = np.zeros((2, s, b))
    treatment = np.zeros((2, s, b))
    recovered = np.zeros((s, b))
    maturity = np.zeros((s, b))
    trainees = np.zeros((2, 1, b))
    workforce = a.cadre["posts"].copy()  # the workforce starts at its posts, before any programme

    # month-first records keep every monthly write contiguous; moved to run-first on return
    record_flows = record == "all"
    mf = months if record_flows else 0  # no flow records unless asked for
    fs, fcs, fc = (mf, s, b), (mf, 2, s, b), (mf, 2, b)
    rec: dict[str, np.ndarray] = {
        "incidence": np.zeros(fs), "remission": np.zeros(fs), "detected": np.zeros(fs), "relapsed": np.zeros(fs),
        "sustained": np.zeros(fs), "wait": np.zeros(fs), "accepted": np.zeros(fcs), "reneged": np.zeros(fcs),
        "starts": np.zeros(fcs), "completed": np.zeros(fcs), "dropped": np.zeros(fcs),
        "recoveries": np.zeros(fcs), "sessions": np.zeros(fcs), "intake": np.zeros(fc), "graduated": np.zeros(fc),
        "attrition": np.zeros(fc), "cost": np.zeros((mf, b)),
    }  # fmt: skip
    if not record_flows:
        rec = {}
    ns = months + 1 if record != "final" else 2
    saved: dict[str, np.ndarray] = {
        "well": np.zeros((ns, s, b)), "untreated": np.zeros((ns, s, b)), "waiting": np.zeros((ns, 2, s, b)),
        "treatment": np.zeros((ns, 2, s, b)), "recovered": np.zeros((ns, s, b)), "maturity": np.zeros((ns, s, b)),
        "trainees": np.zeros((ns, 2, b)), "workforce": np.zeros((ns, 2, b)), "capacity": np.zeros((ns, 2, b)),
    }  # fmt: skip

    pending = list(events)
    zero_cov = np.zeros((s, 1))
    for step in range(months * per_month + warmup * per_month):
        m = step // per_month - warmup
        month_start = step % per_month == 0
        if m >= 0 and month_start and pending and pending[0].step <= m * per_month:
            while pending and pending[0].step <= m * per_month:
                _apply(values, pending.pop(0))
            v = {k: np.ascontiguousarray(x.T) for k, x in values.items()}
            a = _Arrays(v, dt)
        cov = zero_cov if m < 0 else cov_t[min(m, cov_t.shape[0] - 1)]
        cov_eff = np.maximum(cov, v["coverage_floor"])
        covered = (n * cov_eff).sum(axis=0) if s > 1 else n[0] * cov_eff[0]
        target = a.cadre["posts"] + a.cadre["posts_per_1000"] * (covered / 1000.0)
        slots = cadre_capacity(workforce, a.cadre["caseload"], v["supervision_time"], v["supervision_share"])
        if m >= 0 and month_start and (record != "final" or m == 0):
            for key, value in (("well", well), ("untreated", untreated), ("waiting", waiting),
                               ("treatment", treatment), ("recovered", recovered), ("maturity", maturity),
                               ("trainees", trainees[:, 0]), ("workforce", workforce[:, 0]),
                               ("capacity", slots[:, 0])):
                saved[key][m] = value

        d_maturity = smooth_rate(maturity, cov_eff, v["ramp_months"])
        inc, rem = need_flows(well, untreated, a.incidence, v["remission"])
        starts = capacity_starts(waiting, treatment, slots, v["admin_delay"], v["priority"], a.uniform_priority)
        renege = waiting / v["patience"]
        starts *= a.q_scale  # never take more than the waiting list in one step
        renege *= a.q_scale
        wait_c = waiting / np.maximum(starts, WAIT_FLOOR)
        wait_s = (waiting[0] + waiting[1]) / np.maximum(starts[0] + starts[1], WAIT_FLOOR)
        detected = detection_flow(untreated, v["detection"], v["screening_uplift"], maturity, wait_s,
                                  v["wait_help_seeking"])
        lay_share = v["offer"] * maturity
        accepted = np.stack([detected * (1.0 - lay_share), detected * lay_share]) * a.acceptance
        exits = treatment_exits(treatment, wait_c, a.cadre["duration"], a.dropout, v["worsening"],
                                v["wait_dropout"], dt)
        recoveries = exits.completed * a.cadre["recovery"]
        relapsed = v["relapse"] * recovered
        sustained = recovered / v["sustained_recovery"]
        queued = waiting if s == 1 else waiting.sum(axis=1, keepdims=True)
        pressure = queued / np.maximum(slots, CAPACITY_FLOOR)
        wf = workforce_flows(trainees, workforce, target, a.cadre["hiring_delay"], a.cadre["training_delay"],
                             a.cadre["training_capacity"], a.cadre["attrition"], a.cadre["burnout"], pressure)
        attrition = np.minimum(wf.attrition, workforce / dt)
        if m >= 0 and record_flows:  # flows are summed per month here and multiplied by dt once at the end
            sessions = treatment * a.cadre["sessions_per_month"]
            spend = a.cadre["salary"] * workforce + a.cadre["training_cost"] * wf.intake
            per_session = a.cadre["session_cost"] * sessions
            cost = spend[0, 0] + spend[1, 0] + (per_session[0] + per_session[1]).sum(axis=0)
            r = rec
            r["incidence"][m] += inc
            r["remission"][m] += rem
            r["detected"][m] += detected
            r["relapsed"][m] += relapsed
            r["sustained"][m] += sustained
            r["wait"][m] += wait_s
            r["accepted"][m] += accepted
            r["reneged"][m] += renege
            r["starts"][m] += starts
            r["completed"][m] += exits.completed
            r["dropped"][m] += exits.dropped
            r["recoveries"][m] += recoveries
            r["sessions"][m] += sessions
            r["intake"][m] += wf.intake[:, 0]
            r["graduated"][m] += wf.graduated[:, 0]
            r["attrition"][m] += attrition[:, 0]
            r["cost"][m] += cost

        back = renege + exits.dropped + (exits.completed - recoveries)  # people returning to untreated need
        well = well + dt * (rem + sustained - inc)
        untreated = untreated + dt * (inc - rem - accepted[0] - accepted[1] + back[0] + back[1] + relapsed)
        waiting = waiting + dt * (accepted - renege - starts)
        treatment = treatment + dt * (starts - exits.completed - exits.dropped)
        recovered = recovered + dt * (recoveries[0] + recoveries[1] - relapsed - sustained)
        maturity = maturity + dt * d_maturity
        trainees = trainees + dt * (wf.intake - wf.graduated)
        workforce = workforce + dt * (wf.graduated - attrition)

    slots = cadre_capacity(workforce, a.cadre["caseload"], v["supervision_time"], v["supervision_share"])
    for key, value in (("well", well), ("untreated", untreated), ("waiting", waiting), ("treatment", treatment),
                       ("recovered", recovered), ("maturity", maturity), ("trainees", trainees[:, 0]),
                       ("workforce", workforce[:, 0]), ("capacity", slots[:, 0])):
        saved[key][ns - 1] = value
    return PathwayRun(strata=strata, population=tuple(float(x) for x in pop), dt=dt, months=months,
                      stocks={k: _run_first(x) for k, x in saved.items()},
                      flows={k: _run_first(x * (1.0 / per_month if k == "wait" else dt)) for k, x in rec.items()})


def _run_first(x: np.ndarray) -> np.ndarray:
    """(months, ..., B) -> (B, months, ...), as a view."""
    return np.moveaxis(x, -1, 0)
