"""``knowdo estimate``: the CLI reproduces the reference numbers of the designs it wraps and fails cleanly."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from knowdo.commands.estimate import register


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    app = typer.Typer()
    register(app)

    @app.command("noop")  # a second command keeps typer from collapsing the app into the single command
    def noop() -> None:
        pass

    return app


def _run(app: typer.Typer, *args: str) -> Any:
    return CliRunner().invoke(app, ["estimate", *args])


def _json(app: typer.Typer, *args: str) -> dict[str, Any]:
    result = _run(app, *args, "--json")
    assert result.exit_code == 0, result.output
    payload: dict[str, Any] = json.loads(result.stdout)
    assert payload["ok"] is True
    return payload


def test_did_reproduces_r_did_simple_att(app: typer.Typer, shared_dir: Path) -> None:
    payload = _json(app, "did", "--data", str(shared_dir / "reference" / "mpdta.csv"), "--outcome", "lemp",
                    "--unit", "countyreal", "--time", "year", "--cohort", "first.treat")
    # R did 2.5.x aggte(type="simple"), no covariates, never-treated, dr: -0.03995 (SE 0.01203)
    # [reference/README.md section 1a, scenario A]
    assert payload["estimate"] == pytest.approx(-0.03995, abs=5e-6)
    assert payload["se"] == pytest.approx(0.01203, abs=5e-6)
    assert payload["ci_low"] < payload["estimate"] < payload["ci_high"]
    assert payload["cli_design"] == "did"
    # 3 cohorts x 4 periods of ATT(g,t) (same section)
    assert len(payload["details"]["att_gt"]) == 12
    assert payload["settings"]["cohort"] == "first.treat"


def test_rd_reproduces_rdrobust_senate(app: typer.Typer, shared_dir: Path) -> None:
    payload = _json(app, "rd", "--data", str(shared_dir / "reference" / "rdrobust_senate.csv"),
                    "--outcome", "vote", "--running", "margin")
    # rdrobust(vote, margin) defaults: conventional 7.414 (SE 1.459), h 17.754, b 28.028 [reference/README.md section 3]
    conventional = {row["method"]: row for row in payload["details"]["estimates"]}["conventional"]
    assert conventional["estimate"] == pytest.approx(7.414, abs=5e-4)
    assert conventional["std_error"] == pytest.approx(1.459, abs=5e-4)
    bandwidth = {row["bandwidth"]: row for row in payload["details"]["bandwidth"]}
    assert bandwidth["h"]["left"] == pytest.approx(17.754, abs=5e-4)
    assert bandwidth["b"]["right"] == pytest.approx(28.028, abs=5e-4)


def test_its_quasipoisson_with_offset_and_seasonality(app: typer.Typer, shared_dir: Path) -> None:
    payload = _json(app, "its", "--data", str(shared_dir / "reference" / "sicily_smoking_ban_aces.csv"),
                    "--outcome", "aces", "--time", "time", "--start", "37", "--family", "quasipoisson",
                    "--offset", "stdpop", "--seasonality", "fourier", "--season", "month")
    # Default keeps a slope change, i.e. model M4 of Lopez Bernal et al. 2017: RR 0.8765 (0.8268, 0.9292)
    # [reference/README.md section 4]; the estimate is on the log scale
    assert math.exp(payload["estimate"]) == pytest.approx(0.8765, abs=5e-4)
    assert math.exp(payload["ci_low"]) == pytest.approx(0.8268, abs=5e-4)
    assert math.exp(payload["ci_high"]) == pytest.approx(0.9292, abs=5e-4)
    assert payload["path"] and payload["path"][0]["time"] == 37


def test_text_output_is_the_summary(app: typer.Typer, shared_dir: Path) -> None:
    result = _run(app, "rd", "--data", str(shared_dir / "reference" / "rdrobust_senate.csv"),
                  "--outcome", "vote", "--running", "margin")
    assert result.exit_code == 0, result.output
    assert "estimate 7.414" in result.stdout


def test_missing_column_is_named(app: typer.Typer, shared_dir: Path) -> None:
    result = _run(app, "did", "--data", str(shared_dir / "reference" / "mpdta.csv"), "--outcome", "no_such_col",
                  "--unit", "countyreal", "--time", "year", "--cohort", "first.treat")
    assert result.exit_code == 1
    assert "no_such_col" in result.output
    assert "Traceback" not in result.output


def test_json_error_payload(app: typer.Typer, shared_dir: Path) -> None:
    result = _run(app, "rd", "--data", str(shared_dir / "reference" / "rdrobust_senate.csv"), "--outcome", "vote",
                  "--json")
    assert result.exit_code == 1
    payload = json.loads(result.stdout)
    assert payload["ok"] is False and "--running" in payload["message"]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["regress", "--data", "{csv}"], "unknown design"),
        (["rd", "--data", "{missing}", "--outcome", "vote", "--running", "margin"], "no such file"),
        (["rd", "--data", "{csv}", "--outcome", "vote", "--running", "margin", "--cohort", "year"], "--cohort"),
        (["did", "--data", "{csv}", "--outcome", "lemp", "--unit", "countyreal", "--time", "year",
          "--cohort", "first.treat", "--est-method", "bogus"], "bogus"),
    ],
)
def test_user_errors_exit_1(app: typer.Typer, shared_dir: Path, tmp_path: Path, args: list[str], needle: str) -> None:
    csv = str(shared_dir / "reference" / "mpdta.csv")
    filled = [a.format(csv=csv, missing=str(tmp_path / "absent.csv")) for a in args]
    result = _run(app, *filled)
    assert result.exit_code == 1, result.output
    assert needle in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
