"""Benchmark: knowdo's absorbed fixed-effects fits (strategy evidence) against statsmodels' dummy-variable fits.

The strategy associations need two regressions with site and month fixed
effects and site-clustered errors: weighted least squares (fidelity) and a
Poisson pseudo-likelihood on counts that can be negative (reach). The peer a
user would pick is statsmodels (``WLS`` and ``GLM(Poisson)`` with a dummy
column per site and month; pyfixest's ``fepois`` refuses negative
outcomes). A simulated panel of ``sites x 36`` months with two staggered
on/off strategies is fitted by both in this one process; the script asserts
equal coefficients and CR1 errors, then prints wall time, peak memory
(resident-set growth sampled every 5 ms) and the time ratio. It also times
knowdo's default CR2 errors with Bell-McCaffrey degrees of freedom. BLAS is
pinned to one thread (set below, before numpy loads) for both tools: on a
shared machine OpenBLAS's worker threads thrash. statsmodels' Poisson IRLS
fails from its default start when outcomes are negative, so it is given
start values (the time includes computing them).

Run: ``python benchmarks/bench_strategy_evidence.py [--sites 100,400,1600]``
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
import pandas as pd
import psutil
import statsmodels.api as sm

from knowdo.strategies._fixed_effects import fit_absorbed

MONTHS = 36


def simulate(sites: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    site = np.repeat(np.arange(sites), MONTHS)
    month = np.tile(np.arange(MONTHS), sites)
    start = rng.integers(0, 20, sites)[site]
    event = month - start
    facil = ((rng.random(sites) < 0.5)[site] & (event >= 0) & (event < 12)).astype(float)
    audit = ((rng.random(sites) < 0.5)[site] & (event >= 3) & (event < 18)).astype(float)
    size = np.exp(rng.normal(0, 0.3, sites))[site]  # no site with a non-positive total (no separation)
    mu = size * np.exp(2.3 + 0.18 * facil + 0.1 * audit + 0.01 * month)
    count = rng.poisson(mu) - rng.poisson(2.0, len(site))
    w = rng.integers(1, 30, len(site)).astype(float)
    noise = rng.normal(0, 0.05, sites)[site] + rng.normal(0, 0.1, len(site)) / np.sqrt(w)
    fid = 0.55 + 0.03 * facil + 0.07 * audit + noise
    return pd.DataFrame({"site": site, "month": month, "facil": facil, "audit": audit, "count": count, "w": w,
                         "fid": fid})


def measure(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    gc.collect()
    proc = psutil.Process()
    base = proc.memory_info().rss
    peak = [base]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            time.sleep(0.005)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    t0 = time.perf_counter()
    out = fn()
    wall = time.perf_counter() - t0
    done.set()
    thread.join()
    return out, wall, (peak[0] - base) / 2**20


def design(d: pd.DataFrame) -> np.ndarray:
    site = pd.get_dummies(d["site"], dtype=float).to_numpy()
    month = pd.get_dummies(d["month"], dtype=float).to_numpy()[:, 1:]
    return np.column_stack([d[["facil", "audit"]].to_numpy(), site, month])


def peer_fit(d: pd.DataFrame, family: str, y: str) -> Any:
    dense = design(d)
    endog = d[y].to_numpy(float)
    if family == "gaussian":
        return sm.WLS(endog, dense, weights=d["w"]).fit(cov_type="cluster", cov_kwds={"groups": d["site"]})
    # statsmodels' default start (mu = (y + mean) / 2) is negative where the excess counts are, and its
    # IRLS then fails; start it from least squares on log(max(y, 0.5)), as a user would have to.
    start = np.linalg.lstsq(dense, np.log(np.maximum(endog, 0.5)), rcond=None)[0]
    model = sm.GLM(endog, dense, family=sm.families.Poisson())
    return model.fit(start_params=start, cov_type="cluster", cov_kwds={"groups": d["site"]})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sites", default="100,400,1600")
    args = parser.parse_args()
    print(f"python {platform.python_version()}, cpus {os.cpu_count()}, load {os.getloadavg()[0]:.1f}")
    rows = []
    for sites in (int(s) for s in args.sites.split(",")):
        d = simulate(sites)
        fe = [d["site"].to_numpy(), d["month"].to_numpy()]
        x = d[["facil", "audit"]]
        for family, y, weights in (("gaussian", "fid", d["w"]), ("poisson", "count", None)):
            ours, t_ours, m_ours = measure(partial(fit_absorbed, d[y], x, fe, d["site"], weights=weights,
                                                   family=family, vcov="CR1"))
            _, t_cr2, m_cr2 = measure(partial(fit_absorbed, d[y], x, fe, d["site"], weights=weights, family=family,
                                              vcov="CR2"))
            ref, t_peer, m_peer = measure(partial(peer_fit, d, family, y))
            assert ours.n_dropped == 0
            np.testing.assert_allclose(ours.coef, ref.params[:2], rtol=1e-6)
            np.testing.assert_allclose(ours.std_error, ref.bse[:2], rtol=1e-5)
            diff = float(np.max(np.abs(ours.coef - ref.params[:2])))
            rows.append({"sites": sites, "rows": len(d), "fit": "WLS" if family == "gaussian" else "Poisson PML",
                         "knowdo CR1 (s)": t_ours, "knowdo CR2+BM (s)": t_cr2, "statsmodels (s)": t_peer,
                         "ratio peer/knowdo": t_peer / t_ours, "knowdo MB": m_ours, "knowdo CR2 MB": m_cr2,
                         "statsmodels MB": m_peer, "max |coef diff|": diff})
            print(rows[-1], flush=True)
    print(pd.DataFrame(rows).to_markdown(index=False, floatfmt=".3g"))


if __name__ == "__main__":
    main()
