"""What is wrong with a request, worded for the client that sent it.

Two kinds of refusal, because a client fixes them differently:
- `BodyError`: the body as a whole is unusable (wrong content type, not JSON, too big, a key given
  twice). One problem, and a status: 400, 413 or 415.
- `InvalidEvents`: the body parsed, but events in it are invalid. A batch is all or nothing, so every
  problem of every event is listed, each with the event's index, and nothing is accepted.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar


@dataclass(frozen=True)
class Problem:
    """One thing wrong: in which event (None for the body or a lone message), which field, what."""

    index: int | None
    field: str
    problem: str

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "field": self.field, "problem": self.problem}

    def __str__(self) -> str:
        where = f"event {self.index}: " if self.index is not None else ""
        return f"{where}{self.field}: {self.problem}"


class EventsError(ValueError):
    """A refused request. `status` is the HTTP status to answer; `to_dict()` is the JSON body."""

    status = 400
    error = "invalid events"
    problems: list[Problem]

    def to_dict(self) -> dict[str, Any]:
        return {"error": self.error, "problems": [p.to_dict() for p in self.problems]}


class BodyError(EventsError):
    """The body as a whole is unusable: 400 (malformed), 413 (too large) or 415 (media type)."""

    _ERRORS: ClassVar[dict[int, str]] = {400: "invalid body", 413: "body too large", 415: "unsupported media type"}

    def __init__(self, status: int, field: str, problem: str):
        self.status = status
        self.error = self._ERRORS[status]
        self.field = field
        self.problem = problem
        self.problems = [Problem(None, field, problem)]
        super().__init__(f"{field}: {problem}")


class InvalidEvents(EventsError):
    """One or more events are invalid; `problems` lists all of them, each with its event's index."""

    def __init__(self, problems: list[Problem], total: int | None = None):
        self.problems = list(problems)
        # More than listed when the list was capped (events.validation.MAX_PROBLEMS).
        self.total = len(self.problems) if total is None else total
        shown = "; ".join(str(p) for p in self.problems[:5])
        more = f"; and {self.total - 5} more" if self.total > 5 else ""
        super().__init__(f"{self.total} problem(s): {shown}{more}")


class Bad(Exception):
    """One field's value is wrong; the message becomes a Problem naming the field and the event."""


def kind(value: object) -> str:
    """A value's type as a JSON user would name it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number with a fraction" if math.isfinite(value) and not value.is_integer() else "a float"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, (list, tuple)):
        return "an array"
    return f"a {type(value).__name__}"


def duration(seconds: float) -> str:
    """A span of time as people say it: "3 days", "5 minutes", "42 seconds"."""
    seconds = int(seconds)
    for size, unit in ((86400, "days"), (3600, "hours"), (60, "minutes")):
        if seconds >= 2 * size:
            return f"{seconds // size} {unit}"
    return f"{seconds} seconds"


def clip(text: str, limit: int = 64) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def show(text: str) -> str:
    return repr(clip(text))
