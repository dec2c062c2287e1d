"""Eventarc's push to `send` with the service's concurrency and its format, for tests and the chaos run.

The emulator's push subscription keeps about two pushes outstanding (send's log of a chaos run:
1.9 concurrent deliveries on average), so with a slow API it, not measure, sets how fast a backlog
drains; and it POSTs Pub/Sub push's raw envelope, which Eventarc never sends (functions-framework
converts that envelope itself and answers 400 when a message has no `data`). Eventarc's trigger
keeps far more pushes outstanding, and each is a CloudEvent in binary content mode:

    ce-specversion: 1.0
    ce-id:          the message id
    ce-source:      //pubsub.googleapis.com/projects/P/topics/T
    ce-type:        google.cloud.pubsub.topic.v1.messagePublished
    ce-time:        the publish time
    body (JSON):    {"message": {"data": <base64>, "attributes": {...}, "messageId", "publishTime", ...},
                     "subscription": "projects/P/subscriptions/S"}

with `message.data` absent when the message has none, and `attributes` absent when it has none
(proto3's JSON omits empty fields). `cloud_event()` builds that request and `push()` sends it, so a
test can push any given Pub/Sub message to a `send` server exactly as Eventarc would.

The relay pulls from a PULL subscription on measure-events with the product's own REST client
(measure.gcp.subscriber) and pushes each message that way, up to OUTSTANDING at once, with push's
semantics: a success answer acknowledges the message; any other answer, a timeout or a broken
connection makes it available again at once (ack deadline 0), so a SIGKILLed `send` costs
redeliveries, never losses.
"""

from __future__ import annotations

import base64
import json
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import requests
import requests.adapters

from measure.dev import pubsub_admin as admin
from measure.dev.emulator import PUSH_ACK_DEADLINE, Topology
from measure.gcp import credentials, googleapi
from measure.gcp.subscriber import PubsubMessage, ReceivedMessage, Subscriber

OUTSTANDING = 64  # pushes in flight at most: send's THREADS in the chaos run
# The answers Pub/Sub push takes as an acknowledgement (102 Processing never ends a requests call).
PUSH_SUCCESS = frozenset({200, 201, 202, 204})
# Pub/Sub push waits for an answer until the message's ack deadline; a later answer is a failure.
PUSH_TIMEOUT = PUSH_ACK_DEADLINE - 5
# Pub/Sub backs off from an endpoint whose pushes fail, exponentially from 100 ms (up to a minute);
# capped here at a second so that send's two seconds down cost about that, as in the emulator's case.
BACKOFF_FIRST = 0.1
BACKOFF_MOST = 1.0
IDLE_WAIT = 0.05  # between looks for a free slot, and (by default) after a pull that found nothing
PULL_TIMEOUT = 10.0
# The CloudEvent type and source service of every Pub/Sub event Eventarc delivers.
CLOUD_EVENT_TYPE = "google.cloud.pubsub.topic.v1.messagePublished"
CLOUD_EVENT_SERVICE = "pubsub.googleapis.com"
# What the push sends besides the ce-* headers (Pub/Sub push's documented User-Agent).
HEADERS = {"Content-Type": "application/json",
           "User-Agent": "APIs-Google; (+https://developers.google.com/webmasters/APIs-Google.html)"}


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def cloud_event(message: PubsubMessage, topic: str, subscription: str) -> tuple[dict[str, str], bytes]:
    """(headers, body) of Eventarc's push of `message`, published on `topic` (projects/P/topics/T)
    and read through `subscription` (projects/P/subscriptions/S): a binary-mode CloudEvent."""
    published = _rfc3339(message.publish_time or datetime.now(UTC))
    body: dict[str, object] = {}
    if message.data:  # Pub/Sub's JSON leaves out empty fields: no data, no "data" key
        body["data"] = base64.b64encode(message.data).decode()
    if message.attributes:
        body["attributes"] = dict(message.attributes)
    # Eventarc writes the id and the time in both spellings.
    body.update(messageId=message.message_id, message_id=message.message_id,
                publishTime=published, publish_time=published)
    headers = {**HEADERS, "ce-specversion": "1.0", "ce-id": message.message_id,
               "ce-source": f"//{CLOUD_EVENT_SERVICE}/{topic}", "ce-type": CLOUD_EVENT_TYPE, "ce-time": published}
    return headers, json.dumps({"message": body, "subscription": subscription}).encode()


def push(session: requests.Session, endpoint: str, message: PubsubMessage, *, topic: str, subscription: str,
         timeout: float | tuple[float, float] = PUSH_TIMEOUT) -> requests.Response:
    """POST `message` to `endpoint` as Eventarc does (`cloud_event`), and return the answer."""
    headers, body = cloud_event(message, topic, subscription)
    return session.post(endpoint, data=body, headers=headers, timeout=timeout)


class PushRelay:
    """Pulls from `subscription` (on `topic`) and pushes to `endpoint` as Eventarc does, OUTSTANDING at
    a time. `start()`, then `stop()`."""

    def __init__(self, subscription: str, endpoint: str, subscriber: Subscriber, *, topic: str,
                 outstanding: int = OUTSTANDING, push_timeout: float = PUSH_TIMEOUT, idle_wait: float = IDLE_WAIT):
        self.subscription = subscription
        self.topic = topic
        self.endpoint = endpoint
        self.outstanding = outstanding
        self.push_timeout = push_timeout
        # After a pull that found nothing. Each empty pull costs the emulator's JVM CPU (at 50 ms, a
        # fifth of a core while idle): a stack left running for hours (make run) waits longer.
        self.idle_wait = idle_wait
        self.subscriber = subscriber
        self.pulled = self.acked = self.released = self.peak = 0
        self.failures: Counter[str] = Counter()  # pushes that were not acknowledged, by answer
        self.errors: Counter[str] = Counter()  # pulls, acks and releases that failed, by error
        # A keep-alive connection for each push in flight, as Eventarc keeps to a busy service.
        self._session = requests.Session()
        self._session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=outstanding, max_retries=0))
        self._pool = ThreadPoolExecutor(outstanding, thread_name_prefix="push-relay")
        self._changed = threading.Condition()
        self._in_flight = 0
        self._finished: list[tuple[str, bool]] = []  # (ack id, acknowledged), not yet told to Pub/Sub
        self._failing_rounds = 0
        self._stop = threading.Event()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="push-relay-pull", daemon=True)

    @classmethod
    def subscribe(cls, topology: Topology, endpoint: str, **options) -> PushRelay:
        """A pull subscription on the topology's events topic (with push's ack deadline) and a relay
        from it to `endpoint`. The topology must have no push subscription, or events go twice."""
        api = googleapi.Api(f"http://{topology.emulator_host}", credentials.http(None, 2))
        subscription = topology.subscription_path(f"{topology.names.events_push_subscription}-relay")
        topic = topology.topic_path(topology.names.events_topic)
        admin.create_subscription(api, subscription, topic, ack_deadline_seconds=PUSH_ACK_DEADLINE)
        return cls(subscription, endpoint, Subscriber(api), topic=topic, **options)

    def start(self) -> PushRelay:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop pulling, let the pushes in flight end (each within push_timeout), tell Pub/Sub their
        outcome. Safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        self._stop.set()
        with self._changed:
            self._changed.notify_all()
        if self._thread.ident is not None:  # started
            self._thread.join(timeout=PULL_TIMEOUT + googleapi.CONNECT_TIMEOUT + 5)
        self._pool.shutdown(wait=True)
        try:
            self._settle()
        except Exception as error:
            self.errors[type(error).__name__] += 1
        self._session.close()
        self.subscriber.close()
        assert not self._thread.is_alive(), "the push relay's pull loop did not stop"

    def figures(self) -> dict:
        return {"pulled": self.pulled, "acked": self.acked, "released": self.released,
                "peak outstanding": self.peak, "failed pushes": dict(self.failures), "errors": dict(self.errors)}

    # ---------------------------------------------------------------- the pull loop

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._settle()
                if self._failing_rounds and self._stop.wait(self._backoff()):
                    break
                free = self._free_slots()
                if free and not self._stop.is_set():
                    self._pull(free)
            except Exception as error:  # the loop outlives a failed call: Pub/Sub push does not give up
                self.errors[type(error).__name__] += 1
                self._stop.wait(IDLE_WAIT)

    def _backoff(self) -> float:
        return min(BACKOFF_MOST, BACKOFF_FIRST * 2 ** min(self._failing_rounds - 1, 10))

    def _free_slots(self) -> int:
        with self._changed:
            if self._in_flight >= self.outstanding:
                self._changed.wait(IDLE_WAIT)
            return self.outstanding - self._in_flight

    def _pull(self, free: int) -> None:
        # return_immediately: the emulator would otherwise hold an empty pull for its own long poll,
        # and the loop must look at finished pushes and at stop() meanwhile.
        received = self.subscriber.pull(request={"subscription": self.subscription, "max_messages": free,
                                                 "return_immediately": True}, timeout=PULL_TIMEOUT).received_messages
        if not received:
            self._stop.wait(self.idle_wait)
            return
        with self._changed:
            self._in_flight += len(received)
            self.peak = max(self.peak, self._in_flight)
            self.pulled += len(received)
        for message in received:
            self._pool.submit(self._push, message)

    def _settle(self) -> None:
        """Acknowledge the pushes that succeeded, release the others for redelivery."""
        with self._changed:
            finished, self._finished = self._finished, []
        if not finished:
            return
        acked = [ack_id for ack_id, ok in finished if ok]
        released = [ack_id for ack_id, ok in finished if not ok]
        # A round of only failures backs off further; one success means the endpoint is back.
        self._failing_rounds = 0 if acked else self._failing_rounds + 1
        if acked:
            self.subscriber.acknowledge(request={"subscription": self.subscription, "ack_ids": acked})
            self.acked += len(acked)
        if released:
            self.subscriber.modify_ack_deadline(request={"subscription": self.subscription, "ack_ids": released,
                                                         "ack_deadline_seconds": 0})
            self.released += len(released)

    # ---------------------------------------------------------------- one push (a pool thread)

    def _push(self, received: ReceivedMessage) -> None:
        outcome = "not sent"
        try:
            response = push(self._session, self.endpoint, received.message, topic=self.topic,
                            subscription=self.subscription, timeout=(googleapi.CONNECT_TIMEOUT, self.push_timeout))
            outcome = "" if response.status_code in PUSH_SUCCESS else f"HTTP {response.status_code}"
        except requests.RequestException as error:
            outcome = type(error).__name__
        finally:
            with self._changed:
                self._finished.append((received.ack_id, not outcome))
                self._in_flight -= 1
                if outcome:
                    self.failures[outcome] += 1
                self._changed.notify_all()
