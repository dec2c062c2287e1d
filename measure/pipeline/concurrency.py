"""How many delivery attempts an instance keeps in flight: an AIMD limit, as TCP's congestion window.

    success                 the limit grows by 1 / limit (about one more per round of attempts)
    429, 503 or a timeout   when at least CONGESTED_SHARE of the last WINDOW answers (and MIN_ANSWERS
                            of them) said so, the
                            limit shrinks to DECREASE x itself, at most once per max(PERIOD_S, the
                            API's Retry-After): the answers of attempts already in flight under the
                            old limit say the same thing again, not something new

A healthy API is used fully (the limit starts at, and grows back to, the instance's maximum), a
struggling one sees fewer attempts at once. Why the share: TCP's rule (cut on every loss) throttles
random loss as if it were congestion. Against the chaos run's faults (a quarter of the answers
429, 503 or a timeout, at random) it held the limit near 15 of 64, a quarter of what the API could
take, and draining took 145 s. An API that is really struggling says so to most callers; Google's
SRE book makes the same cut with its client-side throttling, which lets requests through freely
until fewer than half are accepted (K = 2). So a random minority of congestion answers costs
nothing, while an API that answers nothing but 429 brings the limit from 64 to its minimum in about
a dozen periods.

Retry-After is honoured where it means something for one request: the event is not tried again
before it (measure.pipeline.delivery), the circuit stays open at least that long
(measure.pipeline.breaker), and the limit is not cut again before it has passed. It does not stop
the whole instance: a degraded API sends it with a share of its answers while the rest succeed.

`acquire` waits (bounded) for a free slot; `release` gives it back with the attempt's outcome.
One lock (a Condition) guards the count and the limit; the clock is injected for the tests.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from measure.tune.outcome import Outcome

DECREASE = 0.75
PERIOD_S = 1.0
WINDOW = 50  # recent answers weighed before a cut (at a quarter congested, half of 50 is 1 in 10,000)
MIN_ANSWERS = 8  # fewer than this say too little to cut on
CONGESTED_SHARE = 0.5  # of them, at least this many "too much" answers before a cut
_CONGESTED_STATUSES = frozenset({429, 503})


def congested(outcome: Outcome) -> bool:
    """An answer that says "too much": 429, 503, or no answer within the read timeout."""
    if outcome.status is not None:
        return outcome.status in _CONGESTED_STATUSES
    return outcome.outage and outcome.reason == "timeout"


class ConcurrencyLimit:
    def __init__(self, maximum: int = 64, minimum: int = 1, clock: Callable[[], float] = time.monotonic,
                 *, decrease: float = DECREASE, period: float = PERIOD_S):
        if not 1 <= minimum <= maximum:
            raise ValueError(f"concurrency limits must satisfy 1 <= minimum <= maximum, got {minimum}, {maximum}")
        self.maximum = maximum
        self.minimum = minimum
        self.clock = clock
        self.decrease = decrease
        self.period = period
        self._limit = float(maximum)
        self._in_flight = 0
        self._next_cut = float("-inf")  # no cut before this time (clock seconds)
        self._recent: deque[bool] = deque(maxlen=WINDOW)  # True: the answer said "too much"
        self._changed = threading.Condition(threading.Lock())

    @property
    def limit(self) -> int:
        with self._changed:
            return int(self._limit)

    @property
    def in_flight(self) -> int:
        with self._changed:
            return self._in_flight

    def room(self) -> int:
        """Free slots now."""
        with self._changed:
            return max(0, int(self._limit) - self._in_flight)

    def acquire(self, timeout: float = 0.0) -> bool:
        """Take a slot, waiting up to `timeout` seconds for one; False if none came free."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._in_flight >= int(self._limit):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
            self._in_flight += 1
            return True

    def release(self, outcome: Outcome | None = None) -> None:
        """Give the slot back; the outcome (None when no attempt was made) moves the limit."""
        with self._changed:
            self._in_flight -= 1
            if outcome is not None:
                self._adjust(outcome)
            self._changed.notify_all()

    def _adjust(self, outcome: Outcome) -> None:
        too_much = congested(outcome)
        self._recent.append(too_much)
        if too_much:
            now = self.clock()
            recent = len(self._recent)
            if now >= self._next_cut and recent >= MIN_ANSWERS and sum(self._recent) >= CONGESTED_SHARE * recent:
                self._limit = max(float(self.minimum), self._limit * self.decrease)
                self._next_cut = now + max(self.period, outcome.retry_after or 0.0)
        elif outcome.kind.done or not outcome.outage:
            # Delivered, duplicate or rejected: the API answered promptly. (Other failures, a 500 or a
            # dropped connection, say nothing about load: they neither grow nor cut the limit.)
            self._limit = min(float(self.maximum), self._limit + 1 / self._limit)
