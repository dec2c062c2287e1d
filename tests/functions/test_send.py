"""send's entry logic (measure.functions.send) on the real emulator, against the sandbox."""

import base64
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from measure import events
from measure.dev.devstack import SERVER_START_TIMEOUT
from measure.dev.devstack import function_server as start_function_server
from measure.dev.emulator import Names, create_topology, free_port, log_tail
from measure.dev.pushrelay import PUSH_SUCCESS, cloud_event, push
from measure.dev.sandbox import Sandbox
from measure.gcp.subscriber import PubsubMessage
from measure.pipeline.delivery import Result
from measure.pipeline.message import MAX_RAW_BYTES, event_message, retry_message
from measure.pipeline.retry import RetryState
from tests.helpers import ADVERTISER, CONSUMER_KEY, PRIVATE_KEY, SITE_IDS, base_env
from tests.pipeline.poison import POISON, good_event
from tests.pipeline.stack import Pipeline, make_event, pipeline_fixture, sandbox_fixture  # noqa: F401


def test_a_cloud_event_is_decoded_and_delivered(pipeline, sandbox):
    event = make_event()
    data, attributes = event_message(event)
    cloud_event = type("CloudEvent", (), {"data": {"message": {"data": base64.b64encode(data).decode(),
                                                               "attributes": attributes}}})()
    assert pipeline.sender.handle(cloud_event).result is Result.DELIVERED
    assert sandbox.accepted_ids()[event.event_id] == 1


def test_undecodable_messages_are_dead_lettered_not_crash_looped(pipeline):
    assert pipeline.sender.process(b"\xff not json", {"event_id": "x"}).result is Result.DEAD_LETTERED
    ((body, attributes),) = pipeline.dead_letters()
    assert body["event"] is None and body["dead"]["kind"] == "undecodable"
    assert base64.b64decode(body["raw"]) == b"\xff not json" and attributes["event_id"] == "x"


@pytest.mark.emulator  # a push subscription: the in-memory Pub/Sub does not push
def test_raw_pubsub_push_to_a_real_send_server(topology, sandbox, function_server):
    env = {**base_env(sandbox.serve_url), **topology.env()}
    url = function_server("send", env, signature_type="cloudevent")
    create_topology(topology.project, emulator_host=topology.emulator_host, push_endpoint=url,
                    names=topology.names)
    event = make_event()
    data, attributes = event_message(event)
    topology.publish(topology.names.events_topic, data, **attributes)
    deadline = time.time() + 20
    while time.time() < deadline and not sandbox.requests(transaction_id=event.event_id):
        time.sleep(0.2)
    (seen,) = sandbox.requests(transaction_id=event.event_id)
    assert seen["outcome"] == "accepted"




# ---------------------------------------------------------------------------------------------
# Poison messages, pushed as Eventarc pushes them to a real send server, and swept from the retry
# topic through a real sweep server: each becomes one undecodable dead letter, every answer is 2xx,
# and a good event published after them is delivered.

# CloudEvents whose data is not a Pub/Sub message send can read: what send's entry point sees
# before decode(). name -> (body, content type). The last two keep their attributes, so their
# dead letters carry `envelope`; the others' dead letters hold the body as raw.
BAD_ENVELOPES: dict[str, tuple[bytes, str]] = {
    "empty body": (b"", "application/json"),
    "body not JSON": (b"\x00 not json \xff", "application/octet-stream"),
    "body a JSON array": (json.dumps([{"message": {}}]).encode(), "application/json"),
    "message not an object": (json.dumps({"message": "hello", "subscription": "s"}).encode(), "application/json"),
    "message.data not base64": (json.dumps({"message": {"data": "!!not base64!!", "attributes": {
        "envelope": "message.data not base64"}, "messageId": "1"}, "subscription": "s"}).encode(), "application/json"),
    "message.data a number": (json.dumps({"message": {"data": 12, "attributes": {"envelope": "message.data a number"},
                                                      "messageId": "2"}, "subscription": "s"}).encode(),
                              "application/json"),
}
_BY_RAW = {body: name for name, (body, _) in BAD_ENVELOPES.items()}


@dataclass
class Poisoned:
    """What became of every poison message: dead letters by (topic, kind), send's answers by kind."""

    dead: dict[tuple[str, str], list[tuple[dict, dict[str, str]]]] = field(default_factory=dict)
    send_answers: dict[str, int] = field(default_factory=dict)
    sweep_answers: list[int] = field(default_factory=list)
    good_ids: dict[str, str] = field(default_factory=dict)
    accepted: dict[str, int] = field(default_factory=dict)
    logs: dict[str, Path] = field(default_factory=dict)

    def log_tails(self) -> str:
        return "\n".join(f"--- {name}\n{log_tail(path, 40)}" for name, path in self.logs.items())


def _service(target: str, env: dict[str, str], log_dir: Path, logs: dict[str, Path], **options):
    logs[target] = log_dir / f"{target}.log"
    service = start_function_server(target, port=free_port(), env=env, log_path=logs[target], **options)
    service.wait_ready(time.monotonic() + SERVER_START_TIMEOUT)
    return service


@pytest.fixture(scope="module")
def poisoned(pubsub_emulator, tmp_path_factory) -> Iterator[Poisoned]:
    """One stack for every kind (servers start once): POISON on measure-events, pushed to send as
    Eventarc does, then a good event; POISON on measure-retry, then a due good retry, swept by POSTs
    to sweep until its queue is drained."""
    log_dir = tmp_path_factory.mktemp("poison")
    result = Poisoned()
    with Sandbox({CONSUMER_KEY: PRIVATE_KEY}, advertiser_id=ADVERTISER).start() as sandbox:
        topology = create_topology(pubsub_emulator.project, emulator_host=pubsub_emulator.host,
                                   names=Names().suffixed("-poison"))
        env = {**base_env(sandbox.serve_url), **topology.env(), "MEASURE_SWEEP_BUDGET": "3"}
        send = _service("send", env, log_dir, result.logs, signature_type="cloudevent")
        sweep = _service("sweep", env, log_dir, result.logs)
        topic = topology.topic_path(topology.names.events_topic)
        subscription = topology.subscription_path("eventarc-trigger")
        try:
            with requests.Session() as session:
                for n, (kind, data) in enumerate(POISON.items()):
                    message = PubsubMessage(data, {"poison": kind, "on": "events"}, f"p{n}")
                    response = push(session, send.url, message, topic=topic, subscription=subscription, timeout=30)
                    result.send_answers[kind] = response.status_code
                for name, (body, content_type) in BAD_ENVELOPES.items():
                    headers, _ = cloud_event(PubsubMessage(b"", {}, name), topic, subscription)
                    response = session.post(send.url, data=body, headers={**headers, "Content-Type": content_type},
                                            timeout=30)
                    result.send_answers[name] = response.status_code
                good = good_event()
                result.good_ids["events"] = good["event_id"]
                response = push(session, send.url, PubsubMessage(json.dumps({"v": 1, "event": good}).encode(), {},
                                                                 "good"), topic=topic, subscription=subscription)
                result.send_answers["good event"] = response.status_code

                for kind, data in POISON.items():
                    topology.publish(topology.names.retry_topic, data, poison=kind, on="retry")
                good = good_event()
                result.good_ids["retry"] = good["event_id"]
                (event,) = events.validate([{**good, "time_stamp": str(good["time_stamp"])}], site_ids=SITE_IDS)
                now = time.time()
                data, attributes = retry_message(event, RetryState(1, now, now - 1, "HTTP 503"))
                topology.publish(topology.names.retry_topic, data, **attributes)
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline and result.good_ids["retry"] not in sandbox.accepted_ids():
                    answer = session.post(sweep.url, timeout=60)
                    result.sweep_answers.append(answer.status_code)
                    if answer.status_code != 200:
                        time.sleep(0.5)
            expected = 2 * len(POISON) + len(BAD_ENVELOPES)
            for received in topology.pull(topology.names.dead_letter_subscription, expect=expected, timeout=20,
                                          max_messages=100):
                body, attributes = json.loads(received.message.data), dict(received.message.attributes)
                raw = base64.b64decode(body.get("raw") or "")
                where = (attributes.get("on", "events"),
                         attributes.get("poison") or attributes.get("envelope") or _BY_RAW.get(raw, "?"))
                result.dead.setdefault(where, []).append((body, attributes))
            result.accepted = dict(sandbox.accepted_ids())
        finally:
            send.stop()
            sweep.stop()
        yield result


@pytest.mark.parametrize("topic", ["events", "retry"])
@pytest.mark.parametrize("kind", POISON)
def test_a_poison_message_becomes_one_undecodable_dead_letter(poisoned, topic, kind):
    letters = poisoned.dead.get((topic, kind), [])
    assert len(letters) == 1, f"{len(letters)} dead letters\n{poisoned.log_tails()}"
    ((body, attributes),) = letters
    assert body["event"] is None and body["dead"]["kind"] == "undecodable" and body["dead"]["reason"]
    assert base64.b64decode(body["raw"]) == POISON[kind][:MAX_RAW_BYTES]  # what arrived, as documented
    assert attributes == {"poison": kind, "on": topic, "kind": "undecodable"}  # its own, kept
    if topic == "events":
        assert poisoned.send_answers[kind] in PUSH_SUCCESS, poisoned.log_tails()


@pytest.mark.parametrize("name", BAD_ENVELOPES)
def test_a_cloud_event_without_a_pub_sub_message_becomes_one_undecodable_dead_letter(poisoned, name):
    assert poisoned.send_answers[name] in PUSH_SUCCESS, poisoned.log_tails()
    letters = poisoned.dead.get(("events", name), [])
    assert len(letters) == 1, f"{len(letters)} dead letters; all: {sorted(poisoned.dead)}\n{poisoned.log_tails()}"
    ((body, _),) = letters
    assert body["dead"]["kind"] == "undecodable" and "CloudEvent" in body["dead"]["reason"]


def test_after_the_poison_send_and_sweep_answer_2xx_and_deliver_a_good_event(poisoned):
    assert poisoned.send_answers["good event"] in PUSH_SUCCESS
    assert poisoned.sweep_answers and set(poisoned.sweep_answers) == {200}, poisoned.log_tails()
    assert {poisoned.accepted.get(event_id) for event_id in poisoned.good_ids.values()} == {1}, poisoned.log_tails()
    assert sum(len(letters) for letters in poisoned.dead.values()) == 2 * len(POISON) + len(BAD_ENVELOPES)


def test_a_dead_letter_drops_the_goog_attributes_eventarc_may_add(topology, sandbox, function_server):
    # Pub/Sub adds googclient_* attributes to messages on a topic with a schema, and refuses a publish
    # with any "goog" key: kept, they would make the dead letter's own publish fail, for ever.
    url = function_server("send", {**base_env(sandbox.serve_url), **topology.env()}, signature_type="cloudevent")
    message = PubsubMessage(b"not json", {"googclient_schemaencoding": "JSON", "source": "studio"}, "g1")
    with requests.Session() as session:
        answer = push(session, url, message, topic=topology.topic_path(topology.names.events_topic),
                      subscription=topology.subscription_path("eventarc-trigger"))
    assert answer.status_code in PUSH_SUCCESS
    ((letter,),) = [[m] for m in topology.pull(topology.names.dead_letter_subscription, expect=1, timeout=10)]
    assert dict(letter.message.attributes) == {"source": "studio", "kind": "undecodable"}
