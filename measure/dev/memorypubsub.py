"""An in-memory Pub/Sub that answers the REST calls measure makes, for tests that need no Java.

    with MemoryPubsub().start() as pubsub:
        os.environ["PUBSUB_EMULATOR_HOST"] = pubsub.host   # as with the emulator
        ...

It serves, over HTTP on a free loopback port (so function servers in other processes reach it
too), the subset of Pub/Sub's REST API v1 that measure.gcp and measure.dev.pubsub_admin call:
create a topic or subscription (PUT; 409 ALREADY_EXISTS when it exists), get a subscription,
publish, pull (returnImmediately, or a short wait), acknowledge, modifyAckDeadline and
modifyPushConfig (kept, but nothing is pushed). A message goes to every subscription its topic
had when it was published, and comes back after its ack deadline unless acknowledged; each
delivery has an ack id of its own, and a stale one is ignored. Errors have Google's shape
({"error": {"code", "message", "status"}}), so googleapi.Api reads them as it reads the service's.

What it does not do, and the emulator-backed tiers cover: push delivery, seek, ordering keys,
dead-letter policies, exactly-once delivery, gRPC (google-cloud-pubsub's clients). The contract
tests (tests/dev/test_memorypubsub.py) run the same suite against it and the emulator.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from measure.dev import emulator
from measure.dev.emulator import Names
from measure.gcp import credentials, googleapi
from measure.gcp.subscriber import Subscriber

DEFAULT_ACK_DEADLINE_S = 10  # Pub/Sub's default when a subscription does not say
MAX_ACK_DEADLINE_S = 600
# An empty pull without returnImmediately waits this long for a message, then answers empty (the
# real service may also answer empty early; measure's callers treat both alike).
PULL_WAIT_S = 0.2

_PATH = re.compile(r"^/v1/projects/(?P<project>[^/:]+)/(?P<kind>topics|subscriptions)/(?P<name>[^/:]+)"
                   r"(?::(?P<verb>\w+))?$")


class PubsubError(Exception):
    """An answer with Google's error shape."""

    def __init__(self, code: int, status: str, message: str):
        self.code, self.status, self.message = code, status, message
        super().__init__(f"{code} {status}: {message}")

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "status": self.status}}


@dataclass
class _Message:
    message_id: str
    data: str  # base64, as it travels
    attributes: dict[str, str]
    publish_time: str


@dataclass
class _Outstanding:
    message: _Message
    visible_at: float = 0.0  # monotonic; 0: deliverable now
    ack_id: str | None = None  # of the delivery in flight, if any


@dataclass
class _Subscription:
    name: str
    topic: str
    ack_deadline: int
    push_config: dict[str, Any] = field(default_factory=dict)
    messages: dict[str, _Outstanding] = field(default_factory=dict)  # message id -> state, oldest first


class MemoryPubsub:
    """Topics and subscriptions in memory, served over HTTP; thread-safe behind one condition."""

    def __init__(self, project: str = "memory-project", clock: Callable[[], float] = time.monotonic):
        self.project = project
        self.clock = clock
        self._lock = threading.Condition()
        self._topics: dict[str, list[str]] = {}  # topic path -> its subscriptions' paths
        self._subscriptions: dict[str, _Subscription] = {}
        self._acks: dict[str, tuple[str, str]] = {}  # ack id -> (subscription, message id)
        self._ids = itertools.count(1)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- the server

    def start(self) -> MemoryPubsub:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.daemon_threads = True
        server.pubsub = self  # type: ignore[attr-defined]  # what the handler serves
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="memory-pubsub", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> MemoryPubsub:
        return self if self._server is not None else self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def host(self) -> str:
        """HOST:PORT, what PUBSUB_EMULATOR_HOST takes."""
        if self._server is None:
            raise RuntimeError("the in-memory Pub/Sub is not running")
        host, port = self._server.server_address[:2]
        return f"{host!s}:{port}"

    def env(self) -> dict[str, str]:
        return {"PUBSUB_EMULATOR_HOST": self.host, "GOOGLE_CLOUD_PROJECT": self.project}

    # -- the API, one method a call: path (projects/P/topics/T or .../subscriptions/S), body -> answer

    def call(self, method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        match = _PATH.match(path)
        if match is None:
            raise PubsubError(404, "NOT_FOUND", f"no such resource: {path}")
        resource = f"projects/{match['project']}/{match['kind']}/{match['name']}"
        verb = match["verb"]
        handler = {
            ("PUT", "topics", None): self._create_topic,
            ("GET", "topics", None): self._get_topic,
            ("POST", "topics", "publish"): self._publish,
            ("PUT", "subscriptions", None): self._create_subscription,
            ("GET", "subscriptions", None): self._get_subscription,
            ("POST", "subscriptions", "pull"): self._pull,
            ("POST", "subscriptions", "acknowledge"): self._acknowledge,
            ("POST", "subscriptions", "modifyAckDeadline"): self._modify_ack_deadline,
            ("POST", "subscriptions", "modifyPushConfig"): self._modify_push_config,
        }.get((method, match["kind"], verb))
        if handler is None:
            raise PubsubError(404 if verb else 405, "NOT_FOUND" if verb else "METHOD_NOT_ALLOWED",
                              f"{method} {path} is not something the in-memory Pub/Sub does")
        return handler(resource, body)

    def _create_topic(self, topic: str, body: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            if topic in self._topics:
                raise PubsubError(409, "ALREADY_EXISTS", "Topic already exists")
            self._topics[topic] = []
        return {"name": topic}

    def _get_topic(self, topic: str, body: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self._topic(topic)
        return {"name": topic}

    def _create_subscription(self, subscription: str, body: dict[str, Any]) -> dict[str, Any]:
        topic = str(body.get("topic") or "")
        deadline = body.get("ackDeadlineSeconds", DEFAULT_ACK_DEADLINE_S)
        if not isinstance(deadline, int) or not 10 <= deadline <= MAX_ACK_DEADLINE_S:
            raise PubsubError(400, "INVALID_ARGUMENT", f"ackDeadlineSeconds must be 10 to 600, not {deadline!r}")
        with self._lock:
            self._topic(topic)
            if subscription in self._subscriptions:
                raise PubsubError(409, "ALREADY_EXISTS", "Subscription already exists")
            self._subscriptions[subscription] = _Subscription(subscription, topic, deadline,
                                                              dict(body.get("pushConfig") or {}))
            self._topics[topic].append(subscription)
        return self._get_subscription(subscription, {})

    def _get_subscription(self, subscription: str, body: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            sub = self._subscription(subscription)
            return {"name": sub.name, "topic": sub.topic, "ackDeadlineSeconds": sub.ack_deadline,
                    "pushConfig": dict(sub.push_config)}

    def _modify_push_config(self, subscription: str, body: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self._subscription(subscription).push_config = dict(body.get("pushConfig") or {})
        return {}

    def _publish(self, topic: str, body: dict[str, Any]) -> dict[str, Any]:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise PubsubError(400, "INVALID_ARGUMENT", "messages: at least one message is required")
        now = datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
        published = []
        for raw in messages:
            data = raw.get("data", "") if isinstance(raw, dict) else None
            attributes = raw.get("attributes") or {} if isinstance(raw, dict) else None
            if not isinstance(data, str) or not isinstance(attributes, dict):
                raise PubsubError(400, "INVALID_ARGUMENT", "each message needs base64 data and string attributes")
            try:
                base64.b64decode(data, validate=True)
            except (binascii.Error, ValueError):
                raise PubsubError(400, "INVALID_ARGUMENT", "data is not base64") from None
            if not data and not attributes:
                raise PubsubError(400, "INVALID_ARGUMENT", "a message needs data or attributes")
            published.append((data, {str(k): str(v) for k, v in attributes.items()}))
        with self._lock:
            subscriptions = self._topic(topic)
            ids = []
            for data, attributes in published:
                message = _Message(str(next(self._ids)), data, attributes, now)
                ids.append(message.message_id)
                for name in subscriptions:
                    self._subscriptions[name].messages[message.message_id] = _Outstanding(message)
            self._lock.notify_all()
        return {"messageIds": ids}

    def _pull(self, subscription: str, body: dict[str, Any]) -> dict[str, Any]:
        most = body.get("maxMessages")
        if not isinstance(most, int) or most < 1:
            raise PubsubError(400, "INVALID_ARGUMENT", "maxMessages must be a positive number")
        give_up = time.monotonic() + (0 if body.get("returnImmediately") else PULL_WAIT_S)
        with self._lock:
            while True:
                received = self._deliver(self._subscription(subscription), most)
                remaining = give_up - time.monotonic()
                if received or remaining <= 0:
                    return {"receivedMessages": received} if received else {}
                self._lock.wait(min(remaining, 0.05))  # also wakes for a deadline that lapses

    def _deliver(self, sub: _Subscription, most: int) -> list[dict[str, Any]]:
        now = self.clock()
        received: list[dict[str, Any]] = []
        for state in sub.messages.values():
            if len(received) >= most:
                break
            if state.visible_at > now:
                continue
            if state.ack_id is not None:
                self._acks.pop(state.ack_id, None)  # its deadline lapsed: that delivery's ack id is stale
            state.ack_id = f"{sub.name}:{state.message.message_id}:{next(self._ids)}"
            state.visible_at = now + sub.ack_deadline
            self._acks[state.ack_id] = (sub.name, state.message.message_id)
            message = state.message
            received.append({"ackId": state.ack_id, "message": {
                "data": message.data, "attributes": dict(message.attributes),
                "messageId": message.message_id, "publishTime": message.publish_time}})
        return received

    def _acknowledge(self, subscription: str, body: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            sub = self._subscription(subscription)
            for ack_id in self._ack_ids(body):
                target = self._acks.pop(ack_id, None)
                if target is not None and target[0] == sub.name:
                    sub.messages.pop(target[1], None)
        return {}

    def _modify_ack_deadline(self, subscription: str, body: dict[str, Any]) -> dict[str, Any]:
        seconds = body.get("ackDeadlineSeconds")
        if not isinstance(seconds, int) or not 0 <= seconds <= MAX_ACK_DEADLINE_S:
            raise PubsubError(400, "INVALID_ARGUMENT", f"ackDeadlineSeconds must be 0 to 600, not {seconds!r}")
        with self._lock:
            sub = self._subscription(subscription)
            now = self.clock()
            for ack_id in self._ack_ids(body):
                target = self._acks.get(ack_id)
                state = sub.messages.get(target[1]) if target is not None and target[0] == sub.name else None
                if state is not None and state.ack_id == ack_id:
                    state.visible_at = now + seconds
            self._lock.notify_all()
        return {}

    # -- lookups (caller holds the lock)

    def _topic(self, topic: str) -> list[str]:
        if topic not in self._topics:
            raise PubsubError(404, "NOT_FOUND", f"Resource not found (resource={topic})")
        return self._topics[topic]

    def _subscription(self, subscription: str) -> _Subscription:
        if subscription not in self._subscriptions:
            raise PubsubError(404, "NOT_FOUND", f"Resource not found (resource={subscription})")
        return self._subscriptions[subscription]

    @staticmethod
    def _ack_ids(body: dict[str, Any]) -> list[str]:
        ack_ids = body.get("ackIds")
        if not isinstance(ack_ids, list) or not ack_ids:
            raise PubsubError(400, "INVALID_ARGUMENT", "ackIds: at least one ack id is required")
        return [str(ack_id) for ack_id in ack_ids]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as requests' sessions expect

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read what was published, not an access log."""

    def _serve(self) -> None:
        pubsub: MemoryPubsub = self.server.pubsub  # type: ignore[attr-defined]  # set by start()
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            try:
                body = json.loads(raw) if raw.strip() else {}
            except ValueError:
                raise PubsubError(400, "INVALID_ARGUMENT", "the body is not JSON") from None
            if not isinstance(body, dict):
                raise PubsubError(400, "INVALID_ARGUMENT", "the body must be a JSON object")
            status, answer = 200, pubsub.call(self.command, self.path.split("?", 1)[0], body)
        except PubsubError as error:
            status, answer = error.code, error.body()
        payload = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_PUT = do_POST = do_DELETE = _serve


# ---------------------------------------------------------------- measure's topology on it


def create_topology(pubsub: MemoryPubsub, *, names: Names | None = None, tap: bool = False) -> MemoryTopology:
    """measure's topics and subscriptions on `pubsub`, made by the same calls as on the emulator."""
    made = emulator.create_topology(pubsub.project, emulator_host=pubsub.host, names=names, tap=tap)
    return MemoryTopology(made.project, made.emulator_host, made.names, made.push_endpoint, made.tap)


class MemoryTopology(emulator.Topology):
    """emulator.Topology's publish and pull, over REST (google-cloud-pubsub speaks only gRPC)."""

    def _api(self) -> googleapi.Api:
        return googleapi.Api(f"http://{self.emulator_host}", credentials.http(None, 2))

    def publish(self, topic: str, data: bytes, **attributes: str) -> str:
        api = self._api()
        try:
            message = {"data": base64.b64encode(data).decode(), "attributes": attributes}
            answer = api.call("POST", f"/v1/{self.topic_path(topic)}:publish", {"messages": [message]}, timeout=30)
        finally:
            api.close()
        return str(answer["messageIds"][0])

    def _subscriber(self) -> Subscriber:
        return Subscriber(self._api())
