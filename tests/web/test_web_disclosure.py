"""The evidence dashboard's tables pass complementary suppression: no hidden small count can be worked out.

The example project's cascade panel is read through the API as a signed-in
member sees it. Its stratum table (started and effective coverage by each
equity dimension) sits beside the all-people table of the same panel, so the
all-people count is a published margin of each dimension. Each dimension is
rebuilt as that one-row table with its margin and audited with
:func:`knowdo.equity.audit_recoverability`; the true counts come from the
outcome tables of the same project, so a hidden count that is small (1 to 10)
must keep a feasible range holding two or more whole numbers.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
from web_support import SLUG, web_env

from knowdo.config import load_project
from knowdo.equity import TOTAL, audit_recoverability
from knowdo.outcomes import compute_outcomes
from knowdo.store import Store, read_episodes, read_panel, read_perceptions, read_providers


def table(panel: dict, caption: str) -> pd.DataFrame:
    found = [t for t in panel["tables"] if t["caption"].startswith(caption)]
    assert found, f"no table {caption!r} in {[t['caption'] for t in panel['tables']]}"
    t = found[0]
    return pd.DataFrame([[cell[0] for cell in row] for row in t["rows"]], columns=t["headers"])


def number(text: str) -> float:
    cleaned = re.sub(r"[,\s]", "", str(text))
    return float(cleaned) if re.fullmatch(r"-?\d+(\.\d+)?", cleaned) else float("nan")


def plain(text: object) -> str:
    """Labels as compared across the page and the outcome tables (the page humanises them)."""
    return str(text).strip().lower().replace("_", " ")


def column(frame: pd.DataFrame, name: str) -> str:
    matches = [c for c in frame.columns if c.lower().startswith(name)]
    assert matches, f"no {name!r} column in {list(frame.columns)}"
    return matches[0]


def true_counts(folder: Path) -> pd.DataFrame:
    project = load_project(folder)
    with Store.for_project(project) as store:
        panel, episodes, providers = read_panel(store), read_episodes(store), read_providers(store)
        sites, rollout, perceptions = store.table("sites"), store.table("rollout"), read_perceptions(store)
    return compute_outcomes(panel, episodes, providers, sites, rollout, perceptions, project).cascade.to_frame()


def test_cascade_panel_leaves_no_small_count_recoverable(tmp_path: Path) -> None:
    with web_env(tmp_path) as env:
        env.sign_in("analyst")
        response = env.client.get(f"/api/projects/{SLUG}/evidence/cascade")
        assert response.status_code == 200
        panel = response.json()
        truth = true_counts(tmp_path / SLUG)
    strata = table(panel, "Care cascade by equity stratum")
    headline = table(panel, "Care cascade: all people")
    outcome_col, numerator_col = column(strata, "outcome"), column(strata, "numerator")
    dimension_col, stratum_col = column(strata, "equity dimension"), column(strata, "stratum")
    head_outcome, head_numerator, head_measure = (column(headline, "outcome"), column(headline, "numerator"),
                                                  column(headline, "measure"))
    truth = truth[(truth["group_type"] == "overall") & (truth["measure"] == "cumulative")]
    audited = hidden_small = 0
    for (outcome, dimension), rows in strata.groupby([outcome_col, dimension_col]):
        measure = rows[column(strata, "measure")].iloc[0]  # the page's words for "cumulative"
        total = headline[(headline[head_outcome] == outcome) & (headline[head_measure] == measure)]
        assert len(total) == 1, (outcome, measure, headline)
        released = pd.DataFrame({
            "place": "programme", "stratum": [*rows[stratum_col].map(plain), TOTAL],
            "n": [*rows[numerator_col].map(number), number(total[head_numerator].iloc[0])],
        })
        published = pd.concat([released, released.assign(place=TOTAL)], ignore_index=True)
        named = truth["stratum_dimension"].map(plain)
        true = truth[(truth["outcome"].map(plain) == plain(outcome)) & named.isin([plain(dimension), "all"])]
        true = pd.DataFrame({"stratum": np.where(true["stratum_dimension"] == "all", TOTAL,
                                                 true["stratum"].map(plain)),
                             "true": true["numerator"].to_numpy(dtype=float)})
        if not np.isclose(true.loc[true["stratum"] != TOTAL, "true"].sum(), true.loc[true["stratum"] == TOTAL,
                                                                                     "true"].sum()):
            continue  # strata that do not add up to the total give the reader no equation to use
        merged = published[published["place"] != TOTAL].merge(true, on="stratum")
        small = (merged["true"] > 0) & (merged["true"] < panel["threshold"])
        assert not (small & merged["n"].notna()).any(), "a small count is shown"
        hidden_small += int(small.sum())
        audit = audit_recoverability(published, rows="place", columns="stratum", value="n")
        cells = audit.cells.merge(true, on="stratum")
        exposed = cells[cells["determined"] & (cells["true"] > 0) & (cells["true"] < panel["threshold"])]
        assert exposed.empty, (outcome, dimension, exposed)
        audited += 1
    assert audited >= 6, "the audit should cover several outcome x dimension tables"
    assert hidden_small >= 1, "the example should hold at least one small stratum count to protect"
