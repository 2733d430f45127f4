"""Valid calls of the co-production routes for the authorization matrix (merged into its CALLS table).

Delphi studies made for a call are created by the calling principal when it
is a member (so the facilitator check passes for every role the table
allows) and by the owner otherwise.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

from web_support import SLUG, WebEnv

from knowdo.codesign.priorities import ConsensusRules
from knowdo.web import codesign_services as cs

P = f"/projects/{SLUG}/codesign"
A = f"/api/projects/{SLUG}/codesign"
MEMBER_ROLES = ("owner", "analyst", "implementer", "community_partner", "viewer")
_titles = itertools.count(1)
WORKBOOK = (b"Strategy,Available Resources,Cost,Patient Needs and Resources\nAccess new funding,60,55,10\n"
            b"Conduct local needs assessment,10,5,80\nPromote adaptability,25,0,30\n"
            b"Identify and prepare champions,30,10,10\nUse mass media,0,0,15\n")


def _study(env: WebEnv, principal: str, state: str = "open") -> int:
    creator = env.users[principal if principal in MEMBER_ROLES else "owner"]
    with env.db.session() as s:
        study = cs.create_study(s, env.project_id, creator, title=f"Matrix study {next(_titles)}",
                                items=["First item", "Second item"], rules=ConsensusRules())
        study.state = state
        s.flush()
        return study.id


def _item(env: WebEnv, study_id: int) -> int:
    with env.db.session() as s:
        study = cs.get_study(s, env.project_id, study_id)
        assert study is not None
        return study.items[0].id


def calls(call: Callable[..., Any]) -> dict[str, Callable[[WebEnv, str], Any]]:
    """The route -> call builders, made with the matrix's own ``Call`` class."""

    def rate_form(env: WebEnv, p: str) -> Any:
        study = _study(env, p)
        return call("POST", f"{P}/delphi/{study}/ratings", (303,), form={f"item-{_item(env, study)}": "7",
                                                                        "group": "researcher"})

    def rate_json(env: WebEnv, p: str) -> Any:
        study = _study(env, p)
        return call("PUT", f"{A}/delphi/{study}/ratings", (200,), json={"ratings": {str(_item(env, study)): 7}})

    node = {"nodes": [{"id": "a", "stage": "strategies", "label": "Facilitation", "strategy": "Facilitation"}],
            "links": []}
    return {
        "codesign_home": lambda env, p: call("GET", P, (200,)),
        "barrier_page": lambda env, p: call("GET", f"{P}/barriers", (200,)),
        "barrier_rate": lambda env, p: call("POST", f"{P}/barriers", (303,), form={
            "cfir": "Available Resources", "valence": "-1", "importance": "4", "group": "researcher"}),
        "strategy_page": lambda env, p: call("GET", f"{P}/strategies", (200,)),
        "workbook_upload": lambda env, p: call("POST", f"{P}/strategies/workbook", (200,), form={},
                                               files={"file": ("matching.csv", WORKBOOK, "text/csv")}),
        "specification_page": lambda env, p: call("GET", f"{P}/specifications", (200,)),
        "specification_save": lambda env, p: call("POST", f"{P}/specifications", (303,), form={
            "strategy": "Facilitation", "actor": "coordinator"}),
        "specification_remove": lambda env, p: call("POST", f"{P}/specifications/remove", (303,),
                                                    form={"strategy": "Facilitation"}),
        "delphi_list": lambda env, p: call("GET", f"{P}/delphi", (200,)),
        "delphi_create": lambda env, p: call("POST", f"{P}/delphi", (303,), form={
            "title": "Priorities", "items": "One\nTwo", "rule": "percent"}),
        "delphi_page": lambda env, p: call("GET", f"{P}/delphi/{_study(env, p)}", (200,)),
        "delphi_rate": rate_form,
        "delphi_close": lambda env, p: call("POST", f"{P}/delphi/{_study(env, p)}/close", (303,), form={}),
        "delphi_next": lambda env, p: call("POST", f"{P}/delphi/{_study(env, p, 'closed')}/next", (303,), form={}),
        "delphi_export": lambda env, p: call("GET", f"{P}/delphi/{_study(env, p)}/export.csv", (200,)),
        "logic_page": lambda env, p: call("GET", f"{P}/logic-model", (200,)),
        "logic_node_add": lambda env, p: call("POST", f"{P}/logic-model/nodes", (303,), form={
            "stage": "inputs", "label": "Funding"}),
        "logic_link_add": lambda env, p: call("POST", f"{P}/logic-model/links", (303, 400), form={
            "source": "n1", "target": "n1"}),
        "logic_remove": lambda env, p: call("POST", f"{P}/logic-model/remove", (303,), form={"node": "zz"}),
        "logic_draft": lambda env, p: call("POST", f"{P}/logic-model/draft", (303,), form={}),
        "stari_page": lambda env, p: call("GET", f"{P}/stari", (200,)),
        "stari_settings": lambda env, p: call("POST", f"{P}/stari", (303,), form={"design": "stepped rollout",
                                                                                 "hybrid_type": "2"}),
        "stari_download": lambda env, p: call("GET", f"{P}/stari/download", (200,)),
        "strategy_evidence_page": lambda env, p: call("GET", f"{P}/evidence", (200,)),
        "strategy_evidence_run": lambda env, p: call("POST", f"{P}/evidence", (303,), form={}),
        "api_barriers": lambda env, p: call("GET", f"{A}/barriers", (200,)),
        "api_barrier_rate": lambda env, p: call("PUT", f"{A}/barriers", (200,), json={
            "construct": "Financing", "valence": -2}),
        "api_strategies": lambda env, p: call("GET", f"{A}/strategies", (200,)),
        "api_specifications": lambda env, p: call("GET", f"{A}/specifications", (200,)),
        "api_specification_save": lambda env, p: call("PUT", f"{A}/specifications", (200,), json={
            "strategy": "Audit and provide feedback"}),
        "api_delphi_list": lambda env, p: call("GET", f"{A}/delphi", (200,)),
        "api_delphi_create": lambda env, p: call("POST", f"{A}/delphi", (201,), json={
            "title": "API study", "items": ["One"]}),
        "api_delphi": lambda env, p: call("GET", f"{A}/delphi/{_study(env, p)}", (200,)),
        "api_delphi_rate": rate_json,
        "api_delphi_close": lambda env, p: call("POST", f"{A}/delphi/{_study(env, p)}/close", (200,), json={}),
        "api_delphi_next": lambda env, p: call("POST", f"{A}/delphi/{_study(env, p, 'closed')}/next", (200,),
                                               json={}),
        "api_logic_model": lambda env, p: call("GET", f"{A}/logic-model", (200,)),
        "api_logic_model_save": lambda env, p: call("PUT", f"{A}/logic-model", (200,), json=node),
        "api_stari": lambda env, p: call("GET", f"{A}/stari", (200,)),
        "api_strategy_evidence": lambda env, p: call("GET", f"{A}/strategy-evidence", (200,)),
        "api_strategy_evidence_run": lambda env, p: call("POST", f"{A}/strategy-evidence", (202,), json={}),
    }
