"""A per-instance circuit breaker: when the Measurement API is clearly down, stop spending a
timeout per event and route events straight to the retry topic for a short while.

Only outage outcomes (no answer, 5xx, 429) count; a rejected event says nothing about the API.
After `cooldown` seconds one trial attempt is let through (half-open); its outcome closes the
circuit or opens it again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from measure.tune.outcome import Outcome


class CircuitBreaker:
    def __init__(self, threshold: int = 5, cooldown: float = 30.0, clock: Callable[[], float] = time.monotonic):
        self.threshold = threshold
        self.cooldown = cooldown
        self.clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_out = False
        self._lock = threading.Lock()

    @property
    def is_open(self) -> bool:
        with self._lock:
            return self._opened_at is not None

    def ready(self) -> bool:
        """Would `allow` let an attempt out now? (Asks without taking the half-open trial.)"""
        with self._lock:
            if self._opened_at is None:
                return True
            return not self._trial_out and self.clock() - self._opened_at >= self.cooldown

    def allow(self) -> bool:
        """May an attempt go out now?"""
        with self._lock:
            if self._opened_at is None:
                return True
            if self._trial_out or self.clock() - self._opened_at < self.cooldown:
                return False
            self._trial_out = True  # half-open: exactly one trial at a time
            return True

    def record(self, outcome: Outcome) -> None:
        with self._lock:
            self._trial_out = False
            if outcome.outage:
                self._failures += 1
                if self._failures >= self.threshold or self._opened_at is not None:
                    self._opened_at = self.clock()
            else:
                self._failures = 0
                self._opened_at = None
