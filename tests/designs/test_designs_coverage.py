"""Coverage studies of the non-DiD designs' 95% intervals on simulated data with a known effect (slow).

Each study repeats a design over many seeds and counts how often the
interval covers the truth; the nominal rate is 95%. Results and the command
are recorded in docs/studies/designs-coverage.md. With R repetitions the
Monte Carlo SD of a 95% rate is sqrt(.95 * .05 / R) (1.0% at R = 500), so the
assertions allow 92-98%: a study outside that band means an interval is
wrong, not unlucky.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from knowdo.designs.cluster_trials import stepped_wedge
from knowdo.designs.effect import Effect
from knowdo.designs.emulation import emulate
from knowdo.designs.its import its
from knowdo.designs.rd import rd
from knowdo.designs.sdid import sdid
from knowdo.designs.synth import synthetic_control
from knowdo.designs.transport import transport

pytestmark = pytest.mark.slow
LOW, HIGH = 0.92, 0.98


def _coverage(name: str, draws: list[tuple[Effect, float]]) -> float:
    hits = np.array([e.conf_low <= truth <= e.conf_high for e, truth in draws])
    bias = float(np.mean([e.estimate - truth for e, truth in draws]))
    rate = float(hits.mean())
    print(f"\n[coverage] {name}: {rate:.3f} over {len(draws)} seeds; mean bias {bias:+.4f}; "
          f"mean SE {np.mean([e.std_error for e, _ in draws]):.4f}; SD of estimates "
          f"{np.std([e.estimate for e, _ in draws], ddof=1):.4f}")
    return rate


def _ar_series(seed: int, n: int = 60, phi: float = 0.5) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    t = np.arange(1, n + 1)
    e = np.zeros(n)
    e[0] = rng.normal(0, 1 / np.sqrt(1 - phi**2))
    for i in range(1, n):
        e[i] = phi * e[i - 1] + rng.normal()
    return pd.DataFrame({"t": t, "y": 10 + 0.1 * t + 2.0 * (t > n // 2) + e})


def test_its_ar1_coverage() -> None:
    draws = [(its(_ar_series(s), outcome="y", time="t", start=31, errors="ar", slope_change=False), 2.0)
             for s in range(500)]
    assert LOW <= _coverage("ITS gaussian, AR(1) errors by ML, n=60, phi=0.5", draws) <= HIGH


def test_its_newey_west_undercovers_short_autocorrelated_series() -> None:
    """Characterises a known weakness rather than a target: HAC SEs need long series."""
    draws = [(its(_ar_series(s), outcome="y", time="t", start=31, errors="newey-west", slope_change=False), 2.0)
             for s in range(500)]
    rate = _coverage("ITS gaussian, Newey-West, n=60, phi=0.5", draws)
    assert 0.75 < rate < 0.94


def _hussey_hughes(seed: int, clusters: int = 12, periods: int = 5, m: int = 10) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(clusters):
        a = rng.normal(0, 0.3)
        for j in range(periods):
            x = int(j >= 1 + i % (periods - 1))
            rows += [(i, j, x, 0.2 * j + 0.5 * x + a + v) for v in rng.normal(0, 1, m)]
    return pd.DataFrame(rows, columns=["clinic", "month", "treated", "y"])


def test_stepped_wedge_lmm_coverage() -> None:
    draws = [(stepped_wedge(_hussey_hughes(s), outcome="y", cluster="clinic", period="month"), 0.5)
             for s in range(300)]
    assert LOW <= _coverage("stepped wedge LMM, 12 clusters, t(10)", draws) <= HIGH


def _binary_sw(seed: int, clusters: int = 16, periods: int = 5, m: int = 20) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(clusters):
        for j in range(periods):
            x = int(j >= 1 + i % (periods - 1))
            p = 1 / (1 + np.exp(-(-0.5 + 0.1 * j + 0.4 * x)))
            rows += [(i, j, x, float(v)) for v in rng.random(m) < p]
    return pd.DataFrame(rows, columns=["clinic", "month", "treated", "y"])


def test_stepped_wedge_gee_kauermann_carroll_coverage() -> None:
    # no cluster effect: the marginal log odds ratio equals the data-generating 0.4
    draws = [(stepped_wedge(_binary_sw(s), outcome="y", cluster="clinic", period="month", method="gee",
                            family="binomial"), 0.4) for s in range(300)]
    assert LOW <= _coverage("stepped wedge GEE binary, Kauermann-Carroll, 16 clusters", draws) <= HIGH


def _factor_panel(seed: int, n_control: int = 30, n_treated: int = 1, periods: int = 20, start: int = 15,
                  effect: float = 1.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = n_control + n_treated
    factors = rng.normal(size=(periods, 2)).cumsum(axis=0)
    loadings = rng.uniform(0.5, 1.5, size=(n, 2))
    y = rng.normal(0, 1, n)[:, None] + loadings @ factors.T + rng.normal(0, 0.5, (n, periods))
    d = np.zeros((n, periods), int)
    d[n_control:, start:] = 1
    y = y + effect * d
    u, t = np.meshgrid(np.arange(n), np.arange(periods), indexing="ij")
    return pd.DataFrame({"unit": u.ravel(), "time": t.ravel(), "y": y.ravel(), "d": d.ravel()})


def test_sdid_placebo_coverage() -> None:
    draws = [(sdid(_factor_panel(s, n_treated=3), unit="unit", time="time", outcome="y", treatment="d",
                   replications=100, seed=s), 1.0) for s in range(300)]
    assert LOW <= _coverage("SDID placebo SE, 30 controls, 3 treated", draws) <= HIGH


def test_synthetic_control_placebo_coverage() -> None:
    draws = []
    for s in range(300):
        df = _factor_panel(s)
        draws.append((synthetic_control(df, unit="unit", time="time", outcome="y", treated_unit=30,
                                        treatment_time=15, leave_one_out=False), 1.0))
    # exchangeable treated unit: the placebo spread should cover about as often as nominal
    assert LOW <= _coverage("synthetic control, placebo SE, 30 donors", draws) <= HIGH


def test_rd_robust_coverage() -> None:
    draws = []
    for s in range(300):
        rng = np.random.default_rng(s)
        x = rng.uniform(-1, 1, 2000)
        y = 0.5 + 0.8 * x - 0.6 * x**2 + 1.0 * (x >= 0) + rng.normal(0, 0.5, 2000)
        draws.append((rd(pd.DataFrame({"x": x, "y": y}), outcome="y", running="x", density_test=False), 1.0))
    assert LOW <= _coverage("RD robust bias-corrected, n=2000, quadratic", draws) <= HIGH


def _observational(seed: int, n: int = 1000) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    a = (rng.random(n) < 1 / (1 + np.exp(-(0.6 * x1 - 0.4 * x2)))).astype(int)
    y = 1.0 + 1.0 * a + x1 + 0.5 * x2 + rng.normal(size=n)
    return pd.DataFrame({"x1": x1, "x2": x2, "a": a, "y": y})


@pytest.mark.parametrize("method", ["ipw", "aipw"])
def test_emulation_coverage(method: str) -> None:
    draws = [(emulate(_observational(s), outcome="y", treatment="a", covariates=["x1", "x2"], method=method), 1.0)
             for s in range(500)]
    assert LOW <= _coverage(f"trial emulation {method}, n=1000", draws) <= HIGH


def test_transport_bootstrap_coverage() -> None:
    draws = []
    for s in range(200):
        rng = np.random.default_rng(s)
        x_t, x_p = rng.normal(0.5, 1, 600), rng.normal(0, 1, 1200)
        a = rng.integers(0, 2, 600)
        y = x_t + (1.0 + 0.5 * x_t) * a + rng.normal(size=600)
        df = pd.concat([pd.DataFrame({"s": 1, "x": x_t, "a": a, "y": y}),
                        pd.DataFrame({"s": 0, "x": x_p, "a": np.nan, "y": np.nan})], ignore_index=True)
        draws.append((transport(df, outcome="y", treatment="a", covariates=["x"], sample="s", n_bootstrap=200,
                                seed=s), 1.0))
    assert LOW <= _coverage("transport inverse-odds, bootstrap percentile, n=600+1200", draws) <= HIGH
