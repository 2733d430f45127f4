"""Strategy matching: from prioritised barriers to candidate ERIC strategies, labelled as expert opinion.

knowdo does not invent endorsement numbers. When the team supplies the
official CFIR-ERIC Implementation Strategy Matching Tool workbook
(cfirguide.org; Waltz et al., *Implement Sci* 2019;14:42), it reads the
barrier x strategy endorsement percentages from it and applies the
published rules:

* for each barrier and strategy, the percentage of the experts answering
  for that barrier who put the strategy among their top seven;
* **Level 1**: endorsed by 50% or more; **Level 2**: by 20-49%;
* across the barriers the team selected, the **cumulative percent** is the
  sum of the strategy's percentages, and strategies are listed from the
  highest cumulative percent down, with their counts of Level 1 and Level 2
  endorsements. (The sums reproduce the paper's Table 5 worked example,
  e.g. 248% for "Identify and prepare champions" over seven barriers.)

The tool is keyed to CFIR 1.0's 39 barriers, so CFIR 2.0 constructs are
translated through the crosswalk of :mod:`knowdo.strategies.vocabularies`;
constructs with no barrier row (e.g. Critical Incidents) are reported, not
guessed. Each selected CFIR 1.0 barrier counts once even when two CFIR 2.0
constructs map to it.

Without a workbook, the 73 ERIC strategies are listed by cluster for the
team to choose from. Either way every suggestion carries
:data:`EXPERT_OPINION_NOTE`: the percentages come from about 26 experts per
barrier (169 respondents answering 6.1 barriers each on average) and are
not evidence that a strategy works; a Veterans Health Administration study
found sites used the tool's top 20 no more than other strategies
(*Implement Sci* 2023, doi:10.1186/s13012-023-01307-x).

The workbook reader was written from the paper's description, not from the
file: it finds the sheet in which ERIC strategy names run down one column
(or along one row) and CFIR 1.0 barrier names head the other axis, whatever
rows or columns surround them, and reads the cells where they cross
(fractions 0-1 or percentages 0-100, blanks as 0). A workbook in which it
finds fewer than :data:`MIN_STRATEGIES` strategies and :data:`MIN_BARRIERS`
barriers is rejected with a message saying what it found.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import altair as alt
import numpy as np
import openpyxl
import pandas as pd

from knowdo.errors import ParameterError
from knowdo.strategies._common import check_option, jsonable, require_columns
from knowdo.strategies.assessment import BarrierAssessment
from knowdo.strategies.vocabularies import Framework, load_vocabulary, normalise_name, resolve_constructs

LEVEL_1 = 50.0  # % of experts; Level 1 = endorsed by >= 50% (Waltz et al. 2019)
LEVEL_2 = 20.0  # % of experts; Level 2 = 20-49% (Waltz et al. 2019)
# Published check figures for a workbook read here (Waltz et al. 2019, Table 2 and text; cfirguide.org): of the
# 39 x 73 = 2,847 barrier x strategy pairs, 33 were Level 1 and 332 Level 2. Per-barrier (Level 1, Level 2) counts
# for the first eleven barriers of Table 2; the rest were not available to check against.
PUBLISHED_LEVEL_TOTALS = (33, 332)
PUBLISHED_LEVEL_COUNTS: dict[str, tuple[int, int]] = {
    "intervention_source": (0, 9), "evidence_strength_quality": (0, 10), "relative_advantage": (0, 11),
    "adaptability": (1, 10), "trialability": (0, 10), "complexity": (0, 15), "design_quality_packaging": (0, 7),
    "cost": (1, 9), "patient_needs_resources": (3, 5), "cosmopolitanism": (3, 7), "peer_pressure": (0, 8),
}
MIN_STRATEGIES = 5  # own convention: a sheet must name at least this many ERIC strategies to count as the matrix
MIN_BARRIERS = 3  # own convention: ... and at least this many CFIR 1.0 barriers
EXPERT_OPINION_NOTE = (
    "Expert opinion, not evidence of effectiveness: percentages of implementation experts (about 26 per barrier; "
    "Waltz et al., Implement Sci 2019;14:42) who chose the strategy for the barrier. Use them to start the team's "
    "discussion, not as a recommendation score."
)
NO_WORKBOOK_NOTE = (
    "No CFIR-ERIC matching workbook was given, so no endorsement figures are shown: the 73 ERIC strategies are "
    "listed by cluster for the team to choose from. ERIC is a vocabulary agreed by experts, not evidence of "
    "effectiveness. Download the workbook from cfirguide.org to add the experts' endorsements."
)
MatchMode = Literal["workbook", "by_cluster"]
Orientation = Literal["strategies_in_rows", "strategies_in_columns"]

# Other names for CFIR 1.0 barriers seen in copies of the framework and the tool.
_BARRIER_ALIASES = {
    "needs and resources of those served": "patient_needs_resources",
    "patient needs": "patient_needs_resources",
    "external policies and incentives": "external_policy_incentives",
    "networks and communication": "networks_communications",
    "appointed internal implementation leaders": "internal_implementation_leaders",
    "internal implementation leaders": "internal_implementation_leaders",
    "knowledge and beliefs": "knowledge_beliefs",
    "individual identification": "individual_identification",
    "design quality and packaging": "design_quality_packaging",
    "organizational incentives": "organizational_incentives_rewards",
    "readiness of implementation": "readiness_for_implementation",
    "leadership": "leadership_engagement",
    "evidence strength": "evidence_strength_quality",
    "participants": "innovation_participants",
}


# ---------------------------------------------------------------------------- workbook
@dataclass(frozen=True)
class MatchingWorkbook:
    """The endorsement matrix read from a CFIR-ERIC matching workbook.

    ``endorsements`` is long: ``barrier`` (CFIR 1.0 id), ``barrier_name``,
    ``strategy`` (ERIC name), ``number`` (ERIC number in cluster order),
    ``percent`` (0-100).
    """

    endorsements: pd.DataFrame
    source: str
    sheet: str = ""
    orientation: Orientation = "strategies_in_rows"
    unrecognised: tuple[str, ...] = ()

    @property
    def barriers(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.endorsements["barrier"]))

    def level_counts(self, *, level1: float = LEVEL_1, level2: float = LEVEL_2) -> pd.DataFrame:
        """Level 1 and Level 2 strategies per barrier (compare with the paper's Table 2)."""
        e = self.endorsements
        out = e.assign(level1=e["percent"] >= level1, level2=(e["percent"] >= level2) & (e["percent"] < level1))
        return out.groupby(["barrier", "barrier_name"], sort=False)[["level1", "level2"]].sum().reset_index()

    def published_check(self) -> pd.DataFrame:
        """This workbook's Level 1/2 counts beside the paper's (Table 2), per barrier that has published figures.

        A faithful reading of the official workbook gives ``matches`` True on
        every row (and totals of :data:`PUBLISHED_LEVEL_TOTALS` over all 39
        barriers); a False row points at a misread sheet or a changed file.
        """
        levels = self.level_counts()
        counts = {str(b): (int(one), int(two)) for b, one, two in
                  zip(levels["barrier"], levels["level1"], levels["level2"], strict=True)}
        rows = []
        for barrier, (one, two) in PUBLISHED_LEVEL_COUNTS.items():
            if barrier not in counts:
                continue
            got1, got2 = counts[barrier]
            rows.append({"barrier": barrier, "level1": got1, "level2": got2, "published_level1": one,
                         "published_level2": two, "matches": (got1, got2) == (one, two)})
        return pd.DataFrame(rows, columns=["barrier", "level1", "level2", "published_level1", "published_level2",
                                           "matches"])

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "sheet": self.sheet, "orientation": self.orientation,
                "barriers": list(self.barriers), "unrecognised": list(self.unrecognised),
                "endorsements": jsonable(self.endorsements)}


def _strategy_key(text: str) -> str:
    return normalise_name(re.sub(r"^\s*\d+\s*[.):-]?\s+", "", text))


@functools.cache
def _barrier_lookup() -> tuple[tuple[str, str], ...]:
    """(normalised name, barrier id), longest names first so prefixes resolve to the most specific barrier."""
    vocab = load_vocabulary()
    pairs = [(normalise_name(b.name), b.id) for b in vocab.cfir1]
    pairs += [(normalise_name(b.id.replace("_", " ")), b.id) for b in vocab.cfir1]
    pairs += [(normalise_name(alias), bid) for alias, bid in _BARRIER_ALIASES.items()]
    return tuple(sorted(set(pairs), key=lambda p: (-len(p[0]), p[0])))


# CFIR 1.0 parents sometimes written before a sub-construct, e.g. 'Engaging: Champions'.
_PARENT_PREFIXES = ("engaging", "implementation climate", "readiness for implementation")


def barrier_from_header(text: object) -> str | None:
    """The CFIR 1.0 barrier a header cell names ('Cost', 'Cost: stakeholders believe ...'), or None."""
    if not isinstance(text, str) or not text.strip():
        return None
    key = normalise_name(re.sub(r"^\s*\d+\s*[.):-]?\s+", "", text))
    lookup = _barrier_lookup()
    for name, bid in lookup:
        if key == name:
            return bid
    for parent in _PARENT_PREFIXES:
        if key.startswith(parent + " "):
            rest = key[len(parent) + 1 :]
            for name, bid in lookup:
                if rest == name or rest.startswith(name + " "):
                    return bid
    for name, bid in lookup:
        if key.startswith(name + " "):
            return bid
    return None


def strategy_from_cell(text: object) -> str | None:
    """The ERIC strategy a cell names (numbering and spelling variants allowed), or None."""
    if not isinstance(text, str) or not text.strip():
        return None
    key = _strategy_key(text)
    for s in load_vocabulary().strategies:
        if _strategy_key(s.name) == key:
            return s.name
    return None


def _percent(value: object) -> float | None:
    if value is None:
        return 0.0
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip()
    if not text or text in {"-", "—"}:
        return 0.0
    match = re.fullmatch(r"(-?\d+(?:\.\d+)?)\s*%", text)
    if match:
        return float(match.group(1)) / 100.0  # read as a fraction, like a cell formatted as a percentage
    try:
        return float(text)
    except ValueError:
        return None


def matrix_from_grid(grid: Sequence[Sequence[object]], *, source: str, sheet: str = "") -> MatchingWorkbook | None:
    """Find and read the barrier x strategy matrix in one sheet's cell values (rows of values), or None."""
    if not grid:
        return None
    width = max(len(r) for r in grid)
    rows = [list(r) + [None] * (width - len(r)) for r in grid]
    best: MatchingWorkbook | None = None
    for orientation in ("strategies_in_rows", "strategies_in_columns"):
        cells = rows if orientation == "strategies_in_rows" else [list(c) for c in zip(*rows, strict=True)]
        if not cells:
            continue
        n_cols = len(cells[0])
        strategy_counts = [sum(strategy_from_cell(r[j]) is not None for r in cells) for j in range(n_cols)]
        s_col = int(np.argmax(strategy_counts))
        barrier_counts = [sum(barrier_from_header(v) is not None for v in r) for r in cells]
        b_row = int(np.argmax(barrier_counts))
        if strategy_counts[s_col] < MIN_STRATEGIES or barrier_counts[b_row] < MIN_BARRIERS:
            continue
        headers = {j: barrier_from_header(v) for j, v in enumerate(cells[b_row])}
        headers = {j: b for j, b in headers.items() if b is not None and j != s_col}
        records, unrecognised = [], []
        for i, r in enumerate(cells):
            if i == b_row:
                continue
            name = strategy_from_cell(r[s_col])
            if name is None:
                if isinstance(r[s_col], str) and r[s_col].strip() and any(r[j] is not None for j in headers):
                    unrecognised.append(str(r[s_col]).strip())
                continue
            for j, barrier in headers.items():
                value = _percent(r[j])
                if value is None:
                    raise ParameterError(
                        f"{source}{f' sheet {sheet!r}' if sheet else ''}: the cell for {name!r} x "
                        f"{cells[b_row][j]!r} holds {r[j]!r}, not a percentage; fix the cell or export the sheet again."
                    )
                records.append((barrier, name, value))
        frame = pd.DataFrame(records, columns=["barrier", "strategy", "percent"])
        frame = frame.drop_duplicates(["barrier", "strategy"], keep="first")
        candidate = MatchingWorkbook(_finish(frame), source, sheet, orientation, tuple(unrecognised))
        if best is None or len(candidate.endorsements) > len(best.endorsements):
            best = candidate
    return best


def _finish(frame: pd.DataFrame) -> pd.DataFrame:
    """Percent on the 0-100 scale, with barrier names and ERIC numbers; checks the range."""
    values = frame["percent"].astype(float)
    if len(values) and values.max() <= 1.0:
        values = values * 100.0  # the matrix holds fractions (cells formatted as percentages)
    if len(values) and (values.min() < 0 or values.max() > 100):
        raise ParameterError(
            f"matching workbook: endorsement percentages must lie in 0-100 (or 0-1); saw {values.min()}..{values.max()}"
        )
    vocab = load_vocabulary()
    out = frame.assign(percent=values.round(6))
    out.insert(1, "barrier_name", [vocab.barrier(b).name for b in out["barrier"]])
    out.insert(3, "number", [vocab.strategy(s).number for s in out["strategy"]])
    return out.reset_index(drop=True)


def read_matching_workbook(path: str | Path) -> MatchingWorkbook:
    """Read the endorsement matrix from the CFIR-ERIC matching workbook (.xlsx/.xlsm) or a CSV export of it.

    Raises
    ------
    ParameterError
        When the file is missing, unreadable, or holds no sheet with ERIC
        strategies along one axis and CFIR 1.0 barriers along the other.
    """
    path = Path(path)
    if not path.is_file():
        raise ParameterError(f"matching workbook {str(path)!r} does not exist; download it from cfirguide.org.")
    sheets: list[tuple[str, list[list[object]]]] = []
    if path.suffix.lower() == ".csv":
        raw = pd.read_csv(path, header=None, dtype=object, keep_default_na=False)
        sheets.append(("", raw.replace("", None).values.tolist()))
    else:
        try:
            book = openpyxl.load_workbook(path, read_only=True, data_only=True)
        except Exception as exc:  # openpyxl raises several unrelated types for a damaged or foreign file
            raise ParameterError(
                f"matching workbook {str(path)!r} could not be opened as an Excel file: {exc}"
            ) from None
        try:
            for ws in book.worksheets:
                sheets.append((ws.title, [list(r) for r in ws.iter_rows(values_only=True)]))
        finally:
            book.close()
    found = [m for title, grid in sheets if (m := matrix_from_grid(grid, source=str(path), sheet=title)) is not None]
    if not found:
        raise ParameterError(
            f"matching workbook {str(path)!r}: no sheet has at least {MIN_STRATEGIES} ERIC strategy names along one "
            f"axis and {MIN_BARRIERS} CFIR 1.0 barrier names along the other. Is this the CFIR-ERIC matching tool?"
        )
    return max(found, key=lambda m: len(m.endorsements))


def workbook_from_frame(frame: pd.DataFrame, *, source: str = "table") -> MatchingWorkbook:
    """A :class:`MatchingWorkbook` from a long table ``barrier, strategy, percent`` (names or ids)."""
    require_columns(frame, ("barrier", "strategy", "percent"), "endorsements")
    vocab = load_vocabulary()
    out = pd.DataFrame(
        {
            "barrier": [vocab.barrier(str(b)).id for b in frame["barrier"]],
            "strategy": [vocab.strategy(str(s)).name for s in frame["strategy"]],
            "percent": pd.to_numeric(frame["percent"], errors="raise").astype(float),
        }
    )
    if out.duplicated(["barrier", "strategy"]).any():
        raise ParameterError("endorsements: a barrier x strategy pair appears twice; keep one row per pair.")
    return MatchingWorkbook(_finish(out), source)


# ---------------------------------------------------------------------------- matching
@dataclass(frozen=True)
class StrategyMatch:
    """Candidate ERIC strategies for the selected barriers.

    Attributes
    ----------
    mode
        ``'workbook'`` (endorsements from the matching tool) or ``'by_cluster'`` (no figures).
    barriers
        The selected constructs (CFIR 2.0 ids, or CFIR 1.0 ids when ``framework='cfir1'``).
    cfir1_barriers
        The matching-tool rows used, with how each was reached.
    unmatched
        Selected constructs with no matching-tool row.
    table
        One row per ERIC strategy: ``rank, number, strategy, cluster,
        cluster_name, cumulative_percent, n_level1, n_level2, endorsed,
        basis`` (figures empty in ``by_cluster`` mode).
    detail
        ``strategy x barrier`` percentages and levels (empty in ``by_cluster`` mode).
    note
        The expert-opinion caveat (always shown with the list).
    """

    mode: MatchMode
    barriers: tuple[str, ...]
    framework: Framework
    cfir1_barriers: pd.DataFrame
    unmatched: tuple[str, ...]
    table: pd.DataFrame
    detail: pd.DataFrame
    note: str
    settings: dict[str, Any] = field(default_factory=dict)

    def to_frame(self) -> pd.DataFrame:
        return self.table.copy()

    tidy = to_frame

    def top(self, n: int = 20) -> pd.DataFrame:
        """The first ``n`` endorsed strategies (workbook mode) or the first ``n`` listed."""
        t = self.table.loc[self.table["endorsed"]] if self.mode == "workbook" else self.table
        return t.head(n).reset_index(drop=True)

    def summary(self) -> str:
        vocab = load_vocabulary()
        names = [vocab.construct(b).label if self.framework == "cfir2" else vocab.barrier(b).name
                 for b in self.barriers]
        lines = [f"Strategy matching for {len(self.barriers)} barrier(s): {', '.join(names) or 'none'}."]
        if self.unmatched:
            lines.append("No matching-tool row for: " + ", ".join(self.unmatched) + " (the tool is keyed to CFIR 1.0).")
        if self.mode == "workbook":
            rows = self.top(15)
            lines.append(f"ERIC strategies by cumulative endorsement over {len(self.cfir1_barriers)} CFIR 1.0 "
                         f"barrier(s) (Level 1: {self.settings['level1']:g}% or more of experts; Level 2: "
                         f"{self.settings['level2']:g}% to under {self.settings['level1']:g}%):")
            for r in rows.itertuples(index=False):
                lines.append(f"  {r.rank:>2}. {r.strategy} [{r.cluster_name}]: {r.cumulative_percent:.0f}% "
                             f"(Level 1 x{r.n_level1}, Level 2 x{r.n_level2})")
        else:
            for cluster in vocab.clusters:
                lines.append(f"  {cluster.number}. {cluster.name} ({cluster.size})")
        lines.append(self.note)
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "strategy_match",
            "mode": self.mode,
            "framework": self.framework,
            "barriers": list(self.barriers),
            "cfir1_barriers": jsonable(self.cfir1_barriers),
            "unmatched": list(self.unmatched),
            "strategies": jsonable(self.table),
            "detail": jsonable(self.detail),
            "note": self.note,
            "settings": jsonable(self.settings),
        }

    def plot(self, n: int = 20) -> alt.Chart:
        """Bars of cumulative endorsement (workbook mode) or strategy counts per cluster."""
        if self.mode == "workbook":
            data = self.top(n)
            return alt.Chart(data).mark_bar().encode(
                x=alt.X("cumulative_percent:Q", title="Cumulative % of experts endorsing (expert opinion)"),
                y=alt.Y("strategy:N", sort=None, title=None),
                color=alt.Color("cluster_name:N", title="ERIC cluster"),
                tooltip=["strategy:N", "cluster_name:N", "cumulative_percent:Q", "n_level1:Q", "n_level2:Q"],
            ).properties(title="Candidate strategies: expert opinion, not evidence of effectiveness")
        data = self.table.groupby("cluster_name", sort=False).size().reset_index(name="strategies")
        return alt.Chart(data).mark_bar().encode(
            x=alt.X("strategies:Q", title="ERIC strategies"), y=alt.Y("cluster_name:N", sort=None, title=None)
        ).properties(title="ERIC strategies by cluster (choose with the team)")


def _barrier_ids(barriers: object, framework: Framework) -> list[str]:
    if isinstance(barriers, BarrierAssessment):
        if framework != "cfir2":
            raise ParameterError("framework must be 'cfir2' when barriers come from a BarrierAssessment.")
        return barriers.barrier_ids()
    if isinstance(barriers, pd.DataFrame):
        require_columns(barriers, ("construct",), "barriers")
        return resolve_constructs([str(b) for b in barriers["construct"]], framework)
    if isinstance(barriers, str):
        return resolve_constructs([barriers], framework)
    if isinstance(barriers, Iterable):
        return resolve_constructs([str(b) for b in barriers], framework)
    raise ParameterError(f"barriers: give construct names, a table with a 'construct' column or a BarrierAssessment; "
                         f"saw {type(barriers).__name__}")


def match_strategies(
    barriers: Iterable[str] | pd.DataFrame | BarrierAssessment,
    *,
    workbook: MatchingWorkbook | str | Path | None = None,
    framework: Framework = "cfir2",
    level1: float = LEVEL_1,
    level2: float = LEVEL_2,
) -> StrategyMatch:
    """List candidate ERIC strategies for the prioritised barriers.

    Parameters
    ----------
    barriers
        CFIR 2.0 construct names or ids (or CFIR 1.0 barrier names with
        ``framework='cfir1'``), a table with a ``construct`` column, or a
        :class:`~knowdo.strategies.assessment.BarrierAssessment` (its
        overall priorities are used).
    workbook
        The official CFIR-ERIC matching workbook (path or
        :class:`MatchingWorkbook`). Without it the strategies are listed by
        cluster with no figures.
    level1, level2
        Endorsement thresholds in percent (published: 50 and 20).

    Examples
    --------
    >>> match = match_strategies(["Available Resources"])
    >>> match.mode, len(match.table)
    ('by_cluster', 73)
    """
    check_option("framework", framework, ("cfir2", "cfir1"))
    if not (0 < level2 < level1 <= 100):
        raise ParameterError(
            f"thresholds must satisfy 0 < level2 < level1 <= 100; saw level1={level1}, level2={level2}"
        )
    ids = _barrier_ids(barriers, framework)
    vocab = load_vocabulary()
    rows, unmatched = [], []
    for b in ids:
        pairs = ((b, "selected"),) if framework == "cfir1" else vocab.cfir1_for(b)
        if not pairs:
            unmatched.append(vocab.construct(b).label)
        for cfir1, how in pairs:
            rows.append({"construct": b, "cfir1": cfir1, "cfir1_name": vocab.barrier(cfir1).name, "how": how})
    used = pd.DataFrame(rows, columns=["construct", "cfir1", "cfir1_name", "how"])
    strategies = vocab.strategies_frame()
    settings: dict[str, Any] = {"level1": float(level1), "level2": float(level2)}
    if workbook is None:
        table = pd.DataFrame(
            {
                "rank": np.arange(1, len(strategies) + 1),
                "number": strategies["number"],
                "strategy": strategies["name"],
                "cluster": strategies["cluster"],
                "cluster_name": strategies["cluster_name"],
                "definition": strategies["definition"],
                "cumulative_percent": np.nan,
                "n_level1": pd.array([pd.NA] * len(strategies), dtype="Int64"),
                "n_level2": pd.array([pd.NA] * len(strategies), dtype="Int64"),
                "endorsed": False,
                "basis": "ERIC list by cluster (no endorsement data)",
            }
        )
        empty = pd.DataFrame(columns=["strategy", "barrier", "barrier_name", "percent", "level"])
        return StrategyMatch("by_cluster", tuple(ids), framework, used, tuple(unmatched), table, empty,
                             NO_WORKBOOK_NOTE, settings)
    book = workbook if isinstance(workbook, MatchingWorkbook) else read_matching_workbook(workbook)
    selected = list(dict.fromkeys(used["cfir1"]))
    missing = [b for b in selected if b not in set(book.barriers)]
    if missing:
        names = ", ".join(vocab.barrier(b).name for b in missing)
        raise ParameterError(f"matching workbook {book.source!r} has no column for barrier(s) {names}; "
                             "is it the complete matching tool?")
    detail = book.endorsements.loc[book.endorsements["barrier"].isin(selected)].copy()
    detail["level"] = np.select([detail["percent"] >= level1, detail["percent"] >= level2], ["Level 1", "Level 2"], "")
    agg = detail.groupby("strategy").agg(
        cumulative_percent=("percent", "sum"),
        n_level1=("level", lambda s: int((s == "Level 1").sum())),
        n_level2=("level", lambda s: int((s == "Level 2").sum())),
    )
    table = strategies.rename(columns={"name": "strategy"}).join(agg, on="strategy")
    table["cumulative_percent"] = table["cumulative_percent"].fillna(0.0)
    for col in ("n_level1", "n_level2"):
        table[col] = table[col].fillna(0).astype(int)
    table["endorsed"] = (table["n_level1"] + table["n_level2"]) > 0
    table = table.sort_values(["cumulative_percent", "n_level1", "n_level2", "number"],
                              ascending=[False, False, False, True], kind="stable").reset_index(drop=True)
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    table["basis"] = "expert opinion (CFIR-ERIC matching tool)"
    table = table[["rank", "number", "strategy", "cluster", "cluster_name", "definition", "cumulative_percent",
                   "n_level1", "n_level2", "endorsed", "basis"]]
    detail = detail[["strategy", "barrier", "barrier_name", "percent", "level"]].reset_index(drop=True)
    settings["workbook"] = book.source
    return StrategyMatch("workbook", tuple(ids), framework, used, tuple(unmatched), table, detail,
                         EXPERT_OPINION_NOTE, settings)
