"""Benchmark: all 21 WHO HEAT measures with intervals for 50 indicators x 6 dimensions x 60 periods.

    python benchmarks/bench_equity.py [--sites 10] [--draws 100] [--peer-sets 240]

knowdo builds the HEAT table from a project panel (site x month x stratum,
50 numerator columns over one denominator, 6 equity dimensions: 2 ordered, 4
not) and computes every applicable measure of the 21 with its interval in
one vectorised pass (batched Newton fits for SII/RII, truncated-normal draws
for all sets at once).

The peer is what a user would otherwise write in Python, following the
reference package's structure: a loop over indicator x dimension x period
sets, statsmodels WLS for ACI/RCI and a statsmodels binomial GLM (HC1) for
SII/RII, the closed forms for the rest, and a loop over simulation draws for
the simulation intervals. The peer runs on a subset of sets (its time is
extrapolated per set); on that subset both engines get the same draws and
their estimates, SEs and intervals are asserted equal. Each engine runs in
its own child process so peak memory (max RSS) is its own.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

DIMENSIONS = {  # name: (ordered, levels)
    "wealth": (True, ("Q1", "Q2", "Q3", "Q4", "Q5")),
    "age": (True, ("18-29", "30-44", "45-59", "60+")),
    "sex": (False, ("female", "male")),
    "residence": (False, ("urban", "rural")),
    "language": (False, ("majority", "minority", "other")),
    "region": (False, ("north", "south", "east", "west")),
}
INDICATORS = 50
PERIODS = 60


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def synthetic_panel(sites: int, seed: int = 0) -> pd.DataFrame:
    """A knowdo-shaped panel: site x month x (dimension, stratum) with 50 numerators and one denominator."""
    rng = np.random.default_rng(seed)
    months = pd.date_range("2020-01-01", periods=PERIODS, freq="MS")
    keys = [("all", "all")] + [(d, lv) for d, (_o, levels) in DIMENSIONS.items() for lv in levels]
    n = sites * PERIODS * len(keys)
    frame = pd.DataFrame({
        "site_id": np.repeat([f"s{i}" for i in range(sites)], PERIODS * len(keys)),
        "period": np.tile(np.repeat(months, len(keys)), sites),
        "dimension": np.tile([k[0] for k in keys], sites * PERIODS),
        "stratum": np.tile([k[1] for k in keys], sites * PERIODS),
    })
    den = rng.poisson(200, n).astype(float)
    frame["den"] = den
    rates = rng.uniform(0.05, 0.9, INDICATORS)
    for i, rate in enumerate(rates):
        frame[f"num_{i}"] = rng.binomial(den.astype(int), rate).astype(float)
    return frame


def specs() -> list:
    from knowdo.equity import IndicatorSpec

    return [IndicatorSpec(f"ind_{i}", f"num_{i}", "den", favourable=bool(i % 2)) for i in range(INDICATORS)]


def dimensions() -> list:
    from knowdo.equity import Dimension

    return [Dimension(name, "Other", ordered, levels) for name, (ordered, levels) in DIMENSIONS.items()]


def run_knowdo(sites: int, draws: int, out: Path) -> dict[str, float]:
    from knowdo.equity import heat_measures, heat_table_from_panel

    panel = synthetic_panel(sites)
    start = time.perf_counter()
    table = heat_table_from_panel(panel, dimensions(), specs(), period="month")
    built = time.perf_counter()
    result = heat_measures(table.drop(columns=["numerator", "denominator"]), draws=draws)
    done = time.perf_counter()
    tidy = result.tidy()
    table.to_parquet(out.with_suffix(".table.parquet"))
    tidy.to_parquet(out)
    sets = tidy[["date", "indicator_abbr", "dimension"]].drop_duplicates().shape[0]
    return {"seconds_table": built - start, "seconds_measures": done - built, "seconds": done - start,
            "sets": sets, "measures": len(tidy), "peak_mb": _peak_mb()}


# --------------------------------------------------------------------------- the peer: a loop per set, per draw
def _peer_set(g: pd.DataFrame, draws_of: np.ndarray) -> dict[str, tuple[float, float, float, float]]:
    import statsmodels.api as sm
    from scipy import stats
    from scipy.special import expit

    z = stats.norm.ppf(0.975)
    ordered = bool(g["ordered_dimension"].iloc[0])
    fav = bool(g["favourable_indicator"].iloc[0])
    scale = float(g["indicator_scale"].iloc[0])
    g = g.sort_values("subgroup_order") if ordered else g
    y, se, pop = (g[c].to_numpy(dtype=float) for c in ("estimate", "se", "population"))
    p = pop / pop.sum()
    mu = float((p * y).sum())
    out: dict[str, tuple[float, float, float, float]] = {}
    i1, i2 = ((-1, 0) if fav else (0, -1)) if ordered else (int(np.argmax(y)), int(np.argmin(y)))
    d, d_se = y[i1] - y[i2], float(np.hypot(se[i1], se[i2]))
    out["D"] = (d, d_se, d - z * d_se, d + z * d_se)
    r, r_se = y[i1] / y[i2], float(np.hypot(se[i1] / y[i1], se[i2] / y[i2]))
    out["R"] = (r, r_se, r * np.exp(-z * r_se), r * np.exp(z * r_se))
    ref = y[-1] if ordered else (y.max() if fav else y.min())
    i_ref = len(y) - 1 if ordered else int(np.argmax(y) if fav else np.argmin(y))
    par = ref - mu
    par = max(par, 0.0) if fav else min(par, 0.0)
    c = ref / scale * pop[i_ref]
    dd = pop[i_ref] - c
    a = mu / scale * pop.sum() - c
    b = pop.sum() - a - pop[i_ref]
    n = pop.sum()
    walter = np.sqrt(c * n * (a * dd * (n - c) + b * c**2) / ((a + c) ** 3 * (c + dd) ** 3))
    out["PAR"] = (par, walter * mu, par - z * walter * mu, par + z * walter * mu)
    paf = 100 * par / mu
    out["PAF"] = (paf, 100 * walter, paf - z * 100 * walter, paf + z * 100 * walter)
    if ordered:
        x = np.cumsum(p) - p / 2
        sigma2 = (p * (x - 0.5) ** 2).sum()
        wls = sm.WLS(2 * sigma2 * y, sm.add_constant(x), weights=pop).fit()
        aci, aci_se = wls.params[1], wls.bse[1]
        out["ACI"] = (aci, aci_se, aci - z * aci_se, aci + z * aci_se)
        out["RCI"] = (100 * aci / mu, 100 * aci_se / mu, 100 * (aci - z * aci_se) / mu, 100 * (aci + z * aci_se) / mu)
        glm = sm.GLM(y / scale, sm.add_constant(x), family=sm.families.Binomial(), var_weights=pop).fit(cov_type="HC0")
        cov = glm.cov_params() * len(y) / (len(y) - 2)
        a0, b0 = glm.params
        p1, p0 = expit(a0 + b0), expit(a0)
        gd = np.array([p1 * (1 - p1) - p0 * (1 - p0), p1 * (1 - p1)])
        gl = np.array([p0 - p1, 1 - p1])
        sii, sii_se = scale * (p1 - p0), scale * float(np.sqrt(gd @ cov @ gd))
        out["SII"] = (sii, sii_se, sii - z * sii_se, sii + z * sii_se)
        rii, rii_se = p1 / p0, float(np.sqrt(gl @ cov @ gl))
        out["RII"] = (rii, rii_se, rii * np.exp(-z * rii_se), rii * np.exp(z * rii_se))
        return out
    if len(y) < 3:  # complex non-ordered measures need more than two subgroups
        return out
    dev = y - mu
    bgv = (p * dev**2).sum()
    ps2 = p**2 * se**2
    second = ps2.sum() ** 2 - (ps2**2).sum() + (p**2 * (1 - p) ** 2 * se**4).sum()
    bgv_se = np.sqrt(4 * (ps2 * dev**2).sum() + 2 * second)
    out["BGV"] = (bgv, bgv_se, bgv - z * bgv_se, bgv + z * bgv_se)
    rr = y / mu
    mld = -(p * np.log(rr)).sum() * 1000
    mld_se = 1000 * np.sqrt(((p * (1 - 1 / rr) / mu) ** 2 * se**2).sum())
    out["MLD"] = (mld, mld_se, mld - z * mld_se, mld + z * mld_se)
    ti = (p * rr * np.log(rr)).sum() * 1000
    centre = (p * rr * (1 + np.log(rr))).sum()
    ti_se = 1000 * np.sqrt(((p * (1 + np.log(rr) - centre) / mu) ** 2 * se**2).sum())
    out["TI"] = (ti, ti_se, ti - z * ti_se, ti + z * ti_se)

    def measures(v: np.ndarray) -> dict[str, float]:
        m = (p * v).sum()
        best = v.max() if fav else v.min()
        bgsd = np.sqrt((p * (v - m) ** 2).sum())
        return {"BGSD": bgsd, "COV": 100 * bgsd / m, "IDISU": 100 * np.abs(v - m).mean() / m,
                "IDISW": 100 * (p * np.abs(v - m)).sum() / m, "MDBU": np.abs(v - best).mean(),
                "MDBW": (p * np.abs(v - best)).sum(), "MDMU": np.abs(v - m).mean(), "MDMW": (p * np.abs(v - m)).sum()}

    point = measures(y)
    sims: dict[str, list[float]] = {k: [] for k in point}
    for draw in draws_of:  # one draw at a time, as the reference code does
        for k, v in measures(draw).items():
            sims[k].append(v)
    for k, v in point.items():
        low, high = np.quantile(sims[k], [0.025, 0.975])
        out[k] = (v, float("nan"), float(low), float(high))
    return out


def run_peer_and_compare(sites: int, draws: int, peer_sets: int, out: Path) -> dict[str, float]:
    from knowdo.equity.heat import build_batch
    from knowdo.equity.heat_ci import percentile_interval, truncated_normal_draws, truncation_bounds
    from knowdo.equity.heat_measures import SIMULATED, simulate_measures
    from knowdo.equity.heat_table import normalise_heat_table

    table = pd.read_parquet(out.with_suffix(".table.parquet"))
    mine = pd.read_parquet(out)
    keys = ["date", "indicator_abbr", "dimension"]
    chosen = table[keys].drop_duplicates().sample(peer_sets, random_state=1)
    subset = normalise_heat_table(table.merge(chosen, on=keys).drop(columns=["numerator", "denominator"]))
    batch, sets = build_batch(subset)
    lower, upper = truncation_bounds(batch.scale)
    shared = truncated_normal_draws(np.where(batch.present, batch.est, 0.0), np.where(batch.present, batch.se, 0.0),
                                    lower[:, None], upper[:, None], draws, np.random.default_rng(99))
    start = time.perf_counter()
    peer = {}
    for i, rec in enumerate(sets.itertuples(index=False)):
        g = subset[(subset["date"] == rec.date) & (subset["indicator_abbr"] == rec.indicator_abbr)
                   & (subset["dimension"] == rec.dimension)]
        peer[(rec.date, rec.indicator_abbr, rec.dimension)] = _peer_set(g, shared[i][:, : len(g)])
    peer_seconds = time.perf_counter() - start
    # knowdo's simulation intervals on the same draws, for the equality check
    sims = simulate_measures(batch, SIMULATED, shared)
    checked = 0
    for i, rec in enumerate(sets.itertuples(index=False)):
        key = (rec.date, rec.indicator_abbr, rec.dimension)
        ours = mine[(mine["date"] == rec.date) & (mine["indicator_abbr"] == rec.indicator_abbr)
                    & (mine["dimension"] == rec.dimension)].set_index("measure")
        for code, (est, se, low, high) in peer[key].items():
            assert np.isclose(ours.loc[code, "estimate"], est, rtol=1e-6, atol=1e-9), (key, code)
            if code in SIMULATED:
                lo, hi = percentile_interval(sims[code][i : i + 1], 0.95)
                assert np.isclose(lo[0], low, rtol=1e-9) and np.isclose(hi[0], high, rtol=1e-9), (key, code)
            else:
                assert np.isclose(ours.loc[code, "std_error"], se, rtol=1e-5), (key, code)
                assert np.isclose(ours.loc[code, "conf_low"], low, rtol=1e-5), (key, code)
            checked += 1
    return {"peer_seconds_subset": peer_seconds, "peer_sets": peer_sets, "checked": checked, "peak_mb": _peak_mb()}


def _child(kind: str, args: argparse.Namespace, out: Path) -> dict[str, float]:
    cmd = [sys.executable, __file__, "--child", kind, "--sites", str(args.sites), "--draws", str(args.draws),
           "--peer-sets", str(args.peer_sets), "--out", str(out)]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, default=10)
    parser.add_argument("--draws", type=int, default=100)
    parser.add_argument("--peer-sets", type=int, default=240)
    parser.add_argument("--child", choices=["knowdo", "peer"])
    parser.add_argument("--out", type=Path, default=Path("bench_equity_measures.parquet"))
    args = parser.parse_args()
    if args.child == "knowdo":
        print(json.dumps(run_knowdo(args.sites, args.draws, args.out)))
        return
    if args.child == "peer":
        print(json.dumps(run_peer_and_compare(args.sites, args.draws, args.peer_sets, args.out)))
        return
    ours = _child("knowdo", args, args.out)
    peer = _child("peer", args, args.out)
    per_set = peer["peer_seconds_subset"] / peer["peer_sets"]
    peer_total = per_set * ours["sets"]
    machine = platform.processor() or platform.machine()
    print(f"machine: {machine}, {os.cpu_count()} CPUs; python {platform.python_version()}")
    print(f"sets (indicator x dimension x period): {ours['sets']:,}; applicable measures with intervals: "
          f"{ours['measures']:,}; simulation draws: {args.draws}")
    print(f"knowdo: table {ours['seconds_table']:.2f} s + measures {ours['seconds_measures']:.2f} s = "
          f"{ours['seconds']:.2f} s; peak RSS {ours['peak_mb']:.0f} MB")
    print(f"peer (loop per set, statsmodels, loop per draw): {peer['peer_seconds_subset']:.2f} s for "
          f"{peer['peer_sets']} sets -> {peer_total:.0f} s extrapolated to all sets; peak RSS {peer['peak_mb']:.0f} MB")
    print(f"ratio (peer / knowdo, measures only): {peer_total / ours['seconds_measures']:.0f}x; "
          f"equal results on {peer['checked']:,} measure values")
    for suffix in ("", ".table.parquet"):
        path = Path(str(args.out) + suffix) if suffix else args.out
        if suffix:
            path = args.out.with_suffix(suffix)
        path.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
