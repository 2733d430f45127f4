"""``knowdo estimate``: the CLI reproduces the reference numbers of the designs it wraps and fails cleanly."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from knowdo.commands.estimate import parse_options, parse_predictor, register
from knowdo.designs.synth import Predictor


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


def test_did_imputation_reproduces_the_peer_event_study(app: typer.Typer, shared_dir: Path) -> None:
    payload = _json(app, "did-imputation", "--data", str(shared_dir / "reference" / "mpdta.csv"), "--outcome",
                    "lemp", "--unit", "countyreal", "--time", "year", "--cohort", "first.treat",
                    "--option", "pretrend_periods=2")
    # CausalPy 0.9 imputation estimator on mpdta, e = 0..3 [reference/README.md section 1c]
    path = {row["time"]: row["estimate"] for row in payload["path"]}
    for event_time, value in {0: -0.0311, 1: -0.0522, 2: -0.1361, 3: -0.1047}.items():
        assert path[event_time] == pytest.approx(value, abs=5e-5)
    assert payload["ci_low"] < payload["estimate"] < payload["ci_high"]
    assert payload["settings"]["pretrend_periods"] == 2 and payload["diagnostics"]["pretrend_df"] == 2


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


# ---------------------------------------------------------------- generic settings (--option / --settings)

SICILY_ITS = ["--outcome", "aces", "--time", "time", "--start", "37", "--family", "quasipoisson", "--offset", "stdpop",
              "--seasonality", "fourier", "--season", "month"]


def test_its_m3_and_m4_through_generic_settings(app: typer.Typer, shared_dir: Path) -> None:
    csv = str(shared_dir / "reference" / "sicily_smoking_ban_aces.csv")
    m3 = _json(app, "its", "--data", csv, *SICILY_ITS, "--option", "slope_change=false", "--option", "harmonics=2",
               "--option", "errors=iid")
    m4 = _json(app, "its", "--data", csv, *SICILY_ITS, "--settings", '{"slope_change": true, "harmonics": 2}')
    # Lopez Bernal et al. 2017 models M3 (0.8851, 0.8394-0.9332) and M4 (0.8765, 0.8268-0.9292)
    # [reference/README.md section 4]; the estimate is the log rate ratio
    for payload, (rr, low, high) in ((m3, (0.8851, 0.8394, 0.9332)), (m4, (0.8765, 0.8268, 0.9292))):
        assert math.exp(payload["estimate"]) == pytest.approx(rr, abs=5e-5)
        assert math.exp(payload["ci_low"]) == pytest.approx(low, abs=5e-5)
        assert math.exp(payload["ci_high"]) == pytest.approx(high, abs=5e-5)
    assert m3["settings"]["slope_change"] is False and m4["settings"]["slope_change"] is True
    assert m3["settings"]["harmonics"] == 2


def test_scm_basque_with_predictors_and_windows(app: typer.Typer, shared_dir: Path, tmp_path: Path) -> None:
    # pysyncon's Basque Dataprep (reference/README.md section 2a), predictors as a JSON settings file
    school = ["school.illit", "school.prim", "school.med", "school.high", "school.post.high", "invest"]
    sectors = ["sec.agriculture", "sec.energy", "sec.industry", "sec.construction", "sec.services.venta",
               "sec.services.nonventa"]
    settings = {
        "predictors": [[c, "1964..1969"] for c in school] + [{"column": "gdpcap", "times": "1960..1969"}]
        + [[c, "1961..1969/2", "mean"] for c in sectors] + [["popdens", 1969]],
        "placebo": False, "leave_one_out": False,
    }
    path = tmp_path / "basque.json"
    path.write_text(json.dumps(settings))
    payload = _json(app, "scm", "--data", str(shared_dir / "reference" / "pysyncon_basque.csv"), "--outcome",
                    "gdpcap", "--unit", "regionname", "--time", "year", "--treated-unit",
                    "Basque Country (Pais Vasco)", "--treatment-time", "1970", "--settings", str(path),
                    "--option", "fit_times=1960..1969", "--option", "effect_times=1975..1997")
    weights = {row["unit"]: row["weight"] for row in payload["details"]["weights"]}
    assert weights["Cataluna"] == pytest.approx(0.8508, abs=0.005)  # Abadie & Gardeazabal 2003; pysyncon
    assert weights["Madrid (Comunidad De)"] == pytest.approx(0.1492, abs=0.005)
    assert payload["estimate"] == pytest.approx(-0.69956, abs=5e-5)  # pysyncon ATT 1975-1997
    assert len(payload["details"]["balance"]) == 14


def test_predictor_text_form_equals_json_form() -> None:
    text = parse_options(["predictors=gdpcap@1960..1969,sec.energy@1961..1969/2:median,popdens@1969"], None)
    listed = parse_options([], '{"predictors": [["gdpcap", [1960, 1961, 1962, 1963, 1964, 1965, 1966, 1967, 1968, '
                               '1969]], ["sec.energy", "1961..1969/2", "median"], '
                               '{"column": "popdens", "times": 1969}]}')
    a = [parse_predictor(p) for p in text["predictors"]]
    b = [parse_predictor(p) for p in listed["predictors"]]
    assert a == b
    assert a[1] == Predictor("sec.energy", (1961, 1963, 1965, 1967, 1969), "median")


def _staggered_csv(tmp_path: Path) -> str:
    rng = np.random.default_rng(0)
    rows = []
    for u in range(24):
        start = {20: 8, 21: 8, 22: 11, 23: 11}.get(u)
        level = rng.normal()
        for t in range(14):
            d = int(start is not None and t >= start)
            rows.append((u, t, level + 0.2 * t + 1.5 * d + rng.normal(0, 0.2), d))
    path = tmp_path / "staggered.csv"
    pd.DataFrame(rows, columns=["unit", "time", "y", "d"]).to_csv(path, index=False)
    return str(path)


def test_sdid_staggered_jackknife_and_stepped_wedge_decay_options(app: typer.Typer, tmp_path: Path) -> None:
    payload = _json(app, "sdid", "--data", _staggered_csv(tmp_path), "--outcome", "y", "--unit", "unit", "--time",
                    "time", "--treatment", "d", "--option", "se=jackknife")
    assert payload["estimate"] == pytest.approx(1.5, abs=0.3)
    assert [row["cohort"] for row in payload["details"]["cohorts"]] == [8, 11]
    assert payload["settings"]["se"] == "jackknife"
    rng = np.random.default_rng(1)
    rows = [(c, j, int(j >= 1 + c % 3), 0.5 * (j >= 1 + c % 3) + u + rng.normal())
            for c in range(9) for u in [rng.normal(0, 0.3)] for j in range(4) for _ in range(6)]
    path = tmp_path / "sw.csv"
    pd.DataFrame(rows, columns=["clinic", "month", "treated", "y"]).to_csv(path, index=False)
    sw = _json(app, "stepped-wedge", "--data", str(path), "--outcome", "y", "--cluster", "clinic", "--period",
               "month", "--option", "correlation=decay", "--option", "df=kenward-roger")
    assert "decay" in sw["diagnostics"] and sw["diagnostics"]["degrees_of_freedom"] > 0
    assert "Kenward-Roger" in sw["method"]


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--option", "slope_chnage=false"], "its setting='slope_chnage' is not accepted; use one of"),
        (["--option", "harmonics=two"], "setting harmonics='two' must be a whole number"),
        (["--option", "family=poisson"], "family given both as a named option and with --option"),
        (["--option", "slope_change"], "must look like KEY=VALUE"),
        (["--settings", "[1, 2]"], "neither a JSON object nor a file"),
        (["--settings", '{"slope_change": false'], "--settings is not valid JSON"),
        (["--option", "slope_change=false", "--settings", '{"slope_change": true}'], "is given twice"),
    ],
)
def test_generic_setting_errors(app: typer.Typer, shared_dir: Path, extra: list[str], needle: str) -> None:
    result = _run(app, "its", "--data", str(shared_dir / "reference" / "sicily_smoking_ban_aces.csv"), *SICILY_ITS,
                  *extra, "--json")
    assert result.exit_code == 1, result.output
    payload = json.loads(result.stdout)
    assert payload["ok"] is False and needle in payload["message"]
