"""Benchmark: the analysis panel and all outcomes, knowdo (DuckDB SQL) vs straightforward pandas.

    python benchmarks/bench_panel.py --persons 7600000

The script generates the example programme at the requested size (≥ 10M
encounters at the default), writes it as Parquet, loads it into a project
store, then runs each engine in its own child process so that peak memory
(max resident set size) is measured per engine:

* knowdo: ``build_panel`` in the store, read the panel and episode table,
  ``compute_outcomes``;
* pandas: read the same Parquet files, build the same panel with
  ``pandas_panel.panel`` (merge_asof episodes, groupby per dimension), then the
  same ``compute_outcomes`` on that panel.

Both panels are written to Parquet and asserted equal before the ratios are
printed. The outcome step is shared code, so the difference is the panel.
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

import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_knowdo(directory: Path, out: Path) -> dict[str, float]:
    from knowdo.config import load_project
    from knowdo.outcomes import compute_outcomes
    from knowdo.store import Store, build_panel, read_episodes, read_panel, read_perceptions, read_providers

    project = load_project(directory)
    start = time.perf_counter()
    with Store.for_project(project) as store:
        build_panel(store, project)
        panel = read_panel(store)
        episodes = read_episodes(store)
        providers = read_providers(store)
        sites, rollout = store.table("sites"), store.table("rollout")
        perceptions = read_perceptions(store)
    compute_outcomes(panel, episodes, providers, sites, rollout, perceptions, project)
    elapsed = time.perf_counter() - start
    panel.to_parquet(out)
    return {"seconds": elapsed, "peak_mb": _peak_mb()}


def run_pandas(directory: Path, out: Path) -> dict[str, float]:
    import pandas_panel
    from knowdo.config import load_project
    from knowdo.outcomes import compute_outcomes

    project = load_project(directory)
    start = time.perf_counter()
    tables = {s.table: pd.read_parquet(s.path) for s in project.sources}
    o = project.outcomes
    dims = [s.name for s in project.strata]
    panel = pandas_panel.panel(tables, dims, str(project.start), str(project.end),
                               threshold=o.positive_threshold, adequate=o.adequate_sessions,
                               window_days=o.start_window_days, response_fraction=o.response_fraction,
                               remission_below=o.remission_below, maintenance_months=o.maintenance_months)
    episodes = pandas_panel.episodes(tables, threshold=o.positive_threshold, adequate=o.adequate_sessions,
                                     window_days=o.start_window_days, response_fraction=o.response_fraction,
                                     remission_below=o.remission_below,
                                     maintenance_months=o.maintenance_months).merge(
        tables["persons"][["person_id", *dims]], on="person_id")
    episodes["district_id"] = episodes["site_id"].map(tables["sites"].set_index("site_id")["parent_id"])
    episodes["deteriorated"] = episodes["followup_phq9"] >= episodes["baseline_phq9"] + 5
    episodes["last_contact_date"] = episodes["last_session"].fillna(episodes["screen_date"])
    enc = tables["encounters"]
    sess = enc[enc["type"] == "session"].groupby("provider_id")["date"].agg(["size", "min"])
    providers = tables["providers"].merge(sess.rename(columns={"size": "sessions_delivered",
                                                               "min": "first_session_date"}),
                                          left_on="provider_id", right_index=True, how="left")
    providers["sessions_delivered"] = providers["sessions_delivered"].fillna(0).astype(int)
    meas = tables["measures"]
    perceptions = meas[meas["instrument"].isin(["AIM", "IAM", "FIM"])]
    compute_outcomes(panel, episodes, providers, tables["sites"], tables["rollout"], perceptions, project)
    elapsed = time.perf_counter() - start
    panel.to_parquet(out)
    return {"seconds": elapsed, "peak_mb": _peak_mb()}


def prepare(directory: Path, persons: int, seed: int) -> dict[str, float]:
    from knowdo.config import load_project
    from knowdo.examples import generate_programme, write_project
    from knowdo.ingest import ValidatedData
    from knowdo.store import Store

    start = time.perf_counter()
    programme = generate_programme(seed=seed, persons=persons)
    generated = time.perf_counter()
    write_project(programme, directory, fmt="parquet")
    n_enc = len(programme.tables["encounters"])
    written = time.perf_counter()
    project = load_project(directory)
    # The generator's tables satisfy the schema by construction (tests/test_examples.py checks it), so the
    # benchmark loads them directly; validating 10M rows is a separate cost, not the one measured here.
    tables = {name: frame for name, frame in programme.tables.items() if len(frame)}
    del programme
    with Store.for_project(project) as store:
        store.load(ValidatedData(tables, ()), project)
    loaded = time.perf_counter()
    return {"encounters": n_enc, "generate_s": generated - start, "write_s": written - generated,
            "load_s": loaded - written}


def child(engine: str, directory: Path, out: Path) -> dict[str, float]:
    result = subprocess.run([sys.executable, __file__, "--engine", engine, "--dir", str(directory),
                             "--out", str(out)], check=True, capture_output=True, text=True)
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--persons", type=int, default=7_600_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dir", type=Path, default=Path("bench-panel-project"))
    parser.add_argument("--engine", choices=["knowdo", "pandas"])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--reuse", action="store_true", help="reuse an already generated and loaded project")
    args = parser.parse_args()
    if args.engine:
        runner = run_knowdo if args.engine == "knowdo" else run_pandas
        print(json.dumps(runner(args.dir, args.out)))
        return
    setup = {} if args.reuse else prepare(args.dir, args.persons, args.seed)
    print(f"setup: {setup}", flush=True)
    k = child("knowdo", args.dir, args.dir / "panel_knowdo.parquet")
    p = child("pandas", args.dir, args.dir / "panel_pandas.parquet")
    a = pd.read_parquet(args.dir / "panel_knowdo.parquet")
    b = pd.read_parquet(args.dir / "panel_pandas.parquet")
    key = ["site_id", "period", "dimension", "stratum"]
    merged = a.merge(b, on=key, suffixes=("", "_pd"))
    assert len(merged) == len(a) == len(b), "panels have different rows"
    for column in ["screened", "positive", "started", "adequate", "followed_up", "responded", "remitted",
                   "effective", "sessions", "fidelity_n"]:
        assert (merged[column].astype("int64") == merged[f"{column}_pd"].astype("int64")).all(), column
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"python {platform.python_version()}")
    print(f"rows in panel: {len(a):,}; encounters: {setup.get('encounters', 'reused')}")
    print(f"knowdo: {k['seconds']:.1f} s, peak {k['peak_mb']:.0f} MB")
    print(f"pandas: {p['seconds']:.1f} s, peak {p['peak_mb']:.0f} MB")
    print(f"speed-up: {p['seconds'] / k['seconds']:.1f}x; memory ratio (knowdo/pandas): "
          f"{k['peak_mb'] / p['peak_mb']:.2f}")


if __name__ == "__main__":
    main()
