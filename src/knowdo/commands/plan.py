"""``knowdo plan``: power, sample size or MDE for a planned study, and the design advisor.

    knowdo plan stepped-wedge --clusters 24 --steps 4 --cluster-period-size 120 --p0 0.05 --p1 0.035 --tau 0.01
    knowdo plan stepped-wedge --clusters 24 --steps 4 --p0 0.05 --p1 0.035 --tau 0.01 --power 0.8
    knowdo plan crt --clusters-per-arm 16 --cluster-size 10 --delta 1 --sd 2.236 --icc 0.1
    knowdo plan individual --delta 4 --sd 5 --power 0.8
    knowdo plan smart --design II --response-rate 0.4 --delta 0.3 --power 0.8
    knowdo plan its --pre 12 --post 12 --sigma 1 --phi 0.3 --effect 1.5
    knowdo plan did --sd 1 --pre-rounds 3 --post-rounds 3 --rho 0.5 --delta 0.25 --power 0.8
    knowdo plan advise --constraints constraints.toml

Leave the size out and give ``--power`` to solve for the size; leave the
effect out and give ``--power`` (and a size) for the minimum detectable
effect. ``--json`` prints the result as JSON on stdout.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from knowdo.commands._errors import user_errors as _user_errors
from knowdo.designs.planner import (
    advise_file,
    plan_crt,
    plan_did,
    plan_individual,
    plan_its,
    plan_smart,
    plan_stepped_wedge,
)
from knowdo.designs.planner.result import PowerResult

plan_app = typer.Typer(no_args_is_help=True, help="Plan a study: power, sample size, MDE; or get design advice.")
out = Console()
err = Console(stderr=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]
PowerOption = Annotated[float | None, typer.Option(help="Target power; leave a size or the effect out to solve.")]
AlphaOption = Annotated[float, typer.Option(help="Two-sided significance level.")]


def register(app: typer.Typer) -> None:
    """Add the ``plan`` command group to ``app``."""
    app.add_typer(plan_app, name="plan")


def _emit(make: Callable[[], PowerResult], as_json: bool) -> None:
    with _user_errors(as_json):
        result = make()
    if as_json:
        print(json.dumps({"ok": True, **result.to_dict()}, indent=2))
    else:
        out.print(result.summary(), markup=False, highlight=False)


@plan_app.command("stepped-wedge")
def stepped_wedge(
    steps: Annotated[int, typer.Option(help="Number of steps (sequences) after the baseline period.")],
    clusters: Annotated[int | None, typer.Option(help="Clusters in total (spread evenly over the steps).")] = None,
    cluster_period_size: Annotated[float | None, typer.Option(help="People per cluster per period.")] = None,
    baseline_periods: Annotated[int, typer.Option(help="Periods before the first step.")] = 1,
    periods_per_step: Annotated[int, typer.Option(help="Periods between steps.")] = 1,
    p0: Annotated[float | None, typer.Option(help="Control proportion (binary outcome).")] = None,
    p1: Annotated[float | None, typer.Option(help="Intervention proportion (binary outcome).")] = None,
    delta: Annotated[float | None, typer.Option(help="Mean difference (continuous outcome).")] = None,
    sigma: Annotated[float | None, typer.Option(help="Individual-level SD (continuous outcome).")] = None,
    tau: Annotated[float | None, typer.Option(help="Cluster random-effect SD (Hussey & Hughes).")] = None,
    icc: Annotated[float | None, typer.Option(help="ICC (instead of tau).")] = None,
    cac: Annotated[float, typer.Option(help="Cluster autocorrelation (with --icc).")] = 1.0,
    decay: Annotated[float | None, typer.Option(help="Discrete-time decay per period (with --icc).")] = None,
    power: PowerOption = None,
    alpha: AlphaOption = 0.05,
    as_json: JsonOption = False,
) -> None:
    """Stepped-wedge cluster trial (GLS engine; Hussey & Hughes and extensions)."""
    _emit(lambda: plan_stepped_wedge(
        clusters=clusters, steps=steps, cluster_period_size=cluster_period_size, baseline_periods=baseline_periods,
        periods_per_step=periods_per_step, p0=p0, p1=p1, delta=delta, sigma=sigma, tau=tau, icc=icc, cac=cac,
        decay=decay, power=power, alpha=alpha), as_json)


@plan_app.command("crt")
def crt(
    icc: Annotated[float, typer.Option(help="Intracluster correlation.")],
    clusters_per_arm: Annotated[float | None, typer.Option(help="Clusters per arm.")] = None,
    cluster_size: Annotated[float | None, typer.Option(help="Mean people per cluster.")] = None,
    cv: Annotated[float, typer.Option(help="Coefficient of variation of cluster sizes.")] = 0.0,
    unequal: Annotated[str, typer.Option(help="Unequal-size correction: van-breukelen or eldridge.")] = "van-breukelen",
    test: Annotated[str, typer.Option(help="z or t.")] = "t",
    baseline: Annotated[str, typer.Option(help="none, did or ancova (baseline period).")] = "none",
    cac: Annotated[float, typer.Option(help="Cluster autocorrelation (with a baseline).")] = 1.0,
    p0: Annotated[float | None, typer.Option(help="Control proportion.")] = None,
    p1: Annotated[float | None, typer.Option(help="Intervention proportion.")] = None,
    delta: Annotated[float | None, typer.Option(help="Mean difference.")] = None,
    sd: Annotated[float | None, typer.Option(help="Total SD of the outcome.")] = None,
    power: PowerOption = None,
    alpha: AlphaOption = 0.05,
    as_json: JsonOption = False,
) -> None:
    """Parallel cluster randomised trial (equal or unequal cluster sizes, optional baseline)."""
    _emit(lambda: plan_crt(icc=icc, clusters_per_arm=clusters_per_arm, cluster_size=cluster_size, cv=cv,
                           unequal=unequal, test=test, baseline=baseline, cac=cac, p0=p0, p1=p1,  # type: ignore[arg-type]
                           delta=delta, sd=sd, power=power, alpha=alpha), as_json)


@plan_app.command("individual")
def individual(
    n_per_arm: Annotated[float | None, typer.Option(help="People per arm.")] = None,
    p0: Annotated[float | None, typer.Option(help="Control proportion.")] = None,
    p1: Annotated[float | None, typer.Option(help="Intervention proportion.")] = None,
    delta: Annotated[float | None, typer.Option(help="Mean difference.")] = None,
    sd: Annotated[float | None, typer.Option(help="Outcome SD.")] = None,
    test: Annotated[str, typer.Option(help="z or t.")] = "z",
    power: PowerOption = None,
    alpha: AlphaOption = 0.05,
    as_json: JsonOption = False,
) -> None:
    """Individually randomised two-arm trial."""
    _emit(lambda: plan_individual(n_per_arm=n_per_arm, p0=p0, p1=p1, delta=delta, sd=sd, test=test,  # type: ignore[arg-type]
                                  power=power, alpha=alpha), as_json)


@plan_app.command("smart")
def smart(
    response_rate: Annotated[float, typer.Option(help="First-stage response rate.")],
    design: Annotated[str, typer.Option(help="SMART design I, II or III.")] = "II",
    delta: Annotated[float | None, typer.Option(help="Standardised effect between the two embedded AIs.")] = None,
    p1: Annotated[float | None, typer.Option(help="Success probability of AI 1 (binary).")] = None,
    p2: Annotated[float | None, typer.Option(help="Success probability of AI 2 (binary).")] = None,
    n: Annotated[float | None, typer.Option(help="Total participants.")] = None,
    longitudinal: Annotated[str, typer.Option(help="none, conservative or exact (3 waves).")] = "none",
    rho: Annotated[float, typer.Option(help="Within-person correlation (longitudinal).")] = 0.0,
    power: PowerOption = None,
    alpha: AlphaOption = 0.05,
    as_json: JsonOption = False,
) -> None:
    """SMART comparing two embedded adaptive interventions."""
    _emit(lambda: plan_smart(design=design, response_rate=response_rate, delta=delta, p1=p1, p2=p2, n=n,  # type: ignore[arg-type]
                             longitudinal=longitudinal, rho=rho, power=power, alpha=alpha), as_json)  # type: ignore[arg-type]


@plan_app.command("its")
def its(
    pre: Annotated[int, typer.Option(help="Time points before the interruption.")],
    post: Annotated[int, typer.Option(help="Time points after (0 with --power and --effect to solve).")],
    sigma: Annotated[float, typer.Option(help="Marginal SD of the series.")],
    phi: Annotated[float, typer.Option(help="AR(1) autocorrelation.")] = 0.0,
    effect: Annotated[float | None, typer.Option(help="Level (or slope) change.")] = None,
    estimand: Annotated[str, typer.Option(help="level or slope.")] = "level",
    power: PowerOption = None,
    alpha: AlphaOption = 0.05,
    as_json: JsonOption = False,
) -> None:
    """Interrupted time series (analytic GLS with AR(1) errors)."""
    _emit(lambda: plan_its(pre=pre, post=post, sigma=sigma, phi=phi, effect=effect, estimand=estimand,  # type: ignore[arg-type]
                           power=power, alpha=alpha), as_json)


@plan_app.command("did")
def did(
    sd: Annotated[float, typer.Option(help="Outcome SD.")],
    pre_rounds: Annotated[int, typer.Option(help="Rounds before.")],
    post_rounds: Annotated[int, typer.Option(help="Rounds after.")],
    rho: Annotated[float, typer.Option(help="Autocorrelation between rounds.")],
    units: Annotated[float | None, typer.Option(help="Units in total.")] = None,
    delta: Annotated[float | None, typer.Option(help="Effect.")] = None,
    estimator: Annotated[str, typer.Option(help="post, did or ancova.")] = "did",
    share_treated: Annotated[float, typer.Option(help="Share of units treated.")] = 0.5,
    power: PowerOption = None,
    alpha: AlphaOption = 0.05,
    as_json: JsonOption = False,
) -> None:
    """Multi-round DiD / ANCOVA (McKenzie 2012)."""
    _emit(lambda: plan_did(sd=sd, pre_rounds=pre_rounds, post_rounds=post_rounds, rho=rho, units=units, delta=delta,
                           estimator=estimator, share_treated=share_treated, power=power,  # type: ignore[arg-type]
                           alpha=alpha), as_json)


@plan_app.command("advise")
def advise(
    constraints: Annotated[Path, typer.Option(help="Constraints TOML file.")],
    as_json: JsonOption = False,
) -> None:
    """Rank the designs a programme's constraints allow, with power, assumptions, threats and sources."""
    with _user_errors(as_json):
        advice = advise_file(constraints)
    if as_json:
        payload: dict[str, Any] = {"ok": True, **advice.to_dict()}
        print(json.dumps(payload, indent=2))
    else:
        out.print(advice.summary(), markup=False, highlight=False)
