"""Barrier assessment: members rate CFIR 2.0 constructs; the team sees the spread and who disagrees.

Each member rates constructs for a site (or the whole programme) with a
**valence** from -2 (strong barrier) to +2 (strong facilitator), the CFIR
coding convention (Damschroder & Lowery, *Implement Sci* 2013;8:51), an
optional **importance** (1-5 by default; a team convention, not a published
scale) and free-text **evidence**. CFIR ratings are judgements, not scores
of a validated questionnaire, so the aggregate is descriptive: medians,
quartiles and the share of members who see a barrier.

Stakeholder groups (researchers, implementers, community partners,
economists, people with lived experience ...) are kept apart: every
construct gets one column per group, and constructs on which groups differ
by :data:`DISAGREEMENT_GAP` points or more, or on which one group sees a
barrier and another a facilitator, are flagged rather than averaged away.

Everything is persistence-free: callers pass the ratings in (a data frame or
a list of :class:`Rating`) and get a frozen :class:`BarrierAssessment` back.

>>> ratings = [
...     Rating("ana", "researcher", "Available Resources", -2, 5),
...     Rating("ben", "implementer", "Available Resources", -1, 4),
...     Rating("cho", "community_partner", "Available Resources", 1, 2),
... ]
>>> result = assess_barriers(ratings)
>>> row = result.to_frame().iloc[0]
>>> row["construct"], float(row["valence_median"]), bool(row["sign_conflict"])
('available_resources', -1.0, True)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import altair as alt
import numpy as np
import pandas as pd

from knowdo.errors import ParameterError
from knowdo.strategies._common import check_option, jsonable, require_columns
from knowdo.strategies.vocabularies import load_vocabulary

# Suggested stakeholder groups (the Commission's transdisciplinary team); any non-empty label is accepted.
STAKEHOLDER_GROUPS = ("researcher", "implementer", "community_partner", "economist", "lived_experience", "policymaker")
VALENCE_RANGE = (-2, 2)  # CFIR valence coding, -2 strong barrier .. +2 strong facilitator (Damschroder & Lowery 2013)
IMPORTANCE_RANGE = (1, 5)  # team convention: 1 = hardly matters .. 5 = decisive; no published standard
# Group means this far apart (half the valence range) are shown as a disagreement; a team convention.
DISAGREEMENT_GAP = 2.0
PROGRAMME = "programme"  # the site label of ratings about the whole programme
RATING_COLUMNS = ("member", "group", "construct", "valence", "importance", "evidence", "site")
PriorityRule = Literal["overall", "any_group"]
PRIORITY_RULES: tuple[PriorityRule, ...] = ("overall", "any_group")


@dataclass(frozen=True)
class Rating:
    """One member's rating of one CFIR 2.0 construct (or sub-construct) for one site."""

    member: str
    group: str
    construct: str
    valence: int
    importance: int | None = None
    evidence: str = ""
    site: str = PROGRAMME


def ratings_frame(
    ratings: pd.DataFrame | Iterable[Rating], *, importance_range: tuple[int, int] = IMPORTANCE_RANGE
) -> pd.DataFrame:
    """Validate ratings and return them as a frame with resolved construct ids.

    Columns: ``member, group, construct, valence, importance, evidence, site``
    (``importance`` may be missing; ``site`` defaults to 'programme').
    Construct names or ids are accepted (see
    :meth:`~knowdo.strategies.vocabularies.Vocabulary.construct`).

    Raises
    ------
    ParameterError
        Naming the row and column of the first bad value, or the duplicated ratings.
    """
    if isinstance(ratings, pd.DataFrame):
        frame = ratings.copy()
    else:
        items = list(ratings)
        if not all(isinstance(r, Rating) for r in items):
            raise ParameterError("ratings: give a DataFrame or a list of Rating objects.")
        frame = pd.DataFrame([asdict(r) for r in items], columns=list(RATING_COLUMNS))
    require_columns(frame, ("member", "group", "construct", "valence"), "ratings")
    lo, hi = importance_range
    if not (isinstance(lo, int) and isinstance(hi, int) and lo < hi):
        raise ParameterError(f"importance_range must be two increasing integers; saw {importance_range!r}")
    for column, default in (("importance", np.nan), ("evidence", ""), ("site", PROGRAMME)):
        if column not in frame.columns:
            frame[column] = default
    frame = frame[list(RATING_COLUMNS)].reset_index(drop=True)
    vocab = load_vocabulary()
    ids: list[str] = []
    for i, row in enumerate(frame.itertuples(index=False)):
        where = f"ratings row {i + 1}"
        for column in ("member", "group"):
            value = getattr(row, column)
            if not isinstance(value, str) or not value.strip():
                raise ParameterError(f"{where}, column '{column}': expected a non-empty label; saw {value!r}")
        try:
            construct = vocab.construct(str(row.construct))
        except ParameterError as exc:
            raise ParameterError(f"{where}, column 'construct': {exc}") from None
        if construct.kind == "domain":
            raise ParameterError(f"{where}, column 'construct': {row.construct!r} is a domain; rate its constructs.")
        ids.append(construct.id)
        valence = _number(row.valence)
        if valence is None or valence != int(valence) or not VALENCE_RANGE[0] <= valence <= VALENCE_RANGE[1]:
            raise ParameterError(
                f"{where}, column 'valence': expected a whole number from -2 to +2; saw {row.valence!r}"
            )
        importance = _number(row.importance)
        if importance is not None and (importance != int(importance) or not lo <= importance <= hi):
            raise ParameterError(
                f"{where}, column 'importance': expected a whole number from {lo} to {hi} or empty; "
                f"saw {row.importance!r}"
            )
    frame["construct"] = ids
    frame["valence"] = pd.to_numeric(frame["valence"]).astype(int)
    frame["importance"] = pd.to_numeric(frame["importance"], errors="coerce").astype(float)
    frame["evidence"] = frame["evidence"].fillna("").astype(str)
    frame["site"] = frame["site"].fillna(PROGRAMME).astype(str).replace("", PROGRAMME)
    frame["member"] = frame["member"].astype(str).str.strip()
    frame["group"] = frame["group"].astype(str).str.strip()
    dupes = frame.duplicated(["site", "member", "construct"], keep=False)
    if dupes.any():
        first = frame.loc[dupes].iloc[0]
        raise ParameterError(
            f"ratings: member {first['member']!r} rated {first['construct']!r} for site {first['site']!r} more than "
            "once; keep one rating per member, construct and site."
        )
    return frame


def _number(value: Any) -> float | None:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return None
    if isinstance(value, str):
        if not value.strip():
            return None
        try:
            return float(value)
        except ValueError:
            return float("nan")
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


@dataclass(frozen=True)
class BarrierAssessment:
    """Aggregated ratings: per construct (with spread), per stakeholder group, and the raw ratings.

    Attributes
    ----------
    constructs
        One row per ``site x construct``: counts, valence mean / median /
        quartiles / range, the share of members rating it a barrier
        (valence < 0) or a facilitator (> 0), mean importance, a priority
        score, the group means' gap, and the flags ``groups_disagree`` and
        ``sign_conflict``, and ``barrier_for`` (the groups whose mean valence
        is below zero).
    groups
        One row per ``site x construct x group``: n, mean and median valence,
        mean importance.
    ratings
        The validated ratings (free-text evidence included).
    settings
        ``disagreement_gap`` and ``importance_range``.
    """

    constructs: pd.DataFrame
    groups: pd.DataFrame
    ratings: pd.DataFrame
    settings: Mapping[str, Any] = field(default_factory=dict)

    # ------------------------------------------------------------------ views
    def to_frame(self) -> pd.DataFrame:
        """The per-construct table (a copy)."""
        return self.constructs.copy()

    tidy = to_frame

    def side_by_side(self, value: Literal["valence_mean", "valence_median", "importance_mean"] = "valence_mean"
                     ) -> pd.DataFrame:
        """Constructs in rows, stakeholder groups in columns: each group's view next to the others'."""
        check_option("value", value, ("valence_mean", "valence_median", "importance_mean"))
        wide = self.groups.pivot_table(index=["site", "construct"], columns="group", values=value, aggfunc="first")
        wide.columns = [str(c) for c in wide.columns]
        keep = self.constructs.set_index(["site", "construct"])[["name", "valence_median", "groups_disagree",
                                                                 "sign_conflict"]]
        return keep.join(wide).reset_index()

    def disagreements(self) -> pd.DataFrame:
        """The side-by-side rows flagged ``groups_disagree`` or ``sign_conflict``."""
        wide = self.side_by_side()
        return wide.loc[wide["groups_disagree"] | wide["sign_conflict"]].reset_index(drop=True)

    def priorities(
        self, *, rule: PriorityRule = "overall", top: int | None = None, site: str | None = None
    ) -> pd.DataFrame:
        """Constructs rated as barriers, highest priority first.

        ``rule='overall'`` keeps constructs whose mean valence over all
        members is below zero; ``'any_group'`` also keeps those that any one
        stakeholder group rates, on average, below zero (so a barrier seen
        only by community partners is not lost), scoring each by the group
        that sees it most strongly. The score is barrier strength (-valence
        / 2, 0-1) times scaled importance (0-1; 1 when nobody rated
        importance).
        """
        check_option("rule", rule, PRIORITY_RULES)
        if top is not None and (not isinstance(top, int) or top < 1):
            raise ParameterError(f"top must be a positive whole number or None; saw {top!r}")
        table = self.constructs if site is None else self.constructs.loc[self.constructs["site"] == site]
        if rule == "overall":
            out = table.loc[table["valence_mean"] < 0].copy()
            out["score"] = out["priority"]
        else:
            groups = self.groups.copy()
            groups["score"] = _priority(groups["valence_mean"], groups["importance_mean"], self._importance_range())
            worst = groups.loc[groups["valence_mean"] < 0].groupby(["site", "construct"])["score"].max()
            out = table.set_index(["site", "construct"]).join(worst, how="inner").reset_index()
            out["score"] = np.maximum(out["score"], out["priority"].fillna(0))
        out = out.sort_values(["score", "valence_mean"], ascending=[False, True], kind="stable")
        columns = ["site", "construct", "name", "domain", "score", "valence_mean", "valence_median", "importance_mean",
                   "share_barrier", "barrier_for", "groups_disagree", "sign_conflict"]
        out = out[columns].reset_index(drop=True)
        return out.head(top) if top is not None else out

    def barrier_ids(self, *, rule: PriorityRule = "overall", top: int | None = None, site: str | None = None
                    ) -> list[str]:
        """Construct ids of :meth:`priorities` (distinct, in priority order), ready for strategy matching."""
        ids = self.priorities(rule=rule, top=None, site=site)["construct"].tolist()
        distinct = list(dict.fromkeys(ids))
        return distinct[:top] if top is not None else distinct

    def evidence(self, construct: str | None = None) -> pd.DataFrame:
        """Free-text evidence (non-empty) with who gave it, optionally for one construct."""
        frame = self.ratings.loc[self.ratings["evidence"].str.strip() != ""]
        if construct is not None:
            frame = frame.loc[frame["construct"] == load_vocabulary().construct(construct).id]
        return frame[["site", "construct", "group", "member", "valence", "evidence"]].reset_index(drop=True)

    def summary(self) -> str:
        """Plain-text overview: barriers by priority, disagreements between groups."""
        c = self.constructs
        lines = [
            f"Barrier assessment: {len(self.ratings)} rating(s) by {self.ratings['member'].nunique()} member(s) in "
            f"{self.ratings['group'].nunique()} group(s) of {c['construct'].nunique()} CFIR 2.0 construct(s), "
            f"{c['site'].nunique()} site(s).",
            "Valence -2 (strong barrier) to +2 (strong facilitator); ratings are the team's judgements.",
        ]
        top = self.priorities(top=10)
        if len(top):
            lines.append("Barriers by priority (mean valence over all members):")
            for r in top.itertuples(index=False):
                flag = " [groups disagree]" if r.groups_disagree or r.sign_conflict else ""
                lines.append(f"  {r.name} ({r.site}): mean {r.valence_mean:+.1f}, median {r.valence_median:+.1f}, "
                             f"{r.share_barrier:.0%} see a barrier{flag}")
        hidden = self.priorities(rule="any_group")
        only_some = hidden.loc[hidden["valence_mean"] >= 0]
        if len(only_some):
            lines.append("Barriers for some groups only (an average would hide them):")
            for r in only_some.itertuples(index=False):
                lines.append(f"  {r.name} ({r.site}): a barrier for {r.barrier_for}")
        dis = self.disagreements()
        if len(dis):
            lines.append(f"{len(dis)} construct(s) where stakeholder groups disagree; see side_by_side().")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: settings, per-construct and per-group tables, priorities, disagreements, evidence."""
        return {
            "kind": "barrier_assessment",
            "settings": jsonable(self.settings),
            "constructs": jsonable(self.constructs),
            "groups": jsonable(self.groups),
            "priorities": jsonable(self.priorities()),
            "disagreements": jsonable(self.disagreements()),
            "evidence": jsonable(self.evidence()),
        }

    def plot(self) -> alt.Chart:
        """Heat map of mean valence by construct (rows) and stakeholder group (columns)."""
        data = self.groups.merge(self.constructs[["site", "construct", "name"]], on=["site", "construct"])
        data = data.assign(label=data["name"] + np.where(data["site"] == PROGRAMME, "", " (" + data["site"] + ")"))
        base = alt.Chart(data).encode(
            x=alt.X("group:N", title="Stakeholder group"),
            y=alt.Y("label:N", title="CFIR 2.0 construct", sort=None),
        )
        cells = base.mark_rect().encode(
            color=alt.Color("valence_mean:Q", title="Mean valence",
                            scale=alt.Scale(domain=list(VALENCE_RANGE), scheme="redblue")),
            tooltip=["label:N", "group:N", "n:Q", alt.Tooltip("valence_mean:Q", format="+.2f"),
                     alt.Tooltip("importance_mean:Q", format=".1f")],
        )
        text = base.mark_text().encode(text=alt.Text("valence_mean:Q", format="+.1f"))
        return (cells + text).properties(title="Barrier assessment: each group's mean valence")

    def _importance_range(self) -> tuple[int, int]:
        lo, hi = self.settings.get("importance_range", IMPORTANCE_RANGE)
        return int(lo), int(hi)


def _priority(valence: pd.Series, importance: pd.Series, importance_range: tuple[int, int]) -> pd.Series:
    lo, hi = importance_range
    strength = np.clip(-valence.astype(float) / abs(VALENCE_RANGE[0]), 0, 1) + 0.0
    scaled = ((importance.astype(float) - lo) / (hi - lo)).fillna(1.0)
    return pd.Series(strength * scaled, index=valence.index)


def assess_barriers(
    ratings: pd.DataFrame | Iterable[Rating],
    *,
    disagreement_gap: float = DISAGREEMENT_GAP,
    importance_range: tuple[int, int] = IMPORTANCE_RANGE,
) -> BarrierAssessment:
    """Aggregate members' CFIR 2.0 ratings, keeping stakeholder groups side by side.

    Parameters
    ----------
    ratings
        A frame with ``member, group, construct, valence`` and optionally
        ``importance, evidence, site``, or a list of :class:`Rating`.
    disagreement_gap
        Flag a construct when two groups' mean valences differ by at least this much.
    importance_range
        The importance scale (inclusive).

    Examples
    --------
    >>> frame = pd.DataFrame({"member": ["a", "b"], "group": ["researcher", "implementer"],
    ...                       "construct": ["Financing", "Financing"], "valence": [-2, 1]})
    >>> bool(assess_barriers(frame).constructs.loc[0, "groups_disagree"])
    True
    """
    if not isinstance(disagreement_gap, int | float) or not disagreement_gap > 0:
        raise ParameterError(f"disagreement_gap must be a positive number; saw {disagreement_gap!r}")
    frame = ratings_frame(ratings, importance_range=importance_range)
    if frame.empty:
        raise ParameterError("ratings: no ratings given.")
    vocab = load_vocabulary()
    keys = ["site", "construct"]
    grouped = frame.groupby(keys, sort=False)
    v = grouped["valence"]
    table = pd.DataFrame(
        {
            "n_ratings": v.size(),
            "n_groups": grouped["group"].nunique(),
            "valence_mean": v.mean(),
            "valence_median": v.median(),
            "valence_sd": v.std(ddof=1),
            "valence_q1": v.quantile(0.25),
            "valence_q3": v.quantile(0.75),
            "valence_min": v.min(),
            "valence_max": v.max(),
            "share_barrier": grouped["valence"].apply(lambda s: float((s < 0).mean())),
            "share_facilitator": grouped["valence"].apply(lambda s: float((s > 0).mean())),
            "importance_mean": grouped["importance"].mean(),
            "n_importance": grouped["importance"].count(),
        }
    ).reset_index()
    g = frame.groupby([*keys, "group"], sort=False)
    groups = pd.DataFrame(
        {
            "n": g["valence"].size(),
            "valence_mean": g["valence"].mean(),
            "valence_median": g["valence"].median(),
            "importance_mean": g["importance"].mean(),
        }
    ).reset_index()
    spread = groups.groupby(keys)["valence_mean"].agg(["min", "max"])
    barrier_for = groups.loc[groups["valence_mean"] < 0].groupby(keys)["group"].agg(lambda s: ", ".join(sorted(s)))
    table = table.join(spread, on=keys).join(barrier_for.rename("barrier_for"), on=keys)
    table["group_gap"] = table["max"] - table["min"]
    table["groups_disagree"] = (table["n_groups"] > 1) & (table["group_gap"] >= disagreement_gap)
    table["sign_conflict"] = (table["min"] < 0) & (table["max"] > 0)
    table["barrier_for"] = table["barrier_for"].fillna("")
    table["priority"] = _priority(table["valence_mean"], table["importance_mean"], importance_range)
    meta = {c.id: c for c in vocab.cfir2}
    table.insert(2, "name", [meta[c].label for c in table["construct"]])
    table.insert(3, "domain", [meta[c].domain for c in table["construct"]])
    order = {c.id: i for i, c in enumerate(vocab.cfir2)}
    table = table.drop(columns=["min", "max"]).sort_values(
        ["site", "construct"], key=lambda s: s.map(order) if s.name == "construct" else s, kind="stable"
    )
    groups = groups.sort_values(["site", "construct", "group"], key=lambda s: s.map(order) if s.name == "construct"
                                else s, kind="stable")
    return BarrierAssessment(
        constructs=table.reset_index(drop=True),
        groups=groups.reset_index(drop=True),
        ratings=frame,
        settings={"disagreement_gap": float(disagreement_gap), "importance_range": list(importance_range),
                  "valence_range": list(VALENCE_RANGE)},
    )
