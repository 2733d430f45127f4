"""Contract tests run on every non-DiD design (scikit-learn's estimator checks, adapted).

For each design: the constructor only stores its keyword-only settings;
``fit`` returns self, sets ``result_`` and leaves the data unchanged; two
fits with the same seed give identical results; the tidy table has the
shared schema; ``to_dict`` is strict JSON (no NaN) and round-trips.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest

from knowdo.designs.cluster_trials import ClusterTrial, stepped_wedge
from knowdo.designs.effect import TIDY_COLUMNS, Effect
from knowdo.designs.emulation import Protocol, TrialEmulation, emulate
from knowdo.designs.its import InterruptedTimeSeries, its
from knowdo.designs.rd import RegressionDiscontinuity, rd
from knowdo.designs.sdid import SyntheticDiD, sdid
from knowdo.designs.synth import SyntheticControl, synthetic_control
from knowdo.designs.transport import Transport, transport


def _its_data() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    periods = pd.date_range("2022-01-01", periods=36, freq="MS")
    t = np.arange(36)
    y = rng.poisson(50 * np.exp(0.01 * t) * np.where(t >= 20, 0.8, 1.0))
    base = pd.DataFrame({"period": periods, "screened": y, "population": 10_000})
    female = base.assign(screened=rng.poisson(25, 36), population=5_200)
    return pd.concat([base.assign(dimension="all", stratum="all"), female.assign(dimension="sex", stratum="female")],
                     ignore_index=True)


def _panel() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    rows = []
    for u in range(10):
        level = rng.normal(10, 2)
        for t in range(16):
            d = int(u >= 8 and t >= 10)
            rows.append((f"s{u}", t, level + 0.3 * t + 1.5 * d + rng.normal(0, 0.3), d))
    return pd.DataFrame(rows, columns=["site_id", "period", "rate", "treated"])


def _rd_data() -> pd.DataFrame:
    rng = np.random.default_rng(2)
    x = rng.uniform(-1, 1, 600)
    return pd.DataFrame({"x": x, "y": x + 1.0 * (x >= 0) + rng.normal(0, 0.3, 600),
                         "sex": rng.choice(["female", "male"], 600)})


def _trial_data() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    rows = []
    for c in range(8):
        u = rng.normal(0, 0.3)
        for p in range(3):
            d = int(p >= 1 + c % 2)
            rows += [(f"c{c}", p, d, 0.4 * d + u + rng.normal()) for _ in range(8)]
    return pd.DataFrame(rows, columns=["clinic", "period", "treated", "y"])


def _person_data() -> pd.DataFrame:
    rng = np.random.default_rng(4)
    n = 400
    x = rng.normal(size=n)
    a = (rng.random(n) < 1 / (1 + np.exp(-x))).astype(int)
    return pd.DataFrame({"x": x, "band": rng.choice(["18-29", "30+"], n), "a": a,
                         "y": a + x + rng.normal(size=n), "site": rng.integers(0, 10, n)})


def _transport_data() -> pd.DataFrame:
    rng = np.random.default_rng(5)
    trial = pd.DataFrame({"s": 1, "x": rng.normal(0.5, 1, 200), "a": rng.integers(0, 2, 200)})
    trial["y"] = trial.x + trial.a * (1 + trial.x) + rng.normal(size=200)
    target = pd.DataFrame({"s": 0, "x": rng.normal(0, 1, 300), "a": np.nan, "y": np.nan})
    return pd.concat([trial, target], ignore_index=True)


PROTOCOL = Protocol("eligible adults", "PST vs usual care", "weighting", "screen date; 3 months", "response",
                    "ATE", "AIPW")

# name: (estimator class, settings, data factory, convenience function)
DESIGNS: dict[str, tuple[type, dict[str, Any], Callable[[], pd.DataFrame], Callable[..., Effect]]] = {
    "its": (InterruptedTimeSeries, {"outcome": "screened", "start": "2023-09-01", "family": "quasipoisson",
                                    "offset": "population", "seasonality": "fourier"}, _its_data, its),
    "scm": (SyntheticControl, {"unit": "site_id", "time": "period", "outcome": "rate", "treated_unit": "s8",
                               "treatment_time": 10, "donors": [f"s{u}" for u in range(8)]},
            lambda: _panel()[lambda d: d.site_id != "s9"], synthetic_control),
    "sdid": (SyntheticDiD, {"outcome": "rate", "replications": 20, "seed": 7}, _panel, sdid),
    "rd": (RegressionDiscontinuity, {"outcome": "y", "running": "x", "strata": ["sex"]}, _rd_data, rd),
    "stepped-wedge": (ClusterTrial, {"outcome": "y", "cluster": "clinic", "period": "period"}, _trial_data,
                      stepped_wedge),
    "emulation": (TrialEmulation, {"outcome": "y", "treatment": "a", "covariates": ["x", "band"],
                                   "protocol": PROTOCOL, "cluster": "site", "strata": ["band"]},
                  _person_data, emulate),
    "transport": (Transport, {"outcome": "y", "treatment": "a", "covariates": ["x"], "sample": "s",
                              "n_bootstrap": 30, "seed": 3}, _transport_data, transport),
}
NAMES = list(DESIGNS)


@pytest.fixture(scope="module")
def fitted() -> dict[str, tuple[Any, pd.DataFrame, pd.DataFrame]]:
    out = {}
    for name, (cls, settings, make, _) in DESIGNS.items():
        data = make()
        before = data.copy(deep=True)
        out[name] = (cls(**settings).fit(data), data, before)
    return out


@pytest.mark.parametrize("name", NAMES)
def test_init_only_assigns_keyword_settings(name: str) -> None:
    cls, settings, _, _ = DESIGNS[name]
    params = inspect.signature(cls.__init__).parameters
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for n, p in params.items() if n != "self")
    est = cls(**settings)
    assert set(vars(est)) == set(params) - {"self"}
    for key, value in settings.items():
        assert getattr(est, key) is value
    assert not hasattr(est, "result_")
    with pytest.raises(TypeError):
        cls(*settings.values())


@pytest.mark.parametrize("name", NAMES)
def test_fit_returns_self_and_leaves_data_unchanged(name: str, fitted: dict[str, Any]) -> None:
    est, data, before = fitted[name]
    assert isinstance(est.result_, Effect)
    pd.testing.assert_frame_equal(data, before)
    assert set(vars(est)) - {"result_"} == set(inspect.signature(type(est).__init__).parameters) - {"self"}


@pytest.mark.parametrize("name", NAMES)
def test_seeds_reproduce_and_convenience_function_agrees(name: str, fitted: dict[str, Any]) -> None:
    _, settings, make, function = DESIGNS[name]
    first = fitted[name][0].result_.to_dict()
    again = function(make(), **settings).to_dict()
    assert json.dumps(first, sort_keys=True) == json.dumps(again, sort_keys=True)


@pytest.mark.parametrize("name", NAMES)
def test_tidy_schema(name: str, fitted: dict[str, Any]) -> None:
    effect: Effect = fitted[name][0].result_
    tidy = effect.tidy()
    assert tuple(tidy.columns) == TIDY_COLUMNS
    head = tidy.iloc[0]
    assert head["term"] == effect.term and head["estimate"] == effect.estimate
    assert np.isfinite(effect.estimate) and effect.std_error > 0
    assert effect.conf_low <= effect.estimate <= effect.conf_high
    assert effect.estimand and effect.method and effect.assumptions
    assert isinstance(effect.summary(), str) and effect.design in effect.summary()
    assert effect.plot().to_dict()  # an Altair chart that serialises


@pytest.mark.parametrize("name", NAMES)
def test_to_dict_is_strict_json_and_round_trips(name: str, fitted: dict[str, Any]) -> None:
    payload = fitted[name][0].result_.to_dict()
    text = json.dumps(payload, allow_nan=False)
    assert json.loads(text) == payload
    for key in ("estimate", "se", "ci_low", "ci_high", "design", "settings"):
        assert key in payload


@pytest.mark.parametrize(
    ("name", "keys"),
    [
        ("its", ("path", "details.series", "details.coefficients")),
        ("scm", ("path", "details.weights", "details.placebo", "details.leave_one_out")),
        ("sdid", ("path", "details.weights", "details.time_weights", "details.placebo")),
        ("rd", ("details.bandwidth", "details.estimates", "strata")),
        ("stepped-wedge", ("details.coefficients",)),
        ("emulation", ("details.balance", "details.overlap", "details.protocol", "strata")),
        ("transport", ("details.balance", "details.propensity")),
    ],
)
def test_json_carries_each_designs_detail(name: str, keys: tuple[str, ...], fitted: dict[str, Any]) -> None:
    """What `knowdo estimate DESIGN --json` must show: donor weights and placebos, paths, bandwidths."""
    payload = fitted[name][0].result_.to_dict()
    for key in keys:
        node: Any = payload
        for part in key.split("."):
            node = node[part]
        assert isinstance(node, list) and node, f"{name}: {key} is empty"
