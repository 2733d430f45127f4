"""Slow study: simulated LMM power vs analytic GLS power over a grid of designs (docs/studies/planner-simulation.md).

Run: ``pytest tests/planner/test_planner_study_slow.py -m slow -s``. Where the
true correlation is exchangeable (the LMM is correctly specified) simulated
power must match analytic power within 3 Monte Carlo SEs and the type-I
error must lie within 3 SEs of 0.05 (with 12 clusters or more: with fewer the
Wald z-test over-rejects, which the study records); misspecified scenarios are printed, not
asserted (that gap is what the study documents).
"""

from __future__ import annotations

import math

import pytest

from knowdo.designs.planner import CovarianceModel, Design, simulate_longitudinal_power

N_SIMS = 4000
SCENARIOS = [
    ("SW 24x5, m=50, ICC .05", Design.stepped_wedge(6, 4), 50, CovarianceModel.block_exchangeable(0.05), 0.13, True),
    ("SW 12x4, m=20, ICC .10", Design.stepped_wedge(4, 3), 20, CovarianceModel.block_exchangeable(0.10), 0.35, True),
    ("SW 8x9 (1 per step), m=10", Design.stepped_wedge(1, 8), 10, CovarianceModel.block_exchangeable(0.05), 0.5, True),
    ("parallel+baseline 10/arm x 4", Design.parallel_baseline(10, 2, 2), 30, CovarianceModel.block_exchangeable(0.05),
     0.25, True),
    ("crossover 6/seq x 4", Design.crossover(6, 4), 25, CovarianceModel.block_exchangeable(0.05), 0.12, True),
    ("SW 24x5, true CAC .5", Design.stepped_wedge(6, 4), 50, CovarianceModel.block_exchangeable(0.05, cac=0.5), 0.13,
     False),
    ("SW 24x5, true decay .5", Design.stepped_wedge(6, 4), 50, CovarianceModel.discrete_time_decay(0.05, 0.5), 0.13,
     False),
]


@pytest.mark.slow
@pytest.mark.parametrize(("label", "design", "m", "cov", "effect", "specified"), SCENARIOS,
                         ids=[s[0] for s in SCENARIOS])
def test_simulated_power_matches_analytic(label: str, design: Design, m: int, cov: CovarianceModel, effect: float,
                                          specified: bool) -> None:
    result = simulate_longitudinal_power(design, m, cov, effect, n_sims=N_SIMS, seed=101)
    analytic = result.details["analytic_power"]
    size = result.type1_error or 0.0
    se_power = math.sqrt(analytic * (1 - analytic) / N_SIMS)
    se_size = math.sqrt(0.05 * 0.95 / N_SIMS)
    print(f"\n| {label} | {analytic:.3f} | {result.power:.3f} | {result.monte_carlo_se:.3f} | {size:.3f} |")
    if specified:
        assert abs(result.power - analytic) < 3 * se_power
        if design.clusters >= 12:  # with fewer clusters the Wald z-test is known to over-reject
            assert abs(size - 0.05) < 3 * se_size
