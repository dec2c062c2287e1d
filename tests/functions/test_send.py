"""send's entry logic (measure.functions.send) on the real emulator, against the sandbox."""

import base64
import time

import pytest

from measure.dev.emulator import create_topology
from measure.pipeline.delivery import Result
from measure.pipeline.message import event_message
from tests.helpers import base_env
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


