"""``knowdo estimate``: fit one causal design on a CSV file, for scripts and quick checks.

    knowdo estimate did --data mpdta.csv --outcome lemp --unit countyreal --time year --cohort first.treat --json
    knowdo estimate rd --data senate.csv --outcome vote --running margin --json
    knowdo estimate its --data aces.csv --outcome aces --time time --start 37 --family quasipoisson \
        --offset stdpop --seasonality fourier --season month --json

Each design takes only the column options it understands; naming one it does
not use, leaving out one it needs, or naming a column the file lacks stops
with a readable message (exit 1) before any fitting. ``--json`` prints
``{"ok": true, "cli_design": ..., **Effect.to_dict()}`` on stdout; without it
the effect's text summary is printed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer
from rich.console import Console

from knowdo.designs.cluster_trials import stepped_wedge
from knowdo.designs.did import did
from knowdo.designs.effect import Effect
from knowdo.designs.emulation import emulate
from knowdo.designs.its import its
from knowdo.designs.rd import rd
from knowdo.designs.sdid import sdid
from knowdo.designs.synth import synthetic_control
from knowdo.designs.transport import transport
from knowdo.errors import KnowdoError, ParameterError

out = Console()
err = Console(stderr=True)


@dataclass(frozen=True)
class _Design:
    """How one CLI design maps onto its convenience function."""

    fit: Callable[..., Effect]
    required: tuple[str, ...]
    optional: tuple[str, ...]
    # CLI setting name -> the estimator's keyword, where they differ
    rename: Mapping[str, str] = field(default_factory=dict)


DESIGNS: dict[str, _Design] = {
    "did": _Design(did, ("outcome", "unit", "time", "cohort"),
                   ("covariates", "cluster", "control_group", "est_method", "bootstrap", "n_boot", "seed")),
    "its": _Design(its, ("outcome", "start"), ("time", "family", "offset", "seasonality", "season", "group")),
    "scm": _Design(synthetic_control, ("outcome", "treated_unit", "treatment_time"), ("unit", "time")),
    "sdid": _Design(sdid, ("outcome",), ("unit", "time", "treatment", "seed")),
    "rd": _Design(rd, ("outcome", "running"), ("cutoff", "treatment", "cluster", "covariates")),
    "stepped-wedge": _Design(stepped_wedge, ("outcome", "cluster"), ("treatment", "period", "family", "covariates")),
    "emulate": _Design(emulate, ("outcome", "treatment", "covariates"), ("cluster",)),
    "transport": _Design(transport, ("outcome", "treatment", "covariates"), ("sample", "n_boot", "seed"),
                         {"n_boot": "n_bootstrap"}),
}

# Settings that name columns of the data file, checked against its header before fitting.
_COLUMN_SETTINGS = ("unit", "time", "outcome", "cohort", "running", "treatment", "cluster", "period",
                    "covariates", "sample", "offset", "group", "season")


def register(app: typer.Typer) -> None:
    """Add the ``estimate`` command to ``app``."""
    app.command("estimate")(estimate)


def _option_name(setting: str) -> str:
    return "--" + {"covariates": "covariate"}.get(setting, setting).replace("_", "-")


def _coerce(value: str, column: pd.Series | None) -> Any:
    """Give a value typed on the command line the type of the column it refers to (numbers stay numbers)."""
    if column is None or not pd.api.types.is_numeric_dtype(column):
        return value
    for cast in (int, float):
        try:
            return cast(value)
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


def build_settings(design: str, data: pd.DataFrame, given: Mapping[str, Any]) -> dict[str, Any]:
    """Check the options given for ``design`` against what it takes and the file's columns; return its settings."""
    spec = DESIGNS.get(design)
    if spec is None:
        raise ParameterError(f"unknown design {design!r}; choose one of {', '.join(DESIGNS)}.")
    given = {k: v for k, v in given.items() if v is not None and v != []}
    allowed = spec.required + spec.optional
    unused = [k for k in given if k not in allowed]
    if unused:
        raise ParameterError(
            f"{design}: {', '.join(_option_name(k) for k in unused)} not used by this design; "
            f"it takes {', '.join(_option_name(k) for k in allowed)}."
        )
    missing = [k for k in spec.required if k not in given]
    if missing:
        raise ParameterError(f"{design}: {', '.join(_option_name(k) for k in missing)} required for this design.")
    absent: list[str] = []
    for key in _COLUMN_SETTINGS:
        names = given.get(key)
        for name in names if isinstance(names, list) else [names] if names is not None else []:
            if name not in data.columns:
                absent.append(f"{_option_name(key)} {name!r}")
    if absent:
        have = ", ".join(map(str, data.columns[:30]))
        raise ParameterError(
            f"{design}: column(s) not in the data file: {'; '.join(absent)} (columns present: {have})."
        )
    settings = dict(given)
    unit_col = data[settings["unit"]] if "unit" in settings else data.get("site_id")
    time_col = data[settings["time"]] if "time" in settings else data.get("period")
    for key, column in (("treated_unit", unit_col), ("treatment_time", time_col), ("start", time_col)):
        if key in settings:
            settings[key] = _coerce(settings[key], column)
    return {spec.rename.get(k, k): v for k, v in settings.items()}


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
        frame = _read_csv(data)
        settings = build_settings(design, frame, given)
        effect = DESIGNS[design].fit(frame, **settings)
    except KnowdoError as exc:
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
