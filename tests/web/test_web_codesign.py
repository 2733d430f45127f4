"""The workspace's co-production tools through the API and pages: aggregation, Delphi rounds, anonymity, roles.

Reference figures are computed by hand beside each assertion: the median and
quartiles use linear interpolation between order statistics (Hyndman & Fan
type 7), the consensus rule is COMET's 70% in 7-9 with fewer than 15% in 1-3
(Williamson et al., Trials 2017;18(Suppl 3):280).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from web_support import SLUG, WebEnv, web_env

from knowdo.web.models import AuditEvent, User

API = f"/api/projects/{SLUG}/codesign"
PAGES = f"/projects/{SLUG}/codesign"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Any:
    with web_env(Path(tmp_path_factory.mktemp("codesign")), jobs="inline") as built:
        yield built


def _as(env: WebEnv, principal: str) -> dict[str, str]:
    csrf = env.sign_in(principal)
    return {"X-CSRF-Token": csrf}


def _rate(env: WebEnv, principal: str, body: dict[str, Any]) -> Any:
    return env.client.put(f"{API}/barriers", json=body, headers=_as(env, principal))


@pytest.fixture(scope="module")
def rated(env: WebEnv) -> WebEnv:
    """The workspace with three members' ratings of Available Resources.

    A fixture rather than the first test's side effect: with several test workers the tests that need the
    ratings may run in a process where that test did not.
    """
    # Available Resources: researcher -2, implementer -1, community partner +1 -> a sign conflict; median -1.
    for principal, group, valence in (("analyst", "researcher", -2), ("implementer", "implementer", -1),
                                      ("community_partner", "community_partner", 1)):
        r = _rate(env, principal, {"construct": "Available Resources", "valence": valence, "importance": 5,
                                   "group": group, "evidence": f"seen by {group}"})
        assert r.status_code == 200, r.text
    return env


def test_barrier_assessment_keeps_stakeholder_groups_apart(rated: WebEnv) -> None:
    env = rated
    # Re-rating replaces the earlier rating rather than adding one.
    assert _rate(env, "analyst", {"construct": "available_resources", "valence": -2, "importance": 4,
                                  "group": "researcher"}).status_code == 200
    view = env.client.get(f"{API}/barriers").json()
    row = next(c for c in view["constructs"] if c["construct"] == "available_resources")
    assert row["n_ratings"] == 3
    assert row["valence_median"] == -1.0  # median of (-2, -1, 1)
    assert row["valence_q1"] == -1.5 and row["valence_q3"] == 0.0  # type 7 quartiles of (-2, -1, 1)
    assert row["sign_conflict"] is True and row["groups_disagree"] is True  # gap 1 - (-2) = 3 >= 2
    side = next(s for s in view["side_by_side"] if s["construct"] == "available_resources")
    assert (side["researcher"], side["implementer"], side["community_partner"]) == (-2.0, -1.0, 1.0)
    # Evidence is labelled by stakeholder group, never by member.
    assert all("member" not in e for e in view["evidence"])
    text = env.client.get(f"{PAGES}/barriers").text
    assert "barrier for some, facilitator for others" in text
    assert "Analyst@" not in text and "analyst@example.org" not in text


def test_bad_ratings_are_refused_with_a_reason(env: WebEnv) -> None:
    r = _rate(env, "analyst", {"construct": "No Such Construct", "valence": -1})
    assert r.status_code == 400 and "construct" in r.json()["detail"]
    r = _rate(env, "analyst", {"construct": "Innovation", "valence": -1})  # a domain, not a construct
    assert r.status_code == 400 and "domain" in r.json()["detail"]
    assert _rate(env, "analyst", {"construct": "Financing", "valence": 3}).status_code == 422


def test_strategy_list_follows_the_prioritised_barriers_and_says_it_is_expert_opinion(rated: WebEnv) -> None:
    env = rated
    _as(env, "viewer")
    match = env.client.get(f"{API}/strategies").json()
    assert match["mode"] == "by_cluster"  # no workbook uploaded
    assert [b["id"] for b in match["barriers"]] == ["available_resources"]
    assert len(match["strategies"]) == 73 and len(match["clusters"]) == 9  # ERIC: 73 strategies in 9 clusters
    assert all(s["label"].startswith("Expert opinion, not evidence") for s in match["strategies"])
    page = env.client.get(f"{PAGES}/strategies").text
    assert "Expert opinion, not evidence of effectiveness" in page


def test_workbook_upload_ranks_strategies_by_endorsement(rated: WebEnv) -> None:
    env = rated
    # A small workbook in the tool's layout: strategies down the rows, CFIR 1.0 barriers across, percentages.
    rows = ["Strategy,Available Resources,Cost,Patient Needs and Resources",
            "Access new funding,60,55,10", "Fund and contract for the clinical innovation,45,70,5",
            "Conduct local needs assessment,10,5,80", "Promote adaptability,25,0,30",
            "Identify and prepare champions,30,10,10", "Use mass media,0,0,15"]
    csrf = env.sign_in("analyst")
    r = env.client.post(f"{PAGES}/strategies/workbook", data={"csrf_token": csrf},
                        files={"file": ("matching.csv", "\n".join(rows).encode(), "text/csv")})
    assert r.status_code == 200, r.text
    match = env.client.get(f"{API}/strategies").json()
    assert match["mode"] == "workbook"
    top = match["strategies"][0]
    # Available Resources maps to one CFIR 1.0 barrier (Available Resources): 60% -> Level 1 (>= 50%).
    assert top["strategy"] == "Access new funding" and top["cumulative_percent"] == 60.0 and top["n_level1"] == 1
    second = match["strategies"][1]
    assert second["strategy"] == "Fund and contract for the clinical innovation" and second["n_level2"] == 1
    assert all(s["label"].startswith("Expert opinion") for s in match["strategies"])
    with env.db.session() as s:
        assert s.scalar(select(AuditEvent).where(AuditEvent.action == "codesign.workbook_uploaded")) is not None


def _study(env: WebEnv, facilitator: str, items: list[str], rule: str = "percent") -> dict[str, Any]:
    r = env.client.post(f"{API}/delphi", json={"title": "Which questions first?", "items": items, "rule": rule},
                        headers=_as(env, facilitator))
    assert r.status_code == 201, r.text
    return dict(r.json())


def _vote(env: WebEnv, principal: str, study: dict[str, Any], ratings: list[int | None]) -> Any:
    body = {"ratings": {str(i["id"]): v for i, v in zip(study["items"], ratings, strict=True)}}
    return env.client.put(f"{API}/delphi/{study['id']}/ratings", json=body, headers=_as(env, principal))


def test_delphi_round_lifecycle_feedback_and_consensus(env: WebEnv) -> None:
    study = _study(env, "implementer", ["Reach in rural clinics", "Cost per person treated"])
    assert study["facilitator"] is True and study["state"] == "open" and study["round"] == 1
    # Item 1: 8, 9, 7 -> median 8, IQR 7.5-8.5, 100% in 7-9 -> consensus in.
    # Item 2: 2, 8, 5 -> median 5, IQR 3.5-6.5, 33% in 7-9 -> no consensus, rated again in round 2.
    for principal, ratings in (("implementer", [8, 2]), ("analyst", [9, 8]), ("community_partner", [7, 5])):
        assert _vote(env, principal, study, ratings).status_code == 200
    during = env.client.get(f"{API}/delphi/{study['id']}", headers=_as(env, "analyst")).json()
    assert during["feedback"] == [] and during["respondents"] == 3  # no figures while the round is open
    # Only the facilitator (or an owner) closes the round.
    assert env.client.post(f"{API}/delphi/{study['id']}/close", headers=_as(env, "analyst")).status_code == 403
    closed = env.client.post(f"{API}/delphi/{study['id']}/close", headers=_as(env, "implementer"))
    assert closed.status_code == 200
    assert _vote(env, "analyst", study, [1, 1]).status_code == 400  # the round is closed
    view = env.client.get(f"{API}/delphi/{study['id']}", headers=_as(env, "community_partner")).json()
    first, second = view["feedback"][0]["items"]
    assert (first["median"], first["q1"], first["q3"], first["status"]) == (8.0, 7.5, 8.5, "consensus_in")
    assert (second["median"], second["q1"], second["q3"], second["status"]) == (5.0, 3.5, 6.5, "no_consensus")
    assert first["your_rating"] == 7 and second["your_rating"] == 5
    assert first["counts"] == [0, 0, 0, 0, 0, 0, 1, 1, 1]
    nxt = env.client.post(f"{API}/delphi/{study['id']}/next", headers=_as(env, "implementer")).json()
    assert nxt["round"] == 2 and [i["text"] for i in nxt["items"]] == ["Cost per person treated"]
    csv_text = env.client.get(f"{PAGES}/delphi/{study['id']}/export.csv").text
    assert csv_text.splitlines()[0].startswith("round,item_id,item,n,")
    assert "Reach in rural clinics" in csv_text and "consensus_in" in csv_text
    with env.db.session() as s:
        actions = set(s.scalars(select(AuditEvent.action).where(AuditEvent.target == str(study["id"]))).all())
    assert {"codesign.delphi_created", "codesign.delphi_rated", "codesign.delphi_close",
            "codesign.delphi_next"} <= actions


def test_a_member_never_sees_another_members_rating(env: WebEnv) -> None:
    study = _study(env, "owner", ["Distinctive item A", "Distinctive item B"])
    _vote(env, "analyst", study, [3, 4])
    _vote(env, "community_partner", study, [9, 6])
    env.client.post(f"{API}/delphi/{study['id']}/close", headers=_as(env, "owner"))
    for principal, own in (("analyst", [3, 4]), ("community_partner", [9, 6]), ("viewer", [None, None]),
                           ("owner", [None, None])):
        _as(env, principal)
        data = env.client.get(f"{API}/delphi/{study['id']}").json()
        rows = data["feedback"][0]["items"]
        assert [r["your_rating"] for r in rows] == own
        blob = repr(data)
        page = env.client.get(f"{PAGES}/delphi/{study['id']}").text
        for other in ("analyst", "community_partner"):
            if other == principal:
                continue
            user = env.user(other)
            for text in (user.email, user.name, f"p{user.id}", f"'user_id': {user.id}"):
                assert text not in blob and text not in page
        csv_text = env.client.get(f"{PAGES}/delphi/{study['id']}/export.csv").text
        assert "participant" not in csv_text and "@example.org" not in csv_text
    # The figures shown are the group's: median of (3, 9) is 6.
    assert rows[0]["median"] == 6.0 and rows[0]["n"] == 2


def test_rand_ucla_rule_is_applied_as_chosen_up_front(env: WebEnv) -> None:
    study = _study(env, "analyst", ["Split item"], rule="rand_ucla")
    for principal, value in (("analyst", 1), ("implementer", 9), ("community_partner", 9), ("owner", 1)):
        _vote(env, principal, study, [value])
    env.client.post(f"{API}/delphi/{study['id']}/close", headers=_as(env, "analyst"))
    row = env.client.get(f"{API}/delphi/{study['id']}").json()["feedback"][0]["items"][0]
    # (1, 1, 9, 9): P30 = 1, P70 = 9, IPR 8, IPRAS = 2.35 + 1.5 * |5 - 5| = 2.35, DI 3.4 > 1 -> uncertain.
    assert row["status"] == "uncertain" and row["median"] == 5.0


def test_viewers_and_outsiders_cannot_rate_or_facilitate(env: WebEnv) -> None:
    study = _study(env, "analyst", ["Only item"])
    assert _vote(env, "viewer", study, [5]).status_code == 403
    assert _rate(env, "viewer", {"construct": "Financing", "valence": -1}).status_code == 403
    headers = _as(env, "user")
    assert env.client.get(f"{API}/delphi/{study['id']}", headers=headers).status_code == 403
    assert env.client.post(f"{API}/delphi", json={"title": "x", "items": ["y"]},
                           headers=_as(env, "community_partner")).status_code == 403
    # A form without its CSRF token is refused even for an allowed role.
    env.sign_in("analyst")
    r = env.client.post(f"{PAGES}/delphi/{study['id']}/close", data={}, follow_redirects=False)
    assert r.status_code == 403


def test_specification_logic_model_and_stari(env: WebEnv) -> None:
    headers = _as(env, "implementer")
    r = env.client.put(f"{API}/specifications", headers=headers, json={
        "strategy": "Facilitation", "actor": "district coordinator", "dose": "monthly visit", "outcome": ["adoption"]})
    assert r.status_code == 200
    spec = r.json()["specifications"][0]
    assert spec["strategy"] == "Facilitation" and "action" in spec["missing"]
    model = {"nodes": [{"id": "fac", "stage": "strategies", "label": "Facilitation", "strategy": "Facilitation"},
                       {"id": "mech", "stage": "mechanisms", "label": "Problem solving at the clinic"},
                       {"id": "adopt", "stage": "implementation_outcomes", "label": "Providers deliver",
                        "measure": "adoption"}],
             "links": [{"source": "fac", "target": "mech"}, {"source": "mech", "target": "adopt"}]}
    saved = env.client.put(f"{API}/logic-model", headers=headers, json=model)
    assert saved.status_code == 200, saved.text
    assert saved.json()["paths"][0]["measure"] == "adoption"
    backwards = {**model, "links": [{"source": "adopt", "target": "fac"}]}
    assert env.client.put(f"{API}/logic-model", headers=headers, json=backwards).status_code == 400
    _as(env, "viewer")
    page = env.client.get(f"{PAGES}/logic-model").text
    assert "Adoption (providers delivering among those trained)" in page
    stari = env.client.get(f"{API}/stari").json()
    assert len(stari["items"]) == 27  # StaRI has 27 items (Pinnock et al. 2017)
    statuses = {i["status"] for i in stari["items"]}
    assert "team" in statuses and "filled" in statuses
    md = env.client.get(f"{PAGES}/stari/download?format=markdown")
    assert md.status_code == 200 and "attachment" in md.headers["content-disposition"]
    assert "Facilitation" in md.text and "TO WRITE (team)" in md.text


def test_strategy_evidence_is_disclosure_controlled(env: WebEnv) -> None:
    headers = _as(env, "analyst")
    started = env.client.post(f"{API}/strategy-evidence", headers=headers)
    assert started.status_code == 202
    data = env.client.get(f"{API}/strategy-evidence").json()
    assert data["status"] == "succeeded", data
    view = data["view"]
    assert view["estimates"] and view["caveats"]
    threshold = view["threshold"]
    for row in view["estimates"]:
        if row["n_obs"] is not None and row["outcome"] != "reach":
            assert row["n_obs"] >= threshold  # no small count of providers is published
        if row["suppressed"]:
            assert row["estimate"] is None and row["conf_low"] is None
    _as(env, "community_partner")
    page = env.client.get(f"{PAGES}/evidence").text
    assert "associations" in page.lower() and "not proof" in page


def test_every_codesign_page_renders_for_every_member(env: WebEnv) -> None:
    study = _study(env, "analyst", ["Page item"])
    for principal in ("owner", "analyst", "implementer", "community_partner", "viewer"):
        _as(env, principal)
        for suffix in ("", "/barriers", "/strategies", "/specifications", "/delphi", f"/delphi/{study['id']}",
                       "/logic-model", "/stari", "/evidence"):
            r = env.client.get(f"{PAGES}{suffix}")
            assert r.status_code == 200, (principal, suffix, r.text[:300])
    with env.db.session() as s:
        assert s.scalar(select(User).where(User.email == "viewer@example.org")) is not None
