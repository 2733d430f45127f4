"""Proctor et al.'s seven specification dimensions: validation, gaps, tables."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from knowdo.errors import ParameterError
from knowdo.strategies.specification import specification_set, specification_template, specify


def test_a_complete_specification() -> None:
    spec = specify(
        "audit & provide feedback",
        actor="district data officer",
        action="monthly clinic dashboard of screens, starts and session fidelity, discussed at the staff meeting",
        action_target="lay workers and clinic managers; Reflecting & Evaluating",
        temporality="from month 3 after the clinic starts until support ends",
        dose="one 30-minute review a month",
        outcome=["fidelity", "reach"],
        justification="audit and feedback improves practice modestly, more when feedback is repeated",
        barriers="Reflecting & Evaluating; Access to Knowledge & Information",
    )
    assert spec.strategy == "Audit and provide feedback"
    assert spec.cluster == "Use evaluative and iterative strategies"
    assert spec.outcome == ("fidelity", "penetration")  # reach is Proctor's penetration
    assert spec.barriers == ("reflecting_evaluating", "access_knowledge_information")
    assert spec.complete and spec.missing() == ()


def test_gaps_and_templates() -> None:
    template = specification_template(["Facilitation", "Conduct ongoing training"])
    assert [s.missing() for s in template.specifications] == [
        ("actor", "action", "action_target", "temporality", "dose", "outcome", "justification")] * 2
    assert "0 complete" in template.summary()
    frame = template.to_frame()
    assert list(frame.columns[3:10]) == ["actor", "action", "action_target", "temporality", "dose", "outcome",
                                         "justification"]
    assert json.loads(json.dumps(template.to_dict()))["fields"][0] == "actor"


def test_tables_round_trip_and_local_strategies() -> None:
    frame = pd.DataFrame({"strategy": ["Facilitation", "WhatsApp peer group"], "actor": ["coordinator", "lay workers"],
                          "outcome": ["adoption", "fidelity; acceptability"], "custom": [False, True]})
    specs = specification_set(frame)
    assert [s.strategy for s in specs.specifications] == ["Facilitation", "WhatsApp peer group"]
    assert specs.specifications[1].custom and specs.specifications[1].outcome == ("fidelity", "acceptability")
    again = specification_set(specs.to_frame())
    assert again.to_frame().equals(specs.to_frame())


def test_errors_name_what_is_wrong() -> None:
    with pytest.raises(ParameterError, match="custom=True"):
        specify("WhatsApp peer group")
    with pytest.raises(ParameterError, match="not an implementation outcome"):
        specify("Facilitation", outcome="happiness")
    with pytest.raises(ParameterError, match="unknown field"):
        specify("Facilitation", owner="me")
    with pytest.raises(ParameterError, match="row 1"):
        specification_set(pd.DataFrame({"strategy": ["Facilitation"], "outcome": ["joy"]}))
