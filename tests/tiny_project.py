"""A six-person project small enough to compute every panel figure by hand.

Window 2024-01-01 .. 2024-06-30; district D1 with clinics C1 (urban, rolled
out 2024-01-01) and C2 (rural, never rolled out); one equity dimension (sex).

People (PHQ-9 at screen -> what happened):
  P1 female, C1, screened 2024-01-10, 15 -> 6 sessions from 01-15, follow-up 4 on 03-20
     (responded: 4 <= 7.5; remitted: 4 < 5; adequate: 6 sessions)
  P2 male,   C1, screened 2024-01-20, 12 -> 2 sessions from 01-25, follow-up 8 on 03-01
     (not responded: 8 > 6; not remitted)
  P3 female, C1, screened 2024-02-05,  6 -> negative
  P4 female, C2, screened 2024-01-15, 20 -> no sessions
  P5 male,   C2, screened 2024-02-10, 11 -> one session on 06-20, more than 90 days later (not started)
  P6 female, C1, screened 2024-01-10,  3 -> negative
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

CONFIG = """
[project]
name = "Tiny"
start = 2024-01-01
end = 2024-06-30

[disclosure]
threshold = 11

[outcomes]
adequate_sessions = 6

[equity.sex]
category = "Gender/sex"
ordered = false
levels = ["female", "male"]
"""

ITEMS_FOR = {  # nine PHQ-9 items summing to the total
    15: [2, 2, 2, 2, 2, 2, 1, 1, 1],
    12: [2, 2, 1, 1, 1, 1, 1, 2, 1],
    6: [1, 1, 1, 1, 1, 1, 0, 0, 0],
    20: [3, 3, 2, 2, 2, 2, 2, 2, 2],
    11: [2, 1, 1, 1, 1, 1, 1, 2, 1],
    3: [1, 1, 1, 0, 0, 0, 0, 0, 0],
    4: [1, 1, 1, 1, 0, 0, 0, 0, 0],
    8: [1, 1, 1, 1, 1, 1, 1, 1, 0],
}


def tables() -> dict[str, pd.DataFrame]:
    sites = pd.DataFrame(
        {
            "site_id": ["D1", "D1-C1", "D1-C2"],
            "name": ["District 1", "Clinic 1", "Clinic 2"],
            "parent_id": ["", "D1", "D1"],
            "level": ["district", "facility", "facility"],
            "urbanicity": ["", "urban", "rural"],
            "catchment_population": ["", "1000", "800"],
        }
    )
    persons = pd.DataFrame(
        {
            "person_id": ["P1", "P2", "P3", "P4", "P5", "P6"],
            "home_site_id": ["D1-C1", "D1-C1", "D1-C1", "D1-C2", "D1-C2", "D1-C1"],
            "birth_year": ["1980", "1975", "1990", "1960", "2000", "1985"],
            "sex": ["female", "male", "female", "female", "male", "female"],
        }
    )
    providers = pd.DataFrame(
        {
            "provider_id": ["LW1", "N1"],
            "site_id": ["D1-C1", "D1-C1"],
            "cadre": ["lay_worker", "nurse"],
            "trained_date": ["2024-01-02", ""],
            "left_date": ["", ""],
        }
    )
    enc: list[dict[str, str]] = []
    meas: list[dict[str, str]] = []

    def encounter(eid: str, pid: str, site: str, date: str, kind: str, fidelity: str = "", n: str = "") -> None:
        enc.append(
            {
                "encounter_id": eid, "person_id": pid, "site_id": site, "date": date, "type": kind,
                "provider_type": "lay_worker" if kind == "session" else "nurse",
                "provider_id": "LW1" if kind == "session" else "",
                "intervention": "PST" if kind == "session" else "",
                "session_number": n, "fidelity": fidelity,
            }
        )

    def phq9(mid: str, pid: str, site: str, eid: str, date: str, total: int) -> None:
        row = {"measure_id": mid, "person_id": pid, "provider_id": "", "site_id": site, "encounter_id": eid,
               "date": date, "instrument": "PHQ-9", "total": str(total)}
        row.update({f"item_{k + 1}": str(v) for k, v in enumerate(ITEMS_FOR[total])})
        meas.append(row)

    screens = [("P1", "D1-C1", "2024-01-10", 15), ("P2", "D1-C1", "2024-01-20", 12), ("P3", "D1-C1", "2024-02-05", 6),
               ("P4", "D1-C2", "2024-01-15", 20), ("P5", "D1-C2", "2024-02-10", 11), ("P6", "D1-C1", "2024-01-10", 3)]
    for pid, site, date, total in screens:
        encounter(f"S-{pid}", pid, site, date, "screen")
        phq9(f"M-S-{pid}", pid, site, f"S-{pid}", date, total)
    p1_sessions = ["2024-01-15", "2024-01-22", "2024-01-29", "2024-02-05", "2024-02-12", "2024-02-19"]
    for k, date in enumerate(p1_sessions, start=1):
        encounter(f"T-P1-{k}", "P1", "D1-C1", date, "session", fidelity="0.8", n=str(k))
    for k, date in enumerate(["2024-01-25", "2024-02-01"], start=1):
        encounter(f"T-P2-{k}", "P2", "D1-C1", date, "session", fidelity="0.5", n=str(k))
    encounter("T-P5-1", "P5", "D1-C2", "2024-06-20", "session", fidelity="", n="1")
    encounter("F-P1", "P1", "D1-C1", "2024-03-20", "follow-up")
    phq9("M-F-P1", "P1", "D1-C1", "F-P1", "2024-03-20", 4)
    encounter("F-P2", "P2", "D1-C1", "2024-03-01", "follow-up")
    phq9("M-F-P2", "P2", "D1-C1", "F-P2", "2024-03-01", 8)
    encounters = pd.DataFrame(enc)
    measures = pd.DataFrame(meas)
    for k in range(10, 13):
        measures[f"item_{k}"] = ""
    rollout = pd.DataFrame(
        {
            "site_id": ["D1-C1", "D1-C1"],
            "kind": ["intervention", "strategy"],
            "name": ["Problem-solving therapy", "Conduct ongoing training"],
            "start": ["2024-01-01", "2024-01-02"],
            "end": ["2024-03-31", "2024-01-05"],
        }
    )
    pop_rows = []
    for month in range(1, 7):
        period = f"2024-{month:02d}-01"
        for site, cells in {
            "D1-C1": [("all", "all", 1000, 0.15), ("sex", "female", 520, 0.18), ("sex", "male", 480, 0.12)],
            "D1-C2": [("all", "all", 800, 0.15), ("sex", "female", 400, 0.20), ("sex", "male", 400, 0.10)],
        }.items():
            for dim, stratum, pop, prev in cells:
                pop_rows.append({"site_id": site, "period": period, "dimension": dim, "stratum": stratum,
                                 "population": str(pop), "prevalence": str(prev)})
    population = pd.DataFrame(pop_rows)
    costs = pd.DataFrame(
        {
            "site_id": ["D1-C1", "D1-C1", "D1-C1"],
            "period": ["2024-01-01", "2024-01-01", "2024-02-01"],
            "item": ["training", "stipends", "stipends"],
            "category": ["implementation", "delivery", "delivery"],
            "amount": ["500", "120.5", "100"],
            "currency": ["USD", "USD", "USD"],
        }
    )
    return {"sites": sites, "persons": persons, "providers": providers, "encounters": encounters,
            "measures": measures, "rollout": rollout, "population": population, "costs": costs}


def write(directory: Path, frames: dict[str, pd.DataFrame] | None = None, *, extra_config: str = "") -> Path:
    """Write the tiny project (or a variant of its frames) as CSV files plus knowdo.toml."""
    frames = tables() if frames is None else frames
    data = directory / "data"
    data.mkdir(parents=True, exist_ok=True)
    sources = []
    for name, frame in frames.items():
        frame.to_csv(data / f"{name}.csv", index=False)
        sources.append(f'[[sources]]\ntable = "{name}"\npath = "data/{name}.csv"\n')
    (directory / "knowdo.toml").write_text(CONFIG + extra_config + "\n" + "\n".join(sources), encoding="utf-8")
    return directory
