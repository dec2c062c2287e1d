"""When to try a transiently failed event again, and how long to keep trying.

Backoff per event: the steps of `Config.retry_schedule` (30 s, 2 min, ... then every 24 h; its
default and MEASURE_RETRY_SCHEDULE, which shortens it for rehearsals, are config's), each with
±10 % jitter so a backlog that failed together does not come due together. An API that says Retry-After is not
asked again for that event before then. The retry state travels in the retry
message itself (measure.pipeline.message), so any sweep instance can pick the event up.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from measure.config import Config

SCHEDULE = Config.retry_schedule  # the default; measure.config owns it
JITTER = 0.1


def backoff(attempt: int, schedule: tuple[float, ...] = SCHEDULE,
            rng: Callable[[], float] = random.random) -> float:
    """Seconds to wait after failed attempt number `attempt` (1 = the first failure)."""
    base = schedule[min(max(attempt, 1), len(schedule)) - 1]
    return base * (1 + JITTER * (2 * rng() - 1))


@dataclass(frozen=True)
class RetryState:
    attempt: int  # failed attempts so far
    first_failure: float  # Unix time of the first failure: the age that counts against the maximum
    next_due: float  # Unix time before which the event is not tried again
    last_error: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: object) -> RetryState:
        """Inverse of to_dict, for messages read back; a ValueError naming the field otherwise.
        Types are checked, not coerced: int() of an infinite float raises OverflowError, and a
        float("nan") due time would compare false with every clock reading."""
        if not isinstance(raw, dict):
            raise ValueError("retry state must be an object")
        attempt = raw.get("attempt")
        if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 0:
            raise ValueError(f"retry state is malformed: attempt must be a whole number of at least 0, "
                             f"not {attempt!r:.40}")
        times = {}
        for name in ("first_failure", "next_due"):
            value = raw.get(name)
            seconds = math.nan
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                try:
                    seconds = float(value)
                except OverflowError:  # an integer past float's range
                    pass
            if not math.isfinite(seconds):
                raise ValueError(f"retry state is malformed: {name} must be Unix seconds, not {value!r:.40}")
            times[name] = seconds
        last_error = raw.get("last_error", "")
        if not isinstance(last_error, str):
            raise ValueError(f"retry state is malformed: last_error must be a string, not {last_error!r:.40}")
        return cls(attempt=attempt, first_failure=times["first_failure"], next_due=times["next_due"],
                   last_error=last_error)


def after_failure(
    previous: RetryState | None, error: str, now: float, schedule: tuple[float, ...] = SCHEDULE,
    retry_after: float | None = None,
) -> RetryState:
    """The state after one more failed attempt; `retry_after` is the API's own Retry-After, seconds."""
    attempt = (previous.attempt if previous else 0) + 1
    first = previous.first_failure if previous else now
    wait = max(backoff(attempt, schedule), retry_after or 0.0)
    return RetryState(attempt, first, now + wait, error[:500])


def deferred(previous: RetryState | None, reason: str, now: float, delay: float) -> RetryState:
    """Put off without an attempt (the circuit is open): the attempt count stays."""
    attempt = previous.attempt if previous else 0
    first = previous.first_failure if previous else now
    return RetryState(attempt, first, now + delay, reason)
