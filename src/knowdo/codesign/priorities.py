"""Priority setting: Delphi rounds with consensus rules chosen up front, and nominal-group ranking.

**Delphi.** Members rate each item (a research question, a barrier, a
strategy) on the 1-9 scale used by GRADE and the RAND/UCLA method (1-3 of
limited importance / inappropriate, 4-6 important / uncertain, 7-9
critical / appropriate), anonymously; between rounds each member sees the
group's median and interquartile range and their own previous rating
(:meth:`DelphiResult.feedback`). The consensus rule is fixed before round 1
(:class:`ConsensusRules`), one of:

``'percent'`` (the default; COMET Handbook convention, Williamson et al., *Trials* 2017;18(Suppl 3):280)
    **consensus in**: at least 70% rate 7-9 *and* fewer than 15% rate 1-3;
    **consensus out**: at least 70% rate 1-3 *and* fewer than 15% rate 7-9;
    otherwise no consensus. ``strict_against=False`` reads "at most 15%"
    instead of "fewer than", as some protocols write it.
``'rand_ucla'`` (Fitch et al., *The RAND/UCLA Appropriateness Method User's Manual*, RAND 2001)
    disagreement when the **disagreement index** DI = IPR / IPRAS exceeds 1,
    where IPR is the range between the 30th and 70th percentiles, IPRAS =
    2.35 + 1.5 x |5 - (P30 + P70) / 2|; then median 7-9 without
    disagreement is *appropriate*, median 1-3 without disagreement
    *inappropriate*, anything else (including medians between the bands such
    as 6.5, and any disagreement) *uncertain*.

Percentiles are linear interpolation between order statistics (Hyndman &
Fan type 7, Excel's PERCENTILE.INC), which reproduces the published worked
example of the disagreement index (BMJ Open 2012;2:e001431, Table 1:
IPR 1.0, IPRAS 6.1). Shares use the members who rated the item (abstentions
are left out and counted).

**Ranking.** In a nominal group each member ranks their top items (1 =
first); :func:`rank_items` scores them by Borda points (``top - rank + 1``
for each ranked item, 0 when unranked) or by mean rank.

>>> votes = pd.DataFrame({"round": 1, "item": "Q1", "participant": list("abcdefghij"),
...                       "rating": [9, 8, 8, 7, 7, 7, 7, 5, 4, 2]})
>>> summarise_delphi(votes).final().loc[0, "status"]
'consensus_in'
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import altair as alt
import numpy as np
import pandas as pd

from knowdo.errors import ParameterError
from knowdo.strategies._common import check_option, jsonable, require_columns

ConsensusRule = Literal["percent", "rand_ucla"]
CONSENSUS_RULES: tuple[ConsensusRule, ...] = ("percent", "rand_ucla")
RankMethod = Literal["borda", "mean_rank"]
RANK_METHODS: tuple[RankMethod, ...] = ("borda", "mean_rank")
SCALE = (1, 9)  # GRADE / RAND-UCLA 9-point scale
HIGH = (7, 9)  # critical / appropriate band
LOW = (1, 3)  # of limited importance / inappropriate band
IPR_REQUIRED = 2.35  # RAND/UCLA manual: IPR needed for disagreement with perfectly symmetric ratings
ASYMMETRY_FACTOR = 1.5  # RAND/UCLA manual: correction factor for asymmetry
IPR_PERCENTILES = (30, 70)  # RAND/UCLA manual: the interpercentile range


@dataclass(frozen=True)
class ConsensusRules:
    """The consensus rule, fixed before round 1 (changing it later invalidates the Delphi).

    Attributes
    ----------
    rule
        ``'percent'`` or ``'rand_ucla'`` (module docstring).
    agree_share
        Share rating in the deciding band needed (COMET: 0.70).
    against_share
        Share in the opposite band that blocks consensus (COMET: 0.15).
    strict_against
        True: the opposite band must hold *fewer than* ``against_share``
        (COMET); False: *at most*.
    drop_on_consensus
        Items that reach consensus ('in' or 'out'; 'appropriate' or
        'inappropriate') are not rated again in later rounds.
    """

    rule: ConsensusRule = "percent"
    agree_share: float = 0.70  # COMET Handbook (Williamson et al. 2017)
    against_share: float = 0.15  # COMET Handbook (Williamson et al. 2017)
    strict_against: bool = True
    drop_on_consensus: bool = True

    def __post_init__(self) -> None:
        check_option("rule", self.rule, CONSENSUS_RULES)
        for name in ("agree_share", "against_share"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not 0 < value < 1:
                raise ParameterError(f"ConsensusRules: {name} must lie between 0 and 1; saw {value!r}")
        if self.against_share >= self.agree_share:
            raise ParameterError("ConsensusRules: against_share must be smaller than agree_share.")

    def describe(self) -> str:
        if self.rule == "rand_ucla":
            return ("RAND/UCLA: disagreement when DI = IPR(30th-70th) / (2.35 + 1.5 x |5 - IPR centre|) > 1; "
                    "median 7-9 without disagreement appropriate, 1-3 inappropriate, otherwise uncertain.")
        word = "fewer than" if self.strict_against else "at most"
        return (f"Consensus in: at least {self.agree_share:.0%} rate 7-9 and {word} {self.against_share:.0%} "
                f"rate 1-3; consensus out: at least {self.agree_share:.0%} rate 1-3 and {word} "
                f"{self.against_share:.0%} rate 7-9; otherwise no consensus.")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "description": self.describe()}


@dataclass(frozen=True)
class DelphiVote:
    """One member's rating of one item in one round (``rating`` None = abstained / unable to rate)."""

    round: int
    item: str
    participant: str
    rating: int | None
    group: str = ""
    comment: str = ""


VOTE_COLUMNS = ("round", "item", "participant", "rating", "group", "comment")


def votes_frame(votes: pd.DataFrame | Iterable[DelphiVote]) -> pd.DataFrame:
    """Validate votes: whole-number rounds from 1, ratings 1-9 or empty, one vote per member, item and round."""
    if isinstance(votes, pd.DataFrame):
        frame = votes.copy()
    else:
        items = list(votes)
        if not all(isinstance(v, DelphiVote) for v in items):
            raise ParameterError("votes: give a DataFrame or a list of DelphiVote objects.")
        frame = pd.DataFrame([asdict(v) for v in items], columns=list(VOTE_COLUMNS))
    require_columns(frame, ("round", "item", "participant", "rating"), "votes")
    for column in ("group", "comment"):
        if column not in frame.columns:
            frame[column] = ""
    frame = frame[list(VOTE_COLUMNS)].reset_index(drop=True)
    rounds = pd.to_numeric(frame["round"], errors="coerce")
    bad = rounds.isna() | (rounds < 1) | (rounds != rounds.round())
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ParameterError(f"votes row {i + 1}, column 'round': expected a whole number from 1; "
                             f"saw {frame.loc[i, 'round']!r}")
    ratings = pd.to_numeric(frame["rating"].replace("", np.nan), errors="coerce")
    given = frame["rating"].notna() & (frame["rating"].astype(str).str.strip() != "")
    bad = given & (ratings.isna() | (ratings < SCALE[0]) | (ratings > SCALE[1]) | (ratings != ratings.round()))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ParameterError(f"votes row {i + 1}, column 'rating': expected a whole number from 1 to 9 or empty; "
                             f"saw {frame.loc[i, 'rating']!r}")
    for column in ("item", "participant"):
        blank = frame[column].isna() | (frame[column].astype(str).str.strip() == "")
        if blank.any():
            raise ParameterError(f"votes row {int(np.flatnonzero(blank)[0]) + 1}, column '{column}': empty.")
    frame["round"] = rounds.astype(int)
    frame["rating"] = ratings.astype(float)
    for column in ("item", "participant", "group", "comment"):
        frame[column] = frame[column].fillna("").astype(str).str.strip()
    dupes = frame.duplicated(["round", "item", "participant"], keep=False)
    if dupes.any():
        r = frame.loc[dupes].iloc[0]
        raise ParameterError(f"votes: participant {r['participant']!r} rated {r['item']!r} twice in round "
                             f"{r['round']}; keep one vote.")
    return frame


def _percentile(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q, method="linear")) if len(values) else math.nan


def item_statistics(ratings: Iterable[float]) -> dict[str, float]:
    """Median, quartiles, the 30th/70th percentiles, band shares and counts of one item's ratings (1-9).

    >>> stats = item_statistics([4, 5, 6, 7, 7, 7, 7, 7, 8, 8, 8, 8, 8, 9, 9])
    >>> stats["p30"], stats["p70"], round(stats["ipras"], 2)
    (7.0, 8.0, 6.1)
    """
    values = np.array([v for v in ratings if v is not None and not (isinstance(v, float) and math.isnan(v))],
                      dtype=float)
    n = len(values)
    out: dict[str, float] = {"n": float(n)}
    out["median"] = float(np.median(values)) if n else math.nan
    out["q1"], out["q3"] = _percentile(values, 25), _percentile(values, 75)
    out["iqr"] = out["q3"] - out["q1"]
    out["mean"] = float(values.mean()) if n else math.nan
    out["share_high"] = float(((values >= HIGH[0]) & (values <= HIGH[1])).mean()) if n else math.nan
    out["share_mid"] = float(((values > LOW[1]) & (values < HIGH[0])).mean()) if n else math.nan
    out["share_low"] = float(((values >= LOW[0]) & (values <= LOW[1])).mean()) if n else math.nan
    p30, p70 = _percentile(values, IPR_PERCENTILES[0]), _percentile(values, IPR_PERCENTILES[1])
    out["p30"], out["p70"] = p30, p70
    out["ipr"] = p70 - p30
    centre = (p30 + p70) / 2
    out["asymmetry"] = abs(5 - centre)
    out["ipras"] = IPR_REQUIRED + ASYMMETRY_FACTOR * out["asymmetry"]
    out["disagreement_index"] = out["ipr"] / out["ipras"] if n else math.nan
    for score in range(SCALE[0], SCALE[1] + 1):
        out[f"n_{score}"] = float((values == score).sum())
    return out


def classify(stats: Mapping[str, float], rules: ConsensusRules) -> str:
    """The item's status under ``rules`` from :func:`item_statistics` output."""
    if not stats["n"]:
        return "not_rated"
    if rules.rule == "rand_ucla":
        if stats["disagreement_index"] > 1:
            return "uncertain"
        if stats["median"] >= HIGH[0]:
            return "appropriate"
        if stats["median"] <= LOW[1]:
            return "inappropriate"
        return "uncertain"

    def below(share: float) -> bool:
        return share < rules.against_share - 1e-12 if rules.strict_against else share <= rules.against_share + 1e-12

    if stats["share_high"] >= rules.agree_share - 1e-12 and below(stats["share_low"]):
        return "consensus_in"
    if stats["share_low"] >= rules.agree_share - 1e-12 and below(stats["share_high"]):
        return "consensus_out"
    return "no_consensus"


SETTLED = {"consensus_in", "consensus_out", "appropriate", "inappropriate"}
ITEM_COLUMNS = ("round", "item", "n", "n_abstained", "median", "q1", "q3", "iqr", "mean", "share_high", "share_mid",
                "share_low", "p30", "p70", "ipr", "asymmetry", "ipras", "disagreement_index", "status", "settled",
                *(f"n_{s}" for s in range(SCALE[0], SCALE[1] + 1)))


@dataclass(frozen=True)
class DelphiResult:
    """Per round and item: the group's ratings summarised and the consensus status.

    ``items`` holds :data:`ITEM_COLUMNS`; ``groups`` the median and share
    rating 7-9 per stakeholder group (when votes carry a group), so
    differences between groups stay visible. Participant identities are
    kept only in ``votes`` and surface solely through
    :meth:`feedback` for the participant concerned.
    """

    items: pd.DataFrame
    groups: pd.DataFrame
    votes: pd.DataFrame
    rules: ConsensusRules = field(default_factory=ConsensusRules)

    def to_frame(self) -> pd.DataFrame:
        return self.items.copy()

    tidy = to_frame

    @property
    def rounds(self) -> list[int]:
        return sorted(int(r) for r in self.items["round"].unique())

    def final(self) -> pd.DataFrame:
        """Each item's row from the last round in which it was rated."""
        last = self.items.sort_values("round").groupby("item", sort=False).tail(1)
        return last.sort_values(["settled", "share_high"], ascending=[False, False]).reset_index(drop=True)

    def feedback(self, round_no: int | None = None, participant: str | None = None) -> pd.DataFrame:
        """What members see before the next round: each item's n, median, quartiles and rating counts.

        With ``participant``, adds that member's own rating (and nobody else's).
        """
        round_no = self.rounds[-1] if round_no is None else round_no
        if round_no not in self.rounds:
            raise ParameterError(f"feedback: round {round_no} has no votes; rounds are {self.rounds}")
        cols = ["item", "n", "median", "q1", "q3", "iqr", "share_high", "share_low", "status",
                *(f"n_{s}" for s in range(SCALE[0], SCALE[1] + 1))]
        out = self.items.loc[self.items["round"] == round_no, cols].reset_index(drop=True)
        if participant is not None:
            own = self.votes.loc[(self.votes["round"] == round_no) & (self.votes["participant"] == participant)]
            if own.empty:
                raise ParameterError(f"feedback: {participant!r} did not vote in round {round_no}.")
            out["your_rating"] = out["item"].map(own.set_index("item")["rating"])
        return out

    def next_round_items(self, round_no: int | None = None) -> list[str]:
        """Items to rate in the round after ``round_no`` (all, or the unsettled ones under ``drop_on_consensus``)."""
        round_no = self.rounds[-1] if round_no is None else round_no
        rows = self.items.loc[self.items["round"] == round_no]
        if self.rules.drop_on_consensus:
            rows = rows.loc[~rows["settled"]]
        return rows["item"].tolist()

    def stability(self) -> pd.DataFrame:
        """Change in median and in the share rating 7-9 between consecutive rounds for each item."""
        frame = self.items.sort_values(["item", "round"])
        frame = frame.assign(
            median_change=frame.groupby("item")["median"].diff(),
            share_high_change=frame.groupby("item")["share_high"].diff(),
        )
        return frame.loc[frame["median_change"].notna(), ["item", "round", "median", "median_change",
                                                          "share_high", "share_high_change", "status"]]

    def summary(self) -> str:
        final = self.final()
        counts = final["status"].value_counts()
        lines = [f"Delphi: {final['item'].nunique()} item(s), {len(self.rounds)} round(s), "
                 f"{self.votes['participant'].nunique()} participant(s).",
                 f"Rule (set before round 1): {self.rules.describe()}",
                 "Final status: " + ", ".join(f"{k} {v}" for k, v in counts.items())]
        for r in final.to_dict(orient="records"):
            lines.append(f"  {r['item']}: {r['status']} in round {r['round']} (n={int(r['n'])}, median "
                         f"{r['median']:g}, IQR {r['q1']:g}-{r['q3']:g}, {r['share_high']:.0%} rated 7-9, "
                         f"{r['share_low']:.0%} rated 1-3)")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; no participant identities."""
        return {
            "kind": "delphi",
            "rules": self.rules.to_dict(),
            "rounds": self.rounds,
            "items": jsonable(self.items),
            "final": jsonable(self.final()),
            "groups": jsonable(self.groups),
            "next_round_items": self.next_round_items(),
        }

    def plot(self) -> alt.Chart:
        """Median with interquartile range per item and round, coloured by status."""
        data = self.items.assign(round=self.items["round"].astype(str))
        base = alt.Chart(data).encode(y=alt.Y("item:N", title=None), yOffset="round:N")
        rule = base.mark_rule().encode(x=alt.X("q1:Q", scale=alt.Scale(domain=list(SCALE)), title="Rating (1-9)"),
                                       x2="q3:Q")
        point = base.mark_point(filled=True, size=70).encode(
            x="median:Q", color=alt.Color("status:N"), shape="round:N",
            tooltip=["item:N", "round:N", "n:Q", "median:Q", "q1:Q", "q3:Q", alt.Tooltip("share_high:Q", format=".0%"),
                     "status:N"])
        return (rule + point).properties(title="Delphi: median and interquartile range by round")


def summarise_delphi(votes: pd.DataFrame | Iterable[DelphiVote], rules: ConsensusRules | None = None) -> DelphiResult:
    """Summarise every round and item under consensus ``rules`` (default: COMET's 70% / 15%).

    Parameters
    ----------
    votes
        Table with ``round, item, participant, rating`` (and optional ``group, comment``) or DelphiVote objects.
    rules
        The consensus rules fixed before round 1.
    """
    rules = rules if rules is not None else ConsensusRules()
    if not isinstance(rules, ConsensusRules):
        raise ParameterError(f"rules must be a ConsensusRules; saw {type(rules).__name__}")
    frame = votes_frame(votes)
    if frame.empty:
        raise ParameterError("votes: no votes given.")
    rows = []
    for (round_no, item), part in frame.groupby(["round", "item"], sort=True):
        stats = item_statistics(part["rating"].tolist())
        status = classify(stats, rules)
        rows.append({"round": int(str(round_no)), "item": item, **stats, "n": int(stats["n"]),
                     "n_abstained": int(part["rating"].isna().sum()), "status": status, "settled": status in SETTLED})
    items = pd.DataFrame(rows)[list(ITEM_COLUMNS)]
    grouped = frame.loc[frame["group"] != ""]
    group_rows = []
    for (round_no, item, group), part in grouped.groupby(["round", "item", "group"], sort=True):
        stats = item_statistics(part["rating"].tolist())
        group_rows.append({"round": int(str(round_no)), "item": item, "group": group, "n": int(stats["n"]),
                           "median": stats["median"], "share_high": stats["share_high"],
                           "share_low": stats["share_low"]})
    groups = pd.DataFrame(group_rows, columns=["round", "item", "group", "n", "median", "share_high", "share_low"])
    return DelphiResult(items=items, groups=groups, votes=frame, rules=rules)


# ---------------------------------------------------------------------------- ranking
@dataclass(frozen=True)
class RankingResult:
    """Items ordered by the group's ranking.

    ``table``: ``position, item, points, mean_rank, n_ranked, n_first``
    (``position`` shared by ties, e.g. two items at 2 and the next at 4).
    """

    table: pd.DataFrame
    method: RankMethod
    top: int
    n_participants: int

    def to_frame(self) -> pd.DataFrame:
        return self.table.copy()

    tidy = to_frame

    def summary(self) -> str:
        what = f"Borda points (top {self.top}: rank 1 = {self.top} points)" if self.method == "borda" else "mean rank"
        lines = [f"Ranking by {self.n_participants} participant(s), ordered by {what}:"]
        for r in self.table.itertuples(index=False):
            lines.append(f"  {r.position}. {r.item}: {r.points:g} points, mean rank {r.mean_rank:.2f} "
                         f"(ranked by {r.n_ranked}, first for {r.n_first})")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "ranking", "method": self.method, "top": self.top, "n_participants": self.n_participants,
                "items": jsonable(self.table)}

    def plot(self) -> alt.Chart:
        value = "points" if self.method == "borda" else "mean_rank"
        return alt.Chart(self.table).mark_bar().encode(
            x=alt.X(f"{value}:Q", title="Borda points" if value == "points" else "Mean rank (lower is better)"),
            y=alt.Y("item:N", sort=None, title=None),
            tooltip=["item:N", "points:Q", "mean_rank:Q", "n_ranked:Q", "n_first:Q"],
        ).properties(title="Group ranking")


def rank_items(votes: pd.DataFrame, *, method: RankMethod = "borda", top: int | None = None,
               items: Iterable[str] | None = None) -> RankingResult:
    """Aggregate members' rankings (``participant, item, rank``; 1 = first) into a group order.

    Parameters
    ----------
    method
        ``'borda'``: each ranked item earns ``top - rank + 1`` points, summed;
        ``'mean_rank'``: mean rank among those who ranked it, unranked items
        counted as ``top + 1``.
    top
        How many items each member ranks (default: the largest rank given).
    items
        All candidate items, so unranked ones are listed with 0 points.

    Examples
    --------
    >>> votes = pd.DataFrame({"participant": ["a", "a", "b", "b"], "item": ["X", "Y", "Y", "X"], "rank": [1, 2, 1, 2]})
    >>> rank_items(votes).table[["item", "points"]].values.tolist()
    [['X', 3], ['Y', 3]]
    """
    check_option("method", method, RANK_METHODS)
    require_columns(votes, ("participant", "item", "rank"), "rankings")
    frame = votes[["participant", "item", "rank"]].copy()
    ranks = pd.to_numeric(frame["rank"], errors="coerce")
    if ranks.isna().any() or (ranks < 1).any() or (ranks != ranks.round()).any():
        i = int(np.flatnonzero(ranks.isna() | (ranks < 1) | (ranks != ranks.round()))[0])
        raise ParameterError(f"rankings row {i + 1}, column 'rank': expected a whole number from 1; "
                             f"saw {frame['rank'].iloc[i]!r}")
    frame["rank"] = ranks.astype(int)
    frame["item"] = frame["item"].astype(str).str.strip()
    frame["participant"] = frame["participant"].astype(str).str.strip()
    if frame.duplicated(["participant", "item"]).any():
        raise ParameterError("rankings: a participant ranked the same item twice.")
    if frame.duplicated(["participant", "rank"]).any():
        raise ParameterError("rankings: a participant gave the same rank to two items; ties are not allowed.")
    top = int(frame["rank"].max()) if top is None else top
    if not isinstance(top, int) or top < int(frame["rank"].max()):
        raise ParameterError(f"top must be a whole number at least the largest rank given ({frame['rank'].max()}); "
                             f"saw {top!r}")
    names = list(dict.fromkeys([*(items or []), *frame["item"]]))
    n_part = frame["participant"].nunique()
    frame["points"] = top - frame["rank"] + 1
    g = frame.groupby("item")
    table = pd.DataFrame({"item": names})
    table["points"] = table["item"].map(g["points"].sum()).fillna(0).astype(int)
    table["n_ranked"] = table["item"].map(g.size()).fillna(0).astype(int)
    table["n_first"] = table["item"].map(g["rank"].apply(lambda s: int((s == 1).sum()))).fillna(0).astype(int)
    total_rank = table["item"].map(g["rank"].sum()).fillna(0) + (n_part - table["n_ranked"]) * (top + 1)
    table["mean_rank"] = total_rank / n_part
    if method == "borda":
        table = table.sort_values(["points", "n_first"], ascending=[False, False], kind="stable")
        key = table["points"]
    else:
        table = table.sort_values(["mean_rank", "n_first"], ascending=[True, False], kind="stable")
        key = -table["mean_rank"]
    table["position"] = key.rank(method="min", ascending=False).astype(int)
    table = table[["position", "item", "points", "mean_rank", "n_ranked", "n_first"]].reset_index(drop=True)
    return RankingResult(table=table, method=method, top=top, n_participants=n_part)
