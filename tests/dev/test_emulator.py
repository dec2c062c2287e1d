"""The emulator fixture, measure's topology on it, push delivery, and clean process shutdown."""

from __future__ import annotations

import base64
import json
import queue
import socket
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from google.cloud import pubsub_v1

from measure.dev.emulator import (
    Emulator,
    EmulatorError,
    PortInUseError,
    accepts_connections,
    create_topology,
    group_members,
)

pytestmark = pytest.mark.emulator


@pytest.fixture
def push_receiver():
    """A local HTTP server that records every POST body (JSON) it gets and answers 204."""
    bodies: queue.Queue = queue.Queue()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers.get("Content-Length", 0))
            bodies.put((self.path, json.loads(self.rfile.read(length))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", bodies
    server.shutdown()
    server.server_close()


def test_fixture_points_this_process_at_the_emulator(pubsub_emulator):
    import os

    assert os.environ["PUBSUB_EMULATOR_HOST"] == pubsub_emulator.host == f"127.0.0.1:{pubsub_emulator.port}"
    assert os.environ["GOOGLE_CLOUD_PROJECT"] == pubsub_emulator.project
    with urllib.request.urlopen(f"http://{pubsub_emulator.host}/", timeout=5) as r:
        assert r.read().strip() == b"Ok"


def test_publish_with_the_default_client_and_pull_from_the_tap(topology):
    # A client built from the environment alone, as main.py builds it.
    publisher = pubsub_v1.PublisherClient()
    topic = publisher.topic_path(topology.project, topology.names.events_topic)
    message_id = publisher.publish(topic, b'{"user_id": "u1"}', event_id="e1").result(timeout=30)

    [received] = topology.pull(topology.names.events_tap_subscription)
    assert received.message.message_id == message_id
    assert received.message.data == b'{"user_id": "u1"}'
    assert dict(received.message.attributes) == {"event_id": "e1"}


def test_topology_has_measures_topics_and_subscriptions(pubsub_emulator, topology):
    names = topology.names
    assert names.events_topic.startswith("measure-events-t")
    publisher = pubsub_v1.PublisherClient()
    subscriber = pubsub_v1.SubscriberClient()
    try:
        topics = {t.name for t in publisher.list_topics(request={"project": f"projects/{topology.project}"})}
        for name in (names.events_topic, names.retry_topic, names.dead_letter_topic):
            assert topology.topic_path(name) in topics
        retry = subscriber.get_subscription(request={"subscription": topology.subscription_path(
            names.retry_subscription)})
        assert retry.topic == topology.topic_path(names.retry_topic)
        assert retry.ack_deadline_seconds == 60
        hold = subscriber.get_subscription(request={"subscription": topology.subscription_path(
            names.dead_letter_subscription)})
        assert hold.topic == topology.topic_path(names.dead_letter_topic)
    finally:
        subscriber.close()

    # Creating it again is harmless: make run and tests may both do it.
    again = create_topology(topology.project, emulator_host=pubsub_emulator.host, names=names, tap=True)
    assert again.names == names


def test_tests_do_not_see_each_others_messages(make_topology):
    mine, theirs = make_topology(), make_topology()
    mine.publish(mine.names.events_topic, b"mine")
    assert [m.message.data for m in mine.pull(mine.names.events_tap_subscription)] == [b"mine"]
    assert theirs.pull(theirs.names.events_tap_subscription, timeout=0.5) == []


def test_topology_env_names_the_suffixed_resources(topology):
    import os

    assert os.environ["MEASURE_EVENTS_TOPIC"] == topology.names.events_topic
    assert os.environ["MEASURE_RETRY_SUBSCRIPTION"] == topology.names.retry_subscription
    assert topology.env()["MEASURE_DEAD_LETTER_TOPIC"] == topology.names.dead_letter_topic


def test_push_subscription_posts_raw_pubsub_push_json(make_topology, push_receiver):
    url, bodies = push_receiver
    topology = make_topology(push_endpoint=url + "/push")
    message_id = topology.publish(topology.names.events_topic, b'{"a": 1}', event_id="e7")

    path, body = bodies.get(timeout=20)
    assert path == "/push"
    assert body["subscription"] == topology.subscription_path(topology.names.events_push_subscription)
    message = body["message"]
    assert base64.b64decode(message["data"]) == b'{"a": 1}'
    assert message["attributes"] == {"event_id": "e7"}
    assert message["messageId"] == message_id


CLOUDEVENT_SOURCE = '''
import base64, json, os
import functions_framework

@functions_framework.cloud_event
def send(cloud_event):
    with open(os.environ["OUT"], "a") as out:
        message = cloud_event.data["message"]
        out.write(json.dumps({"type": cloud_event["type"], "data": base64.b64decode(message["data"]).decode(),
                              "attributes": message.get("attributes")}) + "\\n")

@functions_framework.http
def hello(request):
    return {"env": os.environ.get("GREETING")}
'''


def test_push_reaches_a_cloudevent_function_server(make_topology, function_server, tmp_path):
    """The local stand-in for Eventarc: emulator push -> functions-framework -> CloudEvent."""
    source = tmp_path / "main.py"
    source.write_text(CLOUDEVENT_SOURCE)
    out = tmp_path / "out.jsonl"
    url = function_server("send", {"OUT": str(out)}, "cloudevent", source=source)
    topology = make_topology(push_endpoint=url + "/")
    topology.publish(topology.names.events_topic, b"payload", event_id="e9")

    deadline = time.monotonic() + 20
    while not (out.exists() and out.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    [event] = [json.loads(line) for line in out.read_text().splitlines()]
    assert event == {"type": "google.cloud.pubsub.topic.v1.messagePublished", "data": "payload",
                     "attributes": {"event_id": "e9"}}


def test_function_server_gets_the_env_it_is_given(function_server, tmp_path):
    import requests

    source = tmp_path / "main.py"
    source.write_text(CLOUDEVENT_SOURCE)
    url = function_server("hello", {"GREETING": "hi"}, source=source)
    assert requests.post(url, timeout=10).json() == {"env": "hi"}


def test_stop_ends_the_whole_process_group(tmp_path):
    emulator = Emulator.start(log_path=tmp_path / "emulator.log")
    pgid = emulator.proc.pid
    members = group_members(pgid)
    assert len(members) >= 2, "expected the gcloud wrapper and its Java child"
    print(f"emulator started in {emulator.start_seconds:.2f} s")
    emulator.stop()
    assert group_members(pgid) == []
    # Nothing listens there any more. (Not "the port is free": right after release the kernel may
    # hand it to another process's outgoing connection as its ephemeral port.)
    assert not accepts_connections(emulator.port)
    emulator.stop()  # twice is harmless


def test_busy_port_is_a_clear_error():
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(PortInUseError, match=f"port {port} \\(Pub/Sub emulator\\) is already in use"):
            Emulator.start(port)


def test_missing_gcloud_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(EmulatorError, match="gcloud is not installed"):
        Emulator.start()


def test_no_answer_by_the_deadline_fails_with_the_log_and_leaves_nothing(tmp_path, monkeypatch):
    spawned = []
    import measure.dev.emulator as emulator_module

    real_spawn = emulator_module.spawn
    monkeypatch.setattr(emulator_module, "spawn", lambda *a, **k: spawned.append(real_spawn(*a, **k)) or spawned[-1])
    with pytest.raises(EmulatorError, match=r"did not answer .* within the deadline\n--- .*emulator.log"):
        Emulator.start(log_path=tmp_path / "emulator.log", timeout=0.2)
    assert group_members(spawned[0].pid) == []
