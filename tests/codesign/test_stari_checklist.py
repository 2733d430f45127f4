"""StaRI: 27 items (Pinnock et al., BMJ 2017;356:i6795), filled where knowdo knows, flagged where the team writes."""

from __future__ import annotations

import json
from html.parser import HTMLParser

import pandas as pd
import pytest

from knowdo.codesign.stari import stari_checklist, stari_items
from knowdo.config import Project, Stratum
from knowdo.errors import ParameterError
from knowdo.examples import generate_programme
from knowdo.strategies.assessment import assess_barriers


def test_the_27_items_and_their_strands() -> None:
    items = stari_items()
    assert [i.number for i in items] == list(range(1, 28))
    # dual-strand items carry an intervention prompt (e.g. 4 rationale, 9 description, 13 economic, 26 implications)
    assert {i.number for i in items if i.dual} == {4, 8, 9, 11, 13, 18, 20, 22, 26}
    empty = stari_checklist()
    assert empty.counts()["filled"] == 0 and empty.counts()["team"] == 26


def test_filled_from_project_and_tables(tmp_path) -> None:  # type: ignore[no-untyped-def]
    programme = generate_programme(seed=0, persons=4_000)
    project = Project(root=tmp_path, name="Lay-worker PST in 8 districts", start=pd.Timestamp("2023-01-01").date(),
                      end=pd.Timestamp("2025-12-31").date(), sources=(),
                      strata=(Stratum("sex", "Gender/sex", False, ("female", "male")),))
    ratings = pd.DataFrame({"member": ["a", "b"], "group": ["researcher", "community_partner"],
                            "construct": ["Available Resources", "Available Resources"], "valence": [-2, -1]})
    checklist = stari_checklist(project=project, tables=programme.tables, design="staggered rollout in three waves",
                                hybrid_type=2, assessment=assess_barriers(ratings),
                                answers={27: "Approved by the ethics board.", 4: {"intervention": "PST trials."}})
    items = {i.number: i for i in checklist.items}
    assert items[6].status == "filled" and "staggered rollout" in items[6].strategy
    assert "36 site(s) started the intervention" in items[6].strategy
    assert items[8].status == "filled" and "48 facilities in 8 districts" in items[8].strategy
    assert "PHQ-9" in items[8].intervention
    assert items[16].status == "filled" and "sex" in items[16].strategy
    assert items[13].status == "filled" and "facilitation" in items[13].strategy and "USD" in items[13].strategy
    assert items[20].status == "filled"
    assert items[5].status == "draft" and "Co-primary" in items[5].strategy
    assert items[7].status == "draft" and "Available Resources" in items[7].strategy
    assert items[27].status == "answered" and items[4].intervention == "PST trials."
    assert items[25].status == "team"
    assert checklist.title.endswith("Lay-worker PST in 8 districts")


def test_outputs() -> None:
    checklist = stari_checklist(answers={1: "A <b>bold</b> title"})
    md = checklist.to_markdown()
    assert md.count("### ") == 27 and "TO WRITE (team)" in md
    page = checklist.to_html()
    assert "&lt;b&gt;bold&lt;/b&gt;" in page  # escaped
    parser = HTMLParser()
    parser.feed(page)
    payload = json.loads(json.dumps(checklist.to_dict()))
    assert len(payload["items"]) == 27 and payload["counts"]["answered"] == 1
    assert checklist.plot().to_dict()


def test_bad_arguments() -> None:
    with pytest.raises(ParameterError, match="hybrid_type"):
        stari_checklist(hybrid_type=4)
    with pytest.raises(ParameterError, match="1-27"):
        stari_checklist(answers={28: "x"})
