"""The retry sweeper (`sweep`): drain measure-retry-sweeper within a time budget.

For each pulled message:
    undecodable                        -> dead letter, ack
    retrying longer than the max age   -> dead letter ("expired") with the last error, ack
    not yet due                        -> ack deadline extended until it is (no busy loop: Pub/Sub
                                          hides it from every puller meanwhile), left unacked
    due                                -> one attempt (measure.pipeline.delivery), ack once handed on

Due events are re-sent in bounded parallel batches. When the API keeps failing (the circuit
breaker opens) the sweep stops early and gives the unattempted messages back to the
subscription, so an outage costs a handful of timeouts, not one per event.
"""

from __future__ import annotations

import concurrent.futures
import json
import threading
import time
from collections import Counter
from collections.abc import Callable

from measure import logs
from measure.config import Config
from measure.gcp.publisher import PublishError
from measure.pipeline.delivery import Delivery
from measure.pipeline.message import UndecodableMessageError, dead_letter_message, decode

MAX_ACK_EXTENSION_S = 600  # Pub/Sub's ceiling for an ack deadline
PULL_TIMEOUT_S = 10.0


class Sweeper:
    def __init__(
        self,
        config: Config,
        delivery: Delivery,
        subscriber,
        *,
        parallelism: int = 64,
        clock: Callable[[], float] = time.time,
        return_immediately: bool = False,
    ):
        self.config = config
        self.delivery = delivery
        self.subscriber = subscriber
        self.parallelism = parallelism
        # Four rounds of attempts a pull: 4 x the 10 s read timeout stays inside the 60 s ack deadline.
        self.batch_size = parallelism * 4
        self.clock = clock
        # Only for the emulator, which otherwise holds an empty pull for its whole deadline; the
        # real service may answer empty with messages waiting when asked to return at once.
        self.return_immediately = return_immediately
        self.path = subscriber.subscription_path(config.project, config.retry_subscription)
        self._pool = concurrent.futures.ThreadPoolExecutor(parallelism, thread_name_prefix="sweep")
        self._running = threading.Lock()  # one sweep at a time per instance; a second call waits its turn

    def handle(self, request) -> tuple[str, int, dict[str, str]]:
        """The HTTP entry point: run one sweep and answer its summary as JSON."""
        summary = self.run()
        return json.dumps(summary), 200, {"Content-Type": "application/json"}

    def run(self, budget: float | None = None) -> dict:
        with self._running:
            return self._run(self.config.sweep_budget if budget is None else budget)

    def _run(self, budget: float) -> dict:
        started = time.monotonic()
        counts: Counter[str] = Counter()
        stopped = None
        while time.monotonic() - started < budget:
            received = self._pull(min(PULL_TIMEOUT_S, max(1.0, budget - (time.monotonic() - started))))
            if not received:
                break
            counts["pulled"] += len(received)
            ack_ids, due = self._triage(received, counts)
            if due:
                ack_ids += self._attempt_all(due, counts)
            self._ack(ack_ids)
            if self.delivery.breaker.is_open:
                stopped = "circuit open: the Measurement API keeps failing"
                break
        summary = {
            "pulled": counts["pulled"],
            "delivered": counts["delivered"],
            "duplicates": counts["duplicate"],
            "retried": counts["retried"] + counts["deferred_by_breaker"],
            "deferred": counts["deferred"],
            "dead_lettered": counts["dead_lettered"],
            "released": counts["released"],
            "errors": counts["errors"],
            "elapsed": round(time.monotonic() - started, 3),
            "stopped_early": stopped,
        }
        logs.info("sweep finished", component="sweep", **summary)
        return summary

    def _pull(self, timeout: float) -> list:
        # measure.gcp.subscriber.Subscriber answers empty when nothing came within the timeout.
        response = self.subscriber.pull(
            request={"subscription": self.path, "max_messages": self.batch_size,
                     "return_immediately": self.return_immediately},
            timeout=timeout,
        )
        return list(response.received_messages)

    def _triage(self, received: list, counts: Counter) -> tuple[list[str], list]:
        """Settle what needs no attempt; return (ack ids settled, due messages)."""
        now = self.clock()
        ack_ids: list[str] = []
        due = []
        for item in received:
            message = item.message
            try:
                envelope = decode(message.data)
            except UndecodableMessageError as exc:
                if self._safely(counts, self.delivery.dead_letter_raw,
                                message.data, dict(message.attributes), str(exc), "sweep"):
                    ack_ids.append(item.ack_id)
                    counts["dead_lettered"] += 1
                continue
            state = envelope.retry
            if state and now - state.first_failure > self.config.retry_max_age:
                if self._safely(counts, self._expire, envelope, now):
                    ack_ids.append(item.ack_id)
                    counts["dead_lettered"] += 1
                continue
            if state and state.next_due > now + 1:
                wait = min(MAX_ACK_EXTENSION_S, max(10, int(state.next_due - now) + 1))
                self.subscriber.modify_ack_deadline(
                    request={"subscription": self.path, "ack_ids": [item.ack_id], "ack_deadline_seconds": wait}
                )
                counts["deferred"] += 1
                continue
            due.append((item, envelope))
        return ack_ids, due

    def _expire(self, envelope, now: float) -> None:
        state = envelope.retry
        days = (now - state.first_failure) / 86400
        reason = (f"gave up after {state.attempt} attempts over {days:.1f} days "
                  f"(MEASURE_RETRY_MAX_AGE {self.config.retry_max_age} s); last error: {state.last_error}")
        self.delivery.publisher.publish_one(
            self.config.dead_letter_topic,
            dead_letter_message("expired", reason, now, event=envelope.event, attempts=state.attempt),
        )
        logs.warning("dead-lettered", component="sweep", event_id=envelope.event.event_id, kind="expired",
                     reason=reason, outcome="expired")

    def _attempt_all(self, due: list, counts: Counter) -> list[str]:
        """Attempt the due messages in parallel; stop starting new ones once the circuit opens.

        With the circuit open, nothing goes out until its cooldown has passed; then one message
        is the half-open trial, and only if it closes the circuit do the others follow."""
        def one(item_envelope):
            item, envelope = item_envelope
            if self.delivery.breaker.is_open and not self.delivery.breaker.ready():
                return item.ack_id, "released"
            try:
                return item.ack_id, self.delivery.attempt(envelope, "sweep").result
            except PublishError:
                return item.ack_id, "errors"

        results = []
        if self.delivery.breaker.is_open:
            results.append(one(due[0]))  # the trial, or released while cooling down
            due = due[1:]
        results.extend(self._pool.map(one, due))
        ack_ids, released = [], []
        for ack_id, result in results:
            if result in ("released", "errors"):
                released.append(ack_id)
            else:
                ack_ids.append(ack_id)
            counts["deferred_by_breaker" if result == "deferred" else result] += 1
        if released:  # hand them back now rather than after the ack deadline
            self.subscriber.modify_ack_deadline(
                request={"subscription": self.path, "ack_ids": released, "ack_deadline_seconds": 0}
            )
        return ack_ids

    def _ack(self, ack_ids: list[str]) -> None:
        if ack_ids:
            self.subscriber.acknowledge(request={"subscription": self.path, "ack_ids": ack_ids})

    @staticmethod
    def _safely(counts: Counter, action: Callable[..., None], *args) -> bool:
        """Run a hand-on; a publish that fails leaves the message unacked for a later sweep."""
        try:
            action(*args)
            return True
        except PublishError:
            counts["errors"] += 1
            return False
