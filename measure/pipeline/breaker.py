"""A per-instance circuit breaker that opens on an outage, not on bad luck.

When the Measurement API is down, every attempt costs a timeout (or a fast 5xx) and achieves
nothing; the breaker then routes events straight to the retry topic for a while. But a degraded
API that fails 40 % of requests at random still delivers 60 %: stopping then would only slow the
drain (a "5 outages in a row" rule trips every few dozen attempts at 40 %). So the circuit opens on
either of two signs that nothing is getting through:

    rate     at least OPEN_RATE of the last WINDOW attempts (and MIN_ATTEMPTS of them) were outages:
             at 40 % random failures, 18 of 20 happens about once in 200,000 windows;
    silence  MIN_FAILURES attempts with no answer at all (timeouts, refused or dropped
             connections) since the last success, and no success for SILENCE_S seconds: a sparse
             instance (one event now and then) opens after a handful of timeouts rather than after
             WINDOW of them. Answered failures (5xx, 429) do not count here: a sparse instance
             meeting a degraded API (the last few events of a backlog, retried a few seconds apart)
             sees five of those in a row often enough, and they cost no timeout.

Only outage outcomes (no answer, 5xx, 429) count as failures; a rejected event says nothing about
the API, so it is neither. States:

    CLOSED     attempts go out; each outcome goes into the window
    OPEN       no attempt until `cooldown` (or the API's Retry-After, if longer) has passed
    HALF_OPEN  one trial attempt at a time; its success closes the circuit (with a clean window),
               its failure opens it again for another cooldown

One lock guards the state; the clock is injected so every transition is tested without waiting.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from enum import Enum

from measure.tune.outcome import Outcome

WINDOW = 20
MIN_ATTEMPTS = 8
OPEN_RATE = 0.9
MIN_FAILURES = 5
SILENCE_S = 5.0


class State(Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    def __init__(
        self,
        cooldown: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        *,
        window: int = WINDOW,
        min_attempts: int = MIN_ATTEMPTS,
        open_rate: float = OPEN_RATE,
        min_failures: int = MIN_FAILURES,
        silence: float = SILENCE_S,
    ):
        self.cooldown = cooldown
        self.clock = clock
        self.min_attempts = min_attempts
        self.open_rate = open_rate
        self.min_failures = min_failures
        self.silence = silence
        self._lock = threading.Lock()
        self._state = State.CLOSED
        self._recent: deque[bool] = deque(maxlen=window)  # True = an outage outcome
        self._failures_since_success = 0
        self._last_success = clock()  # a new instance has not yet seen the API fail
        self._open_until = 0.0
        self._trial_since: float | None = None  # when the half-open trial went out

    @property
    def state(self) -> State:
        with self._lock:
            return self._state

    @property
    def is_open(self) -> bool:
        """Open or half-open: not every attempt may go out."""
        return self.state is not State.CLOSED

    def ready(self) -> bool:
        """Would `allow` let an attempt out now? (Asks without taking the half-open trial.)"""
        with self._lock:
            return self._permits(self.clock())

    def allow(self) -> bool:
        """May an attempt go out now? In half-open, True hands out the one trial."""
        with self._lock:
            now = self.clock()
            if not self._permits(now):
                return False
            if self._state is not State.CLOSED:
                self._state = State.HALF_OPEN
                self._trial_since = now
            return True

    def release(self) -> None:
        """An attempt that `allow` let out ended without an outcome (it raised): in half-open, its
        trial goes back at once rather than after a cooldown."""
        with self._lock:
            if self._state is State.HALF_OPEN:
                self._trial_since = None

    def _permits(self, now: float) -> bool:
        if self._state is State.CLOSED:
            return True
        if self._state is State.OPEN:
            return now >= self._open_until
        # HALF_OPEN: one trial at a time; a trial that never reported back (its caller died) is
        # given up after a cooldown, so the circuit cannot stay stuck half-open.
        return self._trial_since is None or now - self._trial_since >= self.cooldown

    def record(self, outcome: Outcome) -> None:
        """The outcome of an attempt that `allow` let out."""
        with self._lock:
            now = self.clock()
            if not outcome.outage:  # the API answered (delivered, duplicate or rejected): it is up
                if self._state is State.CLOSED:
                    self._recent.append(False)
                    self._failures_since_success = 0
                    self._last_success = now
                else:
                    self._close(now)
                return
            if outcome.status is None:  # no answer at all
                self._failures_since_success += 1
            self._recent.append(True)
            if self._state is not State.CLOSED or self._outage_now(now):
                self._open(now, outcome.retry_after)

    def _close(self, now: float) -> None:
        # A clean window: the failures that opened the circuit are history once a trial got through.
        self._state = State.CLOSED
        self._recent.clear()
        self._failures_since_success = 0
        self._last_success = now
        self._trial_since = None

    def _outage_now(self, now: float) -> bool:
        attempts = len(self._recent)
        rate = sum(self._recent) / attempts
        if attempts >= self.min_attempts and rate >= self.open_rate:
            return True
        return self._failures_since_success >= self.min_failures and now - self._last_success >= self.silence

    def _open(self, now: float, wait: float | None) -> None:
        self._state = State.OPEN
        self._open_until = now + max(self.cooldown, wait or 0.0)
        self._trial_since = None

    def seconds_until_ready(self) -> float:
        """How long an event routed around the open circuit should wait (0 when closed)."""
        with self._lock:
            if self._state is State.CLOSED:
                return 0.0
            if self._state is State.OPEN:
                return max(0.0, self._open_until - self.clock())
            return self.cooldown
