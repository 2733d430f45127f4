"""Logic models: validation, gaps, paths, a draft from the rollout table, and evidence on each link."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from knowdo.codesign.logic_model import Link, Node, logic_model, logic_model_from_rollout
from knowdo.errors import ParameterError
from knowdo.examples import generate_programme
from knowdo.strategies.evidence import strategy_evidence
from knowdo.strategies.specification import specification_set


def small() -> list[Node]:
    return [
        Node("money", "inputs", "Funding", measure="implementation_cost"),
        Node("fac", "strategies", "External facilitation", strategy="facilitation"),
        Node("mech", "mechanisms", "Problem solving with the clinic team", constructs=("Teaming",)),
        Node("adopt", "implementation_outcomes", "Lay workers deliver PST", measure="adoption"),
        Node("start", "service_outcomes", "People start PST", measure="started"),
        Node("better", "client_outcomes", "Depression improves"),
    ]


def test_validation_and_gaps() -> None:
    model = logic_model(small(), [Link("money", "fac"), Link("fac", "mech"), Link("mech", "adopt"),
                                  Link("adopt", "start"), Link("start", "better")])
    assert model.node("fac").strategy == "Facilitation" and model.node("mech").constructs == ("teaming",)
    gaps = model.gaps()
    assert gaps[["node", "issue"]].values.tolist() == [["better", "outcome without a measure"]]
    paths = model.paths().set_index("outcome_node")
    assert paths.loc["adopt", "via"] == "through mechanisms or other outcomes"
    assert set(paths.index) == {"adopt", "start"}
    assert "flowchart LR" in model.to_mermaid() and "n_fac --> n_mech" in model.to_mermaid()
    assert json.loads(json.dumps(model.to_dict()))["nodes"][1]["strategy"] == "Facilitation"
    assert model.plot().to_dict()


@pytest.mark.parametrize(
    ("nodes", "links", "message"),
    [
        (small(), [Link("adopt", "fac")], "runs backwards"),
        (small(), [Link("fac", "nowhere")], "unknown node"),
        ([*small(), Node("fac", "inputs", "again")], [], "used twice"),
        ([Node("x", "outcomes", "?")], [], "stage"),  # type: ignore[arg-type]
        ([Node("x", "service_outcomes", "?", measure="happiness")], [], "not a knowdo measure"),
        ([Node("x", "mechanisms", "?", strategy="Facilitation")], [], "names a strategy"),
    ],
)
def test_invalid_models_are_refused(nodes: list[Node], links: list[Link], message: str) -> None:
    with pytest.raises(ParameterError, match=message):
        logic_model(nodes, links)


def test_tables_are_accepted() -> None:
    nodes = pd.DataFrame({"id": ["s", "o"], "stage": ["strategies", "implementation_outcomes"],
                          "label": ["A&F", "Fidelity"], "strategy": ["Audit and provide feedback", None],
                          "measure": [None, "fidelity"]})
    model = logic_model(nodes, pd.DataFrame({"source": ["s"], "target": ["o"]}))
    assert model.to_frame()["target_measure"].tolist() == ["fidelity"]


def test_draft_from_the_example_rollout_carries_the_evidence() -> None:
    programme = generate_programme(seed=0, persons=6_000)
    specs = specification_set(pd.DataFrame({"strategy": ["Facilitation"], "mechanism": ["clinic teams solve problems"],
                                             "outcome": ["adoption"]}))
    model = logic_model_from_rollout(programme.tables["rollout"], specifications=specs)
    strategies = [n.strategy for n in model.nodes if n.stage == "strategies"]
    assert set(strategies) == {"Conduct ongoing training", "Provide clinical supervision", "Facilitation",
                               "Audit and provide feedback"}
    fac = next(n for n in model.nodes if n.strategy == "Facilitation")
    fac_links = model.paths().loc[lambda d: d["strategy_node"] == fac.id, "measure"]
    assert "adoption" in set(fac_links) and "fidelity" not in set(fac_links)  # the specification's outcome only
    evidence = strategy_evidence(programme.tables)
    links = model.link_evidence(evidence).set_index(["strategy", "measure"])
    assert links.loc[("Facilitation", "adoption"), "evidence"] == "estimate"
    assert links.loc[("Conduct ongoing training", "fidelity"), "evidence"] == "not estimable"
    assert links.loc[("Facilitation", "response"), "evidence"] == "none"
    assert any("team to write" in n.label for n in model.nodes if n.stage == "mechanisms")
