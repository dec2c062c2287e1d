"""The Eventarc stand-in (measure/dev/pushrelay.py): Eventarc's binary-mode CloudEvent and Pub/Sub
push's semantics, on the real emulator."""

import base64
import json
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

from cloudevents.http import from_http

from measure.dev.emulator import LOOPBACK
from measure.dev.pushrelay import CLOUD_EVENT_TYPE, PushRelay, cloud_event
from measure.gcp.subscriber import PubsubMessage

TOPIC = "projects/p/topics/measure-events"
SUBSCRIPTION = "projects/p/subscriptions/eventarc-trigger"


def test_a_message_is_a_binary_mode_cloud_event_as_functions_framework_reads_it():
    """functions-framework hands `from_http(headers, body)` to a CloudEvent function when the ce-*
    headers are there: the attributes come from them and `data` is the parsed JSON body."""
    published = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    headers, body = cloud_event(PubsubMessage(b"\xff{", {"a": "1"}, "42", published), TOPIC, SUBSCRIPTION)
    event = from_http(headers, body)
    assert (event["specversion"], event["id"], event["type"]) == ("1.0", "42", CLOUD_EVENT_TYPE)
    assert event["source"] == "//pubsub.googleapis.com/projects/p/topics/measure-events"
    assert event["time"] == "2026-01-02T03:04:05.678Z"
    assert event.data == {"subscription": SUBSCRIPTION, "message": {
        "data": base64.b64encode(b"\xff{").decode(), "attributes": {"a": "1"}, "messageId": "42",
        "message_id": "42", "publishTime": "2026-01-02T03:04:05.678Z", "publish_time": "2026-01-02T03:04:05.678Z"}}


def test_a_message_without_data_or_attributes_has_neither_key():
    # Pub/Sub's JSON omits empty fields; functions-framework's own conversion of a raw push
    # envelope refuses a message without "data", Eventarc's CloudEvent does not.
    headers, body = cloud_event(PubsubMessage(b"", {}, "7"), TOPIC, SUBSCRIPTION)
    message = from_http(headers, body).data["message"]
    assert "data" not in message and "attributes" not in message and message["messageId"] == "7"


def test_the_push_relay_acknowledges_a_success_and_redelivers_a_failure(make_topology):
    """Each message is POSTed as Eventarc's CloudEvent; the first push of each is answered 500,
    so it must come again, and once answered 204 it must not."""
    pushes: list[dict] = []
    lock = threading.Lock()

    class Endpoint(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with lock:
                pushes.append({"body": body, "content type": self.headers["Content-Type"],
                               "ce": {k.lower(): v for k, v in self.headers.items() if k.lower().startswith("ce-")}})
                first = sum(p["body"]["message"]["messageId"] == body["message"]["messageId"] for p in pushes) == 1
            self.send_response(500 if first else 204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer((LOOPBACK, 0), Endpoint)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    topology = make_topology(tap=False)
    relay = PushRelay.subscribe(topology, f"http://{LOOPBACK}:{server.server_address[1]}/").start()
    try:
        ids = {topology.publish(topology.names.events_topic, f"m{i}".encode(), n=str(i)): i for i in range(5)}
        deadline = time.monotonic() + 30
        while relay.acked < len(ids) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # a redelivery of an acknowledged message would arrive by now
    finally:
        relay.stop()
        server.shutdown()
        server.server_close()

    assert Counter(p["body"]["message"]["messageId"] for p in pushes) == {message_id: 2 for message_id in ids}
    assert (relay.pulled, relay.acked, relay.released) == (10, 5, 5)
    assert relay.failures == {"HTTP 500": 5}
    for push in pushes:
        message = push["body"]["message"]
        assert push["body"]["subscription"] == relay.subscription
        assert push["content type"] == "application/json"
        assert base64.b64decode(message["data"]) == f"m{ids[message['messageId']]}".encode()
        assert message["attributes"] == {"n": str(ids[message["messageId"]])}
        assert message["publishTime"].endswith("Z")
        assert push["ce"] == {"ce-specversion": "1.0", "ce-id": message["messageId"], "ce-type": CLOUD_EVENT_TYPE,
                              "ce-source": f"//pubsub.googleapis.com/{relay.topic}", "ce-time": message["publishTime"]}
    assert relay.topic == topology.topic_path(topology.names.events_topic)


class _EmptySubscriber:
    """A subscription that never has a message; counts the pulls."""

    def __init__(self):
        self.pulls = 0

    def pull(self, request, timeout):
        self.pulls += 1
        return SimpleNamespace(received_messages=[])

    def close(self):
        pass


def test_an_idle_relay_pulls_again_only_after_its_idle_wait_and_stops_at_once():
    subscriber = _EmptySubscriber()
    relay = PushRelay("projects/p/subscriptions/s", "http://127.0.0.1:1/", subscriber, topic=TOPIC,
                      idle_wait=0.5).start()
    time.sleep(1.2)
    began = time.monotonic()
    relay.stop()
    assert time.monotonic() - began < 0.3  # the stop does not wait out the idle wait
    assert 2 <= subscriber.pulls <= 4  # at 0, 0.5 and 1.0 s (the default 50 ms: about 24)
    assert (relay.pulled, dict(relay.errors)) == (0, {})
