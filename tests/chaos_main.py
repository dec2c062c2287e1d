"""main.py for the chaos run: the same three entry points, with three timing constants shortened.

measure has no setting for the Measurement API client's read timeout (10 s) or for the circuit
breaker's cooldown and the delay of an event routed around an open circuit (30 s each). With
those, a run with 10 % timeouts and an outage window spends minutes waiting, so the chaos test
starts `send` and `sweep` from this file, which sets them from the environment and then imports
main.py unchanged. Only timing changes; every code path is main.py's.

    MEASURE_CHAOS_READ_TIMEOUT       seconds, MeasurementClient's default read timeout
    MEASURE_CHAOS_BREAKER_COOLDOWN   seconds, CircuitBreaker's default cooldown and
                                     measure.delivery.BREAKER_DEFER_S
"""

import os
import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parent.parent)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from measure import breaker, client, delivery  # noqa: E402

_read_timeout = os.environ.get("MEASURE_CHAOS_READ_TIMEOUT")
if _read_timeout:
    client.MeasurementClient.__init__.__kwdefaults__["read_timeout"] = float(_read_timeout)

_cooldown = os.environ.get("MEASURE_CHAOS_BREAKER_COOLDOWN")
if _cooldown:
    threshold, _, clock = breaker.CircuitBreaker.__init__.__defaults__
    breaker.CircuitBreaker.__init__.__defaults__ = (threshold, float(_cooldown), clock)
    delivery.BREAKER_DEFER_S = float(_cooldown)

from main import receive, send, sweep  # noqa: E402

__all__ = ["receive", "send", "sweep"]
