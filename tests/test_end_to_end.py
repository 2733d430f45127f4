"""The whole flow as a user runs it: `knowdo demo`, then the report opened in a real browser.

Needs Debian's chromium at /usr/bin/chromium (`make browser`). Without it the
test is skipped, except under CI=true, where it fails. A full-page screenshot
is kept in test-artifacts/report.png.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
BROWSER_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
RENDER_TIMEOUT_MS = 60_000
# True once every chart container has either drawn or reported an error.
ALL_SETTLED = "() => [...document.querySelectorAll('.chart[data-spec]')].every(e => e.dataset.rendered !== 'pending')"


def require_chromium() -> None:
    if CHROMIUM.exists():
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{CHROMIUM} is missing; the browser tests need Debian's chromium under CI (`make browser`)")
    pytest.skip(f"{CHROMIUM} is not installed; run `make browser` (apt-get install chromium) to run this test")


@pytest.mark.browser
def test_demo_report_renders_offline(tmp_path: Path) -> None:
    require_chromium()
    project = tmp_path / "demo"
    run = subprocess.run(
        [sys.executable, "-m", "knowdo", "demo", "--dir", str(project), "--persons", "3000", "--seed", "1"],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert run.returncode == 0, f"knowdo demo failed:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"

    html = project / "report" / "index.html"
    results = project / "report" / "results.json"
    assert html.exists() and results.exists()
    published = json.loads(results.read_text(encoding="utf-8"))
    for section in ("cascade", "reaim", "proctor", "provenance"):
        assert section in published, f"results.json lacks the {section!r} section"

    url = html.resolve().as_uri()
    console_errors: list[str] = []
    failed_requests: list[str] = []
    other_requests: list[str] = []
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: console_errors.append(str(e)))
            page.on("requestfailed", lambda r: failed_requests.append(f"{r.url} ({r.failure})"))
            page.on("request", lambda r: other_requests.append(r.url) if r.url != url else None)
            page.goto(url, wait_until="load")
            charts = page.locator(".chart[data-spec]")
            assert charts.count() > 0, "the report has no charts"
            page.wait_for_function(ALL_SETTLED, timeout=RENDER_TIMEOUT_MS)
            states = page.eval_on_selector_all(
                ".chart[data-spec]", "els => els.map(e => [e.id, e.dataset.rendered, !!e.querySelector('svg, canvas')])"
            )
            page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)
        finally:
            browser.close()

    not_drawn = [chart for chart, state, drawn in states if state != "true" or not drawn]
    assert not_drawn == [], f"charts not drawn: {not_drawn}"
    assert console_errors == []
    assert failed_requests == []
    assert other_requests == [], "the report must not fetch anything beyond its own file"
