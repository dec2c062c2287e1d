"""When to try a transiently failed event again, and how long to keep trying.

Backoff per event: the steps of `Config.retry_schedule` (30 s, 2 min, ... then every 24 h; its
default and MEASURE_RETRY_SCHEDULE, which shortens it for rehearsals, are config's), each with
±10 % jitter so a backlog that failed together does not come due together. An API that says Retry-After is not
asked again for that event before then. The retry state travels in the retry
message itself (measure.pipeline.message), so any sweep instance can pick the event up.
"""

from __future__ import annotations

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
        if not isinstance(raw, dict):
            raise ValueError("retry state must be an object")
        try:
            return cls(
                attempt=int(raw["attempt"]),
                first_failure=float(raw["first_failure"]),
                next_due=float(raw["next_due"]),
                last_error=str(raw.get("last_error", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"retry state is malformed: {exc}") from None


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
