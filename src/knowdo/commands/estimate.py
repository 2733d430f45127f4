"""``knowdo estimate``: fit one causal design on a CSV file, for scripts and quick checks.

    knowdo estimate did --data mpdta.csv --outcome lemp --unit countyreal --time year --cohort first.treat --json
    knowdo estimate did-imputation --data mpdta.csv --outcome lemp --unit countyreal --time year \
        --cohort first.treat --option pretrend_periods=3 --json
    knowdo estimate rd --data senate.csv --outcome vote --running margin --json
    knowdo estimate its --data aces.csv --outcome aces --time time --start 37 --family quasipoisson \
        --offset stdpop --seasonality fourier --season month --option slope_change=false --json
    knowdo estimate scm --data basque.csv --outcome gdpcap --unit regionname --time year \
        --treated-unit "Basque Country (Pais Vasco)" --treatment-time 1970 \
        --option predictors=gdpcap@1960..1969,invest@1964..1969,sec.energy@1961..1969/2,popdens@1969 \
        --option fit_times=1960..1969 --json

Each design takes only the column options it understands; naming one it does
not use, leaving out one it needs, or naming a column the file lacks stops
with a readable message (exit 1) before any fitting.

Every other setting of the design's estimator is reachable generically, with
``--option KEY=VALUE`` (repeatable) or ``--settings JSON`` (an object, inline
or a path to a ``.json`` file); keys are the estimator's keyword arguments
(``slope_change``, ``harmonics``, ``predictors``, ``correlation``, ``se``, ...)
and an unknown key stops with the list of accepted ones. A VALUE is read as
JSON when it parses (``false``, ``2``, ``[1, 2]``, ``"x"``), else as an
inclusive integer range ``A..B`` or ``A..B/STEP``, else as a comma-separated
list when it has commas, else as text. A synthetic-control predictor is
``COLUMN@TIMES`` with TIMES a value or a range and an optional ``:OP``
(``mean``, ``median``, ``sum``), e.g. ``sec.energy@1961..1969/2:mean``, or in
JSON ``["sec.energy", [1961, 1963], "mean"]`` or
``{"column": ..., "times": ..., "op": ...}``.

``--json`` prints ``{"ok": true, "cli_design": ..., **Effect.to_dict()}`` on
stdout; without it the effect's text summary is printed.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, cast

import pandas as pd
import typer
from rich.console import Console

from knowdo.designs._options import check_option
from knowdo.designs.cluster_trials import ClusterTrial, stepped_wedge
from knowdo.designs.did import CallawaySantAnna, did
from knowdo.designs.effect import Effect
from knowdo.designs.emulation import TrialEmulation, emulate
from knowdo.designs.imputation import ImputationDiD, imputation_did
from knowdo.designs.its import InterruptedTimeSeries, its
from knowdo.designs.rd import RegressionDiscontinuity, rd
from knowdo.designs.sdid import SyntheticDiD, sdid
from knowdo.designs.synth import PREDICTOR_OPS, Predictor, SyntheticControl, synthetic_control
from knowdo.designs.transport import Transport, transport
from knowdo.errors import KnowdoError, ParameterError

out = Console()
err = Console(stderr=True)


@dataclass(frozen=True)
class _Design:
    """How one CLI design maps onto its convenience function."""

    fit: Callable[..., Effect]
    estimator: type  # whose keyword-only constructor arguments --option/--settings may set
    required: tuple[str, ...]
    optional: tuple[str, ...]
    # CLI setting name -> the estimator's keyword, where they differ
    rename: Mapping[str, str] = field(default_factory=dict)
    # keywords the convenience function takes besides the constructor's
    extra: tuple[str, ...] = ()


DESIGNS: dict[str, _Design] = {
    "did": _Design(did, CallawaySantAnna, ("outcome", "unit", "time", "cohort"),
                   ("covariates", "cluster", "control_group", "est_method", "bootstrap", "n_boot", "seed"),
                   extra=("strata",)),
    "did-imputation": _Design(imputation_did, ImputationDiD, ("outcome", "unit", "time", "cohort"),
                              ("covariates", "cluster"), extra=("strata",)),
    "its": _Design(its, InterruptedTimeSeries, ("outcome", "start"),
                   ("time", "family", "offset", "seasonality", "season", "group")),
    "scm": _Design(synthetic_control, SyntheticControl, ("outcome", "treated_unit", "treatment_time"),
                   ("unit", "time")),
    "sdid": _Design(sdid, SyntheticDiD, ("outcome",), ("unit", "time", "treatment", "seed")),
    "rd": _Design(rd, RegressionDiscontinuity, ("outcome", "running"),
                  ("cutoff", "treatment", "cluster", "covariates")),
    "stepped-wedge": _Design(stepped_wedge, ClusterTrial, ("outcome", "cluster"),
                             ("treatment", "period", "family", "covariates")),
    "emulate": _Design(emulate, TrialEmulation, ("outcome", "treatment", "covariates"), ("cluster",)),
    "transport": _Design(transport, Transport, ("outcome", "treatment", "covariates"), ("sample", "n_boot", "seed"),
                         {"n_boot": "n_bootstrap"}),
}

_RANGE = re.compile(r"^\s*(-?\d+)\s*\.\.\s*(-?\d+)\s*(?:/\s*(\d+)\s*)?$")

# Settings that name columns of the data file, checked against its header before fitting.
_COLUMN_SETTINGS = ("unit", "time", "outcome", "cohort", "running", "treatment", "cluster", "period",
                    "covariates", "sample", "offset", "group", "season")


def register(app: typer.Typer) -> None:
    """Add the ``estimate`` command to ``app``."""
    app.command("estimate")(estimate)


def _option_name(setting: str) -> str:
    return "--" + {"covariates": "covariate"}.get(setting, setting).replace("_", "-")


def _coerce(value: Any, column: pd.Series | None) -> Any:
    """Give a value typed on the command line the type of the column it refers to (numbers stay numbers)."""
    if column is None or not pd.api.types.is_numeric_dtype(column) or not isinstance(value, str):
        return value
    for convert in (int, float):
        try:
            return convert(value)
        except ValueError:
            continue
    raise ParameterError(f"value {value!r} is not a number, but column {column.name!r} is numeric; give a number.")


def _read_csv(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise ParameterError(f"--data {str(path)!r}: no such file; give the path of a CSV file.")
    try:
        return pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ParameterError(f"--data {str(path)!r} could not be read as CSV ({exc}).") from None


def parse_value(text: str) -> Any:
    """Read one ``--option`` value: JSON, else an integer range ``A..B[/STEP]``, else a comma list, else text.

    Examples
    --------
    >>> parse_value("false"), parse_value("2"), parse_value("1961..1969/2"), parse_value("a,b")
    (False, 2, [1961, 1963, 1965, 1967, 1969], ['a', 'b'])
    """
    try:
        return json.loads(text)
    except ValueError:
        pass
    match = _RANGE.match(text)
    if match:
        low, high, step = int(match[1]), int(match[2]), int(match[3] or 1)
        if step < 1 or high < low:
            raise ParameterError(f"range {text!r} must run upwards with a positive step, e.g. 1960..1969/2.")
        return list(range(low, high + 1, step))
    if "," in text:
        return [parse_value(part.strip()) for part in text.split(",") if part.strip()]
    return text


def parse_options(options: list[str], settings_json: str | None) -> dict[str, Any]:
    """Collect ``--settings`` (a JSON object, inline or a file) and ``--option KEY=VALUE`` into one dict."""
    collected: dict[str, Any] = {}
    if settings_json:
        text = settings_json
        if not text.lstrip().startswith("{"):
            path = Path(text)
            if not path.is_file():
                raise ParameterError(f"--settings {text!r}: neither a JSON object nor a file; give '{{...}}' or a "
                                     "path to a .json file.")
            text = path.read_text(encoding="utf-8")
        try:
            loaded = json.loads(text)
        except ValueError as exc:
            raise ParameterError(f"--settings is not valid JSON ({exc}).") from None
        if not isinstance(loaded, dict):
            raise ParameterError(f"--settings must be a JSON object of settings, got {type(loaded).__name__}.")
        collected.update({str(k).replace("-", "_"): v for k, v in loaded.items()})
    for item in options:
        key, sep, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise ParameterError(f"--option {item!r} must look like KEY=VALUE, e.g. --option slope_change=false.")
        if key in collected:
            raise ParameterError(f"setting {key!r} is given twice (--option or --settings); give it once.")
        collected[key] = parse_value(value.strip())
    return collected


def _times(value: Any, where: str) -> tuple[Any, ...]:
    if isinstance(value, str):
        parsed = parse_value(value)
        return tuple(parsed) if isinstance(parsed, list) else (parsed,)
    if isinstance(value, list):
        return tuple(value)
    if isinstance(value, (int, float)):
        return (value,)
    raise ParameterError(f"{where}: times {value!r} must be a value, a list or a range such as 1960..1969.")


def parse_predictor(spec: Any) -> Predictor:
    """A synthetic-control predictor from ``COLUMN@TIMES[:OP]``, ``[column, times, op]`` or a JSON object.

    Examples
    --------
    >>> parse_predictor("sec.energy@1961..1965/2:median")
    Predictor(column='sec.energy', times=(1961, 1963, 1965), op='median')
    """
    where = f"predictor {spec!r}"
    if isinstance(spec, str):
        column, sep, rest = spec.partition("@")
        if not sep or not column:
            raise ParameterError(f"{where} must look like COLUMN@TIMES[:OP], e.g. gdpcap@1960..1969:mean.")
        times_text, _, op = rest.partition(":")
        return Predictor(column, _times(times_text, where), cast(Any, op or "mean"))
    if isinstance(spec, dict):
        unknown = set(spec) - {"column", "times", "op"}
        if unknown or "column" not in spec or "times" not in spec:
            raise ParameterError(f"{where} must have the keys column, times and optionally op.")
        return Predictor(str(spec["column"]), _times(spec["times"], where), cast(Any, spec.get("op", "mean")))
    if isinstance(spec, list) and 2 <= len(spec) <= 3:
        op = spec[2] if len(spec) == 3 else "mean"
        return Predictor(str(spec[0]), _times(spec[1], where), cast(Any, op))
    raise ParameterError(f"{where} must be COLUMN@TIMES[:OP], [column, times, op] or "
                         f"{{'column': ..., 'times': ..., 'op': ...}}; ops are {', '.join(PREDICTOR_OPS)}.")


def _estimator_keywords(spec: _Design) -> dict[str, inspect.Parameter]:
    params = inspect.signature(spec.estimator).parameters
    keywords = {n: p for n, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}
    for name in spec.extra:
        keywords[name] = inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None)
    return keywords


def _check_type(design: str, key: str, value: Any, parameter: inspect.Parameter) -> Any:
    """Stop a value of the wrong kind (text where a number or flag is expected) before the estimator sees it."""
    default = parameter.default
    if default is inspect.Parameter.empty or default is None:
        return value
    wanted: tuple[type, ...] | None = None
    if isinstance(default, bool):
        wanted, label = (bool,), "true or false"
    elif isinstance(default, int):
        wanted, label = (int,), "a whole number"
    elif isinstance(default, float):
        wanted, label = (int, float), "a number"
    elif isinstance(default, str):
        wanted, label = (str,), "text"
    if wanted is not None and (not isinstance(value, wanted) or (bool not in wanted and isinstance(value, bool))):
        raise ParameterError(f"{design}: setting {key}={value!r} must be {label} (default {default!r}).")
    return value


def _generic_settings(design: str, spec: _Design, options: Mapping[str, Any]) -> dict[str, Any]:
    """Validate ``--option``/``--settings`` keys against the estimator's keywords and convert special values."""
    keywords = _estimator_keywords(spec)
    settings: dict[str, Any] = {}
    for key, value in options.items():
        check_option(f"{design} setting", key, tuple(keywords))
        if key == "predictors" and value is not None:
            items = value if isinstance(value, list) else [value]
            value = [parse_predictor(item) for item in items]
        elif key in ("fit_times", "effect_times") and isinstance(value, str):
            value = list(_times(value, key))
        settings[key] = _check_type(design, key, value, keywords[key])
    return settings


def build_settings(design: str, data: pd.DataFrame, given: Mapping[str, Any],
                   options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Check the options given for ``design`` against what it takes and the file's columns; return its settings.

    ``given`` holds the named command-line options, ``options`` the generic
    ``--option``/``--settings`` keys (the estimator's own keyword names).
    """
    spec = DESIGNS.get(design)
    if spec is None:
        raise ParameterError(f"unknown design {design!r}; choose one of {', '.join(DESIGNS)}.")
    given = {k: v for k, v in given.items() if v is not None and v != []}
    allowed = spec.required + spec.optional
    unused = [k for k in given if k not in allowed]
    if unused:
        raise ParameterError(
            f"{design}: {', '.join(_option_name(k) for k in unused)} not used by this design; "
            f"it takes {', '.join(_option_name(k) for k in allowed)} and --option KEY=VALUE for other settings."
        )
    generic = _generic_settings(design, spec, options or {})
    renamed = {spec.rename.get(k, k): v for k, v in given.items()}
    twice = sorted(set(renamed) & set(generic))
    if twice:
        raise ParameterError(f"{design}: {', '.join(twice)} given both as a named option and with --option/"
                             "--settings; give each setting once.")
    missing = [k for k in spec.required if k not in given and spec.rename.get(k, k) not in generic]
    if missing:
        raise ParameterError(f"{design}: {', '.join(_option_name(k) for k in missing)} required for this design.")
    settings = {**renamed, **generic}
    absent: list[str] = []
    for key in _COLUMN_SETTINGS:
        names = settings.get(key)
        for name in names if isinstance(names, list) else [names] if names is not None else []:
            if name not in data.columns:
                absent.append(f"{_option_name(key)} {name!r}")
    for predictor in settings.get("predictors") or []:
        if isinstance(predictor, Predictor) and predictor.column not in data.columns:
            absent.append(f"predictor {predictor.column!r}")
    if absent:
        have = ", ".join(map(str, data.columns[:30]))
        raise ParameterError(
            f"{design}: column(s) not in the data file: {'; '.join(absent)} (columns present: {have})."
        )
    unit_col = data[settings["unit"]] if "unit" in settings else data.get("site_id")
    time_col = data[settings["time"]] if "time" in settings else data.get("period")
    for key, column in (("treated_unit", unit_col), ("treatment_time", time_col), ("start", time_col)):
        if key in settings:
            settings[key] = _coerce(settings[key], column)
    return settings


def estimate(
    design: Annotated[str, typer.Argument(help=f"Design: {', '.join(DESIGNS)}.")],
    data: Annotated[Path, typer.Option("--data", help="CSV file with one row per observation.")],
    outcome: Annotated[str | None, typer.Option(help="Outcome column.")] = None,
    unit: Annotated[str | None, typer.Option(help="Unit (site, county) column.")] = None,
    time: Annotated[str | None, typer.Option(help="Time (period) column.")] = None,
    cohort: Annotated[str | None, typer.Option(help="First-treated period column, 0 when never treated (did).")] = None,
    treated_unit: Annotated[str | None, typer.Option(help="The treated unit's value in --unit (scm).")] = None,
    start: Annotated[str | None, typer.Option(help="First intervention period, a value of --time (its).")] = None,
    treatment_time: Annotated[str | None, typer.Option(help="First treated period, a value of --time (scm).")] = None,
    running: Annotated[str | None, typer.Option(help="Running-variable column (rd).")] = None,
    cutoff: Annotated[float | None, typer.Option(help="Cutoff of the running variable (rd; default 0).")] = None,
    treatment: Annotated[str | None, typer.Option(help="0/1 treatment column.")] = None,
    cluster: Annotated[str | None, typer.Option(help="Cluster column.")] = None,
    period: Annotated[str | None, typer.Option(help="Period column of a stepped-wedge trial.")] = None,
    covariate: Annotated[list[str] | None, typer.Option("--covariate", help="Covariate column (repeatable).")] = None,
    sample: Annotated[str | None, typer.Option(help="0/1 in-trial column (transport).")] = None,
    offset: Annotated[str | None, typer.Option(help="Population column; its log is the offset (its, counts).")] = None,
    group: Annotated[str | None, typer.Option(help="0/1 intervention-series column of a controlled its.")] = None,
    season: Annotated[str | None, typer.Option(help="Month-of-year column for its seasonality.")] = None,
    control_group: Annotated[str | None, typer.Option(help="did: nevertreated or notyettreated.")] = None,
    est_method: Annotated[str | None, typer.Option(help="did: dr, reg or ipw.")] = None,
    family: Annotated[str | None, typer.Option(help="its: gaussian, poisson, quasipoisson, negbin; "
                                                     "stepped-wedge: gaussian, binomial.")] = None,
    seasonality: Annotated[str | None, typer.Option(help="its: none, fourier or month.")] = None,
    bootstrap: Annotated[bool | None, typer.Option("--bootstrap/--no-bootstrap",
                                                   help="did: multiplier-bootstrap inference.")] = None,
    n_boot: Annotated[int | None, typer.Option(help="Bootstrap draws (did, transport).")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed (did bootstrap, sdid, transport).")] = None,
    option: Annotated[list[str] | None, typer.Option(
        "--option", help="Any other setting of the design as KEY=VALUE (repeatable), e.g. slope_change=false, "
                         "harmonics=2, predictors=gdpcap@1960..1969, correlation=decay.")] = None,
    settings_json: Annotated[str | None, typer.Option(
        "--settings", help="Settings as a JSON object, inline or a path to a .json file.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")] = False,
) -> None:
    """Estimate one design's effect from a CSV file."""
    given: dict[str, Any] = {
        "outcome": outcome, "unit": unit, "time": time, "cohort": cohort, "treated_unit": treated_unit,
        "start": start, "treatment_time": treatment_time, "running": running, "cutoff": cutoff,
        "treatment": treatment, "cluster": cluster, "period": period, "covariates": covariate, "sample": sample,
        "offset": offset, "group": group, "season": season, "control_group": control_group,
        "est_method": est_method, "family": family, "seasonality": seasonality, "bootstrap": bootstrap,
        "n_boot": n_boot, "seed": seed,
    }
    try:
        if design not in DESIGNS:
            raise ParameterError(f"unknown design {design!r}; choose one of {', '.join(DESIGNS)}.")
        options = parse_options(option or [], settings_json)
        frame = _read_csv(data)
        settings = build_settings(design, frame, given, options)
        effect = DESIGNS[design].fit(frame, **settings)
    except KnowdoError as exc:
        # the shared handler's console wraps long messages (file paths) across lines; keep each on one line
        if as_json:
            print(json.dumps({"ok": False, "error": type(exc).__name__, "message": str(exc)}))
        else:
            err.print(f"[bold red]{type(exc).__name__}:[/] ", end="")
            err.print(str(exc), markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    if as_json:
        print(json.dumps({"ok": True, "cli_design": design, **effect.to_dict()}, indent=2))
    else:
        out.print(effect.summary(), markup=False, highlight=False)
