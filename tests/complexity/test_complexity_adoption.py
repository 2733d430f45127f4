"""Adoption on networks: the mean-field limit equals the Bass curve; replications, rules, networks, errors.

Reference: Bass (1969) closed form F(t) = (1 - e^{-(p+q)t}) / (1 + (q/p) e^{-(p+q)t}).
Tolerance 0.01 (absolute share) for the network mean against the mean-field curve:
synchronous updates with step h = 0.1 month carry an O(h) error and 20,000 agents
x 20 replications a Monte Carlo SE of ~0.001.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from knowdo.complexity.adoption import (
    NetworkAdoption,
    bass_curve,
    fit_bass,
    make_network,
    network_from_edges,
    simulate_adoption,
)
from knowdo.complexity.calibration import calibrate
from knowdo.errors import ParameterError


def test_bass_closed_form_solves_the_bass_equation() -> None:
    t = np.linspace(0, 60, 61)
    closed = bass_curve(t, 0.01, 0.3)
    numeric = bass_curve(t, 0.01, 0.3, start=1e-300)  # forces the ODE solver
    assert np.max(np.abs(closed - numeric)) < 1e-6
    peak = np.log(0.3 / 0.01) / 0.31  # time of peak adoption ln(q/p)/(p+q) (Bass 1969)
    rate = np.gradient(closed, t)
    assert abs(t[np.argmax(rate)] - peak) <= 1.0


def mean_field_map(p: float, q: float, d: float, h: float, months: int) -> np.ndarray:
    """The model's update rule applied to the population share itself (no network, no noise)."""
    f, out = 0.0, [0.0]
    for _ in range(months):
        for _ in range(round(1 / h)):
            f = f + (1 - f) * -np.expm1(-(p + q * f) * h) - f * -np.expm1(-d * h)
        out.append(f)
    return np.array(out)


@pytest.mark.parametrize("discontinuation", [0.0, 0.02])
def test_mean_field_limit_of_the_network_model_is_the_bass_curve(discontinuation: float) -> None:
    p, q, months = 0.01, 0.3, 36
    t = np.arange(months + 1.0)
    bass = bass_curve(t, p, q, discontinuation)
    # the update rule's mean-field map converges to the Bass equation as the step shrinks (first order)
    errors = [np.abs(mean_field_map(p, q, discontinuation, h, months) - bass).max() for h in (0.1, 0.02, 0.004)]
    assert errors[2] < 1e-3 and errors[1] < errors[0] / 3 and errors[2] < errors[1] / 3
    # on the complete graph (well mixed), the network simulation's mean follows that map within Monte Carlo error
    model = NetworkAdoption(external=p, peer=q, discontinuation=discontinuation, seeds=0.0, substeps=10)
    result = model.run(10_000, steps=months, replications=10, seed=4)
    mean = result.curve["mean"].to_numpy()
    se = result.curve["std_error"].to_numpy()
    assert np.all(np.abs(mean - mean_field_map(p, q, discontinuation, 0.1, months)) < 4 * se + 1e-3)
    assert np.abs(mean - bass).max() < 0.02


def test_sparse_networks_approach_the_mean_field_as_degree_grows() -> None:
    p, q = 0.01, 0.3
    bass = bass_curve(np.arange(25.0), p, q)
    gaps = []
    for degree in (4, 40):
        a = make_network(4_000, kind="random", degree=degree, seed=3)
        run = NetworkAdoption(external=p, peer=q, discontinuation=0.0, seeds=0.0, substeps=4).run(
            a, steps=24, replications=5, seed=1)
        gaps.append(np.abs(run.curve["mean"].to_numpy() - bass).max())
    assert gaps[1] < gaps[0] / 2  # local clustering of adopters slows sparse networks; it fades with degree


def test_replication_bands_and_seeds() -> None:
    a = make_network(2_000, degree=6, seed=1)
    one = NetworkAdoption(external=0.005, peer=0.2).run(a, steps=24, replications=30, seed=9)
    two = NetworkAdoption(external=0.005, peer=0.2).run(a, steps=24, replications=30, seed=9)
    pd.testing.assert_frame_equal(one.curve, two.curve)
    c = one.curve
    assert (c["conf_low"] <= c["mean"]).all() and (c["mean"] <= c["conf_high"]).all()
    assert c["ever_mean"].iloc[-1] >= c["mean"].iloc[-1]
    assert "adopting" in one.summary() and one.to_dict()["replications"] == 30


def test_per_replication_rates_run_as_one_batch() -> None:
    a = make_network(3_000, degree=8, seed=2)
    out = NetworkAdoption(external=np.array([0.001, 0.05]), peer=0.1, discontinuation=0.0, seeds=0.0).run(
        a, steps=24, replications=2, seed=1)
    assert out.final[1] > out.final[0] + 0.3  # the replication with strong external push adopts far more


def test_threshold_rule_spreads_and_external_multiplier_targets_agents() -> None:
    a = make_network(1_000, kind="clustered", degree=6, seed=5)
    spread = NetworkAdoption(external=0.001, rule="threshold", threshold=(0.0, 0.2), seeds=0.05).run(
        a, steps=24, replications=5, seed=1)
    assert spread.curve["mean"].iloc[-1] > 0.5
    mult = np.zeros(1_000)
    mult[:500] = 1.0
    half = NetworkAdoption(external=0.5, peer=0.0, discontinuation=0.0, seeds=0.0).run(
        a, steps=12, replications=3, seed=2, external_multiplier=mult)
    assert abs(half.curve["mean"].iloc[-1] - 0.5) < 0.01  # only the agents with a multiplier adopt


def test_networks_from_edges_and_blocks_and_bass_fit() -> None:
    edges = pd.DataFrame({"source": ["a", "b", "c"], "target": ["b", "c", "a"]})
    matrix, nodes = network_from_edges(edges, nodes=["a", "b", "c", "d"])
    assert nodes == ["a", "b", "c", "d"] and matrix.sum() == 6 and matrix[3].sum() == 0
    blocks = make_network(10, kind="blocks", groups=[5, 5], between=0.0, seed=0)
    assert blocks[:5, 5:].sum() == 0 and blocks[:5, :5].sum() == 20
    t = np.arange(40.0)
    fit = fit_bass(t, bass_curve(t, 0.02, 0.25))
    assert fit["external"] == pytest.approx(0.02, rel=1e-3) and fit["peer"] == pytest.approx(0.25, rel=1e-3)
    assert simulate_adoption(500, steps=6, replications=2, degree=4).agents == 500


def test_adoption_errors() -> None:
    with pytest.raises(ParameterError, match="'kind' must be one of"):
        make_network(10, kind="lattice")  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match="agents x degree even"):
        make_network(11, kind="random", degree=3)
    with pytest.raises(ParameterError, match="external must be non-negative"):
        NetworkAdoption(external=-1.0).run(make_network(10, degree=2), steps=2, replications=2)
    with pytest.raises(ParameterError, match="'rule' must be one of"):
        NetworkAdoption(rule="majority").run(make_network(10, degree=2))  # type: ignore[arg-type]


def test_abc_calibrates_the_network_model_with_replications_as_the_batch() -> None:
    a = make_network(400, kind="blocks", groups=[50] * 8, between=0.02, seed=1)
    truth = NetworkAdoption(external=0.01, peer=0.4, discontinuation=0.0, seeds=0.0).run(
        a, steps=30, replications=200, seed=3).curve["mean"].to_numpy()

    def simulate(p: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        # one replication per parameter draw: a whole ABC batch is one array run
        model = NetworkAdoption(external=p["external"], peer=p["peer"], discontinuation=0.0, seeds=0.0)
        return {"adopted": 400 * model.run(a, steps=30, replications=len(p["external"]), seed=5).paths.T}

    result = calibrate(simulate, {"adopted": 400 * truth}, {"external": (0.001, 0.05, "log"), "peer": (0.05, 1.0)},
                       method="abc_rejection", simulations=2_000, accept=0.05, batch=1_000, held_out=0, seed=2)
    est = result.estimates.set_index("parameter")
    assert est.loc["external", "conf_low"] <= 0.01 <= est.loc["external", "conf_high"]
    assert est.loc["peer", "conf_low"] <= 0.4 <= est.loc["peer", "conf_high"]
    assert est.loc["external", "identified"] != "not identified"
