"""Who may do what: ONE table of route x principal -> allowed, read by the app and by the tests.

A *principal* is what the workspace knows about the caller for the project
in the URL: not signed in (``anonymous``), signed in without a role in the
project (``user``), a site administrator without a role in it (``admin``),
or a member with one of the five project roles. Site administrators who are
also members act with their role (an administrator who creates a project
becomes its owner).

Project roles:

* ``owner``: everything an analyst can do, and manages members; reads the audit log;
* ``analyst``: everything, including person-level views, uploads, loads and analyses;
* ``implementer``: aggregate evidence, scenarios, the study planner, comments and ratings;
* ``community_partner``: aggregate evidence with plain-language summaries, comments and ratings;
* ``viewer``: aggregate evidence only.

Person-level data (:data:`PERSON_LEVEL`) are open to owner and analyst only;
every other role sees only what passed disclosure control. Every route of
the app is named in :data:`RULES` (a test checks it), and a route missing
from it is refused, so a new route is closed until someone decides who may
use it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal, get_args

from knowdo.errors import ParameterError

Role = Literal["owner", "analyst", "implementer", "community_partner", "viewer"]
ROLES: tuple[Role, ...] = get_args(Role)
Principal = Literal["anonymous", "user", "admin", "owner", "analyst", "implementer", "community_partner", "viewer"]
PRINCIPALS: tuple[Principal, ...] = get_args(Principal)
ROLE_LABELS: dict[str, str] = {
    "owner": "Owner",
    "analyst": "Analyst",
    "implementer": "Implementer",
    "community_partner": "Community partner",
    "viewer": "Viewer",
}
ROLE_DESCRIPTIONS: dict[str, str] = {
    "owner": "manages members and reads the audit log; can do everything an analyst can",
    "analyst": "everything, including person-level views, uploads, loads and analyses",
    "implementer": "aggregate evidence, scenarios, the study planner, comments and ratings",
    "community_partner": "aggregate evidence with plain-language summaries, comments and ratings",
    "viewer": "aggregate evidence only",
}


def check_role(value: str) -> Role:
    """Return ``value`` as a :data:`Role`, or raise naming the allowed values."""
    if value not in ROLES:
        raise ParameterError(f"role {value!r} is not a project role; use one of {', '.join(ROLES)}")
    return value


def _set(*names: str) -> frozenset[str]:
    unknown = set(names) - set(PRINCIPALS)
    if unknown:
        raise ParameterError(f"authz: unknown principals {sorted(unknown)}")
    return frozenset(names)


PUBLIC = _set(*PRINCIPALS)
SIGNED_IN = _set(*(p for p in PRINCIPALS if p != "anonymous"))
ADMIN = _set("admin")
MEMBERS = _set(*ROLES)
PERSON_LEVEL = _set("owner", "analyst")
ANALYSTS = PERSON_LEVEL
PLANNERS = _set("owner", "analyst", "implementer")
COMMENTERS = _set("owner", "analyst", "implementer", "community_partner")
OWNERS = _set("owner")
# Co-production (knowdo.codesign): every member sees the team's work; those who may comment and rate also rate
# barriers and Delphi items; those who plan (owner, analyst, implementer) run Delphi studies, specify strategies
# and edit the logic model; analysts upload the matching workbook and run the strategy analysis. Closing and
# opening Delphi rounds is further limited to the study's facilitator (its creator) or an owner.
RATERS = COMMENTERS
CODESIGNERS = PLANNERS

# route name -> principals allowed. Names are the FastAPI route names (``name=`` in knowdo.web.routes).
RULES: dict[str, frozenset[str]] = {
    # ------------------------------------------------------------------ public and account pages
    "health": PUBLIC,
    "static": PUBLIC,
    "vega_bundle": PUBLIC,
    "login_form": PUBLIC,
    "login": PUBLIC,
    "invitation_form": PUBLIC,
    "invitation_accept": PUBLIC,
    "home": SIGNED_IN,
    "logout": SIGNED_IN,
    "logout_everywhere": SIGNED_IN,
    "account": SIGNED_IN,
    "account_password": SIGNED_IN,
    "token_create": SIGNED_IN,
    "token_revoke": SIGNED_IN,
    "project_list": SIGNED_IN,
    "project_create": ADMIN,
    # ------------------------------------------------------------------ project pages
    "project_overview": MEMBERS,
    "evidence_page": MEMBERS,
    "report_export": MEMBERS,
    "report_build": ANALYSTS,
    "job_page": MEMBERS,
    "comment_create": COMMENTERS,
    "rating_set": COMMENTERS,
    "scenario_page": PLANNERS,
    "scenario_run": PLANNERS,
    "planner_page": PLANNERS,
    "planner_advise": PLANNERS,
    "planner_power": PLANNERS,
    "data_page": ANALYSTS,
    "data_upload": ANALYSTS,
    "data_load": ANALYSTS,
    "data_example": ANALYSTS,
    "people_page": PERSON_LEVEL,
    "members_page": OWNERS,
    "member_invite": OWNERS,
    "member_role": OWNERS,
    "member_remove": OWNERS,
    "audit_page": OWNERS,
    # ------------------------------------------------------------------ co-production pages
    "codesign_home": MEMBERS,
    "barrier_page": MEMBERS,
    "barrier_rate": RATERS,
    "strategy_page": MEMBERS,
    "workbook_upload": ANALYSTS,
    "specification_page": MEMBERS,
    "specification_save": CODESIGNERS,
    "specification_remove": CODESIGNERS,
    "delphi_list": MEMBERS,
    "delphi_create": CODESIGNERS,
    "delphi_page": MEMBERS,
    "delphi_rate": RATERS,
    "delphi_close": CODESIGNERS,
    "delphi_next": CODESIGNERS,
    "delphi_export": MEMBERS,
    "logic_page": MEMBERS,
    "logic_node_add": CODESIGNERS,
    "logic_link_add": CODESIGNERS,
    "logic_remove": CODESIGNERS,
    "logic_draft": CODESIGNERS,
    "stari_page": MEMBERS,
    "stari_settings": CODESIGNERS,
    "stari_download": MEMBERS,
    "strategy_evidence_page": MEMBERS,
    "strategy_evidence_run": ANALYSTS,
    # ------------------------------------------------------------------ JSON API
    "api_me": SIGNED_IN,
    "api_projects": SIGNED_IN,
    "api_project_create": ADMIN,
    "api_project": MEMBERS,
    "api_evidence": MEMBERS,
    "api_evidence_panel": MEMBERS,
    "api_comments": MEMBERS,
    "api_comment_create": COMMENTERS,
    "api_rating_set": COMMENTERS,
    "api_people": PERSON_LEVEL,
    "api_provenance": ANALYSTS,
    "api_load": ANALYSTS,
    "api_example": ANALYSTS,
    "api_job": MEMBERS,
    "api_scenario_options": PLANNERS,
    "api_scenario_run": PLANNERS,
    "api_planner_advise": PLANNERS,
    "api_planner_power": PLANNERS,
    "api_members": OWNERS,
    "api_member_invite": OWNERS,
    "api_audit": OWNERS,
    "api_barriers": MEMBERS,
    "api_barrier_rate": RATERS,
    "api_strategies": MEMBERS,
    "api_specifications": MEMBERS,
    "api_specification_save": CODESIGNERS,
    "api_delphi_list": MEMBERS,
    "api_delphi_create": CODESIGNERS,
    "api_delphi": MEMBERS,
    "api_delphi_rate": RATERS,
    "api_delphi_close": CODESIGNERS,
    "api_delphi_next": CODESIGNERS,
    "api_logic_model": MEMBERS,
    "api_logic_model_save": CODESIGNERS,
    "api_stari": MEMBERS,
    "api_strategy_evidence": MEMBERS,
    "api_strategy_evidence_run": ANALYSTS,
}

# Routes whose responses carry person-level rows; each read is written to the audit log.
PERSON_LEVEL_ROUTES = frozenset({"people_page", "api_people"})
# Routes that take no project (the principal there is anonymous, user or admin only).
SITE_ROUTES = frozenset(
    {"health", "static", "vega_bundle", "login_form", "login", "invitation_form", "invitation_accept", "home",
     "logout", "logout_everywhere", "account", "account_password", "token_create", "token_revoke", "project_list",
     "project_create", "api_me", "api_projects", "api_project_create"}
)


def allowed(route: str, principal: str) -> bool:
    """Whether ``principal`` may use ``route``; routes missing from :data:`RULES` are refused to everyone."""
    return principal in RULES.get(route, frozenset())


def principal_for(*, signed_in: bool, is_admin: bool, role: str | None) -> Principal:
    """The principal of a caller: their project role when they have one, else admin, user or anonymous."""
    if not signed_in:
        return "anonymous"
    if role is not None:
        return check_role(role)
    return "admin" if is_admin else "user"


def table_rows(principals: Iterable[str] = PRINCIPALS) -> list[tuple[str, str, bool]]:
    """Every (route, principal, allowed) triple, for the tests and the documentation."""
    return [(route, p, p in allowed_set) for route, allowed_set in RULES.items() for p in principals]
