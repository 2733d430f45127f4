"""The co-production tools in Debian's chromium (Playwright), against the workspace served by uvicorn on loopback.

(a) A full Delphi round with three people of different roles: an
    implementer facilitates (creates the items and the consensus rule), an
    analyst and a community partner rate, the facilitator closes the round,
    and all three see the group's median and IQR with the consensus status.
(b) A barrier assessment leading to a strategy list: three members rate a
    CFIR 2.0 construct, the team's table shows their groups side by side and
    the disagreement, and the strategy page lists ERIC strategies labelled as
    expert opinion.

Screenshots go to ``test-artifacts/``. Under ``CI=true`` a missing chromium
fails the test; elsewhere it is skipped with the reason.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_support import ARTIFACTS, chromium_browser, serve_on_loopback, sign_in
from playwright.sync_api import expect

from knowdo.web.app import create_app
from knowdo.web.db import Database
from knowdo.web.models import Membership
from knowdo.web.security import create_user
from knowdo.web.services import create_project
from knowdo.web.settings import Settings

PASSWORD = "correct horse battery staple"
PEOPLE = {"implementer": ("ivan@example.org", "Ivan Implementer"), "analyst": ("ana@example.org", "Ana Analyst"),
          "community_partner": ("cora@example.org", "Cora Partner")}
SLUG = "co-design-pilot"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    settings = Settings(workspace=tmp_path / "workspace", analyse_on_start=False, job_workers=1)
    database = Database(settings.database_url)
    database.upgrade()
    settings.workspace.mkdir(parents=True, exist_ok=True)
    with database.session() as s:
        owner = create_user(s, email="owner@example.org", name="Olu Owner", password=PASSWORD)
        s.flush()
        project = create_project(s, settings.workspace, name="Co-design pilot", start=dt.date(2023, 1, 1),
                                 end=dt.date(2024, 12, 31), threshold=11, owner=owner)
        s.flush()
        for role, (email, name) in PEOPLE.items():
            user = create_user(s, email=email, name=name, password=PASSWORD)
            s.flush()
            s.add(Membership(user_id=user.id, project_id=project.id, role=role))
    with serve_on_loopback(create_app(settings, database=database)) as base:
        yield base


def _people(browser: Any, base: str, errors: list[str]) -> dict[str, Any]:
    pages = {}
    for role, (email, _) in PEOPLE.items():
        page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        sign_in(page, base, email, PASSWORD)
        pages[role] = page
    return pages


@pytest.mark.browser
def test_a_delphi_round_with_three_roles(server: str) -> None:
    errors: list[str] = []
    with chromium_browser() as browser:
        people = _people(browser, server, errors)
        ivan, ana, cora = people["implementer"], people["analyst"], people["community_partner"]

        # The implementer facilitates: items and the consensus rule are fixed before round 1.
        ivan.goto(f"{server}/projects/{SLUG}")
        ivan.get_by_role("link", name="Co-design", exact=True).click()
        ivan.get_by_role("navigation", name="Co-design tools").get_by_role("link", name="Delphi").click()
        ivan.get_by_label("Title").fill("Which research questions first?")
        ivan.get_by_label("Items to rate (one per line)").fill(
            "Does task sharing reach rural clinics?\nWhat does a course of treatment cost?")
        ivan.get_by_label("Consensus rule").select_option("percent")
        ivan.get_by_role("button", name="Start round 1").click()
        expect(ivan.locator("#round-state")).to_contain_text("Round 1")
        study_url = ivan.url

        # Two other members rate anonymously. Item 1: 8 and 9 -> consensus in; item 2: 2 and 8 -> none.
        for page, first, second in ((ana, "9", "2"), (cora, "8", "8")):
            page.goto(study_url)
            page.get_by_label("Does task sharing reach rural clinics?").select_option(first)
            page.get_by_label("What does a course of treatment cost?").select_option(second)
            page.get_by_role("button", name="Save my ratings").click()
            expect(page.locator("#rating-form")).to_contain_text("saved")
        assert ana.get_by_role("button", name="Close round 1").count() == 0  # only the facilitator closes it
        ivan.reload()
        expect(ivan.locator("#round-state")).to_contain_text("2 member(s) have rated")
        ivan.get_by_role("button", name="Close round 1").click()

        # Everyone sees the group's median and IQR, their own rating only, and the consensus status.
        for page, own in ((ivan, "–"), (ana, "9"), (cora, "8")):
            page.goto(study_url)
            table = page.locator("#feedback-1")
            expect(table).to_contain_text("Median")
            row = table.locator("tr", has_text="rural clinics")
            expect(row).to_contain_text("8.5")  # median of (8, 9)
            expect(row).to_contain_text("8.25–8.75")  # IQR, type 7 quartiles of (8, 9)
            expect(row).to_contain_text("consensus in")
            expect(row.locator("td").nth(6)).to_have_text(own)
            expect(table.locator("tr", has_text="cost")).to_contain_text("no consensus")
        expect(ivan.get_by_role("button", name="Open round 2")).to_be_visible()
        ivan.screenshot(path=str(ARTIFACTS / "codesign-delphi.png"), full_page=True)
        for page in (ana, cora):
            assert "Ivan" not in page.locator("#feedback-1").inner_text()
    assert not [e for e in errors if "favicon" not in e], errors


@pytest.mark.browser
def test_a_barrier_assessment_leads_to_a_strategy_list(server: str) -> None:
    errors: list[str] = []
    with chromium_browser() as browser:
        people = _people(browser, server, errors)
        for role, valence, group in (("analyst", "-2", "researcher"), ("implementer", "-1", "implementer"),
                                     ("community_partner", "+1", "community_partner")):
            page = people[role]
            page.goto(f"{server}/projects/{SLUG}/codesign/barriers")
            page.get_by_label("Construct", exact=True).select_option(label="Inner Setting: Available Resources")
            page.get_by_label("Valence").select_option(label=valence)
            page.get_by_label("Importance").select_option("5")
            page.get_by_label("Your stakeholder group").select_option(group)
            page.get_by_label("Evidence (what you have seen or heard)").fill(f"What {group}s see in the clinics")
            page.get_by_role("button", name="Save rating").click()
            expect(page.locator("#mine")).to_contain_text("available resources")
        ana = people["analyst"]
        ana.reload()
        row = ana.locator("#assessment-table tr", has_text="Available Resources")
        expect(row).to_contain_text("-1.0")  # the median of (-2, -1, +1)
        expect(row).to_contain_text("barrier for some, facilitator for others")
        expect(ana.locator("#priorities")).to_contain_text("Available Resources")
        ana.screenshot(path=str(ARTIFACTS / "codesign-barriers.png"), full_page=True)
        ana.get_by_role("link", name="See candidate strategies for these barriers").click()
        expect(ana.locator(".notice.expert")).to_contain_text("Expert opinion, not evidence of effectiveness")
        expect(ana.locator("#strategy-table details")).to_have_count(9)  # ERIC's 9 clusters
        expect(ana.locator("#strategy-table")).to_contain_text("Access new funding")
        ana.screenshot(path=str(ARTIFACTS / "codesign-strategies.png"), full_page=False)
    assert not [e for e in errors if "favicon" not in e], errors
