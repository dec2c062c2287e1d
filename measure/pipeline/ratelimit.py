"""The deployment's rate ceiling on the Measurement API: a token bucket per instance.

    MEASURE_API_MAX_RPS   requests a second the whole deployment may send (absent or 0: no ceiling)
    MEASURE_API_SENDERS   instances that may send at once (send's max instances + sweep's; default 1)

Each instance keeps under MAX_RPS / SENDERS, so the deployment stays under MAX_RPS without the
instances talking to each other: there is no shared counter to call (or to fail) on every attempt.
The price is that a deployment running fewer instances than SENDERS uses only its share of the
ceiling, never all of it.

The bucket holds one token by default (`burst`): requests leave evenly spaced, 1 / rate seconds
apart, so any one-second window at the API holds at most rate + burst of one instance's requests,
and at most MAX_RPS + SENDERS x burst of the deployment's. A waiting caller reserves its turn (the
time its token comes free) and sleeps outside the lock, so callers are served in arrival order and
one sleeping caller holds nobody else up.

Every Measurement API call of the pipeline goes through `Delivery.attempt` (send, sweep's
re-sends, and so every event that replay, dead-letter replay and backfill hand to the events
topic): that is where the instance's bucket is asked. The tools that publish use a bucket of
their own to pace what they publish (they reach the API only through send).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class RateLimit:
    """At most `rate` grants a second (on average), `burst` at once; thread-safe.

    `clock` (monotonic seconds) and `sleep` are injected for the tests."""

    def __init__(self, rate: float, burst: float = 1.0, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        if not rate > 0:  # also refuses nan
            raise ValueError(f"rate must be a number of requests a second above 0, got {rate!r}")
        if not burst >= 1:
            raise ValueError(f"burst must be at least 1, got {burst!r}")
        self.rate = float(rate)
        self.burst = float(burst)
        self.clock = clock
        self.sleep = sleep
        self._lock = threading.Lock()
        # The time the bucket would be full again if nothing more were taken (GCRA's "theoretical
        # arrival time"): a grant of n tokens moves it n / rate later.
        self._full_at = float("-inf")

    @classmethod
    def share(cls, max_rps: float, senders: int = 1, **kwargs: object) -> RateLimit | None:
        """One instance's share of a deployment's ceiling, or None when there is no ceiling (0)."""
        if not max_rps:
            return None
        if senders < 1:
            raise ValueError(f"senders must be at least 1, got {senders!r}")
        return cls(max_rps / senders, **kwargs)  # type: ignore[arg-type]

    def acquire(self, timeout: float | None = None, tokens: float = 1.0) -> bool:
        """Wait for `tokens` (at most `timeout` seconds; None: as long as it takes). False, and
        nothing taken, when they would come free only later than that."""
        with self._lock:
            now = self.clock()
            interval = tokens / self.rate
            full_at = max(self._full_at, now)
            # Granted once the bucket has room for `tokens`: it holds `burst` at most.
            grant = full_at + interval - self.burst / self.rate
            wait = max(0.0, grant - now)
            if timeout is not None and wait > timeout:
                return False
            self._full_at = full_at + interval
        if wait > 0:
            self.sleep(wait)
        return True
