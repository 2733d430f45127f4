"""The shipped vocabularies reproduce the published counts, names and cluster membership, and the crosswalk holds.

Counts: CFIR 2.0 has 48 constructs (8/7/11/13/9) and 19 sub-constructs
(3 outer, 10 inner, 6 process), with 9 roles and 4 characteristics in the
Individuals domain (Damschroder et al., Implement Sci 2022;17:75); the
CFIR-ERIC matching tool uses 39 CFIR 1.0 barriers (Waltz et al., Implement
Sci 2019;14:42); ERIC has 73 strategies (Powell et al. 2015) in 9 clusters
of 10/4/4/17/11/5/5/9/8 (Waltz et al. 2015). Spot-checked memberships are
the ones the project's domain primer (frameworks.md §8) lists as commonly
got wrong.
"""

from __future__ import annotations

import dataclasses

import pytest

from knowdo.errors import ParameterError
from knowdo.strategies.vocabularies import (
    check_vocabulary,
    load_vocabulary,
    normalise_name,
    resolve_constructs,
)


def test_cfir2_counts_by_domain_and_kind() -> None:
    v = load_vocabulary()
    per_domain = {d: len(v.constructs(kind="construct", domain=d)) for d in
                  ("innovation", "outer_setting", "inner_setting", "individuals", "implementation_process")}
    assert per_domain == {"innovation": 8, "outer_setting": 7, "inner_setting": 11, "individuals": 13,
                          "implementation_process": 9}
    assert len(v.constructs(kind="construct")) == 48
    subs = v.constructs(kind="sub_construct")
    assert len(subs) == 19
    by_domain = {d: sum(s.domain == d for s in subs) for d in ("outer_setting", "inner_setting",
                                                               "implementation_process")}
    assert by_domain == {"outer_setting": 3, "inner_setting": 10, "implementation_process": 6}
    individuals = v.constructs(kind="construct", domain="individuals")
    assert sum(c.subdomain == "roles" for c in individuals) == 9
    assert [c.name for c in individuals if c.subdomain == "characteristics"] == [
        "Need", "Capability", "Opportunity", "Motivation"]


def test_cfir2_has_no_cfir1_leftovers() -> None:
    # frameworks.md §8.1: copies keeping Learning Climate or Intervention Characteristics mix in CFIR 1.0
    names = {c.name for c in load_vocabulary().cfir2}
    assert "Learning Climate" not in names and "Intervention Characteristics" not in names
    assert "Human Equality-Centeredness" in names and "Critical Incidents" in names


def test_cfir1_barriers_and_crosswalk_consistency() -> None:
    v = load_vocabulary()
    assert len(v.cfir1) == 39
    cfir2_ids = {c.id for c in v.cfir2 if c.kind != "domain"}
    for barrier in v.cfir1:
        links = v.cfir2_for(barrier.id)
        assert links, barrier.id
        assert all(link.cfir2 in cfir2_ids for link in links)
    # the reverse lookup is the inverse of the links it uses
    for construct in v.constructs(kind="construct"):
        for cfir1, how in v.cfir1_for(construct.id):
            if how in ("equivalent", "partial", "parent"):
                assert any(link.cfir2 == construct.id for link in v.cfir2_for(cfir1))
    # renamed constructs map one to one
    assert v.cfir1_for("innovation_evidence_base") == (("evidence_strength_quality", "equivalent"),)
    assert v.cfir1_for("incentive_systems") == (("organizational_incentives_rewards", "equivalent"),)
    # a specific link beats a parent one: Tension for Change is not also Implementation Climate
    assert v.cfir1_for("tension_for_change") == (("tension_for_change", "equivalent"),)
    # frameworks.md §3.3: some CFIR 2.0 constructs have no barrier row in the tool
    assert v.cfir1_for("critical_incidents") == ()
    # a sub-construct without a link of its own inherits its parent's
    assert v.cfir1_for("culture.human_equality_centeredness") == (("culture", "via parent"),)
    assert {b for b, _ in v.cfir1_for("external_pressure")} == {"peer_pressure", "external_policy_incentives"}


def test_eric_counts_and_memberships() -> None:
    v = load_vocabulary()
    assert len(v.strategies) == 73
    assert [len(v.strategies_in(c.number)) for c in v.clusters] == [10, 4, 4, 17, 11, 5, 5, 9, 8]
    assert v.strategy("Obtain and use patients/consumers and family feedback").cluster_name == (
        "Use evaluative and iterative strategies")
    assert v.strategy("Start a dissemination organization").cluster_name == "Change infrastructure"
    assert v.cluster("Use financial strategies").name == "Utilize financial strategies"
    assert len({s.id for s in v.strategies}) == 73


def test_specification_fields_are_proctors_seven() -> None:
    fields = [f.id for f in load_vocabulary().specification_fields]
    assert fields == ["actor", "action", "action_target", "temporality", "dose", "outcome", "justification"]


def test_names_resolve_across_spellings() -> None:
    v = load_vocabulary()
    assert v.strategy("Use an implementation adviser").name == "Use an implementation advisor"
    assert v.strategy("11").name == "Facilitation"
    assert v.construct("Partnerships and Connections").id == "partnerships_connections"
    assert v.construct("Engaging: Innovation Recipients").id == "engaging.innovation_recipients"
    assert v.construct("Innovation Recipients").id == "innovation_recipients"  # the role, not a sub-construct
    assert normalise_name("Learning-Centredness") == normalise_name("learning centeredness")
    assert resolve_constructs(["Cost", "cost", "Patient Needs & Resources"], "cfir1") == [
        "cost", "patient_needs_resources"]


def test_unknown_and_ambiguous_names_say_what_to_do() -> None:
    v = load_vocabulary()
    with pytest.raises(ParameterError, match=r"'audit feedbak' is not known\. Did you mean"):
        v.strategy("audit feedbak")
    # a bare sub-construct name loses to a domain or construct of that name ...
    assert v.construct("Innovation").kind == "domain"
    # ... and a domain cannot be rated or matched
    with pytest.raises(ParameterError, match="domain"):
        resolve_constructs(["Inner Setting"])


def test_check_vocabulary_catches_a_broken_count() -> None:
    v = load_vocabulary()
    broken = dataclasses.replace(v, strategies=v.strategies[:-1])
    problems = check_vocabulary(broken)
    assert any(p.rule == "count" and p.file == "eric.csv" for p in problems)
    assert check_vocabulary(v) == []


def test_to_dict_is_json_ready() -> None:
    import json

    payload = json.loads(json.dumps(load_vocabulary().to_dict()))
    assert len(payload["eric_strategies"]) == 73 and len(payload["cfir1_barriers"]) == 39
