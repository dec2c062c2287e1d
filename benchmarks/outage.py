"""outage: the Measurement API hangs for 60 s, then comes back: timeouts spent, and the drain after.

The same stack as benchmarks.degraded (send pushed from measure-events, sweep POSTed back to
back, MEASURE_RETRY_SCHEDULE=1,2,4), with the deployed API timeout (10 s) and breaker cooldown
(30 s). The sandbox answers in 20 ms without faults; at the start of the outage its process is
stopped (SIGSTOP): connections are accepted by the kernel and never answered, as a hung API's
are, so every attempt costs the full read (or connect) timeout. The events are published at the
start of the outage. Counted from the servers' own "delivery" log lines: attempts that timed out.

What bounds it: send's first wave (up to THREADS pushes in flight at once, all timing out
together) and sweep's first round (FIRST_ROUND attempts), then the breaker of each instance lets
one trial out per cooldown. Drain after: from the API's return until the sandbox has accepted
every event (and until two sweeps found nothing more to do).
"""

from __future__ import annotations

import time

from benchmarks.common import Context, fmt
from benchmarks.degraded import SCHEDULE, Stack

EVENTS = 1000
OUTAGE_S = 60.0
COOLDOWN_S = 30  # the deployed MEASURE_BREAKER_COOLDOWN
API_TIMEOUT_S = 10  # the deployed MEASURE_API_TIMEOUT
DRAIN_LIMIT_S = 300.0


def run(ctx: Context) -> None:
    count, outage = (100, 12.0) if ctx.quick else (EVENTS, OUTAGE_S)
    schedule = ",".join(f"{s:g}" for s in SCHEDULE)
    stack = Stack(ctx, "-bench-outage", MEASURE_RETRY_SCHEDULE=schedule, MEASURE_API_TIMEOUT=str(API_TIMEOUT_S),
                  MEASURE_BREAKER_COOLDOWN=str(COOLDOWN_S))
    try:
        stack.sandbox.reset(20)
        stack.start_sweeps()
        stack.pause_api()
        try:
            began = time.monotonic()
            stack.publish(count)
            time.sleep(max(0.0, outage - (time.monotonic() - began)))
        finally:
            stack.resume_api()
        back = time.monotonic()
        timeouts = stack.log_count(message="delivery", reason="timeout")
        drained, idle = stack.wait_drained(count, back, DRAIN_LIMIT_S)
        stats = stack.sandbox.stats()
        sweeps = stack.sweeps
        sweeps.stop()
        deferred = stack.log_count(outcome="deferred")
        attempts = stack.log_count(message="delivery")
    finally:
        stack.close()
    if drained is None:
        raise RuntimeError(f"not drained within {DRAIN_LIMIT_S:g} s of the API's return: {stats}")
    ctx.figures["outage"] = {"events": count, "outage_s": outage, "timeouts": timeouts, "drain_after_s": drained}
    ctx.table(
        f"outage: {count:,} events published as the API hangs for {outage:g} s (SIGSTOP), then back at 20 ms",
        ["timeouts in the outage", "attempts in all", "deferred (no attempt)", "drained after s", "idle after s",
         "sandbox accepted", "duplicates", "swept pulled", "released"],
        [[timeouts, attempts, deferred, fmt(drained, 1), fmt(idle or 0, 1), stats["accepted"], stats["duplicates"],
          sweeps.total("pulled"), sweeps.total("released")]],
        note=f"MEASURE_API_TIMEOUT={API_TIMEOUT_S}, MEASURE_BREAKER_COOLDOWN={COOLDOWN_S}, schedule {schedule} s. "
             f"Expected bound on timeouts: send's first wave (≤ its 64 threads) + sweep's first round (8) + one "
             f"trial a cooldown an instance ({outage:g} s / {COOLDOWN_S} s). Requests the stopped sandbox queued "
             f"are answered when it resumes, so some events count as accepted then and their retries as duplicates.")
    bound = 64 + 8 + 2 * (int(outage // COOLDOWN_S) + 1)
    ctx.row(f"full outage: API hung {outage:g} s with {count:,} events, then back",
            f"{timeouts} timeouts; drained {fmt(drained, 1)} s after", f"bound {bound} timeouts", "—",
            f"timeouts ≤ {bound}; drain ≤ cooldown + {sum(SCHEDULE):g} s", timeouts <= bound
            and drained <= COOLDOWN_S + sum(SCHEDULE) + 10, note=f"{deferred} events routed around the open circuit")
