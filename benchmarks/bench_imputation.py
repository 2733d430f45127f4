"""Benchmark: knowdo's imputation DiD against pyfixest's ``did2s`` (Gardner's two-stage estimator).

The two give the same point estimates (both impute untreated outcomes from unit and period effects fitted
on untreated observations), so this is the peer a Python user would otherwise pick. Same simulated panel
as ``bench_did.py`` (units x 20 periods, 4 cohorts + never treated), no covariates, in one process: the
overall ATT and the event-time path (``~ i(rel)`` in did2s). The script asserts equal estimates, then
prints best-of-``--repeat`` wall and CPU time, peak resident-set growth and the ratios. Standard errors
differ by design (knowdo: Borusyak, Jaravel & Spiess's Theorem 3 variance; did2s: Gardner's GMM
variance), so they are printed side by side, not asserted equal.

did2s builds dense matrices of observations x fixed effects for its variance (about 12 GB at 5,000
units), so it runs only up to ``--peer-max`` units; knowdo alone runs at the larger sizes. pyfixest
recovers the fixed effects iteratively, so its estimates are about 5e-5 away from the exact least-squares
solution; the script therefore also checks knowdo against an exact sparse direct solve (SciPy) to 1e-9,
and asserts agreement with did2s to 1e-4.

Run: ``python benchmarks/bench_imputation.py [--units 1000,2000,5000,50000] [--peer-max 2000] [--repeat 3]``
"""

from __future__ import annotations

import argparse
import os
import platform
import warnings
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
import pandas as pd
import pyfixest as pf
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from bench_did import measure, simulate
from knowdo.designs.imputation import ImputationDiD

NEVER = -1000  # did2s needs a finite relative-time code for never-treated units


def run_knowdo(df: pd.DataFrame) -> tuple[float, pd.Series, float]:
    effect = ImputationDiD(outcome="y", unit="id", time="t", cohort="g").fit(df).result_
    path = effect.path.set_index("time")["estimate"]  # type: ignore[union-attr]
    return effect.estimate, path, effect.std_error


def run_did2s(df: pd.DataFrame) -> tuple[float, pd.Series, float]:
    data = df.assign(D=((df["g"] > 0) & (df["t"] >= df["g"])).astype(int),
                     rel=np.where(df["g"] > 0, df["t"] - df["g"], NEVER))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        static = pf.did2s(data, yname="y", first_stage="~0|id+t", second_stage="~D", treatment="D", cluster="id")
        dynamic = pf.did2s(data, yname="y", first_stage="~0|id+t", second_stage=f"~i(rel, ref={NEVER})",
                           treatment="D", cluster="id")
    coef = dynamic.coef()
    post = {float(name.split("::")[1].rstrip("]").split(".")[0]): value for name, value in coef.items()}
    path = pd.Series({k: v for k, v in post.items() if k >= 0}).sort_index()
    return float(static.coef()["D"]), path, float(static.se()["D"])


def exact_att(df: pd.DataFrame) -> float:
    """Overall ATT from a sparse direct least-squares solve of the untreated-outcome model."""
    treated = ((df["g"] > 0) & (df["t"] >= df["g"])).to_numpy()
    n = len(df)
    unit = sp.csr_matrix((np.ones(n), (np.arange(n), pd.factorize(df["id"])[0])))
    period = sp.csr_matrix((np.ones(n), (np.arange(n), pd.factorize(df["t"], sort=True)[0])))[:, 1:]
    z = sp.hstack([unit, period]).tocsr()
    y = df["y"].to_numpy()
    coef = spla.spsolve((z[~treated].T @ z[~treated]).tocsc(), z[~treated].T @ y[~treated])
    return float((y[treated] - z[treated] @ coef).mean())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--units", default="1000,2000,5000,50000")
    parser.add_argument("--peer-max", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    cpu_name = platform.processor() or platform.machine()
    print(f"machine: {cpu_name}, {os.cpu_count()} cores; python {platform.python_version()}")
    print("units | tool | wall s | cpu s | peak MB | ATT | SE")
    for units in (int(u) for u in args.units.split(",")):
        df = simulate(units)
        results: dict[str, Any] = {}
        tools = [("knowdo", run_knowdo)] + ([("did2s", run_did2s)] if units <= args.peer_max else [])
        for name, fn in tools:
            out, wall, cpu, mem = measure(lambda fn=fn, df=df: fn(df), args.repeat)
            results[name] = (out, wall, cpu)
            print(f"{units} | {name} | {wall:.3f} | {cpu:.3f} | {mem:.0f} | {out[0]:.6f} | {out[2]:.6f}", flush=True)
        if "did2s" not in results:
            continue
        (ours, path, _), wall, cpu = results["knowdo"]
        exact_gap = abs(ours - exact_att(df))
        assert exact_gap < 1e-9, f"knowdo differs from the exact solve by {exact_gap}"
        (theirs, peer_path, _), peer_wall, peer_cpu = results["did2s"]
        assert abs(ours - theirs) < 1e-4, f"overall ATT differs: {ours} vs {theirs}"
        gap = float(np.max(np.abs(path.reindex(peer_path.index).to_numpy() - peer_path.to_numpy())))
        assert gap < 1e-4, f"event-time path differs by {gap}"
        print(f"{units} | ratio did2s/knowdo | wall {peer_wall / wall:.1f}x | cpu {peer_cpu / cpu:.1f}x | "
              f"max path difference {gap:.1e} | knowdo vs exact solve {exact_gap:.1e}", flush=True)


if __name__ == "__main__":
    main()
