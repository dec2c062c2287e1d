"""degraded: delivery through an API failing 40 % of requests at random, against the schedule's floor.

The whole delivery path as deployed: events published to measure-events, a push subscription
(Eventarc's stand-in) to a real `send` server, a real `sweep` server POSTed back to back (Cloud
Scheduler's stand-in), the sandbox answering in 20 ms with 40 % of its answers 500/502/503/429
at random, MEASURE_RETRY_SCHEDULE=1,2,4. Drained = the sandbox has accepted every event.

The floor: with failures at random, an event needs k attempts with probability p^(k-1)(1-p); the
last of N events lands after the waits of its k-1 failures (1, 2, 4, 4, ... s) plus k answers.
`schedule_floor` is the expected value of that for the unluckiest of the N events: no scheduler
can drain faster without retrying sooner than the schedule says. Target: drain ≤ 1.5x the floor.

How `send` is pushed: by default through measure/dev/pushrelay.py, the Eventarc-like relay (up to
64 pushes outstanding, as Eventarc's push keeps many in flight), run inside this process on the
load's CPU, never on send's; MEASURE_BENCH_PUSH=emulator uses the emulator's own push
subscription instead (about 2 pushes outstanding). The relay's own cost is measured: the CPU its
threads used, per push, and its pushes, redeliveries and peak outstanding.

benchmarks.outage (the full-outage row) reuses this harness.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import urllib.request
from pathlib import Path

from benchmarks.common import (
    LOAD_CPUS,
    Context,
    fmt,
    function_env,
    median,
    new_topology,
    pinned_children,
    seed_event,
    start_function,
    stop,
)

EVENTS = 2000
FAILURE_RATE = 0.4
FAULTS = {"latency_ms": 20, "status": {"500": 0.15, "502": 0.05, "503": 0.10, "429": 0.10}}
SCHEDULE = (1.0, 2.0, 4.0)
TARGET_RATIO = 1.5
DRAIN_LIMIT_S = 300.0
PUSH = os.environ.get("MEASURE_BENCH_PUSH", "").strip() or "relay"
if PUSH not in ("relay", "emulator"):
    raise ValueError(f"MEASURE_BENCH_PUSH is {PUSH!r}: it must be `relay` (the default) or `emulator`")


def threads_cpu_s(prefix: str) -> float:
    """CPU seconds (user + system) used so far by this process's threads whose name starts with `prefix`."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for thread in threading.enumerate():
        if not thread.name.startswith(prefix) or thread.native_id is None:
            continue
        try:
            fields = Path(f"/proc/self/task/{thread.native_id}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue  # ended meanwhile
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def schedule_floor(events: int, failure_rate: float, schedule: tuple[float, ...], answer_s: float) -> float:
    """Expected seconds until the unluckiest of `events` events lands its success (see the module doc)."""
    expected, below, waits = 0.0, 0.0, 0.0
    for attempts in range(1, 1000):
        if attempts > 1:
            waits += schedule[min(attempts - 1, len(schedule)) - 1]
        at_most = (1 - failure_rate ** attempts) ** events  # P(every event done within `attempts`)
        expected += (at_most - below) * (waits + attempts * answer_s)
        below = at_most
        if 1 - at_most < 1e-12:
            break
    return expected


class Sweeps:
    """Cloud Scheduler's stand-in: POST sweep again and again (0.3 s apart) until stopped; keeps every summary."""

    def __init__(self, url: str):
        self.url = url
        self.summaries: list[tuple[float, dict]] = []
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-sweeps", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                request = urllib.request.Request(self.url, data=b"", method="POST")
                with urllib.request.urlopen(request, timeout=600) as response:
                    self.summaries.append((started, json.loads(response.read())))
            except (OSError, ValueError):
                self.errors += 1
                self._stop.wait(0.5)
            # As the chaos test's scheduler does: a sweep that stops at once (its circuit open) is
            # not called again in a busy loop, which took the CPU from send and the sweeps after it.
            self._stop.wait(0.3)

    def idle_since(self, moment: float) -> bool:
        """Two sweeps that started after `moment` found nothing to do."""
        after = [s for started, s in list(self.summaries) if started >= moment]
        return len(after) >= 2 and all(s["pulled"] == 0 for s in after[-2:])

    def total(self, key: str) -> int:
        return sum(s.get(key) or 0 for _, s in list(self.summaries))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=660)


class Stack:
    """send and sweep servers on one topology, the events topic pushed to send."""

    def __init__(self, ctx: Context, suffix: str, push: str = PUSH, **settings: str):
        self.sandbox = ctx.sandbox()
        topology = new_topology(ctx, suffix)
        env = function_env(topology, endpoint=self.sandbox.serve_url, **settings)
        self.send = start_function(ctx, f"send{suffix}", "send", env=env, threads=64, signature_type="cloudevent")
        self.sweep = start_function(ctx, f"sweep{suffix}", "sweep", env=env, threads=1)
        self.push = push
        self.relay = None
        if push == "relay":
            from measure.dev.pushrelay import PushRelay

            self.topology = topology  # no push subscription: the relay pulls and pushes
            # Its threads inherit the load's CPU: the relay must not take send's CPU from it.
            with pinned_children(LOAD_CPUS):
                self.relay = PushRelay.subscribe(topology, self.send.url + "/").start()
        else:
            self.topology = new_topology(ctx, suffix, push_endpoint=self.send.url + "/")
        self.sweeps: Sweeps | None = None
        self._first = 0

    def relay_figures(self) -> dict:
        """The relay's pushes and its own CPU (its threads', measured here while they run)."""
        if self.relay is None:
            return {}
        figures = self.relay.figures()
        figures["cpu_s"] = threads_cpu_s("push-relay")
        return figures

    def start_sweeps(self) -> Sweeps:
        self.sweeps = Sweeps(self.sweep.url + "/")
        return self.sweeps

    def publish(self, count: int) -> None:
        """`count` new events on measure-events (1,000 a Publish RPC), as receive publishes them."""
        from google.pubsub_v1.types import PublishRequest, PubsubMessage

        from measure.dev.emulator import publisher_client
        from measure.events import validate
        from measure.pipeline.message import event_message

        now = int(time.time())
        events = validate([seed_event(7_000_000 + self._first + i, now) for i in range(count)],
                          site_ids={"pc/steam": "2960"}, now=now)
        self._first += count
        messages = [event_message(event) for event in events]
        client = publisher_client(self.topology.emulator_host)
        path = self.topology.topic_path(self.topology.names.events_topic)
        try:
            for start in range(0, len(messages), 1000):
                batch = [PubsubMessage(data=d, attributes=a) for d, a in messages[start:start + 1000]]
                client.api.publish(request=PublishRequest(topic=path, messages=batch), timeout=60)
        finally:
            client.transport.close()

    def wait_drained(self, count: int, since: float, limit: float) -> tuple[float | None, float | None]:
        """(seconds after `since` until the sandbox accepted `count`, until two sweeps found nothing).
        With the relay, `self.pushed_s` is also set: seconds until every event's push was answered
        2xx (its first attempt made, and a failure handed to the retry topic)."""
        accepted_at = idle_at = None
        self.pushed_s = None
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if self.pushed_s is None and self.relay is not None and self.relay.acked >= count:
                self.pushed_s = time.monotonic() - since
            if accepted_at is None and self.sandbox.stats()["accepted"] >= count:
                accepted_at = time.monotonic()
            if accepted_at is not None and self.sweeps is not None and self.sweeps.idle_since(accepted_at):
                idle_at = time.monotonic()
                break
            time.sleep(0.1)
        return (None if accepted_at is None else accepted_at - since, None if idle_at is None else idle_at - since)

    def log_count(self, **fields: object) -> int:
        """Log lines of send and sweep whose fields include all of `fields`."""
        total = 0
        for service in (self.send, self.sweep):
            for line in Path(service.log_path).read_text(errors="replace").splitlines():
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if isinstance(record, dict) and all(record.get(k) == v for k, v in fields.items()):
                    total += 1
        return total

    def pause_api(self) -> None:
        """SIGSTOP the sandbox: connections are accepted by the kernel and never answered (a hung API)."""
        import os

        os.killpg(self.sandbox.pgid(), signal.SIGSTOP)

    def resume_api(self) -> None:
        import os

        os.killpg(self.sandbox.pgid(), signal.SIGCONT)

    def close(self) -> None:
        if self.sweeps is not None:
            self.sweeps.stop()
        if self.relay is not None:
            self.relay.stop()
        stop(self.send)
        stop(self.sweep)


def run(ctx: Context) -> None:
    count = 200 if ctx.quick else EVENTS
    floor = schedule_floor(count, FAILURE_RATE, SCHEDULE, FAULTS["latency_ms"] / 1000)
    schedule = ",".join(f"{s:g}" for s in SCHEDULE)
    runs = []
    for repeat in range(1 if ctx.quick else min(ctx.repeats, 3)):
        stack = Stack(ctx, f"-bench-degraded{repeat}", MEASURE_RETRY_SCHEDULE=schedule)
        try:
            stack.sandbox.reset(0)
            stack.sandbox._call("POST", "/_sandbox/faults", FAULTS)
            stack.start_sweeps()
            began = time.monotonic()
            stack.publish(count)
            drained, idle = stack.wait_drained(count, began, DRAIN_LIMIT_S)
            relay = stack.relay_figures()
            stats = stack.sandbox.stats()
            sweeps = stack.sweeps
            stack.sweeps.stop()
            if drained is None:
                raise RuntimeError(f"not drained within {DRAIN_LIMIT_S:g} s: {stats}")
            runs.append({"drained": drained, "idle": idle, "stats": stats, "sweeps": len(sweeps.summaries),
                         "pulled": sweeps.total("pulled"), "released": sweeps.total("released"),
                         "deferred": stack.log_count(outcome="deferred"),
                         "opened": stack.log_count(message="deferred: circuit open"), "relay": relay,
                         "pushed": stack.pushed_s})
        finally:
            stack.close()
    drained = median(r["drained"] for r in runs)
    relay_cpu_ms = [1000 * r["relay"]["cpu_s"] / max(r["relay"]["pulled"], 1) for r in runs if r["relay"]]
    ctx.figures["degraded"] = {"events": count, "drain_s": drained, "floor_s": floor, "push": PUSH,
                               "relay_cpu_ms_per_push": median(relay_cpu_ms) if relay_cpu_ms else None}

    def relay_cells(r: dict) -> list[str]:
        if not r["relay"]:
            return ["—"] * 5
        relay = r["relay"]
        return [fmt(r["pushed"] or 0, 1), str(relay["pulled"]), str(relay["released"]), str(relay["peak outstanding"]),
                f"{1000 * relay['cpu_s'] / max(relay['pulled'], 1):.2f}"]

    ctx.table(
        f"degraded: {count:,} events, sandbox at {FAULTS['latency_ms']} ms failing {FAILURE_RATE:.0%} at random "
        f"(500/502/503/429), MEASURE_RETRY_SCHEDULE={schedule}, pushed by the {PUSH}",
        ["repeat", "drained in s", "events/s", "idle in s", "API requests", "faulted", "sweeps", "swept pulled",
         "released", "deferred (no attempt)", "relay: all pushed in s", "relay pushes", "relay redeliveries",
         "relay peak outstanding", "relay CPU ms a push"],
        [[i + 1, fmt(r["drained"], 1), fmt(count / r["drained"]), fmt(r["idle"] or 0, 1), r["stats"]["received"],
          sum(r["stats"]["faulted"].values()), r["sweeps"], r["pulled"], r["released"], r["deferred"],
          *relay_cells(r)]
         for i, r in enumerate(runs)],
        note=f"Floor {floor:.1f} s: the expected time for the unluckiest of {count:,} events to land, at "
             f"{FAILURE_RATE:.0%} failures and waits of {schedule} s then {SCHEDULE[-1]:g} s each, plus one "
             f"{FAULTS['latency_ms']} ms answer an attempt (benchmarks/degraded.py schedule_floor). Drained = the "
             f"sandbox accepted all; idle = two sweeps since found nothing. send: 64 threads; sweep: one thread, "
             f"both on CPU 0. Pushed by {PUSH} (MEASURE_BENCH_PUSH): the relay's threads run in the benchmark's "
             f"process on CPU {LOAD_CPUS}; its CPU a push is theirs (pull, push's JSON and HTTP, acks) over its "
             f"pushes.")
    ratio = drained / floor
    ctx.row(f"degraded API: {count:,} events, 40 % random 5xx/429 at 20 ms, schedule {schedule} s",
            f"drained in {fmt(drained, 1)} s ({fmt(count / drained)} events/s)", f"floor {floor:.1f} s",
            f"{ratio:.2f}x", f"≤ {TARGET_RATIO:g}x", ratio <= TARGET_RATIO)
