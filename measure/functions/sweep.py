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

Pub/Sub as it really is (google-cloud-python#8087, python-pubsub#1414): a pull leases what it returns from the moment
the service hands it out, so a client that hangs up before the answer has hidden those messages
from everyone until their ack deadline. So a pull waits up to EMPTY_PULL_S for its answer (the
service holds an empty pull open; one with messages answers within about a second), and runs in
the background while the sweep goes on with what it holds. A pull that fails (no answer, a broken
connection, a 5xx) is an empty pull. A run ends when a pull comes back empty and nothing is left
in hand: the held-open pull is the sweep's wait for the retries its own attempts publish.

Every call is bounded by the time left in the run: the loop stops starting attempts and pulls
FINISH_S before the budget ends (and an attempt an API timeout before that), and `_finish` hands
on what is settled (acks first), gives back what was not attempted and hides what is not yet due,
each step on its own. An attempt still running when the budget ends is left to its lease: it may
yet hand its event on, and if not Pub/Sub offers the message again after the ack deadline.
Messages in hand (waiting for a slot, held, being attempted) keep their lease: their deadline is
extended before it passes.

When the circuit breaker opens the sweep stops, gives back what it had not attempted, and the next
sweep pulls one message for the half-open trial; so an outage costs one round of attempts in
flight and then one trial a cooldown, not a timeout per event.
"""

from __future__ import annotations

import bisect
import concurrent.futures
import functools
import heapq
import itertools
import json
import queue
import threading
import time
from collections import Counter, defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from measure import logs
from measure.config import Config
from measure.gcp.googleapi import ApiError
from measure.gcp.publisher import PublishError
from measure.pipeline.delivery import CIRCUIT_OPEN, Delivery, Result
from measure.pipeline.message import Envelope, UndecodableMessageError, decode

if TYPE_CHECKING:
    from measure.gcp.subscriber import ReceivedMessage

MAX_PULL = 1000  # Pub/Sub's most messages in one pull
# How long a pull waits for its answer. The real service answers a pull with messages waiting within
# about a second (the stand-in: 0.6-1.2 s) and holds one of an empty subscription open, so this is
# also what an idle sweep costs (benchmarks/cost.py prices it). Shorter, a pull that the service
# answers late is abandoned with its messages leased: hidden for their ack deadline (60 s), which is
# how 89 of 300 events were still undelivered after 240 s (issue 24).
EMPTY_PULL_S = 10.0
MIN_PULL_S = 2.0  # no pull is started with less time than this for its answer: it would be abandoned
REPULL_S = 0.5  # after an empty answer that came back sooner (the emulator's return_immediately)
HOLD_S = 10.0  # due this soon: attempted in this sweep rather than hidden and pulled again
# The retry subscription's ack deadline (terraform/pubsub.tf): a pulled message must be handed on or
# extended well within it, so a sweep pulls at most what it can attempt in half of it.
ACK_DEADLINE_S = 60.0
LEASE_MARGIN_S = ACK_DEADLINE_S / 3  # a message in hand whose lease ends this soon has it extended
# Extension deadlines, seconds: a message is hidden until the first step at or after its due time
# (at most 25 % late, and the schedule has ±10 % jitter anyway), so a backlog needs few calls.
DEADLINE_STEPS = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 15, 20, 25, 30, 40, 50, 60, 75, 90, 120, 150, 180,
                  240, 300, 360, 450, 600)  # 600: Pub/Sub's ceiling for an ack deadline
ACK_BATCH = 500  # acknowledge once this many are handled, or ACK_EVERY_S after the last acknowledge
ACK_EVERY_S = 1.0
# An acknowledge or modifyAckDeadline, at most: a small call, answered in milliseconds when all is
# well. One in the loop never runs past stop_at (the end is kept for the last calls), and the last
# calls share what is left, so that one that hangs does not leave the others no time.
CALL_TIMEOUT = 10.0
FINISH_S = 5.0  # the end of a run kept for its last acks and hand-backs (a quarter of a short budget)
# An instance's first attempts: no other starts until all of them have come back, since what one
# costs, and whether the API answers at all, is known only then. Against an API that hangs, these
# are the timeouts an instance spends before its breaker opens (the outage benchmark's bound).
FIRST_ROUND = 8
LATENCY_SMOOTHING = 0.2  # weight of each new attempt in the latency estimate
WAIT_STEP_S = 0.05  # the longest the loop sleeps while it has something to look at


def deadline_step(wait: float) -> int:
    """The ack deadline that hides a message for at least `wait` seconds (or as long as Pub/Sub allows)."""
    index = bisect.bisect_left(DEADLINE_STEPS, wait)
    return DEADLINE_STEPS[min(index, len(DEADLINE_STEPS) - 1)]


class Clock:
    """The sweep's one clock: monotonic seconds for its own timing, Unix seconds for due times, and
    its waits. Tests give it a fake one whose waits advance its time instead of sleeping."""

    def now(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()

    def wait(self, events: queue.SimpleQueue[Any], timeout: float) -> Any | None:
        """The next item on `events`, or None once `timeout` seconds passed without one."""
        try:
            return events.get(timeout=max(0.0, timeout))
        except queue.Empty:
            return None


class SubscriberApi(Protocol):
    """What the sweep needs of measure.gcp.subscriber.Subscriber."""

    def subscription_path(self, project: str, subscription: str) -> str: ...
    def pull(self, request: dict[str, Any], timeout: float) -> Any: ...
    def acknowledge(self, request: dict[str, Any], timeout: float = ...) -> None: ...
    def modify_ack_deadline(self, request: dict[str, Any], timeout: float = ...) -> None: ...


class Tally(StrEnum):
    """What a run counts besides each attempt's Result: its summary's keys."""

    PULLED = "pulled"
    NOT_DUE = "not_due"  # hidden until due (not attempted in this run)
    RELEASED = "released"  # pulled, given back unattempted (the budget or the breaker ended the run)
    ERRORS = "errors"  # not handed on (a publish or an attempt failed): Pub/Sub offers it again
    UNFINISHED = "unfinished"  # still being attempted when the budget ended: left to its lease
    CALL_FAILURES = "call_failures"  # pulls, acknowledge/modifyAckDeadline calls that failed (logged)


@dataclass
class InHand:
    """A pulled message the run holds: its lease ends at `lease_until` unless extended."""

    ack_id: str
    envelope: Envelope
    lease_until: float  # monotonic
    due: float = 0.0  # monotonic: when it may be attempted


@dataclass(frozen=True)
class Attempted:
    """One attempt's end: the delivery's Result, or None when the event was not handed on."""

    message: InHand
    result: Result | None
    error: str = ""


@dataclass(order=True)
class _Held:
    due: float
    seq: int
    message: InHand = field(compare=False)


class Sweeper:
    def __init__(self, config: Config, delivery: Delivery, subscriber: SubscriberApi, *,
                 clock: Clock | None = None, return_immediately: bool = False):
        self.config = config
        self.delivery = delivery
        self.subscriber = subscriber
        self.clock = clock or Clock()
        # Only for the emulator, which otherwise holds an empty pull for its whole deadline; the
        # real service may answer empty with messages waiting when asked to return at once.
        self.return_immediately = return_immediately
        self.path = subscriber.subscription_path(config.project or "", config.retry_subscription)
        # The most attempts in flight; the delivery's concurrency limit decides how many of them are used.
        self.parallelism = delivery.limit.maximum
        self._pool = concurrent.futures.ThreadPoolExecutor(self.parallelism, thread_name_prefix="sweep")
        self._turn = threading.Lock()
        # One run at a time per instance; a run that outlived its budget (its request answered 504,
        # its code still going: Cloud Run does not stop it) no longer holds the next one back.
        self._busy_until: float | None = None
        self._latency: float | None = None  # seconds an attempt takes, smoothed; None before the first
        # The first round's attempts started and come back (outcome or not; back is counted when
        # the attempt ends, even after its run: a run that ended with attempts unfinished).
        self._first_round_started = self._first_round_back = 0
        self._first_round_lock = threading.Lock()

    def handle(self, request: object) -> tuple[str, int, dict[str, str]]:
        """The HTTP entry point: run one sweep and answer its summary as JSON."""
        summary = self.run()
        return json.dumps(summary), 200, {"Content-Type": "application/json"}

    def run(self, budget: float | None = None) -> dict[str, Any]:
        budget = float(self.config.sweep_budget if budget is None else budget)
        busy_until = self._take_turn(budget)
        try:
            return _Sweep(self, budget).run()
        finally:
            with self._turn:
                if self._busy_until == busy_until:  # not a later run's turn, if this one overran
                    self._busy_until = None

    def _take_turn(self, budget: float) -> float:
        """Wait for the run in progress to end, or for its budget to pass; then this run's turn."""
        while True:
            with self._turn:
                now = self.clock.now()
                if self._busy_until is None or now >= self._busy_until:
                    self._busy_until = now + budget
                    return self._busy_until
                left = self._busy_until - now
            self.clock.wait(queue.SimpleQueue(), min(left, WAIT_STEP_S))

    def observe(self, latency: float) -> None:
        """One attempt took `latency` seconds."""
        previous = self._latency
        self._latency = latency if previous is None else previous + LATENCY_SMOOTHING * (latency - previous)

    @property
    def in_first_round(self) -> bool:
        """Until the instance's first FIRST_ROUND attempts have all come back. Widening sooner, on
        the first answer of a hung API's round (its timeouts come back a few ms apart), started
        dozens more timeouts before the rest of the round opened the breaker (measured: 44 of one
        sweep instance, not 8, with Eventarc-like push)."""
        return self._first_round_back < FIRST_ROUND

    def may_start(self) -> bool:
        """Whether another attempt may start, as far as the first round goes: not once all of it is out."""
        return not self.in_first_round or self._first_round_started < FIRST_ROUND

    def submit_attempt(self, work: Callable[[], Attempted]) -> concurrent.futures.Future[Attempted]:
        """Start one attempt in the pool, counted in the first round while it lasts."""
        future = self._pool.submit(work)
        if self.in_first_round:
            self._first_round_started += 1
            future.add_done_callback(self._back)
        return future

    def _back(self, _: concurrent.futures.Future[Attempted]) -> None:
        with self._first_round_lock:
            self._first_round_back += 1

    def slots(self) -> int:
        """Attempts in flight at most now: the pool's size or the concurrency limit, the smaller."""
        return min(self.parallelism, self.delivery.limit.limit)

    def capacity(self, seconds: float) -> int:
        """About how many attempts the current limit gets through in `seconds`."""
        slots = self.slots()
        if self.in_first_round or self._latency is None:
            # The first round shows what an attempt costs; against an API that is down it is also
            # all the timeouts this instance spends before its breaker opens.
            return min(slots, FIRST_ROUND)
        return int(slots * seconds / max(self._latency, 0.001))


class _Sweep:
    """One run: the messages it holds, its attempts and pull in flight, and its counts."""

    def __init__(self, sweeper: Sweeper, budget: float):
        self.s = sweeper
        self.clock = sweeper.clock
        self.breaker = sweeper.delivery.breaker
        self.started = self.clock.now()
        self.end = self.started + budget
        finish = min(FINISH_S, budget / 4)
        self.stop_at = self.end - finish  # no waiting for attempts or pulls after this
        # No attempt starts that cannot end (an API timeout) before stop_at; no pull either.
        self.start_until = self.stop_at - min(float(sweeper.config.api_timeout), budget / 4)
        self.counts: Counter[str] = Counter()
        self.ready: deque[InHand] = deque()  # due now, waiting for a slot
        self.held: list[_Held] = []  # due within HOLD_S: a heap by due time
        self.running: dict[concurrent.futures.Future[Attempted], InHand] = {}
        self.pulling: concurrent.futures.Future[list[ReceivedMessage]] | None = None
        self.pull_started = 0.0
        self.events: queue.SimpleQueue[concurrent.futures.Future[Any]] = queue.SimpleQueue()
        self.acks: list[str] = []
        self.give_back: list[str] = []  # not handed on: offered again at the end
        self.acked_at = self.started
        self.pull_after = self.started  # no pull before this (after an empty one)
        self.empty = False  # the last pull found nothing, and began after the last retry was published
        self.published_at = self.started  # when an attempt of this run last put a retry on the topic
        self.lease_check_at = float("inf")  # when the first lease of a message in hand needs extending
        self.calls_until = self.stop_at  # no acknowledge/modifyAckDeadline call runs past this
        self._seq = itertools.count()

    def run(self) -> dict[str, Any]:
        stopped = None
        try:
            while True:
                now = self.clock.now()
                self._settle()
                self._promote(now)
                if now >= self.stop_at:
                    break
                if self.breaker.is_open and not self.running and not self.breaker.ready():
                    if self.counts[Tally.PULLED] or self.ready or self.held:
                        stopped = CIRCUIT_OPEN
                    else:
                        stopped = "circuit open: waiting out its cooldown"
                    break
                self._start(now)
                if self.pulling is None and not (self.ready or self.held or self.running) and (
                        self.empty or now >= self.start_until):
                    break
                self._pull(now)
                # Promptly: a handled message left unacked past its deadline would be offered again.
                if self.acks and (len(self.acks) >= ACK_BATCH or now - self.acked_at >= ACK_EVERY_S):
                    self._ack()
                self._keep_leases(now)
                self._wait(now)
        finally:
            self._finish()
        summary = {
            Tally.PULLED.value: self.counts[Tally.PULLED],
            **{result.value: self.counts[result] for result in Result},
            **{tally.value: self.counts[tally] for tally in Tally if tally is not Tally.PULLED},
            "elapsed": round(self.clock.now() - self.started, 3),
            "stopped_early": stopped,
        }
        logs.info("sweep finished", component="sweep", **summary)
        return summary

    # --- attempts -------------------------------------------------------------------------

    def _may_start(self) -> bool:
        """Asked once per attempt: closed, up to the slots; otherwise only the one trial."""
        if not self.breaker.is_open:
            return self.s.may_start() and len(self.running) < self.s.slots()
        return not self.running and self.breaker.ready()

    def _start(self, now: float) -> None:
        while self.ready and now < self.start_until and self._may_start():
            message = self.ready.popleft()
            future = self.s.submit_attempt(functools.partial(self._attempt, message))
            self.running[future] = message
            # Finished attempts queue up here: one step each, where waiting on every future in
            # flight would cost a step per attempt in flight, each time one finishes.
            future.add_done_callback(self.events.put)

    def _attempt(self, message: InHand) -> Attempted:
        # The sweep starts no more than the limit lets out, so a slot is normally free at once.
        wait = min(float(self.s.config.api_timeout), max(0.0, self.stop_at - self.clock.now()))
        try:
            handled = self.s.delivery.attempt(message.envelope, "sweep", wait=wait)
        except PublishError as exc:
            return Attempted(message, None, f"PublishError: {exc}"[:300])
        except Exception as exc:  # one event's failure (a secret unavailable, ...) is not the run's
            return Attempted(message, None, type(exc).__name__)
        if handled.outcome is not None:
            self.s.observe(handled.outcome.latency)
        return Attempted(message, handled.result)

    def _settle(self) -> None:
        """Take in what finished: attempts and the pull (without waiting)."""
        while True:
            item = self.events.get_nowait() if not self.events.empty() else None
            if item is None:
                return
            self._settled(item)

    def _settled(self, future: concurrent.futures.Future[Any]) -> None:
        if future is self.pulling:
            self.pulling = None
            self._pulled(future)
            return
        message = self.running.pop(future, None)
        if message is None:
            return
        attempted: Attempted = future.result()
        if attempted.result is None:  # not handed on: left unacked, Pub/Sub offers it again
            self.counts[Tally.ERRORS] += 1
            self.give_back.append(message.ack_id)
            logs.warning("sweep attempt failed", component="sweep", event_id=message.envelope.event.event_id,
                         error=attempted.error)
        else:
            self.counts[attempted.result] += 1
            self.acks.append(message.ack_id)
            if attempted.result in (Result.RETRIED, Result.DEFERRED):
                # A new retry on the topic: the run is not done until a pull after it found nothing.
                self.published_at = self.clock.now()
                self.empty = False

    def _promote(self, now: float) -> None:
        while self.held and self.held[0].due <= now:
            self.ready.append(heapq.heappop(self.held).message)

    def _wait(self, now: float) -> None:
        """Until an attempt or the pull finishes, a held message comes due, or it is time to act."""
        until = min(self.stop_at, self.lease_check_at)
        if self.held:
            until = min(until, self.held[0].due)
        if self.ready or self.acks or (self.pulling is None and not self.empty):
            until = min(until, now + WAIT_STEP_S)
        elif self.pulling is None:
            until = min(until, max(self.pull_after, now + WAIT_STEP_S))
        item = self.clock.wait(self.events, max(0.0, until - now))
        if item is not None:
            self._settled(item)

    # --- pulls ----------------------------------------------------------------------------

    def _pull(self, now: float) -> None:
        if self.pulling is not None or now < self.pull_after or len(self.ready) >= self._slots():
            return
        timeout = min(EMPTY_PULL_S, self.start_until - now)
        # A short budget still pulls: half of its window is enough (the whole window would never be
        # left by the time the first pull is asked for, and such a run would end having pulled nothing).
        if timeout < min(MIN_PULL_S, (self.start_until - self.started) / 2):
            return
        queued = len(self.ready) + len(self.held) + len(self.running)
        # What can start before start_until (at most half an ack deadline): more would only be given back.
        want = min(MAX_PULL, self.s.capacity(min(self.start_until - now, ACK_DEADLINE_S / 2)) - queued)
        if self.breaker.is_open:
            want = min(want, 1 - queued)
        if want <= 0:
            return
        request = {"subscription": self.s.path, "max_messages": want,
                   "return_immediately": self.s.return_immediately}
        future: concurrent.futures.Future[list[ReceivedMessage]] = concurrent.futures.Future()

        def pull() -> None:
            try:
                future.set_result(list(self.s.subscriber.pull(request=request, timeout=timeout).received_messages))
            except BaseException as exc:  # handed to the loop, which raises it
                future.set_exception(exc)

        self.pulling, self.pull_started = future, now
        future.add_done_callback(self.events.put)
        # Its own thread, not the pool's: a pull that hangs past its run must not hold the next one's.
        threading.Thread(target=pull, name="sweep-pull", daemon=True).start()

    def _slots(self) -> int:
        return 1 if self.breaker.is_open else self.s.slots()

    def _pulled(self, future: concurrent.futures.Future[list[ReceivedMessage]]) -> None:
        try:
            received = future.result()
        except ApiError as exc:
            if not exc.transient:  # an answer that will not change (a missing subscription) fails the run
                raise
            # No answer, a broken connection, a 5xx to the end: nothing to do now. What the service
            # leased to it comes back after its ack deadline.
            logs.warning("sweep pull failed", component="sweep", error=str(exc)[:300])
            self.counts[Tally.CALL_FAILURES] += 1
            received = []
        now = self.clock.now()
        self.empty = not received and self.pull_started >= self.published_at
        if not received:
            self.pull_after = max(now, self.pull_started + REPULL_S)
            return
        self.counts[Tally.PULLED] += len(received)
        self._triage(received, lease_until=self.pull_started + ACK_DEADLINE_S)

    def _triage(self, received: list[ReceivedMessage], lease_until: float) -> None:
        """Settle what needs no attempt now; queue what is due, or soon due."""
        wall, now = self.clock.wall(), self.clock.now()
        hidden: list[tuple[float, str]] = []
        for item in received:
            message = item.message
            try:
                envelope = decode(message.data)
            except UndecodableMessageError as exc:
                self._hand_on(item.ack_id, self.s.delivery.dead_letter, "undecodable", str(exc), "sweep",
                              raw=message.data, attributes=dict(message.attributes))
                continue
            state = envelope.retry
            if state and wall - state.first_failure > self.s.config.retry_max_age:
                self._hand_on(item.ack_id, self._expire, envelope, wall)
                continue
            wait = state.next_due - wall if state else 0.0
            in_hand = InHand(item.ack_id, envelope, lease_until, now + max(0.0, wait))
            self.lease_check_at = min(self.lease_check_at, lease_until - LEASE_MARGIN_S)
            if wait <= 0:
                self.ready.append(in_hand)
            elif wait <= HOLD_S and in_hand.due < self.start_until:
                heapq.heappush(self.held, _Held(in_hand.due, next(self._seq), in_hand))
            else:
                hidden.append((wait, item.ack_id))
                self.counts[Tally.NOT_DUE] += 1
        self._hide(hidden)

    def _hand_on(self, ack_id: str, action: Callable[..., object], *args: Any, **kwargs: Any) -> None:
        """A dead letter; a publish that fails leaves the message unacked for a later sweep."""
        try:
            action(*args, **kwargs)
        except PublishError:
            self.counts[Tally.ERRORS] += 1
            self.give_back.append(ack_id)
            return
        self.counts[Result.DEAD_LETTERED] += 1
        self.acks.append(ack_id)

    def _expire(self, envelope: Envelope, wall: float) -> None:
        state = envelope.retry
        assert state is not None
        days = (wall - state.first_failure) / 86400
        reason = (f"gave up after {state.attempt} attempts over {days:.1f} days "
                  f"(MEASURE_RETRY_MAX_AGE {self.s.config.retry_max_age} s); last error: {state.last_error}")
        self.s.delivery.dead_letter("expired", reason, "sweep", envelope=envelope)

    # --- Pub/Sub calls, each bounded by the time left -------------------------------------

    def _hide(self, waits: list[tuple[float, str]]) -> None:
        """Hide each message for at least its wait (0 or less: offer it again now), with one
        modifyAckDeadline call per distinct deadline step."""
        by_step: defaultdict[int, list[str]] = defaultdict(list)
        for wait, ack_id in waits:
            by_step[deadline_step(wait) if wait > 0 else 0].append(ack_id)
        for seconds, ack_ids in by_step.items():
            self._modify(ack_ids, seconds)

    def _keep_leases(self, now: float) -> None:
        """Extend the lease of every message in hand (waiting for a slot, held, being attempted)
        that ends soon, so that Pub/Sub does not offer it to another puller meanwhile."""
        if now < self.lease_check_at:
            return
        in_hand = [*self.ready, *(held.message for held in self.held), *self.running.values()]
        expiring = [message for message in in_hand if message.lease_until - now < LEASE_MARGIN_S]
        extended = bool(expiring) and self._modify([message.ack_id for message in expiring], int(ACK_DEADLINE_S))
        if extended:
            for message in expiring:
                message.lease_until = now + ACK_DEADLINE_S
        self.lease_check_at = min((message.lease_until - LEASE_MARGIN_S for message in in_hand), default=float("inf"))
        if expiring and not extended:  # tried again a second later: its messages may still be in time
            self.lease_check_at = now + 1.0

    def _ack(self) -> None:
        self.acked_at = self.clock.now()
        acks, self.acks = self.acks, []
        if acks and not self._call(self.s.subscriber.acknowledge, {"subscription": self.s.path, "ack_ids": acks}):
            self.acks = acks + self.acks  # tried again at the next acknowledge, the last at the end

    def _modify(self, ack_ids: list[str], seconds: int) -> bool:
        return self._call(self.s.subscriber.modify_ack_deadline,
                          {"subscription": self.s.path, "ack_ids": ack_ids, "ack_deadline_seconds": seconds})

    def _call(self, call: Callable[..., None], request: dict[str, Any]) -> bool:
        """One acknowledge/modifyAckDeadline within the time left; False (logged) if it failed."""
        timeout = min(CALL_TIMEOUT, self.calls_until - self.clock.now())
        try:
            if timeout <= 0:
                raise ApiError(getattr(call, "__name__", "call"), None, "the sweep's budget is spent", transient=True)
            call(request=request, timeout=timeout)
        except ApiError as exc:
            self.counts[Tally.CALL_FAILURES] += 1
            logs.warning("sweep call failed", component="sweep", ack_ids=len(request["ack_ids"]),
                         error=str(exc)[:300])
            return False
        return True

    def _share(self) -> float:
        """Until when the next of the last calls may run: half of what is left (the rest is for the others)."""
        now = self.clock.now()
        return now + max(0.0, self.end - now) / 2

    def _finish(self) -> None:
        """Wait for the pull and the attempts in flight until stop_at (each is bounded), then, each
        step on its own: acknowledge what was handed on, give back what was not attempted (due
        messages at once), hide held ones until they come due."""
        refused: ApiError | None = None
        try:
            while (self.running or self.pulling is not None) and self.clock.now() < self.stop_at:
                item = self.clock.wait(self.events, self.stop_at - self.clock.now())
                if item is not None:
                    self._settled(item)
            self._settle()
        except ApiError as exc:  # a pull refused for good: the run fails, once the steps below are done
            refused = exc
        self.counts[Tally.UNFINISHED] += len(self.running)
        self.calls_until = self._share()
        self._ack()
        self.counts[Tally.RELEASED] += len(self.ready) + len(self.held)
        give_back = self.give_back + [message.ack_id for message in self.ready]
        self.calls_until = self._share()
        if give_back:
            self._modify(give_back, 0)
        self.calls_until = self.end
        now = self.clock.now()
        self._hide([(held.due - now, held.message.ack_id) for held in self.held])
        if refused is not None:
            raise refused
