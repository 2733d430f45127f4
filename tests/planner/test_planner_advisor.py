"""The design advisor (example programme and hand-written constraints), results and the ``knowdo plan`` CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from knowdo.commands.plan import register
from knowdo.designs.planner import Constraints, advise, advise_file, plan_crt, plan_stepped_wedge
from knowdo.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[2] / "src" / "knowdo" / "designs" / "planner" / "examples" / \
    "example_programme.toml"


def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)

    @app.callback()
    def _root() -> None:
        """Root (needed so typer keeps the group name)."""

    return app


def test_example_programme_advice() -> None:
    advice = advise_file(EXAMPLE)
    assert advice.credible
    designs = [r.design for r in advice.recommendations]
    assert designs[0] == "stepped-wedge"  # randomisable order, waves and enough power: strongest design first
    assert {"staggered-did", "did", "its"} <= set(designs)
    rejected = {r.design: r.reasons for r in advice.rejected}
    assert "parallel-crt" in rejected and "individual-rct" in rejected
    # 12 donors cannot give p < 0.05 by placebo inference (smallest p = 1/13).
    assert any("12 donors" in reason for reason in rejected["synthetic-control"])
    for rec in advice.recommendations:
        assert rec.source and rec.estimator.startswith("knowdo.designs.")
        assert rec.assumptions and rec.threats
    frame = advice.to_frame()
    assert list(frame["rank"]) == list(range(1, len(frame) + 1))
    json.dumps(advice.to_dict())


def test_policy_without_comparison_leaves_only_its() -> None:
    c = Constraints(units=30, size_per_period=40, policy=True, randomisable="units", rollout="all-at-once",
                    periods_before=24, periods_after=24, baseline=0.3, effect=0.05)
    advice = advise(c)
    assert [r.design for r in advice.recommendations] == ["its"]
    assert "parallel-crt" in {r.design for r in advice.rejected}  # a policy cannot be randomised


def test_no_credible_design_is_said_plainly() -> None:
    advice = advise(Constraints(units=3, periods_before=0, periods_after=2))
    assert not advice.credible and not advice.recommendations
    assert advice.verdict.startswith("no credible design exists")
    underpowered = advise(Constraints(units=1, periods_before=24, periods_after=24, effect=0.005, size_per_period=10))
    assert not underpowered.credible and "uninformative" in underpowered.verdict


def test_randomised_parallel_trial_ranked_first_when_powered() -> None:
    c = Constraints(units=40, size_per_period=20, randomisable="units", rollout="all-at-once", periods_before=3,
                    periods_after=6, comparison=True, comparison_units=40, baseline=0.3, effect=0.08)
    advice = advise(c)
    top = advice.recommendations[0]
    assert top.design == "parallel-crt" and top.power is not None and top.power >= 0.8
    assert top.plan is not None and top.plan.parameters["baseline"] == "ancova"


def test_bad_constraints_file_is_reported(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[units]\ncount = 10\ncolour = 'blue'\n")
    with pytest.raises(ConfigError, match="unknown key 'colour'"):
        advise_file(bad)
    broken = tmp_path / "broken.toml"
    broken.write_text("[study\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        advise_file(broken)
    with pytest.raises(ConfigError, match="does not exist"):
        advise_file(tmp_path / "missing.toml")


def test_power_result_views() -> None:
    result = plan_crt(icc=0.05, clusters_per_arm=10, cluster_size=20, delta=0.3, sd=1.0)
    frame = result.to_frame()
    assert frame.set_index("quantity").loc["power", "value"] == pytest.approx(result.power)
    assert "design_effect" in set(frame["quantity"])
    payload = json.loads(json.dumps(result.to_dict()))
    assert payload["clusters"] == 20 and payload["sources"]
    assert "power" in result.summary()
    spec = result.plot().to_dict()
    assert "layer" in spec
    with pytest.raises(AttributeError):
        result.power = 0.5  # type: ignore[misc]


def test_cli_stepped_wedge_power_and_size() -> None:
    runner = CliRunner()
    base = ["plan", "stepped-wedge", "--clusters", "24", "--steps", "4", "--p0", "0.05", "--p1", "0.035",
            "--tau", "0.01", "--json"]
    out = runner.invoke(_app(), [*base, "--cluster-period-size", "120"])
    assert out.exit_code == 0, out.output
    payload = json.loads(out.output)
    assert payload["ok"] and payload["power"] == pytest.approx(0.7861896, abs=5e-8)  # swCRTdesign README
    solved = json.loads(runner.invoke(_app(), [*base, "--power", "0.8"]).output)
    size = solved["parameters"]["cluster_period_size"]
    assert solved["power"] >= 0.8
    below = plan_stepped_wedge(clusters=24, steps=4, cluster_period_size=size - 1, p0=0.05, p1=0.035, tau=0.01)
    assert below.power < 0.8


def test_cli_reports_user_errors() -> None:
    out = CliRunner().invoke(_app(), ["plan", "crt", "--icc", "0.1", "--json"])
    assert out.exit_code == 1
    payload = json.loads(out.output)
    assert payload == {"ok": False, "error": "ParameterError", "message": payload["message"]}
    assert "sd" in payload["message"]


def test_cli_advise() -> None:
    out = CliRunner().invoke(_app(), ["plan", "advise", "--constraints", str(EXAMPLE), "--json"])
    assert out.exit_code == 0, out.output
    payload = json.loads(out.output)
    assert payload["ok"] and payload["recommendations"][0]["design"] == "stepped-wedge"


def test_advice_results_entry_for_the_report() -> None:
    entry = advise_file(EXAMPLE).to_results()
    assert entry["summary"].startswith("3 design(s)") or "design" in entry["summary"]
    assert entry["designs"][0]["design"] == "stepped-wedge"
    assert any(note.startswith("Not feasible") for note in entry["notes"])
    json.dumps(entry)
