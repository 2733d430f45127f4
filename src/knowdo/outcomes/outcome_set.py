"""All outcomes in one call: cascade, RE-AIM, Proctor, AIM/IAM/FIM and the site and district trends."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import altair as alt
import pandas as pd

from knowdo.config import Project
from knowdo.outcomes.cascade import Cascade, CiMethod, compute_cascade
from knowdo.outcomes.charts import Chart
from knowdo.outcomes.groups import GROUPINGS, Grouping
from knowdo.outcomes.intervals import DEFAULT_LEVEL
from knowdo.outcomes.perceptions import Perceptions, compute_perceptions
from knowdo.outcomes.proctor import Proctor, compute_proctor
from knowdo.outcomes.reaim import ReAim, compute_reaim
from knowdo.outcomes.trends import Trends, compute_trends

AnyResult = Cascade | ReAim | Proctor | Perceptions | Trends


@dataclass(frozen=True, kw_only=True, eq=False)
class OutcomeSet:
    """The outcome results of one project: cascade, RE-AIM, Proctor, AIM/IAM/FIM and trends."""

    cascade: Cascade
    reaim: ReAim
    proctor: Proctor
    perceptions: Perceptions
    trends: Trends

    def results(self) -> dict[str, AnyResult]:
        return {
            "cascade": self.cascade,
            "reaim": self.reaim,
            "proctor": self.proctor,
            "perceptions": self.perceptions,
            "trends": self.trends,
        }

    def to_frame(self) -> pd.DataFrame:
        """Every tidy row of the results, with a leading ``result`` column naming its result.

        Trend rows alone fill the ``period`` column (their month); it is empty elsewhere.
        """
        frames = [r.to_frame().assign(result=name) for name, r in self.results().items()]
        out = pd.concat(frames, ignore_index=True)
        return out[["result", *[c for c in out.columns if c != "result"]]]

    def to_dict(self) -> dict[str, Any]:
        """``{"cascade": ..., "reaim": ..., "proctor": ..., "perceptions": ..., "trends": ...}``, each ``to_dict()``."""
        return {name: r.to_dict() for name, r in self.results().items()}

    def summary(self) -> str:
        """The summaries, one after another."""
        return "\n\n".join(r.summary() for r in self.results().values())

    def plot(self) -> Chart:
        """The overall cascade funnel, RE-AIM panel, Proctor outcomes and AIM/IAM/FIM means, stacked."""
        charts = [self.cascade.plot("all"), self.reaim.plot(), self.proctor.plot()]
        if not self.perceptions.table.empty:
            charts.append(self.perceptions.plot())
        return alt.vconcat(*charts).resolve_scale(color="independent")


def compute_outcomes(
    panel: pd.DataFrame,
    episodes: pd.DataFrame,
    providers: pd.DataFrame,
    sites: pd.DataFrame,
    rollout: pd.DataFrame,
    perceptions: pd.DataFrame,
    project: Project,
    *,
    by: Sequence[Grouping] = GROUPINGS,
    level: float = DEFAULT_LEVEL,
    ci: CiMethod = "wilson",
) -> OutcomeSet:
    """Compute the cascade, RE-AIM, Proctor outcomes, AIM/IAM/FIM summaries and trends. No input is modified.

    Parameters
    ----------
    panel, episodes, providers, sites, rollout, perceptions
        The frames the store hands over (see :mod:`knowdo.outcomes`).
    project
        Thresholds (``project.outcomes``) and equity strata.
    by
        Groupings reported: any of ``overall, site, district, month, quarter, year``. The trends
        (site × month and district × month) are always computed.
    level
        Confidence level for every interval.
    ci
        ``'wilson'`` or ``'cluster'`` for shares of need (see :func:`compute_cascade`).

    Examples
    --------
    >>> outcomes = compute_outcomes(panel, episodes, providers, sites, rollout, perceptions, project)  # doctest: +SKIP
    >>> print(outcomes.summary())  # doctest: +SKIP
    """
    return OutcomeSet(
        cascade=compute_cascade(panel, project=project, by=by, level=level, ci=ci),
        reaim=compute_reaim(panel, episodes, providers, sites, rollout, project, by=by, level=level, ci=ci),
        proctor=compute_proctor(panel, providers, sites, rollout, project, by=by, level=level, ci=ci),
        perceptions=compute_perceptions(perceptions, sites=sites, by=by, level=level),
        trends=compute_trends(panel, level=level, ci=ci),
    )
