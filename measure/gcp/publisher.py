"""Publishing to our Pub/Sub topics, and waiting until Pub/Sub confirmed every message.

One Publisher per process, shared by the instance's threads. `publish` returns the message ids
only when Pub/Sub confirmed all of a caller's messages; otherwise PublishError, and the caller
answers 503 (receive) or raises so Eventarc redelivers (send). A partial success republished
later is harmless: event ids are stable and the Measurement API deduplicates on transaction_id.

Concurrent callers share Publish calls (a group commit). Up to MAX_CALLS_IN_FLIGHT calls a
topic are made at once (so one call stuck on a dead connection does not stop the others), each
by a caller for its own messages; a caller arriving while all are in flight queues up, and
whichever call returns first hands the next call to the first queued caller, who makes it for
everyone then queued. Under load one call carries many requests'
messages; a caller alone is never held back by a batch timer; and no thread is left running
after the request that made a call has its answer.
Calls go over Pub/Sub's REST API on google-auth's session (measure.gcp.googleapi says why not the
client library); transient failures are retried there within the caller's deadline, each
attempt bounded by ATTEMPT_TIMEOUT so that a retry goes out on a fresh connection.
"""

from __future__ import annotations

import base64
import threading
import time
from collections import deque
from collections.abc import Callable

from measure.gcp import googleapi

# What Pub/Sub carries: the data and its attributes. The pipeline's encodings produce these.
Message = tuple[bytes, dict[str, str]]

# Seconds one attempt of a Publish call may wait for Pub/Sub's answer. Publish answers in tens of
# milliseconds; an attempt that has not answered in this long is on a connection that stopped
# answering, and the retry goes out on a fresh one (measure.gcp.googleapi.Api.call).
ATTEMPT_TIMEOUT = 5.0
# Seconds a caller waits for Pub/Sub's confirmation of its messages, all attempts together: one
# attempt that hangs, the backoff pause, and one retry. receive answers 503 after it (the
# telemetry server retries), send raises (Eventarc redelivers): neither should hold a thread longer.
PUBLISH_TIMEOUT = 2 * ATTEMPT_TIMEOUT + 1.0
MAX_PER_CALL = 1000  # Pub/Sub's limit of messages in one Publish request
# Pub/Sub takes 10 MB a request; data travels base64-encoded (4/3), plus attributes and JSON.
MAX_BYTES_PER_CALL = 6 * 1024 * 1024
# Calls in flight a topic; every caller that arrives while all are in flight goes in the next
# call. Two, not one: with one, a single call stuck on a dead connection held every caller of the
# instance for its whole deadline (every receive 503, every send raising); with two, the other
# slot keeps publishing meanwhile. Not more: measured on the emulator with 16 callers, 1 call in
# flight carried 8.5 messages a call (1,100-1,160 msg/s), 2 carried 5.8 (935-994), 4 carried 3.3
# (675-788); receive served 845 one-event requests/s at 1.06 ms of CPU each with 1, 686 at 1.23 ms
# with 2. Against the real service (tens of ms a call) a busy caller waits at most about two calls.
MAX_CALLS_IN_FLIGHT = 2


class PublishError(RuntimeError):
    def __init__(self, topic: str, failed: int, total: int, cause: str):
        self.topic = topic
        self.failed = failed
        self.cause = cause
        super().__init__(f"{failed} of {total} messages to {topic} not confirmed: {cause}")


class _Waiter:
    """One caller's messages, queued for a Publish call. `wake` is a latch released exactly once,
    when they are settled (ids or error) or when this caller is to make the next call itself:
    a bare lock rather than a threading.Event, because waking the callers is a good part of a
    busy instance's CPU and a lock's release is one C call where Event.set is a Condition's."""

    __slots__ = ("deadline", "error", "ids", "lead", "messages", "size", "wake")

    def __init__(self, messages: list[Message], deadline: float):
        self.messages = messages
        self.size = sum(len(data) for data, _ in messages)
        self.deadline = deadline
        self.ids: list[str] | None = None
        self.error: str | None = None
        self.lead = False
        self.wake = threading.Lock()
        self.wake.acquire()  # held until released by whoever settles or promotes this caller


class Publisher:
    def __init__(self, project: str, api: googleapi.Api | None = None, *,
                 build: Callable[[], googleapi.Api] = googleapi.pubsub):
        """`api`, or else `build()` on the first publish (the instance's shared endpoint, from
        measure.runtime; by default one of its own, for the command-line tools)."""
        self.project = project
        self._api = api
        self._build = build
        self._lock = threading.Lock()
        self._queued: dict[str, deque[_Waiter]] = {}
        self._in_flight: dict[str, int] = {}  # topic -> calls being made (each by one caller)

    @property
    def api(self) -> googleapi.Api:
        # Built on first publish: a send that only delivers never needs it. Read without the
        # lock once built: every Publish call asks for it.
        # Built outside the lock the callers' bookkeeping takes: the build may fetch a token.
        # (runtime's builder builds once for every caller; a tool's own may build twice, harmlessly.)
        if self._api is None:
            api = self._build()
            with self._lock:
                if self._api is None:
                    self._api = api
        return self._api

    def publish(self, topic: str, messages: list[Message], timeout: float | None = None) -> list[str]:
        """Publish every message and wait for all confirmations; PublishError if any failed. No
        caller waits much longer than `timeout` (default PUBLISH_TIMEOUT) seconds."""
        if timeout is None:
            timeout = PUBLISH_TIMEOUT
        if not messages:
            return []
        if len(messages) > MAX_PER_CALL:
            return self._publish_chunks(topic, messages, timeout)
        waiter = _Waiter(messages, time.monotonic() + timeout)
        with self._lock:
            in_flight = self._in_flight.get(topic, 0)
            if in_flight < MAX_CALLS_IN_FLIGHT:
                self._in_flight[topic] = in_flight + 1
                waiter.lead = True
            else:
                self._queued.setdefault(topic, deque()).append(waiter)
        if not waiter.lead:
            self._wait(topic, waiter)
        if waiter.lead:
            self._call(topic, waiter)
        if waiter.error is not None:
            raise PublishError(topic, len(messages), len(messages), waiter.error)
        return waiter.ids  # type: ignore[return-value]  # no error: the lead's call set the ids

    def publish_one(self, topic: str, message: Message, timeout: float | None = None) -> str:
        return self.publish(topic, [message], timeout)[0]

    def _publish_chunks(self, topic: str, messages: list[Message], timeout: float) -> list[str]:
        ids: list[str] = []
        deadline = time.monotonic() + timeout
        for start in range(0, len(messages), MAX_PER_CALL):
            try:
                ids += self.publish(topic, messages[start:start + MAX_PER_CALL], max(0.0, deadline - time.monotonic()))
            except PublishError as exc:
                raise PublishError(topic, len(messages) - len(ids), len(messages), exc.cause) from exc
        return ids

    def _wait(self, topic: str, waiter: _Waiter) -> None:
        """Wait to be settled or to lead; give up only while still queued (a call in flight
        carrying these messages is bounded by its own deadline, and its answer is the truth)."""
        if waiter.wake.acquire(timeout=max(0.0, waiter.deadline - time.monotonic())):
            return
        with self._lock:
            queue = self._queued[topic]
            if not waiter.lead and waiter.ids is None and waiter in queue:
                queue.remove(waiter)
                waiter.error = "timed out waiting for an earlier Publish call"
                return
        waiter.wake.acquire()

    def _call(self, topic: str, lead: _Waiter) -> None:
        """Make one Publish call for this caller and the queued callers that fit behind it, then
        hand the next call to the first caller still queued."""
        with self._lock:
            queue = self._queued.setdefault(topic, deque())
            batch = [lead]
            count, size = len(lead.messages), lead.size
            while queue and count + len(queue[0].messages) <= MAX_PER_CALL \
                    and size + queue[0].size <= MAX_BYTES_PER_CALL:
                count += len(queue[0].messages)
                size += queue[0].size
                batch.append(queue.popleft())
        try:
            self._send(topic, batch)
        finally:
            with self._lock:
                if queue:  # the call slot passes on, so the queue never waits for a newcomer
                    successor = queue.popleft()
                    successor.lead = True
                    successor.wake.release()
                else:
                    self._in_flight[topic] -= 1
            for waiter in batch:
                if waiter.ids is None and waiter.error is None:
                    waiter.error = "publish call failed"
                if waiter is not lead:  # the caller making the call is not waiting
                    waiter.wake.release()

    def _send(self, topic: str, batch: list[_Waiter]) -> None:
        body = {"messages": [{"data": base64.b64encode(data).decode("ascii"), "attributes": attributes}
                             for waiter in batch for data, attributes in waiter.messages]}
        # The earliest deadline of the batch: no caller waits past its own for the others'.
        timeout = min(waiter.deadline for waiter in batch) - time.monotonic()
        try:
            response = self.api.call("POST", f"/v1/projects/{self.project}/topics/{topic}:publish", body,
                                     timeout=timeout, attempt_timeout=ATTEMPT_TIMEOUT, what=f"publish to {topic}")
            ids = response.get("messageIds") or []
            if len(ids) != len(body["messages"]):
                raise googleapi.ApiError(f"publish to {topic}", 200,
                                         f"{len(ids)} ids for {len(body['messages'])} messages", transient=True)
        except googleapi.DeadlineExceededError:
            self._fail(batch, "timed out")
            return
        except Exception as exc:  # every caller in the batch gets an answer, whatever went wrong
            self._fail(batch, str(exc) if isinstance(exc, googleapi.ApiError) else type(exc).__name__)
            return
        start = 0
        for waiter in batch:
            waiter.ids = ids[start:start + len(waiter.messages)]
            start += len(waiter.messages)

    @staticmethod
    def _fail(batch: list[_Waiter], cause: str) -> None:
        for waiter in batch:
            waiter.error = cause
