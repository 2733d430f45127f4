"""Real flows in Debian's chromium (Playwright), against the workspace served by uvicorn on a loopback port.

1. The administrator signs in, creates a project and invites an analyst, a
   community partner and an implementer (one-time links).
2. The analyst joins, loads the example programme (a background job with a
   progress bar) and sees the evidence dashboard with its charts drawn.
3. The community partner joins, sees the dashboard without person-level
   data (no People tab; the people page is refused), and comments with a
   mention of the analyst.
4. The implementer joins, runs a ready-made scenario and sees the result
   compared with the current programme.

Screenshots go to ``test-artifacts/``. Under ``CI=true`` a missing chromium
fails the test; elsewhere it is skipped with the reason.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from browser_support import ARTIFACTS, chromium_browser, serve_on_loopback, sign_in
from playwright.sync_api import expect

from knowdo.web.app import create_app
from knowdo.web.db import Database
from knowdo.web.security import create_user
from knowdo.web.settings import Settings

ADMIN = ("admin@example.org", "a long and unguessable admin passphrase")
PASSWORD = "correct horse battery staple"
JOB_TIMEOUT_MS = 240_000  # the example load and the first calibration, on a shared 2-core machine


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    settings = Settings(workspace=tmp_path / "workspace", example_persons=800,
                        panels=("cascade", "reaim", "proctor"), scenario_draws=30, job_workers=2)
    database = Database(settings.database_url)
    database.upgrade()
    with database.session() as s:
        create_user(s, email=ADMIN[0], name="Ada Admin", password=ADMIN[1], is_admin=True)
    with serve_on_loopback(create_app(settings, database=database)) as base:
        yield base


def _join(page, link: str, name: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(link)
    page.get_by_label("Your name").fill(name)
    page.get_by_label("Choose a password").fill(PASSWORD)
    page.get_by_label("The same password again").fill(PASSWORD)
    page.get_by_role("button", name="Join the project").click()


@pytest.mark.browser
def test_team_flows_in_chromium(server: str) -> None:
    errors: list[str] = []
    with chromium_browser() as browser:

        def person(width: int = 1280, height: int = 900):  # type: ignore[no-untyped-def]
            context = browser.new_context(viewport={"width": width, "height": height})
            page = context.new_page()
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            return page

        # 1. The administrator creates the project and invites three people.
        admin = person()
        sign_in(admin, server, *ADMIN)
        admin.get_by_label("Name").fill("District pilot")
        admin.get_by_role("button", name="Create project").click()
        admin.wait_for_url(f"{server}/projects/district-pilot/members")
        links = {}
        for email, role in (("ana@example.org", "Analyst"), ("cora@example.org", "Community partner"),
                            ("ivan@example.org", "Implementer")):
            admin.get_by_label("E-mail").fill(email)
            admin.get_by_label("Role", exact=True).select_option(label=role)
            admin.get_by_role("button", name="Invite").click()
            links[role] = admin.locator("#invite-link").input_value()
        admin.screenshot(path=str(ARTIFACTS / "workspace-members.png"), full_page=True)

        # 2. The analyst joins and loads the example programme.
        analyst = person()
        _join(analyst, links["Analyst"], "Ana Analyst")
        analyst.wait_for_url(f"{server}/projects/district-pilot")
        analyst.get_by_role("link", name="Data", exact=True).click()
        analyst.get_by_role("button", name="Load the example programme").click()
        analyst.wait_for_url("**/jobs/*")
        expect(analyst.locator("progress")).to_be_visible()
        analyst.screenshot(path=str(ARTIFACTS / "workspace-job.png"))
        expect(analyst.get_by_text("Done.")).to_be_visible(timeout=JOB_TIMEOUT_MS)
        analyst.get_by_role("link", name="See the evidence").click()
        expect(analyst.locator("#cascade h2")).to_contain_text("Care cascade")
        expect(analyst.locator('.chart[data-rendered="true"]').first).to_be_visible(timeout=30_000)
        analyst.screenshot(path=str(ARTIFACTS / "workspace-dashboard.png"), full_page=False)
        assert analyst.get_by_role("link", name="People", exact=True).count() == 1

        # 3. The community partner sees aggregates only and comments.
        partner = person(390, 844)  # a small phone screen
        _join(partner, links["Community partner"], "Cora Partner")
        partner.wait_for_url(f"{server}/projects/district-pilot")
        partner.get_by_role("link", name="Evidence", exact=True).click()
        expect(partner.locator(".sentence").first).to_be_visible()
        assert partner.get_by_role("link", name="People", exact=True).count() == 0
        assert partner.get_by_role("link", name="Data", exact=True).count() == 0
        box = partner.locator("#cascade").get_by_label("Add a comment")
        box.fill("Why do so few people who start treatment reach six sessions? @ana, can we see it by district?")
        partner.locator("#cascade").get_by_role("button", name="Post comment").click()
        expect(partner.locator("#cascade .comment")).to_contain_text("six sessions")
        partner.screenshot(path=str(ARTIFACTS / "workspace-partner-phone.png"), full_page=False)
        refused = partner.goto(f"{server}/projects/district-pilot/people")
        assert refused is not None and refused.status == 403

        # The analyst sees the mention on the overview.
        analyst.goto(f"{server}/projects/district-pilot")
        expect(analyst.get_by_text("Mentions of you")).to_be_visible()

        # 4. The implementer runs a scenario and sees the comparison.
        implementer = person()
        _join(implementer, links["Implementer"], "Ivan Implementer")
        implementer.wait_for_url(f"{server}/projects/district-pilot")
        implementer.get_by_role("link", name="Scenarios", exact=True).click()
        implementer.get_by_label("SMS reminders").check()
        implementer.get_by_role("button", name="Run scenario").click()
        expect(implementer.locator("#scenario-result")).to_be_visible(timeout=JOB_TIMEOUT_MS)
        expect(implementer.locator("#scenario-result")).to_contain_text("more people effectively treated")
        expect(implementer.locator('#scenario-result .chart[data-rendered="true"]').first).to_be_visible(
            timeout=30_000)
        implementer.screenshot(path=str(ARTIFACTS / "workspace-scenario.png"), full_page=False)
    # The refused people page logs its 403 in the console; anything else is an error.
    assert not [e for e in errors if "favicon" not in e and "403 (Forbidden)" not in e], errors
