"""Benchmark: knowdo's synthetic control against pysyncon on a 40-donor x 40-period problem.

    python benchmarks/bench_synth.py [--seed 0] [--placebo]

One process, one problem: a factor-model panel of 41 units (one treated,
40 donors) over 40 periods, treatment from period 31, with six predictors
(three covariates averaged over the pre-period and the outcome's mean over
three pre-period windows). First, with knowdo's V given to pysyncon as
``custom_V``, knowdo's inner (donor-weight) loss must be no worse than
pysyncon's. Then both tools fit the nested (data-driven V)
synthetic control: pysyncon with Nelder-Mead from equal V (its documented
default), knowdo with its own optimiser. The script asserts the two agree
(same donor weights to 0.01 and the same effect to 0.01, or knowdo's
pre-period loss no worse than pysyncon's when their optimisers stop at
different V), then prints wall time and the ratio. Peak memory is traced
(tracemalloc) in a second, separate run of each tool with ``--memory``,
because tracing slows the many small allocations of both optimisers several
fold. ``--placebo`` also times the placebo-in-space runs (every donor
refitted as if treated), which pysyncon does with ``PlaceboTest``.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from pysyncon import Dataprep, Synth
from pysyncon.utils import PlaceboTest

from knowdo.designs.synth import Predictor, SyntheticControl

DONORS, PERIODS, START = 40, 40, 31


def make_panel(seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = DONORS + 1
    factors = rng.normal(size=(PERIODS, 3)).cumsum(axis=0) * 0.3 + np.arange(PERIODS)[:, None] * 0.05
    loadings = rng.uniform(0.2, 1.8, size=(n, 3))
    loadings[0] = 0.45 * loadings[1] + 0.35 * loadings[2] + 0.2 * loadings[3]  # treated inside the hull
    y = 5 + loadings @ factors.T + rng.normal(0, 0.05, (n, PERIODS))
    y[0, START - 1:] += 1.0
    covs = loadings @ rng.normal(size=(3, 3)) + rng.normal(0, 0.02, (n, 3))
    rows = []
    for u in range(n):
        for t in range(PERIODS):
            rows.append((f"u{u:02d}", t + 1, y[u, t], *covs[u]))
    return pd.DataFrame(rows, columns=["unit", "time", "y", "x1", "x2", "x3"])


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def peak_mib(fn: Callable[[], Any]) -> float:
    tracemalloc.start()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20


PRE = range(1, START)


def run_knowdo(df: pd.DataFrame, placebo: bool) -> SyntheticControl:
    predictors = [Predictor(c, tuple(PRE)) for c in ("x1", "x2", "x3")]
    predictors += [Predictor("y", tuple(w)) for w in (range(1, 11), range(11, 21), range(21, START))]
    return SyntheticControl(unit="unit", time="time", outcome="y", treated_unit="u00", treatment_time=START,
                            predictors=predictors, placebo=placebo, leave_one_out=False).fit(df)


def pysyncon_dataprep(df: pd.DataFrame) -> Dataprep:
    return Dataprep(
        foo=df, predictors=["x1", "x2", "x3"], predictors_op="mean", time_predictors_prior=PRE,
        special_predictors=[("y", range(1, 11), "mean"), ("y", range(11, 21), "mean"), ("y", range(21, START), "mean")],
        dependent="y", unit_variable="unit", time_variable="time", treatment_identifier="u00",
        controls_identifier=[f"u{u:02d}" for u in range(1, DONORS + 1)], time_optimize_ssr=PRE,
    )


def run_pysyncon(df: pd.DataFrame, placebo: bool) -> tuple[Synth, PlaceboTest | None]:
    dataprep = pysyncon_dataprep(df)
    synth = Synth()
    synth.fit(dataprep=dataprep, optim_method="Nelder-Mead", optim_initial="equal")
    test = None
    if placebo:
        test = PlaceboTest()
        test.fit(dataprep=dataprep, scm=Synth(), scm_options={"optim_method": "Nelder-Mead", "optim_initial": "equal"})
    return synth, test


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--placebo", action="store_true")
    parser.add_argument("--memory", action="store_true", help="also trace peak memory (slow)")
    args = parser.parse_args()
    df = make_panel(args.seed)

    ours, t_ours = timed(lambda: run_knowdo(df, args.placebo))
    (theirs, _), t_theirs = timed(lambda: run_pysyncon(df, args.placebo))

    w_ours = ours.result_.details["weights"].set_index("unit")["weight"]
    w_theirs = theirs.weights(round=12).reindex(w_ours.index)
    post = range(START, PERIODS + 1)
    att_theirs = float(theirs.att(time_period=post)["att"])
    att_ours = ours.result_.estimate
    pre_ours = ours.result_.diagnostics["fit_window_mspe"]
    pre_theirs = float(theirs.mspe())
    same_solution = float((w_ours - w_theirs).abs().max()) < 0.01 and abs(att_ours - att_theirs) < 0.01
    assert same_solution or pre_ours <= pre_theirs * (1 + 1e-6), (
        f"results differ: max weight gap {(w_ours - w_theirs).abs().max():.4f}, ATT {att_ours:.4f} vs "
        f"{att_theirs:.4f}, pre-MSPE {pre_ours:.6g} vs {pre_theirs:.6g}"
    )

    # Same V in both: the inner (donor-weight) problem. The treated unit lies inside the donors' convex
    # hull here, so many weight vectors fit its predictors (almost) exactly and the weights need not be
    # equal; the inner objective must be: knowdo's value no worse than pysyncon's.
    v = ours.result_.details["predictor_weights"]["v"].to_numpy()
    dataprep = pysyncon_dataprep(df)
    fixed = Synth()
    fixed.fit(dataprep=dataprep, custom_V=v)
    X0, X1 = dataprep.make_covariate_mats()
    X = pd.concat([X0, X1], axis=1)
    X = X.divide(X.std(axis=1), axis=0)
    x0, x1 = X.drop(columns=X1.name).to_numpy(), X[X1.name].to_numpy()

    def inner_loss(w: pd.Series) -> float:
        r = x1 - x0 @ w.reindex(X0.columns).to_numpy()
        return float(r @ (v * r))

    inner_ours, inner_theirs = inner_loss(w_ours), inner_loss(fixed.weights(round=12))
    assert inner_ours <= inner_theirs + 1e-9, f"inner loss at the same V: {inner_ours:.3e} vs {inner_theirs:.3e}"

    print(f"machine: {platform.processor() or platform.machine()}, nproc={os.cpu_count()}, python "
          f"{platform.python_version()}")
    print(f"problem: {DONORS} donors x {PERIODS} periods, 6 predictors, nested V; placebo={args.placebo}")
    print(f"inner problem at knowdo's V: weighted predictor loss knowdo {inner_ours:.3e}, pysyncon {inner_theirs:.3e}")
    print(f"nested V: max |weight diff| {(w_ours - w_theirs).abs().max():.2e}; ATT knowdo {att_ours:.5f}, "
          f"pysyncon {att_theirs:.5f}; pre-MSPE knowdo {pre_ours:.6g}, pysyncon {pre_theirs:.6g}")
    print(f"{'tool':<10}{'wall s':>10}")
    print(f"{'knowdo':<10}{t_ours:>10.3f}")
    print(f"{'pysyncon':<10}{t_theirs:>10.3f}")
    print(f"ratio pysyncon/knowdo: time {t_theirs / t_ours:.1f}x")
    if args.memory:
        m_ours = peak_mib(lambda: run_knowdo(df, args.placebo))
        m_theirs = peak_mib(lambda: run_pysyncon(df, args.placebo))
        print(f"peak traced memory: knowdo {m_ours:.2f} MiB, pysyncon {m_theirs:.2f} MiB "
              f"(ratio {m_theirs / max(m_ours, 1e-9):.1f}x)")


if __name__ == "__main__":
    main()
