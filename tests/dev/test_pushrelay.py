"""The Eventarc stand-in (measure/dev/pushrelay.py): Pub/Sub push's envelope and semantics, on the real emulator."""

import base64
import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from measure.dev.emulator import LOOPBACK
from measure.dev.pushrelay import PushRelay


def test_the_push_relay_acknowledges_a_success_and_redelivers_a_failure(make_topology):
    """Each message is POSTed as Pub/Sub push's envelope; the first push of each is answered 500,
    so it must come again, and once answered 204 it must not."""
    pushes: list[dict] = []
    lock = threading.Lock()

    class Endpoint(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with lock:
                pushes.append({"body": body, "content type": self.headers["Content-Type"]})
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
