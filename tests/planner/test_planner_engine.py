"""The GLS engine: closed forms are exact special cases (tolerance 1e-10 relative), designs and errors."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from knowdo.designs.planner import (
    CovarianceModel,
    Design,
    baseline_vif,
    design_effect_sizes,
    hooper_variance,
    hussey_hughes_variance,
    information_content,
    kasza_variance,
    treatment_variance,
    woertman_design_effect,
)
from knowdo.errors import ParameterError

RTOL = 1e-10


@pytest.mark.parametrize(("counts", "m", "sigma_e", "tau"), [
    ([6, 6, 6, 6], 120, 0.2, 0.01),
    ([1, 3, 2], 10, 1.0, 0.4),
    ([2, 0, 2, 1], 25, 2.0, 0.0),
])
def test_hussey_hughes_equals_gls(counts: list[int], m: int, sigma_e: float, tau: float) -> None:
    design = Design.stepped_wedge(counts)
    gls = treatment_variance(design, m, CovarianceModel.hussey_hughes(sigma_e, tau))
    closed = hussey_hughes_variance(design.treatment, sigma_e**2 / m, tau**2)
    assert gls == pytest.approx(closed, rel=RTOL)


def test_hussey_hughes_on_a_crossover_and_staggered_pattern() -> None:
    for design in (Design.crossover(3, periods=4), Design.staggered([1, 2, 2, 3, None], periods=5)):
        gls = treatment_variance(design, 15, CovarianceModel.hussey_hughes(1.0, 0.3))
        assert gls == pytest.approx(hussey_hughes_variance(design.treatment, 1 / 15, 0.09), rel=RTOL)


@pytest.mark.parametrize(("steps", "baseline", "per_step"), list(itertools.product([2, 4], [1, 2], [1, 3])))
def test_woertman_equals_gls(steps: int, baseline: int, per_step: int) -> None:
    m, icc = 20, 0.05
    design = Design.stepped_wedge(3, steps, baseline_periods=baseline, periods_per_step=per_step)
    gls = treatment_variance(design, m, CovarianceModel.block_exchangeable(icc))
    # Var = 4 sigma^2 DE_W / (I m) with sigma^2 = 1 (Woertman et al. 2013; designs-and-power.md §2.2).
    assert gls == pytest.approx(4 * woertman_design_effect(steps, baseline, per_step, m, icc) / (design.clusters * m),
                                rel=RTOL)


@pytest.mark.parametrize(("k", "m", "icc", "cac", "iac"), [
    (4, 10, 0.05, 1.0, 0.0), (4, 10, 0.05, 0.8, 0.0), (3, 20, 0.1, 0.5, 0.6), (5, 5, 0.02, 1.0, 0.3),
])
def test_hooper_equals_gls(k: int, m: int, icc: float, cac: float, iac: float) -> None:
    cohort = "closed" if iac else "cross-sectional"
    design = Design.stepped_wedge(2, k)
    gls = treatment_variance(design, m, CovarianceModel.block_exchangeable(icc, cac, iac, cohort=cohort))
    assert gls == pytest.approx(hooper_variance(design.clusters, k, m, icc, cac, iac), rel=RTOL)


@pytest.mark.parametrize("decay", [1.0, 0.8, 0.5])
def test_kasza_decay_equals_gls(decay: float) -> None:
    design = Design.stepped_wedge(2, 4)
    cov = CovarianceModel.discrete_time_decay(0.05, decay)
    common = cov.cluster_covariance(design.treatment[0], np.full(design.periods, 10.0))
    assert treatment_variance(design, 10, cov) == pytest.approx(kasza_variance(design.treatment, common), rel=RTOL)


def test_correlation_structure_costs_power() -> None:
    # designs-and-power.md §2.2: a CAC or decay of 0.5 cuts power markedly against exchangeable.
    design = Design.stepped_wedge(6, 4)
    exchangeable = treatment_variance(design, 50, CovarianceModel.block_exchangeable(0.05))
    assert treatment_variance(design, 50, CovarianceModel.block_exchangeable(0.05, cac=0.5)) > 1.5 * exchangeable
    assert treatment_variance(design, 50, CovarianceModel.discrete_time_decay(0.05, 0.5)) > 1.5 * exchangeable


def test_ancova_vif_equals_gls_for_one_baseline() -> None:
    # Teerenstra et al. (2012): with one baseline and one follow-up period the ANCOVA VIF is the efficient (GLS) one.
    design = Design.parallel_baseline(5, 1, 1)
    for cac, iac in [(0.8, 0.0), (0.5, 0.4)]:
        cov = CovarianceModel.block_exchangeable(0.05, cac, iac, cohort="closed" if iac else "cross-sectional")
        expected = 2 * baseline_vif(20, 0.05, cac, iac, "ancova") / (5 * 20)
        assert treatment_variance(design, 20, cov) == pytest.approx(expected, rel=RTOL)


def test_exact_unequal_sizes_equal_gls() -> None:
    sizes = [5, 10, 20, 40, 8, 12]
    gls = treatment_variance(Design.parallel(6), sizes + sizes, CovarianceModel.block_exchangeable(0.1))
    assert gls == pytest.approx(2 * design_effect_sizes(sizes, 0.1) / sum(sizes), rel=RTOL)


def test_incomplete_window_masks_cells() -> None:
    design = Design.stepped_wedge(2, 4).with_window(2, 2)
    expected = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 0], [0, 1, 1, 1, 1], [0, 0, 1, 1, 1]], dtype=bool)
    assert (design.observed == np.repeat(expected, 2, axis=0)).all()


def test_information_content_flags_critical_cells() -> None:
    design = Design.stepped_wedge(2, 3)
    table = information_content(design, 10, CovarianceModel.hussey_hughes(1.0, 0.2))
    assert len(table) == design.cells
    assert (table["information_content"] >= 1 - 1e-12).all()
    # Cells next to a switch carry more information than the first period of the last sequence.
    switch = table.query("cluster == 0 and period == 1")["information_content"].item()
    assert switch > table.query("cluster == 5 and period == 0")["information_content"].item()


def test_design_is_read_only_and_validated() -> None:
    design = Design.stepped_wedge(2, 3)
    with pytest.raises(ValueError, match="read-only"):
        design.treatment[0, 0] = 1.0
    with pytest.raises(ParameterError, match="must lie in \\[0, 1\\]"):
        Design.from_matrix([[0, 2]])


def test_unidentifiable_design_is_reported() -> None:
    everyone_at_once = Design.from_matrix([[0, 1], [0, 1], [0, 1]])
    with pytest.raises(ParameterError, match="not identifiable"):
        treatment_variance(everyone_at_once, 10, CovarianceModel.hussey_hughes(1.0, 0.1))


def test_bad_covariance_values_are_reported() -> None:
    with pytest.raises(ParameterError, match="tau=-1"):
        CovarianceModel(sigma_e=1.0, tau=-1.0)
    with pytest.raises(ParameterError, match="cohort='closed'"):
        CovarianceModel.block_exchangeable(0.05, iac=0.3)
