"""The HTML report and results.json, built from small synthetic result frames.

The synthetic results hold one deliberately small cell: 7 people out of 493
(an estimate of 0.0141987...), in the 'male' stratum of the effective stage.
Its values must reach neither the page nor results.json.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import altair as alt
import pandas as pd
import pytest
import vl_convert
from playwright.sync_api import sync_playwright

from knowdo.config import Project
from knowdo.errors import ParameterError
from knowdo.report import (
    ReportSection,
    ReportTable,
    build_report,
    cascade_funnel,
    chart_spec,
    group_comparison,
    monthly_trend,
    publishable_results,
    reach_gaps,
    reaim_panel,
    render_table,
    sections_from_results,
    suppress_frame,
    tidy_section,
    trend_chart,
)

SMALL_NUMERATOR = 7
SMALL_DENOMINATOR = 493
SMALL_ESTIMATE = SMALL_NUMERATOR / SMALL_DENOMINATOR  # 0.01419878...
SMALL_PATTERNS = (r"0\.01419", r"(?<![\d.])1\.4%", r"(?<![\d.,])493(?!\d)")
STAGES = ("detected", "started", "adequate", "effective")
REAIM = ("reach", "effectiveness", "adoption", "implementation", "maintenance")
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


def tidy_row(outcome: str, numerator: float, denominator: float, **keys: Any) -> dict[str, Any]:
    estimate = numerator / denominator
    half = 1.96 * math.sqrt(max(estimate * (1 - estimate), 1e-4) / denominator)
    row = {
        "domain": keys.pop("domain", "cascade"),
        "outcome": outcome,
        "measure": keys.pop("measure", "proportion"),
        "group_type": "overall",
        "group": "all",
        "stratum_dimension": "all",
        "stratum": "all",
        "numerator": float(numerator),
        "denominator": float(denominator),
        "estimate": estimate,
        "std_error": float("nan"),
        "conf_low": max(0.0, estimate - half),
        "conf_high": min(1.0, estimate + half),
        "method": "wilson",
    }
    row.update(keys)
    return row


def cascade_frame() -> pd.DataFrame:
    shares = {"detected": 0.5, "started": 0.35, "adequate": 0.2, "effective": 0.12}
    rows = []
    for dimension, stratum, need in (("all", "all", 2000), ("sex", "female", 1200), ("sex", "male", 800)):
        for stage, share in shares.items():
            numerator = round(need * share)
            if stratum == "male" and stage == "effective":
                rows.append(
                    tidy_row(
                        stage,
                        SMALL_NUMERATOR,
                        SMALL_DENOMINATOR,
                        measure="cumulative",
                        stratum_dimension=dimension,
                        stratum=stratum,
                    )
                )
                continue
            rows.append(
                tidy_row(stage, numerator, need, measure="cumulative", stratum_dimension=dimension, stratum=stratum)
            )
    for month, scale in (("2024-01", 0.8), ("2024-02", 1.0), ("2024-03", 1.2)):
        for stage, share in shares.items():
            rows.append(
                tidy_row(stage, round(200 * share * scale), 200, measure="cumulative", group_type="month", group=month)
            )
    for district, scale in (("D1", 0.9), ("D2", 1.1)):
        for stage, share in shares.items():
            rows.append(
                tidy_row(
                    stage, round(900 * share * scale), 900, measure="cumulative", group_type="district", group=district
                )
            )
    return pd.DataFrame(rows)


def reaim_frame() -> pd.DataFrame:
    rows = []
    for i, dimension in enumerate(REAIM):
        outcome = {"effectiveness": "response", "adoption": "adoption_settings"}.get(dimension, dimension)
        measure = (
            "of_rolled_out" if dimension == "adoption" else ("mean" if dimension == "implementation" else "proportion")
        )
        for stratum, denominator in (("all", 900), ("Q1", 300), ("Q5", 250)):
            rows.append(
                tidy_row(
                    outcome,
                    round(denominator * (0.3 + 0.1 * i)),
                    denominator,
                    domain=dimension,
                    measure=measure,
                    stratum_dimension="all" if stratum == "all" else "wealth_quintile",
                    stratum=stratum,
                )
            )
    return pd.DataFrame(rows)


def to_dict(frame: pd.DataFrame, notes: tuple[str, ...] = ()) -> dict[str, Any]:
    records = json.loads(frame.to_json(orient="records"))
    return {"kind": "outcome", "level": 0.95, "settings": {}, "notes": list(notes), "rows": records}


def synthetic_results() -> dict[str, Any]:
    proctor = pd.DataFrame(
        [
            tidy_row("adoption", 30, 40, domain="proctor", measure="sites"),
            tidy_row("fidelity", 620, 800, domain="proctor", measure="mean"),
        ]
    )
    perceptions = pd.DataFrame(
        [
            {**tidy_row("AIM", 400, 100, domain="perceptions", measure="mean"), "conf_low": 3.8, "conf_high": 4.2},
            {**tidy_row("FIM", 360, 100, domain="perceptions", measure="mean"), "conf_low": 3.4, "conf_high": 3.8},
        ]
    )
    return {
        "project": {"name": "Synthetic programme", "start": "2024-01-01", "end": "2024-12-31", "threshold": 11},
        "cascade": to_dict(cascade_frame(), notes=("Need is an estimate.",)),
        "reaim": to_dict(reaim_frame()),
        "proctor": to_dict(proctor),
        "perceptions": to_dict(perceptions),
        "provenance": {
            "loads": [
                {
                    "load_id": 1,
                    "loaded_at": "2024-01-01T09:00:00",
                    "table_name": "persons",
                    "file": "/data/persons.csv",
                    "sha256": "abcdef0123456789" * 4,
                    "rows": 3000,
                },
                {
                    "load_id": 2,
                    "loaded_at": "2024-02-01T09:00:00",
                    "table_name": "persons",
                    "file": "/data/persons.csv",
                    "sha256": "fedcba9876543210" * 4,
                    "rows": 3100,
                },
            ]
        },
        "truth": {
            "description": "Known values of the synthetic programme.",
            "att": {"effective_per_1000": 0.1},
            "comparison": [{"quantity": "effective coverage", "truth": 0.12, "estimate": 0.118}],
            "parameters": {"prevalence": 0.14, "shares": [0.2, 0.8]},
        },
    }


def make_project(root: Path, *, threshold: int = 11) -> Project:
    return Project(
        root=root,
        name="Synthetic programme",
        start=dt.date(2024, 1, 1),
        end=dt.date(2024, 12, 31),
        sources=(),
        strata=(),
        disclosure_threshold=threshold,
    )


class PageParser(HTMLParser):
    """Collects what the assertions need: tags with URLs, cell texts, captions, headings, JSON blocks."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[tuple[str, str, str]] = []
        self.cells: list[str] = []
        self.captions: list[str] = []
        self.headings: list[str] = []
        self.tables = 0
        self.json_blocks: dict[str, str] = {}
        self.charts: list[dict[str, str]] = []
        self.figures: list[dict[str, str]] = []
        self.html_lang = ""
        self._stack: list[tuple[str, dict[str, str]]] = []
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        for name in ("src", "href", "action", "data", "poster"):
            if name in values:
                self.urls.append((tag, name, values[name]))
        if tag == "html":
            self.html_lang = values.get("lang", "")
        if tag == "table":
            self.tables += 1
        if tag == "div" and "data-spec" in values:
            self.charts.append(values)
        if tag == "figure":
            self.figures.append(values)
        self._stack.append((tag, values))
        self._text = []

    def handle_endtag(self, tag: str) -> None:
        text = "".join(self._text).strip()
        if self._stack:
            open_tag, values = self._stack.pop()
            if open_tag == "td" or (open_tag == "span" and self._stack and self._stack[-1][0] == "td"):
                self.cells.append(text)
            elif open_tag == "caption":
                self.captions.append(text)
            elif open_tag in ("h1", "h2", "h3"):
                self.headings.append(open_tag)
            elif open_tag == "script" and values.get("type") == "application/json":
                self.json_blocks[values.get("id", "")] = text
        self._text = []

    def handle_data(self, data: str) -> None:
        self._text.append(data)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("report")
    results = synthetic_results()
    files = build_report(make_project(out), results, out_dir=out / "report")
    html = files.html.read_text(encoding="utf-8")
    parser = PageParser()
    parser.feed(html)
    return {"files": files, "html": html, "page": parser, "results": results}


def page_without_scripts(html: str) -> str:
    """The page minus its script elements (libraries and chart data are checked separately)."""
    return re.sub(r"<script\b[^>]*>.*?</script>", "", html, flags=re.S)


def chart_specs(page: PageParser) -> list[dict[str, Any]]:
    return [json.loads(text) for key, text in page.json_blocks.items() if key.endswith("-spec")]


def walk_values(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [v for item in value.values() for v in walk_values(item)]
    if isinstance(value, list):
        return [v for item in value for v in walk_values(item)]
    return [value]


def test_writes_index_and_results(report: dict[str, Any]) -> None:
    files = report["files"]
    assert files.html.name == "index.html" and files.html.exists()
    assert files.json.name == "results.json" and files.json.exists()
    published = json.loads(files.json.read_text(encoding="utf-8"))
    for section in ("cascade", "reaim", "proctor", "perceptions", "provenance", "project", "truth"):
        assert section in published
    assert published["disclosure"]["threshold"] == 11


def test_results_json_is_strict_json(report: dict[str, Any]) -> None:
    text = report["files"].json.read_text(encoding="utf-8")
    for token in ("NaN", "Infinity"):
        assert token not in text
    json.loads(text, parse_constant=lambda name: pytest.fail(f"results.json holds {name}"))


def test_page_is_offline(report: dict[str, Any]) -> None:
    page, html = report["page"], report["html"]
    external = [u for u in page.urls if re.match(r"^\s*(https?:)?//", u[2], flags=re.I)]
    assert external == []
    assert not re.search(r"<link[^>]+stylesheet", html, flags=re.I)
    assert not re.search(r"@import|url\(\s*['\"]?(https?:)?//", page_without_scripts(html), flags=re.I)
    assert "Content-Security-Policy" in html and "connect-src 'none'" in html
    # The chart libraries are inlined once.
    assert len(re.findall(r"window\.vegaEmbed\s*=", html)) == 1


def test_each_chart_is_a_valid_vega_lite_spec(report: dict[str, Any]) -> None:
    page = report["page"]
    specs = chart_specs(page)
    assert len(specs) == len(page.charts) >= 5
    for spec in specs:
        assert "vega-lite" in spec["$schema"]
        assert spec["description"]
        vl_convert.vegalite_to_vega(spec)  # raises on an invalid specification


def test_small_cells_are_suppressed_in_page(report: dict[str, Any]) -> None:
    page, html = report["page"], report["html"]
    assert "<11" in page.cells
    assert "suppressed" in page.cells
    assert str(SMALL_DENOMINATOR) not in page.cells
    visible = page_without_scripts(html)
    for pattern in SMALL_PATTERNS:
        assert not re.search(pattern, visible), pattern
    assert 'id="suppression"' in html and "Counts from 1 to 10 are not shown" in html


def test_small_cells_are_suppressed_in_chart_data(report: dict[str, Any]) -> None:
    values = [v for spec in chart_specs(report["page"]) for v in walk_values(spec.get("datasets", {}))]
    numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    assert SMALL_DENOMINATOR not in numbers
    assert not any(math.isclose(v, SMALL_ESTIMATE, rel_tol=1e-6) for v in numbers)


def test_small_cells_are_suppressed_in_results_json(report: dict[str, Any]) -> None:
    text = report["files"].json.read_text(encoding="utf-8")
    published = json.loads(text)
    rows = published["cascade"]["rows"]
    small = [r for r in rows if r["stratum"] == "male" and r["outcome"] == "effective"]
    assert small and all(r["suppressed"] for r in small)
    for row in small:
        assert row["numerator"] is None and row["denominator"] is None
        assert row["estimate"] is None and row["conf_low"] is None and row["conf_high"] is None
    numbers = [v for v in walk_values(published) if isinstance(v, float)]
    assert not any(math.isclose(v, SMALL_ESTIMATE, rel_tol=1e-6) for v in numbers)
    # With the "all" row published, a shown female count would give the male one away by subtraction, so the
    # female row is hidden too (complementary suppression) while the all-people row stays in view.
    female = [r for r in rows if r["stratum"] == "female" and r["outcome"] == "effective"]
    assert female and all(r["suppressed"] and r["numerator"] is None for r in female)
    everyone = [r for r in rows if r["stratum"] == "all" and r["outcome"] == "effective" and r["group"] == "all"]
    assert everyone and all(r["suppressed"] is False and r["numerator"] is not None for r in everyone)


def test_accessibility_basics(report: dict[str, Any]) -> None:
    page, html = report["page"], report["html"]
    assert page.html_lang == "en"
    assert page.headings[0] == "h1" and page.headings.count("h1") == 1
    assert "h2" in page.headings
    assert page.tables == len(page.captions) and all(page.captions)
    assert len(page.figures) == len(page.charts)
    assert all(f.get("aria-labelledby") for f in page.figures)
    assert '<meta name="viewport"' in html
    assert "How to read this report" in html


def test_provenance_and_truth_box(report: dict[str, Any]) -> None:
    page, html = report["page"], report["html"]
    assert "fedcba987654" in page.cells  # checksum prefix of the latest load
    assert "fedcba9876543210fedc" not in html  # never the whole digest
    assert "abcdef012345" not in page.cells  # an earlier load is not listed
    assert "persons.csv" in page.cells and "3,100" in page.cells
    assert 'id="truth"' in html and "effective coverage" in page.cells


def test_no_truth_box_without_truth(tmp_path: Path) -> None:
    results = synthetic_results()
    del results["truth"]
    files = build_report(make_project(tmp_path), results)
    assert files.html == tmp_path / "report" / "index.html"
    assert 'id="truth"' not in files.html.read_text(encoding="utf-8")


def test_marker_follows_the_project_threshold(tmp_path: Path) -> None:
    # Two unrelated series (a male-only row under its all-people total would be hidden with it, as a complement).
    frame = pd.DataFrame([tidy_row("reach", 3, 40), tidy_row("detected", 6, 60, stratum_dimension="sex",
                                                             stratum="male")])
    section = ReportSection("Reach", "Who is reached.", tables=[ReportTable(frame, "Reach by sex")])
    files = build_report(make_project(tmp_path, threshold=5), {"reaim": {}}, sections=[section])
    page = PageParser()
    page.feed(files.html.read_text(encoding="utf-8"))
    assert page.cells.count("<5") == 1  # 3 is small; its row's denominator reads "suppressed"
    assert "6" in page.cells and "60" in page.cells  # 6 of 60 is shown at threshold 5
    assert "<11" not in page.cells


def test_custom_sections_keep_their_order_and_suppress_foreign_charts(tmp_path: Path) -> None:
    frame = pd.DataFrame([tidy_row("a", 5, 50), tidy_row("b", 30, 60)])
    frame["percent"] = frame["estimate"] * 100  # a figure derived under a name the rule does not know
    chart = alt.Chart(frame).mark_bar().encode(x="outcome:N", y="percent:Q")
    sections = [
        ReportSection("Second thing", tables=[frame.drop(columns="percent")]),
        ReportSection("First thing", charts=[chart], notes=["A note."]),
    ]
    files = build_report(make_project(tmp_path), {}, sections=sections)
    html = files.html.read_text(encoding="utf-8")
    assert html.index("Second thing") < html.index("First thing")
    page = PageParser()
    page.feed(html)
    (spec,) = chart_specs(page)
    records = [r for rows in spec["datasets"].values() for r in rows]
    hidden = next(r for r in records if r["outcome"] == "a")
    assert hidden["suppressed"] is True and hidden["percent"] is None and hidden["numerator"] is None
    assert next(r for r in records if r["outcome"] == "b")["percent"] == pytest.approx(50.0)


def test_publishable_results_walks_nested_records() -> None:
    results = {
        "reaim": {"reach": {"numerator": 3, "denominator": 90, "estimate": 1 / 30, "conf_low": 0.01, "conf_high": 0.1}},
        "rows": [{"outcome": "x", "n": 40, "estimate": 0.5}, {"outcome": "y", "n": 2, "estimate": float("nan")}],
        "provenance": [{"file": "a.csv", "rows": 5}],
        "when": dt.date(2024, 1, 1),
    }
    before = json.dumps(results, default=str)
    out = publishable_results(results, 11)
    assert json.dumps(results, default=str) == before  # the input is not modified
    assert out["reaim"]["reach"] == {
        "numerator": None,
        "denominator": None,
        "estimate": None,
        "conf_low": None,
        "conf_high": None,
        "suppressed": True,
    }
    assert out["rows"][0] == {"outcome": "x", "n": 40, "estimate": 0.5, "suppressed": False}
    assert out["rows"][1]["n"] is None and out["rows"][1]["suppressed"] is True
    assert out["provenance"] == [{"file": "a.csv", "rows": 5}]  # file row counts are not small cells
    assert out["when"] == "2024-01-01"
    json.dumps(out, allow_nan=False)


def test_publishable_results_is_idempotent() -> None:
    results = {"rows": [{"numerator": 4, "denominator": 40, "estimate": 0.1}, {"numerator": 0, "denominator": 40}]}
    once = publishable_results(results, 11)
    assert publishable_results(once, 11) == once
    assert once["rows"][1] == {"numerator": 0, "denominator": 40, "suppressed": False}  # zeros are shown


def test_chart_builders_suppress_before_drawing() -> None:
    frame = cascade_frame()
    overall = frame[frame["group_type"] == "overall"]
    # Effective coverage by sex has male = 7 under a published total, so female is hidden as its complement:
    # no stratum is left to draw.
    with pytest.raises(ParameterError, match="no equity strata"):
        reach_gaps(overall, outcome="effective")
    builders = [
        cascade_funnel(overall),
        reach_gaps(overall, outcome="started"),
        monthly_trend(frame),
        group_comparison(frame, group_type="district"),
    ]
    for chart in builders:
        spec = chart_spec(chart, threshold=11)
        numbers = [v for v in walk_values(spec.get("datasets", {})) if isinstance(v, float)]
        assert not any(math.isclose(v, SMALL_ESTIMATE, rel_tol=1e-6) for v in numbers)
        assert spec.get("description")


def test_chart_builders_bind_dropdowns() -> None:
    funnel = cascade_funnel(cascade_frame().query("group_type == 'overall'")).to_dict()
    assert funnel["params"][0]["bind"]["input"] == "select"
    panel = reaim_panel(reaim_frame().assign(outcome=reaim_frame()["domain"])).to_dict()
    assert panel["params"][0]["name"] == "equity_dimension"
    months = pd.date_range("2024-01-01", periods=4, freq="MS")
    sites = pd.DataFrame(
        [
            {**tidy_row("started", 20 + i, 60, group_type="site", group=f"S{s}"), "period": m}
            for i, m in enumerate(months)
            for s in (1, 2)
        ]
    )
    trend = trend_chart(sites).to_dict()
    assert trend["params"][0]["bind"]["options"] == ["S1", "S2"]


def test_sections_from_results_lays_out_known_sections() -> None:
    sections = sections_from_results(synthetic_results())
    assert [s.key for s in sections] == ["cascade", "reaim", "proctor", "perceptions"]
    cascade = sections[0]
    assert len(cascade.charts) >= 3 and cascade.notes == ("Need is an estimate.",)
    captions = [t.caption for t in cascade.tables if isinstance(t, ReportTable)]
    assert any("by equity stratum" in c for c in captions) and any("by district" in c for c in captions)


@pytest.mark.browser
def test_synthetic_report_renders_in_chromium(report: dict[str, Any], tmp_path: Path) -> None:
    """Every chart draws, with no console message, no page error and no request beyond the file itself."""
    if not CHROMIUM.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{CHROMIUM} is missing; the browser tests need Debian's chromium under CI")
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium, or `make browser`)")
    page_url = report["files"].html.resolve().as_uri()
    messages: list[str] = []
    requests: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.on("console", lambda m: messages.append(f"{m.type}: {m.text}"))
            page.on("pageerror", lambda e: messages.append(f"pageerror: {e}"))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(page_url)
            page.wait_for_selector(".chart[data-rendered='true'] svg", timeout=30_000)
            page.wait_for_function(
                "() => [...document.querySelectorAll('.chart')].every(e => e.dataset.rendered !== 'pending')",
                timeout=30_000,
            )
            states = page.eval_on_selector_all(
                ".chart", "els => els.map(e => [e.dataset.rendered, !!e.querySelector('svg, canvas')])"
            )
            page.select_option(".chart select >> nth=0", index=0)
            page.screenshot(path=str(tmp_path / "synthetic.png"), full_page=True)
        finally:
            browser.close()
    assert states and all(state == ["true", True] for state in states)
    assert messages == []
    assert requests == [page_url]


# ---------------------------------------------------------------- what each count counts (units)
#
# Small counts of sites, sums of scores and money are not counts of people and are shown; people, providers
# and sessions (and rows that do not say what they count) fall under the rule. Each row below is tagged as the
# outcomes tag their tidy rows.
UNIT_ROWS = {
    "sites": tidy_row("adoption", 3, 5, domain="proctor", measure="sites", unit="sites", denominator_unit="sites"),
    "fidelity": {
        **tidy_row("fidelity", 7.5, 20, domain="proctor", measure="mean", unit="score", denominator_unit="sessions"),
    },
    "fidelity_few_sessions": tidy_row(
        "fidelity", 6.0, 8, domain="proctor", measure="mean", unit="score", denominator_unit="sessions"
    ),
    "cost_few_people": {
        **tidy_row("cost", 3300, 3, measure="per_participant", unit="money", denominator_unit="people"),
        "estimate": 1100.0,
    },
    "cost_total": {**tidy_row("cost", 9, 1, measure="total", unit="money", denominator_unit="money"), "estimate": 9.0},
    "providers": tidy_row("adoption", 4, 9, measure="providers", unit="providers", denominator_unit="providers"),
    "people_zero": tidy_row("effective", 0, 500, measure="cumulative", unit="people", denominator_unit="people"),
    "no_unit": tidy_row("reach", 3, 40),
}


def test_only_counts_of_people_are_suppressed_in_results_json() -> None:
    names = list(UNIT_ROWS)
    out = publishable_results({"rows": [UNIT_ROWS[n] for n in names]}, 11)
    rows = dict(zip(names, out["rows"], strict=True))
    # 3 of 5 sites: shown, with its estimate and interval
    assert rows["sites"]["suppressed"] is False
    assert (rows["sites"]["numerator"], rows["sites"]["denominator"]) == (3, 5)
    assert rows["sites"]["estimate"] == pytest.approx(0.6)
    # a fidelity score sum of 7.5 over 20 sessions is shown; over 8 sessions the session count is small
    assert rows["fidelity"]["suppressed"] is False and rows["fidelity"]["numerator"] == pytest.approx(7.5)
    assert rows["fidelity_few_sessions"]["suppressed"] is True and rows["fidelity_few_sessions"]["estimate"] is None
    # money over 3 people: the people count is small, so the whole row goes, the money included
    cost = rows["cost_few_people"]
    assert cost["suppressed"] is True and cost["numerator"] is None and cost["estimate"] is None
    # a total of 9 (money) is not a small cell
    assert rows["cost_total"]["suppressed"] is False and rows["cost_total"]["numerator"] == 9
    # providers are staff, few enough to be named: 4 of 9 is suppressed
    assert rows["providers"]["suppressed"] is True and rows["providers"]["numerator"] is None
    # 0 of 500 people: a zero is not disclosive and the denominator is large
    zero = rows["people_zero"]
    assert zero["suppressed"] is False and (zero["numerator"], zero["denominator"], zero["estimate"]) == (0, 500, 0.0)
    # a row that does not say what it counts is treated as counting people
    assert rows["no_unit"]["suppressed"] is True and rows["no_unit"]["numerator"] is None
    # the unit columns are published with the figures
    assert rows["sites"]["unit"] == "sites" and rows["cost_few_people"]["denominator_unit"] == "people"


def test_rounding_applies_to_counts_of_people_only() -> None:
    frame = pd.DataFrame([UNIT_ROWS["sites"], tidy_row("reach", 42, 97, unit="people", denominator_unit="people")])
    out = suppress_frame(frame, threshold=3, rounding=5)
    assert out.frame["numerator"].tolist() == [3, 40]  # 3 sites left as they are; 42 people rounded to 40
    assert out.frame["denominator"].tolist() == [5, 95]
    assert not out.blanked.to_numpy().any()


def test_small_site_counts_reach_page_and_charts(tmp_path: Path) -> None:
    proctor = pd.DataFrame(
        [
            {**UNIT_ROWS["sites"], "group_type": group_type, "group": group}
            for group_type, group in (("overall", "all"), ("district", "D1"), ("district", "D2"))
        ]
        + [
            {**UNIT_ROWS["providers"], "group_type": group_type, "group": group}
            for group_type, group in (("overall", "all"), ("district", "D1"))
        ]
    )
    results = {"proctor": to_dict(proctor)}
    files = build_report(make_project(tmp_path), results)
    page = PageParser()
    page.feed(files.html.read_text(encoding="utf-8"))
    assert "3" in page.cells and "60.0%" in page.cells  # 3 of 5 sites, 60%
    assert page.cells.count("<11") == 4  # the providers' 4 and 9, overall and in D1
    records = [r for spec in chart_specs(page) for rows in spec.get("datasets", {}).values() for r in rows]
    sites = [r for r in records if r.get("unit") == "sites"]
    assert sites and all(r["numerator"] == 3 and r["suppressed"] is False for r in sites)
    providers = [r for r in records if r.get("unit") == "providers"]
    assert providers and all(r["numerator"] is None and r["suppressed"] is True for r in providers)
    published = json.loads(files.json.read_text(encoding="utf-8"))
    assert [r["suppressed"] for r in published["proctor"]["rows"]] == [False, False, False, True, True]


# ---------------------------------------------------------------- trends by site and district


def trend_rows() -> pd.DataFrame:
    """Two districts (D1: S1, S2; D2: S3), three months, two measures; S3 in March holds 4 of 60 people."""
    rows = []
    months = ("2024-01", "2024-02", "2024-03")
    for outcome, share in (("reach", 0.3), ("screening_coverage", 0.5)):
        for i, month in enumerate(months):
            for site in ("S1", "S2", "S3"):
                k = 4 if (site == "S3" and month == "2024-03" and outcome == "reach") else round(60 * share) + i
                rows.append(tidy_row(outcome, k, 60, group_type="site_month", group=site, period=month))
            for district, n in (("D1", 120), ("D2", 60)):
                rows.append(
                    tidy_row(
                        outcome, round(n * share) + i, n, group_type="district_month", group=district, period=month
                    )
                )
            rows.append(tidy_row(outcome, round(180 * share) + i, 180, group_type="month", group=month, period=month))
    frame = pd.DataFrame(rows).assign(domain="trends", unit="people", denominator_unit="people")
    return frame


def test_trend_section_draws_sites_and_districts() -> None:
    section = tidy_section("trends", trend_rows(), threshold=11)
    assert section.title == "Trends by site and district"
    specs = [chart_spec(c, threshold=11) for c in section.charts]
    assert len(specs) == 2
    for spec, place, names in zip(specs, ("district", "site"), (["D1", "D2"], ["S1", "S2", "S3"]), strict=True):
        params = {p["name"]: p for p in spec["params"]}
        assert params[f"focus_{place}"]["bind"]["options"] == names
        assert params[f"outcome_{place}"]["bind"]["options"] == ["reach", "screening_coverage"]
        vl_convert.vegalite_to_vega(spec)  # a valid specification
        records = [r for rows in spec["datasets"].values() for r in rows]
        # the programme's months are the overall line in both charts
        assert sum(r["group_type"] == "overall" for r in records) == 6
    site_records = [r for rows in specs[1]["datasets"].values() for r in rows]
    small = [r for r in site_records if r["group"] == "S3" and r["outcome"] == "reach" and r["period"] == "2024-03-01"]
    assert len(small) == 1 and small[0]["suppressed"] is True and small[0]["numerator"] is None
    assert small[0]["estimate"] is None and small[0]["conf_low"] is None
    numbers = [v for v in walk_values(specs[1]["datasets"]) if isinstance(v, float)]
    assert not any(math.isclose(v, 4 / 60, rel_tol=1e-6) for v in numbers)
    # tables: the latest month only, per district and per site, with the small cell marked
    captions = [t.caption for t in section.tables if isinstance(t, ReportTable)]
    assert captions == ["Trends: by district, March 2024", "Trends: by site, March 2024"]
    site_table = render_table(section.tables[1], threshold=11)
    assert site_table.total_rows == 6 and "Unit" not in site_table.headers
    assert "<11" in [cell.text for row in site_table.rows for cell in row]


def test_trends_follow_the_cascade_in_the_report(tmp_path: Path) -> None:
    results = {"trends": to_dict(trend_rows()), **synthetic_results()}
    sections = sections_from_results(results)
    assert [s.key for s in sections][:3] == ["cascade", "trends", "reaim"]
    files = build_report(make_project(tmp_path), results)
    html = files.html.read_text(encoding="utf-8")
    assert 'id="trends"' in html and "Sites month by month" in html and "Districts month by month" in html
    published = json.loads(files.json.read_text(encoding="utf-8"))
    small = [
        r
        for r in published["trends"]["rows"]
        if r["group"] == "S3" and r["outcome"] == "reach" and r["period"] == "2024-03"
    ]
    assert small[0]["suppressed"] is True and small[0]["numerator"] is None


def test_blanked_score_sum_is_not_marked_as_a_small_count() -> None:
    frame = pd.DataFrame([UNIT_ROWS["fidelity_few_sessions"], UNIT_ROWS["fidelity"]])
    table = render_table(ReportTable(frame, "Fidelity", hidden_columns=("unit", "denominator_unit")), threshold=11)
    numerator, denominator = table.headers.index("Numerator"), table.headers.index("Denominator")
    first, second = ([cell.text for cell in row] for row in table.rows)
    # 8 sessions is a small count of contacts; the score sum 6.0 goes with its row but is not a count
    assert (first[numerator], first[denominator]) == ("suppressed", "<11")
    assert (second[numerator], second[denominator]) == ("7.50", "20")  # a score sum, shown to two places
    assert "Unit" not in table.headers
