"""Every error knowdo raises on purpose.

One root, :class:`KnowdoError`; each leaf also subclasses the built-in it
resembles, so callers can catch either::

    KnowdoError(Exception)
    ├── ConfigError(KnowdoError, ValueError)        knowdo.toml is wrong
    ├── SchemaError(KnowdoError, ValueError)        input breaks a schema rule
    │                                               (carries every Problem found)
    ├── StoreError(KnowdoError, RuntimeError)       the project store cannot do it
    └── ParameterError(KnowdoError, ValueError)     a function argument is wrong

The CLI turns these into a readable report and a non-zero exit; anything
else reaching the user is a bug.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass


class KnowdoError(Exception):
    """Root of every deliberate knowdo error."""


class ConfigError(KnowdoError, ValueError):
    """The project file (knowdo.toml) is missing, malformed or inconsistent."""


class StoreError(KnowdoError, RuntimeError):
    """The project store cannot carry out the request."""


class ParameterError(KnowdoError, ValueError):
    """A function argument has a value outside what it accepts."""


@dataclass(frozen=True)
class Problem:
    """One broken rule, located as precisely as the input allows.

    ``row`` is the line of the file as a spreadsheet numbers it (the header is
    row 1, the first data row is row 2), or ``None`` when the rule concerns the
    whole file or table. ``count`` is more than 1 for a record that stands for
    further rows breaking the same rule, beyond those listed one by one.
    """

    file: str
    rule: str
    message: str
    row: int | None = None
    column: str | None = None
    value: str | None = None
    severity: str = "error"
    count: int = 1

    def where(self) -> str:
        parts = [self.file]
        if self.row is not None:
            parts.append(f"row {self.row}")
        if self.column is not None:
            parts.append(f"column '{self.column}'")
        return ", ".join(parts)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


class SchemaError(KnowdoError, ValueError):
    """Input data break one or more rules of the canonical schema.

    Holds every problem found (not just the first), so one run tells the user
    everything to fix.
    """

    def __init__(self, problems: Sequence[Problem], *, shown: int = 50) -> None:
        self.problems = list(problems)
        self.shown = shown
        super().__init__(self.report())

    def report(self) -> str:
        total = sum(p.count for p in self.problems)
        lines = [f"{total} problem(s) found; nothing was loaded."]
        for problem in self.problems[: self.shown]:
            seen = f" (saw {problem.value!r})" if problem.value is not None else ""
            lines.append(f"- {problem.where()}: [{problem.rule}] {problem.message}{seen}")
        if len(self.problems) > self.shown or total > len(self.problems):
            by_rule: dict[str, int] = {}
            for problem in self.problems:
                by_rule[problem.rule] = by_rule.get(problem.rule, 0) + problem.count
            totals = ", ".join(f"{rule}: {n}" for rule, n in sorted(by_rule.items()))
            lines.append(f"... more not listed one by one. Totals by rule: {totals}")
        return "\n".join(lines)
