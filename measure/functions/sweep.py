"""The retry sweeper (`sweep`): drain measure-retry-sweeper within a time budget.

For each pulled message:
    undecodable                        -> dead letter, ack
    retrying longer than the max age   -> dead letter ("expired") with the last error, ack
    due within HOLD_S (and the budget) -> kept, and attempted when due
    due later                          -> ack deadline extended until it is (no busy loop: Pub/Sub
                                          hides it from every puller meanwhile), left unacked
    due                                -> one attempt (measure.pipeline.delivery), ack once handed on

The sweep pulls about what it can attempt: never more than the attempts the concurrency limit
(measure.pipeline.concurrency) lets out in the budget left at the latency seen so far, and pulls
again as the work runs low; so little is pulled only to be given back. Deadline extensions go out
as one modifyAckDeadline call per distinct deadline, the deadlines rounded up to a short ladder.

A pull that finds nothing within EMPTY_PULL_S ends the sweep once its own work is done and the
queue has been empty for LINGER_S: an idle sweep answers in about half a second. When the circuit
breaker opens the sweep stops, gives back what it had not attempted, and the next sweep pulls one
message for the half-open trial; so an outage costs one round of attempts in flight and then one
trial a cooldown, not a timeout per event.
"""

from __future__ import annotations

import bisect
import concurrent.futures
import heapq
import itertools
import json
import queue
import threading
import time
from collections import Counter, defaultdict, deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from measure import logs
from measure.config import Config
from measure.gcp.publisher import PublishError
from measure.pipeline.delivery import CIRCUIT_OPEN, Delivery, Result
from measure.pipeline.message import Envelope, UndecodableMessageError, decode

if TYPE_CHECKING:
    from measure.gcp.subscriber import ReceivedMessage, Subscriber

MAX_PULL = 1000  # Pub/Sub's most messages in one pull
# How long a pull waits for messages. The real service holds a pull of an empty subscription open
# (and answers within tens of ms when messages wait), so this is what an idle sweep costs: Cloud
# Scheduler calls sweep 8,640 times a month, and at 1 s those calls were most of an idle month's
# bill (docs/cost.md). A message that reaches an abandoned pull is offered again after its ack
# deadline: later, never lost.
EMPTY_PULL_S = 0.5
# A sweep that found work keeps pulling this long after the queue last had something: the
# retries its own attempts just published come due within seconds on a short schedule, and the
# next scheduled sweep may be a minute away. A sweep that finds nothing at all does not linger.
LINGER_S = 5.0
HOLD_S = 10.0  # due this soon: attempted in this sweep rather than hidden and pulled again
# The retry subscription's ack deadline (terraform/pubsub.tf): a pulled message must be handed on or
# extended well within it, so a sweep pulls at most what it can attempt in half of it.
ACK_DEADLINE_S = 60.0
# Extension deadlines, seconds: a message is hidden until the first step at or after its due time
# (at most 25 % late, and the schedule has ±10 % jitter anyway), so a backlog needs few calls.
DEADLINE_STEPS = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 15, 20, 25, 30, 40, 50, 60, 75, 90, 120, 150, 180,
                  240, 300, 360, 450, 600)  # 600: Pub/Sub's ceiling for an ack deadline
RELEASED = "released"  # an attempt not made after all: the message goes back as it is
ACK_BATCH = 500  # acknowledge once this many are handled, or ACK_EVERY_S after the last acknowledge
ACK_EVERY_S = 1.0
FIRST_ROUND = 8  # attempts before the sweep knows what one costs
LATENCY_SMOOTHING = 0.2  # weight of each new attempt in the latency estimate


def deadline_step(wait: float) -> int:
    """The ack deadline that hides a message for at least `wait` seconds (or as long as Pub/Sub allows)."""
    index = bisect.bisect_left(DEADLINE_STEPS, wait)
    return DEADLINE_STEPS[min(index, len(DEADLINE_STEPS) - 1)]


class Sweeper:
    def __init__(
        self,
        config: Config,
        delivery: Delivery,
        subscriber: Subscriber,
        *,
        parallelism: int | None = None,
        clock: Callable[[], float] = time.time,
        return_immediately: bool = False,
        linger: float = LINGER_S,
    ):
        self.config = config
        self.delivery = delivery
        self.subscriber = subscriber
        # The most attempts in flight; the delivery's concurrency limit decides how many of them are used.
        self.parallelism = parallelism or delivery.limit.maximum
        self.clock = clock
        # Only for the emulator, which otherwise holds an empty pull for its whole deadline; the
        # real service may answer empty with messages waiting when asked to return at once.
        self.return_immediately = return_immediately
        self.linger = linger
        self.path = subscriber.subscription_path(config.project or "", config.retry_subscription)
        self._pool = concurrent.futures.ThreadPoolExecutor(self.parallelism, thread_name_prefix="sweep")
        self._running = threading.Lock()  # one sweep at a time per instance; a second call waits its turn
        self._latency: float | None = None  # seconds an attempt takes, smoothed; None before the first

    def handle(self, request: object) -> tuple[str, int, dict[str, str]]:
        """The HTTP entry point: run one sweep and answer its summary as JSON."""
        summary = self.run()
        return json.dumps(summary), 200, {"Content-Type": "application/json"}

    def run(self, budget: float | None = None) -> dict[str, Any]:
        with self._running:
            return _Sweep(self, self.config.sweep_budget if budget is None else budget).run()

    def _observe(self, latency: float) -> None:
        previous = self._latency
        self._latency = latency if previous is None else previous + LATENCY_SMOOTHING * (latency - previous)

    def slots(self) -> int:
        """Attempts in flight at most now: the pool's size or the concurrency limit, the smaller."""
        return min(self.parallelism, self.delivery.limit.limit)

    def capacity(self, seconds: float) -> int:
        """About how many attempts the current limit gets through in `seconds`."""
        slots = self.slots()
        if self._latency is None:
            # A first small round shows what an attempt costs; against an API that is down it is
            # also all the timeouts this instance spends before its breaker opens.
            return min(slots, FIRST_ROUND)
        return int(slots * seconds / max(self._latency, 0.001))


class _Sweep:
    """One run: the messages it holds, its attempts in flight and its counts."""

    def __init__(self, sweeper: Sweeper, budget: float):
        self.s = sweeper
        self.breaker = sweeper.delivery.breaker
        self.started = time.monotonic()
        self.end = self.started + budget
        self.counts: Counter[str] = Counter()
        self.ready: deque[tuple[str, Envelope, float]] = deque()  # due now, waiting for a slot; since (monotonic)
        # A heap of (due, seq, ack id, envelope, pulled): due and pulled in monotonic seconds.
        self.held: list[tuple[float, int, str, Envelope, float]] = []
        self.running: dict[concurrent.futures.Future[Any], str] = {}
        self.finished: queue.SimpleQueue[concurrent.futures.Future[Any]] = queue.SimpleQueue()
        self.acks: list[str] = []
        self.give_back: list[str] = []  # not attempted (or not handed on): offered again at the end
        self.acked_at = self.started
        self.pull_after = 0.0  # monotonic time before which no pull (after an empty one)
        self.empty = False  # the last pull found nothing
        self.found_at = self.started  # when a pull last found something
        self._seq = itertools.count()

    def run(self) -> dict[str, Any]:
        stopped = None
        try:
            while True:
                now = time.monotonic()
                self._collect(block=False)
                while self.held and self.held[0][0] <= now:
                    _, _, ack_id, envelope, pulled_at = heapq.heappop(self.held)
                    self.ready.append((ack_id, envelope, pulled_at))
                if now >= self.end:
                    break
                if self.breaker.is_open and not self.running and not self.breaker.ready():
                    if self.counts["pulled"] or self.ready or self.held:
                        stopped = CIRCUIT_OPEN
                    else:
                        stopped = "circuit open: waiting out its cooldown"
                    break
                self._start()
                if now >= self.pull_after and len(self.ready) < self._slots():
                    self._pull(now)
                if self.empty and not (self.ready or self.held or self.running) and (
                        not self.counts["pulled"] or now - self.found_at >= self.s.linger):
                    break
                # Promptly: a handled message left unacked past its deadline would be offered again.
                if self.acks and (len(self.acks) >= ACK_BATCH or now - self.acked_at >= ACK_EVERY_S):
                    self._ack()
                self._keep_hidden(now)
                self._wait()
        finally:
            self._finish()
        summary = {
            "pulled": self.counts["pulled"],
            **{result.value: self.counts[result] for result in Result},
            "not_due": self.counts["not_due"],
            "released": self.counts["released"],
            "errors": self.counts["errors"],
            "elapsed": round(time.monotonic() - self.started, 3),
            "stopped_early": stopped,
        }
        logs.info("sweep finished", component="sweep", **summary)
        return summary

    def _slots(self) -> int:
        if self.breaker.is_open:
            return 1  # the half-open trial; the rest follow only once it closes the circuit
        return self.s.slots()

    def _start(self) -> None:
        while self.ready and len(self.running) < self._slots():
            if self.breaker.is_open and (self.running or not self.breaker.ready()):
                return
            ack_id, envelope, _ = self.ready.popleft()
            future = self.s._pool.submit(self._attempt, envelope)
            self.running[future] = ack_id
            # Finished attempts queue up here: one step each, where waiting on every future in
            # flight would cost a step per attempt in flight, each time one finishes.
            future.add_done_callback(self.finished.put)

    def _attempt(self, envelope: Envelope) -> Result | str | None:
        if not self.breaker.ready():  # it opened since this attempt was queued: give the message back as it is
            return RELEASED
        try:
            # The sweep starts no more than the limit lets out, so a slot is normally free at once.
            wait = min(self.s.config.api_timeout, max(0.0, self.end - time.monotonic()))
            handled = self.s.delivery.attempt(envelope, "sweep", wait=wait)
        except PublishError:
            return None
        if handled.outcome is not None:
            self.s._observe(handled.outcome.latency)
        return handled.result

    def _collect(self, block: bool, timeout: float = 0.0) -> None:
        """Settle the attempts that finished (waiting up to `timeout` for the first, if `block`)."""
        while self.running:
            try:
                future = self.finished.get(block=block, timeout=timeout if block else None)
            except queue.Empty:
                return
            block = False
            ack_id = self.running.pop(future)
            result = future.result()
            if result is None:  # the hand-on failed: left unacked, Pub/Sub offers it again
                self.counts["errors"] += 1
                self.give_back.append(ack_id)
            elif result is RELEASED:
                self.counts["released"] += 1
                self.give_back.append(ack_id)
            else:
                self.counts[result] += 1
                self.acks.append(ack_id)

    def _wait(self) -> None:
        """Until an attempt finishes, a held message comes due, or it is time to pull again."""
        now = time.monotonic()
        until = self.end
        if self.held:
            until = min(until, self.held[0][0])
        if not self.empty or self.ready:
            until = min(until, now + 0.05)
        elif self.pull_after > now:
            until = min(until, self.pull_after)
        pause = max(0.0, until - now)
        if self.running:
            self._collect(block=True, timeout=pause)
        elif pause:
            time.sleep(pause)

    def _pull(self, now: float) -> None:
        queued = len(self.ready) + len(self.held) + len(self.running)
        want = min(MAX_PULL, self.s.capacity(min(self.end - now, ACK_DEADLINE_S / 2)) - queued)
        if self.breaker.is_open:
            want = min(want, 1 - queued)
        if want <= 0:
            return
        response = self.s.subscriber.pull(
            request={"subscription": self.s.path, "max_messages": want,
                     "return_immediately": self.s.return_immediately},
            timeout=min(EMPTY_PULL_S, max(0.1, self.end - now)),
        )
        received = list(response.received_messages)
        self.empty = not received
        if self.empty:
            self.pull_after = time.monotonic() + EMPTY_PULL_S
            return
        self.found_at = time.monotonic()
        self.counts["pulled"] += len(received)
        self._triage(received)

    def _triage(self, received: list[ReceivedMessage]) -> None:
        """Settle what needs no attempt now; queue what is due, or soon due."""
        now, now_m = self.s.clock(), time.monotonic()
        hidden: list[tuple[float, str]] = []
        for item in received:
            message = item.message
            try:
                envelope = decode(message.data)
            except UndecodableMessageError as exc:
                self._settle(item.ack_id, self.s.delivery.dead_letter, "undecodable", str(exc), "sweep",
                             raw=message.data, attributes=dict(message.attributes))
                continue
            state = envelope.retry
            if state and now - state.first_failure > self.s.config.retry_max_age:
                self._settle(item.ack_id, self._expire, envelope, now)
                continue
            wait = state.next_due - now if state else 0.0
            if wait <= 0:
                self.ready.append((item.ack_id, envelope, now_m))
            elif wait <= HOLD_S and now_m + wait < self.end:
                heapq.heappush(self.held, (now_m + wait, next(self._seq), item.ack_id, envelope, now_m))
            else:
                hidden.append((wait, item.ack_id))
                self.counts["not_due"] += 1
        self._hide(hidden)

    def _hide(self, waits: list[tuple[float, str]]) -> None:
        """Hide each message for at least its wait (0 or less: offer it again now), with one
        modifyAckDeadline call per distinct deadline step."""
        by_step: defaultdict[int, list[str]] = defaultdict(list)
        for wait, ack_id in waits:
            by_step[deadline_step(wait) if wait > 0 else 0].append(ack_id)
        for seconds, ack_ids in by_step.items():
            self._modify(ack_ids, seconds)

    def _settle(self, ack_id: str, action: Callable[..., object], *args: object, **kwargs: object) -> None:
        """Run a hand-on; a publish that fails leaves the message unacked for a later sweep."""
        try:
            action(*args, **kwargs)
        except PublishError:
            self.counts["errors"] += 1
            return
        self.counts[Result.DEAD_LETTERED] += 1
        self.acks.append(ack_id)

    def _expire(self, envelope: Envelope, now: float) -> None:
        state = envelope.retry
        assert state is not None  # only a retry has an age to expire
        days = (now - state.first_failure) / 86400
        reason = (f"gave up after {state.attempt} attempts over {days:.1f} days "
                  f"(MEASURE_RETRY_MAX_AGE {self.s.config.retry_max_age} s); last error: {state.last_error}")
        self.s.delivery.dead_letter("expired", reason, "sweep", envelope=envelope)

    def _finish(self) -> None:
        """Let the attempts in flight finish (each is bounded by the API timeout), then hand back
        what was not attempted: due messages at once, held ones when they come due."""
        while self.running:
            self._collect(block=True, timeout=1.0)
        self.counts["released"] += len(self.ready)
        self.give_back += [ack_id for ack_id, _, _ in self.ready]
        if self.give_back:
            self._modify(self.give_back, 0)
        now_m = time.monotonic()
        self._hide([(due - now_m, ack_id) for due, _, ack_id, _, _ in self.held])
        self.counts["released"] += len(self.held)
        self._ack()

    def _keep_hidden(self, now: float) -> None:
        """Extend the deadline of due messages still waiting for a slot (the API got slower than the
        pull expected), so that Pub/Sub does not offer them to another puller meanwhile."""
        if not self.ready or now - self.ready[0][2] < ACK_DEADLINE_S / 2:
            return
        self._modify([ack_id for ack_id, _, _ in self.ready], int(ACK_DEADLINE_S))
        self.ready = deque((ack_id, envelope, now) for ack_id, envelope, _ in self.ready)

    def _ack(self) -> None:
        self.acked_at = time.monotonic()
        if self.acks:
            self.s.subscriber.acknowledge(request={"subscription": self.s.path, "ack_ids": self.acks})
            self.acks = []

    def _modify(self, ack_ids: list[str], seconds: int) -> None:
        self.s.subscriber.modify_ack_deadline(
            request={"subscription": self.s.path, "ack_ids": ack_ids, "ack_deadline_seconds": seconds})
