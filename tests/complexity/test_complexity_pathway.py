"""The care-pathway model: conservation, an analytic steady state, a plain loop implementation and PySD.

Tolerances: conservation 1e-9 relative; loop and PySD equality 1e-9 relative
(the issue's requirement); steady state 1e-6 relative after a long run.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from knowdo.complexity.blocks import SPECS, water_fill
from knowdo.complexity.pathway import CarePathway, Change, resolve_parameters
from knowdo.complexity.pysd_bridge import PATHWAY_NAMES, PATHWAY_STOCKS, PySDModel, bundled_model, pathway_parameters
from knowdo.errors import ParameterError

EQUAL = 1e-9


def rel_diff(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-6)))


def test_people_are_conserved_under_scenarios_and_capacity_limits() -> None:
    rng = np.random.default_rng(1)
    b = 40
    params = {
        "detection": rng.uniform(0.005, 0.05, b),
        "screening_uplift": rng.uniform(0.0, 0.1, b),
        "posts_specialist": rng.uniform(5, 50, b),  # scarce specialists so capacity binds
        "caseload_lay": rng.uniform(2, 20, b),
        "burnout_lay": rng.uniform(0, 3, b),
        "priority": {"poor": 3.0},
    }
    cov = np.clip(np.linspace(-0.2, 1.0, 24), 0, 1)[:, None].repeat(2, axis=1)
    model = CarePathway(strata=("poor", "rich"), population=[60_000, 40_000], warmup=6)
    run = model.run(params, months=48, coverage=cov,
                    changes=[Change("posts_per_1000_lay", 3.0, "scale", start=20),
                             Change("dropout_lay", 0.5, "scale", start=30, stratum=None)])
    people = run.people()
    assert rel_diff(people, np.broadcast_to([60_000.0, 40_000.0], people.shape)) < EQUAL
    assert run.stocks["waiting"].sum(axis=(2, 3)).max() > 100  # capacity did bind somewhere
    for name in ("well", "untreated", "waiting", "treatment", "recovered", "workforce", "trainees"):
        assert run.stocks[name].min() > -1e-9, name


def test_analytic_steady_state_of_the_simplified_pathway() -> None:
    # Capacity never binds and burnout is off, so the wait is the admin delay and every flow is linear.
    p = {"detection": 0.02, "acceptance_specialist": 0.6, "burnout_specialist": 0.0, "posts_specialist": 500.0}
    n = 100_000.0
    run = CarePathway(population=[n]).run({**p, "posts_lay": 0.0, "posts_per_1000_lay": 0.0}, months=1200,
                                           record="final")
    g = {k: SPECS[k].default for k in SPECS} | p
    admin, patience, whs = g["admin_delay"], g["patience"], g["wait_help_seeking"]
    wait = admin  # Little's law when starts = waiting / admin
    detect = g["detection"] / (1 + wait / whs)
    length = g["duration_specialist"] * (1 + g["worsening"] * wait)
    drop = g["dropout_specialist"] * (1 + g["wait_dropout"] * wait)
    incidence = g["prevalence"] / (1 - g["prevalence"]) * g["remission"]
    a = g["acceptance_specialist"]
    rho = g["recovery_specialist"]
    # unknowns: W, U, Q, T, R; four balances and the population total
    m = np.array([
        [-incidence, g["remission"], 0, 0, 1 / g["sustained_recovery"]],  # dW/dt
        [0, a * detect, -(1 / patience + 1 / admin), 0, 0],  # dQ/dt
        [0, 0, 1 / admin, -(1 / length + drop), 0],  # dT/dt
        [0, 0, 0, rho / length, -(g["relapse"] + 1 / g["sustained_recovery"])],  # dR/dt
        [1, 1, 1, 1, 1],
    ])
    w, u, q, t, r = np.linalg.solve(m, [0, 0, 0, 0, n])
    s = run.stocks
    assert s["well"].shape == (1, 2, 1)  # record="final" keeps month 0 and the end
    got = [s["well"][0, -1, 0], s["untreated"][0, -1, 0], s["waiting"][0, -1, 0, 0], s["treatment"][0, -1, 0, 0],
           s["recovered"][0, -1, 0]]
    assert rel_diff(got, [w, u, q, t, r]) < 1e-6
    # workforce: intake = attrition at F* = posts / (1 + attrition x (training delay + hiring delay))
    f_star = 500.0 / (1 + g["attrition_specialist"] * (g["training_delay_specialist"] + g["hiring_delay_specialist"]))
    assert abs(s["workforce"][0, -1, 0] - f_star) / f_star < 1e-6


# --------------------------------------------------------------------------- plain loop implementation
def loop_model(p: dict, strata: list[str], pop: list[float], cov: np.ndarray, months: int, dt: float, warmup: int,
               changes: list[tuple[int, str, str, float, int | None]]) -> dict[str, np.ndarray]:
    """One run, scalar Python, written from the model's equations (docstrings of knowdo.complexity.blocks)."""
    p = {k: (list(v) if isinstance(v, list) else v) for k, v in p.items()}
    S, spm = len(strata), round(1 / dt)
    W = [pop[s] * (1 - p["prevalence"][s]) for s in range(S)]
    U = [pop[s] * p["prevalence"][s] for s in range(S)]
    Q = [[0.0] * S for _ in range(2)]
    T = [[0.0] * S for _ in range(2)]
    R, M = [0.0] * S, [0.0] * S
    Tr, F = [0.0, 0.0], [p["posts_specialist"], p["posts_lay"]]
    cad = ("specialist", "lay")
    out = {"untreated": np.zeros((months + 1, S)), "waiting": np.zeros((months + 1, 2, S)),
           "workforce": np.zeros((months + 1, 2)), "starts": np.zeros((months, 2, S))}
    pending = sorted(changes)
    for step in range((warmup + months) * spm):
        m = step // spm - warmup
        if m >= 0 and step % spm == 0:
            while pending and pending[0][0] <= m * spm:
                _, name, op, value, col = pending.pop(0)
                cols = (range(S) if col is None else [col]) if isinstance(p[name], list) else [0]
                for j in cols:
                    cur = p[name][j] if isinstance(p[name], list) else p[name]
                    new = value if op == "set" else cur * value if op == "scale" else cur + value
                    if isinstance(p[name], list):
                        p[name][j] = new
                    else:
                        p[name] = new
        c_in = [0.0] * S if m < 0 else list(cov[min(m, len(cov) - 1)])
        ce = [max(c_in[s], p["coverage_floor"][s]) for s in range(S)]
        covered = sum(pop[s] * ce[s] for s in range(S))
        target = [p[f"posts_{c}"] + p[f"posts_per_1000_{c}"] * covered / 1000 for c in cad]
        sup = min(F[1], p["supervision_share"] * F[0] / p["supervision_time"])
        slots = [(F[0] - p["supervision_time"] * sup) * p["caseload_specialist"], sup * p["caseload_lay"]]
        if m >= 0 and step % spm == 0:
            out["untreated"][m] = U
            out["waiting"][m] = Q
            out["workforce"][m] = F
        admin = p["admin_delay"]
        qs = min(1.0, (1 / dt) / (1 / admin + 1 / p["patience"]))
        starts = [[0.0] * S for _ in range(2)]
        for c in range(2):
            dem = [Q[c][s] / admin for s in range(S)]
            free = max(0.0, slots[c] - sum(T[c])) / admin
            total = min(sum(dem), free)
            if total >= sum(dem):
                share = [1.0] * S
            else:  # water-filling by bisection on theta
                lo, hi = 0.0, 1.0
                while sum(d * min(1, hi * pr) for d, pr in zip(dem, p["priority"], strict=True)) < total:
                    hi *= 2
                for _ in range(200):
                    mid = (lo + hi) / 2
                    if sum(d * min(1, mid * pr) for d, pr in zip(dem, p["priority"], strict=True)) < total:
                        lo = mid
                    else:
                        hi = mid
                share = [min(1.0, hi * pr) for pr in p["priority"]]
            starts[c] = [dem[s] * share[s] * qs for s in range(S)]
        ren = [[Q[c][s] / p["patience"] * qs for s in range(S)] for c in range(2)]
        wcs = [[Q[c][s] / max(starts[c][s], 1e-3) for s in range(S)] for c in range(2)]
        ws = [(Q[0][s] + Q[1][s]) / max(starts[0][s] + starts[1][s], 1e-3) for s in range(S)]
        det = [(p["detection"][s] + p["screening_uplift"][s] * M[s]) * U[s] / (1 + ws[s] / p["wait_help_seeking"])
               for s in range(S)]
        lay = [p["offer"][s] * M[s] for s in range(S)]
        acc = [[det[s] * (1 - lay[s] if c == 0 else lay[s]) * min(1.0, p[f"acceptance_{cad[c]}"]
                * p["acceptance_ratio"][s]) for s in range(S)] for c in range(2)]
        comp, drop = [[0.0] * S for _ in range(2)], [[0.0] * S for _ in range(2)]
        for c in range(2):
            for s in range(S):
                cr = 1 / (p[f"duration_{cad[c]}"] * (1 + p["worsening"] * wcs[c][s]))
                dr = p[f"dropout_{cad[c]}"] * p["dropout_ratio"][s] * (1 + p["wait_dropout"] * wcs[c][s])
                sc = min(1.0, (1 / dt) / (cr + dr))
                comp[c][s], drop[c][s] = T[c][s] * cr * sc, T[c][s] * dr * sc
        rec = [[comp[c][s] * p[f"recovery_{cad[c]}"] for s in range(S)] for c in range(2)]
        rel = [p["relapse"] * R[s] for s in range(S)]
        sus = [R[s] / p["sustained_recovery"] for s in range(S)]
        inc = [p["prevalence"][s] / (1 - p["prevalence"][s]) * p["remission"] * p["incidence_scale"][s] * W[s]
               for s in range(S)]
        rem = [p["remission"] * U[s] for s in range(S)]
        intake, grad, attr = [0.0, 0.0], [0.0, 0.0], [0.0, 0.0]
        for c in range(2):
            pressure = sum(Q[c]) / max(slots[c], 1.0)
            gap = max(0.0, target[c] - F[c] - Tr[c])
            intake[c] = min(gap / p[f"hiring_delay_{cad[c]}"], p[f"training_capacity_{cad[c]}"])
            grad[c] = Tr[c] / p[f"training_delay_{cad[c]}"]
            attr[c] = min(F[c] * p[f"attrition_{cad[c]}"] * (1 + p[f"burnout_{cad[c]}"] * pressure), F[c] / dt)
        if m >= 0:
            out["starts"][m] += np.array(starts) * dt
        for s in range(S):
            back = sum(ren[c][s] + drop[c][s] + comp[c][s] - rec[c][s] for c in range(2))
            W[s], U[s], R[s], M[s] = (
                W[s] + dt * (rem[s] + sus[s] - inc[s]),
                U[s] + dt * (inc[s] - rem[s] - acc[0][s] - acc[1][s] + back + rel[s]),
                R[s] + dt * (rec[0][s] + rec[1][s] - rel[s] - sus[s]),
                M[s] + dt * (ce[s] - M[s]) / p["ramp_months"],
            )
            for c in range(2):
                Q[c][s], T[c][s] = (Q[c][s] + dt * (acc[c][s] - ren[c][s] - starts[c][s]),
                                    T[c][s] + dt * (starts[c][s] - comp[c][s] - drop[c][s]))
        for c in range(2):
            Tr[c], F[c] = Tr[c] + dt * (intake[c] - grad[c]), F[c] + dt * (grad[c] - attr[c])
    out["untreated"][months], out["waiting"][months], out["workforce"][months] = U, Q, F
    return out


def test_vectorised_model_equals_a_plain_loop_implementation() -> None:
    rng = np.random.default_rng(7)
    strata, pop = ["a", "b", "c"], [30_000.0, 20_000.0, 10_000.0]
    b = 3
    draws = {"detection": rng.uniform(0.01, 0.04, (b, 3)), "posts_specialist": rng.uniform(5, 40, b),
             "screening_uplift": rng.uniform(0.01, 0.1, b), "caseload_lay": rng.uniform(3, 15, b),
             "burnout_lay": rng.uniform(0.5, 2, b), "offer": rng.uniform(0.3, 0.9, b)}
    fixed = {"priority": {"a": 3.0, "b": 1.0, "c": 0.5}, "dropout_ratio": {"c": 1.5}}
    cov = np.clip(np.linspace(-0.5, 1, 10), 0, 1)[:, None] * np.array([1.0, 0.6, 0.3])
    months, dt, warmup = 20, 0.25, 3
    changes = [Change("posts_per_1000_lay", 2.0, "scale", start=8), Change("priority", 2.0, "set", 12, "c")]
    run = CarePathway(strata=strata, population=pop, dt=dt, warmup=warmup).run(
        {**draws, **fixed}, months=months, coverage=cov, changes=changes)
    resolved, _ = resolve_parameters({**draws, **fixed}, strata, b)
    for i in range(b):
        p = {k: (list(v[i]) if SPECS[k].kind == "stratum" else float(v[i, 0])) for k, v in resolved.items()}
        ref = loop_model(p, strata, pop, cov, months, dt, warmup,
                         [(8 * 4, "posts_per_1000_lay", "scale", 2.0, None), (12 * 4, "priority", "set", 2.0, 2)])
        assert rel_diff(run.stocks["untreated"][i], ref["untreated"]) < EQUAL
        assert rel_diff(run.stocks["waiting"][i], ref["waiting"]) < EQUAL
        assert rel_diff(run.stocks["workforce"][i], ref["workforce"]) < EQUAL
        assert rel_diff(run.flows["starts"][i], ref["starts"]) < EQUAL
    assert run.stocks["waiting"].max() > 50  # the priority rationing was exercised


@pytest.fixture(scope="module")
def pysd_model() -> PySDModel:
    outputs = {name: var for name, var in PATHWAY_STOCKS.items()}
    return PySDModel(bundled_model(), outputs=outputs)


def test_vectorised_model_equals_pysd_on_the_shipped_vensim_model(pysd_model: PySDModel) -> None:
    rng = np.random.default_rng(11)
    names = ["detection", "posts_specialist", "burnout_specialist", "caseload_specialist", "worsening"]
    lows, highs = np.array([0.005, 20, 0, 5, 0]), np.array([0.05, 300, 3, 30, 0.3])
    values = lows + rng.random((4, len(names))) * (highs - lows)
    ours_params = {n: values[:, j] for j, n in enumerate(names)}
    simplified, _ = pathway_parameters({})  # the settings that switch off the lay cadre and the programme
    run = CarePathway(population=[500_000.0]).run({**ours_params, **simplified}, months=120)
    from_pysd = pysd_model({PATHWAY_NAMES[n]: ours_params[n] for n in names})
    s = run.stocks
    pairs = {"well": s["well"][:, :, 0], "untreated": s["untreated"][:, :, 0], "waiting": s["waiting"][:, :, 0, 0],
             "treatment": s["treatment"][:, :, 0, 0], "recovered": s["recovered"][:, :, 0],
             "workforce": s["workforce"][:, :, 0], "trainees": s["trainees"][:, :, 0],
             "cumulative_starts": np.concatenate([np.zeros((4, 1)), run.flows["starts"][:, :, 0, 0].cumsum(1)], 1)}
    for name, ours_values in pairs.items():
        assert rel_diff(ours_values, from_pysd[name]) < EQUAL, name
    assert from_pysd["waiting"].max() > 1_000  # some draws ran short of capacity


def test_pysd_scenarios_use_the_same_change_objects(pysd_model: PySDModel) -> None:
    from knowdo.complexity.scenarios import Scenario

    scen = [Scenario("base"), Scenario("more posts", (Change("posts_specialist", 2.0, "scale", start=0),))]
    bridged = pysd_model.with_outputs({"workforce": "Workforce"}, parameters={"posts_specialist": "posts"},
                                      times=[0, 60])
    out = bridged.run_scenarios(scen)
    assert out["more posts"]["workforce"][0, 0] == pytest.approx(2 * out["base"]["workforce"][0, 0])


def test_water_fill_serves_priority_first_and_shares_the_total() -> None:
    demand = np.array([[[10.0], [10.0], [10.0]]])  # (C=1, S=3, B=1)
    priority = np.array([[[4.0], [1.0], [1.0]]])
    got = water_fill(demand, priority, np.array([[[15.0]]]))
    assert got.sum() == pytest.approx(15.0)
    assert got[0, 0, 0] == pytest.approx(10.0)  # the priority stratum is served in full
    assert got[0, 1, 0] == pytest.approx(2.5) and got[0, 2, 0] == pytest.approx(2.5)


def test_monthly_flows_add_up_to_the_change_in_stocks() -> None:
    run = CarePathway(population=[50_000.0]).run({"posts_specialist": 10.0}, months=24)
    f, s = run.flows, run.stocks
    change = s["waiting"][0, 1:, 0, 0] - s["waiting"][0, :-1, 0, 0]
    net = f["accepted"][0, :, 0, 0] - f["reneged"][0, :, 0, 0] - f["starts"][0, :, 0, 0]
    assert rel_diff(change, net) < EQUAL


def test_errors_name_the_parameter_and_the_value() -> None:
    model = CarePathway(population=[1000.0])
    with pytest.raises(ParameterError, match=r"unknown model parameter.*detecton"):
        model.run({"detecton": 0.1}, months=2)
    with pytest.raises(ParameterError, match="'patience' must be positive"):
        model.run({"patience": 0.0}, months=2)
    with pytest.raises(ParameterError, match="op must be one of"):
        Change("detection", 1.0, op="double")  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match="only per-stratum parameters take a stratum"):
        Change("patience", 1.0, stratum="Q1")
    with pytest.raises(ParameterError, match="1 / dt must be a whole number"):
        CarePathway(population=[1.0], dt=0.3).run(months=1)
    with pytest.raises(ParameterError, match="coverage must be"):
        model.run(months=2, coverage=np.ones((3, 2)))
    assert math.isclose(SPECS["dropout_lay"].default, -4 * math.log(0.78), rel_tol=0.01)
