"""Benchmark: knowdo's Callaway & Sant'Anna against csdid and differences.

A simulated staggered panel (units x 20 periods, 4 cohorts + never treated,
one time-invariant covariate that shifts both the cohort and the trend),
doubly robust ATT(g,t) against never-treated units, with and without a
999-draw multiplier bootstrap. All three run in this one process on the same
data; the script asserts that the ATT(g,t) agree, then prints wall time, CPU
time of this process (on a shared machine the CPU time is the steadier
measure: it does not count time spent waiting for a core), peak memory
(resident-set growth over the run, sampled every 5 ms) and the time ratios.
Each tool runs ``--repeat`` times and the fastest run is reported. BLAS is
pinned to one thread (``OPENBLAS_NUM_THREADS=1``, set below before numpy
loads) for every tool alike: on a shared machine OpenBLAS's worker threads
thrash and make timings meaningless. It also times knowdo alone from 5,000 to
50,000 units.

Run: ``python benchmarks/bench_did.py [--peers-at 5000,50000] [--growth ...] [--repeat 3]``
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import resource
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
import pandas as pd
import psutil

from knowdo.designs.did import CallawaySantAnna

PERIODS = 20
COHORTS = (5, 9, 13, 17)
N_BOOT = 999


def simulate(units: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=units)
    # Cohort depends on x, so covariate adjustment matters: higher x -> earlier start.
    score = x + rng.logistic(size=units)
    cuts = np.quantile(score, [0.2, 0.4, 0.6, 0.8])
    cohort_of = np.array([0, *COHORTS[::-1]])
    g = cohort_of[np.searchsorted(cuts, score)]
    t = np.tile(np.arange(1, PERIODS + 1), units)
    gg = np.repeat(g, PERIODS)
    xx = np.repeat(x, PERIODS)
    post = (gg > 0) & (t >= gg)
    y = (
        np.repeat(rng.normal(size=units), PERIODS)
        + 0.05 * t
        + 0.1 * xx * t
        + post * (1.0 + 0.05 * (t - gg))
        + rng.normal(size=units * PERIODS)
    )
    return pd.DataFrame({"id": np.repeat(np.arange(units), PERIODS), "t": t, "g": gg, "x": xx, "y": y})


class PeakRSS:
    """Peak resident-set growth over a block, sampled in a thread."""

    def __init__(self) -> None:
        self.proc = psutil.Process(os.getpid())
        self.peak = 0
        self._stop = threading.Event()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.005)

    def __enter__(self) -> PeakRSS:
        gc.collect()
        self.base = self.proc.memory_info().rss
        self.peak = self.base
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)

    @property
    def growth_mb(self) -> float:
        return (self.peak - self.base) / 2**20


def measure(fn: Callable[[], Any], repeat: int = 1) -> tuple[Any, float, float, float]:
    """Result, best wall time, best CPU time and largest peak-RSS growth over ``repeat`` runs."""
    # No tracemalloc: it slows Python-heavy code far more than numpy-heavy code and would skew the ratios.
    walls, cpus, mems = [], [], []
    for _ in range(repeat):
        with PeakRSS() as rss:
            start, cpu = time.perf_counter(), time.process_time()
            out = fn()
            cpus.append(time.process_time() - cpu)
            walls.append(time.perf_counter() - start)
        mems.append(rss.growth_mb)
    return out, min(walls), min(cpus), max(mems)


def run_knowdo(df: pd.DataFrame, boot: bool) -> pd.DataFrame:
    est = CallawaySantAnna(
        outcome="y", unit="id", time="t", cohort="g", covariates=["x"], est_method="dr",
        bootstrap=boot, n_boot=N_BOOT, seed=1,
    ).fit(df)
    return est.result_.details["att_gt"][["group", "time", "att", "se"]]


def run_csdid(df: pd.DataFrame, boot: bool) -> pd.DataFrame:
    from csdid.att_gt import ATTgt

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = ATTgt(yname="y", tname="t", idname="id", gname="g", data=df, control_group=["nevertreated"],
                    xformla="y~x", biters=N_BOOT).fit(est_method="dr", bstrap=boot)
    r = fit.results
    return pd.DataFrame({"group": r["group"], "time": r["year"], "att": r["att"], "se": r["se"]})


def run_differences(df: pd.DataFrame, boot: bool) -> pd.DataFrame:
    from differences import ATTgt

    data = df.assign(g=df["g"].where(df["g"] > 0)).set_index(["id", "t"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = ATTgt(data=data, cohort_column="g")
        model.fit(
            "y ~ x", est_method="dr", control_group="never_treated",
            boot_iterations=N_BOOT if boot else 0, random_state=1, progress_bar=False,
        )
        res = model.results()
    flat = res.copy()
    flat.columns = ["_".join(str(p) for p in c if str(p)) if isinstance(c, tuple) else str(c) for c in flat.columns]
    flat = flat.reset_index()
    att_col = next(c for c in flat.columns if c.endswith("ATT"))
    se_col = next(c for c in flat.columns if c.endswith("std_error"))
    return pd.DataFrame({"group": flat["cohort"].astype(float), "time": flat["time"].astype(float),
                         "att": flat[att_col], "se": flat[se_col]})


def compare(ours: pd.DataFrame, theirs: pd.DataFrame, name: str) -> float:
    merged = ours.merge(theirs, on=["group", "time"], suffixes=("", "_peer"))
    assert len(merged) == len(ours), f"{name}: {len(merged)} of {len(ours)} ATT(g,t) cells matched"
    diff = float(np.max(np.abs(merged["att"] - merged["att_peer"])))
    assert diff < 1e-6, f"{name}: ATT(g,t) differ by {diff}"
    return diff


TOOLS: dict[str, Callable[[pd.DataFrame, bool], pd.DataFrame]] = {
    "knowdo": run_knowdo, "csdid": run_csdid, "differences": run_differences,
}


def fresh_peak(tool: str, units: int, boot: bool) -> None:
    """In a fresh process: peak resident set above the level before the call (no earlier runs to reuse memory)."""
    df = simulate(units)
    gc.collect()
    before = psutil.Process(os.getpid()).memory_info().rss
    TOOLS[tool](df, boot)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kB on Linux
    print(f"{units} | {boot} | {tool} | {(peak - before) / 2**20:.0f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--units", type=int, default=50_000)
    parser.add_argument("--peers-at", default="5000,50000")
    parser.add_argument("--growth", default="5000,10000,20000,50000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--fresh-memory", action="store_true",
                        help="only measure each tool's peak memory at --units, each run in its own process")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--boot", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        fresh_peak(args.one, args.units, args.boot)
        return
    if args.fresh_memory:
        print("units | bootstrap | tool | peak RSS above the pre-call level, fresh process (MB)")
        for tool in TOOLS:
            for boot in (False, True):
                command = [sys.executable, __file__, "--one", tool, "--units", str(args.units)]
                subprocess.run(command + (["--boot"] if boot else []), check=True)
        return
    with open("/proc/cpuinfo") as info:
        cpu = next((line.split(":")[1].strip() for line in info if line.startswith("model name")), "?")
    print(f"# {platform.python_version()} on {os.cpu_count()} CPU(s): {cpu}")
    import csdid
    import differences

    print(f"# peers: csdid {getattr(csdid, '__version__', '0.4.3')}, differences {differences.__version__}")
    print(f"# load average at start: {os.getloadavg()}")
    run_knowdo(simulate(2_000), True)  # warm up imports and BLAS

    print("\n## knowdo time growth (DR with covariate)")
    print("units | no bootstrap: wall / CPU (s) | 999-draw bootstrap: wall / CPU (s) | peak RSS growth, boot (MB)")
    for units in (int(u) for u in args.growth.split(",")):
        df = simulate(units)
        _, t0, c0, _ = measure(lambda df=df: run_knowdo(df, False), args.repeat)
        _, t1, c1, mem = measure(lambda df=df: run_knowdo(df, True), args.repeat)
        print(f"{units} | {t0:.3f} / {c0:.3f} | {t1:.3f} / {c1:.3f} | {mem:.0f}", flush=True)

    print("\n## against peers (same data, same process)")
    print("units | bootstrap | tool | wall (s) | CPU (s) | peak RSS growth (MB) | max abs ATT(g,t) diff "
          "| ratio wall | ratio CPU")
    for units in (int(u) for u in args.peers_at.split(",")):
        df = simulate(units)
        for boot in (False, True):
            ours, t_ours, c_ours, m_ours = measure(lambda df=df, boot=boot: run_knowdo(df, boot), args.repeat)
            print(f"{units} | {boot} | knowdo | {t_ours:.3f} | {c_ours:.3f} | {m_ours:.0f} | - | 1.0 | 1.0", flush=True)
            for name, fn in (("csdid", run_csdid), ("differences", run_differences)):
                # differences takes minutes at 50,000 units: one run is enough to place it.
                reps = args.repeat if name == "csdid" else 1
                theirs, t, c, m = measure(lambda fn=fn, df=df, boot=boot: fn(df, boot), reps)
                diff = compare(ours, theirs, name)
                print(f"{units} | {boot} | {name} | {t:.3f} | {c:.3f} | {m:.0f} | {diff:.1e} | {t / t_ours:.1f}x "
                      f"| {c / c_ours:.1f}x", flush=True)
    print(f"# load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
